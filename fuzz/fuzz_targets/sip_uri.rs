//! URI and name-addr grammars on arbitrary text; a URI that passes its check has a host that
//! can be interpreted and parameters that can be listed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mgw_core::sip::{NameAddr, Uri};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(u) = Uri::parse(s) {
        if u.check().is_ok() {
            let _ = (u.host(), u.params.iter().count(), u.user_decoded());
        }
    }
    if let Ok(n) = NameAddr::parse(s) {
        let _ = (n.check(), n.tag(), n.display_unquoted());
    }
});
