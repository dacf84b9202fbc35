//! Q.931 call control (§5): the calls of one D channel, on either side of the interface.
//!
//! [`CallControl`] is the layer-3 entity. The layer above (the trunk on the user side, the
//! exchange model on the network side) places and answers calls with its methods and hears of
//! the peer's doing through [`CallEvent`]s; the layer below (Q.921) carries the encoded messages
//! it polls and reports the link's state.
//!
//! The call states are numbered as Q.931 numbers them on both sides, so the Call state element
//! of a STATUS compares directly: the user side's outgoing call goes U1, U3, U4, U10 and the
//! network's view of it N1, N3, N4, N10; a call the network offers goes N6, N9, N7, N10 at the
//! network and U6, U9, U7, U8, U10 at the user. Overlap sending is not modelled: SETUPs are
//! sent en bloc (with Sending complete); a SETUP ACKNOWLEDGE from the network is taken as
//! proceeding.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::line::Cause;

use super::channels::{ChannelMap, ChannelState, HuntOrder, InterfaceKind};
use super::q931::ie::{id, location, progress};
use super::q931::{
    BearerCapability, CallReference, CauseIe, ChannelId, ChannelSelection, Message, MessageType,
    PartyNumber, ProgressIndicator, RestartClass,
};
use super::Side;

/// Call control's name for a call (never reused within one [`CallControl`]).
pub type CallId = u32;

/// The layer-3 timers (Q.931 §9, tables 9-1 and 9-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallTimers {
    /// SETUP sent, no answer: sent once more, then the call is cleared.
    pub t303: Duration,
    /// DISCONNECT sent, no RELEASE: RELEASE is sent.
    pub t305: Duration,
    /// RELEASE sent, no RELEASE COMPLETE: sent once more, then the call reference is freed.
    pub t308: Duration,
    /// The data link failed under an active call: how long the call waits for it to come back.
    /// `None` clears active calls at once like the others.
    pub t309: Option<Duration>,
    /// CALL PROCEEDING received, nothing since (Q.931 allows 30-120 s).
    pub t310: Duration,
    /// CONNECT sent by the user side, no CONNECT ACKNOWLEDGE.
    pub t313: Duration,
    /// RESTART sent, no RESTART ACKNOWLEDGE.
    pub t316: Duration,
    /// STATUS ENQUIRY sent, no STATUS.
    pub t322: Duration,
}

impl Default for CallTimers {
    fn default() -> CallTimers {
        CallTimers {
            t303: Duration::from_secs(4),
            t305: Duration::from_secs(30),
            t308: Duration::from_secs(4),
            t309: Some(Duration::from_secs(90)),
            t310: Duration::from_secs(30),
            t313: Duration::from_secs(4),
            t316: Duration::from_secs(120),
            t322: Duration::from_secs(4),
        }
    }
}

/// RESTARTs sent in all before giving up on an unacknowledged one.
const RESTART_ATTEMPTS: u8 = 2;

/// The Q.931 call states modelled (their numbers are [`CallState::value`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallState {
    Null,
    CallInitiated,
    OverlapSending,
    OutgoingCallProceeding,
    CallDelivered,
    CallPresent,
    CallReceived,
    ConnectRequest,
    IncomingCallProceeding,
    Active,
    DisconnectRequest,
    DisconnectIndication,
    ReleaseRequest,
}

impl CallState {
    pub fn value(self) -> u8 {
        match self {
            CallState::Null => 0,
            CallState::CallInitiated => 1,
            CallState::OverlapSending => 2,
            CallState::OutgoingCallProceeding => 3,
            CallState::CallDelivered => 4,
            CallState::CallPresent => 6,
            CallState::CallReceived => 7,
            CallState::ConnectRequest => 8,
            CallState::IncomingCallProceeding => 9,
            CallState::Active => 10,
            CallState::DisconnectRequest => 11,
            CallState::DisconnectIndication => 12,
            CallState::ReleaseRequest => 19,
        }
    }

    /// "U10", "N4": the state as Q.931 names it on `side`.
    pub fn name(self, side: Side) -> String {
        let prefix = if side == Side::User { 'U' } else { 'N' };
        format!("{prefix}{}", self.value())
    }

    fn clearing(self) -> bool {
        matches!(
            self,
            CallState::DisconnectRequest
                | CallState::DisconnectIndication
                | CallState::ReleaseRequest
        )
    }
}

/// Whether a peer reporting state `theirs` in a STATUS can be in step with us in `ours`
/// (Q.931 §5.8.11 leaves "compatible" to the implementation). Equal states are; so are two
/// states on the way up of a call placed by the same side, or either side clearing, since a
/// message in flight explains the difference. A null state is handled by the caller.
fn compatible(ours: CallState, placed_by_user: bool, theirs: u8) -> bool {
    const BY_USER: [u8; 5] = [1, 2, 3, 4, 10];
    const BY_NETWORK: [u8; 6] = [6, 7, 8, 9, 10, 25];
    let path: &[u8] = if placed_by_user {
        &BY_USER
    } else {
        &BY_NETWORK
    };
    let ours = ours.value();
    ours == theirs
        || [11, 12, 19].contains(&ours)
        || [11, 12, 19].contains(&theirs)
        || (path.contains(&ours) && path.contains(&theirs))
}

/// A call to place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupRequest {
    pub calling: Option<PartyNumber>,
    pub called: PartyNumber,
    /// A channel to ask for; `None` hunts for one.
    pub channel: Option<u8>,
    /// Whether only that channel will do.
    pub exclusive: bool,
    pub display: Option<String>,
}

/// What call control tells the layer above.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallEvent {
    /// The peer offers a call (a SETUP that passed the checks; its channel is allocated).
    Incoming {
        call: CallId,
        calling: Option<PartyNumber>,
        called: Option<PartyNumber>,
        channel: u8,
        display: Option<String>,
    },
    /// CALL PROCEEDING (or SETUP ACKNOWLEDGE) for a call placed here.
    Proceeding { call: CallId },
    /// ALERTING; `inband` when a progress indicator says ringback comes on the B channel.
    Alerting { call: CallId, inband: bool },
    /// PROGRESS.
    Progress { call: CallId, inband: bool },
    /// The call is active: CONNECT for a call placed here, CONNECT ACKNOWLEDGE for one the user
    /// side answered.
    Connected { call: CallId },
    /// The call is over for the layer above: cleared by the peer, refused, or torn down by a
    /// timer, a RESTART or a link failure. Not sent for calls the layer above cleared itself.
    Released { call: CallId, cause: Cause },
    /// The peer restarted these channels (their calls were released first).
    Restarted { channels: Vec<u8> },
    /// The peer acknowledged our RESTART.
    RestartAcknowledged { channels: Vec<u8> },
    /// Our RESTART went unacknowledged; its channels are back in service regardless.
    RestartFailed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    T303,
    T305,
    T308,
    T310,
    T313,
}

#[derive(Debug)]
struct Call {
    cr: u16,
    /// This side allocated the call reference (placed the call).
    ours: bool,
    state: CallState,
    channel: Option<u8>,
    exclusive: bool,
    /// The channel is agreed: the peer's first answer named it (calls placed here), or our
    /// first answer did (calls offered by the peer).
    agreed: bool,
    timer: Option<(Timer, Instant)>,
    /// Expiries of the running timer (T303 and T308 run twice).
    expiries: u8,
    t309: Option<Instant>,
    t322: Option<(Instant, u8)>,
    /// The cause of our DISCONNECT, repeated in the RELEASE that follows a T305 expiry.
    cause: Cause,
    /// The cause our RELEASE carried, repeated when T308 makes us send it again (§5.3.4:
    /// a RELEASE that opens the clearing must carry one).
    release_cause: Option<Cause>,
    setup: Option<Message>,
    /// The layer above still expects a `Released` for it.
    report: bool,
}

#[derive(Debug)]
struct PendingRestart {
    class: RestartClass,
    channels: Vec<u8>,
    channel_ie: Option<ChannelId>,
    at: Instant,
    sent: u8,
}

/// Counters for the operator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallStats {
    pub received: u64,
    /// Messages ignored for their header (§5.8.1-§5.8.3.1).
    pub ignored: u64,
    /// STATUS messages sent for errors (§5.8.4-§5.8.7).
    pub errors: u64,
}

/// The Q.931 entity of one side of one D channel.
#[derive(Debug)]
pub struct CallControl {
    side: Side,
    kind: InterfaceKind,
    timers: CallTimers,
    channels: ChannelMap,
    calls: BTreeMap<CallId, Call>,
    next_id: CallId,
    next_cr: u16,
    link_up: bool,
    /// The data link is being established (SABME sent): a SETUP offered now is held and sent
    /// once it is up (Q.931 §5.1.1 asks for the link before the SETUP, not instead of it).
    link_pending: bool,
    held: Vec<(CallId, Vec<u8>)>,
    link_cause: Cause,
    restart: Option<PendingRestart>,
    tx: VecDeque<Vec<u8>>,
    events: VecDeque<CallEvent>,
    stats: CallStats,
}

