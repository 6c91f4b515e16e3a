//! CPU time and resident memory of a process, read from Linux's `/proc`.

use std::time::{Duration, Instant};

use anyhow::Context;

/// What a process had used at one moment.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// Time on a CPU, summed over its threads.
    pub cpu: Duration,
    /// Resident set size.
    pub rss_bytes: u64,
    /// When the sample was taken.
    pub at: Instant,
}

impl ProcSample {
    /// Reads the process's CPU time (per-thread `schedstat`, in nanoseconds; `stat` ticks where
    /// schedstat is missing) and `VmRSS`.
    pub fn read(pid: u32) -> anyhow::Result<ProcSample> {
        let at = Instant::now();
        let cpu = match schedstat_cpu(pid) {
            Some(cpu) => cpu,
            None => stat_cpu(pid)?,
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("cannot read /proc/{pid}/status"))?;
        let rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .with_context(|| format!("no VmRSS in /proc/{pid}/status"))?;
        Ok(ProcSample {
            cpu,
            rss_bytes: rss_kb * 1024,
            at,
        })
    }

    /// CPU used between `earlier` and this sample, as a percentage of one core.
    pub fn cpu_percent_since(&self, earlier: &ProcSample) -> f64 {
        let wall = self.at.duration_since(earlier.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        self.cpu.saturating_sub(earlier.cpu).as_secs_f64() / wall * 100.0
    }
}

fn schedstat_cpu(pid: u32) -> Option<Duration> {
    let mut total_ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread that ended between the listing and the read counts nothing.
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        total_ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total_ns))
}

fn stat_cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces and parentheses).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .context("unexpected /proc/PID/stat")
    };
    // utime and stime are fields 14 and 15 of the line, 11 and 12 after the name.
    let total = ticks(11)? + ticks(12)?;
    // Linux reports these in USER_HZ, which is 100 on every mainstream architecture.
    Ok(Duration::from_millis(total * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_sees_cpu_spent() {
        let pid = std::process::id();
        let before = ProcSample::read(pid).expect("sample");
        assert!(before.rss_bytes > 0);
        // Spin until the process's CPU time, as read, has grown by 100 ms. On a loaded machine
        // that takes longer than 100 ms of wall time, so the bound is generous: it checks the
        // reading follows the spending, not how fast the machine is.
        let start = Instant::now();
        let mut x = 0u64;
        let after = loop {
            let spin = Instant::now();
            while spin.elapsed() < Duration::from_millis(50) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            let now = ProcSample::read(pid).expect("sample");
            if now.cpu.saturating_sub(before.cpu) >= Duration::from_millis(100) {
                break now;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "30 s of spinning and the CPU time read grew by {:?}",
                now.cpu.saturating_sub(before.cpu)
            );
        };
        assert!(after.cpu_percent_since(&before) > 0.0);
        assert!(stat_cpu(pid).expect("stat") > Duration::ZERO);
    }
}
