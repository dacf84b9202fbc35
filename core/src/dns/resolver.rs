//! Locating a SIP server (RFC 3263 section 4) as a sans-IO state machine.
//!
//! The transport is configured, so the NAPTR step (4.1) is skipped: the lookup asks for SRV
//! records of `_sip._udp.HOST` or `_sip._tcp.HOST`, orders them by priority and weight
//! (RFC 2782), and asks for the A and AAAA records of each target. With no SRV record it asks
//! for the A and AAAA records of HOST itself, on port 5060. An explicit port means no SRV
//! lookup at all (4.2). An IP literal, or a name in the hosts table, needs no DNS.
//!
//! The queries for all targets go out together rather than one target after another: the
//! ordered result is the same, and a dead target does not add its timeout to the next one's.
//! Within a target, IPv4 addresses come before IPv6 ones; which to use is the driver's choice,
//! since only it knows which families its sockets have.
//!
//! Each query goes to the first nameserver, is retransmitted on the `retransmit` schedule
//! (1 s, 2 s, 2 s by default: 5 s per server), then moves to the next nameserver; SERVFAIL,
//! REFUSED and unreadable answers move on at once. NXDOMAIN is final, as it is authoritative.
//! Answers must come from the server asked, carry the query's ID and repeat its question
//! (RFC 5452 section 9.1); anything else is dropped unread. IDs come from a PRNG the driver
//! seeds: the driver should seed it from OS randomness and use a random source port.
//!
//! Truncated answers (TC) are used for the whole records they hold; one that holds none fails
//! with [`DnsError::Truncated`], as there is no TCP retry. CNAME chains are followed within an
//! answer, which is how recursive servers return them.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant};

use super::hosts::Hosts;
use super::message::{
    self, check_name_structure, Message, NameFault, ParseError, RData, Rcode, Record, RecordType,
    Srv, CLASS_IN,
};

pub const SIP_DEFAULT_PORT: u16 = 5060;
pub const DNS_PORT: u16 = 53;
/// How long one nameserver gets to answer one query, retransmissions included.
pub const DEFAULT_SERVER_TIMEOUT: Duration = Duration::from_secs(5);
/// The C library reads no more than three (`MAXNS`); more would only lengthen the wait when
/// all of them are down.
const MAX_NAMESERVERS: usize = 3;
/// Bounds the queries one lookup sends; no SIP service publishes more servers than this.
const MAX_TARGETS: usize = 16;
/// Recursive servers return whole CNAME chains; a longer one than this is a loop.
const MAX_CNAME_HOPS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    fn srv_prefix(self) -> &'static str {
        match self {
            Transport::Udp => "_sip._udp.",
            Transport::Tcp => "_sip._tcp.",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        })
    }
}

