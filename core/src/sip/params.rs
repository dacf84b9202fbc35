//! `;name[=value]` parameter lists of URIs and header fields (RFC 3261 section 25.1 generic-param).

use super::lex;

/// A parameter list as received, starting at its first `;` (or empty).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Params<'a>(pub(crate) &'a str);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    pub name: &'a str,
    /// The value as written (a quoted-string keeps its quotes).
    pub value: Option<&'a str>,
}

impl<'a> Params<'a> {
    pub const EMPTY: Params<'static> = Params("");

    pub fn as_str(&self) -> &'a str {
        self.0
    }

    pub fn is_empty(&self) -> bool {
        lex::trim(self.0).is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Param<'a>> {
        let s = self
            .0
            .trim_start_matches(|c: char| c.is_ascii() && lex::is_lws(c as u8));
        let s = s.strip_prefix(';').unwrap_or(s);
        let empty = lex::trim(s).is_empty();
        lex::split_outside(s, b';')
            .filter(move |_| !empty)
            .map(|p| match lex::find(p, b'=') {
                Some(eq) => Param {
                    name: lex::trim(&p[..eq]),
                    value: Some(lex::trim(&p[eq + 1..])),
                },
                None => Param {
                    name: p,
                    value: None,
                },
            })
    }

    /// The value of the first parameter with this name (case-insensitive); `Some(None)` when the
    /// parameter is present without a value.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Checks every parameter against `generic-param = token [ EQUAL gen-value ]`, where
    /// gen-value is a token, a host (IPv6 references included) or a quoted-string. Unbracketed
    /// IPv6 addresses are accepted because `received` carries them (RFC 5118 section 4.5).
    pub fn validate(&self) -> bool {
        self.iter().all(|p| {
            lex::is_token_str(p.name)
                && match p.value {
                    None => true,
                    Some(v) if v.starts_with('"') => lex::quoted_len(v.as_bytes()) == Some(v.len()),
                    Some(v) => {
                        !v.is_empty()
                            && v.bytes()
                                .all(|b| lex::is_token(b) || matches!(b, b':' | b'[' | b']'))
                    }
                }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterates_with_lws_and_quotes() {
        let p = Params(" ;   tag    = 1918181833n ; x=\"a;b\";lr");
        let v: Vec<_> = p.iter().collect();
        assert_eq!(v.len(), 3);
        assert_eq!(
            v[0],
            Param {
                name: "tag",
                value: Some("1918181833n")
            }
        );
        assert_eq!(v[1].value, Some("\"a;b\""));
        assert_eq!(p.get("LR"), Some(None));
        assert!(p.validate());
        assert!(!Params(";;").validate());
        assert!(Params("").validate());
        assert_eq!(Params("").iter().count(), 0);
    }
}
