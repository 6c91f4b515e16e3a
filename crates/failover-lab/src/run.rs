//! `failover-lab run`: scenario files on real processes, compose or the simulator.

use std::{path::PathBuf, process::ExitCode};

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
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
    /// `sim` (the deterministic simulator, in simulated time, once per seed). On every target,
    /// a file that needs what the target cannot stage (sim: TLS or authentication; compose:
    /// twins, one-way cuts, another shape) is skipped with the reason before anything starts:
    /// neither passed nor failed.
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
    /// Run every scenario with the Primary egressing this way instead of the file's own
    /// (cluster.egress): grpc (the lab's DataEndpoint), or omf (OMF over HTTP, as Edge Data
    /// Store, PI Web API and CONNECT take it). Processes only.
    #[arg(long, value_parser = parse_egress)]
    egress: Option<failover_harness::cluster::ClusterEgress>,
    /// Run every scenario with the adapters collecting this way instead of the file's own
    /// (cluster.source_protocol): grpc (the lab's DataSource), mqtt (the source's MQTT topics)
    /// or opcua (the source's OPC UA variables); MQTT and OPC UA make no history recoveries.
    /// Processes only.
    #[arg(long, value_parser = parse_source)]
    source_protocol: Option<failover_harness::cluster::ClusterSource>,
    /// Run every scenario's adapters with this failover design instead of the file's own
    /// (cluster.behaviour): lab (failover-lab's) or vendor (the vendor's adapter framework's,
    /// which brings its wires: OMF out and the REST API; see docs/vendor-behaviour.md). The
    /// rules a vendor pair breaks by design (1-3 and 5) are measured, not checked. Processes
    /// only.
    #[arg(long, value_parser = |s: &str| s.parse::<failover_core::Behaviour>())]
    behaviour: Option<failover_core::Behaviour>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TargetArg {
    Processes,
    Compose,
    Sim,
}

/// `grpc` or `rest`, for `--failover-protocol`.
pub(crate) fn parse_protocol(
    s: &str,
) -> Result<failover_harness::cluster::ClusterProtocol, String> {
    match s {
        "grpc" => Ok(failover_harness::cluster::ClusterProtocol::Grpc),
        "rest" => Ok(failover_harness::cluster::ClusterProtocol::Rest),
        other => Err(format!("{other:?} is not a protocol; use grpc or rest")),
    }
}

/// `grpc`, `mqtt` or `opcua`, for `--source-protocol`.
pub(crate) fn parse_source(s: &str) -> Result<failover_harness::cluster::ClusterSource, String> {
    match s {
        "grpc" => Ok(failover_harness::cluster::ClusterSource::Grpc),
        "mqtt" => Ok(failover_harness::cluster::ClusterSource::Mqtt),
        "opcua" => Ok(failover_harness::cluster::ClusterSource::OpcUa),
        other => Err(format!(
            "{other:?} is not a source protocol; use grpc, mqtt or opcua"
        )),
    }
}

/// `grpc` or `omf`, for `--egress`.
pub(crate) fn parse_egress(s: &str) -> Result<failover_harness::cluster::ClusterEgress, String> {
    match s {
        "grpc" => Ok(failover_harness::cluster::ClusterEgress::Grpc),
        "omf" => Ok(failover_harness::cluster::ClusterEgress::Omf),
        other => Err(format!("{other:?} is not an egress; use grpc or omf")),
    }
}

/// Runs the scenarios.
pub(crate) async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
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
        egress: args.egress,
        source_protocol: args.source_protocol,
        behaviour: args.behaviour,
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
        for o in outcomes.iter().filter(|o| o.failed()) {
            println!("\nFAILED {} ({})\n{}", o.file, o.name, o.failure_text());
        }
        print!("{}", runner::table(&outcomes));
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, runner::junit(&outcomes))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    let skipped = outcomes.iter().filter(|o| o.skipped.is_some()).count();
    if skipped > 0 {
        eprintln!(
            "{skipped} scenario(s) skipped: they did not run on this target (the reasons are \
             above); a skipped scenario is not a pass, and does not fail the run"
        );
    }
    Ok(if outcomes.iter().any(runner::Outcome::failed) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
