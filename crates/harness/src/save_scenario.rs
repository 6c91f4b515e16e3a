//! `failover-lab sim --seed S --save-scenario FILE`: a failing seeded run, written as a
//! scenario file anyone can read and rerun on any stage.
//!
//! The run's fault schedule becomes steps (a crash a `kill` and a `restart`, a partition a
//! `blackhole_link` and a `heal_link`, ...), ending with the broken invariant as the last
//! expectation (`expect = { invariants = [N] }`). The story is then shrunk on the simulator
//! (`run --target sim`, the seed's own jitter): faults are dropped, and faults and waits
//! shortened, as long as the story still breaks the same rule. What is left is the smallest
//! story this search found, and it is checked once more before it is written.
//!
//! Only the rules every run keeps ([`failover_scenario::invariants`]) can end a story; the
//! simulator's others depend on its own schedule. Fault kinds the scenario language has no
//! step for (a twin, a standalone adapter, a deleted group, ...) are left out, and a run that
//! breaks its rule only with them is refused, naming them.

use std::{path::Path, time::Duration};

use failover_core::timespan::format_timespan;
use failover_scenario::invariants::RULES;
use failover_sim::{Broken, Fault, FaultKind};

use crate::runner::{self, RunOptions, RunTarget};

/// Most simulator runs the shrinking may take.
const MAX_TRIES: usize = 200;

/// The shortest a fault or a wait is shrunk to.
const SHORTEST: Duration = Duration::from_millis(200);

/// One fault of the story, in time from the first step.
#[derive(Debug, Clone)]
struct Told {
    kind: FaultKind,
    adapter: String,
    start: Duration,
    lasts: Duration,
    outbound: bool,
    variant: bool,
    latency: Duration,
}

/// The story being shrunk.
#[derive(Debug, Clone)]
struct Story {
    seed: u64,
    mode: failover_core::Mode,
    failover_timeout: Duration,
    broken: Broken,
    rule: u8,
    what: String,
    faults: Vec<Told>,
    settle: Duration,
}

