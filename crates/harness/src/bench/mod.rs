//! `failover-lab bench`: the numbers a failover design is chosen by, measured in one run on
//! loopback with real processes:
//!
//! 1. [`takeover`]: takeover latency per mode over repeated SIGKILLs of the Primary (and for a
//!    SIGSTOP and a source outage), split into phases, with the overhead above failoverTimeout;
//! 2. [`throughput`]: the data path's points per second through a Hot pair against a plain
//!    tonic baseline measured in the same run, and loss and duplicates of a Hot takeover at the
//!    highest sustained rate;
//! 3. [`standby`]: CPU and memory of the Secondary per mode, bytes per buffered point, and the
//!    failover service's CPU per heartbeat;
//! 4. [`timeout`] (`--parts timeout`, not by default): for several failoverTimeouts, the
//!    takeover time against false failovers per hour under link jitter and CPU load;
//! 5. [`omf`] (`--parts omf`, not by default): the data path over OMF beside gRPC;
//! 6. [`fanout`] (`--parts fanout`, not by default): the source's fan-out to two subscribers
//!    over gRPC, MQTT and OPC UA;
//! 7. [`fleet`] (`--parts fleet`, not by default): hundreds to thousands of groups of simulated
//!    members on one failover service, over gRPC and REST.
//!
//! CPU and memory come from `/proc` ([`procstat`]); times from the timestamps the processes
//! record (arbiter status, adapter FailoverState, endpoint audit), all on one wall clock.

pub mod fanout;
pub mod fleet;
pub mod omf;
pub mod procstat;
pub mod standby;
pub mod takeover;
pub mod throughput;
pub mod timeout;

use std::{fmt::Write as _, time::Duration};

use failover_core::{Mode, timespan::format_timespan};
use serde::Serialize;

use crate::cluster::ClusterSpec;

/// A progress line sink.
pub type Progress<'a> = dyn Fn(&str) + Sync + 'a;

/// p50, p95 and max of a set of measurements (nearest rank); all 0 when there are none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// Of the given values.
    pub fn of(values: impl Iterator<Item = f64>) -> Percentiles {
        let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let i = (p * v.len() as f64).ceil() as usize;
            v[i.clamp(1, v.len()) - 1]
        };
        Percentiles {
            p50: rank(0.50),
            p95: rank(0.95),
            max: v[v.len() - 1],
        }
    }
}

/// A part of the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Takeover latency per mode and fault.
    Takeover,
    /// Data-path throughput, the baseline, and loss at rate.
    Throughput,
    /// Standby cost, bytes per buffered point, CPU per heartbeat.
    Standby,
    /// Takeover time against false failovers per failoverTimeout (not in the default parts).
    Timeout,
    /// The data path over OMF beside gRPC (not in the default parts).
    Omf,
    /// The source's fan-out to two subscribers on each wire in (not in the default parts).
    FanOut,
    /// Many groups on one failover service (not in the default parts).
    Fleet,
}

impl Part {
    /// Every part.
    pub const ALL: [Part; 7] = [
        Part::Takeover,
        Part::Throughput,
        Part::Standby,
        Part::Timeout,
        Part::Omf,
        Part::FanOut,
        Part::Fleet,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Part::Takeover => "takeover",
            Part::Throughput => "throughput",
            Part::Standby => "standby",
            Part::Timeout => "timeout",
            Part::Omf => "omf",
            Part::FanOut => "fanout",
            Part::Fleet => "fleet",
        }
    }
}

impl std::str::FromStr for Part {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Part::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a part of the bench; accepted: {}",
                    Part::ALL.map(Part::name).join(", ")
                )
            })
    }
}

