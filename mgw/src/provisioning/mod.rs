//! Accounts, numbers, log-ons and keepalive profiles: the rules of seeds 000/002/003 applied to
//! the SQLite store, with every committed change pushed into the lock-free [`Directory`] the
//! SIP workers read.
//!
//! Each operation is one SQLite transaction; the directory is updated only after the commit,
//! so the SIP path never sees a change the store could still lose. Side effects on live state
//! (dropping a disabled account's bindings, freeing a deleted log-on's licence) follow the
//! directory update.

mod accounts;
pub mod api;
mod error;
mod import;
mod licences;
mod log_ons;
mod numbers;
mod profiles;

pub use accounts::{AccountRecord, CallerIdRule, NewAccount, UpdateAccount};
pub use error::ProvisionError;
pub use licences::{HolderView, LicenceStatus};
pub use log_ons::{LogOnRecord, NewLogOn, UpdateLogOn};
pub use numbers::NumberRecord;
pub use profiles::Profile;

use std::sync::Arc;

use mgw_core::directory::{Account, AccountState, Directory, LogOn};
use mgw_core::licence::LicencePool;
use mgw_core::registrar::{ExpiryBounds, LocationTable};
use rusqlite::{Connection, OptionalExtension};

use crate::store::db::Db;
use crate::store::journal::{JournalOp, JournalSender};

/// An account's caller-ID rules as the directory holds them: callee prefix -> number shown.
type CallerIdRules = Vec<(Box<str>, Box<str>)>;

pub type Result<T> = std::result::Result<T, ProvisionError>;

/// The provisioning service; one per gateway, shared by the admin API threads.
pub struct Provisioning {
    db: Arc<Db>,
    /// Digest realm the HA1s are computed for (`sip.domain`).
    realm: String,
    directory: Arc<Directory>,
    location: Arc<LocationTable>,
    licences: Arc<LicencePool>,
    journal: Option<JournalSender>,
    /// The registrar's bounds: the profile of log-ons without one.
    default_bounds: ExpiryBounds,
}

impl Provisioning {
    pub fn new(
        db: Arc<Db>,
        realm: &str,
        directory: Arc<Directory>,
        location: Arc<LocationTable>,
        licences: Arc<LicencePool>,
        journal: Option<JournalSender>,
        default_bounds: ExpiryBounds,
    ) -> Provisioning {
        Provisioning {
            db,
            realm: realm.to_string(),
            directory,
            location,
            licences,
            journal,
            default_bounds,
        }
    }

    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    pub fn location(&self) -> &Arc<LocationTable> {
        &self.location
    }

