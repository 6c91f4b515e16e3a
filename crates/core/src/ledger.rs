//! The endpoint's record of one stream: which sequence numbers it holds, kept as sorted ranges
//! with their data times, so it can count lost, duplicated and out-of-order points and find the
//! largest gap in data time without storing every point.

/// A run of consecutive sequence numbers held, with the data times of its ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    first_seq: u64,
    last_seq: u64,
    first_ms: i64,
    last_ms: i64,
}

/// What happened to an inserted point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// New, after everything held.
    InOrder,
    /// New, but before the highest seq held.
    OutOfOrder,
    /// Already held.
    Duplicate,
}

/// One stream's record.
#[derive(Debug, Clone, Default)]
pub struct StreamLedger {
    runs: Vec<Run>,
    held: u64,
}

impl StreamLedger {
    /// Records a point.
    pub fn insert(&mut self, seq: u64, timestamp_ms: i64) -> Insert {
        // Fast path: appending at or right after the end.
        if let Some(last) = self.runs.last_mut() {
            if seq == last.last_seq.wrapping_add(1) && seq > last.last_seq {
                last.last_seq = seq;
                last.last_ms = timestamp_ms;
                self.held += 1;
                return Insert::InOrder;
            }
            if seq > last.last_seq {
                self.push_run(self.runs.len(), seq, timestamp_ms);
                return Insert::InOrder;
            }
        } else {
            self.push_run(0, seq, timestamp_ms);
            return Insert::InOrder;
        }
        // Slow path: somewhere before the end.
        let i = self.runs.partition_point(|r| r.last_seq < seq);
        if let Some(r) = self.runs.get(i)
            && r.first_seq <= seq
        {
            return Insert::Duplicate;
        }
        // seq falls in the gap before runs[i] (and after runs[i-1], if any).
        let joins_prev = i > 0 && self.runs[i - 1].last_seq + 1 == seq;
        let joins_next = self.runs.get(i).is_some_and(|r| r.first_seq == seq + 1);
        match (joins_prev, joins_next) {
            (true, true) => {
                let next = self.runs.remove(i);
                let prev = &mut self.runs[i - 1];
                prev.last_seq = next.last_seq;
                prev.last_ms = next.last_ms;
            }
            (true, false) => {
                let prev = &mut self.runs[i - 1];
                prev.last_seq = seq;
                prev.last_ms = timestamp_ms;
            }
            (false, true) => {
                let next = &mut self.runs[i];
                next.first_seq = seq;
                next.first_ms = timestamp_ms;
            }
            (false, false) => {
                self.push_run(i, seq, timestamp_ms);
                return Insert::OutOfOrder;
            }
        }
        self.held += 1;
        Insert::OutOfOrder
    }

    fn push_run(&mut self, at: usize, seq: u64, ms: i64) {
        self.runs.insert(
            at,
            Run {
                first_seq: seq,
                last_seq: seq,
                first_ms: ms,
                last_ms: ms,
            },
        );
        self.held += 1;
    }

    /// Distinct points held.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Lowest seq held.
    pub fn first_seq(&self) -> Option<u64> {
        self.runs.first().map(|r| r.first_seq)
    }

    /// Highest seq held: the stream's watermark.
    pub fn last_seq(&self) -> Option<u64> {
        self.runs.last().map(|r| r.last_seq)
    }

    /// Distinct points held with `lo <= seq <= hi`.
    pub fn held_between(&self, lo: u64, hi: u64) -> u64 {
        if lo > hi {
            return 0;
        }
        self.runs
            .iter()
            .map(|r| {
                let a = r.first_seq.max(lo);
                let b = r.last_seq.min(hi);
                if a > b { 0 } else { b - a + 1 }
            })
            .sum()
    }

    /// The largest step in data time between consecutive held points.
    pub fn largest_gap_ms(&self) -> i64 {
        let within = self
            .runs
            .iter()
            .filter(|r| r.last_seq > r.first_seq)
            .map(|r| {
                let steps = i64::try_from(r.last_seq - r.first_seq).unwrap_or(i64::MAX);
                (r.last_ms - r.first_ms) / steps.max(1)
            });
        let between = self.runs.windows(2).map(|w| w[1].first_ms - w[0].last_ms);
        within.chain(between).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seq: u64) -> i64 {
        seq as i64 * 100
    }

    #[test]
    fn counts_in_order_gaps_duplicates_and_late_points() {
        let mut l = StreamLedger::default();
        for seq in 10..20 {
            assert_eq!(l.insert(seq, ts(seq)), Insert::InOrder);
        }
        // A gap of 5 lost points (a Cold takeover).
        for seq in 25..30 {
            assert_eq!(l.insert(seq, ts(seq)), Insert::InOrder);
        }
        assert_eq!(l.held(), 15);
        assert_eq!(l.held_between(10, 29), 15);
        assert_eq!(20 - l.held_between(10, 29), 5);
        assert_eq!(l.largest_gap_ms(), 600);
        assert_eq!(l.insert(12, ts(12)), Insert::Duplicate);
        assert_eq!(l.insert(29, ts(29)), Insert::Duplicate);
        assert_eq!(l.insert(22, ts(22)), Insert::OutOfOrder);
        assert_eq!(l.insert(21, ts(21)), Insert::OutOfOrder);
        assert_eq!(l.insert(20, ts(20)), Insert::OutOfOrder);
        assert_eq!(l.insert(23, ts(23)), Insert::OutOfOrder);
        assert_eq!(l.insert(24, ts(24)), Insert::OutOfOrder);
        assert_eq!(l.held(), 20);
        assert_eq!(l.largest_gap_ms(), 100);
        assert_eq!((l.first_seq(), l.last_seq()), (Some(10), Some(29)));
        assert_eq!(l.insert(5, ts(5)), Insert::OutOfOrder);
        assert_eq!(l.held_between(0, 100), 21);
        assert_eq!(l.held_between(6, 9), 0);
        assert_eq!(l.held_between(9, 6), 0);
    }

    #[test]
    fn matches_a_plain_set_on_every_order() {
        // Every permutation of a small set of seqs, with repeats, against a BTreeSet model.
        let seqs = [3u64, 1, 4, 1, 5, 9, 2, 6, 5, 3];
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        for rot in 0..seqs.len() {
            order.rotate_left(1);
            for rev in [false, true] {
                let mut l = StreamLedger::default();
                let mut model = std::collections::BTreeSet::new();
                let it: Vec<usize> = if rev {
                    order.iter().rev().copied().collect()
                } else {
                    order.clone()
                };
                for &i in &it {
                    let s = seqs[i];
                    let max_before = model.iter().next_back().copied();
                    let got = l.insert(s, ts(s));
                    let expect = if !model.insert(s) {
                        Insert::Duplicate
                    } else if max_before.is_some_and(|m| s < m) {
                        Insert::OutOfOrder
                    } else {
                        Insert::InOrder
                    };
                    assert_eq!(got, expect, "rot {rot} rev {rev} seq {s}");
                }
                assert_eq!(l.held(), model.len() as u64);
                assert_eq!(l.held_between(2, 5), model.range(2..=5).count() as u64);
            }
        }
    }
}
