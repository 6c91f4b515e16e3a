//! What standing by costs: CPU and resident memory of the Secondary (next to the Primary's)
//! per mode at a given data rate, the bytes of memory each point held for egress takes, and the
//! failover service's CPU per heartbeat.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use failover_core::Mode;
use failover_proto::v1;
use serde::Serialize;

use super::{Progress, procstat::ProcSample};
use crate::{
    cluster::{ARBITER, Addresses, Cluster, ClusterSpec},
    observe::Observer,
};

/// One mode's standby, measured over a window.
#[derive(Debug, Clone, Serialize)]
pub struct StandbyCost {
    /// Hot, Warm or Cold.
    pub mode: String,
    /// Points per second produced by the source.
    pub points_per_s: f64,
    /// The Secondary's CPU, percent of one core.
    pub secondary_cpu_percent: f64,
    /// The Secondary's resident memory at the end of the window, MiB.
    pub secondary_rss_mib: f64,
    /// The Primary's CPU, for comparison.
    pub primary_cpu_percent: f64,
    /// The Primary's resident memory, MiB.
    pub primary_rss_mib: f64,
}

/// Memory per point held for egress.
#[derive(Debug, Clone, Serialize)]
pub struct BufferCost {
    /// Points the Primary buffered during an endpoint outage.
    pub points_buffered: u64,
    /// Its resident memory growth meanwhile, MiB.
    pub rss_growth_mib: f64,
    /// Growth / points.
    pub bytes_per_point: f64,
}

/// The failover service's cost per heartbeat.
#[derive(Debug, Clone, Serialize)]
pub struct HeartbeatCost {
    /// Sessions heartbeating at once (each in its own group).
    pub sessions: usize,
    /// Heartbeats answered per second.
    pub heartbeats_per_s: f64,
    /// Arbiter CPU per heartbeat, microseconds.
    pub cpu_us_per_heartbeat: f64,
}

