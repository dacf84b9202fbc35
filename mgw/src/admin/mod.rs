//! The admin HTTP server: `GET /health`, `GET /metrics` and the JSON API under
//! `/api/v1/`, described by the OpenAPI document at `GET /api/v1/openapi.json`.
//!
//! Why tiny_http: the admin API is a handful of low-rate JSON calls on
//! loopback. tiny_http is synchronous, has four small dependencies and builds
//! in seconds; hyper/axum would pull in tokio and a second async runtime next
//! to the engine's own I/O threads, for no gain at this request rate.
//!
//! The server runs on its own threads ([`WORKERS`] of them, so a slow API
//! call cannot stall health checks) and never touches the SIP engine's
//! threads. Everything a later subsystem plugs in — API routes, metrics
//! sources, tokens, readiness — goes through [`AdminHandle`], also after the
//! server has started.

pub mod metrics;
pub mod openapi;
pub mod router;

#[cfg(test)]
mod tests;

pub use metrics::MetricsSource;
pub use router::{ApiError, ApiRequest, Handler, Json, Method, Role, Router, Tokens};

use crate::config::{AdminConfig, ConfigError};
use router::Found;
use serde_json::{json, Value};
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Threads serving admin requests.
pub const WORKERS: usize = 2;

/// Larger request bodies are refused with 413: the API takes small JSON
/// objects (bulk imports read a file named in the config instead).
pub const MAX_BODY: usize = 1 << 20;

const JSON: &str = "application/json";

struct Shared {
    ready: AtomicBool,
    router: RwLock<Router>,
    tokens: RwLock<Tokens>,
    metrics: RwLock<Vec<Arc<dyn MetricsSource>>>,
    started: Instant,
    /// Answers by status class: index 0 = 1xx ... 4 = 5xx.
    answered: [AtomicU64; 5],
}

/// The running admin server. Dropping it shuts the server down.
pub struct AdminHandle {
    shared: Arc<Shared>,
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl AdminHandle {
    /// Binds `listen` and starts serving. Not ready (`/health` answers 503)
    /// until [`AdminHandle::set_ready`].
    pub fn start(listen: SocketAddr, tokens: Tokens) -> io::Result<AdminHandle> {
        // Bind ourselves rather than through tiny_http so that a port in use
        // comes back as an io::Error with its kind, not a boxed string.
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let server = tiny_http::Server::from_listener(listener, None).map_err(io::Error::other)?;
        // Built-in routes; everything else is registered by the subsystems that own it.
        let mut router = Router::new();
        openapi::register(&mut router);
        let shared = Arc::new(Shared {
            ready: AtomicBool::new(false),
            router: RwLock::new(router),
            tokens: RwLock::new(tokens),
            metrics: RwLock::new(Vec::new()),
            started: Instant::now(),
            answered: Default::default(),
        });
        let handle = AdminHandle {
            shared,
            server: Arc::new(server),
            addr,
            stopping: Arc::new(AtomicBool::new(false)),
            threads: Mutex::new(Vec::new()),
        };
        for i in 0..WORKERS {
            let shared = Arc::clone(&handle.shared);
            let server = Arc::clone(&handle.server);
            let stopping = Arc::clone(&handle.stopping);
            let thread = std::thread::Builder::new()
                .name(format!("mgw-admin-{i}"))
                .spawn(move || serve(&shared, &server, &stopping))?;
            handle.lock_threads().push(thread);
        }
        Ok(handle)
    }

    /// [`AdminHandle::start`] on `[admin]`: `listen`, with `token` as the
    /// admin token and the optional accounting and viewer tokens. A bind
    /// failure names `admin.listen`.
    pub fn start_from_config(config: &AdminConfig) -> Result<AdminHandle, ConfigError> {
        let mut tokens = Tokens::new().with(config.token.clone(), Role::Admin);
        if let Some(t) = &config.accounting_token {
            tokens.insert(t.clone(), Role::Accounting);
        }
        if let Some(t) = &config.viewer_token {
            tokens.insert(t.clone(), Role::Viewer);
        }
        AdminHandle::start(config.listen, tokens).map_err(|error| ConfigError::Bind {
            key: "admin.listen".to_string(),
            value: config.listen.to_string(),
            error,
        })
    }

    /// The bound address (the real port when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` of the server.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `/health` answers 200 while ready, 503 otherwise.
    pub fn set_ready(&self, ready: bool) {
        self.shared.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::SeqCst)
    }

    /// Registers an API route; see [`Router::route`].
    pub fn route<F>(&self, method: Method, pattern: &str, role: Role, handler: F)
    where
        F: Fn(&ApiRequest) -> Result<Json, ApiError> + Send + Sync + 'static,
    {
        self.with_router(|r| {
            r.route(method, pattern, role, handler);
        });
    }

