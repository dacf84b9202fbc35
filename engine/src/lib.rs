//! Thread-per-core I/O engine.
