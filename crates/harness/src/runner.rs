//! Runs scenarios: each on its own pair of real processes (own ports, own logs), step by step,
//! with progress as it goes. A failure shows what was expected, what was found, and the recent
//! timeline. Everything is stopped afterwards, whatever happened.
//!
//! After the last step, two safety invariants are checked on every scenario: the endpoint
//! accepted writes from at most one adapter per epoch, and the epoch never went down.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use failover_core::{clock_time::format_utc_ms, timespan::format_timespan};
use failover_proto::{convert, process, v1};
use futures::StreamExt;
use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    cluster::{Cluster, ClusterProtocol, ClusterSpec, SourceFaultTarget},
    observe::{Observer, Timeline, configure_stage_in_order},
    scenario::{self, Action, Condition, LinkChange, Scenario, SourceScope, Target},
    stage::Stage,
};
use failover_scenario::invariants;

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Overrides every scenario's seed.
    pub seed: Option<u64>,
    /// Keep each component's log under this folder, one subfolder per scenario.
    pub keep_logs: Option<PathBuf>,
    /// Scenarios run at once (1 on the compose target: there is one stack).
    pub jobs: usize,
    /// Where the pair runs.
    pub target: RunTarget,
    /// Write each scenario's timeline picture here, as `<file stem>.svg`.
    pub report_dir: Option<PathBuf>,
    /// Run every scenario with its adapters on this protocol instead of its own
    /// (`cluster.failover_protocol`).
    pub failover_protocol: Option<ClusterProtocol>,
}

/// Where scenarios run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RunTarget {
    /// Each scenario on its own processes on loopback.
    #[default]
    Processes,
    /// On the services of the compose project in this folder.
    Compose(PathBuf),
    /// On the deterministic simulator, in simulated time, once per seed: the scenario's seed
    /// and the `seeds - 1` after it.
    Sim {
        /// How many seeds.
        seeds: u32,
    },
}

/// What became of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The file.
    pub file: String,
    /// Its title (the file name if it did not parse).
    pub name: String,
    /// Passed or not (true when skipped).
    pub passed: bool,
    /// Why it did not run on this target (it runs on another), when it did not.
    pub skipped: Option<String>,
    /// Wall time.
    pub seconds: f64,
    /// Steps in the file.
    pub steps: usize,
    /// Steps that passed.
    pub steps_passed: usize,
    /// Seed used.
    pub seed: u64,
    /// Why it failed.
    pub failure: Option<Failure>,
}

/// Why a scenario failed.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// Step number (0: before any step, such as a file error or the cluster not starting).
    pub step: usize,
    /// Line in the file.
    pub line: usize,
    /// The step, in words.
    pub action: String,
    /// The step's note.
    pub note: Option<String>,
    /// Expected vs found.
    pub message: String,
    /// The last lines of the timeline.
    pub timeline: Vec<String>,
}

impl Failure {
    fn render(&self, file: &str) -> String {
        let mut out = String::new();
        if self.step > 0 {
            out.push_str(&format!(
                "{file}:{}: step {} failed: {}\n",
                self.line, self.step, self.action
            ));
            if let Some(n) = &self.note {
                out.push_str(&format!("  note: {n}\n"));
            }
        }
        out.push_str(&format!("  {}\n", self.message.replace('\n', "\n  ")));
        if !self.timeline.is_empty() {
            out.push_str("  recent timeline (seconds since start):\n");
            for l in &self.timeline {
                out.push_str(&format!("    {l}\n"));
            }
        }
        out
    }
}

impl Outcome {
    /// The failure as text (empty when passed).
    pub fn failure_text(&self) -> String {
        self.failure
            .as_ref()
            .map(|f| f.render(&self.file))
            .unwrap_or_default()
    }
}

