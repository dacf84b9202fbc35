//! SIP accounts (seed 003): name, exclusive main number, extra numbers, voice channels, tariff,
//! allowed networks, caller-ID rules, and the life cycle pending -> enabled <-> disabled ->
//! deleted.

use mgw_core::cidr::Cidr;
use mgw_core::directory::{valid_number, AccountState};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use super::{audit, now_ms, numbers, ProvisionError, Provisioning, Result};
use crate::clock::rfc3339;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountRecord {
    pub id: u32,
    pub name: String,
    pub state: &'static str,
    pub main_number: String,
    pub extra_numbers: Vec<String>,
    /// Voice channels; `None` = unlimited.
    pub channels: Option<u32>,
    /// Calls in progress counted against the channels.
    pub channels_busy: u32,
    pub tariff: String,
    pub allowed_networks: Vec<String>,
    pub caller_id_rules: Vec<CallerIdRule>,
    pub log_ons: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Which of the account's numbers is presented to callees whose number starts with
/// `prefix` (`""` = every call). Without a matching rule the main number is presented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerIdRule {
    #[serde(default, skip_deserializing)]
    pub id: u32,
    #[serde(default)]
    pub prefix: String,
    pub present: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    pub name: String,
    pub main_number: String,
    #[serde(default)]
    pub channels: Option<u32>,
    #[serde(default)]
    pub tariff: Option<String>,
    #[serde(default)]
    pub allowed_networks: Vec<String>,
}

/// Fields to change; absent fields stay. `channels: null` means unlimited.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateAccount {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, with = "double_option")]
    pub channels: Option<Option<u32>>,
    #[serde(default)]
    pub tariff: Option<String>,
    #[serde(default)]
    pub allowed_networks: Option<Vec<String>>,
    /// Refused with a clear message: a main number is bound until the account is deleted.
    #[serde(default)]
    pub main_number: Option<String>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(ProvisionError::invalid_fix(
            format!("account name {name:?} is empty, longer than 100 characters or has control characters"),
            "give the account a short printable name",
        ));
    }
    Ok(())
}

fn check_tariff(t: &str) -> Result<()> {
    match t {
        "flat" | "metered" => Ok(()),
        _ => Err(ProvisionError::invalid_fix(
            format!("tariff {t:?} is not known"),
            "use \"flat\" or \"metered\"",
        )),
    }
}

