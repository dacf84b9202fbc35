//! The RFC 3263 lookup against canned nameservers in virtual time: SRV ordering, fallbacks,
//! DNS errors, timeouts and retransmission, and answers that must be ignored.
//!
//! `dnsmasq_trunk_zone` (ignored by default) asks a real dnsmasq over UDP; start it first:
//!
//! ```sh
//! pid=$(scripts/dnsmasq-test.sh)        # serves the trunk.test zone on 127.0.0.1:15353
//! cargo test -p mgw-core --test dns_resolver -- --ignored
//! kill "$pid"
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use mgw_core::dns::message::Question;
use mgw_core::dns::{
    DnsError, Hosts, Lookup, Message, NameFault, RData, Rcode, Record, RecordType, ResolverConfig,
    Srv, Transport,
};

const NS1: &str = "127.0.0.53:53";
const NS2: &str = "192.0.2.53:53";
const LATENCY: Duration = Duration::from_millis(20);

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn srv(name: &str, priority: u16, weight: u16, port: u16, target: &str) -> Record {
    Record::new(
        name,
        300,
        RData::Srv(Srv {
            priority,
            weight,
            port,
            target: target.into(),
        }),
    )
}

fn a(name: &str, ip: &str) -> Record {
    Record::new(name, 300, RData::A(ip.parse().expect("test address")))
}

fn aaaa(name: &str, ip: &str) -> Record {
    Record::new(name, 300, RData::Aaaa(ip.parse().expect("test address")))
}

fn cname(name: &str, target: &str) -> Record {
    Record::new(name, 300, RData::Cname(target.into()))
}

/// A record of a type the resolver never asks for: makes a name exist without addresses.
fn txt(name: &str) -> Record {
    Record::new(
        name,
        300,
        RData::Other {
            rtype: 16,
            data: b"\x05hello".to_vec(),
        },
    )
}

#[derive(Clone, Default)]
struct Zone {
    records: Vec<Record>,
    /// Put into the additional section of SRV answers.
    glue: Vec<Record>,
    /// Answer with TC set and nothing in the answer section.
    truncate: bool,
}

impl Zone {
    fn new(records: Vec<Record>) -> Zone {
        Zone {
            records,
            ..Zone::default()
        }
    }

    /// What an authoritative server (or a recursive one in front of it) says.
    fn answer(&self, query: &Message) -> Message {
        let q = &query.questions[0];
        if !self.records.iter().any(|r| r.name == q.name) {
            return Message::response_to(query, Rcode::NameError);
        }
        let mut resp = Message::response_to(query, Rcode::NoError);
        if self.truncate {
            resp.header.truncated = true;
            return resp;
        }
        let mut name = q.name.clone();
        for _ in 0..8 {
            let here: Vec<&Record> = self.records.iter().filter(|r| r.name == name).collect();
            let wanted: Vec<Record> = here
                .iter()
                .filter(|r| r.data.rtype() == q.qtype)
                .map(|r| (*r).clone())
                .collect();
            if !wanted.is_empty() {
                resp.answers.extend(wanted);
                break;
            }
            match here.iter().find_map(|r| match &r.data {
                RData::Cname(t) => Some(((*r).clone(), t.clone())),
                _ => None,
            }) {
                Some((rec, target)) => {
                    resp.answers.push(rec);
                    name = target;
                }
                None => break,
            }
        }
        if q.qtype == RecordType::Srv {
            resp.additional = self.glue.clone();
        }
        resp
    }
}

#[derive(Clone)]
enum Server {
    Answers(Zone),
    Silent,
    Rcode(Rcode),
    Garbage,
}

struct Net {
    servers: HashMap<SocketAddr, Server>,
    /// Every query sent: when (since the start), to whom, what.
    log: Vec<(Duration, SocketAddr, Question)>,
}

impl Net {
    fn new(servers: &[(&str, Server)]) -> Net {
        Net {
            servers: servers.iter().map(|(a, s)| (addr(a), s.clone())).collect(),
            log: Vec::new(),
        }
    }

    fn one(zone: Zone) -> Net {
        Net::new(&[(NS1, Server::Answers(zone))])
    }

    fn questions(&self) -> Vec<(String, RecordType)> {
        self.log
            .iter()
            .map(|(_, _, q)| (q.name.clone(), q.qtype))
            .collect()
    }