/// Why a SIP server could not be located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsError {
    InvalidName {
        name: String,
        fault: NameFault,
    },
    /// There is no nameserver to ask and the name is neither a literal nor in the hosts table.
    NoNameservers,
    /// NXDOMAIN for the host.
    NoSuchHost {
        name: String,
    },
    /// The host exists but has neither A nor AAAA records.
    NoAddress {
        name: String,
    },
    /// The SRV records name servers, none of which has an address.
    NoTargetAddress {
        service: String,
        targets: Vec<String>,
    },
    /// A single SRV record with target `.`: RFC 2782's "decidedly not available".
    ServiceNotOffered {
        service: String,
    },
    /// None of `servers` answered within `waited` (each).
    Timeout {
        servers: Vec<SocketAddr>,
        waited: Duration,
    },
    ServerFailure {
        server: SocketAddr,
        name: String,
        qtype: RecordType,
    },
    Refused {
        server: SocketAddr,
        name: String,
        qtype: RecordType,
    },
    /// FORMERR, NOTIMP or a code this resolver does not know.
    UnexpectedRcode {
        server: SocketAddr,
        name: String,
        qtype: RecordType,
        rcode: Rcode,
    },
    Malformed {
        server: SocketAddr,
        error: ParseError,
    },
    Truncated {
        name: String,
        qtype: RecordType,
    },
    /// The driver could not send to the nameserver at all.
    Unreachable {
        server: SocketAddr,
        reason: String,
    },
    /// The driver could not open or use its socket.
    Socket {
        reason: String,
    },
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::InvalidName { name, fault } => {
                write!(f, "DNS: {name:?} is not a valid host name: {fault}")
            }
            DnsError::NoNameservers => f.write_str("DNS: no nameserver configured"),
            DnsError::NoSuchHost { name } => write!(f, "DNS: no such host {name}"),
            DnsError::NoAddress { name } => {
                write!(f, "DNS: {name} has no address (no A or AAAA record)")
            }
            DnsError::NoTargetAddress { service, targets } => {
                write!(f, "DNS: no server that {service} names has an address")?;
                if !targets.is_empty() {
                    write!(f, " ({})", targets.join(", "))?;
                }
                Ok(())
            }
            DnsError::ServiceNotOffered { service } => write!(
                f,
                "DNS: {service} says the service is not offered there (SRV target \".\")"
            ),
            DnsError::Timeout { servers, waited } => {
                let list: Vec<String> = servers.iter().map(SocketAddr::to_string).collect();
                write!(
                    f,
                    "DNS: no answer from {} after {} s",
                    list.join(", "),
                    seconds(*waited)
                )?;
                if servers.len() > 1 {
                    f.write_str(" each")?;
                }
                Ok(())
            }
            DnsError::ServerFailure {
                server,
                name,
                qtype,
            } => write!(
                f,
                "DNS: server failure at {server} looking up {name} {qtype}"
            ),
            DnsError::Refused {
                server,
                name,
                qtype,
            } => write!(f, "DNS: {server} refused to look up {name} {qtype}"),
            DnsError::UnexpectedRcode {
                server,
                name,
                qtype,
                rcode,
            } => write!(
                f,
                "DNS: {server} answered {rcode} looking up {name} {qtype}"
            ),
            DnsError::Malformed { server, error } => {
                write!(f, "DNS: malformed answer from {server}: {error}")
            }
            DnsError::Truncated { name, qtype } => write!(
                f,
                "DNS: the answer for {name} {qtype} was truncated and there is no TCP retry"
            ),
            DnsError::Unreachable { server, reason } => {
                write!(f, "DNS: cannot send to {server}: {reason}")
            }
            DnsError::Socket { reason } => write!(f, "DNS: socket error: {reason}"),
        }
    }
}

impl std::error::Error for DnsError {}

/// `5`, `0.3`, `2.25`: whole seconds stay whole so the usual message reads "after 5 s".
fn seconds(d: Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64());
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Waits between transmissions to one server: 1 s, then doubling, cut so that they add up to
/// `per_server`.
pub fn retransmit_schedule(per_server: Duration) -> Vec<Duration> {
    let mut out = Vec::new();
    let mut left = per_server;
    let mut step = Duration::from_secs(1);
    while !left.is_zero() {
        let wait = step.min(left);
        out.push(wait);
        left -= wait;
        step = step.saturating_mul(2);
    }
    if out.is_empty() {
        out.push(Duration::ZERO);
    }
    out
}

#[derive(Clone, Debug)]
pub struct ResolverConfig {
    /// Asked in order; a query moves to the next when one fails or stays silent.
    pub nameservers: Vec<SocketAddr>,
    /// `retransmit[i]` is the wait after the `i`-th transmission to a server; after the last
    /// one the server is given up.
    pub retransmit: Vec<Duration>,
    /// Consulted before DNS, for the host and for SRV targets.
    pub hosts: Hosts,
    /// Seeds query IDs and the weighted choice among SRV records.
    pub seed: u64,
}

impl ResolverConfig {
    pub fn new(nameservers: Vec<SocketAddr>, seed: u64) -> ResolverConfig {
        ResolverConfig {
            nameservers,
            retransmit: retransmit_schedule(DEFAULT_SERVER_TIMEOUT),
            hosts: Hosts::default(),
            seed,
        }
    }

    pub fn with_server_timeout(mut self, per_server: Duration) -> ResolverConfig {
        self.retransmit = retransmit_schedule(per_server);
        self
    }

