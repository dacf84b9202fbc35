//! RFC 3261 section 17 transactions in virtual time: each of the four state machines, each
//! timer, matching (RFC 3261 and RFC 2543 style), CANCEL lookup, reliable transports,
//! transport errors, and a property test over random event sequences.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use mgw_core::sip::builder::cancel_for;
use mgw_core::sip::{HeaderName, Message, Method, ReplyContext, ResponseBuilder};
use mgw_core::transaction::{
    Action, ClientState, ClientTxId, Incoming, ServerState, ServerTxId, TimerConfig,
    TransactionLayer, TxError, TxId,
};
use proptest::prelude::*;

/// Peers are numbered; the layer does not care what an address is.
type Peer = u16;
type Layer = TransactionLayer<Peer>;

const PEER: Peer = 7;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn layer() -> Layer {
    Layer::new(TimerConfig::default())
}

/// A request as a UA would send it. `via` is the whole top Via value.
fn request_via(method: &str, via: &str, cseq: u32, to_tag: Option<&str>) -> Vec<u8> {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "{method} sip:301@gw.test SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
         From: <sip:alice@a.test>;tag=from1\r\nTo: <sip:301@gw.test>{to_tag}\r\n\
         Call-ID: call-1@a.test\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn request(method: &str, branch: &str) -> Vec<u8> {
    request_via(
        method,
        &format!("SIP/2.0/UDP 192.0.2.1:5060;branch={branch}"),
        1,
        None,
    )
}

fn response(req: &[u8], code: u16, to_tag: Option<&str>) -> Vec<u8> {
    let req = Message::parse(req).expect("request parses");
    let mut buf = Vec::new();
    ResponseBuilder::new(
        &mut buf,
        &req,
        code,
        "Reason",
        ReplyContext {
            source: None,
            to_tag,
        },
    )
    .finish(None, b"");
    buf
}

fn parse(bytes: &[u8]) -> Message<'_> {
    Message::parse(bytes).expect("message parses")
}

fn drain(l: &mut Layer) -> Vec<Action<Peer>> {
    std::iter::from_fn(|| l.poll_action()).collect()
}

/// The bytes of every Send among `actions`.
fn sent(actions: &[Action<Peer>]) -> Vec<Vec<u8>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { bytes, to, .. } => {
                assert_eq!(*to, PEER);
                Some(bytes.to_vec())
            }
            _ => None,
        })
        .collect()
}

/// Fires every timer up to `until`, deadline by deadline, and returns what happened when,
/// as milliseconds since `base`.
fn run_until(l: &mut Layer, base: Instant, until: Instant) -> Vec<(u64, Action<Peer>)> {
    let mut log = Vec::new();
    while let Some(d) = l.next_deadline().filter(|&d| d <= until) {
        l.on_timeout(d);
        let at = u64::try_from((d - base).as_millis()).expect("short test");
        log.extend(drain(l).into_iter().map(|a| (at, a)));
    }
    log
}

fn send_times(log: &[(u64, Action<Peer>)]) -> Vec<u64> {
    log.iter()
        .filter(|(_, a)| matches!(a, Action::Send { .. }))
        .map(|(t, _)| *t)
        .collect()
}

fn others(log: &[(u64, Action<Peer>)]) -> Vec<(u64, Action<Peer>)> {
    log.iter()
        .filter(|(_, a)| !matches!(a, Action::Send { .. }))
        .cloned()
        .collect()
}

fn new_server(incoming: Incoming) -> ServerTxId {
    match incoming {
        Incoming::New(id) => id,
        other => panic!("expected a new transaction, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// INVITE client (17.1.1)

#[test]
fn invite_client_timer_a_doubles_until_timer_b() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bKa1");
    let id = l.send_request(inv.clone(), PEER, false, t0).unwrap();
    assert_eq!(sent(&drain(&mut l)), vec![inv.clone()]);
    assert_eq!(l.client_state(id), Some(ClientState::Calling));

    let log = run_until(&mut l, t0, t0 + Duration::from_secs(60));
    // A: T1, then doubling without cap (17.1.1.2); B = 64*T1 = 32 s ends it.
    assert_eq!(send_times(&log), [500, 1500, 3500, 7500, 15500, 31500]);
    assert!(log.iter().all(|(_, a)| match a {
        Action::Send { bytes, .. } => **bytes == *inv,
        _ => true,
    }));
    assert_eq!(
        others(&log),
        [
            (32000, Action::Timeout { id: id.into() }),
            (32000, Action::Terminated { id: id.into() }),
        ]
    );
    assert!(l.is_empty());
    assert_eq!(l.next_deadline(), None);
}

#[test]
fn invite_client_2xx_goes_to_accepted_and_timer_m_ends_it() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bKa2");
    let id = l.send_request(inv.clone(), PEER, false, t0).unwrap();
    drain(&mut l);

    let trying = response(&inv, 100, None);
    assert_eq!(l.on_response(&parse(&trying), t0 + ms(100)), Some(id));
    assert_eq!(l.client_state(id), Some(ClientState::Proceeding));
    let ringing = response(&inv, 180, Some("callee"));
    // Every provisional in Proceeding reaches the TU (17.1.1.2).
    assert_eq!(l.on_response(&parse(&ringing), t0 + ms(200)), Some(id));
    assert_eq!(l.on_response(&parse(&ringing), t0 + ms(300)), Some(id));
    // Proceeding stops retransmissions and Timer B.
    assert!(run_until(&mut l, t0, t0 + Duration::from_secs(40)).is_empty());
    assert_eq!(l.client_state(id), Some(ClientState::Proceeding));

    let t = t0 + Duration::from_secs(40);
    let ok = response(&inv, 200, Some("callee"));
    assert_eq!(l.on_response(&parse(&ok), t), Some(id));
    assert_eq!(l.client_state(id), Some(ClientState::Accepted));
    // The transaction does not ACK a 2xx: the dialog does, for each 2xx (RFC 6026).
    assert!(sent(&drain(&mut l)).is_empty());
    assert_eq!(l.on_response(&parse(&ok), t + ms(500)), Some(id));
    assert_eq!(l.on_response(&parse(&ringing), t + ms(600)), None);
    assert!(drain(&mut l).is_empty());

    let log = run_until(&mut l, t0, t + Duration::from_secs(60));
    assert_eq!(
        log,
        [(72000, Action::Terminated { id: id.into() })],
        "Timer M = 64*T1"
    );
    assert!(l.is_empty());
    // Once gone, a late 2xx is stray.
    assert_eq!(
        l.on_response(&parse(&ok), t + Duration::from_secs(61)),
        None
    );
}

#[test]
fn invite_client_acks_non2xx_and_timer_d_absorbs_retransmissions() {
    let t0 = Instant::now();
    let mut l = layer();
    let mut inv = request_via(
        "INVITE",
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa3",
        42,
        None,
    );
    // A Route set must be copied into the ACK (17.1.1.3).
    inv.splice(
        inv.len() - 2..inv.len() - 2,
        b"Route: <sip:proxy.test;lr>\r\n".iter().copied(),
    );
    let id = l.send_request(inv.clone(), PEER, false, t0).unwrap();
    drain(&mut l);

    let busy = response(&inv, 486, Some("busy-tag"));
    let t = t0 + ms(700);
    assert_eq!(l.on_response(&parse(&busy), t), Some(id));
    assert_eq!(l.client_state(id), Some(ClientState::Completed));
    let acks = sent(&drain(&mut l));
    assert_eq!(acks.len(), 1);
    let ack = parse(&acks[0]);
    assert_eq!(ack.method(), Some(Method::Ack));
    match ack.start {
        mgw_core::sip::StartLine::Request(line) => assert_eq!(line.uri, "sip:301@gw.test"),
        _ => panic!("ACK is a request"),
    }
    assert_eq!(ack.top_via().unwrap().branch(), Some("z9hG4bKa3"));
    assert_eq!(ack.to().unwrap().tag(), Some("busy-tag"));
    assert_eq!(ack.from().unwrap().tag(), Some("from1"));
    assert_eq!(ack.call_id(), Some("call-1@a.test"));
    let cseq = ack.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (42, Method::Ack));
    assert_eq!(ack.header(HeaderName::Route), Some("<sip:proxy.test;lr>"));

    // Each retransmitted final response is absorbed and acknowledged again.
    for k in 1..=3 {
        assert_eq!(l.on_response(&parse(&busy), t + ms(500 * k)), None);
        assert_eq!(sent(&drain(&mut l)), acks);
    }
    // A retransmission timer A left over from Calling must not fire in Completed.
    let log = run_until(&mut l, t0, t + Duration::from_secs(31));
    assert!(log.is_empty(), "{log:?}");
    let log = run_until(&mut l, t0, t + Duration::from_secs(33));
    assert_eq!(
        log,
        [(32700, Action::Terminated { id: id.into() })],
        "Timer D = 32 s"
    );
    assert!(l.is_empty());
}