    /// Runs `lookup` to completion; returns the result and the virtual time it took.
    fn run(
        &mut self,
        lookup: &mut Lookup,
        start: Instant,
    ) -> (Result<Vec<SocketAddr>, DnsError>, Duration) {
        let mut now = start;
        let mut in_flight: Vec<(Instant, SocketAddr, Vec<u8>)> = Vec::new();
        for _ in 0..10_000 {
            while let Some((to, bytes)) = lookup.poll_transmit() {
                let query = Message::parse(&bytes).expect("the resolver's own query parses");
                assert_eq!(query.questions.len(), 1);
                assert!(query.header.recursion_desired);
                self.log.push((now - start, to, query.questions[0].clone()));
                let reply = match self.servers.get(&to) {
                    Some(Server::Answers(zone)) => {
                        Some(zone.answer(&query).encode().expect("encodes"))
                    }
                    Some(Server::Rcode(rcode)) => Some(
                        Message::response_to(&query, *rcode)
                            .encode()
                            .expect("encodes"),
                    ),
                    Some(Server::Garbage) => {
                        let mut g = bytes[..2].to_vec();
                        g.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xc0, 0x0c]);
                        Some(g)
                    }
                    Some(Server::Silent) | None => None,
                };
                if let Some(reply) = reply {
                    in_flight.push((now + LATENCY, to, reply));
                }
            }
            // The driver relies on this: there is always a timer until there is a result.
            assert_eq!(lookup.poll_timeout().is_none(), lookup.is_done());
            if let Some(result) = lookup.result() {
                return (result, now - start);
            }
            let timer = lookup.poll_timeout().expect("a timer while not done");
            let next = in_flight
                .iter()
                .enumerate()
                .min_by_key(|(_, (at, _, _))| *at)
                .map(|(i, (at, _, _))| (i, *at));
            match next {
                Some((i, at)) if at <= timer => {
                    now = at;
                    let (_, from, bytes) = in_flight.remove(i);
                    lookup.on_datagram(&bytes, from, now);
                }
                _ => {
                    now = timer;
                    lookup.handle_timeout(now);
                }
            }
        }
        panic!("lookup did not finish");
    }
}

fn config(servers: &[&str], seed: u64) -> ResolverConfig {
    ResolverConfig::new(servers.iter().map(|s| addr(s)).collect(), seed)
}

fn resolve(
    net: &mut Net,
    host: &str,
    port: Option<u16>,
    seed: u64,
) -> Result<Vec<SocketAddr>, DnsError> {
    let servers: Vec<String> = {
        let mut v: Vec<SocketAddr> = net.servers.keys().copied().collect();
        // NS1 first whatever the hash order.
        v.sort_by_key(|s| *s != addr(NS1));
        v.iter().map(|s| s.to_string()).collect()
    };
    let servers: Vec<&str> = servers.iter().map(String::as_str).collect();
    let start = Instant::now();
    let mut lookup = Lookup::new(host, port, Transport::Udp, config(&servers, seed), start);
    net.run(&mut lookup, start).0
}

fn trunk_zone() -> Zone {
    let svc = "_sip._udp.example.com";
    Zone::new(vec![
        srv(svc, 10, 60, 5061, "a.example.com"),
        srv(svc, 10, 40, 5062, "b.example.com"),
        srv(svc, 20, 0, 5063, "c.example.com"),
        a("a.example.com", "192.0.2.1"),
        aaaa("a.example.com", "2001:db8::1"),
        a("b.example.com", "192.0.2.2"),
        a("c.example.com", "192.0.2.3"),
    ])
}

#[test]
fn srv_orders_by_priority_then_weight() {
    let a1 = addr("192.0.2.1:5061");
    let a6 = addr("[2001:db8::1]:5061");
    let b = addr("192.0.2.2:5062");
    let c = addr("192.0.2.3:5063");
    let mut a_first = 0;
    let runs = 400;
    for seed in 0..runs {
        let mut net = Net::one(trunk_zone());
        let got = resolve(&mut net, "example.com", None, seed).unwrap();
        assert!(
            got == [a1, a6, b, c] || got == [b, a1, a6, c],
            "seed {seed}: {got:?}"
        );
        if got[0] == a1 {
            a_first += 1;
        }
        assert_eq!(
            net.questions()[0],
            ("_sip._udp.example.com".into(), RecordType::Srv)
        );
    }
    // Weight 60 against 40: RFC 2782's draw picks it 61 times in 101.
    assert!((200..280).contains(&a_first), "a first {a_first} of {runs}");
}

