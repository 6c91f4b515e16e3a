//! Data points and watermarks. A point is identified by its stream and sequence number; the
//! source gives both adapters identical points, so the endpoint can tell lost from duplicated.

use std::{
    collections::{HashMap, HashSet},
    hash::{BuildHasherDefault, Hasher},
};

/// A hasher for stream ids: one multiplication (Fibonacci hashing). Stream ids are small
/// integers; SipHash's protection against crafted keys costs ~20 ns per lookup on the data
/// path, and a crafted set of ids could only slow a map, never break it.
#[derive(Debug, Default, Clone, Copy)]
pub struct StreamIdHasher(u64);

impl Hasher for StreamIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.0 = (u64::from(id) ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by stream id.
pub type StreamMap<V> = HashMap<u32, V, BuildHasherDefault<StreamIdHasher>>;
/// A set of stream ids.
pub type StreamSet = HashSet<u32, BuildHasherDefault<StreamIdHasher>>;

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
    last: StreamMap<u64>,
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
