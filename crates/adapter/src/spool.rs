//! The egress buffer, kept on disk as well when the adapter has a buffer directory, so that a
//! restarted adapter still holds what it had collected and not yet egressed (like the real
//! adapters' disk buffer: 1024 MB per endpoint by default, oldest dropped first).
//!
//! [`DurableBuffer`] is the in-memory [`EgressBuffer`] (which every decision reads) plus an
//! optional [`Spool`]: segment files of fixed-size point records, appended in arrival order.
//! The spool may hold more than memory does, never less: points already egressed may linger in
//! a segment until it is deleted, which is harmless, because a restarted adapter trims what it
//! reloads by a watermark before it egresses anything (the endpoint's, read when it fences, or
//! the Primary's, as a Hot Secondary), exactly as it trims its memory. So:
//!
//! - a segment is deleted once a trim's watermark covers every point in it (oldest first), or
//!   all at once when the buffer empties (the current one is truncated);
//! - past the cap, the oldest segment is deleted; memory holds as many points as the cap
//!   does, and drops (and counts) the oldest the same way;
//! - writes go straight to the file (no user-space buffering), so a killed process loses
//!   nothing it collected; the file is flushed to the device every second (a power cut may
//!   lose up to a second).
//!
//! A torn record at the end of a segment (the process died mid-write) is cut off on reload.

use std::{
    collections::VecDeque,
    fs::{File, OpenOptions},
    io::{Read, Write},
    path::{Path, PathBuf},
};

use failover_core::{Point, Watermark, buffer::EgressBuffer, points::StreamMap};

/// Bytes per point on disk: stream id (4), seq (8), timestamp (8), value (8), little-endian.
pub const RECORD_BYTES: usize = 28;
/// A segment is closed past this size.
pub const SEGMENT_BYTES: u64 = 4 << 20;

/// The adapter's egress buffer: memory, and a spool on disk if configured.
#[derive(Debug)]
pub struct DurableBuffer {
    memory: EgressBuffer,
    spool: Option<Spool>,
}

impl DurableBuffer {
    /// A buffer in memory only, of at most `capacity` points.
    pub fn in_memory(capacity: usize) -> Self {
        DurableBuffer {
            memory: EgressBuffer::new(capacity),
            spool: None,
        }
    }

    /// A buffer kept in `dir` too, of at most `max_bytes` on disk (and as many points in
    /// memory), holding what an earlier run left there. Returns it and the points restored.
    pub fn open(dir: &Path, max_bytes: u64, segment_bytes: u64) -> std::io::Result<(Self, usize)> {
        let capacity = usize::try_from(max_bytes / RECORD_BYTES as u64)
            .unwrap_or(usize::MAX)
            .max(1);
        let mut memory = EgressBuffer::new(capacity);
        let spool = Spool::open(dir, max_bytes, segment_bytes, &mut memory)?;
        let restored = memory.len();
        Ok((
            DurableBuffer {
                memory,
                spool: Some(spool),
            },
            restored,
        ))
    }

    /// Appends points (to memory, and to disk), dropping the oldest when full.
    pub fn extend(&mut self, points: &[Point]) {
        self.memory.extend(points.iter().copied());
        if let Some(s) = &mut self.spool {
            s.append(points);
        }
    }

    /// Removes every point the watermark covers; returns how many.
    pub fn trim(&mut self, watermark: &Watermark) -> usize {
        let n = self.memory.trim(watermark);
        if let Some(s) = &mut self.spool {
            if self.memory.is_empty() {
                s.reset();
            } else if n > 0 {
                s.forget_covered(watermark);
            }
        }
        n
    }

    /// Empties the buffer (a Warm or Cold standby holds no data).
    pub fn clear(&mut self) {
        self.memory.clear();
        if let Some(s) = &mut self.spool {
            s.reset();
        }
    }

    /// Copies up to `max` points from the front, for a write.
    pub fn front_batch(&self, max: usize) -> Vec<Point> {
        self.memory.front_batch(max)
    }

