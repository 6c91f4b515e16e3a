//! Playing a scenario on a stage: start it, walk the steps, watch `hold` and `never`, stop it.

use std::time::Duration;

use failover_proto::{convert, process};

use super::{check::*, *};

/// Runs a scenario's steps on a running stage, then the invariants; stops the stage.
pub(super) async fn play<S: Stage>(
    stage: S,
    s: &Scenario,
    tag: &str,
    progress: &(dyn Fn(&str) + Sync),
) -> Played {
    let obs = match stage.watch_channels() {
        Ok((arbiter, endpoint)) => Observer::start_on(arbiter, endpoint, &stage.spec().group_id),
        Err(e) => {
            return Played {
                result: Err(Failure {
                    step: 0,
                    line: 0,
                    action: "watch the failover group".into(),
                    note: None,
                    message: format!("{e:#}"),
                    timeline: vec![],
                }),
                steps_passed: 0,
                timeline: Timeline::default(),
                audit: None,
            };
        }
    };
    let within = stage.spec().failover_timeout * 3 + Duration::from_secs(10);
    let mut run = Run {
        stage,
        obs,
        last_fault_us: None,
        tag: tag.to_string(),
        marks: std::collections::HashMap::new(),
        watches: Vec::new(),
        service_restarts: Vec::new(),
        intruder: None,
    };
    let mut steps_passed = 0;
    let result = match crate::stage::configure_in_order(&run.stage, &run.obs, within).await {
        Err(e) => Err(Failure {
            step: 0,
            line: 0,
            action: "configure the adapters".into(),
            note: None,
            message: format!("{e:#}"),
            timeline: run.timeline_tail(),
        }),
        Ok(()) => run.steps(s, &mut steps_passed, progress).await,
    };
    let result = match result {
        Ok(()) => run.invariants().await.map_err(|message| Failure {
            step: s.steps.len() + 1,
            line: 0,
            action: "safety invariants".into(),
            note: None,
            message,
            timeline: run.timeline_tail(),
        }),
        Err(f) => Err(f),
    };
    if let Some(stop) = run.intruder.take() {
        stop.send_replace(true);
    }
    let result = result.map_err(|mut f| {
        // A failing scenario keeps its logs, wherever they are.
        run.stage.keep_logs();
        f.message.push_str(&format!("\n({})", run.stage.logs()));
        f
    });
    // The story ends with its last step: the picture leaves out the teardown (both adapters
    // stopping would read as a failure at the end of a passing run). Its data coverage, if the
    // endpoint answers, goes with it.
    if let Ok(Ok(runs)) = tokio::time::timeout(Duration::from_secs(10), run.stage.coverage()).await
    {
        run.obs.record_coverage(&runs);
    }
    let timeline = run.obs.snapshot();
    let audit = run.audit().await.ok().map(|a| AuditTally {
        expected: a.expected,
        received: a.received,
        lost: a.lost,
        duplicated: a.duplicated,
    });
    run.stage.shutdown().await;
    Played {
        result,
        steps_passed,
        timeline,
        audit,
    }
}

/// Runs a scenario's steps on the simulator with one seed (on a thread of its own: turmoil
/// runs every simulated host on the thread that drives it), passing on its progress lines.
pub(super) async fn play_on_sim(
    s: &Scenario,
    spec: &ClusterSpec,
    seed: u64,
    tag: &str,
    progress: &(dyn Fn(&str) + Sync),
) -> Played {
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (s, spec, tag) = (s.clone(), spec.clone(), format!("{tag} seed {seed}"));
    let simulated = tokio::task::spawn_blocking(move || {
        let buffers = tempfile::Builder::new()
            .prefix("failover-lab-sim-")
            .tempdir();
        let stage_spec = failover_sim::stage::StageSpec {
            seed,
            cluster: spec.clone(),
            extras: crate::stage::sim::extras(&s),
            buffer_root: spec
                .disk_buffer
                .then(|| buffers.as_ref().map(|d| d.path().to_path_buf()).ok())
                .flatten(),
            limit: sim_limit(&s, &spec),
        };
        let mut world = failover_sim::stage::Stage::new(&stage_spec);
        let handle = world.handle();
        let played = std::rc::Rc::new(std::cell::RefCell::new(None));
        let out = played.clone();
        world.director(async move {
            let stage = crate::stage::sim::SimStage::new(spec, handle);
            let progress = |line: &str| {
                let _ = lines_tx.send(line.to_string());
            };
            let p = play(stage, &s, &tag, &progress).await;
            *out.borrow_mut() = Some(p);
        });
        let driven = world.drive();
        drop(world);
        let taken = played.borrow_mut().take();
        (taken, driven)
    });
    let mut simulated = std::pin::pin!(simulated);
    let joined = loop {
        tokio::select! {
            Some(line) = lines.recv() => progress(&line),
            j = &mut simulated => break j,
        }
    };
    while let Ok(line) = lines.try_recv() {
        progress(&line);
    }
    let failure = |message: String| Played {
        result: Err(Failure {
            step: 0,
            line: 0,
            action: format!("simulate seed {seed}"),
            note: None,
            message,
            timeline: vec![],
        }),
        steps_passed: 0,
        timeline: Timeline::default(),
        audit: None,
    };
    match joined {
        Ok((Some(played), _)) => played,
        Ok((None, Err(e))) => failure(format!("the simulation stopped: {e}")),
        Ok((None, Ok(_))) => failure("the simulation ended before the scenario".into()),
        Err(e) => failure(format!("the simulation failed: {e}")),
    }
}