    pub fn licences(&self) -> &Arc<LicencePool> {
        &self.licences
    }

    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// Fills the directory from the store (at start), in three bulk queries. Log-ons hashed
    /// for another realm cannot authenticate; they are named in the log so their passwords can
    /// be set again.
    pub fn load(&self) -> Result<(usize, usize)> {
        let conn = self.db.conn();
        let mut networks: std::collections::HashMap<u32, Vec<mgw_core::cidr::Cidr>> =
            std::collections::HashMap::new();
        let mut stmt = conn.prepare("SELECT account_id, cidr FROM account_networks")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?)))? {
            let (id, cidr) = row?;
            if let Ok(c) = cidr.parse() {
                networks.entry(id).or_default().push(c);
            }
        }
        let mut rules: std::collections::HashMap<u32, CallerIdRules> =
            std::collections::HashMap::new();
        let mut stmt =
            conn.prepare("SELECT account_id, prefix, present FROM caller_id_rules ORDER BY id")?;
        for row in stmt.query_map([], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })? {
            let (id, prefix, present) = row?;
            rules
                .entry(id)
                .or_default()
                .push((prefix.into(), present.into()));
        }
        let mut accounts = 0;
        let mut stmt = conn.prepare(
            "SELECT a.id, a.name, a.state, a.channels, n.number FROM accounts a
             JOIN numbers n ON n.account_id = a.id AND n.role = 'main'",
        )?;
        for row in stmt.query_map([], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<u32>>(3)?,
                r.get::<_, String>(4)?,
            ))
        })? {
            let (id, name, state, channels, main) = row?;
            let state = AccountState::parse(&state).unwrap_or(AccountState::Disabled);
            let nets = networks.remove(&id).unwrap_or_default();
            let mut account = Account::new(id, &name, &main, state, channels, nets);
            account.caller_id_rules = rules.remove(&id).unwrap_or_default();
            self.directory.put_account(account);
            accounts += 1;
        }
        let mut stale = Vec::new();
        self.for_each_log_on(&conn, None, |log_on, realm| {
            if realm != self.realm {
                stale.push(log_on.user.to_string());
            }
        })?;
        if !stale.is_empty() {
            log::warn!(
                "{} log-on(s) have passwords hashed for another realm than sip.domain {:?} and cannot log on until their password is set again: {}",
                stale.len(),
                self.realm,
                stale.join(", ")
            );
        }
        Ok((accounts, self.directory.len()))
    }

    /// Pushes the log-ons of `account` (all with `None`) into the directory and the location
    /// table's number index, calling `seen` with each and the realm it was hashed for.
    fn for_each_log_on(
        &self,
        conn: &Connection,
        account: Option<u32>,
        mut seen: impl FnMut(&LogOn, &str),
    ) -> Result<()> {
        let mut stmt = conn.prepare(
            "SELECT l.id, l.user, l.number, l.realm, l.ha1_md5, l.ha1_sha256,
                    p.min_expires, p.max_expires, p.default_expires, n.account_id
             FROM log_ons l JOIN numbers n ON n.number = l.number
             LEFT JOIN profiles p ON p.name = l.profile
             WHERE ?1 IS NULL OR n.account_id = ?1",
        )?;
        let rows = stmt.query_map([account], |r| {
            let bounds = match (r.get(6)?, r.get(7)?, r.get(8)?) {
                (Some(min), Some(max), Some(default)) => Some(ExpiryBounds { min, max, default }),
                _ => None,
            };
            Ok((
                LogOn {
                    id: r.get(0)?,
                    user: r.get::<_, String>(1)?.into(),
                    number: r.get::<_, String>(2)?.into(),
                    account: r.get(9)?,
                    ha1_md5: r.get::<_, String>(4)?.into(),
                    ha1_sha256: r.get::<_, String>(5)?.into(),
                    keepalive: bounds,
                },
                r.get::<_, String>(3)?,
            ))
        })?;
        for row in rows {
            let (mut log_on, realm) = row?;
            seen(&log_on, &realm);
            if realm != self.realm {
                // Unusable hashes: the log-on stays listed but cannot authenticate.
                log_on.ha1_md5 = "-".into();
                log_on.ha1_sha256 = "-".into();
            }
            self.location.set_number(&log_on.user, &log_on.number);
            self.directory.insert(log_on);
        }
        Ok(())
    }

    /// Pushes account `id` and its log-ons from the store into the directory (with its
    /// caller-ID rules: the switch reads them at every outgoing call).
    fn sync_account(&self, id: u32) -> Result<()> {
        let conn = self.db.conn();
        self.sync_account_with(&conn, id)
    }

    fn sync_account_with(&self, conn: &Connection, id: u32) -> Result<()> {
        let row = conn
            .query_row(
                "SELECT a.name, a.state, a.channels, n.number FROM accounts a
                 JOIN numbers n ON n.account_id = a.id AND n.role = 'main' WHERE a.id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<u32>>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()?;
        let Some((name, state, channels, main)) = row else {
            self.directory.remove_account(id);
            return Ok(());
        };
        let networks = accounts::networks(conn, id)?
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        let state = AccountState::parse(&state).unwrap_or(AccountState::Disabled);
        let mut account = Account::new(id, &name, &main, state, channels, networks);
        account.caller_id_rules = accounts::caller_id_rules(conn, id)?
            .into_iter()
            .map(|r| (r.prefix.into(), r.present.into()))
            .collect();
        self.directory.put_account(account);
        self.for_each_log_on(conn, Some(id), |_, _| {})
    }

    /// Ends every registration of `user` and frees its licence: the account was disabled or
    /// the log-on deleted. Returns the bindings dropped.
    pub(crate) fn evict(&self, user: &str) -> usize {
        let mut dropped = 0;
        if let Some(record) = self.location.remove(user) {
            dropped = record.bindings.len();
            if let Some(j) = &self.journal {
                for b in record.bindings.iter() {
                    j.send(JournalOp::Del {
                        user: user.into(),
                        contact: b.contact.clone(),
                    });
                }
            }
        }
        if let Some(l) = self.directory.get(user) {
            self.licences.release(l.id);
        }
        dropped
    }

    /// The account `key` names: its id, or its name.
    fn account_id(conn: &Connection, key: &str) -> Result<u32> {
        let found = match key.parse::<u32>() {
            Ok(id) => conn
                .query_row("SELECT id FROM accounts WHERE id = ?1", [id], |r| r.get(0))
                .optional()?,
            Err(_) => None,
        };
        let found = match found {
            Some(id) => Some(id),
            None => conn
                .query_row("SELECT id FROM accounts WHERE name = ?1", [key], |r| {
                    r.get(0)
                })
                .optional()?,
        };
        found.ok_or_else(|| {
            ProvisionError::NotFound(format!(
                "no account with id or name {key:?}; GET /api/v1/accounts lists them"
            ))
        })
    }
}

/// Records a change for the audit trail in the log (who did what is the token's role).
fn audit(what: std::fmt::Arguments<'_>) {
    log::info!("provisioning: {what}");
}

fn now_ms() -> i64 {
    crate::clock::unix_ms() as i64
}
