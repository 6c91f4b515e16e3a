//! Whether this service decides ([`Standing`]): always with the in-memory store; with a shared
//! etcd store, while it leads ([`Arbiter::lead`], [`Arbiter::follow`], the epochs it promotes
//! above), and the operator overrides such a store keeps for the next leader
//! ([`StoredOverride`]).

use std::{collections::BTreeMap, sync::PoisonError, time::Duration};

use failover_core::{Role, group::Transition};
use failover_proto::process;
use tokio::sync::mpsc;

use super::{Arbiter, GroupEntry, State};

/// An operator override as the shared store keeps it: a member's forced role, and until when
/// (Unix ms; None: until cleared).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredOverride {
    /// The member's name.
    pub adapter: String,
    /// "Primary" or "Secondary".
    pub role: String,
    /// When it ends (Unix ms), or never.
    pub expires_unix_ms: Option<i64>,
}

/// A group's overrides for the shared store to keep: the group, its overrides (empty: none),
/// and the write's number.
pub type OverrideWrite = (String, Vec<StoredOverride>, u64);

/// How long an operator's call waits for the shared store to keep what it changed.
const KEEP_WITHIN: Duration = Duration::from_secs(5);

/// Whether this failover service decides, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// It decides: always, with the in-memory store; with a shared store, while it leads.
    Leading,
    /// With a shared store: another service leads, or none can be elected now. Heartbeats
    /// are refused, naming the leader when it is known.
    Following {
        /// The leader's advertised gRPC URL, when one leads.
        leader: Option<String>,
        /// Why this one does not lead, in words.
        why: String,
    },
    /// Shutting down: nothing more is decided.
    Stopping,
}

impl GroupEntry {
    /// Applies the restored overrides whose members have joined (see `restored_overrides`);
    /// one that has expired since is dropped.
    pub(crate) fn restore_overrides(&mut self, now: Duration) -> Vec<Transition> {
        let mut changes = Vec::new();
        let now_unix = process::unix_ms();
        let group = &mut self.group;
        self.restored_overrides.retain(|o| {
            if group.find_session(&o.adapter).is_err() {
                return true;
            }
            let role = match o.role.as_str() {
                "Primary" => Role::Primary,
                _ => Role::Secondary,
            };
            let expires_at = match o.expires_unix_ms {
                None => None,
                Some(t) if t <= now_unix => return false,
                Some(t) => Some(now + Duration::from_millis((t - now_unix) as u64)),
            };
            if let Ok(c) = group.set_override(&o.adapter, Some(role), expires_at, now) {
                tracing::info!(
                    group = group.id(),
                    adapter = o.adapter,
                    "an operator override set on the leader before is restored from the store"
                );
                changes.extend(c);
            }
            false
        });
        changes
    }

    /// The group's overrides as the shared store keeps them.
    pub(crate) fn stored_overrides(&self, now: Duration) -> Vec<StoredOverride> {
        let now_unix = process::unix_ms();
        let mut stored: Vec<StoredOverride> = self
            .group
            .sessions()
            .iter()
            .filter_map(|s| {
                let o = s.role_override?;
                Some(StoredOverride {
                    adapter: s.adapter_id.clone(),
                    role: o.role.to_string(),
                    expires_unix_ms: o.expires_at.map(|at| {
                        now_unix + i64::try_from(at.saturating_sub(now).as_millis()).unwrap_or(0)
                    }),
                })
            })
            .collect();
        // Those not yet rejoined are kept too.
        stored.extend(self.restored_overrides.iter().cloned());
        stored
    }
}

impl Arbiter {
    /// Stops deciding: heartbeats are refused as UNAVAILABLE and time no longer changes any
    /// group. Called at the shutdown signal, before the servers drain.
    pub fn stop_deciding(&self) {
        let _state = self.lock();
        self.set_standing(Standing::Stopping);
        tracing::info!(
            "stopping: no more decisions (members keep their roles until a new service decides)"
        );
        self.inner.changed.notify_one();
    }

