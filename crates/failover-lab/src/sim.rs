//! `failover-lab sim`: seeded runs of the deterministic simulator, a campaign's summary.

use std::{path::PathBuf, process::ExitCode};

use failover_core::Mode;

/// `--swarm on|off`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum SwarmArg {
    On,
    Off,
}

impl From<SwarmArg> for failover_sim::Swarm {
    fn from(s: SwarmArg) -> Self {
        match s {
            SwarmArg::On => failover_sim::Swarm::On,
            SwarmArg::Off => failover_sim::Swarm::Off,
        }
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct SimArgs {
    /// How many seeds to run (from --first-seed on).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    seeds: u64,
    /// The first seed of --seeds.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Write the --seed run's event log here: every status change and sample in simulated
    /// time, the faults and the audits, and nothing of this machine, so two runs of one seed
    /// give the same bytes (the determinism check compares them).
    #[arg(long, requires = "seed")]
    event_log: Option<PathBuf>,
    /// When the --seed run breaks an invariant every run keeps (rules 1, 2, 3, 5, 7, 10), write
    /// it here as a scenario file: its faults as steps, shrunk on the simulator to the fewest
    /// faults and shortest waits that still break that rule, ending with the rule as its
    /// expectation. Rerun it with `failover-lab run --target sim --seeds 1 FILE` or on real
    /// processes with `failover-lab run FILE`.
    #[arg(long, requires = "seed")]
    save_scenario: Option<PathBuf>,
    /// Write the --seed run's recording (seed-S.jsonl, for `failover-lab replay`) and its
    /// timeline picture (seed-S.svg) in this folder.
    #[arg(long, requires = "seed")]
    report_dir: Option<PathBuf>,
    /// Run this one seed and show it in full (replays a failing seed exactly).
    #[arg(long, conflicts_with_all = ["seeds", "first_seed"])]
    seed: Option<u64>,
    /// Modes, comma-separated, taken in turn by seed (seed modulo their number).
    #[arg(long, default_value = "Hot,Warm,Cold", value_delimiter = ',', value_parser = |s: &str| s.parse::<Mode>().map_err(|e| e.to_string()))]
    modes: Vec<Mode>,
    /// Each seed draws a fault mix of its own from the pool (--faults): 1 to 6 kinds, faults
    /// short, mixed or long, back to back, mixed or sparse, a few or as many as fit (swarm
    /// testing: a run that exercises a few kinds hard finds what hides where they meet). `off`:
    /// every kind of the pool in equal measure in every run, 0.25 to 4 failoverTimeouts long,
    /// 0 to 2 apart. The run's header shows its mix.
    #[arg(long, value_enum, default_value_t = SwarmArg::On)]
    swarm: SwarmArg,
    /// Fault kinds to draw from, comma-separated (default: all). Machines and networks: crash,
    /// pause, partition, one-way, endpoint-link, latency, source-outage, endpoint-outage,
    /// arbiter-restart, arbiter-outage. Operators and misconfigured members: mode-switch,
    /// timeout-change, session-delete, group-delete, role-override, restart-changed,
    /// graceful-stop, unregister, twin, standalone, epoch-ahead.
    #[arg(long, value_delimiter = ',', value_parser = |s: &str| s.parse::<failover_sim::FaultKind>())]
    faults: Vec<failover_sim::FaultKind>,
    /// Break rules on purpose, comma-separated, to see the invariants catch them (each a rule
    /// the services keep, most after the simulator found the bug its absence causes):
    /// epoch-check (the endpoint takes writes whatever their epoch), fixed-retry (retries every
    /// 10 ms, no backoff: a busy loop), no-failsafe (a Primary that loses the failover service
    /// steps down after failoverTimeout, so data stops while the service is down),
    /// failed-standby-scores (a standby whose own collection failed scores as usual, a Cold one
    /// 1: the role is handed back and forth with the source down), epoch-floor (the service
    /// forgets the epochs of a deleted group), data-blind-promotion (ties go to the earliest
    /// registered whatever data each member holds), refused-epoch (the service ignores a
    /// Primary refused at its own epoch: the pair wedges), startup-wait (a just-started service
    /// promotes a Hot group's first member at once).
    #[arg(long = "break", value_delimiter = ',', value_parser = |s: &str| s.parse::<failover_sim::BrokenRule>())]
    broken: Vec<failover_sim::BrokenRule>,
    /// Threads (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
    /// How many failing seeds to show in full.
    #[arg(long, default_value_t = 3)]
    show: usize,
    /// Print one JSON object on stdout instead of text: the totals, faults by kind, violations
    /// by rule, every failing run in full (its fault mix, schedule, audit, the ticks nobody
    /// delivered, its violations and the command that replays it), the failing seeds grouped by
    /// rule and by fault subset, and with --seed the run in full under "run". Progress stays
    /// on stderr.
    #[arg(long)]
    json: bool,
    /// After a campaign, save each failing seed as a scenario file in this folder
    /// (seed-S.toml, shrunk as --save-scenario does), where the rule it broke can end a story
    /// (rules 1, 2, 3, 5's duplicates, 7 and 10); the others are named with the reason.
    #[arg(long, conflicts_with_all = ["seed", "save_scenario"])]
    save_failing: Option<PathBuf>,
}

/// Runs the simulations, then saves what was asked for.
pub(crate) async fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    let save = args.save_scenario.clone();
    let save_failing = args.save_failing.clone();
    let (code, summary) = run_sim(args)?;
    let progress = |line: &str| eprintln!("{line}");
    if let (Some(path), Some(o)) = (save, &summary.single) {
        let said = failover_harness::save_scenario::save(o, &path, &progress).await?;
        eprintln!("{said}");
    }
    if let Some(dir) = save_failing {
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("cannot make {}: {e}", dir.display()))?;
        for o in &summary.failing {
            let path = dir.join(format!("seed-{}.toml", o.options.seed));
            match failover_harness::save_scenario::save(o, &path, &progress).await {
                Ok(said) => eprintln!("{said}"),
                Err(e) => eprintln!("seed {}: not saved: {e:#}", o.options.seed),
            }
        }
    }
    Ok(code)
}

