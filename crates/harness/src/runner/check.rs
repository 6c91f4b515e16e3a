//! Checking a condition, a takeover bound and the rules every run keeps, on what was observed.

use std::time::Duration;

use failover_core::timespan::format_timespan;
use failover_proto::{process, v1};
use reqwest::Method;
use serde_json::Value;

use super::*;

impl<S: Stage> Run<S> {
    /// The endpoint's audit; a paused endpoint (which accepts connections and never answers)
    /// is an error after 10 s, not a hang.
    pub(super) async fn audit(&self) -> Result<v1::AuditReport, String> {
        match tokio::time::timeout(Duration::from_secs(10), self.stage.audit()).await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => Err(format!("cannot read the endpoint audit: {e:#}")),
            Err(_) => Err("the endpoint did not answer the audit within 10 s".into()),
        }
    }

    pub(super) async fn rest_get(&self, adapter: &str, path: &str) -> Result<Value, String> {
        self.stage
            .adapter_rest(adapter, Method::GET, path, None)
            .await
            .map_err(|e| format!("{e:#}"))
    }

    /// Checks a condition now: Ok, or what was expected and what was found.
    pub(super) async fn check(&self, c: &Condition) -> Result<(), String> {
        let t = self.obs.snapshot();
        // Primary, roles, scores and epoch: as `hold` and `never` check them, on the view now.
        let now = failover_proto::convert::status_point(t.status.as_ref(), self.obs.now_ms());
        self.status_holds(c, &now)??;
        if !c.score_transitions.is_empty() {
            let seen: Vec<(String, Option<u32>, u32)> = t
                .score_transitions
                .iter()
                .map(|s| (s.adapter.clone(), s.from, s.to))
                .collect();
            let want: Vec<(String, Option<u32>, u32)> = c
                .score_transitions
                .iter()
                .map(|s| (s.adapter.clone(), s.from, s.to))
                .collect();
            if !is_subsequence(&want, &seen) {
                let show = |v: &[(String, Option<u32>, u32)]| {
                    v.iter()
                        .map(|(a, f, to)| {
                            format!("{a} {} -> {to}", f.map_or("none".into(), |x| x.to_string()))
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(format!(
                    "expected score transitions [{}] in this order, saw [{}]",
                    show(&want),
                    show(&seen)
                ));
            }
        }
        if !c.role_transitions.is_empty() {
            let seen: Vec<(String, String, String)> = t
                .role_transitions
                .iter()
                .map(|r| (r.adapter.clone(), r.from.clone(), r.to.clone()))
                .collect();
            let want: Vec<(String, String, String)> = c
                .role_transitions
                .iter()
                .map(|r| (r.adapter.clone(), r.from.clone(), r.to.clone()))
                .collect();
            if !is_subsequence(&want, &seen) {
                let show = |v: &[(String, String, String)]| {
                    v.iter()
                        .map(|(a, f, to)| format!("{a} {f} -> {to}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(format!(
                    "expected role transitions [{}] in this order, saw [{}]",
                    show(&want),
                    show(&seen)
                ));
            }
        }
        if let Some(bound) = c.takeover_within {
            let from = match &c.takeover_from {
                Some(step) => Some((
                    self.marks
                        .get(step)
                        .map(|m| m.began_us)
                        .ok_or_else(|| format!("step {step} has not run"))?,
                    format!("the start of step {step}"),
                )),
                None => self
                    .last_fault_us
                    .map(|at| (at, "the last fault".to_string())),
            };
            self.check_takeover(&t, bound, from).await?;
        }
        let audit = if c.audit.is_empty() {
            None
        } else {
            Some(self.audit().await?)
        };
        if let Some(a) = &audit {
            for (field, cmp) in &c.audit {
                let resolved = self.resolve_cmp(cmp, |m| {
                    m.audit.iter().find(|(f, _)| f == field).map(|(_, v)| *v)
                })?;
                let got = audit_figure(a, field);
                if !resolved.holds(got) {
                    return Err(format!(
                        "expected audit {field} {cmp}{base}, got {got} (expected {}, received {}, lost {}, duplicated {}, refused as stale {}, largest gap {} ms)",
                        a.expected,
                        a.received,
                        a.lost,
                        a.duplicated,
                        a.refused_stale,
                        a.largest_gap_ms,
                        base = shown_base(cmp, &resolved)
                    ));
                }
            }
        }
        if !c.invariants.is_empty() {
            self.rules_kept(&c.invariants).await?;
        }
        if let Some((adapter, words)) = &c.warning {
            let name = self.resolve(adapter)?;
            let state = self.rest_get(&name, "/diagnostics/FailoverState").await?;
            let warnings: Vec<&str> = state["Warnings"]
                .as_array()
                .map(|w| w.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !warnings.iter().any(|w| w.contains(words.as_str())) {
                return Err(format!(
                    "expected a warning on {name} containing {words:?}, got {warnings:?}"
                ));
            }
        }
        if let Some((adapter, fields)) = &c.state {
            let name = self.resolve(adapter)?;
            let state = self.rest_get(&name, "/diagnostics/FailoverState").await?;
            for (k, want) in fields {
                let got = &state[k.as_str()];
                // { matches = "regex" }: the field's text matches (checked when the file was read).
                if let Some(pattern) = want.get("matches").and_then(Value::as_str) {
                    let text = got.as_str().map_or_else(|| got.to_string(), str::to_string);
                    let re = regex_lite::Regex::new(pattern).map_err(|e| e.to_string())?;
                    if !re.is_match(&text) {
                        return Err(format!(
                            "expected {name} FailoverState {k} to match {pattern:?}, got {got}"
                        ));
                    }
                    continue;
                }
                // { contains = "text" }: the field holds that text.
                if let Some(words) = want.get("contains").and_then(Value::as_str) {
                    let text = got.as_str().map_or_else(|| got.to_string(), str::to_string);
                    if !text.contains(words) {
                        return Err(format!(
                            "expected {name} FailoverState {k} to contain {words:?}, got {got}"
                        ));
                    }
                    continue;
                }
                // TOML has no null: the string "null" stands for it. A number may be compared
                // (AccessTokensFetched = ">= 3").
                let same = got == want
                    || (got.is_null() && want.as_str() == Some("null"))
                    || got
                        .as_str()
                        .is_some_and(|g| want.to_string().trim_matches('"') == g)
                    || got
                        .as_i64()
                        .zip(want.as_str().and_then(crate::scenario::Cmp::from_text))
                        .is_some_and(|(g, cmp)| cmp.holds(g));
                if !same {
                    return Err(format!(
                        "expected {name} FailoverState {k} = {want}, got {got}"
                    ));
                }
            }
        }
        if let Some((adapter, id, status)) = &c.recovery {
            let name = self.resolve(adapter)?;
            let list = self
                .rest_get(&name, "/configuration/Source1/HistoryRecoveries")
                .await?;
            let got = list
                .as_array()
                .and_then(|l| l.iter().find(|r| r["Id"] == id.as_str()))
                .map_or("absent".to_string(), |r| {
                    r["Status"].as_str().unwrap_or("?").to_string()
                });
            if got != *status {
                return Err(format!(
                    "expected history recovery {id} on {name} {status}, got {got}"
                ));
            }
        }
        Ok(())
    }

    /// The takeover happened within `bound`: from the last fault to the first point the
    /// endpoint accepted from the current Primary at its epoch. While that point has not come
    /// and the bound has not passed, it waits for it. Over the vendor's REST API a role reaches
    /// an adapter only in the answer to its next heartbeat, and a new Primary is PendingPrimary
    /// until the old one has heard it is not (at its next heartbeat), so the bound is two
    /// heartbeat intervals (a failoverTimeout) longer there.
    pub(super) async fn check_takeover(
        &self,
        t: &Timeline,
        bound: Duration,
        from: Option<(i64, String)>,
    ) -> Result<(), String> {
        let (fault, since) =
            from.ok_or("takeover_within needs a fault step before it (or takeover_from)")?;
        let spec = self.stage.spec();
        let (bound, pulled) = match spec.failover_protocol {
            ClusterProtocol::Rest => (
                bound + spec.failover_timeout,
                format!(
                    " ({} and two heartbeat intervals: over REST, roles are pulled, and the old \
                     Primary hears it is not before the new one hears it is)",
                    format_timespan(bound)
                ),
            ),
            ClusterProtocol::Grpc => (bound, String::new()),
        };
        let primary = t.primary().ok_or("no adapter is Primary")?;
        let epoch = t.epoch();
        loop {
            let a = self.audit().await?;
            let first = a
                .writers
                .iter()
                .find(|w| w.adapter_id == primary && w.epoch == epoch && w.accepted > 0)
                .map(|w| w.first_accepted_unix_us);
            let now_took =
                Duration::from_micros(u64::try_from(process::unix_us() - fault).unwrap_or(0));
            match first {
                Some(first) => {
                    let took = Duration::from_micros(u64::try_from(first - fault).unwrap_or(0));
                    if took > bound {
                        return Err(format!(
                            "expected the takeover within {}{pulled}, took {:.3} s ({since} to the first point accepted from {primary} at epoch {epoch})",
                            format_timespan(bound),
                            took.as_secs_f64()
                        ));
                    }
                    return Ok(());
                }
                None if now_took > bound => {
                    return Err(format!(
                        "expected the takeover within {}{pulled}: {:.3} s after {since}, no point accepted yet from {primary} at epoch {epoch}",
                        format_timespan(bound),
                        now_took.as_secs_f64()
                    ));
                }
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// The rules every run keeps on any stage ([`failover_scenario::invariants`], shared with
    /// the simulator), on what this run observed.
    pub(super) async fn invariants(&self) -> Result<(), String> {
        self.rules_kept(invariants::rules_for(self.stage.spec().behaviour))
            .await
    }

    /// These rules of [`failover_scenario::invariants`] hold on what this run observed so far.
    pub(super) async fn rules_kept(&self, rules: &[u8]) -> Result<(), String> {
        let t = self.obs.snapshot();
        let a = self.audit().await?;
        let at = |ms: u64| Duration::from_millis(ms);
        let observed = invariants::Observed {
            writers: a
                .writers
                .iter()
                .map(|w| invariants::Writer {
                    adapter: w.adapter_id.clone(),
                    epoch: w.epoch,
                    accepted: w.accepted,
                    first_accepted_us: w.first_accepted_unix_us,
                    last_accepted_us: w.last_accepted_unix_us,
                })
                .collect(),
            duplicated: a.duplicated,
            statuses: t.history.clone(),
            samples: t.samples.clone(),
            service_restarts: self.service_restarts.iter().map(|ms| at(*ms)).collect(),
            fault_starts: t
                .events
                .iter()
                .filter(|e| e.kind == "fault")
                .map(|e| at(e.at_ms))
                .collect(),
            failover_timeout: self.stage.spec().failover_timeout,
            members: self.stage.spec().adapters.len(),
            rate_hz: self.stage.spec().rate_hz,
        };
        let broken = invariants::check_rules(&observed, rules);
        if broken.is_empty() {
            Ok(())
        } else {
            Err(broken
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"))
        }
    }
}

/// How long a closing `hold` or `never` waits for views the failover service took before the
/// window closed and that are still on their way to the observer.
pub(super) const IN_FLIGHT: Duration = Duration::from_millis(300);

/// `" (N)"`: the figure an earlier step's comparison stood for, for messages.
pub(super) fn shown_base(cmp: &crate::scenario::Cmp, resolved: &crate::scenario::Cmp) -> String {
    if cmp.at_step.is_some() {
        format!(" ({})", resolved.value)
    } else {
        String::new()
    }
}

pub(super) fn audit_figure(a: &v1::AuditReport, field: &str) -> i64 {
    let u = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
    match field {
        "expected" => u(a.expected),
        "received" => u(a.received),
        "lost" => u(a.lost),
        "duplicated" => u(a.duplicated),
        "out_of_order" => u(a.out_of_order),
        "refused_stale" => u(a.refused_stale),
        "largest_gap_ms" => a.largest_gap_ms,
        "epoch" => u(a.fenced_epoch),
        _ => 0,
    }
}

/// True when `want` appears in `seen` in order (other items may come between).
pub(super) fn is_subsequence<T: PartialEq>(want: &[T], seen: &[T]) -> bool {
    let mut it = seen.iter();
    want.iter().all(|w| it.any(|s| s == w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsequences() {
        assert!(is_subsequence(&[1, 3], &[1, 2, 3]));
        assert!(!is_subsequence(&[3, 1], &[1, 2, 3]));
        assert!(is_subsequence::<i32>(&[], &[]));
    }
}
