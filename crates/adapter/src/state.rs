//! The adapter's shared state: configuration, role, source health, buffer, egress progress and
//! history recoveries. Every task reads and changes it under one lock, never across an await,
//! and bumps [`Shared::changed`] after a change so the other tasks re-evaluate at once.

use std::{
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};
use tokio::time::Instant;

use failover_core::{
    Broken, BrokenRule, ClientFailoverConfig, DataCollectionMode, DataSourceConfig, Mode, Role,
    Watermark,
    behaviour::ReceiveLog,
    config::failover_warnings,
    modes::{Activity, Component, SourceHealth, activity, collection_score, failover_score},
};
use tokio::sync::{Notify, watch};

use crate::{AdapterSettings, spool::DurableBuffer};

/// A history recovery requested on this adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    /// Caller's id.
    pub id: String,
    /// The data times to recover, in unix ms: from `start_unix_ms` to `end_unix_ms`, both
    /// included.
    pub start_unix_ms: i64,
    /// Included.
    pub end_unix_ms: i64,
    /// Pending, Running, Completed, Abandoned or Failed, with detail.
    pub status: RecoveryStatus,
    /// Points read so far.
    pub points: u64,
}

/// Where a recovery stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryStatus {
    /// Waits until this adapter is Primary.
    Pending,
    /// Reading history.
    Running,
    /// Every point read and buffered for egress.
    Completed,
    /// This adapter lost the Primary role: history recovery does not carry over a failover.
    Abandoned,
    /// The source refused it.
    Failed(String),
}

impl RecoveryStatus {
    /// The name shown by the REST API.
    pub fn name(&self) -> &'static str {
        match self {
            RecoveryStatus::Pending => "Pending",
            RecoveryStatus::Running => "Running",
            RecoveryStatus::Completed => "Completed",
            RecoveryStatus::Abandoned => "Abandoned",
            RecoveryStatus::Failed(_) => "Failed",
        }
    }
}

/// Everything the tasks share.
#[derive(Debug)]
pub struct AdapterState {
    /// None: failover not configured (a standalone adapter).
    pub failover: Option<ClientFailoverConfig>,
    /// The DataSource settings.
    pub data_source: DataSourceConfig,
    /// None: no role known (not configured, not yet assigned, or contact lost).
    pub role: Option<Role>,
    /// Epoch of the last assignment.
    pub epoch: u64,
    /// Highest epoch seen anywhere (assignments, endpoint refusals).
    pub known_epoch: u64,
    /// The endpoint is fenced by another writer at this epoch: an assignment as Primary at it
    /// or below is useless (its fence would be refused). The service hears it in our next
    /// heartbeat's known epoch and promotes again above it.
    pub fenced_out_through: u64,
    /// The adapter is stopping: its session leaves the group.
    pub leaving: bool,
    /// Who the arbiter says is Primary.
    pub primary_adapter_id: String,
    /// Why the role is what it is.
    pub role_reason: String,
    /// When the last assignment arrived.
    pub last_assignment_at: Option<Instant>,
    /// Arbiter session id.
    pub session_id: String,
    /// The failover service cannot be reached or refused us.
    pub failover_error: Option<String>,
    /// Components the source describes (score weights).
    pub components: Vec<Component>,
    /// The collection's health.
    pub source_health: SourceHealth,
    /// Last Warm/HistoryOnly connection test result.
    pub connection_test: Option<bool>,
    /// When collecting from the source last failed.
    pub source_failed_at: Option<Instant>,
    /// The last this adapter learned of its source, by a connection test or by collecting, was
    /// a failure (kept across role changes; cleared by a passing test or a live update).
    pub source_known_down: bool,
    /// Why collecting from the source last failed (None since it last succeeded).
    pub source_error: Option<String>,
    /// Points awaiting egress.
    pub buffer: DurableBuffer,
    /// Last points the endpoint accepted (from us, or read when fencing).
    pub egress_watermark: Watermark,
    /// The epoch at which we fenced the endpoint; None: must fence before writing.
    pub fenced_at: Option<u64>,
    /// When the role or epoch last changed (unix microseconds; for takeover measurements).
    pub role_since_unix_us: Option<i64>,
    /// When the endpoint was last fenced (unix microseconds; for takeover measurements).
    pub fenced_unix_us: Option<i64>,
    /// The last fence: its epoch, and the buffered points after the watermark then (flushed).
    pub last_fence: Option<(u64, u64)>,
    /// The endpoint cannot be reached.
    pub endpoint_error: Option<String>,
    /// Points the endpoint accepted from us.
    pub egressed: u64,
    /// Points the endpoint refused from us as stale.
    pub refused_stale: u64,
    /// Data time of the last point collected (unix ms).
    pub last_data_unix_ms: Option<i64>,
    /// Data time (unix ms) of the first point of the current unbroken collection (None: not
    /// collecting): the adapter holds every point since that the Primary has not egressed.
    pub collecting_since_ms: Option<i64>,
    /// On-demand history recoveries.
    pub recoveries: Vec<Recovery>,
    /// Points received from the data source.
    pub collected: u64,
    /// Heartbeats sent to the failover service.
    pub heartbeats_sent: u64,
    /// Of those, the REST heartbeats the service refused for overload (429), each waited out
    /// as told.
    pub heartbeats_refused_busy: u64,
    /// Points the buffer held on disk at start (from before a restart).
    pub restored: u64,
    /// Access tokens fetched (bearer authentication).
    pub tokens_fetched: u64,
    /// Role changes (as assigned, or stepping down).
    pub role_changes: u64,
    /// When this adapter last became Primary, until its first accepted write.
    pub promoted_at: Option<Instant>,
    /// Rules broken on purpose (the settings').
    pub broken: Broken,
    /// Promotion to first accepted write, the last time this adapter took over.
    pub last_takeover: Option<Duration>,
    /// Whose failover design this adapter follows (the settings').
    pub behaviour: failover_core::Behaviour,
    /// The vendor's behaviour: when this adapter received each message it holds (its clock).
    pub received: ReceiveLog,
    /// The vendor's behaviour: the receive time of the last message this adapter sent (its
    /// LastDataProcessedTime, reported in every heartbeat).
    pub last_data_processed_ms: Option<i64>,
    /// The vendor's behaviour: the LastDataProcessedTime the failover service last answered.
    pub heard_last_data_processed_ms: Option<i64>,
    /// The vendor's behaviour: a Hot Secondary's last cutoff: it dropped every message received
    /// at or before it.
    pub queue_cutoff_ms: Option<i64>,
}

