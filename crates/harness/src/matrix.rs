//! `failover-lab matrix`: the failure matrix. Each fault kind is told as a short scenario
//! ([`Fault::steps`]), and played on each failover design (ours, the vendor's) in each mode,
//! several times, on real processes through the scenario runner. After each run the endpoint's
//! audit gives what was lost and duplicated; a cell of the table gives the median and the worst
//! over its runs. Both designs run on the same wires (OMF out, the REST protocol: the vendor's),
//! the same failoverTimeout and rate, so a cell differs only by the design.

use std::{fmt::Write as _, path::PathBuf, time::Duration};

use failover_core::{Behaviour, Mode, timespan::format_timespan};
use serde::Serialize;

use crate::runner::{self, Outcome, RunOptions, RunTarget};

/// A fault kind of the matrix: one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The Primary SIGKILLed.
    Kill,
    /// The Primary SIGSTOPped past failoverTimeout, then resumed.
    Pause,
    /// The Primary's link to the failover service cut past failoverTimeout, then healed.
    Cut,
    /// The Primary's source connection cut (its score falls to 0), then restored.
    SourceOutage,
    /// The failover service killed for two failoverTimeouts, then started again.
    ServiceOutage,
    /// The standby's clock set behind by failoverTimeout/2 + 1 s, then the Primary killed.
    ClockOffset,
    /// Both adapters' mode changed at run time to the next mode, then back.
    ModeSwitch,
    /// An operator forces the standby Primary for two failoverTimeouts.
    Override,
}

