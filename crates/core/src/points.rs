//! Data points and watermarks. A point is identified by its stream and sequence number; the
//! source gives both adapters identical points, so the endpoint can tell lost from duplicated.

use std::collections::HashMap;

/// One value of one stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The stream.
    pub stream_id: u32,
    /// Position in the stream, from 0, one per source tick.
    pub seq: u64,
    /// Data time (unix milliseconds).
    pub timestamp_ms: i64,
    /// The value.
    pub value: f64,
}

/// The last sequence number per stream that an endpoint accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watermark {
    last: HashMap<u32, u64>,
}

impl Watermark {
    /// From (stream, seq) pairs; for a stream listed twice the higher seq counts.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (u32, u64)>) -> Self {
        let mut w = Watermark::default();
        for (stream, seq) in pairs {
            w.advance(stream, seq);
        }
        w
    }

    /// The last accepted seq of a stream.
    pub fn get(&self, stream: u32) -> Option<u64> {
        self.last.get(&stream).copied()
    }

    /// Records that `seq` of `stream` was accepted (never moves backwards).
    pub fn advance(&mut self, stream: u32, seq: u64) {
        let e = self.last.entry(stream).or_insert(seq);
        if seq > *e {
            *e = seq;
        }
    }

    /// True when the point was already accepted by the endpoint.
    pub fn covers(&self, p: &Point) -> bool {
        self.get(p.stream_id).is_some_and(|last| p.seq <= last)
    }

    /// (stream, seq) pairs, sorted by stream.
    pub fn to_pairs(&self) -> Vec<(u32, u64)> {
        let mut v: Vec<_> = self.last.iter().map(|(s, q)| (*s, *q)).collect();
        v.sort_unstable();
        v
    }

    /// How many streams it covers.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// True when no stream has a watermark.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}
