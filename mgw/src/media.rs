//! The media side of the gateway: one [`MediaWorker`] per media engine worker, holding that
//! worker's sessions (`mgw_media::relay::Relay`), its share of `media.rtp_ports`, the calls the
//! B2BUA anchored there ([`MediaControl`], in process), and on worker 0 the rtpengine ng
//! control (`media.ng_listen`). Translation only: relay and protocol decisions live in
//! `mgw_media`, socket work in `mgw_engine::media`.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use mgw_engine::media::{Forward, MediaHandler, PortControl};
use mgw_engine::Mailbox;
use mgw_media::ng::NgControl;
use mgw_media::relay::{
    MediaEvent, PortChange, PortPool, Relay, RelayConfig, SessionStats, Verdict,
};
use mgw_media::session::{CallInfo, MediaOptions, SessionError, Sessions};

use crate::config::MediaConfig;

/// Counters one worker publishes for `/metrics`.
#[derive(Default)]
pub struct MediaCounters {
    pub sessions: AtomicU64,
    pub ports_in_use: AtomicU64,
    pub inactive_events: AtomicU64,
    pub port_open_failures: AtomicU64,
}

/// Told to signalling when a call's media stopped (no packet either way for
/// `media.inactivity_s`): the call is probably dead and should be ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaInactive {
    pub call_id: String,
    pub idle: Duration,
}

type InactiveListener = Box<dyn Fn(MediaInactive) + Send + Sync>;

/// A reply to a [`MediaControl`] request, called on the media worker's thread.
pub type Reply<T> = Box<dyn FnOnce(Result<T, MediaError>) + Send>;

#[derive(Debug)]
pub enum MediaError {
    Session(SessionError),
    /// The media worker has stopped (the gateway is shutting down).
    Stopped,
    /// No answer in time from the media worker (blocking calls only).
    Timeout,
}

impl std::fmt::Display for MediaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaError::Session(e) => e.fmt(f),
            MediaError::Stopped => write!(f, "the media engine has stopped"),
            MediaError::Timeout => write!(f, "the media worker did not answer within 2 s"),
        }
    }
}

impl std::error::Error for MediaError {}

/// Work for a media worker, posted by [`MediaControl`].
enum Request {
    Offer {
        call_id: String,
        from_tag: String,
        sdp: String,
        options: MediaOptions,
        reply: Reply<String>,
    },
    Answer {
        call_id: String,
        to_tag: Option<String>,
        sdp: String,
        options: MediaOptions,
        reply: Reply<String>,
    },
    Delete {
        call_id: String,
        reply: Reply<SessionStats>,
    },
    Query {
        call_id: String,
        reply: Reply<CallInfo>,
    },
    /// Query, then delete: a call's final counters.
    Finish {
        call_id: String,
        reply: Reply<CallInfo>,
    },
}

/// The in-process control of the media engine, for the B2BUA: the same offer / answer /
/// delete / query as rtpengine's ng protocol, without the wire. A call lives on the worker its
/// call-id hashes to, so all its packets and commands stay on one thread. Cloneable; every
/// method returns at once and the reply runs on the media worker (`*_blocking` wait for it).
#[derive(Clone)]
pub struct MediaControl {
    mailboxes: Arc<Vec<Mailbox>>,
    inactive: Arc<OnceLock<InactiveListener>>,
}

/// How long the blocking calls wait for a media worker.
const BLOCKING_PATIENCE: Duration = Duration::from_secs(2);

impl MediaControl {
    pub fn new(mailboxes: Vec<Mailbox>, inactive: Arc<OnceLock<InactiveListener>>) -> Self {
        MediaControl {
            mailboxes: Arc::new(mailboxes),
            inactive,
        }
    }

    /// Where signalling hears of dead media (set once; later calls are ignored).
    pub fn on_inactive(&self, f: impl Fn(MediaInactive) + Send + Sync + 'static) {
        let _ = self.inactive.set(Box::new(f));
    }

