//! SIP log-ons (seeds 000/002): a user/password pair attached to a number. Several log-ons may
//! share a number (several phones on one line). Only HA1 digests of the password are stored.

use mgw_core::auth::Algorithm;
use mgw_core::directory::valid_user;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{audit, now_ms, ProvisionError, Provisioning, Result};
use crate::clock::rfc3339;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogOnRecord {
    pub id: u32,
    pub user: String,
    pub number: String,
    pub account_id: u32,
    pub account: String,
    /// Keepalive profile; `None` = the registrar's defaults.
    pub profile: Option<String>,
    /// `api` or `csv` (imported from `accounts.import_csv`, updated at every start).
    pub source: String,
    /// Live registrations.
    pub bindings: usize,
    pub licence: bool,
    pub created_at: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLogOn {
    pub user: String,
    pub password: String,
    pub number: String,
    #[serde(default)]
    pub profile: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateLogOn {
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub number: Option<String>,
    /// `null` clears the profile (back to the registrar's defaults).
    #[serde(default, deserialize_with = "some_or_null")]
    pub profile: Option<Option<String>>,
}

fn some_or_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

pub(super) fn check_password(password: &str) -> Result<()> {
    if password.is_empty() || password.len() > 128 || password.chars().any(char::is_control) {
        return Err(ProvisionError::invalid_fix(
            "password is empty, longer than 128 characters or has control characters",
            "choose a printable password of 1 to 128 characters",
        ));
    }
    Ok(())
}

fn check_user(user: &str) -> Result<()> {
    if !valid_user(user) {
        return Err(ProvisionError::invalid_fix(
            format!("user name {user:?} cannot be a SIP user part"),
            "use 1-64 letters, digits or - _ . ! ~ * ' ( ) & = + $ ; ? /",
        ));
    }
    Ok(())
}

/// The account a number is linked to; log-ons attach only to linked numbers.
fn account_of_number(conn: &Connection, number: &str) -> Result<u32> {
    let owner: Option<Option<u32>> = conn
        .query_row(
            "SELECT account_id FROM numbers WHERE number = ?1",
            [number],
            |r| r.get(0),
        )
        .optional()?;
    match owner {
        Some(Some(id)) => Ok(id),
        Some(None) => Err(ProvisionError::invalid_fix(
            format!("number {number} is not linked to an account"),
            "create an account with it as main number, or link it to one as an extra number",
        )),
        None => Err(ProvisionError::invalid_fix(
            format!("number {number} is not known"),
            "create an account with it as main number first (POST /api/v1/accounts)",
        )),
    }
}

fn check_profile(conn: &Connection, profile: Option<&str>) -> Result<()> {
    let Some(p) = profile else { return Ok(()) };
    let found: Option<String> = conn
        .query_row("SELECT name FROM profiles WHERE name = ?1", [p], |r| {
            r.get(0)
        })
        .optional()?;
    if found.is_none() {
        return Err(ProvisionError::invalid_fix(
            format!("keepalive profile {p:?} does not exist"),
            "create it first (POST /api/v1/profiles) or leave the profile out for the defaults",
        ));
    }
    Ok(())
}

impl Provisioning {
    pub fn list_log_ons(&self) -> Result<Vec<LogOnRecord>> {
        let conn = self.db.conn();
        let users: Vec<String> = conn
            .prepare("SELECT user FROM log_ons ORDER BY user")?
            .query_map([], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        users.iter().map(|u| self.log_on_with(&conn, u)).collect()
    }

    pub fn get_log_on(&self, user: &str) -> Result<LogOnRecord> {
        self.log_on_with(&self.db.conn(), user)
    }

    fn log_on_with(&self, conn: &Connection, user: &str) -> Result<LogOnRecord> {
        let row = conn
            .query_row(
                "SELECT l.id, l.number, n.account_id, a.name, l.profile, l.source, l.created_ms
                 FROM log_ons l JOIN numbers n ON n.number = l.number
                 JOIN accounts a ON a.id = n.account_id WHERE l.user = ?1",
                [user],
                |r| {
                    Ok((
                        r.get::<_, u32>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, u32>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, i64>(6)?,
                    ))
                },
            )
            .optional()?;
        let Some((id, number, account_id, account, profile, source, created)) = row else {
            return Err(ProvisionError::NotFound(format!(
                "no log-on {user:?}; GET /api/v1/log-ons lists them"
            )));
        };
        let now = crate::clock::unix_ms();
        Ok(LogOnRecord {
            id,
            user: user.to_string(),
            number,
            account_id,
            account,
            profile,
            source,
            bindings: self.location.get(user).map_or(0, |r| {
                r.bindings.iter().filter(|b| b.expires_at_ms > now).count()
            }),
            licence: self.licences.holds(id),
            created_at: rfc3339(created as u64),
        })
    }

    pub fn create_log_on(&self, new: &NewLogOn) -> Result<LogOnRecord> {
        self.upsert_log_on(new, "api", false)
    }

    /// Creates the log-on, or (with `replace`) updates the one of that name: the CSV import.
    pub(super) fn upsert_log_on(
        &self,
        new: &NewLogOn,
        source: &str,
        replace: bool,
    ) -> Result<LogOnRecord> {
        check_user(&new.user)?;
        check_password(&new.password)?;
        let md5 = Algorithm::Md5.ha1(&new.user, &self.realm, &new.password);
        let sha = Algorithm::Sha256.ha1(&new.user, &self.realm, &new.password);
        let (account, old_account) = self.db.write(|tx| -> Result<(u32, Option<u32>)> {
            let account = account_of_number(tx, &new.number)?;
            check_profile(tx, new.profile.as_deref())?;
            let existing: Option<String> = tx
                .query_row("SELECT number FROM log_ons WHERE user = ?1", [&new.user], |r| {
                    r.get(0)
                })
                .optional()?;
            let old_account = match &existing {
                Some(_) if !replace => {
                    return Err(ProvisionError::conflict(
                        format!("log-on {:?} exists already", new.user),
                        "choose another user name, or change this one with PATCH /api/v1/log-ons/USER",
                    ))
                }
                Some(n) => Some(account_of_number(tx, n)?),
                None => None,
            };
            if existing.is_some() {
                tx.execute(
                    "UPDATE log_ons SET number = ?1, realm = ?2, ha1_md5 = ?3, ha1_sha256 = ?4,
                     profile = ?5, source = ?6 WHERE user = ?7",
                    params![new.number, self.realm, md5, sha, new.profile, source, new.user],
                )?;
            } else {
                tx.execute(
                    "INSERT INTO log_ons (user, number, realm, ha1_md5, ha1_sha256, profile, source, created_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![new.user, new.number, self.realm, md5, sha, new.profile, source, now_ms()],
                )?;
            }
            Ok((account, old_account))
        })?;
        self.resync_log_on(&new.user, old_account, account)?;
        audit(format_args!(
            "log-on {:?} on number {} ({source})",
            new.user, new.number
        ));
        self.get_log_on(&new.user)
    }

    pub fn update_log_on(&self, user: &str, up: &UpdateLogOn) -> Result<LogOnRecord> {
        if let Some(p) = &up.password {
            check_password(p)?;
        }
        let (old_account, account) = self.db.write(|tx| -> Result<(u32, u32)> {
            let number: String = tx
                .query_row("SELECT number FROM log_ons WHERE user = ?1", [user], |r| r.get(0))
                .optional()?
                .ok_or_else(|| ProvisionError::NotFound(format!("no log-on {user:?}")))?;
            let old_account = account_of_number(tx, &number)?;
            let mut account = old_account;
            if let Some(n) = &up.number {
                account = account_of_number(tx, n)?;
                tx.execute("UPDATE log_ons SET number = ?1 WHERE user = ?2", params![n, user])?;
            }
            if let Some(p) = &up.password {
                let md5 = Algorithm::Md5.ha1(user, &self.realm, p);
                let sha = Algorithm::Sha256.ha1(user, &self.realm, p);
                tx.execute(
                    "UPDATE log_ons SET realm = ?1, ha1_md5 = ?2, ha1_sha256 = ?3, source = 'api' WHERE user = ?4",
                    params![self.realm, md5, sha, user],
                )?;
            }
            if let Some(p) = &up.profile {
                check_profile(tx, p.as_deref())?;
                tx.execute("UPDATE log_ons SET profile = ?1 WHERE user = ?2", params![p, user])?;
            }
            Ok((old_account, account))
        })?;
        self.resync_log_on(user, Some(old_account), account)?;
        audit(format_args!("log-on {user:?} updated"));
        self.get_log_on(user)
    }

    /// Deletes a log-on: its registrations end and its licence is freed at once.
    pub fn delete_log_on(&self, user: &str) -> Result<LogOnRecord> {
        let before = self.get_log_on(user)?;
        self.db.write(|tx| -> Result<()> {
            tx.execute("DELETE FROM log_ons WHERE user = ?1", [user])?;
            Ok(())
        })?;
        self.evict(user);
        self.location.clear_number(user);
        self.directory.remove(user);
        audit(format_args!("log-on {user:?} deleted"));
        Ok(before)
    }

    fn resync_log_on(&self, user: &str, old_account: Option<u32>, account: u32) -> Result<()> {
        // A log-on that moved to another account leaves its old registrations behind.
        if old_account.is_some_and(|a| a != account) {
            self.evict(user);
        }
        self.sync_account(account)
    }
}
