//! Routing, authorisation and JSON plumbing of the admin API (`/api/v1/...`).
//!
//! A route is a method, a path pattern (`/api/v1/accounts/{user}`: a `{name}`
//! segment captures one percent-decoded path segment), the least [`Role`]
//! allowed to call it, and a handler `Fn(&ApiRequest) -> Result<Json, ApiError>`.
//! Handlers never see the HTTP layer, so they can be unit-tested by building
//! an [`ApiRequest`] by hand.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "GET" => Some(Method::Get),
            "POST" => Some(Method::Post),
            "PUT" => Some(Method::Put),
            "PATCH" => Some(Method::Patch),
            "DELETE" => Some(Method::Delete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a bearer token may do. Roles are ordered: each one may do everything
/// the roles below it may (`Viewer` < `Accounting` < `Admin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read-only access.
    Viewer,
    /// Viewer plus accounts and licence bookkeeping.
    Accounting,
    /// Everything.
    Admin,
}

impl Role {
    /// Whether a caller holding `self` may call a route that needs `required`.
    pub fn allows(self, required: Role) -> bool {
        self >= required
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Accounting => "accounting",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bearer tokens and their roles.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<(String, Role)>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secrets themselves.
        f.debug_struct("Tokens")
            .field("count", &self.entries.len())
            .finish()
    }
}

impl Tokens {
    pub fn new() -> Tokens {
        Tokens::default()
    }

    /// Builder form of [`Tokens::insert`].
    pub fn with(mut self, token: impl Into<String>, role: Role) -> Tokens {
        self.insert(token, role);
        self
    }

    /// Adds `token` with `role`, replacing the role of an existing token.
    /// Empty tokens are ignored: an empty bearer must never authenticate.
    pub fn insert(&mut self, token: impl Into<String>, role: Role) {
        let token = token.into();
        if token.is_empty() {
            return;
        }
        match self.entries.iter_mut().find(|(t, _)| *t == token) {
            Some(entry) => entry.1 = role,
            None => self.entries.push((token, role)),
        }
    }

    pub fn remove(&mut self, token: &str) {
        self.entries.retain(|(t, _)| t != token);
    }

    /// The role of `token`. Compares against every entry in constant time per
    /// byte so response timing does not reveal how much of a token matched.
    pub fn role_of(&self, token: &str) -> Option<Role> {
        let mut found = None;
        for (t, role) in &self.entries {
            if ct_eq(t.as_bytes(), token.as_bytes()) {
                found = Some(*role);
            }
        }
        found
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One API call as a handler sees it.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    /// Decoded path, without the query.
    pub path: String,
    /// `{name}` captures of the route pattern.
    pub params: HashMap<String, String>,
    /// Query parameters (last one wins for repeated names).
    pub query: HashMap<String, String>,
    /// Raw request body; see [`ApiRequest::json`].
    pub body: Vec<u8>,
    /// Role of the caller's token.
    pub role: Role,
    pub remote: Option<SocketAddr>,
}

impl ApiRequest {
    /// A request with no params, query or body, for handler unit tests.
    pub fn new(method: Method, path: impl Into<String>, role: Role) -> ApiRequest {
        ApiRequest {
            method,
            path: path.into(),
            params: HashMap::new(),
            query: HashMap::new(),
            body: Vec::new(),
            role,
            remote: None,
        }
    }

    /// A path parameter; 400 if the route has no such `{name}` (a bug in the
    /// route table, but never a panic).
    pub fn param(&self, name: &str) -> Result<&str, ApiError> {
        self.params
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| ApiError::internal(format!("route has no path parameter {name:?}")))
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// The body parsed as JSON into `T`; 400 naming serde's complaint (which
    /// names the field) when it does not fit.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.body.is_empty() {
            return Err(
                ApiError::bad_request("request body is empty; a JSON body is required")
                    .with_fix("send a JSON object with Content-Type: application/json"),
            );
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::bad_request(format!("request body is not valid JSON for this call: {e}"))
                .with_fix("send a JSON object with Content-Type: application/json")
        })
    }
}