    /// Gives `f` the route table, to register several routes at once.
    pub fn with_router(&self, f: impl FnOnce(&mut Router)) {
        let mut router = self
            .shared
            .router
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut router);
    }

    /// Adds a source of metric families to every `/metrics` scrape.
    pub fn add_metrics(&self, source: impl MetricsSource + 'static) {
        self.shared
            .metrics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(source));
    }

    /// Replaces the token table (e.g. once tokens for other roles are stored).
    pub fn set_tokens(&self, tokens: Tokens) {
        *self
            .shared
            .tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner) = tokens;
    }

    /// Stops serving and joins the server threads. Idempotent.
    pub fn shutdown(&self) {
        self.set_ready(false);
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        for _ in 0..WORKERS {
            self.server.unblock();
        }
        let threads = std::mem::take(&mut *self.lock_threads());
        for t in threads {
            if t.join().is_err() {
                log::error!("admin server thread panicked");
            }
        }
    }

    fn lock_threads(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.threads.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for AdminHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(shared: &Shared, server: &tiny_http::Server, stopping: &AtomicBool) {
    loop {
        match server.recv() {
            Ok(request) => handle(shared, request),
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(e) => {
                // Accept errors (EMFILE ...) are transient; back off instead
                // of spinning.
                log::warn!("admin server: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// An answer before it is turned into a tiny_http response.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    allow: Option<String>,
}

impl Reply {
    fn json(status: u16, body: &Value) -> Reply {
        let mut bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
        bytes.push(b'\n');
        Reply {
            status,
            content_type: JSON,
            body: bytes,
            allow: None,
        }
    }

    fn error(e: &ApiError) -> Reply {
        Reply::json(e.status, &e.to_json())
    }
}

fn handle(shared: &Shared, mut request: tiny_http::Request) {
    let reply = answer(shared, &mut request);
    if let Some(counter) = shared
        .answered
        .get(usize::from(reply.status / 100).wrapping_sub(1))
    {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    // Every answer is complete in memory: send its Content-Length rather than chunks (tiny_http
    // chunks bodies from 32 KiB on, e.g. the OpenAPI document), so simple clients can read it.
    let mut response = tiny_http::Response::from_data(reply.body)
        .with_status_code(reply.status)
        .with_chunked_threshold(usize::MAX);
    let mut headers = vec![
        ("Content-Type", reply.content_type.to_string()),
        ("Cache-Control", "no-store".to_string()),
    ];
    if let Some(allow) = reply.allow {
        headers.push(("Allow", allow));
    }
    for (name, value) in headers {
        if let Ok(h) = tiny_http::Header::from_bytes(name, value) {
            response.add_header(h);
        }
    }
    if let Err(e) = request.respond(response) {
        log::debug!("admin server: cannot send answer: {e}");
    }
}

fn answer(shared: &Shared, request: &mut tiny_http::Request) -> Reply {
    let url = request.url().to_string();
    let (raw_path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
    let path = router::percent_decode(raw_path);
    let method = request.method().as_str().to_ascii_uppercase();
    let remote = request.remote_addr().copied();
    let bearer = bearer_token(request);

    match path.as_str() {
        "/health" => {
            if method != "GET" && method != "HEAD" {
                return method_not_allowed(&path, "GET");
            }
            if shared.ready.load(Ordering::SeqCst) {
                Reply::json(200, &json!({ "status": "ok" }))
            } else {
                Reply::json(
                    503,
                    &json!({ "status": "unavailable", "error": "mgw is starting or stopping" }),
                )
            }
        }
        "/metrics" => {
            if method != "GET" && method != "HEAD" {
                return method_not_allowed(&path, "GET");
            }
            let role = bearer.as_deref().and_then(|t| role_of(shared, t));
            if !metrics_allowed(remote, role) {
                return Reply::error(&ApiError::unauthorized());
            }
            Reply {
                status: 200,
                content_type: metrics::CONTENT_TYPE,
                body: render_metrics(shared).into_bytes(),
                allow: None,
            }
        }
        p if p == "/api" || p.starts_with("/api/") => {
            // Authenticate before routing so that unauthenticated callers
            // cannot probe which routes exist.
            let Some(role) = bearer.as_deref().and_then(|t| role_of(shared, t)) else {
                return Reply::error(&ApiError::unauthorized());
            };
            // The router decodes each segment itself, so an encoded "/" stays in its segment.
            api(shared, request, &method, raw_path, query, role, remote)
        }
        _ => Reply::error(
            &ApiError::not_found(format!("no such path: {path}"))
                .with_detail("path", path.clone())
                .with_fix("the admin server serves GET /health, GET /metrics and /api/v1/... (listed by GET /api/v1/openapi.json)"),
        ),
    }
}

fn api(
    shared: &Shared,
    request: &mut tiny_http::Request,
    method: &str,
    raw_path: &str,
    query: &str,
    role: Role,
    remote: Option<SocketAddr>,
) -> Reply {
    let path = router::percent_decode(raw_path);
    let Some(m) = Method::parse(method) else {
        return Reply::error(
            &ApiError::new(405, format!("method {method} is not used by the API"))
                .with_detail("path", path)
                .with_fix("use GET, POST, PUT, PATCH or DELETE"),
        );
    };
    let found = shared
        .router
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .find(m, raw_path);
    let (handler, params, required) = match found {
        Found::Route {
            handler,
            params,
            role,
        } => (handler, params, role),
        Found::MethodNotAllowed(allowed) => {
            let allow = allowed
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return method_not_allowed(&path, &allow);
        }
        Found::NotFound => {
            return Reply::error(
                &ApiError::not_found(format!("no API route {method} {path}"))
                    .with_detail("path", path)
                    .with_fix("check the path against the API documentation"),
            )
        }
    };
    if !role.allows(required) {
        return Reply::error(
            &ApiError::forbidden(format!("role {role} may not call {method} {path}"))
                .with_fix(format!("use a token with role {required} or above")),
        );
    }
    let mut body = Vec::new();
    if let Err(e) = request
        .as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
    {
        return Reply::error(&ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        )));
    }
    if body.len() > MAX_BODY {
        return Reply::error(
            &ApiError::new(413, format!("request body exceeds {MAX_BODY} bytes"))
                .with_fix("send a smaller JSON body"),
        );
    }
    let req = ApiRequest {
        method: m,
        path,
        params,
        query: router::parse_query(query),
        body,
        role,
        remote,
    };
    // A panicking handler answers 500 instead of taking an admin thread down.
    match catch_unwind(AssertUnwindSafe(|| handler(&req))) {
        Ok(Ok(Json { status: 204, .. })) => Reply {
            status: 204,
            content_type: JSON,
            body: Vec::new(),
            allow: None,
        },
        Ok(Ok(json)) => Reply::json(json.status, &json.body),
        Ok(Err(e)) => Reply::error(&e),
        Err(_) => {
            log::error!("admin API handler for {} {} panicked", req.method, req.path);
            Reply::error(&ApiError::internal("internal error; see the mgw log"))
        }
    }
}

fn method_not_allowed(path: &str, allow: &str) -> Reply {
    let mut reply = Reply::error(
        &ApiError::new(405, format!("method not allowed on {path}"))
            .with_detail("path", path.to_string())
            .with_fix(format!("use {allow}")),
    );
    reply.allow = Some(allow.to_string());
    reply
}

/// Scrapers on this host need no token; remote ones need one (any role).
fn metrics_allowed(remote: Option<SocketAddr>, role: Option<Role>) -> bool {
    role.is_some() || remote.is_some_and(|a| a.ip().is_loopback())
}

fn bearer_token(request: &tiny_http::Request) -> Option<String> {
    let value = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))?
        .value
        .as_str();
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

fn role_of(shared: &Shared, token: &str) -> Option<Role> {
    shared
        .tokens
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .role_of(token)
}

fn render_metrics(shared: &Shared) -> String {
    let mut out = String::new();
    metrics::family(
        &mut out,
        "mgw_build_info",
        "gauge",
        "Version of the running mgw.",
    );
    metrics::sample(
        &mut out,
        "mgw_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    metrics::gauge(
        &mut out,
        "mgw_ready",
        "1 while every listener is up (what /health reports).",
        u8::from(shared.ready.load(Ordering::SeqCst)),
    );
    metrics::gauge(
        &mut out,
        "mgw_uptime_seconds",
        "Seconds since the admin server started.",
        shared.started.elapsed().as_secs(),
    );
    metrics::family(
        &mut out,
        "mgw_admin_responses_total",
        "counter",
        "Admin HTTP answers by status class.",
    );
    for (i, c) in shared.answered.iter().enumerate() {
        let class = format!("{}xx", i + 1);
        metrics::sample(
            &mut out,
            "mgw_admin_responses_total",
            &[("code", &class)],
            c.load(Ordering::Relaxed),
        );
    }
    // Clone the list so a slow source never holds the lock against
    // registrations.
    let sources = shared
        .metrics
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for source in sources {
        source.render(&mut out);
    }
    out
}
