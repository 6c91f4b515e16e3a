//! The fleet (`--parts fleet`): many failover groups on one failover service. N groups of two
//! simulated members each heartbeat one failover-arbiter process, over the lab's gRPC stream
//! or the vendor's REST API (keep-alive HTTPS with the service's self-signed certificate, one
//! request per heartbeat). A member is a task of this process that speaks the real protocol as
//! our adapter does (score 100, Hot, claiming Primary while told so, the newest epoch it heard),
//! with no data path: the service's cost and decisions are what is measured.
//!
//! For each wire and size, in one run:
//! 1. the groups join (each group's first member first, so it is Primary), and settle;
//! 2. over a steady window: heartbeats per second taken, the service's CPU per heartbeat, its
//!    memory per group, and promotions (none should happen: a false failover);
//! 3. the Primaries of some groups are killed (their tasks stop): from each one's staleness (its
//!    last heartbeat plus failoverTimeout) to the service's decision (the new Primary in its
//!    `WatchGroup` status) and to the new Primary hearing its role;
//! 4. the service is SIGKILLed and started again on its ports: the members reconnect; how long
//!    until every group has a Primary again, and how many groups got another Primary than
//!    before (a spurious promotion).
//!
//! With `--fleet-store etcd` ([`services`]), two services share a three-member etcd cluster
//! and the members know both: the figures are the leader's, etcd's calls and writes are counted
//! over the window, and step 4 SIGKILLs the leader instead (the other takes over).

use std::{
    collections::HashMap,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::Context;
use failover_proto::{process, v1};
use serde::Serialize;
use tokio::task::JoinHandle;

use super::{Progress, procstat::ProcSample};

mod member;
mod services;
use member::{Member, Shared, grpc_member, rest_member};
pub use services::Store;
use services::{Service, Services};

/// The lab's gRPC heartbeat stream, or the vendor's REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Wire {
    /// failover-lab's stream; roles pushed.
    Grpc,
    /// The vendor's API over HTTPS; roles pulled in heartbeat answers.
    Rest,
}

impl Wire {
    fn name(self) -> &'static str {
        match self {
            Wire::Grpc => "gRPC",
            Wire::Rest => "REST",
        }
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Each run: a wire and a number of groups.
    pub runs: Vec<(Wire, usize)>,
    /// Every group's failoverTimeout.
    pub failover_timeout: Duration,
    /// The steady window.
    pub window: Duration,
    /// Groups whose Primary is killed (at most the groups).
    pub victims: usize,
    /// Where the failover service keeps leadership and epochs.
    pub store: Store,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            runs: [100, 1000, 5000]
                .into_iter()
                .flat_map(|n| [(Wire::Grpc, n), (Wire::Rest, n)])
                .collect(),
            failover_timeout: Duration::from_secs(2),
            window: Duration::from_secs(10),
            victims: 20,
            store: Store::Memory,
        }
    }
}

/// One run's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FleetRun {
    /// "gRPC" or "REST".
    pub wire: String,
    /// "memory" (one service) or "etcd" (two on three etcd members).
    pub store: String,
    /// etcd's calls answered per second over the window, all members (0 in memory).
    pub etcd_calls_per_s: f64,
    /// etcd's raft proposals committed per second over the window (its writes; 0 in memory).
    pub etcd_writes_per_s: f64,
    /// Groups of two members.
    pub groups: usize,
    /// Joining: from the first member started to every group settled, seconds.
    pub join_s: f64,
    /// Heartbeats taken per second over the window.
    pub heartbeats_per_s: f64,
    /// The service's CPU over the window, percent of one core.
    pub cpu_percent: f64,
    /// The service's CPU per heartbeat taken, microseconds.
    pub cpu_us_per_heartbeat: f64,
    /// The service's resident memory per group (after joining, less before), KiB.
    pub memory_kib_per_group: f64,
    /// Promotions during the window (goal 0).
    pub false_failovers: u64,
    /// Primaries killed.
    pub killed: usize,
    /// Of them, the groups whose other member became Primary.
    pub taken_over: usize,
    /// From staleness to the service's decision, ms: p50, p99, max.
    pub decision_ms: [f64; 3],
    /// From staleness to the new Primary hearing its role, ms: p50, p99, max.
    pub role_heard_ms: [f64; 3],
    /// After the service's SIGKILL and restart (with etcd: the leader's SIGKILL, the other
    /// taking over): groups whose Primary changed (goal 0).
    pub restart_spurious: usize,
    /// From the restart to every group having a Primary again, seconds.
    pub restart_decided_s: f64,
    /// Groups with no Primary 30 s after the restart.
    pub restart_undecided: usize,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
}

