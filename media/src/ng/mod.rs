//! The rtpengine "ng" control protocol (bencode dictionaries over UDP, each datagram
//! `COOKIE SP DICT`, answered with the same cookie), so Kamailio's `rtpengine` module can use
//! mgw's relay: `ping`, `offer`, `answer`, `delete`, `query`, with the common flags
//! (`trust-address`, `replace` origin / session-connection, `ICE` remove).
//!
//! Sans-IO: [`NgControl::handle`] takes a datagram and the worker's relay and port pool, and
//! returns the reply datagram. By default rtpengine relays codecs untouched, and so does this.

pub mod bencode;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bencode::Value;

use crate::relay::{LegSpec, PortPool, Relay, SessionId, Side};
use crate::sdp::{Connection, SessionDescription};

/// One call as the ng peer sees it.
#[derive(Debug)]
struct NgCall {
    from_tag: String,
    to_tag: Option<String>,
    session: SessionId,
    /// mgw's RTP ports: towards the offerer (A) and the answerer (B).
    ports: [u16; 2],
    created: Instant,
}

pub struct NgControl {
    /// The address written into rewritten SDP.
    advertised: IpAddr,
    calls: HashMap<String, NgCall>,
}

fn error(reason: &str) -> Value {
    Value::dict([
        ("result", Value::text("error")),
        ("error-reason", Value::text(reason)),
    ])
}

struct Flags {
    trust_address: bool,
    replace_origin: bool,
    remove_ice: bool,
}

impl Flags {
    fn of(cmd: &Value) -> Flags {
        let flags = cmd.strings("flags");
        let replace = cmd.strings("replace");
        Flags {
            trust_address: flags
                .iter()
                .any(|f| f.eq_ignore_ascii_case("trust-address")),
            replace_origin: replace.iter().any(|f| f.eq_ignore_ascii_case("origin")),
            remove_ice: cmd
                .str("ICE")
                .is_some_and(|v| v.eq_ignore_ascii_case("remove")),
        }
    }
}