    pub fn with_hosts(mut self, hosts: Hosts) -> ResolverConfig {
        self.hosts = hosts;
        self
    }

    pub fn server_timeout(&self) -> Duration {
        self.retransmit.iter().sum()
    }
}

/// The `nameserver` lines of a resolv.conf text, on port 53, at most three. An IPv6 address
/// with a zone is taken only when the zone is a number: an interface name would need a
/// system call to turn into one.
pub fn nameservers_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        if fields.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = fields.next().and_then(parse_nameserver) else {
            continue;
        };
        if !out.contains(&addr) {
            out.push(addr);
        }
        if out.len() == MAX_NAMESERVERS {
            break;
        }
    }
    out
}

fn parse_nameserver(text: &str) -> Option<SocketAddr> {
    let (ip, zone) = match text.split_once('%') {
        Some((ip, zone)) => (ip, Some(zone)),
        None => (text, None),
    };
    let ip: IpAddr = ip.parse().ok()?;
    match (ip, zone) {
        (ip, None) => Some(SocketAddr::new(ip, DNS_PORT)),
        (IpAddr::V6(v6), Some(zone)) => {
            let scope = zone.parse().ok()?;
            Some(SocketAddr::V6(SocketAddrV6::new(v6, DNS_PORT, 0, scope)))
        }
        (IpAddr::V4(_), Some(_)) => None,
    }
}

/// One RFC 3263 lookup: feed it datagrams and the passing of time until [`Lookup::result`]
/// has the answer.
#[derive(Debug)]
pub struct Lookup {
    host: String,
    transport: Transport,
    config: ResolverConfig,
    rng: SplitMix64,
    queries: Vec<Query>,
    /// Leading nameservers that stayed silent or could not be reached: later queries start
    /// after them instead of waiting out the same timeout again.
    skip: usize,
    phase: Phase,
    result: Option<Result<Vec<SocketAddr>, DnsError>>,
}

#[derive(Debug)]
enum Phase {
    Srv {
        service: String,
        query: usize,
    },
    /// `service` is the SRV name the targets came from, `None` when the host itself is the
    /// only target.
    Addresses {
        service: Option<String>,
        targets: Vec<Target>,
    },
    Done,
}

#[derive(Debug)]
struct Target {
    name: String,
    port: u16,
    /// Addresses known without asking: from the hosts table or an additional section.
    known: Vec<IpAddr>,
    a: Option<usize>,
    aaaa: Option<usize>,
}

#[derive(Debug)]
struct Query {
    id: u16,
    name: String,
    qtype: RecordType,
    packet: Vec<u8>,
    /// Index into the nameservers of the one being asked now.
    server: usize,
    attempt: usize,
    deadline: Instant,
    unsent: bool,
    /// Servers that let every transmission go unanswered.
    silent: Vec<SocketAddr>,
    /// The latest definite failure (SERVFAIL, REFUSED, garbage), reported in preference to
    /// silence when no server helps.
    last_error: Option<DnsError>,
    outcome: Option<Outcome>,
}

#[derive(Clone, Debug)]
enum Outcome {
    /// NOERROR: the records of the asked type at the end of any CNAME chain (empty for
    /// NODATA), and the additional section.
    Records(Vec<RData>, Vec<Record>),
    NoSuchName,
    Failed(DnsError),
}

impl Lookup {
    /// Starts locating the SIP server `host` (a name, an IPv4 address, or an IPv6 address with
    /// or without `[ ]`). An IP literal or hosts-table name is resolved here and now.
    pub fn new(
        host: &str,
        port: Option<u16>,
        transport: Transport,
        mut config: ResolverConfig,
        now: Instant,
    ) -> Lookup {
        if config.retransmit.is_empty() {
            config.retransmit = retransmit_schedule(DEFAULT_SERVER_TIMEOUT);
        }
        let name = host.trim();
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        let rng = SplitMix64(config.seed);
        let mut lookup = Lookup {
            host: name,
            transport,
            config,
            rng,
            queries: Vec::new(),
            skip: 0,
            phase: Phase::Done,
            result: None,
        };
        lookup.start(port, now);
        lookup
    }