/// p50, p99 and max (nearest rank); zeros when empty.
fn p50_p99_max(mut v: Vec<f64>) -> [f64; 3] {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return [0.0; 3];
    }
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    [rank(0.5), rank(0.99), v[v.len() - 1]]
}

pub(super) fn group_id(g: usize) -> String {
    format!("fleet-{g:05}")
}

pub(super) fn member_name(g: usize, m: usize) -> String {
    format!("fleet-{g:05}-{}", ["a", "b"][m])
}

/// Members per connection (a gRPC channel, an HTTP client's pool).
const PER_CONNECTION: usize = 50;

struct Fleet {
    members: Vec<[Arc<Member>; 2]>,
    tasks: HashMap<(usize, usize), JoinHandle<()>>,
    shared: Arc<Shared>,
    /// Per connection, a channel to each service.
    channels: Vec<Vec<tonic::transport::Channel>>,
    clients: Vec<reqwest::Client>,
    bases: Vec<String>,
}

impl Fleet {
    async fn new(wire: Wire, groups: usize, services: &[&Service]) -> anyhow::Result<Fleet> {
        let connections = groups.div_ceil(PER_CONNECTION / 2).max(1);
        let mut channels = Vec::new();
        let mut clients = Vec::new();
        match wire {
            Wire::Grpc => {
                for _ in 0..connections {
                    channels.push(
                        services
                            .iter()
                            .map(|s| {
                                Ok(tonic::transport::Endpoint::from_shared(format!(
                                    "http://{}",
                                    s.grpc
                                ))?
                                .connect_lazy())
                            })
                            .collect::<anyhow::Result<Vec<_>>>()?,
                    );
                }
            }
            Wire::Rest => {
                for _ in 0..connections {
                    let mut client = reqwest::Client::builder().timeout(Duration::from_secs(30));
                    for s in services {
                        let pem = std::fs::read(&s.ca)?;
                        client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
                    }
                    clients.push(client.build()?);
                }
            }
        }
        Ok(Fleet {
            members: (0..groups)
                .map(|_| [Arc::default(), Arc::default()])
                .collect(),
            tasks: HashMap::new(),
            shared: Arc::default(),
            channels,
            clients,
            bases: services
                .iter()
                .map(|s| format!("https://{}", s.cfs))
                .collect(),
        })
    }

    fn start(&mut self, wire: Wire, g: usize, m: usize, ft: Duration) {
        let me = self.members[g][m].clone();
        let shared = self.shared.clone();
        let c = g / (PER_CONNECTION / 2);
        let task = match wire {
            Wire::Grpc => tokio::spawn(grpc_member(self.channels[c].clone(), g, m, ft, me, shared)),
            Wire::Rest => tokio::spawn(rest_member(
                self.clients[c].clone(),
                self.bases.clone(),
                g,
                m,
                ft,
                me,
                shared,
            )),
        };
        self.tasks.insert((g, m), task);
    }

    /// Kills a member: its task ends, and it is Primary of nothing any more.
    fn stop(&mut self, g: usize, m: usize) {
        if let Some(t) = self.tasks.remove(&(g, m)) {
            t.abort();
        }
        self.members[g][m].primary.store(false, Ordering::Relaxed);
    }

    /// The member told Primary in each group (None: none, or both).
    fn primaries(&self) -> Vec<Option<usize>> {
        self.members
            .iter()
            .map(|[a, b]| {
                match (
                    a.primary.load(Ordering::Relaxed),
                    b.primary.load(Ordering::Relaxed),
                ) {
                    (true, false) => Some(0),
                    (false, true) => Some(1),
                    _ => None,
                }
            })
            .collect()
    }

    fn promotions(&self) -> Vec<i64> {
        self.members
            .iter()
            .flat_map(|pair| pair.iter().map(|m| m.promoted_us.load(Ordering::Relaxed)))
            .collect()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for t in self.tasks.values() {
            t.abort();
        }
    }
}