#[test]
fn srv_target_without_address_gives_way_to_the_next() {
    let svc = "_sip._udp.example.com";
    for dead in [Some(txt("sip1.example.com")), None] {
        let mut records = vec![
            srv(svc, 10, 0, 5070, "sip1.example.com"),
            srv(svc, 20, 0, 5080, "sip2.example.com"),
            a("sip2.example.com", "192.0.2.20"),
        ];
        // With the TXT record sip1 exists without addresses (NODATA); without it NXDOMAIN.
        records.extend(dead);
        let mut net = Net::one(Zone::new(records));
        assert_eq!(
            resolve(&mut net, "example.com", None, 1),
            Ok(vec![addr("192.0.2.20:5080")])
        );
    }
}

#[test]
fn no_target_with_an_address_is_reported_with_the_targets() {
    let svc = "_sip._udp.example.com";
    let mut net = Net::one(Zone::new(vec![
        srv(svc, 10, 0, 5070, "sip1.example.com"),
        srv(svc, 20, 0, 5080, "sip2.example.com"),
    ]));
    let err = resolve(&mut net, "example.com", None, 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "DNS: no server that _sip._udp.example.com names has an address \
         (sip1.example.com, sip2.example.com)"
    );
}

#[test]
fn addresses_in_the_additional_section_save_the_queries() {
    let svc = "_sip._udp.example.com";
    let mut zone = Zone::new(vec![srv(svc, 10, 0, 5070, "sip1.example.com")]);
    zone.glue = vec![
        aaaa("sip1.example.com", "2001:db8::70"),
        a("sip1.example.com", "192.0.2.70"),
        a("unrelated.example.com", "192.0.2.99"),
    ];
    let mut net = Net::one(zone);
    assert_eq!(
        resolve(&mut net, "example.com", None, 1),
        Ok(vec![addr("192.0.2.70:5070"), addr("[2001:db8::70]:5070")])
    );
    assert_eq!(net.log.len(), 1);
}

#[test]
fn without_srv_the_host_itself_is_used_on_5060() {
    let mut net = Net::one(Zone::new(vec![
        a("example.com", "192.0.2.10"),
        aaaa("example.com", "2001:db8::10"),
    ]));
    assert_eq!(
        resolve(&mut net, "Example.COM.", None, 1),
        Ok(vec![addr("192.0.2.10:5060"), addr("[2001:db8::10]:5060")])
    );
    assert_eq!(
        net.questions(),
        vec![
            ("_sip._udp.example.com".into(), RecordType::Srv),
            ("example.com".into(), RecordType::A),
            ("example.com".into(), RecordType::Aaaa),
        ]
    );
}

#[test]
fn an_explicit_port_means_no_srv_lookup() {
    let mut zone = trunk_zone();
    zone.records.push(a("example.com", "192.0.2.10"));
    let mut net = Net::one(zone);
    assert_eq!(
        resolve(&mut net, "example.com", Some(5080), 1),
        Ok(vec![addr("192.0.2.10:5080")])
    );
    assert!(net.questions().iter().all(|(_, t)| *t != RecordType::Srv));
}

#[test]
fn tcp_asks_for_sip_over_tcp() {
    let mut net = Net::one(Zone::new(vec![
        srv("_sip._tcp.example.com", 1, 1, 5090, "t.example.com"),
        a("t.example.com", "192.0.2.9"),
    ]));
    let start = Instant::now();
    let mut lookup = Lookup::new(
        "example.com",
        None,
        Transport::Tcp,
        config(&[NS1], 3),
        start,
    );
    assert_eq!(
        net.run(&mut lookup, start).0,
        Ok(vec![addr("192.0.2.9:5090")])
    );
}

#[test]
fn cname_chains_are_followed() {
    let mut net = Net::one(Zone::new(vec![
        srv("_sip._udp.example.com", 1, 1, 5060, "sip.example.com"),
        cname("sip.example.com", "edge.cdn.example.net"),
        a("edge.cdn.example.net", "198.51.100.7"),
    ]));
    assert_eq!(
        resolve(&mut net, "example.com", None, 1),
        Ok(vec![addr("198.51.100.7:5060")])
    );
}

