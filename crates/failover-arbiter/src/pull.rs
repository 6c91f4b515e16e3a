//! Members of the vendor's REST API (the Client Failover Service's): groups created before any
//! member joins, sessions registered under ids the clients choose, and heartbeats whose answers
//! carry the role. Nothing is pushed to these members: each learns its role in the answer to its
//! next heartbeat (pull), so a takeover reaches them up to a heartbeat interval later than a gRPC
//! member, which is told at once.
//!
//! PendingPrimary (the vendor names it, but documents nothing about it; this is ours): a member
//! chosen as Primary is told PendingPrimary while another REST member that was last told Primary
//! is still live and has not heard otherwise (or its session was deleted by an operator less
//! than failoverTimeout ago and its client has not heard 404 since; a member that deletes its
//! own session saying it leaves, with the `Failover-Lab-Leaving: true` header, is not waited
//! for). The old Primary hears Secondary in the answer to
//! its next heartbeat (or goes stale within failoverTimeout); the next answer to the new one says
//! Primary. So a vendor adapter, which does not fence the endpoint, never egresses beside
//! another that still believes it is Primary, as long as both heartbeat. gRPC members are told
//! at once and need no hand-over: the endpoint's fence refuses the old Primary's writes from
//! the moment the new one fences.
//!
//! The rules themselves (staleness, scores, overrides, epochs, one live member per name) are the
//! group's, in `failover_core::group`, for gRPC and REST members alike.

use failover_core::{
    Mode, Role,
    group::{GroupError, GroupSettings, Heartbeat, Registration, SessionId},
};
use failover_proto::process;

use crate::{Arbiter, state::GroupEntry};

/// A role as the vendor's REST API gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullRole {
    /// 0.
    Secondary,
    /// 1.
    Primary,
    /// 2: chosen as Primary, waiting for the previous Primary to hear it is not.
    PendingPrimary,
}

impl PullRole {
    /// The vendor's number for the role.
    pub fn number(self) -> u8 {
        match self {
            PullRole::Secondary => 0,
            PullRole::Primary => 1,
            PullRole::PendingPrimary => 2,
        }
    }
}

/// Why a call of the vendor's API was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullError {
    /// No such group (its id cut to 80 characters).
    #[error("no failover group {0:?}")]
    NoGroup(String),
    /// No such session registered over the REST API.
    #[error("no client session {session:?} in failover group {group:?}")]
    NoSession {
        /// The group.
        group: String,
        /// The session id.
        session: String,
    },
    /// The group exists with other settings.
    #[error(
        "failover group {group:?} exists with {field} {stored}, not {given}; name, description and failoverTimeout are fixed once a group exists (delete the group to change them)"
    )]
    GroupDiffers {
        /// The group.
        group: String,
        /// Name, Description or FailoverTimeout.
        field: &'static str,
        /// What the group has.
        stored: String,
        /// What the request said.
        given: String,
    },
    /// The group refused it.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// The service keeps as many groups as it may.
    #[error("this failover service keeps at most {0} groups; delete unused ones first")]
    TooManyGroups(usize),
    /// The service does not decide now: it is shutting down, or stands by while another leads
    /// (the words say which, and name the leader when one is known).
    #[error("{0}")]
    NotDeciding(String),
}

/// An id as a refusal shows it: at most 80 characters (a path may hold any length).
pub(crate) fn shortened(id: &str) -> String {
    id.chars().take(80).collect()
}

/// What a member of the vendor's API reports in a heartbeat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PullHeartbeat {
    /// 0..=100.
    pub score: u32,
    /// failover-lab adapters say their mode (an extension; the vendor's adapters do not).
    pub mode: Option<Mode>,
    /// failover-lab adapters say the newest epoch they know (an extension).
    pub known_epoch: u64,
    /// failover-lab adapters say whether they act as Primary at `known_epoch` (an extension).
    pub claims_primary: bool,
    /// failover-lab adapters acting as Primary say what the endpoint last accepted from them,
    /// (stream, seq) pairs, for the Hot standby's buffer (an extension).
    pub watermark: Option<Vec<(u32, u64)>>,
    /// failover-lab adapters say since when (data time, unix ms) they hold the data they
    /// collect (an extension; absent: they hold none).
    pub holds_data_since_ms: Option<i64>,
    /// failover-lab adapters say the newest epoch at which the endpoint refused them because
    /// another writer holds it (an extension; 0: never).
    pub fenced_out_epoch: u64,
    /// The vendor's adapters say when they received the last data they processed (Unix ms;
    /// .NET's empty DateTime, year 1, before any); failover-lab's say nothing.
    pub last_data_processed_ms: Option<i64>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullAnswer {
    /// The member's role.
    pub role: PullRole,
    /// The group's epoch (an extension: failover-lab adapters fence the endpoint at it).
    pub epoch: u64,
    /// Why the group is as it is (an extension).
    pub reason: String,
    /// The Primary's name (an extension).
    pub primary_name: String,
    /// The Primary's last egress watermark, for a Hot standby's buffer (an extension).
    pub primary_watermark: Vec<(u32, u64)>,
    /// When a Primary last processed data (Unix ms).
    pub last_data_processed_unix_ms: Option<i64>,
}

