//! One group's record at the endpoint: who holds the fence at which epoch, the ledger of every
//! stream, each writer's tally, the diagnostics and the coverage. Every path in (gRPC, OMF)
//! writes through it, so the audit means the same whatever the wire.

use std::collections::BTreeMap;

use failover_core::{
    ledger::{Insert, StreamLedger},
    points::StreamMap,
};
use failover_proto::{process, v1};

#[derive(Debug, Default, Clone)]
pub(crate) struct WriterTally {
    pub(crate) accepted: u64,
    pub(crate) duplicates: u64,
    pub(crate) refused_stale: u64,
    pub(crate) first_accepted_unix_us: i64,
    pub(crate) last_accepted_unix_us: i64,
}

#[derive(Debug, Default)]
pub(crate) struct GroupRecord {
    pub(crate) fenced_epoch: u64,
    pub(crate) fenced_by: Option<String>,
    /// The writer process holding the fence (see `FenceRequest.writer`).
    pub(crate) fenced_writer: Option<String>,
    pub(crate) streams: StreamMap<StreamLedger>,
    pub(crate) duplicated: u64,
    pub(crate) out_of_order: u64,
    pub(crate) refused_stale: u64,
    pub(crate) refused_not_fenced: u64,
    pub(crate) writers: BTreeMap<(String, u64), WriterTally>,
    pub(crate) last_accept_unix_us: Option<i64>,
    pub(crate) largest_arrival_gap_us: i64,
    pub(crate) fence_calls: u64,
    pub(crate) write_calls: u64,
    pub(crate) diagnostics: std::collections::VecDeque<v1::DiagnosticValue>,
    pub(crate) diagnostics_dropped: u64,
    /// Who delivered each tick first, on time or late.
    pub(crate) coverage: failover_core::coverage::Coverage,
}

impl GroupRecord {
    pub(crate) fn watermark(&self) -> Vec<v1::StreamWatermark> {
        let mut wm: Vec<v1::StreamWatermark> = self
            .streams
            .iter()
            .filter_map(|(s, l)| {
                l.last_seq()
                    .map(|seq| v1::StreamWatermark { stream_id: *s, seq })
            })
            .collect();
        wm.sort_unstable_by_key(|w| w.stream_id);
        wm
    }

    pub(crate) fn fence(&mut self, adapter: &str, writer: &str, epoch: u64) -> v1::FenceReply {
        // The holder is the writer process, not only its name: a second process with the same
        // name (a twin, found by the simulator: `failover-lab sim --seed 650 --modes Cold`, 688
        // points written twice) must not share a fence at the same epoch.
        let same_holder = self.fenced_by.as_deref().is_none_or(|holder| {
            holder == adapter && self.fenced_writer.as_deref().unwrap_or("") == writer
        });
        let granted = epoch > self.fenced_epoch || (epoch == self.fenced_epoch && same_holder);
        let detail = if granted {
            if epoch > self.fenced_epoch || self.fenced_by.is_none() {
                tracing::info!(adapter, epoch, previous = self.fenced_epoch, "fenced");
            }
            self.fenced_epoch = epoch;
            self.fenced_by = Some(adapter.to_string());
            self.fenced_writer = Some(writer.to_string());
            format!("fenced at epoch {epoch}; writes from older epochs are refused")
        } else {
            format!(
                "epoch {epoch} of {adapter} is not newer than the fenced epoch {} of {}{}",
                self.fenced_epoch,
                self.fenced_by.as_deref().unwrap_or("nobody"),
                if self.fenced_by.as_deref() == Some(adapter) {
                    " (another process with the same name)"
                } else {
                    ""
                }
            )
        };
        v1::FenceReply {
            granted,
            fenced_epoch: self.fenced_epoch,
            watermark: if granted {
                self.watermark()
            } else {
                Vec::new()
            },
            detail,
        }
    }

