//! Whole calls, sans-IO: both ends of every call live in one [`Calls`], driven like the
//! REGISTER flows by [`Calls::start_call`], [`Calls::on_uac_datagram`],
//! [`Calls::on_uas_datagram`] and [`Calls::on_timers`] with an explicit `now` (ns since the run
//! started) and a [`Transmit`] to put datagrams in.
//!
//! The caller (UAC) side of a call: INVITE with an SDP offer -> 401/407 -> ACK -> INVITE with the
//! digest answer -> 1xx -> 200 -> ACK -> hold -> BYE -> 200. INVITE is retransmitted on Timer A
//! (T1 doubling, RFC 3261 17.1.1.2) until a provisional arrives, BYE on Timer E (17.1.2.2). A
//! response finds its call by the slot carried in the Call-ID, then the CSeq says which request
//! of the call it answers; 2xx retransmissions are ACKed again (13.2.2.4).
//!
//! The callee (UAS) side answers whatever INVITE the server sends it: 180 (optional), 200 with an
//! SDP answer retransmitted until the ACK (13.3.1.4), 200 to BYE. It knows the server's Call-IDs
//! only, so its dialogs are found through a map; a dialog ended by BYE is remembered for 64*T1
//! so a retransmitted BYE is answered 200 rather than 481.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;

use mgw_core::auth::Algorithm;
use mgw_core::sip::{HeaderName, Message, Method, NameAddr, ReplyContext, ResponseBuilder};
use serde::Serialize;

use crate::digest::{self, Answer, Challenge, Hex};
use crate::flow::Transmit;
use crate::request::{push_dec, push_hex};
use crate::summary::Histogram;
use crate::timers::Queue;
use crate::users::User;

const BRANCH_PREFIX: &[u8] = b"z9hG4bK-";
const CALL_ID_SUFFIX: &[u8] = b"@mgw-loadtest";
/// A stale challenge may follow a challenge answered once; more means the credentials are
/// refused.
const MAX_CHALLENGES: u8 = 3;
/// Timer A queues: T1, 2*T1, ... 32*T1, the last interval before Timer B (64*T1) ends it.
const RETRANS_LEVELS: usize = 6;

pub struct Config {
    /// 8 hex digits, random per run, so answers to an earlier run's requests are not ours.
    pub run: [u8; 8],
    pub domain: String,
    /// Request-URI of every INVITE, the digest uri, and the To URI.
    pub request_uri: String,
    /// `IP:PORT` of each caller socket, as Via and Contact carry it.
    pub locals: Vec<String>,
    /// `IP:PORT` of the callee socket (transmit index `locals.len()`).
    pub uas_local: String,
    /// Where the callee socket's datagrams come from: the `received`/`rport` of its answers.
    pub uas_peer: Option<SocketAddr>,
    pub t1_ns: u64,
    pub t2_ns: u64,
    /// An INVITE transaction without a final answer fails this long after it was sent.
    pub invite_timeout_ns: u64,
    pub hold_ns: u64,
    /// The callee sends 180 before its 200.
    pub ringing: bool,
    pub user_agent: String,
}

/// Why a call failed; statuses are counted per method and code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No final answer to the INVITE within the setup timeout.
    InviteTimeout,
    /// No final answer to the BYE within Timer F.
    ByeTimeout,
    /// A final non-2xx to the INVITE (401/407 to credentials that were not stale included).
    InviteStatus(u16),
    /// A final non-2xx to the BYE.
    ByeStatus(u16),
    /// A 401/407 without a challenge we can answer.
    Challenge,
    /// The server hung up (sent BYE) before the caller did.
    ServerBye,
    /// The 200 to the INVITE carried no SDP answer.
    NoSdp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    /// An INVITE (with or without credentials) is in flight.
    Inviting,
    /// Answered and ACKed, waiting for the hold time to pass.
    Holding,
    /// The BYE is in flight.
    Byeing,
}

/// One call, caller side.
struct Call {
    state: State,
    /// Bumped with every new request and when the call ends: invalidates the branch and timers
    /// of the previous one. Never reset, so a reused slot cannot take an earlier call's answer.
    tx: u32,
    seq: u64,
    user: u32,
    socket: u16,
    /// CSeq of the request in flight.
    cseq: u32,
    level: u8,
    /// A provisional answered the request in flight: INVITE stops retransmitting, BYE goes to
    /// T2 (RFC 3261 17.1.1.2, 17.1.2.2).
    proceeding: bool,
    challenges: u8,
    /// When the INVITE in flight was first sent: the setup latency runs from there to its 200.
    invite_sent: u64,
    /// The 200 had no SDP: the call is torn down normally but counted as failed.
    no_sdp: bool,
    /// CSeq of the ACK in `ack`, 0 for none; a retransmitted final answer to that INVITE gets
    /// the same ACK again.
    ack_cseq: u32,
    /// The request in flight, for retransmission. Buffers keep their capacity across calls.
    msg: Vec<u8>,
    ack: Vec<u8>,
    /// After the 2xx: the remote target (Contact URI), then the `To:` and `Route:` lines that
    /// every in-dialog request repeats.
    dialog: Vec<u8>,
    target_len: usize,
}

struct Account {
    user: User,
    /// HA1 per algorithm for `Calls::realm`, once computed.
    ha1: [Option<Hex>; 2],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LegState {
    Free,
    /// 200 sent, no ACK yet: retransmitted on T1 doubling to T2.
    Answered,
    Confirmed,
}

/// One call, callee side.
struct Leg {
    state: LegState,
    tx: u32,
    level: u8,
    /// The 200 to the INVITE, resent for INVITE retransmissions and until the ACK.
    resp: Vec<u8>,
    /// The server's Call-ID, to forget the dialog when it is given up.
    call_id: String,
}

/// A callee dialog by the server's Call-ID: live in a leg slot, or ended by BYE at a time.
enum Dialog {
    Live(u32),
    Closed(u64),
}

/// Caller-side counters.
#[derive(Debug, Default)]
pub struct Stats {
    pub offered: u64,
    pub ok: u64,
    pub failed: u64,
    /// Calls whose INVITE got its 200.
    pub answered: u64,
    pub retransmissions: u64,
    /// ACKs sent again for retransmitted 200s (or 407s).
    pub acks_resent: u64,
    pub stray: u64,
    by_status: BTreeMap<String, u64>,
    by_reason: BTreeMap<&'static str, u64>,
    /// The reason phrase of the first failing answer per method and status: what the server
    /// said was wrong.
    phrases: BTreeMap<String, String>,
    /// Authenticated INVITE (the last INVITE of the call) to its 200, in microseconds.
    pub setup: Histogram,
}

impl Stats {
    fn fail(&mut self, why: Failure) {
        self.failed += 1;
        let reason = match why {
            Failure::InviteTimeout => "invite_timeout",
            Failure::ByeTimeout => "bye_timeout",
            Failure::InviteStatus(code) => {
                *self.by_status.entry(format!("INVITE {code}")).or_default() += 1;
                "invite_status"
            }
            Failure::ByeStatus(code) => {
                *self.by_status.entry(format!("BYE {code}")).or_default() += 1;
                "bye_status"
            }
            Failure::Challenge => "challenge",
            Failure::ServerBye => "server_bye",
            Failure::NoSdp => "no_sdp",
        };
        *self.by_reason.entry(reason).or_default() += 1;
    }

