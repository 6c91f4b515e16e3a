//! The endpoint binary's command line.

use std::process::Command;

use failover_proto::testing::{free_port, python_with};

#[test]
fn help_explains_the_endpoint() {
    let out = Command::new(env!("CARGO_BIN_EXE_fake-endpoint"))
        .arg("--help")
        .output()
        .expect("runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("stale epochs") && help.contains("--listen"),
        "{help}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_fake-endpoint"))
        .args(["--listen", "nowhere"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
}

/// An OMF client written from the OMF specification alone, in Python's standard library
/// (`tests/omf_spec_client.py`), not from our code: types, containers and data (plain and gzip),
/// updates and deletes, read back, and the specification's answers to bad input. CI sets
/// FAILOVER_LAB_REQUIRE_INTEROP=1, so a missing python3 fails there instead of skipping.
#[test]
fn an_omf_client_written_from_the_specification_is_understood() {
    // The standard library's gzip, json and urllib are all it needs.
    let Some(python) = python_with(
        "gzip, json, urllib.request",
        "python3 from Debian's packages",
    ) else {
        return;
    };
    let (grpc, http) = (free_port(), free_port());
    let mut endpoint = Command::new(env!("CARGO_BIN_EXE_fake-endpoint"))
        .args(["--listen", &format!("127.0.0.1:{grpc}")])
        .args(["--http-listen", &format!("127.0.0.1:{http}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts");
    let ready = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", http)).is_ok()
    });
    let out = ready.then(|| {
        Command::new(&python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/omf_spec_client.py"
            ))
            .arg(format!(
                "http://127.0.0.1:{http}/api/v1/tenants/default/namespaces/default"
            ))
            .output()
            .expect("python runs")
    });
    let _ = endpoint.kill();
    let _ = endpoint.wait();
    let out = out.expect("the endpoint serves HTTP within 5 s");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("all checks passed"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
