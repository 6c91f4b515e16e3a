//! One failover group as the failover service sees it: sessions, heartbeats, scores, roles and
//! epochs, as a state machine driven by events and an explicit clock (`now`, time since any fixed
//! point). The arbiter service is a thin shell around [`Group`].
//!
//! The rules (docs/rules.md, B1–B31):
//! - B1: a session with no heartbeat for longer than failoverTimeout is stale;
//! - B3, B5: the Primary keeps its role while it is not stale and its score is above 0, even when
//!   degraded or when another member scores higher (no automatic failback);
//! - B3, B4, B14: otherwise the live member with the highest score above 0 is promoted, ties
//!   going to the earliest registered; each promotion increments the epoch;
//! - B5: when no live member scores above 0, nobody is Primary, and the group's note says so;
//! - B24: an operator override forces a session's role until it expires;
//! - B28: a group recreated by heartbeats that carry an epoch (the failover service restarted)
//!   waits one heartbeat interval before promoting anyone, so the old Primary can reclaim its
//!   role at its epoch instead of causing a needless failover;
//! - B15, B16: the epoch moves only with a promotion. When a member reports an epoch newer than the
//!   group's (it fenced the endpoint at it, or the endpoint refused it for one), the Primary is
//!   promoted again above every epoch seen, so its fence is granted and the pair converges in
//!   one heartbeat instead of wedging;
//! - B19: one name, one live member: a heartbeat with a new incarnation for a name whose session is
//!   live and connected is refused (two adapters were given one name); a restart, whose old
//!   stream closed or went stale, replaces the old session at once;
//! - B21: a member may leave (its document deleted, a graceful stop): its session ends at once and
//!   its role passes on without waiting for failoverTimeout.

use std::time::Duration;

use crate::{config::Mode, modes::Role, timespan::format_timespan};

/// Identifies one session (one incarnation of one adapter) within the arbiter.
pub type SessionId = u64;

/// A heartbeat as the group sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    /// The adapter's name within the group.
    pub adapter_id: String,
    /// Changes on every (re)start of the adapter's failover session.
    pub incarnation: String,
    /// 0..=100.
    pub score: u32,
    /// The adapter's mode (None: it did not say, as a member of the vendor's REST API).
    pub mode: Option<Mode>,
    /// The adapter's failoverTimeout; must match the group's.
    pub failover_timeout: Duration,
    /// Must match the group's.
    pub name: Option<String>,
    /// Must match the group's.
    pub description: Option<String>,
    /// The newest epoch the adapter has seen.
    pub known_epoch: u64,
    /// The adapter believes it is Primary at `known_epoch`.
    pub claims_primary: bool,
    /// Last points the endpoint accepted from this adapter: (stream, seq).
    pub watermark: Vec<(u32, u64)>,
    /// The data time (unix ms) of the first point of the adapter's current unbroken collection
    /// (None: not collecting): among candidates of equal score, the earliest holds the most.
    pub holds_data_since_ms: Option<i64>,
    /// The endpoint refused this adapter's fence or write because another writer holds this
    /// epoch (0: never). From the Primary, at the group's epoch or above, it means the epoch
    /// is taken: the group promotes again above it.
    pub fenced_out_epoch: u64,
}

