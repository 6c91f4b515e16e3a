//! Conversions between wire messages and `failover-core` types.

use failover_core::{Mode, Point, Role, Watermark};

use crate::v1;

/// Why a wire message could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The columns of a point batch have different lengths.
    #[error(
        "point batch columns differ in length (stream_ids {0}, seqs {1}, timestamps_ms {2}, values {3})"
    )]
    RaggedBatch(usize, usize, usize, usize),
    /// An enum field has no usable value.
    #[error("{0} is not set or unknown")]
    Unspecified(&'static str),
}

/// Encodes points column by column.
pub fn batch_from_points<'a>(points: impl IntoIterator<Item = &'a Point>) -> v1::PointBatch {
    let it = points.into_iter();
    let n = it.size_hint().0;
    let mut b = v1::PointBatch {
        stream_ids: Vec::with_capacity(n),
        seqs: Vec::with_capacity(n),
        timestamps_ms: Vec::with_capacity(n),
        values: Vec::with_capacity(n),
    };
    for p in it {
        b.stream_ids.push(p.stream_id);
        b.seqs.push(p.seq);
        b.timestamps_ms.push(p.timestamp_ms);
        b.values.push(p.value);
    }
    b
}

/// Decodes a batch, refusing ragged columns.
pub fn points_from_batch(b: &v1::PointBatch) -> Result<Vec<Point>, WireError> {
    let n = b.stream_ids.len();
    if b.seqs.len() != n || b.timestamps_ms.len() != n || b.values.len() != n {
        return Err(WireError::RaggedBatch(
            n,
            b.seqs.len(),
            b.timestamps_ms.len(),
            b.values.len(),
        ));
    }
    Ok((0..n)
        .map(|i| Point {
            stream_id: b.stream_ids[i],
            seq: b.seqs[i],
            timestamp_ms: b.timestamps_ms[i],
            value: b.values[i],
        })
        .collect())
}

/// Watermark pairs on the wire.
pub fn watermark_to_wire(pairs: &[(u32, u64)]) -> Vec<v1::StreamWatermark> {
    pairs
        .iter()
        .map(|&(stream_id, seq)| v1::StreamWatermark { stream_id, seq })
        .collect()
}

/// Watermark pairs from the wire.
pub fn watermark_pairs(wire: &[v1::StreamWatermark]) -> Vec<(u32, u64)> {
    wire.iter().map(|w| (w.stream_id, w.seq)).collect()
}

/// A watermark from the wire.
pub fn watermark_from_wire(wire: &[v1::StreamWatermark]) -> Watermark {
    Watermark::from_pairs(wire.iter().map(|w| (w.stream_id, w.seq)))
}

/// Mode on the wire.
pub fn mode_to_wire(m: Mode) -> v1::Mode {
    match m {
        Mode::Hot => v1::Mode::Hot,
        Mode::Warm => v1::Mode::Warm,
        Mode::Cold => v1::Mode::Cold,
    }
}

/// Mode from the wire.
pub fn mode_from_wire(raw: i32) -> Result<Mode, WireError> {
    match v1::Mode::try_from(raw) {
        Ok(v1::Mode::Hot) => Ok(Mode::Hot),
        Ok(v1::Mode::Warm) => Ok(Mode::Warm),
        Ok(v1::Mode::Cold) => Ok(Mode::Cold),
        _ => Err(WireError::Unspecified("mode")),
    }
}

/// Role on the wire.
pub fn role_to_wire(r: Role) -> v1::Role {
    match r {
        Role::Primary => v1::Role::Primary,
        Role::Secondary => v1::Role::Secondary,
    }
}

/// Role from the wire (None when unspecified).
pub fn role_from_wire(raw: i32) -> Option<Role> {
    match v1::Role::try_from(raw) {
        Ok(v1::Role::Primary) => Some(Role::Primary),
        Ok(v1::Role::Secondary) => Some(Role::Secondary),
        _ => None,
    }
}

/// A member's role as the lab shows it: Stale when its heartbeats are late, else its role
/// (None before it has one).
pub fn role_label(s: &v1::SessionStatus) -> String {
    if s.stale {
        return failover_core::history::STALE.into();
    }
    role_from_wire(s.role).map_or("None".into(), |r| r.as_str().to_string())
}

/// The failover service's view a group status gives, observed `at_ms` after the observation
/// started (no status: nobody, epoch 0, no member).
pub fn status_point(
    status: Option<&v1::GroupStatus>,
    at_ms: u64,
) -> failover_core::history::StatusPoint {
    failover_core::history::StatusPoint {
        at_ms,
        service_us: status.map_or(0, |s| s.observed_at_unix_us),
        primary: status
            .map(|s| s.primary_adapter_id.clone())
            .filter(|p| !p.is_empty()),
        epoch: status.map_or(0, |s| s.epoch),
        adapters: status
            .iter()
            .flat_map(|s| &s.sessions)
            .map(|s| (s.adapter_id.clone(), role_label(s), s.score))
            .collect(),
        exists: status.is_some_and(|s| s.exists),
        promotions: status.map_or(0, |s| s.promotions),
        requested_promotions: status.map_or(0, |s| s.requested_promotions),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_ragged_ones_are_refused() {
        let pts: Vec<Point> = (0..5)
            .map(|i| Point {
                stream_id: i,
                seq: u64::from(i) * 2,
                timestamp_ms: 1000 + i64::from(i),
                value: f64::from(i) / 2.0,
            })
            .collect();
        let b = batch_from_points(&pts);
        assert_eq!(points_from_batch(&b), Ok(pts));
        let mut ragged = b;
        ragged.values.pop();
        assert!(matches!(
            points_from_batch(&ragged),
            Err(WireError::RaggedBatch(5, 5, 5, 4))
        ));
    }

    #[test]
    fn enums_round_trip() {
        for m in Mode::ALL {
            assert_eq!(mode_from_wire(mode_to_wire(m) as i32), Ok(m));
        }
        assert!(mode_from_wire(0).is_err());
        assert!(mode_from_wire(99).is_err());
        assert_eq!(
            role_from_wire(role_to_wire(Role::Primary) as i32),
            Some(Role::Primary)
        );
        assert_eq!(role_from_wire(0), None);
    }
}
