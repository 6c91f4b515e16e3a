//! failover-sim: deterministic simulation of a failover pair.
//!
//! The real adapter, failover service, data source and endpoint code (not copies) run together
//! on turmoil's simulated hosts, network and clock ([`world`]), in simulated time, while a fault
//! schedule drawn from a seed ([`schedule`]) crashes, holds, partitions and slows them, takes the
//! source and the endpoint down, and plays the operator and the misconfigured member: documents
//! changed at runtime and at restart, sessions and groups deleted, roles forced, graceful stops,
//! a second adapter with the same name, a standalone adapter, a far-ahead epoch. An observer
//! records the group's status and the data flow, and at the end the endpoint's audit; [`check`]
//! then tests the invariants every run must keep. A failing seed is replayed by running it
//! again.
//!
//! The services take their transport (`failover_proto::net::Network`, servers fed from any
//! incoming stream) and their clocks (tokio's, which turmoil drives; the wall clock through
//! `failover_proto::process::install_wall_clock`) from outside, which is what lets them run
//! here unchanged.

pub mod check;
pub mod intruder;
mod loss;
mod observer;
pub mod schedule;
pub mod stage;
pub mod world;

// Whole simulations (in the lib's own test binary: one link of the stack, not two).

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use failover_core::{
    ClientFailoverConfig, DataCollectionMode, DataSourceConfig, Mode, Role, timespan,
};
use failover_proto::v1;
use tokio::sync::{mpsc, watch};

pub use check::Violation;
pub use failover_core::{Broken, BrokenRule};
use loss::{RESUBSCRIBE, WARM_TEST_INTERVAL, clean_ranges};
use observer::add_observer;
pub use schedule::{Fault, FaultKind, FaultMix};
use world::{
    ADAPTERS, ARBITER, ARBITER_PORT, ENDPOINT, ENDPOINT_PORT, OBSERVER, SOURCE, SOURCE_PORT,
    STANDALONE, STANDALONE_NAME, TWIN, url,
};

/// How far simulated time moves per step: finer than any timeout or latency that matters
/// here (failoverTimeouts are 1 to 5 s, links 0.2 to 2 ms plus injected latency).
pub const TICK: Duration = Duration::from_millis(10);

/// The seeds CI runs (modes in turn, as [`SimOptions::for_ci`]): enough that every fault kind
/// meets every mode (a test checks it), in well under a minute.
pub const CI_SEEDS: std::ops::RangeInclusive<u64> = 1..=160;

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
    /// How the faults are drawn: which kinds, how many, how long, how close together.
    pub mix: FaultMix,
    /// Length of the fault window (after a 5 s start, before the settling time).
    pub fault_window: Duration,
    /// Rules broken on purpose, to check that the invariants catch them (none by default).
    pub broken: Broken,
}

/// Whether each seed draws a fault mix of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Swarm {
    /// Each seed draws its own mix from the pool (the default).
    #[default]
    On,
    /// Every kind of the pool in equal measure, as the first simulator drew.
    Off,
}

impl SimOptions {
    /// A run of `seed` in `mode`, with a failoverTimeout, a fault mix of its own from every
    /// kind (swarm) and a fault window drawn from the seed too (1 to 5 s; 30 s).
    pub fn for_seed(seed: u64, mode: Mode) -> Self {
        Self::with_pool(seed, mode, &FaultKind::ALL, Swarm::On)
    }

