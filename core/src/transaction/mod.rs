//! RFC 3261 section 17 transactions, sans-IO.
//!
//! [`TransactionLayer`] holds every client and server transaction of one worker. The I/O layer
//! feeds it received messages, the TU's requests and responses, transport failures and the
//! passing of time (every entry point takes `now`), and drains [`Action`]s: what to send where,
//! and what the TU must learn. Nothing here reads a clock or touches a socket, so tests run in
//! virtual time.
//!
//! The four state machines are in `client` (INVITE and non-INVITE) and `server`, both with the
//! Accepted state of RFC 6026 so that 2xx responses to INVITE and their ACKs are the dialog's
//! business. Matching is in `key`, timer values and the timer queue in `timers`.
//!
//! The layer is generic over `A`, the I/O layer's notion of where a message goes (a socket
//! address, a connection handle); it is stored with each transaction and handed back in
//! [`Action::Send`].

mod client;
mod key;
mod server;
mod timers;

pub use client::ClientState;
pub use server::ServerState;
pub use timers::TimerConfig;

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sip::{Message, Method, ParseError};
use client::ClientTx;
use key::{client_bucket, ClientKey, Index, RequestKey, CANCEL, INVITE};
use server::ServerTx;
use timers::{Slots, Timer, TimerQueue};

/// A client transaction: a request this side sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTxId(u64);

/// A server transaction: a request this side received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTxId(u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxId {
    Client(ClientTxId),
    Server(ServerTxId),
}

impl From<ClientTxId> for TxId {
    fn from(id: ClientTxId) -> Self {
        TxId::Client(id)
    }
}

impl From<ServerTxId> for TxId {
    fn from(id: ServerTxId) -> Self {
        TxId::Server(id)
    }
}

/// What the I/O layer and the TU must do, drained with [`TransactionLayer::poll_action`].
/// `Terminated` is always the last action of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<A> {
    /// Send `bytes` to `to`. The bytes are shared with the transaction, which keeps them for
    /// retransmission. If sending fails, report it with [`TransactionLayer::transport_error`].
    Send { id: TxId, to: A, bytes: Arc<[u8]> },
    /// No final response will come (timer B, F, or the 64*T1 after a CANCEL or Timer C) or
    /// the ACK never came (timer H): the TU acts as on a 408 (RFC 3261 sections 8.1.3.1 and
    /// 17.2.1).
    Timeout { id: TxId },
    /// An INVITE got no final response for [`TimerConfig::c`] after its last provisional one:
    /// the TU should CANCEL it. Without a final response it times out 64*T1 later.
    ProvisionalTimeout { id: ClientTxId },
    /// Sending failed; the transaction is terminated (sections 17.1.4 and 17.2.4).
    TransportError { id: TxId },
    /// The transaction is gone; its id is never reported again.
    Terminated { id: TxId },
}

/// What became of a received request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A new server transaction: the TU handles the request and answers with
    /// [`TransactionLayer::respond`]. For a CANCEL, [`TransactionLayer::invite_for_cancel`]
    /// finds what it cancels.
    New(ServerTxId),
    /// A retransmission or the ACK of a non-2xx response, handled by its transaction (which
    /// may have queued re-sends); the TU does not see it.
    Absorbed,
    /// An ACK that is no transaction's business: the ACK of a 2xx, or one that matches
    /// nothing. It belongs to the dialog layer (RFC 3261 section 17.2.3, RFC 6026).
    Ack,
    /// The request lacks what identifies a transaction; it should have failed validation.
    Invalid(TxError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// A request handed to [`TransactionLayer::send_request`] does not parse.
    Unparseable(ParseError),
    NotARequest,
    MissingVia,
    MissingCSeq,
    MissingCallId,
    MissingFrom,
    MissingTo,
    /// Requests this side sends must carry an RFC 3261 branch: it alone identifies the client
    /// transaction (section 8.1.1.7).
    NotRfc3261Branch,
    /// An ACK is no transaction: the ACK of a non-2xx is sent by the INVITE transaction, the
    /// ACK of a 2xx directly by the dialog (section 17.1.1.3).
    AckIsNotATransaction,
    /// A client transaction with this branch and method is live.
    DuplicateTransaction,
    /// The transaction is terminated or never existed.
    UnknownTransaction,
    /// The response does not fit the state: a provisional after a final, a second non-2xx
    /// final, a non-2xx after a 2xx.
    InvalidState,
    /// Status codes are 100 to 699.
    BadStatus,
}