    fn post(&self, call_id: &str, req: Request) {
        let n = self.mailboxes.len().max(1);
        // FNV-1a: stable, cheap, and spreads sequential call-ids.
        let h = call_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let Some(mb) = self.mailboxes.get((h % n as u64) as usize) else {
            fail(req, MediaError::Stopped);
            return;
        };
        if let Err(e) = mb.post(Box::new(req)) {
            if let Ok(req) = e.0.downcast::<Request>() {
                fail(*req, MediaError::Stopped);
            }
        }
    }

    /// `from_tag`'s SDP offer; the reply is the SDP for the other party.
    pub fn offer(
        &self,
        call_id: &str,
        from_tag: &str,
        sdp: &str,
        options: MediaOptions,
        reply: Reply<String>,
    ) {
        self.post(
            call_id,
            Request::Offer {
                call_id: call_id.into(),
                from_tag: from_tag.into(),
                sdp: sdp.into(),
                options,
                reply,
            },
        );
    }

    /// The other party's answer; the reply is the SDP for the offerer.
    pub fn answer(
        &self,
        call_id: &str,
        to_tag: Option<&str>,
        sdp: &str,
        options: MediaOptions,
        reply: Reply<String>,
    ) {
        self.post(
            call_id,
            Request::Answer {
                call_id: call_id.into(),
                to_tag: to_tag.map(Into::into),
                sdp: sdp.into(),
                options,
                reply,
            },
        );
    }

    pub fn delete(&self, call_id: &str, reply: Reply<SessionStats>) {
        self.post(
            call_id,
            Request::Delete {
                call_id: call_id.into(),
                reply,
            },
        );
    }

    pub fn query(&self, call_id: &str, reply: Reply<CallInfo>) {
        self.post(
            call_id,
            Request::Query {
                call_id: call_id.into(),
                reply,
            },
        );
    }

    /// Ends the call's media; the reply has its final counters and codecs.
    pub fn finish(&self, call_id: &str, reply: Reply<CallInfo>) {
        self.post(
            call_id,
            Request::Finish {
                call_id: call_id.into(),
                reply,
            },
        );
    }

    pub fn offer_blocking(
        &self,
        call_id: &str,
        from_tag: &str,
        sdp: &str,
        options: MediaOptions,
    ) -> Result<String, MediaError> {
        wait(|r| self.offer(call_id, from_tag, sdp, options, r))
    }

    pub fn answer_blocking(
        &self,
        call_id: &str,
        to_tag: Option<&str>,
        sdp: &str,
        options: MediaOptions,
    ) -> Result<String, MediaError> {
        wait(|r| self.answer(call_id, to_tag, sdp, options, r))
    }

    pub fn delete_blocking(&self, call_id: &str) -> Result<SessionStats, MediaError> {
        wait(|r| self.delete(call_id, r))
    }

    pub fn query_blocking(&self, call_id: &str) -> Result<CallInfo, MediaError> {
        wait(|r| self.query(call_id, r))
    }
}

fn wait<T: Send + 'static>(send: impl FnOnce(Reply<T>)) -> Result<T, MediaError> {
    let (tx, rx) = mpsc::channel();
    send(Box::new(move |r| {
        let _ = tx.send(r);
    }));
    rx.recv_timeout(BLOCKING_PATIENCE)
        .unwrap_or(Err(MediaError::Timeout))
}

fn fail(req: Request, e: MediaError) {
    match req {
        Request::Offer { reply, .. } | Request::Answer { reply, .. } => reply(Err(e)),
        Request::Delete { reply, .. } => reply(Err(e)),
        Request::Query { reply, .. } | Request::Finish { reply, .. } => reply(Err(e)),
    }
}

