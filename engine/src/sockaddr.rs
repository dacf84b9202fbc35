//! Raw `sockaddr` bytes (as the kernel writes them into receive buffers) to `SocketAddr`,
//! without allocating.

use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Decodes a `sockaddr_in` / `sockaddr_in6`; anything else (or too short) is `None`.
pub(crate) fn from_raw(bytes: &[u8]) -> Option<SocketAddr> {
    if bytes.len() < size_of::<libc::sa_family_t>() {
        return None;
    }
    let family = libc::sa_family_t::from_ne_bytes([bytes[0], bytes[1]]);
    match i32::from(family) {
        libc::AF_INET if bytes.len() >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the length was checked; read_unaligned copes with any alignment of the
            // receive buffer, and every bit pattern is a valid sockaddr_in.
            let sin = unsafe { bytes.as_ptr().cast::<libc::sockaddr_in>().read_unaligned() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if bytes.len() >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { bytes.as_ptr().cast::<libc::sockaddr_in6>().read_unaligned() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Room the kernel needs for the address of any datagram we receive (v4 or v6).
pub(crate) const NAME_LEN: usize = size_of::<libc::sockaddr_in6>();

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::SockAddr;

    #[test]
    fn decodes_v4_and_v6() {
        for a in ["127.0.0.1:5060", "[::1]:5061", "[fe80::1%2]:7"] {
            let a: SocketAddr = a.parse().expect("addr");
            let raw = SockAddr::from(a);
            // SAFETY: as_ptr points to `len` initialised bytes of the SockAddr.
            let bytes = unsafe {
                std::slice::from_raw_parts(raw.as_ptr().cast::<u8>(), raw.len() as usize)
            };
            assert_eq!(from_raw(bytes), Some(a));
        }
        assert_eq!(from_raw(&[0u8; 3]), None);
    }
}
