//! The licence status page and its "Reset licences" action (seed 002: "Detailed information on
//! the current licence assignment and on logged-on SIP subscribers [...] This page is where you
//! can reset licence assignment at any time"), and the licence total kept in the store.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{audit, now_ms, ProvisionError, Provisioning, Result};
use crate::clock::rfc3339;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HolderView {
    pub user: String,
    pub number: Option<String>,
    /// When the licence was claimed (RFC 3339, UTC).
    pub since: String,
    pub since_unix: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LicenceStatus {
    pub total: u32,
    pub in_use: usize,
    pub free: usize,
    pub holders: Vec<HolderView>,
    /// Log-ons with at least one binding: the "logged-on SIP subscribers".
    pub logged_on: usize,
    pub last_reset: Option<String>,
}

const TOTAL_KEY: &str = "licences.total";
const CONFIG_TOTAL_KEY: &str = "licences.config_total";

impl Provisioning {
    /// The total to start with: the one last set through the API, unless the configured total
    /// changed since (then the config is the newer decision).
    pub fn initial_licence_total(&self, configured: u32) -> Result<u32> {
        let conn = self.db.conn();
        let get = |k: &str| -> Result<Option<u32>> {
            Ok(conn
                .query_row("SELECT value FROM settings WHERE key = ?1", [k], |r| {
                    r.get::<_, String>(0)
                })
                .optional()?
                .and_then(|v| v.parse().ok()))
        };
        let (stored, last_config) = (get(TOTAL_KEY)?, get(CONFIG_TOTAL_KEY)?);
        drop(conn);
        let total = match (stored, last_config) {
            (Some(s), Some(c)) if c == configured => s,
            _ => configured,
        };
        self.db.write(|tx| -> Result<()> {
            for (k, v) in [(TOTAL_KEY, total), (CONFIG_TOTAL_KEY, configured)] {
                tx.execute(
                    "INSERT INTO settings (key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    params![k, v.to_string()],
                )?;
            }
            Ok(())
        })?;
        Ok(total)
    }

    pub fn licence_status(&self) -> Result<LicenceStatus> {
        let mut holders: Vec<HolderView> = self
            .licences
            .holders()
            .into_iter()
            .map(|h| {
                let user = self.directory.user_of(h.log_on);
                let number = user
                    .as_deref()
                    .and_then(|u| self.directory.get(u))
                    .map(|l| l.number.to_string());
                HolderView {
                    user: user.map_or_else(|| format!("#{}", h.log_on), |u| u.to_string()),
                    number,
                    since: rfc3339(u64::from(h.since_unix_s) * 1000),
                    since_unix: u64::from(h.since_unix_s),
                }
            })
            .collect();
        holders.sort_by(|a, b| a.since_unix.cmp(&b.since_unix).then(a.user.cmp(&b.user)));
        let total = self.licences.total();
        let last_reset: Option<i64> =
            self.db
                .conn()
                .query_row("SELECT max(at_ms) FROM licence_resets", [], |r| r.get(0))?;
        let in_use = self.licences.in_use();
        Ok(LicenceStatus {
            total,
            in_use,
            free: (total as usize).saturating_sub(in_use),
            holders,
            logged_on: self.location.len(),
            last_reset: last_reset.map(|ms| rfc3339(ms as u64)),
        })
    }

    /// Frees every licence at once; holders claim again on their next call.
    pub fn reset_licences(&self, by_role: &str) -> Result<Vec<String>> {
        let freed: Vec<String> = self
            .licences
            .reset()
            .into_iter()
            .map(|id| {
                self.directory
                    .user_of(id)
                    .map_or_else(|| format!("#{id}"), |u| u.to_string())
            })
            .collect();
        self.db.write(|tx| -> Result<()> {
            tx.execute(
                "INSERT INTO licence_resets (at_ms, freed, by_role) VALUES (?1, ?2, ?3)",
                params![now_ms(), freed.len() as i64, by_role],
            )?;
            Ok(())
        })?;
        audit(format_args!(
            "licences reset by {by_role}: {} freed",
            freed.len()
        ));
        Ok(freed)
    }

    /// Changes the number of licences, kept across restarts.
    pub fn set_licence_total(&self, total: u32) -> Result<LicenceStatus> {
        self.licences
            .set_total(total)
            .map_err(|e| ProvisionError::invalid(e.to_string()))?;
        self.db.write(|tx| -> Result<()> {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![TOTAL_KEY, total.to_string()],
            )?;
            Ok(())
        })?;
        audit(format_args!("licence total set to {total}"));
        self.licence_status()
    }
}
