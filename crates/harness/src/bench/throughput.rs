//! Data-path throughput: points per second from the source through a Hot pair (both adapters
//! collecting, the Primary egressing, the endpoint auditing every point), found by raising the
//! offered rate until the pair no longer keeps up; next to it, in the same run, a baseline of
//! what plain tonic carries here: a client streaming the same batches to a server that only
//! counts them (`failover-lab bench-sink`). Also loss and duplicates of a Hot takeover at the
//! highest rate the pair sustained.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use failover_core::Mode;
use failover_proto::{process, v1};
use serde::Serialize;

use super::{Progress, procstat::ProcSample};
use crate::{
    cluster::{ARBITER, Addresses, Cluster, ClusterSpec, ENDPOINT, SOURCE},
    observe::Observer,
};

/// Streams of the source in throughput runs; the rate sets the ticks per second.
pub const STREAMS: u32 = 1000;

/// One offered rate.
#[derive(Debug, Clone, Serialize)]
pub struct RateStep {
    /// Points per second the source produced.
    pub offered_points_per_s: f64,
    /// Points per second the endpoint accepted over the measuring window.
    pub accepted_points_per_s: f64,
    /// Points the audit counted as lost (subscriptions that fell behind end and lose points).
    pub lost: u64,
    /// Points held by the Primary at the end of the window (growing: not keeping up).
    pub primary_buffered: u64,
    /// How fast the Primary's buffer grew over the window, points per second (from its
    /// `BufferedPoints` at the window's start and end; negative: it drained).
    pub primary_buffer_growth_per_s: f64,
    /// Points per second the Hot Secondary collected over the window (from its
    /// `failover_adapter_points_collected_total`), where it could be read.
    pub secondary_collected_points_per_s: Option<f64>,
    /// CPU of each process over the window, percent of one core (the Primary and the
    /// Secondary by role, then source, endpoint, arbiter).
    pub cpu_percent: BTreeMap<String, f64>,
    /// The pair kept up: accepted at least 95% of the offered rate, lost nothing, and the
    /// Primary's buffer stayed bounded: it grew by at most 1% of the offered rate a second over
    /// the window, and ended under half a second of data. A rate the pipe cannot keep up with
    /// fills the buffer, however much the endpoint accepts meanwhile, and is not sustained.
    pub sustained: bool,
}

impl RateStep {
    /// One line: rates, loss, buffer, CPU per process.
    pub fn describe(&self) -> String {
        let cpu: Vec<String> = self
            .cpu_percent
            .iter()
            .map(|(k, v)| format!("{k} {v:.0}%"))
            .collect();
        format!(
            "offered {:.0} points/s, accepted {:.0} points/s, lost {}, Primary buffer {} (growing {:+.0} points/s): {} (CPU: {})",
            self.offered_points_per_s,
            self.accepted_points_per_s,
            self.lost,
            self.primary_buffered,
            self.primary_buffer_growth_per_s,
            if self.sustained {
                "kept up"
            } else {
                "did not keep up"
            },
            cpu.join(", ")
        )
    }
}

/// The plain-tonic baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    /// Points per message, as in the pair's writes.
    pub batch_points: usize,
    /// Points per second the counting server received.
    pub points_per_s: f64,
    /// Messages per second.
    pub batches_per_s: f64,
}

/// Loss and duplicates of a Hot takeover at rate.
#[derive(Debug, Clone, Serialize)]
pub struct LossAtRate {
    /// Points per second offered.
    pub points_per_s: f64,
    /// SIGKILL of the Primary to the first point accepted from the new one.
    pub takeover_ms: Option<f64>,
    /// Points the new Primary flushed from its buffer and live (its writes at the new epoch).
    pub accepted_from_new_primary: u64,
    /// Points expected by the audit (every stream from its first to its last point).
    pub expected: u64,
    /// Expected and missing.
    pub lost: u64,
    /// Received twice.
    pub duplicated: u64,
}

/// The pair's throughput steps, the baseline, and the ratio.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Every rate tried, lowest first.
    pub steps: Vec<RateStep>,
    /// The highest rate sustained (points per second), measured as accepted.
    pub sustained_points_per_s: f64,
    /// The most the endpoint accepted at any offered rate, kept up or not (the saturated
    /// data path).
    pub peak_points_per_s: f64,
    /// The plain-tonic baseline.
    pub baseline: Baseline,
    /// sustained / baseline.
    pub ratio_to_baseline: f64,
    /// peak / baseline.
    pub peak_ratio_to_baseline: f64,
}
/// Settings of the data path shared by the throughput runs.
pub fn rate_spec(base: &ClusterSpec, points_per_s: f64) -> ClusterSpec {
    ClusterSpec {
        mode: Mode::Hot,
        streams: STREAMS,
        components: 4,
        rate_hz: points_per_s / f64::from(STREAMS),
        ..base.clone()
    }
}

