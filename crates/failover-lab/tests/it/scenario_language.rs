//! The scenario language's comparisons fail when they should, on real processes and on the
//! simulator alike: a value that should have grown since a named step and did not, a Primary
//! outside the named ones, a FailoverState text that does not contain the words or match the
//! pattern, a `hold` broken half-way and a `never` that happens. And a failing seed saved as a
//! scenario file fails with the same invariant on both.

use std::path::Path;

use failover_harness::{runner, scenario};

const START: &str = r#"
name = "language"
[cluster]
mode = "Hot"
failover_timeout = "00:00:02"

[[step]]
wait_until = { primary = "adapter-a", role = { adapter-b = "Secondary" } }

[[step]]
id = "steady"
run_for = "00:00:00.300"

[[step]]
run_for = "00:00:00.300"
"#;

async fn failure_of(target: &runner::RunTarget, last_step: &str) -> runner::Failure {
    let text = format!("{START}\n[[step]]\n{last_step}\n");
    let s = scenario::parse("language.toml", &text, Path::new("language.toml")).expect("parses");
    let opts = runner::RunOptions {
        jobs: 1,
        target: target.clone(),
        ..Default::default()
    };
    let outcome = runner::run_scenario(&s, &opts, &|_| {}).await;
    assert!(!outcome.passed, "{last_step} should fail");
    outcome.failure.expect("a failure")
}

#[tokio::test(flavor = "multi_thread")]
async fn comparisons_fail_when_they_should() {
    let (processes, sim) = tokio::join!(
        comparisons_fail_on(runner::RunTarget::Processes),
        comparisons_fail_on(runner::RunTarget::Sim { seeds: 2 })
    );
    processes.expect("on processes");
    sim.expect("on the simulator");
}

/// Every comparison fails as it should on `target` (an error names the first that did not).
async fn comparisons_fail_on(target: runner::RunTarget) -> Result<(), String> {
    let t = &target;
    let failure_of = |step: &'static str| failure_of(t, step);
    let (grew, one_of, contains, matches, hold, never, closing) = tokio::join!(
        // No fault: the epoch did not grow since the steady step, though data did.
        failure_of(
            r#"expect = { audit = { received = "more than at step steady" }, epoch = "more than at step steady" }"#
        ),
        failure_of(r#"expect = { primary = ["adapter-b"] }"#),
        failure_of(
            r#"expect = { state = { adapter = "adapter-a", Role = { contains = "Second" } } }"#
        ),
        failure_of(
            r#"expect = { state = { adapter = "adapter-a", Role = { matches = "^Sec" } } }"#
        ),
        // A hold broken half-way: adapter-a is killed while it must stay Primary.
        failure_of(
            "hold = { primary = \"adapter-a\" }\n\n[[step]]\nrun_for = \"00:00:00.300\"\n\n[[step]]\nkill = \"adapter-a\"\n\n[[step]]\nwait_until = { primary = \"adapter-b\" }\n\n[[step]]\nrun_for = \"00:00:00.300\""
        ),
        // A never that happens: the takeover it forbids.
        failure_of(
            "never = { role_transitions = [\"adapter-b Secondary -> Primary\"] }\n\n[[step]]\nkill = \"adapter-a\"\n\n[[step]]\nwait_until = { primary = \"adapter-b\" }"
        ),
        // A hold broken by the last step of its window: the handover the graceful stop makes is
        // taken by the service before the `until` step begins, though the observer may hear of
        // it just after (before the fix, every seed of the simulator passed this).
        failure_of(
            "hold = { primary = \"adapter-a\" }\nuntil = \"after\"\n\n[[step]]\nstop = \"adapter-a\"\n\n[[step]]\nid = \"after\"\nrun_for = \"00:00:00.300\""
        ),
    );
    check(|| {
        assert!(
            matches
                .message
                .contains("FailoverState Role to match \"^Sec\", got \"Primary\""),
            "{}",
            matches.message
        );
        // Both fail at the step that set them, naming the moment.
        assert_eq!(hold.step, 4, "{}", hold.message);
        assert!(
            hold.message.contains("the hold broke at")
                && hold.message.contains("expected Primary adapter-a, got"),
            "{}",
            hold.message
        );
        assert_eq!(never.step, 4, "{}", never.message);
        assert_eq!(closing.step, 4, "{}", closing.message);
        assert!(
            closing.message.contains("the hold broke at")
                && closing.message.contains("expected Primary adapter-a, got"),
            "{}",
            closing.message
        );
        assert!(
            never.message.contains("it happened at")
                && never.message.contains("adapter-b Secondary -> Primary"),
            "{}",
            never.message
        );
        assert_eq!(grew.step, 4);
        assert!(
            grew.message
                .contains("expected epoch more than at step steady (1), got 1"),
            "{}",
            grew.message
        );
        assert!(
            one_of
                .message
                .contains("expected Primary adapter-b, got adapter-a"),
            "{}",
            one_of.message
        );
        assert!(
            contains
                .message
                .contains("FailoverState Role to contain \"Second\", got \"Primary\""),
            "{}",
            contains.message
        );
    })
    .map_err(|e| format!("{target:?}: {e}"))
}

/// Runs the assertions, turning a failed one into an error (so both targets report).
fn check(f: impl FnOnce() + std::panic::UnwindSafe) -> Result<(), String> {
    std::panic::catch_unwind(f).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_default()
    })
}

