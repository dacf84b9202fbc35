//! The admin server over real TCP on an ephemeral loopback port.

use super::*;
use std::io::Write;
use std::net::TcpStream;

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: &str) -> Answer {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head/body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn start() -> AdminHandle {
    let tokens = Tokens::new()
        .with("admin-secret", Role::Admin)
        .with("view-secret", Role::Viewer);
    AdminHandle::start("127.0.0.1:0".parse().expect("addr"), tokens).expect("start admin")
}

#[test]
fn health_is_503_until_ready() {
    let admin = start();
    let a = admin.local_addr();
    assert_ne!(a.port(), 0);
    assert_eq!(admin.url(), format!("http://{a}"));
    let r = http(a, "GET", "/health", None, "");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["status"], "unavailable");
    admin.set_ready(true);
    assert!(admin.is_ready());
    let r = http(a, "GET", "/health", None, "");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({ "status": "ok" }));
    assert!(
        r.head
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{}",
        r.head
    );
    assert_eq!(http(a, "POST", "/health", None, "").status, 405);
    admin.set_ready(false);
    assert_eq!(http(a, "GET", "/health", None, "").status, 503);
}

#[test]
fn metrics_on_loopback_need_no_token_and_include_sources() {
    let admin = start();
    admin.add_metrics(|out: &mut String| metrics::counter(out, "mgw_test_total", "Test.", 42));
    let r = http(admin.local_addr(), "GET", "/metrics", None, "");
    assert_eq!(r.status, 200);
    assert!(r.head.contains("text/plain; version=0.0.4"), "{}", r.head);
    assert!(r.body.contains("mgw_build_info{version=\""), "{}", r.body);
    assert!(r.body.contains("mgw_ready 0\n"), "{}", r.body);
    assert!(
        r.body
            .contains("# TYPE mgw_test_total counter\nmgw_test_total 42\n"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("mgw_admin_responses_total{code=\"2xx\"}"),
        "{}",
        r.body
    );
}

#[test]
fn remote_metrics_need_a_token() {
    let remote: SocketAddr = "192.0.2.1:40000".parse().expect("addr");
    let v6_local: SocketAddr = "[::1]:40000".parse().expect("addr");
    assert!(!metrics_allowed(Some(remote), None));
    assert!(!metrics_allowed(None, None));
    assert!(metrics_allowed(Some(remote), Some(Role::Viewer)));
    assert!(metrics_allowed(Some(v6_local), None));
}

#[test]
fn api_requires_a_bearer_token() {
    let admin = start();
    admin.route(Method::Get, "/api/v1/ping", Role::Viewer, |_| {
        Ok(Json::ok(json!("pong")))
    });
    let a = admin.local_addr();
    for token in [None, Some("wrong"), Some("")] {
        let r = http(a, "GET", "/api/v1/ping", token, "");
        assert_eq!(r.status, 401, "token {token:?}");
        let j = r.json();
        assert_eq!(j["error"], "missing or invalid bearer token");
        assert!(
            j["fix"]
                .as_str()
                .is_some_and(|f| f.contains("Authorization: Bearer")),
            "{j}"
        );
    }
    // Unknown API paths are 401 too without a token: no route probing.
    assert_eq!(http(a, "GET", "/api/v1/secret-route", None, "").status, 401);
    let r = http(a, "GET", "/api/v1/ping", Some("admin-secret"), "");
    assert_eq!((r.status, r.json()), (200, json!("pong")));
}

#[test]
fn unknown_paths_are_json_404_naming_the_path() {
    let admin = start();
    let a = admin.local_addr();
    let r = http(a, "GET", "/nope?x=1", None, "");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["path"], "/nope");
    assert!(r.json()["error"]
        .as_str()
        .is_some_and(|e| e.contains("/nope")));
    let r = http(a, "GET", "/api/v1/nope", Some("admin-secret"), "");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["path"], "/api/v1/nope");
    assert!(r.json()["error"]
        .as_str()
        .is_some_and(|e| e.contains("GET /api/v1/nope")));
}

