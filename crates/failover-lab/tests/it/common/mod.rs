//! Shared helpers for the real-process tests: a pair started on loopback, configured, settled
//! and flowing, with its observer; and deadlines derived from the configuration.

#![allow(dead_code)]

use std::time::Duration;

use failover_core::Mode;
use failover_harness::{
    cluster::{Cluster, ClusterSpec},
    observe::{Observer, Timeline},
};
use failover_proto::v1;

/// The failoverTimeout of the tests: short, so a takeover takes about two seconds.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// A generous bound for anything that must follow from the configuration: three timeouts
/// plus ten seconds for a loaded machine.
pub fn deadline() -> Duration {
    TIMEOUT * 3 + Duration::from_secs(10)
}

pub fn spec(mode: Mode) -> ClusterSpec {
    ClusterSpec {
        mode,
        failover_timeout: TIMEOUT,
        warm_test_interval: Duration::from_millis(500),
        ..ClusterSpec::default()
    }
}

pub struct Pair {
    pub cluster: Cluster,
    pub obs: Observer,
}

impl Drop for Pair {
    fn drop(&mut self) {
        // kill_on_drop ends every process; say where the logs were for a failing test.
        if std::thread::panicking() {
            self.cluster.keep_logs();
            eprintln!("component logs: {}", self.cluster.log_dir().display());
        }
    }
}

/// Starts a pair and waits until adapter-a is Primary, adapter-b Secondary, and data flows.
pub async fn pair(spec: ClusterSpec) -> Pair {
    let cluster = Cluster::start(spec.clone()).await.expect("cluster starts");
    let obs = Observer::start(&cluster.addrs, &spec.group_id);
    cluster
        .configure("adapter-a")
        .await
        .expect("adapter-a configured");
    assert!(
        obs.wait_for(deadline(), |t| t.primary().as_deref() == Some("adapter-a"))
            .await,
        "adapter-a never became Primary: {:?}",
        obs.snapshot().events
    );
    cluster
        .configure("adapter-b")
        .await
        .expect("adapter-b configured");
    let warm = spec.mode == Mode::Warm;
    assert!(
        obs.wait_for(deadline(), |t| t
            .session("adapter-b")
            .is_some_and(|s| !warm || s.score == 100))
            .await,
        "adapter-b never joined: {:?}",
        obs.snapshot().events
    );
    assert!(
        obs.wait_for(deadline(), |t| t
            .audit
            .as_ref()
            .is_some_and(|a| a.received > 0))
            .await,
        "no data reached the endpoint"
    );
    Pair { cluster, obs }
}

pub fn accepted_from(t: &Timeline, adapter: &str, min_epoch: u64) -> u64 {
    t.audit
        .as_ref()
        .map(|a| {
            a.writers
                .iter()
                .filter(|w| w.adapter_id == adapter && w.epoch >= min_epoch)
                .map(|w| w.accepted)
                .sum()
        })
        .unwrap_or(0)
}

pub async fn audit(p: &Pair) -> v1::AuditReport {
    p.cluster.audit().await.expect("audit")
}

/// Waits until `adapter` is Primary at an epoch above `epoch` and the endpoint has accepted a
/// point from it at that epoch.
pub async fn wait_takeover(p: &Pair, adapter: &str, epoch: u64) {
    let ok = p
        .obs
        .wait_for(deadline(), |t| {
            t.primary().as_deref() == Some(adapter)
                && t.epoch() > epoch
                && accepted_from(t, adapter, epoch + 1) > 0
        })
        .await;
    assert!(
        ok,
        "{adapter} did not take over: {:#?}",
        p.obs.snapshot().events
    );
}

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

/// Puts an edited copy of the cluster's ClientFailover document to `adapter` (its failover
/// service URL through the adapter's link), then waits until the adapter's FailoverServiceError
/// contains `words`; the FailoverState then.
pub async fn reconfigure_until_error(
    p: &Pair,
    adapter: &str,
    edit: impl FnOnce(&mut serde_json::Value),
    words: &str,
) -> serde_json::Value {
    let url = p.cluster.link_url(adapter, "arbiter").expect("link");
    let mut doc = p
        .cluster
        .spec
        .client_failover_document(&url)
        .expect("document");
    edit(&mut doc);
    p.cluster
        .put_client_failover(adapter, &doc.to_string())
        .await
        .expect("the document itself is valid");
    let deadline = std::time::Instant::now() + deadline();
    loop {
        let state = p.cluster.failover_state(adapter).await.expect("state");
        if state["FailoverServiceError"]
            .as_str()
            .is_some_and(|e| e.contains(words))
        {
            return state;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no error saying {words:?}: {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
