//! The location table: every log-on's current bindings, shared by all worker threads.
//!
//! Workers on every core read it for each call they route and write it for each REGISTER, so it
//! has no lock at all: a lock held by a worker that the kernel preempts would stall every
//! other worker that touches the same part of the table. It is built on `papaya::HashMap`,
//! whose reads are a probe under an epoch pin and whose writes are a compare-and-swap of the
//! slot.
//!
//! Chosen by measurement (`bench/benches/registrar.rs`, `bench/examples/location_memory.rs`;
//! numbers in docs/decisions.md) against scc's HashIndex (lock-free reads, bucket-locked
//! writes), scc's HashMap and dashmap (readers take a lock) and crossbeam-skiplist. HashIndex
//! was faster, but it keeps a replaced value until its bucket is rebuilt: after every user
//! refreshed once, a million bindings took 840-890 MiB instead of 450, for good. papaya's
//! memory stays flat under refreshes, and its writes never wait for another thread.
//!
//! Records are immutable (`RecordRef = Arc<Record>`): a change builds a new record from the
//! current one and swaps it in atomically, so a reader holding the old `Arc` keeps a consistent
//! snapshot and a concurrent writer to the same user retries on the fresh value instead of
//! overwriting it.

use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use papaya::{Compute, HashMap, Operation};

use super::binding::{Binding, Record, RecordRef};

/// Bindings of every registered user, plus which users share each phone number.
pub struct LocationTable {
    records: HashMap<Box<str>, RecordRef>,
    /// number -> users of that number. Several log-ons (desk phone, softphone, DECT handset)
    /// share one number, so a call to the number forks to all of them.
    numbers: HashMap<Box<str>, Arc<[Box<str>]>>,
    /// user -> number, so that a changed number can take the user out of the old set.
    number_of: HashMap<Box<str>, Box<str>>,
    /// Kept beside the map instead of asked of it: the admin API and metrics read them on every
    /// scrape, and counting a million records there would be O(n). Signed because two writers
    /// may apply their deltas out of order (a removal's `-1` before the insertion's `+1`); the sum
    /// is exact once they are done, a transient negative value is read as 0.
    users: AtomicIsize,
    bindings: AtomicIsize,
}

/// What a compute closure decided, before it is mapped onto the map's operation.
enum Change {
    Keep,
    Replace(Record),
}

impl LocationTable {
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// A table sized for `n` registered users, so that filling it does not resize the map
    /// (papaya resizes incrementally, but every resize makes concurrent operations help copy).
    pub fn with_capacity(n: usize) -> Self {
        LocationTable {
            records: HashMap::with_capacity(n),
            numbers: HashMap::new(),
            number_of: HashMap::new(),
            users: AtomicIsize::new(0),
            bindings: AtomicIsize::new(0),
        }
    }

    /// The user's current record; lock-free.
    pub fn get(&self, user: &str) -> Option<RecordRef> {
        self.records.pin().get(user).cloned()
    }

    /// Atomically replaces the user's record with `f(current)` (`None`: no record). An empty
    /// record removes the user. Returns `(old, new)`; `(None, None)` when there was nothing to
    /// remove.
    ///
    /// `f` may run more than once when another worker changes the same user concurrently: it is
    /// then called again with the record that won, so it must be a pure function of its input.
    pub fn update(
        &self,
        user: &str,
        mut f: impl FnMut(Option<&Record>) -> Record,
    ) -> (Option<RecordRef>, Option<RecordRef>) {
        self.compute(user, |cur| Change::Replace(f(cur)))
    }

    /// Removes the binding `contact` of `user` if it still expires at `expires_at_ms`: the lazy
    /// check of an expiry-wheel entry, which is stale when a refresh has moved the expiry since
    /// it was scheduled. Returns the removed binding and the record left behind, or
    /// `Err(NotExpired)` when nothing was removed.
    pub fn expire(
        &self,
        user: &str,
        contact: &str,
        expires_at_ms: u64,
    ) -> Result<Expired, NotExpired> {
        let matches = |r: &Record| {
            r.bindings
                .iter()
                .any(|b| b.expires_at_ms == expires_at_ms && &*b.contact == contact)
        };
        // Most entries of a busy wheel are stale (every refresh leaves one): a lock-free read
        // settles them without allocating a key or swapping a record.
        if !self.records.pin().get(user).is_some_and(|r| matches(r)) {
            return Err(NotExpired);
        }
        let (old, new) = self.compute(user, |cur| match cur {
            Some(r) if matches(r) => Change::Replace(Record {
                bindings: r
                    .bindings
                    .iter()
                    .filter(|b| !(b.expires_at_ms == expires_at_ms && &*b.contact == contact))
                    .cloned()
                    .collect(),
            }),
            _ => Change::Keep,
        });
        // The old record is the one the removal was computed from, so it holds the binding.
        let removed = old.as_deref().and_then(|r| {
            r.bindings
                .iter()
                .find(|b| b.expires_at_ms == expires_at_ms && &*b.contact == contact)
                .cloned()
        });
        match removed {
            Some(removed) => Ok(Expired { removed, left: new }),
            None => Err(NotExpired),
        }
    }