    fn start(&mut self, port: Option<u16>, now: Instant) {
        let port_or_default = port.unwrap_or(SIP_DEFAULT_PORT);
        match ip_literal(&self.host) {
            Err(fault) => return self.fail_name(fault),
            Ok(Some(ip)) => return self.finish(Ok(vec![SocketAddr::new(ip, port_or_default)])),
            Ok(None) => {}
        }
        if let Err(fault) = check_host_name(&self.host) {
            return self.fail_name(fault);
        }
        let known = self.config.hosts.lookup(&self.host);
        if !known.is_empty() {
            let addrs = known
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port_or_default))
                .collect();
            return self.finish(Ok(addrs));
        }
        if self.config.nameservers.is_empty() {
            return self.finish(Err(DnsError::NoNameservers));
        }
        if port.is_none() {
            let service = format!("{}{}", self.transport.srv_prefix(), self.host);
            // A host near the length limit leaves no room for the prefix; it can still have
            // A/AAAA records.
            if let Some(query) = self.ask(&service, RecordType::Srv, now) {
                self.phase = Phase::Srv { service, query };
                return;
            }
        }
        let host = self.host.clone();
        self.resolve_targets(None, vec![(host, port_or_default)], &[], now);
    }

    fn fail_name(&mut self, fault: NameFault) {
        let name = self.host.clone();
        self.finish(Err(DnsError::InvalidName { name, fault }));
    }

    fn finish(&mut self, result: Result<Vec<SocketAddr>, DnsError>) {
        self.phase = Phase::Done;
        self.result = Some(result);
    }

    /// The ordered server addresses, or why there are none; `None` while still looking.
    pub fn result(&self) -> Option<Result<Vec<SocketAddr>, DnsError>> {
        self.result.clone()
    }

    pub fn is_done(&self) -> bool {
        self.result.is_some()
    }

    /// The next datagram to send and the nameserver to send it to. Call until `None` after
    /// creating the lookup and after every other call.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        if self.result.is_some() {
            return None;
        }
        let servers = &self.config.nameservers;
        self.queries
            .iter_mut()
            .filter(|q| q.outcome.is_none() && q.unsent)
            .find_map(|q| {
                q.unsent = false;
                servers.get(q.server).map(|s| (*s, q.packet.clone()))
            })
    }

    /// When [`Lookup::handle_timeout`] is next due; `None` exactly when the lookup is done.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.result.is_some() {
            return None;
        }
        self.pending().map(|q| q.deadline).min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.result.is_some() {
            return;
        }
        for i in 0..self.queries.len() {
            let q = &mut self.queries[i];
            if q.outcome.is_some() || q.deadline > now {
                continue;
            }
            q.attempt += 1;
            if let Some(wait) = self.config.retransmit.get(q.attempt) {
                q.deadline = now + *wait;
                q.unsent = true;
            } else {
                if let Some(server) = self.config.nameservers.get(q.server) {
                    q.silent.push(*server);
                }
                self.skip = self.skip.max(q.server + 1);
                self.next_server(i, now);
            }
        }
        self.advance(now);
    }

    /// A datagram received on the driver's socket from `from`. Anything that is not the
    /// answer to an outstanding query is ignored.
    pub fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr, now: Instant) {
        if self.result.is_some() {
            return;
        }
        let from = unmap(from);
        let Some(id) = bytes.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
            return;
        };
        let servers = &self.config.nameservers;
        // A late answer from a server already given up on is as good as any.
        let Some(i) = self.queries.iter().position(|q| {
            q.outcome.is_none()
                && q.id == id
                && servers.iter().take(q.server + 1).any(|s| unmap(*s) == from)
        }) else {
            return;
        };
        let current = servers.get(self.queries[i].server).map(|s| unmap(*s)) == Some(from);
        let answer = match Message::parse(bytes) {
            Ok(m) => m,
            Err(error) => {
                // Only the server being asked moves the query on; garbage that merely claims
                // to come from an earlier one is not worth abandoning the current one for.
                if current {
                    self.queries[i].last_error = Some(DnsError::Malformed {
                        server: from,
                        error,
                    });
                    self.next_server(i, now);
                    self.advance(now);
                }
                return;
            }
        };
        let q = &mut self.queries[i];
        if !answer.header.response || !repeats_question(&answer, q) {
            return;
        }
        let name = q.name.clone();
        let qtype = q.qtype;
        let server = from;
        match answer.header.rcode {
            Rcode::NoError => {
                let found = chase(&q.name, q.qtype, &answer.answers);
                q.outcome = Some(if found.is_empty() && answer.header.truncated {
                    Outcome::Failed(DnsError::Truncated { name, qtype })
                } else {
                    Outcome::Records(found, answer.additional)
                });
            }
            Rcode::NameError => q.outcome = Some(Outcome::NoSuchName),
            rcode => {
                q.last_error = Some(match rcode {
                    Rcode::ServerFailure => DnsError::ServerFailure {
                        server,
                        name,
                        qtype,
                    },
                    Rcode::Refused => DnsError::Refused {
                        server,
                        name,
                        qtype,
                    },
                    rcode => DnsError::UnexpectedRcode {
                        server,
                        name,
                        qtype,
                        rcode,
                    },
                });
                if current {
                    self.next_server(i, now);
                }
            }
        }
        self.advance(now);
    }

    /// The driver could not send to `server` (no route, no IPv6, ...): every query waiting on
    /// it moves to the next server now instead of after its timeout.
    pub fn on_unreachable(&mut self, server: SocketAddr, reason: &str, now: Instant) {
        if self.result.is_some() {
            return;
        }
        let server = unmap(server);
        for i in 0..self.queries.len() {
            let q = &self.queries[i];
            let asked = self.config.nameservers.get(q.server).map(|s| unmap(*s));
            if q.outcome.is_some() || asked != Some(server) {
                continue;
            }
            self.skip = self.skip.max(self.queries[i].server + 1);
            self.queries[i].last_error = Some(DnsError::Unreachable {
                server,
                reason: reason.to_string(),
            });
            self.next_server(i, now);
        }
        self.advance(now);
    }

    fn pending(&self) -> impl Iterator<Item = &Query> {
        self.queries.iter().filter(|q| q.outcome.is_none())
    }

    /// Queues a query; `None` when `name` cannot be encoded.
    fn ask(&mut self, name: &str, qtype: RecordType, now: Instant) -> Option<usize> {
        let id = loop {
            // Truncation is the point: any 16 bits of the generator are as good as others.
            let id = self.rng.next() as u16;
            if !self.pending().any(|q| q.id == id) {
                break id;
            }
        };
        let packet = message::build_query(id, name, qtype).ok()?;
        // The last server is asked even when it failed before: a lookup never gives up
        // without asking.
        let server = self
            .skip
            .min(self.config.nameservers.len().saturating_sub(1));
        self.queries.push(Query {
            id,
            name: name.to_string(),
            qtype,
            packet,
            server,
            attempt: 0,
            deadline: now + self.config.retransmit[0],
            unsent: true,
            silent: Vec::new(),
            last_error: None,
            outcome: None,
        });
        Some(self.queries.len() - 1)
    }

    fn next_server(&mut self, i: usize, now: Instant) {
        let waited = self.config.server_timeout();
        let first_wait = self.config.retransmit[0];
        let servers = self.config.nameservers.len();
        let q = &mut self.queries[i];
        q.server += 1;
        q.attempt = 0;
        if q.server < servers {
            q.deadline = now + first_wait;
            q.unsent = true;
            return;
        }
        let error = q.last_error.take().unwrap_or_else(|| DnsError::Timeout {
            servers: q.silent.clone(),
            waited,
        });
        q.outcome = Some(Outcome::Failed(error));
    }

    fn resolve_targets(
        &mut self,
        service: Option<String>,
        list: Vec<(String, u16)>,
        additional: &[Record],
        now: Instant,
    ) {
        let mut targets = Vec::new();
        for (name, port) in list.into_iter().take(MAX_TARGETS) {
            let mut t = Target {
                name,
                port,
                known: Vec::new(),
                a: None,
                aaaa: None,
            };
            if let Ok(ip) = t.name.parse::<IpAddr>() {
                // RFC 2782 wants a name here, but an address is unambiguous.
                t.known.push(ip);
            } else if check_host_name(&t.name).is_ok() {
                t.known = self.config.hosts.lookup(&t.name);
                if t.known.is_empty() {
                    t.known = addresses_of(&t.name, additional);
                }
                // A server that sends some addresses of a target in the additional section
                // sends all it has at hand; asking again would cost a round trip for nothing.
                if t.known.is_empty() {
                    t.a = self.ask(&t.name, RecordType::A, now);
                    t.aaaa = self.ask(&t.name, RecordType::Aaaa, now);
                }
            }
            targets.push(t);
        }
        self.phase = Phase::Addresses { service, targets };
    }

    fn advance(&mut self, now: Instant) {
        loop {
            match &self.phase {
                Phase::Done => return,
                Phase::Srv { service, query } => {
                    let Some(outcome) = self.queries[*query].outcome.clone() else {
                        return;
                    };
                    let service = service.clone();
                    self.after_srv(service, outcome, now);
                }
                Phase::Addresses { service, targets } => {
                    let waiting = targets
                        .iter()
                        .flat_map(|t| [t.a, t.aaaa])
                        .flatten()
                        .any(|i| self.queries[i].outcome.is_none());
                    if waiting {
                        return;
                    }
                    let result = self.collect(service.as_deref(), targets);
                    self.finish(result);
                    return;
                }
            }
        }
    }

    fn after_srv(&mut self, service: String, outcome: Outcome, now: Instant) {
        let host = self.host.clone();
        let fallback = vec![(host, SIP_DEFAULT_PORT)];
        match outcome {
            Outcome::Records(found, additional) => {
                let records: Vec<Srv> = found
                    .into_iter()
                    .filter_map(|r| match r {
                        RData::Srv(s) => Some(s),
                        _ => None,
                    })
                    .collect();
                if records.is_empty() {
                    return self.resolve_targets(None, fallback, &[], now);
                }
                if records.len() == 1 && records[0].target == "." {
                    return self.finish(Err(DnsError::ServiceNotOffered { service }));
                }
                let list = order_srv(records, &mut self.rng)
                    .into_iter()
                    .filter(|s| s.target != ".")
                    .map(|s| (s.target, s.port))
                    .collect();
                self.resolve_targets(Some(service), list, &additional, now);
            }
            Outcome::NoSuchName => self.resolve_targets(None, fallback, &[], now),
            // Asking the same silent servers for A records would only double the wait.
            Outcome::Failed(e @ (DnsError::Timeout { .. } | DnsError::Unreachable { .. })) => {
                self.finish(Err(e))
            }
            // Some home routers fail SRV queries yet answer A queries.
            Outcome::Failed(_) => self.resolve_targets(None, fallback, &[], now),
        }
    }

    fn collect(
        &self,
        service: Option<&str>,
        targets: &[Target],
    ) -> Result<Vec<SocketAddr>, DnsError> {
        let mut addrs: Vec<SocketAddr> = Vec::new();
        let mut no_such_name = false;
        let mut failure: Option<&DnsError> = None;
        for t in targets {
            let mut ips = t.known.clone();
            for i in [t.a, t.aaaa].into_iter().flatten() {
                match &self.queries[i].outcome {
                    Some(Outcome::Records(found, _)) => {
                        ips.extend(found.iter().filter_map(|r| match r {
                            RData::A(ip) => Some(IpAddr::V4(*ip)),
                            RData::Aaaa(ip) => Some(IpAddr::V6(*ip)),
                            _ => None,
                        }))
                    }
                    Some(Outcome::NoSuchName) => no_such_name = true,
                    Some(Outcome::Failed(e)) => {
                        failure.get_or_insert(e);
                    }
                    None => {}
                }
            }
            for ip in ips {
                let addr = SocketAddr::new(ip, t.port);
                if !addrs.contains(&addr) {
                    addrs.push(addr);
                }
            }
        }
        if !addrs.is_empty() {
            return Ok(addrs);
        }
        if service.is_none() && no_such_name {
            return Err(DnsError::NoSuchHost {
                name: self.host.clone(),
            });
        }
        // A target that could not be asked might have had addresses; saying so beats
        // claiming there are none.
        if let Some(e) = failure {
            return Err(e.clone());
        }
        Err(match service {
            None => DnsError::NoAddress {
                name: self.host.clone(),
            },
            Some(service) => DnsError::NoTargetAddress {
                service: service.to_string(),
                targets: targets.iter().map(|t| t.name.clone()).collect(),
            },
        })
    }
}

