//! The RTP fixed header (RFC 3550 section 5.1), read and rewritten where the packet lies: the
//! relay changes payload type, sequence number, timestamp and SSRC in the receive buffer and
//! sends that same buffer, so a relayed packet is never copied.

use std::fmt;

/// The fixed header: V P X CC | M PT | sequence | timestamp | SSRC.
pub const FIXED_HEADER: usize = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtpError {
    TooShort,
    /// Not version 2.
    Version(u8),
    /// CSRC list, extension or padding run past the packet.
    Truncated,
    /// Payload types 72-76 with the marker collide with RTCP (RFC 5761 section 4).
    RtcpRange,
}

impl fmt::Display for RtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtpError::TooShort => f.write_str("RTP packet shorter than 12 bytes"),
            RtpError::Version(v) => write!(f, "RTP version {v}, not 2"),
            RtpError::Truncated => {
                f.write_str("RTP header extension, CSRCs or padding run past the packet")
            }
            RtpError::RtcpRange => f.write_str("payload type in the RTCP range"),
        }
    }
}

impl std::error::Error for RtpError {}

/// Whether a packet on a muxed port is RTCP (RFC 5761 section 4: second byte 192-223).
pub fn is_rtcp(packet: &[u8]) -> bool {
    packet.len() >= 2 && (192..=223).contains(&packet[1])
}

/// A validated RTP packet in a mutable buffer.
#[derive(Debug)]
pub struct RtpPacket<'a> {
    buf: &'a mut [u8],
    payload_start: usize,
    payload_end: usize,
}

impl<'a> RtpPacket<'a> {
    /// Checks the header and finds the payload; nothing is copied.
    pub fn parse(buf: &'a mut [u8]) -> Result<RtpPacket<'a>, RtpError> {
        let (payload_start, payload_end) = bounds(buf)?;
        Ok(RtpPacket {
            buf,
            payload_start,
            payload_end,
        })
    }

    pub fn marker(&self) -> bool {
        self.buf[1] & 0x80 != 0
    }

    pub fn payload_type(&self) -> u8 {
        self.buf[1] & 0x7F
    }

    pub fn sequence(&self) -> u16 {
        u16::from_be_bytes([self.buf[2], self.buf[3]])
    }

    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]])
    }

    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]])
    }

    pub fn set_payload_type(&mut self, pt: u8) {
        self.buf[1] = (self.buf[1] & 0x80) | (pt & 0x7F);
    }

    pub fn set_marker(&mut self, marker: bool) {
        self.buf[1] = (self.buf[1] & 0x7F) | if marker { 0x80 } else { 0 };
    }

    pub fn set_sequence(&mut self, seq: u16) {
        self.buf[2..4].copy_from_slice(&seq.to_be_bytes());
    }

    pub fn set_timestamp(&mut self, ts: u32) {
        self.buf[4..8].copy_from_slice(&ts.to_be_bytes());
    }

    pub fn set_ssrc(&mut self, ssrc: u32) {
        self.buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    }

    pub fn payload(&self) -> &[u8] {
        &self.buf[self.payload_start..self.payload_end]
    }

    /// Where the payload starts (after CSRCs and header extension).
    pub fn payload_offset(&self) -> usize {
        self.payload_start
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.payload_start..self.payload_end]
    }

    /// The whole packet, header included, as it will be sent.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf
    }
}

