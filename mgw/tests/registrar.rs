//! The registrar of the running gateway over real UDP: digest registration, log-off,
//! expiry on time, and bindings that survive `kill -9`.

mod common;

use std::time::{Duration, Instant};

use common::phone::Phone;
use common::Server;

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