/// What to measure, and how much.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Kills per mode.
    pub runs: usize,
    /// Pauses and source outages (Hot mode).
    pub other_fault_runs: usize,
    /// failoverTimeout of the takeover pairs.
    pub failover_timeout: Duration,
    /// The modes whose takeovers are measured.
    pub modes: Vec<Mode>,
    /// Points per second of the takeover and standby pairs.
    pub standby_points_per_s: f64,
    /// First offered rate of the throughput search.
    pub start_points_per_s: f64,
    /// Highest offered rate tried.
    pub max_points_per_s: f64,
    /// Measuring window of each throughput and cost step.
    pub window: Duration,
    /// Points per write (the adapters' --batch-size, and the baseline's messages).
    pub batch_points: usize,
    /// Seed of the fault timing.
    pub seed: u64,
    /// The parts to run.
    pub parts: Vec<Part>,
    /// Adapters keep their egress buffer on disk too.
    pub disk_buffer: bool,
    /// How the failoverTimeout trade-off is measured.
    pub timeout: timeout::TimeoutOptions,
    /// How the fleet is measured.
    pub fleet: fleet::FleetOptions,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            runs: 20,
            other_fault_runs: 10,
            failover_timeout: Duration::from_secs(1),
            modes: Mode::ALL.to_vec(),
            standby_points_per_s: 100_000.0,
            start_points_per_s: 250_000.0,
            max_points_per_s: 8_000_000.0,
            window: Duration::from_secs(2),
            batch_points: 20_000,
            seed: 1,
            parts: vec![Part::Takeover, Part::Throughput, Part::Standby],
            disk_buffer: false,
            timeout: timeout::TimeoutOptions::default(),
            fleet: fleet::FleetOptions::default(),
        }
    }
}

/// Everything `failover-lab bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Cores the machine has.
    pub cores: usize,
    /// Kills per mode.
    pub runs: usize,
    /// failoverTimeout of the takeover pairs.
    pub failover_timeout_ms: u64,
    /// Takeover latency per mode and fault.
    pub takeover: Vec<takeover::TakeoverSeries>,
    /// Data-path throughput and the baseline.
    pub throughput: Option<throughput::Throughput>,
    /// Loss and duplicates of a Hot takeover at the sustained rate.
    pub loss_at_rate: Option<throughput::LossAtRate>,
    /// Standby cost per mode.
    pub standby: Vec<standby::StandbyCost>,
    /// Bytes per buffered point.
    pub buffer: Option<standby::BufferCost>,
    /// Takeover time against false failovers, per failoverTimeout (`--parts timeout`).
    pub timeouts: Vec<timeout::TimeoutPoint>,
    /// Arbiter CPU per heartbeat.
    pub heartbeat: Option<standby::HeartbeatCost>,
    /// The data path over OMF (`--parts omf`).
    pub omf: Option<omf::OmfPath>,
    /// The source's fan-out per wire (`--parts fanout`).
    pub fanout: Vec<fanout::WireFanOut>,
    /// Many groups on one failover service (`--parts fleet`).
    pub fleet: Vec<fleet::FleetRun>,
    /// Parts that could not be measured, and why.
    pub errors: Vec<String>,
    /// Wall time of the whole bench, seconds.
    pub elapsed_s: f64,
}

/// The pair every bench part starts from: adapters straight to the services (no link proxies),
/// a batch size and buffer for high rates, and quick Warm tests.
pub fn base_spec(opts: &BenchOptions) -> ClusterSpec {
    ClusterSpec {
        failover_timeout: opts.failover_timeout,
        streams: throughput::STREAMS,
        components: 4,
        rate_hz: opts.standby_points_per_s / f64::from(throughput::STREAMS),
        warm_test_interval: Duration::from_millis(200),
        direct_links: true,
        adapter_args: vec![
            "--batch-size".into(),
            opts.batch_points.to_string(),
            "--buffer-max-points".into(),
            "50000000".into(),
        ],
        // In memory unless asked: BENCHMARKS.md reports both.
        disk_buffer: opts.disk_buffer,
        ..ClusterSpec::default()
    }
}

