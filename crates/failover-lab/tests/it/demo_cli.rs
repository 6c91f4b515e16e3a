//! `failover-lab demo --compare --json`, as a user runs it.

use std::process::Command;

use serde_json::Value;

/// `demo --compare --json`: Hot, Warm and Cold on the same fault, one report each. Hot loses
/// nothing; Warm and Cold lose their takeover's gap; the standby's use is measured, and a Hot
/// standby (collecting) talks to the source far more than a Cold one (which does not).
#[test]
fn demo_compare_json_reports_the_three_modes_on_one_fault() {
    let out = Command::new(env!("CARGO_BIN_EXE_failover-lab"))
        .args([
            "demo",
            "--compare",
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
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).expect("one JSON array");
    let modes: Vec<&str> = all.iter().filter_map(|r| r["mode"].as_str()).collect();
    assert_eq!(modes, ["Hot", "Warm", "Cold"]);
    for r in &all {
        assert_eq!(r["failover_timeout_ms"], 2000);
        assert_eq!(r["killed"], "adapter-a", "{r}");
        assert_eq!(r["new_primary"], "adapter-b", "{r}");
        assert_eq!(r["duplicated"], 0, "{r}");
        let takeover = r["takeover_ms"].as_f64().expect("takeover_ms");
        // Bounded by the configuration: failoverTimeout plus generous slack for a loaded machine.
        assert!(takeover > 0.0 && takeover < 2000.0 + 5000.0, "{takeover}");
        assert!(r["points_received"].as_u64().is_some_and(|n| n > 0));
        for key in ["points_expected", "stale_rejected", "score_transitions"] {
            assert!(r.get(key).is_some(), "{key} missing");
        }
        assert!(r["role_transitions"].as_array().is_some_and(|t| {
            t.iter()
                .any(|x| x["adapter"] == "adapter-b" && x["to"] == "Primary")
        }));
        let standby = &r["standby"];
        assert_eq!(standby["adapter"], "adapter-b", "{r}");
        assert!(
            standby["cpu_percent"].as_f64().is_some_and(|c| c >= 0.0),
            "{r}"
        );
        assert!(standby["rss_mib"].as_f64().is_some_and(|m| m > 0.0), "{r}");
    }
    assert_eq!(all[0]["lost"], 0, "Hot: {}", all[0]);
    assert!(
        all[1]["lost"].as_u64().is_some_and(|l| l > 0),
        "Warm: {}",
        all[1]
    );
    assert!(
        all[2]["lost"].as_u64().is_some_and(|l| l > 0),
        "Cold: {}",
        all[2]
    );
    let traffic = |r: &Value| r["standby"]["source_bytes_per_s"].as_f64().unwrap_or(0.0);
    assert!(
        traffic(&all[0]) > 10.0 * traffic(&all[2]).max(1.0),
        "Hot {} B/s, Cold {} B/s",
        traffic(&all[0]),
        traffic(&all[2])
    );
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

/// `demo --behaviour vendor --json`: the vendor's design on the Hot SIGKILL, on its wires (OMF
/// and REST, chosen for it). Its writes carry its name but no epoch, and the demo still finds its
/// takeover (the first point from the new Primary after the kill); the overlap its trimming
/// rule keeps is sent twice, and nothing is lost.
#[test]
fn demo_on_the_vendors_design_finds_its_takeover_and_counts_its_duplicates() {
    let out = Command::new(env!("CARGO_BIN_EXE_failover-lab"))
        .args([
            "demo",
            "--behaviour",
            "vendor",
            "--json",
            "--failover-timeout",
            "00:00:02",
            "--before-kill",
            "00:00:02",
            "--after-takeover",
            "00:00:01",
        ])
        .output()
        .expect("failover-lab runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let r: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(
        (r["behaviour"].as_str(), r["failover_protocol"].as_str()),
        (Some("vendor"), Some("rest")),
        "{r}"
    );
    assert_eq!(r["new_primary"], "adapter-b", "{r}");
    let takeover = r["takeover_ms"].as_f64().expect("takeover_ms");
    assert!(takeover > 0.0 && takeover < 2000.0 + 5000.0, "{takeover}");
    assert_eq!(r["lost"], 0, "{r}");
    assert!(r["duplicated"].as_u64().is_some_and(|d| d > 0), "{r}");
    let writers: Vec<(&str, u64)> = r["writers"]
        .as_array()
        .expect("writers")
        .iter()
        .filter_map(|w| Some((w["adapter"].as_str()?, w["epoch"].as_u64()?)))
        .collect();
    assert_eq!(writers, [("adapter-a", 0), ("adapter-b", 0)], "{r}");
}

#[test]
fn a_list_of_designs_needs_compare_and_the_vendors_needs_its_wires() {
    for (args, says) in [
        (
            &["demo", "--behaviour", "lab,vendor"][..],
            "a list needs --compare",
        ),
        (
            &["demo", "--behaviour", "vendor", "--egress", "grpc"][..],
            "use --egress omf",
        ),
        (
            &[
                "demo",
                "--behaviour",
                "vendor",
                "--failover-protocol",
                "grpc",
            ][..],
            "use --failover-protocol rest",
        ),
        (&["demo", "--behaviour", "Vendor"][..], "vendor"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_failover-lab"))
            .args(args)
            .output()
            .expect("failover-lab runs");
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
