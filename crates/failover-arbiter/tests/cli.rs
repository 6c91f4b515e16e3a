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
