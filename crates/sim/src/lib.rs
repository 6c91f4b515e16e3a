//! failover-sim: deterministic simulation of a failover pair.
//!
//! The real adapter, failover service, data source and endpoint code (not copies) run together
//! on turmoil's simulated hosts, network and clock ([`world`]), in simulated time, while a fault
//! schedule drawn from a seed ([`schedule`]) crashes, holds, partitions and slows them, and
//! takes the source and the endpoint down. An observer records the group's status, and at the
//! end the endpoint's audit; [`check`] then tests the invariants every run must keep. A failing
//! seed is replayed by running it again.
//!
//! The services take their transport (`failover_proto::net::Network`, servers fed from any
//! incoming stream) and their clocks (tokio's, which turmoil drives; the wall clock through
//! `failover_proto::process::install_wall_clock`) from outside, which is what lets them run
//! here unchanged.

pub mod check;
pub mod schedule;
pub mod world;

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use failover_core::{ClientFailoverConfig, DataCollectionMode, DataSourceConfig, Mode, timespan};
use failover_proto::v1;

pub use check::Violation;
pub use schedule::{Fault, FaultKind};
use world::{
    ADAPTERS, ARBITER, ARBITER_PORT, ENDPOINT, ENDPOINT_PORT, OBSERVER, SOURCE, SOURCE_PORT, url,
};

/// How far simulated time moves per step: finer than any timeout or latency that matters
/// here (failoverTimeouts are 1 to 5 s, links 0.2 to 2 ms plus injected latency).
pub const TICK: Duration = Duration::from_millis(5);

/// The seeds CI runs (modes in turn, as [`SimOptions::for_ci`]): enough that every fault kind
/// meets every mode (a test checks it), in well under a minute.
pub const CI_SEEDS: std::ops::RangeInclusive<u64> = 1..=60;

/// The failover group of every simulation.
pub const GROUP: &str = "sim";

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Decides the fault schedule (and turmoil's own choices).
    pub seed: u64,
    /// Hot, Warm or Cold.
    pub mode: Mode,
    /// The group's failoverTimeout.
    pub failover_timeout: Duration,
    /// The fault kinds to draw from.
    pub kinds: Vec<FaultKind>,
    /// Length of the fault window (after a 5 s start, before the settling time).
    pub fault_window: Duration,
    /// A deliberately broken rule, to check that the invariants catch it.
    pub broken: Option<BrokenRule>,
}

/// A rule broken on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokenRule {
    /// The endpoint takes writes whatever their epoch.
    EpochCheck,
}

impl SimOptions {
    /// A run of `seed` in `mode`, with a failoverTimeout and fault window drawn from the seed
    /// too (1 to 5 s; 30 s).
    pub fn for_seed(seed: u64, mode: Mode) -> Self {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        SimOptions {
            seed,
            mode,
            failover_timeout: Duration::from_millis(rng.random_range(1000..=5000) / 100 * 100),
            kinds: FaultKind::ALL.to_vec(),
            fault_window: Duration::from_secs(30),
            broken: None,
        }
    }

    /// A seed of the CI set: its mode is the seed's turn of Hot, Warm, Cold.
    pub fn for_ci(seed: u64) -> Self {
        let mode = Mode::ALL[usize::try_from(seed % 3).unwrap_or(0)];
        SimOptions::for_seed(seed, mode)
    }

    /// When the faults start.
    pub fn faults_start(&self) -> Duration {
        Duration::from_secs(5)
    }

    /// When the faults have stopped (all healed).
    pub fn faults_end(&self) -> Duration {
        self.faults_start() + self.fault_window
    }

    /// How long the run lasts: the faults, then time to settle and show the data flowing.
    pub fn duration(&self) -> Duration {
        self.faults_end() + self.failover_timeout * 3 + Duration::from_secs(10)
    }
}

/// One status of the group as the observer saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// Simulated time.
    pub at: Duration,
    /// The group's epoch.
    pub epoch: u64,
    /// The Primary, if any.
    pub primary: Option<String>,
    /// Members that are live (not stale), with their role.
    pub live: Vec<(String, String)>,
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The options it ran with.
    pub options: SimOptions,
    /// The faults injected.
    pub faults: Vec<Fault>,
    /// Simulated time covered.
    pub simulated: Duration,
    /// Wall time it took.
    pub wall: Duration,
    /// Group statuses seen, in order (changes only).
    pub timeline: Vec<Seen>,
    /// The endpoint's audit at the end.
    pub audit: Option<v1::AuditReport>,
    /// Points the endpoint had received when the faults stopped (plus the settling bound).
    pub received_after_faults: Option<u64>,
    /// The endpoint's audit of each stretch of sequence numbers produced while the source was
    /// up (a point the source never served is nobody's loss): the range and its report.
    pub clean_audits: Vec<((u64, u64), v1::AuditReport)>,
    /// Broken invariants.
    pub violations: Vec<Violation>,
}

