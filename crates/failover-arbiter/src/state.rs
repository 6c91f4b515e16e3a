//! The arbiter's shared state: every group, the outbound channel of every live session, and
//! the watchers. All changes go through [`Arbiter::apply`], which logs each transition with its
//! reason, pushes assignments and publishes the new status.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};
use tokio::time::Instant;

use failover_core::{
    Broken, BrokenRule, Role,
    group::{Group, SessionId, Transition, TransitionKind},
};
use failover_proto::{convert, process, v1};
use tokio::sync::{Notify, broadcast, mpsc};
use tonic::Status;

use crate::auth::Authenticator;

mod leadership;
pub use leadership::{OverrideWrite, Standing, StoredOverride};

/// Statuses a slow watcher may fall behind by before it is given the current one instead.
const WATCH_BACKLOG: usize = 4096;

/// Where a session's assignments go.
pub(crate) type Outbound = mpsc::Sender<Result<v1::RoleAssignment, Status>>;

/// Per-session maps are ordered by session id (not hashed): the pushes of one change go out in
/// the same order in every process, so a simulated run replays byte for byte.
#[derive(Debug)]
pub(crate) struct GroupEntry {
    pub(crate) group: Group,
    pub(crate) outbound: BTreeMap<SessionId, Outbound>,
    /// Promotions to Primary in this group (for `/metrics`).
    pub(crate) promotions: u64,
    /// Of those, the promotions an operator or a leaving member asked for.
    pub(crate) requested_promotions: u64,
    /// Members declared stale in this group.
    pub(crate) stale_events: u64,
    /// Heartbeats taken for this group.
    pub(crate) heartbeats: u64,
    /// Each member's last reported data flow.
    pub(crate) stats: BTreeMap<SessionId, v1::AdapterStats>,
    /// Members of the vendor's REST API whose last heartbeat answer said Primary, with their
    /// id on that API and when they were told: until each hears otherwise (or goes stale), a
    /// newly chosen Primary is told PendingPrimary.
    pub(crate) told_primary: BTreeMap<SessionId, (String, Duration)>,
    /// Such members whose session ended (deleted, replaced) before they heard otherwise, and
    /// until when each may still act as Primary (its last answer plus failoverTimeout).
    pub(crate) departed_primaries: Vec<(String, Duration)>,
    /// Each member's LastDataProcessedTime (Unix ms), for the session listings: as it reported
    /// it, or, for a member that reports none (failover-lab's), when it last heartbeat as
    /// Primary with a score above 0.
    pub(crate) last_data_unix_ms: BTreeMap<SessionId, i64>,
    /// The LastDataProcessedTime answered to heartbeats and shown in the status: the Primary's,
    /// from its last heartbeat taken as Primary. A Hot standby of the vendor's design drops
    /// what it received before it (less failoverTimeout/2), so it must be what the Primary
    /// says, not when it said it: a Primary whose data stopped keeps reporting the old time.
    pub(crate) relayed_data_unix_ms: Option<i64>,
    /// The vendor's AdditionalData of the group, kept as given.
    pub(crate) additional_data: Option<serde_json::Value>,
    /// The vendor's AdditionalData of each session registered over its REST API.
    pub(crate) session_data: BTreeMap<SessionId, serde_json::Value>,
    /// Operator overrides a leader before this one set (read from the shared store when it
    /// began to lead), each applied when its member joins.
    pub(crate) restored_overrides: Vec<StoredOverride>,
}

impl GroupEntry {
    pub(crate) fn new(group: Group) -> Self {
        GroupEntry {
            group,
            outbound: BTreeMap::new(),
            promotions: 0,
            requested_promotions: 0,
            stale_events: 0,
            heartbeats: 0,
            stats: BTreeMap::new(),
            told_primary: BTreeMap::new(),
            departed_primaries: Vec::new(),
            last_data_unix_ms: BTreeMap::new(),
            relayed_data_unix_ms: None,
            additional_data: None,
            session_data: BTreeMap::new(),
            restored_overrides: Vec::new(),
        }
    }

