//! Which transaction a message belongs to (RFC 3261 sections 17.1.3 and 17.2.3).
//!
//! Keys are owned by their transaction, but looking one up allocates nothing: a message is
//! hashed field by field into a bucket of the [`Index`], and the few transactions in that bucket
//! compare their stored fields with the message's borrowed ones.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use super::TxError;
use crate::sip::{HeaderName, Message, StartLine};

pub(crate) const INVITE: &str = "INVITE";
pub(crate) const ACK: &str = "ACK";
pub(crate) const CANCEL: &str = "CANCEL";

/// A client transaction is the branch of the top Via it sent plus the method: a CANCEL shares
/// the branch of the INVITE it cancels (17.1.3).
#[derive(Debug)]
pub(crate) struct ClientKey {
    branch: Box<str>,
    method: Box<str>,
}

impl ClientKey {
    pub(crate) fn new(branch: &str, method: &str) -> Self {
        ClientKey {
            branch: branch.into(),
            method: method.into(),
        }
    }

    pub(crate) fn matches(&self, branch: &str, method: &str) -> bool {
        // Parameter values are case-insensitive unless a header says otherwise (7.3.1);
        // methods are case-sensitive (7.1).
        self.branch.eq_ignore_ascii_case(branch) && &*self.method == method
    }

    pub(crate) fn is_invite(&self) -> bool {
        &*self.method == INVITE
    }
}

pub(crate) fn client_bucket(hasher: &RandomState, branch: &str, method: &str) -> u64 {
    let mut h = hasher.build_hasher();
    write_ci(&mut h, branch);
    write_cs(&mut h, method);
    h.finish()
}

/// What identifies a server transaction in a received request, borrowed from it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestKey<'a> {
    method: &'a str,
    ident: Ident<'a>,
}

#[derive(Clone, Copy, Debug)]
enum Ident<'a> {
    /// The branch starts with the magic cookie, so branch and sent-by alone identify the
    /// transaction (17.2.3).
    /// RFC 3261 17.2.3 matches on branch, sent-by and method. Call-ID and CSeq number are
    /// compared as well: a real retransmission (and its ACK or CANCEL) always repeats them, so
    /// this costs nothing, while it keeps clients that reuse a branch for unrelated requests
    /// (RFC 4475's own messages do) from being answered with another request's response.
    Rfc3261 {
        branch: &'a str,
        host: &'a str,
        port: Option<u16>,
        call_id: &'a str,
        cseq: u32,
    },
    /// An RFC 2543 client: its branch, if any, is not unique, so the fields of the request
    /// that created the transaction are compared instead (17.2.3, last paragraphs).
    Rfc2543 {
        request_uri: &'a str,
        to_tag: Option<&'a str>,
        from_tag: Option<&'a str>,
        call_id: &'a str,
        cseq: u32,
        top_via: &'a str,
    },
}

impl<'a> RequestKey<'a> {
    pub(crate) fn of(msg: &Message<'a>) -> Result<Self, TxError> {
        let StartLine::Request(line) = msg.start else {
            return Err(TxError::NotARequest);
        };
        let method = line.method.as_str();
        let via = msg.top_via().ok_or(TxError::MissingVia)?;
        let ident = match via.branch() {
            Some(branch) if via.has_rfc3261_branch() => Ident::Rfc3261 {
                branch,
                host: via.host,
                port: via.port,
                call_id: msg.call_id().ok_or(TxError::MissingCallId)?,
                cseq: msg.cseq().ok_or(TxError::MissingCSeq)?.seq,
            },
            _ => Ident::Rfc2543 {
                request_uri: line.uri,
                to_tag: msg.to().ok_or(TxError::MissingTo)?.tag(),
                from_tag: msg.from().ok_or(TxError::MissingFrom)?.tag(),
                call_id: msg.call_id().ok_or(TxError::MissingCallId)?,
                cseq: msg.cseq().ok_or(TxError::MissingCSeq)?.seq,
                top_via: msg
                    .list(HeaderName::Via)
                    .next()
                    .ok_or(TxError::MissingVia)?
                    .trim(),
            },
        };
        Ok(RequestKey { method, ident })
    }