impl CallControl {
    pub fn new(
        side: Side,
        kind: InterfaceKind,
        hunt: HuntOrder,
        timers: CallTimers,
    ) -> CallControl {
        CallControl {
            side,
            kind,
            timers,
            channels: ChannelMap::new(kind, hunt),
            calls: BTreeMap::new(),
            next_id: 1,
            next_cr: 1,
            link_up: false,
            link_pending: false,
            held: Vec::new(),
            link_cause: Cause::TEMPORARY_FAILURE,
            restart: None,
            tx: VecDeque::new(),
            events: VecDeque::new(),
            stats: CallStats::default(),
        }
    }

    pub fn side(&self) -> Side {
        self.side
    }

    pub fn channels(&self) -> &ChannelMap {
        &self.channels
    }

    pub fn stats(&self) -> CallStats {
        self.stats
    }

    pub fn is_link_up(&self) -> bool {
        self.link_up
    }

    /// Told by the data link's owner whether establishment is under way, so that a call placed
    /// in that moment (a gateway that has just started) waits for the link instead of failing.
    pub fn set_link_pending(&mut self, pending: bool) {
        self.link_pending = pending;
    }

    pub fn state(&self, call: CallId) -> Option<CallState> {
        self.calls.get(&call).map(|c| c.state)
    }

    /// The call's B channel (once one is allocated to it).
    pub fn channel(&self, call: CallId) -> Option<u8> {
        self.calls.get(&call).and_then(|c| c.channel)
    }

