//! The candidate concurrent maps for the location table behind one small trait, so the criterion
//! bench (`benches/registrar.rs`) and the memory probe (`examples/location_memory.rs`) measure
//! exactly the same operations on each. Keys are `Box<str>` user names, values `RecordRef`, as in
//! `mgw_core::registrar::location`.

#![allow(dead_code)] // each includer uses a different part

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use mgw_core::registrar::binding::{Binding, Record, RecordRef, Transport};
use mgw_core::registrar::location::LocationTable;

/// What the bench needs from a candidate: read by user, replace a user's record atomically from
/// its current value (the registrar's refresh), and a bulk insert to populate it.
pub trait Candidate: Send + Sync {
    const NAME: &'static str;
    fn with_capacity(n: usize) -> Self;
    fn get(&self, user: &str) -> Option<RecordRef>;
    /// Replaces the record by `f(current)`, never losing a concurrent update of the same user.
    fn update(&self, user: &str, f: &mut dyn FnMut(Option<&Record>) -> Record);
    fn insert(&self, user: &str, record: RecordRef);
    fn len(&self) -> usize;
}

pub struct Papaya(papaya::HashMap<Box<str>, RecordRef>);

impl Candidate for Papaya {
    const NAME: &'static str = "papaya";
    fn with_capacity(n: usize) -> Self {
        Papaya(papaya::HashMap::with_capacity(n))
    }
    fn get(&self, user: &str) -> Option<RecordRef> {
        self.0.pin().get(user).cloned()
    }
    fn update(&self, user: &str, f: &mut dyn FnMut(Option<&Record>) -> Record) {
        self.0.pin().compute(Box::from(user), |cur| {
            papaya::Operation::<_, ()>::Insert(Arc::new(f(cur.map(|(_, v)| &**v))))
        });
    }
    fn insert(&self, user: &str, record: RecordRef) {
        self.0.pin().insert(Box::from(user), record);
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// scc's HashMap: readers take a shared bucket lock, writers an exclusive one.
pub struct SccMap(scc::HashMap<Box<str>, RecordRef>);

impl Candidate for SccMap {
    const NAME: &'static str = "scc::HashMap";
    fn with_capacity(n: usize) -> Self {
        SccMap(scc::HashMap::with_capacity(n))
    }
    fn get(&self, user: &str) -> Option<RecordRef> {
        self.0.read(user, |_, v| v.clone())
    }
    fn update(&self, user: &str, f: &mut dyn FnMut(Option<&Record>) -> Record) {
        // The common case (a refresh) avoids allocating an owned key.
        if self
            .0
            .update(user, |_, v| *v = Arc::new(f(Some(v))))
            .is_none()
        {
            match self.0.entry(Box::from(user)) {
                scc::hash_map::Entry::Occupied(mut o) => {
                    let new = Arc::new(f(Some(o.get())));
                    *o.get_mut() = new;
                }
                scc::hash_map::Entry::Vacant(v) => {
                    v.insert_entry(Arc::new(f(None)));
                }
            }
        }
    }
    fn insert(&self, user: &str, record: RecordRef) {
        self.0.upsert(Box::from(user), record);
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// scc's HashIndex: lock-free reads (epoch-protected), bucket-locked writes.
pub struct SccIndex(scc::HashIndex<Box<str>, RecordRef>);

impl Candidate for SccIndex {
    const NAME: &'static str = "scc::HashIndex";
    fn with_capacity(n: usize) -> Self {
        SccIndex(scc::HashIndex::with_capacity(n))
    }
    fn get(&self, user: &str) -> Option<RecordRef> {
        self.0.peek_with(user, |_, v| v.clone())
    }
    fn update(&self, user: &str, f: &mut dyn FnMut(Option<&Record>) -> Record) {
        match self.0.entry(Box::from(user)) {
            scc::hash_index::Entry::Occupied(o) => {
                let new = Arc::new(f(Some(o.get())));
                o.update(new);
            }
            scc::hash_index::Entry::Vacant(v) => {
                v.insert_entry(Arc::new(f(None)));
            }
        }
    }
    fn insert(&self, user: &str, record: RecordRef) {
        let _ = self.0.insert(Box::from(user), record);
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The locked baseline: sharded `RwLock<HashMap>`.
pub struct Dash(dashmap::DashMap<Box<str>, RecordRef>);

impl Candidate for Dash {
    const NAME: &'static str = "dashmap";
    fn with_capacity(n: usize) -> Self {
        Dash(dashmap::DashMap::with_capacity(n))
    }
    fn get(&self, user: &str) -> Option<RecordRef> {
        self.0.get(user).map(|r| r.value().clone())
    }
    fn update(&self, user: &str, f: &mut dyn FnMut(Option<&Record>) -> Record) {
        if let Some(mut r) = self.0.get_mut(user) {
            let new = Arc::new(f(Some(r.value())));
            *r.value_mut() = new;
            return;
        }
        match self.0.entry(Box::from(user)) {
            dashmap::Entry::Occupied(mut o) => {
                let new = Arc::new(f(Some(o.get())));
                o.insert(new);
            }
            dashmap::Entry::Vacant(v) => {
                v.insert(Arc::new(f(None)));
            }
        }
    }
    fn insert(&self, user: &str, record: RecordRef) {
        self.0.insert(Box::from(user), record);
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Lock-free ordered skip list; the update is a compare-and-swap loop over `compare_insert`.
pub struct Skip(crossbeam_skiplist::SkipMap<Box<str>, RecordRef>);

impl Candidate for Skip {
    const NAME: &'static str = "crossbeam-skiplist";
    fn with_capacity(_: usize) -> Self {
        Skip(crossbeam_skiplist::SkipMap::new())
    }
    fn get(&self, user: &str) -> Option<RecordRef> {
        self.0.get(user).map(|e| e.value().clone())
    }
    fn update(&self, user: &str, f: &mut dyn FnMut(Option<&Record>) -> Record) {
        let key: Box<str> = Box::from(user);
        loop {
            let cur = self.0.get(user).map(|e| e.value().clone());
            let new = Arc::new(f(cur.as_deref()));
            // It returns the entry now in the map: ours if the comparison let it in (or the key
            // was absent), the other writer's otherwise.
            let e = self.0.compare_insert(key.clone(), Arc::clone(&new), |old| {
                cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, old))
            });
            if Arc::ptr_eq(e.value(), &new) {
                return;
            }
        }
    }
    fn insert(&self, user: &str, record: RecordRef) {
        self.0.insert(Box::from(user), record);
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The table as built on the chosen map, with its binding counters, to see what they cost.
pub struct Table(LocationTable);

impl Candidate for Table {
    const NAME: &'static str = "LocationTable";
    fn with_capacity(n: usize) -> Self {
        Table(LocationTable::with_capacity(n))
    }
    fn get(&self, user: &str) -> Option<RecordRef> {
        self.0.get(user)
    }
    fn update(&self, user: &str, f: &mut dyn FnMut(Option<&Record>) -> Record) {
        self.0.update(user, f);
    }
    fn insert(&self, user: &str, record: RecordRef) {
        let mut r = Some((*record).clone());
        self.0.update(user, |_| r.take().unwrap_or_default());
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

pub fn user_name(i: usize) -> String {
    format!("u{i:07}")
}

/// A binding as a desk phone behind NAT registers it: contact ~40 characters, Call-ID ~30,
/// User-Agent ~25, no Path, no outbound instance.
pub fn realistic_binding(i: usize, expires_at_ms: u64) -> Binding {
    let a = (i >> 8) as u8;
    let b = i as u8;
    Binding {
        contact: format!("sip:u{i:07}@192.168.{a}.{b}:5060;transport=udp").into(),
        instance: None,
        reg_id: None,
        path: Box::new([]),
        q: 1000,
        call_id: format!(
            "{:016x}@10.1.{a}.{b}",
            (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        )
        .into(),
        cseq: 1,
        expires_at_ms,
        updated_ms: expires_at_ms.saturating_sub(3_600_000),
        source: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(203, 0, a, b), 40_000)),
        transport: Transport::Udp,
        user_agent: "Yealink SIP-T46S 66.86.0.15".into(),
    }
}

pub fn realistic_record(i: usize, expires_at_ms: u64) -> Record {
    Record {
        bindings: vec![realistic_binding(i, expires_at_ms)],
    }
}

/// A refresh of `cur`: the same contacts with the next CSeq (what a re-REGISTER produces).
pub fn refreshed(cur: Option<&Record>, i: usize) -> Record {
    match cur {
        Some(r) if !r.bindings.is_empty() => Record {
            bindings: r
                .bindings
                .iter()
                .map(|b| Binding {
                    cseq: b.cseq.wrapping_add(1),
                    ..b.clone()
                })
                .collect(),
        },
        _ => realistic_record(i, 0),
    }
}

/// xorshift64*: a per-thread key stream that costs a few cycles.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as usize % n
    }
}
