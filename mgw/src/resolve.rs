//! Blocking lookup of a SIP server's addresses (RFC 3263) for trunks: drives the sans-IO
//! [`Lookup`] over one std UDP socket whose read timeout is the lookup's timer.
//!
//! Without an explicit nameserver list it reads `/etc/hosts` (consulted before DNS) and the
//! `nameserver` lines of `/etc/resolv.conf`, falling back like the C library to 127.0.0.1
//! when there are none. The socket is bound to an ephemeral port that the kernel picks at
//! random, which together with the random query IDs makes forged answers hard to land
//! (RFC 5452).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mgw_core::dns::{
    nameservers_from_resolv_conf, DnsError, Hosts, Lookup, ResolverConfig, Transport, DNS_PORT,
};

pub const RESOLV_CONF: &str = "/etc/resolv.conf";
pub const HOSTS_FILE: &str = "/etc/hosts";

/// Answers for one query fit in 512 bytes without EDNS; a larger buffer costs nothing and
/// keeps an oversized answer from being cut into something that looks malformed.
const RECV_BUFFER: usize = 4096;

/// The addresses of the SIP server `host` (a name, an IPv4 address or an IPv6 address in
/// `[ ]`) in the order to try them. `port` given means no SRV lookup. `timeout` is how long
/// each nameserver gets to answer a query, retransmissions included (5 s is usual).
pub fn resolve(
    host: &str,
    port: Option<u16>,
    transport: Transport,
    nameservers_override: Option<Vec<SocketAddr>>,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, DnsError> {
    let config = match nameservers_override {
        Some(servers) => ResolverConfig::new(servers, seed()),
        None => ResolverConfig::new(system_nameservers(), seed()).with_hosts(system_hosts()),
    }
    .with_server_timeout(timeout);
    let servers = config.nameservers.clone();
    let lookup = Lookup::new(host, port, transport, config, Instant::now());
    let result = drive(lookup, &servers);
    match &result {
        Ok(addrs) => log::debug!("DNS: {host} ({transport}) is {addrs:?}"),
        Err(e) => log::debug!("{e}"),
    }
    result
}

/// Nameservers from /etc/resolv.conf; 127.0.0.1 when it names none or cannot be read, as the
/// C library does.
pub fn system_nameservers() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string(RESOLV_CONF).unwrap_or_default();
    let servers = nameservers_from_resolv_conf(&text);
    if servers.is_empty() {
        return vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DNS_PORT)];
    }
    servers
}

/// /etc/hosts; empty when it cannot be read.
pub fn system_hosts() -> Hosts {
    Hosts::parse(&std::fs::read_to_string(HOSTS_FILE).unwrap_or_default())
}

fn drive(mut lookup: Lookup, servers: &[SocketAddr]) -> Result<Vec<SocketAddr>, DnsError> {
    if let Some(result) = lookup.result() {
        return result;
    }
    let (sock, dual_stack) = open_socket(servers)?;
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        while let Some((to, bytes)) = lookup.poll_transmit() {
            let dest = match (dual_stack, to) {
                (true, SocketAddr::V4(v4)) => {
                    SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
                }
                (false, SocketAddr::V6(_)) => {
                    lookup.on_unreachable(to, "this host has no IPv6", Instant::now());
                    continue;
                }
                _ => to,
            };
            if let Err(e) = sock.send_to(&bytes, dest) {
                log::debug!("DNS: cannot send to {to}: {e}");
                lookup.on_unreachable(to, &e.to_string(), Instant::now());
            }
        }
        if let Some(result) = lookup.result() {
            return result;
        }
        let now = Instant::now();
        // The lookup always has a timer while it has no result; `now` only guards against
        // spinning if that ever broke.
        let wait = lookup
            .poll_timeout()
            .unwrap_or(now)
            .saturating_duration_since(now);
        if wait.is_zero() {
            lookup.handle_timeout(now);
            continue;
        }
        sock.set_read_timeout(Some(wait))
            .map_err(|e| socket_error("setting the read timeout", &e))?;
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => lookup.on_datagram(&buf[..n], from, Instant::now()),
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    lookup.handle_timeout(Instant::now())
                }
                // An ICMP error for an earlier datagram (Windows reports these on
                // unconnected sockets); the silent server's timeout handles it.
                io::ErrorKind::Interrupted
                | io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset => {}
                _ => return Err(socket_error("receiving from the nameservers", &e)),
            },
        }
    }
}

/// One socket for all nameservers. With any IPv6 nameserver it is an IPv6 socket, which on
/// Linux reaches IPv4 servers too through mapped addresses; if the host has no IPv6 at all,
/// an IPv4 socket, and the IPv6 servers are reported unreachable.
fn open_socket(servers: &[SocketAddr]) -> Result<(UdpSocket, bool), DnsError> {
    if servers.iter().any(SocketAddr::is_ipv6) {
        match UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)) {
            Ok(sock) => return Ok((sock, true)),
            Err(e) => log::debug!("DNS: no IPv6 socket ({e}); asking IPv4 nameservers only"),
        }
    }
    UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .map(|sock| (sock, false))
        .map_err(|e| socket_error("opening a UDP socket", &e))
}

