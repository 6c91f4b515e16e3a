//! `/metrics` on the adapters, the failover service and the endpoint: the documented names are
//! there, in Prometheus text format, and their values move when the Primary is killed.

use std::collections::BTreeMap;

use failover_core::Mode;

/// Samples of a Prometheus text page: `name{labels}` → value.
fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').expect("name value");
            (key.to_string(), value.parse::<f64>().expect("a number"))
        })
        .collect()
}

async fn scrape(url: String) -> BTreeMap<String, f64> {
    let resp = reqwest::get(&url).await.expect("scrape");
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    parse(&resp.text().await.expect("body"))
}

fn get(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("{key} missing from {m:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_of_every_service_follow_a_takeover() {
    let mut p = crate::common::pair(crate::common::spec(Mode::Hot)).await;
    let addrs = p.cluster.addrs.clone();
    let adapter = |name: &str| format!("http://{}/metrics", addrs.adapters[name]);
    let arbiter = format!("http://{}/metrics", addrs.arbiter_rest);
    let endpoint = format!("http://{}/metrics", addrs.endpoint_metrics);
    let g = "FailoverGroup1";
    let a_primary =
        format!(r#"failover_adapter_role{{adapter="adapter-a",group="{g}",role="Primary"}}"#);
    let b_primary =
        format!(r#"failover_adapter_role{{adapter="adapter-b",group="{g}",role="Primary"}}"#);
    let b_labels = format!(r#"{{adapter="adapter-b",group="{g}"}}"#);
    let group = format!(r#"{{group="{g}"}}"#);

    let a = scrape(adapter("adapter-a")).await;
    let b = scrape(adapter("adapter-b")).await;
    let arb = scrape(arbiter.clone()).await;
    let ep = scrape(endpoint.clone()).await;
    assert_eq!(get(&a, &a_primary), 1.0);
    assert_eq!(get(&b, &b_primary), 0.0);
    assert_eq!(get(&b, &format!("failover_adapter_score{b_labels}")), 100.0);
    assert!(
        get(
            &a,
            &format!(
                r#"failover_adapter_heartbeats_sent_total{{adapter="adapter-a",group="{g}"}}"#
            )
        ) > 0.0
    );
    assert!(
        get(
            &b,
            &format!("failover_adapter_points_collected_total{b_labels}")
        ) > 0.0
    );
    let epoch_before = get(&arb, &format!("failover_arbiter_group_epoch{group}"));
    let promotions_before = get(&arb, &format!("failover_arbiter_promotions_total{group}"));
    assert!(get(&arb, "failover_arbiter_heartbeats_total") > 0.0);
    assert_eq!(
        get(
            &arb,
            &format!(r#"failover_arbiter_member_primary{{group="{g}",adapter="adapter-a"}}"#)
        ),
        1.0
    );
    let accepted_before = get(
        &ep,
        &format!("failover_endpoint_points_accepted_total{group}"),
    );
    assert!(accepted_before > 0.0);
    assert_eq!(
        get(&ep, &format!("failover_endpoint_fenced_epoch{group}")),
        epoch_before
    );

    let epoch = p.obs.snapshot().epoch();
    p.cluster.kill("adapter-a").await.expect("kill");
    crate::common::wait_takeover(&p, "adapter-b", epoch).await;

    let b = scrape(adapter("adapter-b")).await;
    let arb = scrape(arbiter).await;
    let ep = scrape(endpoint).await;
    assert_eq!(get(&b, &b_primary), 1.0);
    assert!(get(&b, &format!("failover_adapter_epoch{b_labels}")) > epoch_before);
    assert!(
        get(
            &b,
            &format!("failover_adapter_role_changes_total{b_labels}")
        ) >= 2.0
    );
    assert!(
        get(
            &b,
            &format!("failover_adapter_points_egressed_total{b_labels}")
        ) > 0.0
    );
    let takeover = get(
        &b,
        &format!("failover_adapter_takeover_duration_seconds{b_labels}"),
    );
    assert!(
        takeover > 0.0 && takeover < crate::common::deadline().as_secs_f64(),
        "{takeover}"
    );
    assert!(get(&arb, &format!("failover_arbiter_group_epoch{group}")) > epoch_before);
    assert!(get(&arb, &format!("failover_arbiter_promotions_total{group}")) > promotions_before);
    assert!(get(&arb, &format!("failover_arbiter_stale_total{group}")) >= 1.0);
    assert_eq!(
        get(
            &arb,
            &format!(r#"failover_arbiter_member_primary{{group="{g}",adapter="adapter-b"}}"#)
        ),
        1.0
    );
    assert!(get(&ep, &format!("failover_endpoint_fenced_epoch{group}")) > epoch_before);
    assert!(
        get(
            &ep,
            &format!("failover_endpoint_points_accepted_total{group}")
        ) > accepted_before
    );
    // The takeover left a pause in the writes.
    assert!(
        get(
            &ep,
            &format!("failover_endpoint_largest_arrival_gap_seconds{group}")
        ) > 0.0
    );
    assert_eq!(
        get(
            &ep,
            &format!("failover_endpoint_points_duplicated_total{group}")
        ),
        0.0
    );
}
