//! What mgw reads as a client of other servers: DNS answers (RFC 1035, with name compression)
//! and digest challenges from an upstream registrar. Neither may panic on any bytes; a parsed
//! DNS message that encodes again must parse to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mgw_core::dns::Message;
use mgw_core::ua::digest::Challenge;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        if let Ok(bytes) = m.encode() {
            let again = Message::parse(&bytes).expect("an encoded message parses");
            assert_eq!(again, m);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Challenge::parse(text);
        let _ = Challenge::parse_all(text);
    }
});