#[test]
fn nxdomain_is_no_such_host() {
    let mut net = Net::one(Zone::new(vec![a("example.com", "192.0.2.1")]));
    let err = resolve(&mut net, "example.invalid", None, 1).unwrap_err();
    assert_eq!(
        err,
        DnsError::NoSuchHost {
            name: "example.invalid".into()
        }
    );
    assert_eq!(err.to_string(), "DNS: no such host example.invalid");
}

#[test]
fn a_name_without_addresses_says_so() {
    let mut net = Net::one(Zone::new(vec![txt("example.com")]));
    let err = resolve(&mut net, "example.com", Some(5060), 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "DNS: example.com has no address (no A or AAAA record)"
    );
}

#[test]
fn silence_times_out_naming_the_server_and_the_seconds() {
    let mut net = Net::new(&[(NS1, Server::Silent)]);
    let start = Instant::now();
    let mut lookup = Lookup::new(
        "example.com",
        None,
        Transport::Udp,
        config(&[NS1], 1),
        start,
    );
    let (result, took) = net.run(&mut lookup, start);
    let err = result.unwrap_err();
    assert_eq!(
        err,
        DnsError::Timeout {
            servers: vec![addr(NS1)],
            waited: Duration::from_secs(5)
        }
    );
    assert_eq!(
        err.to_string(),
        "DNS: no answer from 127.0.0.53:53 after 5 s"
    );
    assert_eq!(took, Duration::from_secs(5));
    // Sent at 0 s, retransmitted at 1 s and 3 s; a silent SRV query ends the lookup.
    let times: Vec<Duration> = net.log.iter().map(|(t, _, _)| *t).collect();
    assert_eq!(times, [0, 1, 3].map(Duration::from_secs).to_vec());
}

#[test]
fn every_silent_server_is_named() {
    let mut net = Net::new(&[(NS1, Server::Silent), (NS2, Server::Silent)]);
    let start = Instant::now();
    let cfg = config(&[NS1, NS2], 1).with_server_timeout(Duration::from_millis(1500));
    let mut lookup = Lookup::new("example.com", Some(5060), Transport::Udp, cfg, start);
    let (result, took) = net.run(&mut lookup, start);
    assert_eq!(
        result.unwrap_err().to_string(),
        "DNS: no answer from 127.0.0.53:53, 192.0.2.53:53 after 1.5 s each"
    );
    assert_eq!(took, Duration::from_secs(3));
}

#[test]
fn the_next_server_answers_when_the_first_is_silent() {
    let mut net = Net::new(&[(NS1, Server::Silent), (NS2, Server::Answers(trunk_zone()))]);
    let start = Instant::now();
    let mut lookup = Lookup::new(
        "example.com",
        None,
        Transport::Udp,
        config(&[NS1, NS2], 1),
        start,
    );
    let (result, took) = net.run(&mut lookup, start);
    assert_eq!(result.unwrap().len(), 4);
    // 5 s for the first server, then an SRV and an address round trip with the second.
    assert_eq!(took, Duration::from_secs(5) + LATENCY * 2);
}

#[test]
fn servfail_moves_on_at_once_and_is_reported_when_no_one_helps() {
    let mut net = Net::new(&[
        (NS1, Server::Rcode(Rcode::ServerFailure)),
        (NS2, Server::Answers(trunk_zone())),
    ]);
    let start = Instant::now();
    let mut lookup = Lookup::new(
        "example.com",
        None,
        Transport::Udp,
        config(&[NS1, NS2], 1),
        start,
    );
    let (result, took) = net.run(&mut lookup, start);
    assert_eq!(result.unwrap().len(), 4);
    assert!(took < Duration::from_millis(100), "{took:?}");

    let mut net = Net::new(&[(NS1, Server::Rcode(Rcode::ServerFailure))]);
    let err = resolve(&mut net, "example.com", None, 1).unwrap_err();
    assert!(err.to_string().starts_with("DNS: server failure"), "{err}");
    assert_eq!(
        err.to_string(),
        "DNS: server failure at 127.0.0.53:53 looking up example.com A"
    );
    // SRV failed, so the host's own records were tried: a router that cannot do SRV.
    assert_eq!(net.questions().len(), 3);
}

#[test]
fn refused_and_odd_rcodes_are_named() {
    let mut net = Net::new(&[(NS1, Server::Rcode(Rcode::Refused))]);
    assert_eq!(
        resolve(&mut net, "example.com", Some(5060), 1)
            .unwrap_err()
            .to_string(),
        "DNS: 127.0.0.53:53 refused to look up example.com A"
    );
    let mut net = Net::new(&[(NS1, Server::Rcode(Rcode::NotImplemented))]);
    assert_eq!(
        resolve(&mut net, "example.com", Some(5060), 1)
            .unwrap_err()
            .to_string(),
        "DNS: 127.0.0.53:53 answered NOTIMP looking up example.com A"
    );
}

