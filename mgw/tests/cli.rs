//! The `mgw` binary as an operator uses it: exit codes, one-line errors,
//! `/health` and clean shutdown on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const MGW: &str = env!("CARGO_BIN_EXE_mgw");

fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mgw-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir
}

fn write_config(dir: &Path, admin_listen: &str, extra: &str) -> PathBuf {
    let path = dir.join("mgw.toml");
    let text = format!(
        "[sip]\nlisten = [\"udp:127.0.0.1:0\", \"tcp:127.0.0.1:0\"]\ndomain = \"mgw.test\"\n\
         [admin]\nlisten = \"{admin_listen}\"\ntoken = \"admin-secret\"\n\
         [store]\ndir = \"{}\"\n{extra}",
        dir.join("store").display()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn run(args: &[&str]) -> Output {
    Command::new(MGW).args(args).output().expect("run mgw")
}

fn one_line_stderr(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(err.lines().count(), 1, "stderr must be one line: {err:?}");
    err.trim_end().to_string()
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect admin");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

struct Server {
    child: Child,
    stdout: mpsc::Receiver<String>,
}

impl Server {
    fn start(config: &Path) -> Server {
        let mut child = Command::new(MGW)
            .args(["serve", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mgw serve");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server { child, stdout: rx }
    }

    /// The admin address from the start banner.
    fn admin_addr(&self) -> SocketAddr {
        loop {
            let line = self
                .stdout
                .recv_timeout(Duration::from_secs(30))
                .expect("banner with the admin URL within 30 s");
            if let Some(rest) = line.trim_start().strip_prefix("admin") {
                let url = rest.split_whitespace().next().expect("url");
                return url
                    .strip_prefix("http://")
                    .expect("http url")
                    .parse()
                    .expect("admin addr");
            }
        }
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: plain kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    fn wait(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().expect("wait");
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (status.code(), err)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn version_and_default_config() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("mgw {}", env!("CARGO_PKG_VERSION"))
    );

    let out = run(&["config", "default"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        mgw::config::DEFAULT_TOML
    );
}

#[test]
fn config_check_ok_and_errors() {
    let dir = tmp_dir("check");
    let good = write_config(&dir, "127.0.0.1:0", "");
    let out = run(&["config", "check", "--config", good.to_str().expect("utf8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");

    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[sip]\nlisten = [\"udp:0.0.0.0:5060\", \"tcp:1.2.3\"]\n",
    )
    .expect("write");
    let out = run(&["config", "check", "--config", bad.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        one_line_stderr(&out),
        "mgw: config: sip.listen[1] \"tcp:1.2.3\": expected \"udp:HOST:PORT\" or \"tcp:[IPV6]:PORT\" with HOST an IP address such as 0.0.0.0"
    );

    std::fs::write(&bad, "[sip]\nlisten_on = []\n").expect("write");
    let out = run(&["config", "check", "--config", bad.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_stderr(&out).contains("unknown key \"sip.listen_on\""));

    let csv = write_config(
        &dir,
        "127.0.0.1:0",
        "[accounts]\nimport_csv = \"/nonexistent/users.csv\"\n",
    );
    let out = run(&["config", "check", "--config", csv.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_stderr(&out).contains("accounts.import_csv \"/nonexistent/users.csv\""));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_rejects_unreadable_config() {
    let out = run(&["serve", "--config", "/nonexistent/mgw.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = one_line_stderr(&out);
    assert!(
        err.starts_with("mgw: config: ")
            && err.contains("/nonexistent/mgw.toml")
            && err.contains("os error 2"),
        "{err}"
    );
}

#[test]
fn serve_rejects_admin_port_in_use() {
    let dir = tmp_dir("inuse");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let config = write_config(&dir, &taken.local_addr().expect("addr").to_string(), "");
    let out = run(&["serve", "--config", config.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(2));
    let err = one_line_stderr(&out);
    assert!(
        err.contains("admin.listen") && err.contains("in use"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// interface.md: a port in use is a non-zero exit with one line on stderr, whichever listener
/// it is; start-up's log lines are held back until the start succeeds.
#[test]
fn serve_rejects_sip_and_ng_ports_in_use() {
    let dir = tmp_dir("sipinuse");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let taken = udp.local_addr().expect("addr");
    let tcp = TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_tcp = tcp.local_addr().expect("addr");
    for (listen, ng, key) in [
        (format!("udp:{taken}"), String::new(), "sip.listen"),
        (format!("tcp:{taken_tcp}"), String::new(), "sip.listen"),
        (
            "udp:127.0.0.1:0".to_string(),
            format!("[media]\nng_listen = \"{taken}\"\n"),
            "ng_listen",
        ),
    ] {
        let path = dir.join("mgw.toml");
        std::fs::write(
            &path,
            format!(
                "[sip]\nlisten = [\"{listen}\"]\ndomain = \"mgw.test\"\n\
                 [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"admin-secret\"\n\
                 [store]\ndir = \"{}\"\n{ng}",
                dir.join("store").display()
            ),
        )
        .expect("config");
        let out = run(&["serve", "--config", path.to_str().expect("utf8")]);
        assert_ne!(out.status.code(), Some(0), "{listen} {ng}");
        let err = one_line_stderr(&out);
        assert!(err.contains(key) && err.contains("in use"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_is_healthy_then_stops_cleanly_on_sigterm() {
    let dir = tmp_dir("serve");
    let config = write_config(&dir, "127.0.0.1:0", "");
    let server = Server::start(&config);
    let admin = server.admin_addr();
    let (status, body) = get(admin, "/health");
    assert_eq!((status, body.trim()), (200, r#"{"status":"ok"}"#));
    let (status, body) = get(admin, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("mgw_ready 1"), "{body}");
    assert!(dir.join("store").is_dir(), "store.dir is created");

    server.signal(libc::SIGTERM);
    let (code, err) = server.wait();
    assert_eq!(code, Some(0), "stderr: {err}");
    assert!(err.contains("shutting down"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_stops_cleanly_on_sigint() {
    let dir = tmp_dir("sigint");
    let config = write_config(&dir, "127.0.0.1:0", "");
    let server = Server::start(&config);
    let admin = server.admin_addr();
    assert_eq!(get(admin, "/health").0, 200);
    server.signal(libc::SIGINT);
    let (code, err) = server.wait();
    assert_eq!(code, Some(0), "stderr: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}