impl Fault {
    /// Every row, in the table's order.
    pub const ALL: [Fault; 8] = [
        Fault::Kill,
        Fault::Pause,
        Fault::Cut,
        Fault::SourceOutage,
        Fault::ServiceOutage,
        Fault::ClockOffset,
        Fault::ModeSwitch,
        Fault::Override,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Cut => "cut",
            Fault::SourceOutage => "source-outage",
            Fault::ServiceOutage => "service-outage",
            Fault::ClockOffset => "clock-offset",
            Fault::ModeSwitch => "mode-switch",
            Fault::Override => "override",
        }
    }

    /// What it does, in words (the table's first column).
    pub fn what(self) -> &'static str {
        match self {
            Fault::Kill => "the Primary SIGKILLed",
            Fault::Pause => "the Primary paused (SIGSTOP) until the other took over, then resumed",
            Fault::Cut => {
                "the Primary's link to the failover service cut until the other took over, then healed"
            }
            Fault::SourceOutage => {
                "the Primary's source connection cut until the other took over, then restored"
            }
            Fault::ServiceOutage => {
                "the failover service killed for two failoverTimeouts, then started again"
            }
            Fault::ClockOffset => {
                "the standby's clock set behind by failoverTimeout/2 + 1 s, then the Primary SIGKILLed"
            }
            Fault::ModeSwitch => {
                "both adapters switched at run time to the next mode (Hot to Warm, Warm to Cold, Cold to Hot), then back"
            }
            Fault::Override => {
                "an operator forces the standby Primary for two failoverTimeouts (the role stays with it after)"
            }
        }
    }

    /// The scenario steps that tell it, after the pair has settled with `adapter-a` Primary.
    pub fn steps(self, mode: Mode, failover_timeout: Duration) -> String {
        let two = format_timespan(failover_timeout * 2);
        let took_over = "[[step]]\nwait_until = { primary = \"adapter-b\" }\n";
        let settle = "[[step]]\nrun_for = \"00:00:03\"\n";
        let a_second = "[[step]]\nrun_for = \"00:00:01\"\n";
        let body = match self {
            Fault::Kill => format!("[[step]]\nkill = \"adapter-a\"\n{took_over}"),
            Fault::Pause => format!(
                "[[step]]\npause = \"adapter-a\"\n{took_over}{a_second}[[step]]\nresume = \"adapter-a\"\n"
            ),
            Fault::Cut => {
                let link = "{ between = [\"adapter-a\", \"arbiter\"] }";
                format!(
                    "[[step]]\ncut_link = {link}\n{took_over}{a_second}[[step]]\nheal_link = {link}\n"
                )
            }
            Fault::SourceOutage => {
                let who = "{ adapter = \"adapter-a\" }";
                format!(
                    "[[step]]\nsource_outage = {who}\n{took_over}{a_second}[[step]]\nsource_restore = {who}\n"
                )
            }
            Fault::ServiceOutage => format!(
                "[[step]]\nkill = \"arbiter\"\n[[step]]\nrun_for = \"{two}\"\n[[step]]\nrestart = \"arbiter\"\n[[step]]\nwait_until = {{ primary = \"any\" }}\n"
            ),
            Fault::ClockOffset => {
                let behind = format_timespan(failover_timeout / 2 + Duration::from_secs(1));
                format!(
                    "[[step]]\nclock = {{ adapter = \"adapter-b\", offset = \"-{behind}\" }}\n{settle}[[step]]\nkill = \"adapter-a\"\n{took_over}"
                )
            }
            Fault::ModeSwitch => {
                let next = match mode {
                    Mode::Hot => Mode::Warm,
                    Mode::Warm => Mode::Cold,
                    Mode::Cold => Mode::Hot,
                };
                format!(
                    "[[step]]\nset_config = {{ adapter = \"all\", mode = \"{next}\" }}\n{settle}[[step]]\nset_config = {{ adapter = \"all\", mode = \"{mode}\" }}\n"
                )
            }
            Fault::Override => format!(
                "[[step]]\nrole_override = {{ adapter = \"adapter-b\", role = \"Primary\", expiration = \"{two}\" }}\n{took_over}[[step]]\nrun_for = \"{two}\"\n"
            ),
        };
        format!("{settle}{body}{settle}")
    }
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Fault::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a fault of the matrix; use one of {}",
                    Fault::ALL.map(Fault::name).join(", ")
                )
            })
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct MatrixOptions {
    /// Rows.
    pub faults: Vec<Fault>,
    /// Column groups.
    pub behaviours: Vec<Behaviour>,
    /// Columns within a group.
    pub modes: Vec<Mode>,
    /// Runs per cell (each with its own seed).
    pub runs: u32,
    /// Runs at once.
    pub jobs: usize,
    /// The group's failoverTimeout.
    pub failover_timeout: Duration,
    /// Source ticks per second (8 streams).
    pub rate_hz: f64,
    /// The first run's seed; run k of a cell uses `seed + k`.
    pub seed: u64,
    /// Keep every run's logs here (one folder per run); failing runs keep theirs anyway.
    pub keep_logs: Option<PathBuf>,
}

/// One cell: a fault on a design in a mode, over its runs.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// The fault's name.
    pub fault: String,
    /// "lab" or "vendor".
    pub behaviour: String,
    /// Hot, Warm or Cold.
    pub mode: String,
    /// Points lost, per run that was audited.
    pub lost: Vec<u64>,
    /// Points duplicated, per run that was audited.
    pub duplicated: Vec<u64>,
    /// Runs that failed (a step, or a rule the design keeps), with why.
    pub failures: Vec<String>,
}

/// The scenario file of one run.
pub fn scenario_text(
    fault: Fault,
    behaviour: Behaviour,
    mode: Mode,
    opts: &MatrixOptions,
    seed: u64,
) -> String {
    format!(
        "name = \"matrix: {} ({mode}, {} design)\"\nseed = {seed}\n\n[cluster]\nmode = \"{mode}\"\nfailover_timeout = \"{}\"\nrate = {}\nbehaviour = \"{}\"\negress = \"omf\"\nfailover_protocol = \"rest\"\n\n{}",
        fault.what(),
        behaviour.as_str(),
        format_timespan(opts.failover_timeout),
        opts.rate_hz,
        behaviour.as_str(),
        fault.steps(mode, opts.failover_timeout)
    )
}