/// Runs every part; a part that fails is reported in `errors` and the rest go on.
pub async fn run(opts: &BenchOptions, progress: &Progress<'_>) -> BenchReport {
    let started = std::time::Instant::now();
    let base = base_spec(opts);
    let mut report = BenchReport {
        cores: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        runs: opts.runs,
        failover_timeout_ms: u64::try_from(opts.failover_timeout.as_millis()).unwrap_or(u64::MAX),
        takeover: Vec::new(),
        throughput: None,
        loss_at_rate: None,
        standby: Vec::new(),
        buffer: None,
        heartbeat: None,
        timeouts: Vec::new(),
        omf: None,
        fanout: Vec::new(),
        fleet: Vec::new(),
        errors: Vec::new(),
        elapsed_s: 0.0,
    };
    if opts.parts.contains(&Part::Takeover) {
        takeover_part(opts, &base, &mut report, progress).await;
    }
    if opts.parts.contains(&Part::Throughput) {
        throughput_part(opts, &base, &mut report, progress).await;
    }
    if opts.parts.contains(&Part::Standby) {
        standby_part(opts, &base, &mut report, progress).await;
    }
    if opts.parts.contains(&Part::Omf) {
        progress(
            "OMF: Hot pair egressing OMF with gzip, 1000 streams, raising the offered rate until it stops keeping up",
        );
        match omf::measure(
            &base,
            opts.start_points_per_s,
            opts.max_points_per_s,
            opts.window,
            opts.batch_points,
            progress,
        )
        .await
        {
            Ok(o) => report.omf = Some(o),
            Err(e) => report.errors.push(format!("omf: {e:#}")),
        }
    }
    if opts.parts.contains(&Part::FanOut) {
        for wire in fanout::measure(
            &base,
            fanout::START_POINTS_PER_S,
            opts.max_points_per_s,
            opts.window,
            progress,
        )
        .await
        {
            match wire {
                Ok(w) => report.fanout.push(w),
                Err(e) => report.errors.push(e),
            }
        }
    }
    if opts.parts.contains(&Part::Fleet) {
        report.fleet = fleet::measure(&opts.fleet, progress).await;
        report.errors.extend(report.fleet.iter().filter_map(|r| {
            r.error
                .as_ref()
                .map(|e| format!("fleet, {} groups over {}: {e}", r.groups, r.wire))
        }));
    }
    if opts.parts.contains(&Part::Timeout) {
        report.timeouts = timeout::measure(&opts.timeout, progress).await;
        report.errors.extend(report.timeouts.iter().filter_map(|p| {
            p.error
                .as_ref()
                .map(|e| format!("failoverTimeout {} ms: {e}", p.failover_timeout_ms))
        }));
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    report
}

async fn takeover_part(
    opts: &BenchOptions,
    base: &ClusterSpec,
    report: &mut BenchReport,
    progress: &Progress<'_>,
) {
    progress(&format!(
        "takeover latency: {} SIGKILLs per mode ({}), failoverTimeout {}",
        opts.runs,
        opts.modes
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        format_timespan(opts.failover_timeout)
    ));
    let mut series: Vec<(Mode, takeover::Fault, usize)> = opts
        .modes
        .iter()
        .map(|m| (*m, takeover::Fault::Kill, opts.runs))
        .collect();
    if opts.other_fault_runs > 0 {
        series.push((Mode::Hot, takeover::Fault::Pause, opts.other_fault_runs));
        series.push((
            Mode::Hot,
            takeover::Fault::SourceOutage,
            opts.other_fault_runs,
        ));
    }
    for (i, (mode, fault, runs)) in series.into_iter().enumerate() {
        let seed = opts.seed.wrapping_add(i as u64);
        match takeover::measure(base, mode, fault, runs, seed, progress).await {
            Ok(s) => report.takeover.push(s),
            Err(e) => report
                .errors
                .push(format!("takeover {mode} {fault}: {e:#}")),
        }
    }
}

async fn throughput_part(
    opts: &BenchOptions,
    base: &ClusterSpec,
    report: &mut BenchReport,
    progress: &Progress<'_>,
) {
    progress(
        "throughput: Hot pair, 1000 streams, raising the offered rate until it stops keeping up",
    );
    let steps = throughput::find_sustained(
        base,
        opts.start_points_per_s,
        opts.max_points_per_s,
        opts.window,
        progress,
    )
    .await;
    progress(&format!(
        "baseline: plain tonic, one client stream of {}-point batches to a counting server",
        opts.batch_points
    ));
    let baseline = throughput::baseline(opts.batch_points, opts.window).await;
    match (steps, baseline) {
        (Ok(steps), Ok(baseline)) => {
            progress(&format!(
                "baseline: {:.0} points/s ({:.0} batches/s)",
                baseline.points_per_s, baseline.batches_per_s
            ));
            let best = steps
                .iter()
                .filter(|s| s.sustained)
                .map(|s| s.accepted_points_per_s)
                .fold(0.0, f64::max);
            let peak = steps
                .iter()
                .map(|s| s.accepted_points_per_s)
                .fold(0.0, f64::max);
            let ratio = |x: f64| {
                if baseline.points_per_s > 0.0 {
                    x / baseline.points_per_s
                } else {
                    0.0
                }
            };
            report.throughput = Some(throughput::Throughput {
                ratio_to_baseline: ratio(best),
                peak_ratio_to_baseline: ratio(peak),
                sustained_points_per_s: best,
                peak_points_per_s: peak,
                steps,
                baseline,
            });
        }
        (Err(e), _) => report.errors.push(format!("throughput: {e:#}")),
        (_, Err(e)) => report.errors.push(format!("baseline: {e:#}")),
    }
    let loss_rate = report
        .throughput
        .as_ref()
        .and_then(|t| {
            t.steps
                .iter()
                .filter(|s| s.sustained)
                .map(|s| s.offered_points_per_s)
                .reduce(f64::max)
        })
        .unwrap_or(opts.standby_points_per_s);
    match throughput::loss_at_rate(base, loss_rate, progress).await {
        Ok(l) => report.loss_at_rate = Some(l),
        Err(e) => report.errors.push(format!("loss at rate: {e:#}")),
    }
}

async fn standby_part(
    opts: &BenchOptions,
    base: &ClusterSpec,
    report: &mut BenchReport,
    progress: &Progress<'_>,
) {
    for mode in Mode::ALL {
        match standby::measure(base, mode, opts.window, progress).await {
            Ok((cost, extras)) => {
                report.standby.push(cost);
                if let Some(x) = extras {
                    report.buffer = Some(x.buffer);
                    report.heartbeat = Some(x.heartbeat);
                }
            }
            Err(e) => report.errors.push(format!("standby {mode}: {e:#}")),
        }
    }
}

/// The report as tables.
pub fn render(r: &BenchReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nfailover-lab bench: {} cores, failoverTimeout {} ms, loopback, real processes ({:.0} s)\n",
        r.cores, r.failover_timeout_ms, r.elapsed_s
    );
    if !r.takeover.is_empty() {
        let _ = writeln!(
            out,
            "Takeover latency, ms (p50 / p95 / max): fault to the first point accepted from the new Primary, by phase"
        );
        let _ = writeln!(
            out,
            "  {:<5} {:<14} {:>5}  {:<20} {:<20} {:<17} {:<17} {:<17} {:<20}",
            "mode",
            "fault",
            "runs",
            "total",
            "detection",
            "decision+push",
            "fence+watermark",
            "first point",
            "above failoverTimeout"
        );
        let f = |p: &Percentiles| format!("{:.0}/{:.0}/{:.0}", p.p50, p.p95, p.max);
        let g = |p: &Percentiles| format!("{:.1}/{:.1}/{:.1}", p.p50, p.p95, p.max);
        for s in &r.takeover {
            let _ = writeln!(
                out,
                "  {:<5} {:<14} {:>2}/{:<2}  {:<20} {:<20} {:<17} {:<17} {:<17} {:<20}",
                s.mode,
                s.fault.to_string(),
                s.measured,
                s.runs,
                f(&s.total_ms),
                f(&s.detection_ms),
                g(&s.decision_push_ms),
                g(&s.fence_ms),
                g(&s.first_point_ms),
                s.overhead_ms.as_ref().map_or("-".into(), g)
            );
        }
    }
    if !r.timeouts.is_empty() {
        let window = r.timeouts.iter().map(|p| p.window_s).fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "\n{}",
            timeout::table(
                &r.timeouts,
                &format!("Hot, {window:.0} s windows; per hour extrapolated from them")
            )
        );
    }
    if let Some(t) = &r.throughput {
        let _ = writeln!(out, "\nData path (Hot pair, 1000 streams):");
        for s in &t.steps {
            let _ = writeln!(out, "  {}", s.describe());
        }
        let _ = writeln!(
            out,
            "  sustained {:.0} points/s (peak {:.0}); plain tonic baseline {:.0} points/s ({}-point batches); ratio {:.2} (peak {:.2})",
            t.sustained_points_per_s,
            t.peak_points_per_s,
            t.baseline.points_per_s,
            t.baseline.batch_points,
            t.ratio_to_baseline,
            t.peak_ratio_to_baseline
        );
    }
    if let Some(o) = &r.omf {
        let _ = writeln!(
            out,
            "\nData path over OMF with gzip (Hot pair, 1000 streams):"
        );
        for s in &o.steps {
            let _ = writeln!(out, "  {}", s.describe());
        }
        let cpu = |steps: &[throughput::RateStep]| {
            steps
                .iter()
                .filter(|s| s.sustained)
                .max_by(|a, b| a.accepted_points_per_s.total_cmp(&b.accepted_points_per_s))
                .map_or("-".to_string(), |s| {
                    format!("{:.2}", omf::cpu_s_per_million(s))
                })
        };
        let _ = writeln!(
            out,
            "  {:<6} {:>16}  {:<24} {:>20}",
            "wire", "sustained pts/s", "bytes/point", "CPU s per M points"
        );
        if let Some(t) = &r.throughput {
            let _ = writeln!(
                out,
                "  {:<6} {:>16.0}  {:<24} {:>20}",
                "gRPC",
                t.sustained_points_per_s,
                format!("{:.1}", o.wire.protobuf_bytes_per_point),
                cpu(&t.steps)
            );
        }
        let _ = writeln!(
            out,
            "  {:<6} {:>16.0}  {:<24} {:>20}",
            "OMF",
            o.sustained_points_per_s,
            format!(
                "{:.1} ({:.1} unzipped)",
                o.wire.omf_gzip_bytes_per_point, o.wire.omf_json_bytes_per_point
            ),
            cpu(&o.steps)
        );
        if let Some(l) = &o.loss_at_rate {
            let _ = writeln!(
                out,
                "  Hot takeover over OMF at {:.0} points/s: takeover {} ms, lost {}, duplicated {} (of {} expected)",
                l.points_per_s,
                l.takeover_ms.map_or("?".into(), |t| format!("{t:.0}")),
                l.lost,
                l.duplicated,
                l.expected
            );
        }
    }
    if !r.fanout.is_empty() {
        let _ = writeln!(
            out,
            "\nThe source's fan-out (Hot pair: two subscribers, 1000 streams, egress gRPC):"
        );
        for w in &r.fanout {
            for s in &w.steps {
                let _ = writeln!(
                    out,
                    "  {:<5} {}; Hot Secondary collected {}",
                    w.wire,
                    s.describe(),
                    s.secondary_collected_points_per_s
                        .map_or("?".to_string(), |c| format!("{c:.0} points/s"))
                );
            }
        }
        let _ = writeln!(
            out,
            "  {:<6} {:>30}  {:>30}",
            "wire", "kept up, points/s per subscriber", "source CPU s per M points"
        );
        for w in &r.fanout {
            let _ = writeln!(
                out,
                "  {:<6} {:>30.0}  {:>30}",
                w.wire,
                w.sustained_points_per_s,
                w.source_cpu_s_per_million
                    .map_or("-".to_string(), |c| format!("{c:.2}"))
            );
        }
    }
    if !r.fleet.is_empty() {
        let _ = writeln!(
            out,
            "\nThe fleet: groups of two simulated members on one failover service"
        );
        let _ = writeln!(
            out,
            "  wire  store   groups  heartbeats/s  µs CPU each  KiB/group  false failovers  decision p50/p99 ms  heard p50/p99 ms  restart (etcd: the leader killed): spurious, all decided in"
        );
        for f in &r.fleet {
            if let Some(e) = &f.error {
                let _ = writeln!(out, "  {:<4}  {:<6}  {:>6}  {e}", f.wire, f.store, f.groups);
                continue;
            }
            let _ = writeln!(
                out,
                "  {:<4}  {:<6}  {:>6}  {:>12.0}  {:>11.1}  {:>9.1}  {:>15}  {:>19}  {:>16}  {}, {:.1} s{}{}",
                f.wire,
                f.store,
                f.groups,
                f.heartbeats_per_s,
                f.cpu_us_per_heartbeat,
                f.memory_kib_per_group,
                f.false_failovers,
                format!("{:.1} / {:.1}", f.decision_ms[0], f.decision_ms[1]),
                format!("{:.0} / {:.0}", f.role_heard_ms[0], f.role_heard_ms[1]),
                f.restart_spurious,
                f.restart_decided_s,
                if f.restart_undecided > 0 {
                    format!(" ({} undecided)", f.restart_undecided)
                } else {
                    String::new()
                },
                if f.store == "etcd" {
                    format!(
                        "; etcd: {:.1} calls/s, {:.1} writes/s",
                        f.etcd_calls_per_s, f.etcd_writes_per_s
                    )
                } else {
                    String::new()
                }
            );
        }
    }
    if let Some(l) = &r.loss_at_rate {
        let _ = writeln!(
            out,
            "\nHot takeover at {:.0} points/s: takeover {} ms, {} points from the new Primary, lost {}, duplicated {} (of {} expected)",
            l.points_per_s,
            l.takeover_ms.map_or("?".into(), |t| format!("{t:.0}")),
            l.accepted_from_new_primary,
            l.lost,
            l.duplicated,
            l.expected
        );
    }
    if !r.standby.is_empty() {
        let _ = writeln!(
            out,
            "\nStandby cost (CPU in % of one core, resident memory):"
        );
        for s in &r.standby {
            let _ = writeln!(
                out,
                "  {:<5} at {:.0} points/s: Secondary {:5.1}% {:6.1} MiB   Primary {:5.1}% {:6.1} MiB",
                s.mode,
                s.points_per_s,
                s.secondary_cpu_percent,
                s.secondary_rss_mib,
                s.primary_cpu_percent,
                s.primary_rss_mib
            );
        }
    }
    if let Some(b) = &r.buffer {
        let _ = writeln!(
            out,
            "  buffer: {:.1} bytes per held point ({} points, {:.1} MiB)",
            b.bytes_per_point, b.points_buffered, b.rss_growth_mib
        );
    }
    if let Some(h) = &r.heartbeat {
        let _ = writeln!(
            out,
            "  heartbeats: {:.1} µs of failover-service CPU each ({:.0}/s over {} sessions)",
            h.cpu_us_per_heartbeat, h.heartbeats_per_s, h.sessions
        );
    }
    for e in &r.errors {
        let _ = writeln!(out, "\nNOT MEASURED: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = Percentiles::of((1..=20).map(f64::from));
        assert_eq!((p.p50, p.p95, p.max), (10.0, 19.0, 20.0));
        let one = Percentiles::of([7.0].into_iter());
        assert_eq!((one.p50, one.p95, one.max), (7.0, 7.0, 7.0));
        assert_eq!(Percentiles::of(std::iter::empty()), Percentiles::default());
        assert_eq!(Percentiles::of([f64::NAN, 3.0].into_iter()).max, 3.0);
    }
}
