//! What the crates' integration tests share that needs nothing of the harness (the source's and
//! endpoint's tests cannot use the harness, which is built on them): a free loopback port, and a
//! Python for the interoperability tests that run clients we did not write.

use std::process::Command;

/// A loopback port free at the time of asking (bound, read and let go).
///
/// # Panics
/// When the machine has no free loopback port: a test cannot run then.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A Python (`$PYTHON`, else `python3`) that can import `module`, got with `install`; or None
/// when there is none here and `FAILOVER_LAB_REQUIRE_INTEROP` is unset. CI sets it, so there an
/// interoperability test cannot skip.
///
/// # Panics
/// When `FAILOVER_LAB_REQUIRE_INTEROP` is set and no such Python is here.
pub fn python_with(module: &str, install: &str) -> Option<String> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let has = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if has {
        return Some(python);
    }
    assert!(
        std::env::var_os("FAILOVER_LAB_REQUIRE_INTEROP").is_none(),
        "{python} with {module} is needed for this interoperability test ({install})"
    );
    eprintln!("skipped: no {module} for {python} here");
    None
}
