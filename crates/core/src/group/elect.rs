//! Who is Primary: staleness, the current Primary kept or demoted, a promotion above every
//! epoch seen, and when time alone will change something next.

use std::time::Duration;

use super::*;

impl Group {
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

    /// Applies the rules at `now`; returns what changed: overrides expire, staleness is noted,
    /// the Primary keeps its role (promoted again above a newer epoch if one was seen) or is
    /// demoted, and then, unless the group waits for its members, the best candidate is
    /// promoted or the group says why nobody is.
    pub(super) fn recompute(&mut self, now: Duration) -> Vec<Transition> {
        let mut changes = Vec::new();
        self.expire_overrides(now, &mut changes);
        self.note_staleness(now, &mut changes);
        // A member forced Primary takes the role and keeps it while the override holds, stale
        // or not (Doc: "the session will still remain in primary role while the role override
        // is in effect"; overrides are meant for a machine that may be restarting often).
        // Nobody else is promoted meanwhile, so no other writer fences past it.
        let forced = self
            .sessions
            .iter()
            .find(|s| self.override_of(s) == Some(Role::Primary))
            .map(|s| s.id);
        let had_primary = self.primary.is_some();
        if let Some(id) = self.kept_primary(now, forced, &mut changes) {
            self.promote_again_if_fenced_above(id, &mut changes);
            self.keep(id, now);
            return changes;
        }
        self.primary = None;
        if forced.is_none() && self.holding(now, &mut changes) {
            return changes;
        }
        match self.candidate(now, forced) {
            Some(id) => self.promote(id, now, forced == Some(id), &mut changes),
            None => self.nobody(now, had_primary, &mut changes),
        }
        changes
    }

    /// Overrides end when they expire.
    fn expire_overrides(&mut self, now: Duration, changes: &mut Vec<Transition>) {
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
    }

    /// Staleness, reported once per change.
    fn note_staleness(&mut self, now: Duration, changes: &mut Vec<Transition>) {
        let mut stale_seen = Vec::with_capacity(self.sessions.len());
        for s in &self.sessions {
            let stale = self.is_stale(s, now);
            let was = self
                .stale_seen
                .iter()
                .find(|(id, _)| *id == s.id)
                .is_some_and(|(_, st)| *st);
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
    }

    /// The current Primary, if it keeps its role; a demotion says why it does not.
    fn kept_primary(
        &self,
        now: Duration,
        forced: Option<SessionId>,
        changes: &mut Vec<Transition>,
    ) -> Option<SessionId> {
        let p = self.primary.and_then(|id| self.session(id))?;
        let why_not = if forced.is_some_and(|f| f != p.id) {
            Some("an operator override makes another member Primary".to_string())
        } else if self.override_of(p) == Some(Role::Secondary) {
            Some(format!(
                "an operator override makes {} Secondary",
                p.adapter_id
            ))
        } else if self.is_stale(p, now) && forced != Some(p.id) {
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
    }

    /// A member knows a newer epoch than the Primary's, or the Primary was refused at its own
    /// (the endpoint is fenced at it by another writer): its fence would be refused. Promote it
    /// again above every epoch seen.
    fn promote_again_if_fenced_above(&mut self, id: SessionId, changes: &mut Vec<Transition>) {
        let refused = self.refused_epoch.take().filter(|e| *e >= self.epoch);
        if self.highest_seen <= self.epoch && refused.is_none() {
            return;
        }
        let adapter = self
            .session(id)
            .map(|p| p.adapter_id.clone())
            .unwrap_or_default();
        let before = self.highest_seen;
        let seen = before.max(refused.unwrap_or(0));
        self.highest_seen = seen;
        self.epoch = seen.max(self.promotion_floor).saturating_add(1);
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

    /// The Primary keeps its role, and the note says how it stands. A wait for the members
    /// goes on to its end: should this Primary leave within it (a restart), the members still
    /// on their way back are waited for, not passed over.
    fn keep(&mut self, id: SessionId, now: Duration) {
        self.primary = Some(id);
        let Some(p) = self.session(id) else {
            return;
        };
        if self.is_stale(p, now) {
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
            // Keep the note that explains the promotion; replace any other (a degraded note,
            // an adoption, an expired override) with the plain state.
            self.note = format!("{} is Primary at epoch {}", p.adapter_id, self.epoch);
        }
    }

    /// True while the group waits for its members (it is new to the service); the note says
    /// how long. A wait that is over ends.
    fn holding(&mut self, now: Duration, changes: &mut Vec<Transition>) -> bool {
        let Some(hold) = self.hold_until else {
            return false;
        };
        if now >= hold {
            self.hold_until = None;
            return false;
        }
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
        true
    }

    /// Who is promoted: the member forced Primary; else the live member of the highest score
    /// above 0 not forced Secondary. Once the group has had a Primary (here, or before a
    /// restart or a deletion), one may have left data unflushed: among the highest scores, the
    /// member holding data since the earliest holds what the others do not (a Hot standby,
    /// before a Warm or Cold one or one that just resubscribed). Then, and before that, ties go
    /// to the earliest registered, so a pair starts the same way every time.
    fn candidate(&self, now: Duration, forced: Option<SessionId>) -> Option<SessionId> {
        if forced.is_some() {
            return forced;
        }
        let had_history =
            self.highest_epoch() > 0 && !self.broken.has(crate::BrokenRule::DataBlindPromotion);
        let since = |s: &Session| {
            if had_history {
                s.holds_data_since_ms.unwrap_or(i64::MAX)
            } else {
                0
            }
        };
        self.sessions
            .iter()
            .filter(|s| {
                !self.is_stale(s, now)
                    && s.score > 0
                    && self.override_of(s) != Some(Role::Secondary)
            })
            .max_by(|a, b| {
                a.score
                    .cmp(&b.score)
                    .then(since(b).cmp(&since(a)))
                    .then(b.registered_order.cmp(&a.registered_order))
            })
            .map(|s| s.id)
    }

    /// Promotes `id` above every epoch seen.
    fn promote(
        &mut self,
        id: SessionId,
        now: Duration,
        forced: bool,
        changes: &mut Vec<Transition>,
    ) {
        let Some((adapter, score)) = self.session(id).map(|c| (c.adapter_id.clone(), c.score))
        else {
            return;
        };
        self.epoch = self
            .highest_epoch()
            .max(self.promotion_floor)
            .saturating_add(1);
        self.primary = Some(id);
        let why = if forced {
            "operator override".to_string()
        } else if self
            .sessions
            .iter()
            .filter(|s| !self.is_stale(s, now))
            .count()
            == 1
        {
            format!("lone live member, score {score}")
        } else {
            format!("highest score {score} among live members")
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

    /// Nobody can be promoted: the note says why (said once, or again after a Primary).
    fn nobody(&mut self, now: Duration, had_primary: bool, changes: &mut Vec<Transition>) {
        let note = if self.sessions.iter().any(|s| !self.is_stale(s, now)) {
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