#[test]
fn invite_client_timer_c_then_give_up() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bKa4");
    let id = l.send_request(inv.clone(), PEER, false, t0).unwrap();
    drain(&mut l);
    let ringing = response(&inv, 180, Some("c"));
    l.on_response(&parse(&ringing), t0 + ms(1000));
    // Another provisional restarts Timer C.
    l.on_response(&parse(&ringing), t0 + Duration::from_secs(100));
    let c = TimerConfig::default().c;
    let log = run_until(
        &mut l,
        t0,
        t0 + Duration::from_secs(100) + c + Duration::from_secs(40),
    );
    let fired = (Duration::from_secs(100) + c).as_millis() as u64;
    assert_eq!(
        log,
        [
            (fired, Action::ProvisionalTimeout { id }),
            (fired + 32000, Action::Timeout { id: id.into() }),
            (fired + 32000, Action::Terminated { id: id.into() }),
        ]
    );
    assert!(l.is_empty());
}

#[test]
fn cancel_bounds_the_invite_wait_to_64_t1() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bKa5");
    let inv_id = l.send_request(inv.clone(), PEER, false, t0).unwrap();
    l.on_response(&parse(&response(&inv, 180, Some("c"))), t0 + ms(100));
    let mut cancel = Vec::new();
    assert!(cancel_for(&mut cancel, &parse(&inv)));
    let t = t0 + Duration::from_secs(10);
    let cancel_id = l.send_request(cancel.clone(), PEER, false, t).unwrap();
    assert_ne!(TxId::from(cancel_id), TxId::from(inv_id));
    assert_eq!(
        l.send_request(cancel.clone(), PEER, false, t),
        Err(TxError::DuplicateTransaction)
    );
    // The CANCEL is answered; the INVITE's 487 never comes.
    let ok = response(&cancel, 200, Some("c"));
    assert_eq!(l.on_response(&parse(&ok), t + ms(50)), Some(cancel_id));
    drain(&mut l);
    let log = others(&run_until(&mut l, t0, t0 + Duration::from_secs(100)));
    assert_eq!(
        log,
        [
            (
                10000 + 5050,
                Action::Terminated {
                    id: cancel_id.into()
                }
            ),
            (42000, Action::Timeout { id: inv_id.into() }),
            (42000, Action::Terminated { id: inv_id.into() }),
        ]
    );
    assert!(l.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Non-INVITE client (17.1.2)

#[test]
fn non_invite_client_timer_e_caps_at_t2_and_timer_f_times_out() {
    let t0 = Instant::now();
    let mut l = layer();
    let opt = request("OPTIONS", "z9hG4bKn1");
    let id = l.send_request(opt.clone(), PEER, false, t0).unwrap();
    assert_eq!(l.client_state(id), Some(ClientState::Trying));
    drain(&mut l);
    let log = run_until(&mut l, t0, t0 + Duration::from_secs(60));
    // 500 ms, 1 s, 2 s, then T2 = 4 s until F = 32 s.
    assert_eq!(
        send_times(&log),
        [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(
        others(&log),
        [
            (32000, Action::Timeout { id: id.into() }),
            (32000, Action::Terminated { id: id.into() }),
        ]
    );
    assert!(l.is_empty());
}

#[test]
fn non_invite_client_proceeding_retransmits_every_t2() {
    let t0 = Instant::now();
    let mut l = layer();
    let reg = request("REGISTER", "z9hG4bKn2");
    let id = l.send_request(reg.clone(), PEER, false, t0).unwrap();
    drain(&mut l);
    let log = run_until(&mut l, t0, t0 + ms(1600));
    assert_eq!(send_times(&log), [500, 1500]);
    assert_eq!(
        l.on_response(&parse(&response(&reg, 100, None)), t0 + ms(1600)),
        Some(id)
    );
    assert_eq!(l.client_state(id), Some(ClientState::Proceeding));
    let log = run_until(&mut l, t0, t0 + ms(12000));
    // The running E (due at 3.5 s) fires, then every T2.
    assert_eq!(send_times(&log), [3500, 7500, 11500]);
}

#[test]
fn non_invite_client_completed_absorbs_and_timer_k_ends_it() {
    let t0 = Instant::now();
    let mut l = layer();
    let bye = request("BYE", "z9hG4bKn3");
    let id = l.send_request(bye.clone(), PEER, false, t0).unwrap();
    drain(&mut l);
    let ok = response(&bye, 200, Some("x"));
    assert_eq!(l.on_response(&parse(&ok), t0 + ms(200)), Some(id));
    assert_eq!(l.client_state(id), Some(ClientState::Completed));
    assert_eq!(l.on_response(&parse(&ok), t0 + ms(900)), None);
    assert_eq!(
        l.on_response(&parse(&response(&bye, 100, None)), t0 + ms(950)),
        None
    );
    assert!(
        drain(&mut l).is_empty(),
        "no retransmission after a final response"
    );
    let log = run_until(&mut l, t0, t0 + Duration::from_secs(40));
    assert_eq!(
        log,
        [(5200, Action::Terminated { id: id.into() })],
        "Timer K = T4"
    );
    assert!(l.is_empty());
}

#[test]
fn stray_responses_are_dropped() {
    let t0 = Instant::now();
    let mut l = layer();
    let opt = request("OPTIONS", "z9hG4bKn4");
    l.send_request(opt.clone(), PEER, false, t0).unwrap();
    drain(&mut l);
    let other_branch = response(&request("OPTIONS", "z9hG4bKzz"), 200, None);
    assert_eq!(l.on_response(&parse(&other_branch), t0), None);
    // Same branch, other CSeq method: the response of a CANCEL is not the OPTIONS' (17.1.3).
    let other_method = response(&request("CANCEL", "z9hG4bKn4"), 200, None);
    assert_eq!(l.on_response(&parse(&other_method), t0), None);
    // A request is not a response.
    assert_eq!(l.on_response(&parse(&opt), t0), None);
    assert!(drain(&mut l).is_empty());
    assert_eq!(l.len(), 1);
}

#[test]
fn send_request_refuses_what_is_no_client_transaction() {
    let t0 = Instant::now();
    let mut l = layer();
    assert_eq!(
        l.send_request(request("OPTIONS", "old-style"), PEER, false, t0),
        Err(TxError::NotRfc3261Branch)
    );
    assert_eq!(
        l.send_request(request("ACK", "z9hG4bKk"), PEER, false, t0),
        Err(TxError::AckIsNotATransaction)
    );
    assert!(matches!(
        l.send_request(b"garbage".to_vec(), PEER, false, t0),
        Err(TxError::Unparseable(_))
    ));
    let resp = response(&request("OPTIONS", "z9hG4bKk"), 200, None);
    assert_eq!(
        l.send_request(resp, PEER, false, t0),
        Err(TxError::NotARequest)
    );
    assert!(l.is_empty());
    assert!(drain(&mut l).is_empty());
}

// ---------------------------------------------------------------------------------------------
// INVITE server (17.2.1)

#[test]
fn invite_server_2xx_goes_to_accepted_and_timer_l_ends_it() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bKs1");
    let id = new_server(l.on_request(&parse(&inv), PEER, false, t0));
    assert_eq!(l.server_state(id), Some(ServerState::Proceeding));
    // A retransmission before any response: absorbed, nothing to re-send.
    assert_eq!(
        l.on_request(&parse(&inv), PEER, false, t0 + ms(500)),
        Incoming::Absorbed
    );
    assert!(drain(&mut l).is_empty());

    let trying = response(&inv, 100, None);
    l.respond(id, 100, trying.clone(), t0 + ms(501)).unwrap();
    assert_eq!(sent(&drain(&mut l)), std::slice::from_ref(&trying));
    assert_eq!(
        l.on_request(&parse(&inv), PEER, false, t0 + ms(1500)),
        Incoming::Absorbed
    );
    assert_eq!(sent(&drain(&mut l)), [trying], "last provisional re-sent");
    let ringing = response(&inv, 180, Some("gw"));
    l.respond(id, 180, ringing.clone(), t0 + ms(1600)).unwrap();
    drain(&mut l);
    assert_eq!(
        l.on_request(&parse(&inv), PEER, false, t0 + ms(3500)),
        Incoming::Absorbed
    );
    assert_eq!(sent(&drain(&mut l)), [ringing]);

    let t = t0 + Duration::from_secs(5);
    let ok = response(&inv, 200, Some("gw"));
    l.respond(id, 200, ok.clone(), t).unwrap();
    assert_eq!(sent(&drain(&mut l)), std::slice::from_ref(&ok));
    assert_eq!(l.server_state(id), Some(ServerState::Accepted));
    // In Accepted the TU retransmits the 2xx; the transaction only absorbs the INVITE.
    assert_eq!(
        l.on_request(&parse(&inv), PEER, false, t + ms(100)),
        Incoming::Absorbed
    );
    assert!(drain(&mut l).is_empty());
    l.respond(id, 200, ok.clone(), t + ms(500)).unwrap();
    assert_eq!(sent(&drain(&mut l)), std::slice::from_ref(&ok));
    assert_eq!(
        l.respond(id, 486, response(&inv, 486, Some("gw")), t + ms(600)),
        Err(TxError::InvalidState)
    );
    // The ACK of a 2xx has its own branch and goes to the dialog.
    let ack = request_via(
        "ACK",
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKs1-ack",
        1,
        Some("gw"),
    );
    assert_eq!(
        l.on_request(&parse(&ack), PEER, false, t + ms(700)),
        Incoming::Ack
    );
    assert!(drain(&mut l).is_empty());

    let log = run_until(&mut l, t0, t + Duration::from_secs(60));
    assert_eq!(
        log,
        [(37000, Action::Terminated { id: id.into() })],
        "Timer L = 64*T1"
    );
    assert!(l.is_empty());
    assert_eq!(
        l.respond(id, 200, ok, t + Duration::from_secs(61)),
        Err(TxError::UnknownTransaction)
    );
}

#[test]
fn invite_server_timer_g_until_ack_then_timer_i() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bKs2");
    let id = new_server(l.on_request(&parse(&inv), PEER, false, t0));
    let busy = response(&inv, 486, Some("gw"));
    l.respond(id, 486, busy.clone(), t0).unwrap();
    assert_eq!(sent(&drain(&mut l)), std::slice::from_ref(&busy));
    assert_eq!(l.server_state(id), Some(ServerState::Completed));

    let log = run_until(&mut l, t0, t0 + ms(12000));
    // G: T1, doubling up to T2.
    assert_eq!(send_times(&log), [500, 1500, 3500, 7500, 11500]);
    assert!(log.iter().all(|(_, a)| match a {
        Action::Send { bytes, .. } => **bytes == *busy,
        _ => false,
    }));
    // A retransmitted INVITE gets the final response again.
    assert_eq!(
        l.on_request(&parse(&inv), PEER, false, t0 + ms(12000)),
        Incoming::Absorbed
    );
    assert_eq!(sent(&drain(&mut l)), std::slice::from_ref(&busy));

    let ack = request_via(
        "ACK",
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKs2",
        1,
        Some("gw"),
    );
    let t = t0 + ms(12500);
    assert_eq!(
        l.on_request(&parse(&ack), PEER, false, t),
        Incoming::Absorbed
    );
    assert_eq!(l.server_state(id), Some(ServerState::Confirmed));
    assert!(drain(&mut l).is_empty());
    assert_eq!(
        l.on_request(&parse(&ack), PEER, false, t + ms(10)),
        Incoming::Absorbed
    );
    assert_eq!(
        l.on_request(&parse(&inv), PEER, false, t + ms(20)),
        Incoming::Absorbed
    );
    assert!(drain(&mut l).is_empty(), "Confirmed sends nothing");
    let log = run_until(&mut l, t0, t0 + Duration::from_secs(60));
    assert_eq!(
        log,
        [(17500, Action::Terminated { id: id.into() })],
        "Timer I = T4"
    );
    assert!(l.is_empty());
}

#[test]
fn invite_server_timer_h_without_ack_informs_the_tu() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bKs3");
    let id = new_server(l.on_request(&parse(&inv), PEER, false, t0));
    l.respond(id, 603, response(&inv, 603, Some("gw")), t0)
        .unwrap();
    drain(&mut l);
    let log = run_until(&mut l, t0, t0 + Duration::from_secs(60));
    assert_eq!(
        send_times(&log),
        [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(
        others(&log),
        [
            (32000, Action::Timeout { id: id.into() }),
            (32000, Action::Terminated { id: id.into() }),
        ]
    );
    assert!(l.is_empty());
}

#[test]
fn cancel_has_its_own_transaction_and_finds_the_invite() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bKs4");
    let inv_id = new_server(l.on_request(&parse(&inv), PEER, false, t0));
    l.respond(inv_id, 180, response(&inv, 180, Some("gw")), t0)
        .unwrap();
    let mut cancel = Vec::new();
    assert!(cancel_for(&mut cancel, &parse(&inv)));
    let cancel_msg = parse(&cancel);
    let cancel_id = new_server(l.on_request(&cancel_msg, PEER, false, t0 + ms(10)));
    assert_eq!(l.invite_for_cancel(&cancel_msg), Some(inv_id));
    assert_eq!(
        l.on_request(&cancel_msg, PEER, false, t0 + ms(20)),
        Incoming::Absorbed,
        "retransmitted CANCEL"
    );
    // The INVITE itself is no CANCEL.
    assert_eq!(l.invite_for_cancel(&parse(&inv)), None);
    // A CANCEL from another sent-by cancels nothing.
    let mut foreign = Vec::new();
    cancel_for(
        &mut foreign,
        &parse(&request_via(
            "INVITE",
            "SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKs4",
            1,
            None,
        )),
    );
    assert_eq!(l.invite_for_cancel(&parse(&foreign)), None);

    l.respond(
        cancel_id,
        200,
        response(&cancel, 200, Some("gw")),
        t0 + ms(30),
    )
    .unwrap();
    l.respond(inv_id, 487, response(&inv, 487, Some("gw")), t0 + ms(30))
        .unwrap();
    drain(&mut l);
    let ack = request_via(
        "ACK",
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKs4",
        1,
        Some("gw"),
    );
    assert_eq!(
        l.on_request(&parse(&ack), PEER, false, t0 + ms(60)),
        Incoming::Absorbed
    );
    let log = others(&run_until(&mut l, t0, t0 + Duration::from_secs(60)));
    assert_eq!(
        log,
        [
            (5060, Action::Terminated { id: inv_id.into() }),
            (
                32030,
                Action::Terminated {
                    id: cancel_id.into()
                }
            ),
        ]
    );
    assert!(l.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Non-INVITE server (17.2.2)

#[test]
fn non_invite_server_absorbs_retransmissions_and_timer_j_ends_it() {
    let t0 = Instant::now();
    let mut l = layer();
    let bye = request("BYE", "z9hG4bKs5");
    let id = new_server(l.on_request(&parse(&bye), PEER, false, t0));
    assert_eq!(l.server_state(id), Some(ServerState::Trying));
    assert_eq!(
        l.on_request(&parse(&bye), PEER, false, t0 + ms(500)),
        Incoming::Absorbed
    );
    assert!(drain(&mut l).is_empty(), "nothing to re-send in Trying");

    let trying = response(&bye, 100, None);
    l.respond(id, 100, trying.clone(), t0 + ms(600)).unwrap();
    assert_eq!(l.server_state(id), Some(ServerState::Proceeding));
    assert_eq!(sent(&drain(&mut l)), std::slice::from_ref(&trying));
    assert_eq!(
        l.on_request(&parse(&bye), PEER, false, t0 + ms(1500)),
        Incoming::Absorbed
    );
    assert_eq!(sent(&drain(&mut l)), [trying]);

    let ok = response(&bye, 200, Some("gw"));
    l.respond(id, 200, ok.clone(), t0 + ms(2000)).unwrap();
    assert_eq!(l.server_state(id), Some(ServerState::Completed));
    assert_eq!(sent(&drain(&mut l)), std::slice::from_ref(&ok));
    assert_eq!(
        l.on_request(&parse(&bye), PEER, false, t0 + ms(3500)),
        Incoming::Absorbed
    );
    assert_eq!(sent(&drain(&mut l)), std::slice::from_ref(&ok));
    assert_eq!(
        l.respond(id, 500, response(&bye, 500, Some("gw")), t0 + ms(3600)),
        Err(TxError::InvalidState)
    );
    assert_eq!(
        l.respond(id, 99, ok.clone(), t0 + ms(3600)),
        Err(TxError::BadStatus)
    );
    let log = run_until(&mut l, t0, t0 + Duration::from_secs(60));
    assert_eq!(
        log,
        [(34000, Action::Terminated { id: id.into() })],
        "Timer J = 64*T1"
    );
    assert!(l.is_empty());
    // After the transaction, the same request is new again.
    new_server(l.on_request(&parse(&bye), PEER, false, t0 + Duration::from_secs(61)));
}

// ---------------------------------------------------------------------------------------------
// Matching

#[test]
fn rfc3261_matching_uses_branch_sent_by_and_method() {
    let t0 = Instant::now();
    let mut l = layer();
    let opt = request_via(
        "OPTIONS",
        "SIP/2.0/UDP Client.A.test:5060;branch=z9hG4bKm1",
        1,
        None,
    );
    let id = new_server(l.on_request(&parse(&opt), PEER, false, t0));
    // Branch and host are case-insensitive; other Via parameters and the To-tag are not
    // compared.
    let same = request_via(
        "OPTIONS",
        "SIP/2.0/UDP client.a.test:5060;branch=z9hG4bKM1;rport",
        1,
        Some("zz"),
    );
    assert_eq!(
        l.on_request(&parse(&same), PEER, false, t0),
        Incoming::Absorbed
    );
    // Beyond RFC 3261 17.2.3, the CSeq number (and Call-ID) must match too: a client that
    // reuses a branch for a new request gets a new transaction (docs/decisions.md, 5).
    let reused_branch = request_via(
        "OPTIONS",
        "SIP/2.0/UDP client.a.test:5060;branch=z9hG4bKm1",
        9,
        None,
    );
    let fresh = new_server(l.on_request(&parse(&reused_branch), PEER, false, t0));
    assert_ne!(fresh, id);
    let other_sent_by = request_via(
        "OPTIONS",
        "SIP/2.0/UDP client.b.test:5060;branch=z9hG4bKm1",
        1,
        None,
    );
    let other = new_server(l.on_request(&parse(&other_sent_by), PEER, false, t0));
    assert_ne!(other, id);
    let other_method = request_via(
        "INFO",
        "SIP/2.0/UDP client.a.test:5060;branch=z9hG4bKm1",
        1,
        None,
    );
    new_server(l.on_request(&parse(&other_method), PEER, false, t0));
    assert_eq!(l.len(), 4);
    // An ACK that matches no INVITE goes to the TU.
    let ack = request_via(
        "ACK",
        "SIP/2.0/UDP client.a.test:5060;branch=z9hG4bKm1",
        1,
        None,
    );
    assert_eq!(l.on_request(&parse(&ack), PEER, false, t0), Incoming::Ack);
}

#[test]
fn rfc2543_matching_compares_the_identifying_fields() {
    let t0 = Instant::now();
    let mut l = layer();
    let via = "SIP/2.0/UDP 192.0.2.1:5060;branch=legacy1";
    let inv = request_via("INVITE", via, 5, None);
    let id = new_server(l.on_request(&parse(&inv), PEER, false, t0));
    assert_eq!(
        l.on_request(&parse(&inv), PEER, false, t0 + ms(500)),
        Incoming::Absorbed
    );
    // A new CSeq, Request-URI or top Via is another transaction.
    let next = request_via("INVITE", via, 6, None);
    let next_id = new_server(l.on_request(&parse(&next), PEER, false, t0));
    let other_uri = String::from_utf8(inv.clone()).unwrap().replacen(
        "sip:301@gw.test SIP/2.0",
        "sip:302@gw.test SIP/2.0",
        1,
    );
    new_server(l.on_request(&parse(other_uri.as_bytes()), PEER, false, t0));
    let other_via = request_via("INVITE", "SIP/2.0/UDP 192.0.2.1:5060", 5, None);
    new_server(l.on_request(&parse(&other_via), PEER, false, t0));
    // Without any Via branch, the whole top Via still identifies it.
    assert_eq!(
        l.on_request(&parse(&other_via), PEER, false, t0),
        Incoming::Absorbed
    );

    // The CANCEL carries the INVITE's fields.
    let mut cancel = Vec::new();
    assert!(cancel_for(&mut cancel, &parse(&inv)));
    let cancel_id = new_server(l.on_request(&parse(&cancel), PEER, false, t0));
    assert_ne!(cancel_id, id);
    assert_eq!(l.invite_for_cancel(&parse(&cancel)), Some(id));

    // The ACK carries the To tag of the response, not the INVITE's (17.2.3).
    let busy = response(&inv, 486, Some("gw-tag"));
    l.respond(id, 486, busy, t0 + ms(600)).unwrap();
    drain(&mut l);
    let wrong_tag = request_via("ACK", via, 5, Some("other"));
    assert_eq!(
        l.on_request(&parse(&wrong_tag), PEER, false, t0 + ms(700)),
        Incoming::Ack
    );
    assert_eq!(l.server_state(id), Some(ServerState::Completed));
    let ack = request_via("ACK", via, 5, Some("gw-tag"));
    assert_eq!(
        l.on_request(&parse(&ack), PEER, false, t0 + ms(700)),
        Incoming::Absorbed
    );
    assert_eq!(l.server_state(id), Some(ServerState::Confirmed));
    assert_eq!(l.server_state(next_id), Some(ServerState::Proceeding));
}

#[test]
fn requests_without_identity_are_invalid() {
    let t0 = Instant::now();
    let mut l = layer();
    let no_via = b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(
        l.on_request(&parse(no_via), PEER, false, t0),
        Incoming::Invalid(TxError::MissingVia)
    );
    let legacy_no_call_id = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>\r\n\
To: <sip:a@b>\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(
        l.on_request(&parse(legacy_no_call_id), PEER, false, t0),
        Incoming::Invalid(TxError::MissingCallId)
    );
    let resp = response(&request("OPTIONS", "z9hG4bKq"), 200, None);
    assert_eq!(
        l.on_request(&parse(&resp), PEER, false, t0),
        Incoming::Invalid(TxError::NotARequest)
    );
    assert!(l.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Reliable transports and transport errors

#[test]
fn reliable_transports_do_not_retransmit_and_end_without_lingering() {
    let t0 = Instant::now();
    let mut l = layer();

    // INVITE client: no A, B still applies.
    let inv = request("INVITE", "z9hG4bKr1");
    let ic = l.send_request(inv.clone(), PEER, true, t0).unwrap();
    drain(&mut l);
    let log = run_until(&mut l, t0, t0 + ms(31000));
    assert!(log.is_empty(), "{log:?}");
    // A non-2xx is acknowledged and, D being zero, the transaction ends at once.
    assert_eq!(
        l.on_response(&parse(&response(&inv, 404, Some("t"))), t0 + ms(31000)),
        Some(ic)
    );
    let acts = drain(&mut l);
    assert_eq!(sent(&acts).len(), 1);
    assert_eq!(acts.last(), Some(&Action::Terminated { id: ic.into() }));

    // Non-INVITE client: no E; K is zero.
    let opt = request("OPTIONS", "z9hG4bKr2");
    let nc = l.send_request(opt.clone(), PEER, true, t0).unwrap();
    drain(&mut l);
    assert!(send_times(&run_until(&mut l, t0, t0 + ms(31000))).is_empty());
    assert_eq!(
        l.on_response(&parse(&response(&opt, 200, None)), t0 + ms(31000)),
        Some(nc)
    );
    assert_eq!(drain(&mut l), [Action::Terminated { id: nc.into() }]);

    // INVITE server: no G; I is zero.
    let sinv = request("INVITE", "z9hG4bKr3");
    let is = new_server(l.on_request(&parse(&sinv), PEER, true, t0));
    l.respond(is, 480, response(&sinv, 480, Some("g")), t0)
        .unwrap();
    assert_eq!(sent(&drain(&mut l)).len(), 1);
    assert!(run_until(&mut l, t0, t0 + ms(31000)).is_empty());
    let ack = request_via(
        "ACK",
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKr3",
        1,
        Some("g"),
    );
    assert_eq!(
        l.on_request(&parse(&ack), PEER, true, t0 + ms(31000)),
        Incoming::Absorbed
    );
    assert_eq!(drain(&mut l), [Action::Terminated { id: is.into() }]);

    // Non-INVITE server: J is zero.
    let msg = request("MESSAGE", "z9hG4bKr4");
    let ns = new_server(l.on_request(&parse(&msg), PEER, true, t0));
    let ok = response(&msg, 200, Some("g"));
    l.respond(ns, 200, ok.clone(), t0).unwrap();
    let acts = drain(&mut l);
    assert_eq!(sent(&acts), [ok]);
    assert_eq!(acts.last(), Some(&Action::Terminated { id: ns.into() }));

    assert!(l.is_empty());
    assert_eq!(l.next_deadline(), None);
}

#[test]
fn reliable_invite_server_still_waits_for_the_ack_with_timer_h() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bKr5");
    let id = new_server(l.on_request(&parse(&inv), PEER, true, t0));
    l.respond(id, 486, response(&inv, 486, Some("g")), t0)
        .unwrap();
    drain(&mut l);
    let log = run_until(&mut l, t0, t0 + Duration::from_secs(60));
    assert_eq!(
        log,
        [
            (32000, Action::Timeout { id: id.into() }),
            (32000, Action::Terminated { id: id.into() }),
        ]
    );
}

#[test]
fn transport_errors_terminate_and_inform_the_tu() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bKe1");
    let c = l.send_request(inv.clone(), PEER, false, t0).unwrap();
    drain(&mut l);
    l.transport_error(c, t0 + ms(1)).unwrap();
    assert_eq!(
        drain(&mut l),
        [
            Action::TransportError { id: c.into() },
            Action::Terminated { id: c.into() },
        ]
    );
    assert_eq!(
        l.transport_error(c, t0 + ms(2)),
        Err(TxError::UnknownTransaction)
    );
    // Its timers are gone with it.
    assert!(run_until(&mut l, t0, t0 + Duration::from_secs(60)).is_empty());

    let opt = request("OPTIONS", "z9hG4bKe2");
    let s = new_server(l.on_request(&parse(&opt), PEER, false, t0));
    l.respond(s, 200, response(&opt, 200, Some("g")), t0)
        .unwrap();
    drain(&mut l);
    l.transport_error(TxId::Server(s), t0 + ms(3)).unwrap();
    assert_eq!(
        drain(&mut l),
        [
            Action::TransportError { id: s.into() },
            Action::Terminated { id: s.into() },
        ]
    );
    assert!(l.is_empty());
}

#[test]
fn custom_timer_values_scale_every_timer() {
    let t0 = Instant::now();
    let cfg = TimerConfig {
        t1: ms(100),
        t2: ms(300),
        t4: ms(1000),
        ..TimerConfig::default()
    };
    let mut l = Layer::new(cfg);
    let opt = request("OPTIONS", "z9hG4bKt1");
    let id = l.send_request(opt, PEER, false, t0).unwrap();
    drain(&mut l);
    let log = run_until(&mut l, t0, t0 + Duration::from_secs(10));
    assert_eq!(
        send_times(&log),
        [
            100, 300, 600, 900, 1200, 1500, 1800, 2100, 2400, 2700, 3000, 3300, 3600, 3900, 4200,
            4500, 4800, 5100, 5400, 5700, 6000, 6300
        ]
    );
    assert_eq!(
        others(&log),
        [
            (6400, Action::Timeout { id: id.into() }),
            (6400, Action::Terminated { id: id.into() }),
        ]
    );
}

#[test]
fn many_transactions_complete_and_leave_nothing_behind() {
    let t0 = Instant::now();
    let mut l = layer();
    let n = 20_000;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let req = request("OPTIONS", &format!("z9hG4bKbulk{i}"));
        let id = new_server(l.on_request(&parse(&req), PEER, false, t0));
        ids.push((id, req));
    }
    for i in 0..n {
        let out = request("OPTIONS", &format!("z9hG4bKout{i}"));
        let c = l.send_request(out.clone(), PEER, false, t0).unwrap();
        assert_eq!(
            l.on_response(&parse(&response(&out, 200, None)), t0 + ms(1)),
            Some(c)
        );
    }
    for (id, req) in &ids {
        l.respond(*id, 200, response(req, 200, Some("g")), t0 + ms(2))
            .unwrap();
    }
    assert_eq!(l.len(), 2 * n);
    while l.poll_action().is_some() {}
    l.on_timeout(t0 + Duration::from_secs(33));
    let terminated = std::iter::from_fn(|| l.poll_action())
        .filter(|a| matches!(a, Action::Terminated { .. }))
        .count();
    assert_eq!(terminated, 2 * n);
    assert!(l.is_empty());
    assert_eq!(l.next_deadline(), None);
}

// ---------------------------------------------------------------------------------------------
// Property test: random event sequences

#[derive(Clone, Debug)]
enum Event {
    /// The TU starts a client transaction.
    Send {
        invite: bool,
        reliable: bool,
    },
    /// A response arrives for the n-th client transaction.
    Response {
        n: usize,
        code: u16,
    },
    /// The TU cancels the n-th client transaction.
    Cancel {
        n: usize,
    },
    /// A new request arrives: 0 INVITE, 1 OPTIONS, 2 RFC 2543 INVITE, 3 RFC 2543 BYE.
    Request {
        kind: u8,
        reliable: bool,
    },
    /// The n-th received request arrives again.
    Retransmit {
        n: usize,
    },
    /// An ACK for the n-th received request: for its non-2xx, or a 2xx ACK.
    Ack {
        n: usize,
        for_2xx: bool,
    },
    /// A CANCEL for the n-th received request.
    CancelIn {
        n: usize,
    },
    /// The TU responds to the n-th received request.
    Respond {
        n: usize,
        code: u16,
    },
    TransportError {
        n: usize,
        client: bool,
    },
    /// Time passes.
    Advance {
        ms: u64,
    },
}

const CODES: [u16; 12] = [100, 180, 183, 200, 202, 302, 401, 404, 486, 487, 500, 603];

fn event() -> impl Strategy<Value = Event> {
    let code = proptest::sample::select(&CODES[..]);
    prop_oneof![
        (any::<bool>(), any::<bool>())
            .prop_map(|(invite, reliable)| Event::Send { invite, reliable }),
        (any::<usize>(), code.clone()).prop_map(|(n, code)| Event::Response { n, code }),
        any::<usize>().prop_map(|n| Event::Cancel { n }),
        (0u8..4, any::<bool>()).prop_map(|(kind, reliable)| Event::Request { kind, reliable }),
        any::<usize>().prop_map(|n| Event::Retransmit { n }),
        (any::<usize>(), any::<bool>()).prop_map(|(n, for_2xx)| Event::Ack { n, for_2xx }),
        any::<usize>().prop_map(|n| Event::CancelIn { n }),
        (any::<usize>(), code).prop_map(|(n, code)| Event::Respond { n, code }),
        (any::<usize>(), any::<bool>()).prop_map(|(n, client)| Event::TransportError { n, client }),
        (0u64..40_000).prop_map(|ms| Event::Advance { ms }),
    ]
}

struct Harness {
    l: Layer,
    now: Instant,
    /// Whether time advances in one call of `on_timeout` or deadline by deadline.
    jump: bool,
    /// Every action, in order.
    log: Vec<Action<Peer>>,
    live: HashSet<TxId>,
    ever: HashSet<TxId>,
    sent: Vec<(ClientTxId, Vec<u8>)>,
    received: Vec<(Option<ServerTxId>, Vec<u8>)>,
    next: u32,
}

impl Harness {
    fn new(base: Instant, jump: bool) -> Self {
        Harness {
            l: layer(),
            now: base,
            jump,
            log: Vec::new(),
            live: HashSet::new(),
            ever: HashSet::new(),
            sent: Vec::new(),
            received: Vec::new(),
            next: 0,
        }
    }

    fn created(&mut self, id: TxId) {
        assert!(self.ever.insert(id), "ids are never reused");
        self.live.insert(id);
    }

    /// Every action must name a live transaction; `Terminated` comes once, last.
    fn check_actions(&mut self) {
        while let Some(a) = self.l.poll_action() {
            let id = match &a {
                Action::Send { id, .. }
                | Action::Timeout { id }
                | Action::TransportError { id }
                | Action::Terminated { id } => *id,
                Action::ProvisionalTimeout { id } => TxId::Client(*id),
            };
            assert!(
                self.live.contains(&id),
                "{a:?} for a terminated transaction"
            );
            if let Action::Terminated { .. } = a {
                self.live.remove(&id);
            }
            self.log.push(a);
        }
        assert_eq!(self.l.len(), self.live.len());
    }

    fn fresh(&mut self) -> u32 {
        self.next += 1;
        self.next
    }

    fn apply(&mut self, e: Event) {
        let now = self.now;
        match e {
            Event::Send { invite, reliable } => {
                let method = if invite { "INVITE" } else { "OPTIONS" };
                let req = request(method, &format!("z9hG4bKc{}", self.fresh()));
                let id = self
                    .l
                    .send_request(req.clone(), PEER, reliable, now)
                    .expect("fresh branch");
                self.created(id.into());
                self.sent.push((id, req));
            }
            Event::Response { n, code } => {
                if let Some((_, req)) = pick(&self.sent, n) {
                    let resp = response(req, code, Some("callee"));
                    if let Some(id) = self.l.on_response(&parse(&resp), now) {
                        assert!(self.live.contains(&id.into()));
                    }
                }
            }
            Event::Cancel { n } => {
                if let Some((_, req)) = pick(&self.sent, n) {
                    let req = parse(req);
                    if req.method() == Some(Method::Invite) {
                        let mut cancel = Vec::new();
                        assert!(cancel_for(&mut cancel, &req));
                        match self.l.send_request(cancel.clone(), PEER, false, now) {
                            Ok(id) => {
                                self.created(id.into());
                                self.sent.push((id, cancel));
                            }
                            Err(e) => assert_eq!(e, TxError::DuplicateTransaction),
                        }
                    }
                }
            }
            Event::Request { kind, reliable } => {
                let k = self.fresh();
                let (method, via) = match kind {
                    0 => (
                        "INVITE",
                        format!("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKs{k}"),
                    ),
                    1 => (
                        "OPTIONS",
                        format!("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKs{k}"),
                    ),
                    2 => ("INVITE", format!("SIP/2.0/UDP 192.0.2.1;branch=old{k}")),
                    _ => ("BYE", format!("SIP/2.0/UDP 192.0.2.{}", k % 250)),
                };
                let req = request_via(method, &via, k, None);
                let id = match self.l.on_request(&parse(&req), PEER, reliable, now) {
                    Incoming::New(id) => {
                        self.created(id.into());
                        Some(id)
                    }
                    // A legacy request with recycled fields may match an older transaction.
                    Incoming::Absorbed => None,
                    other => panic!("{other:?}"),
                };
                self.received.push((id, req));
            }
            Event::Retransmit { n } => {
                if let Some(i) = index(&self.received, n) {
                    let req = self.received[i].1.clone();
                    match self.l.on_request(&parse(&req), PEER, false, now) {
                        // Its transaction is over: the TU gets it again, as a new one.
                        Incoming::New(id) => {
                            self.created(id.into());
                            self.received[i].0 = Some(id);
                        }
                        Incoming::Absorbed => {}
                        other => panic!("{other:?}"),
                    }
                }
            }
            Event::Ack { n, for_2xx } => {
                if let Some((_, req)) = pick(&self.received, n) {
                    let m = parse(req);
                    if m.method() == Some(Method::Invite) {
                        let via = if for_2xx {
                            format!("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKack{}", self.next)
                        } else {
                            m.header(HeaderName::Via).expect("Via").to_owned()
                        };
                        let seq = m.cseq().expect("CSeq").seq;
                        let ack = request_via("ACK", &via, seq, Some("gw"));
                        match self.l.on_request(&parse(&ack), PEER, false, now) {
                            Incoming::Absorbed | Incoming::Ack => {}
                            other => panic!("{other:?}"),
                        }
                    }
                }
            }
            Event::CancelIn { n } => {
                if let Some((_, req)) = pick(&self.received, n) {
                    let m = parse(req);
                    if m.method() == Some(Method::Invite) {
                        let mut cancel = Vec::new();
                        assert!(cancel_for(&mut cancel, &m));
                        let c = parse(&cancel);
                        match self.l.on_request(&c, PEER, false, now) {
                            Incoming::New(id) => {
                                self.created(id.into());
                                self.received.push((Some(id), cancel.clone()));
                            }
                            Incoming::Absorbed => {}
                            other => panic!("{other:?}"),
                        }
                        if let Some(inv) = self.l.invite_for_cancel(&c) {
                            assert!(self.live.contains(&inv.into()));
                        }
                    }
                }
            }
            Event::Respond { n, code } => {
                if let Some((Some(id), req)) = pick(&self.received, n) {
                    let resp = response(req, code, Some("gw"));
                    let r = self.l.respond(*id, code, resp, now);
                    if !self.live.contains(&TxId::from(*id)) {
                        assert_eq!(r, Err(TxError::UnknownTransaction));
                    }
                }
            }
            Event::TransportError { n, client } => {
                let id = if client {
                    pick(&self.sent, n).map(|(id, _)| TxId::from(*id))
                } else {
                    pick(&self.received, n).and_then(|(id, _)| id.map(TxId::from))
                };
                if let Some(id) = id {
                    let live = self.live.contains(&id);
                    assert_eq!(self.l.transport_error(id, now).is_ok(), live);
                }
            }
            Event::Advance { ms: d } => self.advance(ms(d)),
        }
        self.check_actions();
    }

    fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        if !self.jump {
            while let Some(t) = self.l.next_deadline().filter(|&t| t <= until) {
                assert!(t >= self.now, "no deadline is left behind");
                self.l.on_timeout(t);
                self.check_actions();
            }
        }
        self.now = until;
        self.l.on_timeout(until);
        self.check_actions();
    }

    /// A well-behaved TU answers every request it was handed.
    fn answer_everything(&mut self) {
        for (id, req) in self.received.clone() {
            let Some(id) = id else { continue };
            if matches!(
                self.l.server_state(id),
                Some(ServerState::Trying | ServerState::Proceeding)
            ) {
                let code = if parse(&req).method() == Some(Method::Invite) {
                    486
                } else {
                    200
                };
                self.l
                    .respond(id, code, response(&req, code, Some("gw")), self.now)
                    .expect("a final response fits Trying and Proceeding");
            }
        }
        self.check_actions();
    }
}

fn index<T>(v: &[T], n: usize) -> Option<usize> {
    (!v.is_empty()).then(|| n % v.len())
}

fn pick<T>(v: &[T], n: usize) -> Option<&T> {
    index(v, n).map(|i| &v[i])
}

/// Runs `events`, then a TU that answers everything, then silence.
fn run(events: &[Event], base: Instant, jump: bool) -> Result<Harness, TestCaseError> {
    let mut h = Harness::new(base, jump);
    for e in events {
        h.apply(e.clone());
    }
    h.answer_everything();
    let cfg = TimerConfig::default();
    // 64*T1 + T4 of silence ends every transaction but an INVITE that is ringing...
    h.advance(cfg.transaction_timeout() + cfg.t4);
    for id in &h.live {
        match id {
            TxId::Client(c) => {
                prop_assert_eq!(h.l.client_state(*c), Some(ClientState::Proceeding))
            }
            TxId::Server(s) => prop_assert!(false, "server {:?} outlived 64*T1 + T4", s),
        }
    }
    // ...which Timer C and the 64*T1 after it end.
    h.advance(cfg.c + cfg.transaction_timeout());
    prop_assert!(h.live.is_empty());
    prop_assert_eq!(h.l.len(), 0);
    prop_assert_eq!(h.l.next_deadline(), None);
    prop_assert_eq!(
        h.ever.len(),
        h.log
            .iter()
            .filter(|a| matches!(a, Action::Terminated { .. }))
            .count()
    );
    Ok(h)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// No panic; no action for a terminated transaction; everything ends; and how time is fed
    /// to the layer (one jump or deadline by deadline) changes nothing.
    #[test]
    fn random_event_sequences_keep_the_invariants(
        events in proptest::collection::vec(event(), 1..80),
    ) {
        let base = Instant::now();
        let stepped = run(&events, base, false)?;
        let jumped = run(&events, base, true)?;
        prop_assert_eq!(stepped.log, jumped.log);
    }
}
