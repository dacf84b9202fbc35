//! `MGW_IO_BACKEND` in Auto mode. A test binary of its own: it changes the environment.

mod common;

use common::*;
use mgw_engine::{Backend, ListenAddr};

#[test]
fn env_variable_steers_auto() {
    let before = std::env::var(mgw_engine::BACKEND_ENV).ok();
    std::env::set_var(mgw_engine::BACKEND_ENV, "epoll");
    let (engine, _rx) = start(config(Backend::Auto, vec![ListenAddr::udp(v4())]));
    assert_eq!(engine.backend(), Backend::Epoll);
    engine.shutdown();
    // Only Auto listens to it.
    let (engine, _rx) = start(config(Backend::IoUring, vec![ListenAddr::udp(v4())]));
    assert_eq!(engine.backend(), Backend::IoUring);
    engine.shutdown();
    std::env::set_var(mgw_engine::BACKEND_ENV, "io_uring");
    let (engine, _rx) = start(config(Backend::Auto, vec![ListenAddr::udp(v4())]));
    assert_eq!(engine.backend(), Backend::IoUring);
    engine.shutdown();
    std::env::set_var(mgw_engine::BACKEND_ENV, "poll");
    let e = mgw_engine::Engine::start(config(Backend::Auto, vec![]), TestHandler::detached);
    assert!(e
        .err()
        .is_some_and(|e| e.to_string().contains("MGW_IO_BACKEND=poll")));
    match before {
        Some(v) => std::env::set_var(mgw_engine::BACKEND_ENV, v),
        None => std::env::remove_var(mgw_engine::BACKEND_ENV),
    }
}
