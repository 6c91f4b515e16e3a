//! The password and client secret of the ClientFailover document never leave the adapter:
//! scenarios run with the vendor's document (password "Password1") and with bearer tokens
//! (client secret "ClientSecret1"), and nothing they leave behind contains either, or a token. That
//! covers every component's log, the runner's output and JSON, the JUnit file, the timeline
//! pictures, and the adapters' REST answers and `/metrics` while they run.

use std::{path::Path, process::Command};

use failover_core::Mode;
use failover_harness::cluster::{BEARER_CLIENT_SECRET, VENDOR_EXAMPLE};

const PASSWORD: &str = "Password1";

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// An access token: 64 hex digits (after "Bearer ", or alone).
fn holds_token(text: &str) -> bool {
    text.as_bytes()
        .windows(64)
        .any(|w| w.iter().all(u8::is_ascii_hexdigit))
}

#[test]
fn no_log_report_or_output_of_a_run_holds_the_password() {
    assert!(
        VENDOR_EXAMPLE.contains(PASSWORD),
        "the test needs the vendor's document to carry the password"
    );
    let temp = tempfile::tempdir().expect("a temporary folder");
    let dir = temp.path().to_path_buf();
    let (logs, reports, junit) = (dir.join("logs"), dir.join("reports"), dir.join("junit.xml"));
    let scenarios = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/");
    let out = Command::new(env!("CARGO_BIN_EXE_failover-lab"))
        .arg("run")
        .arg(format!("{scenarios}hot-primary-killed.toml"))
        // Client secrets and bearer tokens too.
        .arg(format!("{scenarios}bearer-token-takeover.toml"))
        .arg("--json")
        .arg("--keep-logs")
        .arg(&logs)
        .arg("--report-dir")
        .arg(&reports)
        .arg("--junit")
        .arg(&junit)
        .output()
        .expect("failover-lab runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for secret in [PASSWORD, BEARER_CLIENT_SECRET] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
    let files = files_under(&dir);
    let adapter_logs: Vec<_> = files
        .iter()
        .filter(|p| p.to_string_lossy().ends_with("adapter-a.log"))
        .collect();
    // Not vacuous: the adapters logged, and the configuration reached them.
    assert!(!adapter_logs.is_empty(), "no adapter log kept in {files:?}");
    let a_log = std::fs::read_to_string(adapter_logs[0]).expect("log");
    assert!(a_log.contains("role"), "{a_log}");
    assert!(
        files
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "svg"))
    );
    for f in &files {
        let text = String::from_utf8_lossy(&std::fs::read(f).expect("readable")).into_owned();
        assert!(
            !text.contains(PASSWORD) && !text.contains(BEARER_CLIENT_SECRET),
            "{} holds a password or client secret",
            f.display()
        );
        assert!(!holds_token(&text), "{} holds a token", f.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_answers_and_metrics_of_a_running_pair_hold_no_password() {
    let p = crate::common::pair(crate::common::spec(Mode::Hot)).await;
    let http = reqwest::Client::new();
    for (name, addr) in &p.cluster.addrs.adapters {
        for path in [
            "/api/v1/configuration/System/ClientFailover",
            "/api/v1/ClientFailover",
            "/api/v1/diagnostics/FailoverState",
            "/metrics",
        ] {
            let body = http
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .expect("answer")
                .text()
                .await
                .expect("body");
            assert!(!body.is_empty(), "{name} {path}");
            assert!(!body.contains(PASSWORD), "{name} {path}: {body}");
        }
    }
    let arbiter = http
        .get(format!(
            "http://{}/api/v1/ClientFailover/groups",
            p.cluster.addrs.arbiter_rest
        ))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("body");
    assert!(
        arbiter.contains("adapter-a") && !arbiter.contains(PASSWORD),
        "{arbiter}"
    );
}
