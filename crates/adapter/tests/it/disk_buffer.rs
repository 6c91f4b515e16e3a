//! The egress buffer on disk (`--buffer-dir`): a Primary that cannot reach the endpoint keeps
//! what it collects, is SIGKILLed and started again, restores it from disk, and egresses it in
//! order when the endpoint returns. What is lost is only what the source produced while no
//! process was collecting (the restart itself), not the data collected before the kill.

use std::time::{Duration, Instant};

use failover_core::Mode;
use failover_harness::cluster::{Cluster, ClusterSpec};
use serde_json::Value;

async fn state(cluster: &Cluster) -> Value {
    cluster.failover_state("adapter-a").await.expect("state")
}

async fn wait_state(cluster: &Cluster, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + failover_harness::fixture::deadline();
    loop {
        if let Ok(s) = cluster.failover_state("adapter-a").await
            && ok(&s)
        {
            return s;
        }
        assert!(Instant::now() < deadline, "never {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_primary_restores_its_buffer_from_disk_and_egresses_it() {
    // A lone adapter: nobody else holds its data.
    let spec = ClusterSpec {
        adapters: vec!["adapter-a".into()],
        disk_buffer: true,
        ..failover_harness::fixture::spec(Mode::Hot)
    };
    let mut cluster = Cluster::start(spec).await.expect("cluster starts");
    cluster.configure("adapter-a").await.expect("configured");
    wait_state(&cluster, "Primary", |s| s["Role"] == "Primary").await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let outage = Duration::from_secs(4);
    cluster.endpoint_outage(true).await.expect("outage");
    tokio::time::sleep(outage).await;
    let before = state(&cluster).await;
    let buffered = before["BufferedPoints"].as_u64().unwrap_or(0);
    // 8 streams at 10 Hz for 4 s.
    assert!(buffered >= 250, "{before}");
    assert!(before["BufferDiskBytes"].as_u64().unwrap_or(0) >= buffered * 28);

    cluster.kill("adapter-a").await.expect("SIGKILL");
    let killed_at = Instant::now();
    cluster.restart("adapter-a").await.expect("started again");
    let after = state(&cluster).await;
    let restored = after["RestoredPoints"].as_u64().unwrap_or(0);
    assert!(
        restored >= buffered,
        "restored {restored} of the {buffered} points buffered before the kill: {after}"
    );

    cluster.endpoint_outage(false).await.expect("endpoint back");
    let done = wait_state(&cluster, "Primary with its backlog egressed", |s| {
        s["Role"] == "Primary"
            && s["EndpointError"].is_null()
            && s["BufferedPoints"].as_u64().is_some_and(|b| b < 100)
            && s["EgressedPoints"].as_u64().is_some_and(|e| e >= restored)
    })
    .await;
    let restart_window = killed_at.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let audit = cluster.audit().await.expect("audit");
    assert_eq!(audit.duplicated, 0, "{audit:?}");
    assert_eq!(audit.out_of_order, 0, "{audit:?}");
    // Without the disk, the 4 s collected before the kill would be lost with it: a gap of more
    // than the outage. With it, the only gap is the restart (process start, configuration,
    // subscription).
    assert!(
        audit.largest_gap_ms < outage.as_millis() as i64,
        "a gap of {} ms in the data: {audit:?}",
        audit.largest_gap_ms
    );
    assert!(audit.lost < buffered, "{audit:?}");
    assert!(audit.received > buffered, "{audit:?} {done}");
    println!(
        "buffered before the kill {buffered}, restored {restored}, lost {} (the restart window; \
         largest gap {} ms), duplicated 0; restart to egressed {:.1} s",
        audit.lost,
        audit.largest_gap_ms,
        restart_window.as_secs_f64()
    );
}
