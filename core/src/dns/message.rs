//! DNS messages (RFC 1035 section 4): what a stub resolver needs to ask for SRV, A and AAAA
//! records and to read the answers, and enough of an encoder for test responders.
//!
//! Names are presented as lowercase dotted text without the trailing dot, the root as `"."`.
//! Lowercasing on input is safe because DNS compares names case-insensitively (RFC 4343), and
//! it lets the resolver compare names with `==`. Label bytes that are not printable ASCII, and
//! `.` or `\` inside a label, are shown as `\DDD` as in zone files, and the encoder reads such
//! escapes back (the fuzz target `client_input` checks the round trip).
//!
//! The encoder never compresses names: a query has one name, and the responses it writes are
//! for tests. The parser accepts compression, but only pointers to bytes before the place the
//! current run of labels started: that is what every real encoder produces (RFC 1035 4.1.4
//! says "a prior occurrence"), and it is what makes a loop of pointers impossible.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The Internet class, the only one a SIP resolver asks about.
pub const CLASS_IN: u16 = 1;

const HEADER_LEN: usize = 12;
/// Fixed part of a resource record after its name: type, class, TTL, RDLENGTH.
const RR_FIXED_LEN: usize = 10;
/// RFC 1035 2.3.4, counted on the wire (length bytes included).
const MAX_NAME_WIRE: usize = 255;
const MAX_LABEL: usize = 63;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    A,
    Aaaa,
    Cname,
    Srv,
    Other(u16),
}

impl RecordType {
    pub fn code(self) -> u16 {
        match self {
            RecordType::A => 1,
            RecordType::Cname => 5,
            RecordType::Aaaa => 28,
            RecordType::Srv => 33,
            RecordType::Other(c) => c,
        }
    }

    pub fn from_code(code: u16) -> RecordType {
        match code {
            1 => RecordType::A,
            5 => RecordType::Cname,
            28 => RecordType::Aaaa,
            33 => RecordType::Srv,
            c => RecordType::Other(c),
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordType::A => f.write_str("A"),
            RecordType::Aaaa => f.write_str("AAAA"),
            RecordType::Cname => f.write_str("CNAME"),
            RecordType::Srv => f.write_str("SRV"),
            RecordType::Other(c) => write!(f, "TYPE{c}"),
        }
    }
}

/// Response code (RFC 1035 4.1.1; the names are the conventional mnemonics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Rcode {
    #[default]
    NoError,
    FormatError,
    ServerFailure,
    /// NXDOMAIN: the name does not exist, for any type.
    NameError,
    NotImplemented,
    Refused,
    Other(u8),
}

impl Rcode {
    pub fn code(self) -> u8 {
        match self {
            Rcode::NoError => 0,
            Rcode::FormatError => 1,
            Rcode::ServerFailure => 2,
            Rcode::NameError => 3,
            Rcode::NotImplemented => 4,
            Rcode::Refused => 5,
            Rcode::Other(c) => c & 0x0f,
        }
    }

    pub fn from_code(code: u8) -> Rcode {
        match code & 0x0f {
            0 => Rcode::NoError,
            1 => Rcode::FormatError,
            2 => Rcode::ServerFailure,
            3 => Rcode::NameError,
            4 => Rcode::NotImplemented,
            5 => Rcode::Refused,
            c => Rcode::Other(c),
        }
    }
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rcode::NoError => f.write_str("NOERROR"),
            Rcode::FormatError => f.write_str("FORMERR"),
            Rcode::ServerFailure => f.write_str("SERVFAIL"),
            Rcode::NameError => f.write_str("NXDOMAIN"),
            Rcode::NotImplemented => f.write_str("NOTIMP"),
            Rcode::Refused => f.write_str("REFUSED"),
            Rcode::Other(c) => write!(f, "RCODE{c}"),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    /// QR: set in responses.
    pub response: bool,
    pub opcode: u8,
    pub authoritative: bool,
    /// TC: the server cut the answer to fit a UDP datagram. The full answer needs TCP, which
    /// this resolver does not speak: SRV and address answers for SIP fit easily in 512 bytes.
    pub truncated: bool,
    pub recursion_desired: bool,
    pub recursion_available: bool,
    pub rcode: Rcode,
}

