//! The invariants every run must keep, checked on what the observer and the endpoint saw:
//!
//! 1. at most one adapter's writes are accepted per epoch;
//! 2. no write is accepted from an epoch after a newer epoch's first write (a fenced epoch);
//! 3. the group's epoch only grows while the failover service runs (a restarted service starts
//!    again, and is checked from its restart);
//! 4. once the faults stop, a live member is Primary within failoverTimeout plus a heartbeat
//!    interval, and the endpoint receives data after that;
//! 5. nothing is duplicated, and nothing is lost that the mode must keep: in Hot mode every
//!    point produced while the source was up, in Warm and Cold every point produced outside a
//!    failure and its takeover;
//! 6. no service fails or panics;
//! 7. roles settle: the epoch rises by at most 3 within any failoverTimeout (more is a flap,
//!    the role handed back and forth).

use std::{fmt, time::Duration};

use failover_core::Mode;

use crate::{FaultKind, Outcome};

/// A broken invariant, in words, with the simulated time it was seen at when known.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// Which invariant (1 to 6, as listed in the module).
    pub rule: u8,
    /// Simulated time, when known.
    pub at: Option<Duration>,
    /// What happened.
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some(at) => write!(
                f,
                "[rule {}] at {:.2}s: {}",
                self.rule,
                at.as_secs_f64(),
                self.what
            ),
            None => write!(f, "[rule {}] {}", self.rule, self.what),
        }
    }
}

/// Every broken invariant of a run; `error` is the simulation's own failure (a host that
/// failed or panicked).
pub fn invariants(o: &Outcome, error: Option<String>) -> Vec<Violation> {
    let mut v = Vec::new();
    let mut add = |rule: u8, at: Option<Duration>, what: String| {
        v.push(Violation { rule, at, what });
    };
    if let Some(e) = error {
        add(6, Some(o.simulated), format!("the simulation failed: {e}"));
    }
    let Some(audit) = &o.audit else {
        add(6, None, "no audit from the endpoint at the end".into());
        return v;
    };

    // 1 and 2: the writers of each epoch, and their order.
    let mut writers = audit.writers.clone();
    writers.retain(|w| w.accepted > 0);
    for (i, a) in writers.iter().enumerate() {
        for b in &writers[i + 1..] {
            if a.epoch == b.epoch && a.adapter_id != b.adapter_id {
                add(
                    1,
                    None,
                    format!(
                        "epoch {}: writes accepted from both {} and {}",
                        a.epoch, a.adapter_id, b.adapter_id
                    ),
                );
            }
            let (old, new) = if a.epoch < b.epoch { (a, b) } else { (b, a) };
            if old.epoch < new.epoch && old.last_accepted_unix_us > new.first_accepted_unix_us {
                add(
                    2,
                    None,
                    format!(
                        "a write of {} at epoch {} was accepted after {} wrote at epoch {}",
                        old.adapter_id, old.epoch, new.adapter_id, new.epoch
                    ),
                );
            }
        }
    }

    // 3: epochs only grow (from each start of the failover service).
    let restarts: Vec<Duration> = o
        .faults
        .iter()
        .filter(|f| f.kind == FaultKind::ArbiterRestart)
        .map(|f| f.at + f.lasts)
        .collect();
    for pair in o.timeline.windows(2) {
        let restarted = restarts
            .iter()
            .any(|r| pair[0].at <= *r && *r <= pair[1].at);
        if pair[1].epoch < pair[0].epoch && !restarted {
            add(
                3,
                Some(pair[1].at),
                format!(
                    "the epoch went back from {} to {}",
                    pair[0].epoch, pair[1].epoch
                ),
            );
        }
    }

    // 7: no flapping.
    for (i, s) in o.timeline.iter().enumerate() {
        let window_end = s.at + o.options.failover_timeout;
        if let Some(peak) = o.timeline[i..]
            .iter()
            .take_while(|t| t.at <= window_end)
            // A restarted service learns the epoch back from the heartbeats: not a flap.
            .filter(|t| {
                !restarts
                    .iter()
                    .any(|r| s.at <= *r + o.options.failover_timeout * 2 && *r <= t.at)
            })
            .max_by_key(|t| t.epoch)
            && peak.epoch > s.epoch + 3
        {
            add(
                7,
                Some(peak.at),
                format!(
                    "the epoch rose from {} to {} within {:.2}s: the role is handed back and forth",
                    s.epoch,
                    peak.epoch,
                    (peak.at - s.at).as_secs_f64()
                ),
            );
            break;
        }
    }

    // 4: a Primary soon after the faults stop, and data after that.
    let end = o.options.faults_end();
    let timeout = o.options.failover_timeout;
    let bound = end + timeout + timeout / 2 + Duration::from_millis(200);
    let state_at = |t: Duration| o.timeline.iter().rev().find(|s| s.at <= t);
    let led = o
        .timeline
        .iter()
        .filter(|s| s.at >= end)
        .chain(state_at(end))
        .filter(|s| {
            s.primary
                .as_ref()
                .is_some_and(|p| s.live.iter().any(|(a, _)| a == p))
        })
        .map(|s| s.at.max(end))
        .min();
    match led {
        Some(t) if t <= bound => {}
        Some(t) => add(
            4,
            Some(t),
            format!(
                "the faults stopped at {:.2}s and no live member was Primary until {:.2}s (bound: failoverTimeout + a heartbeat interval, {:.2}s)",
                end.as_secs_f64(),
                t.as_secs_f64(),
                bound.as_secs_f64()
            ),
        ),
        None => add(4, None, "no live Primary after the faults stopped".into()),
    }
    if let Some(before) = o.received_after_faults
        && audit.received <= before
    {
        add(
            4,
            None,
            format!(
                "no data reached the endpoint after the faults stopped ({before} points then, {} at the end)",
                audit.received
            ),
        );
    }

    // 5: duplicates and loss.
    if audit.duplicated > 0 {
        add(5, None, format!("{} points duplicated", audit.duplicated));
    }
    let why = match o.options.mode {
        Mode::Hot => "the source was up",
        _ => "no failure to take over from",
    };
    for ((from, through), a) in &o.clean_audits {
        if a.lost > 0 {
            add(
                5,
                None,
                format!(
                    "{} mode lost {} of the {} points produced from seq {from} to {through} ({why})",
                    o.options.mode.as_str(),
                    a.lost,
                    a.expected
                ),
            );
        }
    }
    v
}
