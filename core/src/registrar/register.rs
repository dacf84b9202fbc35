//! Processing a REGISTER whose sender is already authenticated (RFC 3261 section 10.3, steps
//! 5 to 8), and expiring bindings whose keepalive did not come.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;

use super::binding::{Binding, Record, Transport};
use super::expiry::{ExpiryEntry, ExpiryWheel};
use super::location::LocationTable;
use super::{EventKind, RegistrationEvent};
use crate::sip::{lex, HeaderName, Message, NameAddr};

/// Registrar settings; defaults are what a PBX deployment expects of desk phones.
#[derive(Clone, Debug)]
pub struct RegistrarConfig {
    /// Shorter requested expiries get 423 with this Min-Expires. Default 60 s.
    pub min_expires: u32,
    /// Longer requested expiries are shortened to this. Default 3600 s.
    pub max_expires: u32,
    /// When the phone asks for none. Default 3600 s.
    pub default_expires: u32,
    /// Bindings per log-on; a new one beyond it replaces the least recently refreshed.
    /// Default 10.
    pub max_contacts: usize,
    /// Grant up to this many percent less than asked, spread per contact, so phones that all
    /// registered at once (after a power cut) do not all refresh at once. Default 0.
    pub expiry_spread_pct: u8,
    /// Most expiries handled per worker loop turn, so a mass expiry never stalls a worker
    /// (about 1.5 µs each with the table removal: 256 keep a turn near 0.4 ms). Default 256.
    pub expiry_budget: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts: 10,
            expiry_spread_pct: 0,
            expiry_budget: 256,
        }
    }
}

/// How long a binding may last: a keepalive profile (seed 000: "the internal clock for automatic
/// log-out is determined by the profile assigned" to the device).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExpiryBounds {
    /// Shorter requests get 423 with this Min-Expires.
    pub min: u32,
    /// Longer requests are shortened to this.
    pub max: u32,
    /// When the phone asks for none.
    pub default: u32,
}

impl RegistrarConfig {
    /// The bounds for log-ons without a profile of their own.
    pub fn bounds(&self) -> ExpiryBounds {
        ExpiryBounds {
            min: self.min_expires,
            max: self.max_expires,
            default: self.default_expires,
        }
    }
}

/// A binding as the 200 OK lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactView {
    pub contact: Box<str>,
    pub expires_in: u32,
    pub instance: Option<Box<str>>,
    pub reg_id: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// 200 with every current binding of the log-on, and the Path it stored.
    Ok {
        contacts: Vec<ContactView>,
        path: Vec<Box<str>>,
    },
    /// 423 Interval Too Brief with Min-Expires.
    IntervalTooBrief(u32),
    /// 400 with the fault in the reason phrase.
    Invalid(&'static str),
    /// The same Call-ID with a CSeq not above the stored one: step 7 says the update fails.
    OutOfOrder,
}

/// Where and how a REGISTER arrived.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    pub source: SocketAddr,
    pub transport: Transport,
    /// Milliseconds since the UNIX epoch (bindings outlive the process).
    pub now_ms: u64,
}

/// One worker's registrar: the shared table plus the worker's own expiry wheel.
pub struct Registrar {
    cfg: RegistrarConfig,
    table: Arc<LocationTable>,
    wheel: ExpiryWheel,
    events: Vec<RegistrationEvent>,
    due: Vec<ExpiryEntry>,
}

/// A contact of the request, interpreted.
struct Asked<'a> {
    uri: &'a str,
    expires: u32,
    instance: Option<&'a str>,
    reg_id: Option<u32>,
    q: u16,
}

impl Registrar {
    pub fn new(cfg: RegistrarConfig, table: Arc<LocationTable>, now_ms: u64) -> Registrar {
        Registrar {
            cfg,
            table,
            wheel: ExpiryWheel::new(now_ms, 1000),
            events: Vec::new(),
            due: Vec::new(),
        }
    }

    pub fn table(&self) -> &Arc<LocationTable> {
        &self.table
    }

    /// Schedules expiry for a binding this worker did not create (loaded from the store).
    pub fn watch(&mut self, user: &str, binding: &Binding) {
        self.wheel.schedule(ExpiryEntry {
            user: Arc::from(user),
            contact: Arc::from(&*binding.contact),
            expires_at_ms: binding.expires_at_ms,
        });
    }

