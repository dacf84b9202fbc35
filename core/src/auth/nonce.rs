//! Stateless nonces: the server keeps no table of issued nonces. A nonce carries its issue time
//! and a MAC over it, so any worker can check that the gateway issued it and how old it is.
//! Replay protection (nonce-count tracking) lives with the registrar, which sees the user.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The MAC key; the driver creates it from OS randomness at start-up (a restart invalidates
/// outstanding nonces, which clients answer by re-authenticating after `stale=true`).
#[derive(Clone)]
pub struct NonceKey {
    key: [u8; 32],
    /// Makes every nonce unique even within one millisecond: nonce-counts are tracked per
    /// nonce, so two phones sharing one would see each other's counts as replays.
    seq: Arc<AtomicU64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceCheck {
    Valid,
    /// Issued by us but older than the lifetime: answer with a new challenge and `stale=true`.
    Stale,
    /// Not one of ours (or tampered with): treat the credentials as wrong.
    Forged,
}

const MAC_HEX: usize = 32;
const TS_HEX: usize = 16;
const SEQ_HEX: usize = 16;

impl NonceKey {
    pub fn new(key: [u8; 32]) -> NonceKey {
        NonceKey {
            key,
            seq: Arc::new(AtomicU64::new(0)),
        }
    }

    fn mac(&self, issued: u64, seq: u64, realm: &str) -> [u8; 16] {
        // new_from_slice only fails for invalid key lengths, and HMAC accepts any length.
        let mut mac = match HmacSha256::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(&issued.to_be_bytes());
        mac.update(&seq.to_be_bytes());
        mac.update(realm.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// A nonce issued at `issued_ms` (milliseconds on the driver's wall clock) for `realm`.
    /// Milliseconds make nonces of one second distinct, which RFC 7616 section 3.3 recommends.
    pub fn issue(&self, issued_ms: u64, realm: &str) -> String {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut s = String::with_capacity(TS_HEX + SEQ_HEX + MAC_HEX);
        push_hex(&mut s, &issued_ms.to_be_bytes());
        push_hex(&mut s, &seq.to_be_bytes());
        push_hex(&mut s, &self.mac(issued_ms, seq, realm));
        s
    }

    /// Checks a nonce returned by a client at `now_ms`, allowing `lifetime_ms`.
    pub fn check(&self, nonce: &str, realm: &str, now_ms: u64, lifetime_ms: u64) -> NonceCheck {
        if nonce.len() != TS_HEX + SEQ_HEX + MAC_HEX || !nonce.is_ascii() {
            return NonceCheck::Forged;
        }
        let (Ok(issued), Ok(seq)) = (
            u64::from_str_radix(&nonce[..TS_HEX], 16),
            u64::from_str_radix(&nonce[TS_HEX..TS_HEX + SEQ_HEX], 16),
        ) else {
            return NonceCheck::Forged;
        };
        let mut expect = String::with_capacity(MAC_HEX);
        push_hex(&mut expect, &self.mac(issued, seq, realm));
        if !constant_time_eq(expect.as_bytes(), &nonce.as_bytes()[TS_HEX + SEQ_HEX..]) {
            return NonceCheck::Forged;
        }
        if issued > now_ms.saturating_add(1000) || now_ms - issued.min(now_ms) > lifetime_ms {
            return NonceCheck::Stale;
        }
        NonceCheck::Valid
    }
}

/// When the nonce was issued, in the driver's milliseconds (for nonce-count bookkeeping).
pub fn issued_ms(nonce: &str) -> Option<u64> {
    u64::from_str_radix(nonce.get(..TS_HEX)?, 16).ok()
}

pub(crate) fn push_hex(s: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
}

/// Compares without an early exit, so response timing does not reveal how much matched.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_and_check() {
        let k = NonceKey::new([7; 32]);
        let n = k.issue(1_000_000, "mgw.test");
        assert_ne!(
            n,
            k.clone().issue(1_000_000, "mgw.test"),
            "unique within a millisecond"
        );
        assert_eq!(
            k.check(&n, "mgw.test", 1_000_500, 30_000),
            NonceCheck::Valid
        );
        assert_eq!(
            k.check(&n, "mgw.test", 1_040_000, 30_000),
            NonceCheck::Stale
        );
        assert_eq!(
            k.check(&n, "other.realm", 1_000_500, 30_000),
            NonceCheck::Forged
        );
        let mut tampered = n.clone();
        tampered.replace_range(0..1, "1");
        assert_eq!(
            k.check(&tampered, "mgw.test", 1_000_500, 30_000),
            NonceCheck::Forged
        );
        assert_eq!(k.check("short", "mgw.test", 0, 1), NonceCheck::Forged);
        assert_eq!(
            NonceKey::new([8; 32]).check(&n, "mgw.test", 1_000_500, 30_000),
            NonceCheck::Forged
        );
        assert_eq!(issued_ms(&n), Some(1_000_000));
    }
}