/// Waits until `done` holds, checking every 100 ms, at most `within`.
async fn wait(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < until {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done()
}

/// Runs every wire and size in turn.
pub async fn measure(opts: &FleetOptions, progress: &Progress<'_>) -> Vec<FleetRun> {
    let mut runs = Vec::new();
    for (wire, groups) in &opts.runs {
        progress(&format!(
            "fleet: {groups} groups of two members over {}, failoverTimeout {} ms",
            wire.name(),
            opts.failover_timeout.as_millis()
        ));
        let mut run = FleetRun {
            wire: wire.name().into(),
            groups: *groups,
            store: opts.store.name().into(),
            ..FleetRun::default()
        };
        if let Err(e) = one(opts, *wire, *groups, &mut run, progress).await {
            progress(&format!("fleet: {e:#}"));
            run.error = Some(format!("{e:#}"));
        }
        progress(&format!("fleet: {}", describe(&run)));
        runs.push(run);
    }
    runs
}

async fn one(
    opts: &FleetOptions,
    wire: Wire,
    groups: usize,
    run: &mut FleetRun,
    progress: &Progress<'_>,
) -> anyhow::Result<()> {
    let ft = opts.failover_timeout;
    let dir = tempfile::Builder::new()
        .prefix("failover-lab-fleet-")
        .tempdir()?;
    let mut services = Services::start(opts.store, dir.path()).await?;
    let lead = services.leader().await?;
    let pid = services.list[lead].pid().context("no pid")?;
    // Let the service's start settle before its idle memory is read.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = ProcSample::read(pid)?;
    // The members try the leader first (as an adapter whose list starts with it would): a
    // connection pool to each service for 10,000 REST members would pass the open-file limit.
    let mut ordered: Vec<&Service> = services.list.iter().collect();
    ordered.rotate_left(lead);
    let mut fleet = Fleet::new(wire, groups, &ordered).await?;
    let service = &services.list[lead];
    // 1. Each group's first member, spread over a heartbeat interval; then the second.
    let started = std::time::Instant::now();
    let within = Duration::from_secs(30) + Duration::from_millis(groups as u64 * 10);
    for m in 0..2 {
        for g in 0..groups {
            fleet.start(wire, g, m, ft);
            if g % 100 == 99 {
                tokio::time::sleep(ft / 2 * 100 / u32::try_from(groups).unwrap_or(1).max(100))
                    .await;
            }
        }
        if m == 0
            && !wait(within, || {
                fleet
                    .members
                    .iter()
                    .all(|[a, _]| a.primary.load(Ordering::Relaxed))
            })
            .await
        {
            anyhow::bail!("the first members were not all Primary within {within:?}");
        }
    }
    // The second members are settled when each has an answer (an epoch heard).
    if !wait(within, || {
        fleet
            .members
            .iter()
            .all(|[_, b]| b.epoch.load(Ordering::Relaxed) > 0)
    })
    .await
    {
        anyhow::bail!("the second members were not all answered within {within:?}");
    }
    run.join_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(ft).await;
    // 2. The steady window.
    let promotions_before = fleet.promotions();
    let hb0 = service.heartbeats_taken().await?;
    let etcd0 = services.etcd_counts().await?;
    let cpu0 = ProcSample::read(pid)?;
    tokio::time::sleep(opts.window).await;
    let hb1 = service.heartbeats_taken().await?;
    let etcd1 = services.etcd_counts().await?;
    let cpu1 = ProcSample::read(pid)?;
    let elapsed = cpu1.at.duration_since(cpu0.at).as_secs_f64();
    run.etcd_calls_per_s = (etcd1.0 - etcd0.0) / elapsed;
    run.etcd_writes_per_s = (etcd1.1 - etcd0.1) / elapsed;
    run.heartbeats_per_s = (hb1 - hb0) as f64 / elapsed;
    run.cpu_percent = cpu1.cpu_percent_since(&cpu0);
    run.cpu_us_per_heartbeat =
        cpu1.cpu.saturating_sub(cpu0.cpu).as_secs_f64() * 1e6 / ((hb1 - hb0).max(1) as f64);
    run.memory_kib_per_group =
        (cpu1.rss_bytes as f64 - idle.rss_bytes as f64) / 1024.0 / groups as f64;
    run.false_failovers = fleet
        .promotions()
        .iter()
        .zip(&promotions_before)
        .filter(|(now, before)| now != before)
        .count() as u64;
    progress(&format!(
        "fleet: joined in {:.1} s; {:.0} heartbeats/s, {:.0}% CPU, {:.1} µs each, {:.1} KiB per group, {} false failovers",
        run.join_s,
        run.heartbeats_per_s,
        run.cpu_percent,
        run.cpu_us_per_heartbeat,
        run.memory_kib_per_group,
        run.false_failovers
    ));
    // 3. Kill some Primaries (spread over the groups), watching their groups' decisions.
    let victims: Vec<usize> = (0..opts.victims.min(groups))
        .map(|i| i * groups / opts.victims.min(groups).max(1))
        .collect();
    let decided: Arc<std::sync::Mutex<HashMap<usize, i64>>> = Arc::default();
    let mut watchers = Vec::new();
    for &g in &victims {
        let mut client = v1::arbiter_client::ArbiterClient::new(
            tonic::transport::Endpoint::from_shared(format!("http://{}", service.grpc))?
                .connect()
                .await?,
        );
        let mut stream = client
            .watch_group(v1::GroupRequest {
                group_id: group_id(g),
            })
            .await?
            .into_inner();
        let decided = decided.clone();
        let new_primary = member_name(g, 1);
        watchers.push(tokio::spawn(async move {
            while let Ok(Some(s)) = stream.message().await {
                if s.primary_adapter_id == new_primary {
                    decided
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .entry(g)
                        .or_insert(s.observed_at_unix_us);
                    return;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut stale_at = HashMap::new();
    for &g in &victims {
        fleet.stop(g, 0);
        let last = fleet.members[g][0].last_sent_us.load(Ordering::Relaxed);
        stale_at.insert(g, last + i64::try_from(ft.as_micros()).unwrap_or(0));
    }
    run.killed = victims.len();
    wait(ft * 2 + Duration::from_secs(5), || {
        victims
            .iter()
            .all(|&g| fleet.members[g][1].primary.load(Ordering::Relaxed))
    })
    .await;
    for w in watchers {
        w.abort();
    }
    let decided = decided
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    run.taken_over = victims
        .iter()
        .filter(|&&g| fleet.members[g][1].primary.load(Ordering::Relaxed))
        .count();
    run.decision_ms = p50_p99_max(
        victims
            .iter()
            .filter_map(|g| Some((decided.get(g)? - stale_at.get(g)?) as f64 / 1000.0))
            .collect(),
    );
    run.role_heard_ms = p50_p99_max(
        victims
            .iter()
            .filter(|&&g| fleet.members[g][1].primary.load(Ordering::Relaxed))
            .filter_map(|&g| {
                let heard = fleet.members[g][1].promoted_us.load(Ordering::Relaxed);
                Some((heard - stale_at.get(&g)?) as f64 / 1000.0)
            })
            .collect(),
    );
    // 4. The service SIGKILLed and started again under the fleet; with etcd, the leader
    // SIGKILLed (the other takes over).
    let before = fleet.primaries();
    let restart_us = process::unix_us();
    fleet.shared.restart_us.store(restart_us, Ordering::Relaxed);
    if services.shared() {
        let _ = services.list[lead].child.kill().await;
    } else {
        services.list[lead].restart().await?;
    }
    let all_decided = |f: &Fleet| {
        f.members.iter().all(|pair| {
            pair.iter()
                .any(|m| m.primary_after_restart_us.load(Ordering::Relaxed) > 0)
        })
    };
    wait(Duration::from_secs(30), || all_decided(&fleet)).await;
    let decided_at: Vec<i64> = fleet
        .members
        .iter()
        .filter_map(|pair| {
            pair.iter()
                .map(|m| m.primary_after_restart_us.load(Ordering::Relaxed))
                .filter(|t| *t > 0)
                .min()
        })
        .collect();
    run.restart_undecided = groups - decided_at.len();
    run.restart_decided_s = decided_at
        .iter()
        .map(|t| (t - restart_us) as f64 / 1e6)
        .fold(0.0, f64::max);
    // Spurious: a group whose members were told Primary after the restart other than the one
    // that was Primary before (or both).
    run.restart_spurious = fleet
        .members
        .iter()
        .zip(&before)
        .filter(|(pair, was)| {
            pair.iter().enumerate().any(|(i, m)| {
                m.primary_after_restart_us.load(Ordering::Relaxed) > 0 && **was != Some(i)
            })
        })
        .count();
    drop(fleet);
    for s in &mut services.list {
        let _ = s.child.kill().await;
    }
    Ok(())
}

/// One line of a run.
pub fn describe(r: &FleetRun) -> String {
    if let Some(e) = &r.error {
        return format!("{} {} groups: {e}", r.wire, r.groups);
    }
    format!(
        "{} {} groups ({} store): {:.0} heartbeats/s at {:.1} µs of CPU each ({:.0}% of a core), {:.1} KiB per group, {} false failovers; {} of {} killed Primaries replaced, decision p50 {:.1} ms p99 {:.1} ms, heard p50 {:.0} ms p99 {:.0} ms; restart: {} spurious, every group decided in {:.1} s ({} undecided); etcd {:.1} calls/s, {:.1} writes/s",
        r.wire,
        r.groups,
        r.store,
        r.heartbeats_per_s,
        r.cpu_us_per_heartbeat,
        r.cpu_percent,
        r.memory_kib_per_group,
        r.false_failovers,
        r.taken_over,
        r.killed,
        r.decision_ms[0],
        r.decision_ms[1],
        r.role_heard_ms[0],
        r.role_heard_ms[1],
        r.restart_spurious,
        r.restart_decided_s,
        r.restart_undecided,
        r.etcd_calls_per_s,
        r.etcd_writes_per_s
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn percentiles_by_nearest_rank() {
        assert_eq!(super::p50_p99_max(vec![]), [0.0; 3]);
        let v: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(super::p50_p99_max(v), [100.0, 198.0, 200.0]);
    }
}
