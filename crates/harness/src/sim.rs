//! `failover-lab sim`: runs seeded simulations ([`failover_sim`]) on every core, shows progress,
//! and reports runs, simulated time, faults by kind and broken invariants, with each failing
//! seed's schedule and timeline up to the violation and the command that replays it.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use failover_core::Mode;
use failover_sim::{Broken, FaultKind, Outcome, SimOptions, Swarm};

/// What to run.
#[derive(Debug, Clone)]
pub struct SimPlan {
    /// The seeds.
    pub seeds: Vec<u64>,
    /// Modes, taken in turn by seed (seed % modes).
    pub modes: Vec<Mode>,
    /// Fault kinds to draw from (the pool).
    pub pool: Vec<FaultKind>,
    /// Whether each seed draws a mix of its own from the pool.
    pub swarm: Swarm,
    /// Rules broken on purpose.
    pub broken: Broken,
    /// Threads.
    pub jobs: usize,
}

impl SimPlan {
    /// The options of one seed.
    pub fn options(&self, seed: u64) -> SimOptions {
        let mode = self.modes[usize::try_from(seed).unwrap_or(0) % self.modes.len().max(1)];
        let mut o = SimOptions::with_pool(seed, mode, &self.pool, self.swarm);
        o.broken = self.broken;
        o
    }
}

/// The totals of a set of runs.
#[derive(Debug, Default)]
pub struct Summary {
    /// Runs done.
    pub runs: usize,
    /// Simulated time, summed.
    pub simulated: Duration,
    /// Wall time of the whole set.
    pub wall: Duration,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, usize>,
    /// Violations, by rule.
    pub violations: BTreeMap<u8, usize>,
    /// The runs that broke an invariant.
    pub failing: Vec<Outcome>,
    /// With a single seed: its run, failing or not.
    pub single: Option<Outcome>,
}

/// Runs every seed of `plan` on `plan.jobs` threads, calling `progress` after each run.
pub fn run(plan: &SimPlan, progress: &(dyn Fn(&Summary) + Sync)) -> Summary {
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let summary = Mutex::new(Summary::default());
    std::thread::scope(|scope| {
        for _ in 0..plan.jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(seed) = plan.seeds.get(i) else {
                        return;
                    };
                    let outcome = failover_sim::run(&plan.options(*seed));
                    let mut s = summary.lock().unwrap_or_else(PoisonError::into_inner);
                    s.runs += 1;
                    s.simulated += outcome.simulated;
                    s.wall = started.elapsed();
                    for f in &outcome.faults {
                        *s.faults.entry(f.kind.name()).or_default() += 1;
                    }
                    for v in &outcome.violations {
                        *s.violations.entry(v.rule).or_default() += 1;
                    }
                    if plan.seeds.len() == 1 {
                        s.single = Some(outcome.clone());
                    }
                    if !outcome.violations.is_empty() {
                        s.failing.push(outcome);
                    }
                    progress(&s);
                }
            });
        }
    });
    let mut s = summary.into_inner().unwrap_or_else(PoisonError::into_inner);
    s.wall = started.elapsed();
    s.failing.sort_by_key(|o| o.options.seed);
    s
}

/// One line of progress.
pub fn progress_line(s: &Summary, total: usize) -> String {
    let width = 30;
    let done = (s.runs * width).checked_div(total).unwrap_or(width);
    format!(
        "[{}{}] {}/{} runs, {} failing, {:.1} runs/s, {:.0}x real time",
        "#".repeat(done),
        "-".repeat(width - done),
        s.runs,
        total,
        s.failing.len(),
        s.runs as f64 / s.wall.as_secs_f64().max(1e-9),
        s.simulated.as_secs_f64() / s.wall.as_secs_f64().max(1e-9)
    )
}

