//! The SQLite store: one file, `STORE/mgw.sqlite`, for accounts, numbers, log-ons, keepalive
//! profiles, licence settings and call records.
//!
//! WAL journal mode (readers never block the writer), `synchronous = FULL` (a commit is on disk
//! before the API answers, so acknowledged writes survive `kill -9` and power loss alike; admin
//! writes are rare, the fsync per commit costs nothing that matters), foreign keys enforced.
//! The schema is migrated forward at open by `PRAGMA user_version`; a file from a newer mgw is
//! refused rather than guessed at.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OpenFlags, Transaction};

pub const FILE: &str = "mgw.sqlite";

/// Forward migrations; `user_version` is the number applied. Never edit one that shipped:
/// append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the account model of seed 003 and the log-ons of seeds 000/002.
    r#"
    CREATE TABLE accounts (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        state       TEXT NOT NULL CHECK (state IN ('pending', 'enabled', 'disabled')),
        channels    INTEGER CHECK (channels IS NULL OR channels >= 0),
        tariff      TEXT NOT NULL DEFAULT 'metered' CHECK (tariff IN ('flat', 'metered')),
        created_ms  INTEGER NOT NULL,
        updated_ms  INTEGER NOT NULL
    );
    -- Every number the gateway serves; linked to at most one account, as its main number or
    -- an extra one. A main number is exclusive to its account until the account is deleted.
    CREATE TABLE numbers (
        number      TEXT PRIMARY KEY,
        account_id  INTEGER REFERENCES accounts(id),
        role        TEXT CHECK (role IN ('main', 'extra')),
        created_ms  INTEGER NOT NULL,
        CHECK ((account_id IS NULL) = (role IS NULL))
    );
    CREATE UNIQUE INDEX one_main_number ON numbers(account_id) WHERE role = 'main';
    CREATE INDEX numbers_by_account ON numbers(account_id);
    CREATE TABLE account_networks (
        account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        cidr        TEXT NOT NULL,
        PRIMARY KEY (account_id, cidr)
    );
    CREATE TABLE caller_id_rules (
        id          INTEGER PRIMARY KEY,
        account_id  INTEGER NOT NULL REFERENCES accounts(id),
        prefix      TEXT NOT NULL,
        present     TEXT NOT NULL
    );
    CREATE TABLE profiles (
        name            TEXT PRIMARY KEY,
        min_expires     INTEGER NOT NULL,
        max_expires     INTEGER NOT NULL,
        default_expires INTEGER NOT NULL,
        CHECK (min_expires <= default_expires AND default_expires <= max_expires)
    );
    CREATE TABLE log_ons (
        id          INTEGER PRIMARY KEY,
        user        TEXT NOT NULL UNIQUE,
        number      TEXT NOT NULL REFERENCES numbers(number),
        realm       TEXT NOT NULL,
        ha1_md5     TEXT NOT NULL,
        ha1_sha256  TEXT NOT NULL,
        profile     TEXT REFERENCES profiles(name),
        source      TEXT NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'csv')),
        created_ms  INTEGER NOT NULL
    );
    CREATE INDEX log_ons_by_number ON log_ons(number);
    CREATE TABLE settings (
        key         TEXT PRIMARY KEY,
        value       TEXT NOT NULL
    );
    CREATE TABLE licence_resets (
        at_ms       INTEGER NOT NULL,
        freed       INTEGER NOT NULL,
        by_role     TEXT NOT NULL
    );
    CREATE TABLE cdrs (
        id          INTEGER PRIMARY KEY,
        account_id  INTEGER REFERENCES accounts(id) ON DELETE CASCADE,
        caller      TEXT NOT NULL,
        callee      TEXT NOT NULL,
        direction   TEXT NOT NULL,
        started_ms  INTEGER NOT NULL,
        answered_ms INTEGER,
        ended_ms    INTEGER NOT NULL,
        cause       TEXT NOT NULL,
        status      INTEGER
    );
    CREATE INDEX cdrs_by_account ON cdrs(account_id, started_ms);
    "#,
    // 2: what the call switch records of each call (issue 6).
    r#"
    ALTER TABLE cdrs ADD COLUMN call_id TEXT;
    ALTER TABLE cdrs ADD COLUMN caller_user TEXT;
    ALTER TABLE cdrs ADD COLUMN callee_user TEXT;
    ALTER TABLE cdrs ADD COLUMN callee_account INTEGER;
    ALTER TABLE cdrs ADD COLUMN dialled TEXT;
    ALTER TABLE cdrs ADD COLUMN emergency INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE cdrs ADD COLUMN q850 INTEGER;
    ALTER TABLE cdrs ADD COLUMN codec_caller TEXT;
    ALTER TABLE cdrs ADD COLUMN codec_callee TEXT;
    ALTER TABLE cdrs ADD COLUMN packets_caller INTEGER;
    ALTER TABLE cdrs ADD COLUMN packets_callee INTEGER;
    CREATE INDEX cdrs_by_started ON cdrs(started_ms);
    "#,
    // 3: upstream trunks configured through the admin API (issue 8); the config is the JSON
    // the API took, with the keys of a [[trunk]] section.
    r#"
    CREATE TABLE trunks (
        name       TEXT PRIMARY KEY,
        config     TEXT NOT NULL,
        updated_ms INTEGER NOT NULL
    );
    "#,
    // 4: the line or trunk of a call record (issues 7 and 8).
    r#"
    ALTER TABLE cdrs ADD COLUMN trunk TEXT;
    "#,
];

