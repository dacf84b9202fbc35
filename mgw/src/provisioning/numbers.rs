//! Numbers: every call number the gateway serves. A number is free, or linked to exactly one
//! account as its main number (exclusive, freed only by deleting the account) or as an extra
//! number (linked and unlinked at will).

use mgw_core::directory::valid_number;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;

use super::{audit, now_ms, ProvisionError, Provisioning, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NumberRecord {
    pub number: String,
    pub account_id: Option<u32>,
    pub account: Option<String>,
    /// `main`, `extra`, or absent when free.
    pub role: Option<String>,
    pub log_ons: Vec<String>,
}

pub(super) fn bad_number(n: &str) -> ProvisionError {
    ProvisionError::invalid_fix(
        format!("{n:?} is not a number"),
        "use digits, optionally with + * # (at most 32 characters)",
    )
}

/// Creates `number` if unknown; fails if another account holds it.
pub(super) fn ensure_free(tx: &Transaction<'_>, number: &str) -> Result<()> {
    let owner: Option<Option<u32>> = tx
        .query_row(
            "SELECT account_id FROM numbers WHERE number = ?1",
            [number],
            |r| r.get(0),
        )
        .optional()?;
    match owner {
        None => {
            tx.execute(
                "INSERT INTO numbers (number, created_ms) VALUES (?1, ?2)",
                params![number, now_ms()],
            )?;
            Ok(())
        }
        Some(None) => Ok(()),
        Some(Some(acc)) => {
            let name: String =
                tx.query_row("SELECT name FROM accounts WHERE id = ?1", [acc], |r| {
                    r.get(0)
                })?;
            Err(ProvisionError::conflict(
                format!("number {number} is already linked to account {acc} ({name:?})"),
                "choose a free number (GET /api/v1/numbers?free=true), or unlink it from that account first",
            ))
        }
    }
}

pub(super) fn link(tx: &Transaction<'_>, number: &str, account: u32, role: &str) -> Result<()> {
    tx.execute(
        "UPDATE numbers SET account_id = ?1, role = ?2 WHERE number = ?3",
        params![account, role, number],
    )?;
    Ok(())
}

fn record(conn: &Connection, number: &str) -> Result<NumberRecord> {
    let (account_id, role): (Option<u32>, Option<String>) = conn
        .query_row(
            "SELECT account_id, role FROM numbers WHERE number = ?1",
            [number],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .ok_or_else(|| {
            ProvisionError::NotFound(format!(
                "number {number} is not known; GET /api/v1/numbers lists them"
            ))
        })?;
    let account = match account_id {
        Some(id) => conn
            .query_row("SELECT name FROM accounts WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?,
        None => None,
    };
    let log_ons = conn
        .prepare("SELECT user FROM log_ons WHERE number = ?1 ORDER BY user")?
        .query_map([number], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    Ok(NumberRecord {
        number: number.to_string(),
        account_id,
        account,
        role,
        log_ons,
    })
}

impl Provisioning {
    /// Every number; only the free ones with `free_only`.
    pub fn list_numbers(&self, free_only: bool) -> Result<Vec<NumberRecord>> {
        let conn = self.db.conn();
        let all: Vec<String> = conn
            .prepare(if free_only {
                "SELECT number FROM numbers WHERE account_id IS NULL ORDER BY number"
            } else {
                "SELECT number FROM numbers ORDER BY number"
            })?
            .query_map([], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        all.iter().map(|n| record(&conn, n)).collect()
    }

    pub fn get_number(&self, number: &str) -> Result<NumberRecord> {
        record(&self.db.conn(), number)
    }

    /// Adds a free number to the pool.
    pub fn create_number(&self, number: &str) -> Result<NumberRecord> {
        if !valid_number(number) {
            return Err(bad_number(number));
        }
        self.db.write(|tx| -> Result<()> {
            let exists: Option<String> = tx
                .query_row(
                    "SELECT number FROM numbers WHERE number = ?1",
                    [number],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_some() {
                return Err(ProvisionError::conflict(
                    format!("number {number} exists already"),
                    "GET /api/v1/numbers/NUMBER shows who holds it",
                ));
            }
            tx.execute(
                "INSERT INTO numbers (number, created_ms) VALUES (?1, ?2)",
                params![number, now_ms()],
            )?;
            Ok(())
        })?;
        audit(format_args!("number {number} created"));
        self.get_number(number)
    }

    /// Removes a free number from the pool.
    pub fn delete_number(&self, number: &str) -> Result<NumberRecord> {
        let before = self.get_number(number)?;
        if let Some(acc) = before.account_id {
            return Err(ProvisionError::conflict(
                format!(
                    "number {number} is the {} number of account {acc}",
                    before.role.as_deref().unwrap_or("linked")
                ),
                "unlink it from the account first (an extra number), or delete the account (its main number)",
            ));
        }
        self.db.write(|tx| -> Result<()> {
            tx.execute("DELETE FROM numbers WHERE number = ?1", [number])?;
            Ok(())
        })?;
        audit(format_args!("number {number} deleted"));
        Ok(before)
    }

    /// Links `number` (created if unknown, else it must be free) to the account as an extra
    /// number.
    pub fn link_number(&self, key: &str, number: &str) -> Result<super::AccountRecord> {
        if !valid_number(number) {
            return Err(bad_number(number));
        }
        let id = self.db.write(|tx| -> Result<u32> {
            let id = Self::account_id(tx, key)?;
            ensure_free(tx, number)?;
            link(tx, number, id, "extra")?;
            Ok(id)
        })?;
        audit(format_args!("number {number} linked to account {id}"));
        self.get_account(&id.to_string())
    }

    /// Unlinks an extra number; the main number cannot be, and a number log-ons use must be
    /// cleared of them first.
    pub fn unlink_number(&self, key: &str, number: &str) -> Result<super::AccountRecord> {
        let id = self.db.write(|tx| -> Result<u32> {
            let id = Self::account_id(tx, key)?;
            let role: Option<String> = tx
                .query_row(
                    "SELECT role FROM numbers WHERE number = ?1 AND account_id = ?2",
                    params![number, id],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            match role.as_deref() {
                None => {
                    return Err(ProvisionError::NotFound(format!(
                        "number {number} is not linked to account {id}"
                    )))
                }
                Some("main") => {
                    return Err(ProvisionError::conflict(
                        format!("{number} is the main number of account {id}: it stays bound until the account is deleted"),
                        "delete the account to free its main number",
                    ))
                }
                Some(_) => {}
            }
            let users: Vec<String> = tx
                .prepare("SELECT user FROM log_ons WHERE number = ?1 ORDER BY user")?
                .query_map([number], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?;
            if !users.is_empty() {
                return Err(ProvisionError::Conflict {
                    error: format!(
                        "number {number} still has log-ons: {}",
                        users.join(", ")
                    ),
                    blockers: users,
                    fix: Some("move those log-ons to another number or delete them first".into()),
                });
            }
            let rules: u32 = tx.query_row(
                "SELECT count(*) FROM caller_id_rules WHERE account_id = ?1 AND present = ?2",
                params![id, number],
                |r| r.get(0),
            )?;
            if rules > 0 {
                return Err(ProvisionError::conflict(
                    format!("{rules} caller-ID rule(s) of account {id} present {number}"),
                    "remove those caller-ID rules first",
                ));
            }
            tx.execute(
                "UPDATE numbers SET account_id = NULL, role = NULL WHERE number = ?1",
                [number],
            )?;
            Ok(id)
        })?;
        audit(format_args!("number {number} unlinked from account {id}"));
        self.get_account(&id.to_string())
    }
}
