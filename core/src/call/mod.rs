//! The call switch: a back-to-back user agent, sans-IO. Each call is two dialogs (the caller's,
//! where mgw is the UAS, and the callee's, where mgw is the UAC) with their own Call-IDs, tags
//! and CSeqs, so neither side sees the other's topology. Media is anchored on the media engine:
//! the B2BUA asks for it with [`MediaRequest`]s (offer, answer, finish) and continues when the
//! driver hands back the result ([`Calls::on_media`]), which keeps this module free of threads.
//!
//! A call belongs to the worker that received its INVITE. Tags and Call-IDs mgw creates carry
//! the worker's number (`owner_of`), so a message that the kernel hands to another worker
//! (SO_REUSEPORT hashes the callee's address, not the caller's) is passed to the owner.

pub mod cause;
pub mod dialog;
pub mod dialplan;
pub mod peer;

use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::admission::{Admission, CallPermit, Refusal};
use crate::directory::{ChannelToken, LogOn};
use crate::registrar::{LocationTable, Transport};
use crate::sip::{HeaderName, Message, Method, ReplyContext, ResponseBuilder};
use crate::transaction::{ClientTxId, ServerTxId, TransactionLayer};
use dialog::Dialog;
use dialplan::{DialPlan, Route};
use peer::Peers;

/// Settings of the call layer.
#[derive(Clone, Debug)]
pub struct CallConfig {
    pub domain: String,
    /// `host:port` mgw writes into its Via and Contact headers.
    pub local: String,
    /// The same towards parties reached over IPv6 (`[v6]:port`), when mgw listens on IPv6.
    pub local6: Option<String>,
    pub server: String,
    /// Ringing without an answer for this long: the forks are cancelled and the caller gets
    /// 480 (no answer).
    pub no_answer: Duration,
    pub dial_plan: DialPlan,
    /// RFC 3261 T1 and T2, for retransmitting a 2xx to the caller until it ACKs.
    pub t1: Duration,
    pub t2: Duration,
    /// RFC 4028 session timer towards callers that support it: the interval granted when
    /// the caller asks for none, and the smallest accepted (`Min-SE`).
    pub session_expires: Duration,
    pub min_se: Duration,
    /// Line drivers and trunks: reached by dial-plan `trunk` rules and the numbers they serve.
    pub peers: Peers,
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            domain: "mgw.local".into(),
            local: "127.0.0.1:5060".into(),
            local6: None,
            server: "mgw".into(),
            no_answer: Duration::from_secs(120),
            dial_plan: DialPlan::default(),
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            session_expires: Duration::from_secs(1800),
            min_se: Duration::from_secs(90),
            peers: Peers::default(),
        }
    }
}

/// What the media engine is asked to do for a call (`call` is the media session's id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaOp {
    /// `from_tag`'s SDP offer; the result is the SDP for the other side. `transcode`: offer the
    /// other side mgw's codecs too (the first leg of a call).
    Offer {
        from_tag: String,
        sdp: String,
        transcode: bool,
    },
    /// The other side's answer; the result is the SDP for the offerer.
    Answer { to_tag: String, sdp: String },
    /// The call ended: counters back, session gone.
    Finish,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaRequest {
    pub ticket: u64,
    pub call: String,
    pub op: MediaOp,
}

/// Counters and codecs of a finished call's media.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaTotals {
    pub packets_a_to_b: u64,
    pub packets_b_to_a: u64,
    pub codec_a: Option<String>,
    pub codec_b: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaResult {
    Sdp(String),
    Finished(MediaTotals),
    Failed(String),
}

/// A call's record (seed 003 "traffic detail"), complete when the call ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallRecord {
    /// mgw's id of the call (also the media session's).
    pub id: String,
    pub caller_user: String,
    pub caller_number: String,
    pub caller_account: u32,
    /// As dialled, and after normalisation.
    pub dialled: String,
    pub callee: String,
    pub callee_user: Option<String>,
    pub callee_account: Option<u32>,
    pub emergency: bool,
    /// The line or trunk the call came in from (then `caller_user` is its name too) or left
    /// by; `None` between subscribers and to a URI.
    pub trunk: Option<String>,
    /// The caller is a line or trunk, not a subscriber.
    pub inbound: bool,
    pub started_ms: u64,
    pub answered_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    /// Final status towards the caller (200 for an answered call), and why it ended.
    pub status: u16,
    pub cause: String,
    pub q850: u8,
    pub media: MediaTotals,
}

/// Told to the driver: the call list and the call records come from these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallEvent {
    Started(CallRecord),
    Answered { id: String, at_ms: u64 },
    Ended(CallRecord),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    A,
    B,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the media engine's offer for the callee.
    Offering,
    /// INVITEs out to the forks.
    Ringing,
    /// A fork answered; waiting for the media answer to send 200 to the caller.
    Answering,
    /// 200 sent to the caller (ACK may still be due).
    Established,
    /// Ended: waiting for the media engine's totals.
    Ending,
}

#[derive(Debug)]
struct Fork<A> {
    invite: Vec<u8>,
    user: String,
    /// Final status, once one came.
    done: Option<u16>,
    /// The Q.850 cause and reason phrase of a failure, as the callee gave them (a line
    /// driver's cause must reach the caller unchanged, not re-derived from the status).
    why: Option<(Option<u8>, String)>,
    /// Answers a trunk's 401/407 with its credentials.
    auth: Option<Box<crate::ua::digest::DigestClient>>,
    /// The INVITE's headers and offer, to send it again with credentials.
    offer: Option<(String, String)>,
    /// A trunk's other addresses (RFC 3263 order), tried in turn when the current one does
    /// not answer or is unavailable (RFC 3263 4.3).
    alternates: Vec<(SocketAddr, Transport)>,
    dialog: Dialog<A>,
}

/// A re-INVITE or UPDATE from one side being relayed to the other.
#[derive(Debug)]
struct Pending {
    from: Side,
    method: &'static str,
    server_tx: ServerTxId,
    request: Vec<u8>,
    source: SocketAddr,
    client_tx: Option<ClientTxId>,
    /// The other side's answer while the media engine turns it into the requester's.
    answer: Option<(u16, Vec<u8>)>,
}

struct Call<A> {
    name: String,
    state: State,
    /// The caller's INVITE and its transaction, while it is unanswered.
    a_invite: Vec<u8>,
    a_tx: ServerTxId,
    a_source: SocketAddr,
    a: Dialog<A>,
    forks: Vec<Fork<A>>,
    /// Index of the fork that answered.
    winner: Option<usize>,
    /// The 200 to the caller, retransmitted until its ACK.
    a_2xx: Option<(Arc<[u8]>, Duration, Instant)>,
    a_acked: bool,
    /// RFC 3261 13.2.1 delayed offer: the caller's INVITE had no SDP, so the callee's 2xx
    /// carries the offer and the caller's ACK the answer, which the callee gets in mgw's ACK
    /// (`b_ack`, kept to answer the 2xx's retransmissions).
    delayed: bool,
    b_ack: Option<(A, Vec<u8>)>,
    sent_early_sdp: bool,
    pending: Option<Pending>,
    // Held for the call's life: dropping them frees the voice channels.
    permit: Option<CallPermit>,
    callee_channel: Option<ChannelToken>,
    record: CallRecord,
    /// The number callees are shown (From display and P-Asserted-Identity): the account's
    /// main number, or the one its caller-ID rule for this callee presents.
    caller_id: String,
    /// The SDP mgw last sent to each side (`[A, B]`): the offer in the 2xx to a re-INVITE
    /// that came without one (RFC 3261 14.2).
    last_sdp: [Option<String>; 2],
    /// The 2xx mgw gave a re-INVITE, retransmitted until its ACK (RFC 3261 13.3.1.4).
    re_2xx: Option<Reinvite2xx>,
    /// RFC 4028: the caller refreshes the session every `interval`; the last refresh.
    session: Option<(Duration, Instant)>,
    /// Client transactions of the call, to forget them with it.
    clients: Vec<ClientTxId>,
    /// RFC 3262: the caller supports reliable provisional responses; the last RSeq mgw used
    /// towards it, and the reliable provisional awaiting its PRACK (bytes, retransmission
    /// interval, give-up time).
    a_100rel: bool,
    a_rseq: u32,
    a_unacked_1xx: Option<(Arc<[u8]>, Duration, Instant)>,
}

/// A 2xx to a re-INVITE awaiting its ACK.
#[derive(Clone)]
struct Reinvite2xx {
    /// The side that sent the re-INVITE, and its CSeq.
    side: Side,
    cseq: u32,
    bytes: Arc<[u8]>,
    interval: Duration,
    give_up: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Fork(usize),
    /// A BYE or CANCEL: nothing waits for its answer.
    Fire,
    /// The relayed re-INVITE / UPDATE of `pending`.
    Relay,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    ForkOffer,
    /// The callee's offer in its 2xx (delayed offer), for the caller's 200.
    DelayedOffer,
    /// The caller's answer in its ACK (delayed offer), for the callee's ACK.
    AckAnswer,
    EarlyAnswer(u16),
    FinalAnswer,
    RelayOffer,
    RelayAnswer,
    Finish,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Retransmit2xx,
    /// The 2xx to a re-INVITE, until its ACK.
    RetransmitRe2xx,
    /// A reliable provisional response to the caller, until its PRACK (RFC 3262 3).
    Retransmit1xx,
    NoAnswer,
    SessionExpiry,
}

/// Where a request to a registered contact goes, as the driver's address type.
pub type MakeDest<A> = Box<dyn Fn(SocketAddr, Transport) -> A + Send>;

/// Everything a call needs from the endpoint around it.
pub struct CallContext<'a> {
    pub admission: &'a Admission,
    pub location: &'a LocationTable,
    pub wall_ms: u64,
    /// The number called when it is not the Request-URI's user (a provider that sends a DID
    /// in To only).
    pub dialled: Option<String>,
}