/// The longest a scenario may take in simulated time: its waits and bounds, the setup, and
/// a margin per step.
pub(super) fn sim_limit(s: &Scenario, spec: &ClusterSpec) -> Duration {
    let setup = (spec.failover_timeout * 3 + Duration::from_secs(10))
        * u32::try_from(spec.adapters.len() + 1).unwrap_or(u32::MAX);
    s.steps.iter().fold(setup, |total, step| {
        total
            + Duration::from_secs(30)
            + match &step.action {
                Action::RunFor(d) | Action::WaitUntil { within: d, .. } => *d,
                _ => Duration::ZERO,
            }
    })
}

impl<S: Stage> Run<S> {
    pub(super) fn timeline_tail(&self) -> Vec<String> {
        let t = self.obs.snapshot();
        let mut lines: Vec<String> = t
            .events
            .iter()
            .rev()
            .take(15)
            .rev()
            .map(|e| format!("{:7.2}s  {}", e.at_ms as f64 / 1000.0, e.text))
            .collect();
        if let Some(status) = &t.status {
            let now: Vec<String> = status
                .sessions
                .iter()
                .map(|s| {
                    let role = if s.stale {
                        "Stale".to_string()
                    } else {
                        convert::role_from_wire(s.role)
                            .map_or("None".into(), |r| r.as_str().to_string())
                    };
                    format!("{} {role} score {}", s.adapter_id, s.score)
                })
                .collect();
            lines.push(format!(
                "   now:  epoch {}; {}",
                status.epoch,
                now.join("; ")
            ));
        }
        lines
    }

