//! Digest authentication, client side (RFC 3261 section 22, RFC 2617, RFC 7616, RFC 8760):
//! reading a `WWW-Authenticate` / `Proxy-Authenticate` challenge and answering it with an
//! `Authorization` / `Proxy-Authorization` value.
//!
//! The hashes are core's ([`crate::auth::Algorithm`]), so what this side computes is exactly
//! what the server side verifies.

use std::fmt;

use super::Rng;
use crate::auth::Algorithm;
use crate::sip::{lex, HeaderName, Message};

/// The algorithms a client can answer. The `-sess` variants hash the client nonce into HA1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl DigestAlgorithm {
    /// The `algorithm=` token; absent means MD5 (RFC 7616 section 3.3).
    pub fn from_param(p: Option<&str>) -> Option<DigestAlgorithm> {
        let Some(p) = p else {
            return Some(DigestAlgorithm::Md5);
        };
        [
            DigestAlgorithm::Md5,
            DigestAlgorithm::Md5Sess,
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Sha256Sess,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(p))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Md5Sess => "MD5-sess",
            DigestAlgorithm::Sha256 => "SHA-256",
            DigestAlgorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn hash(self) -> Algorithm {
        match self {
            DigestAlgorithm::Md5 | DigestAlgorithm::Md5Sess => Algorithm::Md5,
            DigestAlgorithm::Sha256 | DigestAlgorithm::Sha256Sess => Algorithm::Sha256,
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, DigestAlgorithm::Md5Sess | DigestAlgorithm::Sha256Sess)
    }

    /// Preference when a server offers several: the stronger hash first (RFC 8760 section 2.4
    /// lets the client choose among the challenges it supports).
    fn rank(self) -> u8 {
        match self {
            DigestAlgorithm::Sha256 => 0,
            DigestAlgorithm::Sha256Sess => 1,
            DigestAlgorithm::Md5 => 2,
            DigestAlgorithm::Md5Sess => 3,
        }
    }
}

/// Which header carried the challenge, and so which header answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChallengeKind {
    /// 401 with `WWW-Authenticate`, answered in `Authorization`.
    Www,
    /// 407 with `Proxy-Authenticate`, answered in `Proxy-Authorization`.
    Proxy,
}

impl ChallengeKind {
    pub fn of_status(status: u16) -> Option<ChallengeKind> {
        match status {
            401 => Some(ChallengeKind::Www),
            407 => Some(ChallengeKind::Proxy),
            _ => None,
        }
    }

    pub fn challenge_header(self) -> HeaderName {
        match self {
            ChallengeKind::Www => HeaderName::WwwAuthenticate,
            ChallengeKind::Proxy => HeaderName::ProxyAuthenticate,
        }
    }

    pub fn answer_header(self) -> &'static str {
        match self {
            ChallengeKind::Www => "Authorization",
            ChallengeKind::Proxy => "Proxy-Authorization",
        }
    }

    fn status(self) -> u16 {
        match self {
            ChallengeKind::Www => 401,
            ChallengeKind::Proxy => 407,
        }
    }
}

/// One digest challenge, unquoted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: DigestAlgorithm,
    /// The server offered `qop=auth`; without it the answer is the RFC 2069 form.
    pub qop_auth: bool,
    /// The nonce merely expired: the same credentials are welcome with the new one.
    pub stale: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DigestError {
    /// The response carries no challenge header at all.
    NoChallenge,
    /// A scheme other than Digest (e.g. Basic, which SIP forbids).
    NotDigest(String),
    /// The parameter list does not follow `name=value, ...`, or a quote is unterminated.
    Malformed,
    MissingRealm,
    MissingNonce,
    UnsupportedAlgorithm(String),
    /// `qop` offered, but not `auth` (`auth-int` alone is not implemented).
    UnsupportedQop(String),
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestError::NoChallenge => f.write_str("challenge without a digest header"),
            DigestError::NotDigest(s) => write!(f, "unsupported authentication scheme {s}"),
            DigestError::Malformed => f.write_str("malformed digest challenge"),
            DigestError::MissingRealm => f.write_str("digest challenge without realm"),
            DigestError::MissingNonce => f.write_str("digest challenge without nonce"),
            DigestError::UnsupportedAlgorithm(a) => write!(f, "unsupported digest algorithm {a}"),
            DigestError::UnsupportedQop(q) => write!(f, "unsupported digest qop {q}"),
        }
    }
}