/// `None` for a name; an error for `[...]` that is not IPv6.
fn ip_literal(host: &str) -> Result<Option<IpAddr>, NameFault> {
    if let Some(inner) = host.strip_prefix('[') {
        return match inner.strip_suffix(']').map(str::parse::<Ipv6Addr>) {
            Some(Ok(ip)) => Ok(Some(IpAddr::V6(ip))),
            _ => Err(NameFault::BadIpv6Literal),
        };
    }
    Ok(host.parse::<IpAddr>().ok())
}

/// Host name syntax (RFC 1123 2.1), with `_` allowed because SRV owner names need it and some
/// internal zones use it. `host` has no trailing dot.
fn check_host_name(host: &str) -> Result<(), NameFault> {
    if host.is_empty() {
        return Err(NameFault::Empty);
    }
    if let Some(c) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(NameFault::BadCharacter(c));
    }
    check_name_structure(host)
}

fn repeats_question(answer: &Message, q: &Query) -> bool {
    match answer.questions.as_slice() {
        [only] => only.name == q.name && only.qtype == q.qtype && only.qclass == CLASS_IN,
        _ => false,
    }
}

/// The records of `qtype` for `name`, following CNAMEs.
fn chase(name: &str, qtype: RecordType, answers: &[Record]) -> Vec<RData> {
    let mut current = name;
    for _ in 0..MAX_CNAME_HOPS {
        let here = || {
            answers
                .iter()
                .filter(move |r| r.class == CLASS_IN && r.name == current)
        };
        let found: Vec<RData> = here()
            .filter(|r| r.data.rtype() == qtype)
            .map(|r| r.data.clone())
            .collect();
        if !found.is_empty() {
            return found;
        }
        match here().find_map(|r| match &r.data {
            RData::Cname(target) => Some(target.as_str()),
            _ => None,
        }) {
            Some(target) => current = target,
            None => break,
        }
    }
    Vec::new()
}

