//! The scenario language's comparisons fail when they should, on real processes: a value that
//! should have grown since a named step and did not, a Primary outside the named ones, a
//! FailoverState text that does not contain the words or match the pattern, a `hold` broken half-way and a `never`
//! that happens.

use std::path::Path;

use failover_lab::{runner, scenario};

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

async fn failure_of(last_step: &str) -> runner::Failure {
    let text = format!("{START}\n[[step]]\n{last_step}\n");
    let s = scenario::parse("language.toml", &text, Path::new("language.toml")).expect("parses");
    let opts = runner::RunOptions {
        jobs: 1,
        ..Default::default()
    };
    let outcome = runner::run_scenario(&s, &opts, &|_| {}).await;
    assert!(!outcome.passed, "{last_step} should fail");
    outcome.failure.expect("a failure")
}

#[tokio::test(flavor = "multi_thread")]
async fn comparisons_fail_when_they_should() {
    let (grew, one_of, contains, matches, hold, never) = tokio::join!(
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
    );
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
}