impl std::error::Error for DigestError {}

impl Challenge {
    /// Every challenge in one header value. RFC 7235 allows several challenges in one field,
    /// each starting with its scheme, so a new one starts at an item of the form
    /// `scheme name=value`.
    pub fn parse_all(value: &str) -> Vec<Result<Challenge, DigestError>> {
        let mut out = Vec::new();
        let mut current: Option<(String, Vec<(String, String)>)> = None;
        let mut broken = false;
        for item in lex::split_outside(value, b',') {
            let item = lex::trim(item);
            if item.is_empty() {
                continue;
            }
            let scheme_end = item.find(|c: char| c.is_ascii() && lex::is_lws(c as u8));
            // `realm = "x"` has LWS after its first token too; only `=` tells them apart.
            let starts_scheme = match scheme_end {
                Some(end) => {
                    lex::is_token_str(&item[..end]) && !lex::trim(&item[end..]).starts_with('=')
                }
                None => !item.contains('=') && lex::is_token_str(item),
            };
            let param = if starts_scheme {
                if let Some((scheme, params)) = current.take() {
                    out.push(finish(&scheme, &params, broken));
                }
                broken = false;
                let end = scheme_end.unwrap_or(item.len());
                current = Some((item[..end].to_string(), Vec::new()));
                lex::trim(&item[end..])
            } else {
                item
            };
            let Some((_, params)) = current.as_mut() else {
                // Parameters before any scheme.
                out.push(Err(DigestError::Malformed));
                continue;
            };
            if param.is_empty() {
                continue;
            }
            match split_param(param) {
                Some(p) => params.push(p),
                None => broken = true,
            }
        }
        if let Some((scheme, params)) = current {
            out.push(finish(&scheme, &params, broken));
        }
        if out.is_empty() {
            out.push(Err(DigestError::Malformed));
        }
        out
    }

    /// The one challenge of a value that holds exactly one (the usual case).
    pub fn parse(value: &str) -> Result<Challenge, DigestError> {
        Challenge::parse_all(value)
            .into_iter()
            .next()
            .unwrap_or(Err(DigestError::Malformed))
    }

    /// The challenge to answer among every one of `kind` in a 401/407: the strongest
    /// algorithm supported. Without a usable one, the first fault found.
    pub fn best_of(msg: &Message<'_>, kind: ChallengeKind) -> Result<Challenge, DigestError> {
        let mut best: Option<Challenge> = None;
        let mut first_err = None;
        for value in msg.all(kind.challenge_header()) {
            for c in Challenge::parse_all(value) {
                match c {
                    Ok(c) => {
                        if best
                            .as_ref()
                            .is_none_or(|b| c.algorithm.rank() < b.algorithm.rank())
                        {
                            best = Some(c);
                        }
                    }
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        best.ok_or(first_err.unwrap_or(DigestError::NoChallenge))
    }
}

fn split_param(p: &str) -> Option<(String, String)> {
    let (name, value) = p.split_once('=')?;
    let name = lex::trim(name);
    let value = lex::trim(value);
    if !lex::is_token_str(name) {
        return None;
    }
    let value = if value.starts_with('"') {
        if lex::quoted_len(value.as_bytes()) != Some(value.len()) {
            return None;
        }
        unquote(&value[1..value.len() - 1])
    } else {
        value.to_string()
    };
    Some((name.to_ascii_lowercase(), value))
}

/// The content of a quoted-string with its quoted-pairs resolved.
fn unquote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

/// `s` as a quoted-string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn finish(
    scheme: &str,
    params: &[(String, String)],
    broken: bool,
) -> Result<Challenge, DigestError> {
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(DigestError::NotDigest(scheme.to_string()));
    }
    if broken {
        return Err(DigestError::Malformed);
    }
    let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let realm = get("realm").ok_or(DigestError::MissingRealm)?;
    let nonce = get("nonce")
        .filter(|n| !n.is_empty())
        .ok_or(DigestError::MissingNonce)?;
    let alg = get("algorithm");
    let algorithm = DigestAlgorithm::from_param(alg)
        .ok_or_else(|| DigestError::UnsupportedAlgorithm(alg.unwrap_or("").to_string()))?;
    let qop_auth = match get("qop") {
        None => false,
        Some(q) => {
            if !q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")) {
                return Err(DigestError::UnsupportedQop(q.to_string()));
            }
            true
        }
    };
    Ok(Challenge {
        realm: realm.to_string(),
        nonce: nonce.to_string(),
        opaque: get("opaque").map(str::to_string),
        algorithm,
        qop_auth,
        stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
    })
}

