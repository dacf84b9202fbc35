//! The client side of HTTP Digest for SIP (RFC 3261 22, RFC 7616, RFC 8760): picking a challenge
//! out of `WWW-Authenticate` / `Proxy-Authenticate` and writing the `Authorization` answer.
//!
//! Hashes are written as hex into fixed arrays rather than through
//! `mgw_core::auth::Algorithm::hash_hex` (which returns a `String`), because the response is
//! computed once per flow on the hot path; the tests hold both to the same results.

use md5::{Digest as _, Md5};
use mgw_core::auth::Algorithm;
use mgw_core::sip::lex;
use sha2::Sha256;

/// One Digest challenge, borrowed from the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Challenge<'a> {
    pub algorithm: Algorithm,
    pub realm: &'a str,
    pub nonce: &'a str,
    pub opaque: Option<&'a str>,
    /// The server offered `qop=auth`: answer with nc and cnonce. Without qop the RFC 2069 form.
    pub qop_auth: bool,
    pub stale: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeError {
    /// No Digest challenge at all, or only ones with algorithms or qop values we do not speak.
    NoneSupported,
}

/// The first challenge we can answer, over every field value in order: servers list SHA-256
/// first and RFC 8760 section 2.4 has clients take the first they support.
pub fn choose<'a>(values: impl Iterator<Item = &'a str>) -> Result<Challenge<'a>, ChallengeError> {
    for value in values {
        let mut current: Option<Draft<'a>> = None;
        for item in lex::split_outside(value, b',') {
            // `Scheme param=value` starts a new challenge; a bare `param=value` continues one.
            let param = match scheme_split(item) {
                Some((scheme, rest)) => {
                    if let Some(c) = current.take().and_then(Draft::finish) {
                        return Ok(c);
                    }
                    current = scheme.eq_ignore_ascii_case("Digest").then(Draft::default);
                    rest
                }
                None => item,
            };
            if let Some(d) = current.as_mut() {
                d.param(param);
            }
        }
        if let Some(c) = current.and_then(Draft::finish) {
            return Ok(c);
        }
    }
    Err(ChallengeError::NoneSupported)
}

/// Splits `Digest realm="x"` into the scheme and its first param; `None` for a plain param.
fn scheme_split(item: &str) -> Option<(&str, &str)> {
    let tok = lex::token_len(item.as_bytes());
    let rest = &item[tok..];
    if tok == 0 || !rest.bytes().next().is_some_and(lex::is_lws) {
        return None;
    }
    Some((&item[..tok], lex::trim(rest)))
}

#[derive(Default)]
struct Draft<'a> {
    algorithm: Option<&'a str>,
    realm: Option<&'a str>,
    nonce: Option<&'a str>,
    opaque: Option<&'a str>,
    qop: Option<&'a str>,
    stale: bool,
}

impl<'a> Draft<'a> {
    fn param(&mut self, p: &'a str) {
        let Some((name, value)) = p.split_once('=') else {
            return;
        };
        let value = unquote(lex::trim(value));
        match lex::trim(name).to_ascii_lowercase().as_str() {
            "algorithm" => self.algorithm = Some(value),
            "realm" => self.realm = Some(value),
            "nonce" => self.nonce = Some(value),
            "opaque" => self.opaque = Some(value),
            "qop" => self.qop = Some(value),
            "stale" => self.stale = value.eq_ignore_ascii_case("true"),
            _ => {}
        }
    }

    fn finish(self) -> Option<Challenge<'a>> {
        let algorithm = Algorithm::from_param(self.algorithm)?;
        let qop_auth = match self.qop {
            None => false,
            Some(q) => {
                if !q
                    .split(',')
                    .any(|t| lex::trim(t).eq_ignore_ascii_case("auth"))
                {
                    return None; // auth-int only: we do not hash bodies
                }
                true
            }
        };
        Some(Challenge {
            algorithm,
            realm: self.realm?,
            nonce: self.nonce?,
            opaque: self.opaque,
            qop_auth,
            stale: self.stale,
        })
    }
}

fn unquote(v: &str) -> &str {
    match v.strip_prefix('"') {
        Some(inner) => inner.strip_suffix('"').unwrap_or(inner),
        None => v,
    }
}

/// Lower-case hex of a digest, up to SHA-256's 64 digits, on the stack.
#[derive(Clone, Copy)]
pub struct Hex {
    buf: [u8; 64],
    len: u8,
}

impl Hex {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    fn from_digest(d: &[u8]) -> Hex {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut h = Hex {
            buf: [0; 64],
            len: 0,
        };
        for (i, b) in d.iter().take(32).enumerate() {
            h.buf[2 * i] = DIGITS[usize::from(b >> 4)];
            h.buf[2 * i + 1] = DIGITS[usize::from(b & 15)];
        }
        h.len = (d.len().min(32) * 2) as u8;
        h
    }
}

/// H(parts joined by ':'), as `Algorithm::hash_hex` computes it.
pub fn hash(alg: Algorithm, parts: &[&[u8]]) -> Hex {
    fn run<D: md5::Digest>(mut d: D, parts: &[&[u8]]) -> Hex {
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                d.update(b":");
            }
            d.update(p);
        }
        Hex::from_digest(&d.finalize())
    }
    match alg {
        Algorithm::Md5 => run(Md5::new(), parts),
        Algorithm::Sha256 => run(Sha256::new(), parts),
    }
}

/// The nonce-count of the one request each challenge is used for.
pub const NC: &str = "00000001";

