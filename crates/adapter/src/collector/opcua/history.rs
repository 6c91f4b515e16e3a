//! History over OPC UA: a recovery's time range read with HistoryRead (raw values), every
//! stream of the source's address space, following continuation points.

use std::time::Duration;

use failover_core::Point;
use failover_proto::wires::opcua as nodes;
use opcua::{
    client::HistoryReadAction,
    types::{
        ByteString, HistoryData, HistoryReadValueId, NodeId, ReadRawModifiedDetails,
        TimestampsToReturn,
    },
};

use super::{OpcUaServer, Reading, read_layout, read_value, status_err};

/// Nodes in one history read call.
const HISTORY_NODES_PER_CALL: usize = 100;
/// Values asked for per node in one history read answer (more follow continuation points).
const HISTORY_VALUES_PER_NODE: u32 = 1_000;

/// Reads the source's history of every stream from `start_unix_ms` to `end_unix_ms` (both
/// included) over OPC UA (HistoryRead, raw values, in a session of its own), giving each
/// answer's points to `take`, which answers false to stop (the recovery was abandoned). Streams
/// are read [`HISTORY_NODES_PER_CALL`] at a time, each stream's values oldest first, following
/// the server's continuation points.
pub async fn read_history(
    server: &OpcUaServer,
    name: &str,
    start_unix_ms: i64,
    end_unix_ms: i64,
    mut take: impl FnMut(&[Point]) -> bool,
) -> Result<(), String> {
    let (session, driver) = server.connect(name).await?;
    let result = async {
        let layout = read_layout(&session).await?;
        let time = |ms: i64| opcua::types::DateTime::from(nodes::ticks_of_unix_ms(ms));
        let details = ReadRawModifiedDetails {
            is_read_modified: false,
            start_time: time(start_unix_ms),
            // OPC UA's end is not included; ours is.
            end_time: time(end_unix_ms.saturating_add(1)),
            num_values_per_node: HISTORY_VALUES_PER_NODE,
            return_bounds: false,
        };
        let streams: Vec<u32> = layout.components.values().flatten().copied().collect();
        for chunk in streams.chunks(HISTORY_NODES_PER_CALL) {
            // stream -> its continuation point (empty: its first read).
            let mut pending: Vec<(u32, ByteString)> =
                chunk.iter().map(|s| (*s, ByteString::null())).collect();
            while !pending.is_empty() {
                let to_read = read_ids(layout.ns, &pending);
                let results = session
                    .history_read(
                        HistoryReadAction::ReadRawModifiedDetails(details.clone()),
                        TimestampsToReturn::Source,
                        false,
                        &to_read,
                    )
                    .await
                    .map_err(|e| status_err("history read", e))?;
                if results.len() != pending.len() {
                    return Err(status_err(
                        "history read",
                        format!("{} results for {} nodes", results.len(), pending.len()),
                    ));
                }
                let mut points = Vec::new();
                let mut next = Vec::new();
                for ((stream, _), result) in pending.iter().zip(results) {
                    if !result.status_code.is_good() {
                        return Err(status_err(
                            &format!("history read of stream {stream}"),
                            result.status_code,
                        ));
                    }
                    let values = result
                        .history_data
                        .inner_as::<HistoryData>()
                        .and_then(|d| d.data_values.clone())
                        .unwrap_or_default();
                    points.extend(values.iter().filter_map(|v| {
                        match read_value(&layout, &nodes::stream(*stream), v) {
                            Some(Reading::Point(p))
                                if (start_unix_ms..=end_unix_ms).contains(&p.timestamp_ms) =>
                            {
                                Some(p)
                            }
                            _ => None,
                        }
                    }));
                    if !result.continuation_point.is_null_or_empty() {
                        next.push((*stream, result.continuation_point));
                    }
                }
                if !take(&points) {
                    // Let the server forget the continuation points it still holds.
                    let release = read_ids(layout.ns, &next);
                    if !release.is_empty() {
                        let _ = session
                            .history_read(
                                HistoryReadAction::ReadRawModifiedDetails(details.clone()),
                                TimestampsToReturn::Source,
                                true,
                                &release,
                            )
                            .await;
                    }
                    return Ok(());
                }
                pending = next;
            }
        }
        Ok(())
    }
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(1), session.disconnect()).await;
    driver.abort();
    result
}

/// The history read of each stream from its continuation point (empty: from the start).
fn read_ids(ns: u16, streams: &[(u32, ByteString)]) -> Vec<HistoryReadValueId> {
    streams
        .iter()
        .map(|(s, cp)| HistoryReadValueId {
            node_id: NodeId::new(ns, nodes::stream(*s)),
            continuation_point: cp.clone(),
            ..Default::default()
        })
        .collect()
}
