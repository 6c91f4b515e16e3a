//! Joining and leaving: heartbeats (a member joins with its first, a restart replaces its old
//! session), registrations of the vendor's REST API, a Primary's claim adopted after a restart,
//! members leaving and sessions an operator deletes.

use std::time::Duration;

use super::*;

impl Group {
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
    pub(super) fn adopt_claim(
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

    pub(super) fn check_fixed(
        &self,
        field: &'static str,
        fixed: &str,
        given: &str,
    ) -> Result<(), GroupError> {
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
}
