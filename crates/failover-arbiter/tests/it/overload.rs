//! Overload answered the vendor's way: a failover service over its heartbeat limit
//! (`--max-rest-heartbeats`) answers 429 with Retry-After, and a pair of adapter processes on
//! its REST API neither fails over nor retries in a busy loop.

use std::time::Duration;

use failover_core::Mode;
use failover_harness::{
    cluster::{Cluster, ClusterProtocol},
    fixture as common,
    observe::Observer,
};

/// The sum of a counter's lines (any labels) in a Prometheus text page.
fn counter(page: &str, name: &str) -> u64 {
    page.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn page(url: String) -> String {
    reqwest::get(&url)
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect(&url)
        .text()
        .await
        .expect("metrics text")
}

/// (heartbeats sent, of those refused busy) of each adapter, and the service's refusals.
async fn counts(cluster: &Cluster) -> ([(u64, u64); 2], u64) {
    let mut adapters = [(0, 0); 2];
    for (i, a) in ["adapter-a", "adapter-b"].iter().enumerate() {
        let p = page(format!(
            "http://{}/metrics",
            cluster.rest_addr(a).expect("addr")
        ))
        .await;
        adapters[i] = (
            counter(&p, "failover_adapter_heartbeats_sent_total"),
            counter(&p, "failover_adapter_heartbeats_refused_busy_total"),
        );
    }
    let p = page(format!("http://{}/metrics", cluster.addrs.arbiter_rest)).await;
    (
        adapters,
        counter(&p, "failover_arbiter_heartbeats_refused_busy_total"),
    )
}

/// Two REST members heartbeat once a second each (failoverTimeout 2 s) at a service that takes
/// one a second: about half are refused with 429. Over 8 s: nobody goes stale, the Primary and
/// the epoch stay, each adapter sends at most a heartbeat a second (it waits as told), and the
/// Primary's data keeps flowing with nothing lost or written twice.
#[tokio::test(flavor = "multi_thread")]
async fn an_overloaded_service_refuses_with_429_and_fails_nobody_over() {
    let mut spec = common::spec(Mode::Hot);
    spec.failover_protocol = ClusterProtocol::Rest;
    spec.arbiter_args = vec!["--max-rest-heartbeats".into(), "1".into()];
    let cluster = Cluster::start(spec.clone()).await.expect("cluster");
    let obs = Observer::start(&cluster.addrs, &spec.group_id);
    failover_harness::cluster::configure_in_order(&cluster, &obs, common::deadline())
        .await
        .expect("configured");
    assert!(
        obs.wait_for(common::deadline(), |t| t.primary().is_some()
            && ["adapter-a", "adapter-b"]
                .iter()
                .all(|a| t.session(a).is_some_and(|s| !s.stale))
            && t.audit.as_ref().is_some_and(|a| a.received > 0))
            .await,
        "the pair never settled: {:?}",
        obs.snapshot().events
    );
    let p = common::Pair { cluster, obs };
    let before = p.obs.snapshot();
    let (primary, epoch) = (before.primary(), before.epoch());
    let since_ms = p.obs.now_ms();
    let (sent_before, refused_before) = counts(&p.cluster).await;
    let window = Duration::from_secs(8);
    tokio::time::sleep(window).await;
    let (sent_after, refused_after) = counts(&p.cluster).await;
    let after = p.obs.snapshot();
    let stale: Vec<_> = after
        .events
        .iter()
        .filter(|e| e.at_ms >= since_ms && e.kind == "stale")
        .collect();
    assert!(stale.is_empty(), "nobody goes stale for a 429: {stale:?}");
    assert_eq!(
        (after.primary(), after.epoch()),
        (primary, epoch),
        "no failover: {:?}",
        after.events
    );
    assert!(
        refused_after > refused_before,
        "the service was over its limit and said so"
    );
    let told_to_wait: u64 = (0..2).map(|i| sent_after[i].1 - sent_before[i].1).sum();
    assert!(told_to_wait > 0, "the adapters heard 429");
    for (i, name) in ["adapter-a", "adapter-b"].iter().enumerate() {
        let sent = sent_after[i].0 - sent_before[i].0;
        // A heartbeat a second (the interval, or a 1 s Retry-After and its jitter), and one or
        // two more at the window's edges; a busy retry would be hundreds.
        assert!(
            sent <= window.as_secs() + 3,
            "{name} sent {sent} heartbeats in {window:?}: it must wait as told"
        );
    }
    let audit = common::audit(&p).await;
    assert_eq!(
        (audit.lost, audit.duplicated),
        (0, 0),
        "the Primary kept egressing: {audit:?}"
    );
}
