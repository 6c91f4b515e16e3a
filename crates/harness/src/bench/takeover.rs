//! Takeover latency: a fault on the Primary, over and over, each takeover split into phases
//! from the timestamps the processes themselves record:
//!
//! - *detection*: the fault to the arbiter's status showing the Primary stale (a kill or a
//!   pause) or demoted (a source outage: its score fell to 0);
//! - *decision and push*: to the moment the new Primary learned its role (its
//!   `RoleSinceUnixUs`);
//! - *fence and watermark*: to its fence of the endpoint (`FencedAtUnixUs`);
//! - *first point*: to the first point the endpoint accepted from it at the new epoch;
//! - *overhead*: from the moment the Primary's silence passed failoverTimeout (its last
//!   heartbeat at the arbiter plus failoverTimeout) to that first point: what the takeover
//!   costs beyond the timeout the user chose.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use failover_core::Mode;
use failover_proto::{process, v1};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;

use super::{Percentiles, Progress};
use crate::{
    cluster::{Addresses, Cluster, ClusterSpec, SourceFaultTarget},
    observe::{self, Observer},
};

/// The fault that ends a Primary's term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// SIGKILL, then a restart (it rejoins as Secondary).
    Kill,
    /// SIGSTOP, then SIGCONT (it steps down and rejoins as Secondary).
    Pause,
    /// Its connection to the data source cut, then healed: score 0, so it is demoted.
    SourceOutage,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fault::Kill => "SIGKILL",
            Fault::Pause => "SIGSTOP",
            Fault::SourceOutage => "source outage",
        })
    }
}

/// One takeover, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Takeover {
    /// Fault to the first point accepted from the new Primary.
    pub total_ms: f64,
    /// Fault to the arbiter declaring the Primary stale (or demoting it).
    pub detection_ms: f64,
    /// To the new Primary knowing its role.
    pub decision_push_ms: f64,
    /// To its fence of the endpoint (watermark read in the same call).
    pub fence_ms: f64,
    /// To the first point accepted from it.
    pub first_point_ms: f64,
    /// From failoverTimeout after the Primary's last heartbeat to the first point (kill and
    /// pause only; a source outage is not detected by a timeout).
    pub overhead_ms: Option<f64>,
}

/// The takeovers of one mode and fault.
#[derive(Debug, Clone, Serialize)]
pub struct TakeoverSeries {
    /// Hot, Warm or Cold.
    pub mode: String,
    /// The fault.
    pub fault: Fault,
    /// failoverTimeout of the group.
    pub failover_timeout_ms: u64,
    /// Runs asked for.
    pub runs: usize,
    /// Runs that ended in a takeover and were measured.
    pub measured: usize,
    /// Why the others were not (empty when every run was measured).
    pub failures: Vec<String>,
    /// Per phase: p50, p95, max.
    pub total_ms: Percentiles,
    /// Fault to stale (or demoted) at the arbiter.
    pub detection_ms: Percentiles,
    /// Stale to the new Primary knowing.
    pub decision_push_ms: Percentiles,
    /// Knowing to fenced.
    pub fence_ms: Percentiles,
    /// Fenced to the first accepted point.
    pub first_point_ms: Percentiles,
    /// Above failoverTimeout (kill and pause).
    pub overhead_ms: Option<Percentiles>,
    /// Every run.
    pub samples: Vec<Takeover>,
}

/// Every status the arbiter pushed for a group, as received.
#[derive(Debug, Clone, Default)]
struct StatusLog(Arc<Mutex<Vec<v1::GroupStatus>>>);

impl StatusLog {
    fn start(
        addrs: crate::cluster::Addresses,
        group: String,
    ) -> (StatusLog, tokio::task::JoinHandle<()>) {
        let log = StatusLog::default();
        let sink = log.clone();
        let task = tokio::spawn(observe::follow_group(addrs, group, move |status| {
            sink.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(status);
        }));
        (log, task)
    }

    /// The first status observed at or after `since_us` that `pred` accepts.
    fn first_after(
        &self,
        since_us: i64,
        pred: impl Fn(&v1::GroupStatus) -> bool,
    ) -> Option<v1::GroupStatus> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|s| s.observed_at_unix_us >= since_us && pred(s))
            .cloned()
    }
}