pub struct MediaWorker {
    relay: Relay,
    ports: PortPool,
    /// Calls anchored by the B2BUA on this worker.
    sessions: Sessions,
    ng: Option<NgControl>,
    counters: Arc<MediaCounters>,
    inactive: Arc<OnceLock<InactiveListener>>,
    /// The `now` of the last call, for `next_deadline`, which gets none.
    last_now: Instant,
}

/// Worker `index` of `workers` gets every `workers`-th slice of the range, so workers never
/// hand out the same port.
fn share(cfg: &MediaConfig, index: usize, workers: usize) -> PortPool {
    let (first, last) = (
        u32::from(cfg.rtp_ports.first),
        u32::from(cfg.rtp_ports.last),
    );
    let pairs = (last - first).div_ceil(2);
    let per = pairs / workers.max(1) as u32;
    let start = first + 2 * per * index as u32;
    let end = if index + 1 == workers {
        last
    } else {
        start + 2 * per - 1
    };
    PortPool::new(start as u16, end.min(u32::from(u16::MAX)) as u16)
}

impl MediaWorker {
    pub fn new(
        cfg: &MediaConfig,
        index: usize,
        workers: usize,
        counters: Arc<MediaCounters>,
        inactive: Arc<OnceLock<InactiveListener>>,
        now: Instant,
    ) -> MediaWorker {
        MediaWorker {
            relay: Relay::new(
                RelayConfig {
                    inactivity: Duration::from_secs(cfg.inactivity_s),
                    ..RelayConfig::default()
                },
                now,
            ),
            ports: share(cfg, index, workers),
            sessions: Sessions::new(cfg.advertised(), cfg.opus_complexity),
            // The ng control socket is served by worker 0 only.
            ng: (index == 0 && cfg.ng_listen.is_some())
                .then(|| NgControl::new(cfg.advertised(), cfg.opus_complexity)),
            counters,
            inactive,
            last_now: now,
        }
    }

    /// Opens and closes the sockets of the pairs the relay allocated and freed.
    fn sync_ports(&mut self, ctl: &mut PortControl) {
        for change in self.ports.drain_changes() {
            match change {
                PortChange::Opened(p) => {
                    for port in [p, p.wrapping_add(1)] {
                        if let Err(e) = ctl.open(port) {
                            self.counters
                                .port_open_failures
                                .fetch_add(1, Ordering::Relaxed);
                            log::warn!("media: cannot open UDP port {port}: {e}; that stream gets no media");
                        }
                    }
                }
                PortChange::Closed(p) => {
                    ctl.close(p);
                    ctl.close(p.wrapping_add(1));
                }
            }
        }
        self.publish();
    }

    fn publish(&self) {
        self.counters
            .sessions
            .store(self.relay.sessions() as u64, Ordering::Relaxed);
        self.counters
            .ports_in_use
            .store(self.ports.in_use() as u64, Ordering::Relaxed);
    }
}

impl MediaHandler for MediaWorker {
    fn on_packet(
        &mut self,
        local_port: u16,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
        now: Instant,
    ) -> Option<Forward> {
        match self.relay.on_datagram(local_port, from, buf, len, now) {
            Verdict::Forward { from_port, to, len } => Some(Forward { from_port, to, len }),
            Verdict::Drop(_) => None,
        }
    }

    fn poll_extra(&mut self, buf: &mut [u8]) -> Option<Forward> {
        let (from_port, to, len) = self.relay.poll_extra(buf)?;
        Some(Forward { from_port, to, len })
    }

