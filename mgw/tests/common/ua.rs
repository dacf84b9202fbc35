//! A scripted SIP user agent over real UDP for call tests: registers, places calls with SDP
//! (answering the 407), answers calls, sends RTP, hangs up. Each step waits for what it
//! expects and returns the raw messages so tests can look at every header.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use mgw_core::auth::Algorithm;
use mgw_core::sip::{HeaderName, Message};

use super::phone::REALM;

pub struct Ua {
    pub sip: UdpSocket,
    pub rtp: UdpSocket,
    pub server: SocketAddr,
    pub user: String,
    password: String,
    n: u32,
}

/// A call as one side sees it: what to put in in-dialog requests.
#[derive(Clone, Debug)]
pub struct Leg {
    pub call_id: String,
    pub local: String,
    pub remote: String,
    pub target: String,
    pub cseq: u32,
    /// The other side's SDP: where to send RTP.
    pub media: Option<SocketAddr>,
}

pub fn header(raw: &[u8], name: &str) -> Option<String> {
    let m = Message::parse(raw).ok()?;
    m.header_by_name(name).map(str::to_string)
}

pub fn status(raw: &[u8]) -> u16 {
    Message::parse(raw)
        .ok()
        .and_then(|m| m.status())
        .unwrap_or(0)
}

/// `c=` and `m=audio` of an SDP body.
pub fn media_of(raw: &[u8]) -> Option<SocketAddr> {
    let m = Message::parse(raw).ok()?;
    let sdp = mgw_media::sdp::SessionDescription::parse(m.body).ok()?;
    let i = sdp.media.iter().position(|m| m.kind == "audio")?;
    Some(SocketAddr::new(sdp.media_address(i)?, sdp.media[i].port))
}

fn with_tag(name_addr: &str) -> bool {
    name_addr.contains(";tag=")
}

impl Ua {
    pub fn new(server: SocketAddr, user: &str, password: &str) -> Ua {
        // Signalling in the server's address family; media stays on IPv4 as mgw's does.
        let sip = UdpSocket::bind(if server.is_ipv6() {
            "[::1]:0"
        } else {
            "127.0.0.1:0"
        })
        .expect("bind");
        let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind");
        for s in [&sip, &rtp] {
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
        }
        Ua {
            sip,
            rtp,
            server,
            user: user.into(),
            password: password.into(),
            n: 0,
        }
    }

    pub fn port(&self) -> u16 {
        self.sip.local_addr().expect("addr").port()
    }