    pub fn remove(&self, user: &str) -> Option<RecordRef> {
        let old = self.records.pin().remove(user).cloned();
        if let Some(r) = &old {
            self.account(Some(r), None);
        }
        old
    }

    /// Users with at least one binding.
    pub fn len(&self) -> usize {
        self.users.load(Ordering::Relaxed).max(0) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bindings of all users together.
    pub fn bindings(&self) -> usize {
        self.bindings.load(Ordering::Relaxed).max(0) as usize
    }

    /// Every user with its record, for the admin API. Weakly consistent: a user changed during
    /// the walk is seen either before or after the change, never half-changed. Memory that
    /// writers free meanwhile is reclaimed only after the walk (it holds an epoch pin).
    pub fn for_each(&self, mut f: impl FnMut(&str, &Record)) {
        for (user, record) in self.records.pin().iter() {
            f(user, record);
        }
    }

    /// Files `user` under `number`, taking it out of the number it had before. Called when
    /// accounts are loaded; calls for the same user must not run concurrently (account loading
    /// is one thread), calls for different users may.
    pub fn set_number(&self, user: &str, number: &str) {
        let previous = self
            .number_of
            .pin()
            .insert(Box::from(user), Box::from(number))
            .cloned();
        if let Some(previous) = previous {
            if &*previous == number {
                return;
            }
            self.unfile(user, &previous);
        }
        self.numbers.pin().compute(Box::from(number), |cur| {
            let users = cur.map_or(&[][..], |(_, u)| &u[..]);
            if users.iter().any(|u| &**u == user) {
                return Operation::Abort(());
            }
            let mut next = Vec::with_capacity(users.len() + 1);
            next.extend(users.iter().cloned());
            next.push(Box::from(user));
            Operation::Insert(Arc::from(next))
        });
    }

    /// Forgets the user's number (the account was deleted).
    pub fn clear_number(&self, user: &str) {
        if let Some(previous) = self.number_of.pin().remove(user) {
            self.unfile(user, previous);
        }
    }

    /// The users filed under `number`, registered or not.
    pub fn users_of_number(&self, number: &str) -> Vec<Box<str>> {
        self.numbers
            .pin()
            .get(number)
            .map_or_else(Vec::new, |u| u.to_vec())
    }

    /// Every registered user of `number` with its record: the targets of a call to the number.
    pub fn lookup_number(&self, number: &str) -> Vec<(Box<str>, RecordRef)> {
        let numbers = self.numbers.pin();
        let Some(users) = numbers.get(number) else {
            return Vec::new();
        };
        let records = self.records.pin();
        users
            .iter()
            .filter_map(|u| records.get(&**u).map(|r| (u.clone(), r.clone())))
            .collect()
    }

    fn unfile(&self, user: &str, number: &str) {
        self.numbers
            .pin()
            .compute(Box::from(number), |cur| match cur {
                Some((_, users)) if users.iter().any(|u| &**u == user) => {
                    if users.len() == 1 {
                        Operation::Remove
                    } else {
                        let rest: Vec<Box<str>> =
                            users.iter().filter(|u| &***u != user).cloned().collect();
                        Operation::Insert(Arc::from(rest))
                    }
                }
                _ => Operation::Abort(()),
            });
    }

    /// The one place records are swapped, so that the counters see every swap exactly once.
    fn compute(
        &self,
        user: &str,
        mut f: impl FnMut(Option<&Record>) -> Change,
    ) -> (Option<RecordRef>, Option<RecordRef>) {
        let records = self.records.pin();
        let done = records.compute(Box::from(user), |cur| {
            match (f(cur.map(|(_, r)| &**r)), cur) {
                (Change::Keep, _) => Operation::Abort(()),
                (Change::Replace(r), _) if !r.bindings.is_empty() => Operation::Insert(Arc::new(r)),
                (Change::Replace(_), Some(_)) => Operation::Remove,
                // Removing a user that is not there: nothing to do.
                (Change::Replace(_), None) => Operation::Abort(()),
            }
        });
        let (old, new) = match done {
            Compute::Inserted(_, new) => (None, Some(new.clone())),
            Compute::Updated {
                old: (_, old),
                new: (_, new),
            } => (Some(old.clone()), Some(new.clone())),
            Compute::Removed(_, old) => (Some(old.clone()), None),
            Compute::Aborted(()) => return (None, None),
        };
        self.account(old.as_deref(), new.as_deref());
        (old, new)
    }

    /// Applies one swap to the counters. Each swap is reported once with the exact pair of
    /// records it exchanged, so the deltas telescope: whatever the interleaving, the counters
    /// equal the table's contents once the writers are done.
    fn account(&self, old: Option<&Record>, new: Option<&Record>) {
        let count = |r: Option<&Record>| r.map_or(0, |r| r.bindings.len() as isize);
        let present = |r: Option<&Record>| isize::from(r.is_some_and(|r| !r.bindings.is_empty()));
        let bindings = count(new) - count(old);
        if bindings != 0 {
            self.bindings.fetch_add(bindings, Ordering::Relaxed);
        }
        let users = present(new) - present(old);
        if users != 0 {
            self.users.fetch_add(users, Ordering::Relaxed);
        }
    }
}

impl Default for LocationTable {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for LocationTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocationTable")
            .field("users", &self.len())
            .field("bindings", &self.bindings())
            .finish()
    }
}

