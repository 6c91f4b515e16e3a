//! Runs every scenario in `scenarios/` on real processes, several at a time, and reports like
//! the standard test harness: `cargo test --test scenarios -- NAME` runs only the files whose
//! name contains NAME; `FAILOVER_LAB_JOBS` sets how many run at once (default 4).
//!
//! Then the kill, pause, cut and override stories of [`REST_STORIES`] run again on the vendor's
//! wires, twice at once: the adapters collecting over MQTT, then over OPC UA, on the vendor's
//! REST API, and egressing OMF (`failover-lab run --source-protocol mqtt|opcua
//! --failover-protocol rest --egress omf`), so every wire keeps every promise of those stories.
//! The OPC UA pass runs [`HISTORY_STORY`] too, its recovery read with HistoryRead (MQTT keeps no
//! history). (The whole library runs so by hand; see scenarios/README.md.) Last, the whole library runs on the deterministic simulator
//! (`failover-lab run --target sim`), five seeds each.

use std::{path::PathBuf, process::ExitCode, time::Instant};

use failover_harness::{runner, scenario};

/// The stories run again on the vendor's wires (MQTT or OPC UA in, REST to the service, OMF out):
/// a kill (Hot), a pause (Cold), a cut from the service and an operator override.
const REST_STORIES: [&str; 4] = [
    "hot-primary-killed.toml",
    "cold-primary-paused-and-resumed.toml",
    "primary-cut-from-arbiter.toml",
    "role-override-expires.toml",
];

/// The history recovery story, run again on OPC UA in (HistoryRead), REST and OMF out.
const HISTORY_STORY: &str = "history-only-recovery-not-carried-over.toml";

