//! What can go wrong when changing accounts, numbers, log-ons or profiles. Each error names the
//! cause and, where there is one, the fix; the admin API turns them into JSON.

use crate::admin::ApiError;

#[derive(Debug, Clone, PartialEq)]
pub enum ProvisionError {
    /// The request is malformed or breaks a rule of the data (400).
    Invalid {
        error: String,
        fix: Option<String>,
    },
    NotFound(String),
    /// The change conflicts with the current state (409); `blockers` lists every reason.
    Conflict {
        error: String,
        blockers: Vec<String>,
        fix: Option<String>,
    },
    /// The store failed (500).
    Store(String),
}

impl ProvisionError {
    pub fn invalid(error: impl Into<String>) -> ProvisionError {
        ProvisionError::Invalid {
            error: error.into(),
            fix: None,
        }
    }

    pub fn invalid_fix(error: impl Into<String>, fix: impl Into<String>) -> ProvisionError {
        ProvisionError::Invalid {
            error: error.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn conflict(error: impl Into<String>, fix: impl Into<String>) -> ProvisionError {
        ProvisionError::Conflict {
            error: error.into(),
            blockers: Vec::new(),
            fix: Some(fix.into()),
        }
    }
}

impl std::fmt::Display for ProvisionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProvisionError::Invalid { error, .. }
            | ProvisionError::NotFound(error)
            | ProvisionError::Conflict { error, .. }
            | ProvisionError::Store(error) => f.write_str(error),
        }
    }
}

impl std::error::Error for ProvisionError {}

impl From<rusqlite::Error> for ProvisionError {
    fn from(e: rusqlite::Error) -> ProvisionError {
        ProvisionError::Store(format!("store: {e}"))
    }
}

impl From<ProvisionError> for ApiError {
    fn from(e: ProvisionError) -> ApiError {
        match e {
            ProvisionError::Invalid { error, fix } => {
                let a = ApiError::bad_request(error);
                match fix {
                    Some(f) => a.with_fix(f),
                    None => a,
                }
            }
            ProvisionError::NotFound(error) => ApiError::not_found(error),
            ProvisionError::Conflict {
                error,
                blockers,
                fix,
            } => {
                let mut a = ApiError::conflict(error);
                if !blockers.is_empty() {
                    a = a.with_detail("blockers", blockers);
                }
                match fix {
                    Some(f) => a.with_fix(f),
                    None => a,
                }
            }
            ProvisionError::Store(error) => ApiError::internal(error),
        }
    }
}
