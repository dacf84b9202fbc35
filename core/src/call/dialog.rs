//! One side of a call as a SIP dialog (RFC 3261 section 12): the identifiers, the sequence
//! numbers, where in-dialog requests go, and building those requests.

use std::fmt::Write as _;

use crate::sip::{HeaderName, Message, NameAddr, RequestBuilder};

/// A dialog with one party. For the A side mgw is the UAS (its tag is the To-tag it gave); for
/// the B side mgw is the UAC (its tag is the From-tag it sent).
#[derive(Clone, Debug)]
pub struct Dialog<A> {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// From/To as this side writes them in requests it sends: its own URI and the party's.
    pub local_uri: String,
    pub remote_uri: String,
    /// The party's Contact: the Request-URI of in-dialog requests.
    pub remote_target: String,
    /// Record-Route of the dialog, in the order requests must take.
    pub route_set: Vec<String>,
    pub local_cseq: u32,
    pub remote_cseq: Option<u32>,
    /// Where requests to the party are sent (the address it registered from, or that its
    /// request came from: NAT-safe).
    pub peer: A,
    pub reliable: bool,
    /// The party is reached over IPv6: mgw's Via and Contact towards it are its IPv6 ones.
    pub v6: bool,
}

impl<A: Clone> Dialog<A> {
    /// The dialog of the UAS side, from the request that created it.
    pub fn as_uas(req: &Message<'_>, local_tag: &str, peer: A, reliable: bool) -> Option<Self> {
        let from = req.from()?;
        let to = req.to()?;
        let contact = req
            .header(HeaderName::Contact)
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|c| c.uri.raw.to_string())
            .unwrap_or_else(|| from.uri.raw.to_string());
        // A UAS keeps Record-Route in the order received (RFC 3261 12.1.1).
        let route_set = req
            .list(HeaderName::RecordRoute)
            .map(str::to_string)
            .collect();
        Some(Dialog {
            call_id: req.call_id()?.to_string(),
            local_tag: local_tag.to_string(),
            remote_tag: from.tag()?.to_string(),
            local_uri: format!("<{}>", to.uri.raw),
            remote_uri: format!("<{}>", from.uri.raw),
            remote_target: contact,
            route_set,
            local_cseq: 0,
            remote_cseq: req.cseq().map(|c| c.seq),
            peer,
            reliable,
            v6: false,
        })
    }

    /// Takes the remote tag, target and route set from a response that confirms the dialog
    /// (a UAC reverses Record-Route, RFC 3261 12.1.2).
    pub fn confirm_as_uac(&mut self, resp: &Message<'_>) {
        if let Some(tag) = resp.to().and_then(|t| t.tag()) {
            self.remote_tag = tag.to_string();
        }
        if let Some(c) = resp
            .header(HeaderName::Contact)
            .and_then(|c| NameAddr::parse(c).ok())
        {
            self.remote_target = c.uri.raw.to_string();
        }
        let mut rr: Vec<String> = resp
            .list(HeaderName::RecordRoute)
            .map(str::to_string)
            .collect();
        rr.reverse();
        self.route_set = rr;
    }

    /// Builds an in-dialog request; `via` is the full top Via value (with a fresh branch).
    /// Returns the CSeq number used.
    pub fn request(
        &mut self,
        buf: &mut Vec<u8>,
        method: &str,
        via: &str,
        contact: &str,
        extra: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> u32 {
        // ACK reuses the INVITE's number; CANCEL is not built here.
        if method != "ACK" {
            self.local_cseq += 1;
        }
        let cseq = self.local_cseq;
        let mut b = RequestBuilder::new(buf, method, &self.remote_target)
            .header("Via", via)
            .header("Max-Forwards", "70");
        let from = format!("{};tag={}", self.local_uri, self.local_tag);
        let mut to = self.remote_uri.clone();
        if !self.remote_tag.is_empty() {
            let _ = write!(to, ";tag={}", self.remote_tag);
        }
        b = b
            .header("From", &from)
            .header("To", &to)
            .header("Call-ID", &self.call_id)
            .header("CSeq", &format!("{cseq} {method}"));
        for r in &self.route_set {
            b = b.header("Route", r);
        }
        if method != "ACK" && method != "BYE" {
            b = b.header("Contact", contact);
        }
        for (n, v) in extra {
            b = b.header(n, v);
        }
        match body {
            Some((ct, bytes)) => b.finish(Some(ct), bytes),
            None => b.finish(None, b""),
        }
        cseq
    }
}
