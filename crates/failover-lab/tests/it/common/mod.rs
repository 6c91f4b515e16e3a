//! Shared helpers for the real-process tests: the pair of [`failover_harness::fixture`], and
//! the `failover-lab demo --dashboard` process the page tests drive.

#![allow(dead_code, unused_imports)]

use std::time::Duration;

pub use failover_harness::fixture::*;

/// A child process stopped like an operator would: SIGTERM (so a `failover-lab demo` stops its
/// own processes), then SIGKILL after 10 s.
pub struct Stopper(pub std::process::Child);

impl Drop for Stopper {
    fn drop(&mut self) {
        if let Some(pid) = i32::try_from(self.0.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `failover-lab demo --dashboard` on a free port with `extra` flags; the process (stopped
/// when dropped) and the page's URL, which the demo prints once the pair is configured.
pub async fn dashboard_demo(extra: &[&str]) -> (Stopper, String) {
    use std::io::{BufRead, BufReader};
    let mut demo = std::process::Command::new(env!("CARGO_BIN_EXE_failover-lab"))
        .args(["demo", "--dashboard", "--dashboard-listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("failover-lab starts");
    let stdout = demo.stdout.take().expect("stdout");
    let demo = Stopper(demo);
    let url = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("reader")
    .expect("the demo prints the URL");
    let url = url.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url:?}");
    (demo, url)
}
