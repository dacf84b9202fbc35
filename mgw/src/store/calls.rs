//! Calls in progress (for `GET /api/v1/calls`) and the writer of call records into SQLite.
//!
//! SIP workers report their calls' starts, answers and ends ([`CallEvent`]); the active table
//! is a lock-free map every worker writes its own calls into, and finished records go over a
//! channel to one writer thread with its own SQLite connection, which batches them into one
//! transaction per burst, so a burst of hang-ups costs one fsync.

use std::path::Path;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use mgw_core::call::{CallEvent, CallRecord};
use rusqlite::params;

use super::db::{Db, DbError};

/// Calls in progress, by mgw's call id.
#[derive(Default)]
pub struct ActiveCalls(papaya::HashMap<String, CallRecord>);

impl ActiveCalls {
    pub fn list(&self) -> Vec<CallRecord> {
        let mut v: Vec<CallRecord> = self.0.pin().values().cloned().collect();
        v.sort_by_key(|c| c.started_ms);
        v
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where a SIP worker sends its call events.
#[derive(Clone)]
pub struct CallLog {
    active: Arc<ActiveCalls>,
    records: mpsc::Sender<Option<CallRecord>>,
}

impl CallLog {
    pub fn record(&self, e: CallEvent) {
        match e {
            CallEvent::Started(r) => {
                self.active.0.pin().insert(r.id.clone(), r);
            }
            CallEvent::Answered { id, at_ms } => {
                let m = self.active.0.pin();
                if let Some(r) = m.get(&id) {
                    let mut r = r.clone();
                    r.answered_ms = Some(at_ms);
                    m.insert(id, r);
                }
            }
            CallEvent::Ended(r) => {
                self.active.0.pin().remove(&r.id);
                // After shutdown the writer is gone and the process is stopping.
                let _ = self.records.send(Some(r));
            }
        }
    }
}

pub struct CallRecorder {
    log: CallLog,
    thread: Option<JoinHandle<()>>,
}

impl CallRecorder {
    /// Opens its own connection to the store and starts the writer.
    pub fn start(dir: &Path) -> Result<CallRecorder, String> {
        let db = Db::open(dir).map_err(|e: DbError| e.to_string())?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("mgw-cdr".into())
            .spawn(move || writer(db, rx))
            .map_err(|e| format!("starting the call record writer: {e}"))?;
        Ok(CallRecorder {
            log: CallLog {
                active: Arc::new(ActiveCalls::default()),
                records: tx,
            },
            thread: Some(thread),
        })
    }

    pub fn log(&self) -> CallLog {
        self.log.clone()
    }

    pub fn active(&self) -> Arc<ActiveCalls> {
        self.log.active.clone()
    }

    /// Writes what is queued and stops.
    pub fn close(mut self) {
        let _ = self.log.records.send(None);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn writer(db: Db, rx: mpsc::Receiver<Option<CallRecord>>) {
    loop {
        let Ok(first) = rx.recv() else { return };
        // A short window gathers a burst into one transaction.
        std::thread::sleep(Duration::from_millis(20));
        let mut stop = first.is_none();
        let mut batch: Vec<CallRecord> = first.into_iter().collect();
        for r in rx.try_iter() {
            match r {
                Some(r) => batch.push(r),
                None => stop = true,
            }
        }
        if !batch.is_empty() {
            if let Err(e) = db.write(|tx| {
                for r in &batch {
                    insert(tx, r)?;
                }
                Ok::<_, rusqlite::Error>(())
            }) {
                log::error!("call records: {} not stored: {e}", batch.len());
            }
        }
        if stop {
            return;
        }
    }
}

fn insert(tx: &rusqlite::Transaction<'_>, r: &CallRecord) -> rusqlite::Result<()> {
    // An account deleted meanwhile leaves the record without one rather than losing it.
    // Cached statements: a batch writes many records, and preparing both statements anew for
    // each was a third of the writer's time (docs/performance.md, call records 31 -> 19 µs
    // per call at 1500 calls/s).
    let account: Option<u32> = tx
        .prepare_cached("SELECT id FROM accounts WHERE id = ?1")?
        .query_row(params![r.caller_account], |row| row.get(0))
        .ok();
    tx.prepare_cached(
        "INSERT INTO cdrs (account_id, caller, callee, direction, started_ms, answered_ms,
                           ended_ms, cause, status, call_id, caller_user, callee_user,
                           callee_account, dialled, emergency, q850, codec_caller, codec_callee,
                           packets_caller, packets_callee, trunk)
         VALUES (?1, ?2, ?3, ?20, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                 ?16, ?17, ?18, ?19, ?21)",
    )?
    .execute(params![
        account,
        r.caller_number,
        r.callee,
        r.started_ms as i64,
        r.answered_ms.map(|a| a as i64),
        r.ended_ms.unwrap_or(r.started_ms) as i64,
        r.cause,
        r.status,
        r.id,
        r.caller_user,
        r.callee_user,
        r.callee_account,
        r.dialled,
        r.emergency,
        r.q850,
        r.media.codec_a,
        r.media.codec_b,
        r.media.packets_a_to_b as i64,
        r.media.packets_b_to_a as i64,
        if r.inbound { "inbound" } else { "outbound" },
        r.trunk,
    ])?;
    Ok(())
}