#[test]
fn a_malformed_answer_moves_to_the_next_server() {
    let mut net = Net::new(&[(NS1, Server::Garbage), (NS2, Server::Answers(trunk_zone()))]);
    let start = Instant::now();
    let mut lookup = Lookup::new(
        "example.com",
        None,
        Transport::Udp,
        config(&[NS1, NS2], 1),
        start,
    );
    assert_eq!(net.run(&mut lookup, start).0.unwrap().len(), 4);

    let mut net = Net::new(&[(NS1, Server::Garbage)]);
    let err = resolve(&mut net, "example.com", Some(5060), 1).unwrap_err();
    assert!(matches!(err, DnsError::Malformed { .. }), "{err:?}");
    assert!(err
        .to_string()
        .starts_with("DNS: malformed answer from 127.0.0.53:53: "));
}

#[test]
fn a_truncated_empty_answer_is_reported() {
    let mut zone = Zone::new(vec![a("example.com", "192.0.2.1")]);
    zone.truncate = true;
    let mut net = Net::one(zone);
    let err = resolve(&mut net, "example.com", Some(5060), 1).unwrap_err();
    assert_eq!(
        err,
        DnsError::Truncated {
            name: "example.com".into(),
            qtype: RecordType::A
        }
    );
}

#[test]
fn srv_target_dot_means_not_offered() {
    let mut net = Net::one(Zone::new(vec![srv("_sip._udp.example.com", 0, 0, 0, ".")]));
    assert_eq!(
        resolve(&mut net, "example.com", None, 1)
            .unwrap_err()
            .to_string(),
        "DNS: _sip._udp.example.com says the service is not offered there (SRV target \".\")"
    );
}

#[test]
fn literals_need_no_dns() {
    let now = Instant::now();
    let cases = [
        ("[2001:db8::1]", None, "[2001:db8::1]:5060"),
        ("[2001:db8::1]", Some(5070), "[2001:db8::1]:5070"),
        ("2001:db8::1", None, "[2001:db8::1]:5060"),
        ("192.0.2.1", Some(5080), "192.0.2.1:5080"),
    ];
    for (host, port, want) in cases {
        let mut l = Lookup::new(host, port, Transport::Udp, config(&[], 0), now);
        assert_eq!(l.result(), Some(Ok(vec![addr(want)])), "{host}");
        assert!(l.poll_transmit().is_none());
        assert!(l.poll_timeout().is_none());
    }
}

#[test]
fn bad_names_are_refused_before_any_query() {
    let now = Instant::now();
    let fault = |host: &str| match Lookup::new(host, None, Transport::Udp, config(&[NS1], 0), now)
        .result()
    {
        Some(Err(DnsError::InvalidName { fault, .. })) => fault,
        other => panic!("{host}: {other:?}"),
    };
    assert_eq!(fault("[2001:db8::g]"), NameFault::BadIpv6Literal);
    assert_eq!(fault("sip:example.com"), NameFault::BadCharacter(':'));
    assert_eq!(fault(""), NameFault::Empty);
    assert_eq!(fault("a..b"), NameFault::EmptyLabel);
    let err = Lookup::new("exa mple.com", None, Transport::Udp, config(&[NS1], 0), now)
        .result()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "DNS: \"exa mple.com\" is not a valid host name: it contains ' '; \
         a host name has only letters, digits, '-' and '.'"
    );
}

#[test]
fn the_hosts_table_comes_first() {
    let hosts = Hosts::parse("127.0.0.1 localhost\n::1 localhost\n192.0.2.50 pbx.lab\n");
    let now = Instant::now();
    let l = Lookup::new(
        "LOCALHOST",
        None,
        Transport::Udp,
        config(&[], 0).with_hosts(hosts.clone()),
        now,
    );
    assert_eq!(
        l.result(),
        Some(Ok(vec![addr("127.0.0.1:5060"), addr("[::1]:5060")]))
    );
    // SRV targets too.
    let mut net = Net::one(Zone::new(vec![srv("_sip._udp.lab", 1, 1, 5099, "pbx.lab")]));
    let mut lookup = Lookup::new(
        "lab",
        None,
        Transport::Udp,
        config(&[NS1], 0).with_hosts(hosts),
        now,
    );
    assert_eq!(
        net.run(&mut lookup, now).0,
        Ok(vec![addr("192.0.2.50:5099")])
    );
    assert_eq!(net.log.len(), 1);
}

