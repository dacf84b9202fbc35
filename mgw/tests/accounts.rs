//! Accounts, log-ons and floating licences against the running gateway, over real SIP (UDP)
//! and the admin HTTP API: every rule of seeds 000/002/003 the accounts issue lists.

mod common;

use std::time::{Duration, Instant};

use common::phone::Phone;
use common::Server;
use serde_json::Value;

const ACC: &str = "acc-token";
const VIEW: &str = "view-token";

/// A gateway with 1 licence, tokens for every role, and alice + bob sharing number 200 from
/// the CSV import.
fn gateway(name: &str, licences: u32) -> Server {
    let server = Server::configure(name, "");
    let csv = server.dir.join("users.csv");
    std::fs::write(
        &csv,
        "user,password,number\nalice,wonder,200\nbob,builder,200\n",
    )
    .expect("csv");
    let text = std::fs::read_to_string(&server.config)
        .expect("config")
        .replace(
            "token = \"t\"\n",
            &format!("token = \"t\"\naccounting_token = \"{ACC}\"\nviewer_token = \"{VIEW}\"\n"),
        );
    let text = format!(
        "{text}[licences]\ntotal = {licences}\n[registrar]\nmin_expires = 1\n\
         [accounts]\nimport_csv = \"{}\"\n",
        csv.display()
    );
    std::fs::write(&server.config, text).expect("config");
    server.start()
}

fn licences(s: &Server) -> Value {
    let (status, v) = s.json(VIEW, "GET", "/api/v1/licences", "");
    assert_eq!(status, 200, "{v}");
    v
}