/// A successful JSON answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Json {
    pub status: u16,
    pub body: Value,
}

impl Json {
    /// 200 with `body`.
    pub fn ok(body: Value) -> Json {
        Json { status: 200, body }
    }

    /// 201 with `body`.
    pub fn created(body: Value) -> Json {
        Json { status: 201, body }
    }

    pub fn with_status(status: u16, body: Value) -> Json {
        Json { status, body }
    }

    /// 200 with `value` serialized; 500 if it cannot be.
    pub fn serialize<T: Serialize + ?Sized>(value: &T) -> Result<Json, ApiError> {
        serde_json::to_value(value)
            .map(Json::ok)
            .map_err(|e| ApiError::internal(format!("cannot serialize the answer: {e}")))
    }
}

impl From<Value> for Json {
    fn from(body: Value) -> Json {
        Json::ok(body)
    }
}

/// A failed API call, answered as
/// `{"error": "...", "fix": "...", ...details}` with `status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub error: String,
    pub fix: Option<String>,
    pub details: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: u16, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            fix: None,
            details: Map::new(),
        }
    }

    pub fn bad_request(error: impl Into<String>) -> ApiError {
        ApiError::new(400, error)
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "missing or invalid bearer token")
            .with_fix("send the header \"Authorization: Bearer TOKEN\" with the token from [admin] token in the config")
    }

    pub fn forbidden(error: impl Into<String>) -> ApiError {
        ApiError::new(403, error)
    }

    pub fn not_found(error: impl Into<String>) -> ApiError {
        ApiError::new(404, error)
    }

    pub fn conflict(error: impl Into<String>) -> ApiError {
        ApiError::new(409, error)
    }

    pub fn internal(error: impl Into<String>) -> ApiError {
        ApiError::new(500, error)
    }

    pub fn unavailable(error: impl Into<String>) -> ApiError {
        ApiError::new(503, error)
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> ApiError {
        self.fix = Some(fix.into());
        self
    }

    /// Adds a machine-readable field next to `error` (e.g. `"path"`).
    pub fn with_detail(mut self, key: impl Into<String>, value: impl Into<Value>) -> ApiError {
        self.details.insert(key.into(), value.into());
        self
    }

    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert("error".into(), Value::String(self.error.clone()));
        if let Some(fix) = &self.fix {
            body.insert("fix".into(), Value::String(fix.clone()));
        }
        for (k, v) in &self.details {
            body.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(body)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.error)
    }
}

impl std::error::Error for ApiError {}

pub type Handler = Arc<dyn Fn(&ApiRequest) -> Result<Json, ApiError> + Send + Sync>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

struct Route {
    method: Method,
    pattern: String,
    segments: Vec<Segment>,
    role: Role,
    handler: Handler,
}

/// The API route table.
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