/// The fault kinds a run's schedule injected, sorted and named: the subset its failure is
/// grouped by.
pub fn subset(o: &Outcome) -> Vec<&'static str> {
    let mut kinds: Vec<FaultKind> = o.faults.iter().map(|f| f.kind).collect();
    kinds.sort();
    kinds.dedup();
    kinds.into_iter().map(FaultKind::name).collect()
}

/// The failing runs grouped: by rule (the seeds that broke it) and by fault subset (the seeds
/// whose schedules injected exactly those kinds, and the rules they broke).
#[derive(Debug, Default, PartialEq)]
pub struct Grouped {
    /// Rule -> failing seeds.
    pub by_rule: BTreeMap<u8, Vec<u64>>,
    /// Fault kinds -> (failing seeds, the rules they broke).
    pub by_subset: BTreeMap<Vec<&'static str>, (Vec<u64>, std::collections::BTreeSet<u8>)>,
}

/// Groups the failing runs of a campaign.
pub fn grouped(s: &Summary) -> Grouped {
    let mut g = Grouped::default();
    for o in &s.failing {
        let seed = o.options.seed;
        let mut rules: Vec<u8> = o.violations.iter().map(|v| v.rule).collect();
        rules.sort_unstable();
        rules.dedup();
        for r in &rules {
            g.by_rule.entry(*r).or_default().push(seed);
        }
        let entry = g.by_subset.entry(subset(o)).or_default();
        entry.0.push(seed);
        entry.1.extend(rules);
    }
    g
}

/// The summary in words.
pub fn summary_text(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} runs, {:.2} simulated hours in {:.1} s ({:.1} runs/s, {:.0}x faster than real time)",
        s.runs,
        s.simulated.as_secs_f64() / 3600.0,
        s.wall.as_secs_f64(),
        s.runs as f64 / s.wall.as_secs_f64().max(1e-9),
        s.simulated.as_secs_f64() / s.wall.as_secs_f64().max(1e-9)
    );
    let faults: Vec<String> = s.faults.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(out, "faults injected: {}", faults.join(", "));
    if s.violations.is_empty() {
        let _ = writeln!(out, "invariant violations: none");
        return out;
    }
    let v: Vec<String> = s
        .violations
        .iter()
        .map(|(rule, n)| format!("rule {rule}: {n}"))
        .collect();
    let _ = writeln!(
        out,
        "invariant violations: {} in {} runs ({})",
        s.violations.values().sum::<usize>(),
        s.failing.len(),
        v.join(", ")
    );
    let seeds: Vec<String> = s
        .failing
        .iter()
        .map(|o| format!("{} ({})", o.options.seed, o.options.mode.as_str()))
        .collect();
    let _ = writeln!(out, "failing seeds: {}", seeds.join(", "));
    let g = grouped(s);
    let _ = writeln!(out, "by rule:");
    for (rule, seeds) in &g.by_rule {
        let _ = writeln!(
            out,
            "  rule {rule:<3} {} seed(s): {}",
            seeds.len(),
            few(seeds)
        );
    }
    let _ = writeln!(out, "by fault subset (the kinds each schedule injected):");
    let mut subsets: Vec<_> = g.by_subset.iter().collect();
    subsets.sort_by_key(|(kinds, (seeds, _))| (std::cmp::Reverse(seeds.len()), (*kinds).clone()));
    for (kinds, (seeds, rules)) in subsets {
        let rules: Vec<String> = rules.iter().map(u8::to_string).collect();
        let _ = writeln!(
            out,
            "  {} seed(s), rule {}: {}: {}",
            seeds.len(),
            rules.join(", "),
            if kinds.is_empty() {
                "no fault".to_string()
            } else {
                kinds.join(" + ")
            },
            few(seeds)
        );
    }
    out
}

/// At most ten seeds, and how many more.
fn few(seeds: &[u64]) -> String {
    let shown: Vec<String> = seeds.iter().take(10).map(u64::to_string).collect();
    if seeds.len() > shown.len() {
        format!(
            "{} and {} more",
            shown.join(", "),
            seeds.len() - shown.len()
        )
    } else {
        shown.join(", ")
    }
}