fn main() -> ExitCode {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let files = match scenario::collect(&[dir]) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let total = files.len();
    let files: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| {
            filters.is_empty()
                || filters
                    .iter()
                    .any(|n| f.to_string_lossy().contains(n.as_str()))
        })
        .collect();
    let jobs = std::env::var("FAILOVER_LAB_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(4);
    println!("\nrunning {} scenarios ({jobs} at a time)", files.len());
    let started = Instant::now();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let temp = tempfile::tempdir().expect("a temporary folder");
    let reports = temp.path().to_path_buf();
    let opts = runner::RunOptions {
        seed: None,
        keep_logs: None,
        jobs,
        target: runner::RunTarget::Processes,
        report_dir: Some(reports.clone()),
        failover_protocol: None,
        egress: None,
        source_protocol: None,
        behaviour: None,
    };
    let quiet = |_: &str| {};
    let outcomes = runtime.block_on(runner::run_all(&files, &opts, &quiet));
    for o in &outcomes {
        println!("test {} ... {} ({:.1}s)", o.file, result(o), o.seconds);
    }
    let rest_files: Vec<PathBuf> = files
        .iter()
        .filter(|f| {
            f.file_name()
                .is_some_and(|n| REST_STORIES.iter().any(|r| n == *r))
        })
        .cloned()
        .collect();
    let opcua_files: Vec<PathBuf> = files
        .iter()
        .filter(|f| {
            f.file_name()
                .is_some_and(|n| n == HISTORY_STORY || REST_STORIES.iter().any(|r| n == *r))
        })
        .cloned()
        .collect();
    // Two passes at once (their clusters mostly wait): MQTT in, and OPC UA in.
    let wires_opts = |source| runner::RunOptions {
        report_dir: None,
        failover_protocol: Some(failover_harness::cluster::ClusterProtocol::Rest),
        egress: Some(failover_harness::cluster::ClusterEgress::Omf),
        source_protocol: Some(source),
        behaviour: None,
        ..opts.clone()
    };
    let mqtt_opts = wires_opts(failover_harness::cluster::ClusterSource::Mqtt);
    let opcua_opts = wires_opts(failover_harness::cluster::ClusterSource::OpcUa);
    let (mqtt_outcomes, opcua_outcomes) = runtime.block_on(async {
        tokio::join!(
            runner::run_all(&rest_files, &mqtt_opts, &quiet),
            runner::run_all(&opcua_files, &opcua_opts, &quiet)
        )
    });
    let named = |outcomes: Vec<runner::Outcome>, source: &'static str| {
        outcomes.into_iter().map(move |mut o| {
            o.file = format!(
                "{} (on the vendor's wires: {source} in, REST to the service, OMF out)",
                o.file
            );
            o
        })
    };
    let rest_outcomes: Vec<runner::Outcome> = named(mqtt_outcomes, "MQTT")
        .chain(named(opcua_outcomes, "OPC UA"))
        .collect();
    for o in &rest_outcomes {
        println!("test {} ... {} ({:.1}s)", o.file, result(o), o.seconds);
    }
    // The same files on the deterministic simulator, five seeds each: a file it cannot stage
    // (TLS, authentication) is skipped with its reason.
    let sim_opts = runner::RunOptions {
        report_dir: None,
        failover_protocol: None,
        egress: None,
        source_protocol: None,
        behaviour: None,
        target: runner::RunTarget::Sim { seeds: 5 },
        ..opts
    };
    let sim_outcomes: Vec<runner::Outcome> = runtime
        .block_on(runner::run_all(&files, &sim_opts, &quiet))
        .into_iter()
        .map(|mut o| {
            o.file = format!("{} (on the simulator, 5 seeds)", o.file);
            o
        })
        .collect();
    for o in &sim_outcomes {
        println!("test {} ... {} ({:.1}s)", o.file, result(o), o.seconds);
    }
    let failed: Vec<&runner::Outcome> = outcomes
        .iter()
        .chain(&rest_outcomes)
        .chain(&sim_outcomes)
        .filter(|o| o.failed())
        .collect();
    let ran = outcomes.iter().chain(&rest_outcomes).chain(&sim_outcomes);
    let passed = ran.clone().filter(|o| o.passed).count();
    let skipped = ran.filter(|o| o.skipped.is_some()).count();
    if !failed.is_empty() {
        println!("\nfailures:\n");
        for o in &failed {
            println!("---- {} ({}) ----\n{}", o.file, o.name, o.failure_text());
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; {skipped} ignored (skipped on a stage that cannot run them); 0 measured; {} filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        total - files.len(),
        started.elapsed().as_secs_f64()
    );
    // --report-dir: one timeline picture per scenario.
    let pictures = std::fs::read_dir(&reports)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "svg"))
                .filter(|e| {
                    std::fs::read_to_string(e.path())
                        .is_ok_and(|t| t.starts_with("<svg") && t.contains("</svg>"))
                })
                .count()
        })
        .unwrap_or(0);
    // The recordings (and pictures) end with the story, not with the pair being stopped: every
    // story of the library ends with somebody Primary, and before the fix every recording ended
    // with both adapters gone.
    let ended_without_primary: Vec<String> = std::fs::read_dir(&reports)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
                .filter(|e| {
                    failover_harness::recording::read(&e.path())
                        .is_ok_and(|(_, t)| t.history.last().is_none_or(|p| p.primary.is_none()))
                })
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default();
    if !ended_without_primary.is_empty() {
        println!("recordings that end with nobody Primary: {ended_without_primary:?}");
        return ExitCode::FAILURE;
    }
    if pictures != outcomes.len() {
        println!(
            "--report-dir wrote {pictures} timeline pictures for {} scenarios",
            outcomes.len()
        );
        return ExitCode::FAILURE;
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A scenario's result as the test list shows it: a skipped one says why, and is no pass.
fn result(o: &runner::Outcome) -> String {
    match (&o.skipped, o.passed) {
        (Some(why), _) => format!("ignored, skipped: {why}"),
        (None, true) => "ok".into(),
        (None, false) => "FAILED".into(),
    }
}
