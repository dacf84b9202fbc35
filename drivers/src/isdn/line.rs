//! The simulated line between the gateway's card (user side) and the exchange (network side).
//!
//! The D channel carries whole Q.921 frames, each arriving a fixed one-way delay after it was
//! sent, in order. Layer 1 can be lost (both ends see it: nothing passes either way until it is
//! restored) and the D channel alone can be cut (frames silently vanish while layer 1 stays up,
//! so only Q.921's timers notice).
//!
//! The B channels run on the line's own clock: every 20 ms from the line's start, each channel
//! switched through at either end moves one 160-byte G.711 frame each way. What an end writes is
//! buffered (a few frames, the oldest dropped beyond that) and taken one frame per tick, so the
//! far end receives frames at the line's pace whatever the writer's timing; when the buffer is
//! empty the tick carries silence.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::line::FRAME_MS;

use super::channels::{InterfaceKind, Law, FRAME_SAMPLES};
use super::Side;

const TICK: Duration = Duration::from_millis(FRAME_MS);

/// Ticks a late caller is given at most; the rest of a longer gap is skipped.
const MAX_CATCH_UP: u64 = 50;

/// The line's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineConfig {
    /// One-way delay of D-channel frames.
    pub delay: Duration,
    /// Frames each B-channel buffer holds before dropping the oldest.
    pub jitter_frames: usize,
}

impl Default for LineConfig {
    fn default() -> LineConfig {
        LineConfig {
            delay: Duration::from_millis(5),
            jitter_frames: 3,
        }
    }
}

/// Which way something travels on the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    ToNetwork,
    ToUser,
}

impl Direction {
    /// The direction away from `side`.
    pub fn from(side: Side) -> Direction {
        match side {
            Side::User => Direction::ToNetwork,
            Side::Network => Direction::ToUser,
        }
    }
}

/// Counters for the operator and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineStats {
    pub d_frames: u64,
    /// D-channel frames lost to a layer-1 loss or a D-channel cut.
    pub d_dropped: u64,
    pub b_frames: u64,
    /// Ticks that found a switched-through writer's buffer empty.
    pub b_underruns: u64,
    /// Frames dropped from a full buffer.
    pub b_overflows: u64,
}

#[derive(Debug, Default)]
struct BChannel {
    /// Switched through at the user end (its frames are wanted there) / at the network end.
    user: bool,
    network: bool,
    to_network: VecDeque<Vec<u8>>,
    to_user: VecDeque<Vec<u8>>,
}

/// A simulated primary or basic rate line.
#[derive(Debug)]
pub struct Line {
    start: Instant,
    config: LineConfig,
    law: Law,
    kind: InterfaceKind,
    layer1: bool,
    d_channel: bool,
    in_flight: VecDeque<(Instant, Direction, Vec<u8>)>,
    /// The index of the next tick (at `start + index * 20 ms`).
    next_tick: u64,
    b: BTreeMap<u8, BChannel>,
    out: VecDeque<(Direction, u8, Vec<u8>)>,
    stats: LineStats,
}