/// Writes the failing run `o` as a shrunk scenario file at `path`; returns a summary of what
/// was written. `progress` gets a line per shrinking step.
pub async fn save(
    o: &failover_sim::Outcome,
    path: &Path,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<String> {
    let Some(violation) = o.violations.iter().find(|v| RULES.contains(&v.rule)) else {
        if o.violations.is_empty() {
            anyhow::bail!(
                "seed {} broke no invariant: nothing to save",
                o.options.seed
            );
        }
        let rules: Vec<String> = o.violations.iter().map(|v| v.rule.to_string()).collect();
        anyhow::bail!(
            "seed {} broke rule(s) {} only, which are checked against the simulator's own fault schedule; a scenario file can end with rules {} (see failover_scenario::invariants)",
            o.options.seed,
            rules.join(", "),
            RULES.map(|r| r.to_string()).join(", ")
        );
    };
    let start = o
        .options
        .faults_start()
        .saturating_sub(Duration::from_secs(1));
    let (sayable, unsayable): (Vec<&Fault>, Vec<&Fault>) =
        o.faults.iter().partition(|f| has_steps(f.kind));
    let mut story = Story {
        seed: o.options.seed,
        mode: o.options.mode,
        failover_timeout: o.options.failover_timeout,
        broken: o.options.broken,
        rule: violation.rule,
        what: violation.what.clone(),
        faults: sayable
            .iter()
            .map(|f| Told {
                kind: f.kind,
                adapter: f.adapter.to_string(),
                start: f.at.saturating_sub(start),
                lasts: f.lasts,
                outbound: f.outbound,
                variant: f.variant,
                latency: f.latency,
            })
            .collect(),
        settle: o.options.failover_timeout * 3 + Duration::from_secs(10),
    };
    progress(&format!(
        "saving seed {}: [rule {}] {}; {} fault(s), {} of them with no scenario step{}",
        story.seed,
        story.rule,
        story.what,
        o.faults.len(),
        unsayable.len(),
        if unsayable.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                unsayable
                    .iter()
                    .map(|f| format!("{:?}", f.kind))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    ));
    let mut tries = 0;
    // The first of the rules the run broke that the story breaks too (a run that broke rules 2
    // and 5 may break only 5 when told from the story's start).
    let mut tried = Vec::new();
    let mut reproduced = false;
    for v in o.violations.iter().filter(|v| RULES.contains(&v.rule)) {
        if tried.contains(&v.rule) {
            continue;
        }
        tried.push(v.rule);
        story.rule = v.rule;
        story.what.clone_from(&v.what);
        if breaks(&story, &mut tries).await? {
            reproduced = true;
            break;
        }
    }
    if !reproduced {
        anyhow::bail!(
            "told as a scenario file, seed {} no longer breaks rule {}: {}",
            story.seed,
            tried
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(" or "),
            if unsayable.is_empty() {
                "the story's setup differs from the seeded run's (see the file's steps with --target sim)".to_string()
            } else {
                format!(
                    "it needs faults the scenario language has no step for ({})",
                    unsayable
                        .iter()
                        .map(|f| format!("{:?}", f.kind))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
    }
    // Fewest faults: drop each while the rule still breaks.
    let mut i = 0;
    while i < story.faults.len() && tries < MAX_TRIES {
        let mut fewer = story.clone();
        fewer.faults.remove(i);
        if breaks(&fewer, &mut tries).await? {
            story = fewer;
            progress(&format!("  {} fault(s) left", story.faults.len()));
        } else {
            i += 1;
        }
    }
    // Shortest waits: halve each fault's start and length, and the settling, while it still
    // breaks.
    let mut shrunk = true;
    while shrunk && tries < MAX_TRIES {
        shrunk = false;
        for i in 0..story.faults.len() {
            for part in [0, 1] {
                let mut shorter = story.clone();
                let d = if part == 0 {
                    &mut shorter.faults[i].start
                } else {
                    &mut shorter.faults[i].lasts
                };
                if *d <= SHORTEST {
                    continue;
                }
                *d = (*d / 2).max(SHORTEST);
                if tries < MAX_TRIES && breaks(&shorter, &mut tries).await? {
                    story = shorter;
                    shrunk = true;
                }
            }
        }
        if story.settle > SHORTEST {
            let mut shorter = story.clone();
            shorter.settle = (shorter.settle / 2).max(SHORTEST);
            if tries < MAX_TRIES && breaks(&shorter, &mut tries).await? {
                story = shorter;
                shrunk = true;
            }
        }
    }
    let text = render(&story);
    // The file as written must fail as promised.
    if !breaks(&story, &mut tries).await? {
        anyhow::bail!("the shrunk story no longer breaks rule {}", story.rule);
    }
    std::fs::write(path, &text)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(format!(
        "wrote {}: {} fault(s), {} steps, breaking rule {} (shrunk in {tries} simulator runs); rerun it with\n  failover-lab run --target sim --seeds 1 {p}\n  failover-lab run {p}",
        path.display(),
        story.faults.len(),
        steps(&story).len(),
        story.rule,
        p = path.display()
    ))
}

/// True when the story, run once on the simulator with its seed, fails with its rule.
async fn breaks(story: &Story, tries: &mut usize) -> anyhow::Result<bool> {
    *tries += 1;
    let text = render(story);
    let path = Path::new("saved-seed.toml");
    let s = failover_scenario::parse("saved-seed.toml", &text, path)
        .map_err(|e| anyhow::anyhow!("the story does not parse (a bug): {e}\n{text}"))?;
    let opts = RunOptions {
        jobs: 1,
        target: RunTarget::Sim { seeds: 1 },
        ..RunOptions::default()
    };
    let quiet = |_: &str| {};
    let o = runner::run_scenario(&s, &opts, &quiet).await;
    let needle = format!("[rule {}]", story.rule);
    Ok(o.failure.is_some_and(|f| f.message.contains(&needle)))
}

/// True when the scenario language has steps to start and end a fault of this kind (every
/// kind has, since the operator steps).
fn has_steps(kind: FaultKind) -> bool {
    FaultKind::ALL.contains(&kind)
}

/// The standalone adapter's name in a story.
const STANDALONE: &str = "adapter-s";

/// How far ahead an intruder's epoch goes in a story (as in the simulator).
const EPOCH_AHEAD: u64 = 5;

/// The steps that start a fault, and those that end it.
fn fault_steps(
    f: &Told,
    mode: failover_core::Mode,
    timeout: Duration,
) -> (Vec<String>, Vec<String>) {
    let a = &f.adapter;
    let link = |service: &str| format!("between = [\"{a}\", \"{service}\"]");
    let heal = |service: &str| vec![format!("heal_link = {{ {} }}", link(service))];
    let other = match mode {
        failover_core::Mode::Hot => "Warm",
        failover_core::Mode::Warm => "Cold",
        failover_core::Mode::Cold => "Hot",
    };
    let one = |s: String| vec![s];
    match f.kind {
        FaultKind::Crash => (
            one(format!("kill = \"{a}\"")),
            one(format!("restart = \"{a}\"")),
        ),
        FaultKind::Pause => (
            one(format!("pause = \"{a}\"")),
            one(format!("resume = \"{a}\"")),
        ),
        FaultKind::Partition => (
            one(format!("blackhole_link = {{ {} }}", link("arbiter"))),
            heal("arbiter"),
        ),
        FaultKind::OneWayPartition => {
            let between = if f.outbound {
                link("arbiter")
            } else {
                format!("between = [\"arbiter\", \"{a}\"]")
            };
            (
                one(format!(
                    "cut_link = {{ {between}, direction = \"one-way\" }}"
                )),
                heal("arbiter"),
            )
        }
        FaultKind::EndpointLink => (
            one(format!("blackhole_link = {{ {} }}", link("endpoint"))),
            heal("endpoint"),
        ),
        FaultKind::Latency => (
            one(format!(
                "link_latency = {{ {}, ms = {} }}",
                link("arbiter"),
                f.latency.as_millis()
            )),
            heal("arbiter"),
        ),
        FaultKind::SourceOutage => (
            one("source_outage = {}".into()),
            one("source_restore = {}".into()),
        ),
        FaultKind::EndpointOutage => (
            one("endpoint_outage = true".into()),
            one("endpoint_outage = false".into()),
        ),
        FaultKind::ArbiterRestart | FaultKind::ArbiterOutage => (
            one("kill = \"arbiter\"".into()),
            one("restart = \"arbiter\"".into()),
        ),
        FaultKind::ModeSwitch => (
            one(format!(
                "set_config = {{ adapter = \"{a}\", mode = \"{other}\" }}"
            )),
            one(format!(
                "set_config = {{ adapter = \"{a}\", mode = \"{}\" }}",
                mode.as_str()
            )),
        ),
        FaultKind::RoleOverride if f.variant => (
            vec![
                format!("pause = \"{a}\""),
                format!("role_override = {{ adapter = \"{a}\", role = \"Primary\" }}"),
            ],
            vec![
                format!("role_override = {{ adapter = \"{a}\", role = \"none\" }}"),
                format!("resume = \"{a}\""),
            ],
        ),
        FaultKind::RoleOverride => {
            // Until cleared, or expiring at the fault's end.
            let expires = if f.outbound {
                String::new()
            } else {
                format!(", expiration = \"{}\"", format_timespan(f.lasts))
            };
            (
                one(format!(
                    "role_override = {{ adapter = \"{a}\", role = \"Primary\"{expires} }}"
                )),
                if f.outbound {
                    one(format!(
                        "role_override = {{ adapter = \"{a}\", role = \"none\" }}"
                    ))
                } else {
                    Vec::new()
                },
            )
        }
        FaultKind::GracefulStop => (
            one(format!("stop = \"{a}\"")),
            one(format!("restart = \"{a}\"")),
        ),
        FaultKind::TimeoutChange => (
            one(format!(
                "change_failover_timeout = \"{}\"",
                format_timespan(timeout * 2)
            )),
            one(format!(
                "change_failover_timeout = \"{}\"",
                format_timespan(timeout)
            )),
        ),
        FaultKind::SessionDelete => (one(format!("delete_session = \"{a}\"")), Vec::new()),
        FaultKind::GroupDelete => (one("delete_group = true".into()), Vec::new()),
        FaultKind::RestartChanged => (
            vec![
                format!("kill = \"{a}\""),
                format!("restart = {{ adapter = \"{a}\", mode = \"{other}\" }}"),
            ],
            vec![format!("kill = \"{a}\""), format!("restart = \"{a}\"")],
        ),
        FaultKind::Unregister => (
            one(format!("unregister = \"{a}\"")),
            one(format!("register = \"{a}\"")),
        ),
        FaultKind::Twin => (
            one(format!("start_twin = \"{a}\"")),
            one(format!("stop_twin = \"{a}\"")),
        ),
        FaultKind::Standalone => (
            one(format!("start_standalone = \"{STANDALONE}\"")),
            one(format!("stop_standalone = \"{STANDALONE}\"")),
        ),
        FaultKind::EpochAhead if f.variant => (
            one(format!("member_ahead = {EPOCH_AHEAD}")),
            one("member_ahead = 0".into()),
        ),
        FaultKind::EpochAhead => (one(format!("fence_ahead = {EPOCH_AHEAD}")), Vec::new()),
    }
}

/// The story's steps after the setup, in time order: each a `run_for` to its moment, then
/// the fault step; then the settling and the expectation.
fn steps(story: &Story) -> Vec<String> {
    let mut events: Vec<(Duration, usize, bool, String)> = Vec::new();
    for (i, f) in story.faults.iter().enumerate() {
        let (start, end) = fault_steps(f, story.mode, story.failover_timeout);
        for step in start {
            events.push((f.start, i, true, step));
        }
        for step in end {
            events.push((f.start + f.lasts, i, false, step));
        }
    }
    events.sort_by_key(|(at, i, start, _)| (*at, *i, !*start));
    let mut out = Vec::new();
    let mut now = Duration::ZERO;
    for (at, _, _, step) in events {
        if at > now {
            out.push(format!("run_for = \"{}\"", format_timespan(at - now)));
            now = at;
        }
        out.push(step);
    }
    out.push(format!("run_for = \"{}\"", format_timespan(story.settle)));
    out.push(format!("expect = {{ invariants = [{}] }}", story.rule));
    out
}

fn broken_names(broken: Broken) -> Vec<&'static str> {
    broken.rules().iter().map(|r| r.name()).collect()
}

/// The story as a scenario file.
fn render(story: &Story) -> String {
    let mut t = String::new();
    t.push_str(&format!(
        "name = \"Seed {} ({} mode) breaks rule {}\"\n",
        story.seed,
        story.mode.as_str(),
        story.rule
    ));
    t.push_str(&format!(
        "story = \"\"\"\nSaved by failover-lab sim --seed {}{} --save-scenario, shrunk to the fewest faults and\nshortest waits found that still break the same rule. The simulator saw:\n[rule {}] {}\n\"\"\"\nseed = {}\n\n",
        story.seed,
        if story.broken.is_none() {
            String::new()
        } else {
            format!(" --break {}", broken_names(story.broken).join(","))
        },
        story.rule,
        story.what.replace('\\', "\\\\").replace("\"\"\"", "\" \" \""),
        story.seed
    ));
    t.push_str(&format!(
        "[cluster]\nmode = \"{}\"\nfailover_timeout = \"{}\"\n# The simulator's seeded adapters keep their buffer in memory.\ndisk_buffer = false\n",
        story.mode.as_str(),
        format_timespan(story.failover_timeout)
    ));
    match broken_names(story.broken).as_slice() {
        [] => {}
        [one] => t.push_str(&format!("break = \"{one}\"\n")),
        many => t.push_str(&format!(
            "break = [{}]\n",
            many.iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    t.push_str("\n[[step]]\nwait_until = { primary = \"any\" }\n");
    for step in steps(story) {
        t.push_str(&format!("\n[[step]]\n{step}\n"));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn story(faults: Vec<Told>) -> Story {
        Story {
            seed: 7,
            mode: failover_core::Mode::Hot,
            failover_timeout: Duration::from_secs(2),
            broken: Broken::of([failover_sim::BrokenRule::EpochCheck]),
            rule: 5,
            what: "240 points duplicated".into(),
            faults,
            settle: Duration::from_secs(3),
        }
    }

    fn told(kind: FaultKind, start_ms: u64, lasts_ms: u64) -> Told {
        Told {
            kind,
            adapter: "adapter-a".into(),
            start: Duration::from_millis(start_ms),
            lasts: Duration::from_millis(lasts_ms),
            outbound: true,
            variant: false,
            latency: Duration::from_millis(300),
        }
    }

    /// Every kind of fault the simulator draws (the operator's too) renders into steps of a
    /// file that parses, each variant included.
    #[test]
    fn every_fault_kind_renders_into_a_file_that_parses() {
        let mut faults = Vec::new();
        for (i, kind) in FaultKind::ALL.into_iter().enumerate() {
            for variant in [false, true] {
                let mut f = told(kind, 2000 * (2 * i as u64 + u64::from(variant)), 500);
                f.variant = variant;
                faults.push(f);
            }
        }
        let st = story(faults.clone());
        let text = render(&st);
        let s = failover_scenario::parse("t.toml", &text, Path::new("t.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        // The setup; per fault a wait, its start steps, and (if it has any) a wait and its end
        // steps (the first starts at once: no wait before it); the settling and the
        // expectation.
        let per_fault: usize = faults
            .iter()
            .map(|f| {
                let (start, end) = fault_steps(f, st.mode, st.failover_timeout);
                assert!(!start.is_empty(), "{:?} has no step", f.kind);
                1 + start.len() + if end.is_empty() { 0 } else { 1 + end.len() }
            })
            .sum();
        assert_eq!(s.steps.len(), 1 + per_fault - 1 + 2, "{text}");
        assert!(s.cluster.broken.has(failover_sim::BrokenRule::EpochCheck));
        assert!(text.ends_with("expect = { invariants = [5] }\n"), "{text}");
        for words in [
            "change_failover_timeout",
            "delete_session",
            "delete_group",
            "restart = { adapter",
            "unregister",
            "start_twin",
            "start_standalone",
            "fence_ahead",
            "member_ahead",
        ] {
            assert!(text.contains(words), "{words} missing:\n{text}");
        }
    }

    #[test]
    fn overlapping_faults_interleave_in_time_order() {
        let text = render(&story(vec![
            told(FaultKind::Crash, 0, 3000),
            told(FaultKind::EndpointOutage, 1000, 500),
        ]));
        let kill = text.find("kill = ").unwrap_or(usize::MAX);
        let outage = text.find("endpoint_outage = true").unwrap_or(usize::MAX);
        let back = text.find("endpoint_outage = false").unwrap_or(usize::MAX);
        let restart = text.find("restart = ").unwrap_or(usize::MAX);
        assert!(kill < outage && outage < back && back < restart, "{text}");
    }
}
