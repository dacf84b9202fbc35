//! Client transactions: INVITE (RFC 3261 section 17.1.1, with the Accepted state of RFC 6026
//! section 8.4) and non-INVITE (section 17.1.2).

use std::sync::Arc;
use std::time::Duration;

use super::key::ClientKey;
use super::timers::{Slots, Timer};
use super::{Action, Ctx, TxId};
use crate::sip::builder::ack_for_non2xx;
use crate::sip::Message;

/// The states of Figures 5 and 6, with Accepted from RFC 6026. `Calling` is the INVITE's first
/// state and `Trying` the non-INVITE's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientState {
    Calling,
    Trying,
    Proceeding,
    Completed,
    /// An INVITE got a 2xx: further 2xx (retransmitted or forked) still go to the TU, which
    /// acknowledges them itself.
    Accepted,
    Terminated,
}

#[derive(Debug)]
pub(crate) struct ClientTx<A> {
    pub(crate) key: ClientKey,
    pub(crate) bucket: u64,
    pub(crate) slots: Slots,
    pub(crate) state: ClientState,
    request: Arc<[u8]>,
    /// The ACK for a non-2xx final response, sent again for each retransmission of it.
    ack: Option<Arc<[u8]>>,
    to: A,
    reliable: bool,
    /// Current interval of timer A or E.
    interval: Duration,
    /// The INVITE was cancelled or outlived Timer C: it only waits for a final response now,
    /// and no longer than [`Timer::GiveUp`].
    giving_up: bool,
}

impl<A: Clone> ClientTx<A> {
    /// Sends the request and arms the retransmission and timeout timers (17.1.1.2, 17.1.2.2).
    pub(crate) fn start(
        key: ClientKey,
        bucket: u64,
        request: Arc<[u8]>,
        to: A,
        reliable: bool,
        ctx: &mut Ctx<'_, A>,
    ) -> Self {
        let invite = key.is_invite();
        let mut tx = ClientTx {
            key,
            bucket,
            slots: Slots::default(),
            state: if invite {
                ClientState::Calling
            } else {
                ClientState::Trying
            },
            request,
            ack: None,
            to,
            reliable,
            interval: ctx.cfg.t1,
            giving_up: false,
        };
        ctx.send(&tx.to, &tx.request);
        let (retransmit, timeout) = if invite {
            (Timer::A, Timer::B)
        } else {
            (Timer::E, Timer::F)
        };
        // A reliable transport retransmits by itself (17.1.1.2).
        if !reliable {
            ctx.arm(&mut tx.slots, retransmit, tx.interval);
        }
        ctx.arm(&mut tx.slots, timeout, ctx.cfg.duration(timeout, reliable));
        tx
    }

    fn is_invite(&self) -> bool {
        self.key.is_invite()
    }

    /// A response matched this transaction; returns whether the TU must see it.
    pub(crate) fn on_response(
        &mut self,
        msg: &Message<'_>,
        status: u16,
        ctx: &mut Ctx<'_, A>,
    ) -> bool {
        if self.is_invite() {
            self.invite_response(msg, status, ctx)
        } else {
            self.non_invite_response(status, ctx)
        }
    }

    fn invite_response(&mut self, msg: &Message<'_>, status: u16, ctx: &mut Ctx<'_, A>) -> bool {
        use ClientState::*;
        match (self.state, status) {
            (Calling | Proceeding, 100..=199) => {
                if self.state == Calling {
                    // A provisional response proves the request arrived: no more
                    // retransmissions, and Timer B no longer applies.
                    self.slots.disarm(Timer::A);
                    self.slots.disarm(Timer::B);
                    self.state = Proceeding;
                }
                if !self.giving_up {
                    // Each provisional response shows the callee is still alive.
                    ctx.arm(&mut self.slots, Timer::C, ctx.cfg.c);
                }
                true
            }
            (Calling | Proceeding, 200..=299) => {
                self.slots.disarm_all();
                self.state = Accepted;
                ctx.arm(
                    &mut self.slots,
                    Timer::M,
                    ctx.cfg.duration(Timer::M, self.reliable),
                );
                true
            }
            (Calling | Proceeding, _) => {
                self.slots.disarm_all();
                self.state = Completed;
                self.ack = self.build_ack(msg);
                if let Some(ack) = &self.ack {
                    ctx.send(&self.to, ack);
                }
                self.linger(Timer::D, ctx);
                true
            }
            // Retransmitted or forked 2xx: the TU acknowledges each (RFC 6026 section 8.4).
            (Accepted, 200..=299) => true,
            // The ACK was lost: the server retransmits its final response (17.1.1.2).
            (Completed, 300..) => {
                if let Some(ack) = &self.ack {
                    ctx.send(&self.to, ack);
                }
                false
            }
            _ => false,
        }
    }

