//! The rtpengine "ng" control protocol (bencode dictionaries over UDP, each datagram
//! `COOKIE SP DICT`, answered with the same cookie), so Kamailio's `rtpengine` module can use
//! mgw's relay: `ping`, `offer`, `answer`, `delete`, `query`, with the common flags
//! (`trust-address`, `replace` origin / session-connection, `ICE` remove, and the `codec`
//! dictionary's `transcode`, `strip` and `mask` lists or their flat `codec-transcode-X` forms).
//!
//! A thin translation onto [`crate::session::Sessions`], the same control the B2BUA uses in
//! process. Sans-IO: [`NgControl::handle`] takes a datagram and returns the reply datagram.

pub mod bencode;

use std::net::IpAddr;
use std::time::Instant;

use bencode::Value;

use crate::relay::{PortPool, Relay, SessionId};
use crate::sdp::CodecName;
use crate::session::{MediaOptions, SessionError, Sessions};

pub struct NgControl {
    sessions: Sessions,
}

fn error(reason: &str) -> Value {
    Value::dict([
        ("result", Value::text("error")),
        ("error-reason", Value::text(reason)),
    ])
}

/// A codec named as rtpengine takes it: `opus`, `PCMA`, `opus/48000/2`.
fn codec_named(s: &str) -> Option<CodecName> {
    CodecName::from_encoding(s.split('/').next().unwrap_or(s))
}

fn options_of(cmd: &Value) -> MediaOptions {
    let flags = cmd.strings("flags");
    let has = |f: &str| flags.iter().any(|x| x.eq_ignore_ascii_case(f));
    let mut o = MediaOptions {
        trust_address: has("trust-address"),
        replace_origin: cmd
            .strings("replace")
            .iter()
            .any(|f| f.eq_ignore_ascii_case("origin")),
        remove_ice: cmd
            .str("ICE")
            .is_some_and(|v| v.eq_ignore_ascii_case("remove")),
        ..MediaOptions::default()
    };
    let mut add = |kind: &str, name: &str| {
        if kind == "strip" && name.eq_ignore_ascii_case("all") {
            o.strip_all = true;
            return;
        }
        let Some(c) = codec_named(name) else {
            return;
        };
        match kind {
            "transcode" => o.transcode.push(c),
            "strip" => o.strip.push(c),
            "mask" => o.mask.push(c),
            _ => {}
        }
    };
    if let Some(codec) = cmd.get("codec") {
        for kind in ["transcode", "strip", "mask"] {
            for name in codec.strings(kind) {
                add(kind, name);
            }
        }
    }
    for f in &flags {
        let lower = f.to_ascii_lowercase();
        for kind in ["transcode", "strip", "mask"] {
            for prefix in [format!("codec-{kind}-"), format!("{kind}-")] {
                if let Some(name) = lower.strip_prefix(prefix.as_str()) {
                    add(kind, name);
                }
            }
        }
    }
    o
}

impl NgControl {
    pub fn new(advertised: IpAddr, opus_complexity: u8) -> NgControl {
        NgControl {
            sessions: Sessions::new(advertised, opus_complexity),
        }
    }

    pub fn calls(&self) -> usize {
        self.sessions.calls()
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
        self.sessions.expire(session, relay, ports)
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
        let result = match cmd.str("command") {
            Some("ping") => return Value::dict([("result", Value::text("pong"))]),
            Some("offer") => {
                let (Some(call_id), Some(from_tag), Some(sdp)) =
                    (cmd.str("call-id"), cmd.str("from-tag"), cmd.str("sdp"))
                else {
                    return error("offer needs call-id, from-tag and sdp");
                };
                self.sessions
                    .offer(call_id, from_tag, sdp, &options_of(cmd), relay, ports, now)
                    .map(ok_sdp)
            }
            Some("answer") => {
                let (Some(call_id), Some(sdp)) = (cmd.str("call-id"), cmd.str("sdp")) else {
                    return error("answer needs call-id and sdp");
                };
                self.sessions
                    .answer(
                        call_id,
                        cmd.str("to-tag"),
                        sdp,
                        &options_of(cmd),
                        relay,
                        now,
                    )
                    .map(ok_sdp)
            }
            Some("delete") => {
                let Some(call_id) = cmd.str("call-id") else {
                    return error("delete needs call-id");
                };
                self.sessions
                    .delete(call_id, relay, ports)
                    .map(|_| Value::dict([("result", Value::text("ok"))]))
            }
            Some("query") => self.query(cmd, relay, now),
            Some(other) => return error(&format!("unsupported command {other:?}")),
            None => return error("no command"),
        };
        result.unwrap_or_else(|e| error(&e.to_string()))
    }

    fn query(&self, cmd: &Value, relay: &Relay, now: Instant) -> Result<Value, SessionError> {
        let call_id = cmd.str("call-id").ok_or(SessionError::UnknownCall)?;
        let info = self.sessions.query(call_id, relay, now)?;
        let stream = |s: &crate::rtp::stats::StreamStats| {
            Value::dict([
                ("packets", Value::Int(s.packets as i64)),
                ("bytes", Value::Int(s.bytes as i64)),
                ("lost", Value::Int(s.lost)),
                ("jitter", Value::Int(i64::from(s.jitter()))),
            ])
        };
        let codec = |c: Option<CodecName>| Value::text(c.map_or("", |c| c.encoding()));
        Ok(Value::dict([
            ("result", Value::text("ok")),
            ("created", Value::Int(info.age.as_secs() as i64)),
            (
                "totals",
                Value::dict([
                    ("RTP", stream(&info.stats.a_to_b)),
                    ("RTP reverse", stream(&info.stats.b_to_a)),
                    ("RTCP packets", Value::Int(info.stats.rtcp_packets as i64)),
                ]),
            ),
            (
                "codecs",
                Value::List(vec![codec(info.codecs[0]), codec(info.codecs[1])]),
            ),
            ("transcoding", Value::Int(i64::from(info.transcoding))),
        ]))
    }
}

fn ok_sdp(sdp: String) -> Value {
    Value::dict([
        ("result", Value::text("ok")),
        ("sdp", Value::Bytes(sdp.into_bytes())),
    ])
}