/// Everything that goes into one answer, for computing it without any state.
#[derive(Clone, Copy, Debug)]
pub struct Answer<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    /// The nonce-count, 1 for the first use of a nonce.
    pub nc: u32,
    pub cnonce: &'a str,
}

/// The request-digest of RFC 7616 section 3.4.1 (RFC 2617 section 3.2.2), lower-case hex.
pub fn response(ch: &Challenge, a: &Answer<'_>) -> String {
    let alg = ch.algorithm.hash();
    let mut ha1 = alg.ha1(a.username, &ch.realm, a.password);
    if ch.algorithm.is_sess() {
        ha1 = alg.hash_hex(&[ha1.as_bytes(), ch.nonce.as_bytes(), a.cnonce.as_bytes()]);
    }
    let ha2 = alg.hash_hex(&[a.method.as_bytes(), a.uri.as_bytes()]);
    if ch.qop_auth {
        let nc = format!("{:08x}", a.nc);
        alg.hash_hex(&[
            ha1.as_bytes(),
            ch.nonce.as_bytes(),
            nc.as_bytes(),
            a.cnonce.as_bytes(),
            b"auth",
            ha2.as_bytes(),
        ])
    } else {
        alg.hash_hex(&[ha1.as_bytes(), ch.nonce.as_bytes(), ha2.as_bytes()])
    }
}

/// The `Authorization` / `Proxy-Authorization` value answering `ch`.
pub fn authorization(ch: &Challenge, a: &Answer<'_>) -> String {
    let mut v = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response=\"{}\", algorithm={}",
        quote(a.username),
        quote(&ch.realm),
        quote(&ch.nonce),
        quote(a.uri),
        response(ch, a),
        ch.algorithm.as_str(),
    );
    if ch.qop_auth {
        v.push_str(&format!(
            ", cnonce={}, qop=auth, nc={:08x}",
            quote(a.cnonce),
            a.nc
        ));
    } else if ch.algorithm.is_sess() {
        // HA1 of a -sess algorithm depends on the cnonce, so the server needs it even here.
        v.push_str(&format!(", cnonce={}", quote(a.cnonce)));
    }
    if let Some(o) = &ch.opaque {
        v.push_str(&format!(", opaque={}", quote(o)));
    }
    v
}

/// What became of a challenge handed to [`DigestClient::on_challenge`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChallengeVerdict {
    /// Send the request again with credentials.
    Retry,
    /// The credentials were refused: the same challenge came back for an answer given in
    /// this exchange (a second challenge with the same nonce, or a fresh one that is not
    /// marked stale).
    Rejected { status: u16 },
    /// No challenge this side can answer.
    Unusable(DigestError),
}

#[derive(Clone, Debug)]
struct Held {
    challenge: Challenge,
    /// The last nonce-count used with this nonce.
    nc: u32,
    /// Challenges of this kind taken in the current exchange.
    taken: u8,
}

/// Limits challenge ping-pong with a server that keeps saying `stale=true`.
const MAX_CHALLENGES_PER_EXCHANGE: u8 = 3;

/// The credentials of one account and the challenges it has answered. A nonce is reused for
/// later requests with a rising nonce-count (RFC 7616 section 3.4), which saves a round trip
/// on every registration refresh.
#[derive(Clone)]
pub struct DigestClient {
    username: String,
    password: String,
    www: Option<Held>,
    proxy: Option<Held>,
    rng: Rng,
}