impl Line {
    pub fn new(kind: InterfaceKind, config: LineConfig, now: Instant) -> Line {
        Line {
            start: now,
            config,
            law: kind.law(),
            kind,
            layer1: true,
            d_channel: true,
            in_flight: VecDeque::new(),
            next_tick: 1,
            b: BTreeMap::new(),
            out: VecDeque::new(),
            stats: LineStats::default(),
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    pub fn law(&self) -> Law {
        self.law
    }

    pub fn stats(&self) -> LineStats {
        self.stats
    }

    pub fn layer1_up(&self) -> bool {
        self.layer1
    }

    pub fn d_channel_up(&self) -> bool {
        self.d_channel
    }

    /// Puts a D-channel frame on the line.
    pub fn send_d(&mut self, direction: Direction, frame: Vec<u8>, now: Instant) {
        if !self.layer1 || !self.d_channel {
            self.stats.d_dropped += 1;
            return;
        }
        self.stats.d_frames += 1;
        self.in_flight
            .push_back((now + self.config.delay, direction, frame));
    }

    /// The next D-channel frame that has arrived by `now`.
    pub fn poll_d(&mut self, now: Instant) -> Option<(Direction, Vec<u8>)> {
        if self.in_flight.front().is_some_and(|(at, _, _)| *at <= now) {
            self.in_flight.pop_front().map(|(_, d, f)| (d, f))
        } else {
            None
        }
    }

    /// Loses or restores layer 1. Whatever was on its way is lost.
    pub fn set_layer1(&mut self, up: bool, now: Instant) {
        if self.layer1 == up {
            return;
        }
        self.layer1 = up;
        self.stats.d_dropped += self.in_flight.len() as u64;
        self.in_flight.clear();
        for b in self.b.values_mut() {
            b.to_network.clear();
            b.to_user.clear();
        }
        if up {
            self.resync(now);
        }
    }

    /// Cuts or restores the D channel alone.
    pub fn set_d_channel(&mut self, up: bool) {
        self.d_channel = up;
        if !up {
            self.stats.d_dropped += self.in_flight.len() as u64;
            self.in_flight.clear();
        }
    }

    /// Switches a B channel through (or not) at one end. A channel carries frames while
    /// either end has it switched through; each end receives only while it has.
    pub fn switch(&mut self, side: Side, channel: u8, through: bool, now: Instant) {
        if !self.kind.has_channel(channel) {
            return;
        }
        let idle = !self.carrying();
        let b = self.b.entry(channel).or_default();
        match side {
            Side::User => b.user = through,
            Side::Network => b.network = through,
        }
        if !b.user && !b.network {
            self.b.remove(&channel);
        } else if idle {
            self.resync(now);
        }
    }

    /// Whether `side` has `channel` switched through.
    pub fn is_through(&self, side: Side, channel: u8) -> bool {
        self.b.get(&channel).is_some_and(|b| match side {
            Side::User => b.user,
            Side::Network => b.network,
        })
    }

    /// One frame from one end into a B channel's buffer, cut or padded to 20 ms.
    pub fn write_b(&mut self, direction: Direction, channel: u8, frame: &[u8]) {
        let silence = self.law.silence();
        let jitter = self.config.jitter_frames.max(1);
        let Some(b) = self.b.get_mut(&channel) else {
            return;
        };
        let mut f = frame.get(..FRAME_SAMPLES).unwrap_or(frame).to_vec();
        f.resize(FRAME_SAMPLES, silence);
        let queue = match direction {
            Direction::ToNetwork => &mut b.to_network,
            Direction::ToUser => &mut b.to_user,
        };
        queue.push_back(f);
        if queue.len() > jitter {
            queue.pop_front();
            self.stats.b_overflows += 1;
        }
    }

    /// When the B channels next move a frame.
    pub fn next_tick(&self) -> Option<Instant> {
        (self.layer1 && self.carrying()).then(|| self.tick_at(self.next_tick))
    }

    /// Runs the ticks due by `now`.
    pub fn tick(&mut self, now: Instant) {
        let Some(at) = self.next_tick() else {
            return;
        };
        if at > now {
            return;
        }
        let due = self.elapsed_ticks(now) + 1 - self.next_tick;
        for _ in 0..due.min(MAX_CATCH_UP) {
            self.produce();
        }
        self.next_tick += due;
    }

    /// A B-channel frame delivered to one end: (direction, channel, 160 bytes).
    pub fn poll_b(&mut self) -> Option<(Direction, u8, Vec<u8>)> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let d = self.in_flight.front().map(|(at, _, _)| *at);
        match (d, self.next_tick()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn carrying(&self) -> bool {
        !self.b.is_empty()
    }

    fn tick_at(&self, index: u64) -> Instant {
        self.start + TICK * u32::try_from(index).unwrap_or(u32::MAX)
    }

    fn elapsed_ticks(&self, now: Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.start).as_nanos() / TICK.as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }

    /// After an idle spell the clock goes on from the next 20 ms boundary, not from the past.
    fn resync(&mut self, now: Instant) {
        self.next_tick = self.next_tick.max(self.elapsed_ticks(now) + 1);
    }

    fn produce(&mut self) {
        let silence = vec![self.law.silence(); FRAME_SAMPLES];
        for (&ch, b) in &mut self.b {
            let mut take = |queue: &mut VecDeque<Vec<u8>>, writer: bool| {
                queue.pop_front().unwrap_or_else(|| {
                    if writer {
                        self.stats.b_underruns += 1;
                    }
                    silence.clone()
                })
            };
            let up = take(&mut b.to_network, b.user);
            let down = take(&mut b.to_user, b.network);
            if b.network {
                self.out.push_back((Direction::ToNetwork, ch, up));
                self.stats.b_frames += 1;
            }
            if b.user {
                self.out.push_back((Direction::ToUser, ch, down));
                self.stats.b_frames += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn d_frames_arrive_after_the_delay_in_order() {
        let t0 = Instant::now();
        let mut line = Line::new(InterfaceKind::E1, LineConfig::default(), t0);
        line.send_d(Direction::ToNetwork, vec![1], t0);
        line.send_d(Direction::ToUser, vec![2], t0 + ms(1));
        assert_eq!(line.poll_timeout(), Some(t0 + ms(5)));
        assert_eq!(line.poll_d(t0 + ms(4)), None);
        assert_eq!(
            line.poll_d(t0 + ms(6)),
            Some((Direction::ToNetwork, vec![1]))
        );
        assert_eq!(line.poll_d(t0 + ms(6)), Some((Direction::ToUser, vec![2])));
        assert_eq!(line.poll_d(t0 + ms(6)), None);
    }

    #[test]
    fn cut_and_layer1_loss_drop_frames() {
        let t0 = Instant::now();
        let mut line = Line::new(InterfaceKind::Bri, LineConfig::default(), t0);
        line.send_d(Direction::ToNetwork, vec![1], t0);
        line.set_d_channel(false);
        line.send_d(Direction::ToNetwork, vec![2], t0);
        assert_eq!(line.poll_d(t0 + ms(10)), None);
        line.set_d_channel(true);
        line.set_layer1(false, t0);
        line.send_d(Direction::ToUser, vec![3], t0);
        assert_eq!(line.poll_d(t0 + ms(10)), None);
        assert_eq!(line.stats().d_dropped, 3);
    }

    #[test]
    fn b_channels_tick_every_20ms_with_silence_on_underrun() {
        let t0 = Instant::now();
        let mut line = Line::new(InterfaceKind::T1, LineConfig::default(), t0);
        assert_eq!(line.next_tick(), None, "nothing switched through, no ticks");
        line.switch(Side::User, 5, true, t0 + ms(3));
        line.switch(Side::Network, 5, true, t0 + ms(3));
        assert_eq!(line.next_tick(), Some(t0 + ms(20)));
        line.write_b(Direction::ToNetwork, 5, &[1; 160]);
        line.tick(t0 + ms(20));
        let got: Vec<_> = std::iter::from_fn(|| line.poll_b()).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (Direction::ToNetwork, 5, vec![1; 160]));
        assert_eq!(got[1], (Direction::ToUser, 5, vec![0xFF; 160]));
        assert_eq!(line.next_tick(), Some(t0 + ms(40)));
        assert_eq!(line.stats().b_underruns, 1);
    }

    #[test]
    fn jitter_buffer_drops_the_oldest_and_pads_short_frames() {
        let t0 = Instant::now();
        let mut line = Line::new(InterfaceKind::E1, LineConfig::default(), t0);
        line.switch(Side::Network, 1, true, t0);
        for i in 0..5u8 {
            line.write_b(Direction::ToNetwork, 1, &[i; 10]);
        }
        assert_eq!(line.stats().b_overflows, 2);
        line.tick(t0 + ms(60));
        let got: Vec<_> = std::iter::from_fn(|| line.poll_b())
            .map(|(_, _, f)| f)
            .collect();
        assert_eq!(got.len(), 3);
        assert_eq!(&got[0][..10], &[2; 10]);
        assert_eq!(got[0][10], 0xD5);
        assert_eq!(got[2][0], 4);
    }

    #[test]
    fn a_late_caller_catches_up_at_most_a_second() {
        let t0 = Instant::now();
        let mut line = Line::new(InterfaceKind::E1, LineConfig::default(), t0);
        line.switch(Side::User, 1, true, t0);
        line.tick(t0 + Duration::from_secs(10));
        assert_eq!(
            std::iter::from_fn(|| line.poll_b()).count(),
            MAX_CATCH_UP as usize
        );
        assert_eq!(
            line.next_tick(),
            Some(t0 + Duration::from_secs(10) + ms(20))
        );
    }
}
