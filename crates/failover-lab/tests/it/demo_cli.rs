//! `failover-lab demo --json`, as a user runs it.

use std::process::Command;

use serde_json::Value;

#[test]
fn demo_json_reports_a_clean_hot_takeover() {
    let out = Command::new(env!("CARGO_BIN_EXE_failover-lab"))
        .args([
            "demo",
            "--mode",
            "Hot",
            "--json",
            "--failover-timeout",
            "00:00:02",
            "--before-kill",
            "00:00:01",
            "--after-takeover",
            "00:00:01",
        ])
        .output()
        .expect("failover-lab runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let r: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(r["mode"], "Hot");
    assert_eq!(r["failover_timeout_ms"], 2000);
    assert_eq!(r["killed"], "adapter-a");
    assert_eq!(r["new_primary"], "adapter-b");
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["duplicated"], 0, "{r}");
    let takeover = r["takeover_ms"].as_f64().expect("takeover_ms");
    // Bounded by the configuration: failoverTimeout plus generous slack for a loaded machine.
    assert!(takeover > 0.0 && takeover < 2000.0 + 5000.0, "{takeover}");
    assert!(r["points_received"].as_u64().is_some_and(|n| n > 0));
    for key in [
        "points_expected",
        "stale_rejected",
        "score_transitions",
        "role_transitions",
    ] {
        assert!(r.get(key).is_some(), "{key} missing");
    }
    assert!(r["role_transitions"].as_array().is_some_and(|t| {
        t.iter()
            .any(|x| x["adapter"] == "adapter-b" && x["to"] == "Primary")
    }));
}

#[test]
fn bad_mode_is_refused_with_the_accepted_values() {
    let out = Command::new(env!("CARGO_BIN_EXE_failover-lab"))
        .args(["demo", "--mode", "hot"])
        .output()
        .expect("failover-lab runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"Hot\", \"Warm\" or \"Cold\""), "{stderr}");
}