impl fmt::Display for TxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxError::Unparseable(e) => write!(f, "request does not parse: {e}"),
            TxError::NotARequest => f.write_str("not a request"),
            TxError::MissingVia => f.write_str("missing or malformed Via"),
            TxError::MissingCSeq => f.write_str("missing or malformed CSeq"),
            TxError::MissingCallId => f.write_str("missing Call-ID"),
            TxError::MissingFrom => f.write_str("missing or malformed From"),
            TxError::MissingTo => f.write_str("missing or malformed To"),
            TxError::NotRfc3261Branch => f.write_str("top Via lacks an RFC 3261 branch"),
            TxError::AckIsNotATransaction => f.write_str("ACK does not start a transaction"),
            TxError::DuplicateTransaction => f.write_str("client transaction already exists"),
            TxError::UnknownTransaction => f.write_str("no such transaction"),
            TxError::InvalidState => f.write_str("response not allowed in this state"),
            TxError::BadStatus => f.write_str("status code out of range"),
        }
    }
}

impl std::error::Error for TxError {}

/// What a state machine may touch while handling one event.
pub(crate) struct Ctx<'a, A> {
    now: Instant,
    cfg: &'a TimerConfig,
    timers: &'a mut TimerQueue,
    actions: &'a mut VecDeque<Action<A>>,
    id: TxId,
}

impl<A: Clone> Ctx<'_, A> {
    fn send(&mut self, to: &A, bytes: &Arc<[u8]>) {
        self.actions.push_back(Action::Send {
            id: self.id,
            to: to.clone(),
            bytes: Arc::clone(bytes),
        });
    }

    fn arm(&mut self, slots: &mut Slots, timer: Timer, after: Duration) {
        self.timers.arm(slots, self.id, timer, self.now + after);
    }

    fn report(&mut self, action: Action<A>) {
        self.actions.push_back(action);
    }
}

/// Every transaction of one worker, with their timers and pending actions.
#[derive(Debug)]
pub struct TransactionLayer<A> {
    cfg: TimerConfig,
    clients: HashMap<ClientTxId, ClientTx<A>>,
    servers: HashMap<ServerTxId, ServerTx<A>>,
    client_index: Index,
    server_index: Index,
    timers: TimerQueue,
    actions: VecDeque<Action<A>>,
    /// Seeds the bucket hashes, so a peer cannot choose branches that all collide.
    hasher: RandomState,
    next_id: u64,
}

impl<A: Clone> TransactionLayer<A> {
    pub fn new(cfg: TimerConfig) -> Self {
        TransactionLayer {
            cfg: cfg.sanitized(),
            clients: HashMap::new(),
            servers: HashMap::new(),
            client_index: Index::default(),
            server_index: Index::default(),
            timers: TimerQueue::default(),
            actions: VecDeque::new(),
            hasher: RandomState::new(),
            next_id: 0,
        }
    }

    pub fn config(&self) -> &TimerConfig {
        &self.cfg
    }

