//! The REGISTER + digest flows, sans-IO: a slab of flow state machines driven by
//! [`Generator::start_flow`], [`Generator::on_datagram`] and [`Generator::on_timers`], each
//! given an explicit `now` (ns since the run started) and a [`Transmit`] to put requests in.
//!
//! A flow is one or two non-INVITE client transactions (RFC 3261 17.1.2): REGISTER without
//! credentials, then, after 401/407, the same Call-ID with CSeq+1, a new branch and the digest
//! answer. A response finds its flow by the slot and transaction id in its branch, then is
//! checked against the Call-ID and CSeq; anything else is absorbed as stray.

use mgw_core::auth::Algorithm;
use mgw_core::sip::{HeaderName, Message};

use crate::digest::{self, Answer, Challenge, Hex};
use crate::request::{Request, Template};
use crate::summary::{Failure, Stats};
use crate::timers::Queue;
use crate::users::User;

/// Where requests go: the driver batches them per socket.
pub trait Transmit {
    fn send(&mut self, socket: usize, datagram: &[u8]);
}

pub struct Config {
    pub template: Template,
    /// `IP:PORT` of each source socket, as Via and Contact carry it.
    pub locals: Vec<String>,
    pub t1_ns: u64,
    pub t2_ns: u64,
    /// Whole-flow deadline (`--timeout`).
    pub flow_timeout_ns: u64,
    pub seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    /// The REGISTER without credentials is in flight.
    Probing,
    /// The REGISTER with credentials is in flight.
    Authenticating,
}

struct Flow {
    state: State,
    /// Bumped with every new transaction and when the flow ends, which invalidates the branch
    /// and the timers of the previous one. Never reset, so a reused slot cannot match an answer
    /// meant for its previous flow.
    tx: u32,
    seq: u64,
    user: u32,
    socket: u16,
    cseq: u32,
    /// Timer E queue the next retransmission is armed in.
    level: u8,
    /// A 1xx arrived: Timer E runs at T2 from now on (RFC 3261 17.1.2.2).
    proceeding: bool,
    challenges: u8,
    started: u64,
    /// The request in flight, kept for retransmission. The slot keeps its capacity when reused.
    msg: Vec<u8>,
}

/// Per user: HA1 for each algorithm once computed, for the realm in `Generator::realm`.
struct Account {
    user: User,
    ha1: [Option<Hex>; 2],
}

/// A stale challenge may follow a challenge answered once; more than this means the server does
/// not accept what we send.
const MAX_CHALLENGES: u8 = 3;

pub struct Generator {
    cfg: Config,
    accounts: Vec<Account>,
    /// The realm HA1s are cached for: the first one seen. Another realm is computed uncached.
    realm: Option<String>,
    /// H(REGISTER:uri) per algorithm: the same for every request of the run.
    ha2: [Hex; 2],
    flows: Vec<Flow>,
    free: Vec<u32>,
    active: u64,
    next_seq: u64,
    /// Timer E, one queue per interval: T1, 2*T1, ... up to T2.
    timer_e: Vec<Queue>,
    /// Timer F = 64*T1 per transaction; only armed when the flow deadline is later.
    timer_f: Option<Queue>,
    deadline: Queue,
    rng: u64,
    pub stats: Stats,
}

/// 16 hex digits from xorshift64*: a cnonce need not be secret, only unlikely to repeat.
fn cnonce(state: &mut u64) -> [u8; 16] {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    let v = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
    let mut s = [0u8; 16];
    for (i, c) in s.iter_mut().enumerate() {
        *c = b"0123456789abcdef"[((v >> (60 - 4 * i)) & 15) as usize];
    }
    s
}

fn alg_index(a: Algorithm) -> usize {
    match a {
        Algorithm::Md5 => 0,
        Algorithm::Sha256 => 1,
    }
}