/// One run as JSON: its options and mix, its schedule, what the endpoint holds, the ticks
/// nobody delivered, the broken rules, and the command that replays it.
pub fn outcome_json(o: &Outcome, replay: &str) -> serde_json::Value {
    use serde_json::json;
    let opt = &o.options;
    let quarters = |(lo, hi): (u32, u32)| json!([f64::from(lo) / 4.0, f64::from(hi) / 4.0]);
    json!({
        "seed": opt.seed,
        "mode": opt.mode.as_str(),
        "failover_timeout_ms": opt.failover_timeout.as_millis(),
        "broken": opt.broken.rules().iter().map(|r| r.name()).collect::<Vec<_>>(),
        "mix": {
            "kinds": opt.mix.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
            "lasts_x_failover_timeout": quarters(opt.mix.lasts),
            "gap_x_failover_timeout": quarters(opt.mix.gap),
        },
        "faults": o.faults.iter().map(|f| json!({
            "kind": f.kind.name(),
            "adapter": f.adapter,
            "at_s": f.at.as_secs_f64(),
            "lasts_s": f.lasts.as_secs_f64(),
            "text": f.to_string().trim(),
        })).collect::<Vec<_>>(),
        "simulated_s": o.simulated.as_secs_f64(),
        "wall_s": o.wall.as_secs_f64(),
        "audit": o.audit.as_ref().map(|a| json!({
            "received": a.received,
            "lost": a.lost,
            "duplicated": a.duplicated,
            "out_of_order": a.out_of_order,
            "writers": a.writers.iter().map(|w| json!({
                "adapter": w.adapter_id, "epoch": w.epoch, "accepted": w.accepted,
            })).collect::<Vec<_>>(),
        })),
        "holes": holes(o).iter().map(|h| json!({
            "first_seq": h.seqs.0, "last_seq": h.seqs.1,
            "from_s": h.at.0.as_secs_f64(), "to_s": h.at.1.as_secs_f64(),
            "after": h.between.0, "before": h.between.1,
        })).collect::<Vec<_>>(),
        "violations": o.violations.iter().map(|v| json!({
            "rule": v.rule, "at_s": v.at.map(|t| t.as_secs_f64()), "what": v.what,
        })).collect::<Vec<_>>(),
        "replay": replay,
    })
}

/// A campaign as JSON: totals, faults by kind, violations by rule, the failing runs in full,
/// grouped by rule and by fault subset, and with one seed its run in full.
pub fn summary_json(s: &Summary, plan: &SimPlan) -> serde_json::Value {
    use serde_json::json;
    let g = grouped(s);
    let wall = s.wall.as_secs_f64().max(1e-9);
    json!({
        "runs": s.runs,
        "simulated_s": s.simulated.as_secs_f64(),
        "wall_s": s.wall.as_secs_f64(),
        "runs_per_s": s.runs as f64 / wall,
        "times_real_time": s.simulated.as_secs_f64() / wall,
        "pool": plan.pool.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "swarm": plan.swarm == Swarm::On,
        "modes": plan.modes.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        "faults": s.faults,
        "violations": s.violations.iter().map(|(r, n)| (r.to_string(), *n)).collect::<BTreeMap<_, _>>(),
        "failing": s.failing.iter().map(|o| outcome_json(o, &replay_command(o, plan))).collect::<Vec<_>>(),
        "by_rule": g.by_rule.iter().map(|(r, seeds)| (r.to_string(), seeds.clone())).collect::<BTreeMap<_, _>>(),
        "by_subset": g.by_subset.iter().map(|(kinds, (seeds, rules))| json!({
            "kinds": kinds, "seeds": seeds, "rules": rules,
        })).collect::<Vec<_>>(),
        "run": s.single.as_ref().map(|o| outcome_json(o, &replay_command(o, plan))),
    })
}

