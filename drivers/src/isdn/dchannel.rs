//! One end of a D channel: Q.931 call control over a Q.921 data link, and the glue between
//! them (the DL- primitives both ways, and who brings the link up).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::line::Cause;

use super::call::{CallControl, CallTimers};
use super::channels::{HuntOrder, InterfaceKind};
use super::q921::{DataLink, LinkConfig, LinkEvent, LinkState, TEI_PRI};
use super::Side;

/// A change of the signalling link as the layer above should hear of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkChange {
    Up,
    Down,
}

/// Call control and data link of one side.
#[derive(Debug)]
pub struct DChannel {
    pub link: DataLink,
    pub calls: CallControl,
    layer1: bool,
    /// This end brings the link up (and keeps trying after a failure).
    initiator: bool,
    retry: Duration,
    retry_at: Option<Instant>,
    up: bool,
    changes: VecDeque<LinkChange>,
}

impl DChannel {
    /// `initiator` ends send SABME when layer 1 comes up and again `retry` after a failed or
    /// lost link; the other end only answers.
    pub fn new(
        side: Side,
        kind: InterfaceKind,
        hunt: HuntOrder,
        link: LinkConfig,
        timers: CallTimers,
        initiator: bool,
        retry: Duration,
    ) -> DChannel {
        DChannel {
            link: DataLink::new(side, TEI_PRI, link),
            calls: CallControl::new(side, kind, hunt, timers),
            layer1: true,
            initiator,
            retry,
            retry_at: None,
            up: false,
            changes: VecDeque::new(),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// SABME is out and layer 1 is there: the link is expected up within T200 x N200.
    pub fn is_establishing(&self) -> bool {
        self.layer1 && self.link.state() == LinkState::AwaitingEstablishment
    }

    /// Brings the link up if this end is the one that does.
    pub fn start(&mut self, now: Instant) {
        if self.initiator && self.layer1 && !self.link.is_established() {
            self.link.establish(now);
        }
        self.pump(now);
    }

    pub fn layer1(&mut self, up: bool, now: Instant) {
        self.layer1 = up;
        self.link.layer1(up, now);
        self.retry_at = None;
        self.pump(now);
        if up {
            self.start(now);
        }
    }

    pub fn receive(&mut self, frame: &[u8], now: Instant) {
        self.link.receive(frame, now);
        self.pump(now);
    }

    pub fn poll_frame(&mut self) -> Option<Vec<u8>> {
        self.link.poll_transmit()
    }

    pub fn poll_change(&mut self) -> Option<LinkChange> {
        self.changes.pop_front()
    }

    /// Passes call control's messages down and the link's indications up until neither has
    /// anything more.
    pub fn pump(&mut self, now: Instant) {
        loop {
            let mut any = false;
            while let Some(m) = self.calls.poll_transmit() {
                any = true;
                self.link.send(m, now);
            }
            while let Some(e) = self.link.poll_event() {
                any = true;
                match e {
                    LinkEvent::Established => {
                        self.retry_at = None;
                        if !self.up {
                            self.up = true;
                            self.changes.push_back(LinkChange::Up);
                        }
                        self.calls.link_established(now);
                    }
                    LinkEvent::Released => {
                        if self.up {
                            self.up = false;
                            self.changes.push_back(LinkChange::Down);
                        }
                        let cause = if self.layer1 {
                            Cause::TEMPORARY_FAILURE
                        } else {
                            Cause::NETWORK_OUT_OF_ORDER
                        };
                        self.calls.link_released(cause, now);
                        if self.initiator && self.layer1 {
                            self.retry_at = Some(now + self.retry);
                        }
                    }
                    LinkEvent::Data(m) | LinkEvent::UnitData(m) => self.calls.receive(&m, now),
                }
            }
            if !any {
                self.calls.set_link_pending(self.is_establishing());
                return;
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.calls.poll_timeout(),
            self.link.poll_timeout(),
            self.retry_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Layer-3 timers run before layer-2 ones due at the same instant, so that a call timer
    /// and a link failure falling together resolve the same way every time.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.calls.handle_timeout(now);
        self.pump(now);
        self.link.handle_timeout(now);
        self.pump(now);
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            self.start(now);
        }
    }
}
