//! `failover-lab bench --json`, cut down to a few runs: the figures a user relies on come out,
//! and they obey the protocol's order (nobody takes over before failoverTimeout has passed; a
//! new Primary learns its role, then fences, then writes; a Cold standby costs next to nothing).

use std::process::Command;

use serde_json::Value;

fn bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_failover-lab"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .expect("failover-lab runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_f64()
        .unwrap_or_else(|| panic!("{} missing in {v}", path.join(".")))
}

#[test]
fn takeover_phases_follow_the_protocol_and_standby_costs_are_reported() {
    let r = bench(&[
        "--parts",
        "takeover,standby",
        "--modes",
        "Hot",
        "--runs",
        "3",
        "--other-fault-runs",
        "2",
        "--failover-timeout",
        "00:00:01",
        "--rate",
        "20000",
    ]);
    assert_eq!(r["errors"], Value::Array(vec![]), "{r}");
    let series = r["takeover"].as_array().expect("takeover series");
    let faults: Vec<&str> = series.iter().filter_map(|s| s["fault"].as_str()).collect();
    assert_eq!(faults, ["kill", "pause", "source_outage"]);
    for s in series {
        assert_eq!(s["measured"], s["runs"], "{s}");
        for t in s["samples"].as_array().expect("samples") {
            // Causal order: stale, then the new Primary knows, then fences, then writes.
            for phase in [
                "detection_ms",
                "decision_push_ms",
                "fence_ms",
                "first_point_ms",
            ] {
                assert!(f(t, &[phase]) >= 0.0, "{phase} in {t}");
            }
            if s["fault"] != "source_outage" {
                // Never before the Primary's silence passed failoverTimeout.
                assert!(f(t, &["overhead_ms"]) >= 0.0, "{t}");
                // Staleness counts from the last heartbeat, which came before the fault.
                assert!(f(t, &["detection_ms"]) <= 1000.0 + 500.0, "{t}");
            }
        }
    }
    let standby = r["standby"].as_array().expect("standby");
    assert_eq!(standby.len(), 3);
    let cold = standby.iter().find(|s| s["mode"] == "Cold").expect("Cold");
    // A Cold standby only heartbeats (it once spun at 160% of a core).
    assert!(f(cold, &["secondary_cpu_percent"]) < 20.0, "{cold}");
    assert!(f(&r, &["buffer", "bytes_per_point"]) > 0.0, "{r}");
    assert!(f(&r, &["heartbeat", "cpu_us_per_heartbeat"]) > 0.0, "{r}");
}

#[test]
fn bad_bench_flags_are_refused_with_the_accepted_range() {
    let out = Command::new(env!("CARGO_BIN_EXE_failover-lab"))
        .args(["bench", "--rate", "5"])
        .output()
        .expect("failover-lab runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--rate must be 1000 to"), "{stderr}");
}

/// `--parts timeout`, cut down to one short timeout and one long one: each point is measured
/// (a takeover, a count of false failovers and its hourly extrapolation), and a shorter
/// failoverTimeout takes over sooner.
#[test]
fn the_timeout_trade_off_is_measured_per_failover_timeout() {
    let r = bench(&[
        "--parts",
        "timeout",
        "--timeouts",
        "00:00:00.500,00:00:02",
        "--timeout-window",
        "00:00:02",
        "--load-threads",
        "0",
    ]);
    let points = r["timeouts"].as_array().expect("timeouts");
    assert_eq!(points.len(), 2, "{r}");
    for p in points {
        assert!(p["error"].is_null(), "{p}");
        let window = f(p, &["window_s"]);
        assert!(window >= 2.0, "{p}");
        let per_hour = f(p, &["false_failovers_per_hour"]);
        assert!((per_hour - f(p, &["false_failovers"]) * 3600.0 / window).abs() < 1e-6);
    }
    let (short, long) = (
        f(&points[0], &["takeover_ms"]),
        f(&points[1], &["takeover_ms"]),
    );
    assert!(
        short < long,
        "takeover {short} ms at 0.5 s, {long} ms at 2 s"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_failover-lab"))
        .args(["bench", "--parts", "timeout", "--timeouts", "00:00:00.050"])
        .output()
        .expect("failover-lab runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("below the shortest failoverTimeout"),
        "{stderr}"
    );
}
