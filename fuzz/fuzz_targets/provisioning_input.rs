//! What operators type or import: allowed networks (CIDR) and the accounts CSV. Never a panic;
//! a network that parses prints as a network that parses to itself, and matches its own
//! address; every CSV row accepted has a valid user and number.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mgw_core::cidr::Cidr;
use mgw_core::directory::{parse_csv, valid_number, valid_user};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = s.parse::<Cidr>() {
        let again: Cidr = c.to_string().parse().expect("a printed network parses");
        assert_eq!(again, c);
        assert!(c.contains(c.addr()));
    }
    if let Ok(rows) = parse_csv(s) {
        for r in rows {
            assert!(valid_user(&r.user) && valid_number(&r.number) && !r.password.is_empty());
        }
    }
});
