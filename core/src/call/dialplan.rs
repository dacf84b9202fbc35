//! What a dialled number means: digits normalised first (configurable rewrite rules, e.g. `+49`
//! and a national `0` prefix to the local form), then ordered dial-plan rules by prefix; the
//! first that matches decides. What no rule claims is looked up among the accounts' numbers.
//!
//! Rules are plain data so the TOML config (and later the trunk issue's prefix dialling and
//! phone book) can build them.

use std::fmt;

/// Rewrites the start of a number: `strip` removed, `prepend` put in its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalize {
    pub strip: String,
    pub prepend: String,
}

/// Where a dial-plan rule sends a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A subscriber of this gateway: the number after the prefix is stripped.
    Local,
    /// A fixed SIP URI (a PSAP, an operator desk).
    Uri(String),
    /// A named trunk or driver (the trunk and driver issues plug in here); the number after
    /// the prefix is stripped and `prepend` added.
    Trunk { name: String, prepend: String },
    /// A fixed SIP URI reached through a named trunk (a phone-book entry:
    /// `9#30` -> `sip:usera@there.example` through the provider it belongs to).
    TrunkUri { name: String, uri: String },
    /// Refused with this status and reason.
    Reject { status: u16, reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Digits the dialled number starts with (after normalisation); empty matches everything.
    pub prefix: String,
    /// Remove the prefix before the target sees the number.
    pub strip_prefix: bool,
    pub target: Target,
}

/// What the dial plan decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Ring the subscribers of this number.
    Local(String),
    Uri(String),
    Trunk {
        name: String,
        number: String,
    },
    TrunkUri {
        name: String,
        uri: String,
    },
    Reject {
        status: u16,
        reason: String,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DialPlan {
    pub normalize: Vec<Normalize>,
    pub rules: Vec<Rule>,
    /// Where emergency numbers go (a PSAP URI, or a trunk); `None`: rung like any number.
    pub emergency: Option<Target>,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Local(n) => write!(f, "local {n}"),
            Route::Uri(u) => write!(f, "uri {u}"),
            Route::Trunk { name, number } => write!(f, "trunk {name} {number}"),
            Route::TrunkUri { name, uri } => write!(f, "trunk {name} {uri}"),
            Route::Reject { status, reason } => write!(f, "reject {status} {reason}"),
        }
    }
}

/// The number as dialled, without visual separators (RFC 3966): `+49 (30) 1234-5` is
/// `+493012345`.
pub fn clean(dialled: &str) -> String {
    dialled
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | ' ' | '(' | ')'))
        .collect()
}

impl DialPlan {
    /// The first normalisation rule whose `strip` starts the number applies (one only).
    pub fn normalise(&self, dialled: &str) -> String {
        let d = clean(dialled);
        for n in &self.normalize {
            if let Some(rest) = d.strip_prefix(n.strip.as_str()) {
                return format!("{}{rest}", n.prepend);
            }
        }
        d
    }

    /// Routes a normalised number. `emergency` says the number is an emergency number.
    pub fn route(&self, number: &str, emergency: bool) -> Route {
        if emergency {
            if let Some(t) = &self.emergency {
                return resolve(t, number);
            }
        }
        for r in &self.rules {
            if let Some(rest) = number.strip_prefix(r.prefix.as_str()) {
                // A phone-book entry is a whole number: `9#301` is not `9#30` and a 1.
                if matches!(r.target, Target::TrunkUri { .. }) && !rest.is_empty() {
                    continue;
                }
                let n = if r.strip_prefix { rest } else { number };
                return resolve(&r.target, n);
            }
        }
        Route::Local(number.to_string())
    }
}

fn resolve(t: &Target, number: &str) -> Route {
    match t {
        Target::Local => Route::Local(number.to_string()),
        Target::Uri(u) => Route::Uri(u.clone()),
        Target::Trunk { name, prepend } => Route::Trunk {
            name: name.clone(),
            number: format!("{prepend}{number}"),
        },
        Target::TrunkUri { name, uri } => Route::TrunkUri {
            name: name.clone(),
            uri: uri.clone(),
        },
        Target::Reject { status, reason } => Route::Reject {
            status: *status,
            reason: reason.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> DialPlan {
        DialPlan {
            normalize: vec![
                Normalize {
                    strip: "+4930".into(),
                    prepend: "".into(),
                },
                Normalize {
                    strip: "+49".into(),
                    prepend: "0".into(),
                },
            ],
            rules: vec![
                Rule {
                    prefix: "0".into(),
                    strip_prefix: false,
                    target: Target::Trunk {
                        name: "pstn".into(),
                        prepend: "".into(),
                    },
                },
                Rule {
                    prefix: "19".into(),
                    strip_prefix: false,
                    target: Target::Reject {
                        status: 403,
                        reason: "Forbidden: premium numbers are barred".into(),
                    },
                },
                Rule {
                    prefix: "8".into(),
                    strip_prefix: true,
                    target: Target::Local,
                },
            ],
            emergency: Some(Target::Uri("sip:psap@192.0.2.9".into())),
        }
    }

    #[test]
    fn normalises_then_routes_by_first_matching_prefix() {
        let p = plan();
        assert_eq!(p.normalise("+49 30 1234"), "1234");
        assert_eq!(p.normalise("+49-89-555"), "089555");
        assert_eq!(
            p.route(&p.normalise("+49 89 555"), false),
            Route::Trunk {
                name: "pstn".into(),
                number: "089555".into()
            }
        );
        assert!(matches!(
            p.route("1900", false),
            Route::Reject { status: 403, .. }
        ));
        assert_eq!(p.route("8201", false), Route::Local("201".into()));
        assert_eq!(p.route("201", false), Route::Local("201".into()));
        assert_eq!(
            p.route("112", true),
            Route::Uri("sip:psap@192.0.2.9".into())
        );
        assert_eq!(
            DialPlan::default().route("112", true),
            Route::Local("112".into())
        );
    }
}
