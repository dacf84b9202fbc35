//! Persistent state under `store.dir`. Bindings live in an append-only journal (this issue);
//! accounts, licences and call records move to SQLite with the accounts issue.

pub mod journal;
