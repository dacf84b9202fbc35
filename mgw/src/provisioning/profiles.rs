//! Keepalive profiles (seed 000: "the internal clock for automatic log-out is determined by the
//! profile assigned" to the device): named bounds for the registration interval. A log-on
//! without a profile gets the registrar's configured bounds, shown as the profile `default`.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{audit, ProvisionError, Provisioning, Result};

/// The name the configured bounds are listed under; it cannot be created or changed here.
pub const DEFAULT_PROFILE: &str = "default";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    /// Shorter requests get 423 Interval Too Brief.
    pub min_expires: u32,
    /// Longer requests are shortened to this: the longest a phone may stay silent before it is
    /// logged out and its licence freed.
    pub max_expires: u32,
    /// When the phone asks for none.
    pub default_expires: u32,
    #[serde(default, skip_deserializing)]
    pub log_ons: u32,
}

fn check(p: &Profile) -> Result<()> {
    let name_ok = !p.name.is_empty()
        && p.name.len() <= 64
        && p.name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !name_ok {
        return Err(ProvisionError::invalid_fix(
            format!("profile name {:?} is not usable", p.name),
            "use 1-64 letters, digits, - _ or .",
        ));
    }
    if p.name == DEFAULT_PROFILE {
        return Err(ProvisionError::conflict(
            "the profile \"default\" is the registrar's configuration",
            "change [registrar] min_expires/max_expires/default_expires in the config, or use another name",
        ));
    }
    if !(p.min_expires >= 1
        && p.min_expires <= p.default_expires
        && p.default_expires <= p.max_expires
        && p.max_expires <= 86_400)
    {
        return Err(ProvisionError::invalid_fix(
            format!(
                "profile {:?}: need 1 <= min_expires ({}) <= default_expires ({}) <= max_expires ({}) <= 86400",
                p.name, p.min_expires, p.default_expires, p.max_expires
            ),
            "pick bounds in that order, in seconds",
        ));
    }
    Ok(())
}

impl Provisioning {
    pub fn list_profiles(&self) -> Result<Vec<Profile>> {
        let conn = self.db.conn();
        let unassigned: u32 = conn.query_row(
            "SELECT count(*) FROM log_ons WHERE profile IS NULL",
            [],
            |r| r.get(0),
        )?;
        let mut out = vec![Profile {
            name: DEFAULT_PROFILE.into(),
            min_expires: self.default_bounds.min,
            max_expires: self.default_bounds.max,
            default_expires: self.default_bounds.default,
            log_ons: unassigned,
        }];
        let mut stmt = conn.prepare(
            "SELECT p.name, p.min_expires, p.max_expires, p.default_expires,
                    (SELECT count(*) FROM log_ons l WHERE l.profile = p.name)
             FROM profiles p ORDER BY p.name",
        )?;
        for row in stmt.query_map([], |r| {
            Ok(Profile {
                name: r.get(0)?,
                min_expires: r.get(1)?,
                max_expires: r.get(2)?,
                default_expires: r.get(3)?,
                log_ons: r.get(4)?,
            })
        })? {
            out.push(row?);
        }
        Ok(out)
    }

    pub fn get_profile(&self, name: &str) -> Result<Profile> {
        self.list_profiles()?
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| {
                ProvisionError::NotFound(format!(
                    "no keepalive profile {name:?}; GET /api/v1/profiles lists them"
                ))
            })
    }

    pub fn create_profile(&self, p: &Profile) -> Result<Profile> {
        check(p)?;
        self.db.write(|tx| -> Result<()> {
            let exists: Option<String> = tx
                .query_row("SELECT name FROM profiles WHERE name = ?1", [&p.name], |r| {
                    r.get(0)
                })
                .optional()?;
            if exists.is_some() {
                return Err(ProvisionError::conflict(
                    format!("profile {:?} exists already", p.name),
                    "change it with PUT /api/v1/profiles/NAME",
                ));
            }
            tx.execute(
                "INSERT INTO profiles (name, min_expires, max_expires, default_expires) VALUES (?1, ?2, ?3, ?4)",
                params![p.name, p.min_expires, p.max_expires, p.default_expires],
            )?;
            Ok(())
        })?;
        audit(format_args!("profile {:?} created", p.name));
        self.get_profile(&p.name)
    }

    /// Changes a profile's bounds; registrations already granted keep their expiry until the
    /// phone's next REGISTER.
    pub fn update_profile(&self, name: &str, p: &Profile) -> Result<Profile> {
        let p = Profile {
            name: name.to_string(),
            ..p.clone()
        };
        check(&p)?;
        let accounts: Vec<u32> = self.db.write(|tx| -> Result<Vec<u32>> {
            let n = tx.execute(
                "UPDATE profiles SET min_expires = ?1, max_expires = ?2, default_expires = ?3 WHERE name = ?4",
                params![p.min_expires, p.max_expires, p.default_expires, name],
            )?;
            if n == 0 {
                return Err(ProvisionError::NotFound(format!("no keepalive profile {name:?}")));
            }
            Ok(tx
                .prepare(
                    "SELECT DISTINCT n.account_id FROM log_ons l JOIN numbers n ON n.number = l.number
                     WHERE l.profile = ?1",
                )?
                .query_map([name], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?)
        })?;
        for a in accounts {
            self.sync_account(a)?;
        }
        audit(format_args!("profile {name:?} updated"));
        self.get_profile(name)
    }

    pub fn delete_profile(&self, name: &str) -> Result<Profile> {
        let before = self.get_profile(name)?;
        if name == DEFAULT_PROFILE {
            return Err(ProvisionError::conflict(
                "the profile \"default\" is the registrar's configuration and cannot be deleted",
                "change [registrar] in the config instead",
            ));
        }
        if before.log_ons > 0 {
            return Err(ProvisionError::conflict(
                format!("profile {name:?} is assigned to {} log-on(s)", before.log_ons),
                "assign those log-ons another profile (PATCH /api/v1/log-ons/USER {\"profile\": null}) first",
            ));
        }
        self.db.write(|tx| -> Result<()> {
            tx.execute("DELETE FROM profiles WHERE name = ?1", [name])?;
            Ok(())
        })?;
        audit(format_args!("profile {name:?} deleted"));
        Ok(before)
    }
}