/// Tries rates from `start` up, doubling while sustained, then once between the last
/// sustained rate and the first that was not.
pub async fn find_sustained(
    base: &ClusterSpec,
    start: f64,
    max: f64,
    window: Duration,
    progress: &Progress<'_>,
) -> anyhow::Result<Vec<RateStep>> {
    find_sustained_by(base, start, max, window, |s| s.sustained, progress).await
}

/// [`find_sustained`], with `kept_up` saying which steps count as kept up.
pub async fn find_sustained_by(
    base: &ClusterSpec,
    start: f64,
    max: f64,
    window: Duration,
    kept_up: impl Fn(&RateStep) -> bool,
    progress: &Progress<'_>,
) -> anyhow::Result<Vec<RateStep>> {
    let mut steps: Vec<RateStep> = Vec::new();
    let mut rate = start;
    loop {
        let step = one_rate(base, rate, window).await?;
        progress(&step.describe());
        let sustained = kept_up(&step);
        steps.push(step);
        if !sustained || rate * 2.0 > max {
            break;
        }
        rate *= 2.0;
    }
    let best = steps
        .iter()
        .filter(|s| kept_up(s))
        .map(|s| s.offered_points_per_s)
        .fold(0.0, f64::max);
    if let Some(fail) = steps.iter().find(|s| !kept_up(s)) {
        let mid = if best > 0.0 {
            (best + fail.offered_points_per_s) / 2.0
        } else {
            fail.offered_points_per_s / 2.0
        };
        let step = one_rate(base, mid, window).await?;
        progress(&step.describe());
        steps.push(step);
    }
    steps.sort_by(|a, b| a.offered_points_per_s.total_cmp(&b.offered_points_per_s));
    Ok(steps)
}

/// A started and settled Hot pair at a rate, with the Primary's name.
async fn settled_pair(spec: ClusterSpec) -> anyhow::Result<(Cluster, Observer, String)> {
    let mut cluster = Cluster::start(spec.clone()).await?;
    let obs = Observer::start(&cluster.addrs, &spec.group_id);
    let settle = async {
        let within = spec.failover_timeout * 3 + Duration::from_secs(10);
        crate::cluster::configure_in_order(&cluster, &obs, within).await?;
        let ok = obs
            .wait_for(within, |t| {
                t.primary().is_some()
                    && spec
                        .adapters
                        .iter()
                        .all(|a| t.session(a).is_some_and(|s| !s.stale && s.score == 100))
                    && t.audit.as_ref().is_some_and(|a| a.received > 0)
            })
            .await;
        if !ok {
            bail!("the pair did not settle within {within:?}");
        }
        obs.snapshot().primary().context("no Primary")
    };
    match settle.await {
        Ok(primary) => Ok((cluster, obs, primary)),
        Err(e) => {
            cluster.shutdown().await;
            Err(e)
        }
    }
}

