//! Configuration errors.
//!
//! Every error renders as ONE line that names the key, the bad value and what
//! to do about it: operators read it in a terminal or a journal, where a
//! multi-line TOML snippet would be cut apart.

use std::fmt;
use std::io;
use std::path::PathBuf;

#[derive(Debug)]
pub enum ConfigError {
    /// The config file could not be read.
    Read { path: PathBuf, error: io::Error },
    /// The text is not valid TOML.
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// A key that no section knows (usually a typo).
    UnknownKey { key: String, expected: String },
    /// A required key of a repeatable section (`[[trunk]]` ...) is absent.
    Missing { key: String },
    /// A key has a value of the wrong type or outside its allowed set.
    /// `value` is the offending value as written (quoted for strings) when
    /// known; `message` says what is expected.
    Invalid {
        key: String,
        value: Option<String>,
        message: String,
    },
    /// A file named by a key (e.g. `accounts.import_csv`) cannot be read.
    File {
        key: String,
        path: PathBuf,
        error: io::Error,
    },
    /// `store.dir` cannot be created or written.
    Store { path: PathBuf, error: io::Error },
    /// A listener named by a key cannot be bound (port in use, address not on
    /// this host, permission).
    Bind {
        key: String,
        value: String,
        error: io::Error,
    },
}

impl ConfigError {
    pub(crate) fn invalid(
        key: impl Into<String>,
        value: impl fmt::Debug,
        message: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            value: Some(format!("{value:?}")),
            message: message.into(),
        }
    }

    /// The dotted key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. }
            | ConfigError::Missing { key }
            | ConfigError::Invalid { key, .. }
            | ConfigError::File { key, .. }
            | ConfigError::Bind { key, .. } => Some(key),
            ConfigError::Store { .. } => Some("store.dir"),
            ConfigError::Read { .. } | ConfigError::Syntax { .. } => None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, error } => write!(
                f,
                "cannot read config file {:?}: {error}; check the path and its permissions",
                path.display().to_string()
            ),
            ConfigError::Syntax {
                line,
                column,
                message,
            } => write!(f, "line {line}, column {column}: invalid TOML: {message}"),
            ConfigError::UnknownKey { key, expected } => {
                write!(f, "unknown key {key:?}; remove it or fix its spelling")?;
                if !expected.is_empty() {
                    write!(f, " (valid keys here: {expected})")?;
                }
                Ok(())
            }
            ConfigError::Missing { key } => {
                write!(f, "{key} is missing; this key is required in its section")
            }
            ConfigError::Invalid {
                key,
                value: Some(value),
                message,
            } => write!(f, "{key} {value}: {message}"),
            ConfigError::Invalid {
                key,
                value: None,
                message,
            } => write!(f, "{key}: {message}"),
            ConfigError::File { key, path, error } => write!(
                f,
                "{key} {:?}: cannot read: {error}; create the file or fix the path",
                path.display().to_string()
            ),
            ConfigError::Store { path, error } => write!(
                f,
                "store.dir {:?}: cannot create or write: {error}; choose a writable directory",
                path.display().to_string()
            ),
            ConfigError::Bind { key, value, error } => {
                write!(f, "{key} {value:?}: cannot listen: {error}; ")?;
                match error.kind() {
                    io::ErrorKind::AddrInUse => {
                        write!(
                            f,
                            "another process holds this port: stop it or choose another port"
                        )
                    }
                    io::ErrorKind::AddrNotAvailable => {
                        write!(
                            f,
                            "this host has no such address: use one of its addresses or 0.0.0.0"
                        )
                    }
                    io::ErrorKind::PermissionDenied => {
                        write!(f, "ports below 1024 need root or CAP_NET_BIND_SERVICE: choose a port above 1023")
                    }
                    _ => write!(f, "check the address"),
                }
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { error, .. }
            | ConfigError::File { error, .. }
            | ConfigError::Store { error, .. }
            | ConfigError::Bind { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Collapses a possibly multi-line message onto one line.
pub(crate) fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Turns a TOML syntax error into [`ConfigError::Syntax`] with a 1-based
/// line and column computed from the error's byte span.
pub(crate) fn from_syntax(err: &toml::de::Error, text: &str) -> ConfigError {
    let (line, column) = match err.span() {
        Some(span) => line_col(text, span.start),
        None => (0, 0),
    };
    ConfigError::Syntax {
        line,
        column,
        message: one_line(err.message()),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Turns a deserialization error, with the key path tracked by
/// `serde_path_to_error`, into the matching variant.
pub(crate) fn from_serde(err: serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
    let path = err.path().to_string();
    let message = one_line(err.inner().message());
    let join = |parent: &str, child: &str| -> String {
        if parent.is_empty() || parent == "." {
            child.to_string()
        } else {
            format!("{parent}.{child}")
        }
    };

    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (name, tail) = rest.split_once('`').unwrap_or((rest, ""));
        // serde_path_to_error already records the unknown key in the path
        // (it saw the key before rejecting it); don't append it twice.
        let key = if path == name || path.ends_with(&format!(".{name}")) {
            path.clone()
        } else {
            join(&path, name)
        };
        let expected = tail
            .trim_start_matches(", ")
            .trim_start_matches("expected one of ")
            .trim_start_matches("expected ")
            .replace('`', "");
        let expected = if expected.starts_with("there are no fields") {
            String::new()
        } else {
            expected
        };
        return ConfigError::UnknownKey { key, expected };
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        return ConfigError::Missing {
            key: join(&path, name),
        };
    }
    // Our own value parsers phrase errors as `"VALUE": what is expected`;
    // split that so the line reads `key "VALUE": ...` like every other one.
    if message.starts_with('"') {
        if let Some(idx) = message.find("\": ") {
            return ConfigError::Invalid {
                key: path,
                value: Some(message[..=idx].to_string()),
                message: message[idx + 3..].to_string(),
            };
        }
    }
    ConfigError::Invalid {
        key: path,
        value: None,
        message,
    }
}
