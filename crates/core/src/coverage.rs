//! Data coverage: for each source tick (sequence number), which adapter's point reached the
//! endpoint first, and whether it arrived late (a buffered point flushed after a takeover, or
//! egressed after an outage) — what shows that a Hot standby's buffer fills the hole a failure
//! leaves, and how large the hole is in Warm and Cold. Kept per tick, at most [`MAX_TICKS`]
//! (the oldest are let go), and reported as runs of consecutive ticks.

use std::collections::BTreeMap;

/// Most ticks kept (at 10 Hz, more than five hours).
pub const MAX_TICKS: usize = 200_000;

/// A point that reaches the endpoint this long after its data time arrived late.
pub const LATE_MS: i64 = 1000;

/// Consecutive ticks delivered by one adapter, on time or late.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverageRun {
    /// The first tick.
    pub first_seq: u64,
    /// The last tick.
    pub last_seq: u64,
    /// Data time of the first tick (unix ms).
    pub first_ms: i64,
    /// Data time of the last tick (unix ms).
    pub last_ms: i64,
    /// Who delivered them.
    pub adapter: String,
    /// They arrived [`LATE_MS`] or more after their data time.
    pub late: bool,
}

/// The record of one failover group.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    adapters: Vec<String>,
    /// seq → (data time, adapter index, late).
    ticks: BTreeMap<u64, (i64, usize, bool)>,
}

impl Coverage {
    /// Records a point of tick `seq` with data time `timestamp_ms`, delivered by `adapter` at
    /// `arrived_ms`; the first delivery of a tick counts.
    pub fn record(&mut self, seq: u64, timestamp_ms: i64, adapter: &str, arrived_ms: i64) {
        if self.ticks.contains_key(&seq) {
            return;
        }
        let i = match self.adapters.iter().position(|a| a == adapter) {
            Some(i) => i,
            None => {
                self.adapters.push(adapter.to_string());
                self.adapters.len() - 1
            }
        };
        self.ticks
            .insert(seq, (timestamp_ms, i, arrived_ms - timestamp_ms >= LATE_MS));
        while self.ticks.len() > MAX_TICKS {
            self.ticks.pop_first();
        }
    }

    /// The ticks held, as runs; the holes between runs are the ticks nobody delivered.
    pub fn runs(&self) -> Vec<CoverageRun> {
        let mut out: Vec<CoverageRun> = Vec::new();
        for (&seq, &(ms, i, late)) in &self.ticks {
            let adapter = self.adapters.get(i).map_or("", String::as_str);
            match out.last_mut() {
                Some(r) if r.last_seq + 1 == seq && r.adapter == adapter && r.late == late => {
                    r.last_seq = seq;
                    r.last_ms = ms;
                }
                _ => out.push(CoverageRun {
                    first_seq: seq,
                    last_seq: seq,
                    first_ms: ms,
                    last_ms: ms,
                    adapter: adapter.to_string(),
                    late,
                }),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_show_who_delivered_what_on_time_or_late_and_the_holes() {
        let mut c = Coverage::default();
        // adapter-a on time for ticks 0-9 (100 ms a tick, arriving 50 ms later).
        for seq in 0..10 {
            c.record(seq, seq as i64 * 100, "adapter-a", seq as i64 * 100 + 50);
        }
        // A hole at 10-14; adapter-b flushes 15-19 late, then is on time.
        for seq in 15..20 {
            c.record(seq, seq as i64 * 100, "adapter-b", 3000);
        }
        for seq in 20..25 {
            c.record(seq, seq as i64 * 100, "adapter-b", seq as i64 * 100 + 80);
        }
        // A second delivery of a tick changes nothing.
        c.record(3, 300, "adapter-b", 9999);
        let runs = c.runs();
        let shape: Vec<(u64, u64, &str, bool)> = runs
            .iter()
            .map(|r| (r.first_seq, r.last_seq, r.adapter.as_str(), r.late))
            .collect();
        assert_eq!(
            shape,
            vec![
                (0, 9, "adapter-a", false),
                (15, 19, "adapter-b", true),
                (20, 24, "adapter-b", false)
            ]
        );
        assert_eq!((runs[1].first_ms, runs[1].last_ms), (1500, 1900));
    }

    #[test]
    fn the_oldest_ticks_are_let_go_past_the_cap() {
        let mut c = Coverage::default();
        for seq in 0..(MAX_TICKS as u64 + 10) {
            c.record(seq, 0, "a", 0);
        }
        let runs = c.runs();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].first_seq, 10);
    }
}
