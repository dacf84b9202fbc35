//! CPU time of another process (the relay under test) and of the whole machine, from /proc, so
//! the generator can charge a relay exactly the media phase of a run, without the ng set-up
//! and tear-down around it.

use std::fs;

/// CPU time of every thread of `pid`, in ns: the sum of each thread's `schedstat` run time.
/// That is the quantity /proc/PID/stat's utime+stime add up to (the kernel scales those two
/// so their sum matches it) at ns rather than clock-tick resolution. Falls back to
/// utime+stime when schedstat is missing (a kernel without CONFIG_SCHED_INFO).
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    schedstat_ns(pid).or_else(|| stat_ns(pid))
}

fn schedstat_ns(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    let mut any = false;
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(task) = task else { continue };
        // A thread that exited since the listing simply no longer counts.
        let Ok(text) = fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        if let Some(ns) = text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        {
            total += ns;
            any = true;
        }
    }
    any.then_some(total)
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as u64
    } else {
        100
    }
}

fn stat_ns(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 1_000_000_000 / clock_ticks())
}

/// The fields of one /proc/stat cpu line (`cpu` for all, `cpuN` for one): user nice system
/// idle iowait irq softirq ..., in clock ticks.
fn cpu_line(name: &str) -> Option<Vec<u64>> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))?;
    Some(
        line.split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect(),
    )
}

fn ticks_ns(ticks: u64) -> u64 {
    ticks * 1_000_000_000 / clock_ticks()
}

/// CPU time all processors spent busy (user, nice, system, irq, softirq) since boot, in ns.
pub fn machine_busy_ns() -> Option<u64> {
    let v = cpu_line("cpu")?;
    Some(ticks_ns(
        v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)?,
    ))
}

/// Interrupt and softirq time of all processors since boot, in ns.
pub fn machine_irq_ns() -> Option<u64> {
    let v = cpu_line("cpu")?;
    Some(ticks_ns(v.get(5)? + v.get(6)?))
}

/// Steal time of all processors since boot, in ns.
pub fn machine_steal_ns() -> Option<u64> {
    Some(ticks_ns(*cpu_line("cpu")?.get(7)?))
}

/// Interrupt and softirq time of processor `cpu` since boot, in ns.
pub fn cpu_irq_ns(cpu: usize) -> Option<u64> {
    let v = cpu_line(&format!("cpu{cpu}"))?;
    Some(ticks_ns(v.get(5)? + v.get(6)?))
}

/// The processor `pid` is pinned to, if it may run on exactly one.
pub fn single_cpu_of(pid: u32) -> Option<usize> {
    // SAFETY: all-zero bytes are an empty cpu_set_t.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is writable and its size is passed alongside.
    let rc = unsafe {
        libc::sched_getaffinity(
            pid as libc::pid_t,
            std::mem::size_of::<libc::cpu_set_t>(),
            &mut set,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: CPU_ISSET only reads the set, for indices below its capacity.
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect();
    match cpus.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_cpu() {
        let pid = std::process::id();
        let start = process_cpu_ns(pid).expect("cpu");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(process_cpu_ns(pid).expect("cpu") > start);
        assert!(stat_ns(pid).is_some());
        assert!(machine_busy_ns().expect("busy") > 0);
        assert!(machine_irq_ns().is_some() && cpu_irq_ns(0).is_some());
        assert!(machine_steal_ns().is_some());
        // The test runner is not pinned unless someone ran it under taskset.
        let _ = single_cpu_of(pid);
    }
}