    /// This phone's host in Via and Contact: `127.0.0.1` or `[::1]`.
    pub fn host(&self) -> &'static str {
        if self.server.is_ipv6() {
            "[::1]"
        } else {
            "127.0.0.1"
        }
    }

    /// An SDP offering `fmt` (e.g. `0` PCMU, `8` PCMA, `96 opus`) on the RTP socket.
    pub fn sdp(&self, codecs: &[(u8, &str)]) -> String {
        let port = self.rtp.local_addr().expect("addr").port();
        let fmts: Vec<String> = codecs.iter().map(|c| c.0.to_string()).collect();
        let maps: String = codecs
            .iter()
            .map(|(pt, m)| format!("a=rtpmap:{pt} {m}\r\n"))
            .collect();
        format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP {}\r\n{maps}a=sendrecv\r\n",
            fmts.join(" ")
        )
    }

    pub fn send(&self, raw: &str) {
        self.sip.send_to(raw.as_bytes(), self.server).expect("send");
    }

    /// The next SIP message, or `None` after `wait`.
    pub fn recv_within(&self, wait: Duration) -> Option<Vec<u8>> {
        self.sip.set_read_timeout(Some(wait)).expect("timeout");
        let mut buf = vec![0u8; 65536];
        let r = self.sip.recv(&mut buf).ok().map(|n| buf[..n].to_vec());
        self.sip
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        r
    }

    pub fn recv(&self) -> Vec<u8> {
        let mut buf = vec![0u8; 65536];
        let n = self.sip.recv(&mut buf).expect("a SIP message within 5 s");
        buf[..n].to_vec()
    }

    /// Waits for a response to `method` with a status >= `min`; answers requests it does not
    /// wait for with nothing.
    pub fn response(&self, method: &str, min: u16) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "no {method} response >= {min}");
            let m = self.recv();
            let Ok(p) = Message::parse(&m) else { continue };
            if p.status().is_some_and(|s| s >= min)
                && p.cseq().is_some_and(|c| c.method.as_str() == method)
            {
                return m;
            }
        }
    }

    /// Waits for a request `method`.
    pub fn request(&self, method: &str) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "no {method} request");
            let m = self.recv();
            let Ok(p) = Message::parse(&m) else { continue };
            if p.method().is_some_and(|x| x.as_str() == method) {
                return m;
            }
        }
    }

    pub fn register(&mut self) {
        self.n += 1;
        let port = self.port();
        let h = self.host();
        let u = self.user.clone();
        let req = |cseq: u32, auth: &str| {
            format!(
                "REGISTER sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/UDP {h}:{port};branch=z9hG4bK-r{cseq}-{port};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{u}@{REALM}>;tag=r{port}\r\nTo: <sip:{u}@{REALM}>\r\n\
                 Call-ID: reg-{port}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{u}@{h}:{port}>\r\nExpires: 3600\r\n\
                 {auth}Content-Length: 0\r\n\r\n"
            )
        };
        self.send(&req(1, ""));
        let ch = self.response("REGISTER", 200);
        let nonce = nonce_of(&ch, "WWW-Authenticate");
        let auth = self.authorization("Authorization", "REGISTER", &format!("sip:{REALM}"), &nonce);
        self.send(&req(2, &auth));
        let ok = self.response("REGISTER", 200);
        assert_eq!(status(&ok), 200, "{}", String::from_utf8_lossy(&ok));
    }

    /// Sends an authenticated INVITE to `dialled` with `sdp`; returns the leg and the raw
    /// INVITE (the caller waits for responses itself).
    pub fn call(&mut self, dialled: &str, sdp: &str) -> (Leg, String) {
        self.n += 1;
        let port = self.port();
        let h = self.host();
        let (u, n) = (self.user.clone(), self.n);
        let uri = format!("sip:{dialled}@{REALM}");
        let call_id = format!("call-{n}-{port}");
        let req = |cseq: u32, auth: &str| {
            format!(
                "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {h}:{port};branch=z9hG4bK-i{n}-{cseq};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{u}@{REALM}>;tag=c{n}{port}\r\nTo: <{uri}>\r\n\
                 Call-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{u}@{h}:{port}>\r\n\
                 {auth}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            )
        };
        self.send(&req(1, ""));
        let ch = self.response("INVITE", 400);
        // ACK the 407.
        let to = header(&ch, "To").unwrap_or_default();
        self.send(&format!(
            "ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {h}:{port};branch=z9hG4bK-i{n}-1;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{u}@{REALM}>;tag=c{n}{port}\r\nTo: {to}\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        ));
        let nonce = nonce_of(&ch, "Proxy-Authenticate");
        let auth = self.authorization("Proxy-Authorization", "INVITE", &uri, &nonce);
        let invite = req(2, &auth);
        self.send(&invite);
        (
            Leg {
                call_id,
                local: format!("<sip:{u}@{REALM}>;tag=c{n}{port}"),
                remote: format!("<{uri}>"),
                target: uri.clone(),
                cseq: 2,
                media: None,
            },
            invite,
        )
    }

    /// After a final response to our INVITE: the leg is confirmed (To tag, Contact) and the
    /// 2xx is ACKed (a failure is ACKed too, by its transaction's rules).
    pub fn confirm(&self, leg: &mut Leg, resp: &[u8]) {
        self.confirm_with(leg, resp, "");
    }

    /// Like [`Ua::confirm`], the ACK carrying `answer` (the answer to a 2xx's offer, after an
    /// INVITE without SDP).
    pub fn confirm_with(&self, leg: &mut Leg, resp: &[u8], answer: &str) {
        let s = status(resp);
        let to = header(resp, "To").unwrap_or_default();
        let port = self.port();
        let h = self.host();
        if s >= 300 {
            self.send(&format!(
                "ACK {} SIP/2.0\r\nVia: SIP/2.0/UDP {h}:{port};branch=z9hG4bK-i{}-{};rport\r\n\
                 Max-Forwards: 70\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {} ACK\r\nContent-Length: 0\r\n\r\n",
                leg.target, self.n, leg.cseq, leg.local, leg.call_id, leg.cseq
            ));
            return;
        }
        leg.remote = to;
        if let Some(c) = header(resp, "Contact") {
            leg.target = c
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or("")
                .to_string();
        }
        leg.media = media_of(resp);
        self.send(&format!(
            "ACK {} SIP/2.0\r\nVia: SIP/2.0/UDP {h}:{port};branch=z9hG4bK-a{}-{};rport\r\n\
             Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} ACK\r\n{}Content-Length: {}\r\n\r\n{}",
            leg.target,
            self.n,
            leg.cseq,
            leg.local,
            leg.remote,
            leg.call_id,
            leg.cseq,
            if answer.is_empty() { "" } else { "Content-Type: application/sdp\r\n" },
            answer.len(),
            answer
        ));
    }

    /// Answers `invite` with `status` (and `sdp` for a 2xx or 183); returns the leg.
    pub fn reply(&self, invite: &[u8], status: u16, reason: &str, sdp: Option<&str>) -> Leg {
        let m = Message::parse(invite).expect("request");
        let port = self.port();
        let h = self.host();
        let vias: String = m
            .all(HeaderName::Via)
            .map(|v| format!("Via: {v}\r\n"))
            .collect();
        let to = m.header(HeaderName::To).unwrap_or("");
        let to = if with_tag(to) {
            to.to_string()
        } else {
            format!("{to};tag=u{port}")
        };
        let from = m.header(HeaderName::From).unwrap_or("").to_string();
        let call_id = m.call_id().unwrap_or("").to_string();
        let cseq = m.header(HeaderName::CSeq).unwrap_or("").to_string();
        let body = sdp.unwrap_or("");
        let ct = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".into()
        };
        self.send(&format!(
            "SIP/2.0 {status} {reason}\r\n{vias}From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq}\r\nContact: <sip:{}@{h}:{port}>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            self.user,
            body.len()
        ));
        let target = m
            .header(HeaderName::Contact)
            .map(|c| {
                c.trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default();
        Leg {
            call_id,
            local: to,
            remote: from,
            target,
            cseq: 100,
            media: media_of(invite),
        }
    }

    /// Sends an in-dialog request (BYE, re-INVITE with `sdp`).
    pub fn in_dialog(&self, leg: &mut Leg, method: &str, sdp: Option<&str>) {
        leg.cseq += 1;
        let port = self.port();
        let h = self.host();
        let body = sdp.unwrap_or("");
        let ct = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".into()
        };
        self.send(&format!(
            "{method} {} SIP/2.0\r\nVia: SIP/2.0/UDP {h}:{port};branch=z9hG4bK-d{}-{};rport\r\n\
             Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {method}\r\n\
             Contact: <sip:{}@{h}:{port}>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            leg.target,
            // A branch is a token: a Call-ID made by mgw has an '@'.
            leg.call_id.replace('@', "."),
            leg.cseq,
            leg.local,
            leg.remote,
            leg.call_id,
            leg.cseq,
            self.user,
            body.len()
        ));
    }

    /// Answers an in-dialog request with 200 (and `sdp`).
    pub fn ok(&self, req: &[u8], sdp: Option<&str>) {
        let _ = self.reply(req, 200, "OK", sdp);
    }

    fn authorization(&self, header: &str, method: &str, uri: &str, nonce: &str) -> String {
        let alg = Algorithm::Md5;
        let ha1 = alg.ha1(&self.user, REALM, &self.password);
        let ha2 = alg.hash_hex(&[method.as_bytes(), uri.as_bytes()]);
        let resp = alg.hash_hex(&[
            ha1.as_bytes(),
            nonce.as_bytes(),
            b"00000001",
            b"abc",
            b"auth",
            ha2.as_bytes(),
        ]);
        format!(
            "{header}: Digest username=\"{}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{resp}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"abc\"\r\n",
            self.user
        )
    }
}

fn nonce_of(raw: &[u8], header: &str) -> String {
    let m = Message::parse(raw).expect("challenge parses");
    let name = if header.starts_with("WWW") {
        HeaderName::WwwAuthenticate
    } else {
        HeaderName::ProxyAuthenticate
    };
    let v = m
        .all(name)
        .find(|v| v.contains("MD5"))
        .unwrap_or_else(|| panic!("an MD5 challenge in {}", String::from_utf8_lossy(raw)));
    v.split("nonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_string()
}
