//! The whole sans-IO endpoint (parse, validate, transactions, answers) on arbitrary datagrams
//! with a moving clock: never panics, and every answer it sends parses.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mgw_core::auth::NonceKey;
use mgw_core::admission::{Admission, EmergencyNumbers};
use mgw_core::call::MediaResult;
use mgw_core::endpoint::{Endpoint, EndpointConfig, Origin};
use mgw_core::licence::LicencePool;
use std::sync::Arc;
use mgw_core::sip::Message;

fn epoch() -> Instant {
    static E: OnceLock<Instant> = OnceLock::new();
    *E.get_or_init(Instant::now)
}

fuzz_target!(|data: &[u8]| {
    let mut ep: Endpoint<u8> = Endpoint::with_switch(EndpointConfig {
        domain: "mgw.test".into(),
        server: "fuzz".into(),
        nonce_lifetime: Duration::from_secs(30),
        nonce_key: NonceKey::new([1; 32]),
        sha256_first: false,
        md5_only_user_agents: vec!["baresip v1.".into()],
        epoch: epoch(),
        timers: Default::default(),
        epoch_unix_ms: 1_700_000_000_000,
        registrar: Default::default(),
        directory: Default::default(),
        location: Default::default(),
        nonce_counts: Default::default(),
        admission: Admission::new(
            Default::default(),
            Arc::new(LicencePool::new(1)),
            EmergencyNumbers::default(),
        ),
        calls: Default::default(),
        worker: 0,
    }, Box::new(|_, _| 7u8));
    let mut now = epoch();
    // Several datagrams per input, separated by a marker, so transactions see retransmissions.
    for (i, part) in data.split(|&b| b == 0xff).enumerate() {
        now += Duration::from_millis(u64::from(part.first().copied().unwrap_or(0)) * 50);
        ep.on_timeout(now);
        ep.on_message(
            part,
            Origin {
                reply_to: i as u8,
                source: SocketAddr::from(([192, 0, 2, 1], 5060)),
                reliable: i % 2 == 1,
            },
            now,
        );
        // Media answers fail: the call layer's failure paths run on every input.
        while let Some(r) = ep.poll_media() {
            ep.on_media(r.ticket, MediaResult::Failed("fuzz".into()), now);
        }
        while ep.poll_foreign().is_some() {}
        while ep.poll_call_event().is_some() {}
        while let Some(t) = ep.poll_transmit() {
            assert!(
                Message::parse(&t.bytes).is_ok(),
                "we sent something unparsable"
            );
        }
    }
});