/// `LocationTable::expire` found no binding with that contact and expiry: the wheel entry was
/// stale (refreshed, re-registered or removed since).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotExpired;

/// What [`LocationTable::expire`] removed, and the user's record afterwards (`None` when the
/// user has no binding left).
#[derive(Debug, PartialEq, Eq)]
pub struct Expired {
    pub removed: Binding,
    pub left: Option<RecordRef>,
}

impl std::fmt::Display for NotExpired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("binding no longer expires at that time")
    }
}

impl std::error::Error for NotExpired {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registrar::binding::{Binding, Transport};

    fn binding(contact: &str, expires_at_ms: u64) -> Binding {
        Binding {
            contact: contact.into(),
            instance: None,
            reg_id: None,
            path: Box::new([]),
            q: 1000,
            call_id: "call-1@host".into(),
            cseq: 1,
            expires_at_ms,
            updated_ms: 0,
            source: "192.0.2.1:5060".parse().expect("literal"),
            transport: Transport::Udp,
            user_agent: "test".into(),
        }
    }

    fn record(contacts: &[(&str, u64)]) -> Record {
        Record {
            bindings: contacts.iter().map(|(c, e)| binding(c, *e)).collect(),
        }
    }

    /// The counters recomputed from the contents, to compare with the maintained ones.
    fn recount(t: &LocationTable) -> (usize, usize) {
        let (mut users, mut bindings) = (0, 0);
        t.for_each(|_, r| {
            users += 1;
            bindings += r.bindings.len();
        });
        (users, bindings)
    }

    #[test]
    fn update_inserts_replaces_and_removes() {
        let t = LocationTable::new();
        assert!(t.get("alice").is_none());
        let (old, new) = t.update("alice", |cur| {
            assert!(cur.is_none());
            record(&[("sip:a@1", 10)])
        });
        assert!(old.is_none());
        assert_eq!(new.as_deref(), Some(&record(&[("sip:a@1", 10)])));
        assert_eq!((t.len(), t.bindings()), (1, 1));

        let (old, new) = t.update("alice", |cur| {
            let mut r = cur.cloned().unwrap_or_default();
            r.bindings.push(binding("sip:a@2", 20));
            r
        });
        assert_eq!(old.map(|r| r.bindings.len()), Some(1));
        assert_eq!(new.map(|r| r.bindings.len()), Some(2));
        assert_eq!((t.len(), t.bindings()), (1, 2));

        let (old, new) = t.update("alice", |_| Record::default());
        assert_eq!(old.map(|r| r.bindings.len()), Some(2));
        assert!(new.is_none());
        assert!(t.get("alice").is_none());
        assert_eq!((t.len(), t.bindings()), (0, 0));
    }