    pub fn failed_by_status(&self) -> &BTreeMap<String, u64> {
        &self.by_status
    }

    fn phrase(&mut self, method: &str, msg: &Message<'_>) {
        if let Some(code) = msg.status() {
            self.phrases
                .entry(format!("{method} {code}"))
                .or_insert_with(|| msg.reason().unwrap_or_default().to_string());
        }
    }

    pub fn reason_phrases(&self) -> &BTreeMap<String, String> {
        &self.phrases
    }

    pub fn failed_by_reason(&self) -> &BTreeMap<&'static str, u64> {
        &self.by_reason
    }
}

/// Callee-side counters.
#[derive(Debug, Default, Serialize)]
pub struct UasStats {
    /// New INVITEs answered.
    pub invites: u64,
    /// INVITEs received again for a dialog already answered.
    pub invite_retransmissions: u64,
    pub acks: u64,
    pub byes: u64,
    /// 200s sent again because no ACK had come.
    pub retransmissions: u64,
    /// Dialogs whose 200 was never ACKed within 64*T1.
    pub no_ack: u64,
    /// INVITEs refused with 488 (no PCMU or PCMA offered).
    pub rejected: u64,
    /// Requests for dialogs this side does not know (answered 481), and stray datagrams.
    pub unknown: u64,
}

pub struct Calls {
    cfg: Config,
    accounts: Vec<Account>,
    realm: Option<String>,
    /// H(INVITE:request-uri) per algorithm: the same for every INVITE of the run.
    ha2: [Hex; 2],
    calls: Vec<Call>,
    free: Vec<u32>,
    active: u64,
    next_seq: u64,
    /// Retransmission queues, one per interval T1 * 2^k.
    retrans: Vec<Queue>,
    /// The level whose interval is T2: where BYE retransmissions stay.
    t2_level: usize,
    invite_timeout: Queue,
    bye_timeout: Queue,
    hold: Queue,
    rng: u64,
    pub stats: Stats,

    legs: Vec<Leg>,
    free_legs: Vec<u32>,
    live_legs: u64,
    next_leg: u64,
    dialogs: HashMap<Box<str>, Dialog>,
    closed: VecDeque<(u64, Box<str>)>,
    leg_retrans: Vec<Queue>,
    leg_timeout: Queue,
    pub uas: UasStats,
    /// Scratch buffer for one-off answers (481, 200 to BYE) and SDP bodies.
    scratch: Vec<u8>,
    uas_contact: String,
}

/// 16 hex digits from xorshift64*: a cnonce need not be secret, only unlikely to repeat.
fn cnonce(state: &mut u64) -> [u8; 16] {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    let v = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
    let mut s = [0u8; 16];
    for (i, c) in s.iter_mut().enumerate() {
        *c = b"0123456789abcdef"[((v >> (60 - 4 * i)) & 15) as usize];
    }
    s
}

fn alg_index(a: Algorithm) -> usize {
    match a {
        Algorithm::Md5 => 0,
        Algorithm::Sha256 => 1,
    }
}

fn put(out: &mut Vec<u8>, parts: &[&[u8]]) {
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// The host part of `IP:PORT` (brackets of IPv6 kept off) and its SDP address type.
fn sdp_addr(local: &str) -> (&str, &'static str) {
    let host = match local.rsplit_once(':') {
        Some((h, _)) => h,
        None => local,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, if host.contains(':') { "IP6" } else { "IP4" })
}

/// A media port for the SDP of call `seq`. Nothing listens there: the server anchors the media
/// whether or not RTP flows, and no RTP is sent.
fn media_port(seq: u64) -> u64 {
    16_384 + 2 * (seq % 8_192)
}

fn write_sdp(out: &mut Vec<u8>, local: &str, session: u64, formats: &[(u8, &str)]) {
    let (ip, kind) = sdp_addr(local);
    let ip = ip.as_bytes();
    let kind = kind.as_bytes();
    put(out, &[b"v=0\r\no=- "]);
    push_dec(out, session);
    put(
        out,
        &[
            b" 1 IN ",
            kind,
            b" ",
            ip,
            b"\r\ns=-\r\nc=IN ",
            kind,
            b" ",
            ip,
        ],
    );
    put(out, &[b"\r\nt=0 0\r\nm=audio "]);
    push_dec(out, media_port(session));
    out.extend_from_slice(b" RTP/AVP");
    for (pt, _) in formats {
        out.push(b' ');
        push_dec(out, u64::from(*pt));
    }
    out.extend_from_slice(b"\r\n");
    for (pt, name) in formats {
        out.extend_from_slice(b"a=rtpmap:");
        push_dec(out, u64::from(*pt));
        put(out, &[b" ", name.as_bytes(), b"/8000\r\n"]);
    }
    out.extend_from_slice(b"a=sendrecv\r\n");
}

/// The first of PCMU (0) and PCMA (8) in the offer's audio line, in the offer's order.
fn pick_codec(sdp: &[u8]) -> Option<(u8, &'static str)> {
    let text = std::str::from_utf8(sdp).ok()?;
    let line = text
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("m=audio "))?;
    line.split_ascii_whitespace().skip(2).find_map(|f| match f {
        "0" => Some((0, "PCMU")),
        "8" => Some((8, "PCMA")),
        _ => None,
    })
}

fn parse_hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u64::from(d))
    })
}

