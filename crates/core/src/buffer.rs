//! The adapter's egress buffer: points collected and not yet accepted by the endpoint, in
//! arrival order, bounded (oldest dropped first, and counted). A Hot Secondary trims it by the
//! Primary's watermark; a new Primary trims it by the endpoint's watermark, then flushes the rest.

use std::collections::VecDeque;

use crate::points::{Point, StreamMap, StreamSet, Watermark};

/// Bounded FIFO of points awaiting egress.
#[derive(Debug, Clone)]
pub struct EgressBuffer {
    points: VecDeque<Point>,
    capacity: usize,
    dropped: u64,
    /// Last seq appended per stream since the buffer was last empty.
    last_seq: StreamMap<u64>,
    /// Every stream's points are in increasing seq order (live data; a history recovery's
    /// older points break it until the buffer empties). Lets [`EgressBuffer::trim`] stop early.
    in_order: bool,
}

impl EgressBuffer {
    /// A buffer holding at most `capacity` points (at least 1).
    pub fn new(capacity: usize) -> Self {
        EgressBuffer {
            points: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
            last_seq: StreamMap::default(),
            in_order: true,
        }
    }

    /// Appends points, dropping the oldest when full.
    pub fn extend(&mut self, points: impl IntoIterator<Item = Point>) {
        for p in points {
            if self.points.len() == self.capacity {
                self.points.pop_front();
                self.dropped += 1;
            }
            let last = self.last_seq.entry(p.stream_id).or_insert(p.seq);
            if p.seq < *last {
                self.in_order = false;
            }
            *last = (*last).max(p.seq);
            self.points.push_back(p);
        }
    }

    /// Removes every point the watermark covers; returns how many.
    ///
    /// Covered points are usually all at the front (the buffer holds ticks in order). When
    /// every stream's points are in seq order, the scan past the front stops as soon as each
    /// watermarked stream has shown an uncovered point, since all its later points are newer:
    /// trimming after a write costs about one tick of points, not the whole buffer.
    pub fn trim(&mut self, watermark: &Watermark) -> usize {
        if watermark.is_empty() {
            return 0;
        }
        let before = self.points.len();
        while self.points.front().is_some_and(|p| watermark.covers(p)) {
            self.points.pop_front();
        }
        let scan_to = if self.in_order {
            let mut passed = StreamSet::default();
            let mut end = self.points.len();
            for (i, p) in self.points.iter().enumerate() {
                if !watermark.covers(p) && watermark.get(p.stream_id).is_some() {
                    passed.insert(p.stream_id);
                    if passed.len() == watermark.len() {
                        end = i;
                        break;
                    }
                }
            }
            end
        } else {
            self.points.len()
        };
        if self.points.range(..scan_to).any(|p| watermark.covers(p)) {
            let mut i = 0;
            self.points.retain(|p| {
                let keep = i >= scan_to || !watermark.covers(p);
                i += 1;
                keep
            });
        }
        self.reset_order_if_empty();
        before - self.points.len()
    }

    fn reset_order_if_empty(&mut self) {
        if self.points.is_empty() {
            self.last_seq.clear();
            self.in_order = true;
        }
    }

    /// The watermark of the points held whose data time is at or before `times` (per stream):
    /// where an endpoint that answers data times (OMF) says it already holds them.
    pub fn watermark_through(&self, times: &StreamMap<i64>) -> Watermark {
        let mut w = Watermark::default();
        for p in &self.points {
            if times
                .get(&p.stream_id)
                .is_some_and(|t| p.timestamp_ms <= *t)
            {
                w.advance(p.stream_id, p.seq);
            }
        }
        w
    }

