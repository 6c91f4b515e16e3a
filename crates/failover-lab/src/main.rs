//! `failover-lab`: see, script and test client-level failover of an adapter pair. The command
//! line over `failover_harness`: one module per subcommand with its arguments (`demo`, `run`,
//! `matrix`, `sim`, `bench`, `replay`, `config`); the small ones (`watch`, `healthcheck`) are
//! here.

mod bench;
mod config;
mod demo;
mod matrix;
mod replay;
mod run;
mod sim;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use failover_core::timespan::parse_timespan;
use failover_harness::config_client;

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
    Demo(demo::DemoArgs),
    /// Run scenario files (or every .toml file in folders): each on its own pair of processes,
    /// step by step, ending with a pass/fail table. Exit status 1 if any failed.
    Run(run::RunArgs),
    /// The failure matrix: each fault kind (kill, pause, cut, source outage, service outage,
    /// clock offset, mode switch, override) on both failover designs (ours and the vendor's) in
    /// Hot, Warm and Cold, several runs each on real processes; prints a Markdown table of the
    /// points lost and duplicated (median and worst per cell). Exit status 1 if a run failed.
    Matrix(matrix::MatrixArgs),
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
    Bench(bench::BenchArgs),
    /// Deterministic simulation: the real adapter, failover service, source and endpoint code
    /// on simulated hosts, network and clock (turmoil), each seed a random fault schedule
    /// (crashes, pauses, partitions, one-way partitions, latency, source and endpoint outages,
    /// failover service restarts) in a mode with a random failoverTimeout; invariants checked
    /// on every run. Prints progress, a summary, and each failing seed's schedule and timeline
    /// with the command that replays it. Exit status 1 if an invariant broke.
    Sim(sim::SimArgs),
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
        action: config::ConfigAction,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("failover-lab: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Run(args) => run::run(args).await,
        Command::Matrix(args) => matrix::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Sim(args) => sim::run(args).await,
        Command::Replay { file, listen, svg } => replay::run(file, listen, svg).await,
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
        Command::Config { action } => config::run(action).await,
    }
}

/// A duration written as a timespan (`00:00:04`), for the flags that take one.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_timespan(s).map_err(|e| e.to_string())
}