async fn one_rate(
    base: &ClusterSpec,
    points_per_s: f64,
    window: Duration,
) -> anyhow::Result<RateStep> {
    let spec = rate_spec(base, points_per_s);
    let (mut cluster, _obs, primary) = settled_pair(spec.clone()).await?;
    let result = async {
        let request = v1::AuditRequest {
            group_id: spec.group_id.clone(),
            ..Default::default()
        };
        let mut endpoint = v1::data_endpoint_client::DataEndpointClient::connect(Addresses::url(
            cluster.addrs.endpoint,
        ))
        .await?;
        // Let the first bursts (subscription start, buffer flush) pass.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let secondary = spec.other_adapter(&primary).unwrap_or_default();
        let processes: Vec<(String, u32)> = [
            ("primary", primary.as_str()),
            ("secondary", secondary.as_str()),
            ("source", SOURCE),
            ("endpoint", ENDPOINT),
            ("arbiter", ARBITER),
        ]
        .into_iter()
        .filter_map(|(label, name)| cluster.pid(name).map(|pid| (label.to_string(), pid)))
        .collect();
        let sample = || -> Vec<Option<ProcSample>> {
            processes
                .iter()
                .map(|(_, pid)| ProcSample::read(*pid).ok())
                .collect()
        };
        let buffered_now = || async {
            cluster.failover_state(&primary).await.map(|s| {
                s.get("BufferedPoints")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0)
            })
        };
        let buffered0 = buffered_now().await?;
        let t0 = Instant::now();
        let cpu0 = sample();
        let before = endpoint.audit(request.clone()).await?.into_inner();
        let collected0 = collected_total(&cluster, &secondary).await;
        tokio::time::sleep(window).await;
        let after = endpoint.audit(request.clone()).await?.into_inner();
        let collected1 = collected_total(&cluster, &secondary).await;
        let cpu1 = sample();
        let elapsed = t0.elapsed().as_secs_f64();
        let cpu_percent = processes
            .iter()
            .zip(cpu0.iter().zip(&cpu1))
            .filter_map(|((label, _), (a, b))| match (a, b) {
                (Some(a), Some(b)) => Some((label.clone(), b.cpu_percent_since(a))),
                _ => None,
            })
            .collect();
        let buffered = buffered_now().await?;
        let accepted = (after.received - before.received) as f64 / elapsed;
        let offered = spec.rate_hz * f64::from(spec.streams);
        let lost = after.lost;
        let growth = (buffered as f64 - buffered0 as f64) / elapsed;
        Ok::<_, anyhow::Error>(RateStep {
            offered_points_per_s: offered,
            accepted_points_per_s: accepted,
            lost,
            primary_buffered: buffered,
            primary_buffer_growth_per_s: growth,
            secondary_collected_points_per_s: match (collected0, collected1) {
                (Some(a), Some(b)) => Some((b - a) / elapsed),
                _ => None,
            },
            cpu_percent,
            sustained: kept_up(offered, accepted, lost, buffered, growth),
        })
    }
    .await;
    cluster.shutdown().await;
    result
}

/// A step is sustained when the endpoint took at least 95% of the offered rate, nothing was
/// lost, and the Primary's buffer stayed bounded: it grew by at most 1% of the offered rate a
/// second, and ended under half a second of data.
pub fn kept_up(offered: f64, accepted: f64, lost: u64, buffered: u64, growth_per_s: f64) -> bool {
    accepted >= 0.95 * offered
        && lost == 0
        && growth_per_s <= 0.01 * offered
        && (buffered as f64) < offered / 2.0
}

