//! The adapter on the source's wires: its OPC UA collector against the lab's OPC UA source at a
//! size past the default limits of OPC UA stacks (1000 monitored items in one call or one
//! subscription, 1000 references in one browse answer), and history recoveries read over gRPC
//! and OPC UA.

use std::time::{Duration, Instant};

use failover_core::Mode;
use failover_harness::cluster::{Cluster, ClusterSource, ClusterSpec};

#[tokio::test(flavor = "multi_thread")]
async fn a_source_of_more_streams_than_one_browse_or_one_call_holds_is_collected_whole() {
    const STREAMS: u32 = 1_200;
    let spec = ClusterSpec {
        adapters: vec!["adapter-a".into()],
        source_protocol: ClusterSource::OpcUa,
        streams: STREAMS,
        components: 1,
        rate_hz: 2.0,
        ..failover_harness::fixture::spec(Mode::Hot)
    };
    let mut cluster = Cluster::start(spec).await.expect("cluster starts");
    cluster.configure("adapter-a").await.expect("configured");
    let deadline = Instant::now() + failover_harness::fixture::deadline();
    let mut last = None;
    loop {
        let audit = cluster.audit().await.expect("audit");
        // Three ticks of every stream, delivered.
        if audit.streams == STREAMS && audit.received >= u64::from(STREAMS) * 3 {
            assert_eq!(audit.duplicated, 0, "{audit:?}");
            break;
        }
        if Instant::now() > deadline {
            let state = cluster.failover_state("adapter-a").await.ok();
            cluster.keep_logs();
            panic!(
                "never collected all {STREAMS} streams: audit {last:?}, adapter {state:?}, logs {}",
                cluster.log_dir().display()
            );
        }
        last = Some((audit.streams, audit.received));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A history recovery on a lone HistoryOnly adapter delivers exactly the points whose data time
/// is in its range, both ends included: the ticks from StartTime to EndTime of every stream,
/// once each. Over gRPC (`ReadHistory`) and OPC UA (`HistoryRead`), both at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_history_recovery_delivers_its_time_range_exactly_on_grpc_and_opcua() {
    let (grpc, opcua) = tokio::join!(
        recovery_of_ticks_10_to_20(ClusterSource::Grpc),
        recovery_of_ticks_10_to_20(ClusterSource::OpcUa)
    );
    grpc.expect("over gRPC");
    opcua.expect("over OPC UA");
}

async fn recovery_of_ticks_10_to_20(source: ClusterSource) -> Result<(), String> {
    use failover_core::clock_time::format_utc_ms;
    let spec = ClusterSpec {
        adapters: vec!["adapter-a".into()],
        source_protocol: source,
        data_collection_mode: failover_core::DataCollectionMode::HistoryOnly,
        // Ticks 100 ms apart, at whole milliseconds.
        rate_hz: 10.0,
        ..failover_harness::fixture::spec(Mode::Hot)
    };
    let streams = u64::from(spec.streams);
    let mut cluster = Cluster::start(spec).await.map_err(|e| e.to_string())?;
    let origin = cluster.source_origin_unix_ms;
    cluster
        .configure("adapter-a")
        .await
        .map_err(|e| e.to_string())?;
    // Tick 25 is produced: the range is history.
    let until = origin + 2_500 - failover_proto::process::unix_ms();
    tokio::time::sleep(Duration::from_millis(u64::try_from(until).unwrap_or(0))).await;
    let body = serde_json::json!({
        "Id": "r1",
        "StartTime": format_utc_ms(origin + 1_000),
        "EndTime": format_utc_ms(origin + 2_000),
    });
    cluster
        .adapter_rest(
            "adapter-a",
            reqwest::Method::POST,
            "/configuration/Source1/HistoryRecoveries",
            Some(&body),
        )
        .await
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + failover_harness::fixture::deadline();
    loop {
        let recoveries = cluster
            .adapter_rest(
                "adapter-a",
                reqwest::Method::GET,
                "/configuration/Source1/HistoryRecoveries",
                None,
            )
            .await
            .map_err(|e| e.to_string())?;
        let audit = cluster.audit().await.map_err(|e| e.to_string())?;
        if recoveries[0]["Status"] == "Completed" && audit.received >= 11 * streams {
            // Ticks 10 to 20 of every stream, once, and nothing else.
            let coverage = cluster.coverage().await.map_err(|e| e.to_string())?;
            // (Runs split where the arrival's lateness changes.)
            let ticks: Vec<(u64, u64)> =
                coverage.iter().map(|r| (r.first_seq, r.last_seq)).collect();
            let one_after_another = ticks.windows(2).all(|w| w[1].0 == w[0].1 + 1);
            let span = ticks.first().zip(ticks.last()).map(|(f, l)| (f.0, l.1));
            return (audit.received == 11 * streams
                && audit.duplicated == 0
                && one_after_another
                && span == Some((10, 20)))
            .then_some(())
            .ok_or_else(|| format!("{audit:?}, ticks {ticks:?}, {recoveries}"));
        }
        if Instant::now() > deadline {
            cluster.keep_logs();
            return Err(format!(
                "not completed: {recoveries}, {audit:?}, logs {}",
                cluster.log_dir().display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