/// Why a heartbeat was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// A field that is fixed once the group exists differs.
    #[error(
        "{field} of group {group:?} is fixed at {fixed:?} (the heartbeat says {given:?}); delete the group to change it"
    )]
    FixedField {
        /// The group.
        group: String,
        /// name, description or failoverTimeout.
        field: &'static str,
        /// The group's value.
        fixed: String,
        /// The heartbeat's value.
        given: String,
    },
    /// A member of the vendor's REST API registered an id another session already has, under
    /// another name.
    #[error(
        "session {session:?} of group {group:?} exists with the name {name:?}; a session's id and name are fixed (choose another id, or delete the session first)"
    )]
    SessionIdInUse {
        /// The group.
        group: String,
        /// The id.
        session: String,
        /// The name it has.
        name: String,
    },
    /// The group has as many members as it may.
    #[error(
        "group {group:?} has {sessions} members, the most one group may have; delete stale sessions first"
    )]
    Full {
        /// The group.
        group: String,
        /// How many it has.
        sessions: usize,
    },
    /// Another live, connected session already has this adapter name.
    // The same words at every refusal (no ages), so a refused adapter's repeated error is
    // logged once per interval, not at every retry.
    #[error(
        "{adapter} is already a live member of group {group:?} as session {session} (its heartbeat stream is open and it heartbeats within failoverTimeout); give each adapter its own --name"
    )]
    NameInUse {
        /// The group.
        group: String,
        /// The name.
        adapter: String,
        /// The live session holding it.
        session: SessionId,
    },
    /// No session with that id or adapter name.
    #[error("group {group:?} has no session {session:?}")]
    NoSuchSession {
        /// The group.
        group: String,
        /// What was asked for.
        session: String,
    },
}

/// What a group is created with; fixed from then on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSettings {
    /// Friendly name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// failoverTimeout: a member with no heartbeat for longer is stale.
    pub failover_timeout: Duration,
}

/// What became of a registration by a member of the vendor's REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// A new session.
    Created(SessionId, Vec<Transition>),
    /// The same id and name were registered before (registering again is safe).
    Exists(SessionId),
}

/// An operator's role override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleOverride {
    /// The forced role.
    pub role: Role,
    /// When it ends (None: never).
    pub expires_at: Option<Duration>,
}

/// One member of the group.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Arbiter-wide unique id.
    pub id: SessionId,
    /// The adapter's name.
    pub adapter_id: String,
    /// The adapter's incarnation.
    pub incarnation: String,
    /// Last reported score.
    pub score: u32,
    /// Last reported mode (None: not reported; the vendor's REST API carries none).
    pub mode: Option<Mode>,
    /// The session id a member of the vendor's REST API chose for itself (None for gRPC
    /// members, whose sessions the service numbers).
    pub client_id: Option<String>,
    /// False from a REST member's registration until its first heartbeat (the vendor's
    /// HeartbeatPosted); always true for gRPC members, which join by heartbeating.
    pub posted: bool,
    /// When the last heartbeat arrived.
    pub last_heartbeat: Duration,
    /// Order of registration within the group (ties go to the lowest).
    pub registered_order: u64,
    /// In force while Some.
    pub role_override: Option<RoleOverride>,
    /// Last reported egress watermark.
    pub watermark: Vec<(u32, u64)>,
    /// True while the member's heartbeat stream is open (set by the service shell).
    pub connected: bool,
    /// When the session joined.
    pub joined_at: Duration,
    /// As last reported: since when the member holds the data (None: it holds none).
    pub holds_data_since_ms: Option<i64>,
}

/// Something that changed, with its reason in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// What happened.
    pub kind: TransitionKind,
    /// Why, in plain words.
    pub reason: String,
}

/// The kinds of change a group reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionKind {
    /// A new session joined.
    Joined {
        /// The adapter.
        adapter_id: String,
    },
    /// A member left the group (unregistered, or stopped gracefully).
    Left {
        /// The adapter.
        adapter_id: String,
    },
    /// A session went stale.
    Stale {
        /// The adapter.
        adapter_id: String,
    },
    /// A stale session heartbeats again.
    Recovered {
        /// The adapter.
        adapter_id: String,
    },
    /// A session's score changed.
    Score {
        /// The adapter.
        adapter_id: String,
        /// Before.
        from: u32,
        /// After.
        to: u32,
    },
    /// The Primary lost its role.
    Demoted {
        /// The adapter.
        adapter_id: String,
    },
    /// A member became Primary at a new epoch.
    Promoted {
        /// The adapter.
        adapter_id: String,
        /// The new epoch.
        epoch: u64,
    },
    /// After an arbiter restart, the Primary's own claim was adopted at its epoch.
    Adopted {
        /// The adapter.
        adapter_id: String,
        /// Its epoch.
        epoch: u64,
    },
    /// Nobody is Primary.
    NoPrimary,
    /// An override began or ended.
    Override {
        /// The adapter.
        adapter_id: String,
    },
}