    #[test]
    fn empty_record_for_absent_user_is_a_no_op() {
        let t = LocationTable::new();
        assert_eq!(t.update("nobody", |_| Record::default()), (None, None));
        assert_eq!((t.len(), t.bindings()), (0, 0));
        assert!(t.remove("nobody").is_none());
    }

    #[test]
    fn remove_returns_the_record_and_fixes_counters() {
        let t = LocationTable::with_capacity(4);
        t.update("a", |_| record(&[("sip:a@1", 1), ("sip:a@2", 2)]));
        t.update("b", |_| record(&[("sip:b@1", 1)]));
        assert_eq!((t.len(), t.bindings()), (2, 3));
        assert_eq!(t.remove("a").map(|r| r.bindings.len()), Some(2));
        assert_eq!((t.len(), t.bindings()), (1, 1));
        assert_eq!(recount(&t), (1, 1));
    }

    #[test]
    fn readers_keep_their_snapshot() {
        let t = LocationTable::new();
        t.update("a", |_| record(&[("sip:a@1", 1)]));
        let before = t.get("a").expect("registered");
        t.update("a", |_| record(&[("sip:a@9", 9)]));
        assert_eq!(&*before.bindings[0].contact, "sip:a@1");
        assert_eq!(
            &*t.get("a").expect("registered").bindings[0].contact,
            "sip:a@9"
        );
    }

    #[test]
    fn expire_removes_only_the_matching_binding() {
        let t = LocationTable::new();
        t.update("a", |_| record(&[("sip:a@1", 100), ("sip:a@2", 200)]));
        // Stale: refreshed since, the expiry moved.
        assert_eq!(t.expire("a", "sip:a@1", 50), Err(NotExpired));
        assert_eq!(t.expire("a", "sip:a@3", 100), Err(NotExpired));
        assert_eq!(t.expire("nobody", "sip:a@1", 100), Err(NotExpired));
        let left = t.expire("a", "sip:a@1", 100).expect("due").left;
        assert_eq!(left.as_deref(), Some(&record(&[("sip:a@2", 200)])));
        assert_eq!((t.len(), t.bindings()), (1, 1));
        assert_eq!(t.expire("a", "sip:a@2", 200).map(|e| e.left), Ok(None));
        assert_eq!((t.len(), t.bindings()), (0, 0));
    }

    #[test]
    fn numbers_map_to_several_users() {
        let t = LocationTable::new();
        t.set_number("desk", "100");
        t.set_number("soft", "100");
        t.set_number("dect", "100");
        t.set_number("other", "200");
        let mut users = t.users_of_number("100");
        users.sort();
        assert_eq!(users, vec!["dect".into(), "desk".into(), "soft".into()]);
        // Loading the same account again changes nothing.
        t.set_number("desk", "100");
        assert_eq!(t.users_of_number("100").len(), 3);

        // Only registered users are call targets.
        assert!(t.lookup_number("100").is_empty());
        t.update("desk", |_| record(&[("sip:desk@1", 1)]));
        t.update("soft", |_| record(&[("sip:soft@1", 1)]));
        let mut found: Vec<_> = t
            .lookup_number("100")
            .into_iter()
            .map(|(u, r)| (u, r.bindings.len()))
            .collect();
        found.sort();
        assert_eq!(found, vec![("desk".into(), 1), ("soft".into(), 1)]);
        assert!(t.lookup_number("999").is_empty());

        // A changed number moves the user.
        t.set_number("desk", "200");
        assert_eq!(t.users_of_number("100").len(), 2);
        let mut users = t.users_of_number("200");
        users.sort();
        assert_eq!(users, vec!["desk".into(), "other".into()]);

        t.clear_number("other");
        t.clear_number("other");
        assert_eq!(t.users_of_number("200"), vec!["desk".into()]);
        t.clear_number("desk");
        assert!(t.users_of_number("200").is_empty());
    }