fn parse_networks(list: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for n in list {
        let c: Cidr = n
            .parse()
            .map_err(|e| ProvisionError::invalid(format!("allowed_networks: {e}")))?;
        let s = c.to_string();
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

pub(super) fn networks(conn: &Connection, id: u32) -> Result<Vec<String>> {
    Ok(conn
        .prepare("SELECT cidr FROM account_networks WHERE account_id = ?1 ORDER BY cidr")?
        .query_map([id], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?)
}

/// The caller-ID rules of account `id`, oldest first.
pub(super) fn caller_id_rules(conn: &Connection, id: u32) -> Result<Vec<CallerIdRule>> {
    Ok(conn
        .prepare(
            "SELECT id, prefix, present FROM caller_id_rules WHERE account_id = ?1 ORDER BY id",
        )?
        .query_map([id], |r| {
            Ok(CallerIdRule {
                id: r.get(0)?,
                prefix: r.get(1)?,
                present: r.get(2)?,
            })
        })?
        .collect::<std::result::Result<_, _>>()?)
}

fn set_networks(tx: &Transaction<'_>, id: u32, list: &[String]) -> Result<()> {
    tx.execute("DELETE FROM account_networks WHERE account_id = ?1", [id])?;
    for n in list {
        tx.execute(
            "INSERT INTO account_networks (account_id, cidr) VALUES (?1, ?2)",
            params![id, n],
        )?;
    }
    Ok(())
}

impl Provisioning {
    pub fn list_accounts(&self) -> Result<Vec<AccountRecord>> {
        let conn = self.db.conn();
        let ids: Vec<u32> = conn
            .prepare("SELECT id FROM accounts ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        ids.into_iter()
            .map(|id| self.account_with(&conn, id))
            .collect()
    }

    pub fn get_account(&self, key: &str) -> Result<AccountRecord> {
        let conn = self.db.conn();
        let id = Self::account_id(&conn, key)?;
        self.account_with(&conn, id)
    }

    fn account_with(&self, conn: &Connection, id: u32) -> Result<AccountRecord> {
        let (name, state, channels, tariff, created, updated) = conn.query_row(
            "SELECT name, state, channels, tariff, created_ms, updated_ms FROM accounts WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<u32>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            },
        )?;
        let mut main_number = String::new();
        let mut extra_numbers = Vec::new();
        let mut stmt =
            conn.prepare("SELECT number, role FROM numbers WHERE account_id = ?1 ORDER BY number")?;
        for row in stmt.query_map([id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })? {
            let (n, role) = row?;
            if role == "main" {
                main_number = n;
            } else {
                extra_numbers.push(n);
            }
        }
        let caller_id_rules = caller_id_rules(conn, id)?;
        let log_ons = conn
            .prepare(
                "SELECT l.user FROM log_ons l JOIN numbers n ON n.number = l.number
                 WHERE n.account_id = ?1 ORDER BY l.user",
            )?
            .query_map([id], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        let state = AccountState::parse(&state).unwrap_or(AccountState::Disabled);
        Ok(AccountRecord {
            id,
            name,
            state: state.as_str(),
            main_number,
            extra_numbers,
            channels,
            channels_busy: self.directory.account(id).map_or(0, |a| a.channels.busy()),
            tariff,
            allowed_networks: networks(conn, id)?,
            caller_id_rules,
            log_ons,
            created_at: rfc3339(created as u64),
            updated_at: rfc3339(updated as u64),
        })
    }

    /// Seed 003: the main number must be free (not linked to another account); the new account
    /// is pending until enabled.
    pub fn create_account(&self, new: &NewAccount) -> Result<AccountRecord> {
        self.create_account_in_state(new, AccountState::Pending)
    }

    pub(super) fn create_account_in_state(
        &self,
        new: &NewAccount,
        state: AccountState,
    ) -> Result<AccountRecord> {
        check_name(&new.name)?;
        let tariff = new.tariff.clone().unwrap_or_else(|| "metered".into());
        check_tariff(&tariff)?;
        let nets = parse_networks(&new.allowed_networks)?;
        if !valid_number(&new.main_number) {
            return Err(numbers::bad_number(&new.main_number));
        }
        let id = self.db.write(|tx| -> Result<u32> {
            let taken: Option<u32> = tx
                .query_row(
                    "SELECT id FROM accounts WHERE name = ?1",
                    [&new.name],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(other) = taken {
                return Err(ProvisionError::conflict(
                    format!(
                        "an account named {:?} exists already (id {other})",
                        new.name
                    ),
                    "choose another name",
                ));
            }
            numbers::ensure_free(tx, &new.main_number)?;
            let now = now_ms();
            tx.execute(
                "INSERT INTO accounts (name, state, channels, tariff, created_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![new.name, state.as_str(), new.channels, tariff, now],
            )?;
            let id = tx.last_insert_rowid() as u32;
            numbers::link(tx, &new.main_number, id, "main")?;
            set_networks(tx, id, &nets)?;
            Ok(id)
        })?;
        self.sync_account(id)?;
        audit(format_args!(
            "account {id} {:?} created ({}) with main number {}",
            new.name,
            state.as_str(),
            new.main_number
        ));
        self.get_account(&id.to_string())
    }

    pub fn update_account(&self, key: &str, up: &UpdateAccount) -> Result<AccountRecord> {
        if let Some(n) = &up.main_number {
            let conn = self.db.conn();
            let id = Self::account_id(&conn, key)?;
            let current: String = conn.query_row(
                "SELECT number FROM numbers WHERE account_id = ?1 AND role = 'main'",
                [id],
                |r| r.get(0),
            )?;
            if *n != current {
                return Err(ProvisionError::conflict(
                    format!("the main number {current} is bound to the account until the account is deleted"),
                    "add the other number as an extra number (POST /api/v1/accounts/ID/numbers), or delete the account and create a new one",
                ));
            }
        }
        if let Some(name) = &up.name {
            check_name(name)?;
        }
        if let Some(t) = &up.tariff {
            check_tariff(t)?;
        }
        let nets = up
            .allowed_networks
            .as_deref()
            .map(parse_networks)
            .transpose()?;
        let id = self.db.write(|tx| -> Result<u32> {
            let id = Self::account_id(tx, key)?;
            if let Some(name) = &up.name {
                let other: Option<u32> = tx
                    .query_row(
                        "SELECT id FROM accounts WHERE name = ?1 AND id != ?2",
                        params![name, id],
                        |r| r.get(0),
                    )
                    .optional()?;
                if other.is_some() {
                    return Err(ProvisionError::conflict(
                        format!("another account is named {name:?}"),
                        "choose another name",
                    ));
                }
                tx.execute(
                    "UPDATE accounts SET name = ?1 WHERE id = ?2",
                    params![name, id],
                )?;
            }
            if let Some(ch) = up.channels {
                tx.execute(
                    "UPDATE accounts SET channels = ?1 WHERE id = ?2",
                    params![ch, id],
                )?;
            }
            if let Some(t) = &up.tariff {
                tx.execute(
                    "UPDATE accounts SET tariff = ?1 WHERE id = ?2",
                    params![t, id],
                )?;
            }
            if let Some(n) = &nets {
                set_networks(tx, id, n)?;
            }
            tx.execute(
                "UPDATE accounts SET updated_ms = ?1 WHERE id = ?2",
                params![now_ms(), id],
            )?;
            Ok(id)
        })?;
        self.sync_account(id)?;
        audit(format_args!("account {id} updated"));
        self.get_account(&id.to_string())
    }

    /// Pending or disabled -> enabled.
    pub fn enable_account(&self, key: &str) -> Result<AccountRecord> {
        self.set_state(key, AccountState::Enabled)
    }

    /// Enabled or pending -> disabled: registration is suspended, so every binding of its
    /// log-ons is dropped (and their licences freed).
    pub fn disable_account(&self, key: &str) -> Result<AccountRecord> {
        self.set_state(key, AccountState::Disabled)
    }

    fn set_state(&self, key: &str, state: AccountState) -> Result<AccountRecord> {
        let id = self.db.write(|tx| -> Result<u32> {
            let id = Self::account_id(tx, key)?;
            tx.execute(
                "UPDATE accounts SET state = ?1, updated_ms = ?2 WHERE id = ?3",
                params![state.as_str(), now_ms(), id],
            )?;
            Ok(id)
        })?;
        self.sync_account(id)?;
        if state == AccountState::Disabled {
            let mut dropped = 0;
            for l in self.directory.log_ons_of(id) {
                dropped += self.evict(&l.user);
            }
            audit(format_args!(
                "account {id} disabled; {dropped} binding(s) dropped"
            ));
        } else {
            audit(format_args!("account {id} {}", state.as_str()));
        }
        self.get_account(&id.to_string())
    }

    /// Seed 003: only a disabled account, with no extra numbers and no caller-ID rules, may be
    /// deleted; deletion erases its data (log-ons, networks, call records) and frees its main
    /// number.
    pub fn delete_account(&self, key: &str) -> Result<AccountRecord> {
        let before = self.get_account(key)?;
        let mut blockers = Vec::new();
        if before.state != "disabled" {
            blockers.push(format!(
                "the account is {}; disable it first (POST /api/v1/accounts/{}/disable)",
                before.state, before.id
            ));
        }
        if !before.extra_numbers.is_empty() {
            blockers.push(format!(
                "extra numbers are linked: {}; unlink them (DELETE /api/v1/accounts/{}/numbers/NUMBER)",
                before.extra_numbers.join(", "),
                before.id
            ));
        }
        if !before.caller_id_rules.is_empty() {
            blockers.push(format!(
                "{} caller-ID rule(s) exist; remove them (DELETE /api/v1/accounts/{}/caller-id-rules/ID)",
                before.caller_id_rules.len(),
                before.id
            ));
        }
        if !blockers.is_empty() {
            return Err(ProvisionError::Conflict {
                error: format!(
                    "account {} ({:?}) cannot be deleted: {}",
                    before.id,
                    before.name,
                    blockers.join("; ")
                ),
                blockers,
                fix: Some("resolve every blocker listed, then delete again".into()),
            });
        }
        let id = before.id;
        let users = before.log_ons.clone();
        self.db.write(|tx| -> Result<()> {
            tx.execute(
                "DELETE FROM log_ons WHERE number IN (SELECT number FROM numbers WHERE account_id = ?1)",
                [id],
            )?;
            tx.execute(
                "UPDATE numbers SET account_id = NULL, role = NULL WHERE account_id = ?1",
                [id],
            )?;
            tx.execute("DELETE FROM accounts WHERE id = ?1", [id])?;
            Ok(())
        })?;
        for u in &users {
            self.evict(u);
            self.location.clear_number(u);
            self.directory.remove(u);
        }
        self.directory.remove_account(id);
        audit(format_args!(
            "account {id} {:?} deleted; main number {} is free",
            before.name, before.main_number
        ));
        Ok(before)
    }

    pub fn add_caller_id_rule(&self, key: &str, rule: &CallerIdRule) -> Result<AccountRecord> {
        if !rule.prefix.is_empty() && !valid_number(&rule.prefix) {
            return Err(numbers::bad_number(&rule.prefix));
        }
        let id = self.db.write(|tx| -> Result<u32> {
            let id = Self::account_id(tx, key)?;
            let owner: Option<Option<u32>> = tx
                .query_row("SELECT account_id FROM numbers WHERE number = ?1", [&rule.present], |r| r.get(0))
                .optional()?;
            if owner.flatten() != Some(id) {
                return Err(ProvisionError::invalid_fix(
                    format!("number {:?} is not one of this account's numbers, so it cannot be presented", rule.present),
                    "present the main number or an extra number of the account",
                ));
            }
            tx.execute(
                "INSERT INTO caller_id_rules (account_id, prefix, present) VALUES (?1, ?2, ?3)",
                params![id, rule.prefix, rule.present],
            )?;
            Ok(id)
        })?;
        self.sync_account(id)?;
        audit(format_args!(
            "account {id}: caller-ID rule {:?} -> {}",
            rule.prefix, rule.present
        ));
        self.get_account(&id.to_string())
    }

    pub fn remove_caller_id_rule(&self, key: &str, rule_id: u32) -> Result<AccountRecord> {
        let id = self.db.write(|tx| -> Result<u32> {
            let id = Self::account_id(tx, key)?;
            let n = tx.execute(
                "DELETE FROM caller_id_rules WHERE id = ?1 AND account_id = ?2",
                params![rule_id, id],
            )?;
            if n == 0 {
                return Err(ProvisionError::NotFound(format!(
                    "account {id} has no caller-ID rule {rule_id}"
                )));
            }
            Ok(id)
        })?;
        self.sync_account(id)?;
        audit(format_args!(
            "account {id}: caller-ID rule {rule_id} removed"
        ));
        self.get_account(&id.to_string())
    }

    /// The number an outgoing call of `account` to `callee` presents: the longest matching
    /// caller-ID rule, else the main number (seed 003).
    pub fn presented_number(&self, account: u32, callee: &str) -> Result<Option<String>> {
        let conn = self.db.conn();
        let rule: Option<String> = conn
            .query_row(
                "SELECT present FROM caller_id_rules WHERE account_id = ?1 AND ?2 LIKE prefix || '%'
                 ORDER BY length(prefix) DESC, id LIMIT 1",
                params![account, callee],
                |r| r.get(0),
            )
            .optional()?;
        if rule.is_some() {
            return Ok(rule);
        }
        Ok(conn
            .query_row(
                "SELECT number FROM numbers WHERE account_id = ?1 AND role = 'main'",
                [account],
                |r| r.get(0),
            )
            .optional()?)
    }
}
