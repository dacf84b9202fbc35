//! ISDN (Q.850) cause values and SIP status codes, both ways, after RFC 3398 sections 7.2.4.1
//! (SIP -> ISDN) and 8.2.6.1 (ISDN -> SIP). They travel in `Reason: Q.850;cause=N;text="..."`
//! headers (RFC 3326) so a call cleared on an ISDN line tells the SIP side why, and the reverse.

/// Q.850 cause of a SIP final response.
pub fn q850_of_status(status: u16) -> u8 {
    match status {
        400 | 481 | 500 | 503 => 41,
        401 | 402 | 403 | 407 | 603 => 21,
        404 | 485 | 604 => 1,
        405 => 63,
        406 | 415 | 501 => 79,
        408 | 504 => 102,
        410 => 22,
        480 => 18,
        482 | 483 => 25,
        484 => 28,
        486 | 600 => 17,
        487 => 16,
        502 => 38,
        // RFC 3398 maps both "by Warning header"; mgw sends no Warning, and a session it
        // cannot describe is a bearer it cannot offer.
        488 | 606 => 58,
        _ => 127,
    }
}

/// SIP status for a Q.850 cause that ends a call before it is answered.
pub fn status_of_q850(cause: u8) -> (u16, &'static str) {
    match cause {
        1..=3 | 26 => (404, "Not Found"),
        17 => (486, "Busy Here"),
        18 => (408, "Request Timeout"),
        19..=20 | 31 => (480, "Temporarily Unavailable"),
        21 | 55 | 57 | 87 => (403, "Forbidden"),
        22 | 23 => (410, "Gone"),
        27 => (502, "Bad Gateway"),
        28 => (484, "Address Incomplete"),
        29 | 79 => (501, "Not Implemented"),
        34 | 38 | 41 | 42 | 44 | 47 | 58 | 88 => (503, "Service Unavailable"),
        65 | 70 => (488, "Not Acceptable Here"),
        102 => (504, "Server Time-out"),
        16 => (480, "Temporarily Unavailable"),
        _ => (500, "Server Internal Error"),
    }
}

/// The text Q.850 gives a cause (every one the drivers and the switch produce), for `Reason`
/// headers and call records.
pub fn q850_text(cause: u8) -> &'static str {
    match cause {
        1 => "Unallocated number",
        2 => "No route to specified transit network",
        3 => "No route to destination",
        6 => "Channel unacceptable",
        16 => "Normal call clearing",
        17 => "User busy",
        18 => "No user responding",
        19 => "No answer from user",
        20 => "Subscriber absent",
        21 => "Call rejected",
        22 => "Number changed",
        25 => "Exchange routing error",
        26 => "Non-selected user clearing",
        27 => "Destination out of order",
        28 => "Invalid number format",
        29 => "Facility rejected",
        31 => "Normal, unspecified",
        34 => "No circuit/channel available",
        38 => "Network out of order",
        41 => "Temporary failure",
        42 => "Switching equipment congestion",
        44 => "Requested circuit/channel not available",
        47 => "Resource unavailable, unspecified",
        55 => "Incoming calls barred within CUG",
        57 => "Bearer capability not authorized",
        58 => "Bearer capability not presently available",
        63 => "Service or option not available",
        65 => "Bearer capability not implemented",
        70 => "Only restricted digital information bearer capability is available",
        79 => "Service or option not implemented",
        81 => "Invalid call reference value",
        82 => "Identified channel does not exist",
        87 => "User not member of CUG",
        88 => "Incompatible destination",
        96 => "Mandatory information element is missing",
        97 => "Message type non-existent or not implemented",
        98 => "Message not compatible with call state",
        99 => "Information element non-existent or not implemented",
        100 => "Invalid information element contents",
        101 => "Message not compatible with call state",
        102 => "Recovery on timer expiry",
        111 => "Protocol error, unspecified",
        127 => "Interworking, unspecified",
        _ => "Unspecified",
    }
}

/// A `Reason` header value (RFC 3326) for a Q.850 cause.
pub fn reason_header(cause: u8) -> String {
    format!("Q.850;cause={cause};text=\"{}\"", q850_text(cause))
}

/// The Q.850 cause in a `Reason` header value, if it carries one.
pub fn parse_reason(value: &str) -> Option<u8> {
    value.split(',').find_map(|r| {
        let mut parts = r.split(';');
        let proto = parts.next()?.trim();
        if !proto.eq_ignore_ascii_case("Q.850") {
            return None;
        }
        parts.find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("cause")
                .then(|| v.trim().parse().ok().filter(|c: &u8| (1..=127).contains(c)))?
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3398_examples_both_ways() {
        assert_eq!(q850_of_status(486), 17);
        assert_eq!(q850_of_status(404), 1);
        assert_eq!(q850_of_status(503), 41);
        assert_eq!(status_of_q850(17).0, 486);
        assert_eq!(status_of_q850(1).0, 404);
        assert_eq!(status_of_q850(34).0, 503);
        assert_eq!(status_of_q850(28).0, 484);
        assert_eq!(parse_reason(&reason_header(34)), Some(34));
        assert_eq!(
            parse_reason("SIP;cause=200;text=\"x\", Q.850 ; cause=17"),
            Some(17)
        );
        assert_eq!(parse_reason("SIP;cause=487"), None);
        assert_eq!(q850_of_status(488), 58);
        assert_eq!(q850_of_status(606), 58);
    }

    /// Every cause a line driver or the switch can produce has its own text, not the
    /// catch-all: a Reason header must say what happened.
    #[test]
    fn every_produced_cause_has_its_text() {
        for c in [
            1u8, 3, 16, 17, 18, 19, 20, 21, 22, 26, 27, 28, 31, 34, 38, 41, 42, 44, 47, 58, 63, 65,
            79, 88, 96, 100, 101, 102, 111, 127,
        ] {
            assert_ne!(q850_text(c), "Unspecified", "cause {c}");
        }
        assert_eq!(q850_text(20), "Subscriber absent");
        assert_eq!(q850_text(200), "Unspecified");
    }
}
