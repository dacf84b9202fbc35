//! A minimal blocking HTTP/1.1 client for the admin API: one request per connection
//! (`Connection: close`), JSON bodies, a bearer token.
//!
//! Why not a crate: the CLI makes one or two small requests to a server on loopback; an HTTP
//! client crate would pull in TLS, async runtimes or connection pools it never uses. The parser
//! still copes with everything tiny_http (the server side) sends: `Content-Length` bodies,
//! chunked bodies (tiny_http chunks answers of 32 KiB and more) and bodies ended by the close.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Connect, read and write timeout.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Larger answers are refused: a confused or hostile server must not exhaust memory. The
/// largest legitimate answer (10 000 call records) is a few MiB.
pub const MAX_RESPONSE: usize = 64 << 20;

/// Where the admin API listens: `http://HOST[:PORT][/PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address, without brackets.
    pub host: String,
    pub port: u16,
    /// Path prefix without trailing slash (`""` normally); lets the API sit behind a
    /// reverse proxy under a sub-path.
    pub prefix: String,
    url: String,
}

impl Endpoint {
    /// Parses `http://HOST[:PORT][/PREFIX]`; the scheme may be left out, the port defaults to 80.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let trimmed = url.trim();
        let rest = match trimmed.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "--api {url:?}: scheme {scheme:?} is not supported; the admin API speaks plain http:// (put a TLS proxy in front for remote use)"
                ))
            }
            None => trimmed,
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let bad = |why: &str| format!("--api {url:?}: {why}; expected http://HOST:PORT");
        if authority.contains('@') {
            return Err(bad(
                "user info is not supported (pass the token with --token)",
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed '[' in the host"))?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| bad("junk after the IPv6 address"))?,
                    ),
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad(&format!("port {p:?} is not a number from 1 to 65535")))?,
        };
        if path.contains(['?', '#']) {
            return Err(bad("a query or fragment makes no sense here"));
        }
        let prefix = path.trim_end_matches('/').to_string();
        let shown_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        Ok(Endpoint {
            host: host.to_string(),
            port,
            url: format!("http://{shown_host}:{port}{prefix}"),
            prefix,
        })
    }

    /// The normalised URL, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn host_header(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// A parsed answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
pub enum Error {
    /// No connection could be made (refused, no route, name not resolved, timeout).
    Connect(io::Error),
    /// The connection broke or timed out during the exchange.
    Io(io::Error),
    /// The server's answer is not HTTP as this client understands it.
    Malformed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Connect(e) | Error::Io(e) => write!(f, "{e}"),
            Error::Malformed(m) => write!(f, "malformed HTTP answer: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// Sends one request and reads the whole answer. `path` starts with `/` and is already
/// percent-encoded (see [`encode`]); `body` is sent as `application/json`.
pub fn request(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&[u8]>,
) -> Result<Response, Error> {
    let mut stream = connect(endpoint).map_err(Error::Connect)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(Error::Io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(Error::Io)?;
    let head = request_head(endpoint, method, path, token, body.map(<[u8]>::len));
    let mut out = head.into_bytes();
    out.extend_from_slice(body.unwrap_or_default());
    stream.write_all(&out).map_err(Error::Io)?;
    stream.flush().map_err(Error::Io)?;
    read_response(&mut stream)
}

/// Tries every address the host resolves to, like a browser would (`localhost` may resolve to
/// ::1 first while mgw listens on 127.0.0.1 only).
fn connect(endpoint: &Endpoint) -> io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()?
        .collect();
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} resolves to no address", endpoint.host),
    );
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn request_head(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    token: &str,
    body_len: Option<usize>,
) -> String {
    let mut head = format!(
        "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: mgw-cli/{}\r\nAccept: application/json\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n",
        endpoint.prefix,
        endpoint.host_header(),
        env!("CARGO_PKG_VERSION"),
    );
    match body_len {
        Some(n) => head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {n}\r\n"
        )),
        // Some servers and proxies insist on a length for every POST/PUT/DELETE.
        None if method != "GET" => head.push_str("Content-Length: 0\r\n"),
        None => {}
    }
    head.push_str("\r\n");
    head
}