fn addresses_of(name: &str, records: &[Record]) -> Vec<IpAddr> {
    let mut v4: Vec<IpAddr> = Vec::new();
    let mut v6: Vec<IpAddr> = Vec::new();
    for r in records
        .iter()
        .filter(|r| r.class == CLASS_IN && r.name == name)
    {
        match r.data {
            RData::A(ip) => v4.push(IpAddr::V4(ip)),
            RData::Aaaa(ip) => v6.push(IpAddr::V6(ip)),
            _ => {}
        }
    }
    v4.extend(v6);
    v4
}

/// A dual-stack socket reports IPv4 peers as `::ffff:a.b.c.d`.
fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

/// RFC 2782's ordering: ascending priority; within a priority, repeatedly pick a record with
/// probability proportional to its weight, zero-weight records first in line so they have
/// a small chance too.
fn order_srv(mut records: Vec<Srv>, rng: &mut SplitMix64) -> Vec<Srv> {
    records.sort_by_key(|s| s.priority);
    let mut out = Vec::with_capacity(records.len());
    while let Some(first) = records.first() {
        let priority = first.priority;
        let end = records
            .iter()
            .position(|s| s.priority != priority)
            .unwrap_or(records.len());
        let mut group: Vec<Srv> = records.drain(..end).collect();
        group.sort_by_key(|s| s.weight != 0);
        while !group.is_empty() {
            let total: u64 = group.iter().map(|s| u64::from(s.weight)).sum();
            let pick = rng.below(total + 1);
            let mut running = 0u64;
            let mut chosen = group.len() - 1;
            for (i, s) in group.iter().enumerate() {
                running += u64::from(s.weight);
                if running >= pick {
                    chosen = i;
                    break;
                }
            }
            out.push(group.remove(chosen));
        }
    }
    out
}