/// Runs `runs` takeovers of `fault` in `mode` on one pair, each fault on whoever is Primary.
pub async fn measure(
    base: &ClusterSpec,
    mode: Mode,
    fault: Fault,
    runs: usize,
    seed: u64,
    progress: &Progress<'_>,
) -> anyhow::Result<TakeoverSeries> {
    let spec = ClusterSpec {
        mode,
        ..base.clone()
    };
    let mut cluster = Cluster::start(spec.clone()).await?;
    let result = series(&mut cluster, fault, runs, seed, progress).await;
    cluster.shutdown().await;
    result
}

async fn series(
    cluster: &mut Cluster,
    fault: Fault,
    runs: usize,
    seed: u64,
    progress: &Progress<'_>,
) -> anyhow::Result<TakeoverSeries> {
    let spec = cluster.spec.clone();
    let obs = Observer::start(&cluster.addrs, &spec.group_id);
    let (log, log_task) = StatusLog::start(cluster.addrs.clone(), spec.group_id.clone());
    let settle_within = spec.failover_timeout * 3 + Duration::from_secs(10);
    crate::cluster::configure_in_order(cluster, &obs, settle_within).await?;
    let mut endpoint = v1::data_endpoint_client::DataEndpointClient::connect(Addresses::url(
        cluster.addrs.endpoint,
    ))
    .await?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut samples = Vec::new();
    let mut failures = Vec::new();
    for run in 1..=runs {
        let outcome = one_takeover(cluster, &obs, &log, &mut endpoint, fault, &mut rng).await;
        match outcome {
            Ok(t) => {
                progress(&format!(
                    "{} {fault} {run}/{runs}: takeover {:.0} ms (detection {:.0}, push {:.1}, fence {:.1}, first point {:.1}{})",
                    spec.mode,
                    t.total_ms,
                    t.detection_ms,
                    t.decision_push_ms,
                    t.fence_ms,
                    t.first_point_ms,
                    t.overhead_ms
                        .map(|o| format!(", {o:.1} above failoverTimeout"))
                        .unwrap_or_default()
                ));
                samples.push(t);
            }
            Err(e) => {
                progress(&format!(
                    "{} {fault} {run}/{runs}: not measured: {e:#}",
                    spec.mode
                ));
                failures.push(format!("run {run}: {e:#}"));
                if failures.len() >= 3 {
                    failures.push("three runs failed: series stopped".into());
                    break;
                }
            }
        }
    }
    log_task.abort();
    let pick = |f: fn(&Takeover) -> f64| Percentiles::of(samples.iter().map(f));
    let overheads: Vec<f64> = samples.iter().filter_map(|t| t.overhead_ms).collect();
    Ok(TakeoverSeries {
        mode: spec.mode.to_string(),
        fault,
        failover_timeout_ms: u64::try_from(spec.failover_timeout.as_millis()).unwrap_or(u64::MAX),
        runs,
        measured: samples.len(),
        failures,
        total_ms: pick(|t| t.total_ms),
        detection_ms: pick(|t| t.detection_ms),
        decision_push_ms: pick(|t| t.decision_push_ms),
        fence_ms: pick(|t| t.fence_ms),
        first_point_ms: pick(|t| t.first_point_ms),
        overhead_ms: (!overheads.is_empty()).then(|| Percentiles::of(overheads.into_iter())),
        samples,
    })
}

/// The expected score of a settled Secondary in this mode.
fn standby_score(mode: Mode) -> u32 {
    match mode {
        Mode::Cold => 1,
        Mode::Hot | Mode::Warm => 100,
    }
}