impl AdapterState {
    fn new(settings: &AdapterSettings, buffer: DurableBuffer) -> Self {
        AdapterState {
            failover: None,
            data_source: settings.data_source.clone(),
            role: None,
            epoch: 0,
            known_epoch: 0,
            fenced_out_through: 0,
            leaving: false,
            primary_adapter_id: String::new(),
            role_reason: "failover not configured".into(),
            last_assignment_at: None,
            session_id: String::new(),
            failover_error: None,
            components: Vec::new(),
            source_health: SourceHealth::Connecting,
            connection_test: None,
            source_failed_at: None,
            source_known_down: false,
            source_error: None,
            buffer,
            egress_watermark: Watermark::default(),
            fenced_at: None,
            role_since_unix_us: None,
            fenced_unix_us: None,
            last_fence: None,
            endpoint_error: None,
            egressed: 0,
            refused_stale: 0,
            last_data_unix_ms: None,
            collecting_since_ms: None,
            recoveries: Vec::new(),
            collected: 0,
            heartbeats_sent: 0,
            heartbeats_refused_busy: 0,
            tokens_fetched: 0,
            restored: 0,
            role_changes: 0,
            promoted_at: None,
            last_takeover: None,
            broken: settings.broken,
            behaviour: settings.behaviour,
            received: ReceiveLog::default(),
            last_data_processed_ms: None,
            heard_last_data_processed_ms: None,
            queue_cutoff_ms: None,
        }
    }

    /// The configured mode (None when standalone).
    pub fn mode(&self) -> Option<Mode> {
        self.failover.as_ref().map(|f| f.mode)
    }

    /// The collection mode in force (CurrentWithBackfill acts as CurrentOnly under failover).
    pub fn collection_mode(&self) -> DataCollectionMode {
        self.data_source
            .data_collection_mode
            .effective(self.failover.is_some())
    }

    /// What this adapter should be doing now.
    pub fn activity(&self) -> Activity {
        let mut a = activity(self.mode(), self.role);
        if self.collection_mode() == DataCollectionMode::HistoryOnly {
            // HistoryOnly: no live collection; the source connection is checked by tests.
            a.collect = false;
            a.test_connection = true;
        }
        if self.own_collection_failed() {
            // A standby whose own collection failed stands at 0 until a connection test
            // passes, whatever its mode (a Cold standby tests too, until then).
            a.test_connection = true;
        }
        a
    }