    /// Notes a member's heartbeat for LastDataProcessedTime: the time it `reported`, or, when
    /// it reports none, `now_ms` if it is a Primary scoring above 0 (taken to have processed
    /// data up to now). The Primary's is relayed to every member.
    pub(crate) fn note_data(&mut self, id: SessionId, reported: Option<i64>, now_ms: i64) {
        let primary = self.group.primary().filter(|p| p.id == id);
        let noted = match reported {
            Some(ms) => Some(ms),
            None => primary.filter(|p| p.score > 0).map(|_| now_ms),
        };
        let Some(ms) = noted else {
            return;
        };
        self.last_data_unix_ms.insert(id, ms);
        if primary.is_some() {
            self.relayed_data_unix_ms = Some(ms);
        }
    }

    /// The Primary's LastDataProcessedTime, from its last heartbeat as Primary (Unix ms).
    pub(crate) fn last_data_processed(&self) -> Option<i64> {
        self.relayed_data_unix_ms
    }

    /// The group's status, on the wire.
    pub(crate) fn status(&self, now: Duration) -> v1::GroupStatus {
        let mut status = status_message(&self.group, now);
        // A session registered over the vendor's REST API is shown from its first heartbeat,
        // with the score it reports (the vendor API lists it before, HeartbeatPosted false).
        status.sessions.retain(|s| {
            s.session_id
                .parse::<SessionId>()
                .is_ok_and(|id| self.group.session(id).is_none_or(|full| full.posted))
        });
        status.heartbeats = self.heartbeats;
        status.promotions = self.promotions;
        status.requested_promotions = self.requested_promotions;
        for s in &mut status.sessions {
            let id = s.session_id.parse::<SessionId>().ok();
            s.stats = id.and_then(|id| self.stats.get(&id).cloned());
        }
        status
    }
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) groups: BTreeMap<String, GroupEntry>,
    /// The newest epoch of each group that was deleted: a group created again under the same
    /// id promotes above it, so an epoch this service handed out never comes back (an adapter
    /// or the endpoint may still hold it).
    pub(crate) epoch_floors: BTreeMap<String, u64>,
    /// Rules broken on purpose (self-tests only; none by default).
    pub(crate) broken: Broken,
    pub(crate) next_session: SessionId,
    /// Heartbeats taken (for `/metrics`).
    pub(crate) heartbeats: u64,
    /// REST heartbeats refused for overload, 429 (for `/metrics`).
    pub(crate) heartbeats_busy: u64,
    /// When this service last began to decide (its start, or with a shared store, when it
    /// last became the leader): a group it creates within a heartbeat interval of this waits
    /// for its members to rejoin.
    pub(crate) deciding_since: Duration,
    /// Every promotion goes above this epoch: with a shared store, the base of the epochs this
    /// leader reserved ([`failover_core::group::Group::promote_above`]); 0 otherwise.
    pub(crate) promotion_floor: u64,
    /// Overrides read from the shared store when this service began to lead, by group: each
    /// group takes its own when it is created.
    pub(crate) restored_overrides: BTreeMap<String, Vec<StoredOverride>>,
}

struct Inner {
    state: Mutex<State>,
    watchers: Mutex<HashMap<String, broadcast::Sender<v1::GroupStatus>>>,
    changed: Notify,
    origin: Instant,
    /// Who may open a heartbeat stream.
    auth: Authenticator,
    /// False from the shutdown signal on (nothing is decided: no promotion, no staleness, so a
    /// graceful restart of the service causes no failover by itself), and, with a shared
    /// store, while another service leads. `standing` says why.
    deciding: std::sync::atomic::AtomicBool,
    standing: Mutex<Standing>,
    /// With a shared store: where a group's overrides go when an operator changes them (the
    /// group id, its overrides (empty: none), and the write's number), written by the store's
    /// task.
    override_writes: Mutex<Option<mpsc::UnboundedSender<OverrideWrite>>>,
    /// Override writes handed to the store so far, and the last one it kept: an admin call
    /// answers once what it changed is kept ([`Arbiter::overrides_kept`]).
    overrides_queued: std::sync::atomic::AtomicU64,
    overrides_kept: tokio::sync::watch::Sender<u64>,
}