    /// True while this service decides (see [`Standing`]).
    pub fn is_deciding(&self) -> bool {
        self.inner
            .deciding
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether this service decides, and if not, why.
    pub fn standing(&self) -> Standing {
        self.inner
            .standing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Why a heartbeat (or a registration, or a watch) is refused here, in the words a client
    /// is told; None while this service decides.
    pub fn refusal(&self) -> Option<String> {
        match self.standing() {
            Standing::Leading => None,
            Standing::Stopping => Some(
                "the failover service is stopping; reconnect to the next one (roles are kept meanwhile)"
                    .into(),
            ),
            Standing::Following {
                leader: Some(url),
                ..
            } => Some(format!(
                "this failover service stands by: another one leads; the leader is {url} (roles are kept meanwhile)"
            )),
            Standing::Following { leader: None, why } => Some(format!(
                "this failover service stands by: no failover service leads now ({why}); retry with the next one (roles are kept meanwhile)"
            )),
        }
    }

    fn set_standing(&self, standing: Standing) {
        self.inner.deciding.store(
            standing == Standing::Leading,
            std::sync::atomic::Ordering::SeqCst,
        );
        *self
            .inner
            .standing
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = standing;
    }

    /// Sends every later change of a group's overrides to `writes` (a shared store keeps them,
    /// then calls [`Arbiter::overrides_written`] with the write's number).
    pub fn keep_overrides_in(&self, writes: mpsc::UnboundedSender<OverrideWrite>) {
        *self
            .inner
            .override_writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(writes);
    }

    /// Hands a group's overrides, as they are now, to the shared store (if there is one).
    pub(crate) fn store_overrides(&self, state: &State, group_id: &str) {
        let writes = self
            .inner
            .override_writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let (Some(writes), Some(e)) = (writes, state.groups.get(group_id)) {
            let n = self
                .inner
                .overrides_queued
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1;
            let _ = writes.send((group_id.to_string(), e.stored_overrides(self.now()), n));
        }
    }

    /// The shared store kept override write `n` (and every one before it).
    pub fn overrides_written(&self, n: u64) {
        self.inner.overrides_kept.send_if_modified(|kept| {
            let moved = n > *kept;
            *kept = (*kept).max(n);
            moved
        });
    }

    /// Waits until the shared store has kept every override change made so far (at once with
    /// the in-memory store), at most 5 s: an operator's call answers once its change would
    /// outlive this service. An error says it was not kept.
    pub async fn overrides_kept(&self) -> Result<(), String> {
        let target = self
            .inner
            .overrides_queued
            .load(std::sync::atomic::Ordering::SeqCst);
        let mut kept = self.inner.overrides_kept.subscribe();
        match tokio::time::timeout(KEEP_WITHIN, kept.wait_for(|k| *k >= target)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(format!(
                "the override is in force on this failover service, but its etcd store did not keep it within {} s: a service leading after this one would not know it (etcd unreachable, or this service no longer leads); set it again",
                KEEP_WITHIN.as_secs()
            )),
        }
    }

    /// Begins to decide as the leader of a shared store, promoting above `floor` (the base of
    /// the epochs it reserved there), with the operator overrides the store kept, by group. It
    /// starts from nothing: every group is created again as its members rejoin, and waits a
    /// heartbeat interval for them (the leader before may have left a Primary, which reclaims
    /// its role at its epoch); each override is applied when its member joins.
    pub fn lead(&self, floor: u64, overrides: BTreeMap<String, Vec<StoredOverride>>) {
        if self.standing() == Standing::Stopping {
            return;
        }
        let now = self.now();
        let mut state = self.lock();
        state.groups.clear();
        state.epoch_floors.clear();
        state.deciding_since = now;
        state.promotion_floor = floor;
        state.restored_overrides = overrides;
        self.set_standing(Standing::Leading);
        drop(state);
        tracing::info!(
            epochs_above = floor,
            "leading: this failover service decides now (its promotions go above epoch {floor})"
        );
        self.inner.changed.notify_one();
    }

    /// Raises the floor of promotions while leading (a new block of epochs was reserved).
    pub fn raise_promotion_floor(&self, floor: u64) {
        let mut state = self.lock();
        state.promotion_floor = state.promotion_floor.max(floor);
        for e in state.groups.values_mut() {
            e.group.promote_above(floor);
        }
    }

    /// The highest epoch any group here has handed out or seen.
    pub fn highest_epoch(&self) -> u64 {
        let state = self.lock();
        state
            .groups
            .values()
            .map(|e| e.group.highest_epoch())
            .max()
            .unwrap_or(0)
            .max(state.promotion_floor)
    }

    /// Stops deciding because another service leads (`leader`, when known) or none can: every
    /// group, session and watch here ends (their members and observers reconnect to the
    /// leader), and heartbeats are refused naming the leader. Members keep their roles.
    pub fn follow(&self, leader: Option<String>, why: String) {
        let next = Standing::Following {
            leader: leader.clone(),
            why: why.clone(),
        };
        let before = self.standing();
        if before == Standing::Stopping || before == next {
            return;
        }
        let mut state = self.lock();
        self.set_standing(next);
        state.groups.clear();
        drop(state);
        if let Standing::Following { leader: was, .. } = &before
            && *was == leader
        {
            // Only the words changed (another failed call to etcd): said already.
            tracing::debug!("standing by: {why}");
            return;
        }
        self.inner
            .watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        match leader {
            Some(url) => tracing::info!(
                leader = url,
                "standing by: another failover service leads ({why})"
            ),
            None => tracing::warn!(
                "standing by: no failover service leads ({why}); members keep their roles"
            ),
        }
        self.inner.changed.notify_one();
    }
}
