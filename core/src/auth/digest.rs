//! Digest computation and challenges: MD5 (RFC 2617 compatibility, what most phones send) and
//! SHA-256 (RFC 7616 / RFC 8760). Passwords are never kept: a log-on is stored as HA1 per
//! algorithm, `H(username ":" realm ":" password)`.

use md5::{Digest as _, Md5};
use sha2::Sha256;

use super::credentials::Credentials;
use super::nonce::{constant_time_eq, push_hex};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// The `algorithm=` value; absent means MD5 (RFC 7616 section 3.3).
    pub fn from_param(p: Option<&str>) -> Option<Algorithm> {
        match p {
            None => Some(Algorithm::Md5),
            Some(a) if a.eq_ignore_ascii_case("MD5") => Some(Algorithm::Md5),
            Some(a) if a.eq_ignore_ascii_case("SHA-256") => Some(Algorithm::Sha256),
            Some(_) => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Lower-case hex of the hash of `parts` joined by ':'.
    pub fn hash_hex(self, parts: &[&[u8]]) -> String {
        fn run<D: md5::Digest>(mut d: D, parts: &[&[u8]]) -> String {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            let out = d.finalize();
            let mut s = String::with_capacity(out.len() * 2);
            push_hex(&mut s, &out);
            s
        }
        match self {
            Algorithm::Md5 => run(Md5::new(), parts),
            Algorithm::Sha256 => run(Sha256::new(), parts),
        }
    }

    /// HA1 = H(username:realm:password), what the store keeps instead of the password.
    pub fn ha1(self, username: &str, realm: &str, password: &str) -> String {
        self.hash_hex(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()])
    }
}

/// Checks `response` in `creds` against the stored HA1 for `method` (RFC 7616 section 3.4.1).
pub fn verify(creds: &Credentials<'_>, alg: Algorithm, ha1: &str, method: &str) -> bool {
    let ha2 = alg.hash_hex(&[method.as_bytes(), creds.uri.as_bytes()]);
    let expected = match creds.qop {
        Some(qop) => alg.hash_hex(&[
            ha1.as_bytes(),
            creds.nonce.as_bytes(),
            creds.nc.unwrap_or("").as_bytes(),
            creds.cnonce.unwrap_or("").as_bytes(),
            qop.as_bytes(),
            ha2.as_bytes(),
        ]),
        None => alg.hash_hex(&[ha1.as_bytes(), creds.nonce.as_bytes(), ha2.as_bytes()]),
    };
    constant_time_eq(
        expected.as_bytes(),
        creds.response.to_ascii_lowercase().as_bytes(),
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeKind {
    /// 401 with WWW-Authenticate (registrar, RFC 3261 22.2).
    Www,
    /// 407 with Proxy-Authenticate (calls through the gateway).
    Proxy,
}

impl ChallengeKind {
    pub fn status(self) -> (u16, &'static str) {
        match self {
            ChallengeKind::Www => (401, "Unauthorized"),
            ChallengeKind::Proxy => (407, "Proxy Authentication Required"),
        }
    }

    pub fn header(self) -> &'static str {
        match self {
            ChallengeKind::Www => "WWW-Authenticate",
            ChallengeKind::Proxy => "Proxy-Authenticate",
        }
    }
}

/// One challenge per algorithm. RFC 8760 section 2.4 has clients take the first they support,
/// but many deployed ones (SIPp 3.6, older desk phones) take the first and fail on SHA-256, so
/// MD5 comes first unless `sha256_first` is set (docs/decisions.md).
pub struct Challenge<'a> {
    pub realm: &'a str,
    pub nonce: &'a str,
    pub stale: bool,
    pub sha256_first: bool,
    /// Only MD5, for clients that fail on any challenge they cannot answer instead of skipping
    /// it (libre/baresip 1.x: ENOSYS on a SHA-256 challenge, even after an MD5 one).
    pub md5_only: bool,
}

impl Challenge<'_> {
    pub fn header_values(&self) -> Vec<String> {
        let order: &[Algorithm] = if self.md5_only {
            &[Algorithm::Md5]
        } else if self.sha256_first {
            &[Algorithm::Sha256, Algorithm::Md5]
        } else {
            &[Algorithm::Md5, Algorithm::Sha256]
        };
        order
            .iter()
            .map(|alg| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{}\", algorithm={}, qop=\"auth\"{}",
                    self.realm,
                    self.nonce,
                    alg.as_str(),
                    if self.stale { ", stale=true" } else { "" }
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_md5_vector() {
        // RFC 2617 section 3.5: Mufasa / Circle Of Life, qop=auth.
        let ha1 = Algorithm::Md5.ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
        let c = Credentials {
            username: "Mufasa",
            realm: "testrealm@host.com",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            uri: "/dir/index.html",
            response: "6629fae49393a05397450978507c4ef1",
            qop: Some("auth"),
            nc: Some("00000001"),
            cnonce: Some("0a4f113b"),
            ..Credentials::default()
        };
        assert!(verify(&c, Algorithm::Md5, &ha1, "GET"));
        assert!(!verify(&c, Algorithm::Md5, &ha1, "POST"));
    }

    #[test]
    fn rfc7616_sha256_vector() {
        // RFC 7616 section 3.9.1.
        let ha1 = Algorithm::Sha256.ha1("Mufasa", "http-auth@example.org", "Circle of Life");
        let c = Credentials {
            username: "Mufasa",
            realm: "http-auth@example.org",
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            uri: "/dir/index.html",
            response: "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            qop: Some("auth"),
            nc: Some("00000001"),
            cnonce: Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"),
            ..Credentials::default()
        };
        assert!(verify(&c, Algorithm::Sha256, &ha1, "GET"));
    }

    #[test]
    fn challenges_offer_both() {
        let v = Challenge {
            realm: "mgw.test",
            nonce: "n",
            stale: true,
            sha256_first: true,
            md5_only: false,
        }
        .header_values();
        assert!(v[0].contains("algorithm=SHA-256") && v[0].contains("stale=true"));
        assert!(v[1].contains("algorithm=MD5"));
    }
}
