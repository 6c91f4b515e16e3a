//! A pair for tests of any crate: started on loopback, configured, settled and flowing, with
//! its observer; and deadlines derived from the configuration. The adapter's, the failover
//! service's and the lab's integration tests share it.

use std::time::Duration;

use crate::{
    cluster::{Cluster, ClusterSpec},
    observe::{Observer, Timeline},
};
use failover_core::Mode;
use failover_proto::v1;

/// The failoverTimeout of the tests: short, so a takeover takes about two seconds.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// A generous bound for anything that must follow from the configuration: three timeouts
/// plus ten seconds for a loaded machine.
pub fn deadline() -> Duration {
    TIMEOUT * 3 + Duration::from_secs(10)
}

/// The tests' pair: `mode`, failoverTimeout [`TIMEOUT`], Warm tests every 500 ms.
pub fn spec(mode: Mode) -> ClusterSpec {
    ClusterSpec {
        mode,
        failover_timeout: TIMEOUT,
        warm_test_interval: Duration::from_millis(500),
        ..ClusterSpec::default()
    }
}

/// A running pair and its observer; a failing test keeps its logs.
#[derive(Debug)]
pub struct Pair {
    /// The processes.
    pub cluster: Cluster,
    /// What it watches.
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

/// Points the endpoint accepted from `adapter` at `min_epoch` or later.
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

/// The endpoint's audit of the pair's group.
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