    /// Threads add and remove bindings of overlapping users at once; every change is a
    /// read-modify-write, so a lost update would leave a binding count that differs from the
    /// number of adds minus removes each thread did.
    #[test]
    fn concurrent_updates_lose_nothing() {
        const THREADS: usize = 4;
        const USERS: usize = 16;
        const ROUNDS: usize = 4_000;
        let t = Arc::new(LocationTable::new());
        let handles: Vec<_> = (0..THREADS)
            .map(|id| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    // Net bindings this thread added, per user.
                    let mut net = [0isize; USERS];
                    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ id as u64;
                    for i in 0..ROUNDS {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let u = (x % USERS as u64) as usize;
                        let user = format!("user{u}");
                        let contact = format!("sip:t{id}@host");
                        // Add this thread's binding, or take one of its own away.
                        let adding = i % 3 != 2;
                        let mut changed = false;
                        t.update(&user, |cur| {
                            let mut r = cur.cloned().unwrap_or_default();
                            changed = if adding {
                                r.bindings.push(binding(&contact, i as u64));
                                true
                            } else if let Some(p) =
                                r.bindings.iter().position(|b| *b.contact == *contact)
                            {
                                r.bindings.remove(p);
                                true
                            } else {
                                false
                            };
                            r
                        });
                        if changed {
                            net[u] += if adding { 1 } else { -1 };
                        }
                    }
                    net
                })
            })
            .collect();
        let mut expected = [0isize; USERS];
        for h in handles {
            for (e, n) in expected.iter_mut().zip(h.join().expect("thread")) {
                *e += n;
            }
        }
        let total: isize = expected.iter().sum();
        assert_eq!(t.bindings() as isize, total);
        for (u, e) in expected.iter().enumerate() {
            let have = t.get(&format!("user{u}")).map_or(0, |r| r.bindings.len());
            assert_eq!(have as isize, *e, "user{u}");
        }
        assert_eq!(recount(&t), (t.len(), t.bindings()));
    }

    /// Every interleaving of the counter protocol, exhaustively, on a model of one map slot:
    /// each writer reads the slot, computes, compare-and-swaps (retrying on a lost race), then
    /// applies its delta in a separate step, as `compute` + `account` do. The counters must
    /// equal the slot's contents whenever no writer is between its swap and its delta, and the
    /// user counter may dip below zero only transiently.
    #[test]
    fn counter_protocol_is_exact_in_every_interleaving() {
        // A write sets the slot to a number of bindings (0 = no record).
        #[derive(Clone, Copy)]
        enum Pc {
            Read,
            Cas { seen: usize, version: u32 },
            Account { old: usize, new: usize },
            Done,
        }
        #[derive(Clone)]
        struct State {
            slot: usize,
            version: u32,
            users: isize,
            bindings: isize,
            pcs: Vec<Pc>,
        }
        // Each writer's change, a function of what it read (like the closure passed to update).
        let writes: [fn(usize) -> usize; 3] = [|n| n + 1, |n| n.saturating_sub(1), |_| 0];
        fn explore(s: State, writes: &[fn(usize) -> usize], runs: &mut usize) {
            let mut any = false;
            for w in 0..s.pcs.len() {
                let mut n = s.clone();
                match s.pcs[w] {
                    Pc::Done => continue,
                    Pc::Read => {
                        n.pcs[w] = Pc::Cas {
                            seen: s.slot,
                            version: s.version,
                        }
                    }
                    Pc::Cas { seen, version } => {
                        if version == s.version {
                            let new = writes[w](seen);
                            if new == seen && seen == 0 {
                                // Abort: nothing there, nothing to remove.
                                n.pcs[w] = Pc::Done;
                            } else {
                                n.slot = new;
                                n.version += 1;
                                n.pcs[w] = Pc::Account { old: seen, new };
                            }
                        } else {
                            n.pcs[w] = Pc::Read;
                        }
                    }
                    Pc::Account { old, new } => {
                        n.bindings += new as isize - old as isize;
                        n.users += isize::from(new > 0) - isize::from(old > 0);
                        n.pcs[w] = Pc::Done;
                    }
                }
                any = true;
                let quiet = n.pcs.iter().all(|p| !matches!(p, Pc::Account { .. }));
                if quiet {
                    assert_eq!(n.bindings, n.slot as isize);
                    assert_eq!(n.users, isize::from(n.slot > 0));
                }
                explore(n, writes, runs);
            }
            if !any {
                *runs += 1;
            }
        }
        for start in [0usize, 1, 2] {
            let mut runs = 0;
            explore(
                State {
                    slot: start,
                    version: 0,
                    users: isize::from(start > 0),
                    bindings: start as isize,
                    pcs: vec![Pc::Read; writes.len()],
                },
                &writes,
                &mut runs,
            );
            assert!(runs > 1_000, "explored {runs} complete interleavings");
        }
    }
}