async fn one_takeover(
    cluster: &mut Cluster,
    obs: &Observer,
    log: &StatusLog,
    endpoint: &mut v1::data_endpoint_client::DataEndpointClient<tonic::transport::Channel>,
    fault: Fault,
    rng: &mut StdRng,
) -> anyhow::Result<Takeover> {
    let spec = cluster.spec.clone();
    let timeout = spec.failover_timeout;
    let settle_within = timeout * 3 + Duration::from_secs(10);
    // Settled: a Primary writing at the current epoch, and the other adapter a live Secondary
    // with its mode's standby score.
    let settled = obs
        .wait_for(settle_within, |t| {
            let Some(p) = t.primary() else { return false };
            spec.adapters.iter().all(|a| {
                t.session(a)
                    .is_some_and(|s| !s.stale && (*a == p || s.score == standby_score(spec.mode)))
            })
        })
        .await;
    if !settled {
        bail!("the pair did not settle within {settle_within:?}");
    }
    let snapshot = obs.snapshot();
    let primary = snapshot.primary().context("no Primary")?;
    let epoch = snapshot.epoch();
    let other = spec.other_adapter(&primary).context("no second adapter")?;
    let audit_request = v1::AuditRequest {
        group_id: spec.group_id.clone(),
        ..Default::default()
    };
    let writing = |a: &v1::AuditReport, who: &str, from_epoch: u64| {
        a.writers
            .iter()
            .filter(|w| w.adapter_id == who && w.epoch >= from_epoch && w.accepted > 0)
            .map(|w| (w.epoch, w.first_accepted_unix_us))
            .min()
    };
    let deadline = Instant::now() + settle_within;
    while writing(
        &endpoint.audit(audit_request.clone()).await?.into_inner(),
        &primary,
        epoch,
    )
    .is_none()
    {
        if Instant::now() > deadline {
            bail!("{primary} wrote nothing at epoch {epoch} within {settle_within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Faults land anywhere in the heartbeat cycle.
    let interval = timeout / 2;
    tokio::time::sleep(interval.mul_f64(rng.random_range(0.0..1.0))).await;

    let fault_us = process::unix_us();
    match fault {
        Fault::Kill => cluster.kill(&primary).await?,
        Fault::Pause => cluster.pause(&primary).await?,
        Fault::SourceOutage => {
            cluster
                .source_fault(SourceFaultTarget::Connection(primary.clone()), true)
                .await?;
        }
    }
    let within = timeout * 2 + Duration::from_secs(5);
    let deadline = Instant::now() + within;
    let first_point_us = loop {
        let audit = endpoint.audit(audit_request.clone()).await?.into_inner();
        if let Some((_, first)) = writing(&audit, &other, epoch + 1) {
            break first;
        }
        if Instant::now() > deadline {
            restore(cluster, fault, &primary).await?;
            bail!("{other} wrote nothing as Primary within {within:?} of the {fault}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let state = cluster.failover_state(&other).await?;
    restore(cluster, fault, &primary).await?;

    let demoted = log
        .first_after(fault_us, |s| {
            s.epoch > epoch
                || s.sessions
                    .iter()
                    .any(|m| m.adapter_id == primary && m.stale)
        })
        .context("the arbiter's status never showed the Primary stale or demoted")?;
    let stale_us = demoted.observed_at_unix_us;
    let last_heartbeat_us = demoted
        .sessions
        .iter()
        .find(|m| m.adapter_id == primary)
        .map(|m| stale_us - i64::try_from(m.heartbeat_age_us).unwrap_or(0));
    let field = |name: &str| {
        state
            .get(name)
            .and_then(serde_json::Value::as_i64)
            .with_context(|| format!("{other}'s FailoverState has no {name}"))
    };
    let role_since_us = field("RoleSinceUnixUs")?;
    let fenced_us = field("FencedAtUnixUs")?;
    let ms = |from: i64, to: i64| (to - from) as f64 / 1000.0;
    let timeout_us = i64::try_from(timeout.as_micros()).unwrap_or(i64::MAX);
    Ok(Takeover {
        total_ms: ms(fault_us, first_point_us),
        detection_ms: ms(fault_us, stale_us),
        decision_push_ms: ms(stale_us, role_since_us),
        fence_ms: ms(role_since_us, fenced_us),
        first_point_ms: ms(fenced_us, first_point_us),
        overhead_ms: match fault {
            Fault::Kill | Fault::Pause => {
                last_heartbeat_us.map(|hb| ms(hb + timeout_us, first_point_us))
            }
            Fault::SourceOutage => None,
        },
    })
}

/// Puts the old Primary back (as a Secondary-to-be) after its fault.
async fn restore(cluster: &mut Cluster, fault: Fault, adapter: &str) -> anyhow::Result<()> {
    match fault {
        Fault::Kill => cluster.restart(adapter).await,
        Fault::Pause => cluster.resume(adapter).await,
        Fault::SourceOutage => {
            cluster
                .source_fault(SourceFaultTarget::Connection(adapter.to_string()), false)
                .await
        }
    }
}
