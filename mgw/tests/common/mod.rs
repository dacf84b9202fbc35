//! Starting a real `mgw serve` for integration tests: free ports, a config file, readiness.
#![allow(dead_code)]

pub mod phone;
pub mod ua;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const MGW: &str = env!("CARGO_BIN_EXE_mgw");

pub struct Server {
    pub child: Option<Child>,
    pub port: u16,
    pub admin: u16,
    pub dir: PathBuf,
    pub config: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port free for UDP and TCP on 127.0.0.1 and ::1 (checked, then released).
pub fn free_port() -> u16 {
    loop {
        let probe = UdpSocket::bind("127.0.0.1:0").expect("bind probe");
        let port = probe.local_addr().expect("addr").port();
        let ok = TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("::1", port)).is_ok()
            && TcpListener::bind(("::1", port)).is_ok();
        if ok {
            return port;
        }
    }
}

impl Server {
    /// Writes a config with SIP on udp+tcp 127.0.0.1 (and ::1) and `extra` TOML appended.
    pub fn configure(name: &str, extra: &str) -> Server {
        let port = free_port();
        let admin = free_port();
        let dir = std::env::temp_dir().join(format!("mgw-it-{name}-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let config = dir.join("mgw.toml");
        std::fs::write(
            &config,
            format!(
                "[sip]\nlisten = [\"udp:127.0.0.1:{port}\", \"tcp:127.0.0.1:{port}\", \"udp:[::1]:{port}\", \"tcp:[::1]:{port}\"]\n\
                 domain = \"mgw.test\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"t\"\n[store]\ndir = \"{}\"\n{extra}",
                dir.join("store").display()
            ),
        )
        .expect("config");
        Server {
            child: None,
            port,
            admin,
            dir,
            config,
        }
    }

    pub fn start(mut self) -> Server {
        self.spawn();
        self
    }

    pub fn spawn(&mut self) {
        let child = Command::new(MGW)
            .args(["serve", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(self.dir.join("stderr.log")).expect("log"),
            ))
            .spawn()
            .expect("spawn mgw");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.get("/health").0 == 200 {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mgw did not become healthy: {}", self.log());
    }

    /// SIGTERM and wait for the exit: the clean shutdown.
    #[allow(dead_code)]
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) with a valid signal number on our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    pub fn sip(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// GET with the admin token; (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        self.call("t", "GET", path, "")
    }

    /// An API call with `token` (empty: none) and a JSON `body`; (status, body).
    pub fn call(&self, token: &str, method: &str, path: &str, body: &str) -> (u16, String) {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.admin)) else {
            return (0, String::new());
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let auth = if token.is_empty() {
            String::new()
        } else {
            format!("Authorization: Bearer {token}\r\n")
        };
        let _ = write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: t\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut raw = String::new();
        let _ = s.read_to_string(&mut raw);
        let status = raw
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// An API call whose answer must be JSON; (status, parsed body).
    pub fn json(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: &str,
    ) -> (u16, serde_json::Value) {
        let (status, text) = self.call(token, method, path, body);
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text:?}"));
        (status, v)
    }
}

/// Sends one datagram from a fresh socket and waits for one answer.
pub fn udp_exchange(msg: &[u8], to: SocketAddr, wait: Duration) -> Option<Vec<u8>> {
    let bind = if to.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let s = UdpSocket::bind(bind).ok()?;
    s.set_read_timeout(Some(wait)).ok()?;
    s.send_to(msg, to).ok()?;
    let mut buf = vec![0u8; 65536];
    let n = s.recv(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}
