//! Process resource readings from /proc (Linux): resident memory and CPU time.

use std::time::Instant;

#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Sample {
    pub rss_kb: u64,
    /// User + system CPU seconds since the process started.
    pub cpu_s: f64,
}

pub fn sample(pid: u32) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let ticks = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        t if t > 0 => t as f64,
        _ => 100.0,
    };
    Some(Sample { rss_kb, cpu_s: (utime + stime) / ticks })
}

/// Finds a running `consultease serve` other than this process.
pub fn find_server() -> Option<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc").ok()?.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).find(|pid| {
        *pid != me
            && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                args.first().is_some_and(|a| a.ends_with(b"consultease")) && args.iter().any(|a| *a == b"serve")
            })
    })
}

/// CPU utilisation (in cores) between two samples.
pub fn cores(a: Sample, b: Sample, since: Instant, until: Instant) -> f64 {
    let wall = until.duration_since(since).as_secs_f64();
    if wall <= 0.0 { 0.0 } else { (b.cpu_s - a.cpu_s) / wall }
}