impl State {
    /// A new group's entry, above every epoch this service handed out under its id before.
    ///
    /// A service that has just started cannot know which of the groups its members form
    /// existed before it (the last one may have crashed): a group it creates within a
    /// heartbeat interval of its own start promotes nobody until that interval has passed
    /// (unless a member reclaims its role at its epoch), so every member can rejoin first and
    /// the best is chosen, not whichever rejoined first (a restarted adapter that knows no
    /// epoch and holds no data, say, while the old Primary is on its way back). The simulator
    /// found both: a Hot newcomer promoted over the member holding the data (seed 203871), and
    /// a member restarted as Warm promoted while the Hot Primary kept egressing (seed 966). A
    /// pair started together with its service therefore has its first Primary a heartbeat
    /// interval after the start. `now` is the service's time since its start.
    pub(crate) fn new_entry(&self, mut group: Group, now: Duration) -> GroupEntry {
        group.set_broken(self.broken);
        if let Some(floor) = self.epoch_floors.get(group.id())
            && !self.broken.has(BrokenRule::EpochFloor)
        {
            group.remember_epoch(*floor);
        }
        group.promote_above(self.promotion_floor);
        let grace = group.heartbeat_interval();
        if now.saturating_sub(self.deciding_since) < grace
            && !self.broken.has(BrokenRule::StartupWait)
        {
            group.hold_first_promotion_until(grace);
        }
        let mut entry = GroupEntry::new(group);
        entry.restored_overrides = self
            .restored_overrides
            .get(entry.group.id())
            .cloned()
            .unwrap_or_default();
        entry
    }