/// What one member is told.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// The member's role.
    pub role: Role,
    /// The group's epoch.
    pub epoch: u64,
    /// Who is Primary (empty: nobody).
    pub primary_adapter_id: String,
    /// The Primary's last egress watermark (for a Hot Secondary's buffer).
    pub primary_watermark: Vec<(u32, u64)>,
    /// Why, in plain words.
    pub reason: String,
}

/// A failover group.
#[derive(Debug, Clone)]
pub struct Group {
    id: String,
    name: Option<String>,
    description: Option<String>,
    failover_timeout: Duration,
    epoch: u64,
    /// The newest epoch any member has reported (it may be ahead of `epoch`: the next promotion
    /// goes above it).
    highest_seen: u64,
    primary: Option<SessionId>,
    sessions: Vec<Session>,
    next_order: u64,
    note: String,
    /// Stale flags as last seen, so staleness and recovery are each reported once.
    stale_seen: Vec<(SessionId, bool)>,
    /// After a failover-service restart: no promotion before this (the old Primary may reclaim).
    hold_until: Option<Duration>,
    /// Every promotion goes above this (the service's reserved epochs begin above it: see
    /// [`Group::promote_above`]); unlike `highest_seen`, it does not stop a member reclaiming
    /// its role at its own epoch.
    promotion_floor: u64,
    /// The Primary reported that the endpoint refused it at this epoch (another writer holds
    /// it): the next recompute promotes again above it.
    refused_epoch: Option<u64>,
    /// Rules broken on purpose (self-tests only).
    broken: crate::Broken,
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

mod elect;
mod join;
mod overrides;
#[cfg(test)]
mod tests;

impl Group {
    /// A group created by its first heartbeat, which fixes name, description and timeout.
    pub fn new(id: impl Into<String>, first: &Heartbeat) -> Self {
        Self::create(
            id,
            GroupSettings {
                name: first.name.clone(),
                description: first.description.clone(),
                failover_timeout: first.failover_timeout,
            },
        )
    }

    /// A group created with its settings before any member joins (the vendor's REST API
    /// creates groups so).
    pub fn create(id: impl Into<String>, settings: GroupSettings) -> Self {
        Group {
            id: id.into(),
            name: settings.name,
            description: settings.description,
            failover_timeout: settings.failover_timeout,
            epoch: 0,
            highest_seen: 0,
            primary: None,
            sessions: Vec::new(),
            next_order: 0,
            note: String::new(),
            stale_seen: Vec::new(),
            hold_until: None,
            promotion_floor: 0,
            refused_epoch: None,
            broken: crate::Broken::NONE,
        }
    }