impl Calls {
    pub fn new(cfg: Config, users: Vec<User>, seed: u64) -> Calls {
        assert!(!users.is_empty() && !cfg.locals.is_empty());
        let retrans: Vec<Queue> = (0..RETRANS_LEVELS)
            .map(|k| Queue::new(cfg.t1_ns << k))
            .collect();
        let t2_level = (0..RETRANS_LEVELS)
            .find(|&k| cfg.t1_ns << k >= cfg.t2_ns)
            .unwrap_or(RETRANS_LEVELS - 1);
        let leg_retrans = (0..=t2_level).map(|k| Queue::new(cfg.t1_ns << k)).collect();
        let uri = cfg.request_uri.as_bytes();
        Calls {
            ha2: [Algorithm::Md5, Algorithm::Sha256].map(|a| digest::hash(a, &[b"INVITE", uri])),
            accounts: users
                .into_iter()
                .map(|user| Account {
                    user,
                    ha1: [None, None],
                })
                .collect(),
            realm: None,
            calls: Vec::new(),
            free: Vec::new(),
            active: 0,
            next_seq: 0,
            retrans,
            t2_level,
            invite_timeout: Queue::new(cfg.invite_timeout_ns),
            bye_timeout: Queue::new(64 * cfg.t1_ns),
            hold: Queue::new(cfg.hold_ns),
            rng: seed | 1,
            stats: Stats::default(),
            legs: Vec::new(),
            free_legs: Vec::new(),
            live_legs: 0,
            next_leg: 0,
            dialogs: HashMap::new(),
            closed: VecDeque::new(),
            leg_retrans,
            leg_timeout: Queue::new(64 * cfg.t1_ns),
            uas: UasStats::default(),
            scratch: Vec::with_capacity(512),
            uas_contact: format!("<sip:uas@{}>", cfg.uas_local),
            cfg,
        }
    }

    /// Calls started and not finished (caller side).
    pub fn active(&self) -> u64 {
        self.active
    }

    /// Callee dialogs answered and not yet ended by BYE (or given up for want of an ACK).
    pub fn live_legs(&self) -> u64 {
        self.live_legs
    }

    fn uas_socket(&self) -> usize {
        self.cfg.locals.len()
    }

    // ---- caller side ----

    pub fn start_call(&mut self, now: u64, out: &mut impl Transmit) {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.calls.push(Call {
                    state: State::Free,
                    tx: 0,
                    seq: 0,
                    user: 0,
                    socket: 0,
                    cseq: 0,
                    level: 0,
                    proceeding: false,
                    challenges: 0,
                    invite_sent: 0,
                    no_sdp: false,
                    ack_cseq: 0,
                    msg: Vec::with_capacity(1024),
                    ack: Vec::with_capacity(512),
                    dialog: Vec::with_capacity(256),
                    target_len: 0,
                });
                (self.calls.len() - 1) as u32
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let c = &mut self.calls[slot as usize];
        c.state = State::Inviting;
        c.seq = seq;
        c.user = (seq % self.accounts.len() as u64) as u32;
        c.socket = (seq % self.cfg.locals.len() as u64) as u16;
        c.cseq = 0;
        c.challenges = 0;
        c.no_sdp = false;
        c.ack_cseq = 0;
        c.dialog.clear();
        c.target_len = 0;
        self.active += 1;
        self.stats.offered += 1;
        self.send_invite(slot, None, now, out);
    }

    /// `Call-ID: RUN-SLOT-SEQ@mgw-loadtest`.
    fn write_call_id(&self, out: &mut Vec<u8>, slot: u32, seq: u64) {
        out.extend_from_slice(&self.cfg.run);
        out.push(b'-');
        push_hex(out, u64::from(slot));
        out.push(b'-');
        push_hex(out, seq);
        out.extend_from_slice(CALL_ID_SUFFIX);
    }

    /// `(slot, seq)` from a Call-ID we wrote.
    fn parse_call_id(&self, call_id: &str) -> Option<(u32, u64)> {
        let rest = call_id.as_bytes().strip_prefix(&self.cfg.run[..])?;
        let rest = rest.strip_prefix(b"-")?.strip_suffix(CALL_ID_SUFFIX)?;
        let dash = rest.iter().position(|&b| b == b'-')?;
        let slot = u32::try_from(parse_hex(&rest[..dash])?).ok()?;
        Some((slot, parse_hex(&rest[dash + 1..])?))
    }

    /// Via, Max-Forwards, From, Call-ID and CSeq of a caller request: everything but the
    /// request line, To, Route and what follows.
    fn write_common(&self, out: &mut Vec<u8>, slot: u32, tx: u32, cseq: u32, method: &[u8]) {
        let c = &self.calls[slot as usize];
        let local = self.cfg.locals[usize::from(c.socket)].as_bytes();
        let user = self.accounts[c.user as usize].user.name.as_bytes();
        put(out, &[b"Via: SIP/2.0/UDP ", local, b";rport;branch="]);
        out.extend_from_slice(BRANCH_PREFIX);
        out.extend_from_slice(&self.cfg.run);
        out.push(b'-');
        push_hex(out, u64::from(slot));
        out.push(b'-');
        push_hex(out, u64::from(tx));
        put(out, &[b"\r\nMax-Forwards: 70\r\nFrom: <sip:", user, b"@"]);
        put(out, &[self.cfg.domain.as_bytes(), b">;tag="]);
        push_hex(out, c.seq);
        out.extend_from_slice(b"\r\nCall-ID: ");
        self.write_call_id(out, slot, c.seq);
        out.extend_from_slice(b"\r\nCSeq: ");
        push_dec(out, u64::from(cseq));
        put(out, &[b" ", method, b"\r\n"]);
    }

