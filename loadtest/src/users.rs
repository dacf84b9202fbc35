//! The log-ons to register: a CSV with the header `user,password,number[,channels]`.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub password: String,
}

#[derive(Debug, PartialEq, Eq)]
pub struct UsersError {
    pub line: usize,
    pub what: String,
}

impl fmt::Display for UsersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

/// Parses the CSV text. Only `user` and `password` matter for REGISTER; `number` and `channels`
/// are checked for shape so a file meant for the gateway's provisioning is accepted as is.
pub fn parse(text: &str) -> Result<Vec<User>, UsersError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let err = |line, what: &str| UsersError {
        line,
        what: what.to_string(),
    };
    let (hline, header) = lines.next().ok_or_else(|| err(1, "empty file"))?;
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    if columns.len() < 3 || columns[..3] != ["user", "password", "number"] {
        return Err(err(
            hline,
            "expected the header `user,password,number[,channels]`",
        ));
    }
    let mut users = Vec::new();
    for (n, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != columns.len() {
            return Err(err(
                n,
                &format!("{} fields, the header has {}", fields.len(), columns.len()),
            ));
        }
        if fields[0].is_empty() || fields[0].bytes().any(|b| b <= b' ' || b == b'@') {
            return Err(err(n, "user must be non-empty, without spaces or '@'"));
        }
        if fields[1].contains('"') {
            return Err(err(n, "password must not contain '\"'"));
        }
        users.push(User {
            name: fields[0].to_string(),
            password: fields[1].to_string(),
        });
    }
    if users.is_empty() {
        return Err(err(hline, "no users after the header"));
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_users_with_optional_channels() {
        let u = parse("user,password,number,channels\n# comment\nalice,pw,100,2\n\nbob,x,101,1\n")
            .expect("valid");
        assert_eq!(u.len(), 2);
        assert_eq!(u[1].name, "bob");
        assert_eq!(u[1].password, "x");
    }

    #[test]
    fn rejects_bad_files() {
        assert_eq!(parse("").map_err(|e| e.line), Err(1));
        assert!(parse("name,pw\nalice,pw").is_err());
        assert_eq!(
            parse("user,password,number\nalice,pw").map_err(|e| e.line),
            Err(2)
        );
        assert!(parse("user,password,number\n").is_err());
    }
}