    /// The streams of the points held (in no order).
    pub fn streams(&self) -> impl Iterator<Item = u32> + '_ {
        self.memory.streams()
    }

    /// The watermark of the points held at or before `times` per stream (see
    /// [`failover_core::buffer::EgressBuffer::watermark_through`]).
    pub fn watermark_through(
        &self,
        times: &failover_core::points::StreamMap<i64>,
    ) -> failover_core::Watermark {
        self.memory.watermark_through(times)
    }

    /// Points held.
    pub fn len(&self) -> usize {
        self.memory.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.memory.is_empty()
    }

    /// Points dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.memory.dropped()
    }

    /// Bytes on disk (0 without a spool).
    pub fn disk_bytes(&self) -> u64 {
        self.spool.as_ref().map_or(0, |s| s.total_bytes)
    }

    /// The last disk error, if writing to the spool failed (the buffer goes on in memory).
    pub fn disk_error(&self) -> Option<&str> {
        self.spool.as_ref().and_then(|s| s.error.as_deref())
    }

    /// A handle on the segment being appended to, to flush it to the device without holding
    /// the buffer (None without a spool).
    pub fn sync_handle(&self) -> Option<File> {
        self.spool
            .as_ref()
            .and_then(|s| s.file.as_ref())
            .and_then(|f| f.try_clone().ok())
    }
}

/// One segment file.
#[derive(Debug)]
struct Segment {
    id: u64,
    bytes: u64,
    /// Highest seq per stream in the segment.
    max_seq: StreamMap<u64>,
}

impl Segment {
    fn new(id: u64) -> Self {
        Segment {
            id,
            bytes: 0,
            max_seq: StreamMap::default(),
        }
    }

    fn note(&mut self, p: &Point) {
        let m = self.max_seq.entry(p.stream_id).or_insert(p.seq);
        *m = (*m).max(p.seq);
    }

    fn covered_by(&self, watermark: &Watermark) -> bool {
        self.max_seq
            .iter()
            .all(|(s, seq)| watermark.get(*s).is_some_and(|w| w >= *seq))
    }
}

/// The segment files of a buffer directory.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// Oldest first; the last is the one appended to.
    segments: VecDeque<Segment>,
    file: Option<File>,
    total_bytes: u64,
    error: Option<String>,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

impl Spool {
    /// Opens `dir` (creating it), reloading its segments into `memory` in order.
    fn open(
        dir: &Path,
        max_bytes: u64,
        segment_bytes: u64,
        memory: &mut EgressBuffer,
    ) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let mut ids: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: segment_bytes.max(RECORD_BYTES as u64),
            segments: VecDeque::new(),
            file: None,
            total_bytes: 0,
            error: None,
        };
        for id in &ids {
            let path = segment_path(dir, *id);
            let mut bytes = Vec::new();
            File::open(&path)?.read_to_end(&mut bytes)?;
            let whole = bytes.len() - bytes.len() % RECORD_BYTES;
            if whole < bytes.len() {
                // A torn last record: the process died mid-write.
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(whole as u64)?;
            }
            let mut seg = Segment::new(*id);
            seg.bytes = whole as u64;
            let points: Vec<Point> = bytes[..whole]
                .chunks_exact(RECORD_BYTES)
                .map(decode)
                .collect();
            points.iter().for_each(|p| seg.note(p));
            memory.extend(points);
            spool.total_bytes += seg.bytes;
            spool.segments.push_back(seg);
        }
        // Appends go to a new segment.
        let next = ids.last().map_or(0, |id| id + 1);
        spool.start_segment(next)?;
        spool.enforce_cap();
        Ok(spool)
    }

    fn start_segment(&mut self, id: u64) -> std::io::Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(&self.dir, id))?;
        self.file = Some(file);
        self.segments.push_back(Segment::new(id));
        Ok(())
    }

    fn append(&mut self, points: &[Point]) {
        if points.is_empty() {
            return;
        }
        let mut bytes = Vec::with_capacity(points.len() * RECORD_BYTES);
        points.iter().for_each(|p| encode(p, &mut bytes));
        let result = match &mut self.file {
            Some(f) => f.write_all(&bytes),
            None => Err(std::io::Error::other("no open segment")),
        };
        match result {
            Ok(()) => {
                if let Some(seg) = self.segments.back_mut() {
                    seg.bytes += bytes.len() as u64;
                    points.iter().for_each(|p| seg.note(p));
                }
                self.total_bytes += bytes.len() as u64;
                self.error = None;
            }
            Err(e) => self.failed("cannot write the buffer to disk", &e),
        }
        if self
            .segments
            .back()
            .is_some_and(|s| s.bytes >= self.segment_bytes)
        {
            let next = self.segments.back().map_or(0, |s| s.id + 1);
            if let Err(e) = self.start_segment(next) {
                self.failed("cannot start a buffer segment", &e);
            }
        }
        self.enforce_cap();
    }

    /// Deletes the oldest segments while the spool is over its cap (memory, of the same
    /// capacity, drops and counts the same points).
    fn enforce_cap(&mut self) {
        while self.total_bytes > self.max_bytes && self.segments.len() > 1 {
            self.delete_oldest();
        }
    }

    fn delete_oldest(&mut self) {
        if let Some(seg) = self.segments.pop_front() {
            self.total_bytes -= seg.bytes;
            if let Err(e) = std::fs::remove_file(segment_path(&self.dir, seg.id)) {
                self.failed("cannot delete a buffer segment", &e);
            }
        }
    }

    /// Deletes the oldest closed segments the watermark covers.
    fn forget_covered(&mut self, watermark: &Watermark) {
        while self.segments.len() > 1
            && self
                .segments
                .front()
                .is_some_and(|s| s.covered_by(watermark))
        {
            self.delete_oldest();
        }
    }

    /// Everything is egressed or dropped: delete every closed segment, truncate the current.
    fn reset(&mut self) {
        while self.segments.len() > 1 {
            self.delete_oldest();
        }
        let Some(seg) = self.segments.back_mut() else {
            return;
        };
        if seg.bytes == 0 {
            return;
        }
        let truncated = match &self.file {
            Some(f) => f.set_len(0),
            None => Ok(()),
        };
        match truncated {
            Ok(()) => {
                self.total_bytes -= seg.bytes;
                *seg = Segment::new(seg.id);
            }
            Err(e) => self.failed("cannot truncate a buffer segment", &e),
        }
    }

    fn failed(&mut self, what: &str, e: &std::io::Error) {
        let msg = format!(
            "{what} in {}: {e}; buffering in memory only",
            self.dir.display()
        );
        if self.error.as_deref() != Some(msg.as_str()) {
            tracing::error!("{msg}");
        }
        self.error = Some(msg);
    }
}