    /// A received request (already validated). Matches it to a server transaction (17.2.3):
    /// a retransmission is absorbed, re-sending the last response if there is one; an ACK
    /// completes the INVITE transaction of a non-2xx; anything else starts a transaction that
    /// will answer to `from`.
    pub fn on_request(
        &mut self,
        msg: &Message<'_>,
        from: A,
        reliable: bool,
        now: Instant,
    ) -> Incoming {
        let key = match RequestKey::of(msg) {
            Ok(k) => k,
            Err(e) => return Incoming::Invalid(e),
        };
        let tx_method = key.transaction_method();
        let bucket = key.bucket(&self.hasher, tx_method);
        let is_ack = key.method() == key::ACK;
        if let Some(id) = self.find_server(&key, tx_method, bucket) {
            let to_tu = self.with_server(id, now, |tx, ctx| {
                if is_ack {
                    tx.on_ack(ctx)
                } else {
                    tx.on_retransmission(from, ctx);
                    false
                }
            });
            self.compact_timers();
            return if to_tu == Some(true) {
                Incoming::Ack
            } else {
                Incoming::Absorbed
            };
        }
        if is_ack {
            return Incoming::Ack;
        }
        let id = ServerTxId(self.fresh_id());
        let tx = ServerTx::new(key.to_owned(), bucket, from, reliable, self.cfg.t1);
        self.server_index.insert(bucket, id.0);
        self.servers.insert(id, tx);
        Incoming::New(id)
    }

    /// The INVITE server transaction a received CANCEL cancels (RFC 3261 section 9.2): same
    /// branch and sent-by, or for RFC 2543 peers the same identifying fields as the INVITE.
    /// It may have sent its final response already, in which case the CANCEL has no effect.
    pub fn invite_for_cancel(&self, cancel: &Message<'_>) -> Option<ServerTxId> {
        let key = RequestKey::of(cancel).ok()?;
        if key.method() != CANCEL {
            return None;
        }
        self.find_server(&key, INVITE, key.bucket(&self.hasher, INVITE))
    }

    fn find_server(
        &self,
        key: &RequestKey<'_>,
        tx_method: &str,
        bucket: u64,
    ) -> Option<ServerTxId> {
        self.server_index
            .get(bucket)
            .iter()
            .map(|&raw| ServerTxId(raw))
            .find(|id| {
                self.servers.get(id).is_some_and(|tx| {
                    tx.key
                        .matches(key, tx_method, tx.response_to_tag.as_deref())
                })
            })
    }

    /// The TU's response on a server transaction, built by the TU; the transaction sends it
    /// and keeps it for retransmissions. Fails if the transaction is gone (it may have timed
    /// out or failed) or the response does not fit its state.
    pub fn respond(
        &mut self,
        id: ServerTxId,
        status: u16,
        bytes: Vec<u8>,
        now: Instant,
    ) -> Result<(), TxError> {
        let tx = self.servers.get(&id).ok_or(TxError::UnknownTransaction)?;
        // Only an RFC 2543 ACK needs the To tag of the response to find its transaction.
        let to_tag = if status >= 200 && tx.key.is_invite() && tx.key.is_rfc2543() {
            Message::parse(&bytes)
                .ok()
                .and_then(|m| m.to())
                .and_then(|to| to.tag())
                .map(Box::from)
        } else {
            None
        };
        let result = self
            .with_server(id, now, |tx, ctx| {
                tx.respond(status, Arc::from(bytes), to_tag, ctx)
            })
            .unwrap_or(Err(TxError::UnknownTransaction));
        self.compact_timers();
        result
    }

    /// Starts a client transaction for a request the TU built, whose top Via carries a fresh
    /// RFC 3261 branch, and sends it to `to`. A CANCEL also bounds the wait of the INVITE it
    /// cancels (section 9.1).
    pub fn send_request(
        &mut self,
        bytes: Vec<u8>,
        to: A,
        reliable: bool,
        now: Instant,
    ) -> Result<ClientTxId, TxError> {
        let (key, bucket, cancelled) = {
            let msg = Message::parse(&bytes).map_err(TxError::Unparseable)?;
            let method = msg.method().ok_or(TxError::NotARequest)?;
            if method == Method::Ack {
                return Err(TxError::AckIsNotATransaction);
            }
            let via = msg.top_via().ok_or(TxError::MissingVia)?;
            let branch = match via.branch() {
                Some(b) if via.has_rfc3261_branch() => b,
                _ => return Err(TxError::NotRfc3261Branch),
            };
            let bucket = client_bucket(&self.hasher, branch, method.as_str());
            if self.find_client(bucket, branch, method.as_str()).is_some() {
                return Err(TxError::DuplicateTransaction);
            }
            let cancelled = if method == Method::Cancel {
                self.find_client(client_bucket(&self.hasher, branch, INVITE), branch, INVITE)
            } else {
                None
            };
            (ClientKey::new(branch, method.as_str()), bucket, cancelled)
        };
        let id = ClientTxId(self.fresh_id());
        let Self {
            clients,
            timers,
            actions,
            cfg,
            ..
        } = self;
        let mut ctx = Ctx {
            now,
            cfg,
            timers,
            actions,
            id: id.into(),
        };
        let tx = ClientTx::start(key, bucket, Arc::from(bytes), to, reliable, &mut ctx);
        clients.insert(id, tx);
        self.client_index.insert(bucket, id.0);
        if let Some(invite) = cancelled {
            self.with_client(invite, now, |tx, ctx| tx.on_cancel_sent(ctx));
        }
        self.compact_timers();
        Ok(id)
    }

