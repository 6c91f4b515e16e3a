//! The arbiter binary's command line.

use std::process::Command;

#[test]
fn help_explains_the_failover_service() {
    let out = Command::new(env!("CARGO_BIN_EXE_failover-arbiter"))
        .arg("--help")
        .output()
        .expect("runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for words in ["failover score", "--listen", "--rest-listen"] {
        assert!(help.contains(words), "{words} missing:\n{help}");
    }
}

/// Runs the arbiter with `args`; one that is still serving after 10 s (it took the flags) is
/// killed, so the test fails rather than hangs.
fn arbiter(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_failover-arbiter"))
        .args(["--listen", "127.0.0.1:0", "--rest-listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > std::time::Duration::from_secs(10) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn bad_tls_and_token_flags_are_refused_clearly() {
    let out = arbiter(&[
        "--tls-cert",
        "/nonexistent/cert.pem",
        "--tls-key",
        "/nonexistent/key.pem",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read certificates from /nonexistent/cert.pem"),
        "{err}"
    );

    let temp = tempfile::tempdir().expect("a temporary folder");
    let dir = temp.path().join("tls");
    let out = arbiter(&[
        "--tls-self-signed",
        dir.to_str().expect("path"),
        "--tls-san",
        "not a name!",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("neither a DNS name nor an IP address"),
        "{err}"
    );

    let out = arbiter(&[
        "--oauth-client-id",
        "c",
        "--oauth-client-secret",
        "s",
        "--oauth-token-lifetime",
        "00:00:00.500",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("accepted minimum of 00:00:01"), "{err}");

    let out = arbiter(&["--oauth-client-id", "c"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--oauth-client-secret"));
}
