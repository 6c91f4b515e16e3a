//! Choosing failoverTimeout: what a short one costs against what it gains, measured.
//!
//! For each candidate failoverTimeout a Hot pair runs on loopback under link jitter (each
//! adapter's link to the failover service delayed by a random 0 to `jitter`, drawn again every
//! 100 ms, both ways) and CPU load (busy threads beside it). Over a window the promotions
//! nobody caused are counted: false failovers. Then the Primary is SIGKILLed, under the same
//! jitter and load, and the takeover is timed (the kill to the first point the endpoint
//! accepted from the new Primary). False failovers per hour are extrapolated from a window of
//! seconds, and the report says so: a count of 0 means fewer than about one per window.

use std::{
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use failover_core::{Mode, timespan::format_timespan};
use failover_proto::process;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::Progress;
use crate::{
    cluster::{ARBITER, Cluster, ClusterSpec},
    observe::Observer,
};

/// How the trade-off is measured.
#[derive(Debug, Clone)]
pub struct TimeoutOptions {
    /// The failoverTimeouts to try.
    pub timeouts: Vec<Duration>,
    /// How long each pair runs before the kill, counting false failovers.
    pub window: Duration,
    /// Most delay added to a link to the failover service.
    pub jitter: Duration,
    /// Busy threads beside the pair.
    pub load_threads: usize,
    /// Seed of the jitter.
    pub seed: u64,
}

impl Default for TimeoutOptions {
    fn default() -> Self {
        TimeoutOptions {
            timeouts: [200, 500, 1000, 2000, 4000]
                .map(Duration::from_millis)
                .to_vec(),
            window: Duration::from_secs(20),
            jitter: Duration::from_millis(100),
            load_threads: std::thread::available_parallelism()
                .map_or(1, std::num::NonZeroUsize::get),
            seed: 1,
        }
    }
}

/// One failoverTimeout, measured.
#[derive(Debug, Clone, Serialize)]
pub struct TimeoutPoint {
    /// The failoverTimeout.
    pub failover_timeout_ms: u64,
    /// How long false failovers were counted.
    pub window_s: f64,
    /// Promotions nobody caused in the window.
    pub false_failovers: u64,
    /// The same per hour, extrapolated from the window.
    pub false_failovers_per_hour: f64,
    /// The kill to the first point accepted from the new Primary (None: no takeover).
    pub takeover_ms: Option<f64>,
    /// Why it was not measured, if it was not.
    pub error: Option<String>,
}

/// Busy threads until dropped.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(n: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                })
            })
            .collect();
        Load { stop, threads }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Measures every failoverTimeout of `opts`, one pair each.
pub async fn measure(opts: &TimeoutOptions, progress: &Progress<'_>) -> Vec<TimeoutPoint> {
    let mut out = Vec::new();
    for (i, timeout) in opts.timeouts.iter().enumerate() {
        progress(&format!(
            "failoverTimeout {}: {:.0} s under {} ms of link jitter and {} busy threads, then a SIGKILL",
            format_timespan(*timeout),
            opts.window.as_secs_f64(),
            opts.jitter.as_millis(),
            opts.load_threads
        ));
        let point = match one(opts, *timeout, opts.seed.wrapping_add(i as u64)).await {
            Ok(p) => p,
            Err(e) => TimeoutPoint {
                failover_timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                window_s: 0.0,
                false_failovers: 0,
                false_failovers_per_hour: 0.0,
                takeover_ms: None,
                error: Some(format!("{e:#}")),
            },
        };
        progress(&describe(&point));
        out.push(point);
    }
    out
}

fn describe(p: &TimeoutPoint) -> String {
    match &p.error {
        Some(e) => format!("  {} ms: not measured: {e}", p.failover_timeout_ms),
        None => format!(
            "  {} ms: {} false failovers in {:.0} s ({:.0} an hour, extrapolated); takeover {}",
            p.failover_timeout_ms,
            p.false_failovers,
            p.window_s,
            p.false_failovers_per_hour,
            p.takeover_ms
                .map_or("none".to_string(), |t| format!("{t:.0} ms"))
        ),
    }
}