#[test]
fn routes_get_params_query_body_and_roles() {
    let admin = start();
    admin.with_router(|r| {
        r.get("/api/v1/accounts/{user}", Role::Viewer, |req| {
            Ok(Json::ok(json!({
                "user": req.param("user")?,
                "verbose": req.query("verbose"),
                "role": req.role,
            })))
        })
        .post("/api/v1/accounts", Role::Admin, |req| {
            #[derive(serde::Deserialize)]
            struct New {
                user: String,
            }
            let new: New = req.json()?;
            if new.user == "taken" {
                return Err(ApiError::conflict("account exists").with_detail("user", new.user));
            }
            Ok(Json::created(json!({ "user": new.user })))
        })
        .delete("/api/v1/accounts/{user}", Role::Admin, |_| {
            Ok(Json::with_status(204, Value::Null))
        })
        .get("/api/v1/panic", Role::Viewer, |_| panic!("handler bug"));
    });
    let a = admin.local_addr();

    let r = http(
        a,
        "GET",
        "/api/v1/accounts/al%40ice?verbose=yes",
        Some("view-secret"),
        "",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({ "user": "al@ice", "verbose": "yes", "role": "viewer" })
    );

    let r = http(
        a,
        "POST",
        "/api/v1/accounts",
        Some("view-secret"),
        r#"{"user":"bob"}"#,
    );
    assert_eq!(r.status, 403);
    assert!(r.json()["fix"]
        .as_str()
        .is_some_and(|f| f.contains("admin")));

    let r = http(
        a,
        "POST",
        "/api/v1/accounts",
        Some("admin-secret"),
        r#"{"user":"bob"}"#,
    );
    assert_eq!((r.status, r.json()), (201, json!({ "user": "bob" })));
    let r = http(
        a,
        "POST",
        "/api/v1/accounts",
        Some("admin-secret"),
        r#"{"user":"taken"}"#,
    );
    assert_eq!((r.status, r.json()["user"].clone()), (409, json!("taken")));
    let r = http(
        a,
        "POST",
        "/api/v1/accounts",
        Some("admin-secret"),
        "{not json",
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]
        .as_str()
        .is_some_and(|e| e.contains("not valid JSON")));

    let r = http(
        a,
        "DELETE",
        "/api/v1/accounts/bob",
        Some("admin-secret"),
        "",
    );
    assert_eq!((r.status, r.body.as_str()), (204, ""));

    let r = http(a, "PUT", "/api/v1/accounts/bob", Some("admin-secret"), "");
    assert_eq!(r.status, 405);
    assert!(r.head.contains("Allow: GET, DELETE"), "{}", r.head);

    let r = http(a, "GET", "/api/v1/panic", Some("admin-secret"), "");
    assert_eq!(r.status, 500);
    // The server survives a panicking handler.
    assert_eq!(
        http(a, "GET", "/api/v1/accounts/x", Some("admin-secret"), "").status,
        200
    );
}

#[test]
fn oversized_bodies_are_refused() {
    let admin = start();
    admin.route(Method::Post, "/api/v1/echo", Role::Viewer, |req| {
        Ok(Json::ok(json!(req.body.len())))
    });
    let big = "x".repeat(MAX_BODY + 1);
    let r = http(
        admin.local_addr(),
        "POST",
        "/api/v1/echo",
        Some("view-secret"),
        &big,
    );
    assert_eq!(r.status, 413);
}

#[test]
fn tokens_can_be_replaced_at_run_time() {
    let admin = start();
    admin.route(Method::Get, "/api/v1/ping", Role::Viewer, |_| {
        Ok(Json::ok(json!("pong")))
    });
    admin.set_tokens(Tokens::new().with("new", Role::Accounting));
    let a = admin.local_addr();
    assert_eq!(
        http(a, "GET", "/api/v1/ping", Some("admin-secret"), "").status,
        401
    );
    assert_eq!(http(a, "GET", "/api/v1/ping", Some("new"), "").status, 200);
}

#[test]
fn port_in_use_is_a_bind_error_naming_the_key() {
    let admin = start();
    let config = AdminConfig {
        listen: admin.local_addr(),
        token: "t".into(),
        ..AdminConfig::default()
    };
    let e = AdminHandle::start_from_config(&config)
        .err()
        .expect("port is taken");
    let s = e.to_string();
    assert!(s.starts_with("admin.listen \"127.0.0.1:"), "{s}");
    assert!(s.contains("another process holds this port"), "{s}");
}

#[test]
fn shutdown_stops_serving_and_is_idempotent() {
    let admin = start();
    let a = admin.local_addr();
    admin.set_ready(true);
    admin.shutdown();
    admin.shutdown();
    assert!(!admin.is_ready());
    drop(admin);
    // The listener is closed once the handle is gone.
    assert!(TcpStream::connect(a).is_err() || http_fails(a));
}

fn http_fails(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return true;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_or(true, |_| !out.starts_with("HTTP/1.1 200"))
}

#[test]
fn openapi_document_is_built_in_for_viewers() {
    let admin = start();
    let a = admin.local_addr();
    assert_eq!(http(a, "GET", openapi::PATH, None, "").status, 401);
    let r = http(a, "GET", openapi::PATH, Some("view-secret"), "");
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.0.3");
    assert_eq!(doc["paths"][openapi::PATH]["get"]["x-mgw-role"], "viewer");
}

#[test]
fn an_encoded_slash_stays_inside_its_path_parameter() {
    let admin = start();
    admin.route(Method::Get, "/api/v1/log-ons/{user}", Role::Viewer, |req| {
        Ok(Json::ok(json!({ "user": req.param("user")? })))
    });
    let a = http(
        admin.local_addr(),
        "GET",
        "/api/v1/log-ons/a%2Fb",
        Some("view-secret"),
        "",
    );
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.json()["user"], "a/b");
}