    /// Removes a group, remembering its newest epoch for a group created again under its id.
    pub(crate) fn remove_group(&mut self, id: &str) {
        if let Some(e) = self.groups.remove(id) {
            let floor = self.epoch_floors.entry(id.to_string()).or_default();
            *floor = (*floor).max(e.group.highest_epoch());
        }
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the expected credentials.
        f.debug_struct("Inner")
            .field("state", &self.state)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// The failover service's state, shared by the gRPC service, the clock and the REST admin.
#[derive(Debug, Clone)]
pub struct Arbiter {
    inner: Arc<Inner>,
}

impl Default for Arbiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Arbiter {
    /// An arbiter with no groups that requires no credentials.
    pub fn new() -> Self {
        Self::with_auth(Authenticator::default())
    }

    /// An arbiter with no groups whose heartbeat streams must pass `auth`.
    pub fn with_auth(auth: Authenticator) -> Self {
        Self::breaking(auth, Broken::NONE)
    }

    /// [`Arbiter::with_auth`], breaking these rules on purpose (the failover service's:
    /// epoch-floor, data-blind-promotion, refused-epoch, startup-wait), for self-tests that must
    /// catch them.
    pub fn breaking(auth: Authenticator, broken: Broken) -> Self {
        Arbiter {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    groups: BTreeMap::new(),
                    epoch_floors: BTreeMap::new(),
                    broken,
                    next_session: 1,
                    heartbeats: 0,
                    heartbeats_busy: 0,
                    deciding_since: Duration::ZERO,
                    promotion_floor: 0,
                    restored_overrides: BTreeMap::new(),
                }),
                watchers: Mutex::new(HashMap::new()),
                changed: Notify::new(),
                origin: Instant::now(),
                auth,
                deciding: std::sync::atomic::AtomicBool::new(true),
                standing: Mutex::new(Standing::Leading),
                override_writes: Mutex::new(None),
                overrides_queued: std::sync::atomic::AtomicU64::new(0),
                overrides_kept: tokio::sync::watch::Sender::new(0),
            }),
        }
    }

    /// Time since the arbiter started: the `now` of every group.
    pub fn now(&self) -> Duration {
        self.inner.origin.elapsed()
    }

    /// The instant a group time corresponds to.
    pub fn instant_of(&self, t: Duration) -> Instant {
        self.inner.origin + t
    }

    /// Who may open a heartbeat stream (and the token endpoint).
    pub fn authenticator(&self) -> &Authenticator {
        &self.inner.auth
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Resolves when something changed that may move the next deadline.
    pub(crate) async fn changed(&self) {
        self.inner.changed.notified().await;
    }

    /// Logs `changes`, pushes assignments to the group's members if a role may have changed,
    /// publishes the group's status, and wakes the clock. A promotion among changes that hold a
    /// member leaving or an override beginning, ending or expiring was asked for.
    pub(crate) fn apply(&self, state: &mut State, group_id: &str, changes: &[Transition]) {
        let requested = changes.iter().any(|t| {
            matches!(
                t.kind,
                TransitionKind::Left { .. } | TransitionKind::Override { .. }
            )
        });
        self.apply_changes(state, group_id, changes, requested);
    }

    /// [`Arbiter::apply`] for changes an operator asked for (a deleted session): every
    /// promotion among them was asked for.
    pub(crate) fn apply_requested(
        &self,
        state: &mut State,
        group_id: &str,
        changes: &[Transition],
    ) {
        self.apply_changes(state, group_id, changes, true);
    }

    fn apply_changes(
        &self,
        state: &mut State,
        group_id: &str,
        changes: &[Transition],
        requested: bool,
    ) {
        let Some(entry) = state.groups.get_mut(group_id) else {
            return;
        };
        for t in changes {
            match &t.kind {
                TransitionKind::Promoted { .. } => {
                    entry.promotions += 1;
                    if requested {
                        entry.requested_promotions += 1;
                    }
                }
                TransitionKind::Stale { .. } => entry.stale_events += 1,
                _ => {}
            }
            match &t.kind {
                TransitionKind::Score { .. } => {
                    tracing::info!(group = group_id, event = "score", "{}", t.reason)
                }
                TransitionKind::Stale { .. } | TransitionKind::NoPrimary => {
                    tracing::warn!(group = group_id, event = kind_name(&t.kind), "{}", t.reason)
                }
                other => tracing::info!(group = group_id, event = kind_name(other), "{}", t.reason),
            }
        }
        // Drop channels of sessions that no longer exist (replaced, deleted or left), telling
        // each stream why, so its adapter reconnects instead of heartbeating into nothing.
        let live: Vec<SessionId> = entry.group.sessions().iter().map(|s| s.id).collect();
        entry.outbound.retain(|id, tx| {
            let keep = live.contains(id);
            if !keep {
                let _ = tx.try_send(Err(Status::aborted(format!(
                    "session {id} of group {group_id} ended (replaced by a restart, deleted by an operator, or left); reconnect to rejoin"
                ))));
            }
            keep
        });
        entry.stats.retain(|id, _| live.contains(id));
        // A member told Primary whose session ended may still act on it until it would have
        // gone stale: the next Primary waits that long as PendingPrimary.
        let timeout = entry.group.failover_timeout();
        let now = self.now();
        for (id, (external, told_at)) in &entry.told_primary {
            if !live.contains(id) {
                entry
                    .departed_primaries
                    .push((external.clone(), *told_at + timeout));
            }
        }
        entry.told_primary.retain(|id, _| live.contains(id));
        entry.departed_primaries.retain(|(_, until)| *until > now);
        entry.last_data_unix_ms.retain(|id, _| live.contains(id));
        entry.session_data.retain(|id, _| live.contains(id));
        // Taken before the pushes, so its observation time is never after a member learns
        // of the change (takeover phases are measured from it).
        let status = entry.status(self.now());
        let roles_may_have_changed = changes
            .iter()
            .any(|t| !matches!(t.kind, TransitionKind::Score { .. }));
        if roles_may_have_changed {
            for (id, tx) in &entry.outbound {
                // A full channel means a member that is not reading (paused); it gets the
                // current assignment in the answer to its next heartbeat.
                let _ = tx.try_send(Ok(assignment_message(&entry.group, *id)));
            }
        }
        self.publish(group_id, status);
        self.inner.changed.notify_one();
    }

    /// Publishes a status to the group's watchers: every status, in order (no coalescing), so
    /// an observer sees every transition, however close together.
    pub(crate) fn publish(&self, group_id: &str, status: v1::GroupStatus) {
        let watchers = self
            .inner
            .watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = watchers.get(group_id) {
            // No receiver is fine.
            let _ = w.send(status);
        }
    }

    /// Every later status of a group, and its status now (taken after subscribing, so nothing
    /// falls between the two).
    pub fn watch(&self, group_id: &str) -> (broadcast::Receiver<v1::GroupStatus>, v1::GroupStatus) {
        let rx = {
            let mut watchers = self
                .inner
                .watchers
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            watchers
                .entry(group_id.to_string())
                .or_insert_with(|| broadcast::channel(WATCH_BACKLOG).0)
                .subscribe()
        };
        (rx, self.status(group_id))
    }

    /// A group's status now (`exists` false when there is no such group).
    pub fn status(&self, group_id: &str) -> v1::GroupStatus {
        let state = self.lock();
        match state.groups.get(group_id) {
            Some(e) => e.status(self.now()),
            None => v1::GroupStatus {
                group_id: group_id.to_string(),
                observed_at_unix_ms: process::unix_ms(),
                ..Default::default()
            },
        }
    }
}

