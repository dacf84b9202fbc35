//! The registrar of the running gateway over real UDP: digest registration, log-off,
//! expiry on time, and bindings that survive `kill -9`.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::Server;
use mgw_core::auth::Algorithm;
use mgw_core::sip::{HeaderName, Message};

struct Phone {
    sock: UdpSocket,
    server: SocketAddr,
    user: &'static str,
    password: &'static str,
    cseq: u32,
    call_id: String,
}

impl Phone {
    fn new(server: SocketAddr, user: &'static str, password: &'static str) -> Phone {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let call_id = format!("{user}-{}", sock.local_addr().expect("addr").port());
        Phone {
            sock,
            server,
            user,
            password,
            cseq: 0,
            call_id,
        }
    }

    fn exchange(&self, raw: &str) -> Vec<u8> {
        self.sock
            .send_to(raw.as_bytes(), self.server)
            .expect("send");
        let mut buf = vec![0u8; 65536];
        let n = self.sock.recv(&mut buf).expect("an answer within 5 s");
        buf.truncate(n);
        buf
    }

    fn request(&mut self, expires: u32, auth: &str) -> String {
        self.cseq += 1;
        let port = self.sock.local_addr().expect("addr").port();
        format!(
            "REGISTER sip:mgw.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{}-{};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{u}@mgw.test>;tag=t{port}\r\nTo: <sip:{u}@mgw.test>\r\n\
             Call-ID: {}\r\nCSeq: {} REGISTER\r\nContact: <sip:{u}@127.0.0.1:{port}>\r\nExpires: {expires}\r\n\
             {auth}User-Agent: it-phone/1\r\nContent-Length: 0\r\n\r\n",
            self.call_id, self.cseq, self.call_id, self.cseq, u = self.user
        )
    }

    /// REGISTER with `expires`, answering the MD5 challenge; returns the final status.
    fn register(&mut self, expires: u32) -> u16 {
        let raw = self.request(expires, "");
        let challenge = self.exchange(&raw);
        let m = Message::parse(&challenge).expect("parses");
        assert_eq!(m.status(), Some(401));
        let offer = m
            .all(HeaderName::WwwAuthenticate)
            .find(|v| v.contains("MD5"))
            .expect("an MD5 challenge");
        let nonce = offer
            .split("nonce=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("");
        let alg = Algorithm::Md5;
        let ha1 = alg.ha1(self.user, "mgw.test", self.password);
        let ha2 = alg.hash_hex(&[b"REGISTER", b"sip:mgw.test"]);
        let resp = alg.hash_hex(&[
            ha1.as_bytes(),
            nonce.as_bytes(),
            b"00000001",
            b"abc",
            b"auth",
            ha2.as_bytes(),
        ]);
        let auth = format!(
            "Authorization: Digest username=\"{}\", realm=\"mgw.test\", nonce=\"{nonce}\", uri=\"sip:mgw.test\", \
             response=\"{resp}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"abc\"\r\n",
            self.user
        );
        let raw = self.request(expires, &auth);
        let answer = self.exchange(&raw);
        Message::parse(&answer)
            .ok()
            .and_then(|m| m.status())
            .unwrap_or(0)
    }
}

fn registered(server: &Server) -> Vec<serde_json::Value> {
    let (status, body) = server.get("/api/v1/registrations");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

fn users_csv(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("users.csv");
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(
        &p,
        "user,password,number\nalice,wonder,200\nbob,builder,200\n",
    )
    .expect("csv");
    p
}

#[test]
fn register_log_off_expire_and_survive_kill_9() {
    let csv_dir = std::env::temp_dir().join(format!("mgw-it-reg-csv-{}", std::process::id()));
    let csv = users_csv(&csv_dir);
    let mut server = Server::configure(
        "registrar",
        &format!(
            "[accounts]\nimport_csv = \"{}\"\n[registrar]\nmin_expires = 1\n",
            csv.display()
        ),
    )
    .start();

    let mut alice = Phone::new(server.sip(), "alice", "wonder");
    let mut bob = Phone::new(server.sip(), "bob", "builder");
    let mut wrong = Phone::new(server.sip(), "bob", "guess");
    assert_eq!(alice.register(3600), 200);
    assert_eq!(bob.register(2), 200);
    assert_eq!(wrong.register(3600), 403, "wrong password");
    let regs = registered(&server);
    assert_eq!(regs.len(), 2, "{regs:?}");
    let a = regs.iter().find(|r| r["user"] == "alice").expect("alice");
    assert_eq!(a["number"], "200");
    assert_eq!(a["user_agent"], "it-phone/1");
    assert_eq!(a["transport"], "udp");
    assert_eq!(
        a["source"],
        alice.sock.local_addr().expect("addr").to_string()
    );

    // bob's keepalive does not come: gone on time (2 s, allow the 1 s wheel tick).
    let deadline = Instant::now() + Duration::from_secs(6);
    while registered(&server).iter().any(|r| r["user"] == "bob") {
        assert!(Instant::now() < deadline, "bob's binding did not expire");
        std::thread::sleep(Duration::from_millis(100));
    }

    // kill -9 and restart: alice comes back with her remaining lifetime.
    std::thread::sleep(Duration::from_millis(300)); // one journal batch
    server.kill();
    server.spawn();
    let regs = registered(&server);
    let a = regs
        .iter()
        .find(|r| r["user"] == "alice")
        .unwrap_or_else(|| panic!("lost: {regs:?}\n{}", server.log()));
    let left = a["expires_in"].as_u64().unwrap_or(0);
    assert!((3590..=3600).contains(&left), "{left}");
    assert!(
        !regs.iter().any(|r| r["user"] == "bob"),
        "an expired binding must not come back"
    );

    // Log-off (expires 0) removes the binding at once.
    assert_eq!(alice.register(0), 200);
    assert!(registered(&server).is_empty());
    let _ = std::fs::remove_dir_all(&csv_dir);
}
