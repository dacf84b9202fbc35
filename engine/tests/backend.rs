//! Backend selection and start-up errors.

mod common;

use std::net::UdpSocket;

use common::*;
use mgw_engine::{Backend, Engine, EngineConfig, EngineError, ListenAddr};

fn start_err(cfg: EngineConfig) -> EngineError {
    match Engine::start(cfg, TestHandler::detached) {
        Ok(_) => panic!("engine started but should not have"),
        Err(e) => e,
    }
}

#[test]
fn forced_backends_run_as_asked() {
    for backend in [Backend::IoUring, Backend::Epoll] {
        let (engine, _rx) = start(config(backend, vec![ListenAddr::udp(v4())]));
        assert_eq!(engine.backend(), backend);
        engine.shutdown();
    }
}

#[test]
fn auto_runs_a_concrete_backend() {
    let (engine, _rx) = start(config(Backend::Auto, vec![ListenAddr::udp(v4())]));
    assert_ne!(engine.backend(), Backend::Auto);
    if std::env::var(mgw_engine::BACKEND_ENV).is_err() && mgw_engine::io_uring_available().is_ok() {
        assert_eq!(engine.backend(), Backend::IoUring);
    }
    engine.shutdown();
}

/// Installs a seccomp filter on the calling thread (inherited by threads it starts) that makes
/// io_uring_setup fail with EPERM, as Docker's default profile does.
fn block_io_uring_on_this_thread() {
    let filter = [
        // A = syscall number
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_io_uring_setup as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: prctl with plain integer arguments, then with a pointer to a filter program that
    // lives for the call (the kernel copies it). Only this thread and its children are affected.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog
            ),
            0,
            "seccomp: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[test]
fn blocked_io_uring_falls_back_or_fails_when_forced() {
    // On a thread of its own: the filter must not leak into other tests.
    let outcome = std::thread::spawn(|| {
        block_io_uring_on_this_thread();
        let forced = match Engine::start(
            config(Backend::IoUring, vec![ListenAddr::udp(v4())]),
            TestHandler::detached,
        ) {
            Ok(_) => "started".to_string(),
            Err(e) => e.to_string(),
        };
        let auto = Engine::start(
            config(Backend::Auto, vec![ListenAddr::udp(v4())]),
            TestHandler::detached,
        )
        .map(|e| {
            let b = e.backend();
            e.shutdown();
            b
        })
        .map_err(|e| e.to_string());
        (forced, auto)
    })
    .join()
    .expect("test thread");
    assert!(
        outcome
            .0
            .starts_with("io_uring unavailable: io_uring_setup"),
        "{}",
        outcome.0
    );
    assert!(
        outcome.0.contains("MGW_IO_BACKEND=epoll"),
        "the message names the fix: {}",
        outcome.0
    );
    if std::env::var(mgw_engine::BACKEND_ENV).is_err() {
        assert_eq!(outcome.1, Ok(Backend::Epoll));
    }
}

#[test]
fn bind_error_names_address_and_cause() {
    let taken = UdpSocket::bind(v4()).expect("bind");
    let addr = taken.local_addr().expect("addr");
    for backend in [Backend::IoUring, Backend::Epoll] {
        let e = start_err(config(backend, vec![ListenAddr::udp(addr)]));
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("udp:{addr}: address in use")),
            "{text}"
        );
        assert!(matches!(e, EngineError::Bind { .. }));
    }
    let taken = std::net::TcpListener::bind(v6()).expect("bind");
    let addr = taken.local_addr().expect("addr");
    let text = start_err(config(Backend::Epoll, vec![ListenAddr::tcp(addr)])).to_string();
    assert!(
        text.starts_with(&format!("tcp:{addr}: address in use")),
        "{text}"
    );
}

/// Another engine of the same user on the same port would be accepted by SO_REUSEPORT alone.
#[test]
fn second_engine_on_same_port_is_refused() {
    let (engine, _rx) = start(config(Backend::Epoll, vec![ListenAddr::udp(v4())]));
    let addr = udp_addr(&engine, false);
    let text = start_err(config(Backend::Epoll, vec![ListenAddr::udp(addr)])).to_string();
    assert!(text.contains("address in use"), "{text}");
    engine.shutdown();
}

#[test]
fn bad_config_is_explained() {
    let mut cfg = config(Backend::Epoll, vec![]);
    cfg.workers = 0;
    assert!(start_err(cfg).to_string().contains("workers = 0"));
    let mut cfg = config(Backend::Epoll, vec![]);
    cfg.recv_buffers = 0;
    assert!(start_err(cfg).to_string().contains("recv_buffers = 0"));
}

#[test]
fn factory_panic_is_reported() {
    let e = Engine::start(
        config(Backend::Epoll, vec![ListenAddr::udp(v4())]),
        |w| -> TestHandler { panic!("factory of worker {w} broke") },
    );
    let text = e.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("factory of worker 0 broke"), "{text}");
}