    /// Calls not yet back in the null state, with their states.
    pub fn calls(&self) -> impl Iterator<Item = (CallId, CallState)> + '_ {
        self.calls.iter().map(|(&id, c)| (id, c.state))
    }

    /// Places a call: picks a channel, sends SETUP and starts T303.
    pub fn setup(&mut self, req: SetupRequest, now: Instant) -> Result<CallId, Cause> {
        if !self.link_up && !self.link_pending {
            return Err(Cause::NETWORK_OUT_OF_ORDER);
        }
        let channel = match req.channel {
            Some(c) if self.channels.is_idle(c) => c,
            Some(_) if req.exclusive => {
                return Err(match self.channels.hunt() {
                    Some(_) => Cause::REQUESTED_CHANNEL_UNAVAILABLE,
                    None => Cause::NO_CIRCUIT,
                })
            }
            _ => self.channels.hunt().ok_or(Cause::NO_CIRCUIT)?,
        };
        let cr = self.allocate_cr().ok_or(Cause::RESOURCE_UNAVAILABLE)?;
        let id = self.next_id();
        self.channels.reserve(channel, id);
        let mut msg = Message::new(
            MessageType::Setup,
            CallReference {
                len: self.kind.call_ref_len(),
                value: cr,
                flag: false,
            },
        );
        msg.bearer = Some(BearerCapability::speech(self.kind.law().layer1()));
        msg.channel = Some(ChannelId::channel(
            self.kind.is_primary(),
            req.exclusive,
            channel,
        ));
        msg.calling = req.calling;
        msg.called = Some(req.called);
        msg.display = req.display;
        msg.sending_complete = true;
        if self.link_up {
            self.send(&msg);
        } else {
            self.held.push((id, msg.encode()));
        }
        let state = match self.side {
            Side::User => CallState::CallInitiated,
            Side::Network => CallState::CallPresent,
        };
        self.calls.insert(
            id,
            Call {
                cr,
                ours: true,
                state,
                channel: Some(channel),
                exclusive: req.exclusive,
                agreed: false,
                timer: Some((Timer::T303, now + self.timers.t303)),
                expiries: 0,
                t309: None,
                t322: None,
                release_cause: None,
                cause: Cause::NORMAL,
                setup: Some(msg),
                report: true,
            },
        );
        Ok(id)
    }

    /// CALL PROCEEDING for a call the peer offered: everything needed is here.
    pub fn proceeding(&mut self, call: CallId, _now: Instant) {
        let next = match (self.side, self.state(call)) {
            (Side::User, Some(CallState::CallPresent)) => CallState::IncomingCallProceeding,
            (Side::Network, Some(CallState::CallInitiated)) => CallState::OutgoingCallProceeding,
            _ => return,
        };
        self.answer_message(call, MessageType::CallProceeding, next, None);
    }

    /// ALERTING for a call the peer offered; `inband` announces ringback on the B channel.
    pub fn alerting(&mut self, call: CallId, inband: bool, _now: Instant) {
        let next = match (self.side, self.state(call)) {
            (Side::User, Some(CallState::CallPresent | CallState::IncomingCallProceeding)) => {
                CallState::CallReceived
            }
            (Side::Network, Some(CallState::CallInitiated | CallState::OutgoingCallProceeding)) => {
                CallState::CallDelivered
            }
            _ => return,
        };
        let pi = inband.then(|| self.progress_indicator(progress::INBAND_AVAILABLE));
        self.answer_message(call, MessageType::Alerting, next, pi);
    }

    /// PROGRESS with in-band information (tones, announcements) for a call the peer offered.
    pub fn progress(&mut self, call: CallId, _now: Instant) {
        let Some(state) = self.state(call) else {
            return;
        };
        let allowed = match self.side {
            Side::User => matches!(
                state,
                CallState::CallPresent
                    | CallState::IncomingCallProceeding
                    | CallState::CallReceived
            ),
            Side::Network => matches!(
                state,
                CallState::CallInitiated
                    | CallState::OutgoingCallProceeding
                    | CallState::CallDelivered
            ),
        };
        if allowed {
            let pi = self.progress_indicator(progress::INBAND_AVAILABLE);
            self.answer_message(call, MessageType::Progress, state, Some(pi));
        }
    }

    /// CONNECT: answers a call the peer offered. The user side then waits T313 for CONNECT
    /// ACKNOWLEDGE; the network side's call is active at once.
    pub fn connect(&mut self, call: CallId, now: Instant) {
        let next = match (self.side, self.state(call)) {
            (
                Side::User,
                Some(
                    CallState::CallPresent
                    | CallState::IncomingCallProceeding
                    | CallState::CallReceived,
                ),
            ) => CallState::ConnectRequest,
            (
                Side::Network,
                Some(
                    CallState::CallInitiated
                    | CallState::OutgoingCallProceeding
                    | CallState::CallDelivered,
                ),
            ) => CallState::Active,
            _ => return,
        };
        self.answer_message(call, MessageType::Connect, next, None);
        if next == CallState::ConnectRequest {
            self.set_timer(call, Timer::T313, now);
        }
    }

    /// Clears a call the layer above no longer wants (any state). No `Released` follows.
    pub fn disconnect(&mut self, call: CallId, cause: Cause, now: Instant) {
        let link_up = self.link_up;
        let side = self.side;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.report = false;
        let (state, ours) = (c.state, c.ours);
        if !link_up {
            self.finish(call);
            return;
        }
        let offered_unanswered = !ours
            && matches!(
                (side, state),
                (Side::User, CallState::CallPresent) | (Side::Network, CallState::CallInitiated)
            );
        if offered_unanswered {
            // Refusing a SETUP not yet answered: RELEASE COMPLETE is the whole of it (§5.2.5.1).
            let mut msg = self.call_message(call, MessageType::ReleaseComplete);
            msg.cause = Some(self.cause_ie(cause));
            self.send(&msg);
            self.finish(call);
            return;
        }
        if state.clearing() || state == CallState::Null {
            return;
        }
        self.send_disconnect(call, cause, now);
    }

    /// STATUS ENQUIRY: asks the peer for its state of the call (answered by STATUS, T322).
    pub fn status_enquiry(&mut self, call: CallId, now: Instant) {
        if !self.link_up || !self.calls.contains_key(&call) {
            return;
        }
        let msg = self.call_message(call, MessageType::StatusEnquiry);
        self.send(&msg);
        let t322 = self.timers.t322;
        if let Some(c) = self.calls.get_mut(&call) {
            c.t322 = Some((now + t322, 0));
        }
    }

    /// RESTART: returns one channel, or the whole interface, to the idle condition. Calls on
    /// them are released here at once (reported with cause 41) and at the peer on receipt.
    pub fn restart(&mut self, channel: Option<u8>, now: Instant) {
        if !self.link_up || self.restart.is_some() {
            return;
        }
        let (class, channels, channel_ie) = match channel {
            Some(c) if self.kind.has_channel(c) => (
                RestartClass::Channels,
                vec![c],
                Some(ChannelId::channel(self.kind.is_primary(), true, c)),
            ),
            Some(_) => return,
            None => (RestartClass::Interface, self.kind.b_channels(), None),
        };
        let affected: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                class != RestartClass::Channels
                    || c.channel.is_some_and(|ch| channels.contains(&ch))
            })
            .map(|(&id, _)| id)
            .collect();
        for id in affected {
            self.report(id, Cause::TEMPORARY_FAILURE);
            self.finish(id);
        }
        for &c in &channels {
            self.channels.set_restarting(c);
        }
        let pending = PendingRestart {
            class,
            channels,
            channel_ie,
            at: now + self.timers.t316,
            sent: 1,
        };
        self.send_restart(&pending);
        self.restart = Some(pending);
    }

    /// DL-ESTABLISH indication or confirm.
    pub fn link_established(&mut self, _now: Instant) {
        self.link_up = true;
        self.link_pending = false;
        // SETUPs held for the link go first, for calls not cleared meanwhile.
        for (id, bytes) in std::mem::take(&mut self.held) {
            if self.calls.contains_key(&id) {
                self.tx.push_back(bytes);
            }
        }
        // §5.8.8: calls that survived under T309 report their state to resynchronise.
        let waiting: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| c.t309.is_some())
            .map(|(&id, _)| id)
            .collect();
        for id in waiting {
            if let Some(c) = self.calls.get_mut(&id) {
                c.t309 = None;
            }
            self.send_status(id, Cause::NORMAL_UNSPECIFIED, Vec::new());
        }
    }

    /// DL-RELEASE indication. `cause` is what calls cleared for it are reported with (38 when
    /// layer 1 is gone, 41 when only the data link failed). Q.931 §5.8.8: calls not active are
    /// cleared at once; active ones wait T309 for the link to come back.
    pub fn link_released(&mut self, cause: Cause, now: Instant) {
        self.link_up = false;
        self.link_cause = cause;
        self.tx.clear();
        self.held.clear();
        if let Some(r) = self.restart.take() {
            for c in r.channels {
                self.channels.force_idle(c);
            }
        }
        let ids: Vec<CallId> = self.calls.keys().copied().collect();
        for id in ids {
            let Some(c) = self.calls.get_mut(&id) else {
                continue;
            };
            match (c.state, self.timers.t309) {
                (CallState::Active, Some(t309)) => {
                    c.t309.get_or_insert(now + t309);
                    c.t322 = None;
                }
                _ => {
                    self.report(id, cause);
                    self.finish(id);
                }
            }
        }
    }

    /// A message from the peer (the contents of an I frame).
    pub fn receive(&mut self, bytes: &[u8], now: Instant) {
        self.stats.received += 1;
        let Ok(msg) = Message::decode(bytes) else {
            self.stats.ignored += 1;
            return;
        };
        if msg.call_ref.len != self.kind.call_ref_len() {
            // §5.8.3.1: a call reference of the wrong length for the interface (or the dummy
            // one, used by supplementary services not modelled here).
            self.stats.ignored += 1;
            return;
        }
        if msg.call_ref.is_global() {
            self.on_global(msg);
            return;
        }
        let found = self
            .calls
            .iter()
            .find(|(_, c)| c.cr == msg.call_ref.value && c.ours == msg.call_ref.flag)
            .map(|(&id, _)| id);
        match found {
            Some(id) => self.on_call_message(id, msg, now),
            None => self.on_unknown_call(msg),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.tx.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let calls = self
            .calls
            .values()
            .flat_map(|c| [c.timer.map(|(_, at)| at), c.t309, c.t322.map(|(at, _)| at)]);
        calls
            .chain(std::iter::once(self.restart.as_ref().map(|r| r.at)))
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.restart.as_ref().is_some_and(|r| r.at <= now) {
            self.on_t316(now);
        }
        let due: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                c.timer.is_some_and(|(_, at)| at <= now)
                    || c.t309.is_some_and(|at| at <= now)
                    || c.t322.is_some_and(|(at, _)| at <= now)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            self.on_call_timer(id, now);
        }
    }

    // ---- sending ----

    fn next_id(&mut self) -> CallId {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    fn allocate_cr(&mut self) -> Option<u16> {
        let max = CallReference::max_value(self.kind.call_ref_len());
        for _ in 0..max {
            let cr = self.next_cr;
            self.next_cr = if cr >= max { 1 } else { cr + 1 };
            if !self.calls.values().any(|c| c.ours && c.cr == cr) {
                return Some(cr);
            }
        }
        None
    }

    fn send(&mut self, msg: &Message) {
        if self.link_up {
            self.tx.push_back(msg.encode());
        }
    }

    fn call_ref(&self, c: &Call) -> CallReference {
        CallReference {
            len: self.kind.call_ref_len(),
            value: c.cr,
            flag: !c.ours,
        }
    }

    fn call_message(&self, call: CallId, kind: MessageType) -> Message {
        let call_ref = match self.calls.get(&call) {
            Some(c) => self.call_ref(c),
            None => CallReference::global(self.kind.call_ref_len(), false),
        };
        Message::new(kind, call_ref)
    }

    fn location(&self) -> u8 {
        match self.side {
            Side::User => location::USER,
            Side::Network => location::PUBLIC_LOCAL,
        }
    }

    fn cause_ie(&self, cause: Cause) -> CauseIe {
        CauseIe::new(self.location(), cause.0)
    }

    fn progress_indicator(&self, description: u8) -> ProgressIndicator {
        ProgressIndicator {
            location: self.location(),
            description,
        }
    }

    /// A message answering a call the peer offered; the first one names the channel.
    fn answer_message(
        &mut self,
        call: CallId,
        kind: MessageType,
        next: CallState,
        pi: Option<ProgressIndicator>,
    ) {
        let primary = self.kind.is_primary();
        let mut msg = self.call_message(call, kind);
        msg.progress = pi;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if !c.agreed {
            if let Some(ch) = c.channel {
                msg.channel = Some(ChannelId::channel(primary, true, ch));
            }
            c.agreed = true;
        }
        c.state = next;
        self.send(&msg);
    }

    fn send_disconnect(&mut self, call: CallId, cause: Cause, now: Instant) {
        let mut msg = self.call_message(call, MessageType::Disconnect);
        msg.cause = Some(self.cause_ie(cause));
        self.send(&msg);
        let state = match self.side {
            Side::User => CallState::DisconnectRequest,
            Side::Network => CallState::DisconnectIndication,
        };
        if let Some(c) = self.calls.get_mut(&call) {
            c.state = state;
            c.cause = cause;
        }
        self.set_timer(call, Timer::T305, now);
    }

    fn send_release(&mut self, call: CallId, cause: Option<Cause>, now: Instant) {
        let mut msg = self.call_message(call, MessageType::Release);
        msg.cause = cause.map(|c| self.cause_ie(c));
        self.send(&msg);
        if let Some(c) = self.calls.get_mut(&call) {
            c.state = CallState::ReleaseRequest;
            c.release_cause = cause;
        }
        self.set_timer(call, Timer::T308, now);
    }

    fn send_status(&mut self, call: CallId, cause: Cause, diagnostics: Vec<u8>) {
        let mut msg = self.call_message(call, MessageType::Status);
        msg.cause = Some(CauseIe {
            diagnostics,
            ..self.cause_ie(cause)
        });
        msg.call_state = Some(self.state(call).map_or(0, CallState::value));
        self.send(&msg);
    }

    /// A reply to a message whose call reference matches no call.
    fn reply(&mut self, to: CallReference, kind: MessageType, cause: Cause, diagnostics: Vec<u8>) {
        let mut msg = Message::new(kind, to.reply());
        msg.cause = Some(CauseIe {
            diagnostics,
            ..self.cause_ie(cause)
        });
        if kind == MessageType::Status {
            msg.call_state = Some(0);
        }
        self.send(&msg);
    }

    fn send_restart(&mut self, r: &PendingRestart) {
        let mut msg = Message::new(
            MessageType::Restart,
            CallReference::global(self.kind.call_ref_len(), false),
        );
        msg.restart = Some(r.class);
        msg.channel = r.channel_ie;
        self.send(&msg);
    }

    fn set_timer(&mut self, call: CallId, timer: Timer, now: Instant) {
        let duration = match timer {
            Timer::T303 => self.timers.t303,
            Timer::T305 => self.timers.t305,
            Timer::T308 => self.timers.t308,
            Timer::T310 => self.timers.t310,
            Timer::T313 => self.timers.t313,
        };
        if let Some(c) = self.calls.get_mut(&call) {
            c.timer = Some((timer, now + duration));
            c.expiries = 0;
        }
    }

    fn stop_timer(&mut self, call: CallId) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.timer = None;
        }
    }

    /// Tells the layer above the call is over, once.
    fn report(&mut self, call: CallId, cause: Cause) {
        if let Some(c) = self.calls.get_mut(&call) {
            if c.report {
                c.report = false;
                self.events.push_back(CallEvent::Released { call, cause });
            }
        }
    }

    /// The null state: the call reference and the channel are free.
    fn finish(&mut self, call: CallId) {
        if let Some(c) = self.calls.remove(&call) {
            if let Some(ch) = c.channel {
                self.channels.free(ch, call);
            }
        }
    }

    // ---- receiving ----

    fn on_global(&mut self, msg: Message) {
        match msg.kind {
            MessageType::Restart => self.on_restart(msg),
            MessageType::RestartAcknowledge => {
                if let Some(r) = self.restart.take() {
                    for &c in &r.channels {
                        self.channels.force_idle(c);
                    }
                    self.events.push_back(CallEvent::RestartAcknowledged {
                        channels: r.channels,
                    });
                }
            }
            MessageType::Status => {}
            // §5.8.3.2 h: any other message on the global call reference.
            _ => {
                self.stats.errors += 1;
                self.reply(
                    msg.call_ref,
                    MessageType::Status,
                    Cause::INVALID_CALL_REFERENCE,
                    Vec::new(),
                );
            }
        }
    }

    fn on_restart(&mut self, msg: Message) {
        let Some(class) = msg.restart else {
            let cause = if msg.is_invalid(id::RESTART_INDICATOR) {
                Cause(100)
            } else {
                Cause::MANDATORY_IE_MISSING
            };
            self.stats.errors += 1;
            self.reply(
                msg.call_ref,
                MessageType::Status,
                cause,
                vec![id::RESTART_INDICATOR],
            );
            return;
        };
        let channels = match (class, msg.channel.map(|c| c.selection)) {
            (RestartClass::Channels, Some(ChannelSelection::Channel(c)))
                if self.kind.has_channel(c) =>
            {
                vec![c]
            }
            (RestartClass::Channels, _) => {
                self.stats.errors += 1;
                self.reply(
                    msg.call_ref,
                    MessageType::Status,
                    Cause(82),
                    vec![id::CHANNEL_ID],
                );
                return;
            }
            _ => self.kind.b_channels(),
        };
        let affected: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                class != RestartClass::Channels
                    || c.channel.is_some_and(|ch| channels.contains(&ch))
            })
            .map(|(&id, _)| id)
            .collect();
        for id in affected {
            self.report(id, Cause::TEMPORARY_FAILURE);
            self.finish(id);
        }
        for &c in &channels {
            self.channels.force_idle(c);
        }
        let mut ack = Message::new(MessageType::RestartAcknowledge, msg.call_ref.reply());
        ack.restart = Some(class);
        ack.channel = msg.channel;
        self.send(&ack);
        self.events.push_back(CallEvent::Restarted { channels });
    }

    /// §5.8.3.2: a message for a call reference no call has.
    fn on_unknown_call(&mut self, msg: Message) {
        match msg.kind {
            // A SETUP with the flag set claims a call we placed: ignored (§5.8.3.2 e).
            MessageType::Setup if !msg.call_ref.flag => self.on_setup(msg),
            MessageType::Setup | MessageType::ReleaseComplete => {}
            MessageType::StatusEnquiry => {
                self.reply(msg.call_ref, MessageType::Status, Cause(30), Vec::new())
            }
            MessageType::Status => {
                if msg.call_state.is_some_and(|s| s != 0) {
                    self.reply(
                        msg.call_ref,
                        MessageType::ReleaseComplete,
                        Cause::WRONG_STATE,
                        Vec::new(),
                    );
                }
            }
            _ => {
                self.stats.errors += 1;
                self.reply(
                    msg.call_ref,
                    MessageType::ReleaseComplete,
                    Cause::INVALID_CALL_REFERENCE,
                    Vec::new(),
                );
            }
        }
    }

    fn on_setup(&mut self, msg: Message) {
        if !self.link_up {
            return;
        }
        let refuse = |this: &mut CallControl, cause: Cause, diagnostics: Vec<u8>| {
            this.reply(
                msg.call_ref,
                MessageType::ReleaseComplete,
                cause,
                diagnostics,
            );
        };
        // §5.8.6: mandatory elements missing or unreadable, unknown ones that must be understood.
        let mandatory_channel = self.side == Side::User && self.kind.is_primary();
        for (ie, needed) in [
            (id::BEARER_CAPABILITY, true),
            (id::CHANNEL_ID, mandatory_channel),
        ] {
            if msg.is_invalid(ie) {
                return refuse(self, Cause(100), vec![ie]);
            }
            let present = match ie {
                id::BEARER_CAPABILITY => msg.bearer.is_some(),
                _ => msg.channel.is_some(),
            };
            if needed && !present {
                return refuse(self, Cause::MANDATORY_IE_MISSING, vec![ie]);
            }
        }
        if let Some(&ie) = msg
            .unrecognized
            .iter()
            .find(|&&i| id::comprehension_required(i))
        {
            return refuse(self, Cause::MANDATORY_IE_MISSING, vec![ie]);
        }
        if msg.bearer.is_some_and(|b| !b.capability.is_voice()) {
            // 65: bearer capability not implemented (this is a voice trunk).
            return refuse(self, Cause(65), vec![]);
        }
        let (request, exclusive) = match msg.channel.map(|c| (c.selection, c.exclusive)) {
            Some((ChannelSelection::Channel(c), exclusive)) => (Some(c), exclusive),
            Some((ChannelSelection::NoChannel, _)) => {
                return refuse(self, Cause::NO_CIRCUIT, vec![]);
            }
            _ => (None, false),
        };
        // The network side wins a collision: a channel the user side has only proposed goes to
        // the network's call (Q.931 §5.2.3.1).
        let yield_reserved = self.side == Side::User;
        let channel = match self
            .channels
            .select_for_peer(request, exclusive, yield_reserved)
        {
            Ok(c) => c,
            Err(cause) => return refuse(self, cause, vec![]),
        };
        if let Some(ChannelState::Reserved(loser)) = self.channels.state(channel) {
            if let Some(c) = self.calls.get_mut(&loser) {
                c.channel = None;
            }
        }
        let call = self.next_id();
        self.channels.assign(channel, call);
        let state = match self.side {
            Side::User => CallState::CallPresent,
            Side::Network => CallState::CallInitiated,
        };
        self.calls.insert(
            call,
            Call {
                cr: msg.call_ref.value,
                ours: false,
                state,
                channel: Some(channel),
                exclusive: true,
                agreed: false,
                timer: None,
                expiries: 0,
                t309: None,
                t322: None,
                release_cause: None,
                cause: Cause::NORMAL,
                setup: None,
                report: true,
            },
        );
        self.events.push_back(CallEvent::Incoming {
            call,
            calling: msg.calling,
            called: msg.called,
            channel,
            display: msg.display,
        });
    }

    fn on_call_message(&mut self, call: CallId, msg: Message, now: Instant) {
        let Some(state) = self.state(call) else {
            return;
        };
        match msg.kind {
            MessageType::StatusEnquiry => return self.send_status(call, Cause(30), Vec::new()),
            MessageType::Status => return self.on_status(call, &msg, now),
            MessageType::Release => return self.on_release(call, &msg),
            MessageType::ReleaseComplete => {
                let cause = msg
                    .cause
                    .map_or(Cause::NORMAL_UNSPECIFIED, |c| Cause(c.value));
                self.report(call, cause);
                self.finish(call);
                return;
            }
            // §5.8.3.2 d: a SETUP for a call reference in use.
            MessageType::Setup => return,
            // Overlap sending is not modelled, so further digits have nowhere to go.
            MessageType::Information => return,
            MessageType::Unknown(t) => {
                self.stats.errors += 1;
                return self.send_status(call, Cause::MESSAGE_TYPE_NONEXISTENT, vec![t]);
            }
            _ => {}
        }
        if state == CallState::ReleaseRequest {
            // Only RELEASE and RELEASE COMPLETE matter once RELEASE is sent.
            return;
        }
        // §5.8.6 and §5.8.7.1: mandatory elements.
        let mandatory: &[u8] = match msg.kind {
            MessageType::Disconnect => &[id::CAUSE],
            MessageType::Progress => &[id::PROGRESS_INDICATOR],
            _ => &[],
        };
        let problem = mandatory
            .iter()
            .find_map(|&ie| {
                let present = match ie {
                    id::CAUSE => msg.cause.is_some(),
                    _ => msg.progress.is_some(),
                };
                if msg.is_invalid(ie) {
                    Some((Cause(100), ie))
                } else if !present {
                    Some((Cause::MANDATORY_IE_MISSING, ie))
                } else {
                    None
                }
            })
            .or_else(|| {
                msg.unrecognized
                    .iter()
                    .find(|&&i| id::comprehension_required(i))
                    .map(|&i| (Cause::MANDATORY_IE_MISSING, i))
            });
        if let Some((cause, ie)) = problem {
            self.stats.errors += 1;
            if msg.kind == MessageType::Disconnect {
                // A DISCONNECT still ends the call: answered by RELEASE with the error cause.
                self.report(call, Cause::NORMAL_UNSPECIFIED);
                self.stop_timer(call);
                self.send_release(call, Some(cause), now);
            } else {
                self.send_status(call, cause, vec![ie]);
            }
            return;
        }
        match msg.kind {
            MessageType::Disconnect => {
                let cause = msg
                    .cause
                    .map_or(Cause::NORMAL_UNSPECIFIED, |c| Cause(c.value));
                self.report(call, cause);
                self.stop_timer(call);
                self.send_release(call, None, now);
            }
            MessageType::ConnectAcknowledge => match (self.side, state) {
                (Side::User, CallState::ConnectRequest) => {
                    self.stop_timer(call);
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.state = CallState::Active;
                    }
                    self.events.push_back(CallEvent::Connected { call });
                }
                (_, CallState::Active) => {}
                _ => self.unexpected(call, &msg),
            },
            MessageType::SetupAcknowledge
            | MessageType::CallProceeding
            | MessageType::Alerting
            | MessageType::Connect
            | MessageType::Progress => self.on_answer(call, state, &msg, now),
            _ => self.unexpected(call, &msg),
        }
    }

    /// §5.8.4: a message that does not fit the call's state is answered by STATUS (cause 101)
    /// and otherwise ignored; while clearing, crossing messages are expected and just ignored.
    fn unexpected(&mut self, call: CallId, msg: &Message) {
        if self.state(call).is_some_and(CallState::clearing) {
            return;
        }
        self.stats.errors += 1;
        self.send_status(call, Cause::WRONG_STATE, vec![msg.kind.code()]);
    }

    /// The peer's answers to a SETUP this side sent.
    fn on_answer(&mut self, call: CallId, state: CallState, msg: &Message, now: Instant) {
        use CallState as S;
        use MessageType as M;
        let next = match (self.side, msg.kind, state) {
            (Side::User, M::SetupAcknowledge, S::CallInitiated) => S::OverlapSending,
            (Side::User, M::CallProceeding, S::CallInitiated | S::OverlapSending) => {
                S::OutgoingCallProceeding
            }
            (
                Side::User,
                M::Alerting,
                S::CallInitiated | S::OverlapSending | S::OutgoingCallProceeding,
            ) => S::CallDelivered,
            (
                Side::User,
                M::Connect,
                S::CallInitiated | S::OverlapSending | S::OutgoingCallProceeding | S::CallDelivered,
            ) => S::Active,
            (
                Side::User,
                M::Progress,
                S::CallInitiated | S::OverlapSending | S::OutgoingCallProceeding | S::CallDelivered,
            ) => state,
            (Side::Network, M::CallProceeding, S::CallPresent) => S::IncomingCallProceeding,
            (Side::Network, M::Alerting, S::CallPresent | S::IncomingCallProceeding) => {
                S::CallReceived
            }
            (
                Side::Network,
                M::Connect,
                S::CallPresent | S::IncomingCallProceeding | S::CallReceived,
            ) => S::Active,
            (
                Side::Network,
                M::Progress,
                S::CallPresent | S::IncomingCallProceeding | S::CallReceived,
            ) => state,
            _ => return self.unexpected(call, msg),
        };
        if msg.kind != M::Progress {
            if let Err(cause) = self.agree_channel(call, msg.channel) {
                self.report(call, cause);
                self.stop_timer(call);
                self.send_release(call, Some(cause), now);
                return;
            }
        }
        let inband = msg.progress.is_some_and(|p| p.inband());
        if let Some(c) = self.calls.get_mut(&call) {
            c.state = next;
            // PROGRESS is no answer to the SETUP (T303 keeps running): the SETUP stays for
            // T303's one retransmission.
            if msg.kind != M::Progress {
                c.setup = None;
            }
        }
        match msg.kind {
            M::SetupAcknowledge => {
                self.stop_timer(call);
                self.events.push_back(CallEvent::Proceeding { call });
            }
            M::CallProceeding => {
                self.set_timer(call, Timer::T310, now);
                self.events.push_back(CallEvent::Proceeding { call });
                if inband {
                    self.events.push_back(CallEvent::Progress { call, inband });
                }
            }
            M::Alerting => {
                self.stop_timer(call);
                self.events.push_back(CallEvent::Alerting { call, inband });
            }
            M::Connect => {
                self.stop_timer(call);
                let ack = self.call_message(call, M::ConnectAcknowledge);
                self.send(&ack);
                self.events.push_back(CallEvent::Connected { call });
            }
            _ => {
                // Q.931 stops T310 on PROGRESS too; T303 keeps running until a real answer.
                if self
                    .calls
                    .get(&call)
                    .is_some_and(|c| matches!(c.timer, Some((Timer::T310, _))))
                {
                    self.stop_timer(call);
                }
                self.events.push_back(CallEvent::Progress { call, inband });
            }
        }
    }

    /// The first answer to our SETUP fixes the channel: the one it names (the network side may
    /// have moved a preferred one, or taken ours for a call of its own in a collision), else
    /// the one we proposed.
    fn agree_channel(&mut self, call: CallId, ie: Option<ChannelId>) -> Result<(), Cause> {
        let Some(c) = self.calls.get(&call) else {
            return Ok(());
        };
        let (agreed, own, exclusive) = (c.agreed, c.channel, c.exclusive);
        if agreed {
            return Ok(());
        }
        let named = match ie.map(|i| i.selection) {
            Some(ChannelSelection::Channel(n)) => Some(n),
            _ => None,
        };
        let channel = match (named, own) {
            (Some(n), _) => n,
            (None, Some(own)) => own,
            (None, None) => return Err(Cause::MANDATORY_IE_MISSING),
        };
        if !self.kind.has_channel(channel) {
            return Err(Cause(82));
        }
        if exclusive && own.is_some_and(|own| own != channel) {
            return Err(Cause::CHANNEL_UNACCEPTABLE);
        }
        match self.channels.state(channel) {
            Some(ChannelState::Idle) => {}
            Some(ChannelState::Reserved(owner) | ChannelState::InUse(owner)) if owner == call => {}
            Some(ChannelState::Reserved(other)) if self.side == Side::User => {
                // The network gave this call a channel another SETUP of ours proposed: the
                // network decides, the other call will be told its own channel.
                if let Some(o) = self.calls.get_mut(&other) {
                    o.channel = None;
                }
            }
            _ => return Err(Cause::CHANNEL_UNACCEPTABLE),
        }
        if let Some(old) = own.filter(|&o| o != channel) {
            self.channels.free(old, call);
        }
        self.channels.assign(channel, call);
        if let Some(c) = self.calls.get_mut(&call) {
            c.channel = Some(channel);
            c.agreed = true;
        }
        Ok(())
    }

    fn on_release(&mut self, call: CallId, msg: &Message) {
        let Some(state) = self.state(call) else {
            return;
        };
        let cause = msg.cause.as_ref().map(|c| Cause(c.value));
        self.report(call, cause.unwrap_or(Cause::NORMAL_UNSPECIFIED));
        if state != CallState::ReleaseRequest {
            // Both sides sending RELEASE at once is a clear collision: neither answers it
            // (§5.3.5); otherwise RELEASE COMPLETE, with cause 96 if a first clearing message
            // came without its cause.
            let mut done = self.call_message(call, MessageType::ReleaseComplete);
            if cause.is_none() && !state.clearing() {
                done.cause = Some(CauseIe {
                    diagnostics: vec![id::CAUSE],
                    ..self.cause_ie(Cause::MANDATORY_IE_MISSING)
                });
            }
            self.send(&done);
        }
        self.finish(call);
    }

    fn on_status(&mut self, call: CallId, msg: &Message, now: Instant) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.t322 = None;
        }
        let Some(theirs) = msg.call_state else {
            // A STATUS is never answered by STATUS; without its state it says nothing.
            return;
        };
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let ours = c.state;
        let placed_by_user = c.ours == (self.side == Side::User);
        if theirs == 0 {
            // The peer has no such call: release everything here (§5.8.11).
            self.report(call, Cause::WRONG_STATE);
            self.finish(call);
        } else if !compatible(ours, placed_by_user, theirs) {
            self.report(call, Cause::WRONG_STATE);
            self.stop_timer(call);
            match ours {
                CallState::ReleaseRequest => {}
                CallState::DisconnectRequest | CallState::DisconnectIndication => {
                    self.send_release(call, Some(Cause::WRONG_STATE), now)
                }
                _ => self.send_disconnect(call, Cause::WRONG_STATE, now),
            }
        }
    }

    fn on_t316(&mut self, now: Instant) {
        let Some(mut r) = self.restart.take() else {
            return;
        };
        if r.sent >= RESTART_ATTEMPTS {
            for &c in &r.channels {
                self.channels.force_idle(c);
            }
            self.events.push_back(CallEvent::RestartFailed);
            return;
        }
        r.sent += 1;
        r.at = now + self.timers.t316;
        self.send_restart(&r);
        self.restart = Some(r);
    }

    fn on_call_timer(&mut self, call: CallId, now: Instant) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.t309.is_some_and(|at| at <= now) {
            c.t309 = None;
            // The link did not come back: the network clears towards the remote party with
            // 27 (destination out of order), the user side with what took the link down.
            let cause = match self.side {
                Side::User => self.link_cause,
                Side::Network => Cause(27),
            };
            self.report(call, cause);
            self.finish(call);
            return;
        }
        if let Some((_, sent)) = c.t322.filter(|(at, _)| *at <= now) {
            if sent >= 1 {
                c.t322 = None;
                self.report(call, Cause::TEMPORARY_FAILURE);
                self.stop_timer(call);
                self.send_disconnect(call, Cause::TEMPORARY_FAILURE, now);
            } else {
                c.t322 = Some((now + self.timers.t322, sent + 1));
                let msg = self.call_message(call, MessageType::StatusEnquiry);
                self.send(&msg);
            }
            return;
        }
        let Some((timer, at)) = c.timer else {
            return;
        };
        if at > now {
            return;
        }
        c.timer = None;
        let first = c.expiries == 0;
        match timer {
            Timer::T303 if first && c.setup.is_some() => {
                if let Some(setup) = c.setup.clone() {
                    c.timer = Some((Timer::T303, now + self.timers.t303));
                    c.expiries = 1;
                    self.send(&setup);
                }
            }
            Timer::T303 => {
                // No answer to two SETUPs: the user side gives up (cause 102); the network
                // tells the caller nobody answered (18). RELEASE COMPLETE lets a peer that did
                // receive the SETUP forget it too.
                let mut done = self.call_message(call, MessageType::ReleaseComplete);
                done.cause = Some(self.cause_ie(Cause::RECOVERY_ON_TIMER_EXPIRY));
                self.send(&done);
                let cause = match self.side {
                    Side::User => Cause::RECOVERY_ON_TIMER_EXPIRY,
                    Side::Network => Cause::NO_USER_RESPONDING,
                };
                self.report(call, cause);
                self.finish(call);
            }
            Timer::T305 => {
                let cause = c.cause;
                self.send_release(call, Some(cause), now);
            }
            Timer::T308 if first => {
                c.timer = Some((Timer::T308, now + self.timers.t308));
                c.expiries = 1;
                let cause = c.release_cause;
                let mut msg = self.call_message(call, MessageType::Release);
                msg.cause = cause.map(|c| self.cause_ie(c));
                self.send(&msg);
            }
            // Q.931 would take the B channel out of service until a RESTART; with nothing to
            // restart it here, it is simply freed.
            Timer::T308 => self.finish(call),
            Timer::T310 | Timer::T313 => {
                let cause = match (self.side, timer) {
                    (Side::Network, Timer::T310) => Cause::NO_USER_RESPONDING,
                    _ => Cause::RECOVERY_ON_TIMER_EXPIRY,
                };
                self.report(call, cause);
                self.send_disconnect(call, Cause::RECOVERY_ON_TIMER_EXPIRY, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isdn::q931::ie::Layer1Protocol;

    /// A user and a network entity wired back to back.
    struct Pair {
        user: CallControl,
        network: CallControl,
        now: Instant,
    }

    impl Pair {
        fn new(kind: InterfaceKind) -> Pair {
            let now = Instant::now();
            let mut user =
                CallControl::new(Side::User, kind, HuntOrder::Highest, CallTimers::default());
            let mut network = CallControl::new(
                Side::Network,
                kind,
                HuntOrder::Lowest,
                CallTimers::default(),
            );
            user.link_established(now);
            network.link_established(now);
            Pair { user, network, now }
        }

        /// Delivers messages both ways until both are quiet.
        fn run(&mut self) {
            loop {
                let mut any = false;
                while let Some(m) = self.user.poll_transmit() {
                    any = true;
                    self.network.receive(&m, self.now);
                }
                while let Some(m) = self.network.poll_transmit() {
                    any = true;
                    self.user.receive(&m, self.now);
                }
                if !any {
                    return;
                }
            }
        }

        /// Drops whatever is in flight.
        fn lose(&mut self) {
            while self.user.poll_transmit().is_some() {}
            while self.network.poll_transmit().is_some() {}
        }

        fn advance(&mut self, by: Duration) {
            self.now += by;
            self.user.handle_timeout(self.now);
            self.network.handle_timeout(self.now);
        }

        fn place(&mut self, called: &str) -> CallId {
            self.user
                .setup(
                    SetupRequest {
                        calling: Some(PartyNumber::new("301")),
                        called: PartyNumber::new(called),
                        channel: None,
                        exclusive: false,
                        display: None,
                    },
                    self.now,
                )
                .unwrap()
        }
    }

    fn drain(c: &mut CallControl) -> Vec<CallEvent> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    fn incoming(events: &[CallEvent]) -> CallId {
        events
            .iter()
            .find_map(|e| match e {
                CallEvent::Incoming { call, .. } => Some(*call),
                _ => None,
            })
            .expect("an incoming call")
    }

    fn decode_all(c: &mut CallControl) -> Vec<Message> {
        std::iter::from_fn(|| c.poll_transmit())
            .map(|b| Message::decode(&b).unwrap())
            .collect()
    }

    #[test]
    fn outgoing_call_up_and_cleared_by_user() {
        let mut p = Pair::new(InterfaceKind::E1);
        let call = p.place("100");
        assert_eq!(p.user.channel(call), Some(31));
        p.run();
        let ev = drain(&mut p.network);
        let net = incoming(&ev);
        assert_eq!(p.network.state(net), Some(CallState::CallInitiated));
        p.network.proceeding(net, p.now);
        p.network.alerting(net, false, p.now);
        p.run();
        assert_eq!(
            drain(&mut p.user),
            vec![
                CallEvent::Proceeding { call },
                CallEvent::Alerting {
                    call,
                    inband: false
                }
            ]
        );
        assert_eq!(p.user.state(call), Some(CallState::CallDelivered));
        p.network.connect(net, p.now);
        p.run();
        assert_eq!(drain(&mut p.user), vec![CallEvent::Connected { call }]);
        assert_eq!(p.user.state(call), Some(CallState::Active));
        assert_eq!(p.network.state(net), Some(CallState::Active));
        assert_eq!(p.network.channel(net), Some(31));
        p.user.disconnect(call, Cause::NORMAL, p.now);
        p.run();
        assert!(
            drain(&mut p.user).is_empty(),
            "no Released for our own clearing"
        );
        assert_eq!(
            drain(&mut p.network),
            vec![CallEvent::Released {
                call: net,
                cause: Cause::NORMAL
            }]
        );
        assert_eq!(p.user.calls().count(), 0);
        assert_eq!(p.network.calls().count(), 0);
        assert_eq!(p.user.channels().busy(), 0);
        assert_eq!(p.network.channels().busy(), 0);
    }

    #[test]
    fn incoming_call_answered_and_cleared_by_network() {
        let mut p = Pair::new(InterfaceKind::Bri);
        let net = p
            .network
            .setup(
                SetupRequest {
                    calling: Some(PartyNumber::new("555")),
                    called: PartyNumber::new("20"),
                    channel: None,
                    exclusive: true,
                    display: Some("Alice".into()),
                },
                p.now,
            )
            .unwrap();
        p.run();
        let ev = drain(&mut p.user);
        assert!(matches!(
            &ev[0],
            CallEvent::Incoming { channel: 1, display: Some(d), .. } if d == "Alice"
        ));
        let call = incoming(&ev);
        p.user.proceeding(call, p.now);
        p.user.alerting(call, false, p.now);
        p.user.connect(call, p.now);
        p.run();
        assert_eq!(drain(&mut p.user), vec![CallEvent::Connected { call }]);
        assert_eq!(
            drain(&mut p.network),
            vec![
                CallEvent::Proceeding { call: net },
                CallEvent::Alerting {
                    call: net,
                    inband: false
                },
                CallEvent::Connected { call: net }
            ]
        );
        p.network.disconnect(net, Cause::NORMAL, p.now);
        p.run();
        assert_eq!(
            drain(&mut p.user),
            vec![CallEvent::Released {
                call,
                cause: Cause::NORMAL
            }]
        );
        assert_eq!(p.user.calls().count() + p.network.calls().count(), 0);
    }

    #[test]
    fn t303_retransmits_setup_once_then_clears() {
        let mut p = Pair::new(InterfaceKind::E1);
        let call = p.place("100");
        p.lose();
        p.advance(Duration::from_secs(4));
        let again = decode_all(&mut p.user);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].kind, MessageType::Setup);
        p.advance(Duration::from_secs(4));
        assert_eq!(
            drain(&mut p.user),
            vec![CallEvent::Released {
                call,
                cause: Cause::RECOVERY_ON_TIMER_EXPIRY
            }]
        );
        assert_eq!(p.user.channels().busy(), 0);
    }

    #[test]
    fn t310_and_t305_and_t308() {
        let mut p = Pair::new(InterfaceKind::E1);
        let call = p.place("100");
        p.run();
        let net = incoming(&drain(&mut p.network));
        p.network.proceeding(net, p.now);
        p.run();
        drain(&mut p.user);
        p.advance(Duration::from_secs(30));
        assert_eq!(
            drain(&mut p.user),
            vec![CallEvent::Released {
                call,
                cause: Cause::RECOVERY_ON_TIMER_EXPIRY
            }]
        );
        // The DISCONNECT is lost; T305 sends RELEASE, which is lost twice; T308 gives up.
        p.lose();
        assert_eq!(p.user.state(call), Some(CallState::DisconnectRequest));
        p.advance(Duration::from_secs(30));
        let first = decode_all(&mut p.user);
        assert_eq!(first[0].kind, MessageType::Release);
        assert!(first[0].cause.is_some());
        p.advance(Duration::from_secs(4));
        let again = decode_all(&mut p.user);
        assert_eq!(again[0].kind, MessageType::Release);
        assert_eq!(
            again[0].cause.as_ref().map(|c| c.value),
            first[0].cause.as_ref().map(|c| c.value),
            "the repeated RELEASE keeps its cause"
        );
        p.advance(Duration::from_secs(4));
        assert_eq!(p.user.state(call), None);
    }

    /// A PROGRESS before any answer does not stop T303 (§5.1.1), and T303 still has the SETUP
    /// to send again and then clears the call: it never hangs in U1.
    #[test]
    fn t303_after_an_early_progress_still_retransmits_and_clears() {
        let mut p = Pair::new(InterfaceKind::E1);
        let call = p.place("100");
        p.run();
        let net = incoming(&drain(&mut p.network));
        p.network.progress(net, p.now);
        p.run();
        drain(&mut p.user);
        p.advance(Duration::from_secs(4));
        let again = decode_all(&mut p.user);
        assert_eq!(again.len(), 1, "{again:?}");
        assert_eq!(again[0].kind, MessageType::Setup);
        p.advance(Duration::from_secs(4));
        assert!(drain(&mut p.user).contains(&CallEvent::Released {
            call,
            cause: Cause::RECOVERY_ON_TIMER_EXPIRY
        }));
        assert_eq!(p.user.state(call), None);
    }

    #[test]
    fn t313_clears_an_unacknowledged_answer() {
        let mut p = Pair::new(InterfaceKind::E1);
        p.network
            .setup(
                SetupRequest {
                    calling: None,
                    called: PartyNumber::new("20"),
                    channel: None,
                    exclusive: true,
                    display: None,
                },
                p.now,
            )
            .unwrap();
        p.run();
        let call = incoming(&drain(&mut p.user));
        p.user.connect(call, p.now);
        p.lose();
        p.advance(Duration::from_secs(4));
        assert_eq!(
            drain(&mut p.user),
            vec![CallEvent::Released {
                call,
                cause: Cause::RECOVERY_ON_TIMER_EXPIRY
            }]
        );
        assert_eq!(decode_all(&mut p.user)[0].kind, MessageType::Disconnect);
    }

    #[test]
    fn setup_without_bearer_capability_is_refused_with_96() {
        let mut p = Pair::new(InterfaceKind::E1);
        let mut setup = Message::new(
            MessageType::Setup,
            CallReference {
                len: 2,
                value: 9,
                flag: false,
            },
        );
        setup.channel = Some(ChannelId::channel(true, true, 3));
        p.user.receive(&setup.encode(), p.now);
        let out = decode_all(&mut p.user);
        assert_eq!(out[0].kind, MessageType::ReleaseComplete);
        assert!(out[0].call_ref.flag);
        let cause = out[0].cause.clone().unwrap();
        assert_eq!(
            (cause.value, cause.diagnostics),
            (96, vec![id::BEARER_CAPABILITY])
        );
        assert!(drain(&mut p.user).is_empty());
        // And one whose bearer capability is unreadable gets 100.
        setup.bearer = Some(BearerCapability::speech(Layer1Protocol::ALaw));
        let mut bytes = setup.encode();
        bytes[7] = 0xE0; // coding standard 11 (national)
        p.user.receive(&bytes, p.now);
        assert_eq!(
            decode_all(&mut p.user)[0].cause.as_ref().unwrap().value,
            100
        );
    }

    #[test]
    fn wrong_state_unknown_type_and_unknown_call_reference() {
        let mut p = Pair::new(InterfaceKind::E1);
        let call = p.place("100");
        p.run();
        let net = incoming(&drain(&mut p.network));
        // CONNECT ACKNOWLEDGE makes no sense to a network in N1.
        let ack = Message::new(
            MessageType::ConnectAcknowledge,
            CallReference {
                len: 2,
                value: 1,
                flag: false,
            },
        );
        p.network.receive(&ack.encode(), p.now);
        let out = decode_all(&mut p.network);
        assert_eq!(out[0].kind, MessageType::Status);
        assert_eq!(out[0].cause.as_ref().unwrap().value, 101);
        assert_eq!(out[0].call_state, Some(1));
        // An unknown message type draws STATUS 97.
        p.network.receive(&[0x08, 0x02, 0x00, 0x01, 0x60], p.now);
        assert_eq!(
            decode_all(&mut p.network)[0].cause.as_ref().unwrap().value,
            97
        );
        // A CONNECT for a call that does not exist: RELEASE COMPLETE 81.
        let stray = Message::new(
            MessageType::Connect,
            CallReference {
                len: 2,
                value: 77,
                flag: true,
            },
        );
        p.user.receive(&stray.encode(), p.now);
        let out = decode_all(&mut p.user);
        assert_eq!(out[0].kind, MessageType::ReleaseComplete);
        assert_eq!(out[0].cause.as_ref().unwrap().value, 81);
        assert_eq!(out[0].call_ref.value, 77);
        assert!(!out[0].call_ref.flag);
        // A RELEASE COMPLETE for an unknown call is ignored; STATUS ENQUIRY gets state 0.
        let mut enquiry = stray.clone();
        enquiry.kind = MessageType::StatusEnquiry;
        p.user.receive(&enquiry.encode(), p.now);
        let out = decode_all(&mut p.user);
        assert_eq!(
            (out[0].kind, out[0].call_state),
            (MessageType::Status, Some(0))
        );
        let _ = (call, net);
    }

    #[test]
    fn status_enquiry_is_answered_and_compatible_status_changes_nothing() {
        let mut p = Pair::new(InterfaceKind::E1);
        let call = p.place("100");
        p.run();
        let net = incoming(&drain(&mut p.network));
        p.network.connect(net, p.now);
        p.run();
        drain(&mut p.user);
        p.user.status_enquiry(call, p.now);
        p.run();
        assert!(drain(&mut p.user).is_empty());
        assert_eq!(p.user.state(call), Some(CallState::Active));
        p.advance(Duration::from_secs(10));
        assert_eq!(
            p.user.state(call),
            Some(CallState::Active),
            "T322 was stopped"
        );
    }

    #[test]
    fn status_with_incompatible_state_clears_the_call() {
        let mut p = Pair::new(InterfaceKind::E1);
        let call = p.place("100");
        p.run();
        let net = incoming(&drain(&mut p.network));
        p.network.connect(net, p.now);
        p.run();
        drain(&mut p.user);
        // The network claims the call is one it offered and is ringing (N7).
        let mut status = Message::new(
            MessageType::Status,
            CallReference {
                len: 2,
                value: 1,
                flag: true,
            },
        );
        status.cause = Some(CauseIe::new(2, 30));
        status.call_state = Some(7);
        p.user.receive(&status.encode(), p.now);
        assert_eq!(
            drain(&mut p.user),
            vec![CallEvent::Released {
                call,
                cause: Cause::WRONG_STATE
            }]
        );
        p.run();
        assert_eq!(p.user.calls().count() + p.network.calls().count(), 0);
        // A STATUS saying null just frees the call.
        let call = p.place("100");
        p.run();
        drain(&mut p.network);
        status.call_ref.value = 2;
        status.call_state = Some(0);
        p.user.receive(&status.encode(), p.now);
        assert_eq!(p.user.state(call), None);
    }

    #[test]
    fn unanswered_status_enquiry_clears_with_41() {
        let mut p = Pair::new(InterfaceKind::E1);
        let call = p.place("100");
        p.run();
        let net = incoming(&drain(&mut p.network));
        p.network.connect(net, p.now);
        p.run();
        drain(&mut p.user);
        p.user.status_enquiry(call, p.now);
        p.lose();
        p.advance(Duration::from_secs(4));
        p.lose();
        p.advance(Duration::from_secs(4));
        assert_eq!(
            drain(&mut p.user),
            vec![CallEvent::Released {
                call,
                cause: Cause::TEMPORARY_FAILURE
            }]
        );
    }

    #[test]
    fn glare_network_wins_and_preferred_call_moves() {
        let now = Instant::now();
        let mut user = CallControl::new(
            Side::User,
            InterfaceKind::E1,
            HuntOrder::Lowest,
            CallTimers::default(),
        );
        let mut network = CallControl::new(
            Side::Network,
            InterfaceKind::E1,
            HuntOrder::Lowest,
            CallTimers::default(),
        );
        user.link_established(now);
        network.link_established(now);
        let ours = user
            .setup(
                SetupRequest {
                    calling: None,
                    called: PartyNumber::new("100"),
                    channel: None,
                    exclusive: false,
                    display: None,
                },
                now,
            )
            .unwrap();
        let theirs = network
            .setup(
                SetupRequest {
                    calling: None,
                    called: PartyNumber::new("20"),
                    channel: None,
                    exclusive: true,
                    display: None,
                },
                now,
            )
            .unwrap();
        // Both SETUPs name channel 1 and cross on the line.
        let to_network = user.poll_transmit().unwrap();
        let to_user = network.poll_transmit().unwrap();
        user.receive(&to_user, now);
        network.receive(&to_network, now);
        let user_ev = drain(&mut user);
        let incoming_call = incoming(&user_ev);
        assert_eq!(user.channel(incoming_call), Some(1));
        assert_eq!(user.channel(ours), None, "our proposal was taken");
        let net_call = incoming(&drain(&mut network));
        assert_eq!(network.channel(net_call), Some(2));
        network.proceeding(net_call, now);
        user.receive(&network.poll_transmit().unwrap(), now);
        assert_eq!(user.channel(ours), Some(2));
        assert_eq!(user.state(ours), Some(CallState::OutgoingCallProceeding));
        let _ = theirs;
    }

    #[test]
    fn glare_with_exclusive_channel_clears_our_call_with_44() {
        let now = Instant::now();
        let mut user = CallControl::new(
            Side::User,
            InterfaceKind::Bri,
            HuntOrder::Lowest,
            CallTimers::default(),
        );
        let mut network = CallControl::new(
            Side::Network,
            InterfaceKind::Bri,
            HuntOrder::Lowest,
            CallTimers::default(),
        );
        user.link_established(now);
        network.link_established(now);
        let req = |called: &str, exclusive| SetupRequest {
            calling: None,
            called: PartyNumber::new(called),
            channel: None,
            exclusive,
            display: None,
        };
        let ours = user.setup(req("100", true), now).unwrap();
        network.setup(req("20", true), now).unwrap();
        let to_network = user.poll_transmit().unwrap();
        let to_user = network.poll_transmit().unwrap();
        user.receive(&to_user, now);
        network.receive(&to_network, now);
        user.receive(&network.poll_transmit().unwrap(), now);
        assert!(drain(&mut user).contains(&CallEvent::Released {
            call: ours,
            cause: Cause::REQUESTED_CHANNEL_UNAVAILABLE
        }));
    }

    #[test]
    fn all_channels_busy_gives_34() {
        let mut p = Pair::new(InterfaceKind::Bri);
        p.place("1");
        p.place("2");
        assert_eq!(
            p.user.setup(
                SetupRequest {
                    calling: None,
                    called: PartyNumber::new("3"),
                    channel: None,
                    exclusive: false,
                    display: None
                },
                p.now
            ),
            Err(Cause::NO_CIRCUIT)
        );
        p.run();
        // The network offering a third call on a full interface is refused with 34 as well.
        p.network.link_established(p.now);
        let mut setup = Message::new(
            MessageType::Setup,
            CallReference {
                len: 1,
                value: 5,
                flag: false,
            },
        );
        setup.bearer = Some(BearerCapability::speech(Layer1Protocol::ALaw));
        setup.channel = Some(ChannelId {
            primary: false,
            exclusive: false,
            d_channel: false,
            selection: ChannelSelection::Any,
        });
        p.user.receive(&setup.encode(), p.now);
        assert_eq!(decode_all(&mut p.user)[0].cause.as_ref().unwrap().value, 34);
    }

    #[test]
    fn restart_clears_calls_on_both_sides() {
        let mut p = Pair::new(InterfaceKind::E1);
        let call = p.place("100");
        p.run();
        let net = incoming(&drain(&mut p.network));
        p.network.connect(net, p.now);
        p.run();
        drain(&mut p.user);
        p.user.restart(None, p.now);
        assert_eq!(
            drain(&mut p.user),
            vec![CallEvent::Released {
                call,
                cause: Cause::TEMPORARY_FAILURE
            }]
        );
        assert_eq!(
            p.user.channels().busy(),
            30,
            "restarting channels are unavailable"
        );
        p.run();
        assert_eq!(
            drain(&mut p.network),
            vec![
                CallEvent::Released {
                    call: net,
                    cause: Cause::TEMPORARY_FAILURE
                },
                CallEvent::Restarted {
                    channels: InterfaceKind::E1.b_channels()
                }
            ]
        );
        assert!(matches!(
            drain(&mut p.user)[..],
            [CallEvent::RestartAcknowledged { .. }]
        ));
        assert_eq!(p.user.channels().busy(), 0);
    }

    #[test]
    fn unacknowledged_restart_is_repeated_then_given_up() {
        let mut p = Pair::new(InterfaceKind::E1);
        p.user.restart(Some(5), p.now);
        let sent = decode_all(&mut p.user);
        assert_eq!(sent[0].restart, Some(RestartClass::Channels));
        p.advance(Duration::from_secs(120));
        assert_eq!(decode_all(&mut p.user)[0].kind, MessageType::Restart);
        p.advance(Duration::from_secs(120));
        assert_eq!(drain(&mut p.user), vec![CallEvent::RestartFailed]);
        assert!(p.user.channels().is_idle(5));
    }

    #[test]
    fn link_failure_clears_calls_not_active_and_t309_the_rest() {
        let mut p = Pair::new(InterfaceKind::E1);
        let active = p.place("100");
        p.run();
        let net = incoming(&drain(&mut p.network));
        p.network.connect(net, p.now);
        let pending = p.place("101");
        p.run();
        drain(&mut p.user);
        p.user.link_released(Cause::NETWORK_OUT_OF_ORDER, p.now);
        assert_eq!(
            drain(&mut p.user),
            vec![CallEvent::Released {
                call: pending,
                cause: Cause::NETWORK_OUT_OF_ORDER
            }]
        );
        p.advance(Duration::from_secs(60));
        // The link comes back in time: STATUS resynchronises and the call lives on.
        p.user.link_established(p.now);
        let out = decode_all(&mut p.user);
        assert_eq!(
            (out[0].kind, out[0].call_state),
            (MessageType::Status, Some(10))
        );
        p.advance(Duration::from_secs(60));
        assert_eq!(p.user.state(active), Some(CallState::Active));
        // The next time it does not.
        p.user.link_released(Cause::TEMPORARY_FAILURE, p.now);
        p.advance(Duration::from_secs(90));
        assert_eq!(
            drain(&mut p.user),
            vec![CallEvent::Released {
                call: active,
                cause: Cause::TEMPORARY_FAILURE
            }]
        );
    }

    #[test]
    fn disconnect_without_cause_is_answered_with_release_96() {
        let mut p = Pair::new(InterfaceKind::E1);
        let call = p.place("100");
        p.run();
        drain(&mut p.network);
        let disc = Message::new(
            MessageType::Disconnect,
            CallReference {
                len: 2,
                value: 1,
                flag: true,
            },
        );
        p.user.receive(&disc.encode(), p.now);
        let out = decode_all(&mut p.user);
        assert_eq!(out[0].kind, MessageType::Release);
        assert_eq!(out[0].cause.as_ref().unwrap().value, 96);
        assert_eq!(p.user.state(call), Some(CallState::ReleaseRequest));
    }
}