    pub(crate) fn write(
        &mut self,
        adapter: &str,
        writer: &str,
        epoch: u64,
        points: &[failover_core::Point],
    ) -> v1::WriteReply {
        let n = points.len() as u64;
        let tally_key = (adapter.to_string(), epoch);
        if epoch < self.fenced_epoch {
            self.refused_stale += n;
            self.writers.entry(tally_key).or_default().refused_stale += n;
            return v1::WriteReply {
                outcome: v1::WriteOutcome::StaleEpoch as i32,
                fenced_epoch: self.fenced_epoch,
                ..Default::default()
            };
        }
        if epoch > self.fenced_epoch
            || self.fenced_by.as_deref() != Some(adapter)
            || self.fenced_writer.as_deref().unwrap_or("") != writer
        {
            self.refused_not_fenced += n;
            return v1::WriteReply {
                outcome: v1::WriteOutcome::NotFenced as i32,
                fenced_epoch: self.fenced_epoch,
                ..Default::default()
            };
        }
        let (accepted, duplicates) = self.accept(adapter, epoch, points);
        v1::WriteReply {
            outcome: v1::WriteOutcome::Accepted as i32,
            accepted,
            duplicates,
            fenced_epoch: self.fenced_epoch,
        }
    }

    /// Records `points` as written by `adapter` at `epoch`, with no fence check (the caller has
    /// made it, or the writer is an OMF client that names no epoch): answers the points new to
    /// the ledger and those it already held.
    pub(crate) fn accept(
        &mut self,
        adapter: &str,
        epoch: u64,
        points: &[failover_core::Point],
    ) -> (u64, u64) {
        let tally_key = (adapter.to_string(), epoch);
        let now = process::unix_us();
        let (mut accepted, mut duplicates) = (0u64, 0u64);
        for p in points {
            self.coverage
                .record(p.seq, p.timestamp_ms, adapter, now.div_euclid(1000));
            match self
                .streams
                .entry(p.stream_id)
                .or_default()
                .insert(p.seq, p.timestamp_ms)
            {
                Insert::InOrder => accepted += 1,
                Insert::OutOfOrder => {
                    accepted += 1;
                    self.out_of_order += 1;
                }
                Insert::Duplicate => duplicates += 1,
            }
        }
        self.duplicated += duplicates;
        if accepted > 0 {
            if let Some(prev) = self.last_accept_unix_us {
                self.largest_arrival_gap_us = self.largest_arrival_gap_us.max(now - prev);
            }
            self.last_accept_unix_us = Some(now);
        }
        let t = self.writers.entry(tally_key).or_default();
        if t.accepted == 0 && accepted > 0 {
            t.first_accepted_unix_us = now;
        }
        if accepted > 0 {
            t.last_accepted_unix_us = now;
        }
        t.accepted += accepted;
        t.duplicates += duplicates;
        (accepted, duplicates)
    }

