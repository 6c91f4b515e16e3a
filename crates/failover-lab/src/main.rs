//! `failover-lab`: see, script and test client-level failover of an adapter pair.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use failover_core::{Mode, timespan::parse_timespan};
use failover_harness::{cluster::ClusterSpec, config_client, demo};

/// See, script and test client-level failover of a primary/secondary adapter pair.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the whole pair on loopback, SIGKILL the Primary, and show the takeover: scores,
    /// roles, data flow, and what was lost or duplicated. Needs no Docker.
    Demo(DemoArgs),
    /// Run scenario files (or every .toml file in folders): each on its own pair of processes,
    /// step by step, ending with a pass/fail table. Exit status 1 if any failed.
    Run(RunArgs),
    /// Exit 0 when a failover-lab server answers as healthy (for container healthchecks): the
    /// gRPC health service at ADDR, or with --http an adapter's REST API at ADDR.
    Healthcheck {
        /// host:port of the server.
        addr: String,
        /// Check an adapter's REST API (GET /api/v1/diagnostics/FailoverState) instead of gRPC.
        #[arg(long)]
        http: bool,
    },
    /// Watch a failover group live: every member's role, score, heartbeat age and the epoch, one
    /// line per change, with the failover service's reason. Ctrl-C to stop.
    Watch {
        /// host:port of the failover service's gRPC.
        #[arg(long, default_value = "127.0.0.1:50053")]
        arbiter: String,
        /// The failoverGroupId.
        #[arg(long, default_value = "FailoverGroup1")]
        group: String,
    },
    /// Measure, on loopback with real processes: takeover latency per mode (p50/p95/max, by
    /// phase, and the overhead above failoverTimeout) over repeated SIGKILLs, SIGSTOPs and source
    /// outages; data-path throughput through a Hot pair against a plain tonic baseline; loss and
    /// duplicates of a Hot takeover at that rate; CPU and memory of the standby per mode, bytes
    /// per buffered point and CPU per heartbeat. BENCHMARKS.md explains every figure.
    Bench(BenchArgs),
    /// Deterministic simulation: the real adapter, failover service, source and endpoint code
    /// on simulated hosts, network and clock (turmoil), each seed a random fault schedule
    /// (crashes, pauses, partitions, one-way partitions, latency, source and endpoint outages,
    /// failover service restarts) in a mode with a random failoverTimeout; invariants checked
    /// on every run. Prints progress, a summary, and each failing seed's schedule and timeline
    /// with the command that replays it. Exit status 1 if an invariant broke.
    Sim(SimArgs),
    /// The counting gRPC server of the bench's baseline (started by `bench`).
    #[command(hide = true)]
    BenchSink {
        /// Address to serve on.
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
    /// Play a recorded run back in the browser: a scenario's or the demo's recording
    /// (`--report-dir` writes one, `<name>.jsonl`, beside each picture). Serves a page with play
    /// and pause, step to the previous or next event, a time slider and a speed; prints its URL
    /// and runs until Ctrl-C. With --svg, writes the run's timeline picture instead.
    Replay {
        /// The recording (JSON lines).
        file: PathBuf,
        /// Where the page listens (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: std::net::SocketAddr,
        /// Write the recording's timeline picture (SVG) here and exit.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Read or write an adapter's ClientFailover document over its REST API (like the vendor's
    /// `edgecmd -port 5590 set clientfailover -cid System -file F`).
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// Standby mode of both adapters: Hot, Warm or Cold (case-sensitive, as in the document).
    #[arg(long, default_value = "Hot", value_parser = |s: &str| s.parse::<Mode>().map_err(|e| e.to_string()))]
    mode: Mode,
    /// failoverTimeout as hh:mm:ss(.fff); heartbeats go every half of it.
    #[arg(long, default_value = "00:00:04", value_parser = parse_duration)]
    failover_timeout: Duration,
    /// Print one JSON object instead of the timeline (progress still goes to stderr).
    #[arg(long)]
    json: bool,
    /// Streams at the data source.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    streams: u32,
    /// Components the streams are split into (one lost of four: score 75).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    components: u32,
    /// Source ticks per second (each tick: one point per stream).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// How often a Warm standby tests its source connection (the vendor's default is 00:05:00).
    #[arg(long, default_value = "00:00:01", value_parser = parse_duration)]
    warm_test_interval: Duration,
    /// Data flow before the kill.
    #[arg(long, default_value = "00:00:03", value_parser = parse_duration)]
    before_kill: Duration,
    /// Data flow after the takeover.
    #[arg(long, default_value = "00:00:03", value_parser = parse_duration)]
    after_takeover: Duration,
    /// Keep each component's log in this folder (default: a temporary folder, removed).
    #[arg(long)]
    keep_logs: Option<PathBuf>,
    /// How the adapters talk to the failover service: grpc (failover-lab's stream, roles
    /// pushed at once) or rest (the vendor's Client Failover Service API, roles pulled in
    /// heartbeat answers, as the vendor's adapters get them).
    #[arg(long, default_value = "grpc", value_parser = parse_protocol)]
    failover_protocol: failover_harness::cluster::ClusterProtocol,
    /// Write the run's timeline picture here, as demo-<mode>.svg.
    #[arg(long)]
    report_dir: Option<PathBuf>,
    /// Instead of the scripted kill: serve the live dashboard (prints its URL) with buttons to
    /// kill, pause, resume and restart either adapter, cut its source and change the mode;
    /// runs until Ctrl-C.
    #[arg(long)]
    dashboard: bool,
    /// Where the dashboard listens (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    dashboard_listen: std::net::SocketAddr,
    /// Hot, Warm and Cold one after the other on the same fault and seed (instead of --mode):
    /// one table (takeover time, points lost and duplicated, and the standby's CPU, memory and
    /// traffic with the source, measured before the kill), with --json one array, with
    /// --report-dir one picture of the three (demo-compare.svg).
    #[arg(long, conflicts_with_all = ["dashboard", "mode"])]
    compare: bool,
    /// The source takes this many clients at a time (default: any number), as sources that
    /// allow one client connection do: with 1, a Hot or Warm standby cannot connect (score 0)
    /// and loses its takeover's gap like Cold. `--compare --max-clients 1` shows why Cold exists.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_clients: Option<u32>,
}

/// `--swarm on|off`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SwarmArg {
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
struct SimArgs {
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

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// SIGKILLs of the Primary per mode.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    runs: u64,
    /// SIGSTOPs and source outages of a Hot Primary (0: none).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    other_fault_runs: u64,
    /// failoverTimeout of the pairs, hh:mm:ss(.fff).
    #[arg(long, default_value = "00:00:01", value_parser = parse_duration)]
    failover_timeout: Duration,
    /// Modes whose takeovers are measured, comma-separated.
    #[arg(long, default_value = "Hot,Warm,Cold", value_delimiter = ',', value_parser = |s: &str| s.parse::<Mode>().map_err(|e| e.to_string()))]
    modes: Vec<Mode>,
    /// Points per second of the takeover and standby pairs (1000 streams).
    #[arg(long, default_value_t = 100_000.0)]
    rate: f64,
    /// Highest rate the throughput search offers, points per second.
    #[arg(long, default_value_t = 8_000_000.0)]
    max_rate: f64,
    /// Measuring window of each throughput and cost step, hh:mm:ss(.fff).
    #[arg(long, default_value = "00:00:02", value_parser = parse_duration)]
    window: Duration,
    /// Points per write to the endpoint (and per message of the baseline).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    batch_size: u64,
    /// Seed of the fault timing (where in the heartbeat cycle each fault lands).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Give the adapters their egress buffer on disk too (--buffer-dir), to measure its cost;
    /// without it the buffer is in memory only.
    #[arg(long)]
    disk_buffer: bool,
    /// The parts to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "takeover,throughput,standby",
        value_parser = |s: &str| s.parse::<failover_harness::bench::Part>()
    )]
    parts: Vec<failover_harness::bench::Part>,
    /// Print one JSON object instead of the tables (progress still goes to stderr).
    #[arg(long)]
    json: bool,
    /// With --parts timeout: the failoverTimeouts to compare, comma-separated hh:mm:ss(.fff).
    #[arg(long, value_delimiter = ',', default_value = "00:00:00.200,00:00:00.500,00:00:01,00:00:02,00:00:04", value_parser = parse_duration)]
    timeouts: Vec<Duration>,
    /// With --parts timeout: how long each pair runs under jitter and load before the kill,
    /// counting false failovers.
    #[arg(long, default_value = "00:00:20", value_parser = parse_duration)]
    timeout_window: Duration,
    /// With --parts timeout: most random delay on each adapter's link to the failover service
    /// (drawn again every 100 ms), in milliseconds.
    #[arg(long, default_value_t = 100)]
    jitter_ms: u64,
    /// With --parts timeout: busy threads beside the pair (default: one per core).
    #[arg(long)]
    load_threads: Option<usize>,
    /// Write the pictures here (timeout-tradeoff.svg with --parts timeout).
    #[arg(long)]
    report_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Scenario files or folders (scenarios/ holds the library; scenarios/README.md the format).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Print the results as one JSON array instead of the table (progress still on stderr).
    #[arg(long)]
    json: bool,
    /// Also write the results as JUnit XML to this file.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Use this seed in every scenario instead of its own.
    #[arg(long)]
    seed: Option<u64>,
    /// Keep every component's log under this folder (one subfolder per scenario). Failing
    /// scenarios keep theirs in any case.
    #[arg(long)]
    keep_logs: Option<PathBuf>,
    /// Scenarios run at once (each starts five processes; always 1 on compose).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    jobs: u64,
    /// Where the pair runs: `processes` (each scenario its own, on loopback), `compose` (the
    /// services of docker-compose.yml, started if needed; faults through docker compose) or
    /// `sim` (the deterministic simulator, in simulated time, once per seed; a file that needs
    /// what it cannot simulate, such as TLS or authentication, is skipped with the reason).
    #[arg(long, value_enum, default_value_t = TargetArg::Processes)]
    target: TargetArg,
    /// With --target sim: run each file under this many seeds of timing jitter (its seed, or
    /// --seed, and the ones after it); the first failing seed is reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    seeds: u32,
    /// The folder holding docker-compose.yml, for --target compose.
    #[arg(long, default_value = ".")]
    compose_dir: PathBuf,
    /// Write one timeline picture per scenario here, as <file stem>.svg.
    #[arg(long)]
    report_dir: Option<PathBuf>,
    /// Run every scenario with its adapters on this protocol instead of the file's own
    /// (cluster.failover_protocol): grpc, or rest (the vendor's Client Failover Service API).
    #[arg(long, value_parser = parse_protocol)]
    failover_protocol: Option<failover_harness::cluster::ClusterProtocol>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TargetArg {
    Processes,
    Compose,
    Sim,
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// PUT a ClientFailover JSON document to the adapter.
    Set {
        /// The adapter's REST port.
        #[arg(long, default_value_t = 5590)]
        port: u16,
        /// The adapter's host; several, comma-separated, are configured in that order, each
        /// after the previous one has a role (so the first starts as Primary).
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// The document (for example ConfigureClientFailover.json).
        #[arg(long)]
        file: PathBuf,
        /// Replace the document's mode with this one (Hot, Warm or Cold; empty: keep it).
        #[arg(long, default_value = "")]
        mode: String,
    },
    /// Show the adapter's ClientFailover document (never the password).
    Get {
        /// The adapter's REST port.
        #[arg(long, default_value_t = 5590)]
        port: u16,
        /// The adapter's host.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
    },
    /// Remove the adapter's ClientFailover document.
    Delete {
        /// The adapter's REST port.
        #[arg(long, default_value_t = 5590)]
        port: u16,
        /// The adapter's host.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
    },
    /// Show the adapter's FailoverState (role, score, epoch, errors).
    State {
        /// The adapter's REST port.
        #[arg(long, default_value_t = 5590)]
        port: u16,
        /// The adapter's host.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
    },
}