    fn on_command(&mut self, cmd: Box<dyn Any + Send>, now: Instant, ports: &mut PortControl) {
        self.last_now = now;
        let Ok(req) = cmd.downcast::<Request>() else {
            return;
        };
        let (relay, pool, sessions) = (&mut self.relay, &mut self.ports, &mut self.sessions);
        let err = MediaError::Session;
        match *req {
            Request::Offer {
                call_id,
                from_tag,
                sdp,
                options,
                reply,
            } => reply(
                sessions
                    .offer(&call_id, &from_tag, &sdp, &options, relay, pool, now)
                    .map_err(err),
            ),
            Request::Answer {
                call_id,
                to_tag,
                sdp,
                options,
                reply,
            } => reply(
                sessions
                    .answer(&call_id, to_tag.as_deref(), &sdp, &options, relay, now)
                    .map_err(err),
            ),
            Request::Delete { call_id, reply } => {
                reply(sessions.delete(&call_id, relay, pool).map_err(err))
            }
            Request::Query { call_id, reply } => {
                reply(sessions.query(&call_id, relay, now).map_err(err))
            }
            Request::Finish { call_id, reply } => {
                let info = sessions.query(&call_id, relay, now);
                let _ = sessions.delete(&call_id, relay, pool);
                reply(info.map_err(err))
            }
        }
        self.sync_ports(ports);
    }

    fn on_control(
        &mut self,
        datagram: &[u8],
        _from: SocketAddr,
        now: Instant,
        ports: &mut PortControl,
    ) -> Option<Vec<u8>> {
        self.last_now = now;
        let ng = self.ng.as_mut()?;
        let reply = ng.handle(datagram, &mut self.relay, &mut self.ports, now);
        self.sync_ports(ports);
        reply
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.relay.next_deadline(self.last_now)
    }

    fn on_timer(&mut self, now: Instant, ports: &mut PortControl) {
        self.last_now = now;
        self.relay.on_timeout(now);
        while let Some(e) = self.relay.poll_event() {
            match e {
                MediaEvent::Inactive { session, idle } => {
                    self.counters
                        .inactive_events
                        .fetch_add(1, Ordering::Relaxed);
                    // A B2BUA call is ended by signalling (BYE both ways, which deletes it
                    // here); an ng call nobody deleted is ended here, as rtpengine does.
                    if let Some(call_id) = self.sessions.call_of(session) {
                        let notice = MediaInactive {
                            call_id: call_id.to_string(),
                            idle,
                        };
                        log::info!(
                            "media: call {:?} silent for {} s",
                            notice.call_id,
                            idle.as_secs()
                        );
                        if let Some(f) = self.inactive.get() {
                            f(notice);
                        }
                        continue;
                    }
                    let expired = self
                        .ng
                        .as_mut()
                        .and_then(|ng| ng.expire(session, &mut self.relay, &mut self.ports));
                    if let Some(call_id) = expired {
                        log::info!(
                            "media: ng call {call_id:?} silent for {} s: deleted",
                            idle.as_secs()
                        );
                    }
                }
            }
        }
        self.sync_ports(ports);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::PortRange;
    use mgw_media::codec::g711;
    use mgw_media::rtp::header::{write_header, RtpPacket};
    use std::net::UdpSocket;

    fn sdp(sock: &UdpSocket, fmt: &str) -> String {
        let a = sock.local_addr().expect("addr");
        format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {fmt}\r\n",
            ip = a.ip(),
            port = a.port()
        )
    }

    fn port_of(sdp: &str) -> SocketAddr {
        let s = mgw_media::sdp::SessionDescription::parse(sdp.as_bytes()).expect("SDP");
        SocketAddr::new(s.media_address(0).expect("c="), s.media[0].port)
    }

