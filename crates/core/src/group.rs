//! One failover group as the failover service sees it: sessions, heartbeats, scores, roles and
//! epochs, as a state machine driven by events and an explicit clock (`now`, time since any fixed
//! point). The arbiter service is a thin shell around [`Group`].
//!
//! The rules (DOMAIN.md):
//! - a session with no heartbeat for longer than failoverTimeout is stale;
//! - the Primary keeps its role while it is not stale and its score is above 0, even when
//!   degraded or when another member scores higher (no automatic failback);
//! - otherwise the live member with the highest score above 0 is promoted, ties going to the
//!   earliest registered; each promotion increments the epoch;
//! - when no live member scores above 0, nobody is Primary, and the group's note says so;
//! - an operator override forces a session's role until it expires;
//! - a group recreated by heartbeats that carry an epoch (the failover service restarted) waits
//!   one heartbeat interval before promoting anyone, so the old Primary can reclaim its role at
//!   its epoch instead of causing a needless failover;
//! - the epoch moves only with a promotion. When a member reports an epoch newer than the
//!   group's (it fenced the endpoint at it, or the endpoint refused it for one), the Primary is
//!   promoted again above every epoch seen, so its fence is granted and the pair converges in
//!   one heartbeat instead of wedging;
//! - one name, one live member: a heartbeat with a new incarnation for a name whose session is
//!   live and connected is refused (two adapters were given one name); a restart, whose old
//!   stream closed or went stale, replaces the old session at once;
//! - a member may leave (its document deleted, a graceful stop): its session ends at once and
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
    /// The Primary reported that the endpoint refused it at this epoch (another writer holds
    /// it): the next recompute promotes again above it.
    refused_epoch: Option<u64>,
    /// Rules broken on purpose (self-tests only).
    broken: crate::Broken,
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

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

    /// The next moment at which time alone can change something (a session going stale or an
    /// override expiring), for the arbiter to wake at exactly then.
    pub fn next_deadline(&self) -> Option<Duration> {
        // A hold matters only while nobody is Primary.
        let hold = self.hold_until.filter(|_| self.primary.is_none());
        let stale = self
            .sessions
            .iter()
            .filter(|s| {
                // Already-stale sessions have nothing more to time out.
                self.stale_seen
                    .iter()
                    .all(|(id, stale)| *id != s.id || !*stale)
            })
            .map(|s| s.last_heartbeat + self.failover_timeout + Duration::from_millis(1));
        let overrides = self
            .sessions
            .iter()
            .filter_map(|s| s.role_override.and_then(|o| o.expires_at));
        stale.chain(overrides).chain(hold).min()
    }

    /// Takes a heartbeat. Returns the session it belongs to and what changed.
    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        now: Duration,
        next_session_id: &mut SessionId,
    ) -> Result<(SessionId, Vec<Transition>), GroupError> {
        self.check_fixed(
            "failoverTimeout",
            &format_timespan(self.failover_timeout),
            &format_timespan(hb.failover_timeout),
        )?;
        self.check_fixed(
            "name",
            &format!("{:?}", self.name),
            &format!("{:?}", hb.name),
        )?;
        self.check_fixed(
            "description",
            &format!("{:?}", self.description),
            &format!("{:?}", hb.description),
        )?;
        let mut changes = Vec::new();
        let existing = self
            .sessions
            .iter()
            .position(|s| s.adapter_id == hb.adapter_id);
        if let Some(i) = existing {
            let old = &self.sessions[i];
            if old.incarnation != hb.incarnation && old.connected && !self.is_stale(old, now) {
                return Err(GroupError::NameInUse {
                    group: self.id.clone(),
                    adapter: hb.adapter_id.clone(),
                    session: old.id,
                });
            }
        } else if self.sessions.len() >= crate::limits::MAX_SESSIONS_PER_GROUP {
            return Err(GroupError::Full {
                group: self.id.clone(),
                sessions: self.sessions.len(),
            });
        }
        if self.sessions.iter().all(|s| !s.posted)
            && self.epoch == 0
            && self.primary.is_none()
            && (hb.known_epoch > 0 || self.highest_seen > 0)
        {
            // A group that existed before (this service restarted, or an operator deleted the
            // group and it is being created again): give its Primary one heartbeat interval to
            // come back and reclaim the role, and every member to rejoin, so the best of them
            // is promoted rather than whoever rejoined first. (Members of the vendor's REST API
            // register before their first heartbeat, with no epoch: they do not count.)
            let until = now + self.heartbeat_interval();
            self.hold_until = Some(self.hold_until.map_or(until, |h| h.max(until)));
        }
        if hb.known_epoch > self.highest_seen {
            // Epochs only grow: a restarted service learns them from its members, and a member
            // that saw a newer one (at the endpoint) makes the next promotion go above it.
            self.highest_seen = hb.known_epoch;
        }
        let fenced_out_epoch = hb.fenced_out_epoch;
        let id = match existing {
            Some(i) if self.sessions[i].incarnation == hb.incarnation => {
                let s = &mut self.sessions[i];
                if s.score != hb.score {
                    changes.push(Transition {
                        kind: TransitionKind::Score {
                            adapter_id: s.adapter_id.clone(),
                            from: s.score,
                            to: hb.score,
                        },
                        reason: format!("{} reports score {}", s.adapter_id, hb.score),
                    });
                }
                s.score = hb.score;
                s.mode = hb.mode;
                s.holds_data_since_ms = hb.holds_data_since_ms;
                s.last_heartbeat = now;
                s.watermark = hb.watermark;
                s.connected = true;
                s.posted = true;
                let id = s.id;
                self.adopt_claim(
                    id,
                    hb.claims_primary,
                    hb.known_epoch,
                    hb.score,
                    &mut changes,
                );
                id
            }
            found => {
                // An operator's override belongs to the member, not to one of its sessions:
                // a restart keeps it (overrides are meant for machines that restart often).
                let mut inherited = None;
                if let Some(i) = found {
                    let old = self.sessions.remove(i);
                    inherited = old.role_override;
                    if self.primary == Some(old.id) {
                        self.primary = None;
                        changes.push(Transition {
                            kind: TransitionKind::Demoted {
                                adapter_id: old.adapter_id.clone(),
                            },
                            reason: format!(
                                "{} restarted (new incarnation): its old session, the Primary, ends",
                                old.adapter_id
                            ),
                        });
                    }
                }
                let id = *next_session_id;
                *next_session_id += 1;
                changes.push(Transition {
                    kind: TransitionKind::Joined {
                        adapter_id: hb.adapter_id.clone(),
                    },
                    reason: format!(
                        "{} joined group {} ({} mode, score {})",
                        hb.adapter_id,
                        self.id,
                        hb.mode.map_or("unreported", Mode::as_str),
                        hb.score
                    ),
                });
                self.sessions.push(Session {
                    id,
                    adapter_id: hb.adapter_id.clone(),
                    incarnation: hb.incarnation,
                    score: hb.score,
                    mode: hb.mode,
                    client_id: None,
                    posted: true,
                    last_heartbeat: now,
                    registered_order: self.next_order,
                    role_override: inherited,
                    watermark: hb.watermark,
                    connected: true,
                    joined_at: now,
                    holds_data_since_ms: hb.holds_data_since_ms,
                });
                self.next_order += 1;
                self.adopt_claim(
                    id,
                    hb.claims_primary,
                    hb.known_epoch,
                    hb.score,
                    &mut changes,
                );
                id
            }
        };
        if self.primary == Some(id)
            && self.epoch > 0
            && fenced_out_epoch >= self.epoch
            && !self.broken.has(crate::BrokenRule::RefusedEpoch)
        {
            // The endpoint is fenced at our Primary's epoch by another writer (a service that
            // restarted handed out an epoch the endpoint had seen, say): that epoch is taken.
            self.refused_epoch = Some(fenced_out_epoch);
        }
        changes.extend(self.recompute(now));
        Ok((id, changes))
    }

    /// A member of the vendor's REST API registers a session under an id of its own choosing
    /// (its first heartbeat follows). Registering the same id and name again is safe; the same
    /// id with another name is refused, and so is a name another live member holds (one name,
    /// one live member). A name whose old session is stale is taken over, as at a restart.
    pub fn register(
        &mut self,
        client_id: &str,
        name: &str,
        now: Duration,
        next_session_id: &mut SessionId,
    ) -> Result<Registration, GroupError> {
        if let Some(s) = self
            .sessions
            .iter()
            .find(|s| s.client_id.as_deref() == Some(client_id))
        {
            if s.adapter_id == name {
                return Ok(Registration::Exists(s.id));
            }
            return Err(GroupError::SessionIdInUse {
                group: self.id.clone(),
                session: client_id.chars().take(80).collect(),
                name: s.adapter_id.clone(),
            });
        }
        // An id that names another member (its number or its name) would make every later
        // lookup by that key ambiguous.
        if let Some(other) = self.sessions.iter().find(|s| {
            s.adapter_id != name
                && (s.adapter_id == client_id
                    || (s.client_id.is_none() && s.id.to_string() == client_id))
        }) {
            return Err(GroupError::SessionIdInUse {
                group: self.id.clone(),
                session: client_id.chars().take(80).collect(),
                name: other.adapter_id.clone(),
            });
        }
        let incarnation = format!("rest/{client_id}");
        let (id, changes) = self.heartbeat(
            Heartbeat {
                adapter_id: name.to_string(),
                incarnation,
                score: 0,
                mode: None,
                failover_timeout: self.failover_timeout,
                name: self.name.clone(),
                description: self.description.clone(),
                known_epoch: 0,
                claims_primary: false,
                watermark: Vec::new(),
                holds_data_since_ms: None,
                fenced_out_epoch: 0,
            },
            now,
            next_session_id,
        )?;
        if let Some(s) = self.sessions.iter_mut().find(|s| s.id == id) {
            s.client_id = Some(client_id.to_string());
            s.posted = false;
        }
        Ok(Registration::Created(id, changes))
    }

    /// Adopts a member's claim to be Primary at the newest epoch seen, while nobody is Primary
    /// (the service restarted, or the group was recreated): it keeps its role at its epoch, with
    /// no failover. Its score must be above 0; a claim made while it scored 0 (resubscribing
    /// to its source, say) is adopted at its next heartbeat above 0.
    fn adopt_claim(
        &mut self,
        id: SessionId,
        claims_primary: bool,
        known_epoch: u64,
        score: u32,
        changes: &mut Vec<Transition>,
    ) {
        if !claims_primary
            || known_epoch == 0
            || known_epoch != self.highest_epoch()
            || self.primary.is_some()
            || score == 0
        {
            return;
        }
        let Some(adapter) = self.session(id).map(|s| s.adapter_id.clone()) else {
            return;
        };
        self.epoch = known_epoch;
        self.primary = Some(id);
        self.hold_until = None;
        changes.push(Transition {
            kind: TransitionKind::Adopted {
                adapter_id: adapter.clone(),
                epoch: self.epoch,
            },
            reason: format!(
                "{adapter} was Primary at epoch {} and nobody else is: it keeps the role",
                self.epoch
            ),
        });
    }

    fn check_fixed(&self, field: &'static str, fixed: &str, given: &str) -> Result<(), GroupError> {
        if fixed == given {
            Ok(())
        } else {
            Err(GroupError::FixedField {
                group: self.id.clone(),
                field,
                fixed: fixed.to_string(),
                given: given.to_string(),
            })
        }
    }

    /// Lets time pass: sessions go stale, overrides expire.
    pub fn tick(&mut self, now: Duration) -> Vec<Transition> {
        self.recompute(now)
    }

    /// A member's heartbeat stream closed (the session stays until it is stale or replaced:
    /// failover follows failoverTimeout, not a closed connection).
    pub fn disconnected(&mut self, id: SessionId) {
        if let Some(s) = self.sessions.iter_mut().find(|s| s.id == id) {
            s.connected = false;
        }
    }

    /// A member leaves the group (its document was deleted, or it stops gracefully): its
    /// session ends at once, and its role passes on as the rules say.
    pub fn leave(&mut self, id: SessionId, now: Duration) -> Vec<Transition> {
        let Some(s) = self.session(id) else {
            return Vec::new();
        };
        let adapter = s.adapter_id.clone();
        self.sessions.retain(|s| s.id != id);
        self.stale_seen.retain(|(s, _)| *s != id);
        let mut changes = vec![Transition {
            kind: TransitionKind::Left {
                adapter_id: adapter.clone(),
            },
            reason: format!("{adapter} left group {}", self.id),
        }];
        if self.primary == Some(id) {
            self.primary = None;
            changes.push(Transition {
                kind: TransitionKind::Demoted {
                    adapter_id: adapter.clone(),
                },
                reason: format!("{adapter}, the Primary, left the group"),
            });
        }
        changes.extend(self.recompute(now));
        changes
    }

    /// Removes a session (admin). Its role passes on as the rules say.
    pub fn remove_session(
        &mut self,
        key: &str,
        now: Duration,
    ) -> Result<Vec<Transition>, GroupError> {
        let id = self.find_session(key)?;
        let adapter = self
            .session(id)
            .map(|s| s.adapter_id.clone())
            .unwrap_or_default();
        self.sessions.retain(|s| s.id != id);
        self.stale_seen.retain(|(s, _)| *s != id);
        let mut changes = Vec::new();
        if self.primary == Some(id) {
            self.primary = None;
            changes.push(Transition {
                kind: TransitionKind::Demoted {
                    adapter_id: adapter,
                },
                reason: format!("session {key} was deleted by an operator"),
            });
        }
        changes.extend(self.recompute(now));
        Ok(changes)
    }

    /// Forces a session's role until `expires_at` (None: indefinitely), or ends an override
    /// with `role` None.
    pub fn set_override(
        &mut self,
        key: &str,
        role: Option<Role>,
        expires_at: Option<Duration>,
        now: Duration,
    ) -> Result<Vec<Transition>, GroupError> {
        let id = self.find_session(key)?;
        for s in &mut self.sessions {
            if s.id == id {
                s.role_override = role.map(|role| RoleOverride { role, expires_at });
            } else if role == Some(Role::Primary)
                && s.role_override.map(|o| o.role) == Some(Role::Primary)
            {
                // Only one member can be forced Primary.
                s.role_override = None;
            }
        }
        let adapter = self
            .session(id)
            .map(|s| s.adapter_id.clone())
            .unwrap_or_default();
        let mut changes = vec![Transition {
            kind: TransitionKind::Override {
                adapter_id: adapter.clone(),
            },
            reason: match (role, expires_at) {
                (Some(r), Some(at)) => format!(
                    "operator override: {adapter} is {r} for {}",
                    secs(at.saturating_sub(now))
                ),
                (Some(r), None) => format!("operator override: {adapter} is {r} until cleared"),
                (None, _) => format!("operator override of {adapter} cleared"),
            },
        }];
        changes.extend(self.recompute(now));
        Ok(changes)
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

    fn override_of(&self, s: &Session) -> Option<Role> {
        s.role_override.map(|o| o.role)
    }

    /// Applies the rules at `now`; returns what changed.
    fn recompute(&mut self, now: Duration) -> Vec<Transition> {
        let mut changes = Vec::new();
        // Overrides end when they expire.
        for s in &mut self.sessions {
            if let Some(o) = s.role_override
                && o.expires_at.is_some_and(|at| at <= now)
            {
                s.role_override = None;
                changes.push(Transition {
                    kind: TransitionKind::Override {
                        adapter_id: s.adapter_id.clone(),
                    },
                    reason: format!("operator override of {} expired", s.adapter_id),
                });
            }
        }
        // Staleness, reported once per change.
        let mut stale_seen = Vec::with_capacity(self.sessions.len());
        for s in &self.sessions {
            let stale = self.is_stale(s, now);
            let was = self
                .stale_seen
                .iter()
                .find(|(id, _)| *id == s.id)
                .map(|(_, st)| *st)
                .unwrap_or(false);
            if stale && !was {
                changes.push(Transition {
                    kind: TransitionKind::Stale {
                        adapter_id: s.adapter_id.clone(),
                    },
                    reason: format!(
                        "{} last heartbeat {} ago > failoverTimeout {}: stale",
                        s.adapter_id,
                        secs(now.saturating_sub(s.last_heartbeat)),
                        secs(self.failover_timeout)
                    ),
                });
            } else if !stale && was {
                changes.push(Transition {
                    kind: TransitionKind::Recovered {
                        adapter_id: s.adapter_id.clone(),
                    },
                    reason: format!("{} heartbeats again", s.adapter_id),
                });
            }
            stale_seen.push((s.id, stale));
        }
        self.stale_seen = stale_seen;

        let live = |g: &Group, s: &Session| !g.is_stale(s, now);
        // A member forced Primary takes the role and keeps it while the override holds, stale
        // or not (Doc: "the session will still remain in primary role while the role override
        // is in effect"; overrides are meant for a machine that may be restarting often).
        // Nobody else is promoted meanwhile, so no other writer fences past it.
        let forced = self
            .sessions
            .iter()
            .find(|s| self.override_of(s) == Some(Role::Primary))
            .map(|s| s.id);
        // Does the current Primary keep its role?
        let keep = self.primary.and_then(|id| self.session(id)).and_then(|p| {
            let why_not = if forced.is_some_and(|f| f != p.id) {
                Some("an operator override makes another member Primary".to_string())
            } else if self.override_of(p) == Some(Role::Secondary) {
                Some(format!(
                    "an operator override makes {} Secondary",
                    p.adapter_id
                ))
            } else if !live(self, p) && forced != Some(p.id) {
                Some(format!(
                    "{} last heartbeat {} ago > failoverTimeout {}: stale",
                    p.adapter_id,
                    secs(now.saturating_sub(p.last_heartbeat)),
                    secs(self.failover_timeout)
                ))
            } else if p.score == 0 && forced != Some(p.id) {
                Some(format!("{} score dropped to 0", p.adapter_id))
            } else {
                None
            };
            match why_not {
                None => Some(p.id),
                Some(reason) => {
                    changes.push(Transition {
                        kind: TransitionKind::Demoted {
                            adapter_id: p.adapter_id.clone(),
                        },
                        reason,
                    });
                    None
                }
            }
        });
        let had_primary = self.primary.is_some();
        let refused = self.refused_epoch.take().filter(|e| *e >= self.epoch);
        if let Some(id) = keep
            && (self.highest_seen > self.epoch || refused.is_some())
        {
            // A member knows a newer epoch than the Primary's, or the Primary was refused at its
            // own (the endpoint is fenced at it by another writer): the Primary's fence would
            // be refused. Promote it again above every epoch seen.
            let adapter = self
                .session(id)
                .map(|p| p.adapter_id.clone())
                .unwrap_or_default();
            let before = self.highest_seen;
            let seen = before.max(refused.unwrap_or(0));
            self.highest_seen = seen;
            self.epoch = seen.saturating_add(1);
            self.note = match refused {
                Some(r) if r >= before => format!(
                    "{adapter} promoted again, epoch {} (the endpoint refused it: another writer holds epoch {r}; the Primary's epoch must be above every epoch seen)",
                    self.epoch
                ),
                _ => format!(
                    "{adapter} promoted again, epoch {} (an epoch {seen} newer than its own was reported: the Primary's epoch must be above every epoch seen)",
                    self.epoch
                ),
            };
            changes.push(Transition {
                kind: TransitionKind::Promoted {
                    adapter_id: adapter,
                    epoch: self.epoch,
                },
                reason: self.note.clone(),
            });
        }
        if let Some(id) = keep {
            self.primary = Some(id);
            // Somebody is Primary: nothing left to hold promotions for.
            self.hold_until = None;
            if let Some(p) = self.session(id) {
                if !live(self, p) {
                    self.note = format!(
                        "{} is Primary by operator override although stale (no heartbeat for {}): nobody egresses until it returns or the override ends",
                        p.adapter_id,
                        secs(now.saturating_sub(p.last_heartbeat))
                    );
                } else if p.score < crate::modes::FULL_SCORE {
                    self.note = format!(
                        "{} is Primary (degraded, score {}); it keeps the role while its score is above 0",
                        p.adapter_id, p.score
                    );
                } else if !self.note.starts_with(&format!("{} promoted", p.adapter_id)) {
                    // Keep the note that explains the promotion; replace any other (a degraded
                    // note, an adoption, an expired override) with the plain state.
                    self.note = format!("{} is Primary at epoch {}", p.adapter_id, self.epoch);
                }
            }
            return changes;
        }
        self.primary = None;
        if forced.is_none()
            && let Some(hold) = self.hold_until
        {
            if now < hold {
                let note = format!(
                    "the group is new to the failover service (it just started, or the group was deleted): waiting {} for its members to rejoin and its Primary to reclaim the role",
                    secs(hold - now)
                );
                if self.note != note {
                    changes.push(Transition {
                        kind: TransitionKind::NoPrimary,
                        reason: note.clone(),
                    });
                    self.note = note;
                }
                return changes;
            }
            self.hold_until = None;
        }
        // Once the group has had a Primary (here, or before a restart or a deletion), one
        // may have left data unflushed: among the highest scores, the member holding data
        // since the earliest holds what the others do not (a Hot standby, before a Warm or
        // Cold one or one that just resubscribed). Before that, ties go to the earliest
        // registered, so a pair starts the same way every time.
        let had_history =
            self.highest_epoch() > 0 && !self.broken.has(crate::BrokenRule::DataBlindPromotion);
        let candidate = match forced {
            Some(id) => self.session(id),
            None => self
                .sessions
                .iter()
                .filter(|s| {
                    live(self, s) && s.score > 0 && self.override_of(s) != Some(Role::Secondary)
                })
                .max_by(|a, b| {
                    let since = |s: &Session| {
                        if had_history {
                            s.holds_data_since_ms.unwrap_or(i64::MAX)
                        } else {
                            0
                        }
                    };
                    a.score
                        .cmp(&b.score)
                        .then(since(b).cmp(&since(a)))
                        .then(b.registered_order.cmp(&a.registered_order))
                }),
        };
        match candidate {
            Some(c) => {
                let (cid, adapter, score) = (c.id, c.adapter_id.clone(), c.score);
                self.epoch = self.highest_epoch().saturating_add(1);
                self.primary = Some(cid);
                let why = if forced == Some(cid) {
                    "operator override".to_string()
                } else {
                    let others = self.sessions.iter().filter(|s| live(self, s)).count();
                    if others == 1 {
                        format!("lone live member, score {score}")
                    } else {
                        format!("highest score {score} among live members")
                    }
                };
                self.note = format!("{adapter} promoted, epoch {} ({why})", self.epoch);
                changes.push(Transition {
                    kind: TransitionKind::Promoted {
                        adapter_id: adapter,
                        epoch: self.epoch,
                    },
                    reason: self.note.clone(),
                });
            }
            None => {
                let any_live = self.sessions.iter().any(|s| live(self, s));
                let note = if any_live {
                    "no member has a score above 0: nobody is Primary and nobody egresses"
                } else {
                    "no live member: nobody is Primary and nobody egresses"
                };
                if had_primary || self.note != note {
                    changes.push(Transition {
                        kind: TransitionKind::NoPrimary,
                        reason: note.to_string(),
                    });
                }
                self.note = note.to_string();
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(4);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn hb(adapter: &str, score: u32) -> Heartbeat {
        Heartbeat {
            adapter_id: adapter.into(),
            incarnation: format!("{adapter}-1"),
            score,
            mode: Some(Mode::Hot),
            failover_timeout: T,
            name: None,
            description: None,
            known_epoch: 0,
            claims_primary: false,
            watermark: vec![],
            holds_data_since_ms: None,
            fenced_out_epoch: 0,
        }
    }

    struct Sim {
        g: Group,
        next: SessionId,
    }

    impl Sim {
        fn new() -> Self {
            Sim {
                g: Group::new("g", &hb("x", 0)),
                next: 1,
            }
        }
        /// A heartbeat; a new incarnation comes after its old stream closed (a restart).
        fn beat(&mut self, h: Heartbeat, now: u64) -> Vec<Transition> {
            let restarted = self
                .g
                .sessions()
                .iter()
                .find(|s| s.adapter_id == h.adapter_id && s.incarnation != h.incarnation)
                .map(|s| s.id);
            if let Some(old) = restarted {
                self.g.disconnected(old);
            }
            self.g
                .heartbeat(h, ms(now), &mut self.next)
                .expect("heartbeat accepted")
                .1
        }
        fn primary(&self) -> Option<&str> {
            self.g.primary().map(|p| p.adapter_id.as_str())
        }
    }

    fn promoted(changes: &[Transition]) -> Vec<(String, u64)> {
        changes
            .iter()
            .filter_map(|t| match &t.kind {
                TransitionKind::Promoted { adapter_id, epoch } => {
                    Some((adapter_id.clone(), *epoch))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn lone_member_becomes_primary_and_second_is_secondary() {
        let mut s = Sim::new();
        let c = s.beat(hb("a", 100), 0);
        assert_eq!(promoted(&c), vec![("a".to_string(), 1)]);
        assert!(s.g.note().contains("lone live member"));
        let c = s.beat(hb("b", 100), 10);
        assert!(promoted(&c).is_empty());
        assert_eq!(s.primary(), Some("a"));
        let b = s.g.find_session("b").expect("b");
        assert_eq!(s.g.assignment(b).role, Role::Secondary);
        assert_eq!(s.g.assignment(b).primary_adapter_id, "a");
    }

    #[test]
    fn ties_go_to_the_earliest_registered() {
        let mut s = Sim::new();
        s.beat(hb("x", 100), 0);
        s.beat(hb("b", 100), 0);
        s.beat(hb("a", 100), 0);
        let c = s.beat(hb("x", 0), 10);
        assert_eq!(promoted(&c), vec![("b".to_string(), 2)]);
    }

    #[test]
    fn highest_score_wins_when_the_primary_must_be_replaced() {
        let mut s = Sim::new();
        s.beat(hb("a", 100), 0);
        s.beat(hb("b", 40), 0);
        s.beat(hb("c", 90), 0);
        let c = s.beat(hb("a", 0), 100);
        assert_eq!(s.primary(), Some("c"));
        assert_eq!(promoted(&c), vec![("c".to_string(), 2)]);
    }

    #[test]
    fn degraded_primary_keeps_its_role() {
        let mut s = Sim::new();
        s.beat(hb("a", 100), 0);
        s.beat(hb("b", 100), 0);
        let c = s.beat(hb("a", 75), 1000);
        assert!(promoted(&c).is_empty());
        assert_eq!(s.primary(), Some("a"));
        assert_eq!(s.g.epoch(), 1);
        assert!(s.g.note().contains("degraded, score 75"), "{}", s.g.note());
        s.beat(hb("a", 1), 2000);
        assert_eq!(s.primary(), Some("a"));
    }

    #[test]
    fn score_zero_fails_over_at_once() {
        let mut s = Sim::new();
        s.beat(hb("a", 100), 0);
        s.beat(hb("b", 100), 0);
        let c = s.beat(hb("a", 0), 500);
        assert_eq!(promoted(&c), vec![("b".to_string(), 2)]);
        assert!(c.iter().any(|t| t.reason.contains("a score dropped to 0")));
    }

    #[test]
    fn stale_primary_fails_over_only_after_the_timeout() {
        let mut s = Sim::new();
        s.beat(hb("a", 100), 0);
        s.beat(hb("b", 100), 0);
        s.beat(hb("b", 100), 2000);
        // Exactly at the timeout the session is not yet stale.
        assert!(promoted(&s.g.tick(ms(4000))).is_empty());
        assert_eq!(s.primary(), Some("a"));
        assert_eq!(s.g.next_deadline(), Some(ms(4001)));
        s.beat(hb("b", 100), 4000);
        let c = s.g.tick(ms(4001));
        assert_eq!(promoted(&c), vec![("b".to_string(), 2)]);
        let stale = c
            .iter()
            .find(|t| matches!(t.kind, TransitionKind::Stale { .. }))
            .expect("stale reported");
        assert!(
            stale
                .reason
                .contains("a last heartbeat 4.0 s ago > failoverTimeout 4.0 s: stale"),
            "{}",
            stale.reason
        );
        // Reported once only.
        assert!(
            s.g.tick(ms(4500))
                .iter()
                .all(|t| !matches!(t.kind, TransitionKind::Stale { .. }))
        );
    }

    #[test]
    fn no_automatic_failback() {
        let mut s = Sim::new();
        s.beat(hb("a", 100), 0);
        s.beat(hb("b", 100), 0);
        s.beat(hb("b", 100), 4000);
        s.g.tick(ms(4001));
        assert_eq!(s.primary(), Some("b"));
        // The old Primary comes back healthy (same incarnation after a pause, or a new one
        // after a restart): it stays Secondary.
        let c = s.beat(hb("a", 100), 4100);
        assert!(promoted(&c).is_empty());
        let mut restarted = hb("a", 100);
        restarted.incarnation = "a-2".into();
        let c = s.beat(restarted, 4200);
        assert!(promoted(&c).is_empty());
        assert_eq!(s.primary(), Some("b"));
        let a = s.g.find_session("a").expect("a");
        assert_eq!(s.g.role_of(a), Role::Secondary);
        // Even with a higher score than the degraded Primary.
        s.beat(hb("b", 50), 4300);
        assert_eq!(s.primary(), Some("b"));
    }

    #[test]
    fn nobody_is_promoted_when_nobody_scores_above_zero() {
        let mut s = Sim::new();
        s.beat(hb("a", 100), 0);
        s.beat(hb("b", 0), 0);
        let c = s.beat(hb("a", 0), 100);
        assert!(promoted(&c).is_empty());
        assert_eq!(s.primary(), None);
        assert!(c.iter().any(|t| t.kind == TransitionKind::NoPrimary));
        assert!(s.g.note().contains("nobody egresses"));
        // The first to recover is promoted at a new epoch.
        let c = s.beat(hb("b", 100), 200);
        assert_eq!(promoted(&c), vec![("b".to_string(), 2)]);
    }

    #[test]
    fn cold_standby_at_one_is_promoted_only_when_the_primary_drops() {
        let mut s = Sim::new();
        let mut a = hb("a", 1);
        a.mode = Some(Mode::Cold);
        let mut b = hb("b", 1);
        b.mode = Some(Mode::Cold);
        s.beat(a.clone(), 0);
        assert_eq!(s.primary(), Some("a"));
        a.score = 100;
        s.beat(a.clone(), 10);
        s.beat(b.clone(), 20);
        assert_eq!(s.primary(), Some("a"));
        a.score = 0;
        let c = s.beat(a, 30);
        assert_eq!(promoted(&c), vec![("b".to_string(), 2)]);
    }

    #[test]
    fn restarted_primary_loses_its_session_and_rejoins_as_secondary() {
        let mut s = Sim::new();
        s.beat(hb("a", 100), 0);
        s.beat(hb("b", 100), 0);
        let mut again = hb("a", 100);
        again.incarnation = "a-2".into();
        let c = s.beat(again, 500);
        assert_eq!(promoted(&c), vec![("b".to_string(), 2)]);
        assert_eq!(s.g.sessions().len(), 2);
        let a = s.g.find_session("a").expect("a");
        assert_eq!(s.g.role_of(a), Role::Secondary);
    }

    #[test]
    fn fixed_fields_cannot_change() {
        let mut s = Sim::new();
        s.beat(hb("a", 100), 0);
        let mut other = hb("b", 100);
        other.failover_timeout = Duration::from_secs(9);
        let err =
            s.g.heartbeat(other, ms(1), &mut s.next)
                .expect_err("refused");
        assert!(err.to_string().contains("failoverTimeout"), "{err}");
        assert!(err.to_string().contains("delete the group"), "{err}");
        let mut named = hb("b", 100);
        named.name = Some("other".into());
        assert!(matches!(
            s.g.heartbeat(named, ms(1), &mut s.next),
            Err(GroupError::FixedField { field: "name", .. })
        ));
        assert_eq!(s.g.sessions().len(), 1);
    }

    #[test]
    fn restarted_arbiter_adopts_the_primary_and_keeps_epochs_growing() {
        let mut s = Sim::new();
        let mut a = hb("a", 100);
        a.known_epoch = 7;
        a.claims_primary = true;
        let c = s.beat(a, 0);
        assert!(promoted(&c).is_empty());
        assert!(
            c.iter()
                .any(|t| matches!(t.kind, TransitionKind::Adopted { epoch: 7, .. }))
        );
        assert_eq!(s.primary(), Some("a"));
        assert_eq!(s.g.epoch(), 7);
        // The Secondary reconnecting with an older claim changes nothing.
        let mut b = hb("b", 100);
        b.known_epoch = 6;
        b.claims_primary = true;
        s.beat(b, 10);
        assert_eq!(s.primary(), Some("a"));

        // Had the Secondary come first, nobody is promoted for a heartbeat interval, and the
        // old Primary reclaims its role when it comes within it.
        let mut s = Sim::new();
        let mut b = hb("b", 100);
        b.known_epoch = 7;
        let c = s.beat(b.clone(), 0);
        assert_eq!(s.primary(), None);
        assert!(
            c.iter()
                .any(|t| t.reason.contains("waiting 2.0 s for its members to rejoin")),
            "{c:?}"
        );
        assert_eq!(s.g.next_deadline(), Some(ms(2000)));
        let mut a = hb("a", 100);
        a.known_epoch = 7;
        a.claims_primary = true;
        s.beat(a, 1500);
        assert_eq!(s.primary(), Some("a"));
        assert_eq!(s.g.epoch(), 7);

        // When it does not come back, the highest score is promoted past the known epoch.
        let mut s = Sim::new();
        s.beat(b, 0);
        assert!(promoted(&s.g.tick(ms(1999))).is_empty());
        assert_eq!(promoted(&s.g.tick(ms(2000))), vec![("b".to_string(), 8)]);
    }

    /// Once the group has had a Primary, the member holding data since the earliest goes
    /// first among equal scores (a Hot standby before one that holds nothing, a long-collecting
    /// one before one that just resubscribed); before that, the earliest registered.
    #[test]
    fn among_equal_scores_the_member_holding_data_longest_is_promoted() {
        let mut s = Sim::new();
        let mut a = hb("a", 100);
        a.holds_data_since_ms = None;
        let mut b = hb("b", 100);
        b.holds_data_since_ms = Some(1_000);
        // The group remembers an epoch (it existed before): it waits, then chooses.
        s.g.remember_epoch(3);
        s.beat(a.clone(), 0);
        s.beat(b.clone(), 10);
        assert_eq!(s.primary(), None, "waits for its members");
        assert_eq!(promoted(&s.g.tick(ms(2000))), vec![("b".to_string(), 4)]);

        // Both collecting: the earlier wins, whoever registered first.
        let mut s = Sim::new();
        s.g.remember_epoch(3);
        a.holds_data_since_ms = Some(5_000);
        s.beat(a.clone(), 0);
        s.beat(b.clone(), 10);
        assert_eq!(promoted(&s.g.tick(ms(2000))), vec![("b".to_string(), 4)]);

        // A group with no history: the earliest registered, whatever they hold.
        let mut s = Sim::new();
        s.beat(a, 0);
        s.beat(b, 10);
        assert_eq!(s.primary(), Some("a"));
    }

    /// A Primary that says the endpoint refused it at the group's epoch (another writer holds
    /// it) is promoted again above it at once.
    #[test]
    fn a_primary_refused_at_its_own_epoch_is_promoted_above_it() {
        let mut s = Sim::new();
        s.beat(hb("a", 100), 0);
        s.beat(hb("b", 100), 0);
        assert_eq!((s.primary(), s.g.epoch()), (Some("a"), 1));
        let mut refused = hb("a", 100);
        refused.known_epoch = 1;
        refused.fenced_out_epoch = 1;
        let c = s.beat(refused.clone(), 100);
        assert_eq!(promoted(&c), vec![("a".to_string(), 2)]);
        assert!(c[0].reason.contains("the endpoint refused it"), "{c:?}");
        // The same report later, below the new epoch, changes nothing; nor does a refusal
        // reported by a member that is not Primary.
        assert!(promoted(&s.beat(refused, 200)).is_empty());
        let mut other = hb("b", 100);
        other.known_epoch = 2;
        other.fenced_out_epoch = 2;
        assert!(promoted(&s.beat(other, 300)).is_empty());
        assert_eq!(s.g.epoch(), 2);
    }

    #[test]
    fn override_forces_a_role_until_it_expires() {
        let mut s = Sim::new();
        s.beat(hb("a", 100), 0);
        s.beat(hb("b", 100), 0);
        let c =
            s.g.set_override("b", Some(Role::Primary), Some(ms(1000)), ms(0))
                .expect("override");
        assert_eq!(promoted(&c), vec![("b".to_string(), 2)]);
        assert!(
            c[0].reason.contains("b is Primary for 1.0 s"),
            "{}",
            c[0].reason
        );
        // While forced, even a score of 0 keeps it.
        s.beat(hb("b", 0), 100);
        assert_eq!(s.primary(), Some("b"));
        s.beat(hb("b", 100), 200);
        assert_eq!(s.g.next_deadline(), Some(ms(1000)));
        // After expiry the normal rules resume: b keeps the role (no failback).
        s.beat(hb("a", 100), 900);
        s.beat(hb("b", 100), 900);
        let c = s.g.tick(ms(1000));
        assert!(c.iter().any(|t| t.reason.contains("expired")));
        assert_eq!(s.primary(), Some("b"));
        // Forcing Secondary hands the role on.
        let c =
            s.g.set_override("b", Some(Role::Secondary), None, ms(1100))
                .expect("override");
        assert_eq!(promoted(&c), vec![("a".to_string(), 3)]);
        assert!(s.g.set_override("zzz", None, None, ms(1)).is_err());
    }

    /// Doc (the vendor's role override page): "the session will still remain in primary role
    /// while the role override is in effect", stale or not; overrides are meant for a machine
    /// that may be restarting often. The fence keeps it safe: nobody else is promoted, so no
    /// other writer fences past it.
    #[test]
    fn a_stale_forced_primary_keeps_the_role_while_the_override_holds() {
        let mut s = Sim::new();
        s.beat(hb("a", 100), 0);
        s.beat(hb("b", 100), 0);
        let c =
            s.g.set_override("b", Some(Role::Primary), Some(ms(10_000)), ms(0))
                .expect("override");
        assert_eq!(promoted(&c), vec![("b".to_string(), 2)]);
        // b stops heartbeating (its machine restarts); a goes on.
        for t in (1000..10_000).step_by(1000) {
            s.beat(hb("a", 100), t);
            let c = s.g.tick(ms(t));
            assert!(promoted(&c).is_empty(), "at {t} ms: {c:?}");
            assert_eq!(s.primary(), Some("b"), "at {t} ms");
        }
        assert!(s.g.note().contains("override"), "{}", s.g.note());
        // When the override expires, the rules resume: b is stale, a takes over.
        s.beat(hb("a", 100), 10_000);
        s.g.tick(ms(10_000));
        assert_eq!((s.primary(), s.g.epoch()), (Some("a"), 3));
    }

    /// Doc: overrides are meant for "a machine that may be restarting often": the override
    /// belongs to the member (its name), so a restart, which makes a new session, keeps it.
    #[test]
    fn an_override_survives_the_members_restart() {
        let mut s = Sim::new();
        s.beat(hb("a", 100), 0);
        s.beat(hb("b", 100), 0);
        s.g.set_override("b", Some(Role::Primary), None, ms(0))
            .expect("override");
        assert_eq!(s.primary(), Some("b"));
        let mut restarted = hb("b", 100);
        restarted.incarnation = "b-2".into();
        s.beat(restarted, 500);
        let b = s.g.primary().expect("a Primary");
        assert_eq!(
            (b.adapter_id.as_str(), b.incarnation.as_str()),
            ("b", "b-2"),
            "the restarted b is Primary again"
        );
        assert_eq!(
            b.role_override.map(|o| o.role),
            Some(Role::Primary),
            "its override holds"
        );
    }

    /// Found in review: an epoch reported at u64::MAX overflowed the next promotion (a panic
    /// in debug builds, epoch 0 and a promotion at every recompute in release). The services
    /// refuse such reports (`limits::check_epoch`); the group saturates regardless.
    #[test]
    fn a_far_ahead_epoch_never_overflows_or_loops() {
        let mut s = Sim::new();
        s.beat(hb("a", 100), 0);
        let mut b = hb("b", 100);
        b.known_epoch = u64::MAX;
        let c = s.beat(b.clone(), 10);
        assert_eq!(promoted(&c), vec![("a".to_string(), u64::MAX)]);
        assert!(
            promoted(&s.beat(b, 20)).is_empty(),
            "no promotion at every heartbeat"
        );
        assert!(promoted(&s.beat(hb("a", 100), 30)).is_empty());
    }

    /// Found in review: a REST member registering the id "1" (another member's session number)
    /// or another member's name made later lookups by that key hit the wrong session.
    #[test]
    fn ids_are_unambiguous_and_a_group_has_a_bounded_number_of_members() {
        let mut s = Sim::new();
        s.beat(hb("a", 100), 0);
        let a = s.g.find_session("a").expect("a");
        for taken in [a.to_string(), "a".to_string()] {
            let e = s.g.register(&taken, "x", ms(10), &mut s.next).unwrap_err();
            assert!(matches!(e, GroupError::SessionIdInUse { .. }), "{e:?}");
        }
        s.g.register("guid-1", "x", ms(10), &mut s.next)
            .expect("a fresh id");
        let x = s.g.find_session("guid-1").expect("by its id");
        assert_eq!(s.g.session(x).map(|s| s.adapter_id.as_str()), Some("x"));
        for i in s.g.sessions().len()..crate::limits::MAX_SESSIONS_PER_GROUP {
            s.beat(hb(&format!("m{i}"), 0), 20);
        }
        let e =
            s.g.heartbeat(hb("one-too-many", 0), ms(30), &mut s.next)
                .unwrap_err();
        assert!(matches!(e, GroupError::Full { .. }), "{e:?}");
    }

    #[test]
    fn deleting_the_primary_session_fails_over() {
        let mut s = Sim::new();
        s.beat(hb("a", 100), 0);
        s.beat(hb("b", 100), 0);
        let c = s.g.remove_session("a", ms(10)).expect("removed");
        assert_eq!(promoted(&c), vec![("b".to_string(), 2)]);
        assert_eq!(s.g.sessions().len(), 1);
    }

    /// Issue 13, item 1: a member reporting an epoch ahead of the group's (the other adapter of
    /// a recreated group, or the endpoint fenced ahead) used to raise the group's epoch with no
    /// promotion, so the Primary's fence was refused for ever.
    #[test]
    fn a_newer_epoch_reported_by_a_member_promotes_the_primary_again_above_it() {
        let mut s = Sim::new();
        s.beat(hb("a", 100), 0);
        assert_eq!(s.g.epoch(), 1);
        let mut b = hb("b", 100);
        b.known_epoch = 6;
        let c = s.beat(b.clone(), 10);
        assert_eq!(promoted(&c), vec![("a".to_string(), 7)]);
        assert!(
            s.g.note().contains("promoted again, epoch 7"),
            "{}",
            s.g.note()
        );
        assert_eq!(s.g.epoch(), 7);
        // Once above, the same report changes nothing: no loop.
        assert!(promoted(&s.beat(b, 20)).is_empty());
        // The Primary itself reports the endpoint's newer fence (its fence was refused).
        let mut a = hb("a", 100);
        a.known_epoch = 9;
        let c = s.beat(a, 30);
        assert_eq!(promoted(&c), vec![("a".to_string(), 10)]);
        // Without a Primary, the next promotion goes above the newest epoch seen.
        let mut s = Sim::new();
        s.beat(hb("a", 0), 0);
        let mut b = hb("b", 0);
        b.known_epoch = 4;
        s.beat(b, 0);
        assert_eq!(s.g.epoch(), 0, "the epoch moves only with a promotion");
        assert_eq!(
            promoted(&s.beat(hb("a", 100), 10)),
            vec![("a".to_string(), 5)]
        );
    }

    /// Issue 13, item 2: two adapters with one name replaced each other's session at every
    /// heartbeat.
    #[test]
    fn a_second_live_adapter_with_the_same_name_is_refused_and_a_restart_is_not() {
        let mut s = Sim::new();
        s.beat(hb("a", 100), 0);
        let mut twin = hb("a", 100);
        twin.incarnation = "a-twin".into();
        let err =
            s.g.heartbeat(twin.clone(), ms(500), &mut s.next)
                .expect_err("refused");
        assert!(matches!(err, GroupError::NameInUse { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("a is already a live member of group \"g\"")
                && text.contains("give each adapter its own --name"),
            "{text}"
        );
        assert_eq!(s.primary(), Some("a"));
        assert_eq!(s.g.epoch(), 1);
        // The first one's stream closes (a restart): the newcomer replaces it at once.
        let a = s.g.find_session("a").expect("a");
        s.g.disconnected(a);
        s.beat(twin.clone(), 600);
        assert_ne!(s.g.find_session("a").expect("a"), a);
        // A stale session is replaced too, even if its stream looks open.
        let mut third = hb("a", 100);
        third.incarnation = "a-3".into();
        s.beat(third, 600 + 4001);
        assert_eq!(s.g.sessions().len(), 1);
    }

    /// Found by the simulator (`failover-lab sim --seed 155`): a group recreated by members that
    /// knew an epoch holds promotions for a heartbeat interval; a Primary forced meanwhile kept
    /// the role, the hold was never cleared, and `next_deadline` stayed in the past, so the
    /// service's clock woke again at once, for ever (a busy loop).
    #[test]
    fn a_hold_ends_when_a_primary_is_kept_so_no_deadline_lies_in_the_past() {
        let mut s = Sim::new();
        let mut b = hb("b", 100);
        b.known_epoch = 3;
        s.beat(b, 0);
        s.beat(hb("a", 100), 10);
        assert_eq!(s.primary(), None, "holding for the previous Primary");
        s.g.set_override("a", Some(Role::Primary), None, ms(20))
            .expect("override");
        assert_eq!(s.primary(), Some("a"));
        s.beat(hb("a", 100), 1900);
        s.beat(hb("b", 100), 1900);
        let now = ms(2500);
        s.g.tick(now);
        assert!(
            s.g.next_deadline().is_none_or(|d| d > now),
            "deadline {:?} is not after {now:?}",
            s.g.next_deadline()
        );
    }

    /// Found by `liveness::a_stopping_failover_service_promotes_nobody`: after a restart of the
    /// service, the old Primary's first heartbeat scored 0 (it was resubscribing to its
    /// source), so it was not adopted, and a needless failover followed. A claim is adopted as
    /// soon as its score is above 0, within the hold.
    #[test]
    fn a_restarted_service_adopts_the_primary_once_it_scores_again() {
        let mut s = Sim::new();
        let mut a = hb("a", 0);
        a.known_epoch = 1;
        a.claims_primary = true;
        s.beat(a.clone(), 0);
        assert_eq!(s.primary(), None);
        let mut b = hb("b", 100);
        b.known_epoch = 1;
        s.beat(b, 100);
        a.score = 100;
        let c = s.beat(a, 300);
        assert!(
            c.iter()
                .any(|t| matches!(t.kind, TransitionKind::Adopted { epoch: 1, .. })),
            "{c:?}"
        );
        assert_eq!((s.primary(), s.g.epoch()), (Some("a"), 1));
        assert!(promoted(&s.g.tick(ms(2000))).is_empty());
    }

    /// Issue 13, item 9: a member that leaves hands its role on at once.
    #[test]
    fn a_primary_that_leaves_hands_over_at_once_and_the_group_empties() {
        let mut s = Sim::new();
        s.beat(hb("a", 100), 0);
        s.beat(hb("b", 100), 0);
        let a = s.g.find_session("a").expect("a");
        let c = s.g.leave(a, ms(100));
        assert!(
            c.iter()
                .any(|t| matches!(t.kind, TransitionKind::Left { .. }))
        );
        assert_eq!(promoted(&c), vec![("b".to_string(), 2)]);
        let b = s.g.find_session("b").expect("b");
        s.g.leave(b, ms(200));
        assert!(s.g.sessions().is_empty());
        assert_eq!(s.primary(), None);
        assert!(
            s.g.leave(b, ms(300)).is_empty(),
            "leaving twice is harmless"
        );
    }

    /// Exhaustive over small worlds: whatever the order of heartbeats, scores and ticks, there
    /// is at most one Primary, epochs never decrease, a Primary is never stale or at 0 unless
    /// forced, and a live member above 0 always means somebody is Primary.
    #[test]
    fn invariants_hold_over_every_short_event_sequence() {
        #[derive(Clone, Copy, Debug)]
        enum Ev {
            Beat(usize, u32),
            Restart(usize),
            Tick(u64),
        }
        let names = ["a", "b"];
        let mut events = Vec::new();
        for who in 0..2 {
            for score in [0, 1, 75, 100] {
                events.push(Ev::Beat(who, score));
            }
            events.push(Ev::Restart(who));
        }
        events.push(Ev::Tick(3000));
        let n = events.len();
        let mut checked = 0;
        for a in 0..n {
            for b in 0..n {
                for c in 0..n {
                    for d in 0..n {
                        let mut s = Sim::new();
                        let mut now = 0;
                        let mut inc = [1, 1];
                        let mut last_epoch = 0;
                        for ev in [events[a], events[b], events[c], events[d]] {
                            let mut beat = |w: usize, score: u32, restart: bool| {
                                if restart {
                                    inc[w] += 1;
                                }
                                let mut h = hb(names[w], score);
                                h.incarnation = format!("{}-{}", names[w], inc[w]);
                                h
                            };
                            match ev {
                                Ev::Beat(w, score) => {
                                    let h = beat(w, score, false);
                                    s.beat(h, now);
                                }
                                Ev::Restart(w) => {
                                    let h = beat(w, 100, true);
                                    s.beat(h, now);
                                }
                                Ev::Tick(dt) => {
                                    now += dt;
                                    s.g.tick(ms(now));
                                }
                            }
                            now += 10;
                            assert!(s.g.epoch() >= last_epoch);
                            last_epoch = s.g.epoch();
                            if let Some(p) = s.g.primary() {
                                assert!(p.score > 0, "{events:?}");
                                assert!(!s.g.is_stale(p, ms(now - 10)));
                            } else {
                                let live_above_zero =
                                    s.g.sessions()
                                        .iter()
                                        .any(|x| x.score > 0 && !s.g.is_stale(x, ms(now - 10)));
                                assert!(!live_above_zero, "nobody Primary: {:?}", s.g);
                            }
                            let at = ms(now - 10);
                            assert!(
                                s.g.next_deadline().is_none_or(|d| d > at),
                                "a deadline in the past makes the service's clock spin: {events:?}"
                            );
                            let primaries =
                                s.g.sessions()
                                    .iter()
                                    .filter(|x| s.g.role_of(x.id) == Role::Primary)
                                    .count();
                            assert!(primaries <= 1);
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 10_000);
    }
}
