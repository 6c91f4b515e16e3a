//! The failover pair as real processes on loopback, with real faults: what a user relies on.

use std::time::Duration;

use crate::common::{TIMEOUT, accepted_from, audit, deadline, pair, spec, wait_takeover};
use failover_core::Mode;
use failover_harness::cluster::SourceFaultTarget;

/// Kills the Primary and checks the takeover; returns the audit.
async fn kill_primary_and_take_over(
    mode: Mode,
) -> (crate::common::Pair, failover_proto::v1::AuditReport) {
    let mut p = pair(spec(mode)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let epoch = p.obs.snapshot().epoch();
    p.cluster.kill("adapter-a").await.expect("kill");
    wait_takeover(&p, "adapter-b", epoch).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let a = audit(&p).await;
    (p, a)
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_takeover_after_sigkill_loses_and_duplicates_nothing() {
    let (_p, a) = kill_primary_and_take_over(Mode::Hot).await;
    assert_eq!(a.lost, 0, "{a:?}");
    assert_eq!(a.duplicated, 0, "{a:?}");
    assert!(a.received > 0);
    assert!(
        a.writers
            .iter()
            .any(|w| w.adapter_id == "adapter-b" && w.epoch == 2)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn warm_takeover_after_sigkill_reports_the_gap() {
    let (p, a) = kill_primary_and_take_over(Mode::Warm).await;
    let t = p.obs.snapshot();
    // The Warm standby stood at 100 (its connection test passed) before the kill.
    assert!(
        t.score_transitions
            .iter()
            .any(|s| s.adapter == "adapter-b" && s.to == 100 && s.from.is_none())
    );
    assert!(
        !t.score_transitions
            .iter()
            .any(|s| s.adapter == "adapter-b" && s.to != 100)
    );
    assert_eq!(a.duplicated, 0, "{a:?}");
    // The points produced between the kill and the takeover are lost, and reported: at least
    // half a heartbeat interval's worth, at most the whole detection window's.
    let per_second = 8 * 10;
    assert!(a.lost >= per_second / 2, "{a:?}");
    assert!(a.lost <= (TIMEOUT.as_secs() + 3) * per_second, "{a:?}");
    assert!(a.largest_gap_ms >= 500, "{a:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cold_takeover_raises_the_standby_from_1_to_100() {
    let (p, a) = kill_primary_and_take_over(Mode::Cold).await;
    let t = p.obs.snapshot();
    let b: Vec<(Option<u32>, u32)> = t
        .score_transitions
        .iter()
        .filter(|s| s.adapter == "adapter-b")
        .map(|s| (s.from, s.to))
        .collect();
    assert_eq!(b, vec![(None, 1), (Some(1), 100)], "{:#?}", t.events);
    assert_eq!(a.duplicated, 0, "{a:?}");
    assert!(a.lost > 0, "Cold loses the takeover gap: {a:?}");
    // The vendor's Failover.FailoverStatus stream and failover health reached the endpoint
    // from both members, whatever their role: every role and score change, in order.
    let d = failover_harness::services::audit(
        &p.cluster.addrs,
        failover_proto::v1::AuditRequest {
            group_id: p.cluster.spec.group_id.clone(),
            include_diagnostics: true,
            ..Default::default()
        },
    )
    .await
    .expect("audit")
    .diagnostics;
    let status = |adapter: &str| -> Vec<(String, String)> {
        d.iter()
            .filter(|v| v.adapter_id == adapter && v.stream == "Failover.FailoverStatus")
            .map(|v| {
                (
                    v.fields["FailoverRole"].clone(),
                    v.fields["FailoverScore"].clone(),
                )
            })
            .collect()
    };
    let b = status("adapter-b");
    let at = |role: &str, score: &str| {
        b.iter()
            .position(|(r, s)| r == role && s == score)
            .unwrap_or_else(|| panic!("adapter-b never reported {role} {score}: {b:?}"))
    };
    assert!(at("Secondary", "1") < at("Primary", "100"), "{b:?}");
    assert_eq!(
        b.last().map(|(r, s)| (r.as_str(), s.as_str())),
        Some(("Primary", "100"))
    );
    assert!(
        b.windows(2).all(|w| w[0] != w[1]),
        "written at changes only: {b:?}"
    );
    assert!(
        status("adapter-a")
            .iter()
            .any(|(r, s)| r == "Primary" && s == "100"),
        "{d:?}"
    );
    for adapter in ["adapter-a", "adapter-b"] {
        assert!(
            d.iter().any(|v| v.adapter_id == adapter
                && v.stream == "Failover.Health"
                && v.fields.get("FailoverGroupId").map(String::as_str) == Some("FailoverGroup1")
                && v.fields.get("Mode").map(String::as_str) == Some("Cold")),
            "{adapter}'s static health: {d:?}"
        );
        assert!(
            d.iter().any(|v| v.adapter_id == adapter
                && v.fields.get("DeviceStatus").map(String::as_str) == Some("Good")
                && v.fields.contains_key("NextHealthMessageExpected")),
            "{adapter}'s dynamic health: {d:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn paused_primary_resumed_after_takeover_gets_nothing_accepted() {
    let mut p = pair(spec(Mode::Hot)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let epoch = p.obs.snapshot().epoch();
    p.cluster.pause("adapter-a").await.expect("SIGSTOP");
    wait_takeover(&p, "adapter-b", epoch).await;
    let before_resume = audit(&p).await;
    let a_before: u64 = before_resume
        .writers
        .iter()
        .filter(|w| w.adapter_id == "adapter-a")
        .map(|w| w.accepted)
        .sum();
    p.cluster.resume("adapter-a").await.expect("SIGCONT");
    // The old Primary comes back as Secondary, and nothing it sends is accepted.
    let rejoined = p
        .obs
        .wait_for(deadline(), |t| {
            t.session("adapter-a")
                .is_some_and(|s| !s.stale && s.role == failover_proto::v1::Role::Secondary as i32)
        })
        .await;
    assert!(rejoined, "{:#?}", p.obs.snapshot().events);
    tokio::time::sleep(TIMEOUT).await;
    let after = audit(&p).await;
    let a_after: u64 = after
        .writers
        .iter()
        .filter(|w| w.adapter_id == "adapter-a")
        .map(|w| w.accepted)
        .sum();
    assert_eq!(
        a_after, a_before,
        "the old Primary wrote after the takeover: {after:?}"
    );
    assert_eq!(after.duplicated, 0, "{after:?}");
    assert_eq!(after.lost, 0, "{after:?}");
    assert_eq!(p.obs.snapshot().primary().as_deref(), Some("adapter-b"));
    let state = p.cluster.failover_state("adapter-a").await.expect("state");
    assert_eq!(state["Role"], "Secondary", "{state}");
}

#[tokio::test(flavor = "multi_thread")]
async fn source_outage_on_the_primary_drives_its_score_to_0_and_fails_over() {
    let mut p = pair(spec(Mode::Hot)).await;
    let epoch = p.obs.snapshot().epoch();
    p.cluster
        .source_fault(SourceFaultTarget::Connection("adapter-a".into()), true)
        .await
        .expect("cut adapter-a from the source");
    wait_takeover(&p, "adapter-b", epoch).await;
    let t = p.obs.snapshot();
    assert!(
        t.score_transitions
            .iter()
            .any(|s| s.adapter == "adapter-a" && s.to == 0),
        "{:#?}",
        t.events
    );
    // Adapter-a is still alive and heartbeating: failover came from its score, not staleness.
    assert!(t.session("adapter-a").is_some_and(|s| !s.stale));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let a = audit(&p).await;
    assert_eq!((a.lost, a.duplicated), (0, 0), "{a:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn degraded_primary_at_75_keeps_its_role() {
    let mut p = pair(spec(Mode::Hot)).await;
    let epoch = p.obs.snapshot().epoch();
    p.cluster
        .source_fault(
            SourceFaultTarget::Component {
                component: 2,
                for_client: Some("adapter-a".into()),
            },
            true,
        )
        .await
        .expect("fail one of four components for adapter-a");
    let degraded = p
        .obs
        .wait_for(deadline(), |t| {
            t.session("adapter-a").is_some_and(|s| s.score == 75)
        })
        .await;
    assert!(degraded, "{:#?}", p.obs.snapshot().events);
    // Two heartbeat intervals later it is still Primary, though adapter-b scores 100.
    tokio::time::sleep(TIMEOUT).await;
    let t = p.obs.snapshot();
    assert_eq!(t.primary().as_deref(), Some("adapter-a"));
    assert_eq!(t.epoch(), epoch);
    assert_eq!(t.session("adapter-b").map(|s| s.score), Some(100));
    let state = p.cluster.failover_state("adapter-a").await.expect("state");
    assert_eq!(
        (state["Role"].as_str(), state["FailoverScore"].as_str()),
        (Some("Primary"), Some("75")),
        "{state}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn old_primary_restarted_rejoins_as_secondary() {
    let mut p = pair(spec(Mode::Hot)).await;
    let epoch = p.obs.snapshot().epoch();
    p.cluster.kill("adapter-a").await.expect("kill");
    wait_takeover(&p, "adapter-b", epoch).await;
    p.cluster.restart("adapter-a").await.expect("restart");
    let rejoined = p
        .obs
        .wait_for(deadline(), |t| {
            t.session("adapter-a")
                .is_some_and(|s| !s.stale && s.score == 100)
        })
        .await;
    assert!(rejoined, "{:#?}", p.obs.snapshot().events);
    tokio::time::sleep(TIMEOUT).await;
    let t = p.obs.snapshot();
    assert_eq!(
        t.primary().as_deref(),
        Some("adapter-b"),
        "no failback: {:#?}",
        t.events
    );
    let state = p.cluster.failover_state("adapter-a").await.expect("state");
    assert_eq!(state["Role"], "Secondary", "{state}");
    let a = audit(&p).await;
    assert_eq!((a.lost, a.duplicated), (0, 0), "{a:?}");
    assert!(
        accepted_from(&t, "adapter-a", epoch + 1) == 0,
        "the restarted adapter wrote: {a:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoint_outage_keeps_data_and_egresses_it_later() {
    let mut p = pair(spec(Mode::Hot)).await;
    p.cluster.endpoint_outage(true).await.expect("outage");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let state = p.cluster.failover_state("adapter-a").await.expect("state");
    assert!(
        state["EndpointError"]
            .as_str()
            .is_some_and(|e| e.contains("outage")),
        "{state}"
    );
    assert!(
        state["BufferedPoints"].as_u64().is_some_and(|n| n >= 80),
        "{state}"
    );
    p.cluster.endpoint_outage(false).await.expect("end outage");
    let drained = p
        .obs
        .wait_for(deadline(), |t| {
            t.audit
                .as_ref()
                .is_some_and(|a| a.largest_arrival_gap_ms >= 1500)
        })
        .await;
    assert!(drained);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let a = audit(&p).await;
    assert_eq!((a.lost, a.duplicated), (0, 0), "{a:?}");
    assert_eq!(
        p.obs.snapshot().primary().as_deref(),
        Some("adapter-a"),
        "an endpoint outage is no reason to fail over"
    );
}
