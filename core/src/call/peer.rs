//! Peers: SIP neighbours the switch trusts by address instead of by digest: the gateway's own
//! line drivers (an ISDN trunk, a DECT base station presented as a SIP user agent) and upstream
//! trunks' servers. A dial-plan `trunk` rule or a number a peer serves sends a call to it; an
//! INVITE from one of its addresses is a call from that line, with no log-on behind it.

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};

use crate::directory::{ChannelGate, ChannelToken};
use crate::registrar::Transport;

/// Credentials are kept out of `Debug` output.
pub struct Peer {
    /// The name dial-plan rules use (`trunk = "pri1"`).
    pub name: String,
    /// Where calls to the peer go.
    pub addr: SocketAddr,
    pub transport: Transport,
    /// The host part of request URIs towards the peer (`sip:NUMBER@domain`).
    pub domain: String,
    /// Other addresses requests from the peer may come from (a server's other hosts).
    pub sources: Vec<SocketAddr>,
    /// Numbers the peer terminates itself (DECT handsets), reached without a dial-plan rule
    /// when no subscriber has them.
    pub numbers: Vec<String>,
    /// Simultaneous calls through the peer, both directions (`None`: unlimited).
    pub calls: Arc<ChannelGate>,
    /// Digest credentials for the peer's 401/407 challenges (an upstream provider).
    pub credentials: Option<(String, String)>,
    /// The address-of-record calls to the peer come from (`From`), e.g. the trunk's
    /// registered `sip:gw@upstream.example`; `None`: the caller's number at mgw's domain.
    pub from: Option<String>,
    /// A dial prefix that sends calls here, stripped (a trunk's `2#`).
    pub prefix: Option<String>,
    /// Calls from this peer reach subscribers only (an upstream trunk), never another peer.
    pub local_only: bool,
    /// The server's addresses as DNS last gave them (RFC 3263 order), shared with whoever
    /// resolves them; the first is where calls go, all are accepted as sources.
    pub resolved: Arc<RwLock<Vec<SocketAddr>>>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .field("domain", &self.domain)
            .field("sources", &self.sources)
            .field("numbers", &self.numbers)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .finish()
    }
}

impl Peer {
    pub fn new(name: &str, addr: SocketAddr, max_calls: Option<u32>) -> Peer {
        Peer {
            name: name.to_string(),
            addr,
            transport: Transport::Udp,
            domain: addr.to_string(),
            sources: Vec::new(),
            numbers: Vec::new(),
            calls: Arc::new(ChannelGate::new(max_calls)),
            credentials: None,
            from: None,
            prefix: None,
            local_only: false,
            resolved: Arc::new(RwLock::new(Vec::new())),
        }
    }

    /// Every address calls may go to, in the order to try them.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        let r = self.resolved.read().unwrap_or_else(PoisonError::into_inner);
        if r.is_empty() {
            vec![self.addr]
        } else {
            r.clone()
        }
    }

    /// Where calls to the peer go now.
    pub fn destination(&self) -> SocketAddr {
        self.resolved
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .first()
            .copied()
            .unwrap_or(self.addr)
    }

    /// Whether a request from `source` comes from this peer. A peer is recognised by its IP
    /// and port together: a line driver shares the loopback address with every local phone.
    ///
    /// Over TCP the server connects from any port, so a TCP peer is recognised by its IP.
    pub fn sent(&self, source: SocketAddr, reliable: bool) -> bool {
        let by_ip = reliable && self.transport == Transport::Tcp;
        let same = |a: &SocketAddr| {
            if by_ip {
                a.ip() == source.ip()
            } else {
                *a == source
            }
        };
        same(&self.addr)
            || self.sources.iter().any(same)
            || self
                .resolved
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .any(same)
    }

    /// A call slot on the peer, `None` when its limit is reached.
    pub fn claim(&self) -> Option<ChannelToken> {
        self.calls.try_acquire()
    }
}

/// Every peer of the gateway, shared by the workers. Trunks may be added, changed and
/// removed while calls run (the admin API); a call holds its peer's `Arc` to the end.
#[derive(Clone, Debug, Default)]
pub struct Peers(Arc<RwLock<Vec<Arc<Peer>>>>);

impl Peers {
    pub fn new(peers: Vec<Peer>) -> Peers {
        Peers(Arc::new(RwLock::new(
            peers.into_iter().map(Arc::new).collect(),
        )))
    }

    fn find(&self, f: impl Fn(&Peer) -> bool) -> Option<Arc<Peer>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|p| f(p))
            .cloned()
    }

    pub fn by_name(&self, name: &str) -> Option<Arc<Peer>> {
        self.find(|p| p.name == name)
    }

    pub fn by_source(&self, source: SocketAddr, reliable: bool) -> Option<Arc<Peer>> {
        self.find(|p| p.sent(source, reliable))
    }

    /// The peer that terminates `number` itself.
    pub fn serving(&self, number: &str) -> Option<Arc<Peer>> {
        self.find(|p| p.numbers.iter().any(|n| n == number))
    }

    /// The peer whose dial prefix `number` starts with (the longest), and the rest.
    pub fn by_prefix(&self, number: &str) -> Option<(Arc<Peer>, String)> {
        let list = self.0.read().unwrap_or_else(PoisonError::into_inner);
        list.iter()
            .filter_map(|p| {
                let prefix = p.prefix.as_deref().filter(|x| !x.is_empty())?;
                number
                    .strip_prefix(prefix)
                    .map(|rest| (prefix.len(), p.clone(), rest.to_string()))
            })
            .max_by_key(|(len, _, _)| *len)
            .map(|(_, p, rest)| (p, rest))
    }

    /// Adds `peer`, or replaces the one of the same name (calls in progress keep the old).
    pub fn upsert(&self, peer: Peer) {
        let mut list = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let peer = Arc::new(peer);
        match list.iter_mut().find(|p| p.name == peer.name) {
            Some(slot) => *slot = peer,
            None => list.push(peer),
        }
    }

    pub fn remove(&self, name: &str) -> Option<Arc<Peer>> {
        let mut list = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let i = list.iter().position(|p| p.name == name)?;
        Some(list.remove(i))
    }

    pub fn is_empty(&self) -> bool {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognised_by_address_and_port_limited_by_calls() {
        let a: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let mut p = Peer::new("pri1", a, Some(1));
        p.numbers.push("300".into());
        let peers = Peers::new(vec![p]);
        assert!(peers.by_source(a, false).is_some());
        assert!(peers
            .by_source("127.0.0.1:7001".parse().unwrap(), false)
            .is_none());
        assert_eq!(
            peers.serving("300").map(|p| p.name.clone()).as_deref(),
            Some("pri1")
        );
        let peer = peers.by_name("pri1").unwrap();
        let slot = peer.claim();
        assert!(slot.is_some());
        assert!(peer.claim().is_none());
        drop(slot);
        assert!(peer.claim().is_some());
    }
}