    /// The B2BUA's path: offer, answer, audio (PCMU one side, PCMA the other), query, the
    /// inactivity notice, delete; on two workers with real sockets.
    #[test]
    fn in_process_control_anchors_a_call() {
        let cfg = MediaConfig {
            rtp_ports: PortRange {
                first: 43000,
                last: 43999,
            },
            bind: "127.0.0.1".parse().expect("ip"),
            inactivity_s: 1,
            ..MediaConfig::default()
        };
        let inactive = Arc::new(OnceLock::new());
        let listener = inactive.clone();
        let engine_cfg = mgw_engine::MediaConfig {
            workers: 2,
            bind_ip: cfg.bind,
            ..mgw_engine::MediaConfig::default()
        };
        let mcfg = cfg.clone();
        let handle = mgw_engine::MediaEngine::start(engine_cfg, move |w| {
            MediaWorker::new(
                &mcfg,
                w,
                2,
                Arc::new(MediaCounters::default()),
                listener.clone(),
                Instant::now(),
            )
        })
        .expect("media engine");
        let control = MediaControl::new((0..2).map(|w| handle.mailbox(w)).collect(), inactive);
        let (tx, rx) = mpsc::channel();
        control.on_inactive(move |n| {
            let _ = tx.send(n);
        });
        let (phone, trunk) = (
            UdpSocket::bind("127.0.0.1:0").expect("bind"),
            UdpSocket::bind("127.0.0.1:0").expect("bind"),
        );
        trunk
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let onward = control
            .offer_blocking(
                "b2b-1",
                "tag-a",
                &sdp(&phone, "0"),
                MediaOptions {
                    transcode: vec![mgw_media::sdp::CodecName::Pcma],
                    ..MediaOptions::default()
                },
            )
            .expect("offer");
        assert!(onward.contains("PCMA/8000"), "{onward}");
        let back = control
            .answer_blocking(
                "b2b-1",
                Some("tag-b"),
                &sdp(&trunk, "8"),
                MediaOptions::default(),
            )
            .expect("answer");
        assert!(
            back.contains("m=audio") && back.contains(" RTP/AVP 0"),
            "{back}"
        );
        let mut pkt = [0u8; 172];
        let pcm: Vec<i16> = (0..160).map(|i| (i * 97 % 4000) as i16 - 2000).collect();
        g711::encode_ulaw(&pcm, &mut pkt[12..]);
        write_header(&mut pkt, false, 0, 1, 160, 7);
        phone.send_to(&pkt, port_of(&back)).expect("send");
        let mut buf = [0u8; 2048];
        let n = trunk.recv(&mut buf).expect("the trunk hears the phone");
        let mut got = buf[..n].to_vec();
        let r = RtpPacket::parse(&mut got).expect("RTP");
        assert_eq!(r.payload_type(), 8, "A-law towards the trunk");
        let mut want = [0u8; 160];
        g711::encode_alaw(&pcm, &mut want);
        let mut decoded = [0i16; 160];
        g711::decode_alaw(r.payload(), &mut decoded);
        let mut ref_pcm = [0i16; 160];
        g711::decode_ulaw(&pkt[12..], &mut ref_pcm);
        let err = decoded
            .iter()
            .zip(ref_pcm)
            .map(|(a, b)| (i32::from(*a) - i32::from(b)).abs())
            .max();
        assert!(err < Some(200), "u-law -> A-law error {err:?}");
        let info = control.query_blocking("b2b-1").expect("query");
        assert_eq!(info.stats.a_to_b.packets, 1);
        assert!(matches!(
            control.query_blocking("nope"),
            Err(MediaError::Session(SessionError::UnknownCall))
        ));
        let notice = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("inactivity notice");
        assert_eq!(notice.call_id, "b2b-1");
        let stats = control.delete_blocking("b2b-1").expect("delete");
        assert_eq!(stats.a_to_b.packets, 1);
        handle.shutdown();
        // The engine is gone: requests fail instead of hanging.
        assert!(matches!(
            control.query_blocking("b2b-1"),
            Err(MediaError::Stopped | MediaError::Timeout)
        ));
    }

    #[test]
    fn workers_get_disjoint_port_shares() {
        let cfg = MediaConfig::default();
        let mut seen = std::collections::HashSet::new();
        for w in 0..3 {
            let mut p = share(&cfg, w, 3);
            while let Some(port) = p.allocate() {
                assert!(port % 2 == 0 && (30000..=39998).contains(&port));
                assert!(seen.insert(port), "port {port} given to two workers");
            }
        }
        assert_eq!(seen.len(), 5000);
    }
}