fn parse_protocol(s: &str) -> Result<failover_harness::cluster::ClusterProtocol, String> {
    match s {
        "grpc" => Ok(failover_harness::cluster::ClusterProtocol::Grpc),
        "rest" => Ok(failover_harness::cluster::ClusterProtocol::Rest),
        other => Err(format!("{other:?} is not a protocol; use grpc or rest")),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_timespan(s).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("failover-lab: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(args) => run_demo(args).await,
        Command::Run(args) => run_scenarios(args).await,
        Command::Bench(args) => run_bench(args).await,
        Command::Sim(args) => {
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
        Command::Replay { file, listen, svg } => {
            let (header, timeline) = failover_harness::recording::read(&file)?;
            if let Some(out) = svg {
                let picture = failover_harness::timeline_svg::render(
                    &header.title,
                    &header.adapters,
                    &timeline,
                    None,
                );
                std::fs::write(&out, picture)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
                eprintln!("wrote {}", out.display());
                return Ok(ExitCode::SUCCESS);
            }
            let json = failover_harness::recording::to_json(&header, &timeline).to_string();
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
            let url = format!("http://{}/", listener.local_addr()?);
            println!("replaying {} at {url} (Ctrl-C to stop)", file.display());
            failover_dashboard::serve_replay(
                listener,
                json,
                failover_proto::process::shutdown_signal(),
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchSink { listen } => {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            failover_harness::bench::throughput::serve_sink(
                listener,
                failover_proto::process::shutdown_signal(),
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Healthcheck { addr, http } => {
            let healthy = if http {
                config_client::state_at(&addr).await.is_ok()
            } else {
                match addr.parse::<std::net::SocketAddr>() {
                    Ok(a) => failover_harness::cluster::grpc_healthy(a).await,
                    Err(_) => failover_harness::cluster::grpc_healthy_at(&addr).await,
                }
            };
            if !healthy {
                eprintln!("{addr}: not healthy");
            }
            Ok(if healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Watch { arbiter, group } => {
            failover_harness::observe::watch_print(&arbiter, &group).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config { action } => {
            let value = match action {
                ConfigAction::Set {
                    port,
                    host,
                    file,
                    mode,
                } => {
                    let mode = if mode.is_empty() {
                        None
                    } else {
                        Some(
                            mode.parse::<Mode>()
                                .map_err(|e| anyhow::anyhow!("--mode: {e}"))?,
                        )
                    };
                    let hosts: Vec<&str> = host
                        .split(',')
                        .map(str::trim)
                        .filter(|h| !h.is_empty())
                        .collect();
                    let mut answers = Vec::new();
                    for (i, h) in hosts.iter().enumerate() {
                        let answer = config_client::set_with_mode(h, port, &file, mode).await?;
                        eprintln!("{h}:{port}: ClientFailover applied");
                        if i + 1 < hosts.len() {
                            config_client::wait_for_role(h, port, Duration::from_secs(30)).await?;
                        }
                        answers.push(answer);
                    }
                    if answers.len() == 1 {
                        answers.remove(0)
                    } else {
                        serde_json::Value::Array(answers)
                    }
                }
                ConfigAction::Get { port, host } => config_client::get(&host, port).await?,
                ConfigAction::Delete { port, host } => config_client::delete(&host, port).await?,
                ConfigAction::State { port, host } => config_client::state(&host, port).await?,
            };
            if !value.is_null() {
                println!("{}", serde_json::to_string_pretty(&value)?);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn run_bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    use failover_harness::bench;
    let max_rate = 100_000.0 * f64::from(bench::throughput::STREAMS);
    for (flag, rate) in [("--rate", args.rate), ("--max-rate", args.max_rate)] {
        if !(rate.is_finite() && rate >= 1000.0 && rate <= max_rate) {
            anyhow::bail!("{flag} must be 1000 to {max_rate} points per second, not {rate}");
        }
    }
    if args.modes.is_empty() {
        anyhow::bail!("--modes needs at least one of Hot, Warm, Cold");
    }
    if let Some(t) = args
        .timeouts
        .iter()
        .find(|t| **t < failover_core::config::MIN_FAILOVER_TIMEOUT)
    {
        anyhow::bail!(
            "--timeouts: {} is below the shortest failoverTimeout, {}",
            failover_core::timespan::format_timespan(*t),
            failover_core::timespan::format_timespan(failover_core::config::MIN_FAILOVER_TIMEOUT)
        );
    }
    let opts = bench::BenchOptions {
        runs: usize::try_from(args.runs)?,
        other_fault_runs: usize::try_from(args.other_fault_runs)?,
        failover_timeout: args.failover_timeout,
        modes: args.modes,
        standby_points_per_s: args.rate,
        max_points_per_s: args.max_rate,
        start_points_per_s: (args.max_rate / 32.0).max(1000.0),
        window: args.window,
        batch_points: usize::try_from(args.batch_size)?,
        seed: args.seed,
        parts: args.parts,
        disk_buffer: args.disk_buffer,
        timeout: bench::timeout::TimeoutOptions {
            timeouts: args.timeouts.clone(),
            window: args.timeout_window,
            jitter: Duration::from_millis(args.jitter_ms),
            load_threads: args.load_threads.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            }),
            seed: args.seed,
        },
    };
    let progress = |line: &str| eprintln!("[bench] {line}");
    let report = tokio::select! {
        r = bench::run(&opts, &progress) => r,
        () = failover_proto::process::shutdown_signal() => {
            eprintln!("[bench] interrupted; every process is stopped");
            return Ok(ExitCode::from(130));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", bench::render(&report));
    }
    if let (Some(dir), false) = (&args.report_dir, report.timeouts.is_empty()) {
        let path = dir.join("timeout-tradeoff.svg");
        let title = format!(
            "Choosing failoverTimeout: Hot pair, {} ms link jitter, {} busy threads, {:.0} s windows",
            opts.timeout.jitter.as_millis(),
            opts.timeout.load_threads,
            opts.timeout.window.as_secs_f64()
        );
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&path, bench::timeout::svg(&report.timeouts, &title)))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        eprintln!("[bench] the trade-off picture: {}", path.display());
    }
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn run_scenarios(args: RunArgs) -> anyhow::Result<ExitCode> {
    use failover_harness::{runner, scenario};
    let files = scenario::collect(&args.paths)?;
    if files.is_empty() {
        anyhow::bail!("no .toml scenario files in {:?}", args.paths);
    }
    let opts = runner::RunOptions {
        seed: args.seed,
        keep_logs: args.keep_logs.clone(),
        jobs: usize::try_from(args.jobs)?,
        target: match args.target {
            TargetArg::Processes => runner::RunTarget::Processes,
            TargetArg::Compose => runner::RunTarget::Compose(args.compose_dir.clone()),
            TargetArg::Sim => runner::RunTarget::Sim { seeds: args.seeds },
        },
        report_dir: args.report_dir.clone(),
        failover_protocol: args.failover_protocol,
    };
    let progress = |line: &str| eprintln!("{line}");
    eprintln!(
        "running {} scenario(s), {} at a time",
        files.len(),
        opts.jobs
    );
    let outcomes = tokio::select! {
        o = runner::run_all(&files, &opts, &progress) => o,
        () = failover_proto::process::shutdown_signal() => {
            eprintln!("interrupted; every process is stopped");
            return Ok(ExitCode::from(130));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
    } else {
        for o in outcomes.iter().filter(|o| !o.passed) {
            println!("\nFAILED {} ({})\n{}", o.file, o.name, o.failure_text());
        }
        print!("{}", runner::table(&outcomes));
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, runner::junit(&outcomes))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(if outcomes.iter().all(|o| o.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn run_demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if !(args.rate.is_finite() && args.rate > 0.0 && args.rate <= 100_000.0) {
        anyhow::bail!(
            "--rate must be above 0 and at most 100000, not {}",
            args.rate
        );
    }
    let spec = ClusterSpec {
        mode: args.mode,
        failover_timeout: args.failover_timeout,
        streams: args.streams,
        components: args.components.min(args.streams),
        rate_hz: args.rate,
        warm_test_interval: args.warm_test_interval,
        log_dir: args.keep_logs.clone(),
        failover_protocol: args.failover_protocol,
        max_clients: args.max_clients,
        ..ClusterSpec::default()
    };
    if args.dashboard {
        let progress = |line: &str| eprintln!("[demo] {line}");
        failover_harness::live::run(
            spec,
            args.dashboard_listen,
            failover_proto::process::shutdown_signal(),
            &progress,
        )
        .await?;
        return Ok(ExitCode::SUCCESS);
    }
    let opts = demo::DemoOptions {
        spec: spec.clone(),
        before_kill: args.before_kill,
        after_takeover: args.after_takeover,
    };
    let progress = |line: &str| eprintln!("[demo] {line}");
    if args.compare {
        let reports = tokio::select! {
            r = demo::compare(&opts, &progress) => r?,
            () = failover_proto::process::shutdown_signal() => {
                eprintln!("[demo] interrupted; every process is stopped");
                return Ok(ExitCode::from(130));
            }
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&reports)?);
        } else {
            print!("{}", demo::compare_text(&reports));
        }
        if let Some(dir) = &args.report_dir {
            let path = dir.join("demo-compare.svg");
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(&path, demo::compare_svg(&reports, &spec)))
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            eprintln!("[demo] the three runs' picture: {}", path.display());
        }
        return Ok(if reports.iter().all(demo::DemoReport::took_over) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let report = tokio::select! {
        r = demo::run(&opts, &progress) => r?,
        () = failover_proto::process::shutdown_signal() => {
            eprintln!("[demo] interrupted; every process is stopped");
            return Ok(ExitCode::from(130));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", demo::render(&report, &spec));
    }
    if let Some(dir) = &args.keep_logs {
        eprintln!("[demo] logs kept in {}", dir.display());
    }
    if let Some(dir) = &args.report_dir {
        let path = dir.join(format!("demo-{}.svg", report.mode.to_lowercase()));
        let recorded = dir.join(format!("demo-{}.jsonl", report.mode.to_lowercase()));
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&path, demo::timeline_svg(&report, &spec)))
            .and_then(|()| std::fs::write(&recorded, demo::recording(&report, &spec)))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        eprintln!(
            "[demo] timeline picture: {}; recording: {} (failover-lab replay {})",
            path.display(),
            recorded.display(),
            recorded.display()
        );
    }
    Ok(if report.took_over() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
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