    /// The streams of the points held (in no order).
    pub fn streams(&self) -> impl Iterator<Item = u32> + '_ {
        self.last_seq.keys().copied()
    }

    /// Copies up to `max` points from the front, for a write.
    pub fn front_batch(&self, max: usize) -> Vec<Point> {
        self.points.iter().take(max).copied().collect()
    }

    /// Removes the `n` front points (after the endpoint accepted them).
    pub fn pop_front(&mut self, n: usize) {
        let n = n.min(self.points.len());
        self.points.drain(..n);
        self.reset_order_if_empty();
    }

    /// Empties the buffer (for example when standing by in Warm or Cold mode).
    pub fn clear(&mut self) {
        self.points.clear();
        self.reset_order_if_empty();
    }

    /// Points held.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Points dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The oldest point held.
    pub fn oldest(&self) -> Option<&Point> {
        self.points.front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(seq: u64, streams: u32) -> Vec<Point> {
        (0..streams)
            .map(|s| Point {
                stream_id: s,
                seq,
                timestamp_ms: seq as i64 * 100,
                value: seq as f64,
            })
            .collect()
    }

    #[test]
    fn trims_what_the_watermark_covers_and_keeps_the_rest_in_order() {
        let mut b = EgressBuffer::new(1000);
        for seq in 0..10 {
            b.extend(tick(seq, 3));
        }
        assert_eq!(b.len(), 30);
        let wm = Watermark::from_pairs([(0, 4), (1, 4), (2, 4)]);
        assert_eq!(b.trim(&wm), 15);
        let first = b.front_batch(3);
        assert!(first.iter().all(|p| p.seq == 5));
        // Flush from here: exactly the points after the watermark, none before.
        let all = b.front_batch(usize::MAX);
        assert_eq!(all.len(), 15);
        assert!(all.iter().all(|p| !wm.covers(p)));
        assert!(all.windows(2).all(|w| w[0].seq <= w[1].seq));
    }

    #[test]
    fn uneven_watermarks_trim_inside_the_buffer() {
        let mut b = EgressBuffer::new(1000);
        for seq in 0..10 {
            b.extend(tick(seq, 2));
        }
        // Stream 0 is held back (its component was down on the Primary), stream 1 advanced.
        let wm = Watermark::from_pairs([(0, 2), (1, 8)]);
        assert_eq!(b.trim(&wm), 3 + 9);
        let rest = b.front_batch(usize::MAX);
        assert_eq!(rest.len(), 7 + 1);
        assert!(rest.iter().all(|p| !wm.covers(p)));
        assert_eq!(b.trim(&Watermark::default()), 0);
    }

    #[test]
    fn trim_is_exact_with_history_points_out_of_order() {
        let mut b = EgressBuffer::new(1000);
        for seq in 5..10 {
            b.extend(tick(seq, 2));
        }
        // A history recovery appends older points after the live ones.
        for seq in 0..5 {
            b.extend(tick(seq, 2));
        }
        let wm = Watermark::from_pairs([(0, 6), (1, 3)]);
        let removed = b.trim(&wm);
        let rest = b.front_batch(usize::MAX);
        assert_eq!(removed, 7 + 4);
        assert_eq!(rest.len(), 20 - removed);
        assert!(rest.iter().all(|p| !wm.covers(p)));
        // Emptied, the buffer is in order again.
        b.clear();
        b.extend(tick(1, 2));
        assert_eq!(b.trim(&Watermark::from_pairs([(0, 1)])), 1);
    }

    #[test]
    fn trim_matches_a_full_scan_for_any_watermark() {
        // Every watermark over 3 streams, on a buffer of 6 ticks with stream 2 missing ticks.
        for w0 in 0..8u64 {
            for w1 in 0..8u64 {
                for w2 in 0..8u64 {
                    let mut b = EgressBuffer::new(1000);
                    for seq in 0..6 {
                        let pts: Vec<Point> = tick(seq, 3)
                            .into_iter()
                            .filter(|p| !(p.stream_id == 2 && seq % 2 == 1))
                            .collect();
                        b.extend(pts);
                    }
                    let all = b.front_batch(usize::MAX);
                    let wm = Watermark::from_pairs([(0, w0), (1, w1), (2, w2)]);
                    b.trim(&wm);
                    let expected: Vec<Point> = all.into_iter().filter(|p| !wm.covers(p)).collect();
                    assert_eq!(b.front_batch(usize::MAX), expected, "{w0} {w1} {w2}");
                }
            }
        }
    }

    #[test]
    fn full_buffer_drops_the_oldest_and_counts() {
        let mut b = EgressBuffer::new(5);
        for seq in 0..8 {
            b.extend(tick(seq, 1));
        }
        assert_eq!(b.len(), 5);
        assert_eq!(b.dropped(), 3);
        assert_eq!(b.oldest().map(|p| p.seq), Some(3));
        b.pop_front(2);
        assert_eq!(b.oldest().map(|p| p.seq), Some(5));
        b.pop_front(100);
        assert!(b.is_empty());
    }

    #[test]
    fn watermarks_never_move_backwards() {
        let mut w = Watermark::default();
        w.advance(1, 10);
        w.advance(1, 3);
        assert_eq!(w.get(1), Some(10));
        assert_eq!(
            Watermark::from_pairs([(1, 3), (1, 9), (1, 2)]).get(1),
            Some(9)
        );
        assert_eq!(w.to_pairs(), vec![(1, 10)]);
    }
}
