//! RFC 3261 section 17 transactions (filled in by the transaction work).