pub struct Calls<A> {
    cfg: CallConfig,
    worker: u16,
    calls: HashMap<u64, Call<A>>,
    /// (Call-ID, mgw's tag) of each dialog -> call and side.
    dialogs: HashMap<(String, String), (u64, Side)>,
    clients: HashMap<ClientTxId, (u64, Role)>,
    /// The caller's INVITE transaction -> call, for CANCEL.
    invites: HashMap<ServerTxId, u64>,
    tickets: HashMap<u64, (u64, Purpose)>,
    media: VecDeque<MediaRequest>,
    events: VecDeque<CallEvent>,
    timers: BinaryHeap<Reverse<(Instant, u64, TimerKind)>>,
    make_dest: Option<MakeDest<A>>,
    /// Messages sent outside transactions: ACKs of 2xx, the caller's 2xx retransmitted.
    acks: VecDeque<(A, Vec<u8>)>,
    next: u64,
    random: RandomState,
    buf: Vec<u8>,
}

/// Statuses ranked for the caller when every fork failed (RFC 3261 16.7 in spirit: a busy
/// phone tells more than an unreachable one).
fn rank(status: u16) -> u16 {
    match status {
        600..=699 => 0,
        486 => 1,
        480 => 3,
        408 => 4,
        _ => 2,
    }
}

impl<A: Clone> Calls<A> {
    /// `make_dest` turns a registered contact's address into the driver's address type;
    /// without it no subscriber can be reached (a registrar-only endpoint).
    pub fn new(cfg: CallConfig, worker: u16, make_dest: Option<MakeDest<A>>) -> Calls<A> {
        Calls {
            cfg,
            worker,
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            clients: HashMap::new(),
            invites: HashMap::new(),
            tickets: HashMap::new(),
            media: VecDeque::new(),
            events: VecDeque::new(),
            timers: BinaryHeap::new(),
            make_dest,
            acks: VecDeque::new(),
            next: 1,
            random: RandomState::new(),
            buf: Vec::with_capacity(2048),
        }
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    pub fn poll_media(&mut self) -> Option<MediaRequest> {
        self.media.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
    }

    fn token(&mut self) -> String {
        let mut h = self.random.build_hasher();
        h.write_u64(self.next);
        self.next += 1;
        format!("{:x}", h.finish())
    }

    /// A tag or id naming this worker, so [`owner_of`] finds it.
    fn owned(&mut self, prefix: &str) -> String {
        let t = self.token();
        format!("{prefix}{:x}w{t}", self.worker)
    }

    fn branch(&mut self) -> String {
        let t = self.token();
        format!("z9hG4bK{t}")
    }

    /// mgw's own `host:port` towards a party: the IPv6 one for a party reached over IPv6
    /// when mgw has one, else the (IPv4) default.
    fn local(&self, v6: bool) -> &str {
        match &self.cfg.local6 {
            Some(l) if v6 => l,
            _ => &self.cfg.local,
        }
    }

    fn via(&mut self, reliable: bool, v6: bool) -> String {
        let b = self.branch();
        let transport = if reliable { "TCP" } else { "UDP" };
        format!("SIP/2.0/{transport} {};branch={b};rport", self.local(v6))
    }

    fn contact(&self, reliable: bool, v6: bool) -> String {
        let t = if reliable { ";transport=tcp" } else { "" };
        format!("<sip:mgw@{}{t}>", self.local(v6))
    }

    /// Whether the dialog of `side` reaches its party over IPv6.
    fn side_v6(&self, key: u64, side: Side) -> bool {
        self.dialog_for(key, side).is_some_and(|d| d.v6)
    }

    /// The earliest timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _, _))| *t)
    }

    // ---- a new call ----

