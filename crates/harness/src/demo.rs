//! `failover-lab demo`: the whole pair on loopback, the Primary killed, the takeover shown.
//!
//! Starts the four service binaries, configures both adapters with the vendor's example
//! document (pointed at the local failover service, with the chosen mode and timeout) through
//! their REST API, waits for roles, lets data flow, SIGKILLs the Primary, waits until the other
//! adapter is Primary and the endpoint has accepted a point from it, runs on, stops everything
//! and reports a timeline and a summary (or one JSON object). `compare` runs Hot, Warm and Cold
//! on the same fault, under each failover design asked for (ours, the vendor's), one after the
//! other.

use std::{fmt::Write as _, time::Duration};

use anyhow::Context;
use failover_core::{Behaviour, Mode, timespan::format_timespan};
use failover_proto::process;
use serde::Serialize;

use crate::{
    cluster::{Cluster, ClusterSpec},
    observe::{Event, Observer, RoleTransition, Sample, ScoreTransition},
};

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The cluster.
    pub spec: ClusterSpec,
    /// Data flow before the kill.
    pub before_kill: Duration,
    /// Data flow after the takeover.
    pub after_takeover: Duration,
    /// The standby's clock is set this far from true time (ms, negative: behind) once the
    /// pair has settled, before the time before the kill (0: left alone).
    pub standby_clock_offset_ms: i64,
}

/// What the demo found.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    /// Hot, Warm or Cold.
    pub mode: String,
    /// The failover design of both adapters: "lab" (ours) or "vendor" (the vendor's adapter
    /// framework's, docs/vendor-behaviour.md).
    pub behaviour: String,
    /// The standby's clock offset from true time, ms (negative: behind; 0: none).
    pub standby_clock_offset_ms: i64,
    /// The group's failoverTimeout.
    pub failover_timeout_ms: u64,
    /// How the adapters talked to the failover service: "grpc" (roles pushed at once) or
    /// "rest" (the vendor's API: roles pulled in heartbeat answers, up to failoverTimeout/2
    /// later).
    pub failover_protocol: String,
    /// The adapter that was SIGKILLed (the Primary at that moment).
    pub killed: String,
    /// The adapter Primary after the takeover (None: no takeover).
    pub new_primary: Option<String>,
    /// SIGKILL to the first point the endpoint accepted from the new Primary.
    pub takeover_ms: Option<f64>,
    /// SIGKILL to the moment the failover service declared the Primary stale (at most
    /// failoverTimeout: staleness counts from the last heartbeat, which came before the kill).
    pub detection_ms: Option<f64>,
    /// From the Primary declared stale to the first point accepted from the new Primary: push,
    /// fence, watermark, flush. This is the overhead above failoverTimeout.
    pub stale_to_first_point_ms: Option<f64>,
    /// Epoch before the kill.
    pub epoch_before: u64,
    /// Epoch after the takeover.
    pub epoch_after: u64,
    /// Points the endpoint should hold (per stream, from its first to its last point).
    pub points_expected: u64,
    /// Distinct points the endpoint holds.
    pub points_received: u64,
    /// Expected and not held.
    pub lost: u64,
    /// Received more than once.
    pub duplicated: u64,
    /// Refused because their epoch was older than the fenced one.
    pub stale_rejected: u64,
    /// Largest gap in data time between consecutive points of a stream.
    pub largest_gap_ms: i64,
    /// Score changes seen at the failover service.
    pub score_transitions: Vec<ScoreTransition>,
    /// Role changes seen at the failover service.
    pub role_transitions: Vec<RoleTransition>,
    /// The story.
    pub events: Vec<Event>,
    /// Per-adapter samples every 250 ms.
    #[serde(skip)]
    pub samples: Vec<Sample>,
    /// The failover service's view at every change (the picture's role bands).
    #[serde(skip)]
    pub history: Vec<crate::observe::StatusPoint>,
    /// Who delivered the source's ticks: runs of ticks per adapter, on time or late (flushed);
    /// nobody delivered the ticks between two runs.
    pub coverage: Vec<crate::observe::CoverageSpan>,
    /// Points written per (adapter, epoch).
    pub writers: Vec<WriterSummary>,
    /// What the Secondary used while it stood by, before the kill (None: not measured).
    pub standby: Option<StandbyUse>,
}

