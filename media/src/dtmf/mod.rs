//! DTMF: RFC 4733 telephone-events carried between legs (payload type and clock rate
//! translated), and in-band tones generated for, or detected from, legs without
//! telephone-event (the ISDN and DECT drivers).

pub mod detect;
pub mod event;
pub mod tone;

/// The sixteen DTMF keys, as RFC 4733 section 3.2 numbers them (0-9, *, #, A-D).
pub const KEYS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

/// The (low, high) frequencies of a key (ITU-T Q.23).
pub fn frequencies(event: u8) -> Option<(f32, f32)> {
    let key = *KEYS.get(usize::from(event))?;
    let row = match key {
        '1' | '2' | '3' | 'A' => 697.0,
        '4' | '5' | '6' | 'B' => 770.0,
        '7' | '8' | '9' | 'C' => 852.0,
        _ => 941.0,
    };
    let col = match key {
        '1' | '4' | '7' | '*' => 1209.0,
        '2' | '5' | '8' | '0' => 1336.0,
        '3' | '6' | '9' | '#' => 1477.0,
        _ => 1633.0,
    };
    Some((row, col))
}

/// The RFC 4733 event number of a key.
pub fn event_of(key: char) -> Option<u8> {
    let k = key.to_ascii_uppercase();
    KEYS.iter().position(|&c| c == k).map(|i| i as u8)
}