    fn find_client(&self, bucket: u64, branch: &str, method: &str) -> Option<ClientTxId> {
        self.client_index
            .get(bucket)
            .iter()
            .map(|&raw| ClientTxId(raw))
            .find(|id| {
                self.clients
                    .get(id)
                    .is_some_and(|tx| tx.key.matches(branch, method))
            })
    }

    /// A received response (already validated), matched by the branch of its top Via and its
    /// CSeq method (17.1.3). Returns the transaction when the TU must see the response: every
    /// provisional and the final one, and every 2xx to an INVITE (the TU acknowledges each).
    /// `None` when a transaction absorbed it, or when it matches nothing and is dropped.
    pub fn on_response(&mut self, msg: &Message<'_>, now: Instant) -> Option<ClientTxId> {
        let status = msg.status()?;
        let via = msg.top_via()?;
        let branch = via.branch()?;
        let method = msg.cseq()?.method;
        let bucket = client_bucket(&self.hasher, branch, method.as_str());
        let id = self.find_client(bucket, branch, method.as_str())?;
        let deliver = self
            .with_client(id, now, |tx, ctx| tx.on_response(msg, status, ctx))
            .unwrap_or(false);
        self.compact_timers();
        deliver.then_some(id)
    }

    /// Sending a message of transaction `id` failed: the transaction terminates and the TU is
    /// told with [`Action::TransportError`].
    pub fn transport_error(&mut self, id: impl Into<TxId>, now: Instant) -> Result<(), TxError> {
        let done = match id.into() {
            TxId::Client(id) => self.with_client(id, now, |tx, ctx| tx.on_transport_error(ctx)),
            TxId::Server(id) => self.with_server(id, now, |tx, ctx| tx.on_transport_error(ctx)),
        };
        done.ok_or(TxError::UnknownTransaction)
    }

    /// When [`on_timeout`](Self::on_timeout) should next be called. It may be earlier than
    /// needed, when the timer due then was cancelled; calling early is harmless.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Fires every timer due at `now`, in deadline order. A timer fires as of its deadline,
    /// so the timers it arms count from there: how often this is called, and how late, does
    /// not change what happens (only when the I/O layer gets to do it).
    pub fn on_timeout(&mut self, now: Instant) {
        while let Some(e) = self.timers.pop_due(now) {
            match e.id {
                TxId::Client(id) => {
                    let current = self
                        .clients
                        .get_mut(&id)
                        .is_some_and(|tx| tx.slots.take(e.timer, e.seq));
                    if current {
                        self.with_client(id, e.at, |tx, ctx| tx.on_timer(e.timer, ctx));
                    }
                }
                TxId::Server(id) => {
                    let current = self
                        .servers
                        .get_mut(&id)
                        .is_some_and(|tx| tx.slots.take(e.timer, e.seq));
                    if current {
                        self.with_server(id, e.at, |tx, ctx| tx.on_timer(e.timer, ctx));
                    }
                }
            }
        }
        self.compact_timers();
    }

    /// The next thing to do, in the order it arose.
    pub fn poll_action(&mut self) -> Option<Action<A>> {
        self.actions.pop_front()
    }

