//! `failover-lab matrix`: the failure matrix of both failover designs, on real processes.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use failover_core::{Behaviour, Mode};
use failover_harness::matrix::{self, Fault, MatrixOptions};

use crate::parse_duration;

#[derive(Debug, clap::Args)]
pub(crate) struct MatrixArgs {
    /// The rows: fault kinds, comma-separated: kill, pause, cut, source-outage,
    /// service-outage, clock-offset, mode-switch, override.
    #[arg(long, value_delimiter = ',', value_parser = |s: &str| s.parse::<Fault>(),
          default_value = "kill,pause,cut,source-outage,service-outage,clock-offset,mode-switch,override")]
    fault: Vec<Fault>,
    /// The column groups: failover designs, comma-separated: lab (failover-lab's) and vendor
    /// (the vendor's adapter framework's, docs/vendor-behaviour.md).
    #[arg(long, value_delimiter = ',', default_value = "lab,vendor",
          value_parser = |s: &str| s.parse::<Behaviour>())]
    behaviour: Vec<Behaviour>,
    /// The columns within a group: modes, comma-separated (case-sensitive).
    #[arg(long, value_delimiter = ',', default_value = "Hot,Warm,Cold",
          value_parser = |s: &str| s.parse::<Mode>().map_err(|e| e.to_string()))]
    mode: Vec<Mode>,
    /// Runs per cell, each with its own seed; a cell gives the median and the worst.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// Runs at once (each starts five processes).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    jobs: u64,
    /// The group's failoverTimeout, hh:mm:ss(.fff).
    #[arg(long, default_value = "00:00:02", value_parser = parse_duration)]
    failover_timeout: Duration,
    /// Source ticks per second (8 streams, one point each per tick); at most 1000 (OMF).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// The first run's seed (run k of a cell uses seed + k).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the cells as one JSON array instead of the Markdown table.
    #[arg(long)]
    json: bool,
    /// Keep every run's component logs under this folder (failing runs keep theirs anyway).
    #[arg(long)]
    keep_logs: Option<PathBuf>,
}

/// `v` without its repeats, in its order.
fn dedup<T: PartialEq + Copy>(mut v: Vec<T>) -> Vec<T> {
    let mut seen = Vec::new();
    v.retain(|x| {
        let new = !seen.contains(x);
        if new {
            seen.push(*x);
        }
        new
    });
    v
}

/// Runs the matrix and prints it.
pub(crate) async fn run(args: MatrixArgs) -> anyhow::Result<ExitCode> {
    if !(args.rate.is_finite() && args.rate > 0.0 && args.rate <= 1000.0) {
        anyhow::bail!(
            "--rate must be above 0 and at most 1000 (OMF), not {}",
            args.rate
        );
    }
    if args.failover_timeout < Duration::from_millis(500)
        || args.failover_timeout > Duration::from_secs(60)
    {
        anyhow::bail!("--failover-timeout must be 00:00:00.500 to 00:01:00");
    }
    let opts = MatrixOptions {
        faults: dedup(args.fault),
        behaviours: dedup(args.behaviour),
        modes: dedup(args.mode),
        runs: args.runs,
        jobs: usize::try_from(args.jobs).unwrap_or(1),
        failover_timeout: args.failover_timeout,
        rate_hz: args.rate,
        seed: args.seed,
        keep_logs: args.keep_logs,
    };
    let progress = |line: &str| eprintln!("[matrix] {line}");
    let cells = tokio::select! {
        r = matrix::run(&opts, &progress) => r?,
        () = failover_proto::process::shutdown_signal() => {
            eprintln!("[matrix] interrupted; every process is stopped");
            return Ok(ExitCode::from(130));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&cells)?);
    } else {
        print!("{}", matrix::markdown(&cells, &opts));
    }
    // A design that keeps its rules fails a run when it breaks one: that is worth an exit 1.
    Ok(if cells.iter().all(|c| c.failures.is_empty()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