/// A run in full: options, schedule, timeline up to the first violation (or all of it), the
/// audit, the violations, and how to replay it.
pub fn outcome_text(o: &Outcome, replay: &str) -> String {
    let mut out = String::new();
    let opt = &o.options;
    let _ = writeln!(
        out,
        "seed {} · {} · failoverTimeout {} ms · {:.1} s simulated in {:.2} s{}",
        opt.seed,
        opt.mode.as_str(),
        opt.failover_timeout.as_millis(),
        o.simulated.as_secs_f64(),
        o.wall.as_secs_f64(),
        if opt.broken.is_none() {
            String::new()
        } else {
            let names: Vec<&str> = opt.broken.rules().iter().map(|r| r.name()).collect();
            format!(" · broken on purpose: {}", names.join(", "))
        }
    );
    let _ = writeln!(out, "fault mix: {}", opt.mix.describe());
    let _ = writeln!(
        out,
        "schedule ({} faults, all healed by {:.2}s):",
        o.faults.len(),
        opt.faults_end().as_secs_f64()
    );
    for f in &o.faults {
        let _ = writeln!(out, "  {f}");
    }
    let until = o
        .violations
        .iter()
        .filter_map(|v| v.at)
        .min()
        .unwrap_or(o.simulated);
    let _ = writeln!(
        out,
        "timeline (group status changes, up to {:.2}s):",
        until.as_secs_f64()
    );
    for s in o.timeline.iter().filter(|s| s.at() <= until) {
        let live: Vec<String> = s.live().map(|(a, r)| format!("{a} {r}")).collect();
        let _ = writeln!(
            out,
            "  {:7.2}s  epoch {:<3} Primary {:<10} live: {}",
            s.at().as_secs_f64(),
            s.epoch,
            s.primary.as_deref().unwrap_or("none"),
            live.join(", ")
        );
    }
    if let Some(a) = &o.audit {
        let writers: Vec<String> = a
            .writers
            .iter()
            .map(|w| format!("{}@{}: {}", w.adapter_id, w.epoch, w.accepted))
            .collect();
        let _ = writeln!(
            out,
            "endpoint: received {}, lost {}, duplicated {}, out of order {}; writers {}",
            a.received,
            a.lost,
            a.duplicated,
            a.out_of_order,
            writers.join(", ")
        );
    }
    let holes = holes(o);
    if !holes.is_empty() {
        let shown: Vec<String> = holes.iter().take(12).map(Hole::to_string).collect();
        let _ = writeln!(
            out,
            "ticks nobody delivered ({}): {}{}",
            holes.len(),
            shown.join(", "),
            if holes.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        );
    }
    if o.violations.is_empty() {
        let _ = writeln!(out, "every invariant held");
    }
    for v in &o.violations {
        let _ = writeln!(out, "VIOLATION {v}");
    }
    let _ = writeln!(out, "replay: {replay}");
    out
}

/// Source ticks the endpoint holds from nobody, between two it holds: what rule 5 reports as
/// lost (in Warm and Cold, the takeover's gap too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hole {
    /// The first and last tick missing.
    pub seqs: (u64, u64),
    /// Their data times, in simulated time.
    pub at: (Duration, Duration),
    /// Who delivered the tick before and the tick after.
    pub between: (String, String),
}

impl std::fmt::Display for Hole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ticks {}-{} ({:.2}s-{:.2}s, after {}, before {})",
            self.seqs.0,
            self.seqs.1,
            self.at.0.as_secs_f64(),
            self.at.1.as_secs_f64(),
            self.between.0,
            self.between.1
        )
    }
}