    pub(crate) fn method(&self) -> &'a str {
        self.method
    }

    /// The method of the transaction this request belongs to: an ACK is part of the INVITE
    /// transaction whose non-2xx response it acknowledges.
    pub(crate) fn transaction_method(&self) -> &'a str {
        if self.method == ACK {
            INVITE
        } else {
            self.method
        }
    }

    /// The bucket of a transaction for `tx_method` that this request could belong to.
    pub(crate) fn bucket(&self, hasher: &RandomState, tx_method: &str) -> u64 {
        let mut h = hasher.build_hasher();
        match self.ident {
            Ident::Rfc3261 {
                branch,
                host,
                port,
                call_id,
                cseq,
            } => {
                h.write_u8(1);
                write_ci(&mut h, branch);
                write_ci(&mut h, host);
                h.write_u32(port.map_or(u32::MAX, u32::from));
                write_cs(&mut h, call_id);
                h.write_u32(cseq);
                write_cs(&mut h, tx_method);
            }
            // Without the method and the To tag: an ACK carries the To tag of the response and
            // a CANCEL its own method, yet both must find the INVITE's bucket.
            Ident::Rfc2543 {
                request_uri,
                from_tag,
                call_id,
                cseq,
                top_via,
                ..
            } => {
                h.write_u8(2);
                write_cs(&mut h, request_uri);
                write_opt(&mut h, from_tag);
                write_cs(&mut h, call_id);
                h.write_u32(cseq);
                write_cs(&mut h, top_via);
            }
        }
        h.finish()
    }

    pub(crate) fn to_owned(self) -> ServerKey {
        let ident = match self.ident {
            Ident::Rfc3261 {
                branch,
                host,
                port,
                call_id,
                cseq,
            } => OwnedIdent::Rfc3261 {
                branch: branch.into(),
                host: host.into(),
                port,
                call_id: call_id.into(),
                cseq,
            },
            Ident::Rfc2543 {
                request_uri,
                to_tag,
                from_tag,
                call_id,
                cseq,
                top_via,
            } => OwnedIdent::Rfc2543 {
                request_uri: request_uri.into(),
                to_tag: to_tag.map(Into::into),
                from_tag: from_tag.map(Into::into),
                call_id: call_id.into(),
                cseq,
                top_via: top_via.into(),
            },
        };
        ServerKey {
            method: self.transaction_method().into(),
            ident,
        }
    }
}

/// The identity of a server transaction, copied from the request that created it.
#[derive(Debug)]
pub(crate) struct ServerKey {
    method: Box<str>,
    ident: OwnedIdent,
}

#[derive(Debug)]
enum OwnedIdent {
    Rfc3261 {
        branch: Box<str>,
        host: Box<str>,
        port: Option<u16>,
        call_id: Box<str>,
        cseq: u32,
    },
    Rfc2543 {
        request_uri: Box<str>,
        to_tag: Option<Box<str>>,
        from_tag: Option<Box<str>>,
        call_id: Box<str>,
        cseq: u32,
        top_via: Box<str>,
    },
}

impl ServerKey {
    pub(crate) fn is_invite(&self) -> bool {
        &*self.method == INVITE
    }

    pub(crate) fn is_rfc2543(&self) -> bool {
        matches!(self.ident, OwnedIdent::Rfc2543 { .. })
    }

    /// Whether `req` belongs to this transaction if taken as part of a `tx_method` transaction.
    /// `response_to_tag` is the To tag of the final response sent, which an RFC 2543 ACK
    /// carries instead of the INVITE's.
    pub(crate) fn matches(
        &self,
        req: &RequestKey<'_>,
        tx_method: &str,
        response_to_tag: Option<&str>,
    ) -> bool {
        if &*self.method != tx_method {
            return false;
        }
        match (&self.ident, &req.ident) {
            (
                OwnedIdent::Rfc3261 {
                    branch,
                    host,
                    port,
                    call_id,
                    cseq,
                },
                Ident::Rfc3261 {
                    branch: b,
                    host: h,
                    port: p,
                    call_id: c,
                    cseq: n,
                },
            ) => {
                branch.eq_ignore_ascii_case(b)
                    && host.eq_ignore_ascii_case(h)
                    && port == p
                    && **call_id == **c
                    && cseq == n
            }
            (
                OwnedIdent::Rfc2543 {
                    request_uri,
                    to_tag,
                    from_tag,
                    call_id,
                    cseq,
                    top_via,
                },
                Ident::Rfc2543 {
                    request_uri: u,
                    to_tag: tt,
                    from_tag: ft,
                    call_id: c,
                    cseq: n,
                    top_via: v,
                },
            ) => {
                let to_matches = to_tag.as_deref() == *tt
                    || (req.method == ACK && tt.is_some() && *tt == response_to_tag);
                **request_uri == **u
                    && from_tag.as_deref() == *ft
                    && **call_id == **c
                    && cseq == n
                    && **top_via == **v
                    && to_matches
            }
            _ => false,
        }
    }
}

/// Transactions by bucket hash. Buckets almost always hold one transaction; more only when two
/// RFC 2543 requests share everything but their To tag or method, or on a hash collision.
#[derive(Debug, Default)]
pub(crate) struct Index {
    // The keys are already seeded SipHash values, so hashing them again would be wasted work.
    map: HashMap<u64, Bucket, BuildHasherDefault<Prehashed>>,
}

#[derive(Debug)]
enum Bucket {
    One(u64),
    Many(Vec<u64>),
}

impl Index {
    pub(crate) fn insert(&mut self, hash: u64, id: u64) {
        match self.map.get_mut(&hash) {
            None => {
                self.map.insert(hash, Bucket::One(id));
            }
            Some(Bucket::One(first)) => {
                let first = *first;
                self.map.insert(hash, Bucket::Many(vec![first, id]));
            }
            Some(Bucket::Many(ids)) => ids.push(id),
        }
    }