fn encode(p: &Point, out: &mut Vec<u8>) {
    out.extend_from_slice(&p.stream_id.to_le_bytes());
    out.extend_from_slice(&p.seq.to_le_bytes());
    out.extend_from_slice(&p.timestamp_ms.to_le_bytes());
    out.extend_from_slice(&p.value.to_le_bytes());
}

/// One record (a [`RECORD_BYTES`] chunk).
fn decode(r: &[u8]) -> Point {
    let bytes = |i: usize| -> [u8; 8] {
        r.get(i..i + 8)
            .and_then(|b| b.try_into().ok())
            .unwrap_or_default()
    };
    let id: [u8; 4] = r
        .get(0..4)
        .and_then(|b| b.try_into().ok())
        .unwrap_or_default();
    Point {
        stream_id: u32::from_le_bytes(id),
        seq: u64::from_le_bytes(bytes(4)),
        timestamp_ms: i64::from_le_bytes(bytes(12)),
        value: f64::from_le_bytes(bytes(20)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory, removed when dropped.
    fn temp_dir(tag: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("failover-lab-spool-{tag}-"))
            .tempdir()
            .expect("a temporary folder")
    }

    const REC: u64 = RECORD_BYTES as u64;

    /// `n` ticks of `streams` streams from `from`.
    fn ticks(from: u64, n: u64, streams: u32) -> Vec<Point> {
        (from..from + n)
            .flat_map(|seq| {
                (0..streams).map(move |s| Point {
                    stream_id: s,
                    seq,
                    timestamp_ms: -1_000 + seq as i64,
                    value: f64::from(s) + seq as f64 / 8.0,
                })
            })
            .collect()
    }

    fn contents(b: &DurableBuffer) -> Vec<Point> {
        b.front_batch(usize::MAX)
    }

    fn segment_files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .map(|d| d.filter(|e| e.is_ok()).count())
            .unwrap_or(0)
    }

    #[test]
    fn a_reopened_buffer_holds_what_the_last_run_left_in_order() {
        let dir = temp_dir("reopen");
        let points = ticks(0, 50, 3);
        {
            let (mut b, restored) =
                DurableBuffer::open(dir.path(), 1 << 20, 10 * REC).expect("open");
            assert_eq!(restored, 0);
            for chunk in points.chunks(7) {
                b.extend(chunk);
            }
            assert!(segment_files(dir.path()) > 10, "rotated into segments");
            // Dropped without any shutdown, as a killed process would.
        }
        let (b, restored) = DurableBuffer::open(dir.path(), 1 << 20, 10 * REC).expect("reopen");
        assert_eq!(restored, points.len());
        assert_eq!(contents(&b), points);
        assert_eq!(b.disk_bytes(), points.len() as u64 * REC);
    }

    #[test]
    fn trimmed_segments_are_deleted_and_a_reload_trims_to_the_same_points() {
        let dir = temp_dir("trim");
        let (mut b, _) = DurableBuffer::open(dir.path(), 1 << 20, 12 * REC).expect("open");
        for tick in ticks(0, 40, 2).chunks(2) {
            b.extend(tick);
        }
        let files_before = segment_files(dir.path());
        let wm = Watermark::from_pairs([(0, 24), (1, 24)]);
        b.trim(&wm);
        assert_eq!(contents(&b), ticks(25, 15, 2));
        assert!(
            segment_files(dir.path()) < files_before,
            "covered segments deleted"
        );
        drop(b);
        // The reload may hold more (a partly covered segment), never less; trimming it by the
        // same watermark, as a restarted adapter does before egress, gives the same points.
        let (mut again, _) = DurableBuffer::open(dir.path(), 1 << 20, 12 * REC).expect("reopen");
        assert!(again.len() >= 30);
        again.trim(&wm);
        assert_eq!(contents(&again), ticks(25, 15, 2));
        // Emptied: nothing left on disk.
        again.trim(&Watermark::from_pairs([(0, 39), (1, 39)]));
        assert!(again.is_empty());
        assert_eq!(again.disk_bytes(), 0);
        drop(again);
        let (empty, restored) = DurableBuffer::open(dir.path(), 1 << 20, 12 * REC).expect("reopen");
        assert_eq!((restored, empty.len()), (0, 0));
    }

    #[test]
    fn a_torn_last_record_is_cut_off() {
        let dir = temp_dir("torn");
        let points = ticks(0, 5, 2);
        {
            let (mut b, _) = DurableBuffer::open(dir.path(), 1 << 20, 1 << 20).expect("open");
            b.extend(&points);
        }
        let seg = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
            .expect("a segment with data");
        let mut f = OpenOptions::new().append(true).open(&seg).expect("segment");
        f.write_all(&[1, 2, 3, 4, 5]).expect("torn write");
        drop(f);
        let (b, restored) = DurableBuffer::open(dir.path(), 1 << 20, 1 << 20).expect("reopen");
        assert_eq!(restored, points.len());
        assert_eq!(contents(&b), points);
        assert_eq!(
            std::fs::metadata(&seg).expect("segment").len(),
            points.len() as u64 * REC
        );
    }

    #[test]
    fn past_the_cap_the_oldest_are_dropped_and_counted() {
        let dir = temp_dir("cap");
        let cap = 20 * REC;
        let (mut b, _) = DurableBuffer::open(dir.path(), cap, 5 * REC).expect("open");
        let points = ticks(0, 50, 1);
        for chunk in points.chunks(3) {
            b.extend(chunk);
        }
        assert_eq!(b.len(), 20);
        assert_eq!(b.dropped(), 30);
        assert_eq!(contents(&b), points[30..]);
        assert!(b.disk_bytes() <= cap, "{} bytes on disk", b.disk_bytes());
        drop(b);
        let (b, _) = DurableBuffer::open(dir.path(), cap, 5 * REC).expect("reopen");
        // The newest points survive; none from before what memory held.
        let back = contents(&b);
        assert!(back.ends_with(&points[30..]) || back == points[30..]);
        assert!(back.len() <= 20);
        assert_eq!(back.last(), points.last());
    }

    #[test]
    fn a_cleared_buffer_leaves_nothing_on_disk() {
        let dir = temp_dir("clear");
        let (mut b, _) = DurableBuffer::open(dir.path(), 1 << 20, 10 * REC).expect("open");
        b.extend(&ticks(0, 30, 2));
        b.clear();
        assert_eq!(b.disk_bytes(), 0);
        b.extend(&ticks(30, 1, 2));
        drop(b);
        let (b, restored) = DurableBuffer::open(dir.path(), 1 << 20, 10 * REC).expect("reopen");
        assert_eq!(restored, 2);
        assert_eq!(contents(&b), ticks(30, 1, 2));
    }

    #[test]
    fn an_unusable_directory_is_an_error_not_a_panic() {
        let dir = temp_dir("file");
        let file = dir.path().join("buffer");
        std::fs::write(&file, b"a file, not a directory").expect("file");
        let e = DurableBuffer::open(&file, 1 << 20, 1 << 20).expect_err("refused");
        assert!(!e.to_string().is_empty());
    }
}