#[test]
fn no_nameserver_is_an_error_of_its_own() {
    let l = Lookup::new(
        "example.com",
        None,
        Transport::Udp,
        config(&[], 0),
        Instant::now(),
    );
    assert_eq!(l.result(), Some(Err(DnsError::NoNameservers)));
}

/// Answers that do not belong to the query are dropped; the real answer still counts.
#[test]
fn stray_and_spoofed_answers_are_ignored() {
    let now = Instant::now();
    let mut lookup = Lookup::new(
        "example.com",
        Some(5060),
        Transport::Udp,
        config(&[NS1], 7),
        now,
    );
    let mut sent = Vec::new();
    while let Some((to, bytes)) = lookup.poll_transmit() {
        assert_eq!(to, addr(NS1));
        sent.push(Message::parse(&bytes).unwrap());
    }
    assert_eq!(sent.len(), 2, "A and AAAA together");
    let zone = Zone::new(vec![a("example.com", "192.0.2.1")]);
    let good = zone.answer(&sent[0]);
    let evil = {
        let mut m = good.clone();
        m.answers = vec![a("example.com", "203.0.113.66")];
        m
    };
    // From another address.
    lookup.on_datagram(&evil.encode().unwrap(), addr("203.0.113.1:53"), now);
    // From the server's address but another port.
    lookup.on_datagram(&evil.encode().unwrap(), addr("127.0.0.53:5353"), now);
    // With a wrong ID.
    let mut wrong_id = evil.clone();
    wrong_id.header.id = wrong_id.header.id.wrapping_add(1);
    lookup.on_datagram(&wrong_id.encode().unwrap(), addr(NS1), now);
    // Repeating another question.
    let mut wrong_q = evil.clone();
    wrong_q.questions[0].name = "example.net".into();
    lookup.on_datagram(&wrong_q.encode().unwrap(), addr(NS1), now);
    // A query, not a response.
    let mut not_resp = evil.clone();
    not_resp.header.response = false;
    lookup.on_datagram(&not_resp.encode().unwrap(), addr(NS1), now);
    // Runts.
    lookup.on_datagram(&[], addr(NS1), now);
    lookup.on_datagram(&[1], addr(NS1), now);
    assert!(!lookup.is_done());

    lookup.on_datagram(&good.encode().unwrap(), addr(NS1), now);
    // The IPv4-mapped form a dual-stack socket reports.
    let aaaa_reply = zone.answer(&sent[1]);
    lookup.on_datagram(
        &aaaa_reply.encode().unwrap(),
        addr("[::ffff:127.0.0.53]:53"),
        now,
    );
    assert_eq!(lookup.result(), Some(Ok(vec![addr("192.0.2.1:5060")])));
}

#[test]
fn a_late_answer_from_a_server_given_up_on_is_taken() {
    let start = Instant::now();
    let cfg = config(&[NS1, NS2], 3);
    let mut lookup = Lookup::new("example.com", Some(5060), Transport::Udp, cfg, start);
    let mut first = Vec::new();
    while let Some((_, bytes)) = lookup.poll_transmit() {
        first.push(Message::parse(&bytes).unwrap());
    }
    let five = start + Duration::from_secs(5);
    let mut t = start;
    while t < five {
        t = lookup.poll_timeout().unwrap();
        lookup.handle_timeout(t);
        while lookup.poll_transmit().is_some() {}
    }
    let zone = Zone::new(vec![a("example.com", "192.0.2.1")]);
    for q in &first {
        lookup.on_datagram(&zone.answer(q).encode().unwrap(), addr(NS1), t);
    }
    assert_eq!(lookup.result(), Some(Ok(vec![addr("192.0.2.1:5060")])));
}

