//! The binding journal: every registration change appended as one JSON line to
//! `STORE/bindings.journal`, replayed at start-up so a restart (also `kill -9`) does not force
//! every phone to re-register. Bindings come back with their remaining lifetime; expired ones
//! are dropped on load.
//!
//! Workers never touch the file: they hand changes to a writer thread through a channel, which
//! appends them in batches. A line reaches the kernel's page cache within one batch (well under
//! a second), which is what survives `kill -9`; power loss is covered by the fsync the writer
//! does every second and at shutdown. After load, and whenever the journal has grown to several
//! times the live bindings, it is rewritten as a snapshot (write to a temporary file, fsync,
//! rename), so it stays bounded.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mgw_core::registrar::{Binding, EventKind, RegistrationEvent, Transport};
use serde::Serialize;
use serde_json::Value;

const FILE: &str = "bindings.journal";
/// Rewrite once the journal holds this many lines per live binding (and at least 10 000).
const COMPACT_FACTOR: usize = 4;
/// After the first change arrives, the writer gathers more for this long, so a registration
/// storm costs one wake-up and one write per batch instead of per REGISTER. It bounds how old
/// the newest change can be when a `kill -9` comes.
const BATCH_WINDOW: Duration = Duration::from_millis(20);

/// One change, as the writer thread receives it.
pub enum JournalOp {
    Put { user: Box<str>, binding: Binding },
    Del { user: Box<str>, contact: Box<str> },
}

impl JournalOp {
    /// Takes the event by value: the binding moves into the journal instead of being copied.
    pub fn from_event(e: RegistrationEvent) -> JournalOp {
        match e.kind {
            EventKind::Added | EventKind::Refreshed => JournalOp::Put {
                user: e.user,
                binding: e.binding,
            },
            EventKind::Removed | EventKind::Expired => JournalOp::Del {
                user: e.user,
                contact: e.binding.contact,
            },
        }
    }
}

/// Live bindings by user, then contact.
type Live = HashMap<Box<str>, HashMap<Box<str>, Binding>>;

/// The bindings a journal held at start-up, as (user, binding).
pub type Restored = Vec<(Box<str>, Binding)>;

pub struct Journal {
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

enum Msg {
    Op(JournalOp),
    Stop,
}

/// Why the journal could not be opened; names the file and the fix.
#[derive(Debug)]
pub struct JournalError {
    pub path: PathBuf,
    pub error: io::Error,
}

impl std::fmt::Display for JournalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "store.dir: {}: {} (check that store.dir is writable by mgw)",
            self.path.display(),
            self.error
        )
    }
}