    fn non_invite_response(&mut self, status: u16, ctx: &mut Ctx<'_, A>) -> bool {
        use ClientState::*;
        match (self.state, status) {
            (Trying | Proceeding, 100..=199) => {
                self.state = Proceeding;
                true
            }
            (Trying | Proceeding, _) => {
                self.slots.disarm_all();
                self.state = Completed;
                self.linger(Timer::K, ctx);
                true
            }
            _ => false,
        }
    }

    /// Enters the wait that absorbs retransmissions, or ends at once on a reliable transport,
    /// where the timer is zero.
    fn linger(&mut self, timer: Timer, ctx: &mut Ctx<'_, A>) {
        let d = ctx.cfg.duration(timer, self.reliable);
        if d.is_zero() {
            self.state = ClientState::Terminated;
        } else {
            ctx.arm(&mut self.slots, timer, d);
        }
    }

    /// The ACK copies the INVITE, so it is rebuilt from the bytes sent (17.1.1.3).
    fn build_ack(&self, response: &Message<'_>) -> Option<Arc<[u8]>> {
        let invite = Message::parse(&self.request).ok()?;
        let mut buf = Vec::new();
        ack_for_non2xx(&mut buf, &invite, response).then(|| Arc::from(buf))
    }

    pub(crate) fn on_timer(&mut self, timer: Timer, ctx: &mut Ctx<'_, A>) {
        use ClientState::*;
        match (timer, self.state) {
            (Timer::A, Calling) | (Timer::E, Trying | Proceeding) => {
                ctx.send(&self.to, &self.request);
                self.interval = match (timer, self.state) {
                    // INVITE retransmissions keep doubling: Timer B ends them.
                    (Timer::A, _) => self.interval.saturating_mul(2),
                    // The request arrived; only the response may be lost (17.1.2.2).
                    (_, Proceeding) => ctx.cfg.t2,
                    _ => self.interval.saturating_mul(2).min(ctx.cfg.t2),
                };
                ctx.arm(&mut self.slots, timer, self.interval);
            }
            (Timer::B, Calling)
            | (Timer::F, Trying | Proceeding)
            | (Timer::GiveUp, Calling | Proceeding) => {
                ctx.report(Action::Timeout { id: ctx.id });
                self.state = Terminated;
            }
            (Timer::C, Proceeding) => {
                if let TxId::Client(id) = ctx.id {
                    ctx.report(Action::ProvisionalTimeout { id });
                }
                self.start_giving_up(ctx);
            }
            (Timer::D | Timer::K, Completed) | (Timer::M, Accepted) => self.state = Terminated,
            // Slots are disarmed on every state change, so other pairs do not come due.
            _ => {}
        }
    }

    /// The TU sent a CANCEL for this INVITE (RFC 3261 section 9.1).
    pub(crate) fn on_cancel_sent(&mut self, ctx: &mut Ctx<'_, A>) {
        if matches!(self.state, ClientState::Calling | ClientState::Proceeding) {
            self.start_giving_up(ctx);
        }
    }

    fn start_giving_up(&mut self, ctx: &mut Ctx<'_, A>) {
        if !self.giving_up {
            self.giving_up = true;
            let d = ctx.cfg.duration(Timer::GiveUp, self.reliable);
            ctx.arm(&mut self.slots, Timer::GiveUp, d);
        }
    }

    /// Sending failed (17.1.4): the transaction is over and the TU is told.
    pub(crate) fn on_transport_error(&mut self, ctx: &mut Ctx<'_, A>) {
        ctx.report(Action::TransportError { id: ctx.id });
        self.slots.disarm_all();
        self.state = ClientState::Terminated;
    }
}