/// Runs the matrix: every cell's runs written as scenario files to a temporary folder and
/// played by the runner, `jobs` at a time.
pub async fn run(
    opts: &MatrixOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Vec<Cell>> {
    let dir = tempfile::Builder::new()
        .prefix("failover-lab-matrix-")
        .tempdir()?;
    let mut files = Vec::new();
    let mut cells = Vec::new();
    for fault in &opts.faults {
        for behaviour in &opts.behaviours {
            for mode in &opts.modes {
                let index = cells.len();
                cells.push(Cell {
                    fault: fault.name().into(),
                    behaviour: behaviour.as_str().into(),
                    mode: mode.to_string(),
                    lost: vec![],
                    duplicated: vec![],
                    failures: vec![],
                });
                for k in 0..opts.runs {
                    let path = dir.path().join(format!(
                        "{}-{}-{}-{k}.toml",
                        fault.name(),
                        behaviour.as_str(),
                        mode.to_string().to_lowercase()
                    ));
                    let text =
                        scenario_text(*fault, *behaviour, *mode, opts, opts.seed + u64::from(k));
                    std::fs::write(&path, text)?;
                    files.push((path, index));
                }
            }
        }
    }
    progress(&format!(
        "{} runs: {} faults x {} designs x {} modes x {} runs, {} at a time",
        files.len(),
        opts.faults.len(),
        opts.behaviours.len(),
        opts.modes.len(),
        opts.runs,
        opts.jobs
    ));
    let run_opts = RunOptions {
        seed: None,
        keep_logs: opts.keep_logs.clone(),
        jobs: opts.jobs,
        target: RunTarget::Processes,
        report_dir: None,
        failover_protocol: None,
        egress: None,
        source_protocol: None,
        behaviour: None,
    };
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let outcomes = runner::run_all(&paths, &run_opts, progress).await;
    for outcome in &outcomes {
        let Some((_, index)) = files
            .iter()
            .find(|(p, _)| p.display().to_string() == outcome.file)
        else {
            continue;
        };
        tally(&mut cells[*index], outcome);
    }
    Ok(cells)
}

fn tally(cell: &mut Cell, outcome: &Outcome) {
    if let Some(a) = outcome.audit {
        cell.lost.push(a.lost);
        cell.duplicated.push(a.duplicated);
    }
    if let Some(why) = &outcome.skipped {
        cell.failures.push(format!("skipped: {why}"));
    } else if outcome.failed() {
        cell.failures.push(outcome.failure_text());
    }
}

/// The median and the worst of `values` (None when empty).
pub fn median_and_worst(values: &[u64]) -> Option<(u64, u64)> {
    let mut v = values.to_vec();
    v.sort_unstable();
    let worst = *v.last()?;
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]).div_ceil(2)
    };
    Some((median, worst))
}