    /// Starts the next INVITE transaction of the call: writes it (with the digest answer when
    /// given), sends it, arms Timer A and the setup timeout.
    fn send_invite(
        &mut self,
        slot: u32,
        auth: Option<(&str, &Challenge<'_>)>,
        now: u64,
        out: &mut impl Transmit,
    ) {
        let (tx, cseq) = {
            let c = &mut self.calls[slot as usize];
            c.tx = c.tx.wrapping_add(1);
            c.cseq += 1;
            c.level = 0;
            c.proceeding = false;
            c.invite_sent = now;
            (c.tx, c.cseq)
        };
        let mut msg = std::mem::take(&mut self.calls[slot as usize].msg);
        msg.clear();
        let ruri = self.cfg.request_uri.as_bytes();
        put(&mut msg, &[b"INVITE ", ruri, b" SIP/2.0\r\n"]);
        self.write_common(&mut msg, slot, tx, cseq, b"INVITE");
        let (user, seq, socket) = {
            let c = &self.calls[slot as usize];
            (c.user as usize, c.seq, usize::from(c.socket))
        };
        let local = self.cfg.locals[socket].as_bytes();
        let name = self.accounts[user].user.name.as_bytes();
        put(
            &mut msg,
            &[b"To: <", ruri, b">\r\nContact: <sip:", name, b"@"],
        );
        put(&mut msg, &[local, b">\r\n"]);
        if let Some((header, ch)) = auth {
            let ha1 = self.ha1(user, ch);
            let cnonce = cnonce(&mut self.rng);
            let account = &self.accounts[user];
            let answer = Answer {
                username: &account.user.name,
                uri: &self.cfg.request_uri,
                ha1: &ha1,
                ha2: &self.ha2[alg_index(ch.algorithm)],
                cnonce: &cnonce,
            };
            digest::write_header(&mut msg, header, ch, &answer);
        }
        put(
            &mut msg,
            &[
                b"User-Agent: ",
                self.cfg.user_agent.as_bytes(),
                b"\r\nContent-Type: application/sdp\r\nContent-Length: ",
            ],
        );
        let mut sdp = std::mem::take(&mut self.scratch);
        sdp.clear();
        write_sdp(
            &mut sdp,
            &self.cfg.locals[socket],
            seq,
            &[(0, "PCMU"), (8, "PCMA")],
        );
        push_dec(&mut msg, sdp.len() as u64);
        msg.extend_from_slice(b"\r\n\r\n");
        msg.extend_from_slice(&sdp);
        self.scratch = sdp;
        out.send(socket, &msg);
        self.calls[slot as usize].msg = msg;
        self.retrans[0].arm(now, slot, tx);
        self.invite_timeout.arm(now, slot, tx);
    }

    /// HA1 of the account for the challenge's realm and algorithm, cached for the first realm.
    fn ha1(&mut self, user: usize, ch: &Challenge<'_>) -> Hex {
        let i = alg_index(ch.algorithm);
        let cached = self.realm.as_deref() == Some(ch.realm);
        if let (true, Some(h)) = (cached, self.accounts[user].ha1[i]) {
            return h;
        }
        let u = &self.accounts[user].user;
        let h = digest::hash(
            ch.algorithm,
            &[
                u.name.as_bytes(),
                ch.realm.as_bytes(),
                u.password.as_bytes(),
            ],
        );
        if self.realm.is_none() {
            self.realm = Some(ch.realm.to_string());
        }
        if self.realm.as_deref() == Some(ch.realm) {
            self.accounts[user].ha1[i] = Some(h);
        }
        h
    }

    /// One datagram on caller socket `socket`.
    pub fn on_uac_datagram(
        &mut self,
        socket: usize,
        bytes: &[u8],
        now: u64,
        out: &mut impl Transmit,
    ) {
        let Ok(msg) = Message::parse(bytes) else {
            self.stats.stray += 1;
            return;
        };
        if msg.is_request() {
            self.uac_request(socket, &msg, out);
            return;
        }
        let found = msg
            .call_id()
            .and_then(|id| self.parse_call_id(id))
            .filter(|&(slot, seq)| {
                self.calls
                    .get(slot as usize)
                    .is_some_and(|c| c.state != State::Free && c.seq == seq)
            });
        let (Some((slot, _)), Some(status), Some(cseq)) = (found, msg.status(), msg.cseq()) else {
            self.stats.stray += 1;
            return;
        };
        let c = &self.calls[slot as usize];
        let current = cseq.seq == c.cseq;
        match (cseq.method, c.state) {
            (Method::Invite, State::Inviting) if current => {
                self.invite_response(slot, &msg, status, now, out)
            }
            (Method::Invite, _) if status >= 200 && cseq.seq == c.ack_cseq => {
                out.send(usize::from(c.socket), &c.ack);
                self.stats.acks_resent += 1;
            }
            (Method::Bye, State::Byeing) if current => match status {
                100..=199 => self.calls[slot as usize].proceeding = true,
                200..=299 => {
                    if self.calls[slot as usize].no_sdp {
                        self.finish(slot, Some(Failure::NoSdp));
                    } else {
                        self.finish(slot, None);
                    }
                }
                code => {
                    self.stats.phrase("BYE", &msg);
                    self.finish(slot, Some(Failure::ByeStatus(code)));
                }
            },
            _ => self.stats.stray += 1,
        }
    }

    fn invite_response(
        &mut self,
        slot: u32,
        msg: &Message<'_>,
        status: u16,
        now: u64,
        out: &mut impl Transmit,
    ) {
        match status {
            100..=199 => self.calls[slot as usize].proceeding = true,
            200..=299 => self.answered(slot, msg, now, out),
            code => {
                self.ack_non2xx(slot, msg, out);
                if code == 401 || code == 407 {
                    self.on_challenge(slot, msg, code, now, out);
                } else {
                    self.stats.phrase("INVITE", msg);
                    self.finish(slot, Some(Failure::InviteStatus(code)));
                }
            }
        }
    }

    /// The ACK of a final non-2xx: the INVITE's Request-URI, branch, From, Call-ID and CSeq
    /// number, the response's To (RFC 3261 17.1.1.3).
    fn ack_non2xx(&mut self, slot: u32, msg: &Message<'_>, out: &mut impl Transmit) {
        let (tx, cseq, socket) = {
            let c = &self.calls[slot as usize];
            (c.tx, c.cseq, usize::from(c.socket))
        };
        let mut ack = std::mem::take(&mut self.calls[slot as usize].ack);
        ack.clear();
        put(
            &mut ack,
            &[b"ACK ", self.cfg.request_uri.as_bytes(), b" SIP/2.0\r\n"],
        );
        self.write_common(&mut ack, slot, tx, cseq, b"ACK");
        let to = msg.header(HeaderName::To).unwrap_or_default();
        put(
            &mut ack,
            &[b"To: ", to.as_bytes(), b"\r\nContent-Length: 0\r\n\r\n"],
        );
        out.send(socket, &ack);
        let c = &mut self.calls[slot as usize];
        c.ack = ack;
        c.ack_cseq = cseq;
    }

    fn on_challenge(
        &mut self,
        slot: u32,
        msg: &Message<'_>,
        code: u16,
        now: u64,
        out: &mut impl Transmit,
    ) {
        let (challenge_header, answer_header) = if code == 401 {
            (HeaderName::WwwAuthenticate, "Authorization")
        } else {
            (HeaderName::ProxyAuthenticate, "Proxy-Authorization")
        };
        let Ok(ch) = digest::choose(msg.all(challenge_header)) else {
            self.finish(slot, Some(Failure::Challenge));
            return;
        };
        let c = &mut self.calls[slot as usize];
        // A challenge to credentials means they were refused, unless only the nonce aged.
        if c.challenges > 0 && (!ch.stale || c.challenges >= MAX_CHALLENGES) {
            self.stats.phrase("INVITE", msg);
            self.finish(slot, Some(Failure::InviteStatus(code)));
            return;
        }
        c.challenges += 1;
        self.send_invite(slot, Some((answer_header, &ch)), now, out);
    }

    /// The 200 to the INVITE: the dialog's target and route set are taken from it (RFC 3261
    /// 12.1.2), the ACK sent, and the hold timer armed.
    fn answered(&mut self, slot: u32, msg: &Message<'_>, now: u64, out: &mut impl Transmit) {
        let latency_us = now.saturating_sub(self.calls[slot as usize].invite_sent) / 1000;
        self.stats.setup.record(latency_us);
        self.stats.answered += 1;
        let mut dialog = std::mem::take(&mut self.calls[slot as usize].dialog);
        dialog.clear();
        let contact = msg
            .header(HeaderName::Contact)
            .and_then(|v| NameAddr::parse(v).ok())
            .map(|n| n.uri.raw);
        dialog.extend_from_slice(contact.unwrap_or(self.cfg.request_uri.as_str()).as_bytes());
        let target_len = dialog.len();
        let to = msg.header(HeaderName::To).unwrap_or_default();
        put(&mut dialog, &[b"To: ", to.as_bytes(), b"\r\n"]);
        // Record-Route in reverse is the caller's route set.
        let routes: Vec<&str> = msg.list(HeaderName::RecordRoute).collect();
        for r in routes.iter().rev() {
            put(&mut dialog, &[b"Route: ", r.as_bytes(), b"\r\n"]);
        }
        let c = &mut self.calls[slot as usize];
        c.dialog = dialog;
        c.target_len = target_len;
        c.no_sdp = msg.body.is_empty();
        c.state = State::Holding;
        c.tx = c.tx.wrapping_add(1);
        let (tx, cseq) = (c.tx, c.cseq);
        let mut ack = std::mem::take(&mut c.ack);
        self.write_in_dialog(&mut ack, slot, tx, cseq, b"ACK");
        let c = &mut self.calls[slot as usize];
        out.send(usize::from(c.socket), &ack);
        c.ack = ack;
        c.ack_cseq = cseq;
        self.hold.arm(now, slot, tx);
    }

    /// ACK or BYE inside the dialog: to the remote target, along the route set.
    fn write_in_dialog(&self, out: &mut Vec<u8>, slot: u32, tx: u32, cseq: u32, method: &[u8]) {
        let c = &self.calls[slot as usize];
        out.clear();
        let target = &c.dialog[..c.target_len];
        put(out, &[method, b" ", target, b" SIP/2.0\r\n"]);
        self.write_common(out, slot, tx, cseq, method);
        out.extend_from_slice(&c.dialog[c.target_len..]);
        put(
            out,
            &[
                b"User-Agent: ",
                self.cfg.user_agent.as_bytes(),
                b"\r\nContent-Length: 0\r\n\r\n",
            ],
        );
    }

    fn send_bye(&mut self, slot: u32, now: u64, out: &mut impl Transmit) {
        let (tx, cseq) = {
            let c = &mut self.calls[slot as usize];
            c.state = State::Byeing;
            c.tx = c.tx.wrapping_add(1);
            c.cseq += 1;
            c.level = 0;
            c.proceeding = false;
            (c.tx, c.cseq)
        };
        let mut msg = std::mem::take(&mut self.calls[slot as usize].msg);
        self.write_in_dialog(&mut msg, slot, tx, cseq, b"BYE");
        let c = &mut self.calls[slot as usize];
        out.send(usize::from(c.socket), &msg);
        c.msg = msg;
        self.retrans[0].arm(now, slot, tx);
        self.bye_timeout.arm(now, slot, tx);
    }

    /// A request from the server to a caller: BYE (the server hung up), or anything else.
    fn uac_request(&mut self, socket: usize, msg: &Message<'_>, out: &mut impl Transmit) {
        let method = msg.method();
        if method == Some(Method::Ack) {
            return;
        }
        let slot = msg
            .call_id()
            .and_then(|id| self.parse_call_id(id))
            .filter(|&(slot, seq)| {
                self.calls
                    .get(slot as usize)
                    .is_some_and(|c| c.state != State::Free && c.seq == seq)
            })
            .map(|(slot, _)| slot);
        let (code, reason) = match (method, slot) {
            (Some(Method::Bye), Some(slot)) => {
                if self.calls[slot as usize].state == State::Holding {
                    self.finish(slot, Some(Failure::ServerBye));
                }
                (200, "OK")
            }
            (Some(Method::Options), _) => (200, "OK"),
            (_, None) => (481, "Call/Transaction Does Not Exist"),
            _ => (501, "Not Implemented"),
        };
        let mut buf = std::mem::take(&mut self.scratch);
        ResponseBuilder::new(&mut buf, msg, code, reason, ReplyContext::default())
            .finish(None, b"");
        out.send(socket, &buf);
        self.scratch = buf;
    }

    fn finish(&mut self, slot: u32, failure: Option<Failure>) {
        let c = &mut self.calls[slot as usize];
        c.state = State::Free;
        c.tx = c.tx.wrapping_add(1);
        self.free.push(slot);
        self.active -= 1;
        match failure {
            None => self.stats.ok += 1,
            Some(why) => self.stats.fail(why),
        }
    }

    // ---- callee side ----

    /// One datagram on the callee socket.
    pub fn on_uas_datagram(&mut self, bytes: &[u8], now: u64, out: &mut impl Transmit) {
        let parsed = Message::parse(bytes).ok().filter(Message::is_request);
        let Some((msg, call_id)) = parsed.and_then(|m| {
            let id = m.call_id()?;
            Some((m, id))
        }) else {
            self.uas.unknown += 1;
            return;
        };
        let known = match self.dialogs.get(call_id) {
            Some(Dialog::Live(leg)) => Some(Some(*leg)),
            Some(Dialog::Closed(_)) => Some(None),
            None => None,
        };
        match (msg.method(), known) {
            (Some(Method::Invite), None) => self.new_leg(&msg, call_id, now, out),
            (Some(Method::Invite), Some(Some(leg))) => {
                self.uas.invite_retransmissions += 1;
                out.send(self.uas_socket(), &self.legs[leg as usize].resp);
            }
            (Some(Method::Ack), Some(Some(leg))) => {
                let l = &mut self.legs[leg as usize];
                if l.state == LegState::Answered {
                    l.state = LegState::Confirmed;
                    l.tx = l.tx.wrapping_add(1);
                    self.uas.acks += 1;
                }
            }
            (Some(Method::Bye), Some(leg)) => {
                if let Some(leg) = leg {
                    self.uas.byes += 1;
                    self.close_leg(leg, call_id, now);
                }
                self.uas_reply(&msg, 200, "OK", out);
            }
            (Some(Method::Ack | Method::Invite), _) => {}
            (Some(Method::Cancel | Method::Options), _) => self.uas_reply(&msg, 200, "OK", out),
            (_, None) => {
                self.uas.unknown += 1;
                self.uas_reply(&msg, 481, "Call/Transaction Does Not Exist", out);
            }
            _ => self.uas_reply(&msg, 501, "Not Implemented", out),
        }
    }

    fn uas_reply(&mut self, msg: &Message<'_>, code: u16, reason: &str, out: &mut impl Transmit) {
        let mut buf = std::mem::take(&mut self.scratch);
        let ctx = ReplyContext {
            source: self.cfg.uas_peer,
            to_tag: None,
        };
        ResponseBuilder::new(&mut buf, msg, code, reason, ctx).finish(None, b"");
        out.send(self.uas_socket(), &buf);
        self.scratch = buf;
    }

    fn new_leg(&mut self, msg: &Message<'_>, call_id: &str, now: u64, out: &mut impl Transmit) {
        let Some(codec) = pick_codec(msg.body) else {
            self.uas.rejected += 1;
            return self.uas_reply(msg, 488, "Not Acceptable Here", out);
        };
        let leg = match self.free_legs.pop() {
            Some(l) => l,
            None => {
                self.legs.push(Leg {
                    state: LegState::Free,
                    tx: 0,
                    level: 0,
                    resp: Vec::with_capacity(1024),
                    call_id: String::new(),
                });
                (self.legs.len() - 1) as u32
            }
        };
        let n = self.next_leg;
        self.next_leg += 1;
        self.live_legs += 1;
        self.uas.invites += 1;
        let mut tag = Vec::with_capacity(24);
        tag.push(b'u');
        tag.extend_from_slice(&self.cfg.run);
        push_hex(&mut tag, n);
        let tag = std::str::from_utf8(&tag).unwrap_or("u");
        let socket = self.uas_socket();
        let mut resp = std::mem::take(&mut self.legs[leg as usize].resp);
        let mut sdp = std::mem::take(&mut self.scratch);
        sdp.clear();
        write_sdp(&mut sdp, &self.cfg.uas_local, n, &[codec]);
        let ctx = ReplyContext {
            source: self.cfg.uas_peer,
            to_tag: Some(tag),
        };
        let contact = self.uas_contact.as_str();
        let answer = |resp: &mut Vec<u8>, code, reason, body: Option<&[u8]>| {
            let mut b = ResponseBuilder::new(resp, msg, code, reason, ctx);
            // A proxy between the server and this callee learns its route set from these.
            for rr in msg.all(HeaderName::RecordRoute) {
                b = b.header("Record-Route", rr);
            }
            let b = b.header("Contact", contact);
            match body {
                Some(sdp) => b.finish(Some("application/sdp"), sdp),
                None => b.finish(None, b""),
            }
        };
        if self.cfg.ringing {
            answer(&mut resp, 180, "Ringing", None);
            out.send(socket, &resp);
        }
        answer(&mut resp, 200, "OK", Some(&sdp));
        self.scratch = sdp;
        out.send(socket, &resp);
        let l = &mut self.legs[leg as usize];
        l.resp = resp;
        l.call_id.clear();
        l.call_id.push_str(call_id);
        l.state = LegState::Answered;
        l.tx = l.tx.wrapping_add(1);
        l.level = 0;
        let tx = l.tx;
        self.leg_retrans[0].arm(now, leg, tx);
        self.leg_timeout.arm(now, leg, tx);
        self.dialogs.insert(call_id.into(), Dialog::Live(leg));
    }

    /// Ends a callee dialog; its Call-ID is kept for 64*T1 to answer BYE retransmissions.
    fn close_leg(&mut self, leg: u32, call_id: &str, now: u64) {
        let l = &mut self.legs[leg as usize];
        l.state = LegState::Free;
        l.tx = l.tx.wrapping_add(1);
        self.free_legs.push(leg);
        self.live_legs -= 1;
        let until = now + 64 * self.cfg.t1_ns;
        if let Some(d) = self.dialogs.get_mut(call_id) {
            *d = Dialog::Closed(until);
        }
        self.closed.push_back((until, call_id.into()));
    }

    // ---- timers ----

    /// Runs every timer due at `now`: retransmissions, timeouts, hang-ups, forgetting dialogs.
    pub fn on_timers(&mut self, now: u64, out: &mut impl Transmit) {
        for level in 0..self.retrans.len() {
            while let Some(e) = self.retrans[level].pop_due(now) {
                let Some(c) = self.calls.get_mut(e.slot as usize) else {
                    continue;
                };
                let live = matches!(c.state, State::Inviting | State::Byeing);
                if !live || c.tx != e.tx || usize::from(c.level) != level {
                    continue;
                }
                // An INVITE answered by a provisional waits for the final answer in silence.
                if c.state == State::Inviting && c.proceeding {
                    continue;
                }
                out.send(usize::from(c.socket), &c.msg);
                self.stats.retransmissions += 1;
                let next = match c.state {
                    State::Inviting => (level + 1).min(RETRANS_LEVELS - 1),
                    _ if c.proceeding => self.t2_level,
                    _ => (level + 1).min(self.t2_level),
                };
                c.level = next as u8;
                self.retrans[next].arm(now, e.slot, e.tx);
            }
        }
        while let Some(e) = self.invite_timeout.pop_due(now) {
            if self.is_live(e.slot, e.tx, State::Inviting) {
                self.finish(e.slot, Some(Failure::InviteTimeout));
            }
        }
        while let Some(e) = self.bye_timeout.pop_due(now) {
            if self.is_live(e.slot, e.tx, State::Byeing) {
                self.finish(e.slot, Some(Failure::ByeTimeout));
            }
        }
        while let Some(e) = self.hold.pop_due(now) {
            if self.is_live(e.slot, e.tx, State::Holding) {
                self.send_bye(e.slot, now, out);
            }
        }
        self.on_leg_timers(now, out);
    }

    fn is_live(&self, slot: u32, tx: u32, state: State) -> bool {
        self.calls
            .get(slot as usize)
            .is_some_and(|c| c.state == state && c.tx == tx)
    }

    fn on_leg_timers(&mut self, now: u64, out: &mut impl Transmit) {
        let socket = self.uas_socket();
        let last = self.leg_retrans.len() - 1;
        for level in 0..self.leg_retrans.len() {
            while let Some(e) = self.leg_retrans[level].pop_due(now) {
                let Some(l) = self.legs.get_mut(e.slot as usize) else {
                    continue;
                };
                if l.state != LegState::Answered || l.tx != e.tx || usize::from(l.level) != level {
                    continue;
                }
                out.send(socket, &l.resp);
                self.uas.retransmissions += 1;
                let next = (level + 1).min(last);
                l.level = next as u8;
                self.leg_retrans[next].arm(now, e.slot, e.tx);
            }
        }
        while let Some(e) = self.leg_timeout.pop_due(now) {
            let Some(l) = self.legs.get_mut(e.slot as usize) else {
                continue;
            };
            if l.state == LegState::Answered && l.tx == e.tx {
                // Never ACKed: the dialog is given up (a real UAS would send BYE); a late BYE
                // for it is answered 481.
                l.state = LegState::Free;
                l.tx = l.tx.wrapping_add(1);
                self.free_legs.push(e.slot);
                self.live_legs -= 1;
                self.uas.no_ack += 1;
                self.dialogs.remove(l.call_id.as_str());
            }
        }
        while self.closed.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((at, id)) = self.closed.pop_front() {
                if matches!(self.dialogs.get(&id), Some(Dialog::Closed(t)) if *t == at) {
                    self.dialogs.remove(&id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mgw_core::auth::{digest as core_digest, Credentials};

    #[derive(Default)]
    struct Sent(Vec<(usize, Vec<u8>)>);

    impl Transmit for Sent {
        fn send(&mut self, socket: usize, datagram: &[u8]) {
            self.0.push((socket, datagram.to_vec()));
        }
    }

    impl Sent {
        fn take(&mut self) -> Vec<(usize, Vec<u8>)> {
            std::mem::take(&mut self.0)
        }
    }

    const MS: u64 = 1_000_000;

    fn calls(ringing: bool) -> Calls {
        let users = vec![User {
            name: "alice".into(),
            password: "secret".into(),
        }];
        Calls::new(
            Config {
                run: *b"0badcafe",
                domain: "mgw.test".into(),
                request_uri: "sip:service@mgw.test".into(),
                locals: vec!["127.0.0.1:40000".into()],
                uas_local: "127.0.0.1:5093".into(),
                uas_peer: None,
                t1_ns: 500 * MS,
                t2_ns: 4000 * MS,
                invite_timeout_ns: 32_000 * MS,
                hold_ns: 1000 * MS,
                ringing,
                user_agent: "test".into(),
            },
            users,
            7,
        )
    }

    fn reply(req: &[u8], code: u16, extra: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        let m = Message::parse(req).expect("request parses");
        let mut buf = Vec::new();
        let ctx = ReplyContext {
            source: None,
            to_tag: Some("srv"),
        };
        let mut b = ResponseBuilder::new(&mut buf, &m, code, "X", ctx);
        for (n, v) in extra {
            b = b.header(n, v);
        }
        let ct = (!body.is_empty()).then_some("application/sdp");
        b.finish(ct, body);
        buf
    }

    fn parse(b: &[u8]) -> Message<'_> {
        Message::parse(b).expect("parses")
    }

    const SDP: &[u8] = b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 30000 RTP/AVP 0\r\n";

    #[test]
    fn caller_runs_a_whole_call() {
        let mut g = calls(false);
        let mut out = Sent::default();
        g.start_call(0, &mut out);
        let sent = out.take();
        let invite1 = sent[0].1.clone();
        let m = parse(&invite1);
        assert_eq!(m.method(), Some(Method::Invite));
        assert!(pick_codec(m.body).is_some());
        let challenge = "Digest realm=\"mgw.test\", nonce=\"n1\", algorithm=MD5, qop=\"auth\"";
        let c407 = reply(&invite1, 407, &[("Proxy-Authenticate", challenge)], b"");
        g.on_uac_datagram(0, &c407, MS, &mut out);
        let sent = out.take();
        assert_eq!(sent.len(), 2);
        let ack = parse(&sent[0].1);
        assert_eq!(ack.method(), Some(Method::Ack));
        assert_eq!(
            ack.top_via().and_then(|v| v.branch()),
            m.top_via().and_then(|v| v.branch())
        );
        assert_eq!(ack.cseq().map(|c| c.seq), Some(1));
        assert!(ack
            .header(HeaderName::To)
            .is_some_and(|t| t.contains("tag=srv")));
        let invite2 = sent[1].1.clone();
        let m2 = parse(&invite2);
        assert_eq!(m2.cseq().map(|c| c.seq), Some(2));
        let creds = Credentials::parse(m2.header(HeaderName::ProxyAuthorization).expect("auth"))
            .expect("creds");
        let ha1 = Algorithm::Md5.ha1("alice", "mgw.test", "secret");
        assert!(core_digest::verify(&creds, Algorithm::Md5, &ha1, "INVITE"));

        // The 407 again: the same ACK again.
        g.on_uac_datagram(0, &c407, 2 * MS, &mut out);
        assert_eq!(out.take().len(), 1);
        assert_eq!(g.stats.acks_resent, 1);

        let ringing = reply(&invite2, 180, &[], b"");
        g.on_uac_datagram(0, &ringing, 3 * MS, &mut out);
        let ok = reply(
            &invite2,
            200,
            &[
                ("Contact", "<sip:mgw@127.0.0.1:5060>"),
                ("Record-Route", "<sip:p1;lr>, <sip:p2;lr>"),
            ],
            SDP,
        );
        g.on_uac_datagram(0, &ok, 5 * MS, &mut out);
        let sent = out.take();
        let ack = parse(&sent[0].1);
        assert_eq!(
            ack.request_uri().map(|u| u.raw),
            Some("sip:mgw@127.0.0.1:5060")
        );
        assert_eq!(ack.cseq().map(|c| c.seq), Some(2));
        let routes: Vec<&str> = ack.list(HeaderName::Route).collect();
        assert_eq!(routes, ["<sip:p2;lr>", "<sip:p1;lr>"]);
        assert_eq!(g.stats.setup.max(), 4000);
        // A retransmitted 200 is ACKed again.
        g.on_uac_datagram(0, &ok, 6 * MS, &mut out);
        assert_eq!(out.take().len(), 1);

        // No INVITE retransmission after the answer; the BYE after the hold time.
        g.on_timers(900 * MS, &mut out);
        assert!(out.0.is_empty());
        g.on_timers(1010 * MS, &mut out);
        let sent = out.take();
        let bye = parse(&sent[0].1);
        assert_eq!(bye.method(), Some(Method::Bye));
        assert_eq!(bye.cseq().map(|c| c.seq), Some(3));
        assert!(bye
            .header(HeaderName::To)
            .is_some_and(|t| t.contains("tag=srv")));
        let bye_ok = reply(&sent[0].1, 200, &[], b"");
        g.on_uac_datagram(0, &bye_ok, 1020 * MS, &mut out);
        assert_eq!((g.stats.ok, g.stats.failed, g.active()), (1, 0, 0));
        assert_eq!(g.stats.retransmissions, 0);
    }

    #[test]
    fn invite_retransmits_until_provisional_and_fails_on_status() {
        let mut g = calls(false);
        let mut out = Sent::default();
        g.start_call(0, &mut out);
        let invite = out.take()[0].1.clone();
        g.on_timers(500 * MS, &mut out);
        g.on_timers(1500 * MS, &mut out);
        assert_eq!(g.stats.retransmissions, 2);
        g.on_uac_datagram(0, &reply(&invite, 100, &[], b""), 1600 * MS, &mut out);
        out.take();
        g.on_timers(10_000 * MS, &mut out);
        assert!(out.0.is_empty());
        g.on_uac_datagram(0, &reply(&invite, 503, &[], b""), 11_000 * MS, &mut out);
        assert_eq!(parse(&out.take()[0].1).method(), Some(Method::Ack));
        assert_eq!(g.stats.failed_by_status().get("INVITE 503"), Some(&1));
        assert_eq!(g.active(), 0);
    }

    #[test]
    fn silent_server_times_the_invite_out() {
        let mut g = calls(false);
        let mut out = Sent::default();
        g.start_call(0, &mut out);
        let mut t = 0;
        while g.active() > 0 && t < 40_000 * MS {
            t += 10 * MS;
            g.on_timers(t, &mut out);
        }
        // Timer A: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s.
        assert_eq!(g.stats.retransmissions, 6);
        assert_eq!(g.stats.failed_by_reason().get("invite_timeout"), Some(&1));
        assert_eq!(t, 32_000 * MS);
    }

    #[test]
    fn callee_answers_retransmits_and_hangs_up() {
        let mut g = calls(true);
        let mut out = Sent::default();
        let invite = b"INVITE sip:service@127.0.0.1:5093 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb1;rport\r\n\
From: <sip:100@mgw.test>;tag=f1\r\nTo: <sip:service@mgw.test>\r\nCall-ID: b1@mgw\r\n\
CSeq: 1 INVITE\r\nContact: <sip:mgw@127.0.0.1:5060>\r\nContent-Type: application/sdp\r\n\
Content-Length: 54\r\n\r\nv=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 30000 RTP/AVP 9 8 0\r\n";
        g.on_uas_datagram(invite, 0, &mut out);
        let sent = out.take();
        assert_eq!(sent.len(), 2);
        assert!(sent.iter().all(|(s, _)| *s == 1));
        assert_eq!(parse(&sent[0].1).status(), Some(180));
        let ok = parse(&sent[1].1);
        assert_eq!(ok.status(), Some(200));
        assert_eq!(pick_codec(ok.body), Some((8, "PCMA")));
        assert!(ok.to().and_then(|t| t.tag()).is_some());
        // Retransmitted until the ACK, and for a retransmitted INVITE.
        g.on_timers(500 * MS, &mut out);
        g.on_uas_datagram(invite, 600 * MS, &mut out);
        assert_eq!(out.take().len(), 2);
        let ack = b"ACK sip:uas@127.0.0.1:5093 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb2\r\n\
From: <sip:100@mgw.test>;tag=f1\r\nTo: <sip:service@mgw.test>;tag=x\r\nCall-ID: b1@mgw\r\n\
CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n";
        g.on_uas_datagram(ack, 700 * MS, &mut out);
        g.on_timers(5000 * MS, &mut out);
        assert!(out.0.is_empty());
        let bye = b"BYE sip:uas@127.0.0.1:5093 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb3\r\n\
From: <sip:100@mgw.test>;tag=f1\r\nTo: <sip:service@mgw.test>;tag=x\r\nCall-ID: b1@mgw\r\n\
CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
        g.on_uas_datagram(bye, 6000 * MS, &mut out);
        g.on_uas_datagram(bye, 6500 * MS, &mut out);
        let sent = out.take();
        assert!(sent.iter().all(|(_, b)| parse(b).status() == Some(200)));
        assert_eq!(sent.len(), 2);
        assert_eq!((g.uas.acks, g.uas.byes, g.live_legs()), (1, 1, 0));
        // Forgotten after 64*T1: a BYE now is unknown.
        g.on_timers(40_000 * MS, &mut out);
        g.on_uas_datagram(bye, 40_000 * MS, &mut out);
        assert_eq!(parse(&out.take()[0].1).status(), Some(481));
    }

    #[test]
    fn call_ids_round_trip() {
        let g = calls(false);
        let mut b = Vec::new();
        g.write_call_id(&mut b, 0x1f, 0xabc);
        let s = std::str::from_utf8(&b).expect("ascii");
        assert_eq!(g.parse_call_id(s), Some((0x1f, 0xabc)));
        assert_eq!(g.parse_call_id("0badcafe-1f@mgw-loadtest"), None);
        assert_eq!(g.parse_call_id("deadbeef-1-2@mgw-loadtest"), None);
    }
}
