//! `failover-lab demo`: the pair on loopback, the Primary killed, the takeover shown.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use failover_core::Mode;

use failover_harness::cluster::ClusterSpec;

use crate::{parse_duration, run::parse_protocol};

#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
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
    /// Default: grpc, or rest when a design is the vendor's (its wire).
    #[arg(long, value_parser = parse_protocol)]
    failover_protocol: Option<failover_harness::cluster::ClusterProtocol>,
    /// How the Primary egresses: grpc (the lab's DataEndpoint, fence and watermark in one
    /// call) or omf (OMF over HTTP to the endpoint's Edge Data Store path, as the vendor's
    /// adapters egress).
    /// Default: grpc, or omf when a design is the vendor's (its wire).
    #[arg(long, value_parser = crate::run::parse_egress)]
    egress: Option<failover_harness::cluster::ClusterEgress>,
    /// How the adapters collect: grpc (the lab's DataSource), mqtt (the source's MQTT topics)
    /// or opcua (the source's OPC UA address space, a variable per stream).
    #[arg(long = "source", default_value = "grpc", value_parser = crate::run::parse_source)]
    source_protocol: failover_harness::cluster::ClusterSource,
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
    /// Hot, Warm and Cold one after the other on the same fault and seed (instead of --mode),
    /// under each design of --behaviour: one table (takeover time, points lost and duplicated,
    /// and the standby's CPU, memory and traffic with the source, measured before the kill),
    /// with --json one array, with --report-dir one picture of all the runs
    /// (demo-compare.svg), one timeline with its coverage strip each.
    #[arg(long, conflicts_with_all = ["dashboard", "mode"])]
    compare: bool,
    /// The source takes this many clients at a time (default: any number), as sources that
    /// allow one client connection do: with 1, a Hot or Warm standby cannot connect (score 0)
    /// and loses its takeover's gap like Cold. `--compare --max-clients 1` shows why Cold exists.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_clients: Option<u32>,
    /// The failover design of both adapters: lab (failover-lab's: epochs, fence, watermark) or
    /// vendor (the vendor's adapter framework's: a Hot standby trims its queue by the Primary's
    /// LastDataProcessedTime, nothing is fenced; see docs/vendor-behaviour.md). With --compare,
    /// a list (`lab,vendor`): Hot, Warm and Cold under each, on the same fault. The vendor's
    /// design brings its wires, so with it every run (ours too, for a fair comparison) uses
    /// OMF egress and the REST protocol unless told otherwise; gRPC for either is refused.
    #[arg(long, value_delimiter = ',', default_value = "lab",
          value_parser = |s: &str| s.parse::<failover_core::Behaviour>())]
    behaviour: Vec<failover_core::Behaviour>,
    /// Set the standby's clock this far from true time once the pair has settled, before the
    /// kill: `-00:00:03` is 3 s behind. The vendor's design stamps its queue with this clock;
    /// ours does not read it for data.
    #[arg(long, allow_hyphen_values = true, value_parser = parse_offset)]
    standby_clock_offset: Option<i64>,
}

/// A signed hh:mm:ss(.fff) offset, in ms.
fn parse_offset(s: &str) -> Result<i64, String> {
    let (sign, magnitude) = match s.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    let d = parse_duration(magnitude)?;
    let ms = i64::try_from(d.as_millis()).map_err(|_| format!("{s:?} is too large"))?;
    if ms > 86_400_000 {
        return Err(format!(
            "{s:?} is more than a day; at most 24:00:00 either way"
        ));
    }
    Ok(sign * ms)
}

/// Runs the demo.
pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if !(args.rate.is_finite() && args.rate > 0.0 && args.rate <= 100_000.0) {
        anyhow::bail!(
            "--rate must be above 0 and at most 100000, not {}",
            args.rate
        );
    }
    let behaviours = {
        let mut b = args.behaviour.clone();
        b.dedup();
        b
    };
    if behaviours.len() > 1 && !args.compare {
        anyhow::bail!("--behaviour takes one design without --compare (a list needs --compare)");
    }
    let vendor = behaviours.contains(&failover_core::Behaviour::Vendor);
    use failover_harness::cluster::{ClusterEgress, ClusterProtocol};
    if vendor && args.failover_protocol == Some(ClusterProtocol::Grpc) {
        anyhow::bail!(
            "--behaviour vendor speaks the vendor's REST API: use --failover-protocol rest (the \
             default with it), not grpc"
        );
    }
    if vendor && args.egress == Some(ClusterEgress::Grpc) {
        anyhow::bail!(
            "--behaviour vendor egresses OMF: use --egress omf (the default with it), not grpc"
        );
    }
    if args.dashboard && vendor {
        anyhow::bail!("--dashboard runs our design only; drop --behaviour vendor");
    }
    let spec = ClusterSpec {
        behaviour: behaviours[0],
        mode: args.mode,
        failover_timeout: args.failover_timeout,
        streams: args.streams,
        components: args.components.min(args.streams),
        rate_hz: args.rate,
        warm_test_interval: args.warm_test_interval,
        log_dir: args.keep_logs.clone(),
        failover_protocol: args.failover_protocol.unwrap_or(if vendor {
            ClusterProtocol::Rest
        } else {
            ClusterProtocol::Grpc
        }),
        egress: args.egress.unwrap_or(if vendor {
            ClusterEgress::Omf
        } else {
            ClusterEgress::Grpc
        }),
        source_protocol: args.source_protocol,
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
    let opts = failover_harness::demo::DemoOptions {
        spec: spec.clone(),
        before_kill: args.before_kill,
        after_takeover: args.after_takeover,
        standby_clock_offset_ms: args.standby_clock_offset.unwrap_or(0),
    };
    let progress = |line: &str| eprintln!("[demo] {line}");
    if args.compare {
        let reports = tokio::select! {
            r = failover_harness::demo::compare(&opts, &behaviours, &progress) => r?,
            () = failover_proto::process::shutdown_signal() => {
                eprintln!("[demo] interrupted; every process is stopped");
                return Ok(ExitCode::from(130));
            }
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&reports)?);
        } else {
            print!("{}", failover_harness::demo::compare_text(&reports));
        }
        if let Some(dir) = &args.report_dir {
            let path = dir.join("demo-compare.svg");
            std::fs::create_dir_all(dir)
                .and_then(|()| {
                    std::fs::write(&path, failover_harness::demo::compare_svg(&reports, &spec))
                })
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            eprintln!("[demo] the runs' picture: {}", path.display());
        }
        return Ok(
            if reports
                .iter()
                .all(failover_harness::demo::DemoReport::took_over)
            {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            },
        );
    }
    let report = tokio::select! {
        r = failover_harness::demo::run(&opts, &progress) => r?,
        () = failover_proto::process::shutdown_signal() => {
            eprintln!("[demo] interrupted; every process is stopped");
            return Ok(ExitCode::from(130));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", failover_harness::demo::render(&report, &spec));
    }
    if let Some(dir) = &args.keep_logs {
        eprintln!("[demo] logs kept in {}", dir.display());
    }
    if let Some(dir) = &args.report_dir {
        let path = dir.join(format!("demo-{}.svg", report.mode.to_lowercase()));
        let recorded = dir.join(format!("demo-{}.jsonl", report.mode.to_lowercase()));
        std::fs::create_dir_all(dir)
            .and_then(|()| {
                std::fs::write(&path, failover_harness::demo::timeline_svg(&report, &spec))
            })
            .and_then(|()| {
                std::fs::write(&recorded, failover_harness::demo::recording(&report, &spec))
            })
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
