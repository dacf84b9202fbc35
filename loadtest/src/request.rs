//! Writing REGISTER requests, and the ids they carry that let a response find its flow in O(1):
//! the branch names the slab slot and the transaction, the Call-ID the flow's sequence number.

use crate::digest::{self, Answer, Challenge};

const BRANCH_PREFIX: &[u8] = b"z9hG4bK-";
const CALL_ID_SUFFIX: &[u8] = b"@mgw-loadtest";

/// Everything that is the same for every request of a run.
pub struct Template {
    /// 8 hex digits, random per run, so answers to an earlier run's requests are not taken for
    /// ours.
    pub run: [u8; 8],
    pub domain: String,
    /// `sip:DOMAIN`: the Request-URI and the digest uri.
    pub request_uri: String,
    pub expires: u32,
    pub user_agent: String,
}

/// What differs per request.
pub struct Request<'a> {
    /// `IP:PORT` of the socket it leaves from, for Via and Contact.
    pub local: &'a str,
    pub user: &'a str,
    pub seq: u64,
    pub slot: u32,
    pub tx: u32,
    pub cseq: u32,
    /// `Authorization` or `Proxy-Authorization` with the challenge it answers.
    pub auth: Option<(&'a str, &'a Challenge<'a>, &'a Answer<'a>)>,
}

impl Template {
    pub fn write(&self, out: &mut Vec<u8>, r: &Request<'_>) {
        out.clear();
        let d = self.domain.as_bytes();
        let user = r.user.as_bytes();
        put(
            out,
            &[b"REGISTER ", self.request_uri.as_bytes(), b" SIP/2.0\r\n"],
        );
        put(
            out,
            &[b"Via: SIP/2.0/UDP ", r.local.as_bytes(), b";rport;branch="],
        );
        self.write_branch(out, r.slot, r.tx);
        put(
            out,
            &[b"\r\nMax-Forwards: 70\r\nFrom: <sip:", user, b"@", d],
        );
        put(out, &[b">;tag="]);
        push_hex(out, r.seq);
        put(out, &[b"\r\nTo: <sip:", user, b"@", d, b">\r\nCall-ID: "]);
        self.write_call_id(out, r.seq);
        put(out, &[b"\r\nCSeq: "]);
        push_dec(out, u64::from(r.cseq));
        put(
            out,
            &[
                b" REGISTER\r\nContact: <sip:",
                user,
                b"@",
                r.local.as_bytes(),
            ],
        );
        put(out, &[b">\r\nExpires: "]);
        push_dec(out, u64::from(self.expires));
        put(out, &[b"\r\n"]);
        if let Some((name, challenge, answer)) = r.auth {
            digest::write_header(out, name, challenge, answer);
        }
        put(out, &[b"User-Agent: ", self.user_agent.as_bytes()]);
        put(out, &[b"\r\nContent-Length: 0\r\n\r\n"]);
    }

    fn write_branch(&self, out: &mut Vec<u8>, slot: u32, tx: u32) {
        out.extend_from_slice(BRANCH_PREFIX);
        out.extend_from_slice(&self.run);
        out.push(b'-');
        push_hex(out, u64::from(slot));
        out.push(b'-');
        push_hex(out, u64::from(tx));
    }

    fn write_call_id(&self, out: &mut Vec<u8>, seq: u64) {
        out.extend_from_slice(&self.run);
        out.push(b'-');
        push_hex(out, seq);
        out.extend_from_slice(CALL_ID_SUFFIX);
    }

    /// `(slot, tx)` from a branch we wrote; `None` for anyone else's.
    pub fn parse_branch(&self, branch: &str) -> Option<(u32, u32)> {
        let rest = branch.as_bytes().strip_prefix(BRANCH_PREFIX)?;
        let rest = rest.strip_prefix(&self.run[..])?.strip_prefix(b"-")?;
        let dash = rest.iter().position(|&b| b == b'-')?;
        let slot = parse_hex(&rest[..dash])?;
        let tx = parse_hex(&rest[dash + 1..])?;
        Some((u32::try_from(slot).ok()?, u32::try_from(tx).ok()?))
    }

    /// The flow sequence number from a Call-ID we wrote.
    pub fn parse_call_id(&self, call_id: &str) -> Option<u64> {
        let rest = call_id.as_bytes().strip_prefix(&self.run[..])?;
        let rest = rest.strip_prefix(b"-")?.strip_suffix(CALL_ID_SUFFIX)?;
        parse_hex(rest)
    }
}

fn put(out: &mut Vec<u8>, parts: &[&[u8]]) {
    for p in parts {
        out.extend_from_slice(p);
    }
}

pub fn push_hex(out: &mut Vec<u8>, mut v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut tmp = [0u8; 16];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = DIGITS[(v & 15) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

pub fn push_dec(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Lower-case hex as `push_hex` writes it: 1 to 16 digits.
fn parse_hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mgw_core::sip::{HeaderName, Message};

    fn template() -> Template {
        Template {
            run: *b"0badcafe",
            domain: "example.org".into(),
            request_uri: "sip:example.org".into(),
            expires: 3600,
            user_agent: "mgw-loadtest/0.1.0".into(),
        }
    }

    #[test]
    fn request_parses_and_ids_round_trip() {
        let t = template();
        let mut out = Vec::new();
        t.write(
            &mut out,
            &Request {
                local: "127.0.0.1:40000",
                user: "u100",
                seq: 0x1234,
                slot: 7,
                tx: 0xffff_ffff,
                cseq: 2,
                auth: None,
            },
        );
        let m = Message::parse(&out).expect("parses");
        assert_eq!(m.request_uri().map(|u| u.host), Some("example.org"));
        let branch = m.top_via().and_then(|v| v.branch()).expect("branch");
        assert!(branch.starts_with("z9hG4bK"));
        assert_eq!(t.parse_branch(branch), Some((7, 0xffff_ffff)));
        assert_eq!(t.parse_call_id(m.call_id().expect("cid")), Some(0x1234));
        assert_eq!(m.cseq().map(|c| c.seq), Some(2));
        assert_eq!(m.expires(), Some(3600));
        assert_eq!(
            m.header(HeaderName::Contact),
            Some("<sip:u100@127.0.0.1:40000>")
        );
        assert_eq!(m.header(HeaderName::ContentLength), Some("0"));
    }

    #[test]
    fn foreign_ids_are_refused() {
        let t = template();
        assert_eq!(t.parse_branch("z9hG4bK-0badcafe-1-2"), Some((1, 2)));
        assert_eq!(t.parse_branch("z9hG4bK-0badcafe-1-"), None);
        assert_eq!(t.parse_branch("z9hG4bK-deadbeef-1-2"), None);
        assert_eq!(t.parse_branch("z9hG4bK-0badcafe-1-2-3"), None);
        assert_eq!(t.parse_branch("z9hG4bK-0badcafe-100000000-2"), None);
        assert_eq!(t.parse_call_id("0badcafe-ff@mgw-loadtest"), Some(255));
        assert_eq!(t.parse_call_id("0badcafe-ff@elsewhere"), None);
        assert_eq!(t.parse_call_id("0badcafe-FF@mgw-loadtest"), None);
    }

    #[test]
    fn numbers() {
        let mut v = Vec::new();
        push_dec(&mut v, 0);
        v.push(b' ');
        push_dec(&mut v, u64::MAX);
        v.push(b' ');
        push_hex(&mut v, 0);
        v.push(b' ');
        push_hex(&mut v, u64::MAX);
        assert_eq!(v, b"0 18446744073709551615 0 ffffffffffffffff");
    }
}