    /// An authenticated, admitted INVITE from `caller` (its server transaction is `tx_id`).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &mut self,
        tx: &mut TransactionLayer<A>,
        tx_id: ServerTxId,
        msg: &Message<'_>,
        source: SocketAddr,
        peer: A,
        reliable: bool,
        caller: &LogOn,
        permit: CallPermit,
        ctx: &CallContext<'_>,
        now: Instant,
    ) {
        let dialled = ctx.dialled.clone().unwrap_or_else(|| {
            msg.request_uri()
                .and_then(|u| u.user_decoded())
                .unwrap_or_default()
                .to_string()
        });
        let emergency = permit.emergency;
        // The caller is a line or trunk (admitted as a peer), not a subscriber.
        let from_peer = caller.id == crate::directory::LogOnId::MAX;
        // A call from a trunk reaches subscribers only: routing it out again (to another
        // trunk, a line, a URI) would let the outside world place calls through mgw.
        let inbound_only = from_peer
            && self
                .cfg
                .peers
                .by_name(&caller.user)
                .is_some_and(|p| p.local_only);
        let number = self.cfg.dial_plan.normalise(&dialled);
        let local_tag = self.owned("t");
        let key = self.next;
        self.next += 1;
        let name = format!("c{:x}w{key:x}", self.worker);
        let Some(mut a) = Dialog::as_uas(msg, &local_tag, peer.clone(), reliable) else {
            return self.reply_to(
                tx,
                tx_id,
                msg,
                source,
                &local_tag,
                400,
                "Bad Request: no From tag",
                &[],
                None,
                now,
            );
        };
        a.v6 = source.is_ipv6();
        let session = match self.session_interval(msg) {
            Ok(s) => s,
            Err(min) => {
                let min = min.to_string();
                return self.reply_to(
                    tx,
                    tx_id,
                    msg,
                    source,
                    &local_tag,
                    422,
                    "Session Interval Too Small",
                    &[("Min-SE", &min)],
                    None,
                    now,
                );
            }
        };
        // 100 Trying at once: forking and media setup take a moment.
        self.reply_to(
            tx,
            tx_id,
            msg,
            source,
            &local_tag,
            100,
            "Trying",
            &[],
            None,
            now,
        );
        let account = ctx.admission.directory.account(caller.account);
        let mut record = CallRecord {
            id: name.clone(),
            caller_user: caller.user.to_string(),
            caller_number: caller.number.to_string(),
            caller_account: caller.account,
            dialled: dialled.clone(),
            callee: number.clone(),
            emergency,
            inbound: from_peer,
            trunk: from_peer.then(|| caller.user.to_string()),
            started_ms: ctx.wall_ms,
            ..CallRecord::default()
        };
        let route = if self.make_dest.is_none() {
            Route::Reject {
                status: 480,
                reason: "Temporarily Unavailable: calls are not switched here".into(),
            }
        } else if inbound_only {
            Route::Local(number.clone())
        } else {
            match self.cfg.dial_plan.route(&number, emergency) {
                // No rule claimed it: a trunk's dial prefix may.
                Route::Local(n) => match self.cfg.peers.by_prefix(&n) {
                    Some((peer, rest)) => Route::Trunk {
                        name: peer.name.clone(),
                        number: rest,
                    },
                    None => Route::Local(n),
                },
                r => r,
            }
        };
        // The line or trunk the call leaves by, known from the route (so a refused call's
        // record names it too); a transit call (line to line) keeps the one it came in from.
        if let Route::Trunk { name, .. } | Route::TrunkUri { name, .. } = &route {
            record.trunk.get_or_insert_with(|| name.clone());
        }
        let targets = match route {
            Route::Local(n) => self.local_targets(&n, ctx),
            Route::Uri(u) => uri_target(&u)
                .map(|d| {
                    vec![Target {
                        uri: u.clone(),
                        to: format!("<{u}>"),
                        from: None,
                        credentials: None,
                        alternates: Vec::new(),
                        dest: d,
                        transport: Transport::Udp,
                        user: u.clone(),
                        path: Vec::new(),
                        peer: false,
                    }]
                })
                .ok_or((
                    503,
                    format!(
                        "Service Unavailable: cannot reach {u} (only IP addresses are routed yet)"
                    ),
                ))
                .map(|t| (t, None, None)),
            Route::Trunk { name, number } => self.peer_targets(&name, &number, None),
            Route::TrunkUri { name, uri } => self.peer_targets(&name, "", Some(uri)),
            Route::Reject { status, reason } => Err((status, reason)),
        };
        let targets = match targets {
            Ok(t) => t,
            Err((status, reason)) => {
                let mut record = record;
                record.status = status;
                record.cause = reason.clone();
                record.q850 = cause::q850_of_status(status);
                record.ended_ms = Some(ctx.wall_ms);
                self.events.push_back(CallEvent::Ended(record));
                let q = cause::reason_header(cause::q850_of_status(status));
                return self.reply_to(
                    tx,
                    tx_id,
                    msg,
                    source,
                    &local_tag,
                    status,
                    &reason,
                    &[("Reason", &q)],
                    None,
                    now,
                );
            }
        };
        let (targets, callee_account, callee_channel) = targets;
        record.callee_account = callee_account;
        // A number a line serves itself (a DECT handset), reached as a peer.
        if record.trunk.is_none() {
            record.trunk = targets.first().filter(|t| t.peer).map(|t| t.user.clone());
        }
        let main = account
            .as_ref()
            .map_or_else(|| caller.number.to_string(), |a| a.main_number.to_string());
        let caller_id = account.as_ref().map_or(main.clone(), |a| {
            a.caller_id_for(&number).unwrap_or(&main).to_string()
        });
        let b_call_id = format!("{}@mgw", self.owned("b"));
        let b_tag = self.owned("f");
        let sdp = (!msg.body.is_empty()).then(|| String::from_utf8_lossy(msg.body).into_owned());
        let mut forks = Vec::new();
        let Some(make_dest) = &self.make_dest else {
            return;
        };
        for t in targets {
            let dialog = Dialog {
                call_id: b_call_id.clone(),
                local_tag: b_tag.clone(),
                remote_tag: String::new(),
                local_uri: match &t.from {
                    Some(aor) => format!("\"{caller_id}\" <{aor}>"),
                    None => format!("\"{caller_id}\" <sip:{caller_id}@{}>", self.cfg.domain),
                },
                remote_uri: t.to.clone(),
                remote_target: t.uri.clone(),
                route_set: t.path.clone(),
                local_cseq: 0,
                remote_cseq: None,
                peer: make_dest(t.dest, t.transport),
                reliable: t.transport == Transport::Tcp,
                v6: t.dest.is_ipv6(),
            };
            forks.push(Fork {
                invite: Vec::new(),
                user: t.user,
                done: None,
                why: None,
                auth: t.credentials.map(|(u, p)| {
                    Box::new(crate::ua::digest::DigestClient::new(
                        &u,
                        &p,
                        self.next ^ key,
                    ))
                }),
                offer: None,
                alternates: t.alternates,
                dialog,
            });
        }
        self.events.push_back(CallEvent::Started(record.clone()));
        let call = Call {
            name: name.clone(),
            state: State::Offering,
            a_invite: msg.raw.to_vec(),
            a_tx: tx_id,
            a_source: source,
            a,
            forks,
            winner: None,
            a_2xx: None,
            a_acked: false,
            delayed: sdp.is_none(),
            b_ack: None,
            sent_early_sdp: false,
            pending: None,
            permit: Some(permit),
            callee_channel,
            record,
            caller_id,
            last_sdp: [None, None],
            re_2xx: None,
            session: session.map(|d| (d, now)),
            clients: Vec::new(),
            a_100rel: msg
                .list(HeaderName::Supported)
                .chain(msg.list(HeaderName::Require))
                .any(|t| t.trim().eq_ignore_ascii_case("100rel")),
            a_rseq: 0,
            a_unacked_1xx: None,
        };
        self.dialogs
            .insert((call.a.call_id.clone(), local_tag.clone()), (key, Side::A));
        self.dialogs.insert((b_call_id, b_tag), (key, Side::B));
        self.invites.insert(tx_id, key);
        self.calls.insert(key, call);
        self.timers.push(Reverse((
            now + self.cfg.no_answer,
            key,
            TimerKind::NoAnswer,
        )));
        match sdp {
            Some(sdp) => {
                let from_tag = self.calls[&key].a.remote_tag.clone();
                self.ask_media(
                    key,
                    Purpose::ForkOffer,
                    MediaOp::Offer {
                        from_tag,
                        sdp,
                        transcode: true,
                    },
                );
            }
            // Delayed offer: the callees are asked without SDP; the offer comes in the
            // answer (RFC 3261 13.2.1) and is anchored then.
            None => self.send_forks(tx, key, "", now),
        }
    }

    /// The session interval the caller gets (RFC 4028), `None` if it does not do timers, or the
    /// smallest acceptable (seconds) when it asked for less.
    fn session_interval(&self, msg: &Message<'_>) -> Result<Option<Duration>, u64> {
        let supports = msg
            .list(HeaderName::Supported)
            .any(|t| t.trim().eq_ignore_ascii_case("timer"));
        let asked = msg
            .header(HeaderName::SessionExpires)
            .and_then(|v| v.split(';').next())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let min = self.cfg.min_se.as_secs();
        // RFC 4028 9: a caller without `timer` cannot be the refresher, and mgw does not
        // refresh towards it, so such a call has no session timer at all.
        if !supports {
            return Ok(None);
        }
        match asked {
            Some(a) if a < min => Err(min),
            Some(a) => Ok(Some(Duration::from_secs(a))),
            None if supports => Ok(Some(self.cfg.session_expires)),
            None => Ok(None),
        }
    }

    fn session_headers(interval: Option<Duration>) -> Option<(String, &'static str)> {
        interval.map(|d| (format!("{};refresher=uac", d.as_secs()), "timer"))
    }

    /// `Session-Expires` and `Require` for the 2xx to a refresh from `side`: only the caller's
    /// leg has a session timer (mgw offers none to callees).
    fn refresh_headers(&self, key: u64, side: Side) -> Option<(String, &'static str)> {
        let c = self.calls.get(&key).filter(|_| side == Side::A)?;
        Self::session_headers(c.session.map(|s| s.0))
    }

    /// The subscribers of `number` to ring: every binding of every registered log-on on it.
    #[allow(clippy::type_complexity)]
    fn local_targets(
        &self,
        number: &str,
        ctx: &CallContext<'_>,
    ) -> Result<TargetSet, (u16, String)> {
        if self.make_dest.is_none() {
            return Err((
                480,
                "Temporarily Unavailable: calls are not switched here".into(),
            ));
        }
        let users = ctx.location.users_of_number(number);
        let Some(first) = users.iter().find_map(|u| ctx.admission.directory.get(u)) else {
            if let Some(peer) = self.cfg.peers.serving(number) {
                let name = peer.name.clone();
                return self.peer_targets(&name, number, None);
            }
            return Err((404, format!("Not Found: no subscriber has number {number}")));
        };
        let channel = ctx.admission.incoming(&first).map_err(|r| match r {
            Refusal::ChannelsBusy { .. } => (
                486,
                "Busy Here: every voice channel of the called account is in use".to_string(),
            ),
            _ => (
                480,
                "Temporarily Unavailable: the called account is not active".to_string(),
            ),
        })?;
        let mut targets = Vec::new();
        for (user, record) in ctx.location.lookup_number(number) {
            for b in &record.bindings {
                targets.push(Target {
                    uri: b.contact.to_string(),
                    to: format!("<sip:{number}@{}>", self.cfg.domain),
                    from: None,
                    credentials: None,
                    alternates: Vec::new(),
                    dest: b.source,
                    transport: b.transport,
                    user: user.to_string(),
                    path: b.path.iter().map(|p| p.to_string()).collect(),
                    peer: false,
                });
            }
        }
        if targets.is_empty() {
            return Err((
                480,
                format!("Temporarily Unavailable: no phone is registered on {number}"),
            ));
        }
        Ok((targets, Some(first.account), Some(channel)))
    }

    /// A call to a peer (a line driver, a trunk) holds one of its call slots.
    /// `uri` replaces `sip:NUMBER@domain` (a phone-book entry).
    fn peer_targets(
        &self,
        name: &str,
        number: &str,
        uri: Option<String>,
    ) -> Result<TargetSet, (u16, String)> {
        let Some(peer) = self.cfg.peers.by_name(name) else {
            return Err((
                503,
                format!("Service Unavailable: trunk {name} is not configured"),
            ));
        };
        if uri.is_none() && !crate::directory::valid_number(number) {
            return Err((
                484,
                "Address Incomplete: the number must be digits, '+', '*' or '#'".to_string(),
            ));
        }
        let dest = peer.destination();
        if dest.ip().is_unspecified() || dest.port() == 0 {
            return Err((
                503,
                format!("Service Unavailable: the address of {name} is not resolved yet"),
            ));
        }
        let slot = peer.claim().ok_or_else(|| {
            (
                503,
                format!("Service Unavailable: every channel of {name} is in use"),
            )
        })?;
        // '#' is not a URI user character (RFC 3261 25.1): `2#` prefixes and service codes
        // travel escaped.
        let uri =
            uri.unwrap_or_else(|| format!("sip:{}@{}", number.replace('#', "%23"), peer.domain));
        let alternates = peer
            .addresses()
            .into_iter()
            .skip(1)
            .map(|a| (a, peer.transport))
            .collect();
        let target = Target {
            to: format!("<{uri}>"),
            from: peer.from.clone(),
            credentials: peer.credentials.clone(),
            alternates,
            uri,
            dest,
            transport: peer.transport,
            user: peer.name.clone(),
            path: Vec::new(),
            peer: true,
        };
        Ok((vec![target], None, Some(slot)))
    }

    fn ask_media(&mut self, key: u64, purpose: Purpose, op: MediaOp) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let ticket = self.next;
        self.next += 1;
        self.tickets.insert(ticket, (key, purpose));
        self.media.push_back(MediaRequest {
            ticket,
            call: call.name.clone(),
            op,
        });
    }

    /// The media engine's answer to a [`MediaRequest`].
    pub fn on_media(
        &mut self,
        tx: &mut TransactionLayer<A>,
        ticket: u64,
        result: MediaResult,
        wall_ms: u64,
        now: Instant,
    ) {
        let Some((key, purpose)) = self.tickets.remove(&ticket) else {
            return;
        };
        if purpose == Purpose::Finish {
            if let Some(mut call) = self.remove(key) {
                if let MediaResult::Finished(t) = result {
                    call.record.media = t;
                }
                call.record.ended_ms.get_or_insert(wall_ms);
                self.events.push_back(CallEvent::Ended(call.record));
            }
            return;
        }
        let sdp = match result {
            MediaResult::Sdp(s) => s,
            MediaResult::Failed(why) => {
                let reason = format!("Not Acceptable Here: {why}");
                return match purpose {
                    Purpose::RelayOffer | Purpose::RelayAnswer => {
                        self.fail_pending(tx, key, 488, &reason, now)
                    }
                    _ => self.fail(tx, key, 488, &reason, now),
                };
            }
            MediaResult::Finished(_) => return,
        };
        match purpose {
            Purpose::ForkOffer => self.send_forks(tx, key, &sdp, now),
            Purpose::EarlyAnswer(status) => self.early_to_a(tx, key, status, &sdp, now),
            Purpose::FinalAnswer | Purpose::DelayedOffer => {
                self.answer_a(tx, key, &sdp, wall_ms, now)
            }
            Purpose::AckAnswer => self.ack_callee(key, &sdp),
            Purpose::RelayOffer => self.relay_out(tx, key, &sdp, now),
            Purpose::RelayAnswer => self.relay_back(tx, key, &sdp, now),
            Purpose::Finish => {}
        }
    }

    fn send_forks(&mut self, tx: &mut TransactionLayer<A>, key: u64, sdp: &str, now: Instant) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if call.state != State::Offering {
            return;
        }
        let pai = format!("<sip:{}@{}>", call.caller_id, self.cfg.domain);
        // Reliable provisionals only where the caller takes them too: mgw passes them on.
        let supported = if call.a_100rel {
            "100rel, replaces"
        } else {
            "replaces"
        };
        let n = call.forks.len();
        if let Some(c) = self.calls.get_mut(&key) {
            c.last_sdp[1] = (!sdp.is_empty()).then(|| sdp.to_string());
        }
        for i in 0..n {
            let (reliable, v6) = {
                let d = &self.calls[&key].forks[i].dialog;
                (d.reliable, d.v6)
            };
            let via = self.via(reliable, v6);
            let contact = self.contact(reliable, v6);
            let mut buf = std::mem::take(&mut self.buf);
            let Some(call) = self.calls.get_mut(&key) else {
                return;
            };
            let fork = &mut call.forks[i];
            fork.dialog.request(
                &mut buf,
                "INVITE",
                &via,
                &contact,
                &[
                    ("P-Asserted-Identity", &pai),
                    ("Allow", crate::uas::ALLOW),
                    ("Supported", supported),
                    ("User-Agent", &self.cfg.server),
                ],
                (!sdp.is_empty()).then_some(("application/sdp", sdp.as_bytes())),
            );
            fork.invite = buf.clone();
            if fork.auth.is_some() || !fork.alternates.is_empty() {
                fork.offer = Some((pai.clone(), sdp.to_string()));
            }
            let dest = fork.dialog.peer.clone();
            match tx.send_request(buf.clone(), dest, reliable, now) {
                Ok(id) => {
                    self.track(id, key, Role::Fork(i));
                }
                Err(_) => fork.done = Some(503),
            }
            self.buf = buf;
        }
        if let Some(call) = self.calls.get_mut(&key) {
            call.state = State::Ringing;
        }
        self.check_forks(tx, key, now);
    }

    /// The fork's INVITE again, to the trunk's next address; `false` when there is none.
    fn fail_over(
        &mut self,
        tx: &mut TransactionLayer<A>,
        key: u64,
        i: usize,
        now: Instant,
    ) -> bool {
        let Some(make_dest) = &self.make_dest else {
            return false;
        };
        let Some(fork) = self.calls.get_mut(&key).and_then(|c| c.forks.get_mut(i)) else {
            return false;
        };
        if fork.alternates.is_empty() || fork.offer.is_none() {
            return false;
        }
        let (addr, transport) = fork.alternates.remove(0);
        fork.dialog.peer = make_dest(addr, transport);
        // Whatever an early dialog with the first server set up is that server's.
        fork.dialog.remote_target = fork
            .dialog
            .remote_uri
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string();
        fork.dialog.route_set.clear();
        fork.dialog.reliable = transport == Transport::Tcp;
        // Another server issues its own challenges.
        if let Some(auth) = fork.auth.as_mut() {
            auth.forget();
        }
        self.invite_with_credentials(tx, key, i, now);
        true
    }

    /// A trunk challenged a fork's INVITE: the same INVITE again, a CSeq higher, with the
    /// trunk's credentials (RFC 3261 22.2). The challenge's ACK was the transaction's. Also
    /// sends it to a trunk's next address ([`Calls::fail_over`]).
    fn invite_with_credentials(
        &mut self,
        tx: &mut TransactionLayer<A>,
        key: u64,
        i: usize,
        now: Instant,
    ) {
        let (reliable, v6) = match self.calls.get(&key).and_then(|c| c.forks.get(i)) {
            Some(f) => (f.dialog.reliable, f.dialog.v6),
            None => return,
        };
        let via = self.via(reliable, v6);
        let contact = self.contact(reliable, v6);
        let supported = if self.calls.get(&key).is_some_and(|c| c.a_100rel) {
            "100rel, replaces"
        } else {
            "replaces"
        };
        let mut buf = std::mem::take(&mut self.buf);
        let Some(fork) = self.calls.get_mut(&key).and_then(|c| c.forks.get_mut(i)) else {
            self.buf = buf;
            return;
        };
        let Some((pai, sdp)) = fork.offer.clone() else {
            self.buf = buf;
            return;
        };
        let uri = fork.dialog.remote_target.clone();
        let creds = match fork.auth.as_mut() {
            Some(auth) => auth.headers("INVITE", &uri),
            None => Vec::new(),
        };
        let mut headers: Vec<(&str, &str)> = vec![
            ("P-Asserted-Identity", &pai),
            ("Allow", crate::uas::ALLOW),
            ("Supported", supported),
            ("User-Agent", &self.cfg.server),
        ];
        headers.extend(creds.iter().map(|(n, v)| (*n, v.as_str())));
        // The challenge's To tag belongs to no dialog.
        fork.dialog.remote_tag.clear();
        fork.dialog.request(
            &mut buf,
            "INVITE",
            &via,
            &contact,
            &headers,
            (!sdp.is_empty()).then_some(("application/sdp", sdp.as_bytes())),
        );
        fork.invite = buf.clone();
        let dest = fork.dialog.peer.clone();
        match tx.send_request(buf.clone(), dest, reliable, now) {
            Ok(id) => self.track(id, key, Role::Fork(i)),
            Err(_) => fork.done = Some(503),
        }
        self.buf = buf;
        self.check_forks(tx, key, now);
    }

    // ---- responses from the callee side ----

    /// A response the transaction layer passed up for client transaction `id`.
    pub fn on_response(
        &mut self,
        tx: &mut TransactionLayer<A>,
        id: ClientTxId,
        msg: &Message<'_>,
        wall_ms: u64,
        now: Instant,
    ) {
        let Some(&(key, role)) = self.clients.get(&id) else {
            return;
        };
        let Some(status) = msg.status() else {
            return;
        };
        // A fork's 2xx may come again (a retransmission when the ACK was lost, RFC 6026): it
        // stays known so that it is ACKed again; the call forgets it when it ends.
        if status >= 300 || (status >= 200 && !matches!(role, Role::Fork(_))) {
            self.clients.remove(&id);
        }
        match role {
            Role::Fire => {}
            Role::Fork(i) => self.fork_response(tx, key, i, status, msg, wall_ms, now),
            Role::Relay => self.relay_response(tx, key, status, msg, now),
        }
    }

    /// A client transaction timed out (no final response): as a 408.
    pub fn on_client_timeout(
        &mut self,
        tx: &mut TransactionLayer<A>,
        id: ClientTxId,
        now: Instant,
    ) {
        let Some((key, role)) = self.clients.remove(&id) else {
            return;
        };
        match role {
            Role::Fork(i) => {
                if self.fail_over(tx, key, i, now) {
                    return;
                }
                if let Some(f) = self.calls.get_mut(&key).and_then(|c| c.forks.get_mut(i)) {
                    f.done = Some(408);
                }
                self.check_forks(tx, key, now);
            }
            Role::Relay => self.fail_pending(tx, key, 408, "Request Timeout", now),
            Role::Fire => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fork_response(
        &mut self,
        tx: &mut TransactionLayer<A>,
        key: u64,
        i: usize,
        status: u16,
        msg: &Message<'_>,
        wall_ms: u64,
        now: Instant,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if status == 100 {
            return;
        }
        let has_sdp = !msg.body.is_empty();
        if (status == 401 || status == 407) && call.state == State::Ringing {
            if let Some(f) = call.forks.get_mut(i) {
                if let Some(auth) = f.auth.as_mut() {
                    if auth.on_challenge(msg) == crate::ua::digest::ChallengeVerdict::Retry {
                        return self.invite_with_credentials(tx, key, i, now);
                    }
                }
            }
        }
        // Only a provisional or a 2xx makes a dialog (RFC 3261 12.1.2); a failure's Contact
        // must not become the target of a failover or a retry.
        if status < 300 {
            if let Some(f) = call.forks.get_mut(i) {
                f.dialog.confirm_as_uac(msg);
            }
        }
        if status < 200 {
            if call.state != State::Ringing {
                return;
            }
            if let Some(rseq) = reliable_rseq(msg) {
                let cseq = msg.cseq().map_or(1, |c| c.seq);
                let d = call.forks[i].dialog.clone();
                self.prack(tx, key, i, d, rseq, cseq, now);
            }
            let Some(call) = self.calls.get_mut(&key) else {
                return;
            };
            // With a delayed offer an SDP in a provisional would be the callee's offer, which
            // only a reliable provisional may carry: it is relayed as plain ringing.
            if has_sdp && !call.sent_early_sdp && !call.delayed {
                call.sent_early_sdp = true;
                let to_tag = call.forks[i].dialog.remote_tag.clone();
                let sdp = String::from_utf8_lossy(msg.body).into_owned();
                return self.ask_media(
                    key,
                    Purpose::EarlyAnswer(status),
                    MediaOp::Answer { to_tag, sdp },
                );
            }
            let reason = msg.reason().unwrap_or("Ringing").to_string();
            return self.provisional_to_a(tx, key, status, &reason, None, now);
        }
        if status < 300 {
            let waits_for_answer =
                call.delayed && (call.winner == Some(i) || call.state == State::Ringing);
            if waits_for_answer {
                // Delayed offer: the winner's ACK carries the caller's answer, sent when the
                // caller's ACK brings it; until then its 2xx retransmissions wait too.
                if let Some((to, ack)) = call.b_ack.clone() {
                    self.acks.push_back((to, ack));
                }
            } else {
                // Every 2xx is acknowledged, even one that comes too late to win.
                let (ack_from, invite) =
                    (call.forks[i].dialog.clone(), call.forks[i].invite.clone());
                self.ack(ack_from, &invite, None);
            }
            let Some(call) = self.calls.get_mut(&key) else {
                return;
            };
            if call.winner.is_some_and(|w| w != i) || call.state != State::Ringing {
                if call.winner != Some(i) {
                    // A second phone answered: it is hung up at once.
                    let d = call.forks[i].dialog.clone();
                    self.bye(tx, key, d, 16, now);
                }
                return;
            }
            call.winner = Some(i);
            call.forks[i].done = Some(status);
            call.state = State::Answering;
            call.record.callee_user = Some(call.forks[i].user.clone());
            call.record.answered_ms = Some(wall_ms);
            self.cancel_forks(tx, key, Some(i), now);
            let Some(call) = self.calls.get(&key) else {
                return;
            };
            let to_tag = call.forks[i].dialog.remote_tag.clone();
            let sdp = String::from_utf8_lossy(msg.body).into_owned();
            if sdp.is_empty() {
                return self.end(
                    tx,
                    key,
                    488,
                    "Not Acceptable Here: the answer has no SDP",
                    true,
                    now,
                );
            }
            if call.delayed {
                return self.ask_media(
                    key,
                    Purpose::DelayedOffer,
                    MediaOp::Offer {
                        from_tag: to_tag,
                        sdp,
                        transcode: true,
                    },
                );
            }
            return self.ask_media(key, Purpose::FinalAnswer, MediaOp::Answer { to_tag, sdp });
        }
        // A server that is unavailable: the trunk's next address may not be (RFC 3263 4.3).
        if status == 503 && call.state == State::Ringing && self.fail_over(tx, key, i, now) {
            return;
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if let Some(f) = call.forks.get_mut(i) {
            if status == 401 || status == 407 {
                // A challenge meant for mgw (credentials it has not, or that were refused)
                // must not reach the caller, who would answer it with its own.
                f.done = Some(403);
                f.why = Some((
                    Some(21),
                    format!("Forbidden: {} refused mgw's credentials", f.user),
                ));
            } else {
                f.done = Some(status);
                let q850 = msg.header_by_name("Reason").and_then(cause::parse_reason);
                f.why = Some((q850, msg.reason().unwrap_or_default().to_string()));
            }
        }
        // A callee that declines (6xx) ends the search at once (RFC 3261 16.7 step 5).
        if status >= 600 {
            self.cancel_forks(tx, key, None, now);
            if let Some(call) = self.calls.get_mut(&key) {
                for f in &mut call.forks {
                    f.done.get_or_insert(487);
                }
                call.forks[i].done = Some(status);
            }
        }
        self.check_forks(tx, key, now);
    }

    /// When every fork has failed, the caller gets the most telling failure.
    fn check_forks(&mut self, tx: &mut TransactionLayer<A>, key: u64, now: Instant) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if call.state != State::Ringing || call.forks.iter().any(|f| f.done.is_none()) {
            return;
        }
        let Some(best) = call
            .forks
            .iter()
            .filter(|f| f.done.is_some())
            .min_by_key(|f| {
                let s = f.done.unwrap_or(480);
                (rank(s), s)
            })
        else {
            return self.fail(tx, key, 480, default_reason(480), now);
        };
        let best_status = best.done.unwrap_or(480);
        let (q850, phrase) = best.why.clone().unwrap_or((None, String::new()));
        let (status, reason) = match best_status {
            408 => (480, "Temporarily Unavailable: no answer".to_string()),
            600 => (486, "Busy Here".to_string()),
            // The callee's own phrase says more than the default (a trunk's "no circuit").
            s if !phrase.is_empty() => (s, phrase),
            s => (s, default_reason(s).to_string()),
        };
        let q850 = q850.unwrap_or_else(|| cause::q850_of_status(status));
        self.fail_with(tx, key, status, &reason, q850, now);
    }

    fn early_to_a(
        &mut self,
        tx: &mut TransactionLayer<A>,
        key: u64,
        status: u16,
        sdp: &str,
        now: Instant,
    ) {
        if self
            .calls
            .get(&key)
            .is_some_and(|c| c.state == State::Ringing)
        {
            self.provisional_to_a(tx, key, status, default_reason(status), Some(sdp), now);
        }
    }

    /// A provisional response to the caller: reliable (RFC 3262: `Require: 100rel`, `RSeq`,
    /// retransmitted until its PRACK) when the caller supports it and none is awaiting its
    /// PRACK, else an ordinary one.
    fn provisional_to_a(
        &mut self,
        tx: &mut TransactionLayer<A>,
        key: u64,
        status: u16,
        reason: &str,
        sdp: Option<&str>,
        now: Instant,
    ) {
        let t1 = self.cfg.t1;
        let contact = self.contact(false, self.side_v6(key, Side::A));
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let reliable = call.a_100rel && call.a_unacked_1xx.is_none();
        let (invite, tx_id, src, tag) = (
            call.a_invite.clone(),
            call.a_tx,
            call.a_source,
            call.a.local_tag.clone(),
        );
        let Ok(m) = Message::parse(&invite) else {
            return;
        };
        let mut headers: Vec<(&str, String)> = vec![("Contact", contact)];
        if reliable {
            call.a_rseq += 1;
            headers.push(("Require", "100rel".into()));
            headers.push(("RSeq", call.a_rseq.to_string()));
        }
        let mut bytes = Vec::with_capacity(1024);
        let mut b = ResponseBuilder::new(
            &mut bytes,
            &m,
            status,
            reason,
            ReplyContext {
                source: Some(src),
                to_tag: Some(&tag),
            },
        );
        for (n, v) in &headers {
            b = b.header(n, v);
        }
        b = b.header("Server", &self.cfg.server);
        match sdp {
            Some(s) => b.finish(Some("application/sdp"), s.as_bytes()),
            None => b.finish(None, b""),
        }
        let _ = tx.respond(tx_id, status, bytes.clone(), now);
        if reliable {
            call.a_unacked_1xx = Some((Arc::from(bytes), t1, now + t1 * 64));
            self.timers
                .push(Reverse((now + t1, key, TimerKind::Retransmit1xx)));
        }
    }

    /// PRACK for a callee's reliable provisional response (RFC 3262 7.2), in its early dialog.
    #[allow(clippy::too_many_arguments)]
    fn prack(
        &mut self,
        tx: &mut TransactionLayer<A>,
        key: u64,
        fork: usize,
        mut d: Dialog<A>,
        rseq: u32,
        invite_cseq: u32,
        now: Instant,
    ) {
        let via = self.via(d.reliable, d.v6);
        let contact = self.contact(d.reliable, d.v6);
        let rack = format!("{rseq} {invite_cseq} INVITE");
        let mut buf = Vec::with_capacity(512);
        d.request(&mut buf, "PRACK", &via, &contact, &[("RAck", &rack)], None);
        let (dest, reliable) = (d.peer.clone(), d.reliable);
        if let Some(f) = self.calls.get_mut(&key).and_then(|c| c.forks.get_mut(fork)) {
            f.dialog.local_cseq = d.local_cseq;
        }
        if let Ok(id) = tx.send_request(buf, dest, reliable, now) {
            self.track(id, key, Role::Fire);
        }
    }

    fn answer_a(
        &mut self,
        tx: &mut TransactionLayer<A>,
        key: u64,
        sdp: &str,
        wall_ms: u64,
        now: Instant,
    ) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if call.state != State::Answering {
            return;
        }
        let (invite, tx_id, src, tag) = (
            call.a_invite.clone(),
            call.a_tx,
            call.a_source,
            call.a.local_tag.clone(),
        );
        let contact = self.contact(call.a.reliable, call.a.v6);
        let Ok(m) = Message::parse(&invite) else {
            return;
        };
        let mut bytes = Vec::with_capacity(1024);
        let timer = Self::session_headers(call.session.map(|s| s.0));
        let mut b = ResponseBuilder::new(
            &mut bytes,
            &m,
            200,
            "OK",
            ReplyContext {
                source: Some(src),
                to_tag: Some(&tag),
            },
        )
        .header("Contact", &contact)
        .header("Allow", crate::uas::ALLOW)
        .header("Supported", "timer");
        if let Some((se, require)) = &timer {
            b = b.header("Session-Expires", se).header("Require", require);
        }
        b.header("Server", &self.cfg.server)
            .finish(Some("application/sdp"), sdp.as_bytes());
        let _ = tx.respond(tx_id, 200, bytes.clone(), now);
        let t1 = self.cfg.t1;
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if let Some((d, _)) = call.session {
            call.session = Some((d, now));
            self.timers
                .push(Reverse((now + d, key, TimerKind::SessionExpiry)));
        }
        call.state = State::Established;
        call.last_sdp[0] = Some(sdp.to_string());
        call.a_2xx = Some((Arc::from(bytes), t1, now + t1 * 64));
        let name = call.name.clone();
        self.invites.remove(&tx_id);
        self.timers
            .push(Reverse((now + t1, key, TimerKind::Retransmit2xx)));
        self.events.push_back(CallEvent::Answered {
            id: name,
            at_ms: wall_ms,
        });
    }

    // ---- requests from either side ----

    /// Whether `msg` (a request with a To-tag, or an ACK) belongs to a call of this worker.
    pub fn knows(&self, msg: &Message<'_>) -> bool {
        self.dialog_of(msg).is_some()
    }

    fn dialog_of(&self, msg: &Message<'_>) -> Option<(u64, Side)> {
        let call_id = msg.call_id()?;
        let tag = msg.to()?.tag()?;
        self.dialogs
            .get(&(call_id.to_string(), tag.to_string()))
            .copied()
    }

    /// An ACK for a 2xx (the transaction layer does not own those).
    pub fn on_ack(&mut self, tx: &mut TransactionLayer<A>, msg: &Message<'_>, now: Instant) {
        let Some((key, side)) = self.dialog_of(msg) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let cseq = msg.cseq().map(|c| c.seq);
        if call
            .re_2xx
            .as_ref()
            .is_some_and(|r| r.side == side && Some(r.cseq) == cseq)
        {
            call.re_2xx = None;
            return;
        }
        if side != Side::A {
            return;
        }
        let first = !call.a_acked;
        call.a_acked = true;
        call.a_2xx = None;
        if !(call.delayed && first && call.b_ack.is_none()) {
            return;
        }
        // Delayed offer: the caller's answer, for the callee's ACK.
        if msg.body.is_empty() {
            return self.end(
                tx,
                key,
                488,
                "Not Acceptable Here: the ACK has no SDP answer",
                true,
                now,
            );
        }
        let to_tag = call.a.remote_tag.clone();
        let sdp = String::from_utf8_lossy(msg.body).into_owned();
        self.ask_media(key, Purpose::AckAnswer, MediaOp::Answer { to_tag, sdp });
    }

    /// Delayed offer: the callee's ACK with the caller's (anchored) answer.
    fn ack_callee(&mut self, key: u64, sdp: &str) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let Some(w) = call.winner else {
            return;
        };
        let (d, invite) = (call.forks[w].dialog.clone(), call.forks[w].invite.clone());
        let peer = d.peer.clone();
        self.ack(d, &invite, Some(sdp));
        if let Some(c) = self.calls.get_mut(&key) {
            c.last_sdp[1] = Some(sdp.to_string());
        }
        if let Some(ack) = self.acks.back().map(|(_, b)| b.clone()) {
            if let Some(call) = self.calls.get_mut(&key) {
                call.b_ack = Some((peer, ack));
            }
        }
    }

    /// A CANCEL for the caller's INVITE `invite_tx` (answered 200 by the endpoint).
    pub fn on_cancel(
        &mut self,
        tx: &mut TransactionLayer<A>,
        invite_tx: ServerTxId,
        now: Instant,
    ) -> bool {
        let Some(&key) = self.invites.get(&invite_tx) else {
            return false;
        };
        let Some(call) = self.calls.get(&key) else {
            return false;
        };
        if matches!(call.state, State::Established | State::Ending) {
            return true;
        }
        self.abandon(tx, key, cause::q850_of_status(487), now);
        true
    }

    /// The caller gave up (CANCEL, or BYE on an early dialog): 487 to it, CANCEL to the forks
    /// ringing, and BYE to a callee that already answered while its media answer was pending.
    fn abandon(&mut self, tx: &mut TransactionLayer<A>, key: u64, q850: u8, now: Instant) {
        let answering = self
            .calls
            .get(&key)
            .is_some_and(|c| c.state == State::Answering);
        if answering {
            self.cancel_forks(tx, key, None, now);
            return self.end(tx, key, 487, "Request Terminated", false, now);
        }
        self.fail_with(tx, key, 487, "Request Terminated", q850, now);
    }

    /// An in-dialog request (server transaction `tx_id`) for a call of this worker.
    #[allow(clippy::too_many_arguments)]
    pub fn on_request(
        &mut self,
        tx: &mut TransactionLayer<A>,
        tx_id: ServerTxId,
        msg: &Message<'_>,
        source: SocketAddr,
        wall_ms: u64,
        now: Instant,
    ) {
        let Some((key, side)) = self.dialog_of(msg) else {
            return;
        };
        let Some(method) = msg.method() else {
            return;
        };
        let tag = msg.to().and_then(|t| t.tag()).unwrap_or("").to_string();
        match method {
            Method::Bye => {
                self.reply_to(tx, tx_id, msg, source, &tag, 200, "OK", &[], None, now);
                let q = msg
                    .header(HeaderName::Reason)
                    .and_then(cause::parse_reason)
                    .unwrap_or(16);
                // A BYE before the answer ends the early dialog like a CANCEL: the forks are
                // cancelled and the caller's INVITE gets its final answer (RFC 3261 15).
                let early = self.calls.get(&key).is_some_and(|c| {
                    matches!(c.state, State::Offering | State::Ringing | State::Answering)
                });
                if early {
                    if side == Side::A {
                        return self.abandon(tx, key, q, now);
                    }
                    // The callee gave up before answering: like its failure response.
                    return self.fail_with(tx, key, 480, "Temporarily Unavailable", q, now);
                }
                if let Some(call) = self.calls.get_mut(&key) {
                    call.record.ended_ms = Some(wall_ms);
                    call.record.q850 = q;
                    call.record.status = 200;
                    call.record.cause = format!(
                        "{} hung up",
                        if side == Side::A { "caller" } else { "callee" }
                    );
                }
                let other = self.dialog_for(key, other_side(side));
                if let Some(d) = other {
                    self.bye(tx, key, d, q, now);
                }
                self.finish(key);
            }
            Method::Invite | Method::Update => {
                if side == Side::A {
                    if let Some(c) = self.calls.get_mut(&key) {
                        if let Some((d, _)) = c.session {
                            c.session = Some((d, now));
                            self.timers
                                .push(Reverse((now + d, key, TimerKind::SessionExpiry)));
                        }
                    }
                }
                let busy = self
                    .calls
                    .get(&key)
                    .is_none_or(|c| c.pending.is_some() || c.state != State::Established);
                if busy {
                    return self.reply_to(
                        tx,
                        tx_id,
                        msg,
                        source,
                        &tag,
                        491,
                        "Request Pending",
                        &[("Retry-After", "1")],
                        None,
                        now,
                    );
                }
                if msg.body.is_empty() {
                    // Nothing to anchor: a refresh (session timer) is answered here. Only the
                    // caller's leg has a timer (mgw offers none to callees), so a callee's
                    // refresh is answered without one.
                    let se = self.refresh_headers(key, side);
                    let contact = self.contact(false, self.side_v6(key, side));
                    let mut headers: Vec<(&str, &str)> = match &se {
                        Some((v, r)) => vec![("Session-Expires", v.as_str()), ("Require", r)],
                        None => Vec::new(),
                    };
                    // A re-INVITE without an offer asks for one in the 2xx (RFC 3261 14.2):
                    // the session as mgw last described it to that side, unchanged. An
                    // UPDATE without a body has no offer to answer.
                    let offer = (method == Method::Invite)
                        .then(|| {
                            self.calls
                                .get(&key)
                                .and_then(|c| c.last_sdp[side_index(side)].clone())
                        })
                        .flatten();
                    if offer.is_some() {
                        headers.push(("Contact", &contact));
                    }
                    return self.reply_2xx(
                        tx,
                        key,
                        side,
                        tx_id,
                        msg,
                        source,
                        &tag,
                        &headers,
                        offer.as_deref(),
                        now,
                    );
                }
                let from_tag = msg.from().and_then(|f| f.tag()).unwrap_or("").to_string();
                if let Some(call) = self.calls.get_mut(&key) {
                    call.pending = Some(Pending {
                        from: side,
                        method: if method == Method::Invite {
                            "INVITE"
                        } else {
                            "UPDATE"
                        },
                        server_tx: tx_id,
                        request: msg.raw.to_vec(),
                        source,
                        client_tx: None,
                        answer: None,
                    });
                }
                let sdp = String::from_utf8_lossy(msg.body).into_owned();
                self.ask_media(
                    key,
                    Purpose::RelayOffer,
                    MediaOp::Offer {
                        from_tag,
                        sdp,
                        transcode: false,
                    },
                );
            }
            Method::Prack => {
                if side == Side::A {
                    if let Some(c) = self.calls.get_mut(&key) {
                        c.a_unacked_1xx = None;
                    }
                }
                self.reply_to(tx, tx_id, msg, source, &tag, 200, "OK", &[], None, now)
            }
            Method::Info | Method::Notify | Method::Options => {
                self.reply_to(tx, tx_id, msg, source, &tag, 200, "OK", &[], None, now)
            }
            _ => self.reply_to(
                tx,
                tx_id,
                msg,
                source,
                &tag,
                405,
                "Method Not Allowed",
                &[("Allow", crate::uas::ALLOW)],
                None,
                now,
            ),
        }
    }

    /// The re-offer, anchored, goes to the other side.
    fn relay_out(&mut self, tx: &mut TransactionLayer<A>, key: u64, sdp: &str, now: Instant) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let Some(p) = &call.pending else {
            return;
        };
        let (from, method) = (p.from, p.method);
        let Some(mut d) = self.dialog_for(key, other_side(from)) else {
            return;
        };
        let via = self.via(d.reliable, d.v6);
        let contact = self.contact(d.reliable, d.v6);
        let creds = self.credentials_for(key, &d, method);
        let headers: Vec<(&str, &str)> = creds.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let mut buf = Vec::with_capacity(1024);
        d.request(
            &mut buf,
            method,
            &via,
            &contact,
            &headers,
            Some(("application/sdp", sdp.as_bytes())),
        );
        let dest = d.peer.clone();
        let reliable = d.reliable;
        self.store_dialog(key, other_side(from), d);
        if let Some(c) = self.calls.get_mut(&key) {
            c.last_sdp[side_index(other_side(from))] = Some(sdp.to_string());
        }
        match tx.send_request(buf, dest, reliable, now) {
            Ok(id) => {
                self.track(id, key, Role::Relay);
                if let Some(p) = self.calls.get_mut(&key).and_then(|c| c.pending.as_mut()) {
                    p.client_tx = Some(id);
                }
            }
            Err(_) => self.fail_pending(tx, key, 500, "Server Internal Error", now),
        }
    }

    fn relay_response(
        &mut self,
        tx: &mut TransactionLayer<A>,
        key: u64,
        status: u16,
        msg: &Message<'_>,
        now: Instant,
    ) {
        if status < 200 {
            return;
        }
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let Some(p) = &call.pending else {
            return;
        };
        let (from, method) = (p.from, p.method);
        let other = other_side(from);
        if method == "INVITE" && status < 300 {
            // The 2xx of a re-INVITE mgw sent is mgw's to acknowledge.
            if let Some(d) = self.dialog_for(key, other) {
                let mut d = d;
                d.local_cseq = msg.cseq().map_or(d.local_cseq, |c| c.seq);
                self.ack(d, &[], None);
            }
        }
        if status == 401 || status == 407 {
            // A challenge is for mgw, never for the requester: it has no credentials there.
            return self.fail_pending(
                tx,
                key,
                403,
                "Forbidden: the far end refused mgw's credentials",
                now,
            );
        }
        if status >= 300 {
            let reason = msg.reason().unwrap_or("").to_string();
            return self.fail_pending(tx, key, status, &reason, now);
        }
        let to_tag = match other {
            Side::A => self.calls[&key].a.remote_tag.clone(),
            Side::B => self
                .dialog_for(key, Side::B)
                .map(|d| d.remote_tag)
                .unwrap_or_default(),
        };
        if msg.body.is_empty() {
            return self.fail_pending(
                tx,
                key,
                488,
                "Not Acceptable Here: the answer has no SDP",
                now,
            );
        }
        if let Some(p) = self.calls.get_mut(&key).and_then(|c| c.pending.as_mut()) {
            p.answer = Some((status, msg.raw.to_vec()));
        }
        let sdp = String::from_utf8_lossy(msg.body).into_owned();
        self.ask_media(key, Purpose::RelayAnswer, MediaOp::Answer { to_tag, sdp });
    }

    fn relay_back(&mut self, tx: &mut TransactionLayer<A>, key: u64, sdp: &str, now: Instant) {
        let Some(p) = self.calls.get_mut(&key).and_then(|c| c.pending.take()) else {
            return;
        };
        if let Some(c) = self.calls.get_mut(&key) {
            c.last_sdp[side_index(p.from)] = Some(sdp.to_string());
        }
        let tag = self.local_tag(key, p.from);
        let contact = self.contact(false, self.side_v6(key, p.from));
        // A caller's refresh with a new offer keeps its session timer: a 2xx without
        // Session-Expires would turn it off at the caller while mgw still enforces it.
        let se = self.refresh_headers(key, p.from);
        let mut headers: Vec<(&str, &str)> = vec![("Contact", &contact)];
        if let Some((v, r)) = &se {
            headers.push(("Session-Expires", v.as_str()));
            headers.push(("Require", r));
        }
        if let Ok(m) = Message::parse(&p.request) {
            self.reply_2xx(
                tx,
                key,
                p.from,
                p.server_tx,
                &m,
                p.source,
                &tag,
                &headers,
                Some(sdp),
                now,
            );
        }
    }

    fn fail_pending(
        &mut self,
        tx: &mut TransactionLayer<A>,
        key: u64,
        status: u16,
        reason: &str,
        now: Instant,
    ) {
        let Some(p) = self.calls.get_mut(&key).and_then(|c| c.pending.take()) else {
            return;
        };
        let tag = self.local_tag(key, p.from);
        let reason = if reason.is_empty() {
            default_reason(status)
        } else {
            reason
        };
        if let Ok(m) = Message::parse(&p.request) {
            self.reply_to(
                tx,
                p.server_tx,
                &m,
                p.source,
                &tag,
                status,
                reason,
                &[],
                None,
                now,
            );
        }
    }

    // ---- ending ----

    /// Fails an unanswered call towards the caller and ends it.
    fn fail(
        &mut self,
        tx: &mut TransactionLayer<A>,
        key: u64,
        status: u16,
        reason: &str,
        now: Instant,
    ) {
        self.fail_with(tx, key, status, reason, cause::q850_of_status(status), now);
    }

    fn fail_with(
        &mut self,
        tx: &mut TransactionLayer<A>,
        key: u64,
        status: u16,
        reason: &str,
        q850: u8,
        now: Instant,
    ) {
        self.cancel_forks(tx, key, None, now);
        if self
            .calls
            .get(&key)
            .is_none_or(|c| matches!(c.state, State::Established | State::Ending))
        {
            return;
        }
        self.set_outcome(key, status, reason);
        if let Some(call) = self.calls.get_mut(&key) {
            call.record.q850 = q850;
        }
        let q = cause::reason_header(q850);
        self.reply_caller(tx, key, status, reason, &[("Reason", &q)], now);
        self.finish(key);
    }

    /// Ends a call that reached a callee: BYE to whoever is in it.
    fn end(
        &mut self,
        tx: &mut TransactionLayer<A>,
        key: u64,
        status: u16,
        reason: &str,
        bye_a: bool,
        now: Instant,
    ) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let answered_a = call.state == State::Established;
        self.set_outcome(key, status, reason);
        let q850 = cause::q850_of_status(status);
        if let Some(d) = self.dialog_for(key, Side::B) {
            self.bye(tx, key, d, q850, now);
        }
        if bye_a && answered_a {
            if let Some(d) = self.dialog_for(key, Side::A) {
                self.bye(tx, key, d, q850, now);
            }
        } else if !answered_a {
            self.reply_caller(tx, key, status, reason, &[], now);
        }
        self.finish(key);
    }

    fn set_outcome(&mut self, key: u64, status: u16, reason: &str) {
        if let Some(call) = self.calls.get_mut(&key) {
            call.record.status = status;
            call.record.cause = reason.to_string();
            call.record.q850 = cause::q850_of_status(status);
        }
    }

    /// A final answer on the caller's INVITE transaction.
    fn reply_caller(
        &mut self,
        tx: &mut TransactionLayer<A>,
        key: u64,
        status: u16,
        reason: &str,
        headers: &[(&str, &str)],
        now: Instant,
    ) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let (invite, tx_id, src, tag) = (
            call.a_invite.clone(),
            call.a_tx,
            call.a_source,
            call.a.local_tag.clone(),
        );
        if let Ok(m) = Message::parse(&invite) {
            self.reply_to(tx, tx_id, &m, src, &tag, status, reason, headers, None, now);
        }
    }

    /// The media engine saw no packet either way for its inactivity time: the call is dead
    /// (a phone lost power or network). Both sides get a BYE.
    pub fn media_dead(&mut self, tx: &mut TransactionLayer<A>, name: &str, now: Instant) {
        let Some(key) = self
            .calls
            .iter()
            .find(|(_, c)| c.name == name)
            .map(|(k, _)| *k)
        else {
            return;
        };
        if self
            .calls
            .get(&key)
            .is_some_and(|c| c.state == State::Established)
        {
            self.end(tx, key, 408, "media timeout: no RTP either way", true, now);
            if let Some(c) = self.calls.get_mut(&key) {
                c.record.status = 200;
                c.record.q850 = 102;
            }
        }
    }

    /// The media engine is asked for the totals; the call record follows with them.
    fn finish(&mut self, key: u64) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.state == State::Ending {
            return;
        }
        call.state = State::Ending;
        call.a_2xx = None;
        call.pending = None;
        // The voice channels are free the moment the call ends, not when the media engine
        // has reported its counters.
        call.permit = None;
        call.callee_channel = None;
        self.ask_media(key, Purpose::Finish, MediaOp::Finish);
    }

    /// Forgets a call and every index entry that points at it, without scanning the indexes
    /// (a busy worker holds thousands of calls).
    fn remove(&mut self, key: u64) -> Option<Call<A>> {
        let call = self.calls.remove(&key)?;
        self.dialogs
            .remove(&(call.a.call_id.clone(), call.a.local_tag.clone()));
        if let Some(f) = call.forks.first() {
            self.dialogs
                .remove(&(f.dialog.call_id.clone(), f.dialog.local_tag.clone()));
        }
        for id in &call.clients {
            self.clients.remove(id);
        }
        self.invites.remove(&call.a_tx);
        Some(call)
    }

    /// Files a client transaction under its call.
    fn track(&mut self, id: ClientTxId, key: u64, role: Role) {
        self.clients.insert(id, (key, role));
        if let Some(c) = self.calls.get_mut(&key) {
            c.clients.push(id);
        }
    }

    fn cancel_forks(
        &mut self,
        tx: &mut TransactionLayer<A>,
        key: u64,
        except: Option<usize>,
        now: Instant,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let mut cancels = Vec::new();
        for (i, f) in call.forks.iter_mut().enumerate() {
            if Some(i) == except || f.done.is_some() || f.invite.is_empty() {
                continue;
            }
            f.done = Some(487);
            let Ok(inv) = Message::parse(&f.invite) else {
                continue;
            };
            let mut buf = Vec::with_capacity(512);
            if crate::sip::builder::cancel_for(&mut buf, &inv) {
                cancels.push((buf, f.dialog.peer.clone(), f.dialog.reliable));
            }
        }
        for (buf, dest, reliable) in cancels {
            if let Ok(id) = tx.send_request(buf, dest, reliable, now) {
                self.track(id, key, Role::Fire);
            }
        }
    }

    fn bye(
        &mut self,
        tx: &mut TransactionLayer<A>,
        key: u64,
        mut d: Dialog<A>,
        q850: u8,
        now: Instant,
    ) {
        let via = self.via(d.reliable, d.v6);
        let mut buf = Vec::with_capacity(512);
        let reason = cause::reason_header(q850);
        let creds = self.credentials_for(key, &d, "BYE");
        let mut headers: Vec<(&str, &str)> = vec![("Reason", &reason)];
        headers.extend(creds.iter().map(|(n, v)| (*n, v.as_str())));
        d.request(&mut buf, "BYE", &via, "", &headers, None);
        let _ = tx.send_request(buf, d.peer.clone(), d.reliable, now);
    }

    /// Credentials for a request in the dialog `d` of a fork that had to authenticate its
    /// INVITE (a trunk): answered pre-emptively from the challenge held, since a provider that
    /// challenges in-dialog requests would otherwise keep the call up on its side.
    fn credentials_for(
        &mut self,
        key: u64,
        d: &Dialog<A>,
        method: &str,
    ) -> Vec<(&'static str, String)> {
        let Some(call) = self.calls.get_mut(&key) else {
            return Vec::new();
        };
        call.forks
            .iter_mut()
            .find(|f| f.dialog.call_id == d.call_id && f.dialog.remote_tag == d.remote_tag)
            .and_then(|f| f.auth.as_mut())
            .map(|a| a.headers(method, &d.remote_target))
            .unwrap_or_default()
    }

    /// The ACK of a 2xx, sent straight to the peer (it is no transaction: RFC 3261 13.2.2.4).
    fn ack(&mut self, mut d: Dialog<A>, invite: &[u8], sdp: Option<&str>) {
        if let Ok(inv) = Message::parse(invite) {
            if let Some(c) = inv.cseq() {
                d.local_cseq = c.seq;
            }
        }
        let via = self.via(d.reliable, d.v6);
        let mut buf = Vec::with_capacity(512);
        let body = sdp.map(|s| ("application/sdp", s.as_bytes()));
        d.request(&mut buf, "ACK", &via, "", &[], body);
        self.acks.push_back((d.peer, buf));
    }

    /// ACKs to send (no transaction carries them).
    pub fn poll_direct(&mut self) -> Option<(A, Vec<u8>)> {
        self.acks.pop_front()
    }

    fn dialog_for(&self, key: u64, side: Side) -> Option<Dialog<A>> {
        let call = self.calls.get(&key)?;
        match side {
            Side::A => Some(call.a.clone()),
            Side::B => call
                .winner
                .and_then(|w| call.forks.get(w))
                .map(|f| f.dialog.clone()),
        }
    }

    fn store_dialog(&mut self, key: u64, side: Side, d: Dialog<A>) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        match side {
            Side::A => call.a = d,
            Side::B => {
                if let Some(f) = call.winner.and_then(|w| call.forks.get_mut(w)) {
                    f.dialog = d;
                }
            }
        }
    }

    fn local_tag(&self, key: u64, side: Side) -> String {
        self.dialog_for(key, side)
            .map(|d| d.local_tag)
            .unwrap_or_default()
    }

    /// Timers: the caller's 2xx retransmitted until its ACK (giving up ends the call), and
    /// ringing without answer.
    pub fn on_timeout(&mut self, tx: &mut TransactionLayer<A>, now: Instant) {
        while let Some(Reverse((at, key, kind))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match kind {
                TimerKind::NoAnswer => {
                    if self
                        .calls
                        .get(&key)
                        .is_some_and(|c| matches!(c.state, State::Ringing | State::Offering))
                    {
                        self.fail(tx, key, 480, "Temporarily Unavailable: no answer", now);
                    }
                }
                TimerKind::Retransmit1xx => {
                    let t2 = self.cfg.t2;
                    let Some(call) = self.calls.get_mut(&key) else {
                        continue;
                    };
                    let Some((bytes, interval, give_up)) = call.a_unacked_1xx.clone() else {
                        continue;
                    };
                    if now >= give_up || call.state != State::Ringing {
                        // No PRACK: later provisionals go unreliably (RFC 3262 3 would have
                        // the INVITE rejected; the call is left to ring instead).
                        call.a_unacked_1xx = None;
                        call.a_100rel = false;
                        continue;
                    }
                    self.acks.push_back((call.a.peer.clone(), bytes.to_vec()));
                    let next = (interval * 2).min(t2);
                    call.a_unacked_1xx = Some((bytes, next, give_up));
                    self.timers.push(Reverse((
                        (now + next).min(give_up),
                        key,
                        TimerKind::Retransmit1xx,
                    )));
                }
                TimerKind::SessionExpiry => {
                    let Some(call) = self.calls.get(&key) else {
                        continue;
                    };
                    let Some((d, last)) = call.session else {
                        continue;
                    };
                    // A later refresh queued its own timer; only the newest one counts. The
                    // BYE goes a little before the expiry (RFC 4028 section 10).
                    let margin = (d / 3).min(Duration::from_secs(32));
                    if now + margin >= last + d && call.state == State::Established {
                        self.end(
                            tx,
                            key,
                            408,
                            "session timer expired: the caller stopped refreshing",
                            true,
                            now,
                        );
                        if let Some(c) = self.calls.get_mut(&key) {
                            c.record.status = 200;
                            c.record.q850 = 102;
                        }
                    }
                }
                TimerKind::RetransmitRe2xx => {
                    let t2 = self.cfg.t2;
                    let Some(call) = self.calls.get_mut(&key) else {
                        continue;
                    };
                    let Some(r) = call.re_2xx.clone() else {
                        continue;
                    };
                    if now >= r.give_up {
                        // 13.3.1.4: the dialog stands but the session should end.
                        call.re_2xx = None;
                        self.end(
                            tx,
                            key,
                            408,
                            "Request Timeout: the re-INVITE's answer was never acknowledged",
                            true,
                            now,
                        );
                        continue;
                    }
                    let peer = match r.side {
                        Side::A => Some(call.a.peer.clone()),
                        Side::B => self.dialog_for(key, Side::B).map(|d| d.peer),
                    };
                    if let Some(peer) = peer {
                        self.acks.push_back((peer, r.bytes.to_vec()));
                    }
                    let (next, at) = next_retransmit(r.interval, t2, now, r.give_up);
                    if let Some(call) = self.calls.get_mut(&key) {
                        call.re_2xx = Some(Reinvite2xx {
                            interval: next,
                            ..r
                        });
                    }
                    self.timers
                        .push(Reverse((at, key, TimerKind::RetransmitRe2xx)));
                }
                TimerKind::Retransmit2xx => {
                    let t2 = self.cfg.t2;
                    let Some(call) = self.calls.get_mut(&key) else {
                        continue;
                    };
                    let Some((bytes, interval, give_up)) = call.a_2xx.clone() else {
                        continue;
                    };
                    if now >= give_up {
                        call.a_2xx = None;
                        self.end(
                            tx,
                            key,
                            408,
                            "Request Timeout: the caller never acknowledged the answer",
                            false,
                            now,
                        );
                        continue;
                    }
                    self.acks.push_back((call.a.peer.clone(), bytes.to_vec()));
                    let (next, at) = next_retransmit(interval, t2, now, give_up);
                    call.a_2xx = Some((bytes, next, give_up));
                    self.timers
                        .push(Reverse((at, key, TimerKind::Retransmit2xx)));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn reply_to(
        &mut self,
        tx: &mut TransactionLayer<A>,
        tx_id: ServerTxId,
        req: &Message<'_>,
        source: SocketAddr,
        tag: &str,
        status: u16,
        reason: &str,
        headers: &[(&str, &str)],
        sdp: Option<&str>,
        now: Instant,
    ) {
        let bytes = self.build_reply(req, source, tag, status, reason, headers, sdp);
        let _ = tx.respond(tx_id, status, bytes, now);
    }

    /// The 200 to an in-dialog re-INVITE or UPDATE from `side`. A re-INVITE's is also kept
    /// for retransmission until its ACK, which the transaction layer leaves to mgw.
    #[allow(clippy::too_many_arguments)]
    fn reply_2xx(
        &mut self,
        tx: &mut TransactionLayer<A>,
        key: u64,
        side: Side,
        tx_id: ServerTxId,
        req: &Message<'_>,
        source: SocketAddr,
        tag: &str,
        headers: &[(&str, &str)],
        sdp: Option<&str>,
        now: Instant,
    ) {
        if req.method() != Some(Method::Invite) {
            return self.reply_to(tx, tx_id, req, source, tag, 200, "OK", headers, sdp, now);
        }
        let bytes = self.build_reply(req, source, tag, 200, "OK", headers, sdp);
        let _ = tx.respond(tx_id, 200, bytes.clone(), now);
        let (t1, cseq) = (self.cfg.t1, req.cseq().map_or(0, |c| c.seq));
        if let Some(call) = self.calls.get_mut(&key) {
            call.re_2xx = Some(Reinvite2xx {
                side,
                cseq,
                bytes: Arc::from(bytes),
                interval: t1,
                give_up: now + t1 * 64,
            });
            self.timers
                .push(Reverse((now + t1, key, TimerKind::RetransmitRe2xx)));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn build_reply(
        &self,
        req: &Message<'_>,
        source: SocketAddr,
        tag: &str,
        status: u16,
        reason: &str,
        headers: &[(&str, &str)],
        sdp: Option<&str>,
    ) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(768);
        let mut b = ResponseBuilder::new(
            &mut bytes,
            req,
            status,
            reason,
            ReplyContext {
                source: Some(source),
                to_tag: Some(tag),
            },
        );
        for (n, v) in headers {
            b = b.header(n, v);
        }
        b = b.header("Server", &self.cfg.server);
        match sdp {
            Some(s) => b.finish(Some("application/sdp"), s.as_bytes()),
            None => b.finish(None, b""),
        }
        bytes
    }
}

/// Where a call rings, the callee's account, and the voice channel or trunk slot it holds.
type TargetSet = (Vec<Target>, Option<u32>, Option<ChannelToken>);

/// A resolved place to send a fork.
struct Target {
    uri: String,
    /// The To header of the callee's dialog.
    to: String,
    /// A trunk's own address-of-record for From, and its credentials.
    from: Option<String>,
    credentials: Option<(String, String)>,
    /// A trunk's further addresses, for failover.
    alternates: Vec<(SocketAddr, Transport)>,
    dest: SocketAddr,
    transport: Transport,
    user: String,
    path: Vec<String>,
    /// A line or trunk (then `user` is its name), not a subscriber's binding.
    peer: bool,
}

/// The next interval of a 2xx retransmitted by the TU (doubling up to T2, RFC 3261
/// 13.3.1.4) and when it is due: the last wait ends at the give-up time, not after it.
fn next_retransmit(
    interval: Duration,
    t2: Duration,
    now: Instant,
    give_up: Instant,
) -> (Duration, Instant) {
    let next = (interval * 2).min(t2);
    (next, (now + next).min(give_up))
}

fn side_index(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

fn other_side(s: Side) -> Side {
    match s {
        Side::A => Side::B,
        Side::B => Side::A,
    }
}

/// `sip:user@192.0.2.9:5060` -> its address (names are not resolved here).
fn uri_target(uri: &str) -> Option<SocketAddr> {
    let u = crate::sip::Uri::parse(uri).ok()?;
    let host = u.host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, u.port.unwrap_or(5060)))
}

/// The RSeq of a reliable provisional response (`Require: 100rel` with `RSeq`).
fn reliable_rseq(msg: &Message<'_>) -> Option<u32> {
    let required = msg
        .list(HeaderName::Require)
        .any(|t| t.trim().eq_ignore_ascii_case("100rel"));
    if !required {
        return None;
    }
    msg.header_by_name("RSeq")?.trim().parse().ok()
}

/// The worker a tag or Call-ID made by [`Calls`] belongs to.
pub fn owner_of(id: &str) -> Option<u16> {
    let rest = id.strip_prefix(['t', 'b', 'f'])?;
    let (w, _) = rest.split_once('w')?;
    u16::from_str_radix(w, 16).ok()
}

/// Standard reason phrases of the statuses the switch sends.
pub fn default_reason(status: u16) -> &'static str {
    match status {
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        s if s < 200 => "Session Progress",
        _ => "Call Failed",
    }
}