/// A command for the observer, which talks to the services.
#[derive(Debug, Clone, Copy)]
enum Command {
    SourceDown(bool),
    EndpointDown(bool),
}

#[derive(Debug, Default)]
struct Shared {
    commands: VecDeque<Command>,
    timeline: Vec<Seen>,
    audit: Option<v1::AuditReport>,
    received_after_faults: Option<u64>,
    clean_audits: Vec<((u64, u64), v1::AuditReport)>,
}

fn lock(s: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs one simulation.
pub fn run(options: &SimOptions) -> Outcome {
    world::install_wall_clock();
    let started = Instant::now();
    let faults = schedule::draw(
        options.seed,
        &options.kinds,
        (options.faults_start(), options.faults_end()),
        options.failover_timeout,
    );
    let shared = Arc::new(Mutex::new(Shared::default()));
    let mut sim = turmoil::Builder::new()
        .simulation_duration(options.duration() + Duration::from_secs(60))
        .tick_duration(TICK)
        .min_message_latency(Duration::from_micros(200))
        .max_message_latency(Duration::from_millis(2))
        .rng_seed(options.seed)
        .build();
    add_hosts(&mut sim, options);
    let clean = clean_ranges(options, &faults);
    add_observer(&mut sim, options, clean, shared.clone());

    let mut error = None;
    let mut pending: Vec<(Duration, usize, bool)> = faults
        .iter()
        .enumerate()
        .flat_map(|(i, f)| [(f.at, i, true), (f.at + f.lasts, i, false)])
        .collect();
    pending.sort_by_key(|(at, i, start)| (*at, *i, !*start));
    let mut next = 0;
    loop {
        while let Some((at, i, start)) = pending.get(next).copied() {
            if sim.elapsed() < at {
                break;
            }
            apply(&mut sim, &faults[i], start, &shared);
            next += 1;
        }
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    let simulated = sim.elapsed();
    drop(sim);
    let shared = std::mem::take(&mut *lock(&shared));
    let mut outcome = Outcome {
        options: options.clone(),
        faults,
        simulated,
        wall: started.elapsed(),
        timeline: shared.timeline,
        audit: shared.audit,
        received_after_faults: shared.received_after_faults,
        clean_audits: shared.clean_audits,
        violations: Vec::new(),
    };
    outcome.violations = check::invariants(&outcome, error);
    outcome
}

fn apply(sim: &mut turmoil::Sim<'_>, f: &Fault, start: bool, shared: &Mutex<Shared>) {
    let others: Vec<&str> = [SOURCE, ENDPOINT, ARBITER, OBSERVER]
        .into_iter()
        .chain(ADAPTERS)
        .filter(|h| *h != f.adapter)
        .collect();
    match (f.kind, start) {
        (FaultKind::Crash, true) => sim.crash(f.adapter),
        (FaultKind::Crash, false) => sim.bounce(f.adapter),
        (FaultKind::Pause, true) => {
            for o in &others {
                sim.hold(f.adapter, *o);
            }
        }
        (FaultKind::Pause, false) => {
            for o in &others {
                sim.release(f.adapter, *o);
            }
        }
        (FaultKind::Partition, true) => sim.partition(f.adapter, ARBITER),
        (FaultKind::Partition, false) => sim.repair(f.adapter, ARBITER),
        (FaultKind::OneWayPartition, true) if f.outbound => {
            sim.partition_oneway(f.adapter, ARBITER);
        }
        (FaultKind::OneWayPartition, true) => sim.partition_oneway(ARBITER, f.adapter),
        (FaultKind::OneWayPartition, false) if f.outbound => {
            sim.repair_oneway(f.adapter, ARBITER);
        }
        (FaultKind::OneWayPartition, false) => sim.repair_oneway(ARBITER, f.adapter),
        (FaultKind::EndpointLink, true) => sim.partition(f.adapter, ENDPOINT),
        (FaultKind::EndpointLink, false) => sim.repair(f.adapter, ENDPOINT),
        (FaultKind::Latency, true) => sim.set_link_latency(f.adapter, ARBITER, f.latency),
        (FaultKind::Latency, false) => {
            sim.set_link_latency(f.adapter, ARBITER, Duration::from_micros(200));
        }
        (FaultKind::SourceOutage, down) => {
            lock(shared).commands.push_back(Command::SourceDown(down))
        }
        (FaultKind::EndpointOutage, down) => {
            lock(shared).commands.push_back(Command::EndpointDown(down));
        }
        (FaultKind::ArbiterRestart, true) => sim.crash(ARBITER),
        (FaultKind::ArbiterRestart, false) => sim.bounce(ARBITER),
    }
}

fn boxed(e: anyhow::Error) -> Box<dyn std::error::Error> {
    e.into()
}

fn add_hosts(sim: &mut turmoil::Sim<'_>, options: &SimOptions) {
    sim.host(SOURCE, || async {
        let settings = fake_data_source::SourceSettings {
            streams: 8,
            components: 4,
            rate_hz: RATE_HZ as f64,
            seed: 1,
            origin_unix_ms: Some(world::EPOCH_UNIX_US / 1000),
            history_rate: None,
        };
        let incoming = world::incoming(SOURCE_PORT).await?;
        fake_data_source::serve(incoming, settings, std::future::pending())
            .await
            .map_err(boxed)
    });
    let broken = options.broken;
    sim.host(ENDPOINT, move || async move {
        let service = fake_endpoint::EndpointService::default();
        if broken == Some(BrokenRule::EpochCheck) {
            service.break_epoch_check();
        }
        let incoming = world::incoming(ENDPOINT_PORT).await?;
        fake_endpoint::serve(incoming, service, std::future::pending())
            .await
            .map_err(boxed)
    });
    sim.host(ARBITER, || async {
        let arbiter = failover_arbiter::Arbiter::new();
        tokio::spawn(failover_arbiter::clock::run(arbiter.clone()));
        let incoming = world::incoming(ARBITER_PORT).await?;
        failover_arbiter::service::serve_incoming(arbiter, incoming, std::future::pending())
            .await
            .map_err(boxed)
    });
    let document = client_failover_document(options);
    for name in ADAPTERS {
        let document = document.clone();
        sim.host(name, move || {
            let document = document.clone();
            async move {
                let config =
                    ClientFailoverConfig::from_json(&document).map_err(|e| e.to_string())?;
                let settings = adapter::AdapterSettings {
                    name: name.to_string(),
                    source_url: url(SOURCE, SOURCE_PORT),
                    endpoint_url: url(ENDPOINT, ENDPOINT_PORT),
                    data_source: DataSourceConfig {
                        data_collection_mode: DataCollectionMode::CurrentOnly,
                    },
                    warm_test_interval: WARM_TEST_INTERVAL,
                    buffer_capacity: 1_000_000,
                    buffer_dir: None,
                    buffer_max_bytes: 0,
                    trusted_ca: Vec::new(),
                    network: world::network(),
                    batch_size: 5000,
                };
                adapter::run(None, settings, Some(config), std::future::pending())
                    .await
                    .map_err(boxed)
            }
        });
    }
}

/// The ClientFailover document of the simulated pair.
fn client_failover_document(options: &SimOptions) -> String {
    format!(
        r#"{{"failoverGroupId":"{GROUP}","failoverTimeout":"{}","mode":"{}","endpoint":"{}"}}"#,
        timespan::format_timespan(options.failover_timeout),
        options.mode.as_str(),
        url(ARBITER, ARBITER_PORT)
    )
}

/// The source's rate, in ticks per second (each tick one point per stream).
pub const RATE_HZ: u64 = 10;

/// How far a Primary's writes may trail collection (a write in flight, the next batch).
const EGRESS_LAG: Duration = Duration::from_millis(500);

/// How often a Warm standby tests its source connection in the simulation.
const WARM_TEST_INTERVAL: Duration = Duration::from_secs(1);

/// A source outage takes this long to heal for the adapters: their resubscription backoff
/// (at most 1 s) and the way back.
const RESUBSCRIBE: Duration = Duration::from_millis(1500);

/// The stretches of sequence numbers in which no point may be lost, from 2 s in to 2 s before
/// the end. Hot: every point produced while the source was up (and the adapters subscribed).
/// Warm and Cold lose what is produced between a failure and the takeover, so there every fault
/// window is left out too, from what the Primary may not have written yet to the takeover's
/// bound (two failoverTimeouts, a Warm standby's connection test, and the resubscription after).
fn clean_ranges(options: &SimOptions, faults: &[Fault]) -> Vec<(u64, u64)> {
    let seq = |t: Duration| u64::try_from(t.as_millis()).unwrap_or(u64::MAX) * RATE_HZ / 1000;
    let takeover = options.failover_timeout * 2 + WARM_TEST_INTERVAL + RESUBSCRIBE;
    let mut ranges = Vec::new();
    let mut from = seq(Duration::from_secs(2));
    for f in faults {
        let (since, until) = match (f.kind, options.mode) {
            (FaultKind::SourceOutage, Mode::Hot) => (f.at, f.at + f.lasts + RESUBSCRIBE),
            (_, Mode::Hot) => continue,
            // What a failed Warm or Cold Primary had collected and not yet written is part of
            // its failure's loss too.
            _ => (f.at.saturating_sub(EGRESS_LAG), f.at + f.lasts + takeover),
        };
        let down = seq(since);
        if down > from {
            ranges.push((from, down - 1));
        }
        from = from.max(seq(until) + 1);
    }
    let last = seq(options.duration().saturating_sub(Duration::from_secs(2)));
    if last > from {
        ranges.push((from, last));
    }
    ranges
}

fn add_observer(
    sim: &mut turmoil::Sim<'_>,
    options: &SimOptions,
    clean: Vec<(u64, u64)>,
    shared: Arc<Mutex<Shared>>,
) {
    let (end, settled) = (
        options.duration(),
        options.faults_end() + options.failover_timeout * 3 / 2 + Duration::from_secs(1),
    );
    sim.client(OBSERVER, async move {
        let network = world::network();
        let arbiter =
            failover_proto::net::lazy_channel(&url(ARBITER, ARBITER_PORT), &network, None)?;
        let endpoint =
            failover_proto::net::lazy_channel(&url(ENDPOINT, ENDPOINT_PORT), &network, None)?;
        let source = failover_proto::net::lazy_channel(&url(SOURCE, SOURCE_PORT), &network, None)?;
        let mut arbiter = v1::arbiter_client::ArbiterClient::new(arbiter);
        let mut endpoint = v1::data_endpoint_client::DataEndpointClient::new(endpoint);
        let mut source = v1::data_source_client::DataSourceClient::new(source);
        let audit_request = v1::AuditRequest {
            group_id: GROUP.into(),
            ..Default::default()
        };
        loop {
            let now = turmoil::sim_elapsed().unwrap_or_default();
            let commands: Vec<Command> = lock(&shared).commands.drain(..).collect();
            for c in commands {
                // Until it is carried out (a held message is retried).
                loop {
                    let done = match c {
                        Command::SourceDown(down) => source
                            .inject_fault(v1::SourceFault {
                                down,
                                target: Some(v1::source_fault::Target::WholeSource(true)),
                                for_client: String::new(),
                            })
                            .await
                            .is_ok(),
                        Command::EndpointDown(down) => endpoint
                            .set_outage(v1::OutageRequest { down })
                            .await
                            .is_ok(),
                    };
                    if done {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            if let Ok(status) = arbiter
                .get_group(v1::GroupRequest {
                    group_id: GROUP.into(),
                })
                .await
            {
                let s = status.into_inner();
                let seen = Seen {
                    at: now,
                    epoch: s.epoch,
                    primary: (!s.primary_adapter_id.is_empty())
                        .then(|| s.primary_adapter_id.clone()),
                    live: s
                        .sessions
                        .iter()
                        .filter(|x| !x.stale)
                        .map(|x| {
                            (
                                x.adapter_id.clone(),
                                format!("{:?}", v1::Role::try_from(x.role).unwrap_or_default()),
                            )
                        })
                        .collect(),
                };
                let mut sh = lock(&shared);
                if sh.timeline.last().is_none_or(|l| {
                    (l.epoch, &l.primary, &l.live) != (seen.epoch, &seen.primary, &seen.live)
                }) {
                    sh.timeline.push(seen);
                }
            }
            if now >= settled
                && lock(&shared).received_after_faults.is_none()
                && let Ok(a) = endpoint.audit(audit_request.clone()).await
            {
                lock(&shared).received_after_faults = Some(a.into_inner().received);
            }
            if now >= end {
                if let Ok(a) = endpoint.audit(audit_request.clone()).await {
                    lock(&shared).audit = Some(a.into_inner());
                }
                for (from, through) in &clean {
                    let request = v1::AuditRequest {
                        group_id: GROUP.into(),
                        has_from_seq: true,
                        from_seq: *from,
                        has_through_seq: true,
                        through_seq: *through,
                        expected_streams: 8,
                    };
                    if let Ok(a) = endpoint.audit(request).await {
                        lock(&shared)
                            .clean_audits
                            .push(((*from, *through), a.into_inner()));
                    }
                }
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}