fn short_name(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

/// Loads and runs every scenario in `files`, `jobs` at a time; `progress` gets each line.
pub async fn run_all(
    files: &[PathBuf],
    opts: &RunOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Vec<Outcome> {
    let loaded: Vec<(usize, Result<Scenario, scenario::ScenarioError>, &PathBuf)> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (i, scenario::load(f), f))
        .collect();
    let jobs = match opts.target {
        RunTarget::Compose(_) => 1,
        RunTarget::Processes | RunTarget::Sim { .. } => opts.jobs.max(1),
    };
    let mut outcomes: Vec<(usize, Outcome)> = futures::stream::iter(loaded)
        .map(|(i, s, file)| async move {
            let outcome = match s {
                Ok(s) => run_scenario(&s, opts, progress).await,
                Err(e) => {
                    progress(&format!("[{}] {e}", short_name(file)));
                    Outcome {
                        file: file.display().to_string(),
                        name: short_name(file),
                        passed: false,
                        skipped: None,
                        seconds: 0.0,
                        steps: 0,
                        steps_passed: 0,
                        seed: 0,
                        failure: Some(Failure {
                            step: 0,
                            line: e.line,
                            action: String::new(),
                            note: None,
                            message: e.to_string(),
                            timeline: vec![],
                        }),
                    }
                }
            };
            (i, outcome)
        })
        .buffer_unordered(jobs)
        .collect()
        .await;
    outcomes.sort_by_key(|(i, _)| *i);
    outcomes.into_iter().map(|(_, o)| o).collect()
}

/// Runs one scenario on its own pair (on the simulator: once per seed).
pub async fn run_scenario(
    s: &Scenario,
    opts: &RunOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Outcome {
    let started = std::time::Instant::now();
    let tag = short_name(&s.path);
    let mut spec = s.cluster.clone();
    if let Some(seed) = opts.seed {
        spec.seed = seed;
    }
    if let Some(p) = opts.failover_protocol {
        spec.failover_protocol = p;
    }
    spec.log_dir = opts.keep_logs.as_ref().map(|d| d.join(&tag));
    let mut outcome = Outcome {
        file: s.path.display().to_string(),
        name: s.name.clone(),
        passed: false,
        skipped: None,
        seconds: 0.0,
        steps: s.steps.len(),
        steps_passed: 0,
        seed: spec.seed,
        failure: None,
    };
    let target = match &opts.target {
        RunTarget::Processes => "processes".to_string(),
        RunTarget::Compose(_) => "compose".to_string(),
        RunTarget::Sim { seeds } => format!("sim, {seeds} seed(s) from {}", spec.seed),
    };
    progress(&format!(
        "[{tag}] {} ({} mode, failoverTimeout {}, seed {}, on {target})",
        s.name,
        spec.mode,
        format_timespan(spec.failover_timeout),
        spec.seed
    ));
    let played = match &opts.target {
        RunTarget::Sim { seeds } => {
            if let Some(why) = crate::stage::sim::refusal(s, spec.failover_protocol) {
                progress(&format!("[{tag}] SKIP: cannot run on --target sim: {why}"));
                outcome.skipped = Some(format!("cannot run on --target sim: {why}"));
                outcome.passed = true;
                return outcome;
            }
            let mut last = None;
            for k in 0..*seeds {
                let seed = spec.seed.wrapping_add(u64::from(k));
                let played = play_on_sim(s, &spec, seed, &tag, progress).await;
                let failed = played.result.is_err();
                outcome.seed = seed;
                last = Some(played);
                if failed {
                    break;
                }
            }
            match last {
                Some(p) => p,
                None => {
                    outcome.passed = true;
                    outcome.skipped = Some("--seeds 0: nothing ran".into());
                    return outcome;
                }
            }
        }
        RunTarget::Processes | RunTarget::Compose(_) => {
            let started_cluster = match &opts.target {
                RunTarget::Compose(dir) => Cluster::start_compose(spec.clone(), dir).await,
                _ => Cluster::start(spec.clone()).await,
            };
            match started_cluster {
                Ok(cluster) => play(cluster, s, &tag, progress).await,
                Err(e) => {
                    outcome.failure = Some(Failure {
                        step: 0,
                        line: 0,
                        action: "start the cluster".into(),
                        note: None,
                        message: format!("{e:#}"),
                        timeline: vec![],
                    });
                    outcome.seconds = started.elapsed().as_secs_f64();
                    progress(&format!("[{tag}] FAIL: cannot start the cluster: {e:#}"));
                    return outcome;
                }
            }
        }
    };
    outcome.steps_passed = played.steps_passed;
    if let Some(dir) = &opts.report_dir {
        let stem = Path::new(&outcome.file)
            .file_stem()
            .map_or_else(|| tag.clone(), |s| s.to_string_lossy().into_owned());
        let title = format!(
            "{} ({} mode, failoverTimeout {}): {}",
            s.name,
            spec.mode,
            format_timespan(spec.failover_timeout),
            if played.result.is_ok() {
                "passed"
            } else {
                "FAILED"
            }
        );
        // The recording first; the picture is drawn from it as read back.
        let header = crate::recording::Header {
            recording: crate::recording::VERSION,
            title: title.clone(),
            adapters: spec.adapters.clone(),
            mode: spec.mode.to_string(),
            failover_timeout_ms: u64::try_from(spec.failover_timeout.as_millis())
                .unwrap_or(u64::MAX),
        };
        let text = crate::recording::to_text(&header, &played.timeline);
        let recorded = dir.join(format!("{stem}.jsonl"));
        let picture = dir.join(format!("{stem}.svg"));
        let written = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&recorded, &text))
            .map_err(anyhow::Error::from)
            .and_then(|()| crate::recording::from_text(&text))
            .and_then(|(h, t)| {
                let svg = crate::timeline_svg::render(&h.title, &h.adapters, &t, None);
                std::fs::write(&picture, svg).map_err(anyhow::Error::from)
            });
        if let Err(e) = written {
            progress(&format!(
                "[{tag}] cannot write {} and {}: {e:#}",
                recorded.display(),
                picture.display()
            ));
        }
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    match played.result {
        Ok(()) => {
            outcome.passed = true;
            progress(&format!("[{tag}] PASS in {:.1}s", outcome.seconds));
        }
        Err(f) => {
            outcome.failure = Some(f);
            progress(&format!(
                "[{tag}] FAIL in {:.1}s{}\n{}",
                outcome.seconds,
                if matches!(opts.target, RunTarget::Sim { .. }) {
                    format!(" (seed {})", outcome.seed)
                } else {
                    String::new()
                },
                outcome.failure_text()
            ));
        }
    }
    outcome
}

/// What a scenario's steps came to on a stage.
struct Played {
    result: Result<(), Failure>,
    steps_passed: usize,
    timeline: Timeline,
}

/// Runs a scenario's steps on a running stage, then the invariants; stops the stage.
async fn play<S: Stage>(
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
    let result = match configure_stage_in_order(&run.stage, &run.obs, within).await {
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
    run.stage.shutdown().await;
    Played {
        result,
        steps_passed,
        timeline,
    }
}

/// Runs a scenario's steps on the simulator with one seed (on a thread of its own: turmoil
/// runs every simulated host on the thread that drives it), passing on its progress lines.
async fn play_on_sim(
    s: &Scenario,
    spec: &ClusterSpec,
    seed: u64,
    tag: &str,
    progress: &(dyn Fn(&str) + Sync),
) -> Played {
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (s, spec, tag) = (s.clone(), spec.clone(), format!("{tag} seed {seed}"));
    let simulated = tokio::task::spawn_blocking(move || {
        let buffers = tempfile_dir();
        let stage_spec = failover_sim::stage::StageSpec {
            seed,
            adapters: spec.adapters.clone(),
            extras: crate::stage::sim::extras(&s),
            streams: spec.streams,
            components: spec.components,
            rate_hz: spec.rate_hz,
            source_seed: spec.seed,
            history_rate: spec.history_rate,
            max_clients: spec.max_clients,
            warm_test_interval: spec.warm_test_interval,
            data_collection_mode: spec.data_collection_mode,
            buffer_root: spec
                .disk_buffer
                .then(|| buffers.as_ref().map(|d| d.path().to_path_buf()).ok())
                .flatten(),
            limit: sim_limit(&s, &spec),
            broken: spec.broken,
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
    };
    match joined {
        Ok((Some(played), _)) => played,
        Ok((None, Err(e))) => failure(format!("the simulation stopped: {e}")),
        Ok((None, Ok(_))) => failure("the simulation ended before the scenario".into()),
        Err(e) => failure(format!("the simulation failed: {e}")),
    }
}

/// A folder for the simulated adapters' disk buffers, removed when dropped.
struct BufferDir(std::path::PathBuf);

impl BufferDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for BufferDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir() -> std::io::Result<BufferDir> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("failover-lab-sim-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(BufferDir(dir))
}

/// The longest a scenario may take in simulated time: its waits and bounds, the setup, and
/// a margin per step.
fn sim_limit(s: &Scenario, spec: &ClusterSpec) -> Duration {
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

struct Run<S: Stage> {
    stage: S,
    obs: Observer,
    last_fault_us: Option<i64>,
    tag: String,
    /// What was so when each step with an id ended.
    marks: std::collections::HashMap<String, Mark>,
    /// `hold` and `never` conditions in force.
    watches: Vec<Watch>,
    /// When the failover service was started again (ms since the observation began): its
    /// epochs count from there.
    service_restarts: Vec<u64>,
    /// Stops the intruder member of `member_ahead` (None: none runs).
    intruder: Option<tokio::sync::watch::Sender<bool>>,
}

/// A `hold` or `never` step in force: checked against every change the failover service
/// reported from `from_us` on.
#[derive(Debug, Clone)]
struct Watch {
    never: bool,
    condition: Condition,
    /// When it began, on the wall clock (unix µs; the failover service's clock is the same
    /// machine's, or the simulator's).
    from_us: i64,
    /// The same moment in the observer's milliseconds, for messages.
    from_ms: u64,
    until: Option<String>,
    step: usize,
    line: usize,
    action: String,
    note: Option<String>,
}

/// The figures at the end of a step with an id, for the steps after it to compare with
/// (`"same as step ID"`), and when it began (`takeover_from = "ID"`).
#[derive(Debug, Clone)]
struct Mark {
    began_us: i64,
    epoch: i64,
    scores: Vec<(String, i64)>,
    audit: Vec<(String, i64)>,
}

impl<S: Stage> Run<S> {
    fn timeline_tail(&self) -> Vec<String> {
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

    async fn steps(
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
    fn scan(&self, w: &Watch, upto_us: i64) -> Result<(), Failure> {
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
    fn status_holds(
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
    fn resolve(&self, t: &Target) -> Result<String, String> {
        let tl = self.obs.snapshot();
        match t {
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
    async fn mark(&self, began_us: i64) -> Result<Mark, String> {
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
    fn resolve_cmp(
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
    fn highest_epoch(&self) -> u64 {
        let t = self.obs.snapshot();
        t.status
            .as_ref()
            .map_or(0, |s| s.highest_epoch.max(s.epoch))
            .max(t.max_epoch)
    }

    /// Deletes every session of the group, then the group, again until the group is gone
    /// (members still running rejoin in between) or, with `timeout`, until the members have
    /// rejoined with that failoverTimeout; at most 10 s. The attempts it took.
    async fn delete_group(&mut self, timeout: Option<Duration>) -> Result<usize, String> {
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

    fn fault(&mut self, text: String) {
        self.last_fault_us = Some(process::unix_us());
        self.obs.mark("fault", text);
    }

    /// Carries out a step; Ok carries a detail for the progress line.
    async fn act(&mut self, action: &Action) -> Result<String, String> {
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
                Ok(if matches!(t, Target::Named(_)) {
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
            Action::RunFor(d) => {
                tokio::time::sleep(*d).await;
                Ok(String::new())
            }
            Action::WaitUntil { condition, within } => {
                let began = tokio::time::Instant::now();
                loop {
                    match self.check(condition).await {
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

    /// The endpoint's audit; a paused endpoint (which accepts connections and never answers)
    /// is an error after 10 s, not a hang.
    async fn audit(&self) -> Result<v1::AuditReport, String> {
        match tokio::time::timeout(Duration::from_secs(10), self.stage.audit()).await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => Err(format!("cannot read the endpoint audit: {e:#}")),
            Err(_) => Err("the endpoint did not answer the audit within 10 s".into()),
        }
    }

    async fn rest_get(&self, adapter: &str, path: &str) -> Result<Value, String> {
        self.stage
            .adapter_rest(adapter, Method::GET, path, None)
            .await
            .map_err(|e| format!("{e:#}"))
    }

    /// Checks a condition now: Ok, or what was expected and what was found.
    async fn check(&self, c: &Condition) -> Result<(), String> {
        let t = self.obs.snapshot();
        // Primary, roles, scores and epoch: as `hold` and `never` check them, on the view now.
        let now = crate::observe::StatusPoint::of(t.status.as_ref(), self.obs.now_ms());
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
    /// and the bound has not passed, it waits for it.
    async fn check_takeover(
        &self,
        t: &Timeline,
        bound: Duration,
        from: Option<(i64, String)>,
    ) -> Result<(), String> {
        let (fault, since) =
            from.ok_or("takeover_within needs a fault step before it (or takeover_from)")?;
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
                            "expected the takeover within {}, took {:.3} s ({since} to the first point accepted from {primary} at epoch {epoch})",
                            format_timespan(bound),
                            took.as_secs_f64()
                        ));
                    }
                    return Ok(());
                }
                None if now_took > bound => {
                    return Err(format!(
                        "expected the takeover within {}: {:.3} s after {since}, no point accepted yet from {primary} at epoch {epoch}",
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
    async fn invariants(&self) -> Result<(), String> {
        self.rules_kept(&invariants::RULES).await
    }

    /// These rules of [`failover_scenario::invariants`] hold on what this run observed so far.
    async fn rules_kept(&self, rules: &[u8]) -> Result<(), String> {
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
            statuses: t
                .history
                .iter()
                .map(|p| invariants::Status {
                    at: at(p.at_ms),
                    epoch: p.epoch,
                    exists: p.exists,
                    promotions: p.promotions,
                    primary: p.primary.clone(),
                    requested: p.requested_promotions,
                })
                .collect(),
            samples: t
                .samples
                .iter()
                .map(|s| invariants::Sample {
                    at: at(s.at_ms),
                    fences: s.fences,
                    writes: s.writes,
                    heartbeats: s.heartbeats,
                })
                .collect(),
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
const IN_FLIGHT: Duration = Duration::from_millis(300);

/// `" (N)"`: the figure an earlier step's comparison stood for, for messages.
fn shown_base(cmp: &crate::scenario::Cmp, resolved: &crate::scenario::Cmp) -> String {
    if cmp.at_step.is_some() {
        format!(" ({})", resolved.value)
    } else {
        String::new()
    }
}

fn audit_figure(a: &v1::AuditReport, field: &str) -> i64 {
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
fn is_subsequence<T: PartialEq>(want: &[T], seen: &[T]) -> bool {
    let mut it = seen.iter();
    want.iter().all(|w| it.any(|s| s == w))
}

/// The results as a table, ending with `N passed, M failed`.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut out = String::from("\n result  time     scenario\n");
    for o in outcomes {
        out.push_str(&format!(
            " {}  {:6.1}s  {}  {}{}\n",
            match (o.passed, &o.skipped) {
                (_, Some(_)) => "SKIP",
                (true, None) => "PASS",
                (false, None) => "FAIL",
            },
            o.seconds,
            o.file,
            o.name,
            o.skipped
                .as_ref()
                .map(|why| format!("\n                 {why}"))
                .unwrap_or_default()
        ));
    }
    let skipped = outcomes.iter().filter(|o| o.skipped.is_some()).count();
    let passed = outcomes.iter().filter(|o| o.passed).count() - skipped;
    out.push_str(&format!(
        "\n{passed} passed, {} failed{}\n",
        outcomes.len() - passed - skipped,
        if skipped > 0 {
            format!(", {skipped} skipped (they run on another target)")
        } else {
            String::new()
        }
    ));
    out
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&apos;".into(),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => " ".into(),
            c => c.to_string(),
        })
        .collect()
}

/// The results as JUnit XML.
pub fn junit(outcomes: &[Outcome]) -> String {
    let failures = outcomes.iter().filter(|o| !o.passed).count();
    let skipped = outcomes.iter().filter(|o| o.skipped.is_some()).count();
    let time: f64 = outcomes.iter().map(|o| o.seconds).sum();
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"failover-lab\" tests=\"{}\" failures=\"{failures}\" time=\"{time:.3}\">\n  <testsuite name=\"scenarios\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">\n",
        outcomes.len(),
        outcomes.len()
    );
    for o in outcomes {
        x.push_str(&format!(
            "    <testcase classname=\"scenarios\" name=\"{}\" file=\"{}\" time=\"{:.3}\">\n",
            xml_escape(&format!("{}: {}", o.file, o.name)),
            xml_escape(&o.file),
            o.seconds
        ));
        if let Some(why) = &o.skipped {
            x.push_str(&format!(
                "      <skipped message=\"{}\"/>\n",
                xml_escape(why)
            ));
        }
        if let Some(f) = &o.failure {
            x.push_str(&format!(
                "      <failure message=\"{}\" type=\"ScenarioFailed\">{}</failure>\n",
                xml_escape(&f.message),
                xml_escape(&o.failure_text())
            ));
        }
        x.push_str("    </testcase>\n");
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
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

    #[test]
    fn junit_escapes_and_counts() {
        let o = Outcome {
            file: "a.toml".into(),
            name: "x <y> & \"z\"".into(),
            passed: false,
            skipped: None,
            seconds: 1.5,
            steps: 2,
            steps_passed: 1,
            seed: 1,
            failure: Some(Failure {
                step: 2,
                line: 9,
                action: "expect".into(),
                note: None,
                message: "expected 0, got 5 <bad>".into(),
                timeline: vec!["1.00s a".into()],
            }),
        };
        let skipped = Outcome {
            file: "b.toml".into(),
            name: "b".into(),
            passed: true,
            skipped: Some("cannot run on --target sim: cluster.tls".into()),
            failure: None,
            ..o.clone()
        };
        let x = junit(&[o.clone(), skipped.clone()]);
        assert!(x.contains("tests=\"2\" failures=\"1\""));
        assert!(x.contains("skipped=\"1\""));
        assert!(x.contains("<skipped message=\"cannot run on --target sim: cluster.tls\"/>"));
        assert!(x.contains("x &lt;y&gt; &amp; &quot;z&quot;"));
        assert!(x.contains("expected 0, got 5 &lt;bad&gt;"));
        assert!(!x.contains("<bad>"));
        let t = table(&[o, skipped]);
        assert!(t.contains(" SKIP "), "{t}");
        assert!(
            t.contains("0 passed, 1 failed, 1 skipped (they run on another target)"),
            "{t}"
        );
    }
}
