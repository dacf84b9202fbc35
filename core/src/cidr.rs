//! IP networks in CIDR notation (RFC 4632, RFC 4291 section 2.3), for an account's allowed
//! networks. An IPv4 network also matches IPv4-mapped IPv6 sources (`::ffff:a.b.c.d`), which is
//! how a dual-stack socket reports IPv4 peers.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a network was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CidrError {
    BadAddress(String),
    BadPrefix(String),
    /// Bits set after the prefix, e.g. `10.1.2.3/8`: almost always a typo for a host or a
    /// different prefix, so it is refused rather than silently masked.
    HostBitsSet {
        given: String,
        network: String,
    },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::BadAddress(s) => write!(
                f,
                "{s:?} is not an IP network; write it as ADDRESS/PREFIX, e.g. 192.168.1.0/24 or 2001:db8::/32"
            ),
            CidrError::BadPrefix(s) => write!(
                f,
                "{s:?} has a prefix length out of range (0-32 for IPv4, 0-128 for IPv6)"
            ),
            CidrError::HostBitsSet { given, network } => write!(
                f,
                "{given:?} has bits set beyond its prefix; did you mean {network}?"
            ),
        }
    }
}

impl std::error::Error for CidrError {}

impl Cidr {
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            (_, ip) => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => mask32(u32::from(a), self.prefix) == u32::from(n),
            (IpAddr::V6(n), IpAddr::V6(a)) => mask128(u128::from(a), self.prefix) == u128::from(n),
            _ => false,
        }
    }
}

fn mask32(v: u32, prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => v & (u32::MAX << (32 - u32::from(p))),
    }
}

fn mask128(v: u128, prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => v & (u128::MAX << (128 - u32::from(p))),
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `ADDRESS/PREFIX`, or a bare address meaning that one host.
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let t = s.trim();
        let (a, p) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let addr: IpAddr = a
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| CidrError::BadAddress(s.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(v) if v <= max => v,
                _ => return Err(CidrError::BadPrefix(s.to_string())),
            },
        };
        let network = match addr {
            IpAddr::V4(v) => IpAddr::V4(mask32(u32::from(v), prefix).into()),
            IpAddr::V6(v) => IpAddr::V6(mask128(u128::from(v), prefix).into()),
        };
        if network != addr {
            return Err(CidrError::HostBitsSet {
                given: s.to_string(),
                network: format!("{network}/{prefix}"),
            });
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn matches_v4_v6_and_mapped() {
        let n: Cidr = "192.168.1.0/24".parse().unwrap();
        assert!(n.contains(ip("192.168.1.77")));
        assert!(!n.contains(ip("192.168.2.1")));
        assert!(n.contains(ip("::ffff:192.168.1.5")));
        assert!(!n.contains(ip("2001:db8::1")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        let host: Cidr = "127.0.0.1".parse().unwrap();
        assert_eq!(host.to_string(), "127.0.0.1/32");
        assert!(host.contains(ip("127.0.0.1")));
        assert!(!host.contains(ip("127.0.0.2")));
    }

    #[test]
    fn refuses_what_is_not_a_network() {
        assert!(matches!(
            "10.1.2.3/8".parse::<Cidr>(),
            Err(CidrError::HostBitsSet { network, .. }) if network == "10.0.0.0/8"
        ));
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::BadPrefix(_))
        ));
        assert!(matches!(
            "nope/8".parse::<Cidr>(),
            Err(CidrError::BadAddress(_))
        ));
        assert!(matches!(
            "::/129".parse::<Cidr>(),
            Err(CidrError::BadPrefix(_))
        ));
    }
}