/// Whether a group was made or was there already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// Made now (201).
    New,
    /// There already, with the same settings (200).
    Same,
}

/// The role a member of the group is shown: PendingPrimary while a REST member last told
/// Primary, other than `id`, is still live.
pub(crate) fn pull_role(entry: &GroupEntry, id: SessionId, now: std::time::Duration) -> PullRole {
    let g = &entry.group;
    if g.role_of(id) != Role::Primary {
        return PullRole::Secondary;
    }
    if previous_primary(entry, id, now).is_some() {
        PullRole::PendingPrimary
    } else {
        PullRole::Primary
    }
}

/// The id (on the vendor's API) of another REST member that was last told Primary and may
/// still act on it: live and not yet told otherwise, or its session ended (deleted, replaced)
/// less than failoverTimeout after it was told and its client has not heartbeat since (and
/// heard 404).
pub(crate) fn previous_primary(
    entry: &GroupEntry,
    id: SessionId,
    now: std::time::Duration,
) -> Option<String> {
    let g = &entry.group;
    entry
        .told_primary
        .iter()
        .find(|(other, _)| **other != id && g.session(**other).is_some_and(|s| !g.is_stale(s, now)))
        .map(|(_, (external, _))| external.clone())
        .or_else(|| {
            entry
                .departed_primaries
                .iter()
                .find(|(_, until)| *until > now)
                .map(|(external, _)| external.clone())
        })
}

impl Arbiter {
    /// Creates a group with its settings, or finds it there with the same ones.
    pub fn create_group(
        &self,
        id: &str,
        settings: GroupSettings,
        additional_data: Option<serde_json::Value>,
    ) -> Result<Created, PullError> {
        if let Some(why) = self.refusal() {
            return Err(PullError::NotDeciding(why));
        }
        let mut state = self.lock();
        if let Some(e) = state.groups.get(id) {
            let stored = e.group.settings();
            let differs = |field, a: String, b: String| {
                (a != b).then(|| PullError::GroupDiffers {
                    group: id.to_string(),
                    field,
                    stored: a,
                    given: b,
                })
            };
            let show =
                |v: &Option<String>| v.as_deref().map_or("null".into(), |s| format!("{s:?}"));
            if let Some(e) = differs("Name", show(&stored.name), show(&settings.name))
                .or_else(|| {
                    differs(
                        "Description",
                        show(&stored.description),
                        show(&settings.description),
                    )
                })
                .or_else(|| {
                    differs(
                        "FailoverTimeout",
                        failover_core::timespan::format_timespan(stored.failover_timeout),
                        failover_core::timespan::format_timespan(settings.failover_timeout),
                    )
                })
            {
                return Err(e);
            }
            return Ok(Created::Same);
        }
        if state.groups.len() >= failover_core::limits::MAX_GROUPS {
            return Err(PullError::TooManyGroups(failover_core::limits::MAX_GROUPS));
        }
        let mut entry = state.new_entry(
            failover_core::group::Group::create(id, settings),
            self.now(),
        );
        entry.additional_data = additional_data;
        state.groups.insert(id.to_string(), entry);
        drop(state);
        tracing::info!(group = id, "group created over the REST API");
        self.publish(id, self.status(id));
        Ok(Created::New)
    }

    /// Registers a session under the client's own id (repeat-safe). True when it is new.
    pub fn register_session(
        &self,
        group: &str,
        client_id: &str,
        name: &str,
        additional_data: Option<serde_json::Value>,
    ) -> Result<bool, PullError> {
        if let Some(why) = self.refusal() {
            return Err(PullError::NotDeciding(why));
        }
        let now = self.now();
        let mut state = self.lock();
        let state = &mut *state;
        let e = state
            .groups
            .get_mut(group)
            .ok_or_else(|| PullError::NoGroup(shortened(group)))?;
        match e
            .group
            .register(client_id, name, now, &mut state.next_session)?
        {
            Registration::Exists(_) => Ok(false),
            Registration::Created(id, changes) => {
                if let Some(data) = additional_data {
                    e.session_data.insert(id, data);
                }
                self.apply(state, group, &changes);
                Ok(true)
            }
        }
    }