fn holders(s: &Server) -> Vec<String> {
    licences(s)["holders"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|x| x["user"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn registered_users(s: &Server) -> Vec<String> {
    let (_, v) = s.json(VIEW, "GET", "/api/v1/registrations", "");
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["user"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Seeds 000/002: registration takes no licence; the first call does; with none free only
/// emergency numbers; wrong credentials get nothing; log-off, keepalive expiry and reset free
/// licences at once.
#[test]
fn floating_licences_over_sip() {
    let s = gateway("licences", 1);
    let mut alice = Phone::new(s.sip(), "alice", "wonder");
    let mut bob = Phone::new(s.sip(), "bob", "builder");
    assert_eq!(alice.register(3600), 200);
    assert_eq!(bob.register(3600), 200);
    let l = licences(&s);
    assert_eq!(
        (l["total"].as_u64(), l["in_use"].as_u64()),
        (Some(1), Some(0))
    );

    // Alice's first call claims the only licence. Nobody has 201: admitted, then 404.
    assert_eq!(alice.invite("201").status, 404);
    assert_eq!(holders(&s), ["alice"]);
    assert!(licences(&s)["holders"][0]["since"].as_str().is_some());
    // Bob: emergency calls only.
    let refused = bob.invite("201");
    assert_eq!(refused.status, 403);
    assert!(
        refused.reason.contains("emergency calls only"),
        "{refused:?}"
    );
    for n in ["110", "112", "911", "999"] {
        // No emergency route is configured and nobody has the number: admitted, then 404.
        assert_eq!(
            bob.invite(n).status,
            404,
            "emergency {n} must pass admission"
        );
    }
    assert_eq!(holders(&s), ["alice"]);
    // Wrong credentials: nothing, not even an emergency call.
    let mut impostor = Phone::new(s.sip(), "bob", "guess");
    assert_eq!(impostor.invite("112").status, 403);
    let mut stranger = Phone::new(s.sip(), "mallory", "x");
    assert_eq!(stranger.invite("112").status, 403);

    // Alice logs off: the licence is free at once and Bob gets it.
    assert_eq!(alice.register(0), 200);
    assert!(holders(&s).is_empty());
    assert_eq!(bob.invite("201").status, 404);
    assert_eq!(holders(&s), ["bob"]);

    // Reset licences (admin only): everybody re-claims on the next call.
    let (status, _) = s.json(VIEW, "POST", "/api/v1/licences/reset", "");
    assert_eq!(status, 403, "a viewer may not reset");
    let (status, v) = s.json("t", "POST", "/api/v1/licences/reset", "");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["freed"], 1);
    assert!(holders(&s).is_empty());
    assert_eq!(alice.register(3600), 200);
    assert_eq!(alice.invite("201").status, 404);
    assert_eq!(holders(&s), ["alice"]);

    // Keepalive lapses: a profile bounds Alice's registration to 2 s; once it expires her
    // licence is free without any log-off.
    let (status, v) = s.json(
        "t",
        "POST",
        "/api/v1/profiles",
        r#"{"name":"short","min_expires":1,"max_expires":2,"default_expires":2}"#,
    );
    assert_eq!(status, 201, "{v}");
    let (status, v) = s.json(
        "t",
        "PATCH",
        "/api/v1/log-ons/alice",
        r#"{"profile":"short"}"#,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(alice.register(3600), 200);
    let (_, regs) = s.json(VIEW, "GET", "/api/v1/registrations?user=alice", "");
    assert!(regs[0]["expires_in"].as_u64().unwrap_or(99) <= 2, "{regs}");
    wait_until(
        "alice's licence to be freed by expiry",
        Duration::from_secs(6),
        || holders(&s).is_empty(),
    );
    assert!(!registered_users(&s).contains(&"alice".to_string()));

    // Licence total changed at run time.
    let (status, v) = s.json("t", "PUT", "/api/v1/licences", r#"{"total":3}"#);
    assert_eq!((status, v["total"].as_u64()), (200, Some(3)), "{v}");
    let metrics = s.get("/metrics").1;
    assert!(metrics.contains("mgw_licences_total 3"), "{metrics}");
}

/// Seed 003: the account life cycle, exclusive main numbers, allowed networks, roles, the
/// deletion rules, and acknowledged writes surviving `kill -9`.
#[test]
fn accounts_over_http_and_sip() {
    let mut s = gateway("accounts", 5);
    // The CSV made number 200 an enabled account with both log-ons.
    let (status, list) = s.json(VIEW, "GET", "/api/v1/accounts", "");
    assert_eq!(status, 200);
    let csv_account = &list[0];
    assert_eq!(csv_account["main_number"], "200");
    assert_eq!(csv_account["state"], "enabled");
    assert_eq!(csv_account["log_ons"], serde_json::json!(["alice", "bob"]));
    let csv_id = csv_account["id"].as_u64().expect("id");

    // Roles: a viewer reads only; accounting creates accounts; log-ons are admin's.
    let body = r#"{"name":"shop","main_number":"300","channels":2,"tariff":"flat"}"#;
    assert_eq!(s.json(VIEW, "POST", "/api/v1/accounts", body).0, 403);
    assert_eq!(s.json("", "GET", "/api/v1/accounts", "").0, 401);
    let (status, shop) = s.json(ACC, "POST", "/api/v1/accounts", body);
    assert_eq!(status, 201, "{shop}");
    assert_eq!(shop["state"], "pending", "a new account is not active");
    let id = shop["id"].as_u64().expect("id");
    let (status, err) = s.json(
        ACC,
        "POST",
        "/api/v1/accounts",
        r#"{"name":"other","main_number":"200"}"#,
    );
    assert_eq!(status, 409);
    assert!(
        err["error"]
            .as_str()
            .unwrap_or("")
            .contains("already linked"),
        "{err}"
    );
    let carol = r#"{"user":"carol","password":"sing","number":"300"}"#;
    assert_eq!(s.json(ACC, "POST", "/api/v1/log-ons", carol).0, 403);
    assert_eq!(s.json("t", "POST", "/api/v1/log-ons", carol).0, 201);

    // Pending: devices register, but place no calls (emergency excepted).
    let mut phone = Phone::new(s.sip(), "carol", "sing");
    assert_eq!(phone.register(3600), 200);
    let a = phone.invite("200");
    assert_eq!(
        (a.status, a.reason.as_str()),
        (403, "Forbidden: account not yet enabled")
    );
    assert_eq!(
        phone.invite("112").status,
        404,
        "admitted, then nobody has 112"
    );
    let (status, v) = s.json(ACC, "POST", &format!("/api/v1/accounts/{id}/enable"), "");
    assert_eq!((status, v["state"].as_str()), (200, Some("enabled")));
    // Admitted; nobody is registered on 200.
    let a = phone.invite("200");
    assert_eq!(
        (a.status, a.reason.as_str()),
        (
            480,
            "Temporarily Unavailable: no phone is registered on 200"
        )
    );

    // Disabled: bindings dropped at once, REGISTER refused with 403.
    assert!(registered_users(&s).contains(&"carol".to_string()));
    let (status, _) = s.json(ACC, "POST", &format!("/api/v1/accounts/{id}/disable"), "");
    assert_eq!(status, 200);
    assert!(!registered_users(&s).contains(&"carol".to_string()));
    let a = phone.register_answer(3600);
    assert_eq!(
        (a.status, a.reason.as_str()),
        (403, "Forbidden: account disabled")
    );

    // Allowed networks: from elsewhere the answer is exactly a wrong password's.
    let (status, v) = s.json(
        ACC,
        "PATCH",
        &format!("/api/v1/accounts/{csv_id}"),
        r#"{"allowed_networks":["10.0.0.0/8"]}"#,
    );
    assert_eq!(status, 200, "{v}");
    let mut alice = Phone::new(s.sip(), "alice", "wonder");
    let outside = alice.register_answer(3600);
    let unknown = Phone::new(s.sip(), "nobody", "x").register_answer(3600);
    assert_eq!(outside, unknown, "nothing tells that alice exists");
    assert_eq!(outside.status, 403);
    let (status, _) = s.json(
        ACC,
        "PATCH",
        &format!("/api/v1/accounts/{csv_id}"),
        r#"{"allowed_networks":["127.0.0.0/8"]}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(alice.register(3600), 200);

    // Bad input: clear JSON errors.
    let (status, e) = s.json(ACC, "POST", "/api/v1/accounts", "{");
    assert_eq!(status, 400);
    assert!(
        e["error"].as_str().is_some() && e["fix"].as_str().is_some(),
        "{e}"
    );
    let (status, e) = s.json(
        ACC,
        "PATCH",
        &format!("/api/v1/accounts/{csv_id}"),
        r#"{"allowed_networks":["10.1.2.3/8"]}"#,
    );
    assert_eq!(status, 400);
    assert!(
        e["error"].as_str().unwrap_or("").contains("10.0.0.0/8"),
        "{e}"
    );
    let (status, e) = s.json(
        ACC,
        "POST",
        "/api/v1/accounts",
        r#"{"name":"x","main_number":"12a"}"#,
    );
    assert_eq!(status, 400, "{e}");
    let (status, e) = s.json(
        ACC,
        "POST",
        "/api/v1/accounts",
        r#"{"name":"x","main_number":"5","colour":1}"#,
    );
    assert_eq!(status, 400);
    assert!(e["error"].as_str().unwrap_or("").contains("colour"), "{e}");
    let (status, e) = s.json(
        ACC,
        "PATCH",
        &format!("/api/v1/accounts/{id}"),
        r#"{"main_number":"999"}"#,
    );
    assert_eq!(status, 409, "the main number is bound: {e}");

    // Deletion: only disabled, no extra numbers, no caller-ID rules; 409 names each blocker.
    let (status, v) = s.json(
        ACC,
        "POST",
        &format!("/api/v1/accounts/{id}/numbers"),
        r#"{"number":"301"}"#,
    );
    assert_eq!(status, 200, "{v}");
    let (status, v) = s.json(
        ACC,
        "POST",
        &format!("/api/v1/accounts/{id}/caller-id-rules"),
        r#"{"prefix":"0049","present":"301"}"#,
    );
    assert_eq!(status, 200, "{v}");
    let rule = v["caller_id_rules"][0]["id"].as_u64().expect("rule id");
    let (status, e) = s.json(ACC, "DELETE", &format!("/api/v1/accounts/{id}"), "");
    assert_eq!(status, 409);
    assert_eq!(e["blockers"].as_array().map(Vec::len), Some(2), "{e}");
    let (status, e) = s.json(ACC, "DELETE", &format!("/api/v1/accounts/{csv_id}"), "");
    assert_eq!(status, 409);
    assert!(
        e["error"]
            .as_str()
            .unwrap_or("")
            .contains("disable it first"),
        "{e}"
    );
    assert_eq!(
        s.json(
            ACC,
            "DELETE",
            &format!("/api/v1/accounts/{id}/caller-id-rules/{rule}"),
            ""
        )
        .0,
        200
    );
    assert_eq!(
        s.json(
            ACC,
            "DELETE",
            &format!("/api/v1/accounts/{id}/numbers/301"),
            ""
        )
        .0,
        200
    );
    // Acknowledged writes survive kill -9.
    let (status, _) = s.json(
        ACC,
        "POST",
        "/api/v1/accounts",
        r#"{"name":"durable","main_number":"400","allowed_networks":["192.0.2.0/24"]}"#,
    );
    assert_eq!(status, 201);
    s.kill();
    s.spawn();
    let (status, v) = s.json(VIEW, "GET", "/api/v1/accounts/durable", "");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["allowed_networks"], serde_json::json!(["192.0.2.0/24"]));
    let (_, v) = s.json(VIEW, "GET", &format!("/api/v1/accounts/{id}"), "");
    assert_eq!(v["state"], "disabled");
    assert_eq!(v["extra_numbers"], serde_json::json!([]));

    let (status, v) = s.json(ACC, "DELETE", &format!("/api/v1/accounts/{id}"), "");
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        s.json(VIEW, "GET", "/api/v1/log-ons/carol", "").0,
        404,
        "its data is erased"
    );
    let (_, n) = s.json(VIEW, "GET", "/api/v1/numbers/300", "");
    assert_eq!(
        n["account_id"],
        Value::Null,
        "the main number is free again"
    );
    let (status, _) = s.json(
        ACC,
        "POST",
        "/api/v1/accounts",
        r#"{"name":"reuse","main_number":"300"}"#,
    );
    assert_eq!(status, 201, "a freed number can be a main number again");
    assert_eq!(phone.register(3600), 403, "carol is gone");
}
