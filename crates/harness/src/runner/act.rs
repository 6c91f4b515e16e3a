//! Carrying out a step's action on the stage: faults, operators' calls, restarts, waits.

use std::time::Duration;

use failover_core::{clock_time::format_utc_ms, timespan::format_timespan};
use failover_proto::{process, v1};
use reqwest::Method;
use serde_json::{Value, json};

use super::*;

impl<S: Stage> Run<S> {
    /// Deletes every session of the group, then the group, again until the group is gone
    /// (members still running rejoin in between) or, with `timeout`, until the members have
    /// rejoined with that failoverTimeout; at most 10 s. The attempts it took.
    pub(super) async fn delete_group(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<usize, String> {
        let group = self.stage.spec().group_id.clone();
        let base = format!("/api/v1/ClientFailover/groups/{group}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut tries = 0;
        loop {
            tries += 1;
            let now = self.stage.arbiter_admin(Method::GET, &base, None).await;
            let done = match (&now, timeout) {
                // Gone (or never there): what delete_group asks.
                (Err(e), None) => format!("{e:#}").contains("404"),
                (Ok(g), Some(t)) => {
                    g["FailoverTimeout"].as_str() == Some(format_timespan(t).as_str())
                        && g["Sessions"].as_array().is_some_and(|s| !s.is_empty())
                }
                _ => false,
            };
            if done {
                return Ok(tries - 1);
            }
            if let Ok(g) = &now {
                let wrong_timeout = timeout.is_none_or(|t| {
                    g["FailoverTimeout"].as_str() != Some(format_timespan(t).as_str())
                });
                if wrong_timeout {
                    let sessions: Vec<String> = g["Sessions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s["Id"].as_str().map(str::to_string))
                        .collect();
                    for s in sessions {
                        let _ = self
                            .stage
                            .arbiter_admin(
                                Method::DELETE,
                                &format!("{base}/clientsessions/{s}"),
                                None,
                            )
                            .await;
                    }
                    if self
                        .stage
                        .arbiter_admin(Method::DELETE, &base, None)
                        .await
                        .is_ok()
                        && timeout.is_none()
                    {
                        return Ok(tries);
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(match timeout {
                    None => {
                        format!("group {group} kept members rejoining: not deleted within 10 s")
                    }
                    Some(t) => format!(
                        "the members did not rejoin group {group} with failoverTimeout {} within 10 s: {}",
                        format_timespan(t),
                        now.map_or_else(|e| format!("{e:#}"), |g| g.to_string())
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(super) fn fault(&mut self, text: String) {
        self.last_fault_us = Some(process::unix_us());
        self.obs.mark("fault", text);
    }

    /// Carries out a step; Ok carries a detail for the progress line.
    pub(super) async fn act(&mut self, action: &Action) -> Result<String, String> {
        let e = |e: anyhow::Error| format!("{e:#}");
        match action {
            Action::Kill(t)
            | Action::Pause(t)
            | Action::Stop(t)
            | Action::Restart(t)
            | Action::Resume(t) => {
                let name = self.resolve(t)?;
                match action {
                    Action::Kill(_) => self.stage.kill(&name).await.map_err(e)?,
                    Action::Pause(_) => self.stage.pause(&name).await.map_err(e)?,
                    Action::Stop(_) => self
                        .stage
                        .stop(&name, Duration::from_secs(5))
                        .await
                        .map_err(e)?,
                    Action::Restart(_) => self.stage.restart(&name, None).await.map_err(e)?,
                    _ => self.stage.resume(&name).await.map_err(e)?,
                }
                let text = format!("{action}").replace(&t.to_string(), &name);
                if matches!(action, Action::Restart(_)) && name == crate::cluster::ARBITER {
                    self.service_restarts.push(self.obs.now_ms());
                }
                if matches!(action, Action::Resume(_) | Action::Restart(_)) {
                    self.obs.mark("step", text);
                } else {
                    self.fault(text);
                }
                Ok(if t.to_string() == name {
                    String::new()
                } else {
                    format!(" -> {name}")
                })
            }
            Action::Source { scope, down } => {
                let target = match scope {
                    SourceScope::Whole => SourceFaultTarget::WholeSource,
                    SourceScope::Component { component, adapter } => SourceFaultTarget::Component {
                        component: *component,
                        for_client: adapter.as_ref().map(|a| self.resolve(a)).transpose()?,
                    },
                    SourceScope::Connection(a) => SourceFaultTarget::Connection(self.resolve(a)?),
                };
                // The step in words, with the adapters it names by role resolved.
                let resolved = Action::Source {
                    scope: match &target {
                        SourceFaultTarget::WholeSource => SourceScope::Whole,
                        SourceFaultTarget::Component {
                            component,
                            for_client,
                        } => SourceScope::Component {
                            component: *component,
                            adapter: for_client.clone().map(Target::Named),
                        },
                        SourceFaultTarget::Connection(c) => {
                            SourceScope::Connection(Target::Named(c.clone()))
                        }
                    },
                    down: *down,
                };
                let text = resolved.to_string();
                self.stage.source_fault(target, *down).await.map_err(e)?;
                if *down {
                    self.fault(text)
                } else {
                    self.obs.mark("step", text)
                }
                Ok(String::new())
            }
            Action::EndpointOutage(down) => {
                self.stage.endpoint_outage(*down).await.map_err(e)?;
                if *down {
                    self.fault(action.to_string())
                } else {
                    self.obs.mark("step", action.to_string())
                }
                Ok(String::new())
            }
            Action::Isolate(t) => {
                let name = self.resolve(t)?;
                let isolated = self.stage.isolate(Some(&name)).await.map_err(e)?;
                self.fault(format!("{action}").replace(&t.to_string(), &isolated));
                Ok(format!(" -> {isolated}"))
            }
            Action::EndIsolation => {
                self.stage.isolate(None).await.map_err(e)?;
                self.obs.mark("step", action.to_string());
                Ok(String::new())
            }
            Action::Link { link, change } => {
                let adapter = self.resolve(&link.adapter)?;
                // The adapter is the client of every link: its side to the service is "forward".
                self.stage
                    .change_link(&adapter, &link.service, change, link.adapter_first)
                    .await
                    .map_err(e)?;
                let text = format!("{action}").replace(&link.adapter.to_string(), &adapter);
                if matches!(change, LinkChange::Heal) {
                    self.obs.mark("step", text)
                } else {
                    self.fault(text)
                }
                Ok(String::new())
            }
            Action::SetConfig { adapters, patch } => {
                let patch = Value::Object(patch.clone());
                for a in adapters {
                    let name = self.resolve(a)?;
                    self.stage
                        .adapter_rest(
                            &name,
                            Method::PATCH,
                            "/configuration/System/ClientFailover",
                            Some(&patch),
                        )
                        .await
                        .map_err(e)?;
                }
                self.fault(action.to_string());
                Ok(String::new())
            }
            Action::SetDataSource { adapters, doc } => {
                let doc = Value::Object(doc.clone());
                let mut warnings = Vec::new();
                for a in adapters {
                    let name = self.resolve(a)?;
                    let answer = self
                        .stage
                        .adapter_rest(
                            &name,
                            Method::PUT,
                            "/configuration/Source1/DataSource",
                            Some(&doc),
                        )
                        .await
                        .map_err(e)?;
                    if let Some(w) = answer["Warnings"].as_array() {
                        warnings.extend(
                            w.iter()
                                .filter_map(Value::as_str)
                                .map(|w| format!("{name}: {w}")),
                        );
                    }
                }
                self.obs.mark("step", action.to_string());
                Ok(if warnings.is_empty() {
                    String::new()
                } else {
                    format!(" (warning: {})", warnings.join("; "))
                })
            }
            Action::RoleOverride {
                adapter,
                role,
                expiration,
            } => {
                let name = self.resolve(adapter)?;
                let url = format!(
                    "/api/v1/ClientFailover/groups/{}/clientsessions/{name}/roleoverride",
                    self.stage.spec().group_id
                );
                match role {
                    Some(r) => {
                        let mut body = json!({ "Value": r.as_str() });
                        if let Some(exp) = expiration {
                            body["ExpirationPeriod"] = Value::String(format_timespan(*exp));
                        }
                        self.stage
                            .arbiter_admin(Method::POST, &url, Some(&body))
                            .await
                            .map_err(e)?
                    }
                    None => self
                        .stage
                        .arbiter_admin(Method::DELETE, &url, None)
                        .await
                        .map_err(e)?,
                };
                self.fault(format!("{action}").replace(&adapter.to_string(), &name));
                Ok(String::new())
            }
            Action::RestartChanged { adapter, patch } => {
                let name = self.resolve(adapter)?;
                self.stage.restart(&name, Some(patch)).await.map_err(e)?;
                // A member back with another document: a change of configuration, as a fault.
                self.fault(format!("{action}").replace(&adapter.to_string(), &name));
                Ok(String::new())
            }
            Action::DeleteSession(t) => {
                let name = self.resolve(t)?;
                let url = format!(
                    "/api/v1/ClientFailover/groups/{}/clientsessions/{name}",
                    self.stage.spec().group_id
                );
                self.stage
                    .arbiter_admin(Method::DELETE, &url, None)
                    .await
                    .map_err(e)?;
                self.fault(format!("{action}").replace(&t.to_string(), &name));
                Ok(String::new())
            }
            Action::DeleteGroup => {
                let tries = self.delete_group(None).await?;
                self.fault(action.to_string());
                Ok(format!(" ({tries} attempt(s))"))
            }
            Action::ChangeFailoverTimeout(timeout) => {
                let patch = json!({ "failoverTimeout": format_timespan(*timeout) });
                for name in self.stage.spec().adapters.clone() {
                    self.stage
                        .adapter_rest(
                            &name,
                            Method::PATCH,
                            "/configuration/System/ClientFailover",
                            Some(&patch),
                        )
                        .await
                        .map_err(e)?;
                }
                let tries = self.delete_group(Some(*timeout)).await?;
                self.fault(action.to_string());
                Ok(format!(" ({tries} attempt(s))"))
            }
            Action::Register {
                adapter,
                registered,
            } => {
                let name = self.resolve(adapter)?;
                let text = format!("{action}").replace(&adapter.to_string(), &name);
                if *registered {
                    self.stage.configure(&name).await.map_err(e)?;
                    self.obs.mark("step", text);
                } else {
                    self.stage
                        .adapter_rest(
                            &name,
                            Method::DELETE,
                            "/configuration/System/ClientFailover",
                            None,
                        )
                        .await
                        .map_err(e)?;
                    self.fault(text);
                }
                Ok(String::new())
            }
            Action::Twin { adapter, running }
            | Action::Standalone {
                name: adapter,
                running,
            } => {
                let extra = match action {
                    Action::Twin { .. } => crate::stage::Extra::Twin(adapter.clone()),
                    _ => crate::stage::Extra::Standalone(adapter.clone()),
                };
                if *running {
                    self.stage.start_extra(&extra).await.map_err(e)?;
                    self.fault(action.to_string());
                } else {
                    self.stage.stop_extra(&extra).await.map_err(e)?;
                    self.obs.mark("step", action.to_string());
                }
                Ok(String::new())
            }
            Action::FenceAhead(by) => {
                let epoch = self.highest_epoch().saturating_add(*by);
                let (_, endpoint) = self.stage.watch_channels().map_err(e)?;
                failover_sim::intruder::fence(endpoint, &self.stage.spec().group_id, epoch)
                    .await
                    .map_err(|s| {
                        format!("the endpoint refused the intruder's fence: {}", s.message())
                    })?;
                self.fault(action.to_string());
                Ok(format!(" (epoch {epoch})"))
            }
            Action::MemberAhead(0) => {
                if let Some(stop) = self.intruder.take() {
                    stop.send_replace(true);
                }
                self.obs.mark("step", action.to_string());
                Ok(String::new())
            }
            Action::MemberAhead(by) => {
                let epoch = self.highest_epoch().saturating_add(*by);
                let (arbiter, _) = self.stage.watch_channels().map_err(e)?;
                let (stop, stopped) = tokio::sync::watch::channel(false);
                if let Some(old) = self.intruder.replace(stop) {
                    old.send_replace(true);
                }
                let spec = self.stage.spec();
                // A member's heartbeat carries the group's fixed name and description.
                let status = self.obs.snapshot().status;
                let fixed = |f: fn(&v1::GroupStatus) -> &String| {
                    status.as_ref().map(f).cloned().unwrap_or_default()
                };
                tokio::spawn(failover_sim::intruder::member(
                    arbiter,
                    failover_sim::intruder::Member {
                        group: spec.group_id.clone(),
                        name: fixed(|s| &s.name),
                        description: fixed(|s| &s.description),
                        failover_timeout: spec.failover_timeout,
                        mode: spec.mode,
                        epoch,
                    },
                    stopped,
                ));
                self.fault(action.to_string());
                Ok(format!(" (epoch {epoch})"))
            }
            Action::HistoryRecovery {
                adapter,
                id,
                seconds,
            } => {
                let name = self.resolve(adapter)?;
                let now = process::unix_ms();
                let secs = i64::try_from(*seconds).unwrap_or(i64::MAX / 2000);
                let body = json!({ "Id": id, "StartTime": format_utc_ms(now - secs * 1000), "EndTime": format_utc_ms(now) });
                self.stage
                    .adapter_rest(
                        &name,
                        Method::POST,
                        "/configuration/Source1/HistoryRecoveries",
                        Some(&body),
                    )
                    .await
                    .map_err(e)?;
                self.obs.mark(
                    "step",
                    format!("{action}").replace(&adapter.to_string(), &name),
                );
                Ok(String::new())
            }
            Action::Clock {
                adapter,
                offset_ms,
                drift_ppm,
            } => {
                let name = self.resolve(adapter)?;
                self.stage
                    .adapter_rest(
                        &name,
                        Method::PUT,
                        "/lab/Clock",
                        Some(&json!({ "OffsetMs": offset_ms, "DriftPpm": drift_ppm })),
                    )
                    .await
                    .map_err(e)?;
                self.fault(format!("{action}").replace(&adapter.to_string(), &name));
                Ok(String::new())
            }
            Action::RunFor(d) => {
                tokio::time::sleep(*d).await;
                Ok(String::new())
            }
            Action::WaitUntil { condition, within } => {
                let began = tokio::time::Instant::now();
                // A condition on the service's view waits for a current one: while the watch
                // reconnects (the service gone, restarting or standing by), the view is the one
                // from before and must not make the wait end.
                let on_view = condition.primary.is_some()
                    || !condition.roles.is_empty()
                    || !condition.scores.is_empty()
                    || condition.epoch.is_some();
                loop {
                    let checked = if on_view && !self.obs.view_is_current() {
                        Err("the failover service's view is not current (its watch is reconnecting)".to_string())
                    } else {
                        self.check(condition).await
                    };
                    match checked {
                        Ok(()) => {
                            return Ok(format!(
                                " (held after {:.1}s)",
                                began.elapsed().as_secs_f64()
                            ));
                        }
                        Err(m) if began.elapsed() >= *within => {
                            return Err(format!("not within {}: {m}", format_timespan(*within)));
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            }
            Action::Expect(condition) => self.check(condition).await.map(|()| String::new()),
            // Registered by the step loop, which checks it at every step from now on.
            Action::Hold { .. } | Action::Never { .. } => Ok(String::new()),
        }
    }
}
