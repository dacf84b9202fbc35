//! The log-ons the gateway knows: user name, the number it is attached to, and the password as
//! HA1 digests only (RFC 7616 section 3.4.2). Several log-ons may share a number (seed 000:
//! several phones on one line). Read on every authenticated request, written rarely (import,
//! admin API), so it is a lock-free map read without blocking.

use std::sync::Arc;

use crate::auth::Algorithm;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOn {
    pub user: Box<str>,
    pub number: Box<str>,
    /// `H(user:realm:password)` per algorithm; the password itself is never kept.
    pub ha1_md5: Box<str>,
    pub ha1_sha256: Box<str>,
    /// Voice channels of the account (simultaneous calls); `None` = unlimited.
    pub channels: Option<u32>,
}

impl LogOn {
    /// Builds a log-on from a clear password, which is hashed at once and dropped.
    pub fn new(
        user: &str,
        password: &str,
        number: &str,
        realm: &str,
        channels: Option<u32>,
    ) -> LogOn {
        LogOn {
            user: user.into(),
            number: number.into(),
            ha1_md5: Algorithm::Md5.ha1(user, realm, password).into(),
            ha1_sha256: Algorithm::Sha256.ha1(user, realm, password).into(),
            channels,
        }
    }

    pub fn ha1(&self, alg: Algorithm) -> &str {
        match alg {
            Algorithm::Md5 => &self.ha1_md5,
            Algorithm::Sha256 => &self.ha1_sha256,
        }
    }
}

#[derive(Default)]
pub struct Directory {
    log_ons: papaya::HashMap<Box<str>, Arc<LogOn>>,
}

impl Directory {
    pub fn new() -> Directory {
        Directory::default()
    }

    pub fn get(&self, user: &str) -> Option<Arc<LogOn>> {
        self.log_ons.pin().get(user).cloned()
    }

    pub fn insert(&self, log_on: LogOn) {
        self.log_ons
            .pin()
            .insert(log_on.user.clone(), Arc::new(log_on));
    }

    pub fn remove(&self, user: &str) -> Option<Arc<LogOn>> {
        self.log_ons.pin().remove(user).cloned()
    }

    pub fn len(&self) -> usize {
        self.log_ons.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn all(&self) -> Vec<Arc<LogOn>> {
        self.log_ons.pin().values().cloned().collect()
    }
}

/// Why a line of an accounts CSV was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvError {
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for CsvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Parses `user,password,number[,channels]` with a header line (the interface's import
/// format). Every faulty line is reported; nothing is half-imported by the caller on error.
pub fn parse_csv(text: &str, realm: &str) -> Result<Vec<LogOn>, Vec<CsvError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h))
            if h.trim()
                .to_ascii_lowercase()
                .starts_with("user,password,number") => {}
        _ => {
            return Err(vec![CsvError {
                line: 1,
                reason: "expected the header \"user,password,number[,channels]\"".into(),
            }])
        }
    }
    for (i, line) in lines {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        let err = |reason: String| CsvError { line: n, reason };
        if cols.len() < 3 || cols.len() > 4 {
            errors.push(err(format!(
                "expected 3 or 4 columns, found {}",
                cols.len()
            )));
            continue;
        }
        let (user, password, number) = (cols[0], cols[1], cols[2]);
        if user.is_empty()
            || !user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$;?/".contains(&b))
        {
            errors.push(err(format!(
                "user {user:?} is empty or has characters not allowed in a SIP user part"
            )));
            continue;
        }
        if password.is_empty() {
            errors.push(err(format!("user {user:?} has an empty password")));
            continue;
        }
        if number.is_empty()
            || !number
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'+' || b == b'*' || b == b'#')
        {
            errors.push(err(format!(
                "number {number:?} must be digits (optionally with +, *, #)"
            )));
            continue;
        }
        let channels = match cols.get(3).filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => match c.parse::<u32>() {
                Ok(v) => Some(v),
                Err(_) => {
                    errors.push(err(format!("channels {c:?} is not a whole number")));
                    continue;
                }
            },
        };
        if !seen.insert(user.to_string()) {
            errors.push(err(format!("user {user:?} appears twice")));
            continue;
        }
        out.push(LogOn::new(user, password, number, realm, channels));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_import() {
        let l = parse_csv(
            "user,password,number,channels\nalice,pw,100,2\nbob,pw2,100\n",
            "mgw.test",
        )
        .unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].channels, Some(2));
        assert_eq!(l[1].number.as_ref(), "100");
        assert_eq!(
            &*l[0].ha1_md5,
            Algorithm::Md5.ha1("alice", "mgw.test", "pw")
        );
        let e = parse_csv(
            "user,password,number\nalice,,100\nbad user,x,1\nc,x,12a\nd,x,1,x\n",
            "r",
        )
        .unwrap_err();
        assert_eq!(e.iter().map(|e| e.line).collect::<Vec<_>>(), [2, 3, 4, 5]);
        assert!(parse_csv("name,pw\n", "r").is_err());
    }

    #[test]
    fn directory_is_shared_without_locks() {
        let d = Arc::new(Directory::new());
        let d2 = d.clone();
        std::thread::spawn(move || d2.insert(LogOn::new("u", "p", "1", "r", None)))
            .join()
            .unwrap();
        assert_eq!(d.get("u").unwrap().number.as_ref(), "1");
        assert!(d.remove("u").is_some());
        assert!(d.is_empty());
    }
}