impl NgControl {
    pub fn new(advertised: IpAddr) -> NgControl {
        NgControl {
            advertised,
            calls: HashMap::new(),
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Ends the call whose relay session is `session` (the relay reported it silent): as
    /// rtpengine does, a call the ng peer never deleted (it crashed, or lost the BYE) must not
    /// hold its ports for ever. Returns its call-id.
    pub fn expire(
        &mut self,
        session: SessionId,
        relay: &mut Relay,
        ports: &mut PortPool,
    ) -> Option<String> {
        let call_id = self
            .calls
            .iter()
            .find(|(_, c)| c.session == session)
            .map(|(id, _)| id.clone())?;
        let call = self.calls.remove(&call_id)?;
        relay.delete(call.session);
        for p in call.ports {
            ports.free(p);
        }
        Some(call_id)
    }

    /// Handles one control datagram; `None` for one without a cookie (nothing to answer to).
    pub fn handle(
        &mut self,
        datagram: &[u8],
        relay: &mut Relay,
        ports: &mut PortPool,
        now: Instant,
    ) -> Option<Vec<u8>> {
        let space = datagram.iter().position(|&b| b == b' ')?;
        let (cookie, body) = (&datagram[..space], &datagram[space + 1..]);
        if cookie.is_empty() {
            return None;
        }
        let reply = match Value::parse(body) {
            Err(e) => error(&format!("cannot parse the bencoded command: {e}")),
            Ok(cmd) => self.command(&cmd, relay, ports, now),
        };
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(cookie);
        out.push(b' ');
        reply.encode(&mut out);
        Some(out)
    }

    fn command(
        &mut self,
        cmd: &Value,
        relay: &mut Relay,
        ports: &mut PortPool,
        now: Instant,
    ) -> Value {
        match cmd.str("command") {
            Some("ping") => Value::dict([("result", Value::text("pong"))]),
            Some("offer") => self.offer(cmd, relay, ports, now),
            Some("answer") => self.answer(cmd, relay),
            Some("delete") => self.delete(cmd, relay, ports),
            Some("query") => self.query(cmd, relay, now),
            Some(other) => error(&format!("unsupported command {other:?}")),
            None => error("no command"),
        }
    }

    fn offer(
        &mut self,
        cmd: &Value,
        relay: &mut Relay,
        ports: &mut PortPool,
        now: Instant,
    ) -> Value {
        let (Some(call_id), Some(from_tag), Some(sdp)) =
            (cmd.str("call-id"), cmd.str("from-tag"), cmd.str("sdp"))
        else {
            return error("offer needs call-id, from-tag and sdp");
        };
        let sdp = match SessionDescription::parse(sdp.as_bytes()) {
            Ok(s) => s,
            Err(e) => return error(&format!("cannot parse the SDP: {e}")),
        };
        let flags = Flags::of(cmd);
        let Some(remote) = remote_of(&sdp, &flags) else {
            return error("the SDP has no audio stream");
        };
        // A re-offer from the same side keeps the call's ports; one from the other side
        // (a re-INVITE by the callee) swaps the roles of the legs.
        let port = match self.calls.get(call_id) {
            Some(c) if c.from_tag == from_tag => {
                relay.update_leg(c.session, Side::A, remote.leg(c.ports[0]));
                c.ports[1]
            }
            Some(c) if c.to_tag.as_deref() == Some(from_tag) => {
                relay.update_leg(c.session, Side::B, remote.leg(c.ports[1]));
                c.ports[0]
            }
            Some(_) => return error("offer from an unknown tag of an existing call"),
            None => {
                let (Some(a), Some(b)) = (ports.allocate(), ports.allocate()) else {
                    return error("no free RTP ports in media.rtp_ports");
                };
                let b_leg = LegSpec {
                    local_rtp: b,
                    remote: None,
                    remote_rtcp: None,
                    allow_nat: true,
                };
                let session = relay.create(remote.leg(a), b_leg, now);
                self.calls.insert(
                    call_id.to_string(),
                    NgCall {
                        from_tag: from_tag.to_string(),
                        to_tag: None,
                        session,
                        ports: [a, b],
                        created: now,
                    },
                );
                b
            }
        };
        ok_sdp(self.rewrite(sdp, port, &flags))
    }

    fn answer(&mut self, cmd: &Value, relay: &mut Relay) -> Value {
        let (Some(call_id), Some(sdp)) = (cmd.str("call-id"), cmd.str("sdp")) else {
            return error("answer needs call-id and sdp");
        };
        let Some(call) = self.calls.get_mut(call_id) else {
            return error("Unknown call-id");
        };
        let sdp = match SessionDescription::parse(sdp.as_bytes()) {
            Ok(s) => s,
            Err(e) => return error(&format!("cannot parse the SDP: {e}")),
        };
        let flags = Flags::of(cmd);
        let Some(remote) = remote_of(&sdp, &flags) else {
            return error("the SDP has no audio stream");
        };
        if let Some(t) = cmd.str("to-tag") {
            call.to_tag = Some(t.to_string());
        }
        relay.update_leg(call.session, Side::B, remote.leg(call.ports[1]));
        let port = call.ports[0];
        ok_sdp(self.rewrite(sdp, port, &flags))
    }

    fn delete(&mut self, cmd: &Value, relay: &mut Relay, ports: &mut PortPool) -> Value {
        let Some(call_id) = cmd.str("call-id") else {
            return error("delete needs call-id");
        };
        let Some(call) = self.calls.remove(call_id) else {
            return error("Unknown call-id");
        };
        relay.delete(call.session);
        for p in call.ports {
            ports.free(p);
        }
        Value::dict([("result", Value::text("ok"))])
    }

    fn query(&self, cmd: &Value, relay: &Relay, now: Instant) -> Value {
        let Some(call) = cmd.str("call-id").and_then(|c| self.calls.get(c)) else {
            return error("Unknown call-id");
        };
        let Some(stats) = relay.query(call.session) else {
            return error("Unknown call-id");
        };
        let stream = |s: &crate::rtp::stats::StreamStats| {
            Value::dict([
                ("packets", Value::Int(s.packets as i64)),
                ("bytes", Value::Int(s.bytes as i64)),
                ("lost", Value::Int(s.lost)),
                ("jitter", Value::Int(i64::from(s.jitter()))),
            ])
        };
        Value::dict([
            ("result", Value::text("ok")),
            (
                "created",
                Value::Int(now.saturating_duration_since(call.created).as_secs() as i64),
            ),
            (
                "totals",
                Value::dict([
                    ("RTP", stream(&stats.a_to_b)),
                    ("RTP reverse", stream(&stats.b_to_a)),
                    ("RTCP packets", Value::Int(stats.rtcp_packets as i64)),
                ]),
            ),
        ])
    }

    /// The SDP as the other side must see it: mgw's address and port for the first audio
    /// stream, RTCP on the next port.
    fn rewrite(&self, mut sdp: SessionDescription, port: u16, flags: &Flags) -> String {
        let conn = Connection {
            address: self.advertised,
        };
        if sdp.connection.is_some() {
            sdp.connection = Some(conn);
        }
        if flags.replace_origin {
            sdp.origin.address = self.advertised;
        }
        if let Some(m) = sdp
            .media
            .iter_mut()
            .find(|m| m.kind == "audio" && m.port != 0)
        {
            m.port = port;
            if m.connection.is_some() || sdp.connection.is_none() {
                m.connection = Some(conn);
            }
            m.rtcp = Some((port.wrapping_add(1), None));
            if flags.remove_ice {
                m.other.retain(|a| {
                    !(a.starts_with("candidate")
                        || a.starts_with("ice-")
                        || a.starts_with("end-of-candidates")
                        || a.starts_with("remote-candidates"))
                });
            }
        }
        sdp.origin.session_version = sdp.origin.session_version.wrapping_add(1);
        sdp.to_string()
    }
}

/// Where a side receives, from its SDP.
struct Remote {
    rtp: SocketAddr,
    rtcp: SocketAddr,
    allow_nat: bool,
}

impl Remote {
    fn leg(&self, local_rtp: u16) -> LegSpec {
        LegSpec {
            local_rtp,
            remote: Some(self.rtp),
            remote_rtcp: Some(self.rtcp),
            allow_nat: self.allow_nat,
        }
    }
}

fn remote_of(sdp: &SessionDescription, flags: &Flags) -> Option<Remote> {
    let i = sdp
        .media
        .iter()
        .position(|m| m.kind == "audio" && m.port != 0)?;
    let m = &sdp.media[i];
    let ip = sdp.media_address(i)?;
    let rtp = SocketAddr::new(ip, m.port);
    let rtcp = match m.rtcp {
        Some((port, addr)) => SocketAddr::new(addr.unwrap_or(ip), port),
        None if m.rtcp_mux => rtp,
        None => SocketAddr::new(ip, m.port.wrapping_add(1)),
    };
    Some(Remote {
        rtp,
        rtcp,
        allow_nat: !flags.trust_address,
    })
}

fn ok_sdp(sdp: String) -> Value {
    Value::dict([
        ("result", Value::text("ok")),
        ("sdp", Value::Bytes(sdp.into_bytes())),
    ])
}
