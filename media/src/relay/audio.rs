//! The decoding path of a direction: used when the two legs share no codec, or when only one
//! of them carries RFC 4733 events (in-band DTMF must then be generated or detected). Packets
//! are decoded, re-framed to the receiving leg's ptime and encoded afresh with mgw's own
//! sequence numbers and timestamps; telephone-events are translated between the legs' payload
//! types and clocks, turned into tones, or made from detected tones.
//!
//! Everything is allocated when the path is built; handling a packet allocates nothing.

use crate::dtmf::detect::{Detector, Dtmf};
use crate::dtmf::event::{rescale_in_place, Event};
use crate::dtmf::tone::ToneGenerator;
use crate::rtp::header::{write_header, FIXED_HEADER};
use crate::sdp::CodecName;
use crate::transcode::{TranscodeError, Transcoder};

/// RFC 4733 events on one leg: payload type and RTP clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventFormat {
    pub payload_type: u8,
    pub clock_rate: u32,
}

/// What a decoding direction does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioPlan {
    pub from: CodecName,
    pub in_pt: u8,
    pub to: CodecName,
    pub out_pt: u8,
    /// Duration of the packets sent (the receiving leg's ptime).
    pub ptime_ms: u32,
    /// Events the sender sends, and those the receiver takes.
    pub events_in: Option<EventFormat>,
    pub events_out: Option<EventFormat>,
    pub opus_complexity: u8,
}

/// Most packets one incoming packet can turn into: 120 ms in, 10 ms out is 12; end-of-event
/// retransmissions add 2.
pub const MAX_OUT: usize = 16;
/// Room for one outgoing packet.
pub const OUT_SIZE: usize = 1500;
/// Lost packets concealed at most per gap; a longer gap is a new talk spurt.
const MAX_CONCEALED: u16 = 5;
/// Level of detected digits in the events sent (-dBm0).
const DETECTED_VOLUME: u8 = 10;

/// A key being sent as events on the outgoing leg (detected in the audio).
#[derive(Clone, Copy, Debug)]
struct OutgoingKey {
    event: u8,
    ts: u32,
    /// So far, in the events' clock.
    duration: u32,
    first: bool,
}

/// A key received as events, being played as a tone on the outgoing leg.
#[derive(Clone, Copy, Debug)]
struct IncomingKey {
    in_ts: u32,
    tone: Option<ToneGenerator>,
    /// Samples of tone generated so far (outgoing audio rate).
    generated: u64,
    ended: bool,
}

/// A received event being passed on with the other leg's payload type and clock.
#[derive(Clone, Copy, Debug)]
struct RelayedEvent {
    in_ts: u32,
    out_ts: u32,
}

impl std::fmt::Debug for AudioPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioPath")
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

pub struct AudioPath {
    plan: AudioPlan,
    transcoder: Transcoder,
    /// Outgoing RTP clock (G.722: 8 kHz for 16 kHz audio).
    out_clock: u32,
    /// RTP timestamp units per outgoing packet.
    step: u32,
    next_seq: u16,
    next_ts: u32,
    started: bool,
    marker: bool,
    expected_seq: Option<u16>,
    detector: Option<Detector>,
    outgoing_key: Option<OutgoingKey>,
    incoming_key: Option<IncomingKey>,
    relayed_event: Option<RelayedEvent>,
    tone_buf: Box<[i16]>,
    payload_in: Box<[u8]>,
    out: Box<[[u8; OUT_SIZE]]>,
    out_len: [usize; MAX_OUT],
    out_count: usize,
}

impl AudioPath {
    /// Builds the path; `continue_from` is the last (sequence, timestamp) the direction sent,
    /// so a re-negotiation does not restart the outgoing stream.
    pub fn new(plan: AudioPlan, continue_from: Option<(u16, u32)>) -> Result<Self, TranscodeError> {
        let transcoder = Transcoder::new(plan.from, plan.to, plan.ptime_ms, plan.opus_complexity)?;
        let out_clock = plan.to.rtp_clock();
        let step = transcoder.timestamp_step();
        let detector = (plan.events_in.is_none() && plan.events_out.is_some())
            .then(|| Detector::new(transcoder.input_rate()));
        let (next_seq, next_ts, started) = match continue_from {
            Some((s, t)) => (s.wrapping_add(1), t.wrapping_add(step), true),
            None => (0, 0, false),
        };
        Ok(AudioPath {
            plan,
            transcoder,
            out_clock,
            step,
            next_seq,
            next_ts,
            started,
            marker: true,
            expected_seq: None,
            detector,
            outgoing_key: None,
            incoming_key: None,
            relayed_event: None,
            tone_buf: vec![0; 960].into_boxed_slice(),
            payload_in: vec![0; OUT_SIZE].into_boxed_slice(),
            out: vec![[0u8; OUT_SIZE]; MAX_OUT].into_boxed_slice(),
            out_len: [0; MAX_OUT],
            out_count: 0,
        })
    }