async fn one(opts: &TimeoutOptions, timeout: Duration, seed: u64) -> anyhow::Result<TimeoutPoint> {
    let spec = ClusterSpec {
        mode: Mode::Hot,
        failover_timeout: timeout,
        disk_buffer: false,
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::start(spec.clone()).await?;
    let obs = Observer::start(&cluster.addrs, &spec.group_id);
    let result = run_pair(&mut cluster, &obs, &spec, opts, seed).await;
    cluster.shutdown().await;
    result
}

async fn run_pair(
    cluster: &mut Cluster,
    obs: &Observer,
    spec: &ClusterSpec,
    opts: &TimeoutOptions,
    seed: u64,
) -> anyhow::Result<TimeoutPoint> {
    let timeout = spec.failover_timeout;
    let settle = timeout * 3 + Duration::from_secs(10);
    crate::cluster::configure_in_order(cluster, obs, settle).await?;
    let flowing = obs
        .wait_for(settle, |t| {
            t.primary().is_some() && t.audit.as_ref().is_some_and(|a| a.received > 0)
        })
        .await;
    anyhow::ensure!(flowing, "no data flowed within {settle:?}");
    let promotions = |obs: &Observer| obs.snapshot().status.map_or(0, |s| s.promotions);
    let before = promotions(obs);
    let _load = Load::start(opts.load_threads);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut jitter = |cluster: &Cluster| {
        for adapter in &spec.adapters {
            if let Ok(link) = cluster.link(adapter, ARBITER) {
                let ms = opts.jitter.as_millis().max(1) as u64;
                let (f, b) = (rng.random_range(0..=ms), rng.random_range(0..=ms));
                link.set(|st| {
                    st.latency_forward = Duration::from_millis(f);
                    st.latency_backward = Duration::from_millis(b);
                });
            }
        }
    };
    let started = tokio::time::Instant::now();
    while started.elapsed() < opts.window {
        jitter(cluster);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let window_s = started.elapsed().as_secs_f64();
    let false_failovers = promotions(obs).saturating_sub(before);
    // The kill, under the same jitter and load.
    let snapshot = obs.snapshot();
    let killed = snapshot
        .primary()
        .ok_or_else(|| anyhow::anyhow!("no Primary at the kill"))?;
    let epoch_before = snapshot.epoch();
    let kill_us = process::unix_us();
    cluster.kill(&killed).await?;
    let deadline = tokio::time::Instant::now() + timeout * 2 + Duration::from_secs(10);
    let mut takeover_ms = None;
    while tokio::time::Instant::now() < deadline {
        jitter(cluster);
        if let Ok(a) = cluster.audit().await
            && let Some(first) = a
                .writers
                .iter()
                .filter(|w| w.adapter_id != killed && w.epoch > epoch_before && w.accepted > 0)
                .map(|w| w.first_accepted_unix_us)
                .min()
        {
            takeover_ms = Some((first - kill_us) as f64 / 1000.0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(TimeoutPoint {
        failover_timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        window_s,
        false_failovers,
        false_failovers_per_hour: false_failovers as f64 * 3600.0 / window_s.max(1e-3),
        takeover_ms,
        error: None,
    })
}

/// The points as a table.
pub fn table(points: &[TimeoutPoint], opts_note: &str) -> String {
    let mut out = format!(
        "Choosing failoverTimeout ({opts_note}): takeover time against false failovers\n  {:>16}  {:>12}  {:>16}  {:>22}\n",
        "failoverTimeout", "takeover", "false failovers", "per hour (extrapolated)"
    );
    for p in points {
        match &p.error {
            Some(e) => {
                let _ = writeln!(out, "  {:>13} ms  not measured: {e}", p.failover_timeout_ms);
            }
            None => {
                let _ = writeln!(
                    out,
                    "  {:>13} ms  {:>12}  {:>9} in {:>2.0} s  {:>22.0}",
                    p.failover_timeout_ms,
                    p.takeover_ms
                        .map_or("none".to_string(), |t| format!("{t:.0} ms")),
                    p.false_failovers,
                    p.window_s,
                    p.false_failovers_per_hour
                );
            }
        }
    }
    out
}

/// The trade-off as a picture: takeover time (bars) and false failovers per hour (line, its
/// own scale) for each failoverTimeout.
pub fn svg(points: &[TimeoutPoint], title: &str) -> String {
    let (w, h, left, right, top, bottom) = (760.0, 320.0, 70.0, 70.0, 50.0, 50.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let n = points.len().max(1) as f64;
    let slot = plot_w / n;
    let max_take = points
        .iter()
        .filter_map(|p| p.takeover_ms)
        .fold(1.0, f64::max);
    let max_false = points
        .iter()
        .map(|p| p.false_failovers_per_hour)
        .fold(1.0, f64::max);
    let mut out = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="#fff"/><text x="10" y="20" font-size="14" font-weight="bold">{}</text><text x="10" y="36" fill="#555"><tspan fill="#1565c0">■ takeover, ms (left)</tspan> · <tspan fill="#c62828">● false failovers per hour, extrapolated (right)</tspan></text>"##,
        crate::xml::escape(title)
    );
    let _ = write!(
        out,
        r##"<line x1="{left}" y1="{:.0}" x2="{:.0}" y2="{:.0}" stroke="#333"/><text x="{:.0}" y="{:.0}" text-anchor="end" fill="#1565c0">{max_take:.0} ms</text><text x="{:.0}" y="{:.0}" fill="#c62828">{max_false:.0}/h</text>"##,
        top + plot_h,
        left + plot_w,
        top + plot_h,
        left - 4.0,
        top + 10.0,
        left + plot_w + 4.0,
        top + 10.0
    );
    let mut line = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let cx = left + slot * (i as f64 + 0.5);
        if let Some(t) = p.takeover_ms {
            let bh = t / max_take * plot_h;
            let _ = write!(
                out,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="#1565c0" opacity="0.8"/><text x="{cx:.1}" y="{:.1}" text-anchor="middle" fill="#1565c0">{t:.0}</text>"##,
                cx - slot * 0.3,
                top + plot_h - bh,
                slot * 0.6,
                top + plot_h - bh - 3.0
            );
        }
        let fy = top + plot_h - p.false_failovers_per_hour / max_false * plot_h;
        line.push(format!("{cx:.1},{fy:.1}"));
        let _ = write!(
            out,
            r##"<circle cx="{cx:.1}" cy="{fy:.1}" r="4" fill="#c62828"/><text x="{:.1}" y="{:.1}" fill="#c62828">{:.0}/h</text><text x="{cx:.1}" y="{:.1}" text-anchor="middle">{} ms</text>"##,
            cx + 6.0,
            fy - 4.0,
            p.false_failovers_per_hour,
            top + plot_h + 16.0,
            p.failover_timeout_ms
        );
    }
    let _ = write!(
        out,
        r##"<polyline points="{}" fill="none" stroke="#c62828" stroke-width="1.5"/><text x="{:.0}" y="{:.0}" text-anchor="middle" fill="#555">failoverTimeout</text></svg>"##,
        line.join(" "),
        left + plot_w / 2.0,
        h - 12.0
    );
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_and_picture_show_every_point() {
        let p = |ms: u64, f: u64, t: Option<f64>| TimeoutPoint {
            failover_timeout_ms: ms,
            window_s: 20.0,
            false_failovers: f,
            false_failovers_per_hour: f as f64 * 180.0,
            takeover_ms: t,
            error: None,
        };
        let points = [
            p(200, 7, Some(380.0)),
            p(1000, 0, Some(1150.0)),
            p(4000, 0, None),
        ];
        let t = table(&points, "20 s windows");
        assert!(
            t.contains("200 ms") && t.contains("380 ms") && t.contains("1260"),
            "{t}"
        );
        assert!(t.contains("none"), "{t}");
        let s = svg(&points, "trade-off <test>");
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("trade-off &lt;test&gt;"));
        assert_eq!(s.matches("<circle").count(), 3);
        assert_eq!(s.matches("fill=\"#1565c0\" opacity").count(), 2);
    }
}