    /// A run of `seed` in `mode` whose faults come from `pool`: a mix of the seed's own
    /// ([`Swarm::On`]) or every kind of the pool in equal measure ([`Swarm::Off`]).
    pub fn with_pool(seed: u64, mode: Mode, pool: &[FaultKind], swarm: Swarm) -> Self {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        SimOptions {
            seed,
            mode,
            failover_timeout: Duration::from_millis(rng.random_range(1000..=5000) / 100 * 100),
            mix: match swarm {
                Swarm::On => FaultMix::swarm(seed, pool),
                Swarm::Off => FaultMix::uniform(pool),
            },
            fault_window: Duration::from_secs(30),
            broken: Broken::NONE,
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

pub use failover_core::history::{Event, Sample, StatusPoint};

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
    pub timeline: Vec<StatusPoint>,
    /// The group's story in words (failover_dashboard's narrator, as for every run).
    pub events: Vec<Event>,
    /// The endpoint's audit at the end.
    pub audit: Option<v1::AuditReport>,
    /// The data flow, sampled every [`SAMPLE_EVERY`].
    pub samples: Vec<Sample>,
    /// Points the standalone adapter egressed, if one ran.
    pub standalone_received: u64,
    /// Points the endpoint had received when the faults stopped (plus the settling bound).
    pub received_after_faults: Option<u64>,
    /// The endpoint's audit of each stretch of sequence numbers produced while the source was
    /// up (a point the source never served is nobody's loss): the range and its report.
    pub clean_audits: Vec<((u64, u64), v1::AuditReport)>,
    /// Broken invariants.
    pub violations: Vec<Violation>,
}

impl Outcome {
    /// Everything the run observed, one event a line in simulated time, and nothing of the
    /// machine it ran on (no wall time): the same seed gives the same bytes in any process.
    pub fn event_log(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let o = &self.options;
        let _ = writeln!(
            out,
            "options seed={} mode={} failover_timeout={:?} faults_end={:?} mix={}",
            o.seed,
            o.mode.as_str(),
            o.failover_timeout,
            o.faults_end(),
            o.mix.describe()
        );
        for f in &self.faults {
            let _ = writeln!(out, "fault {f:?}");
        }
        // Status changes and samples, merged in time order (statuses first at a tie).
        let mut seen = self.timeline.iter().peekable();
        for sample in &self.samples {
            while let Some(s) = seen.next_if(|s| s.at_ms <= sample.at_ms) {
                let _ = writeln!(out, "{:>12?} status {s:?}", s.at());
            }
            let _ = writeln!(out, "{:>12?} sample {sample:?}", sample.at());
        }
        for s in seen {
            let _ = writeln!(out, "{:>12?} status {s:?}", s.at());
        }
        let _ = writeln!(out, "simulated {:?}", self.simulated);
        let _ = writeln!(out, "standalone_received {}", self.standalone_received);
        let _ = writeln!(
            out,
            "received_after_faults {:?}",
            self.received_after_faults
        );
        if let Some(a) = &self.audit {
            let _ = writeln!(out, "audit {a:?}");
        }
        for (range, a) in &self.clean_audits {
            let _ = writeln!(out, "clean_audit {range:?} {a:?}");
        }
        for v in &self.violations {
            let _ = writeln!(out, "violation {v:?}");
        }
        out
    }
}

/// How often the observer samples the data flow.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// A command for the observer, which talks to the services.
#[derive(Debug, Clone, Copy)]
enum Command {
    SourceDown(bool),
    EndpointDown(bool),
    /// Fence the endpoint for an intruder, far ahead of the group's epoch.
    FenceAhead,
    /// A member that announces a far-ahead epoch joins (true) or leaves (false).
    IntruderMember(bool),
}

#[derive(Debug, Default)]
struct Shared {
    commands: VecDeque<Command>,
    timeline: Vec<StatusPoint>,
    /// The group's story in words, as the one narrator tells it.
    events: Vec<Event>,
    /// The last status seen, for the narrator.
    last_status: Option<v1::GroupStatus>,
    samples: Vec<Sample>,
    /// The highest epoch the failover service has shown (for the far-ahead epoch faults).
    highest_epoch: u64,
    audit: Option<v1::AuditReport>,
    standalone_received: u64,
    received_after_faults: Option<u64>,
    clean_audits: Vec<((u64, u64), v1::AuditReport)>,
}

/// An operator action on the failover service, carried out on its host.
#[derive(Debug, Clone)]
enum Admin {
    DeleteSession(&'static str),
    /// Delete every session, then the group, retrying until the group is gone (members that
    /// are still live rejoin in between).
    ResetGroup,
    /// failoverTimeout changed the documented way: while the group exists with another
    /// failoverTimeout than the adapters' documents hold now, delete its sessions and the
    /// group again (a member may rejoin with its old document in between), until the members
    /// have rejoined with the operator's one. An operator who changed the documents again
    /// meanwhile aims at the newest value (a queued change finds its work done).
    ChangeTimeout,
    Override(&'static str, Option<Role>, Option<Duration>),
}

/// The operator's handles on the simulated hosts.
#[derive(Debug)]
struct Control {
    /// Each adapter host's ClientFailover document (what its REST API holds): applied at once
    /// while it runs, and at each start.
    documents: BTreeMap<&'static str, watch::Sender<Option<ClientFailoverConfig>>>,
    /// Whether each adapter host's adapter runs (false: stopped gracefully, or not started).
    running: BTreeMap<&'static str, watch::Sender<bool>>,
    /// The name the twin host's adapter takes.
    twin_of: Mutex<&'static str>,
    /// Operator actions for the failover service, replaced at each start of its host.
    admin: Mutex<Option<mpsc::UnboundedSender<Admin>>>,
    /// Rules the adapters break on purpose.
    broken: Broken,
    /// The failoverTimeout the operator last changed the documents to (None: never changed).
    operators_timeout: Mutex<Option<Duration>>,
}

impl Control {
    fn new(document: &ClientFailoverConfig, broken: Broken) -> Self {
        let mut documents = BTreeMap::new();
        let mut running = BTreeMap::new();
        for host in ADAPTERS {
            documents.insert(host, watch::Sender::new(Some(document.clone())));
            running.insert(host, watch::Sender::new(true));
        }
        documents.insert(TWIN, watch::Sender::new(Some(document.clone())));
        running.insert(TWIN, watch::Sender::new(false));
        documents.insert(STANDALONE, watch::Sender::new(None));
        running.insert(STANDALONE, watch::Sender::new(false));
        Control {
            documents,
            running,
            twin_of: Mutex::new(ADAPTERS[0]),
            admin: Mutex::new(None),
            broken,
            operators_timeout: Mutex::new(None),
        }
    }

    fn set_document(&self, host: &str, document: Option<ClientFailoverConfig>) {
        if let Some(d) = self.documents.get(host) {
            d.send_replace(document);
        }
    }

    fn document(&self, host: &str) -> Option<ClientFailoverConfig> {
        self.documents.get(host).and_then(|d| d.borrow().clone())
    }

    fn set_running(&self, host: &str, run: bool) {
        if let Some(r) = self.running.get(host) {
            r.send_replace(run);
        }
    }

    fn admin(&self, action: Admin) {
        let admin = self.admin.lock().unwrap_or_else(PoisonError::into_inner);
        // A failover service that is down takes no operator action.
        if let Some(tx) = admin.as_ref() {
            let _ = tx.send(action);
        }
    }
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
        &options.mix,
        (options.faults_start(), options.faults_end()),
        options.failover_timeout,
    );
    let shared = Arc::new(Mutex::new(Shared::default()));
    let document = match ClientFailoverConfig::from_json(&client_failover_document(options)) {
        Ok(d) => d,
        Err(e) => {
            let mut outcome = empty_outcome(options, faults, started);
            outcome.violations = vec![Violation {
                rule: 6,
                at: None,
                what: format!("the simulated pair's document is invalid: {e}"),
            }];
            return outcome;
        }
    };
    let control = Arc::new(Control::new(&document, options.broken));
    let mut sim = world::simulation(options.seed, options.duration() + Duration::from_secs(60));
    // The twin's and the standalone adapter's hosts only where the schedule runs them: every
    // host costs every step of the simulation.
    let extra: Vec<&'static str> = [(FaultKind::Twin, TWIN), (FaultKind::Standalone, STANDALONE)]
        .into_iter()
        .filter(|(kind, _)| faults.iter().any(|f| f.kind == *kind))
        .map(|(_, host)| host)
        .collect();
    add_hosts(&mut sim, options, &control, &extra);
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
            apply(
                &mut sim, &faults[i], start, &shared, &control, &document, &extra,
            );
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
        events: shared.events,
        audit: shared.audit,
        samples: shared.samples,
        standalone_received: shared.standalone_received,
        received_after_faults: shared.received_after_faults,
        clean_audits: shared.clean_audits,
        violations: Vec::new(),
    };
    outcome.violations = check::invariants(&outcome, error);
    outcome
}

/// An outcome with nothing seen (the run could not start).
fn empty_outcome(options: &SimOptions, faults: Vec<Fault>, started: Instant) -> Outcome {
    Outcome {
        options: options.clone(),
        faults,
        simulated: Duration::ZERO,
        wall: started.elapsed(),
        timeline: Vec::new(),
        events: Vec::new(),
        audit: None,
        samples: Vec::new(),
        standalone_received: 0,
        received_after_faults: None,
        clean_audits: Vec::new(),
        violations: Vec::new(),
    }
}

/// Another mode than `mode`.
fn other_mode(mode: Mode) -> Mode {
    match mode {
        Mode::Hot => Mode::Warm,
        Mode::Warm => Mode::Cold,
        Mode::Cold => Mode::Hot,
    }
}

fn apply(
    sim: &mut turmoil::Sim<'_>,
    f: &Fault,
    start: bool,
    shared: &Mutex<Shared>,
    control: &Control,
    document: &ClientFailoverConfig,
    extra: &[&'static str],
) {
    let others: Vec<&str> = [SOURCE, ENDPOINT, ARBITER, OBSERVER]
        .into_iter()
        .chain(extra.iter().copied())
        .chain(ADAPTERS)
        .filter(|h| *h != f.adapter)
        .collect();
    let hold = |sim: &mut turmoil::Sim<'_>, held: bool| {
        for o in &others {
            if held {
                sim.hold(f.adapter, *o);
            } else {
                sim.release(f.adapter, *o);
            }
        }
    };
    let changed = |edit: &dyn Fn(&mut ClientFailoverConfig)| {
        let mut d = document.clone();
        edit(&mut d);
        d
    };
    match (f.kind, start) {
        (FaultKind::Crash, true) => sim.crash(f.adapter),
        (FaultKind::Crash, false) => sim.bounce(f.adapter),
        (FaultKind::Pause, held) => hold(sim, held),
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
        (FaultKind::ArbiterRestart | FaultKind::ArbiterOutage, true) => {
            *control.admin.lock().unwrap_or_else(PoisonError::into_inner) = None;
            sim.crash(ARBITER);
        }
        (FaultKind::ArbiterRestart | FaultKind::ArbiterOutage, false) => sim.bounce(ARBITER),
        (FaultKind::ModeSwitch, true) => {
            let mode = other_mode(document.mode);
            control.set_document(f.adapter, Some(changed(&|d| d.mode = mode)));
        }
        (FaultKind::ModeSwitch | FaultKind::Unregister, false) => {
            control.set_document(f.adapter, Some(document.clone()));
        }
        (FaultKind::TimeoutChange, start) => {
            let timeout = if start {
                document.failover_timeout * 2
            } else {
                document.failover_timeout
            };
            for host in ADAPTERS {
                control.set_document(host, Some(changed(&|d| d.failover_timeout = timeout)));
            }
            *control
                .operators_timeout
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(timeout);
            control.admin(Admin::ChangeTimeout);
        }
        (FaultKind::SessionDelete, true) => control.admin(Admin::DeleteSession(f.adapter)),
        (FaultKind::GroupDelete, true) => control.admin(Admin::ResetGroup),
        (FaultKind::SessionDelete | FaultKind::GroupDelete, false) => {}
        (FaultKind::RoleOverride, true) => {
            if f.variant {
                hold(sim, true);
            }
            // Until cleared, or expiring at the fault's end.
            let expires = (!f.outbound && !f.variant).then_some(f.lasts);
            control.admin(Admin::Override(f.adapter, Some(Role::Primary), expires));
        }
        (FaultKind::RoleOverride, false) => {
            control.admin(Admin::Override(f.adapter, None, None));
            if f.variant {
                hold(sim, false);
            }
        }
        (FaultKind::RestartChanged, start) => {
            sim.crash(f.adapter);
            let d = if start {
                let mode = other_mode(document.mode);
                changed(&|d| d.mode = mode)
            } else {
                document.clone()
            };
            control.set_document(f.adapter, Some(d));
            sim.bounce(f.adapter);
        }
        (FaultKind::GracefulStop, stop) => control.set_running(f.adapter, !stop),
        (FaultKind::Unregister, true) => control.set_document(f.adapter, None),
        (FaultKind::Twin, start) => {
            *control
                .twin_of
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = f.adapter;
            control.set_running(TWIN, start);
        }
        (FaultKind::Standalone, start) => control.set_running(STANDALONE, start),
        (FaultKind::EpochAhead, start) if f.variant => {
            lock(shared)
                .commands
                .push_back(Command::IntruderMember(start));
        }
        (FaultKind::EpochAhead, true) => lock(shared).commands.push_back(Command::FenceAhead),
        (FaultKind::EpochAhead, false) => {}
    }
}

fn boxed(e: anyhow::Error) -> Box<dyn std::error::Error> {
    e.into()
}

fn add_hosts(
    sim: &mut turmoil::Sim<'_>,
    options: &SimOptions,
    control: &Arc<Control>,
    extra: &[&'static str],
) {
    world::add_source(
        sim,
        fake_data_source::SourceSettings {
            streams: 8,
            components: 4,
            rate_hz: RATE_HZ as f64,
            seed: 1,
            origin_unix_ms: Some(world::EPOCH_UNIX_US / 1000),
            history_rate: None,
            max_clients: None,
        },
    );
    let broken = options.broken;
    world::add_endpoint(sim, broken);
    let arbiter_control = control.clone();
    // The operator acts on the service on its host, through a channel the run holds.
    world::add_arbiter(sim, broken, move |arbiter| {
        let control = arbiter_control.clone();
        async move {
            let (tx, rx) = mpsc::unbounded_channel();
            *control.admin.lock().unwrap_or_else(PoisonError::into_inner) = Some(tx);
            tokio::spawn(operator(arbiter, control.clone(), rx));
            Ok(())
        }
    });
    for host in ADAPTERS.into_iter().chain(extra.iter().copied()) {
        let control = control.clone();
        sim.host(host, move || adapter_host(host, control.clone()));
    }
}

/// Carries out the operator's actions on the failover service, on its host.
async fn operator(
    arbiter: failover_arbiter::Arbiter,
    control: Arc<Control>,
    mut actions: mpsc::UnboundedReceiver<Admin>,
) {
    while let Some(action) = actions.recv().await {
        match action {
            Admin::DeleteSession(name) => {
                let _ = arbiter.delete_session(GROUP, name);
            }
            Admin::Override(name, role, expires) => {
                let _ = arbiter.set_role_override(GROUP, name, role, expires);
            }
            Admin::ResetGroup => {
                // The documented way: delete the sessions, then the group; members still live
                // rejoin in between, so try again until the group is gone (at most 10 s).
                for _ in 0..100 {
                    let sessions: Vec<String> = arbiter
                        .status(GROUP)
                        .sessions
                        .iter()
                        .map(|s| s.session_id.clone())
                        .collect();
                    for s in sessions {
                        let _ = arbiter.delete_session(GROUP, &s);
                    }
                    match arbiter.delete_group(GROUP) {
                        Ok(()) | Err(failover_arbiter::admin::AdminError::NoGroup(_)) => break,
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            }
            Admin::ChangeTimeout => {
                for _ in 0..100 {
                    // The timeout the operator is changing to (the newest), not one read back
                    // from a document: another fault may have taken adapter-a's away meanwhile
                    // (found by the swarm, seed 1032518: the group was left at the old timeout
                    // for good, and nobody could join it).
                    let Some(timeout) = *control
                        .operators_timeout
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                    else {
                        break;
                    };
                    let want = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
                    let status = arbiter.status(GROUP);
                    if status.exists && status.failover_timeout_ms == want {
                        if !status.sessions.is_empty() {
                            break;
                        }
                    } else if status.exists {
                        for s in &status.sessions {
                            let _ = arbiter.delete_session(GROUP, &s.session_id);
                        }
                        let _ = arbiter.delete_group(GROUP);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// An adapter host: runs the adapter while the operator wants it running (a graceful stop
/// ends it, a start begins a new process), with the document its REST API holds.
async fn adapter_host(
    host: &'static str,
    control: Arc<Control>,
) -> Result<(), Box<dyn std::error::Error>> {
    loop {
        let Some(running) = control.running.get(host) else {
            return Ok(());
        };
        let mut running = running.subscribe();
        if running.wait_for(|r| *r).await.is_err() {
            return Ok(());
        }
        let name = match host {
            TWIN => *control
                .twin_of
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            STANDALONE => STANDALONE_NAME,
            other => other,
        };
        let documents = control.documents.get(host).map(watch::Sender::subscribe);
        let initial = control.document(host);
        let settings = adapter::AdapterSettings {
            behaviour: failover_core::Behaviour::Lab,
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
            documents,
            failover_protocol: adapter::FailoverProtocol::Grpc,
            // Diagnostics are not part of what the simulator checks.
            health_interval: None,
            broken: control.broken,
        };
        let stop = async move {
            let _ = running.wait_for(|r| !*r).await;
        };
        adapter::run(None::<tokio::net::TcpListener>, settings, initial, stop)
            .await
            .map_err(boxed)?;
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

/// How far ahead of the group's epoch an intruder fences or announces.
const EPOCH_AHEAD: u64 = 5;