/// What the Secondary used while standing by, measured over the time before the kill: its
/// process's CPU and memory from `/proc`, and the bytes on its link to the source (the
/// fault-injecting proxy counts them).
#[derive(Debug, Clone, Serialize)]
pub struct StandbyUse {
    /// The Secondary.
    pub adapter: String,
    /// Over how long, in seconds.
    pub window_s: f64,
    /// CPU, percent of one core.
    pub cpu_percent: f64,
    /// Resident memory at the end of the window, MiB.
    pub rss_mib: f64,
    /// Bytes per second between it and the source, both ways.
    pub source_bytes_per_s: f64,
}

/// Points one adapter wrote at one epoch.
#[derive(Debug, Clone, Serialize)]
pub struct WriterSummary {
    /// The adapter.
    pub adapter: String,
    /// The epoch.
    pub epoch: u64,
    /// Accepted.
    pub accepted: u64,
    /// Refused as stale.
    pub refused_stale: u64,
}

impl DemoReport {
    /// True when another adapter took over.
    pub fn took_over(&self) -> bool {
        self.new_primary.is_some() && self.takeover_ms.is_some()
    }
}

/// Runs the demo; `progress` gets a line at each step.
pub async fn run(
    opts: &DemoOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<DemoReport> {
    let spec = &opts.spec;
    progress(&format!(
        "starting fake-data-source, fake-endpoint, failover-arbiter and {} on loopback",
        spec.adapters.join(", ")
    ));
    let mut cluster = Cluster::start(spec.clone()).await?;
    let observer = Observer::start(&cluster.addrs, &spec.group_id);
    let result = story(&mut cluster, &observer, opts, progress).await;
    progress("stopping every process");
    cluster.shutdown().await;
    result
}

async fn story(
    cluster: &mut Cluster,
    obs: &Observer,
    opts: &DemoOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<DemoReport> {
    let spec = &opts.spec;
    let timeout = spec.failover_timeout;
    progress(&format!(
        "configuring {} with the vendor's ClientFailover example ({} mode, failoverTimeout {})",
        spec.adapters.join(" and "),
        spec.mode,
        format_timespan(timeout)
    ));
    crate::cluster::configure_in_order(cluster, obs, Duration::from_secs(10) + timeout).await?;
    let both_joined = |t: &crate::observe::Timeline| {
        t.primary().is_some()
            && spec
                .adapters
                .iter()
                .all(|a| t.session(a).is_some_and(|s| !s.stale))
            // A source that takes one client refuses the Warm standby's test: it stands at 0.
            && (spec.mode != Mode::Warm
                || spec.max_clients.is_some()
                || spec
                    .adapters
                    .iter()
                    .all(|a| t.session(a).is_some_and(|s| s.score == 100)))
    };
    let settle = Duration::from_secs(10) + timeout;
    if !obs.wait_for(settle, both_joined).await {
        anyhow::bail!(
            "the pair did not settle into Primary and Secondary within {settle:?}; logs in {}",
            cluster.log_dir().display()
        );
    }
    let flowing = obs
        .wait_for(settle, |t| t.audit.as_ref().is_some_and(|a| a.received > 0))
        .await;
    if !flowing {
        anyhow::bail!(
            "no data reached the endpoint within {settle:?}; logs in {}",
            cluster.log_dir().display()
        );
    }
    let primary = obs.snapshot().primary().context("no Primary")?;
    progress(&format!(
        "{primary} is Primary; data flowing for {:.1} s before the kill",
        opts.before_kill.as_secs_f64()
    ));
    let standby_name = spec.other_adapter(&primary);
    if opts.standby_clock_offset_ms != 0
        && let Some(standby) = &standby_name
    {
        cluster
            .adapter_rest(
                standby,
                reqwest::Method::PUT,
                "/lab/Clock",
                Some(
                    &serde_json::json!({ "OffsetMs": opts.standby_clock_offset_ms, "DriftPpm": 0 }),
                ),
            )
            .await
            .with_context(|| format!("setting {standby}'s clock"))?;
        obs.mark(
            "fault",
            format!(
                "{standby}'s clock set {} ms {} true time",
                opts.standby_clock_offset_ms.abs(),
                if opts.standby_clock_offset_ms < 0 {
                    "behind"
                } else {
                    "ahead of"
                }
            ),
        );
    }
    let before = standby_name
        .as_ref()
        .and_then(|s| standby_reading(cluster, s));
    let window_started = std::time::Instant::now();
    tokio::time::sleep(opts.before_kill).await;
    let standby = match (&standby_name, before) {
        (Some(name), Some(before)) => standby_reading(cluster, name).map(|after| {
            let window_s = window_started.elapsed().as_secs_f64();
            StandbyUse {
                adapter: name.clone(),
                window_s,
                cpu_percent: after.0.cpu_percent_since(&before.0),
                rss_mib: after.0.rss_bytes as f64 / (1024.0 * 1024.0),
                source_bytes_per_s: after.1.saturating_sub(before.1) as f64 / window_s.max(1e-3),
            }
        }),
        _ => None,
    };

    let snapshot = obs.snapshot();
    let killed = snapshot.primary().context("no Primary at the kill")?;
    let epoch_before = snapshot.epoch();
    let other = spec.other_adapter(&killed).context("no second adapter")?;
    let kill_us = process::unix_us();
    let kill_at_ms = obs.now_ms();
    cluster.kill(&killed).await?;
    obs.mark(
        "fault",
        format!("SIGKILL {killed} (the Primary, epoch {epoch_before})"),
    );
    progress(&format!(
        "SIGKILL {killed}; waiting for {other} to take over (failoverTimeout {:.1} s)",
        timeout.as_secs_f64()
    ));

    let within = timeout * 2 + Duration::from_secs(10);
    // Ours writes at the new epoch; the vendor's design fences nothing and writes at epoch 0
    // under its name (its OMF header), so its first point after the kill is its takeover.
    let vendor = spec.behaviour == Behaviour::Vendor;
    let from_new = |w: &failover_proto::v1::WriterStats| {
        w.adapter_id == other
            && w.accepted > 0
            && if vendor {
                w.epoch == 0 && w.first_accepted_unix_us >= kill_us
            } else {
                w.epoch > epoch_before
            }
    };
    let took_over = obs
        .wait_for(within, |t| {
            t.primary().as_deref() == Some(other.as_str())
                && t.audit
                    .as_ref()
                    .is_some_and(|a| a.writers.iter().any(from_new))
        })
        .await;
    if took_over {
        progress(&format!(
            "{other} took over; data flowing for {:.1} s more",
            opts.after_takeover.as_secs_f64()
        ));
        tokio::time::sleep(opts.after_takeover).await;
    } else {
        progress(&format!("no takeover within {within:?}"));
    }
    let audit = cluster.audit().await?;
    if let Ok(runs) = cluster.coverage().await {
        obs.record_coverage(&runs);
    }
    let timeline = obs.snapshot();
    let first_from_new = audit
        .writers
        .iter()
        .filter(|w| from_new(w))
        .map(|w| w.first_accepted_unix_us)
        .min();
    let stale_at_ms = timeline
        .events
        .iter()
        .find(|e| {
            e.kind == "stale"
                && e.at_ms >= kill_at_ms
                && e.text.starts_with(&format!("{killed} last heartbeat"))
                && e.text.ends_with(": stale")
        })
        .map(|e| e.at_ms as f64);
    let first_point_ms = first_from_new
        .filter(|_| took_over)
        .map(|us| obs.ms_of_unix_us(us));
    Ok(DemoReport {
        detection_ms: stale_at_ms.map(|s| s - kill_at_ms as f64),
        stale_to_first_point_ms: match (stale_at_ms, first_point_ms) {
            (Some(s), Some(f)) => Some(f - s),
            _ => None,
        },
        mode: spec.mode.to_string(),
        behaviour: spec.behaviour.as_str().to_string(),
        standby_clock_offset_ms: opts.standby_clock_offset_ms,
        failover_protocol: match spec.failover_protocol {
            crate::cluster::ClusterProtocol::Grpc => "grpc".into(),
            crate::cluster::ClusterProtocol::Rest => "rest".into(),
        },
        failover_timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        killed,
        new_primary: took_over.then(|| other.clone()),
        takeover_ms: first_from_new
            .filter(|_| took_over)
            .map(|us| (us - kill_us) as f64 / 1000.0),
        epoch_before,
        epoch_after: timeline.epoch(),
        points_expected: audit.expected,
        points_received: audit.received,
        lost: audit.lost,
        duplicated: audit.duplicated,
        stale_rejected: audit.refused_stale,
        largest_gap_ms: audit.largest_gap_ms,
        standby,
        score_transitions: timeline.score_transitions,
        role_transitions: timeline.role_transitions,
        events: timeline.events,
        samples: timeline.samples,
        history: timeline.history,
        coverage: timeline.coverage,
        writers: audit
            .writers
            .iter()
            .map(|w| WriterSummary {
                adapter: w.adapter_id.clone(),
                epoch: w.epoch,
                accepted: w.accepted,
                refused_stale: w.refused_stale,
            })
            .collect(),
    })
}

/// The standby's process use and its source link's bytes now (None where either is unknown).
fn standby_reading(
    cluster: &Cluster,
    adapter: &str,
) -> Option<(crate::bench::procstat::ProcSample, u64)> {
    let pid = cluster.pid(adapter)?;
    let proc_now = crate::bench::procstat::ProcSample::read(pid).ok()?;
    let bytes = cluster.link(adapter, crate::cluster::SOURCE).ok()?.bytes();
    Some((proc_now, bytes))
}

/// Hot, Warm and Cold under each of `behaviours`, one after the other, on the same fault (the
/// Primary SIGKILLed after the same time, the same standby clock) and the same seed: one report
/// each.
pub async fn compare(
    opts: &DemoOptions,
    behaviours: &[Behaviour],
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Vec<DemoReport>> {
    let mut reports = Vec::new();
    for behaviour in behaviours {
        for mode in Mode::ALL {
            progress(&format!("== {mode}, {} design ==", behaviour.as_str()));
            let one = DemoOptions {
                spec: ClusterSpec {
                    mode,
                    behaviour: *behaviour,
                    ..opts.spec.clone()
                },
                ..opts.clone()
            };
            reports.push(run(&one, progress).await?);
        }
    }
    Ok(reports)
}

/// The runs side by side, one row each.
pub fn compare_text(reports: &[DemoReport]) -> String {
    let mut out = String::from(
        "design  mode  takeover   lost  duplicated  standby CPU  standby memory  standby <-> source\n",
    );
    for r in reports {
        let (cpu, mem, net) =
            r.standby
                .as_ref()
                .map_or(("?".to_string(), "?".to_string(), "?".to_string()), |s| {
                    (
                        format!("{:.1}%", s.cpu_percent),
                        format!("{:.1} MiB", s.rss_mib),
                        format!("{:.0} B/s", s.source_bytes_per_s),
                    )
                });
        let _ = writeln!(
            out,
            "{:<6}  {:<5} {:>8}  {:>5}  {:>10}  {:>11}  {:>14}  {:>18}",
            r.behaviour,
            r.mode,
            r.takeover_ms
                .map_or("none".to_string(), |t| format!("{t:.0} ms")),
            r.lost,
            r.duplicated,
            cpu,
            mem,
            net
        );
    }
    out.push_str(
        "(design: lab is failover-lab's (epochs, fence, watermark), vendor the vendor's adapter framework's (docs/vendor-behaviour.md); takeover: SIGKILL of the Primary to the first point accepted from the new one; standby: the Secondary before the kill, measured from /proc and its source link)\n",
    );
    if let Some(r) = reports.iter().find(|r| r.standby_clock_offset_ms != 0) {
        let _ = writeln!(
            out,
            "(the standby's clock ran {} ms {} true time from before the kill)",
            r.standby_clock_offset_ms.abs(),
            if r.standby_clock_offset_ms < 0 {
                "behind"
            } else {
                "ahead of"
            }
        );
    }
    out
}

/// The three runs' pictures, one above the other, in one SVG.
pub fn compare_svg(reports: &[DemoReport], spec: &ClusterSpec) -> String {
    let mut body = String::new();
    let mut y = 0.0;
    for r in reports {
        let one = timeline_svg(
            r,
            &ClusterSpec {
                mode: r.mode.parse().unwrap_or(spec.mode),
                ..spec.clone()
            },
        );
        let height = one
            .split("height=\"")
            .nth(1)
            .and_then(|h| h.split('"').next())
            .and_then(|h| h.parse::<f64>().ok())
            .unwrap_or(400.0);
        body.push_str(&one.replacen("<svg ", &format!("<svg y=\"{y:.0}\" "), 1));
        y += height;
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1000\" height=\"{y:.0}\" viewBox=\"0 0 1000 {y:.0}\">\n{body}</svg>\n"
    )
}

/// The run as a recording (`failover-lab replay`).
pub fn recording(report: &DemoReport, spec: &ClusterSpec) -> String {
    let timeline = crate::observe::Timeline {
        samples: report.samples.clone(),
        events: report.events.clone(),
        history: report.history.clone(),
        coverage: report.coverage.clone(),
        ..Default::default()
    };
    let header = crate::recording::Header {
        recording: crate::recording::VERSION,
        title: format!(
            "failover-lab demo: {} mode, failoverTimeout {}: {} killed",
            report.mode,
            format_timespan(spec.failover_timeout),
            report.killed
        ),
        adapters: spec.adapters.clone(),
        mode: report.mode.clone(),
        failover_timeout_ms: report.failover_timeout_ms,
    };
    crate::recording::to_text(&header, &timeline)
}

/// The run as an SVG timeline, with the takeover annotated from the kill.
pub fn timeline_svg(report: &DemoReport, spec: &ClusterSpec) -> String {
    let timeline = crate::observe::Timeline {
        samples: report.samples.clone(),
        events: report.events.clone(),
        history: report.history.clone(),
        coverage: report.coverage.clone(),
        ..Default::default()
    };
    let kill_ms = report
        .events
        .iter()
        .find(|e| e.kind == "fault")
        .map(|e| e.at_ms as f64);
    let takeover = match (kill_ms, report.takeover_ms) {
        (Some(from_ms), Some(t)) => Some(crate::timeline_svg::TakeoverMark {
            from_ms,
            to_ms: from_ms + t,
        }),
        _ => None,
    };
    let title = format!(
        "failover-lab demo: {} mode, {} design, failoverTimeout {}: {} killed, {} lost, {} duplicated",
        report.mode,
        report.behaviour,
        format_timespan(spec.failover_timeout),
        report.killed,
        report.lost,
        report.duplicated
    );
    crate::timeline_svg::render(&title, &spec.adapters, &timeline, takeover.as_ref())
}

/// The report as text: the story, the data flow per second, and a summary.
pub fn render(report: &DemoReport, spec: &ClusterSpec) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nfailover-lab demo: {} mode, {} design, failoverTimeout {} (heartbeat every {:.1} s), {} streams in {} components at {} Hz\n",
        report.mode,
        report.behaviour,
        format_timespan(spec.failover_timeout),
        spec.failover_timeout.as_secs_f64() / 2.0,
        spec.streams,
        spec.components,
        spec.rate_hz
    );
    let _ = writeln!(out, "What happened (seconds since start):");
    for e in &report.events {
        let marker = if e.kind == "fault" { ">> " } else { "   " };
        let _ = writeln!(out, "  {:7.2}s {marker}{}", e.at_ms as f64 / 1000.0, e.text);
    }
    let adapters: Vec<String> = spec.adapters.clone();
    let _ = writeln!(
        out,
        "\nData flow (role, score, points accepted by the endpoint in that second):"
    );
    let mut header = format!("  {:>6}", "time");
    for a in &adapters {
        let _ = write!(header, "  {a:<26}");
    }
    let _ = writeln!(out, "{header}  endpoint holds");
    let mut last: std::collections::BTreeMap<&str, u64> = Default::default();
    let mut next_second = 1u64;
    for s in &report.samples {
        if s.at_ms < next_second * 1000 {
            continue;
        }
        next_second = s.at_ms / 1000 + 1;
        let mut row = format!("  {:>5}s", s.at_ms / 1000);
        for a in &adapters {
            match s.adapters.get(a) {
                Some(x) => {
                    let before = last.insert(a.as_str(), x.accepted).unwrap_or(0);
                    let _ = write!(
                        row,
                        "  {:<9} {:>3} {:>+12}",
                        x.role,
                        x.score,
                        x.accepted.saturating_sub(before)
                    );
                }
                None => {
                    let _ = write!(row, "  {:<26}", "-");
                }
            }
        }
        let _ = writeln!(out, "{row}  {}", s.received);
    }
    let _ = writeln!(out, "\nSummary:");
    let _ = writeln!(
        out,
        "  killed        {} (Primary at epoch {})",
        report.killed, report.epoch_before
    );
    match (&report.new_primary, report.takeover_ms) {
        (Some(p), Some(ms)) => {
            let _ = writeln!(out, "  new Primary   {p} (epoch {})", report.epoch_after);
            let _ = writeln!(
                out,
                "  takeover      {:.0} ms from SIGKILL to the first point accepted from {p} (failoverTimeout {} ms)",
                ms, report.failover_timeout_ms
            );
            if let (Some(d), Some(o)) = (report.detection_ms, report.stale_to_first_point_ms) {
                let _ = writeln!(
                    out,
                    "                = {d:.0} ms until the Primary was stale + {o:.0} ms to promote, fence, flush and accept"
                );
            }
        }
        _ => {
            let _ = writeln!(out, "  new Primary   NONE: no takeover happened");
        }
    }
    let _ = writeln!(
        out,
        "  points        expected {}, received {}, lost {}, duplicated {}, refused as stale {}",
        report.points_expected,
        report.points_received,
        report.lost,
        report.duplicated,
        report.stale_rejected
    );
    let _ = writeln!(
        out,
        "  largest gap   {} ms of data time between consecutive points of a stream",
        report.largest_gap_ms
    );
    let note = match report.mode.as_str() {
        "Hot" if report.behaviour == "vendor" => {
            "Hot, the vendor's design: the Secondary queued what it received, stamped with its own clock, and dropped what it received at or before the Primary's LastDataProcessedTime minus failoverTimeout/2; promoted, it sent the rest: the overlap twice, and, with its clock behind, a gap nobody sent."
        }
        "Hot" => {
            "Hot: the Secondary collected and buffered all along, then flushed exactly the points after the endpoint's watermark."
        }
        "Warm" => {
            "Warm: the Secondary only tested its connection; it started collecting when promoted, so the points produced between the kill and the takeover are lost."
        }
        _ => {
            "Cold: the Secondary stood by at score 1 without touching the source; promoted, it raised its score to 100 and connected, so the points between the kill and the takeover are lost."
        }
    };
    let _ = writeln!(out, "\n{note}");
    out
}
