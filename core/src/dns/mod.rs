//! Locating SIP servers in DNS (RFC 3263 with RFC 2782 SRV records), sans-IO: a small DNS
//! message codec, a hosts-table reader and a lookup state machine that a driver feeds with
//! datagrams and time.

pub mod hosts;
pub mod message;
pub mod resolver;

pub use hosts::Hosts;
pub use message::{Message, NameFault, ParseError, RData, Rcode, Record, RecordType, Srv};
pub use resolver::{
    nameservers_from_resolv_conf, retransmit_schedule, DnsError, Lookup, ResolverConfig, Transport,
    DEFAULT_SERVER_TIMEOUT, DNS_PORT, SIP_DEFAULT_PORT,
};
