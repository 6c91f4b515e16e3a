//! Runs scenarios: each on its own pair of real processes (own ports, own logs), step by step,
//! with progress as it goes. A failure shows what was expected, what was found, and the recent
//! timeline. Everything is stopped afterwards, whatever happened.
//!
//! After the last step, the rules every run keeps are checked (`failover_scenario::invariants`).
//!
//! Split by job: [`play`] starts a stage and walks the steps, [`act`] carries out each action,
//! [`check`] checks conditions and the rules, [`report`] writes the table and JUnit XML.

mod act;
mod check;
mod play;
mod report;

pub use report::{junit, table};

use play::{play, play_on_sim};

use std::path::{Path, PathBuf};

use failover_core::timespan::format_timespan;
use futures::StreamExt;
use serde::Serialize;

use crate::{
    cluster::{Cluster, ClusterProtocol, ClusterSpec, SourceFaultTarget},
    observe::{Observer, Timeline},
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
    /// Egress every scenario this way instead of the file's own (`cluster.egress`).
    pub egress: Option<failover_scenario::cluster::ClusterEgress>,
    /// Collect this way in every scenario instead of the file's own (`cluster.source_protocol`).
    pub source_protocol: Option<failover_scenario::cluster::ClusterSource>,
    /// Run every scenario's adapters with this failover design instead of the file's own
    /// (`cluster.behaviour`); the vendor's brings its wires (OMF out, the REST API).
    pub behaviour: Option<failover_core::Behaviour>,
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
    /// It ran and passed (false when it was skipped: see [`Outcome::failed`]).
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
    /// The endpoint's audit when the story ended (None: skipped, or not read).
    pub audit: Option<AuditTally>,
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
    /// It ran and failed (or could not start): neither passed nor skipped.
    pub fn failed(&self) -> bool {
        !self.passed && self.skipped.is_none()
    }

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
                        audit: None,
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
    if let Some(b) = opts.behaviour {
        spec.behaviour = b;
        if b == failover_core::Behaviour::Vendor {
            spec.egress = failover_scenario::cluster::ClusterEgress::Omf;
            spec.failover_protocol = ClusterProtocol::Rest;
        }
    }
    if let Some(p) = opts.failover_protocol {
        spec.failover_protocol = p;
    }
    if let Some(e) = opts.egress {
        spec.egress = e;
    }
    if let Some(p) = opts.source_protocol {
        spec.source_protocol = p;
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
        audit: None,
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
    let refusal = match &opts.target {
        RunTarget::Processes => {
            crate::cluster::refusal(&spec).or_else(|| crate::cluster::steps_refusal(s, &spec))
        }
        RunTarget::Compose(_) => crate::stage::compose::refusal(s, &spec),
        RunTarget::Sim { .. } => crate::stage::sim::refusal(s, &spec),
    };
    if let Some(why) = refusal {
        let stage = target.split(',').next().unwrap_or_default();
        progress(&format!(
            "[{tag}] SKIP: cannot run on --target {stage}: {why}"
        ));
        outcome.skipped = Some(format!("cannot run on --target {stage}: {why}"));
        return outcome;
    }
    let started_stage = match &opts.target {
        RunTarget::Sim { seeds } => {
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
                Some(p) => Ok(p),
                None => {
                    outcome.skipped = Some("--seeds 0: nothing ran".into());
                    return outcome;
                }
            }
        }
        RunTarget::Processes => match Cluster::start(spec.clone()).await {
            Ok(cluster) => Ok(play(cluster, s, &tag, progress).await),
            Err(e) => Err(e),
        },
        RunTarget::Compose(dir) => {
            match crate::stage::compose::ComposeStage::start(spec.clone(), dir).await {
                Ok(stage) => Ok(play(stage, s, &tag, progress).await),
                Err(e) => Err(e),
            }
        }
    };
    let played = match started_stage {
        Ok(played) => played,
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
    };
    outcome.steps_passed = played.steps_passed;
    outcome.audit = played.audit;
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

/// What a scenario's steps came to on a stage.
struct Played {
    result: Result<(), Failure>,
    steps_passed: usize,
    timeline: Timeline,
    /// The endpoint's audit after the last step (None: not read).
    audit: Option<AuditTally>,
}

/// What the endpoint held for the group when the story ended: its audit's totals, over every
/// stream from its first point to its last.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AuditTally {
    /// Points the endpoint should hold.
    pub expected: u64,
    /// Distinct points it holds.
    pub received: u64,
    /// Expected and not held.
    pub lost: u64,
    /// Received more than once.
    pub duplicated: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The library's files, by name, from the crate's folder.
    fn library(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scenarios")
            .join(name)
    }

    fn options(target: RunTarget) -> RunOptions {
        RunOptions {
            seed: None,
            keep_logs: None,
            jobs: 1,
            target,
            report_dir: None,
            failover_protocol: None,
            egress: None,
            source_protocol: None,
            behaviour: None,
        }
    }

    /// A scenario a stage cannot run is skipped with its reason before anything starts, on
    /// every stage, and is counted as skipped: never as a pass, never as a failure.
    #[tokio::test]
    async fn a_skipped_scenario_counts_as_skipped_never_as_passed() {
        let on_opcua = RunOptions {
            source_protocol: Some(failover_scenario::cluster::ClusterSource::OpcUa),
            ..options(RunTarget::Processes)
        };
        let on_vendor = RunOptions {
            behaviour: Some(failover_core::Behaviour::Vendor),
            ..options(RunTarget::Processes)
        };
        let cases = [
            (
                "hot-primary-killed.toml",
                on_vendor,
                "takeover_within: the vendor's behaviour writes OMF with no epoch",
            ),
            (
                "tls-unchecked-certificate.toml",
                options(RunTarget::Sim { seeds: 1 }),
                "cannot run on --target sim: cluster.tls",
            ),
            (
                "misconfigured-members-and-intruders.toml",
                options(RunTarget::Compose(PathBuf::from("/nonexistent"))),
                "the compose file runs the pair's two adapters only",
            ),
            (
                "degraded-primary-keeps-role.toml",
                on_opcua,
                "line 17: fail source component 2 for the Primary: a source fault for one adapter alone",
            ),
        ];
        for (file, opts, why) in cases {
            let outcomes = run_all(&[library(file)], &opts, &|_| {}).await;
            let o = &outcomes[0];
            let reason = o.skipped.as_deref().unwrap_or_default();
            assert!(reason.contains(why), "{file}: {reason:?}");
            assert!(!o.passed && !o.failed(), "{file}: {o:?}");
            let t = table(&outcomes);
            assert!(t.contains("0 passed, 0 failed, 1 skipped"), "{t}");
            assert!(junit(&outcomes).contains("failures=\"0\" errors=\"0\" skipped=\"1\""));
        }
    }
}