/// What [`Router::find`] decided.
pub enum Found {
    Route {
        handler: Handler,
        params: HashMap<String, String>,
        role: Role,
    },
    /// The path exists but not for this method.
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    /// Registers `handler` for `method` on `pattern`, callable by tokens whose
    /// role [`Role::allows`] `role`. A later registration of the same method
    /// and pattern replaces the earlier one.
    pub fn route<F>(&mut self, method: Method, pattern: &str, role: Role, handler: F) -> &mut Router
    where
        F: Fn(&ApiRequest) -> Result<Json, ApiError> + Send + Sync + 'static,
    {
        let segments = split_path(pattern)
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Param(name.to_string()),
                    None => Segment::Literal(s.to_string()),
                },
            )
            .collect::<Vec<_>>();
        self.routes
            .retain(|r| !(r.method == method && r.segments == segments));
        self.routes.push(Route {
            method,
            pattern: pattern.to_string(),
            segments,
            role,
            handler: Arc::new(handler),
        });
        self
    }

    pub fn get<F>(&mut self, pattern: &str, role: Role, handler: F) -> &mut Router
    where
        F: Fn(&ApiRequest) -> Result<Json, ApiError> + Send + Sync + 'static,
    {
        self.route(Method::Get, pattern, role, handler)
    }

    pub fn post<F>(&mut self, pattern: &str, role: Role, handler: F) -> &mut Router
    where
        F: Fn(&ApiRequest) -> Result<Json, ApiError> + Send + Sync + 'static,
    {
        self.route(Method::Post, pattern, role, handler)
    }

    pub fn put<F>(&mut self, pattern: &str, role: Role, handler: F) -> &mut Router
    where
        F: Fn(&ApiRequest) -> Result<Json, ApiError> + Send + Sync + 'static,
    {
        self.route(Method::Put, pattern, role, handler)
    }

    pub fn delete<F>(&mut self, pattern: &str, role: Role, handler: F) -> &mut Router
    where
        F: Fn(&ApiRequest) -> Result<Json, ApiError> + Send + Sync + 'static,
    {
        self.route(Method::Delete, pattern, role, handler)
    }

    /// `(method, pattern, role)` of every route, for listings and docs.
    pub fn routes(&self) -> Vec<(Method, String, Role)> {
        self.routes
            .iter()
            .map(|r| (r.method, r.pattern.clone(), r.role))
            .collect()
    }

    /// Finds the route for `method` and `path` (already without the query).
    pub fn find(&self, method: Method, path: &str) -> Found {
        let parts: Vec<String> = split_path(path).map(percent_decode).collect();
        let mut allowed = Vec::new();
        for route in &self.routes {
            let Some(params) = match_segments(&route.segments, &parts) else {
                continue;
            };
            if route.method == method {
                return Found::Route {
                    handler: Arc::clone(&route.handler),
                    params,
                    role: route.role,
                };
            }
            if !allowed.contains(&route.method) {
                allowed.push(route.method);
            }
        }
        if allowed.is_empty() {
            Found::NotFound
        } else {
            Found::MethodNotAllowed(allowed)
        }
    }
}

