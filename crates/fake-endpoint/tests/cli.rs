//! The endpoint binary's command line.

use std::process::Command;

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