/// Small, seedable and good enough for IDs and weighted choice; not for secrets.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by the multiply-high method, which has no modulo bias
    /// worth speaking of.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf() {
        let text = "# generated\nsearch example.com\nnameserver 127.0.0.53\n\
                    ; comment\nnameserver   2001:db8::53 # trailing\nnameserver fe80::1%eth0\n\
                    nameserver fe80::1%2\nnameserver 127.0.0.53\nnameserver 192.0.2.1\n\
                    nameserver 192.0.2.2\noptions edns0\n";
        let ns = nameservers_from_resolv_conf(text);
        assert_eq!(
            ns,
            vec![
                "127.0.0.53:53".parse().unwrap(),
                "[2001:db8::53]:53".parse().unwrap(),
                "[fe80::1%2]:53".parse().unwrap(),
            ]
        );
        assert!(nameservers_from_resolv_conf("").is_empty());
    }

    #[test]
    fn schedule_adds_up() {
        let s = |ms: u64| retransmit_schedule(Duration::from_millis(ms));
        assert_eq!(
            s(5000),
            [1000, 2000, 2000].map(Duration::from_millis).to_vec()
        );
        assert_eq!(s(300), vec![Duration::from_millis(300)]);
        assert_eq!(
            s(10_000),
            [1000, 2000, 4000, 3000].map(Duration::from_millis).to_vec()
        );
        assert_eq!(s(0), vec![Duration::ZERO]);
    }

    #[test]
    fn seconds_read_naturally() {
        assert_eq!(seconds(Duration::from_secs(5)), "5");
        assert_eq!(seconds(Duration::from_millis(300)), "0.3");
        assert_eq!(seconds(Duration::from_millis(2250)), "2.25");
    }

    #[test]
    fn host_names() {
        assert_eq!(check_host_name("sip.example.com"), Ok(()));
        assert_eq!(check_host_name("_sip._udp.x"), Ok(()));
        assert_eq!(check_host_name(""), Err(NameFault::Empty));
        assert_eq!(
            check_host_name("sip:x.com"),
            Err(NameFault::BadCharacter(':'))
        );
        assert_eq!(check_host_name("a..b"), Err(NameFault::EmptyLabel));
        assert_eq!(ip_literal("[::1]"), Ok(Some("::1".parse().unwrap())));
        assert_eq!(ip_literal("[1.2.3.4]"), Err(NameFault::BadIpv6Literal));
        assert_eq!(ip_literal("::1"), Ok(Some("::1".parse().unwrap())));
        assert_eq!(ip_literal("example.com"), Ok(None));
    }

    fn srv(priority: u16, weight: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port: 5060,
            target: target.into(),
        }
    }

    #[test]
    fn srv_order_respects_priority_and_weight() {
        let records = vec![
            srv(20, 0, "c"),
            srv(10, 90, "a"),
            srv(10, 10, "b"),
            srv(30, 0, "d"),
        ];
        let mut a_first = 0;
        for seed in 0..2000 {
            let order = order_srv(records.clone(), &mut SplitMix64(seed));
            let names: Vec<&str> = order.iter().map(|s| s.target.as_str()).collect();
            assert_eq!(&names[2..], ["c", "d"]);
            if names[0] == "a" {
                a_first += 1;
            }
        }
        // 91 of 101 picks by RFC 2782's arithmetic.
        assert!((1700..1900).contains(&a_first), "{a_first}");
    }

    #[test]
    fn zero_weights_are_rarely_first() {
        let records = vec![srv(1, 0, "zero"), srv(1, 100, "heavy")];
        let zero_first = (0..2000)
            .filter(|seed| order_srv(records.clone(), &mut SplitMix64(*seed))[0].target == "zero")
            .count();
        assert!(zero_first < 80, "{zero_first}");
    }
}
