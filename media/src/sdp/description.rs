//! The session description itself: what the lines say, parsed once into owned values (an SDP
//! body is parsed once per offer or answer, never per packet), and written back canonically.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use super::SdpError;

/// Larger bodies are refused: a phone's offer is a few hundred bytes.
pub const MAX_SDP: usize = 16 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: u64,
    pub session_version: u64,
    pub address: IpAddr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connection {
    pub address: IpAddr,
}

/// RFC 3264 section 5.1 stream direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// What the answerer sets for an offer with this direction (RFC 3264 section 6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    fn parse(s: &str) -> Option<Direction> {
        Some(match s {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }
}

/// `a=rtpmap:PT ENCODING/CLOCK[/CHANNELS]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: u8,
}

/// One `m=` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Media {
    /// `audio`, `video`, ...
    pub kind: String,
    pub port: u16,
    /// `RTP/AVP`, `RTP/SAVP`, ...
    pub protocol: String,
    /// The formats in preference order (payload type numbers for RTP).
    pub formats: Vec<u8>,
    pub connection: Option<Connection>,
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp:PT params`, by payload type.
    pub fmtps: Vec<(u8, String)>,
    pub ptime: Option<u32>,
    pub maxptime: Option<u32>,
    pub direction: Option<Direction>,
    /// `a=rtcp:PORT [IN IP4 ADDR]` (RFC 3605).
    pub rtcp: Option<(u16, Option<IpAddr>)>,
    pub rtcp_mux: bool,
    /// Every other attribute, as `name` or `name:value`, kept in order.
    pub other: Vec<String>,
}

impl Media {
    pub fn new(kind: &str, port: u16, protocol: &str) -> Media {
        Media {
            kind: kind.into(),
            port,
            protocol: protocol.into(),
            formats: Vec::new(),
            connection: None,
            rtpmaps: Vec::new(),
            fmtps: Vec::new(),
            ptime: None,
            maxptime: None,
            direction: None,
            rtcp: None,
            rtcp_mux: false,
            other: Vec::new(),
        }
    }

    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == pt)
    }

    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.fmtps
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, f)| f.as_str())
    }

    /// Port 0 rejects or disables the stream (RFC 3264 section 5.1 / 6).
    pub fn is_disabled(&self) -> bool {
        self.port == 0
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin: Origin,
    pub name: String,
    pub connection: Option<Connection>,
    /// Session-level direction, the default for every media section.
    pub direction: Option<Direction>,
    /// Session-level attributes other than the direction, in order.
    pub attributes: Vec<String>,
    pub media: Vec<Media>,
}

fn field(line: usize, kind: char, why: &'static str) -> SdpError {
    SdpError::Field { line, kind, why }
}

/// `IN IP4 addr` / `IN IP6 addr`.
fn parse_address(
    line: usize,
    kind: char,
    net: &str,
    typ: &str,
    addr: &str,
) -> Result<IpAddr, SdpError> {
    if net != "IN" {
        return Err(field(line, kind, "network type must be IN"));
    }
    // A multicast TTL suffix (c=IN IP4 224.2.1.1/127) is not for us: refused below.
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| field(line, kind, "address is not an IP address"))?;
    match (typ, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Ok(ip),
        _ => Err(field(line, kind, "address type does not match the address")),
    }
}

impl SessionDescription {
    /// Parses an SDP body. Lines end in CRLF or LF; unknown line types and attributes are kept
    /// or skipped as RFC 4566 section 5 allows.
    pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
        if body.len() > MAX_SDP {
            return Err(SdpError::TooLarge);
        }
        let text = std::str::from_utf8(body).map_err(|_| SdpError::Line { line: 1 })?;
        let mut lines = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .filter(|(_, l)| !l.is_empty());
        match lines.next() {
            Some((_, "v=0")) => {}
            _ => return Err(SdpError::Version),
        }
        let mut origin = None;
        let mut name = None;
        let mut session = SessionDescription {
            origin: Origin {
                username: String::new(),
                session_id: 0,
                session_version: 0,
                address: IpAddr::from([0, 0, 0, 0]),
            },
            name: String::new(),
            connection: None,
            direction: None,
            attributes: Vec::new(),
            media: Vec::new(),
        };
        let mut timing = false;
        for (n, line) in lines {
            let b = line.as_bytes();
            if b.len() < 2 || b[1] != b'=' || !b[0].is_ascii_lowercase() {
                return Err(SdpError::Line { line: n });
            }
            let kind = b[0] as char;
            let value = &line[2..];
            let media = session.media.last_mut();
            match kind {
                'o' => {
                    let f: Vec<&str> = value.split(' ').collect();
                    if f.len() != 6 {
                        return Err(field(n, 'o', "expected 6 fields"));
                    }
                    origin = Some(Origin {
                        username: f[0].into(),
                        session_id: f[1]
                            .parse()
                            .map_err(|_| field(n, 'o', "session id is not a number"))?,
                        session_version: f[2]
                            .parse()
                            .map_err(|_| field(n, 'o', "session version is not a number"))?,
                        address: match f[5].parse() {
                            Ok(ip) => ip,
                            // A host name is allowed in o=; it is only an identifier.
                            Err(_) => IpAddr::from([0, 0, 0, 0]),
                        },
                    });
                }
                's' => name = Some(value.to_string()),
                't' => timing = true,
                'c' => {
                    let f: Vec<&str> = value.split(' ').collect();
                    if f.len() != 3 {
                        return Err(field(n, 'c', "expected IN IP4|IP6 ADDRESS"));
                    }
                    let c = Connection {
                        address: parse_address(n, 'c', f[0], f[1], f[2])?,
                    };
                    match media {
                        Some(m) => m.connection = Some(c),
                        None => session.connection = Some(c),
                    }
                }
                'm' => {
                    let f: Vec<&str> = value.split(' ').collect();
                    if f.len() < 4 {
                        return Err(field(n, 'm', "expected MEDIA PORT PROTO FORMAT..."));
                    }
                    let port_text = f[1].split('/').next().unwrap_or("");
                    let port: u16 = port_text
                        .parse()
                        .map_err(|_| field(n, 'm', "port is not a number 0-65535"))?;
                    let mut m = Media::new(f[0], port, f[2]);
                    if f[2].contains("RTP") {
                        for fmt in &f[3..] {
                            let pt: u8 =
                                fmt.parse().ok().filter(|p| *p < 128).ok_or_else(|| {
                                    field(n, 'm', "RTP payload type is not 0-127")
                                })?;
                            m.formats.push(pt);
                        }
                    }
                    session.media.push(m);
                }
                'a' => {
                    let (attr, val) = match value.split_once(':') {
                        Some((a, v)) => (a, Some(v)),
                        None => (value, None),
                    };
                    if let Some(d) = Direction::parse(attr) {
                        match media {
                            Some(m) => m.direction = Some(d),
                            None => session.direction = Some(d),
                        }
                        continue;
                    }
                    let Some(m) = media else {
                        session.attributes.push(value.to_string());
                        continue;
                    };
                    match (attr, val) {
                        ("rtpmap", Some(v)) => m.rtpmaps.push(parse_rtpmap(n, v)?),
                        ("fmtp", Some(v)) => {
                            let (pt, params) = v.split_once(' ').unwrap_or((v, ""));
                            let pt = pt
                                .parse()
                                .map_err(|_| field(n, 'a', "fmtp payload type is not a number"))?;
                            m.fmtps.push((pt, params.trim().to_string()));
                        }
                        ("ptime", Some(v)) => {
                            m.ptime = Some(parse_ms(n, v)?);
                        }
                        ("maxptime", Some(v)) => {
                            m.maxptime = Some(parse_ms(n, v)?);
                        }
                        ("rtcp", Some(v)) => {
                            let f: Vec<&str> = v.split(' ').collect();
                            let port = f[0]
                                .parse()
                                .map_err(|_| field(n, 'a', "rtcp port is not a number"))?;
                            let addr = match f.as_slice() {
                                [_, net, typ, addr] => Some(parse_address(n, 'a', net, typ, addr)?),
                                _ => None,
                            };
                            m.rtcp = Some((port, addr));
                        }
                        ("rtcp-mux", None) => m.rtcp_mux = true,
                        _ => m.other.push(value.to_string()),
                    }
                }
                // v, i, u, e, p, b, r, z, k and unknown types carry nothing the relay uses.
                _ => {}
            }
        }
        session.origin = origin.ok_or(SdpError::Missing('o'))?;
        session.name = name.ok_or(SdpError::Missing('s'))?;
        if !timing {
            return Err(SdpError::Missing('t'));
        }
        for (i, m) in session.media.iter().enumerate() {
            if m.connection.is_none() && session.connection.is_none() && !m.is_disabled() {
                return Err(SdpError::NoConnection { media: i + 1 });
            }
        }
        Ok(session)
    }

    /// Where media `index` should be sent: its own c= or the session's.
    pub fn media_address(&self, index: usize) -> Option<IpAddr> {
        let m = self.media.get(index)?;
        m.connection.or(self.connection).map(|c| c.address)
    }

    /// The direction of media `index`: its own, else the session's, else sendrecv.
    pub fn media_direction(&self, index: usize) -> Direction {
        self.media
            .get(index)
            .and_then(|m| m.direction)
            .or(self.direction)
            .unwrap_or_default()
    }
}

fn parse_rtpmap(line: usize, v: &str) -> Result<RtpMap, SdpError> {
    let (pt, enc) = v
        .split_once(' ')
        .ok_or(field(line, 'a', "rtpmap needs PT ENCODING/CLOCK"))?;
    let mut parts = enc.trim().split('/');
    let encoding = parts.next().unwrap_or("").to_string();
    let clock_rate = parts
        .next()
        .and_then(|c| c.parse().ok())
        .filter(|c| *c > 0)
        .ok_or(field(
            line,
            'a',
            "rtpmap clock rate is not a positive number",
        ))?;
    let channels = match parts.next() {
        None => 1,
        Some(c) => c.parse().ok().filter(|c| *c > 0).ok_or(field(
            line,
            'a',
            "rtpmap channels is not a positive number",
        ))?,
    };
    Ok(RtpMap {
        payload_type: pt.parse().ok().filter(|p| *p < 128).ok_or(field(
            line,
            'a',
            "rtpmap payload type is not 0-127",
        ))?,
        encoding,
        clock_rate,
        channels,
    })
}

fn parse_ms(line: usize, v: &str) -> Result<u32, SdpError> {
    // Some phones write fractional ptime ("20.0"); the integer part is what counts.
    let int = v.trim().split('.').next().unwrap_or("");
    int.parse()
        .ok()
        .filter(|p| (1..=1000).contains(p))
        .ok_or(field(line, 'a', "ptime is not 1-1000 ms"))
}

fn write_address(out: &mut String, ip: IpAddr) {
    let _ = match ip {
        IpAddr::V4(a) => write!(out, "IN IP4 {a}"),
        IpAddr::V6(a) => write!(out, "IN IP6 {a}"),
    };
}

impl fmt::Display for SessionDescription {
    /// Canonical SDP with CRLF line ends, in the order RFC 4566 section 5 requires.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(512);
        let o = &self.origin;
        let _ = write!(
            out,
            "v=0\r\no={} {} {} ",
            if o.username.is_empty() {
                "-"
            } else {
                &o.username
            },
            o.session_id,
            o.session_version
        );
        write_address(&mut out, o.address);
        let name = if self.name.is_empty() {
            "-"
        } else {
            &self.name
        };
        let _ = write!(out, "\r\ns={name}\r\n");
        if let Some(c) = self.connection {
            out.push_str("c=");
            write_address(&mut out, c.address);
            out.push_str("\r\n");
        }
        out.push_str("t=0 0\r\n");
        for a in &self.attributes {
            let _ = write!(out, "a={a}\r\n");
        }
        if let Some(d) = self.direction {
            let _ = write!(out, "a={}\r\n", d.as_str());
        }
        for m in &self.media {
            let _ = write!(out, "m={} {} {}", m.kind, m.port, m.protocol);
            for pt in &m.formats {
                let _ = write!(out, " {pt}");
            }
            out.push_str("\r\n");
            if let Some(c) = m.connection {
                out.push_str("c=");
                write_address(&mut out, c.address);
                out.push_str("\r\n");
            }
            for r in &m.rtpmaps {
                let _ = write!(
                    out,
                    "a=rtpmap:{} {}/{}",
                    r.payload_type, r.encoding, r.clock_rate
                );
                if r.channels > 1 {
                    let _ = write!(out, "/{}", r.channels);
                }
                out.push_str("\r\n");
            }
            for (pt, p) in &m.fmtps {
                let _ = write!(out, "a=fmtp:{pt} {p}\r\n");
            }
            if let Some(p) = m.ptime {
                let _ = write!(out, "a=ptime:{p}\r\n");
            }
            if let Some(p) = m.maxptime {
                let _ = write!(out, "a=maxptime:{p}\r\n");
            }
            if let Some((port, addr)) = m.rtcp {
                let _ = write!(out, "a=rtcp:{port}");
                if let Some(a) = addr {
                    out.push(' ');
                    write_address(&mut out, a);
                }
                out.push_str("\r\n");
            }
            if m.rtcp_mux {
                out.push_str("a=rtcp-mux\r\n");
            }
            for a in &m.other {
                let _ = write!(out, "a={a}\r\n");
            }
            if let Some(d) = m.direction {
                let _ = write!(out, "a={}\r\n", d.as_str());
            }
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=alice 2890844526 2890844527 IN IP4 192.0.2.10\r\ns=-\r\n\
        c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\n\
        a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

    #[test]
    fn parses_a_phone_offer() {
        let s = SessionDescription::parse(OFFER.as_bytes()).unwrap();
        assert_eq!(s.origin.session_version, 2890844527);
        assert_eq!(s.media.len(), 1);
        let m = &s.media[0];
        assert_eq!((m.port, m.formats.as_slice()), (49170, &[0, 8, 101][..]));
        assert_eq!(m.rtpmap(101).unwrap().encoding, "telephone-event");
        assert_eq!(m.fmtp(101), Some("0-16"));
        assert_eq!(m.ptime, Some(20));
        assert_eq!(s.media_direction(0), Direction::SendRecv);
        assert_eq!(s.media_address(0), Some("192.0.2.10".parse().unwrap()));
    }

    #[test]
    fn writes_what_it_reads() {
        let s = SessionDescription::parse(OFFER.as_bytes()).unwrap();
        let text = s.to_string();
        assert_eq!(SessionDescription::parse(text.as_bytes()).unwrap(), s);
        assert!(text.ends_with("a=sendrecv\r\n"));
        let lf = OFFER.replace("\r\n", "\n");
        assert_eq!(SessionDescription::parse(lf.as_bytes()).unwrap(), s);
    }

    #[test]
    fn refuses_broken_bodies_naming_the_line() {
        assert_eq!(
            SessionDescription::parse(b"v=1\r\n"),
            Err(SdpError::Version)
        );
        let no_c = OFFER.replace("c=IN IP4 192.0.2.10\r\n", "");
        assert_eq!(
            SessionDescription::parse(no_c.as_bytes()),
            Err(SdpError::NoConnection { media: 1 })
        );
        let bad_pt = OFFER.replace("RTP/AVP 0 8 101", "RTP/AVP 0 200");
        assert!(matches!(
            SessionDescription::parse(bad_pt.as_bytes()),
            Err(SdpError::Field {
                line: 6,
                kind: 'm',
                ..
            })
        ));
        let v6_mismatch = OFFER.replace("c=IN IP4 192.0.2.10", "c=IN IP6 192.0.2.10");
        assert!(SessionDescription::parse(v6_mismatch.as_bytes()).is_err());
        assert!(SessionDescription::parse(b"v=0\r\nxx\r\n").is_err());
    }

    #[test]
    fn ipv6_rtcp_and_session_direction() {
        let s = SessionDescription::parse(
            b"v=0\no=- 1 1 IN IP6 ::1\ns=x\nc=IN IP6 2001:db8::5\nt=0 0\na=sendonly\n\
              m=audio 5004 RTP/AVP 9\na=rtcp:5010 IN IP6 2001:db8::6\na=rtcp-mux\n",
        )
        .unwrap();
        assert_eq!(s.media_direction(0), Direction::SendOnly);
        assert_eq!(
            s.media[0].rtcp,
            Some((5010, Some("2001:db8::6".parse().unwrap())))
        );
        assert!(s.media[0].rtcp_mux);
        assert_eq!(Direction::SendOnly.answer(), Direction::RecvOnly);
    }
}
