//! CPU time of the server processes, when they run on this machine: read from
//! `/proc/<pid>/stat` (user plus system time of every thread) at the start and the end of the
//! measured window. CPU per item is what a capacity plan divides a peak by; on a shared machine
//! it also moves less from run to run than throughput does.

use std::time::Duration;

use anyhow::Context;

/// CPU time used so far by each of `pids`, summed.
pub fn cpu_time(pids: &[u32]) -> anyhow::Result<Duration> {
    let ticks_per_sec = clock_ticks_per_sec()?;
    let mut ticks = 0u64;
    for pid in pids {
        let path = format!("/proc/{pid}/stat");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("--server-pids: reading {path}"))?;
        ticks += stat_cpu_ticks(&text)
            .with_context(|| format!("--server-pids: no CPU times in {path}"))?;
    }
    Ok(Duration::from_secs_f64(ticks as f64 / ticks_per_sec as f64))
}

/// User plus system time, in clock ticks, from the text of a `/proc/<pid>/stat` file. The
/// command name (field 2) is in parentheses and may itself hold spaces or parentheses, so the
/// fields are counted from the last `)`: utime and stime are fields 14 and 15.
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_sec() -> anyhow::Result<u64> {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    anyhow::ensure!(ticks > 0, "sysconf(_SC_CLK_TCK) failed");
    Ok(ticks as u64)
}

/// CPU microseconds per item over a window; `None` without items.
pub fn us_per_item(used: Duration, items: u64) -> Option<f64> {
    (items > 0).then(|| used.as_secs_f64() * 1e6 / items as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let tail = "S 1 2 3 4 5 6 7 8 9 10 250 40 0 0 20 0 9 0 100 200 300";
        let cases = [
            (format!("42 (licstored) {tail}"), Some(290)),
            (format!("42 (tokio rt) worker) {tail}"), Some(290)),
            ("42 (short) S 1 2".to_string(), None),
            ("no name at all".to_string(), None),
        ];
        for (stat, want) in cases {
            assert_eq!(stat_cpu_ticks(&stat), want, "{stat}");
        }
    }

    #[test]
    fn this_process_uses_some_cpu() {
        let me = std::process::id();
        let mut spin = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(30) {
            spin = spin.wrapping_add(1);
        }
        assert!(spin > 0);
        assert!(cpu_time(&[me]).expect("own stat") > Duration::ZERO);
        assert!(
            cpu_time(&[u32::MAX]).is_err(),
            "a process that does not exist"
        );
    }
}