    pub(crate) fn audit(&self, group_id: &str, req: &v1::AuditRequest) -> v1::AuditReport {
        let (mut expected, mut received, mut lost, mut largest_gap_ms) = (0u64, 0u64, 0u64, 0i64);
        for ledger in self.streams.values() {
            received += ledger.held();
            largest_gap_ms = largest_gap_ms.max(ledger.largest_gap_ms());
            let (Some(first), Some(last)) = (ledger.first_seq(), ledger.last_seq()) else {
                continue;
            };
            let lo = if req.has_from_seq {
                req.from_seq
            } else {
                first
            };
            let hi = if req.has_through_seq {
                req.through_seq
            } else {
                last
            };
            if lo <= hi {
                let span = hi - lo + 1;
                expected += span;
                lost += span - ledger.held_between(lo, hi);
            }
        }
        // Streams that were expected but never received anything.
        let missing_streams =
            u64::from(req.expected_streams).saturating_sub(self.streams.len() as u64);
        if missing_streams > 0
            && req.has_from_seq
            && req.has_through_seq
            && req.from_seq <= req.through_seq
        {
            let span = req.through_seq - req.from_seq + 1;
            expected += span * missing_streams;
            lost += span * missing_streams;
        }
        v1::AuditReport {
            group_id: group_id.to_string(),
            expected,
            received,
            lost,
            duplicated: self.duplicated,
            fence_calls: self.fence_calls,
            write_calls: self.write_calls,
            out_of_order: self.out_of_order,
            refused_stale: self.refused_stale,
            refused_not_fenced: self.refused_not_fenced,
            largest_gap_ms,
            largest_arrival_gap_ms: self.largest_arrival_gap_us / 1000,
            fenced_epoch: self.fenced_epoch,
            writers: self
                .writers
                .iter()
                .map(|((adapter_id, epoch), t)| v1::WriterStats {
                    adapter_id: adapter_id.clone(),
                    epoch: *epoch,
                    accepted: t.accepted,
                    duplicates: t.duplicates,
                    refused_stale: t.refused_stale,
                    first_accepted_unix_us: t.first_accepted_unix_us,
                    last_accepted_unix_us: t.last_accepted_unix_us,
                })
                .collect(),
            streams: u32::try_from(self.streams.len()).unwrap_or(u32::MAX),
            diagnostics: if req.include_diagnostics {
                self.diagnostics.iter().cloned().collect()
            } else {
                Vec::new()
            },
            diagnostics_dropped: self.diagnostics_dropped,
            coverage: if req.include_coverage {
                self.coverage
                    .runs()
                    .into_iter()
                    .map(|r| v1::CoverageRun {
                        first_seq: r.first_seq,
                        last_seq: r.last_seq,
                        first_ms: r.first_ms,
                        last_ms: r.last_ms,
                        adapter_id: r.adapter,
                        late: r.late,
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use failover_core::Point;

    fn pts(stream: u32, seqs: std::ops::Range<u64>) -> Vec<Point> {
        seqs.map(|seq| Point {
            stream_id: stream,
            seq,
            timestamp_ms: seq as i64 * 100,
            value: 0.0,
        })
        .collect()
    }

    fn accepted(r: &v1::WriteReply) -> bool {
        r.outcome == v1::WriteOutcome::Accepted as i32
    }

    #[test]
    fn fencing_refuses_older_epochs_and_unfenced_writers() {
        let mut g = GroupRecord::default();
        assert!(
            !accepted(&g.write("a", "a@1", 1, &pts(0, 0..5))),
            "must fence first"
        );
        assert!(g.fence("a", "a@1", 1).granted);
        assert!(accepted(&g.write("a", "a@1", 1, &pts(0, 0..5))));
        // b takes over at epoch 2 and reads the watermark.
        let f = g.fence("b", "b@1", 2);
        assert!(f.granted);
        assert_eq!(
            f.watermark,
            vec![v1::StreamWatermark {
                stream_id: 0,
                seq: 4
            }]
        );
        // a, resumed, is refused as stale.
        let r = g.write("a", "a@1", 1, &pts(0, 5..8));
        assert_eq!(r.outcome, v1::WriteOutcome::StaleEpoch as i32);
        assert_eq!(g.refused_stale, 3);
        // a cannot fence back at its old epoch, nor at b's.
        assert!(!g.fence("a", "a@1", 1).granted);
        assert!(!g.fence("a", "a@1", 2).granted);
        // Another process named b cannot share b's fence at 2 (a twin).
        assert!(!g.fence("b", "b@2", 2).granted);
        // b re-fencing at its own epoch (after a lost reply) is fine.
        assert!(g.fence("b", "b@1", 2).granted);
        assert!(accepted(&g.write("b", "b@1", 2, &pts(0, 5..10))));
        let report = g.audit("g", &v1::AuditRequest::default());
        assert_eq!(
            (
                report.expected,
                report.received,
                report.lost,
                report.duplicated
            ),
            (10, 10, 0, 0)
        );
        assert_eq!(report.writers.len(), 2);
        assert_eq!(report.refused_stale, 3);
    }

    #[test]
    fn audit_counts_gaps_duplicates_and_expected_range() {
        let mut g = GroupRecord::default();
        g.fence("a", "a@1", 1);
        g.write("a", "a@1", 1, &pts(0, 0..10));
        g.write("a", "a@1", 1, &pts(0, 8..12));
        g.write("a", "a@1", 1, &pts(0, 20..25));
        g.write("a", "a@1", 1, &pts(1, 0..25));
        let report = g.audit("g", &v1::AuditRequest::default());
        assert_eq!(report.duplicated, 2);
        assert_eq!(report.lost, 8);
        assert_eq!(report.largest_gap_ms, 900);
        let bounded = g.audit(
            "g",
            &v1::AuditRequest {
                has_from_seq: true,
                from_seq: 0,
                has_through_seq: true,
                through_seq: 29,
                expected_streams: 3,
                ..Default::default()
            },
        );
        assert_eq!(bounded.expected, 90);
        assert_eq!(bounded.lost, 8 + 5 + 5 + 30);
    }
}