/// A seed broken on purpose (`--break epoch-check`) saved as a shrunk scenario file fails with
/// the same invariant on the simulator and on real processes. (Seed 40 of the uniform draw,
/// `--swarm off`, whose schedule cuts the Primary from the endpoint.)
#[tokio::test(flavor = "multi_thread")]
async fn a_saved_failing_seed_fails_alike_on_the_simulator_and_on_processes() {
    let temp = tempfile::tempdir().expect("a temporary folder");
    let dir = temp.path().to_path_buf();
    let file = dir.join("seed-40.toml");
    let bin = failover_harness::cluster::bin_dir()
        .expect("binaries")
        .join("failover-lab");
    let out = tokio::process::Command::new(&bin)
        .args([
            "sim",
            "--seed",
            "40",
            "--break",
            "epoch-check",
            "--swarm",
            "off",
            "--save-scenario",
        ])
        .arg(&file)
        .output()
        .await
        .expect("failover-lab runs");
    let said = String::from_utf8_lossy(&out.stderr);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}: {said}"));
    // Shrunk: one fault (a cut and its heal), ending with a rule the broken check breaks: 2
    // (a fenced epoch's write accepted) or 5 (points written twice).
    assert!(text.contains("break = \"epoch-check\""), "{text}");
    let rule = ["2", "5"]
        .into_iter()
        .find(|r| text.ends_with(&format!("expect = {{ invariants = [{r}] }}\n")))
        .unwrap_or_else(|| panic!("not rule 2 or 5:\n{text}"));
    let s = scenario::load(&file).expect("the saved file parses");
    assert!(s.steps.len() <= 8, "{} steps:\n{text}", s.steps.len());
    for target in [
        runner::RunTarget::Sim { seeds: 1 },
        runner::RunTarget::Processes,
    ] {
        let opts = runner::RunOptions {
            jobs: 1,
            target: target.clone(),
            ..Default::default()
        };
        let o = runner::run_scenario(&s, &opts, &|_| {}).await;
        let f = o
            .failure
            .unwrap_or_else(|| panic!("{target:?}: the saved seed passed"));
        assert_eq!(f.step, s.steps.len(), "{target:?}: {}", f.message);
        assert!(
            f.message.contains(&format!("[rule {rule}]")),
            "{target:?}: {}",
            f.message
        );
    }
}

/// A seed that broke nothing is not saved: the command says so and writes no file.
#[tokio::test(flavor = "multi_thread")]
async fn a_seed_that_broke_nothing_is_not_saved() {
    let temp = tempfile::tempdir().expect("a temporary folder");
    let file = temp.path().join("unsaved.toml");
    let bin = failover_harness::cluster::bin_dir()
        .expect("binaries")
        .join("failover-lab");
    let out = tokio::process::Command::new(&bin)
        .args(["sim", "--seed", "1", "--save-scenario"])
        .arg(&file)
        .output()
        .await
        .expect("failover-lab runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("seed 1 broke no invariant: nothing to save"),
        "{said}"
    );
    assert!(!file.exists());
}

/// A step's words in the timeline (the failure's and the pictures') name the adapter a role
/// stood for, in plain words. Before: `fail source component 0 for the Primary (Component {
/// component: 0, for_client: Some("adapter-a") })`, Rust's debug text.
#[tokio::test(flavor = "multi_thread")]
async fn steps_read_in_plain_words_in_the_timeline() {
    let f = failure_of(
        &runner::RunTarget::Sim { seeds: 1 },
        "source_outage = { component = 0, adapter = \"primary\" }\n\n[[step]]\nexpect = { epoch = 99 }",
    )
    .await;
    let timeline = f.timeline.join("\n");
    assert!(
        timeline.contains("fail source component 0 for adapter-a"),
        "{timeline}"
    );
    assert!(!timeline.contains('{'), "{timeline}");
}
