//! Plain words for what changed between two statuses of a group: who went stale and why, who
//! was promoted at which epoch, scores, and what a new Primary flushed after the watermark, in
//! causal order (a promotion before the fence it allows).

use failover_proto::v1;

fn is_primary(s: &v1::SessionStatus) -> bool {
    s.role == v1::Role::Primary as i32
}

fn stats(s: &v1::SessionStatus) -> v1::AdapterStats {
    s.stats.unwrap_or_default()
}

/// What happened from `before` (None: the first status seen) to `after`, one sentence each.
pub fn changes(before: Option<&v1::GroupStatus>, after: &v1::GroupStatus) -> Vec<String> {
    story(before, after)
        .into_iter()
        .map(|(_, text)| text)
        .collect()
}

/// [`changes`], each with its kind: `score` (joined, score changed), `stale` (went stale,
/// heartbeats again), `role` (promoted, no Primary, left), `endpoint` (a new Primary fenced
/// it). The one narrator of a group's changes: the dashboard's feed, the observer's story of
/// every run (the runner, the demo, the recordings) and the pictures all read its sentences.
pub fn story(
    before: Option<&v1::GroupStatus>,
    after: &v1::GroupStatus,
) -> Vec<(&'static str, String)> {
    untimed(before, after)
}

/// [`changes`], each with when it happened on the failover service's clock (unix ms): when the
/// service took the status, and for a member gone stale, the moment its last heartbeat became
/// older than failoverTimeout.
pub fn timed_changes(
    before: Option<&v1::GroupStatus>,
    after: &v1::GroupStatus,
) -> Vec<(i64, String)> {
    let at = after.observed_at_unix_ms;
    let mut stale_at: Vec<(String, i64)> = Vec::new();
    for s in &after.sessions {
        if s.stale {
            let over = i64::try_from(s.heartbeat_age_ms.saturating_sub(after.failover_timeout_ms))
                .unwrap_or(0);
            stale_at.push((
                format!("{} last heartbeat", s.adapter_id),
                at.saturating_sub(over),
            ));
        }
    }
    untimed(before, after)
        .into_iter()
        .map(|(_, text)| {
            let when = stale_at
                .iter()
                .find(|(prefix, _)| text.starts_with(prefix.as_str()) && text.ends_with(": stale"))
                .map_or(at, |(_, t)| *t);
            (when, text)
        })
        .collect()
}