impl Generator {
    pub fn new(cfg: Config, users: Vec<User>) -> Generator {
        assert!(!users.is_empty() && !cfg.locals.is_empty());
        let mut timer_e = Vec::new();
        let mut interval = cfg.t1_ns;
        loop {
            timer_e.push(Queue::new(interval.min(cfg.t2_ns)));
            if interval >= cfg.t2_ns {
                break;
            }
            interval *= 2;
        }
        let timer_f_ns = 64 * cfg.t1_ns;
        let uri = cfg.template.request_uri.as_bytes();
        Generator {
            ha2: [Algorithm::Md5, Algorithm::Sha256].map(|a| digest::hash(a, &[b"REGISTER", uri])),
            accounts: users
                .into_iter()
                .map(|user| Account {
                    user,
                    ha1: [None, None],
                })
                .collect(),
            realm: None,
            flows: Vec::new(),
            free: Vec::new(),
            active: 0,
            next_seq: 0,
            timer_e,
            timer_f: (cfg.flow_timeout_ns > timer_f_ns).then(|| Queue::new(timer_f_ns)),
            deadline: Queue::new(cfg.flow_timeout_ns),
            rng: cfg.seed | 1,
            stats: Stats::new(),
            cfg,
        }
    }

    /// Flows started and not finished.
    pub fn active(&self) -> u64 {
        self.active
    }

    pub fn start_flow(&mut self, now: u64, out: &mut impl Transmit) {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.flows.push(Flow {
                    state: State::Free,
                    tx: 0,
                    seq: 0,
                    user: 0,
                    socket: 0,
                    cseq: 0,
                    level: 0,
                    proceeding: false,
                    challenges: 0,
                    started: 0,
                    msg: Vec::with_capacity(1024),
                });
                (self.flows.len() - 1) as u32
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let f = &mut self.flows[slot as usize];
        f.state = State::Probing;
        f.seq = seq;
        f.user = (seq % self.accounts.len() as u64) as u32;
        f.socket = (seq % self.cfg.locals.len() as u64) as u16;
        f.cseq = 0;
        f.challenges = 0;
        f.started = now;
        self.active += 1;
        self.stats.offered += 1;
        // The deadline entry names the flow by the low bits of its sequence number.
        self.deadline.arm(now, slot, seq as u32);
        self.send_new(slot, None, now, out);
    }

