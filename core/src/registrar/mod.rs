//! The registrar (RFC 3261 section 10.3, RFC 5626 flows, RFC 3327 Path): bindings in a location
//! table shared by every worker, expiry on a per-worker timer wheel, events for whoever must
//! know when a log-on comes or goes (the licence pool frees a licence on the last binding).

pub mod binding;
pub mod expiry;
pub mod location;
pub mod register;

pub use binding::{Binding, Record, RecordRef, Transport};
pub use location::LocationTable;
pub use register::{
    Arrival, ContactView, ExpiryBounds, RegisterOutcome, Registrar, RegistrarConfig,
};

/// What happened to a binding; the persistence journal and the licence pool subscribe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Refreshed,
    /// Removed by the phone (REGISTER with expires 0, `*`) or replaced for `max_contacts`.
    Removed,
    /// Its keepalive (re-registration) did not come in time.
    Expired,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationEvent {
    pub kind: EventKind,
    pub user: Box<str>,
    /// The binding as it now is (Added, Refreshed) or as it was (Removed, Expired).
    pub binding: Binding,
    /// Bindings the user has left after this event: 0 means the log-on is logged off.
    pub remaining: usize,
}
