//! The data path over OMF beside gRPC, in the same run: the highest rate a Hot pair sustains
//! egressing OMF with gzip (the lab's endpoint parsing, checking and auditing every value), the
//! bytes per point on each wire (protobuf, OMF JSON, OMF JSON with gzip), the CPU per million
//! points, and the loss and duplicates of a Hot takeover over OMF at the sustained rate.

use serde::Serialize;

use super::{
    Progress,
    throughput::{self, LossAtRate, RateStep},
};
use crate::cluster::{ClusterEgress, ClusterSpec};

/// Bytes per point on each wire, for one batch of the bench's shape.
#[derive(Debug, Clone, Serialize)]
pub struct WireCost {
    /// Points in the batch measured (1000 streams, as many ticks as fit).
    pub points: usize,
    /// The lab's gRPC `PointBatch` (protobuf).
    pub protobuf_bytes_per_point: f64,
    /// The OMF data messages our adapter writes, as JSON.
    pub omf_json_bytes_per_point: f64,
    /// The same, gzip-compressed (as sent).
    pub omf_gzip_bytes_per_point: f64,
}

/// The OMF data path.
#[derive(Debug, Clone, Serialize)]
pub struct OmfPath {
    /// Every rate tried, lowest first.
    pub steps: Vec<RateStep>,
    /// The highest rate sustained, measured as accepted.
    pub sustained_points_per_s: f64,
    /// The most accepted at any rate.
    pub peak_points_per_s: f64,
    /// Bytes per point on each wire.
    pub wire: WireCost,
    /// A Hot takeover over OMF at the sustained rate.
    pub loss_at_rate: Option<LossAtRate>,
}

/// Bytes per point of a batch of `points` points from 1000 streams, on each wire.
pub fn wire_cost(points: usize) -> WireCost {
    let streams = throughput::STREAMS as usize;
    let ticks = points.div_ceil(streams).max(1);
    let origin = 1_767_225_600_000_i64;
    let batch: Vec<failover_core::Point> = (0..ticks as u64)
        .flat_map(|seq| {
            (0..throughput::STREAMS).map(move |s| failover_core::Point {
                stream_id: s,
                seq,
                timestamp_ms: origin + seq as i64 * 100,
                value: fake_data_source::point_value(1, s, seq),
            })
        })
        .take(points.max(1))
        .collect();
    let n = batch.len() as f64;
    let protobuf = prost::Message::encoded_len(&failover_proto::convert::batch_from_points(&batch));
    let json = adapter::egress::omf::data_json("FailoverGroup1", &batch);
    let zipped = adapter::egress::omf::gzip(&json).map_or(0, |z| z.len());
    WireCost {
        points: batch.len(),
        protobuf_bytes_per_point: protobuf as f64 / n,
        omf_json_bytes_per_point: json.len() as f64 / n,
        omf_gzip_bytes_per_point: zipped as f64 / n,
    }
}

/// CPU seconds per million points accepted at a step: every process of the pair, summed.
pub fn cpu_s_per_million(step: &RateStep) -> f64 {
    let cores: f64 = step.cpu_percent.values().sum::<f64>() / 100.0;
    if step.accepted_points_per_s > 0.0 {
        cores / step.accepted_points_per_s * 1e6
    } else {
        0.0
    }
}

/// Measures the OMF data path from `start` up to `max` points per second.
pub async fn measure(
    base: &ClusterSpec,
    start: f64,
    max: f64,
    window: std::time::Duration,
    batch_points: usize,
    progress: &Progress<'_>,
) -> anyhow::Result<OmfPath> {
    let omf = ClusterSpec {
        egress: ClusterEgress::Omf,
        ..base.clone()
    };
    let steps = throughput::find_sustained(&omf, start, max, window, progress).await?;
    let best = steps
        .iter()
        .filter(|s| s.sustained)
        .max_by(|a, b| a.accepted_points_per_s.total_cmp(&b.accepted_points_per_s));
    let sustained = best.map_or(0.0, |s| s.accepted_points_per_s);
    let peak = steps
        .iter()
        .map(|s| s.accepted_points_per_s)
        .fold(0.0, f64::max);
    let loss_at_rate = match best {
        Some(s) => Some(throughput::loss_at_rate(&omf, s.offered_points_per_s, progress).await?),
        None => None,
    };
    Ok(OmfPath {
        steps,
        sustained_points_per_s: sustained,
        peak_points_per_s: peak,
        wire: wire_cost(batch_points),
        loss_at_rate,
    })
}