/// The holes in a run's coverage, in tick order.
pub fn holes(o: &Outcome) -> Vec<Hole> {
    let Some(audit) = &o.audit else {
        return Vec::new();
    };
    let mut runs: Vec<&failover_proto::v1::CoverageRun> = audit.coverage.iter().collect();
    runs.sort_by_key(|r| r.first_seq);
    let period_ms = 1000 / failover_sim::RATE_HZ;
    let sim_time = |seq: u64| Duration::from_millis(seq.saturating_mul(period_ms));
    runs.windows(2)
        .filter(|w| w[1].first_seq > w[0].last_seq + 1)
        .map(|w| {
            let seqs = (w[0].last_seq + 1, w[1].first_seq - 1);
            Hole {
                seqs,
                at: (sim_time(seqs.0), sim_time(seqs.1)),
                between: (w[0].adapter_id.clone(), w[1].adapter_id.clone()),
            }
        })
        .collect()
}

/// The command that replays a run.
pub fn replay_command(o: &Outcome, plan: &SimPlan) -> String {
    let mut cmd = format!(
        "failover-lab sim --seed {} --modes {}",
        o.options.seed,
        o.options.mode.as_str()
    );
    if plan.pool.len() != FaultKind::ALL.len() {
        let kinds: Vec<&str> = plan.pool.iter().map(|k| k.name()).collect();
        let _ = write!(cmd, " --faults {}", kinds.join(","));
    }
    if plan.swarm == Swarm::Off {
        cmd.push_str(" --swarm off");
    }
    if !plan.broken.is_none() {
        let names: Vec<&str> = plan.broken.rules().iter().map(|r| r.name()).collect();
        cmd.push_str(" --break ");
        cmd.push_str(&names.join(","));
    }
    cmd
}

/// Shared progress printing on stderr. On a terminal: one line redrawn at most every 200 ms,
/// and the last one. Elsewhere (a log file, CI): a plain line every 10 s and the last one, so a
/// log holds no carriage-return frames.
pub fn printer(total: usize) -> impl Fn(&Summary) + Sync {
    use std::io::IsTerminal;
    let terminal = std::io::stderr().is_terminal();
    let every = if terminal {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(10)
    };
    let last = Arc::new(Mutex::new(None::<Instant>));
    move |s: &Summary| {
        let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
        if s.runs == total || last.is_none_or(|t| t.elapsed() > every) {
            *last = Some(Instant::now());
            if terminal {
                eprint!("\r{}", progress_line(s, total));
                if s.runs == total {
                    eprintln!();
                }
            } else {
                eprintln!("{}", progress_line(s, total));
            }
        }
    }
}

/// A seeded run as a recording (`failover-lab sim --seed S --report-dir DIR`): the group's
/// statuses as the simulator's observer saw them, the data flow it sampled, and the faults with
/// their healing, in simulated time.
pub fn recording(o: &Outcome) -> String {
    use crate::observe::{CoverageSpan, Event, Timeline};
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    // The story as the one narrator told it, and each fault with its healing.
    let mut events = o.events.clone();
    for f in &o.faults {
        let what = f.what();
        events.push(Event {
            at_ms: ms(f.at + f.lasts),
            kind: "step".into(),
            text: format!("healed: {what}"),
        });
        events.push(Event {
            at_ms: ms(f.at),
            kind: "fault".into(),
            text: what,
        });
    }
    events.sort_by_key(|e| e.at_ms);
    // Who delivered each tick, on the run's time axis (a simulation starts at the source's
    // origin).
    let origin_ms = failover_sim::world::EPOCH_UNIX_US as f64 / 1000.0;
    let coverage = o
        .audit
        .iter()
        .flat_map(|a| &a.coverage)
        .map(|r| CoverageSpan {
            from_ms: r.first_ms as f64 - origin_ms,
            to_ms: r.last_ms as f64 - origin_ms,
            first_seq: r.first_seq,
            last_seq: r.last_seq,
            adapter: r.adapter_id.clone(),
            late: r.late,
        })
        .collect();
    // The simulator's observer records the one history the harness's does: no conversion.
    let timeline = Timeline {
        history: o.timeline.clone(),
        events,
        samples: o.samples.clone(),
        coverage,
        ..Timeline::default()
    };
    let header = crate::recording::Header {
        recording: crate::recording::VERSION,
        title: format!(
            "failover-lab sim --seed {} ({} mode, failoverTimeout {} ms): {}",
            o.options.seed,
            o.options.mode.as_str(),
            o.options.failover_timeout.as_millis(),
            if o.violations.is_empty() {
                "every invariant held".to_string()
            } else {
                format!("{} violation(s)", o.violations.len())
            }
        ),
        adapters: failover_sim::world::ADAPTERS
            .iter()
            .map(|a| (*a).to_string())
            .collect(),
        mode: o.options.mode.as_str().to_string(),
        failover_timeout_ms: ms(o.options.failover_timeout),
    };
    crate::recording::to_text(&header, &timeline)
}

