//! Persistent state under `store.dir`: bindings in an append-only journal (written at the rate
//! phones register), everything provisioned in SQLite (written at the rate people change it).

pub mod calls;
pub mod db;
pub mod journal;
pub mod trunks;
