//! RTCP (RFC 3550 section 6) as the relay needs it: walking a compound packet in place to
//! translate SSRCs, so that each end sees reports about the SSRCs it knows.

/// SR, RR, SDES, BYE.
const SR: u8 = 200;
const RR: u8 = 201;
const SDES: u8 = 202;
const BYE: u8 = 203;

/// Rewrites, in every packet of the compound `buf`, the sender SSRC `sender.0` to `sender.1`
/// and report-block SSRCs `reported.0` to `reported.1`. Stops quietly at a malformed length
/// (what was rewritten stays; the packet is still relayed).
pub fn translate_ssrcs(buf: &mut [u8], sender: (u32, u32), reported: (u32, u32)) {
    let mut at = 0;
    while at + 8 <= buf.len() {
        if buf[at] >> 6 != 2 {
            return;
        }
        let count = usize::from(buf[at] & 0x1F);
        let pt = buf[at + 1];
        let words = usize::from(u16::from_be_bytes([buf[at + 2], buf[at + 3]]));
        let end = at + 4 * (words + 1);
        if end > buf.len() {
            return;
        }
        let map = |b: &mut [u8], from: u32, to: u32| {
            if u32::from_be_bytes([b[0], b[1], b[2], b[3]]) == from {
                b.copy_from_slice(&to.to_be_bytes());
            }
        };
        if matches!(pt, SR | RR | SDES | BYE) {
            map(&mut buf[at + 4..at + 8], sender.0, sender.1);
        }
        let blocks = match pt {
            SR => Some(at + 28),
            RR => Some(at + 8),
            _ => None,
        };
        if let Some(first) = blocks {
            for i in 0..count {
                let b = first + 24 * i;
                if b + 4 > end {
                    break;
                }
                map(&mut buf[b..b + 4], reported.0, reported.1);
            }
        }
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_sender_and_report_blocks_of_a_compound_packet() {
        // RR from SSRC 1 with one block about SSRC 7, then SDES for SSRC 1.
        let mut p = vec![0x81, RR, 0, 7];
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&7u32.to_be_bytes());
        p.extend_from_slice(&[0; 20]);
        p.extend_from_slice(&[0x81, SDES, 0, 2]);
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&[1, 1, b'x', 0]);
        translate_ssrcs(&mut p, (1, 100), (7, 70));
        assert_eq!(&p[4..8], &100u32.to_be_bytes());
        assert_eq!(&p[8..12], &70u32.to_be_bytes());
        assert_eq!(&p[36..40], &100u32.to_be_bytes());
    }

    #[test]
    fn malformed_lengths_stop_quietly() {
        let mut p = vec![0x80, SR, 0xFF, 0xFF, 0, 0, 0, 1];
        translate_ssrcs(&mut p, (1, 2), (3, 4));
        assert_eq!(p[7], 1);
        translate_ssrcs(&mut [], (1, 2), (3, 4));
        translate_ssrcs(&mut [0x80, RR, 0, 0], (1, 2), (3, 4));
    }
}