fn untimed(
    before: Option<&v1::GroupStatus>,
    after: &v1::GroupStatus,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    // Fences come after the promotion that allows them.
    let mut fences = Vec::new();
    let timeout_s = after.failover_timeout_ms as f64 / 1000.0;
    let find = |st: Option<&v1::GroupStatus>, id: &str| -> Option<v1::SessionStatus> {
        st?.sessions.iter().find(|s| s.adapter_id == id).cloned()
    };
    for s in &after.sessions {
        let id = &s.adapter_id;
        let Some(old) = find(before, id) else {
            out.push((
                "score",
                format!("{id} joined the group with score {}", s.score),
            ));
            continue;
        };
        if s.stale && !old.stale {
            out.push((
                "stale",
                format!(
                    "{id} last heartbeat {:.1} s ago > failoverTimeout {timeout_s:.1} s: stale",
                    s.heartbeat_age_ms as f64 / 1000.0
                ),
            ));
        } else if !s.stale && old.stale {
            out.push(("stale", format!("{id} heartbeats again")));
        }
        if s.score != old.score {
            out.push(("score", format!("{id} score {} → {}", old.score, s.score)));
        }
        let (now, then) = (stats(s), stats(&old));
        if is_primary(s) && now.fenced_epoch != then.fenced_epoch && now.fenced_epoch > 0 {
            fences.push((
                "endpoint",
                format!(
                    "{id} fenced the endpoint at epoch {}; flushed {} buffered points after the watermark",
                    now.fenced_epoch, now.flushed_at_fence
                ),
            ));
        }
    }
    let old_primary = before.map(|b| b.primary_adapter_id.as_str()).unwrap_or("");
    let old_epoch = before.map_or(0, |b| b.epoch);
    if after.primary_adapter_id != old_primary || (before.is_some() && after.epoch != old_epoch) {
        if after.primary_adapter_id.is_empty() {
            if before.is_some() {
                out.push(("role", format!("no Primary: {}", after.note)));
            }
        } else {
            let old = after.sessions.iter().find(|s| s.adapter_id == old_primary);
            let was = match old {
                _ if old_primary.is_empty() || old_primary == after.primary_adapter_id => {
                    String::new()
                }
                None => format!(" (taking over from {old_primary}, which left)"),
                Some(o) if o.stale => format!(" (taking over from {old_primary}, which is stale)"),
                Some(o) if o.role == v1::Role::Secondary as i32 => {
                    format!(" ({old_primary} is Secondary now)")
                }
                Some(_) => format!(" (taking over from {old_primary})"),
            };
            out.push((
                "role",
                format!(
                    "{} promoted, epoch {}{was}",
                    after.primary_adapter_id, after.epoch
                ),
            ));
        }
    }
    out.extend(fences);
    if let Some(b) = before {
        for s in &b.sessions {
            if !after.sessions.iter().any(|a| a.adapter_id == s.adapter_id) {
                out.push(("role", format!("{} left the group", s.adapter_id)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, primary: bool, score: u32, stale: bool, fenced: u64) -> v1::SessionStatus {
        v1::SessionStatus {
            adapter_id: id.into(),
            role: if primary {
                v1::Role::Primary as i32
            } else {
                v1::Role::Secondary as i32
            },
            score,
            stale,
            heartbeat_age_ms: if stale { 4100 } else { 200 },
            stats: Some(v1::AdapterStats {
                fenced_epoch: fenced,
                flushed_at_fence: 412,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn status(epoch: u64, primary: &str, sessions: Vec<v1::SessionStatus>) -> v1::GroupStatus {
        v1::GroupStatus {
            epoch,
            primary_adapter_id: primary.into(),
            sessions,
            failover_timeout_ms: 4000,
            ..Default::default()
        }
    }

    #[test]
    fn a_takeover_reads_as_a_story() {
        let before = status(
            1,
            "adapter-a",
            vec![
                member("adapter-a", true, 100, false, 1),
                member("adapter-b", false, 100, false, 0),
            ],
        );
        let after = status(
            2,
            "adapter-b",
            vec![
                member("adapter-a", false, 100, true, 1),
                member("adapter-b", true, 100, false, 2),
            ],
        );
        assert_eq!(
            changes(Some(&before), &after),
            vec![
                "adapter-a last heartbeat 4.1 s ago > failoverTimeout 4.0 s: stale",
                "adapter-b promoted, epoch 2 (taking over from adapter-a, which is stale)",
                "adapter-b fenced the endpoint at epoch 2; flushed 412 buffered points after the watermark",
            ]
        );
        // A planned handover: the old Primary stays, as Secondary.
        let mut handed = after.clone();
        handed.sessions[0].stale = false;
        assert_eq!(
            changes(Some(&before), &handed)[0],
            "adapter-b promoted, epoch 2 (adapter-a is Secondary now)"
        );
        // Nothing changed: nothing to say.
        assert!(changes(Some(&after), &after).is_empty());
        // Dated on the service's clock: the stale member when its last heartbeat became older
        // than failoverTimeout (4.1 s > 4.0 s: 100 ms before the status), the rest at the status.
        let mut dated = after.clone();
        dated.observed_at_unix_ms = 50_000;
        let times: Vec<i64> = timed_changes(Some(&before), &dated)
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(times, vec![49_900, 50_000, 50_000]);
    }

    #[test]
    fn first_status_names_the_primary_and_scores_and_leaving_are_told() {
        let first = status(
            1,
            "adapter-a",
            vec![member("adapter-a", true, 100, false, 0)],
        );
        assert_eq!(
            changes(None, &first),
            vec![
                "adapter-a joined the group with score 100",
                "adapter-a promoted, epoch 1"
            ]
        );
        let mut degraded = first.clone();
        degraded.sessions[0].score = 75;
        degraded
            .sessions
            .push(member("adapter-b", false, 100, false, 0));
        assert_eq!(
            changes(Some(&first), &degraded),
            vec![
                "adapter-a score 100 → 75",
                "adapter-b joined the group with score 100"
            ]
        );
        let mut nobody = status(1, "", vec![]);
        nobody.note = "no member has a score above 0".into();
        assert_eq!(
            changes(Some(&degraded), &nobody),
            vec![
                "no Primary: no member has a score above 0",
                "adapter-a left the group",
                "adapter-b left the group"
            ]
        );
    }
}