    pub(crate) fn remove(&mut self, hash: u64, id: u64) {
        let emptied = match self.map.get_mut(&hash) {
            Some(Bucket::One(only)) => *only == id,
            Some(Bucket::Many(ids)) => {
                ids.retain(|&i| i != id);
                match ids.as_slice() {
                    [] => true,
                    &[last] => {
                        self.map.insert(hash, Bucket::One(last));
                        false
                    }
                    _ => false,
                }
            }
            None => false,
        };
        if emptied {
            self.map.remove(&hash);
        }
    }

    pub(crate) fn get(&self, hash: u64) -> &[u64] {
        match self.map.get(&hash) {
            Some(Bucket::One(id)) => std::slice::from_ref(id),
            Some(Bucket::Many(ids)) => ids,
            None => &[],
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// Passes a u64 key through as its own hash.
#[derive(Default)]
pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; fold anything else rather than lose it.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Hashes `s` as its ASCII lowercase, without allocating.
fn write_ci(h: &mut impl Hasher, s: &str) {
    h.write_usize(s.len());
    let mut buf = [0u8; 32];
    for chunk in s.as_bytes().chunks(buf.len()) {
        let lower = &mut buf[..chunk.len()];
        lower.copy_from_slice(chunk);
        lower.make_ascii_lowercase();
        h.write(lower);
    }
}

fn write_cs(h: &mut impl Hasher, s: &str) {
    h.write_usize(s.len());
    h.write(s.as_bytes());
}

fn write_opt(h: &mut impl Hasher, s: Option<&str>) {
    match s {
        Some(s) => {
            h.write_u8(1);
            write_cs(h, s);
        }
        None => h.write_u8(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(via: &str, method: &str, to: &str) -> Vec<u8> {
        format!(
            "{method} sip:b@x SIP/2.0\r\nVia: {via}\r\nFrom: <sip:a@x>;tag=f\r\nTo: {to}\r\n\
             Call-ID: c\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn rfc3261_keys_ignore_case_of_branch_and_host() {
        let s = RandomState::new();
        let a = req(
            "SIP/2.0/UDP Host.Example:5060;branch=z9hG4bKAbC",
            "INVITE",
            "<sip:b@x>",
        );
        let b = req(
            "SIP/2.0/UDP host.example:5060;branch=z9hG4bKabc",
            "ACK",
            "<sip:b@x>;tag=t",
        );
        let (a, b) = (Message::parse(&a).unwrap(), Message::parse(&b).unwrap());
        let (ka, kb) = (RequestKey::of(&a).unwrap(), RequestKey::of(&b).unwrap());
        assert_eq!(
            ka.bucket(&s, INVITE),
            kb.bucket(&s, kb.transaction_method())
        );
        assert!(ka.to_owned().matches(&kb, INVITE, None));
        assert!(!ka.to_owned().matches(&kb, CANCEL, None));
    }

    #[test]
    fn rfc3261_keys_compare_sent_by() {
        let a = req("SIP/2.0/UDP h1;branch=z9hG4bK1", "INVITE", "<sip:b@x>");
        let b = req("SIP/2.0/UDP h1:5060;branch=z9hG4bK1", "INVITE", "<sip:b@x>");
        let (a, b) = (Message::parse(&a).unwrap(), Message::parse(&b).unwrap());
        let kb = RequestKey::of(&b).unwrap();
        assert!(!RequestKey::of(&a)
            .unwrap()
            .to_owned()
            .matches(&kb, INVITE, None));
    }

    #[test]
    fn rfc2543_ack_may_carry_the_response_to_tag() {
        let s = RandomState::new();
        let inv = req("SIP/2.0/UDP h1;branch=old", "INVITE", "<sip:b@x>");
        let ack = req("SIP/2.0/UDP h1;branch=old", "ACK", "<sip:b@x>;tag=r");
        let (inv, ack) = (Message::parse(&inv).unwrap(), Message::parse(&ack).unwrap());
        let (ki, ka) = (RequestKey::of(&inv).unwrap(), RequestKey::of(&ack).unwrap());
        assert_eq!(ki.bucket(&s, INVITE), ka.bucket(&s, INVITE));
        let owned = ki.to_owned();
        assert!(owned.is_rfc2543());
        assert!(!owned.matches(&ka, INVITE, None));
        assert!(!owned.matches(&ka, INVITE, Some("other")));
        assert!(owned.matches(&ka, INVITE, Some("r")));
    }

    #[test]
    fn index_buckets_grow_and_shrink() {
        let mut i = Index::default();
        i.insert(7, 1);
        i.insert(7, 2);
        i.insert(8, 3);
        assert_eq!(i.get(7), &[1, 2]);
        i.remove(7, 1);
        assert_eq!(i.get(7), &[2]);
        i.remove(7, 2);
        i.remove(8, 3);
        assert_eq!(i.len(), 0);
        assert!(i.get(7).is_empty());
    }
}
