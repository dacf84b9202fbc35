//! A small stderr logger for the `log` facade.
//!
//! Why not env_logger: it brings regex-sized dependencies and colour handling
//! for what is one line per record here. This one honours `RUST_LOG` in the
//! common forms (`debug`, `mgw=debug,tiny_http=warn`), which override
//! `[log] level`.

use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// Records logged while start-up is on hold: a start that fails prints its one-line reason and
/// nothing else (the interface promises one line), a start that succeeds prints them all.
static HOLDING: AtomicBool = AtomicBool::new(false);
static HELD: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// From here on, records wait in memory until [`release`] or [`discard`].
pub fn hold() {
    HOLDING.store(true, Ordering::SeqCst);
}

/// Start-up succeeded: what was held goes to stderr, in order, and records flow again.
pub fn release() {
    let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
    HOLDING.store(false, Ordering::SeqCst);
    let mut err = std::io::stderr().lock();
    for line in held.drain(..) {
        let _ = err.write_all(line.as_bytes());
    }
}

/// Start-up failed: the held records are dropped (the failure's own line says why).
pub fn discard() {
    let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
    HOLDING.store(false, Ordering::SeqCst);
    held.clear();
}

pub struct Logger {
    default: LevelFilter,
    /// `(target prefix, level)`; the longest matching prefix wins.
    directives: Vec<(String, LevelFilter)>,
}

impl Logger {
    /// `default` from `[log] level`, overridden by the `RUST_LOG` text if any.
    pub fn new(default: LevelFilter, rust_log: Option<&str>) -> Logger {
        let mut logger = Logger {
            default,
            directives: Vec::new(),
        };
        for part in rust_log
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            match part.split_once('=') {
                Some((target, level)) => {
                    if let Ok(level) = level.trim().parse() {
                        logger.directives.push((target.trim().to_string(), level));
                    }
                }
                // A bare word is either a level or a target to log fully.
                None => match part.parse() {
                    Ok(level) => logger.default = level,
                    Err(_) => logger
                        .directives
                        .push((part.to_string(), LevelFilter::Trace)),
                },
            }
        }
        logger
    }

    /// Installs the logger as the global one. A second call (tests) is a no-op.
    pub fn install(self) {
        let max = self.max_level();
        // Leaked on purpose: the global logger lives as long as the process.
        if log::set_logger(Box::leak(Box::new(self))).is_ok() {
            log::set_max_level(max);
        }
    }

    pub fn max_level(&self) -> LevelFilter {
        self.directives
            .iter()
            .map(|d| d.1)
            .fold(self.default, std::cmp::max)
    }

    pub fn level_for(&self, target: &str) -> LevelFilter {
        self.directives
            .iter()
            .filter(|(prefix, _)| {
                target == prefix
                    || target
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.starts_with("::"))
            })
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(self.default, |d| d.1)
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level_for(metadata.target())
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "{} {:<5} {}: {}\n",
            utc_timestamp(SystemTime::now()),
            record.level(),
            record.target(),
            record.args()
        );
        if HOLDING.load(Ordering::SeqCst) {
            let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
            // Checked again under the lock: `release` may have run meanwhile.
            if HOLDING.load(Ordering::SeqCst) {
                held.push(line);
                return;
            }
        }
        // One write per record so lines from different threads don't mix.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` without a date/time crate.
pub fn utc_timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = crate::clock::civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rust_log_overrides_config_level() {
        let l = Logger::new(LevelFilter::Info, None);
        assert_eq!(l.level_for("mgw::admin"), LevelFilter::Info);
        let l = Logger::new(LevelFilter::Info, Some("debug"));
        assert_eq!(l.level_for("anything"), LevelFilter::Debug);
        let l = Logger::new(
            LevelFilter::Info,
            Some("warn, mgw=debug ,mgw::admin=trace,tiny_http=off,junk=nope"),
        );
        assert_eq!(l.level_for("mgw"), LevelFilter::Debug);
        assert_eq!(l.level_for("mgw::config"), LevelFilter::Debug);
        assert_eq!(l.level_for("mgw::admin::router"), LevelFilter::Trace);
        assert_eq!(l.level_for("mgwx"), LevelFilter::Warn);
        assert_eq!(l.level_for("tiny_http"), LevelFilter::Off);
        assert_eq!(l.level_for("junk"), LevelFilter::Warn);
        assert_eq!(l.max_level(), LevelFilter::Trace);
        let l = Logger::new(LevelFilter::Error, Some("mgw_engine"));
        assert_eq!(l.level_for("mgw_engine::uring"), LevelFilter::Trace);
    }

    #[test]
    fn timestamps() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789); // leap day
        assert_eq!(utc_timestamp(t), "2024-02-29T12:34:56.789Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_868_800); // 2000-03-01
        assert_eq!(utc_timestamp(t), "2000-03-01T00:00:00.000Z");
    }
}