    /// The group id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Name, description and failoverTimeout, fixed at creation.
    pub fn settings(&self) -> GroupSettings {
        GroupSettings {
            name: self.name.clone(),
            description: self.description.clone(),
            failover_timeout: self.failover_timeout,
        }
    }
    /// Fixed at creation.
    pub fn failover_timeout(&self) -> Duration {
        self.failover_timeout
    }
    /// failoverTimeout / 2.
    pub fn heartbeat_interval(&self) -> Duration {
        self.failover_timeout / 2
    }
    /// Fixed at creation.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    /// Fixed at creation.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    /// The current epoch: the epoch of the last promotion (0 before the first).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    /// The newest epoch seen anywhere: the group's, or one a member reported. The next
    /// promotion goes above it.
    pub fn highest_epoch(&self) -> u64 {
        self.epoch.max(self.highest_seen)
    }
    /// Breaks these rules on purpose (data-blind-promotion, refused-epoch), for self-tests.
    pub fn set_broken(&mut self, broken: crate::Broken) {
        self.broken = broken;
    }
    /// Promotes nobody before `at` unless a member reclaims its role (the failover service has
    /// just started: the group's other members may still be on their way back).
    pub fn hold_first_promotion_until(&mut self, at: Duration) {
        if self.epoch == 0 && self.primary.is_none() {
            self.hold_until = Some(self.hold_until.map_or(at, |h| h.max(at)));
        }
    }
    /// Remembers an epoch handed out before (by an earlier group of the same id): the next
    /// promotion goes above it, as above one a member reports.
    pub fn remember_epoch(&mut self, epoch: u64) {
        self.highest_seen = self.highest_seen.max(epoch);
    }
    /// Every promotion from now on goes above `floor`: a failover service that shares a store
    /// with others reserves its epochs there (all above `floor`) when it begins to lead, so an
    /// epoch it hands out was never handed out by another, nor by itself before a restart. A
    /// member that was Primary at an older epoch may still reclaim its role at that epoch
    /// (nobody else can hold it), as after a restart.
    pub fn promote_above(&mut self, floor: u64) {
        self.promotion_floor = self.promotion_floor.max(floor);
    }
    /// Why the group is as it is.
    pub fn note(&self) -> &str {
        &self.note
    }
    /// Members, in registration order.
    pub fn sessions(&self) -> &[Session] {
        &self.sessions
    }
    /// The Primary's session.
    pub fn primary(&self) -> Option<&Session> {
        self.primary.and_then(|id| self.session(id))
    }
    /// A member by id.
    pub fn session(&self, id: SessionId) -> Option<&Session> {
        self.sessions.iter().find(|s| s.id == id)
    }
    /// A member by session id (as text) or adapter name.
    pub fn find_session(&self, key: &str) -> Result<SessionId, GroupError> {
        self.sessions
            .iter()
            .find(|s| s.client_id.as_deref() == Some(key))
            .or_else(|| {
                self.sessions
                    .iter()
                    .find(|s| s.client_id.is_none() && s.id.to_string() == key)
            })
            .or_else(|| self.sessions.iter().find(|s| s.adapter_id == key))
            .map(|s| s.id)
            .ok_or_else(|| GroupError::NoSuchSession {
                group: self.id.clone(),
                session: key.chars().take(80).collect(),
            })
    }
    /// True when a session's last heartbeat is older than failoverTimeout.
    pub fn is_stale(&self, session: &Session, now: Duration) -> bool {
        now.saturating_sub(session.last_heartbeat) > self.failover_timeout
    }
    /// The role of a member.
    pub fn role_of(&self, id: SessionId) -> Role {
        if self.primary == Some(id) {
            Role::Primary
        } else {
            Role::Secondary
        }
    }

    /// What a member is told.
    pub fn assignment(&self, id: SessionId) -> Assignment {
        let primary = self.primary();
        Assignment {
            role: self.role_of(id),
            epoch: self.epoch,
            primary_adapter_id: primary.map(|p| p.adapter_id.clone()).unwrap_or_default(),
            primary_watermark: primary.map(|p| p.watermark.clone()).unwrap_or_default(),
            reason: self.note.clone(),
        }
    }

    /// Lets time pass: sessions go stale, overrides expire.
    pub fn tick(&mut self, now: Duration) -> Vec<Transition> {
        self.recompute(now)
    }

    /// A member the service told to wait (an overloaded service's 429 with `Retry-After`) is
    /// not made stale for the wait: its staleness counts from `until` (the end of the wait it
    /// was given) unless it heartbeats before. Its score and data stay as last reported.
    pub fn excuse(&mut self, id: SessionId, until: Duration) {
        if let Some(s) = self.sessions.iter_mut().find(|s| s.id == id) {
            s.last_heartbeat = s.last_heartbeat.max(until);
        }
    }

    /// A member's heartbeat stream closed (the session stays until it is stale or replaced:
    /// failover follows failoverTimeout, not a closed connection).
    pub fn disconnected(&mut self, id: SessionId) {
        if let Some(s) = self.sessions.iter_mut().find(|s| s.id == id) {
            s.connected = false;
        }
    }
}