/// Without the password, which must not reach logs.
impl fmt::Debug for DigestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestClient")
            .field("username", &self.username)
            .field("www", &self.www)
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

impl DigestClient {
    /// `seed` drives the client nonces; the host passes fresh randomness per account.
    pub fn new(username: &str, password: &str, seed: u64) -> DigestClient {
        DigestClient {
            username: username.to_string(),
            password: password.to_string(),
            www: None,
            proxy: None,
            rng: Rng::new(seed),
        }
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    /// A new request starts (not a retry of the last one after a challenge): every challenge
    /// may be answered once more.
    pub fn begin_exchange(&mut self) {
        for h in [&mut self.www, &mut self.proxy].into_iter().flatten() {
            h.taken = 0;
        }
    }

    /// Takes the challenge of a 401 or 407 response.
    pub fn on_challenge(&mut self, resp: &Message<'_>) -> ChallengeVerdict {
        let Some(kind) = resp.status().and_then(ChallengeKind::of_status) else {
            return ChallengeVerdict::Unusable(DigestError::NoChallenge);
        };
        let ch = match Challenge::best_of(resp, kind) {
            Ok(c) => c,
            Err(e) => return ChallengeVerdict::Unusable(e),
        };
        let slot = match kind {
            ChallengeKind::Www => &mut self.www,
            ChallengeKind::Proxy => &mut self.proxy,
        };
        let taken = slot.as_ref().map_or(0, |h| h.taken);
        let same_nonce = slot
            .as_ref()
            .is_some_and(|h| h.challenge.nonce == ch.nonce && h.challenge.realm == ch.realm);
        if taken >= MAX_CHALLENGES_PER_EXCHANGE || (taken > 0 && (same_nonce || !ch.stale)) {
            return ChallengeVerdict::Rejected {
                status: kind.status(),
            };
        }
        let nc = if same_nonce {
            slot.as_ref().map_or(0, |h| h.nc)
        } else {
            0
        };
        *slot = Some(Held {
            challenge: ch,
            nc,
            taken: taken + 1,
        });
        ChallengeVerdict::Retry
    }

    /// The credential headers for a request, one per challenge held, each with the next
    /// nonce-count and a fresh client nonce.
    pub fn headers(&mut self, method: &str, uri: &str) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (kind, held) in [
            (ChallengeKind::Www, &mut self.www),
            (ChallengeKind::Proxy, &mut self.proxy),
        ] {
            let Some(h) = held else { continue };
            h.nc = h.nc.wrapping_add(1).max(1);
            let cnonce = self.rng.hex();
            let value = authorization(
                &h.challenge,
                &Answer {
                    username: &self.username,
                    password: &self.password,
                    method,
                    uri,
                    nc: h.nc,
                    cnonce: &cnonce,
                },
            );
            out.push((kind.answer_header(), value));
        }
        out
    }