/// Reads until the answer is complete: by its length or chunking when it has one, so a
/// server that keeps the connection open despite `Connection: close` does not hang us until
/// the timeout; else until the server closes.
fn read_response(stream: &mut impl Read) -> Result<Response, Error> {
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 16384];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Linux reports a read timeout as EAGAIN, which reads as nonsense to an operator.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no complete answer within {} s", TIMEOUT.as_secs()),
                )))
            }
            Err(e) => return Err(Error::Io(e)),
        };
        let eof = n == 0;
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if buf.len() > MAX_RESPONSE {
            return Err(Error::Malformed(format!(
                "the answer exceeds {MAX_RESPONSE} bytes"
            )));
        }
        if let Some(r) = parse_response(&buf, eof).map_err(Error::Malformed)? {
            return Ok(r);
        }
        if eof {
            return Err(Error::Malformed(if buf.is_empty() {
                "the server closed the connection without answering".to_string()
            } else {
                "the answer ended early".to_string()
            }));
        }
    }
}

/// Parses `raw` as a complete answer. `Ok(None)`: more bytes are needed (only possible when
/// `eof` is false). Interim 1xx answers are skipped.
pub fn parse_response(raw: &[u8], eof: bool) -> Result<Option<Response>, String> {
    let mut raw = raw;
    loop {
        let Some((head_len, body_start)) = find_head_end(raw) else {
            return if eof && !raw.is_empty() {
                Err("the header section does not end".to_string())
            } else {
                Ok(None)
            };
        };
        let head = std::str::from_utf8(raw.get(..head_len).unwrap_or_default())
            .map_err(|_| "the header section is not UTF-8".to_string())?;
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let (status, reason) = parse_status_line(lines.next().unwrap_or_default())?;
        let mut headers = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| format!("header line {line:?} has no ':'"))?;
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        let rest = raw.get(body_start..).unwrap_or_default();
        if (100..200).contains(&status) {
            raw = rest;
            continue;
        }
        let mut response = Response {
            status,
            reason,
            headers,
            body: Vec::new(),
        };
        if status == 204 || status == 304 {
            return Ok(Some(response));
        }
        let chunked = response
            .header("Transfer-Encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        if chunked {
            return match decode_chunked(rest)? {
                Some(body) => {
                    response.body = body;
                    Ok(Some(response))
                }
                None if eof => Err("the chunked body ended early".to_string()),
                None => Ok(None),
            };
        }
        if let Some(len) = response.header("Content-Length") {
            let len: usize = len
                .parse()
                .map_err(|_| format!("Content-Length {len:?} is not a number"))?;
            return match rest.get(..len) {
                Some(body) => {
                    response.body = body.to_vec();
                    Ok(Some(response))
                }
                None if eof => Err(format!(
                    "the body ended after {} of {len} bytes",
                    rest.len()
                )),
                None => Ok(None),
            };
        }
        if !eof {
            return Ok(None);
        }
        response.body = rest.to_vec();
        return Ok(Some(response));
    }
}

/// (end of the header text, start of the body). Bare LF line ends are accepted.
fn find_head_end(raw: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(pos) = raw.get(i..)?.iter().position(|&b| b == b'\n') {
        let nl = i + pos;
        match raw.get(nl + 1..) {
            Some([b'\n', ..]) => return Some((nl, nl + 2)),
            Some([b'\r', b'\n', ..]) => return Some((nl, nl + 3)),
            _ => i = nl + 1,
        }
    }
    None
}

fn parse_status_line(line: &str) -> Result<(u16, String), String> {
    let bad = || format!("status line {line:?} is not HTTP/1.x");
    let rest = line.strip_prefix("HTTP/").ok_or_else(bad)?;
    let mut parts = rest.splitn(3, ' ');
    let _version = parts.next();
    let code = parts.next().ok_or_else(bad)?;
    if code.len() != 3 {
        return Err(bad());
    }
    let status: u16 = code.parse().map_err(|_| bad())?;
    if !(100..600).contains(&status) {
        return Err(bad());
    }
    Ok((status, parts.next().unwrap_or_default().trim().to_string()))
}