/// Everything a Hot run measures besides the Secondary: buffer bytes and heartbeat CPU.
#[derive(Debug, Clone)]
pub struct HotExtras {
    /// Bytes per buffered point.
    pub buffer: BufferCost,
    /// CPU per heartbeat.
    pub heartbeat: HeartbeatCost,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Measures one mode; in Hot mode also the buffer and heartbeat costs.
pub async fn measure(
    base: &ClusterSpec,
    mode: Mode,
    window: Duration,
    progress: &Progress<'_>,
) -> anyhow::Result<(StandbyCost, Option<HotExtras>)> {
    let spec = ClusterSpec {
        mode,
        ..base.clone()
    };
    let mut cluster = Cluster::start(spec.clone()).await?;
    let result = measure_on(&mut cluster, window, progress).await;
    cluster.shutdown().await;
    result
}

async fn measure_on(
    cluster: &mut Cluster,
    window: Duration,
    progress: &Progress<'_>,
) -> anyhow::Result<(StandbyCost, Option<HotExtras>)> {
    let spec = cluster.spec.clone();
    let obs = Observer::start(&cluster.addrs, &spec.group_id);
    let within = spec.failover_timeout * 3 + Duration::from_secs(10);
    crate::cluster::configure_in_order(cluster, &obs, within).await?;
    let standby_score = if spec.mode == Mode::Cold { 1 } else { 100 };
    let settled = obs
        .wait_for(within, |t| {
            let Some(p) = t.primary() else { return false };
            spec.adapters.iter().all(|a| {
                t.session(a)
                    .is_some_and(|s| !s.stale && (*a == p || s.score == standby_score))
            }) && t.audit.as_ref().is_some_and(|a| a.received > 0)
        })
        .await;
    if !settled {
        bail!("the {} pair did not settle within {within:?}", spec.mode);
    }
    let primary = obs.snapshot().primary().context("no Primary")?;
    let secondary = spec.other_adapter(&primary).context("no second adapter")?;
    let pid = |name: &str| {
        cluster
            .pid(name)
            .with_context(|| format!("{name} is not running"))
    };
    let (p_pid, s_pid) = (pid(&primary)?, pid(&secondary)?);
    // Warm-up: the first second holds connection setup.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (p0, s0) = (ProcSample::read(p_pid)?, ProcSample::read(s_pid)?);
    tokio::time::sleep(window).await;
    let (p1, s1) = (ProcSample::read(p_pid)?, ProcSample::read(s_pid)?);
    let cost = StandbyCost {
        mode: spec.mode.to_string(),
        points_per_s: spec.rate_hz * f64::from(spec.streams),
        secondary_cpu_percent: s1.cpu_percent_since(&s0),
        secondary_rss_mib: mib(s1.rss_bytes),
        primary_cpu_percent: p1.cpu_percent_since(&p0),
        primary_rss_mib: mib(p1.rss_bytes),
    };
    progress(&format!(
        "standby cost, {} at {:.0} points/s: Secondary {:.1}% CPU, {:.1} MiB; Primary {:.1}% CPU, {:.1} MiB",
        cost.mode,
        cost.points_per_s,
        cost.secondary_cpu_percent,
        cost.secondary_rss_mib,
        cost.primary_cpu_percent,
        cost.primary_rss_mib
    ));
    if spec.mode != Mode::Hot {
        return Ok((cost, None));
    }
    let buffer = buffer_cost(cluster, &primary, p_pid).await?;
    progress(&format!(
        "buffer cost: {} points held during an endpoint outage grew the Primary by {:.1} MiB: {:.1} bytes per point",
        buffer.points_buffered, buffer.rss_growth_mib, buffer.bytes_per_point
    ));
    let heartbeat = heartbeat_cost(cluster, 32, window).await?;
    progress(&format!(
        "heartbeat cost: {} sessions, {:.0} heartbeats/s answered, {:.1} µs of arbiter CPU each",
        heartbeat.sessions, heartbeat.heartbeats_per_s, heartbeat.cpu_us_per_heartbeat
    ));
    Ok((cost, Some(HotExtras { buffer, heartbeat })))
}

/// Holds the Primary's egress with an endpoint outage and weighs what it buffers.
async fn buffer_cost(cluster: &mut Cluster, primary: &str, pid: u32) -> anyhow::Result<BufferCost> {
    let buffered = |state: &serde_json::Value| {
        state
            .get("BufferedPoints")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let before_points = buffered(&cluster.failover_state(primary).await?);
    let before = ProcSample::read(pid)?;
    cluster.endpoint_outage(true).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = ProcSample::read(pid)?;
    let after_points = buffered(&cluster.failover_state(primary).await?);
    cluster.endpoint_outage(false).await?;
    let points = after_points.saturating_sub(before_points);
    let growth = after.rss_bytes.saturating_sub(before.rss_bytes);
    Ok(BufferCost {
        points_buffered: points,
        rss_growth_mib: mib(growth),
        bytes_per_point: if points == 0 {
            0.0
        } else {
            growth as f64 / points as f64
        },
    })
}

/// Opens `sessions` heartbeat streams, each in a group of its own, and sends the next heartbeat
/// the moment the previous is answered, for `window`; the arbiter's CPU over the count.
async fn heartbeat_cost(
    cluster: &Cluster,
    sessions: usize,
    window: Duration,
) -> anyhow::Result<HeartbeatCost> {
    let pid = cluster.pid(ARBITER).context("the arbiter is not running")?;
    let url = Addresses::url(cluster.addrs.arbiter);
    let channel = tonic::transport::Endpoint::new(url)?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let before = ProcSample::read(pid)?;
    let end = Instant::now() + window;
    let mut tasks = Vec::new();
    for i in 0..sessions {
        let mut client = v1::arbiter_client::ArbiterClient::new(channel.clone());
        tasks.push(tokio::spawn(async move {
            let hb = v1::HeartbeatRequest {
                group_id: format!("bench-heartbeats-{i}"),
                adapter_id: format!("bench-{i}"),
                incarnation: format!("bench-{i}-{}", std::process::id()),
                score: 100,
                mode: v1::Mode::Hot as i32,
                failover_timeout_ms: 60_000,
                name: format!("bench-{i}"),
                ..Default::default()
            };
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            if tx.send(hb.clone()).await.is_err() {
                return 0u64;
            }
            let Ok(resp) = client
                .heartbeat(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
            else {
                return 0;
            };
            let mut answers = resp.into_inner();
            let mut answered = 0u64;
            while let Ok(Some(_)) = answers.message().await {
                answered += 1;
                if Instant::now() >= end || tx.send(hb.clone()).await.is_err() {
                    break;
                }
            }
            answered
        }));
    }
    let started = Instant::now();
    let mut total = 0u64;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    let after = ProcSample::read(pid)?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = after.cpu.saturating_sub(before.cpu);
    if total == 0 {
        bail!("the arbiter answered no heartbeat");
    }
    Ok(HeartbeatCost {
        sessions,
        heartbeats_per_s: total as f64 / elapsed,
        cpu_us_per_heartbeat: cpu.as_secs_f64() * 1e6 / total as f64,
    })
}
