//! Which backend runs: the configured one, or for `Auto` the `MGW_IO_BACKEND` override, else
//! io_uring when the probe passes, else epoll.

use crate::config::Backend;
use crate::error::EngineError;

pub const BACKEND_ENV: &str = "MGW_IO_BACKEND";

pub(crate) fn select(requested: Backend) -> Result<Backend, EngineError> {
    let env = std::env::var(BACKEND_ENV).ok();
    resolve(requested, env.as_deref(), crate::uring::probe)
}

/// The decision, with the environment and the probe passed in so it can be tested.
pub(crate) fn resolve(
    requested: Backend,
    env: Option<&str>,
    probe: impl FnOnce() -> Result<(), String>,
) -> Result<Backend, EngineError> {
    let required = match requested {
        Backend::Epoll => return Ok(Backend::Epoll),
        Backend::IoUring => true,
        Backend::Auto => match env.map(str::trim).filter(|v| !v.is_empty()) {
            None | Some("auto") => false,
            Some("epoll") => return Ok(Backend::Epoll),
            // Asked for by name (CI): silently running epoll instead would hide the gap.
            Some("io_uring" | "io-uring" | "iouring" | "uring") => true,
            Some(other) => {
                return Err(EngineError::Config {
                    what: format!("{BACKEND_ENV}={other}: expected epoll, io_uring or auto"),
                })
            }
        },
    };
    match probe() {
        Ok(()) => Ok(Backend::IoUring),
        Err(_) if !required => Ok(Backend::Epoll),
        Err(reason) => Err(EngineError::IoUringUnavailable { reason }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Result<(), String> {
        Ok(())
    }
    fn blocked() -> Result<(), String> {
        Err("io_uring_setup: Operation not permitted (os error 1)".into())
    }

    #[test]
    fn auto_prefers_io_uring_and_falls_back() {
        assert_eq!(
            resolve(Backend::Auto, None, ok).ok(),
            Some(Backend::IoUring)
        );
        assert_eq!(
            resolve(Backend::Auto, None, blocked).ok(),
            Some(Backend::Epoll)
        );
    }

    #[test]
    fn env_overrides_auto_only() {
        assert_eq!(
            resolve(Backend::Auto, Some("epoll"), ok).ok(),
            Some(Backend::Epoll)
        );
        assert_eq!(
            resolve(Backend::IoUring, Some("epoll"), ok).ok(),
            Some(Backend::IoUring)
        );
        assert!(matches!(
            resolve(Backend::Auto, Some("io_uring"), blocked),
            Err(EngineError::IoUringUnavailable { .. })
        ));
        assert!(matches!(
            resolve(Backend::Auto, Some("kqueue"), ok),
            Err(EngineError::Config { .. })
        ));
    }

    #[test]
    fn forced_io_uring_reports_why() {
        let e = resolve(Backend::IoUring, None, blocked)
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("not permitted") && e.contains("epoll")));
        assert_eq!(
            resolve(Backend::Epoll, None, blocked).ok(),
            Some(Backend::Epoll)
        );
    }
}