/// Why the store could not be opened or used.
#[derive(Debug)]
pub enum DbError {
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// The file was written by a newer mgw: its schema is unknown here.
    TooNew {
        path: PathBuf,
        version: i64,
    },
    Migrate {
        version: usize,
        source: rusqlite::Error,
    },
    Sql(rusqlite::Error),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::Open { path, source } => write!(
                f,
                "store: cannot open {}: {source}; check that store.dir is writable and the file is a SQLite database",
                path.display()
            ),
            DbError::TooNew { path, version } => write!(
                f,
                "store: {} has schema version {version}, newer than this mgw knows ({}); run the newer mgw or restore a backup",
                path.display(),
                MIGRATIONS.len()
            ),
            DbError::Migrate { version, source } => {
                write!(f, "store: schema migration {version} failed: {source}")
            }
            DbError::Sql(e) => write!(f, "store: {e}"),
        }
    }
}

impl std::error::Error for DbError {}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> DbError {
        DbError::Sql(e)
    }
}

/// The open database. One connection behind a mutex: writes are rare admin calls, and SQLite
/// serialises writers anyway.
pub struct Db {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Db {
    pub fn open(dir: &Path) -> Result<Db, DbError> {
        let path = dir.join(FILE);
        let open_err = |source| DbError::Open {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        migrate(&mut conn, &path)?;
        Ok(Db {
            conn: Mutex::new(conn),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` in one transaction, committed only if it returns `Ok`.
    pub fn write<T, E: From<rusqlite::Error>>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.conn();
        // IMMEDIATE: the write lock is taken at BEGIN, so a transaction that reads before it
        // writes cannot fail with SQLITE_BUSY when another connection (the call record writer)
        // committed in between; it waits (busy_timeout) instead.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), DbError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > MIGRATIONS.len() as i64 {
        return Err(DbError::TooNew {
            path: path.to_path_buf(),
            version,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let v = i + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .map_err(|source| DbError::Migrate { version: v, source })?;
        tx.pragma_update(None, "user_version", v as i64)?;
        tx.commit()
            .map_err(|source| DbError::Migrate { version: v, source })?;
        log::info!("store: schema migrated to version {v} ({})", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_migrates_and_reopens() {
        let dir = std::env::temp_dir().join(format!("mgw-db-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join(FILE));
        let db = Db::open(&dir).unwrap();
        let mode: String = db
            .conn()
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        db.conn()
            .execute("INSERT INTO settings (key, value) VALUES ('k', 'v')", [])
            .unwrap();
        drop(db);
        let db = Db::open(&dir).unwrap();
        let v: String = db
            .conn()
            .query_row("SELECT value FROM settings WHERE key = 'k'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(v, "v");
        db.conn().pragma_update(None, "user_version", 99).unwrap();
        drop(db);
        assert!(matches!(
            Db::open(&dir),
            Err(DbError::TooNew { version: 99, .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
