//! Server transactions: INVITE (RFC 3261 section 17.2.1, with the Accepted state of RFC 6026
//! section 8.7) and non-INVITE (section 17.2.2).

use std::sync::Arc;
use std::time::Duration;

use super::key::ServerKey;
use super::timers::{Slots, Timer};
use super::{Action, Ctx, TxError};

/// The states of Figures 7 and 8, with Accepted from RFC 6026. `Proceeding` is the INVITE's
/// first state and `Trying` the non-INVITE's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerState {
    Trying,
    Proceeding,
    Completed,
    /// The ACK for a non-2xx final response arrived.
    Confirmed,
    /// A 2xx was sent: the TU retransmits it until the dialog's ACK comes; the transaction
    /// only absorbs INVITE retransmissions.
    Accepted,
    Terminated,
}

#[derive(Debug)]
pub(crate) struct ServerTx<A> {
    pub(crate) key: ServerKey,
    pub(crate) bucket: u64,
    pub(crate) slots: Slots,
    pub(crate) state: ServerState,
    /// What a retransmitted request gets: the last provisional, then the final response.
    last_response: Option<Arc<[u8]>>,
    /// The To tag of the final response, which an RFC 2543 ACK carries instead of the
    /// INVITE's (17.2.3).
    pub(crate) response_to_tag: Option<Box<str>>,
    to: A,
    reliable: bool,
    /// Current interval of timer G.
    interval: Duration,
}

impl<A: Clone> ServerTx<A> {
    pub(crate) fn new(key: ServerKey, bucket: u64, to: A, reliable: bool, t1: Duration) -> Self {
        let state = if key.is_invite() {
            ServerState::Proceeding
        } else {
            ServerState::Trying
        };
        ServerTx {
            key,
            bucket,
            slots: Slots::default(),
            state,
            last_response: None,
            response_to_tag: None,
            to,
            reliable,
            interval: t1,
        }
    }

    /// The request came again: its sender missed our response, so that is re-sent. Nothing
    /// has been sent in Trying; in Confirmed and Accepted the ACK or the TU's 2xx
    /// retransmissions already take care of it. The answer goes to where this copy came from
    /// (RFC 3581 symmetric response routing), which also follows a NAT that re-mapped the
    /// client's port between retransmissions.
    pub(crate) fn on_retransmission(&mut self, from: A, ctx: &mut Ctx<'_, A>) {
        self.to = from;
        if matches!(self.state, ServerState::Proceeding | ServerState::Completed) {
            if let Some(r) = &self.last_response {
                ctx.send(&self.to, r);
            }
        }
    }

    /// An ACK matched this INVITE transaction; returns whether it goes to the TU.
    pub(crate) fn on_ack(&mut self, ctx: &mut Ctx<'_, A>) -> bool {
        match self.state {
            ServerState::Completed => {
                self.slots.disarm_all();
                self.state = ServerState::Confirmed;
                self.linger(Timer::I, ctx);
                false
            }
            // The ACK of a 2xx belongs to the dialog (RFC 6026 section 8.7).
            ServerState::Accepted => true,
            _ => false,
        }
    }

    /// The TU's response. `to_tag` is recorded for RFC 2543 ACK matching.
    pub(crate) fn respond(
        &mut self,
        status: u16,
        bytes: Arc<[u8]>,
        to_tag: Option<Box<str>>,
        ctx: &mut Ctx<'_, A>,
    ) -> Result<(), TxError> {
        use ServerState::*;
        if !(100..=699).contains(&status) {
            return Err(TxError::BadStatus);
        }
        let invite = self.key.is_invite();
        let next = match (invite, self.state, status) {
            (true, Proceeding, 100..=199) => Proceeding,
            (true, Proceeding | Accepted, 200..=299) => Accepted,
            (true, Proceeding, _) => Completed,
            (false, Trying | Proceeding, 100..=199) => Proceeding,
            (false, Trying | Proceeding, _) => Completed,
            _ => return Err(TxError::InvalidState),
        };
        ctx.send(&self.to, &bytes);
        self.last_response = Some(bytes);
        if to_tag.is_some() {
            self.response_to_tag = to_tag;
        }
        let entering = next != self.state;
        self.state = next;
        if !entering {
            return Ok(());
        }
        match (invite, next) {
            (true, Accepted) => {
                ctx.arm(
                    &mut self.slots,
                    Timer::L,
                    ctx.cfg.duration(Timer::L, self.reliable),
                );
            }
            (true, Completed) => {
                // A reliable transport delivers the response; only the ACK is awaited.
                if !self.reliable {
                    ctx.arm(&mut self.slots, Timer::G, self.interval);
                }
                ctx.arm(
                    &mut self.slots,
                    Timer::H,
                    ctx.cfg.duration(Timer::H, self.reliable),
                );
            }
            (false, Completed) => self.linger(Timer::J, ctx),
            _ => {}
        }
        Ok(())
    }

    /// Enters the wait that absorbs retransmissions, or ends at once on a reliable transport,
    /// where the timer is zero.
    fn linger(&mut self, timer: Timer, ctx: &mut Ctx<'_, A>) {
        let d = ctx.cfg.duration(timer, self.reliable);
        if d.is_zero() {
            self.state = ServerState::Terminated;
        } else {
            ctx.arm(&mut self.slots, timer, d);
        }
    }

    pub(crate) fn on_timer(&mut self, timer: Timer, ctx: &mut Ctx<'_, A>) {
        use ServerState::*;
        match (timer, self.state) {
            (Timer::G, Completed) => {
                if let Some(r) = &self.last_response {
                    ctx.send(&self.to, r);
                }
                self.interval = self.interval.saturating_mul(2).min(ctx.cfg.t2);
                ctx.arm(&mut self.slots, Timer::G, self.interval);
            }
            // The ACK never came (17.2.1): the TU learns the transaction failed.
            (Timer::H, Completed) => {
                ctx.report(Action::Timeout { id: ctx.id });
                self.state = Terminated;
            }
            (Timer::I, Confirmed) | (Timer::J, Completed) | (Timer::L, Accepted) => {
                self.state = Terminated;
            }
            // Slots are disarmed on every state change, so other pairs do not come due.
            _ => {}
        }
    }

    /// Sending failed (17.2.4): the transaction is over and the TU is told.
    pub(crate) fn on_transport_error(&mut self, ctx: &mut Ctx<'_, A>) {
        ctx.report(Action::TransportError { id: ctx.id });
        self.slots.disarm_all();
        self.state = ServerState::Terminated;
    }
}
