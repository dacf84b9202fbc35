//! A scripted SIP phone over real UDP: REGISTER and INVITE with digest authentication (MD5,
//! qop=auth), enough to drive the gateway's registrar and call admission from tests.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use mgw_core::auth::Algorithm;
use mgw_core::sip::{HeaderName, Message};

pub const REALM: &str = "mgw.test";

pub struct Phone {
    pub sock: UdpSocket,
    pub server: SocketAddr,
    pub user: String,
    pub password: String,
    cseq: u32,
    call_id: String,
    calls: u32,
}

/// A final answer: status code and reason phrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub reason: String,
}

impl Phone {
    pub fn new(server: SocketAddr, user: &str, password: &str) -> Phone {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let call_id = format!("{user}-{}", sock.local_addr().expect("addr").port());
        Phone {
            sock,
            server,
            user: user.to_string(),
            password: password.to_string(),
            cseq: 0,
            call_id,
            calls: 0,
        }
    }

    fn port(&self) -> u16 {
        self.sock.local_addr().expect("addr").port()
    }

    pub fn exchange(&self, raw: &str) -> Vec<u8> {
        self.sock
            .send_to(raw.as_bytes(), self.server)
            .expect("send");
        let mut buf = vec![0u8; 65536];
        loop {
            let n = self.sock.recv(&mut buf).expect("an answer within 5 s");
            // Provisional answers (100 Trying) are not what the caller waits for.
            if !buf[..n].starts_with(b"SIP/2.0 1") {
                return buf[..n].to_vec();
            }
        }
    }

    fn register_request(&mut self, expires: u32, auth: &str) -> String {
        self.cseq += 1;
        let port = self.port();
        format!(
            "REGISTER sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{}-{};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{u}@{REALM}>;tag=t{port}\r\nTo: <sip:{u}@{REALM}>\r\n\
             Call-ID: {}\r\nCSeq: {} REGISTER\r\nContact: <sip:{u}@127.0.0.1:{port}>\r\nExpires: {expires}\r\n\
             {auth}User-Agent: it-phone/1\r\nContent-Length: 0\r\n\r\n",
            self.call_id, self.cseq, self.call_id, self.cseq, u = self.user
        )
    }

    /// REGISTER with `expires`, answering the MD5 challenge; the final status.
    pub fn register(&mut self, expires: u32) -> u16 {
        self.register_answer(expires).status
    }

    pub fn register_answer(&mut self, expires: u32) -> Answer {
        let raw = self.register_request(expires, "");
        let challenge = self.exchange(&raw);
        let nonce = nonce(&challenge, 401, HeaderName::WwwAuthenticate);
        let auth = self.authorization("Authorization", "REGISTER", &format!("sip:{REALM}"), &nonce);
        let raw = self.register_request(expires, &auth);
        answer(&self.exchange(&raw))
    }

    /// INVITE `dialled`@realm, answering the 407; the final answer.
    pub fn invite(&mut self, dialled: &str) -> Answer {
        self.calls += 1;
        let uri = format!("sip:{dialled}@{REALM}");
        let port = self.port();
        let (user, n) = (self.user.clone(), self.calls);
        let raw = |cseq: u32, auth: &str| {
            format!(
                "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-inv{n}-{cseq};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{user}@{REALM}>;tag=i{port}\r\nTo: <{uri}>\r\n\
                 Call-ID: inv-{n}-{port}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{user}@127.0.0.1:{port}>\r\n\
                 {auth}Content-Length: 0\r\n\r\n"
            )
        };
        let challenge = self.exchange(&raw(1, ""));
        let nonce = nonce(&challenge, 407, HeaderName::ProxyAuthenticate);
        let auth = self.authorization("Proxy-Authorization", "INVITE", &uri, &nonce);
        let final_answer = self.exchange(&raw(2, &auth));
        let a = answer(&final_answer);
        if a.status >= 300 {
            // ACK for a non-2xx final answer (RFC 3261 17.1.1.3), so the server stops resending.
            let ack = format!(
                "ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-inv{n}-2;rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{user}@{REALM}>;tag=i{port}\r\nTo: <{uri}>\r\n\
                 Call-ID: inv-{n}-{port}\r\nCSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = self.sock.send_to(ack.as_bytes(), self.server);
        }
        a
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

fn answer(raw: &[u8]) -> Answer {
    let m = Message::parse(raw).expect("answer parses");
    Answer {
        status: m.status().unwrap_or(0),
        reason: m.reason().unwrap_or("").to_string(),
    }
}

fn nonce(raw: &[u8], status: u16, header: HeaderName) -> String {
    let m = Message::parse(raw).expect("challenge parses");
    assert_eq!(m.status(), Some(status), "{}", String::from_utf8_lossy(raw));
    let offer = m
        .all(header)
        .find(|v| v.contains("MD5"))
        .expect("an MD5 challenge");
    offer
        .split("nonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_string()
}