    /// True for a standby (Warm or Cold) whose own last collection or connection test failed:
    /// it scores 0 until a connection test passes.
    pub fn own_collection_failed(&self) -> bool {
        !self.broken.has(BrokenRule::FailedStandbyScores)
            && self.role != Some(Role::Primary)
            && matches!(self.mode(), Some(Mode::Cold | Mode::Warm))
            && self.last_source_test() == Some(false)
    }

    /// The last connection test's result, or, when none has run since this adapter last
    /// stopped testing (a promotion ends the tests and forgets their result), a failure if
    /// its source was down when it last tried. Found by the swarm (`failover-lab sim --seed
    /// 1020322 --modes Warm`): a Warm Primary demoted with its source down forgot its failed
    /// test, scored 100 as a standby, was promoted again, and so on every 40 ms.
    pub fn last_source_test(&self) -> Option<bool> {
        self.connection_test
            .or(self.source_known_down.then_some(false))
    }

    /// True when this adapter may write to the endpoint now.
    pub fn may_egress(&self) -> bool {
        self.activity().egress
    }

    /// The failover score now.
    pub fn score(&self) -> u32 {
        let collection = if self.collection_mode() == DataCollectionMode::HistoryOnly {
            match self.connection_test {
                Some(false) => 0,
                _ => failover_core::modes::FULL_SCORE,
            }
        } else {
            collection_score(&self.components, &self.source_health)
        };
        // A promoted Warm or Cold adapter still connecting counts as good (Doc: the score comes
        // from its collection), unless its source was down when it last tried: then it has no
        // reason to claim 100 while it connects. Found by the swarm (`failover-lab sim --seed
        // 1011664 --modes Warm`): with the source down, a Warm standby promoted on its last 100
        // scored 100 "connecting", was demoted for the 0 that followed, scored 0 as a standby,
        // and so on every 20 ms.
        let collection = if self.role == Some(Role::Primary)
            && matches!(self.mode(), Some(Mode::Warm | Mode::Cold))
            && self.source_health == SourceHealth::Connecting
            && self.source_known_down
            && !self.broken.has(BrokenRule::FailedStandbyScores)
        {
            0
        } else {
            collection
        };
        match self.mode() {
            Some(mode) => failover_score(
                mode,
                self.role,
                collection,
                self.last_source_test()
                    .filter(|ok| *ok || !self.broken.has(BrokenRule::FailedStandbyScores)),
            ),
            None => collection,
        }
    }

    /// The longest retry delay now: a quarter of failoverTimeout (see `failover_core::retry`).
    pub fn retry_cap(&self) -> Duration {
        self.failover
            .as_ref()
            .map_or(failover_core::retry::DEFAULT_CAP, |f| {
                failover_core::retry::cap_for(f.failover_timeout)
            })
    }

    /// Warnings for the configuration in force.
    pub fn warnings(&self) -> Vec<String> {
        failover_warnings(self.failover.as_ref(), &self.data_source)
    }

    /// Gives up the Primary role (lost lease, refused write): no egress until the arbiter
    /// assigns a role again.
    pub fn step_down(&mut self, reason: String) {
        if self.role == Some(Role::Primary) {
            tracing::warn!(event = "role", from = "Primary", to = "None", "{reason}");
        }
        if self.role.is_some() {
            self.role_changes += 1;
        }
        self.role = None;
        self.fenced_at = None;
        self.role_reason = reason;
        self.abandon_recoveries();
    }

    /// Lets go of every buffered point (a standby that is not Hot holds none): from now on it
    /// holds no data, and its next heartbeat says so.
    pub fn drop_buffer(&mut self) {
        self.buffer.clear();
        self.received.clear();
        self.collecting_since_ms = None;
    }

    /// Marks running or pending recoveries abandoned (the role was lost).
    pub fn abandon_recoveries(&mut self) {
        for r in &mut self.recoveries {
            if matches!(r.status, RecoveryStatus::Running) {
                r.status = RecoveryStatus::Abandoned;
                tracing::warn!(
                    recovery = r.id,
                    "history recovery abandoned: this adapter is no longer Primary, and history \
                     recovery does not carry over a failover"
                );
            }
        }
    }