#[cfg(test)]
mod recording_tests {
    use super::*;

    /// A seeded run's recording reads back with its statuses, its data flow and every fault
    /// with its healing, in simulated time; and with what the picture and the replay draw:
    /// each adapter's accepted points (the egress bars) and who delivered each tick (the
    /// coverage, and its holes). Before, a simulated recording drew "0 pts/s" and no hole.
    #[test]
    fn a_seed_is_recorded_for_replay() {
        let o = failover_sim::run(&SimOptions::for_ci(21));
        let text = recording(&o);
        let (header, t) = crate::recording::from_text(&text).expect("reads back");
        assert!(header.title.contains("--seed 21"), "{}", header.title);
        assert_eq!(header.adapters, ["adapter-a", "adapter-b"]);
        assert!(!t.history.is_empty() && !t.samples.is_empty());
        let faults = t.events.iter().filter(|e| e.kind == "fault").count();
        let healed = t.events.iter().filter(|e| e.kind == "step").count();
        assert_eq!((faults, healed), (o.faults.len(), o.faults.len()));
        assert!(
            t.history
                .iter()
                .any(|p| p.adapters.iter().any(|(_, role, _)| role == "Primary")),
            "no Primary in {:?}",
            t.history
        );
        let last = t.samples.last().expect("samples");
        let accepted: u64 = last.adapters.values().map(|a| a.accepted).sum();
        assert!(accepted > 1000, "egress per adapter: {:?}", last.adapters);
        assert!(!t.coverage.is_empty(), "no coverage");
        // The coverage is on the run's time axis: its first tick near the start.
        assert!(t.coverage[0].from_ms < 1000.0, "{:?}", t.coverage[0]);
    }

    /// A hole rule 5 reports shows in the run's text, with the ticks and who wrote around it
    /// (seed 30275 of the focused pool, with the data-blind promotion broken on purpose: the
    /// Warm member promoted over the Hot one loses what only the Hot one held).
    #[test]
    fn a_failing_seed_names_its_hole() {
        let pool = [
            FaultKind::ModeSwitch,
            FaultKind::Crash,
            FaultKind::TimeoutChange,
            FaultKind::Latency,
            FaultKind::EndpointOutage,
            FaultKind::GracefulStop,
        ];
        let mut options = SimOptions::with_pool(30275, Mode::Hot, &pool, Swarm::Off);
        options.broken = Broken::of([failover_sim::BrokenRule::DataBlindPromotion]);
        let o = failover_sim::run(&options);
        assert!(
            o.violations.iter().any(|v| v.rule == 5),
            "{:?}",
            o.violations
        );
        let h = holes(&o);
        assert!(!h.is_empty(), "no hole");
        let text = outcome_text(&o, "replay");
        assert!(text.contains("ticks nobody delivered"), "{text}");
        let rec = recording(&o);
        let (_, t) = crate::recording::from_text(&rec).expect("reads back");
        let gap = t
            .coverage
            .windows(2)
            .any(|w| w[1].first_seq > w[0].last_seq + 1);
        assert!(gap, "the recording's coverage shows no hole");
    }
}