impl Journal {
    /// Loads the live bindings (those not expired at `now_ms`), compacts the file and starts
    /// the writer. Lines that cannot be read (a torn last line after a crash) are skipped.
    pub fn open(dir: &Path, now_ms: u64) -> Result<(Journal, Restored), JournalError> {
        let path = dir.join(FILE);
        let err = |error| JournalError {
            path: path.clone(),
            error,
        };
        let mut live = Live::new();
        match File::open(&path) {
            Ok(f) => {
                for line in BufReader::new(f).lines() {
                    let Ok(line) = line else { break };
                    apply_line(&mut live, &line);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        for contacts in live.values_mut() {
            contacts.retain(|_, b| b.expires_at_ms > now_ms);
        }
        live.retain(|_, c| !c.is_empty());
        let count = write_snapshot(dir, &live).map_err(err)?;
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(err)?;
        let loaded: Restored = live
            .iter()
            .flat_map(|(u, c)| c.values().map(move |b| (u.clone(), b.clone())))
            .collect();
        let (tx, rx) = mpsc::channel();
        let dir = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("mgw-journal".into())
            .spawn(move || writer(dir, file, live, count, rx))
            .map_err(err)?;
        Ok((
            Journal {
                tx,
                thread: Some(thread),
            },
            loaded,
        ))
    }

    /// A sender workers can clone.
    pub fn sender(&self) -> JournalSender {
        JournalSender(self.tx.clone())
    }

    /// Writes everything queued, fsyncs and stops the writer.
    pub fn close(mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Clone)]
pub struct JournalSender(mpsc::Sender<Msg>);

impl JournalSender {
    pub fn send(&self, op: JournalOp) {
        // After close the writer is gone and the process is stopping: nothing left to keep.
        let _ = self.0.send(Msg::Op(op));
    }
}

fn writer(dir: PathBuf, mut file: File, mut live: Live, mut lines: usize, rx: mpsc::Receiver<Msg>) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut last_sync = Instant::now();
    let mut dirty = false;
    loop {
        let first = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(m) => Some(m),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(Msg::Stop),
        };
        if first.is_some() {
            std::thread::sleep(BATCH_WINDOW);
        }
        let mut stop = false;
        for m in first.into_iter().chain(rx.try_iter()) {
            match m {
                Msg::Stop => stop = true,
                Msg::Op(op) => {
                    let line = encode(&op);
                    apply(&mut live, op);
                    buf.extend_from_slice(line.as_bytes());
                    buf.push(b'\n');
                    lines += 1;
                }
            }
        }
        if !buf.is_empty() {
            if let Err(e) = file.write_all(&buf) {
                log::error!(
                    "binding journal: write failed: {e}; bindings may not survive a restart"
                );
            }
            buf.clear();
            dirty = true;
        }
        let live_count: usize = live.values().map(HashMap::len).sum();
        if lines > (live_count * COMPACT_FACTOR).max(10_000) {
            match write_snapshot(&dir, &live).and_then(|n| {
                OpenOptions::new()
                    .append(true)
                    .open(dir.join(FILE))
                    .map(|f| (n, f))
            }) {
                Ok((n, f)) => {
                    lines = n;
                    file = f;
                }
                Err(e) => log::error!("binding journal: compaction failed: {e}"),
            }
        }
        if dirty && (stop || last_sync.elapsed() >= Duration::from_secs(1)) {
            let _ = file.sync_data();
            last_sync = Instant::now();
            dirty = false;
        }
        if stop {
            return;
        }
    }
}

/// Writes all live bindings to a fresh journal atomically; returns its line count.
fn write_snapshot(dir: &Path, live: &Live) -> io::Result<usize> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut f = io::BufWriter::new(File::create(&tmp)?);
    let mut n = 0;
    for (user, contacts) in live {
        for b in contacts.values() {
            let op = JournalOp::Put {
                user: user.clone(),
                binding: b.clone(),
            };
            writeln!(f, "{}", encode(&op))?;
            n += 1;
        }
    }
    let f = f.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(FILE))?;
    Ok(n)
}

fn apply(live: &mut Live, op: JournalOp) {
    match op {
        JournalOp::Put { user, binding } => {
            live.entry(user)
                .or_default()
                .insert(binding.contact.clone(), binding);
        }
        JournalOp::Del { user, contact } => {
            if let Some(c) = live.get_mut(&user) {
                c.remove(&contact);
                if c.is_empty() {
                    live.remove(&user);
                }
            }
        }
    }
}

fn apply_line(live: &mut Live, line: &str) {
    let Ok(v) = serde_json::from_str::<Value>(line) else {
        return;
    };
    if let Some(op) = decode(&v) {
        apply(live, op);
    }
}

/// One journal line, borrowed from the op (no intermediate `Value`).
#[derive(Serialize)]
struct Line<'a> {
    op: &'static str,
    user: &'a str,
    contact: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    put: Option<PutFields<'a>>,
}

#[derive(Serialize)]
struct PutFields<'a> {
    instance: Option<&'a str>,
    reg_id: Option<u32>,
    path: Vec<&'a str>,
    q: u16,
    call_id: &'a str,
    cseq: u32,
    expires_at_ms: u64,
    updated_ms: u64,
    source: String,
    transport: &'static str,
    user_agent: &'a str,
}