    /// Live transactions.
    pub fn len(&self) -> usize {
        self.clients.len() + self.servers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state of a live client transaction.
    pub fn client_state(&self, id: ClientTxId) -> Option<ClientState> {
        self.clients.get(&id).map(|tx| tx.state)
    }

    /// The state of a live server transaction.
    pub fn server_state(&self, id: ServerTxId) -> Option<ServerState> {
        self.servers.get(&id).map(|tx| tx.state)
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Runs `f` on a live client transaction and removes it if that terminated it.
    fn with_client<R>(
        &mut self,
        id: ClientTxId,
        now: Instant,
        f: impl FnOnce(&mut ClientTx<A>, &mut Ctx<'_, A>) -> R,
    ) -> Option<R> {
        let Self {
            clients,
            timers,
            actions,
            cfg,
            ..
        } = self;
        let tx = clients.get_mut(&id)?;
        let mut ctx = Ctx {
            now,
            cfg,
            timers,
            actions,
            id: id.into(),
        };
        let r = f(tx, &mut ctx);
        if tx.state == ClientState::Terminated {
            let bucket = tx.bucket;
            self.clients.remove(&id);
            self.client_index.remove(bucket, id.0);
            self.terminated(id.into());
        }
        Some(r)
    }

    fn with_server<R>(
        &mut self,
        id: ServerTxId,
        now: Instant,
        f: impl FnOnce(&mut ServerTx<A>, &mut Ctx<'_, A>) -> R,
    ) -> Option<R> {
        let Self {
            servers,
            timers,
            actions,
            cfg,
            ..
        } = self;
        let tx = servers.get_mut(&id)?;
        let mut ctx = Ctx {
            now,
            cfg,
            timers,
            actions,
            id: id.into(),
        };
        let r = f(tx, &mut ctx);
        self.reap_server(id);
        Some(r)
    }

    fn reap_server(&mut self, id: ServerTxId) {
        if self
            .servers
            .get(&id)
            .is_some_and(|tx| tx.state == ServerState::Terminated)
        {
            if let Some(tx) = self.servers.remove(&id) {
                self.server_index.remove(tx.bucket, id.0);
            }
            self.terminated(id.into());
        }
    }

    fn terminated(&mut self, id: TxId) {
        self.actions.push_back(Action::Terminated { id });
        if self.is_empty() {
            // Whatever is left belongs to gone transactions.
            self.timers.clear();
        }
    }

    /// Cancelled timers stay in the heap until due; when they outnumber the live ones, they
    /// are swept so the heap stays proportional to the live transactions.
    fn compact_timers(&mut self) {
        // At most three live entries per transaction.
        if self.timers.len() <= 8 * self.len() + 1024 {
            return;
        }
        let (clients, servers) = (&self.clients, &self.servers);
        self.timers.retain(|e| match e.id {
            TxId::Client(id) => clients
                .get(&id)
                .is_some_and(|tx| tx.slots.is_current(e.timer, e.seq)),
            TxId::Server(id) => servers
                .get(&id)
                .is_some_and(|tx| tx.slots.is_current(e.timer, e.seq)),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{ReplyContext, ResponseBuilder};

    #[test]
    fn cancelled_timers_do_not_pile_up() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::<u8>::new(TimerConfig::default());
        let inv = b"INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKflood\r\n\
From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let id = l.send_request(inv.to_vec(), 1, false, t0).unwrap();
        let mut ringing = Vec::new();
        ResponseBuilder::new(
            &mut ringing,
            &Message::parse(inv).unwrap(),
            180,
            "Ringing",
            ReplyContext::default(),
        )
        .finish(None, b"");
        // Each provisional re-arms Timer C, leaving the previous entry cancelled in the heap.
        for _ in 0..50_000 {
            assert_eq!(
                l.on_response(&Message::parse(&ringing).unwrap(), t0),
                Some(id)
            );
        }
        assert!(
            l.timers.len() <= 8 * l.len() + 1024 + 1,
            "{}",
            l.timers.len()
        );
        assert_eq!(l.client_state(id), Some(ClientState::Proceeding));
    }
}