/// What the `Authorization` header needs besides the challenge.
pub struct Answer<'a> {
    pub username: &'a str,
    pub uri: &'a str,
    pub ha1: &'a Hex,
    pub ha2: &'a Hex,
    pub cnonce: &'a [u8],
}

/// The request-digest (RFC 7616 section 3.4.1; RFC 2069 when the server gave no qop).
pub fn response(c: &Challenge<'_>, a: &Answer<'_>) -> Hex {
    if c.qop_auth {
        hash(
            c.algorithm,
            &[
                a.ha1.as_bytes(),
                c.nonce.as_bytes(),
                NC.as_bytes(),
                a.cnonce,
                b"auth",
                a.ha2.as_bytes(),
            ],
        )
    } else {
        hash(
            c.algorithm,
            &[a.ha1.as_bytes(), c.nonce.as_bytes(), a.ha2.as_bytes()],
        )
    }
}

/// Appends `NAME: Digest ...\r\n` (NAME is `Authorization` or `Proxy-Authorization`).
pub fn write_header(out: &mut Vec<u8>, name: &str, c: &Challenge<'_>, a: &Answer<'_>) {
    let resp = response(c, a);
    let mut put = |parts: &[&[u8]]| {
        for p in parts {
            out.extend_from_slice(p);
        }
    };
    put(&[
        name.as_bytes(),
        b": Digest username=\"",
        a.username.as_bytes(),
        b"\", realm=\"",
        c.realm.as_bytes(),
        b"\", nonce=\"",
        c.nonce.as_bytes(),
        b"\", uri=\"",
        a.uri.as_bytes(),
        b"\", response=\"",
        resp.as_bytes(),
        b"\", algorithm=",
        c.algorithm.as_str().as_bytes(),
    ]);
    if let Some(o) = c.opaque {
        put(&[b", opaque=\"", o.as_bytes(), b"\""]);
    }
    if c.qop_auth {
        put(&[
            b", qop=auth, nc=",
            NC.as_bytes(),
            b", cnonce=\"",
            a.cnonce,
            b"\"",
        ]);
    }
    put(&[b"\r\n"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use mgw_core::auth::{digest, Credentials};

    #[test]
    fn hash_matches_core() {
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let parts: [&[u8]; 3] = [b"alice", b"mgw.test", b"secret"];
            assert_eq!(
                hash(alg, &parts).as_bytes(),
                alg.hash_hex(&parts).as_bytes()
            );
            assert_eq!(
                hash(alg, &parts).as_bytes(),
                alg.ha1("alice", "mgw.test", "secret").as_bytes()
            );
        }
    }

    #[test]
    fn takes_the_first_supported_challenge() {
        let offered = [
            "Digest realm=\"mgw.test\", nonce=\"n1\", algorithm=SHA-256, qop=\"auth\"",
            "Digest realm=\"mgw.test\", nonce=\"n1\", algorithm=MD5, qop=\"auth\"",
        ];
        let c = choose(offered.into_iter()).expect("supported");
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert_eq!((c.realm, c.nonce, c.qop_auth), ("mgw.test", "n1", true));

        // Unknown algorithm first, then MD5, both in one field.
        let one = "Digest realm=\"r\", nonce=\"a\", algorithm=SHA-512-256, qop=\"auth\", \
                   Digest realm=\"r\", nonce=\"b\", algorithm=MD5, qop=\"auth,auth-int\", opaque=\"o\"";
        let c = choose([one].into_iter()).expect("md5");
        assert_eq!(
            (c.algorithm, c.nonce, c.opaque),
            (Algorithm::Md5, "b", Some("o"))
        );

        // Kamailio's shape: no algorithm (MD5), unquoted stale, qop list.
        let k = "Digest realm=\"127.0.0.1\", nonce=\"Zx/1\", qop=\"auth\", stale=TRUE";
        let c = choose([k].into_iter()).expect("kamailio");
        assert!(c.stale && c.qop_auth && c.algorithm == Algorithm::Md5);

        assert!(choose(["Basic realm=\"x\""].into_iter()).is_err());
        assert!(choose(["Digest realm=\"x\", nonce=\"n\", qop=\"auth-int\""].into_iter()).is_err());
        assert!(choose(["Digest nonce=\"n\""].into_iter()).is_err());
    }

    #[test]
    fn answers_verify_with_core() {
        for (alg, qop) in [
            (Algorithm::Sha256, true),
            (Algorithm::Md5, true),
            (Algorithm::Md5, false),
        ] {
            let c = Challenge {
                algorithm: alg,
                realm: "mgw.test",
                nonce: "abc/def=",
                opaque: Some("op"),
                qop_auth: qop,
                stale: false,
            };
            let ha1 = hash(alg, &[b"alice", b"mgw.test", b"secret"]);
            let ha2 = hash(alg, &[b"REGISTER", b"sip:mgw.test"]);
            let a = Answer {
                username: "alice",
                uri: "sip:mgw.test",
                ha1: &ha1,
                ha2: &ha2,
                cnonce: b"0123456789abcdef",
            };
            let mut out = Vec::new();
            write_header(&mut out, "Authorization", &c, &a);
            let line = std::str::from_utf8(&out).expect("ascii");
            let value = line
                .strip_prefix("Authorization: ")
                .and_then(|v| v.strip_suffix("\r\n"))
                .expect("shape");
            let creds = Credentials::parse(value).expect("core parses it");
            assert_eq!(creds.opaque, Some("op"));
            assert_eq!(creds.qop.is_some(), qop);
            let core_ha1 = alg.ha1("alice", "mgw.test", "secret");
            assert!(digest::verify(&creds, alg, &core_ha1, "REGISTER"));
        }
    }
}
