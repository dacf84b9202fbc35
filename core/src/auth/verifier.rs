//! Deciding who sent a request (RFC 3261 section 22): challenge, verify, or refuse. The answer
//! never tells an unknown user from a wrong password, in content or in work done.

use std::sync::Arc;

use super::digest::{self, Algorithm};
use super::{Credentials, CredentialsError, NonceCheck, NonceCounts, NonceKey};
use crate::directory::{Directory, LogOn};
use crate::sip::{HeaderName, Message};

pub struct Verifier {
    pub realm: String,
    pub nonce_key: NonceKey,
    pub nonce_lifetime_ms: u64,
    pub directory: Arc<Directory>,
    pub counts: Arc<NonceCounts>,
}

#[derive(Debug)]
pub enum Verdict {
    Authenticated(Arc<LogOn>),
    /// No usable credentials: send a challenge (`stale` when the nonce merely expired or was
    /// used up, so the phone retries without asking its user).
    Challenge {
        stale: bool,
    },
    /// Credentials that do not verify: 403, the same for unknown users and wrong passwords.
    Forbidden,
    Malformed,
}

/// Stands in for a missing log-on so an unknown user costs the same hashing as a known one.
const DUMMY_HA1: &str = "00000000000000000000000000000000";

impl Verifier {
    /// Checks the request's credentials in `header` (Authorization or Proxy-Authorization).
    pub fn verify(&self, msg: &Message<'_>, header: HeaderName, now_ms: u64) -> Verdict {
        let Some(method) = msg.method() else {
            return Verdict::Malformed;
        };
        let mut stale = false;
        for value in msg.all(header) {
            let c = match Credentials::parse(value) {
                Err(CredentialsError::NotDigest) => continue,
                Err(_) => return Verdict::Malformed,
                Ok(c) if c.realm != self.realm => continue,
                Ok(c) => c,
            };
            let Some(alg) = digest::Algorithm::from_param(c.algorithm) else {
                continue;
            };
            match self
                .nonce_key
                .check(c.nonce, &self.realm, now_ms, self.nonce_lifetime_ms)
            {
                NonceCheck::Forged => continue,
                NonceCheck::Stale => {
                    stale = true;
                    continue;
                }
                NonceCheck::Valid => {}
            }
            let log_on = self.directory.get(c.username);
            let ha1 = log_on.as_deref().map_or(DUMMY_HA1, |l| l.ha1(alg));
            let ok = digest::verify(&c, alg, ha1, method.as_str());
            let Some(log_on) = log_on.filter(|_| ok) else {
                return Verdict::Forbidden;
            };
            // Only a correct response may consume a nonce-count; otherwise anyone could burn
            // a phone's counts with garbage.
            if c.qop.is_some() {
                let fresh = c
                    .nonce_count()
                    .is_some_and(|nc| self.counts.record(c.nonce, nc));
                if !fresh {
                    return Verdict::Challenge { stale: true };
                }
            }
            return Verdict::Authenticated(log_on);
        }
        Verdict::Challenge { stale }
    }

    pub fn issue_nonce(&self, now_ms: u64) -> String {
        self.nonce_key.issue(now_ms, &self.realm)
    }
}

impl Algorithm {
    /// Every algorithm the verifier accepts, in the order challenges offer them.
    pub const OFFERED: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Md5];
}