fn split_path(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

fn match_segments(pattern: &[Segment], parts: &[String]) -> Option<HashMap<String, String>> {
    if pattern.len() != parts.len() {
        return None;
    }
    let mut params = HashMap::new();
    for (seg, part) in pattern.iter().zip(parts) {
        match seg {
            Segment::Literal(l) if l == part => {}
            Segment::Literal(_) => return None,
            Segment::Param(name) => {
                params.insert(name.clone(), part.clone());
            }
        }
    }
    Some(params)
}

/// Decodes `%XX` escapes (and `+` as space when `plus` is set, as in query
/// strings). Malformed escapes are kept literally rather than rejected.
fn decode(s: &str, plus: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            if let Some(v) = bytes.get(i + 1..i + 3).and_then(hex_byte) {
                out.push(v);
                i += 3;
                continue;
            }
            out.push(b'%');
        } else if b == b'+' && plus {
            out.push(b' ');
        } else {
            out.push(b);
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_byte(h: &[u8]) -> Option<u8> {
    // from_str_radix alone would accept a sign ("%+1").
    if !h.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
}

pub(crate) fn percent_decode(s: &str) -> String {
    decode(s, false)
}

/// Parses `a=1&b=x%20y` into a map.
pub(crate) fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k, true), decode(v, true))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn router() -> Router {
        let mut r = Router::new();
        r.get("/api/v1/accounts", Role::Viewer, |_| {
            Ok(Json::ok(json!([])))
        })
        .get("/api/v1/accounts/{user}", Role::Viewer, |req| {
            Ok(Json::ok(json!({ "user": req.param("user")? })))
        })
        .delete("/api/v1/accounts/{user}", Role::Admin, |_| {
            Ok(Json::with_status(204, Value::Null))
        });
        r
    }

    #[test]
    fn matches_literals_and_params() {
        let r = router();
        match r.find(Method::Get, "/api/v1/accounts/al%20ice/") {
            Found::Route {
                params,
                role,
                handler,
            } => {
                assert_eq!(params.get("user").map(String::as_str), Some("al ice"));
                assert_eq!(role, Role::Viewer);
                let mut req = ApiRequest::new(Method::Get, "/x", Role::Viewer);
                req.params = params;
                assert_eq!(handler(&req), Ok(Json::ok(json!({ "user": "al ice" }))));
            }
            _ => panic!("no route"),
        }
        assert!(matches!(
            r.find(Method::Get, "/api/v1/accounts"),
            Found::Route { .. }
        ));
        assert!(matches!(
            r.find(Method::Get, "/api/v1/accounts/a/b"),
            Found::NotFound
        ));
        assert!(matches!(
            r.find(Method::Get, "/api/v1/nothing"),
            Found::NotFound
        ));
        match r.find(Method::Post, "/api/v1/accounts/bob") {
            Found::MethodNotAllowed(m) => assert_eq!(m, vec![Method::Get, Method::Delete]),
            _ => panic!("expected 405"),
        }
    }

    #[test]
    fn re_registering_replaces() {
        let mut r = router();
        r.get("/api/v1/accounts", Role::Admin, |_| {
            Ok(Json::ok(json!("new")))
        });
        assert_eq!(r.routes().len(), 3);
        assert!(matches!(
            r.find(Method::Get, "/api/v1/accounts"),
            Found::Route {
                role: Role::Admin,
                ..
            }
        ));
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin.allows(Role::Accounting));
        assert!(Role::Accounting.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Accounting));
        assert!(!Role::Accounting.allows(Role::Admin));
    }

    #[test]
    fn tokens() {
        let mut t = Tokens::new()
            .with("a", Role::Admin)
            .with("v", Role::Viewer)
            .with("", Role::Admin);
        assert_eq!(t.role_of("a"), Some(Role::Admin));
        assert_eq!(t.role_of("v"), Some(Role::Viewer));
        assert_eq!(t.role_of(""), None);
        assert_eq!(t.role_of("ab"), None);
        t.insert("v", Role::Accounting);
        assert_eq!(t.role_of("v"), Some(Role::Accounting));
        t.remove("v");
        assert_eq!(t.role_of("v"), None);
        assert_eq!(format!("{t:?}"), "Tokens { count: 1 }");
    }

    #[test]
    fn query_and_decoding() {
        let q = parse_query("a=1&b=x%20y+z&flag&c=%zz&d=%4");
        assert_eq!(q.get("a").map(String::as_str), Some("1"));
        assert_eq!(q.get("b").map(String::as_str), Some("x y z"));
        assert_eq!(q.get("flag").map(String::as_str), Some(""));
        assert_eq!(q.get("c").map(String::as_str), Some("%zz"));
        assert_eq!(q.get("d").map(String::as_str), Some("%4"));
        assert_eq!(percent_decode("a+b%2Fc"), "a+b/c");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%+1"), "%+1");
    }

    #[test]
    fn json_bodies_and_errors() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Body {
            #[allow(dead_code)]
            user: String,
        }
        let mut req = ApiRequest::new(Method::Post, "/x", Role::Admin);
        assert_eq!(req.json::<Body>().map_err(|e| e.status), Err(400));
        req.body = br#"{"usr":"a"}"#.to_vec();
        let e = req.json::<Body>().expect_err("missing field");
        assert!(e.error.contains("user"), "{}", e.error);
        req.body = br#"{"user":"a"}"#.to_vec();
        assert!(req.json::<Body>().is_ok());
        assert_eq!(req.param("nope").map_err(|e| e.status), Err(500));

        let e = ApiError::not_found("no such account")
            .with_fix("list them")
            .with_detail("user", "bob");
        assert_eq!(
            e.to_json(),
            json!({"error": "no such account", "fix": "list them", "user": "bob"})
        );
        assert_eq!(e.to_string(), "404 no such account");
        assert_eq!(ApiError::unauthorized().status, 401);
        assert_eq!(Json::serialize(&[1, 2]), Ok(Json::ok(json!([1, 2]))));
        assert_eq!(Json::from(json!(1)).status, 200);
        assert_eq!(Json::created(json!({})).status, 201);
    }
}