/// The matrix as a Markdown table: rows are faults, columns designs by mode; a cell is
/// `lost median (worst) / duplicated median (worst)`, with the failed runs counted.
pub fn markdown(cells: &[Cell], opts: &MatrixOptions) -> String {
    let mut out = String::new();
    let _ = write!(out, "| fault |");
    for b in &opts.behaviours {
        for m in &opts.modes {
            let _ = write!(out, " {} {m} |", b.as_str());
        }
    }
    out.push_str("\n|---|");
    for _ in 0..opts.behaviours.len() * opts.modes.len() {
        out.push_str("---|");
    }
    out.push('\n');
    for fault in &opts.faults {
        let _ = write!(out, "| {} |", fault.what());
        for b in &opts.behaviours {
            for m in &opts.modes {
                let cell = cells.iter().find(|c| {
                    c.fault == fault.name() && c.behaviour == b.as_str() && c.mode == m.to_string()
                });
                let _ = write!(out, " {} |", cell.map_or_else(String::new, cell_text));
            }
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "\nEach cell: points lost, median (worst) / points duplicated, median (worst), over {} runs \
         per cell (8 streams at {} Hz, failoverTimeout {}, OMF out, the REST protocol); \
         \"n failed\": runs whose steps or rules failed (listed below the table).",
        opts.runs,
        opts.rate_hz,
        format_timespan(opts.failover_timeout)
    );
    let failed: Vec<&Cell> = cells.iter().filter(|c| !c.failures.is_empty()).collect();
    if !failed.is_empty() {
        out.push_str("\nFailed runs:\n");
        for c in failed {
            for f in &c.failures {
                let first = f.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                let _ = writeln!(out, "- {} / {} / {}: {first}", c.fault, c.behaviour, c.mode);
            }
        }
    }
    out
}

fn cell_text(c: &Cell) -> String {
    let mut text = match (median_and_worst(&c.lost), median_and_worst(&c.duplicated)) {
        (Some((lm, lw)), Some((dm, dw))) => format!("{lm} ({lw}) / {dm} ({dw})"),
        _ => "no audit".to_string(),
    };
    if !c.failures.is_empty() {
        let _ = write!(text, ", {} failed", c.failures.len());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> MatrixOptions {
        MatrixOptions {
            faults: Fault::ALL.to_vec(),
            behaviours: vec![Behaviour::Lab, Behaviour::Vendor],
            modes: Mode::ALL.to_vec(),
            runs: 1,
            jobs: 1,
            failover_timeout: Duration::from_secs(2),
            rate_hz: 10.0,
            seed: 1,
            keep_logs: None,
        }
    }

    /// Every run the matrix writes is a scenario the runner takes: it parses, and no step of
    /// it is refused for a vendor pair (whose writes carry no epoch).
    #[test]
    fn every_cell_is_a_scenario_the_runner_takes() {
        let o = opts();
        let dir = tempfile::tempdir().expect("dir");
        for fault in Fault::ALL {
            for b in [Behaviour::Lab, Behaviour::Vendor] {
                for mode in Mode::ALL {
                    let path = dir.path().join("cell.toml");
                    std::fs::write(&path, scenario_text(fault, b, mode, &o, 7)).expect("write");
                    let s = crate::scenario::load(&path)
                        .unwrap_or_else(|e| panic!("{} {b:?} {mode}: {e}", fault.name()));
                    assert_eq!((s.cluster.mode, s.cluster.behaviour), (mode, b));
                    let refused = crate::cluster::refusal(&s.cluster)
                        .or_else(|| crate::cluster::steps_refusal(&s, &s.cluster));
                    assert_eq!(refused, None, "{} {b:?} {mode}", fault.name());
                }
            }
        }
    }

    #[test]
    fn cells_give_the_median_and_the_worst() {
        assert_eq!(median_and_worst(&[]), None);
        assert_eq!(median_and_worst(&[5]), Some((5, 5)));
        assert_eq!(median_and_worst(&[9, 1, 4]), Some((4, 9)));
        assert_eq!(median_and_worst(&[1, 2, 4, 10]), Some((3, 10)));
        let o = MatrixOptions {
            faults: vec![Fault::Kill],
            behaviours: vec![Behaviour::Vendor],
            modes: vec![Mode::Hot],
            ..opts()
        };
        let cells = [Cell {
            fault: "kill".into(),
            behaviour: "vendor".into(),
            mode: "Hot".into(),
            lost: vec![0, 0, 8],
            duplicated: vec![96, 88, 104],
            failures: vec!["step 3 failed\nmore".into()],
        }];
        let md = markdown(&cells, &o);
        assert!(md.contains("| fault | vendor Hot |"), "{md}");
        assert!(
            md.contains("| the Primary SIGKILLed | 0 (8) / 96 (104), 1 failed |"),
            "{md}"
        );
        assert!(md.contains("- kill / vendor / Hot: step 3 failed"), "{md}");
    }

    #[test]
    fn faults_are_named_on_the_command_line() {
        for f in Fault::ALL {
            assert_eq!(f.name().parse::<Fault>(), Ok(f));
        }
        assert!(
            "nap"
                .parse::<Fault>()
                .unwrap_err()
                .contains("kill, pause, cut")
        );
    }
}
