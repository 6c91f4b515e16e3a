//! On-demand history recovery (HistoryOnly): a recovery requested on this adapter reads the
//! source's history for its range and buffers it for egress, only while this adapter is
//! Primary (or standalone). It is this adapter's alone: when the adapter loses the Primary role
//! the recovery is abandoned, and the other adapter does not resume or finish it (Doc).
//!
//! The history is read on the source's wire: gRPC's `ReadHistory`, or OPC UA's HistoryRead
//! ([`crate::collector::opcua::read_history`]). MQTT keeps no history: a recovery on an MQTT
//! source fails, saying so.

use std::{sync::Arc, time::Duration};

use failover_core::Point;
use failover_proto::{convert, v1};
use tonic::transport::Channel;

use crate::{
    collector::SourceWire,
    state::{RecoveryStatus, Shared},
};

/// Runs for as long as the adapter runs.
pub async fn run(shared: Arc<Shared>, source: SourceWire) {
    let mut changed = shared.changed.subscribe();
    loop {
        let next = {
            let mut st = shared.lock();
            if st.may_egress() {
                st.recoveries
                    .iter_mut()
                    .find(|r| r.status == RecoveryStatus::Pending)
                    .map(|r| {
                        r.status = RecoveryStatus::Running;
                        (r.id.clone(), r.start_unix_ms, r.end_unix_ms)
                    })
            } else {
                None
            }
        };
        let Some((id, start_unix_ms, end_unix_ms)) = next else {
            if changed.changed().await.is_err() {
                return;
            }
            continue;
        };
        tracing::info!(
            recovery = id,
            start_unix_ms,
            end_unix_ms,
            "history recovery started"
        );
        let outcome = match &source {
            SourceWire::Grpc(channel) => {
                recover_grpc(&shared, channel.clone(), &id, start_unix_ms, end_unix_ms).await
            }
            SourceWire::OpcUa(server) => {
                crate::collector::opcua::read_history(
                    server,
                    &shared.settings.name,
                    start_unix_ms,
                    end_unix_ms,
                    |points| take(&shared, &id, points),
                )
                .await
            }
            SourceWire::Mqtt(_) => Err(
                "an MQTT source keeps no history: history recoveries need a gRPC or OPC UA source"
                    .to_string(),
            ),
        };
        shared.update(|st| {
            if let Some(r) = st.recoveries.iter_mut().find(|r| r.id == id)
                && r.status == RecoveryStatus::Running
            {
                r.status = match &outcome {
                    Ok(()) => RecoveryStatus::Completed,
                    Err(e) => RecoveryStatus::Failed(e.clone()),
                };
                tracing::info!(
                    recovery = id,
                    status = r.status.name(),
                    points = r.points,
                    "history recovery ended"
                );
            }
        });
    }
}

/// The ticks whose data time (truncated to the millisecond, as the source writes it) is from
/// `start` to `end`, both included: None when there are none.
fn ticks_between(origin_unix_ms: i64, period_ms: f64, start: i64, end: i64) -> Option<(u64, u64)> {
    if !(period_ms.is_finite() && period_ms > 0.0) {
        return None;
    }
    // Tick n's time, as the source writes it.
    let at = |n: u64| origin_unix_ms + (n as f64 * period_ms) as i64;
    let guess = |t: i64| {
        let n = ((t - origin_unix_ms) as f64 / period_ms).floor();
        if n > 0.0 { n as u64 } else { 0 }
    };
    // The guesses are within a tick of the answers (floating point both ways).
    let mut from = guess(start);
    while from > 0 && at(from - 1) >= start {
        from -= 1;
    }
    while at(from) < start {
        from += 1;
    }
    let mut to = guess(end);
    while at(to + 1) <= end {
        to += 1;
    }
    while at(to) > end {
        to = to.checked_sub(1)?;
    }
    (to >= from).then_some((from, to))
}

async fn recover_grpc(
    shared: &Shared,
    channel: Channel,
    id: &str,
    start_unix_ms: i64,
    end_unix_ms: i64,
) -> Result<(), String> {
    let mut client = v1::data_source_client::DataSourceClient::new(channel);
    let info = client
        .describe(v1::DescribeRequest {})
        .await
        .map_err(|s| format!("data source: {}", s.message()))?
        .into_inner();
    let Some((from_seq, to_seq)) = ticks_between(
        info.origin_unix_ms,
        info.period_us as f64 / 1000.0,
        start_unix_ms,
        end_unix_ms,
    ) else {
        return Ok(());
    };
    let request = v1::HistoryRequest {
        client_id: shared.settings.name.clone(),
        from_seq,
        to_seq,
    };
    let mut stream = client
        .read_history(request)
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    loop {
        let batch = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .map_err(|_| "the source stopped answering".to_string())?
            .map_err(|s| s.message().to_string())?;
        let Some(batch) = batch else { return Ok(()) };
        let points = convert::points_from_batch(&batch).map_err(|e| e.to_string())?;
        if !take(shared, id, &points) {
            return Ok(());
        }
    }
}

/// Buffers a recovery's points for egress while it still runs; false when it no longer does
/// (abandoned when the role was lost: not carried over).
fn take(shared: &Shared, id: &str, points: &[Point]) -> bool {
    let still_running = {
        let mut st = shared.lock();
        let running = st
            .recoveries
            .iter()
            .any(|r| r.id == id && r.status == RecoveryStatus::Running);
        if running {
            st.buffer.extend(points);
            if let Some(r) = st.recoveries.iter_mut().find(|r| r.id == id) {
                r.points += points.len() as u64;
            }
        }
        running
    };
    if still_running && !points.is_empty() {
        shared.data.notify_one();
    }
    still_running
}

#[cfg(test)]
mod tests {
    use super::ticks_between;

    #[test]
    fn a_time_range_becomes_the_ticks_whose_times_are_in_it() {
        // 3 Hz from 1000: ticks at 1000, 1333, 1666, 2000, 2333, ...
        assert_eq!(
            ticks_between(1_000, 1000.0 / 3.0, 1_000, 2_000),
            Some((0, 3))
        );
        assert_eq!(
            ticks_between(1_000, 1000.0 / 3.0, 1_001, 1_999),
            Some((1, 2))
        );
        assert_eq!(ticks_between(1_000, 1000.0 / 3.0, 1_334, 1_665), None);
        assert_eq!(
            ticks_between(1_000, 100.0, 0, 1_250),
            Some((0, 2)),
            "not before the first tick"
        );
        assert_eq!(ticks_between(1_000, 100.0, 0, 999), None);
        assert_eq!(ticks_between(1_000, 0.0, 1_000, 2_000), None);
    }
}
