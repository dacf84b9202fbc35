//! Typed configuration values that are written as strings in TOML.
//!
//! Their parse errors are phrased `"VALUE": what is expected`, which
//! `error::from_serde` turns into `key "VALUE": what is expected`.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// SIP transport of a listener or trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One SIP listener, written `"udp:IP:PORT"` or `"tcp:[IPV6]:PORT"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Listener {
    pub transport: Transport,
    pub addr: SocketAddr,
}

const LISTENER_EXPECTED: &str =
    "expected \"udp:HOST:PORT\" or \"tcp:[IPV6]:PORT\" with HOST an IP address such as 0.0.0.0";

impl std::str::FromStr for Listener {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: {LISTENER_EXPECTED}");
        let (proto, rest) = s.split_once(':').ok_or_else(bad)?;
        let transport = match proto.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            _ => {
                return Err(format!(
                    "{s:?}: transport {proto:?} is not supported; {LISTENER_EXPECTED}"
                ))
            }
        };
        let addr: SocketAddr = rest.parse().map_err(|_| bad())?;
        Ok(Listener { transport, addr })
    }
}

impl TryFrom<String> for Listener {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SocketAddr's Display already brackets IPv6.
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

/// An inclusive UDP port range for RTP, written `"FIRST-LAST"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    /// Number of ports in the range.
    pub fn len(&self) -> usize {
        usize::from(self.last - self.first) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// RTP/RTCP pairs (even RTP port, next odd port for RTCP) that fit.
    pub fn pairs(&self) -> usize {
        self.len() / 2
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?}: expected \"FIRST-LAST\" such as \"30000-39999\""))?;
        let parse = |p: &str| {
            p.trim().parse::<u16>().map_err(|_| {
                format!("{s:?}: {:?} is not a port number 1-65535; expected \"FIRST-LAST\" such as \"30000-39999\"", p.trim())
            })
        };
        let (first, last) = (parse(a)?, parse(b)?);
        if first == 0 {
            return Err(format!(
                "{s:?}: port 0 is not usable; start at 1024 or above"
            ));
        }
        if first >= last {
            return Err(format!(
                "{s:?}: FIRST must be below LAST, e.g. \"30000-39999\""
            ));
        }
        if first % 2 != 0 {
            return Err(format!(
                "{s:?}: FIRST must be even (RTP takes the even port, RTCP the next odd one); use {}",
                first - 1
            ));
        }
        Ok(PortRange { first, last })
    }
}

impl TryFrom<String> for PortRange {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// A remote SIP server, written `"host[:port]"` or `"[IPV6][:port]"`; the
/// port defaults to 5060.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HostPort {
    /// Hostname, IPv4 address or IPv6 address (without brackets).
    pub host: String,
    pub port: u16,
    /// Whether the text named the port: a name without one is looked up by SRV first
    /// (RFC 3263 4.2).
    pub port_given: bool,
}

pub const DEFAULT_SIP_PORT: u16 = 5060;

impl HostPort {
    /// The host as an IP address, when it is one (no DNS lookup).
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The socket address, when the host is an IP address.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.ip().map(|ip| SocketAddr::new(ip, self.port))
    }
}

impl std::str::FromStr for HostPort {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let expected = "expected \"host[:port]\" or \"[IPV6][:port]\" such as \"sip.example.org:5060\" or \"[::1]:5060\"";
        let bad = |why: &str| format!("{s:?}: {why}; {expected}");
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (v6, tail) = rest.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            if v6.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address inside [ ]"));
            }
            let port = match tail {
                "" => None,
                t => Some(t.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
            };
            (v6, port)
        } else if s.matches(':').count() > 1 {
            return Err(bad("IPv6 addresses need brackets"));
        } else {
            match s.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        if !s.starts_with('[') && !is_hostname(host) {
            return Err(bad("not a hostname or IPv4 address"));
        }
        let port_given = port.is_some();
        let port = match port {
            None => DEFAULT_SIP_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(bad("port must be 1-65535")),
                Ok(p) => p,
            },
        };
        Ok(HostPort {
            host: host.to_string(),
            port,
            port_given,
        })
    }
}

impl TryFrom<String> for HostPort {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Letters, digits, '-' and '.', as in DNS names and dotted IPv4.
pub(crate) fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !s.starts_with(['-', '.'])
        && !s.ends_with('-')
}

/// Digits, '*', '#' and a leading '+': what a phone can dial.
pub(crate) fn is_dial_string(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
}

/// `sip:` followed by something without whitespace. Deliberately shallow:
/// the SIP core parses URIs for real when it uses them.
pub(crate) fn is_sip_uri(s: &str) -> bool {
    s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("sip:"))
        && s.len() > 4
        && !s
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
}

const SOCKET_EXPECTED: &str = "expected \"IP:PORT\" such as \"127.0.0.1:8080\" or \"[::1]:8080\"";

/// `serde(deserialize_with)` for a `SocketAddr` written as a string, with a
/// message that says what to write instead.
pub(crate) fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse()
        .map_err(|_| serde::de::Error::custom(format!("{s:?}: {SOCKET_EXPECTED}")))
}

/// As [`socket_addr`], for an optional key.
pub(crate) fn opt_socket_addr<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    socket_addr(d).map(Some)
}
