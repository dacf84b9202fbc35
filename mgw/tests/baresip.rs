//! Interop: a real baresip (Debian package) registers with digest MD5 and its binding shows up
//! in the admin API with its User-Agent.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;

fn baresip_installed() -> bool {
    Command::new("baresip")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

#[test]
fn baresip_registers_and_shows_its_user_agent() {
    if !baresip_installed() {
        // scripts/test.sh installs it; a developer machine without it skips loudly.
        eprintln!("SKIPPED: baresip is not installed (scripts/install-peers.sh installs it)");
        return;
    }
    let users = std::env::temp_dir().join(format!("mgw-baresip-users-{}.csv", std::process::id()));
    std::fs::write(&users, "user,password,number\nalice,s3cret,200\n").expect("csv");
    let server = Server::configure(
        "baresip",
        &format!("[accounts]\nimport_csv = \"{}\"\n", users.display()),
    )
    .start();

    let conf = server.dir.join("baresip");
    std::fs::create_dir_all(&conf).expect("dir");
    std::fs::write(
        conf.join("config"),
        "module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule account.so\n\
         sip_listen 127.0.0.1:0\naudio_player aufile,/dev/null\naudio_source aufile,/dev/null\n",
    )
    .expect("config");
    std::fs::write(
        conf.join("accounts"),
        format!(
            "<sip:alice@mgw.test;transport=udp>;auth_pass=s3cret;outbound=\"sip:127.0.0.1:{};transport=udp\";regint=120\n",
            server.port
        ),
    )
    .expect("accounts");
    let mut ua = Command::new("baresip")
        .arg("-f")
        .arg(&conf)
        .args(["-t", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn baresip");

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut body = String::new();
    while Instant::now() < deadline {
        let (status, b) = server.get("/api/v1/registrations");
        body = b;
        if status == 200 && body.contains("baresip") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = ua.kill();
    let _ = ua.wait();
    let _ = std::fs::remove_file(&users);
    let regs: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let alice = regs
        .as_array()
        .and_then(|a| a.iter().find(|r| r["user"] == "alice"))
        .unwrap_or_else(|| panic!("alice not registered: {body}\n{}", server.log()));
    assert!(
        alice["user_agent"]
            .as_str()
            .is_some_and(|u| u.contains("baresip")),
        "{alice}"
    );
    assert_eq!(alice["number"], "200");
    assert_eq!(alice["transport"], "udp");
    assert!(
        alice["expires_in"]
            .as_u64()
            .is_some_and(|e| e > 60 && e <= 120),
        "{alice}"
    );
    assert!(alice["source"]
        .as_str()
        .is_some_and(|s| s.starts_with("127.0.0.1:")));
}
