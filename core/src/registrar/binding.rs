//! A binding: one contact address registered for a log-on (RFC 3261 section 10, RFC 5626
//! instance/reg-id, RFC 3327 Path).

use std::net::SocketAddr;
use std::sync::Arc;

/// The transport a binding was registered over; requests to it leave the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// One registered contact. Immutable once built: a refresh replaces the binding, so readers on
/// other workers never see a half-updated one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI as registered (without the angle brackets and header parameters).
    pub contact: Box<str>,
    /// `+sip.instance` (RFC 5626), e.g. `<urn:uuid:...>`; with `reg_id` it identifies the flow.
    pub instance: Option<Box<str>>,
    pub reg_id: Option<u32>,
    /// Path header values to route requests to this contact through (RFC 3327), in order.
    pub path: Box<[Box<str>]>,
    /// `q` parameter in thousandths (1000 = 1.0); 1000 when absent.
    pub q: u16,
    pub call_id: Box<str>,
    pub cseq: u32,
    /// Absolute expiry, milliseconds since the UNIX epoch (survives restarts).
    pub expires_at_ms: u64,
    /// When this binding was first created or last refreshed, ms since the UNIX epoch.
    pub updated_ms: u64,
    /// Where the REGISTER came from (NAT: requests go here, not to the Contact host).
    pub source: SocketAddr,
    pub transport: Transport,
    pub user_agent: Box<str>,
}

/// All bindings of one log-on (an address-of-record). Replaced as a whole on every change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub bindings: Vec<Binding>,
}

/// A handle to a record as stored in the location table: cheap to clone, never mutated.
pub type RecordRef = Arc<Record>;
