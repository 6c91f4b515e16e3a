//! Which failover design an adapter follows: failover-lab's (fence by epoch, flush after the
//! endpoint's watermark) or the vendor's, as its published adapter framework keeps it
//! (docs/vendor-behaviour.md, rules V1-V9), so the two can be run on the same fault and
//! compared.
//!
//! The vendor's design keeps a Hot standby's data by time, not by what the endpoint holds:
//! - every message is queued with the time this adapter received it, on its own clock;
//! - the Primary hands its queue to its egress (which buffers and retries on its own) and
//!   reports, as `LastDataProcessedTime`, the receive time of the last message handed over:
//!   whether the endpoint took it or not;
//! - a Hot Secondary drops the messages it received at or before the `LastDataProcessedTime`
//!   its failover service answers, minus failoverTimeout/2 ([`trim_cutoff_ms`]), and sends the
//!   rest when it becomes Primary.
//!
//! Nothing fences the endpoint: what the overlap holds is sent twice, and the two machines'
//! clocks decide how much overlap there is ([`predicted_overlap`]).

use std::{collections::VecDeque, fmt, str::FromStr, time::Duration};

use crate::{Point, Watermark};

/// An adapter's failover design.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Behaviour {
    /// failover-lab's: fenced by epoch, flushed after the endpoint's watermark (docs/rules.md).
    #[default]
    Lab,
    /// The vendor's adapter framework's: a Hot queue trimmed by time, no fencing
    /// (docs/vendor-behaviour.md).
    Vendor,
}

impl Behaviour {
    /// Both, in the order tables show them.
    pub const ALL: [Behaviour; 2] = [Behaviour::Lab, Behaviour::Vendor];

    /// The name on command lines and in files: `lab` or `vendor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Behaviour::Lab => "lab",
            Behaviour::Vendor => "vendor",
        }
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Behaviour {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lab" => Ok(Behaviour::Lab),
            "vendor" => Ok(Behaviour::Vendor),
            other => Err(format!(
                "{other:?} is not a behaviour; use \"lab\" (failover-lab's design) or \"vendor\" \
                 (the vendor's adapter framework's)"
            )),
        }
    }
}

/// V1: the vendor's adapters wait this long for a heartbeat's answer.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// V3: heartbeats a member told PendingPrimary sends at once, one after another, to confirm
/// the role, before it falls back to its interval.
pub const PENDING_CONFIRMATIONS: u32 = 10;

/// V1: the interval between heartbeats for a failoverTimeout (the product's failoverTimeout is
/// at least 15 s; only the first heartbeat after registering waits a second).
pub fn heartbeat_interval(failover_timeout: Duration) -> Duration {
    failover_timeout / 2
}

/// V5: a Hot Secondary told `last_data_processed_ms` drops every message it received at or
/// before this time (its own clock, unix ms).
pub fn trim_cutoff_ms(last_data_processed_ms: i64, failover_timeout: Duration) -> i64 {
    let half = i64::try_from((failover_timeout / 2).as_millis()).unwrap_or(i64::MAX);
    last_data_processed_ms.saturating_sub(half)
}

/// A queued message: when it was received, and the last sequence number of each stream in it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mark {
    received_ms: i64,
    through: Watermark,
}

/// The receive times of the messages an adapter holds, beside its buffer of their points, in
/// the order received. The buffer is trimmed by the watermarks this returns.
#[derive(Debug, Clone, Default)]
pub struct ReceiveLog {
    marks: VecDeque<Mark>,
}

/// Most messages remembered: past it the oldest receive times are forgotten (their points are
/// long gone from any bounded buffer).
const MAX_MARKS: usize = 1 << 20;

impl ReceiveLog {
    /// Notes one message of points received at `received_ms` (this adapter's clock).
    pub fn record(&mut self, received_ms: i64, points: &[Point]) {
        if points.is_empty() {
            return;
        }
        let through = Watermark::from_pairs(points.iter().map(|p| (p.stream_id, p.seq)));
        self.marks.push_back(Mark {
            received_ms,
            through,
        });
        if self.marks.len() > MAX_MARKS {
            self.marks.pop_front();
        }
    }

    /// V5: forgets every message received at or before `cutoff_ms`; returns the watermark of
    /// the points they held (trim the buffer by it).
    pub fn trim_through(&mut self, cutoff_ms: i64) -> Watermark {
        let mut dropped = Watermark::default();
        while let Some(m) = self.marks.front() {
            if m.received_ms > cutoff_ms {
                break;
            }
            for (stream, seq) in m.through.to_pairs() {
                dropped.advance(stream, seq);
            }
            self.marks.pop_front();
        }
        dropped
    }

