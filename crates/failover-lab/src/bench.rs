//! `failover-lab bench`: takeover latency, throughput, standby cost, the failoverTimeout trade-off.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use failover_core::Mode;

use crate::parse_duration;

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
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
    /// The parts to run, comma-separated: takeover, throughput (the data path over gRPC and a
    /// plain tonic baseline), standby, timeout (takeover time against false failovers per
    /// failoverTimeout), omf (the data path over OMF with gzip, beside gRPC when run with
    /// throughput: points/s sustained, bytes per point, CPU per million points, a Hot kill) and
    /// fanout (the source's fan-out to a Hot pair's two subscribers over gRPC, MQTT and OPC UA:
    /// the rate both keep up with, the source's CPU per million points) and fleet (groups of
    /// simulated members on one failover service, over gRPC and REST: heartbeats per second,
    /// CPU per heartbeat, memory per group, false failovers, the decision after a Primary dies,
    /// a restart of the service under the fleet).
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
    /// With --parts fleet: the numbers of groups, comma-separated (each run over each wire of
    /// --fleet-wires).
    #[arg(long, value_delimiter = ',', default_value = "100,1000,5000",
          value_parser = clap::value_parser!(u64).range(1..=50_000))]
    fleet_groups: Vec<u64>,
    /// With --parts fleet: the wires, comma-separated: grpc (failover-lab's stream), rest (the
    /// vendor's API over HTTPS, a request per heartbeat).
    #[arg(long, value_delimiter = ',', default_value = "grpc,rest",
          value_parser = |s: &str| match s {
              "grpc" => Ok(failover_harness::bench::fleet::Wire::Grpc),
              "rest" => Ok(failover_harness::bench::fleet::Wire::Rest),
              other => Err(format!("{other:?} is not a wire; use grpc or rest")),
          })]
    fleet_wires: Vec<failover_harness::bench::fleet::Wire>,
    /// With --parts fleet: where the failover service keeps leadership and epochs: memory (one
    /// service), or etcd (two services on a three-member etcd cluster started for the run, the
    /// members knowing both; etcd's calls and writes are counted, and the leader is SIGKILLed
    /// instead of restarted). etcd needs `etcd` on PATH.
    #[arg(long, default_value = "memory",
          value_parser = |s: &str| match s {
              "memory" => Ok(failover_harness::bench::fleet::Store::Memory),
              "etcd" => Ok(failover_harness::bench::fleet::Store::Etcd),
              other => Err(format!("{other:?} is not a store; use memory or etcd")),
          })]
    fleet_store: failover_harness::bench::fleet::Store,
    /// With --parts fleet: every group's failoverTimeout, hh:mm:ss(.fff).
    #[arg(long, default_value = "00:00:02", value_parser = parse_duration)]
    fleet_failover_timeout: Duration,
    /// Write the pictures here (timeout-tradeoff.svg with --parts timeout).
    #[arg(long)]
    report_dir: Option<PathBuf>,
}

/// Runs the benchmarks.
pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
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
        fleet: bench::fleet::FleetOptions {
            runs: args
                .fleet_groups
                .iter()
                .flat_map(|n| {
                    args.fleet_wires
                        .iter()
                        .map(move |w| (*w, usize::try_from(*n).unwrap_or(1)))
                })
                .collect(),
            failover_timeout: args.fleet_failover_timeout,
            store: args.fleet_store,
            ..bench::fleet::FleetOptions::default()
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