/// Runs the simulations; the exit code, and what they found.
fn run_sim(args: SimArgs) -> anyhow::Result<(ExitCode, failover_harness::sim::Summary)> {
    use failover_harness::sim;
    if std::env::var_os("RUST_LOG").is_some() {
        // The services' own logs, all hosts mixed, for replaying one seed (RUST_LOG=info).
        failover_proto::process::init_tracing(failover_proto::process::LogFormat::Text);
    }
    if args.modes.is_empty() {
        anyhow::bail!("--modes needs at least one of Hot, Warm, Cold");
    }
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (args.first_seed..)
            .take(usize::try_from(args.seeds)?)
            .collect(),
    };
    let plan = sim::SimPlan {
        seeds,
        modes: args.modes,
        pool: if args.faults.is_empty() {
            failover_sim::FaultKind::ALL.to_vec()
        } else {
            args.faults
        },
        swarm: args.swarm.into(),
        broken: failover_sim::Broken::of(args.broken),
        jobs: args.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        }),
    };
    let total = plan.seeds.len();
    let summary = sim::run(&plan, &sim::printer(total));
    if args.json {
        println!("{}", sim::summary_json(&summary, &plan));
    }
    if let Some(o) = &summary.single {
        // One seed: show it in full, failing or not.
        if !args.json {
            print!("{}", sim::outcome_text(o, &sim::replay_command(o, &plan)));
        }
        if let Some(path) = &args.event_log {
            std::fs::write(path, o.event_log())
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        }
        if let Some(dir) = &args.report_dir {
            let text = sim::recording(o);
            let (header, timeline) = failover_harness::recording::from_text(&text)?;
            let seed = o.options.seed;
            let (rec, pic) = (
                dir.join(format!("seed-{seed}.jsonl")),
                dir.join(format!("seed-{seed}.svg")),
            );
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(&rec, &text))
                .and_then(|()| {
                    std::fs::write(
                        &pic,
                        failover_harness::timeline_svg::render(
                            &header.title,
                            &header.adapters,
                            &timeline,
                            None,
                        ),
                    )
                })
                .map_err(|e| anyhow::anyhow!("cannot write in {}: {e}", dir.display()))?;
            eprintln!(
                "recording {} and picture {} (failover-lab replay {})",
                rec.display(),
                pic.display(),
                rec.display()
            );
        }
    } else if !args.json {
        for o in summary.failing.iter().take(args.show) {
            println!("{}", sim::outcome_text(o, &sim::replay_command(o, &plan)));
        }
    }
    if !args.json {
        print!("{}", sim::summary_text(&summary));
    }
    let code = if summary.failing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    Ok((code, summary))
}