#[test]
fn an_unreachable_server_is_skipped_without_waiting() {
    let start = Instant::now();
    let mut lookup = Lookup::new(
        "example.com",
        Some(5060),
        Transport::Udp,
        config(&["[2001:db8::53]:53", NS1], 3),
        start,
    );
    let mut out = Vec::new();
    while let Some(t) = lookup.poll_transmit() {
        out.push(t);
    }
    assert!(out.iter().all(|(to, _)| *to == addr("[2001:db8::53]:53")));
    lookup.on_unreachable(addr("[2001:db8::53]:53"), "network unreachable", start);
    let zone = Zone::new(vec![a("example.com", "192.0.2.1")]);
    while let Some((to, bytes)) = lookup.poll_transmit() {
        assert_eq!(to, addr(NS1));
        let q = Message::parse(&bytes).unwrap();
        lookup.on_datagram(&zone.answer(&q).encode().unwrap(), to, start);
    }
    assert_eq!(lookup.result(), Some(Ok(vec![addr("192.0.2.1:5060")])));

    let mut alone = Lookup::new(
        "example.com",
        Some(5060),
        Transport::Udp,
        config(&[NS1], 3),
        start,
    );
    while alone.poll_transmit().is_some() {}
    alone.on_unreachable(addr(NS1), "network unreachable", start);
    assert_eq!(
        alone.result().unwrap().unwrap_err().to_string(),
        "DNS: cannot send to 127.0.0.53:53: network unreachable"
    );
}

#[test]
fn query_ids_differ_and_follow_the_seed() {
    let ids = |seed| {
        let mut l = Lookup::new(
            "example.com",
            Some(1),
            Transport::Udp,
            config(&[NS1], seed),
            Instant::now(),
        );
        let mut v = Vec::new();
        while let Some((_, b)) = l.poll_transmit() {
            v.push(u16::from_be_bytes([b[0], b[1]]));
        }
        v
    };
    assert_eq!(ids(1), ids(1));
    assert_ne!(ids(1), ids(2));
    let v = ids(1);
    assert_ne!(v[0], v[1]);
}

/// Needs `scripts/dnsmasq-test.sh` running (port from MGW_DNSMASQ_PORT, default 15353).
#[test]
#[ignore = "needs dnsmasq: start scripts/dnsmasq-test.sh first"]
fn dnsmasq_trunk_zone() {
    let port: u16 = std::env::var("MGW_DNSMASQ_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(15353);
    let ns = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port);
    let ask = |host: &str, port: Option<u16>, transport: Transport| {
        let cfg = ResolverConfig::new(vec![ns], 42).with_server_timeout(Duration::from_secs(2));
        blocking(Lookup::new(host, port, transport, cfg, Instant::now()))
    };
    let localhost = |p: u16| SocketAddr::new(IpAddr::from([127, 0, 0, 1]), p);
    assert_eq!(
        ask("trunk.test", None, Transport::Udp),
        Ok(vec![localhost(25070), localhost(25071)])
    );
    assert_eq!(
        ask("trunk.test", None, Transport::Tcp),
        Ok(vec![localhost(25070)])
    );
    assert_eq!(
        ask("plain.trunk.test", None, Transport::Udp),
        Ok(vec![localhost(5060)])
    );
    assert_eq!(
        ask("sip1.trunk.test", Some(5999), Transport::Udp),
        Ok(vec![localhost(5999)])
    );
    assert_eq!(
        ask("v6.trunk.test", None, Transport::Udp),
        Ok(vec![addr("[::1]:5060")])
    );
    assert_eq!(
        ask("down.trunk.test", None, Transport::Udp),
        Err(DnsError::NoTargetAddress {
            service: "_sip._udp.down.trunk.test".into(),
            targets: vec!["nowhere.trunk.test".into()],
        })
    );
    assert_eq!(
        ask("missing.trunk.test", None, Transport::Udp)
            .unwrap_err()
            .to_string(),
        "DNS: no such host missing.trunk.test"
    );
}

/// The smallest possible driver: one socket, read timeouts as the timer.
fn blocking(mut lookup: Lookup) -> Result<Vec<SocketAddr>, DnsError> {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("loopback socket");
    let mut buf = [0u8; 1500];
    loop {
        while let Some((to, bytes)) = lookup.poll_transmit() {
            sock.send_to(&bytes, to).expect("send to dnsmasq");
        }
        if let Some(r) = lookup.result() {
            return r;
        }
        let wait = lookup
            .poll_timeout()
            .expect("a timer while not done")
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        sock.set_read_timeout(Some(wait)).expect("read timeout");
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => lookup.on_datagram(&buf[..n], from, Instant::now()),
            Err(_) => lookup.handle_timeout(Instant::now()),
        }
    }
}
