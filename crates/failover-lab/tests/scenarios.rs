//! Runs every scenario in `scenarios/` on real processes, several at a time, and reports like
//! the standard test harness: `cargo test --test scenarios -- NAME` runs only the files whose
//! name contains NAME; `FAILOVER_LAB_JOBS` sets how many run at once (default 4).

use std::{path::PathBuf, process::ExitCode, time::Instant};

use failover_lab::{runner, scenario};

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
    let reports = std::env::temp_dir().join(format!("failover-lab-reports-{}", std::process::id()));
    let opts = runner::RunOptions {
        seed: None,
        keep_logs: None,
        jobs,
        target: runner::RunTarget::Processes,
        report_dir: Some(reports.clone()),
    };
    let quiet = |_: &str| {};
    let outcomes = runtime.block_on(runner::run_all(&files, &opts, &quiet));
    for o in &outcomes {
        println!(
            "test {} ... {} ({:.1}s)",
            o.file,
            if o.passed { "ok" } else { "FAILED" },
            o.seconds
        );
    }
    let failed: Vec<&runner::Outcome> = outcomes.iter().filter(|o| !o.passed).collect();
    if !failed.is_empty() {
        println!("\nfailures:\n");
        for o in &failed {
            println!("---- {} ({}) ----\n{}", o.file, o.name, o.failure_text());
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; 0 ignored; 0 measured; {} filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        outcomes.len() - failed.len(),
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
    let _ = std::fs::remove_dir_all(&reports);
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