    /// Bytes this path allocated for its buffers (codec state excluded): the fixed cost of a
    /// transcoding direction.
    #[cfg(test)]
    pub fn buffer_bytes(&self) -> usize {
        self.transcoder.buffer_bytes()
            + 2 * self.tone_buf.len()
            + self.payload_in.len()
            + self.out.len() * OUT_SIZE
    }

    pub fn plan(&self) -> &AudioPlan {
        &self.plan
    }

    /// The last (sequence, timestamp) sent.
    pub fn last_sent(&self) -> Option<(u16, u32)> {
        self.started.then(|| {
            (
                self.next_seq.wrapping_sub(1),
                self.next_ts.wrapping_sub(self.step),
            )
        })
    }

    /// Takes one received packet (header fields and payload) and builds what goes out, read
    /// back with [`AudioPath::outputs`]. `false`: the payload type is not this direction's.
    pub fn process(
        &mut self,
        pt: u8,
        seq: u16,
        ts: u32,
        payload: &[u8],
        ssrc: u32,
    ) -> Result<bool, TranscodeError> {
        self.out_count = 0;
        if !self.started {
            // The sender's numbering is as good a start as any and keeps captures readable.
            self.next_seq = seq;
            self.next_ts = ts;
            self.started = true;
        }
        if pt == self.plan.in_pt {
            self.audio(seq, payload, ssrc)?;
            Ok(true)
        } else if self.plan.events_in.is_some_and(|e| e.payload_type == pt) {
            self.event(ts, payload, ssrc)?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// The packets built by the last [`AudioPath::process`], in sending order.
    pub fn outputs(&self) -> impl Iterator<Item = &[u8]> {
        self.out[..self.out_count]
            .iter()
            .zip(&self.out_len)
            .map(|(b, &n)| &b[..n])
    }

    fn audio(&mut self, seq: u16, payload: &[u8], ssrc: u32) -> Result<(), TranscodeError> {
        if let Some(exp) = self.expected_seq {
            let gap = seq.wrapping_sub(exp);
            if gap >= 0x8000 {
                // Late or duplicated: its moment has passed (the decoders are stateful).
                return Ok(());
            }
            if (1..=MAX_CONCEALED).contains(&gap) {
                for _ in 0..gap {
                    self.transcoder.feed(None)?;
                }
            }
        }
        self.expected_seq = Some(seq.wrapping_add(1));
        if self.incoming_key.is_some_and(|k| !k.ended) {
            // A key is being played from events; the sender's own audio would overlap it.
            return Ok(());
        }
        let n = payload.len().min(self.payload_in.len());
        self.payload_in[..n].copy_from_slice(&payload[..n]);
        self.transcoder.feed(Some(&self.payload_in[..n]))?;
        if let Some(d) = &mut self.detector {
            let mut change = None;
            d.feed(self.transcoder.decoded(), |k| change = Some(k));
            match change {
                Some(Dtmf::Pressed(event)) => {
                    self.outgoing_key = Some(OutgoingKey {
                        event,
                        ts: self.next_ts,
                        duration: 0,
                        first: true,
                    })
                }
                Some(Dtmf::Released(_)) => self.end_outgoing_key(ssrc),
                None => {}
            }
        }
        self.drain(ssrc)
    }

    /// Encodes every whole frame pending; while a detected key is down each frame's slot is
    /// taken by an event packet instead (the encoder still runs, to keep its state).
    fn drain(&mut self, ssrc: u32) -> Result<(), TranscodeError> {
        while let Some(n) = self.transcoder.next_payload()? {
            if self.outgoing_key.is_some() {
                self.key_packet(ssrc, false);
                continue;
            }
            let ts = self.next_ts;
            let marker = std::mem::take(&mut self.marker);
            let (pt, seq) = (self.plan.out_pt, self.take_seq());
            self.next_ts = self.next_ts.wrapping_add(self.step);
            if let Some(slot) = self.out.get_mut(self.out_count) {
                write_header(slot, marker, pt, seq, ts, ssrc);
                let end = (FIXED_HEADER + n).min(OUT_SIZE);
                slot[FIXED_HEADER..end]
                    .copy_from_slice(&self.transcoder.payload()[..end - FIXED_HEADER]);
                self.commit(end);
            }
        }
        Ok(())
    }

    /// One event packet for the key detected in the audio, covering one more frame.
    fn key_packet(&mut self, ssrc: u32, end: bool) {
        let Some(ev) = self.plan.events_out else {
            return;
        };
        let Some(mut key) = self.outgoing_key else {
            return;
        };
        if !end {
            key.duration += self.event_units(self.step, ev.clock_rate);
            self.next_ts = self.next_ts.wrapping_add(self.step);
        }
        let marker = std::mem::take(&mut key.first);
        let seq = self.take_seq();
        let e = Event {
            event: key.event,
            end,
            volume: DETECTED_VOLUME,
            duration: key.duration.min(u32::from(u16::MAX)) as u16,
        };
        self.outgoing_key = Some(key);
        if let Some(slot) = self.slot() {
            write_header(slot, marker, ev.payload_type, seq, key.ts, ssrc);
            e.write(&mut slot[FIXED_HEADER..FIXED_HEADER + 4]);
            self.commit(FIXED_HEADER + 4);
        }
    }

    /// The key detected went up: the end packet, sent three times (RFC 4733 2.5.1.4).
    fn end_outgoing_key(&mut self, ssrc: u32) {
        if self.outgoing_key.is_none() {
            return;
        }
        for _ in 0..3 {
            self.key_packet(ssrc, true);
        }
        self.outgoing_key = None;
        self.marker = true;
    }

    fn event(&mut self, ts: u32, payload: &[u8], ssrc: u32) -> Result<(), TranscodeError> {
        let (Some(ev_in), Some(e)) = (self.plan.events_in, Event::parse(payload)) else {
            return Ok(());
        };
        if let Some(ev_out) = self.plan.events_out {
            // Both legs do events: same event, the other leg's payload type, clock and timeline.
            let (out_ts, marker) = match self.relayed_event {
                Some(r) if r.in_ts == ts => (r.out_ts, false),
                _ => {
                    self.relayed_event = Some(RelayedEvent {
                        in_ts: ts,
                        out_ts: self.next_ts,
                    });
                    (self.next_ts, true)
                }
            };
            if e.end {
                // Senders often mute their audio during a key: the audio after it must not
                // reuse the timestamps the event covered.
                let covered = (u64::from(e.duration) * u64::from(self.out_clock)
                    / u64::from(ev_in.clock_rate.max(1))) as u32;
                let after = out_ts.wrapping_add(covered);
                if after.wrapping_sub(self.next_ts) < 0x8000_0000 {
                    self.next_ts = after;
                }
            }
            let seq = self.take_seq();
            let n = (payload.len() & !3).min(OUT_SIZE - FIXED_HEADER);
            if let Some(slot) = self.slot() {
                write_header(slot, marker, ev_out.payload_type, seq, out_ts, ssrc);
                slot[FIXED_HEADER..FIXED_HEADER + n].copy_from_slice(&payload[..n]);
                rescale_in_place(
                    &mut slot[FIXED_HEADER..FIXED_HEADER + n],
                    ev_in.clock_rate,
                    ev_out.clock_rate,
                );
                self.commit(FIXED_HEADER + n);
            }
            return Ok(());
        }
        // No events on the other leg: play the key as a tone in place of the sender's audio.
        let rate = self.transcoder.output_rate();
        let key = match self.incoming_key {
            Some(k) if k.in_ts == ts => k,
            _ => IncomingKey {
                in_ts: ts,
                tone: ToneGenerator::new(e.event, rate, -f32::from(e.volume.min(30))),
                generated: 0,
                ended: false,
            },
        };
        let mut key = key;
        if key.ended {
            // A retransmitted end packet.
            self.incoming_key = Some(key);
            return Ok(());
        }
        let target = u64::from(e.duration) * u64::from(rate) / u64::from(ev_in.clock_rate.max(1));
        if let Some(tone) = &mut key.tone {
            while key.generated < target {
                let n = ((target - key.generated) as usize).min(self.tone_buf.len());
                tone.fill(&mut self.tone_buf[..n]);
                self.transcoder.feed_output_audio(&self.tone_buf[..n]);
                key.generated += n as u64;
            }
        }
        key.ended = e.end;
        self.incoming_key = Some(key);
        self.drain(ssrc)
    }

    fn event_units(&self, rtp_units: u32, event_clock: u32) -> u32 {
        (u64::from(rtp_units) * u64::from(event_clock) / u64::from(self.out_clock.max(1))) as u32
    }

    fn take_seq(&mut self) -> u16 {
        let s = self.next_seq;
        self.next_seq = s.wrapping_add(1);
        s
    }

    fn slot(&mut self) -> Option<&mut [u8; OUT_SIZE]> {
        self.out.get_mut(self.out_count)
    }

    fn commit(&mut self, len: usize) {
        if let Some(l) = self.out_len.get_mut(self.out_count) {
            *l = len;
            self.out_count += 1;
        }
    }
}