    pub fn drain_events(&mut self) -> std::vec::Drain<'_, RegistrationEvent> {
        self.events.drain(..)
    }

    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.wheel.next_deadline_ms()
    }

    /// Handles a REGISTER from the authenticated log-on `user`, within the configured bounds.
    pub fn register(&mut self, user: &str, msg: &Message<'_>, at: Arrival) -> RegisterOutcome {
        let bounds = self.cfg.bounds();
        self.register_within(user, msg, at, bounds)
    }

    /// Handles a REGISTER from `user` whose keepalive profile sets `bounds`.
    pub fn register_within(
        &mut self,
        user: &str,
        msg: &Message<'_>,
        at: Arrival,
        bounds: ExpiryBounds,
    ) -> RegisterOutcome {
        let header_expires = msg.expires();
        let contacts: Vec<&str> = msg.list(HeaderName::Contact).collect();
        let (Some(call_id), Some(cseq)) = (msg.call_id(), msg.cseq()) else {
            return RegisterOutcome::Invalid("Missing Call-ID or CSeq");
        };
        let now = at.now_ms;
        if contacts.is_empty() {
            return self.ok(user, now, Vec::new());
        }
        if contacts.contains(&"*") {
            if contacts.len() != 1 || header_expires != Some(0) {
                return RegisterOutcome::Invalid("Contact * needs Expires: 0 and no other Contact");
            }
            let mut out_of_order = false;
            let (old, new) = self.table.update(user, |cur| {
                let mut r = cur.cloned().unwrap_or_default();
                out_of_order = r
                    .bindings
                    .iter()
                    .any(|b| &*b.call_id == call_id && b.cseq >= cseq.seq);
                if !out_of_order {
                    r.bindings.clear();
                }
                r
            });
            if out_of_order {
                return RegisterOutcome::OutOfOrder;
            }
            self.diff(user, old.as_deref(), new.as_deref(), now);
            return self.ok(user, now, Vec::new());
        }

        let mut asked = Vec::with_capacity(contacts.len());
        for c in &contacts {
            let Ok(na) = NameAddr::parse(c) else {
                return RegisterOutcome::Invalid("Malformed Contact");
            };
            let expires = match na.params.get("expires") {
                Some(Some(v)) => match lex::parse_delta_seconds(v) {
                    Some(e) => e,
                    None => return RegisterOutcome::Invalid("Malformed expires parameter"),
                },
                Some(None) => return RegisterOutcome::Invalid("Malformed expires parameter"),
                None => header_expires.unwrap_or(bounds.default),
            };
            if expires != 0 && expires < bounds.min {
                return RegisterOutcome::IntervalTooBrief(bounds.min);
            }
            let q = na
                .params
                .get("q")
                .flatten()
                .and_then(parse_q)
                .unwrap_or(1000);
            asked.push(Asked {
                uri: na.uri.raw,
                expires: expires.min(bounds.max),
                instance: na.params.get("+sip.instance").flatten(),
                reg_id: na
                    .params
                    .get("reg-id")
                    .flatten()
                    .and_then(|r| r.parse().ok()),
                q,
            });
        }
        let path: Vec<Box<str>> = msg.list(HeaderName::Path).map(Box::from).collect();
        let user_agent = msg.header(HeaderName::UserAgent).unwrap_or("");

        let mut out_of_order = false;
        let (old, new) = self.table.update(user, |cur| {
            let mut bindings: Vec<Binding> = cur.map(|r| r.bindings.clone()).unwrap_or_default();
            // Bindings past their time are gone even if the wheel has not reached them yet.
            bindings.retain(|b| b.expires_at_ms > now);
            out_of_order = false;
            for a in &asked {
                let existing = bindings.iter().position(|b| same_flow(b, a));
                if let Some(i) = existing {
                    let b = &bindings[i];
                    if &*b.call_id == call_id && b.cseq >= cseq.seq {
                        out_of_order = true;
                        break;
                    }
                }
                if a.expires == 0 {
                    if let Some(i) = existing {
                        bindings.remove(i);
                    }
                    continue;
                }
                let granted = self.spread(a.expires, bounds.min, call_id, a.uri);
                let updated = Binding {
                    contact: a.uri.into(),
                    instance: a.instance.map(Into::into),
                    reg_id: a.reg_id,
                    path: path.clone().into_boxed_slice(),
                    q: a.q,
                    call_id: call_id.into(),
                    cseq: cseq.seq,
                    expires_at_ms: now + u64::from(granted) * 1000,
                    updated_ms: now,
                    source: at.source,
                    transport: at.transport,
                    user_agent: user_agent.into(),
                };
                match existing {
                    Some(i) => bindings[i] = updated,
                    None => bindings.push(updated),
                }
            }
            if out_of_order {
                return cur.cloned().unwrap_or_default();
            }
            while bindings.len() > self.cfg.max_contacts {
                // The least recently refreshed binding is the likeliest to be a phone that
                // rebooted onto a new address; it makes room.
                let oldest = bindings
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, b)| b.updated_ms)
                    .map_or(0, |(i, _)| i);
                bindings.remove(oldest);
            }
            Record { bindings }
        });
        if out_of_order {
            return RegisterOutcome::OutOfOrder;
        }
        self.diff(user, old.as_deref(), new.as_deref(), now);
        self.ok(user, now, path)
    }

    /// Expires bindings whose time has come, at most `expiry_budget` per call.
    pub fn expire(&mut self, now_ms: u64) {
        self.due.clear();
        let mut due = std::mem::take(&mut self.due);
        self.wheel.advance(now_ms, self.cfg.expiry_budget, &mut due);
        for e in &due {
            // A refresh leaves the old entry in the wheel; `expire` settles it with one read.
            if let Ok(gone) = self.table.expire(&e.user, &e.contact, e.expires_at_ms) {
                self.events.push(RegistrationEvent {
                    kind: EventKind::Expired,
                    user: (*e.user).into(),
                    binding: gone.removed,
                    remaining: gone.left.map_or(0, |r| r.bindings.len()),
                });
            }
        }
        self.due = due;
    }

    fn ok(&self, user: &str, now: u64, path: Vec<Box<str>>) -> RegisterOutcome {
        let contacts = self
            .table
            .get(user)
            .map(|r| {
                r.bindings
                    .iter()
                    .filter(|b| b.expires_at_ms > now)
                    .map(|b| ContactView {
                        contact: b.contact.clone(),
                        expires_in: ((b.expires_at_ms - now).div_ceil(1000)) as u32,
                        instance: b.instance.clone(),
                        reg_id: b.reg_id,
                    })
                    .collect()
            })
            .unwrap_or_default();
        RegisterOutcome::Ok { contacts, path }
    }

    /// Turns a record change into events and expiry entries.
    fn diff(&mut self, user: &str, old: Option<&Record>, new: Option<&Record>, now: u64) {
        let empty = Record::default();
        let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
        let remaining = new.bindings.len();
        for b in &new.bindings {
            let before = old.bindings.iter().find(|o| o.contact == b.contact);
            if before == Some(b) {
                continue;
            }
            let kind = if before.is_some() {
                EventKind::Refreshed
            } else {
                EventKind::Added
            };
            self.wheel.schedule(ExpiryEntry {
                user: Arc::from(user),
                contact: Arc::from(&*b.contact),
                expires_at_ms: b.expires_at_ms,
            });
            self.events.push(RegistrationEvent {
                kind,
                user: user.into(),
                binding: b.clone(),
                remaining,
            });
        }
        for o in &old.bindings {
            if o.expires_at_ms <= now || new.bindings.iter().any(|b| b.contact == o.contact) {
                continue;
            }
            self.events.push(RegistrationEvent {
                kind: EventKind::Removed,
                user: user.into(),
                binding: o.clone(),
                remaining,
            });
        }
    }

    /// Shortens `asked` by up to `expiry_spread_pct` percent, the same way for the same phone
    /// (hash of Call-ID and contact), never below `min`.
    fn spread(&self, asked: u32, min: u32, call_id: &str, contact: &str) -> u32 {
        let pct = u32::from(self.cfg.expiry_spread_pct.min(100));
        if pct == 0 {
            return asked;
        }
        let room = asked.saturating_sub(min).min(asked / 100 * pct);
        if room == 0 {
            return asked;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (call_id, contact).hash(&mut h);
        asked - (h.finish() % u64::from(room + 1)) as u32
    }
}

/// RFC 5626: a binding with `+sip.instance` (and `reg-id`) is one flow of one device, whatever
/// its Contact says now; without them the Contact URI identifies it.
fn same_flow(b: &Binding, a: &Asked<'_>) -> bool {
    match (a.instance, b.instance.as_deref()) {
        (Some(i), Some(bi)) => i == bi && a.reg_id == b.reg_id,
        _ => *b.contact == *a.uri,
    }
}

/// `q` as thousandths: "0.5" -> 500, "1" -> 1000.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if int.len() != 1 || frac.len() > 3 {
        return None;
    }
    let i: u16 = int.parse().ok()?;
    let mut f: u16 = 0;
    for (k, d) in frac.bytes().enumerate() {
        if !d.is_ascii_digit() {
            return None;
        }
        f += u16::from(d - b'0') * [100, 10, 1][k];
    }
    let q = i * 1000 + f;
    (q <= 1000).then_some(q)
}