impl Header {
    fn flags(&self) -> u16 {
        (u16::from(self.response) << 15)
            | (u16::from(self.opcode & 0x0f) << 11)
            | (u16::from(self.authoritative) << 10)
            | (u16::from(self.truncated) << 9)
            | (u16::from(self.recursion_desired) << 8)
            | (u16::from(self.recursion_available) << 7)
            | u16::from(self.rcode.code())
    }

    fn from_wire(id: u16, flags: u16) -> Header {
        Header {
            id,
            response: flags & 0x8000 != 0,
            // The mask keeps the value in four bits, so the cast is lossless.
            opcode: ((flags >> 11) & 0x0f) as u8,
            authoritative: flags & 0x0400 != 0,
            truncated: flags & 0x0200 != 0,
            recursion_desired: flags & 0x0100 != 0,
            recursion_available: flags & 0x0080 != 0,
            rcode: Rcode::from_code((flags & 0x0f) as u8),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    pub name: String,
    pub qtype: RecordType,
    pub qclass: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// `"."` means the service is decidedly not offered at this name (RFC 2782).
    pub target: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    Srv(Srv),
    /// Kept as raw bytes. Names inside may be compressed against the message they came from,
    /// so these bytes are only meaningful there.
    Other {
        rtype: u16,
        data: Vec<u8>,
    },
}

impl RData {
    pub fn rtype(&self) -> RecordType {
        match self {
            RData::A(_) => RecordType::A,
            RData::Aaaa(_) => RecordType::Aaaa,
            RData::Cname(_) => RecordType::Cname,
            RData::Srv(_) => RecordType::Srv,
            RData::Other { rtype, .. } => RecordType::from_code(*rtype),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub class: u16,
    pub ttl: u32,
    pub data: RData,
}

impl Record {
    /// An IN-class record, the only kind a SIP resolver deals in.
    pub fn new(name: &str, ttl: u32, data: RData) -> Record {
        Record {
            name: name.to_string(),
            class: CLASS_IN,
            ttl,
            data,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub questions: Vec<Question>,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
}

/// What is wrong with a name given to the encoder or the resolver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameFault {
    Empty,
    /// Two dots in a row, or a leading dot.
    EmptyLabel,
    LabelTooLong,
    TooLong,
    /// Host names are letters, digits, `-` (RFC 1123 2.1) and, for SRV owner names, `_`.
    BadCharacter(char),
    /// Written in `[ ]` but not an IPv6 address.
    BadIpv6Literal,
}

impl fmt::Display for NameFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameFault::Empty => f.write_str("it is empty"),
            NameFault::EmptyLabel => f.write_str("it has an empty label (two dots in a row?)"),
            NameFault::LabelTooLong => f.write_str("a label is longer than 63 characters"),
            NameFault::TooLong => f.write_str("it is longer than 253 characters"),
            NameFault::BadCharacter(c) => write!(
                f,
                "it contains {c:?}; a host name has only letters, digits, '-' and '.'"
            ),
            NameFault::BadIpv6Literal => f.write_str("it is in [ ] but not an IPv6 address"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    BadName {
        name: String,
        fault: NameFault,
    },
    RdataTooLong {
        len: usize,
    },
    /// A section holds more than the 65535 records its count field can say.
    TooManyRecords,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BadName { name, fault } => {
                write!(f, "cannot encode the DNS name {name:?}: {fault}")
            }
            EncodeError::RdataTooLong { len } => {
                write!(f, "record data of {len} bytes does not fit a DNS record")
            }
            EncodeError::TooManyRecords => {
                f.write_str("more than 65535 records in one DNS message section")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

/// Why a datagram is not a DNS message this parser can read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The message ends before the part named in `what` does.
    UnexpectedEnd {
        what: &'static str,
    },
    /// A compression pointer that does not point before the labels that lead to it; following
    /// it could loop forever.
    PointerLoop {
        at: usize,
    },
    /// Label types 0x40 and 0x80 are reserved (RFC 6891 retired the only use of them).
    BadLabelType {
        at: usize,
        byte: u8,
    },
    NameTooLong {
        at: usize,
    },
    /// An A or AAAA record with other than 4 or 16 bytes, or an SRV record too short for its
    /// fixed fields.
    BadRdataLength {
        rtype: RecordType,
        len: u16,
    },
    /// The name inside a CNAME or SRV record does not end where the record's length says.
    RdataMismatch {
        rtype: RecordType,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::UnexpectedEnd { what } => write!(f, "message ends inside a {what}"),
            ParseError::PointerLoop { at } => write!(
                f,
                "name compression pointer at byte {at} does not point backwards (a loop)"
            ),
            ParseError::BadLabelType { at, byte } => {
                write!(f, "label at byte {at} has the reserved type {byte:#04x}")
            }
            ParseError::NameTooLong { at } => {
                write!(f, "name at byte {at} is longer than 255 bytes")
            }
            ParseError::BadRdataLength { rtype, len } => {
                write!(f, "{rtype} record with {len} bytes of data")
            }
            ParseError::RdataMismatch { rtype } => {
                write!(f, "{rtype} record whose name does not end with its data")
            }
        }
    }
}

impl std::error::Error for ParseError {}

impl Message {
    /// A standard query with recursion desired, as a stub resolver sends.
    pub fn query(id: u16, name: &str, qtype: RecordType) -> Message {
        Message {
            header: Header {
                id,
                recursion_desired: true,
                ..Header::default()
            },
            questions: vec![Question {
                name: name.to_string(),
                qtype,
                qclass: CLASS_IN,
            }],
            ..Message::default()
        }
    }

    /// An empty response to `query` with `rcode`, for responders to fill in.
    pub fn response_to(query: &Message, rcode: Rcode) -> Message {
        Message {
            header: Header {
                id: query.header.id,
                response: true,
                opcode: query.header.opcode,
                recursion_desired: query.header.recursion_desired,
                recursion_available: true,
                rcode,
                ..Header::default()
            },
            questions: query.questions.clone(),
            ..Message::default()
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(&self.header.id.to_be_bytes());
        out.extend_from_slice(&self.header.flags().to_be_bytes());
        for count in [
            self.questions.len(),
            self.answers.len(),
            self.authority.len(),
            self.additional.len(),
        ] {
            let count = u16::try_from(count).map_err(|_| EncodeError::TooManyRecords)?;
            out.extend_from_slice(&count.to_be_bytes());
        }
        for q in &self.questions {
            write_name(&mut out, &q.name)?;
            out.extend_from_slice(&q.qtype.code().to_be_bytes());
            out.extend_from_slice(&q.qclass.to_be_bytes());
        }
        for r in self
            .answers
            .iter()
            .chain(&self.authority)
            .chain(&self.additional)
        {
            write_record(&mut out, r)?;
        }
        Ok(out)
    }

    /// Reads a whole message. With the TC bit set, sections that end early are kept as far as
    /// they got instead of refused: the records before the cut are whole and still true.
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        let head = bytes
            .get(..HEADER_LEN)
            .ok_or(ParseError::UnexpectedEnd { what: "header" })?;
        let word = |i: usize| u16::from_be_bytes([head[i], head[i + 1]]);
        let header = Header::from_wire(word(0), word(2));
        let counts = [word(4), word(6), word(8), word(10)];
        let mut msg = Message {
            header,
            ..Message::default()
        };
        let mut pos = HEADER_LEN;
        let mut cut = false;
        for _ in 0..counts[0] {
            match read_question(bytes, pos) {
                Ok((q, next)) => {
                    msg.questions.push(q);
                    pos = next;
                }
                Err(ParseError::UnexpectedEnd { .. }) if header.truncated => {
                    cut = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        let sections = [
            (counts[1], &mut msg.answers),
            (counts[2], &mut msg.authority),
            (counts[3], &mut msg.additional),
        ];
        for (count, section) in sections {
            for _ in 0..count {
                if cut {
                    break;
                }
                match read_record(bytes, pos) {
                    Ok((r, next)) => {
                        section.push(r);
                        pos = next;
                    }
                    Err(ParseError::UnexpectedEnd { .. }) if header.truncated => cut = true,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(msg)
    }
}

/// The wire form of a standard query for `name`.
pub fn build_query(id: u16, name: &str, qtype: RecordType) -> Result<Vec<u8>, EncodeError> {
    Message::query(id, name, qtype).encode()
}

/// Checks the label structure of `name` the way the encoder will need it; characters are not
/// looked at.
pub fn check_name_structure(name: &str) -> Result<(), NameFault> {
    wire_labels(name).map(|_| ())
}

/// The labels of a name in presentation form, as wire bytes: `\DDD` and `\X` escapes (the
/// parser writes the first for odd bytes) are read back, so a parsed name encodes to the
/// bytes it came from.
fn wire_labels(name: &str) -> Result<Vec<Vec<u8>>, NameFault> {
    let trimmed = if name.ends_with('.') && !name.ends_with("\\.") {
        &name[..name.len() - 1]
    } else {
        name
    };
    let mut labels = Vec::new();
    if trimmed.is_empty() {
        return Ok(labels);
    }
    let b = trimmed.as_bytes();
    let mut label = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                if label.is_empty() {
                    return Err(NameFault::EmptyLabel);
                }
                labels.push(std::mem::take(&mut label));
                i += 1;
            }
            b'\\' => {
                let digits = b
                    .get(i + 1..i + 4)
                    .filter(|d| d.iter().all(u8::is_ascii_digit));
                match digits {
                    Some(d) => {
                        let v = d.iter().fold(0u32, |v, c| v * 10 + u32::from(c - b'0'));
                        let byte = u8::try_from(v).map_err(|_| NameFault::BadCharacter('\\'))?;
                        label.push(byte);
                        i += 4;
                    }
                    None => {
                        let next = *b.get(i + 1).ok_or(NameFault::BadCharacter('\\'))?;
                        label.push(next);
                        i += 2;
                    }
                }
            }
            c => {
                label.push(c);
                i += 1;
            }
        }
        if label.len() > MAX_LABEL {
            return Err(NameFault::LabelTooLong);
        }
    }
    if label.is_empty() {
        return Err(NameFault::EmptyLabel);
    }
    labels.push(label);
    let wire = 1 + labels.iter().map(|l| 1 + l.len()).sum::<usize>();
    if wire > MAX_NAME_WIRE {
        return Err(NameFault::TooLong);
    }
    Ok(labels)
}

fn write_name(out: &mut Vec<u8>, name: &str) -> Result<(), EncodeError> {
    let labels = wire_labels(name).map_err(|fault| EncodeError::BadName {
        name: name.to_string(),
        fault,
    })?;
    for label in labels {
        // wire_labels bounded every label to 63 bytes.
        out.push(label.len() as u8);
        out.extend_from_slice(&label);
    }
    out.push(0);
    Ok(())
}

fn write_record(out: &mut Vec<u8>, r: &Record) -> Result<(), EncodeError> {
    write_name(out, &r.name)?;
    out.extend_from_slice(&r.data.rtype().code().to_be_bytes());
    out.extend_from_slice(&r.class.to_be_bytes());
    out.extend_from_slice(&r.ttl.to_be_bytes());
    let len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    match &r.data {
        RData::A(ip) => out.extend_from_slice(&ip.octets()),
        RData::Aaaa(ip) => out.extend_from_slice(&ip.octets()),
        RData::Cname(name) => write_name(out, name)?,
        RData::Srv(srv) => {
            out.extend_from_slice(&srv.priority.to_be_bytes());
            out.extend_from_slice(&srv.weight.to_be_bytes());
            out.extend_from_slice(&srv.port.to_be_bytes());
            write_name(out, &srv.target)?;
        }
        RData::Other { data, .. } => out.extend_from_slice(data),
    }
    let len = out.len() - len_at - 2;
    let len16 = u16::try_from(len).map_err(|_| EncodeError::RdataTooLong { len })?;
    out[len_at..len_at + 2].copy_from_slice(&len16.to_be_bytes());
    Ok(())
}

fn u16_at(msg: &[u8], at: usize, what: &'static str) -> Result<u16, ParseError> {
    match msg.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(ParseError::UnexpectedEnd { what }),
    }
}

fn read_question(msg: &[u8], pos: usize) -> Result<(Question, usize), ParseError> {
    let (name, pos) = read_name(msg, pos)?;
    let qtype = u16_at(msg, pos, "question")?;
    let qclass = u16_at(msg, pos + 2, "question")?;
    Ok((
        Question {
            name,
            qtype: RecordType::from_code(qtype),
            qclass,
        },
        pos + 4,
    ))
}

fn read_record(msg: &[u8], pos: usize) -> Result<(Record, usize), ParseError> {
    let (name, pos) = read_name(msg, pos)?;
    let fixed = msg
        .get(pos..pos + RR_FIXED_LEN)
        .ok_or(ParseError::UnexpectedEnd { what: "record" })?;
    let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let class = u16::from_be_bytes([fixed[2], fixed[3]]);
    let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]);
    let start = pos + RR_FIXED_LEN;
    let end = start + usize::from(rdlen);
    let rdata = msg
        .get(start..end)
        .ok_or(ParseError::UnexpectedEnd { what: "record" })?;
    let kind = RecordType::from_code(rtype);
    let bad_len = ParseError::BadRdataLength {
        rtype: kind,
        len: rdlen,
    };
    let data = match kind {
        RecordType::A => {
            let o: [u8; 4] = rdata.try_into().map_err(|_| bad_len)?;
            RData::A(Ipv4Addr::from(o))
        }
        RecordType::Aaaa => {
            let o: [u8; 16] = rdata.try_into().map_err(|_| bad_len)?;
            RData::Aaaa(Ipv6Addr::from(o))
        }
        RecordType::Cname => {
            let (target, name_end) = read_name(msg, start)?;
            if name_end != end {
                return Err(ParseError::RdataMismatch { rtype: kind });
            }
            RData::Cname(target)
        }
        RecordType::Srv => {
            if rdata.len() < 7 {
                return Err(bad_len);
            }
            let (target, name_end) = read_name(msg, start + 6)?;
            if name_end != end {
                return Err(ParseError::RdataMismatch { rtype: kind });
            }
            RData::Srv(Srv {
                priority: u16::from_be_bytes([rdata[0], rdata[1]]),
                weight: u16::from_be_bytes([rdata[2], rdata[3]]),
                port: u16::from_be_bytes([rdata[4], rdata[5]]),
                target,
            })
        }
        RecordType::Other(_) => RData::Other {
            rtype,
            data: rdata.to_vec(),
        },
    };
    Ok((
        Record {
            name,
            class,
            ttl,
            data,
        },
        end,
    ))
}

/// Reads the name at `start`; returns it and the offset just after it where it began (after
/// the first pointer, if there is one).
fn read_name(msg: &[u8], start: usize) -> Result<(String, usize), ParseError> {
    let mut out = String::new();
    let mut pos = start;
    // Where the current run of labels began; a pointer must lead strictly before it. Every
    // pointer followed thus moves this mark down, so the walk ends.
    let mut run_start = start;
    let mut resume: Option<usize> = None;
    let mut wire_len = 0usize;
    loop {
        let len = *msg
            .get(pos)
            .ok_or(ParseError::UnexpectedEnd { what: "name" })?;
        match len & 0xc0 {
            0x00 => {
                let len = usize::from(len);
                wire_len += 1 + len;
                if wire_len > MAX_NAME_WIRE {
                    return Err(ParseError::NameTooLong { at: start });
                }
                if len == 0 {
                    if out.is_empty() {
                        out.push('.');
                    }
                    return Ok((out, resume.unwrap_or(pos + 1)));
                }
                let label = msg
                    .get(pos + 1..pos + 1 + len)
                    .ok_or(ParseError::UnexpectedEnd { what: "name" })?;
                if !out.is_empty() {
                    out.push('.');
                }
                push_label(&mut out, label);
                pos += 1 + len;
            }
            0xc0 => {
                let low = *msg
                    .get(pos + 1)
                    .ok_or(ParseError::UnexpectedEnd { what: "name" })?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(low);
                if target >= run_start {
                    return Err(ParseError::PointerLoop { at: pos });
                }
                resume.get_or_insert(pos + 2);
                pos = target;
                run_start = target;
            }
            _ => return Err(ParseError::BadLabelType { at: pos, byte: len }),
        }
    }
}

fn push_label(out: &mut String, label: &[u8]) {
    for &b in label {
        match b {
            b'.' | b'\\' => push_escaped(out, b),
            0x21..=0x7e => out.push(char::from(b.to_ascii_lowercase())),
            _ => push_escaped(out, b),
        }
    }
}

fn push_escaped(out: &mut String, b: u8) {
    use fmt::Write;
    // Writing to a String cannot fail.
    let _ = write!(out, "\\{b:03}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(&flags.to_be_bytes());
        for c in counts {
            v.extend_from_slice(&c.to_be_bytes());
        }
        v
    }

    #[test]
    fn query_wire_form() {
        let q = build_query(0x1234, "_sip._udp.example.com", RecordType::Srv).unwrap();
        let mut want = header(0x1234, 0x0100, [1, 0, 0, 0]);
        want.extend_from_slice(b"\x04_sip\x04_udp\x07example\x03com\x00\x00\x21\x00\x01");
        assert_eq!(q, want);
    }

    #[test]
    fn trailing_dot_and_root() {
        assert_eq!(
            build_query(1, "a.b.", RecordType::A).unwrap(),
            build_query(1, "a.b", RecordType::A).unwrap()
        );
        let root = build_query(1, ".", RecordType::A).unwrap();
        assert_eq!(&root[12..], b"\x00\x00\x01\x00\x01");
        assert_eq!(Message::parse(&root).unwrap().questions[0].name, ".");
    }

    #[test]
    fn bad_names_are_refused() {
        let fault = |n: &str| match build_query(1, n, RecordType::A) {
            Err(EncodeError::BadName { fault, .. }) => fault,
            other => panic!("{n}: {other:?}"),
        };
        assert_eq!(fault("a..b"), NameFault::EmptyLabel);
        assert_eq!(fault(".a"), NameFault::EmptyLabel);
        assert_eq!(fault(&"x".repeat(64)), NameFault::LabelTooLong);
        let long = vec!["abcdefghi"; 26].join(".");
        assert_eq!(fault(&long), NameFault::TooLong);
    }

    /// A response with compressed names in the answer and inside SRV data.
    fn compressed_srv_response() -> Vec<u8> {
        let mut m = header(7, 0x8180, [1, 1, 0, 1]);
        // 12: question name
        m.extend_from_slice(b"\x04_sip\x04_udp\x07Example\x03com\x00\x00\x21\x00\x01");
        // answer: pointer to 12
        m.extend_from_slice(b"\xc0\x0c\x00\x21\x00\x01\x00\x00\x0e\x10");
        // rdata: prio 10, weight 60, port 5070, target "sip1" + pointer to "example.com" (22)
        m.extend_from_slice(b"\x00\x0d\x00\x0a\x00\x3c\x13\xce\x04sip1\xc0\x16");
        // additional: sip1.example.com A, name by pointer to the SRV target's labels
        let target_at = (m.len() - 7) as u8;
        m.extend_from_slice(&[0xc0, target_at]);
        m.extend_from_slice(b"\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x01");
        m
    }

    #[test]
    fn parses_compressed_srv() {
        let m = Message::parse(&compressed_srv_response()).unwrap();
        assert!(m.header.response);
        assert_eq!(m.header.rcode, Rcode::NoError);
        assert_eq!(m.questions[0].name, "_sip._udp.example.com");
        assert_eq!(m.answers[0].name, "_sip._udp.example.com");
        assert_eq!(
            m.answers[0].data,
            RData::Srv(Srv {
                priority: 10,
                weight: 60,
                port: 5070,
                target: "sip1.example.com".into()
            })
        );
        assert_eq!(m.additional[0].name, "sip1.example.com");
        assert_eq!(m.additional[0].data, RData::A(Ipv4Addr::new(192, 0, 2, 1)));
    }

    #[test]
    fn pointer_to_itself_is_a_loop() {
        let mut m = header(1, 0x8180, [1, 0, 0, 0]);
        m.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01");
        assert_eq!(Message::parse(&m), Err(ParseError::PointerLoop { at: 12 }));
    }

    #[test]
    fn pointer_back_into_its_own_name_is_a_loop() {
        // "a" then a pointer back to "a": strictly backwards, yet a cycle.
        let mut m = header(1, 0x8180, [1, 0, 0, 0]);
        m.extend_from_slice(b"\x01a\xc0\x0c\x00\x01\x00\x01");
        assert_eq!(Message::parse(&m), Err(ParseError::PointerLoop { at: 14 }));
    }

    #[test]
    fn two_pointers_chasing_each_other_are_a_loop() {
        let mut m = header(1, 0x8180, [1, 1, 0, 0]);
        // 12: "a" -> pointer to 19 (forward)
        m.extend_from_slice(b"\x01a\xc0\x13\x00\x01\x00\x01");
        // 19: "b" -> pointer to 12
        m.extend_from_slice(
            b"\x01b\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x00\x00\x04\x01\x02\x03\x04",
        );
        assert!(matches!(
            Message::parse(&m),
            Err(ParseError::PointerLoop { .. })
        ));
    }

    #[test]
    fn reserved_label_types_are_refused() {
        let mut m = header(1, 0x8180, [1, 0, 0, 0]);
        m.extend_from_slice(b"\x41a\x00\x00\x01\x00\x01");
        assert_eq!(
            Message::parse(&m),
            Err(ParseError::BadLabelType { at: 12, byte: 0x41 })
        );
    }

    #[test]
    fn overlong_name_is_refused() {
        let mut m = header(1, 0x8180, [1, 0, 0, 0]);
        for _ in 0..5 {
            m.push(63);
            m.extend_from_slice(&[b'x'; 63]);
        }
        m.extend_from_slice(b"\x00\x00\x01\x00\x01");
        assert_eq!(Message::parse(&m), Err(ParseError::NameTooLong { at: 12 }));
    }

    #[test]
    fn a_record_of_wrong_length_is_refused() {
        let mut m = header(1, 0x8180, [0, 1, 0, 0]);
        m.extend_from_slice(b"\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00\x03\x01\x02\x03");
        assert_eq!(
            Message::parse(&m),
            Err(ParseError::BadRdataLength {
                rtype: RecordType::A,
                len: 3
            })
        );
    }

    #[test]
    fn srv_target_running_past_its_data_is_refused() {
        let mut m = header(1, 0x8180, [0, 1, 0, 0]);
        // rdlength 8 but the target "ab" needs 4 bytes after the 6 fixed ones.
        m.extend_from_slice(b"\x00\x00\x21\x00\x01\x00\x00\x00\x00\x00\x08");
        m.extend_from_slice(b"\x00\x01\x00\x01\x13\xc4\x02ab\x00");
        assert!(matches!(
            Message::parse(&m),
            Err(ParseError::UnexpectedEnd { .. }) | Err(ParseError::RdataMismatch { .. })
        ));
    }

    #[test]
    fn truncated_answer_keeps_whole_records_when_tc_is_set() {
        let full = compressed_srv_response();
        let mut cut = full[..full.len() - 3].to_vec();
        assert!(Message::parse(&cut).is_err());
        cut[2] |= 0x02; // TC
        let m = Message::parse(&cut).unwrap();
        assert!(m.header.truncated);
        assert_eq!(m.answers.len(), 1);
        assert!(m.additional.is_empty());
    }

    #[test]
    fn odd_bytes_in_labels_are_escaped_and_names_lowercased() {
        let mut m = header(1, 0x8180, [1, 0, 0, 0]);
        m.extend_from_slice(b"\x04A.\x00z\x00\x00\x01\x00\x01");
        let msg = Message::parse(&m).unwrap();
        assert_eq!(msg.questions[0].name, "a\\046\\000z");
    }

    #[test]
    fn rcodes_and_flags_survive_encoding() {
        let q = Message::query(9, "example.com", RecordType::Aaaa);
        for rcode in [
            Rcode::NoError,
            Rcode::ServerFailure,
            Rcode::NameError,
            Rcode::Refused,
            Rcode::Other(9),
        ] {
            let mut r = Message::response_to(&q, rcode);
            r.header.truncated = true;
            r.answers.push(Record::new(
                "example.com",
                60,
                RData::Aaaa("2001:db8::1".parse().unwrap()),
            ));
            r.authority.push(Record::new(
                "example.com",
                60,
                RData::Other {
                    rtype: 99,
                    data: vec![1, 2, 3],
                },
            ));
            r.additional.push(Record::new(
                "www.example.com",
                60,
                RData::Cname("example.com".into()),
            ));
            let back = Message::parse(&r.encode().unwrap()).unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn escaped_names_encode_to_the_bytes_they_came_from() {
        // Found by the client_input fuzz target: a label of odd bytes parsed to `\DDD` text
        // and was encoded with the backslashes themselves.
        let mut out = Vec::new();
        write_name(&mut out, "\\001\\010\\010.a\\.b").expect("valid");
        assert_eq!(out, [3, 1, 10, 10, 3, b'a', b'.', b'b', 0]);
        let mut text = String::new();
        push_label(&mut text, &[1, 10, 10]);
        assert_eq!(text, "\\001\\010\\010");
        assert!(write_name(&mut out, "\\999").is_err());
        assert!(write_name(&mut out, "a\\").is_err());
    }
}
