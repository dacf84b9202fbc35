//! RFC 4733 section 2.3 event payloads: event, end bit, volume, duration. Between legs with
//! different RTP clocks (8 kHz PCMU vs 48 kHz Opus) the duration is rescaled; the payload is
//! rewritten in place.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub event: u8,
    pub end: bool,
    /// Power level in -dBm0 (0-63).
    pub volume: u8,
    /// In RTP timestamp units of the stream.
    pub duration: u16,
}

impl Event {
    pub fn parse(payload: &[u8]) -> Option<Event> {
        if payload.len() < 4 {
            return None;
        }
        Some(Event {
            event: payload[0],
            end: payload[1] & 0x80 != 0,
            volume: payload[1] & 0x3F,
            duration: u16::from_be_bytes([payload[2], payload[3]]),
        })
    }

    pub fn write(&self, out: &mut [u8]) {
        out[0] = self.event;
        out[1] = (self.volume & 0x3F) | if self.end { 0x80 } else { 0 };
        out[2..4].copy_from_slice(&self.duration.to_be_bytes());
    }
}

/// Rescales the duration of every event in `payload` (RFC 4733 allows several, 4 bytes each)
/// from clock `from_hz` to `to_hz`, in place. Durations that would overflow saturate.
pub fn rescale_in_place(payload: &mut [u8], from_hz: u32, to_hz: u32) {
    if from_hz == to_hz || from_hz == 0 {
        return;
    }
    for chunk in payload.chunks_exact_mut(4) {
        let d = u64::from(u16::from_be_bytes([chunk[2], chunk[3]]));
        let scaled = (d * u64::from(to_hz) / u64::from(from_hz)).min(u64::from(u16::MAX)) as u16;
        chunk[2..4].copy_from_slice(&scaled.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_writes_and_rescales() {
        let e = Event {
            event: 11,
            end: true,
            volume: 10,
            duration: 800,
        };
        let mut b = [0u8; 4];
        e.write(&mut b);
        assert_eq!(b, [11, 0x8A, 0x03, 0x20]);
        assert_eq!(Event::parse(&b), Some(e));
        rescale_in_place(&mut b, 8000, 48000);
        assert_eq!(Event::parse(&b).map(|e| e.duration), Some(4800));
        rescale_in_place(&mut b, 48000, 8000);
        assert_eq!(Event::parse(&b).map(|e| e.duration), Some(800));
        let mut long = [1, 0, 0xFF, 0xFF];
        rescale_in_place(&mut long, 8000, 48000);
        assert_eq!(u16::from_be_bytes([long[2], long[3]]), u16::MAX);
        assert_eq!(Event::parse(&[1, 2, 3]), None);
    }
}