    pub(super) async fn steps(
        &mut self,
        s: &Scenario,
        passed: &mut usize,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<(), Failure> {
        let n = s.steps.len();
        for (i, step) in s.steps.iter().enumerate() {
            // The watches that last up to this step end as it begins.
            if let Some(id) = &step.id {
                let boundary = process::unix_us();
                let (ending, going_on): (Vec<Watch>, Vec<Watch>) =
                    std::mem::take(&mut self.watches)
                        .into_iter()
                        .partition(|w| w.until.as_deref() == Some(id.as_str()));
                self.watches = going_on;
                if !ending.is_empty() {
                    // A view the service took before this step began may still be on its way.
                    tokio::time::sleep(IN_FLIGHT).await;
                }
                for w in &ending {
                    self.scan(w, boundary)?;
                }
            }
            let began = tokio::time::Instant::now();
            let began_us = process::unix_us();
            if let Action::Hold { condition, until } | Action::Never { condition, until } =
                &step.action
            {
                self.watches.push(Watch {
                    never: matches!(step.action, Action::Never { .. }),
                    condition: condition.clone(),
                    from_us: process::unix_us(),
                    from_ms: self.obs.now_ms(),
                    until: until.clone(),
                    step: i + 1,
                    line: step.line,
                    action: step.action.to_string(),
                    note: step.note.clone(),
                });
            }
            match self.act(&step.action).await {
                Ok(detail) => {
                    *passed += 1;
                    if let Some(id) = &step.id {
                        let mark = self.mark(began_us).await.map_err(|message| Failure {
                            step: i + 1,
                            line: step.line,
                            action: format!("record step {id}"),
                            note: step.note.clone(),
                            message,
                            timeline: self.timeline_tail(),
                        })?;
                        self.marks.insert(id.clone(), mark);
                    }
                    let note = step
                        .note
                        .as_deref()
                        .map(|n| format!("  # {n}"))
                        .unwrap_or_default();
                    progress(&format!(
                        "[{}] step {}/{n} (line {}): {}{detail} ... ok ({:.1}s){note}",
                        self.tag,
                        i + 1,
                        step.line,
                        step.action,
                        began.elapsed().as_secs_f64()
                    ));
                }
                Err(message) => {
                    // A watch that broke during this step explains it better than the step.
                    let now = process::unix_us();
                    for w in &self.watches {
                        self.scan(w, now)?;
                    }
                    return Err(Failure {
                        step: i + 1,
                        line: step.line,
                        action: step.action.to_string(),
                        note: step.note.clone(),
                        message,
                        timeline: self.timeline_tail(),
                    });
                }
            }
            // A watch that broke fails the scenario now, naming the moment it broke.
            let now = process::unix_us();
            for w in &self.watches {
                self.scan(w, now)?;
            }
        }
        let watches = std::mem::take(&mut self.watches);
        if !watches.is_empty() {
            let end = process::unix_us();
            tokio::time::sleep(IN_FLIGHT).await;
            for w in &watches {
                self.scan(w, end)?;
            }
        }
        Ok(())
    }

    /// Checks a watch against every view the failover service took from its start up to
    /// `upto_us` (and the view in force when it began), by the service's clock.
    pub(super) fn scan(&self, w: &Watch, upto_us: i64) -> Result<(), Failure> {
        let t = self.obs.snapshot();
        let fail = |message: String| Failure {
            step: w.step,
            line: w.line,
            action: w.action.clone(),
            note: w.note.clone(),
            message,
            timeline: self.timeline_tail(),
        };
        let start = t
            .history
            .iter()
            .rposition(|p| p.service_us <= w.from_us)
            .unwrap_or(0);
        let c = &w.condition;
        let has_status_part =
            c.primary.is_some() || !c.roles.is_empty() || !c.scores.is_empty() || c.epoch.is_some();
        for p in t.history[start..]
            .iter()
            .take_while(|p| p.service_us < upto_us)
        {
            if !has_status_part {
                break;
            }
            let at = p.at_ms.max(w.from_ms) as f64 / 1000.0;
            match (self.status_holds(c, p).map_err(fail)?, w.never) {
                (Err(why), false) => {
                    return Err(fail(format!("the hold broke at {at:.2} s: {why}")));
                }
                (Ok(()), true) => {
                    return Err(fail(format!("it happened at {at:.2} s: {c}")));
                }
                _ => {}
            }
        }
        if w.never {
            let within = |at: i64| at > w.from_us && at < upto_us;
            for want in &c.role_transitions {
                if let Some(r) = t.role_transitions.iter().find(|r| {
                    within(r.service_us)
                        && r.adapter == want.adapter
                        && r.from == want.from
                        && r.to == want.to
                }) {
                    return Err(fail(format!(
                        "it happened at {:.2} s: {} {} -> {}",
                        r.at_ms as f64 / 1000.0,
                        r.adapter,
                        r.from,
                        r.to
                    )));
                }
            }
            for want in &c.score_transitions {
                if let Some(r) = t.score_transitions.iter().find(|r| {
                    within(r.service_us)
                        && r.adapter == want.adapter
                        && r.from == want.from
                        && r.to == want.to
                }) {
                    return Err(fail(format!(
                        "it happened at {:.2} s: {} score {} -> {}",
                        r.at_ms as f64 / 1000.0,
                        r.adapter,
                        r.from.map_or("none".into(), |f| f.to_string()),
                        r.to
                    )));
                }
            }
        }
        Ok(())
    }

    /// The failover-service parts of a condition (primary, roles, scores, epoch) at one
    /// reported moment.
    pub(super) fn status_holds(
        &self,
        c: &Condition,
        p: &crate::observe::StatusPoint,
    ) -> Result<Result<(), String>, String> {
        if let Some(expected) = &c.primary
            && !expected.holds(p.primary.as_deref())
        {
            return Ok(Err(format!(
                "expected Primary {expected}, got {}",
                p.primary.as_deref().unwrap_or("none")
            )));
        }
        let adapter = |name: &str| p.adapters.iter().find(|(a, _, _)| a == name);
        for (name, role) in &c.roles {
            let got = adapter(name).map_or("absent", |(_, r, _)| r.as_str());
            if got != role {
                return Ok(Err(format!("expected {name} {role}, got {got}")));
            }
        }
        for (name, cmp) in &c.scores {
            let resolved = self.resolve_cmp(cmp, |m| {
                m.scores.iter().find(|(a, _)| a == name).map(|(_, s)| *s)
            })?;
            let got = adapter(name).map(|(_, _, s)| i64::from(*s));
            if !got.is_some_and(|g| resolved.holds(g)) {
                return Ok(Err(format!(
                    "expected {name} score {cmp}{}, got {}",
                    shown_base(cmp, &resolved),
                    got.map_or("no session".into(), |g| g.to_string())
                )));
            }
        }
        if let Some(cmp) = &c.epoch {
            let resolved = self.resolve_cmp(cmp, |m| Some(m.epoch))?;
            let got = i64::try_from(p.epoch).unwrap_or(i64::MAX);
            if !resolved.holds(got) {
                return Ok(Err(format!(
                    "expected epoch {cmp}{}, got {got}",
                    shown_base(cmp, &resolved)
                )));
            }
        }
        Ok(Ok(()))
    }

    /// An adapter (or component) by name or role.
    pub(super) fn resolve(&self, t: &Target) -> Result<String, String> {
        let tl = self.obs.snapshot();
        match t {
            Target::Named(n) if n == failover_scenario::cluster::LEADER => self
                .stage
                .leader()
                .ok_or_else(|| "no failover service leads now".to_string()),
            Target::Named(n) => Ok(n.clone()),
            Target::Primary => tl
                .primary()
                .ok_or_else(|| "no adapter is Primary now".to_string()),
            Target::Secondary => {
                let primary = tl.primary();
                self.stage
                    .spec()
                    .adapters
                    .iter()
                    .find(|a| {
                        Some(*a) != primary.as_ref() && tl.session(a).is_some_and(|s| !s.stale)
                    })
                    .cloned()
                    .ok_or_else(|| "no live adapter is Secondary now".to_string())
            }
        }
    }

    /// The figures now, for a step with an id.
    pub(super) async fn mark(&self, began_us: i64) -> Result<Mark, String> {
        let t = self.obs.snapshot();
        // A step may leave the endpoint down (killed, paused): then its figures are not
        // recorded, and a later comparison with them says so.
        let a = self.audit().await.ok();
        Ok(Mark {
            began_us,
            epoch: i64::try_from(t.epoch()).unwrap_or(i64::MAX),
            scores: t
                .status
                .iter()
                .flat_map(|s| &s.sessions)
                .map(|s| (s.adapter_id.clone(), i64::from(s.score)))
                .collect(),
            audit: a
                .iter()
                .flat_map(|a| {
                    crate::scenario::AUDIT_FIELDS
                        .iter()
                        .map(|f| ((*f).to_string(), audit_figure(a, f)))
                })
                .collect(),
        })
    }

    /// A comparison with an earlier step's figure made concrete (`figure` picks it from the
    /// step's mark), or the comparison itself.
    pub(super) fn resolve_cmp(
        &self,
        cmp: &crate::scenario::Cmp,
        figure: impl Fn(&Mark) -> Option<i64>,
    ) -> Result<crate::scenario::Cmp, String> {
        let Some(step) = &cmp.at_step else {
            return Ok(cmp.clone());
        };
        let mark = self
            .marks
            .get(step)
            .ok_or_else(|| format!("step {step} has not run"))?;
        let base = figure(mark).ok_or_else(|| {
            format!(
                "step {step} recorded no such figure (no session then, or the endpoint did not answer)"
            )
        })?;
        Ok(cmp.against(base))
    }

    /// The highest epoch the failover service has shown for the group (its epoch, or one a
    /// member reported).
    pub(super) fn highest_epoch(&self) -> u64 {
        let t = self.obs.snapshot();
        t.status
            .as_ref()
            .map_or(0, |s| s.highest_epoch.max(s.epoch))
            .max(t.max_epoch)
    }
}