/// An adapter's `failover_adapter_points_collected_total`, from its `/metrics`.
async fn collected_total(cluster: &Cluster, adapter: &str) -> Option<f64> {
    let addr = cluster.addrs.adapters.get(adapter)?;
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with("failover_adapter_points_collected_total"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// SIGKILLs the Primary of a Hot pair at `points_per_s` and audits what reached the endpoint.
pub async fn loss_at_rate(
    base: &ClusterSpec,
    points_per_s: f64,
    progress: &Progress<'_>,
) -> anyhow::Result<LossAtRate> {
    let spec = rate_spec(base, points_per_s);
    let (mut cluster, obs, primary) = settled_pair(spec.clone()).await?;
    let result = async {
        let other = spec.other_adapter(&primary).context("no second adapter")?;
        let epoch = obs.snapshot().epoch();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let kill_us = process::unix_us();
        cluster.kill(&primary).await?;
        let within = spec.failover_timeout * 2 + Duration::from_secs(10);
        let took_over = obs
            .wait_for(within, |t| t.primary().as_deref() == Some(other.as_str()))
            .await;
        if !took_over {
            bail!("{other} did not take over within {within:?}");
        }
        // Run on until the flush is done and live data flows.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let audit = cluster.audit().await?;
        let from_new: Vec<&v1::WriterStats> = audit
            .writers
            .iter()
            .filter(|w| w.adapter_id == other && w.epoch > epoch)
            .collect();
        let report = LossAtRate {
            points_per_s,
            takeover_ms: from_new
                .iter()
                .filter(|w| w.accepted > 0)
                .map(|w| (w.first_accepted_unix_us - kill_us) as f64 / 1000.0)
                .reduce(f64::min),
            accepted_from_new_primary: from_new.iter().map(|w| w.accepted).sum(),
            expected: audit.expected,
            lost: audit.lost,
            duplicated: audit.duplicated,
        };
        progress(&format!(
            "loss at rate: {points_per_s:.0} points/s, SIGKILL {primary}: {other} took over in {} ms and wrote {} points; lost {}, duplicated {} of {} expected",
            report.takeover_ms.map_or("?".into(), |t| format!("{t:.0}")),
            report.accepted_from_new_primary,
            report.lost,
            report.duplicated,
            report.expected
        ));
        Ok(report)
    }
    .await;
    cluster.shutdown().await;
    result
}

/// The counting server of the baseline.
#[derive(Debug, Default)]
struct Sink;

#[tonic::async_trait]
impl v1::bench_sink_server::BenchSink for Sink {
    async fn push(
        &self,
        request: tonic::Request<tonic::Streaming<v1::PointBatch>>,
    ) -> Result<tonic::Response<v1::PushSummary>, tonic::Status> {
        let mut stream = request.into_inner();
        let mut summary = v1::PushSummary::default();
        while let Some(batch) = stream.message().await? {
            summary.batches += 1;
            summary.points += batch.stream_ids.len() as u64;
        }
        Ok(tonic::Response::new(summary))
    }
}

/// Serves the baseline's counting server (`failover-lab bench-sink`) until `shutdown`.
pub async fn serve_sink(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let health = process::health_service("failover.v1.BenchSink").await;
    process::server_builder()
        .add_service(health)
        .add_service(
            v1::bench_sink_server::BenchSinkServer::new(Sink)
                .max_decoding_message_size(64 * 1024 * 1024),
        )
        .serve_with_incoming_shutdown(process::incoming(listener), shutdown)
        .await?;
    Ok(())
}

/// A batch like the pair's: `points` points, stream by stream then tick by tick.
pub fn sample_batch(points: usize) -> v1::PointBatch {
    let streams = STREAMS as usize;
    let mut b = v1::PointBatch::default();
    for i in 0..points {
        let stream = u32::try_from(i % streams).unwrap_or(0);
        let seq = (i / streams) as u64 + 1_000_000;
        b.stream_ids.push(stream);
        b.seqs.push(seq);
        b.timestamps_ms
            .push(1_700_000_000_000 + i64::try_from(seq).unwrap_or(0));
        b.values
            .push(50.0 + 40.0 * (seq as f64 * 0.05 + f64::from(stream)).sin());
    }
    b
}

/// Starts `failover-lab bench-sink` as a process and streams `batch_points`-point batches to it
/// for `window`, as fast as one client stream carries them.
pub async fn baseline(batch_points: usize, window: Duration) -> anyhow::Result<Baseline> {
    let ip = crate::cluster::cluster_ip();
    let port = crate::cluster::hold_ports(ip, 1)?
        .pop()
        .context("no port")?
        .local_addr()?
        .port();
    let addr = SocketAddr::from((ip, port));
    let exe = std::env::current_exe().context("cannot locate failover-lab")?;
    let exe = if exe.file_stem().is_some_and(|s| s == "failover-lab") {
        exe
    } else {
        // A test executable: the binary is in the folder above.
        crate::cluster::bin_dir()?.join("failover-lab")
    };
    let mut child = tokio::process::Command::new(&exe)
        .args(["bench-sink", "--listen", &addr.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {} bench-sink", exe.display()))?;
    let result = async {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !crate::cluster::grpc_healthy(addr).await {
            if Instant::now() > deadline {
                bail!("bench-sink did not serve at {addr} within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let channel = tonic::transport::Endpoint::new(Addresses::url(addr))?
            .tcp_nodelay(true)
            .connect()
            .await?;
        let mut client = v1::bench_sink_client::BenchSinkClient::new(channel);
        let batch = sample_batch(batch_points);
        let start = Instant::now();
        let end = start + window;
        let outgoing = futures::stream::unfold((), move |()| {
            let batch = batch.clone();
            async move { (Instant::now() < end).then_some((batch, ())) }
        });
        let summary = client.push(outgoing).await?.into_inner();
        let elapsed = start.elapsed().as_secs_f64();
        Ok(Baseline {
            batch_points,
            points_per_s: summary.points as f64 / elapsed,
            batches_per_s: summary.batches as f64 / elapsed,
        })
    }
    .await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    result
}

#[cfg(test)]
mod tests {
    /// A rate the pipe does not keep up with fills the Primary's buffer, however much the
    /// endpoint accepts meanwhile, and is not sustained: a step of 6 M points/s offered and
    /// 5.8 M accepted whose buffer grew to 860,000 points over a 2 s window passed the old rule
    /// (an end buffer under half a second of data) and fails this one.
    #[test]
    fn a_step_whose_buffer_grows_is_not_sustained() {
        assert!(!super::kept_up(6e6, 5.8e6, 0, 860_000, 430_000.0));
        assert!(super::kept_up(6e6, 5.9e6, 0, 40_000, 1_000.0));
        // A draining buffer is fine; a full one, an endpoint behind, or a loss are not.
        assert!(super::kept_up(6e6, 6.1e6, 0, 10_000, -50_000.0));
        assert!(!super::kept_up(6e6, 5.9e6, 0, 3_500_000, 0.0));
        assert!(!super::kept_up(6e6, 5.0e6, 0, 0, 0.0));
        assert!(!super::kept_up(6e6, 6e6, 1, 0, 0.0));
    }
}
