//! The source's fan-out on each wire in: a Hot pair, so two adapters subscribe to the source at
//! once (the Primary and the Hot Secondary), collecting over gRPC, MQTT and OPC UA in turn and
//! egressing the lab's gRPC (so egress is not what limits). For each wire, the highest rate at
//! which both adapters keep up: the endpoint accepts at least 95% of it from the Primary, the
//! Hot Secondary collects at least 95% of it, nothing is lost and the Primary's buffer stays
//! under half a second; and the source's CPU per million points delivered to each subscriber.

use serde::Serialize;

use super::{Progress, throughput};
use crate::cluster::{ClusterSource, ClusterSpec};

/// The first rate tried on each wire: 10 ticks per second of 1000 streams (the vendor's wires
/// carry a message per value, far fewer than gRPC's batches).
pub const START_POINTS_PER_S: f64 = 10_000.0;

/// One wire's fan-out.
#[derive(Debug, Clone, Serialize)]
pub struct WireFanOut {
    /// `grpc`, `mqtt` or `opcua`.
    pub wire: String,
    /// Every rate tried, lowest first.
    pub steps: Vec<throughput::RateStep>,
    /// The highest rate both subscribers kept up with (points/s per subscriber), or 0.
    pub sustained_points_per_s: f64,
    /// The source's CPU seconds per million points sent to one subscriber, at that rate.
    pub source_cpu_s_per_million: Option<f64>,
}

/// Both subscribers kept up at this step.
pub fn both_kept_up(step: &throughput::RateStep) -> bool {
    step.sustained
        && step
            .secondary_collected_points_per_s
            .is_some_and(|c| c >= 0.95 * step.offered_points_per_s)
}

/// Measures each wire from `start` up to `max` points per second.
pub async fn measure(
    base: &ClusterSpec,
    start: f64,
    max: f64,
    window: std::time::Duration,
    progress: &Progress<'_>,
) -> Vec<Result<WireFanOut, String>> {
    let mut out = Vec::new();
    for wire in [
        ClusterSource::Grpc,
        ClusterSource::Mqtt,
        ClusterSource::OpcUa,
    ] {
        progress(&format!(
            "fan-out over {}: a Hot pair (two subscribers), 1000 streams, raising the rate",
            wire.as_str()
        ));
        let spec = ClusterSpec {
            source_protocol: wire,
            data_collection_mode: failover_core::DataCollectionMode::CurrentOnly,
            ..base.clone()
        };
        out.push(
            match throughput::find_sustained_by(&spec, start, max, window, both_kept_up, progress)
                .await
            {
                Ok(steps) => {
                    let best = steps
                        .iter()
                        .filter(|s| both_kept_up(s))
                        .max_by(|a, b| a.offered_points_per_s.total_cmp(&b.offered_points_per_s));
                    Ok(WireFanOut {
                        wire: wire.as_str().to_string(),
                        sustained_points_per_s: best.map_or(0.0, |s| s.offered_points_per_s),
                        source_cpu_s_per_million: best.and_then(|s| {
                            let cores = s.cpu_percent.get("source")? / 100.0;
                            Some(cores / s.offered_points_per_s * 1e6)
                        }),
                        steps,
                    })
                }
                Err(e) => Err(format!("fan-out over {}: {e:#}", wire.as_str())),
            },
        );
    }
    out
}
