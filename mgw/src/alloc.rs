//! Allocator tuning for the gateway process.
//!
//! glibc keeps small freed blocks in "fastbins" and consolidates all of them in one call later.
//! When bindings expire by the hundred thousand (after an outage), that one call took 0.57 to
//! 0.74 s inside a single worker turn, whatever the expiry budget; with fastbins off the slowest
//! turn was 0.92 ms (bench/examples/expiry_stall.rs, docs/performance.md).

/// Turns glibc's fastbins off; `true` when applied. A no-op elsewhere (musl, other allocators).
pub fn tune() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is called once at start-up,
        // before the worker threads exist, with a documented parameter and value.
        unsafe { libc::mallopt(libc::M_MXFAST, 0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn fastbins_can_be_turned_off_and_allocation_still_works() {
        assert!(super::tune());
        let v: Vec<Box<[u8; 24]>> = (0..10_000).map(|_| Box::new([7; 24])).collect();
        assert!(v.iter().all(|b| b[23] == 7));
    }
}
