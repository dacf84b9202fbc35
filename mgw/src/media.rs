//! The media side of the gateway: one [`MediaWorker`] per media engine worker, holding that
//! worker's sessions (`mgw_media::relay::Relay`), its share of `media.rtp_ports`, and on worker
//! 0 the rtpengine ng control (`media.ng_listen`). Translation only: relay and protocol
//! decisions live in `mgw_media`, socket work in `mgw_engine::media`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mgw_engine::media::{Forward, MediaHandler, PortControl};
use mgw_media::ng::NgControl;
use mgw_media::relay::{MediaEvent, PortChange, PortPool, Relay, RelayConfig, Verdict};

use crate::config::MediaConfig;

/// Counters one worker publishes for `/metrics`.
#[derive(Default)]
pub struct MediaCounters {
    pub sessions: AtomicU64,
    pub ports_in_use: AtomicU64,
    pub inactive_events: AtomicU64,
    pub port_open_failures: AtomicU64,
}

pub struct MediaWorker {
    relay: Relay,
    ports: PortPool,
    ng: Option<NgControl>,
    counters: Arc<MediaCounters>,
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
            // The ng control socket is served by worker 0 only.
            ng: (index == 0 && cfg.ng_listen.is_some()).then(|| NgControl::new(cfg.advertised())),
            counters,
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
        now: Instant,
    ) -> Option<Forward> {
        match self.relay.on_packet(local_port, from, buf, now) {
            Verdict::Forward { from_port, to, len } => Some(Forward { from_port, to, len }),
            Verdict::Drop(_) => None,
        }
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
                    // An ng call nobody deleted is ended here; calls of the B2BUA (issue 6)
                    // will be ended by signalling instead.
                    let expired = self
                        .ng
                        .as_mut()
                        .and_then(|ng| ng.expire(session, &mut self.relay, &mut self.ports));
                    match expired {
                        Some(call_id) => log::info!(
                            "media: ng call {call_id:?} silent for {} s: deleted",
                            idle.as_secs()
                        ),
                        None => log::info!(
                            "media: session {} silent for {} s",
                            session.0,
                            idle.as_secs()
                        ),
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
