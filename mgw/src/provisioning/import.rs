//! `accounts.import_csv`: the interface's bulk format, `user,password,number[,channels]`, applied
//! at every start. Each number becomes an enabled account of its own unless it is linked
//! already; `channels` sets that account's voice channels. Log-ons are created or updated;
//! log-ons imported earlier that the file no longer lists are deleted. Log-ons created through
//! the API are never touched by the import.
//!
//! The whole file is one transaction (one fsync, not one per line: a 100 000-line file imports
//! in about a second), and a faulty file changes nothing.

use mgw_core::auth::Algorithm;
use mgw_core::directory::{parse_csv, CsvRow};
use rusqlite::{params, OptionalExtension, Transaction};

use super::{now_ms, numbers, ProvisionError, Provisioning, Result};

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub rows: usize,
    pub accounts_created: usize,
    pub log_ons_created: usize,
    pub log_ons_changed: usize,
    pub removed: Vec<String>,
}

impl Provisioning {
    /// Applies the CSV `text`. Call before [`Provisioning::load`], which then fills the
    /// directory.
    pub fn import_csv(&self, text: &str) -> std::result::Result<ImportReport, String> {
        let rows = parse_csv(text).map_err(|errors| {
            let first = &errors[0];
            let more = match errors.len() {
                1 => String::new(),
                n => format!(" (and {} more faulty lines)", n - 1),
            };
            format!("{first}{more}")
        })?;
        let report = self
            .db
            .write(|tx| self.apply_rows(tx, &rows))
            .map_err(|e| e.to_string())?;
        for u in &report.removed {
            self.evict(u);
            self.location.clear_number(u);
            self.directory.remove(u);
        }
        Ok(report)
    }

    fn apply_rows(&self, tx: &Transaction<'_>, rows: &[CsvRow]) -> Result<ImportReport> {
        let mut report = ImportReport {
            rows: rows.len(),
            ..ImportReport::default()
        };
        let now = now_ms();
        for row in rows {
            let owner: Option<Option<u32>> = tx
                .query_row(
                    "SELECT account_id FROM numbers WHERE number = ?1",
                    [&row.number],
                    |r| r.get(0),
                )
                .optional()?;
            match owner.flatten() {
                None => {
                    numbers::ensure_free(tx, &row.number)?;
                    let mut name = format!("number {}", row.number);
                    let clash: Option<u32> = tx
                        .query_row("SELECT id FROM accounts WHERE name = ?1", [&name], |r| {
                            r.get(0)
                        })
                        .optional()?;
                    if clash.is_some() {
                        name = format!("{name} (imported {now})");
                    }
                    tx.execute(
                        "INSERT INTO accounts (name, state, channels, tariff, created_ms, updated_ms)
                         VALUES (?1, 'enabled', ?2, 'metered', ?3, ?3)",
                        params![name, row.channels, now],
                    )?;
                    let id = tx.last_insert_rowid() as u32;
                    numbers::link(tx, &row.number, id, "main")?;
                    report.accounts_created += 1;
                }
                Some(id) => {
                    if let Some(ch) = row.channels {
                        tx.execute(
                            "UPDATE accounts SET channels = ?1 WHERE id = ?2 AND channels IS NOT ?1",
                            params![ch, id],
                        )?;
                    }
                }
            }
            let md5 = Algorithm::Md5.ha1(&row.user, &self.realm, &row.password);
            let existing: Option<(String, String, String, String)> = tx
                .query_row(
                    "SELECT number, realm, ha1_md5, source FROM log_ons WHERE user = ?1",
                    [&row.user],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let sha = || Algorithm::Sha256.ha1(&row.user, &self.realm, &row.password);
            match existing {
                None => {
                    tx.execute(
                        "INSERT INTO log_ons (user, number, realm, ha1_md5, ha1_sha256, source, created_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, 'csv', ?6)",
                        params![row.user, row.number, self.realm, md5, sha(), now],
                    )?;
                    report.log_ons_created += 1;
                }
                Some((_, _, _, source)) if source != "csv" => {
                    return Err(ProvisionError::conflict(
                        format!(
                            "log-on {:?} in the CSV was created through the API; the import does not overwrite it",
                            row.user
                        ),
                        "remove the line from the CSV, or delete the log-on through the API",
                    ));
                }
                Some((number, realm, old_md5, _)) => {
                    if number != row.number || realm != self.realm || old_md5 != md5 {
                        tx.execute(
                            "UPDATE log_ons SET number = ?1, realm = ?2, ha1_md5 = ?3, ha1_sha256 = ?4
                             WHERE user = ?5",
                            params![row.number, self.realm, md5, sha(), row.user],
                        )?;
                        report.log_ons_changed += 1;
                    }
                }
            }
        }
        let listed: std::collections::HashSet<&str> =
            rows.iter().map(|r| r.user.as_str()).collect();
        let csv_users: Vec<String> = tx
            .prepare("SELECT user FROM log_ons WHERE source = 'csv'")?
            .query_map([], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        for u in csv_users {
            if !listed.contains(u.as_str()) {
                tx.execute("DELETE FROM log_ons WHERE user = ?1", [&u])?;
                report.removed.push(u);
            }
        }
        Ok(report)
    }
}