fn socket_error(doing: &str, e: &io::Error) -> DnsError {
    DnsError::Socket {
        reason: format!("{doing}: {e}"),
    }
}

/// Query IDs must not be guessable from outside; std's hasher keys are drawn from OS
/// randomness, which spares a dependency on a random number crate.
fn seed() -> u64 {
    let mut h = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mgw_core::dns::{Message, RData, Rcode, Record, Srv};
    use std::thread;

    /// A nameserver on a loopback port that answers from `records` (NXDOMAIN for names it has
    /// no record of) until it has been idle for 10 s.
    fn responder(bind: &str, records: Vec<Record>) -> Option<SocketAddr> {
        let sock = UdpSocket::bind(bind).ok()?;
        let addr = sock.local_addr().ok()?;
        sock.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                let Ok(query) = Message::parse(&buf[..n]) else {
                    continue;
                };
                let Some(q) = query.questions.first() else {
                    continue;
                };
                let known = records.iter().any(|r| r.name == q.name);
                let rcode = if known {
                    Rcode::NoError
                } else {
                    Rcode::NameError
                };
                let mut resp = Message::response_to(&query, rcode);
                resp.answers = records
                    .iter()
                    .filter(|r| r.name == q.name && r.data.rtype() == q.qtype)
                    .cloned()
                    .collect();
                let _ = sock.send_to(&resp.encode().unwrap(), from);
            }
        });
        Some(addr)
    }

    fn zone() -> Vec<Record> {
        vec![
            Record::new(
                "_sip._udp.trunk.test",
                60,
                RData::Srv(Srv {
                    priority: 10,
                    weight: 0,
                    port: 25070,
                    target: "sip1.trunk.test".into(),
                }),
            ),
            Record::new("sip1.trunk.test", 60, RData::A(Ipv4Addr::LOCALHOST)),
            Record::new("plain.test", 60, RData::A(Ipv4Addr::new(127, 0, 0, 2))),
        ]
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const T: Duration = Duration::from_secs(2);

    #[test]
    fn srv_then_address() {
        let ns = responder("127.0.0.1:0", zone()).unwrap();
        assert_eq!(
            resolve("trunk.test", None, Transport::Udp, Some(vec![ns]), T),
            Ok(vec![addr("127.0.0.1:25070")])
        );
    }

    #[test]
    fn explicit_port_and_no_srv() {
        let ns = responder("127.0.0.1:0", zone()).unwrap();
        assert_eq!(
            resolve("plain.test", Some(5080), Transport::Udp, Some(vec![ns]), T),
            Ok(vec![addr("127.0.0.2:5080")])
        );
        assert_eq!(
            resolve("plain.test", None, Transport::Tcp, Some(vec![ns]), T),
            Ok(vec![addr("127.0.0.2:5060")])
        );
    }

    #[test]
    fn no_such_host() {
        let ns = responder("127.0.0.1:0", zone()).unwrap();
        let err = resolve("missing.test", None, Transport::Udp, Some(vec![ns]), T).unwrap_err();
        assert_eq!(err.to_string(), "DNS: no such host missing.test");
    }

    #[test]
    fn silence_times_out_on_time() {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let ns = silent.local_addr().unwrap();
        let started = Instant::now();
        let err = resolve(
            "trunk.test",
            None,
            Transport::Udp,
            Some(vec![ns]),
            Duration::from_millis(300),
        )
        .unwrap_err();
        let took = started.elapsed();
        assert_eq!(
            err.to_string(),
            format!("DNS: no answer from {ns} after 0.3 s")
        );
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    #[test]
    fn literals_need_no_nameserver() {
        assert_eq!(
            resolve("[::1]", Some(5070), Transport::Udp, Some(vec![]), T),
            Ok(vec![addr("[::1]:5070")])
        );
        assert_eq!(
            resolve("192.0.2.1", None, Transport::Udp, Some(vec![]), T),
            Ok(vec![addr("192.0.2.1:5060")])
        );
    }

    /// A silent IPv6 nameserver, then an IPv4 one reached through the same dual-stack socket.
    #[test]
    fn mixed_families_share_one_socket() {
        let Ok(silent6) = UdpSocket::bind("[::1]:0") else {
            eprintln!("skipped: no IPv6 loopback here");
            return;
        };
        let ns6 = silent6.local_addr().unwrap();
        let ns4 = responder("127.0.0.1:0", zone()).unwrap();
        assert_eq!(
            resolve(
                "trunk.test",
                None,
                Transport::Udp,
                Some(vec![ns6, ns4]),
                Duration::from_millis(200)
            ),
            Ok(vec![addr("127.0.0.1:25070")])
        );
    }

    #[test]
    fn localhost_comes_from_the_hosts_file() {
        let hosts = system_hosts();
        if hosts.lookup("localhost").is_empty() {
            eprintln!("skipped: {HOSTS_FILE} does not name localhost");
            return;
        }
        let addrs = resolve("localhost", None, Transport::Udp, None, T).unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 5060));
    }
}
