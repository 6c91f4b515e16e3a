//! The adapter binary's command line: help that explains, clear errors for bad flags.

use std::process::Command;

fn adapter(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_adapter"))
        .args(args)
        .output()
        .expect("adapter runs")
}

#[test]
fn help_explains_the_adapter() {
    let out = adapter(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for words in [
        "ClientFailover",
        "--rest-listen",
        "5590",
        "--data-collection-mode",
        "--warm-test-interval",
        "--config",
    ] {
        assert!(help.contains(words), "{words} missing from:\n{help}");
    }
}

#[test]
fn bad_flags_and_documents_are_refused_clearly() {
    let out = adapter(&["--data-collection-mode", "currentonly"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CurrentOnly") && err.contains("HistoryOnly"),
        "{err}"
    );

    let out = adapter(&["--warm-test-interval", "5 minutes"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hh:mm:ss"));

    let temp = tempfile::tempdir().expect("a temporary folder");
    let file = temp.path().join("bad-cf.json");
    std::fs::write(&file, r#"{"failoverGroupId":"g","failoverTimeout":"00:00:04","mode":"hot","endpoint":"http://127.0.0.1:1"}"#).expect("write");
    let out = adapter(&[
        "--config",
        file.to_str().expect("path"),
        "--rest-listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mode") && err.contains("\"Hot\""), "{err}");
}

#[test]
fn an_unusable_buffer_directory_is_refused_at_start() {
    let temp = tempfile::tempdir().expect("a temporary folder");
    let file = temp.path().join("not-a-dir");
    std::fs::write(&file, b"a file").expect("write");
    let out = adapter(&[
        "--buffer-dir",
        file.to_str().expect("path"),
        "--rest-listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot use the buffer directory"), "{err}");

    let out = adapter(&["--buffer-max-mb", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--buffer-max-mb"));
}
