//! What a completion (io_uring user_data) or readiness event (epoll data) refers to, packed in
//! 64 bits: an 8-bit kind and a 56-bit payload.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    /// A UDP socket of this worker (index).
    Udp(u32),
    /// A TCP listener of this worker (index).
    Listener(u32),
    /// The mailbox eventfd.
    Wake,
    /// A TCP connection (`ConnId::local_bits`).
    Conn(u64),
    /// An io_uring operation whose memory lives in the op slab (key).
    Op(u32),
    /// An io_uring cancel request; its completion carries nothing we need.
    Cancel,
}

const KIND_SHIFT: u32 = 56;
const PAYLOAD: u64 = (1 << KIND_SHIFT) - 1;

impl Token {
    pub(crate) fn encode(self) -> u64 {
        let (kind, payload) = match self {
            Token::Udp(i) => (1, u64::from(i)),
            Token::Listener(i) => (2, u64::from(i)),
            Token::Wake => (3, 0),
            Token::Conn(bits) => (4, bits & PAYLOAD),
            Token::Op(key) => (5, u64::from(key)),
            Token::Cancel => (6, 0),
        };
        kind << KIND_SHIFT | payload
    }

    pub(crate) fn decode(v: u64) -> Option<Token> {
        let payload = v & PAYLOAD;
        let small = u32::try_from(payload).ok();
        Some(match v >> KIND_SHIFT {
            1 => Token::Udp(small?),
            2 => Token::Listener(small?),
            3 => Token::Wake,
            4 => Token::Conn(payload),
            5 => Token::Op(small?),
            6 => Token::Cancel,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for t in [
            Token::Udp(3),
            Token::Listener(0),
            Token::Wake,
            Token::Conn(0xffff_ffff_ffff),
            Token::Op(77),
            Token::Cancel,
        ] {
            assert_eq!(Token::decode(t.encode()), Some(t));
        }
        assert_eq!(Token::decode(0), None);
    }
}