    /// The endpoint took every point through `sent`: forgets the messages wholly sent (their
    /// points have left the buffer too), and returns the receive time of the last of them.
    pub fn sent(&mut self, sent: &Watermark) -> Option<i64> {
        let mut last = None;
        while let Some(m) = self.marks.front() {
            let done = m
                .through
                .to_pairs()
                .iter()
                .all(|&(stream, seq)| sent.get(stream).is_some_and(|s| s >= seq));
            if !done {
                break;
            }
            last = Some(m.received_ms);
            self.marks.pop_front();
        }
        last
    }

    /// The receive time of the oldest message held.
    pub fn oldest_ms(&self) -> Option<i64> {
        self.marks.front().map(|m| m.received_ms)
    }

    /// The receive time of the newest message held.
    pub fn newest_ms(&self) -> Option<i64> {
        self.marks.back().map(|m| m.received_ms)
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.marks.len()
    }

    /// True when no message is held.
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }

    /// V7: forgets everything (the queue is deleted).
    pub fn clear(&mut self) {
        self.marks.clear();
    }
}

/// What the trimming rule predicts a Hot takeover sends twice, per stream: the points the new
/// Primary received after its cutoff that the old Primary had already sent.
///
/// `received_ms(seq)` is when the standby received a stream's point (its clock); the standby's
/// queue then starts at the first point received after `cutoff_ms`, and the old Primary had
/// sent every point through `old_primary_through`. Points are counted from `first_seq` (the
/// oldest the standby held at all) to `old_primary_through`.
pub fn predicted_overlap(
    first_seq: u64,
    old_primary_through: u64,
    cutoff_ms: i64,
    received_ms: impl Fn(u64) -> i64,
) -> u64 {
    (first_seq..=old_primary_through)
        .filter(|&seq| received_ms(seq) > cutoff_ms)
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(stream_id: u32, seq: u64) -> Point {
        Point {
            stream_id,
            seq,
            timestamp_ms: 0,
            value: 0.0,
        }
    }

    #[test]
    fn heartbeats_go_every_half_timeout() {
        assert_eq!(
            heartbeat_interval(Duration::from_secs(4)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn a_secondary_drops_what_it_received_at_or_before_half_a_timeout_before_the_primarys_time() {
        let mut log = ReceiveLog::default();
        log.record(1_000, &[p(0, 1), p(1, 1)]);
        log.record(2_000, &[p(0, 2), p(1, 2)]);
        log.record(3_000, &[p(0, 3)]);
        let cutoff = trim_cutoff_ms(4_000, Duration::from_secs(4));
        assert_eq!(cutoff, 2_000);
        let wm = log.trim_through(cutoff);
        assert_eq!(wm.to_pairs(), vec![(0, 2), (1, 2)]);
        assert_eq!(log.oldest_ms(), Some(3_000));
        assert_eq!(log.trim_through(cutoff).len(), 0, "nothing more to drop");
    }

    #[test]
    fn messages_wholly_sent_are_forgotten_in_order() {
        let mut log = ReceiveLog::default();
        log.record(1_000, &[p(0, 1), p(1, 1)]);
        log.record(2_000, &[p(0, 2), p(1, 2)]);
        // Half of the second message sent: the first is done.
        assert_eq!(
            log.sent(&Watermark::from_pairs([(0, 2), (1, 1)])),
            Some(1_000)
        );
        assert_eq!(log.sent(&Watermark::from_pairs([(0, 2), (1, 1)])), None);
        assert_eq!(
            log.sent(&Watermark::from_pairs([(0, 2), (1, 2)])),
            Some(2_000)
        );
        assert!(log.is_empty());
    }

    #[test]
    fn the_overlap_is_what_was_received_after_the_cutoff_and_already_sent() {
        // Ticks every 100 ms from 0, received 5 ms later; the cutoff at 1000 ms keeps ticks 10
        // (received at 1005) onwards; the old Primary sent through tick 19: 10 points twice.
        assert_eq!(predicted_overlap(0, 19, 1_000, |s| s as i64 * 100 + 5), 10);
        // A standby clock 3 s behind: it received everything "earlier", drops more: no overlap.
        assert_eq!(
            predicted_overlap(0, 19, 1_000, |s| s as i64 * 100 + 5 - 3_000),
            0
        );
    }

    #[test]
    fn behaviours_parse_by_name_and_refuse_others_saying_which_are_known() {
        assert_eq!("vendor".parse::<Behaviour>(), Ok(Behaviour::Vendor));
        assert_eq!(Behaviour::Lab.to_string(), "lab");
        let e = "Vendor".parse::<Behaviour>().unwrap_err();
        assert!(e.contains("\"lab\"") && e.contains("\"vendor\""), "{e}");
    }
}