/// Decodes a chunked body; `Ok(None)` while incomplete. Trailers are read and dropped.
fn decode_chunked(mut data: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(nl) = data.iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let line = std::str::from_utf8(data.get(..nl).unwrap_or_default())
            .map_err(|_| "a chunk size line is not text".to_string())?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("chunk size {size_text:?} is not hexadecimal"))?;
        if size > MAX_RESPONSE {
            return Err(format!("a chunk of {size} bytes is too large"));
        }
        data = data.get(nl + 1..).unwrap_or_default();
        if size == 0 {
            // Trailer lines up to an empty line.
            loop {
                let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                    return Ok(None);
                };
                let line = data.get(..nl).unwrap_or_default();
                if line.is_empty() || line == b"\r" {
                    return Ok(Some(body));
                }
                data = data.get(nl + 1..).unwrap_or_default();
            }
        }
        let Some(chunk) = data.get(..size) else {
            return Ok(None);
        };
        body.extend_from_slice(chunk);
        data = data.get(size..).unwrap_or_default();
        match data {
            [b'\r', b'\n', rest @ ..] | [b'\n', rest @ ..] => data = rest,
            [] | [b'\r'] => return Ok(None),
            _ => return Err("a chunk is longer than its size".to_string()),
        }
    }
}

/// Percent-encodes `s` for use as one path segment or a query value: everything but the
/// RFC 3986 unreserved characters, so `/`, `?`, `+`, `#` and spaces in user names and numbers
/// reach the server as data.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(raw: &[u8]) -> Response {
        parse_response(raw, true)
            .expect("parses")
            .expect("complete")
    }

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.prefix.as_str()),
            ("127.0.0.1", 8080, "")
        );
        assert_eq!(e.url(), "http://127.0.0.1:8080");
        let e = Endpoint::parse("localhost:9000/").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("localhost", 9000));
        assert_eq!(e.url(), "http://localhost:9000");
        let e = Endpoint::parse("HTTP://[::1]:8080/mgw/").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.prefix.as_str()),
            ("::1", 8080, "/mgw")
        );
        assert_eq!(e.url(), "http://[::1]:8080/mgw");
        assert_eq!(e.host_header(), "[::1]:8080");
        let e = Endpoint::parse("http://gw.example").unwrap();
        assert_eq!(e.port, 80);
        let e = Endpoint::parse("[::1]").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 80));

        for bad in [
            "https://x:1",
            "http://:80",
            "http://x:0",
            "http://x:99999",
            "http://x:port",
            "http://[::1:80",
            "http://[::1]x",
            "http://u@x:1",
            "http://x:1/a?b",
            "",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Endpoint::parse("https://x")
            .unwrap_err()
            .contains("plain http://"));
    }

    #[test]
    fn request_head_has_token_length_and_close() {
        let e = Endpoint::parse("http://127.0.0.1:8080/p").unwrap();
        let h = request_head(&e, "POST", "/api/v1/accounts", "sec", Some(12));
        assert!(h.starts_with("POST /p/api/v1/accounts HTTP/1.1\r\n"), "{h}");
        assert!(h.contains("\r\nHost: 127.0.0.1:8080\r\n"), "{h}");
        assert!(h.contains("\r\nAuthorization: Bearer sec\r\n"), "{h}");
        assert!(h.contains("\r\nConnection: close\r\n"), "{h}");
        assert!(h.contains("\r\nContent-Type: application/json\r\nContent-Length: 12\r\n"));
        assert!(h.ends_with("\r\n\r\n"));
        let h = request_head(&e, "DELETE", "/x", "t", None);
        assert!(h.contains("Content-Length: 0\r\n"), "{h}");
        let h = request_head(&e, "GET", "/x", "t", None);
        assert!(!h.contains("Content-Length"), "{h}");
    }

    #[test]
    fn content_length_bodies() {
        let raw =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]";
        let r = complete(raw);
        assert_eq!((r.status, r.reason.as_str()), (200, "OK"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body, b"[]");
        // Complete before EOF: no need to wait for the close.
        assert!(parse_response(raw, false).unwrap().is_some());
        // Incomplete: wait, or fail at EOF.
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab";
        assert_eq!(parse_response(short, false), Ok(None));
        assert!(parse_response(short, true).unwrap_err().contains("2 of 5"));
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Le", false),
            Ok(None)
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Le", true).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", true).is_err());
    }

    #[test]
    fn bodies_ended_by_close_and_odd_heads() {
        let r = complete(b"HTTP/1.0 409 Conflict\n\n{\"error\":\"x\"}");
        assert_eq!(r.status, 409);
        assert_eq!(r.body, b"{\"error\":\"x\"}");
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\n\r\nabc", false),
            Ok(None)
        );
        let r = complete(b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n");
        assert_eq!((r.status, r.body.len()), (204, 0));
        let r = complete(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\n1",
        );
        assert_eq!((r.status, r.body.as_slice()), (201, &b"1"[..]));
        let r = complete(b"HTTP/1.1 500\r\n\r\n");
        assert_eq!((r.status, r.reason.as_str()), (500, ""));
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 999 What\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: \xff\r\n\r\n",
        ] {
            assert!(parse_response(bad, true).is_err(), "{bad:?}");
        }
        assert_eq!(parse_response(b"", true), Ok(None));
    }

    #[test]
    fn chunked_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n[1,2\r\na;ext=1\r\n,3,4,5,6,7\r\n1\r\n]\r\n0\r\nX-Trailer: y\r\n\r\n";
        let r = complete(raw);
        assert_eq!(r.body, b"[1,2,3,4,5,6,7]");
        // Every truncation is "need more", never a wrong body.
        for cut in 0..raw.len() {
            assert_eq!(parse_response(&raw[..cut], false), Ok(None), "cut at {cut}");
        }
        assert!(parse_response(&raw[..raw.len() - 3], true).is_err());
        assert_eq!(
            decode_chunked(b"0\r\n\r\n"),
            Ok(Some(Vec::new())),
            "empty body"
        );
        assert!(decode_chunked(b"zz\r\n").is_err());
        assert!(decode_chunked(b"2\r\nabc\r\n0\r\n\r\n").is_err());
        assert!(decode_chunked(b"ffffffffffffffffff\r\n").is_err());
    }

    #[test]
    fn encoding() {
        assert_eq!(encode("alice.b-1_~"), "alice.b-1_~");
        assert_eq!(encode("+49 30/1?#&="), "%2B49%2030%2F1%3F%23%26%3D");
        assert_eq!(encode("ü"), "%C3%BC");
    }

    fn tiny_server(body: Vec<u8>) -> (std::thread::JoinHandle<Option<String>>, Endpoint) {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let addr = server.server_addr().to_ip().unwrap();
        let handle = std::thread::spawn(move || {
            let mut req = server.recv().ok()?;
            let mut seen = format!("{} {}", req.method(), req.url());
            for h in req.headers() {
                if h.field.equiv("Authorization") {
                    seen.push_str(&format!(" auth={}", h.value));
                }
            }
            let mut got = String::new();
            req.as_reader().read_to_string(&mut got).ok()?;
            seen.push_str(&format!(" body={got}"));
            // from_data knows the length; tiny_http still chunks large bodies.
            req.respond(tiny_http::Response::from_data(body)).ok()?;
            Some(seen)
        });
        (handle, Endpoint::parse(&format!("http://{addr}")).unwrap())
    }

    #[test]
    fn talks_to_tiny_http_including_chunked_answers() {
        let big: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let (server, endpoint) = tiny_server(big.clone());
        let r = request(&endpoint, "POST", "/x%20y", "tok", Some(b"{\"a\":1}")).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
        assert_eq!(r.body, big);
        assert_eq!(
            server.join().unwrap().as_deref(),
            Some("POST /x%20y auth=Bearer tok body={\"a\":1}")
        );

        let (server, endpoint) = tiny_server(b"small".to_vec());
        let r = request(&endpoint, "GET", "/", "t", None).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"small"[..]));
        assert!(server.join().unwrap().is_some());
    }

    #[test]
    fn refused_connections_are_connect_errors() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let endpoint = Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        match request(&endpoint, "GET", "/", "t", None) {
            Err(Error::Connect(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused),
            other => panic!("expected a connect error, got {other:?}"),
        }
    }
}