    /// Starts the next transaction of the flow in `slot`: writes the request, sends it, arms
    /// Timer E (and F).
    fn send_new(
        &mut self,
        slot: u32,
        auth: Option<(&str, &Challenge<'_>)>,
        now: u64,
        out: &mut impl Transmit,
    ) {
        let f = &mut self.flows[slot as usize];
        f.tx = f.tx.wrapping_add(1);
        f.cseq += 1;
        f.level = 0;
        f.proceeding = false;
        let account = &self.accounts[f.user as usize];
        let local = &self.cfg.locals[usize::from(f.socket)];
        let request = |auth| Request {
            local,
            user: &account.user.name,
            seq: f.seq,
            slot,
            tx: f.tx,
            cseq: f.cseq,
            auth,
        };
        match auth {
            None => self.cfg.template.write(&mut f.msg, &request(None)),
            Some((header, c)) => {
                let cached = self.realm.as_deref() == Some(c.realm);
                let ha1 = match account.ha1[alg_index(c.algorithm)] {
                    Some(h) if cached => h,
                    _ => {
                        let u = &account.user;
                        digest::hash(
                            c.algorithm,
                            &[u.name.as_bytes(), c.realm.as_bytes(), u.password.as_bytes()],
                        )
                    }
                };
                let cnonce = cnonce(&mut self.rng);
                let answer = Answer {
                    username: &account.user.name,
                    uri: &self.cfg.template.request_uri,
                    ha1: &ha1,
                    ha2: &self.ha2[alg_index(c.algorithm)],
                    cnonce: &cnonce,
                };
                self.cfg
                    .template
                    .write(&mut f.msg, &request(Some((header, c, &answer))));
                // Cache after the borrow of the account for writing ends.
                let user = f.user as usize;
                if self.realm.is_none() {
                    self.realm = Some(c.realm.to_string());
                }
                if self.realm.as_deref() == Some(c.realm) {
                    self.accounts[user].ha1[alg_index(c.algorithm)] = Some(ha1);
                }
            }
        }
        let f = &self.flows[slot as usize];
        out.send(usize::from(f.socket), &f.msg);
        self.timer_e[0].arm(now, slot, f.tx);
        if let Some(q) = self.timer_f.as_mut() {
            q.arm(now, slot, f.tx);
        }
    }

    /// One datagram from the server.
    pub fn on_datagram(&mut self, bytes: &[u8], now: u64, out: &mut impl Transmit) {
        let matched = Message::parse(bytes)
            .ok()
            .and_then(|m| Some((self.match_response(&m)?, m)));
        let Some((slot, msg)) = matched else {
            self.stats.stray += 1;
            return;
        };
        match msg.status() {
            Some(100..=199) => self.flows[slot as usize].proceeding = true,
            Some(200..=299) => {
                let started = self.flows[slot as usize].started;
                self.finish(slot, None);
                self.stats.succeed(now.saturating_sub(started) / 1000);
            }
            Some(code @ (401 | 407)) => self.on_challenge(slot, &msg, code, now, out),
            Some(code) => self.finish(slot, Some(Failure::Status(code))),
            None => {}
        }
    }

    /// The slot of the flow whose transaction in flight this response answers.
    fn match_response(&self, msg: &Message<'_>) -> Option<u32> {
        msg.status()?;
        let t = &self.cfg.template;
        let (slot, tx) = t.parse_branch(msg.top_via()?.branch()?)?;
        let f = self.flows.get(slot as usize)?;
        if f.state == State::Free || f.tx != tx {
            return None;
        }
        if t.parse_call_id(msg.call_id()?)? != f.seq || msg.cseq()?.seq != f.cseq {
            return None;
        }
        Some(slot)
    }

    fn on_challenge(
        &mut self,
        slot: u32,
        msg: &Message<'_>,
        code: u16,
        now: u64,
        out: &mut impl Transmit,
    ) {
        let (challenge_header, answer_header) = if code == 401 {
            (HeaderName::WwwAuthenticate, "Authorization")
        } else {
            (HeaderName::ProxyAuthenticate, "Proxy-Authorization")
        };
        let Ok(c) = digest::choose(msg.all(challenge_header)) else {
            self.finish(slot, Some(Failure::Challenge));
            return;
        };
        let f = &mut self.flows[slot as usize];
        // A challenge to credentials means they were refused, unless only the nonce aged.
        if f.state == State::Authenticating && (!c.stale || f.challenges >= MAX_CHALLENGES) {
            self.finish(slot, Some(Failure::Status(code)));
            return;
        }
        f.state = State::Authenticating;
        f.challenges += 1;
        self.send_new(slot, Some((answer_header, &c)), now, out);
    }

    fn finish(&mut self, slot: u32, failure: Option<Failure>) {
        let f = &mut self.flows[slot as usize];
        f.state = State::Free;
        f.tx = f.tx.wrapping_add(1);
        self.free.push(slot);
        self.active -= 1;
        if let Some(why) = failure {
            self.stats.fail(why);
        }
    }

    /// Runs every timer due at `now`: retransmissions (Timer E) and timeouts (Timer F and the
    /// flow deadline).
    pub fn on_timers(&mut self, now: u64, out: &mut impl Transmit) {
        let last = self.timer_e.len() - 1;
        for level in 0..self.timer_e.len() {
            while let Some(e) = self.timer_e[level].pop_due(now) {
                let Some(f) = self.flows.get_mut(e.slot as usize) else {
                    continue;
                };
                if f.state == State::Free || f.tx != e.tx || usize::from(f.level) != level {
                    continue;
                }
                out.send(usize::from(f.socket), &f.msg);
                self.stats.retransmissions += 1;
                let next = if f.proceeding {
                    last
                } else {
                    (level + 1).min(last)
                };
                f.level = next as u8;
                self.timer_e[next].arm(now, e.slot, e.tx);
            }
        }
        while let Some(e) = self.timer_f.as_mut().and_then(|q| q.pop_due(now)) {
            let live = self
                .flows
                .get(e.slot as usize)
                .is_some_and(|f| f.state != State::Free && f.tx == e.tx);
            if live {
                self.finish(e.slot, Some(Failure::Timeout));
            }
        }
        while let Some(e) = self.deadline.pop_due(now) {
            let live = self
                .flows
                .get(e.slot as usize)
                .is_some_and(|f| f.state != State::Free && f.seq as u32 == e.tx);
            if live {
                self.finish(e.slot, Some(Failure::Timeout));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mgw_core::auth::{digest as core_digest, Credentials};
    use mgw_core::sip::{ReplyContext, ResponseBuilder};

    #[derive(Default)]
    struct Sent(Vec<(usize, Vec<u8>)>);

    impl Transmit for Sent {
        fn send(&mut self, socket: usize, datagram: &[u8]) {
            self.0.push((socket, datagram.to_vec()));
        }
    }

    const MS: u64 = 1_000_000;

    fn generator(users: usize) -> Generator {
        let users = (0..users)
            .map(|i| User {
                name: format!("u{i}"),
                password: "secret".into(),
            })
            .collect();
        Generator::new(
            Config {
                template: Template {
                    run: *b"00000001",
                    domain: "mgw.test".into(),
                    request_uri: "sip:mgw.test".into(),
                    expires: 60,
                    user_agent: "test".into(),
                },
                locals: vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
                t1_ns: 500 * MS,
                t2_ns: 4000 * MS,
                flow_timeout_ns: 32_000 * MS,
                seed: 42,
            },
            users,
        )
    }

    fn reply(req: &[u8], code: u16, extra: &[(&str, &str)]) -> Vec<u8> {
        let m = Message::parse(req).expect("request parses");
        let mut buf = Vec::new();
        let mut b = ResponseBuilder::new(&mut buf, &m, code, "X", ReplyContext::default());
        for (n, v) in extra {
            b = b.header(n, v);
        }
        b.finish(None, b"");
        buf
    }

    /// What mgw's registrar offers: SHA-256 first, then MD5 (RFC 8760).
    fn challenge() -> [String; 2] {
        [Algorithm::Sha256, Algorithm::Md5].map(|alg| {
            format!(
                "Digest realm=\"mgw.test\", nonce=\"n0nce\", algorithm={}, qop=\"auth\"",
                alg.as_str()
            )
        })
    }

    #[test]
    fn digest_flow_succeeds_and_absorbs_duplicates() {
        let mut g = generator(3);
        let mut out = Sent::default();
        g.start_flow(0, &mut out);
        g.start_flow(0, &mut out);
        assert_eq!(out.0.len(), 2);
        assert_eq!((out.0[0].0, out.0[1].0), (0, 1));
        let first = out.0[0].1.clone();
        let [sha, md5] = challenge();
        let c401 = reply(
            &first,
            401,
            &[("WWW-Authenticate", &sha), ("WWW-Authenticate", &md5)],
        );
        g.on_datagram(&c401, MS, &mut out);
        assert_eq!(out.0.len(), 3);
        let second = out.0[2].1.clone();
        let m = Message::parse(&second).expect("parses");
        assert_eq!(m.cseq().map(|c| c.seq), Some(2));
        assert_eq!(
            m.call_id(),
            Message::parse(&first).expect("first").call_id()
        );
        assert_ne!(
            m.top_via().and_then(|v| v.branch()),
            Message::parse(&first)
                .expect("first")
                .top_via()
                .and_then(|v| v.branch())
        );
        let creds =
            Credentials::parse(m.header(HeaderName::Authorization).expect("auth")).expect("creds");
        assert_eq!(creds.algorithm, Some("SHA-256"));
        assert_eq!(creds.uri, "sip:mgw.test");
        let ha1 = Algorithm::Sha256.ha1("u0", "mgw.test", "secret");
        assert!(core_digest::verify(
            &creds,
            Algorithm::Sha256,
            &ha1,
            "REGISTER"
        ));

        // The 401 again (answer to a retransmission) is stray now.
        g.on_datagram(&c401, 2 * MS, &mut out);
        assert_eq!(g.stats.stray, 1);
        assert_eq!(out.0.len(), 3);

        let ok = reply(&second, 200, &[]);
        g.on_datagram(&ok, 5 * MS, &mut out);
        g.on_datagram(&ok, 6 * MS, &mut out);
        assert_eq!((g.stats.ok, g.stats.stray, g.active()), (1, 2, 1));
        assert_eq!(g.stats.latency.max(), 5000);
    }

    #[test]
    fn retransmits_on_timer_e_then_times_out() {
        let mut g = generator(1);
        let mut out = Sent::default();
        g.start_flow(0, &mut out);
        let mut t = 0;
        while g.active() > 0 && t < 40_000 * MS {
            t += 10 * MS;
            g.on_timers(t, &mut out);
        }
        // 0.5, 1.5, 3.5, 7.5, then every 4 s until 32 s: 4 + 6 = 10 retransmissions.
        assert_eq!(g.stats.retransmissions, 10);
        assert_eq!(out.0.len(), 11);
        assert!(out.0.iter().all(|(_, m)| *m == out.0[0].1));
        assert_eq!((g.stats.failed, g.stats.timeouts), (1, 1));
        assert_eq!(t, 32_000 * MS);
    }

    #[test]
    fn provisional_moves_timer_e_to_t2() {
        let mut g = generator(1);
        let mut out = Sent::default();
        g.start_flow(0, &mut out);
        let trying = reply(&out.0[0].1, 100, &[]);
        g.on_datagram(&trying, MS, &mut out);
        g.on_timers(500 * MS, &mut out); // first E still at T1
        g.on_timers(4000 * MS, &mut out);
        assert_eq!(g.stats.retransmissions, 1);
        g.on_timers(4500 * MS, &mut out);
        assert_eq!(g.stats.retransmissions, 2);
    }

    #[test]
    fn refused_credentials_and_errors_fail_by_status() {
        let mut g = generator(1);
        let mut out = Sent::default();
        g.start_flow(0, &mut out);
        let [sha, _] = challenge();
        g.on_datagram(
            &reply(&out.0[0].1, 401, &[("WWW-Authenticate", &sha)]),
            0,
            &mut out,
        );
        g.on_datagram(
            &reply(&out.0[1].1, 401, &[("WWW-Authenticate", &sha)]),
            0,
            &mut out,
        );
        assert_eq!(g.stats.failed_by_status().get("401"), Some(&1));

        g.start_flow(0, &mut out);
        g.on_datagram(&reply(&out.0[2].1, 503, &[]), 0, &mut out);
        assert_eq!(g.stats.failed_by_status().get("503"), Some(&1));

        g.start_flow(0, &mut out);
        g.on_datagram(
            &reply(&out.0[3].1, 407, &[("Proxy-Authenticate", "Basic realm=x")]),
            0,
            &mut out,
        );
        assert_eq!(g.stats.failed_by_reason().get("challenge"), Some(&1));
        assert_eq!((g.stats.failed, g.active()), (3, 0));
    }

    #[test]
    fn stale_nonce_is_answered_again() {
        let mut g = generator(1);
        let mut out = Sent::default();
        g.start_flow(0, &mut out);
        let proxy = "Digest realm=\"mgw.test\", nonce=\"a\", qop=\"auth\"";
        g.on_datagram(
            &reply(&out.0[0].1, 407, &[("Proxy-Authenticate", proxy)]),
            0,
            &mut out,
        );
        let m = Message::parse(&out.0[1].1).expect("parses");
        assert!(m.header(HeaderName::ProxyAuthorization).is_some());
        let stale = "Digest realm=\"mgw.test\", nonce=\"b\", qop=\"auth\", stale=true";
        g.on_datagram(
            &reply(&out.0[1].1, 407, &[("Proxy-Authenticate", stale)]),
            0,
            &mut out,
        );
        let m = Message::parse(&out.0[2].1).expect("parses");
        assert_eq!(m.cseq().map(|c| c.seq), Some(3));
        g.on_datagram(&reply(&out.0[2].1, 200, &[]), 0, &mut out);
        assert_eq!((g.stats.ok, g.stats.failed), (1, 0));
    }

    #[test]
    fn reused_slot_ignores_the_previous_flow() {
        let mut g = generator(1);
        let mut out = Sent::default();
        g.start_flow(0, &mut out);
        let old = out.0[0].1.clone();
        g.on_datagram(&reply(&old, 500, &[]), 0, &mut out);
        g.start_flow(0, &mut out); // same slot
        g.on_datagram(&reply(&old, 200, &[]), 0, &mut out);
        assert_eq!((g.stats.ok, g.stats.stray, g.active()), (0, 1, 1));
    }
}