    /// The endpoint refused our fence or write: another writer holds `fenced_epoch`. Steps
    /// down, and remembers the epoch so the next heartbeat tells the service (which promotes
    /// again above it, or demotes us).
    pub fn fenced_out(&mut self, fenced_epoch: u64, reason: String) {
        self.known_epoch = self.known_epoch.max(fenced_epoch);
        self.fenced_out_through = self.fenced_out_through.max(fenced_epoch);
        self.step_down(reason);
    }
}

/// With the failsafe broken on purpose (`BrokenRule::NoFailsafe`): steps down when the last
/// assignment is older than failoverTimeout (the old lease).
pub fn broken_lease(st: &mut AdapterState) {
    if !st.broken.has(BrokenRule::NoFailsafe) || st.role != Some(Role::Primary) {
        return;
    }
    let Some(timeout) = st.failover.as_ref().map(|f| f.failover_timeout) else {
        return;
    };
    if st.last_assignment_at.is_none_or(|t| t.elapsed() > timeout) {
        st.step_down("no answer from the failover service (failsafe broken on purpose)".into());
    }
}

/// The state and the signals around it.
#[derive(Debug)]
pub struct Shared {
    /// Fixed at start.
    pub settings: AdapterSettings,
    /// This process as a writer at the endpoint: its name and start time (unix microseconds),
    /// so a fence is never shared with another process of the same name.
    pub writer: String,
    state: Mutex<AdapterState>,
    /// Bumped on every change of configuration, role, health or score.
    pub changed: watch::Sender<u64>,
    /// Signalled when points are added to the buffer.
    pub data: Notify,
    /// How this adapter's clock is set apart from the machine's (a clock fault).
    clock: Mutex<ClockFault>,
}

/// A clock set apart from the machine's: `offset_ms` at `since`, moving `drift_ppm` millionths
/// of the elapsed time further from then on.
#[derive(Debug, Clone, Copy)]
pub struct ClockFault {
    /// Ahead (positive) or behind, at `since`, in ms.
    pub offset_ms: i64,
    /// Runs fast (positive) or slow, in parts per million.
    pub drift_ppm: f64,
    /// When it was set.
    pub since: Instant,
}

impl ClockFault {
    /// How far the clock is from the machine's now, in ms.
    pub fn offset_now_ms(&self) -> i64 {
        let elapsed_ms = self.since.elapsed().as_secs_f64() * 1000.0;
        // Bounded by the REST API's limits, so the cast cannot overflow.
        #[allow(clippy::cast_possible_truncation)]
        let drifted = (elapsed_ms * self.drift_ppm / 1_000_000.0).round() as i64;
        self.offset_ms.saturating_add(drifted)
    }
}

impl Shared {
    /// Fresh state for these settings.
    pub fn new(settings: AdapterSettings, buffer: DurableBuffer) -> Arc<Self> {
        let state = AdapterState::new(&settings, buffer);
        let writer = format!("{}@{}", settings.name, failover_proto::process::unix_us());
        Arc::new(Shared {
            writer,
            settings,
            state: Mutex::new(state),
            changed: watch::Sender::new(0),
            data: Notify::new(),
            clock: Mutex::new(ClockFault {
                offset_ms: 0,
                drift_ppm: 0.0,
                since: Instant::now(),
            }),
        })
    }

    /// This adapter's clock (unix ms): the machine's, moved by any clock fault. The vendor's
    /// behaviour stamps what it receives with it.
    pub fn clock_ms(&self) -> i64 {
        failover_proto::process::unix_ms().saturating_add(self.clock().offset_now_ms())
    }

    /// The clock fault in force.
    pub fn clock(&self) -> ClockFault {
        *self.clock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets this adapter's clock `offset_ms` from the machine's, drifting `drift_ppm`.
    pub fn set_clock(&self, offset_ms: i64, drift_ppm: f64) {
        *self.clock.lock().unwrap_or_else(PoisonError::into_inner) = ClockFault {
            offset_ms,
            drift_ppm,
            since: Instant::now(),
        };
    }

    /// Locks the state.
    pub fn lock(&self) -> MutexGuard<'_, AdapterState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the state, then wakes every task.
    pub fn update<T>(&self, f: impl FnOnce(&mut AdapterState) -> T) -> T {
        let out = f(&mut self.lock());
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        out
    }

    /// Wakes every task.
    pub fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}