    /// Drops every challenge held, e.g. when the account moves to another server.
    pub fn forget(&mut self) {
        self.www = None;
        self.proxy = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{digest::verify, Credentials};

    fn rfc2617() -> Challenge {
        Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap()
    }

    #[test]
    fn parses_the_rfc2617_challenge() {
        let c = rfc2617();
        assert_eq!(c.realm, "testrealm@host.com");
        assert_eq!(c.nonce, "dcd98b7102dd2f0e8b11d0f600bfb0c093");
        assert_eq!(
            c.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        assert_eq!(c.algorithm, DigestAlgorithm::Md5);
        assert!(c.qop_auth);
        assert!(!c.stale);
    }

    #[test]
    fn rfc2617_response_vector() {
        let a = Answer {
            username: "Mufasa",
            password: "Circle Of Life",
            method: "GET",
            uri: "/dir/index.html",
            nc: 1,
            cnonce: "0a4f113b",
        };
        assert_eq!(response(&rfc2617(), &a), "6629fae49393a05397450978507c4ef1");
        let v = authorization(&rfc2617(), &a);
        assert!(v.contains("nc=00000001") && v.contains("qop=auth"), "{v}");
        assert!(
            v.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""),
            "{v}"
        );
        // The server side of core accepts it.
        let c = Credentials::parse(&v).unwrap();
        let ha1 = Algorithm::Md5.ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
        assert!(verify(&c, Algorithm::Md5, &ha1, "GET"));
    }

    #[test]
    fn rfc7616_vectors() {
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let a = Answer {
            username: "Mufasa",
            password: "Circle of Life",
            method: "GET",
            uri: "/dir/index.html",
            nc: 1,
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        };
        for (alg, want) in [
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ] {
            let c = Challenge::parse(&format!(
                "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
                 algorithm={alg}, nonce=\"{nonce}\", \
                 opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            ))
            .unwrap();
            assert_eq!(response(&c, &a), want, "{alg}");
        }
    }

    #[test]
    fn sess_hashes_the_client_nonce_into_ha1() {
        let c = Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess, qop=auth")
            .unwrap();
        let a = Answer {
            username: "u",
            password: "p",
            method: "REGISTER",
            uri: "sip:r",
            nc: 2,
            cnonce: "c",
        };
        let md5 = Algorithm::Md5;
        let ha1 = md5.hash_hex(&[md5.ha1("u", "r", "p").as_bytes(), b"n", b"c"]);
        let ha2 = md5.hash_hex(&[b"REGISTER", b"sip:r"]);
        let want = md5.hash_hex(&[
            ha1.as_bytes(),
            b"n",
            b"00000002",
            b"c",
            b"auth",
            ha2.as_bytes(),
        ]);
        assert_eq!(response(&c, &a), want);
    }

    #[test]
    fn without_qop_the_rfc2069_form_is_used() {
        let c = Challenge::parse("Digest realm=\"r\", nonce=\"n\"").unwrap();
        let a = Answer {
            username: "u",
            password: "p",
            method: "INVITE",
            uri: "sip:b@r",
            nc: 1,
            cnonce: "x",
        };
        let v = authorization(&c, &a);
        assert!(!v.contains("nc=") && !v.contains("cnonce"), "{v}");
        let creds = Credentials::parse(&v).unwrap();
        assert!(verify(
            &creds,
            Algorithm::Md5,
            &Algorithm::Md5.ha1("u", "r", "p"),
            "INVITE"
        ));
    }

    #[test]
    fn faults_are_named() {
        assert_eq!(
            Challenge::parse("Basic realm=\"x\""),
            Err(DigestError::NotDigest("Basic".into()))
        );
        assert_eq!(
            Challenge::parse("Digest nonce=\"n\""),
            Err(DigestError::MissingRealm)
        );
        assert_eq!(
            Challenge::parse("Digest realm=\"r\""),
            Err(DigestError::MissingNonce)
        );
        assert_eq!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256"),
            Err(DigestError::UnsupportedAlgorithm("SHA-512-256".into()))
        );
        assert_eq!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\""),
            Err(DigestError::UnsupportedQop("auth-int".into()))
        );
        assert_eq!(
            Challenge::parse("Digest realm=\"r"),
            Err(DigestError::Malformed)
        );
        assert_eq!(Challenge::parse(""), Err(DigestError::Malformed));
        assert_eq!(Challenge::parse("realm=x"), Err(DigestError::Malformed));
        // Quoted-pairs are resolved, and quoted again when answering.
        let c = Challenge::parse(r#"Digest realm="a \"b\" \\c", nonce="n""#).unwrap();
        assert_eq!(c.realm, r#"a "b" \c"#);
    }

    #[test]
    fn several_challenges_in_one_field() {
        let all = Challenge::parse_all(
            "Digest realm=\"r\", nonce=\"a\", algorithm=MD5, Digest realm=\"r\", nonce=\"b\", \
             algorithm=SHA-256, stale=TRUE",
        );
        assert_eq!(all.len(), 2);
        let second = all[1].clone().unwrap();
        assert_eq!(second.algorithm, DigestAlgorithm::Sha256);
        assert!(second.stale);
    }

    fn challenge_response(status: u16, header: &str, values: &[&str]) -> Vec<u8> {
        let mut s = format!(
            "SIP/2.0 {status} X\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@r>;tag=1\r\n\
             To: <sip:a@r>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n"
        );
        for v in values {
            s.push_str(&format!("{header}: {v}\r\n"));
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        s.into_bytes()
    }

    #[test]
    fn sha256_is_preferred_and_nc_counts_per_nonce() {
        let raw = challenge_response(
            401,
            "WWW-Authenticate",
            &[
                "Digest realm=\"r\", nonce=\"n1\", algorithm=MD5, qop=\"auth\"",
                "Digest realm=\"r\", nonce=\"n1\", algorithm=SHA-256, qop=\"auth\"",
            ],
        );
        let m = Message::parse(&raw).unwrap();
        assert_eq!(
            Challenge::best_of(&m, ChallengeKind::Www)
                .unwrap()
                .algorithm,
            DigestAlgorithm::Sha256
        );
        let mut d = DigestClient::new("u", "p", 7);
        assert_eq!(d.on_challenge(&m), ChallengeVerdict::Retry);
        let h1 = d.headers("REGISTER", "sip:r");
        assert_eq!(h1.len(), 1);
        assert_eq!(h1[0].0, "Authorization");
        assert!(h1[0].1.contains("algorithm=SHA-256") && h1[0].1.contains("nc=00000001"));
        let h2 = d.headers("REGISTER", "sip:r");
        assert!(h2[0].1.contains("nc=00000002"), "{}", h2[0].1);
        let c1 = Credentials::parse(&h1[0].1).unwrap();
        let c2 = Credentials::parse(&h2[0].1).unwrap();
        assert_ne!(c1.cnonce, c2.cnonce, "a fresh client nonce each time");
        // The same nonce again in this exchange: the credentials were refused.
        assert_eq!(
            d.on_challenge(&m),
            ChallengeVerdict::Rejected { status: 401 }
        );
        // A new exchange may answer it once (the nonce was only reused), and counting goes on.
        d.begin_exchange();
        assert_eq!(d.on_challenge(&m), ChallengeVerdict::Retry);
        assert!(d.headers("REGISTER", "sip:r")[0].1.contains("nc=00000003"));
    }

    #[test]
    fn stale_nonce_is_answered_again_but_a_fresh_unstale_one_is_a_refusal() {
        let first = challenge_response(
            407,
            "Proxy-Authenticate",
            &["Digest realm=\"r\", nonce=\"a\""],
        );
        let stale = challenge_response(
            407,
            "Proxy-Authenticate",
            &["Digest realm=\"r\", nonce=\"b\", stale=true"],
        );
        let fresh = challenge_response(
            407,
            "Proxy-Authenticate",
            &["Digest realm=\"r\", nonce=\"c\""],
        );
        let mut d = DigestClient::new("u", "p", 1);
        assert_eq!(
            d.on_challenge(&Message::parse(&first).unwrap()),
            ChallengeVerdict::Retry
        );
        let h = d.headers("INVITE", "sip:x@r");
        assert_eq!(h[0].0, "Proxy-Authorization");
        assert_eq!(
            d.on_challenge(&Message::parse(&stale).unwrap()),
            ChallengeVerdict::Retry
        );
        assert!(d.headers("INVITE", "sip:x@r")[0].1.contains("nonce=\"b\""));
        assert_eq!(
            d.on_challenge(&Message::parse(&fresh).unwrap()),
            ChallengeVerdict::Rejected { status: 407 }
        );
    }

    #[test]
    fn unusable_challenges_are_reported() {
        let raw = challenge_response(401, "WWW-Authenticate", &["Basic realm=\"r\""]);
        let mut d = DigestClient::new("u", "p", 1);
        assert_eq!(
            d.on_challenge(&Message::parse(&raw).unwrap()),
            ChallengeVerdict::Unusable(DigestError::NotDigest("Basic".into()))
        );
        let none = challenge_response(401, "X-Nothing", &["1"]);
        assert_eq!(
            d.on_challenge(&Message::parse(&none).unwrap()),
            ChallengeVerdict::Unusable(DigestError::NoChallenge)
        );
    }
}