/// A short name for a transition kind, for logs.
pub(crate) fn kind_name(kind: &TransitionKind) -> &'static str {
    match kind {
        TransitionKind::Joined { .. } => "joined",
        TransitionKind::Left { .. } => "left",
        TransitionKind::Stale { .. } => "stale",
        TransitionKind::Recovered { .. } => "recovered",
        TransitionKind::Score { .. } => "score",
        TransitionKind::Demoted { .. } => "demoted",
        TransitionKind::Promoted { .. } => "promoted",
        TransitionKind::Adopted { .. } => "adopted",
        TransitionKind::NoPrimary => "no_primary",
        TransitionKind::Override { .. } => "override",
    }
}

/// What a member is told, on the wire.
pub(crate) fn assignment_message(group: &Group, id: SessionId) -> v1::RoleAssignment {
    let a = group.assignment(id);
    v1::RoleAssignment {
        role: convert::role_to_wire(a.role) as i32,
        epoch: a.epoch,
        primary_adapter_id: a.primary_adapter_id,
        primary_watermark: convert::watermark_to_wire(&a.primary_watermark),
        reason: a.reason,
        heartbeat_interval_ms: u64::try_from(group.heartbeat_interval().as_millis())
            .unwrap_or(u64::MAX),
        session_id: id.to_string(),
    }
}

/// A group's status, on the wire.
fn status_message(group: &Group, now: Duration) -> v1::GroupStatus {
    v1::GroupStatus {
        group_id: group.id().to_string(),
        epoch: group.epoch(),
        primary_adapter_id: group
            .primary()
            .map(|p| p.adapter_id.clone())
            .unwrap_or_default(),
        sessions: group
            .sessions()
            .iter()
            .map(|s| v1::SessionStatus {
                session_id: s.id.to_string(),
                adapter_id: s.adapter_id.clone(),
                score: s.score,
                mode: s.mode.map_or(v1::Mode::Unspecified, convert::mode_to_wire) as i32,
                role: convert::role_to_wire(group.role_of(s.id)) as i32,
                heartbeat_age_ms: u64::try_from(now.saturating_sub(s.last_heartbeat).as_millis())
                    .unwrap_or(u64::MAX),
                heartbeat_age_us: u64::try_from(now.saturating_sub(s.last_heartbeat).as_micros())
                    .unwrap_or(u64::MAX),
                // Filled in by GroupEntry::status, which keeps them.
                stats: None,
                stale: group.is_stale(s, now),
                connected: s.connected,
                registered_order: s.registered_order,
                role_override: s
                    .role_override
                    .map(|o| match o.expires_at {
                        Some(at) => format!(
                            "{} for {:.1} s",
                            o.role,
                            at.saturating_sub(now).as_secs_f64()
                        ),
                        None => format!("{} until cleared", o.role),
                    })
                    .unwrap_or_default(),
            })
            .collect(),
        failover_timeout_ms: u64::try_from(group.failover_timeout().as_millis())
            .unwrap_or(u64::MAX),
        note: group.note().to_string(),
        name: group.name().unwrap_or_default().to_string(),
        description: group.description().unwrap_or_default().to_string(),
        highest_epoch: group.highest_epoch(),
        // Filled in by GroupEntry::status, which counts them.
        heartbeats: 0,
        promotions: 0,
        requested_promotions: 0,
        observed_at_unix_ms: process::unix_ms(),
        observed_at_unix_us: process::unix_us(),
        exists: true,
    }
}

/// The role name as the REST admin shows it.
pub(crate) fn role_name(r: Role) -> &'static str {
    r.as_str()
}
