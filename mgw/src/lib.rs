//! mgw: SIP media gateway (registrar, call switch, RTP relay) for a PBX.
//!
//! The binary (`main.rs`) is a one-liner; everything lives in this library so
//! integration tests and the gateway wiring can reach it.

// The OpenAPI document is one large `json!` literal.
#![recursion_limit = "256"]

pub mod admin;
pub mod admin_cli;
pub mod alloc;
pub mod cli;
pub mod clock;
pub mod config;
pub mod gateway;
pub mod lines;
pub mod logger;
pub mod media;
pub mod provisioning;
pub mod resolve;
pub mod signalling;
pub mod store;
pub mod trunks;