/// Payload start and end of a well-formed RTP packet.
fn bounds(buf: &[u8]) -> Result<(usize, usize), RtpError> {
    if buf.len() < FIXED_HEADER {
        return Err(RtpError::TooShort);
    }
    let version = buf[0] >> 6;
    if version != 2 {
        return Err(RtpError::Version(version));
    }
    if is_rtcp(buf) {
        return Err(RtpError::RtcpRange);
    }
    let csrc = usize::from(buf[0] & 0x0F);
    let mut start = FIXED_HEADER + 4 * csrc;
    if buf[0] & 0x10 != 0 {
        // Extension: 16-bit profile, 16-bit length in 32-bit words (RFC 3550 5.3.1).
        let len_at = start + 2;
        let words = buf
            .get(len_at..len_at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .ok_or(RtpError::Truncated)?;
        start += 4 + 4 * words;
    }
    let mut end = buf.len();
    if buf[0] & 0x20 != 0 {
        let pad = usize::from(buf[end - 1]);
        if pad == 0 {
            return Err(RtpError::Truncated);
        }
        end = end.checked_sub(pad).ok_or(RtpError::Truncated)?;
    }
    if start > end {
        return Err(RtpError::Truncated);
    }
    Ok((start, end))
}

/// Writes a fixed header (no CSRC, no extension) into `out[..12]`: for packets mgw originates
/// (transcoded or generated audio, DTMF events).
pub fn write_header(out: &mut [u8], marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32) {
    out[0] = 0x80;
    out[1] = (pt & 0x7F) | if marker { 0x80 } else { 0 };
    out[2..4].copy_from_slice(&seq.to_be_bytes());
    out[4..8].copy_from_slice(&ts.to_be_bytes());
    out[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 12];
        write_header(&mut p, true, 0, 0xBEEF, 160_000, 0x1234_5678);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn reads_and_rewrites_in_place() {
        let mut buf = packet(&[1, 2, 3]);
        let mut p = RtpPacket::parse(&mut buf).unwrap();
        assert!(p.marker());
        assert_eq!(
            (p.payload_type(), p.sequence(), p.timestamp(), p.ssrc()),
            (0, 0xBEEF, 160_000, 0x1234_5678)
        );
        assert_eq!(p.payload(), [1, 2, 3]);
        p.set_payload_type(8);
        p.set_sequence(7);
        p.set_timestamp(99);
        p.set_ssrc(42);
        p.set_marker(false);
        p.payload_mut()[0] = 9;
        let again = RtpPacket::parse(&mut buf).unwrap();
        assert_eq!(
            (
                again.marker(),
                again.payload_type(),
                again.sequence(),
                again.timestamp(),
                again.ssrc()
            ),
            (false, 8, 7, 99, 42)
        );
        assert_eq!(again.payload(), [9, 2, 3]);
    }

    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        let mut p = vec![0u8; 12];
        write_header(&mut p, false, 96, 1, 2, 3);
        p[0] |= 0x10 | 0x20 | 1; // extension, padding, one CSRC
        p.extend_from_slice(&[0, 0, 0, 9]); // CSRC
        p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 1, 2, 3, 4]); // extension, one word
        p.extend_from_slice(&[7, 7]); // payload
        p.extend_from_slice(&[0, 0, 3]); // three bytes of padding
        let mut buf = p.clone();
        assert_eq!(RtpPacket::parse(&mut buf).unwrap().payload(), [7, 7]);
    }

    #[test]
    fn malformed_packets_are_refused() {
        assert_eq!(
            RtpPacket::parse(&mut [0x80; 5]).unwrap_err(),
            RtpError::TooShort
        );
        let mut v1 = packet(&[]);
        v1[0] = 0x40;
        assert_eq!(RtpPacket::parse(&mut v1).unwrap_err(), RtpError::Version(1));
        let mut ext = packet(&[]);
        ext[0] |= 0x10;
        assert_eq!(RtpPacket::parse(&mut ext).unwrap_err(), RtpError::Truncated);
        let mut pad = packet(&[1]);
        pad[0] |= 0x20;
        let last = pad.len() - 1;
        pad[last] = 200;
        assert_eq!(RtpPacket::parse(&mut pad).unwrap_err(), RtpError::Truncated);
        let mut rtcp = packet(&[]);
        rtcp[1] = 200;
        assert!(is_rtcp(&rtcp));
        assert_eq!(
            RtpPacket::parse(&mut rtcp).unwrap_err(),
            RtpError::RtcpRange
        );
    }
}
