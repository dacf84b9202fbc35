//! Bencode (the BitTorrent encoding rtpengine's ng protocol uses): integers `i42e`, byte
//! strings `4:spam`, lists `l...e`, dictionaries `d...e` with byte-string keys. Parsed from a
//! datagram with a depth limit, so hostile input can neither panic nor exhaust the stack.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    /// Keys in the order received (ng peers do not always sort them).
    Dict(Vec<(Vec<u8>, Value)>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BencodeError {
    /// Input ended inside a value.
    Truncated,
    /// A byte that cannot start or continue a value at `at`.
    Unexpected { at: usize },
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A string length or integer that does not fit.
    Overflow { at: usize },
    /// Bytes after the top-level value.
    Trailing { at: usize },
}

impl fmt::Display for BencodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BencodeError::Truncated => f.write_str("bencode value truncated"),
            BencodeError::Unexpected { at } => write!(f, "unexpected byte at offset {at}"),
            BencodeError::TooDeep => write!(f, "bencode nested deeper than {MAX_DEPTH}"),
            BencodeError::Overflow { at } => write!(f, "number too large at offset {at}"),
            BencodeError::Trailing { at } => write!(f, "data after the value at offset {at}"),
        }
    }
}

impl std::error::Error for BencodeError {}

pub const MAX_DEPTH: usize = 32;

impl Value {
    /// Parses exactly one value filling `input`.
    pub fn parse(input: &[u8]) -> Result<Value, BencodeError> {
        let mut at = 0;
        let v = parse_at(input, &mut at, 0)?;
        if at != input.len() {
            return Err(BencodeError::Trailing { at });
        }
        Ok(v)
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Value::Bytes(b) => {
                out.extend_from_slice(b.len().to_string().as_bytes());
                out.push(b':');
                out.extend_from_slice(b);
            }
            Value::List(l) => {
                out.push(b'l');
                for v in l {
                    v.encode(out);
                }
                out.push(b'e');
            }
            Value::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    Value::Bytes(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// A dictionary entry.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => d
                .iter()
                .find(|(k, _)| k.as_slice() == key.as_bytes())
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// A string entry as UTF-8 text.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The strings of a list entry (ng flags), non-UTF-8 ones skipped.
    pub fn strings(&self, key: &str) -> Vec<&str> {
        match self.get(key) {
            Some(Value::List(l)) => l
                .iter()
                .filter_map(|v| match v {
                    Value::Bytes(b) => std::str::from_utf8(b).ok(),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn dict<I: IntoIterator<Item = (&'static str, Value)>>(entries: I) -> Value {
        Value::Dict(
            entries
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    pub fn text(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }
}

fn parse_at(input: &[u8], at: &mut usize, depth: usize) -> Result<Value, BencodeError> {
    if depth > MAX_DEPTH {
        return Err(BencodeError::TooDeep);
    }
    let start = *at;
    match input.get(start).copied().ok_or(BencodeError::Truncated)? {
        b'i' => {
            let end = find(input, start + 1, b'e')?;
            let text = &input[start + 1..end];
            let ok_form = !text.is_empty()
                && text != b"-"
                && (text.len() == 1 || text[0] != b'0')
                && !text.starts_with(b"-0");
            let n = std::str::from_utf8(text)
                .ok()
                .filter(|_| ok_form)
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or(BencodeError::Overflow { at: start })?;
            *at = end + 1;
            Ok(Value::Int(n))
        }
        b'l' => {
            *at += 1;
            let mut items = Vec::new();
            while input.get(*at).copied().ok_or(BencodeError::Truncated)? != b'e' {
                items.push(parse_at(input, at, depth + 1)?);
            }
            *at += 1;
            Ok(Value::List(items))
        }
        b'd' => {
            *at += 1;
            let mut entries = Vec::new();
            while input.get(*at).copied().ok_or(BencodeError::Truncated)? != b'e' {
                let key_at = *at;
                let Value::Bytes(k) = parse_at(input, at, depth + 1)? else {
                    return Err(BencodeError::Unexpected { at: key_at });
                };
                let v = parse_at(input, at, depth + 1)?;
                entries.push((k, v));
            }
            *at += 1;
            Ok(Value::Dict(entries))
        }
        b'0'..=b'9' => {
            let colon = find(input, start, b':')?;
            let len: usize = std::str::from_utf8(&input[start..colon])
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or(BencodeError::Overflow { at: start })?;
            let from = colon + 1;
            let to = from
                .checked_add(len)
                .ok_or(BencodeError::Overflow { at: start })?;
            let bytes = input.get(from..to).ok_or(BencodeError::Truncated)?;
            *at = to;
            Ok(Value::Bytes(bytes.to_vec()))
        }
        _ => Err(BencodeError::Unexpected { at: start }),
    }
}

fn find(input: &[u8], from: usize, byte: u8) -> Result<usize, BencodeError> {
    input[from.min(input.len())..]
        .iter()
        .take(24)
        .position(|&b| b == byte)
        .map(|p| from + p)
        .ok_or(BencodeError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_an_ng_offer() {
        let raw = b"d7:command5:offer7:call-id3:abc5:flagsl13:trust-addresse3:sdp4:v=0\ne";
        let v = Value::parse(raw).unwrap();
        assert_eq!(v.str("command"), Some("offer"));
        assert_eq!(v.strings("flags"), ["trust-address"]);
        assert_eq!(v.to_bytes(), raw);
        assert_eq!(Value::parse(b"i-42e").unwrap(), Value::Int(-42));
    }

    #[test]
    fn refuses_malformed_input_without_panicking() {
        for bad in [
            &b""[..],
            b"i",
            b"i-0e",
            b"i03e",
            b"ie",
            b"5:abc",
            b"99999999999999999999999:x",
            b"d1:ae",
            b"di1ei2ee",
            b"x",
            b"le1",
        ] {
            assert!(
                Value::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = "l".repeat(100) + &"e".repeat(100);
        assert_eq!(Value::parse(deep.as_bytes()), Err(BencodeError::TooDeep));
    }
}