fn encode(op: &JournalOp) -> String {
    let line = match op {
        JournalOp::Put { user, binding: b } => Line {
            op: "put",
            user,
            contact: &b.contact,
            put: Some(PutFields {
                instance: b.instance.as_deref(),
                reg_id: b.reg_id,
                path: b.path.iter().map(|p| &**p).collect(),
                q: b.q,
                call_id: &b.call_id,
                cseq: b.cseq,
                expires_at_ms: b.expires_at_ms,
                updated_ms: b.updated_ms,
                source: b.source.to_string(),
                transport: b.transport.as_str(),
                user_agent: &b.user_agent,
            }),
        },
        JournalOp::Del { user, contact } => Line {
            op: "del",
            user,
            contact,
            put: None,
        },
    };
    // Serializing plain strings and numbers cannot fail.
    serde_json::to_string(&line).unwrap_or_default()
}

fn decode(line: &Value) -> Option<JournalOp> {
    let user: Box<str> = line.get("user")?.as_str()?.into();
    let contact = line.get("contact")?.as_str()?;
    let v = line.get("put").unwrap_or(line);
    let s = |k: &str| v.get(k).and_then(Value::as_str);
    match line.get("op")?.as_str()? {
        "del" => Some(JournalOp::Del {
            user,
            contact: contact.into(),
        }),
        "put" => Some(JournalOp::Put {
            user,
            binding: Binding {
                contact: contact.into(),
                instance: s("instance").map(Into::into),
                reg_id: v
                    .get("reg_id")
                    .and_then(Value::as_u64)
                    .and_then(|r| u32::try_from(r).ok()),
                path: v
                    .get("path")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(Into::into).collect())
                    .unwrap_or_default(),
                q: v.get("q")
                    .and_then(Value::as_u64)
                    .and_then(|q| u16::try_from(q).ok())
                    .unwrap_or(1000),
                call_id: s("call_id")?.into(),
                cseq: u32::try_from(v.get("cseq")?.as_u64()?).ok()?,
                expires_at_ms: v.get("expires_at_ms")?.as_u64()?,
                updated_ms: v.get("updated_ms").and_then(Value::as_u64).unwrap_or(0),
                source: s("source")?.parse::<SocketAddr>().ok()?,
                transport: match s("transport")? {
                    "tcp" => Transport::Tcp,
                    _ => Transport::Udp,
                },
                user_agent: s("user_agent").unwrap_or("").into(),
            },
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(contact: &str, expires_at_ms: u64) -> Binding {
        Binding {
            contact: contact.into(),
            instance: Some("<urn:uuid:1>".into()),
            reg_id: Some(1),
            path: vec!["<sip:edge;lr>".into()].into_boxed_slice(),
            q: 500,
            call_id: "c1".into(),
            cseq: 7,
            expires_at_ms,
            updated_ms: 1,
            source: "192.0.2.1:5060".parse().unwrap(),
            transport: Transport::Tcp,
            user_agent: "baresip".into(),
        }
    }

    #[test]
    fn survives_reopen_and_drops_expired() {
        let dir = std::env::temp_dir().join(format!("mgw-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (j, loaded) = Journal::open(&dir, 1000).unwrap();
        assert!(loaded.is_empty());
        let tx = j.sender();
        tx.send(JournalOp::Put {
            user: "alice".into(),
            binding: binding("sip:a@h", 50_000),
        });
        tx.send(JournalOp::Put {
            user: "alice".into(),
            binding: binding("sip:a2@h", 2_000),
        });
        tx.send(JournalOp::Put {
            user: "bob".into(),
            binding: binding("sip:b@h", 50_000),
        });
        tx.send(JournalOp::Del {
            user: "bob".into(),
            contact: "sip:b@h".into(),
        });
        j.close();
        // A torn last line, as a crash in mid-write leaves it.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join(FILE))
            .unwrap();
        f.write_all(b"{\"op\":\"put\",\"user\":\"x\"").unwrap();
        drop(f);
        let (j, loaded) = Journal::open(&dir, 3_000).unwrap();
        assert_eq!(
            loaded.len(),
            1,
            "a2 expired, bob removed, torn line skipped"
        );
        assert_eq!(&*loaded[0].0, "alice");
        assert_eq!(loaded[0].1, binding("sip:a@h", 50_000));
        j.close();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