    /// The session's own client leaves (its DELETE said so, ours: `Failover-Lab-Leaving`): its
    /// session ends, and since it no longer acts on a role it was told, the next Primary is told
    /// Primary at once, not PendingPrimary.
    pub fn leave_pull_session(&self, group: &str, client_id: &str) -> Result<(), PullError> {
        let now = self.now();
        let mut state = self.lock();
        let state = &mut *state;
        let e = state
            .groups
            .get_mut(group)
            .ok_or_else(|| PullError::NoGroup(shortened(group)))?;
        let id = e.group.find_session(client_id)?;
        e.told_primary.remove(&id);
        let changes = e.group.leave(id, now);
        self.apply(state, group, &changes);
        Ok(())
    }

    /// A heartbeat of this REST session was refused for overload (429): the session is not
    /// made stale for `wait` (see `cfs_api::busy`). An unknown group or session is left alone:
    /// its next heartbeat, taken, hears 404.
    pub fn excuse_pull_session(&self, group: &str, client_id: &str, wait: std::time::Duration) {
        let now = self.now();
        let mut state = self.lock();
        state.heartbeats_busy += 1;
        let Some(e) = state.groups.get_mut(group) else {
            return;
        };
        let id = e
            .group
            .sessions()
            .iter()
            .find(|s| s.client_id.as_deref() == Some(client_id))
            .map(|s| s.id);
        if let Some(id) = id {
            e.group.excuse(id, now + wait);
        }
    }

    /// Takes a heartbeat from a session registered over the REST API; answers its role.
    pub fn pull_heartbeat(
        &self,
        group: &str,
        client_id: &str,
        hb: PullHeartbeat,
    ) -> Result<PullAnswer, PullError> {
        if let Some(why) = self.refusal() {
            return Err(PullError::NotDeciding(why));
        }
        let now = self.now();
        let mut state = self.lock();
        let state = &mut *state;
        state.heartbeats += 1;
        let e = state
            .groups
            .get_mut(group)
            .ok_or_else(|| PullError::NoGroup(shortened(group)))?;
        let no_session = || PullError::NoSession {
            group: group.to_string(),
            session: shortened(client_id),
        };
        let Some(session) = e
            .group
            .sessions()
            .iter()
            .find(|s| s.client_id.as_deref() == Some(client_id))
        else {
            // A deleted Primary's client hears 404 now: it knows it is not Primary, so the
            // next Primary need not wait for it any longer.
            e.departed_primaries
                .retain(|(external, _)| external != client_id);
            return Err(no_session());
        };
        let settings = e.group.settings();
        let beat = Heartbeat {
            adapter_id: session.adapter_id.clone(),
            incarnation: session.incarnation.clone(),
            score: hb.score,
            mode: hb.mode.or(session.mode),
            failover_timeout: settings.failover_timeout,
            name: settings.name,
            description: settings.description,
            known_epoch: hb.known_epoch,
            claims_primary: hb.claims_primary,
            watermark: hb.watermark.unwrap_or_else(|| session.watermark.clone()),
            holds_data_since_ms: hb.holds_data_since_ms,
            fenced_out_epoch: hb.fenced_out_epoch,
        };
        e.heartbeats += 1;
        let (id, mut changes) = e.group.heartbeat(beat, now, &mut state.next_session)?;
        changes.extend(e.restore_overrides(now));
        self.apply(state, group, &changes);
        let e = state
            .groups
            .get_mut(group)
            .ok_or_else(|| PullError::NoGroup(shortened(group)))?;
        e.note_data(id, hb.last_data_processed_ms, process::unix_ms());
        let role = pull_role(e, id, now);
        if role == PullRole::Primary {
            e.told_primary.insert(id, (client_id.to_string(), now));
        } else {
            e.told_primary.remove(&id);
        }
        let a = e.group.assignment(id);
        Ok(PullAnswer {
            role,
            epoch: a.epoch,
            reason: a.reason,
            primary_name: a.primary_adapter_id,
            primary_watermark: a.primary_watermark,
            last_data_processed_unix_ms: e.last_data_processed(),
        })
    }
}
