//! The vendor's failover design (`adapter --behaviour vendor`, docs/vendor-behaviour.md) as real
//! processes: what a Hot takeover sends twice is what the framework's trimming rule predicts.

use std::time::Duration;

use crate::common::{TIMEOUT, audit, deadline, pair, spec};
use failover_core::{Behaviour, Mode, behaviour, clock_time::parse_utc_ms};
use failover_harness::cluster::{ClusterEgress, ClusterProtocol};

/// A time field of an adapter's FailoverState, in unix ms.
fn time_field(state: &serde_json::Value, field: &str) -> Option<i64> {
    state[field].as_str().and_then(|t| parse_utc_ms(t).ok())
}

/// Rule V5: a Hot Secondary drops every message it received at or before the Primary's
/// LastDataProcessedTime (as the failover service relays it) minus failoverTimeout/2, and sends
/// the rest when it takes over. So after a SIGKILL of the Primary, the points sent twice are
/// those of the ticks after that cutoff that the old Primary had already delivered. The test
/// computes that number from the rule (the cutoff from the relayed time, the ticks from the
/// endpoint's coverage) and compares it with the endpoint's count of duplicates. A tick reaches
/// the standby a few ms after its data time, so the prediction is a range one tick wide per
/// stream.
#[tokio::test(flavor = "multi_thread")]
async fn a_vendor_hot_takeover_sends_twice_what_the_trimming_rule_predicts() {
    let mut s = spec(Mode::Hot);
    s.behaviour = Behaviour::Vendor;
    s.egress = ClusterEgress::Omf;
    s.failover_protocol = ClusterProtocol::Rest;
    s.disk_buffer = false;
    let streams = u64::from(s.streams);
    let tick_ms = (1000.0 / s.rate_hz).round() as i64;
    let mut p = pair(s).await;
    // A few heartbeats, so the Secondary has trimmed by the Primary's time.
    tokio::time::sleep(TIMEOUT * 2).await;
    p.cluster.kill("adapter-a").await.expect("kill");
    // The service relays the dead Primary's last LastDataProcessedTime until the Secondary is
    // Primary (at least a failoverTimeout away); what the old Primary delivered is there now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let coverage = p.cluster.coverage().await.expect("coverage");
    let delivered = coverage.last().expect("ticks delivered").clone();
    // What the service relays: the dead Primary's last LastDataProcessedTime.
    let status_url = format!(
        "http://{}/api/v1/clientfailover/groups/{}/status",
        p.cluster.addrs.arbiter_cfs.expect("the REST API"),
        p.cluster.spec.group_id
    );
    let status: serde_json::Value = p
        .cluster
        .http()
        .get(&status_url)
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("status JSON");
    let relayed = time_field(&status, "LastDataProcessedTime").expect("a relayed time");
    let ok = p
        .obs
        .wait_for(deadline(), |t| t.primary().as_deref() == Some("adapter-b"))
        .await;
    assert!(
        ok,
        "adapter-b never took over: {:?}",
        p.obs.snapshot().events
    );
    // Its queue flushed: its buffer empty, and a second more for the endpoint.
    let flushed = tokio::time::Instant::now() + deadline();
    let b = loop {
        let b = p.cluster.failover_state("adapter-b").await.expect("state");
        if b["BufferedPoints"] == 0 && b["EgressedPoints"].as_u64().is_some_and(|n| n > 0) {
            break b;
        }
        assert!(tokio::time::Instant::now() < flushed, "never flushed: {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The rule: the cutoff is half a failoverTimeout before the relayed time, and the Secondary
    // last trimmed by it.
    let cutoff = behaviour::trim_cutoff_ms(relayed, TIMEOUT);
    assert_eq!(
        time_field(&b, "HotQueueCutoff"),
        Some(cutoff),
        "the Secondary's last cutoff is the relayed time {relayed} less failoverTimeout/2: {b}"
    );
    // Ticks are `tick_ms` apart; the last the old Primary delivered is `delivered.last_seq`.
    let tick_time = |seq: u64| delivered.last_ms - (delivered.last_seq - seq) as i64 * tick_ms;
    let first = delivered.last_seq.saturating_sub(1000);
    let fewest = behaviour::predicted_overlap(first, delivered.last_seq, cutoff, tick_time);
    let most = behaviour::predicted_overlap(first, delivered.last_seq, cutoff, |seq| {
        tick_time(seq) + tick_ms
    });
    let measured = audit(&p).await.duplicated;
    eprintln!(
        "relayed {relayed}, cutoff {cutoff}, last tick delivered by the old Primary {} at {}: \
         predicted {}..={} points twice, measured {measured}",
        delivered.last_seq,
        delivered.last_ms,
        fewest * streams,
        most * streams
    );
    assert!(
        (fewest * streams..=most * streams).contains(&measured),
        "the trimming rule predicts {}..={} points sent twice ({fewest}..={most} ticks of \
         {streams} streams after the cutoff {cutoff}, through tick {} at {}); the endpoint \
         counted {measured}",
        fewest * streams,
        most * streams,
        delivered.last_seq,
        delivered.last_ms
    );
    assert!(
        fewest > 0,
        "a Hot takeover of this design sends its overlap twice"
    );
    assert_eq!(audit(&p).await.lost, 0, "nothing lost to a plain kill");
}
