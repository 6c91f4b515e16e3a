//! The data source binary's command line.

use std::process::Command;

fn source(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fake-data-source"))
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn help_explains_and_bad_shapes_are_refused() {
    let out = source(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for words in [
        "--streams",
        "--components",
        "--rate",
        "--seed",
        "--max-clients",
    ] {
        assert!(help.contains(words), "{words} missing:\n{help}");
    }
    let out = source(&[
        "--streams",
        "4",
        "--components",
        "5",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("components must be 1 to streams"));
    let out = source(&["--rate", "0", "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rate must be above 0"));
    let out = source(&["--max-clients", "0", "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-clients"));
}
