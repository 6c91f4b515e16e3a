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
//!    the role handed back and forth);
//! 8. the pair converges: once the faults stop, data reaches the endpoint again within
//!    failoverTimeout, a heartbeat interval, the retry cap, a Warm connection test and a
//!    resubscription;
//! 9. no ping-pong: the group promotes at most once at the start and a bounded number of times
//!    per fault (`FaultKind::promotions_allowed`);
//! 10. nothing spins: over any second, the failover service takes at most
//!     [`MAX_HEARTBEATS_PER_S`] heartbeats of the group, and the endpoint at most
//!     [`MAX_FENCES_PER_S`] fences and [`MAX_WRITES_PER_S`] writes;
//! 11. the failover service is no single point of failure for data: while it is down (and
//!     nothing else is failing), data that was flowing goes on flowing;
//! 12. a standalone adapter on the same endpoint egresses as itself.

use std::{fmt, time::Duration};

use failover_core::Mode;

use crate::{FaultKind, Outcome, SAMPLE_EVERY};

/// Most heartbeats of the group the failover service may take in one second (rule 10): two
/// members at failoverTimeout/2 of at least 0.5 s send 4, plus one per change.
pub const MAX_HEARTBEATS_PER_S: u64 = 40;
/// Most fences the endpoint may take for the group in one second (rule 10).
pub const MAX_FENCES_PER_S: u64 = 20;
/// Most writes the endpoint may take for the group in one second (rule 10): the Primary writes
/// about once per source tick (10 a second).
pub const MAX_WRITES_PER_S: u64 = 60;

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

    // 3: epochs only grow (from each start of the failover service; a deleted group's status
    // says it does not exist, and is skipped).
    let restarts: Vec<Duration> = o
        .faults
        .iter()
        .filter(|f| matches!(f.kind, FaultKind::ArbiterRestart | FaultKind::ArbiterOutage))
        .map(|f| f.at + f.lasts)
        .collect();
    // A group (re)created waits with epoch 0 until its first promotion: only the epochs of
    // promotions are fencing tokens, and those must never go back.
    let promoted: Vec<&crate::Seen> = o
        .timeline
        .iter()
        .filter(|s| s.exists && s.epoch > 0)
        .collect();
    for pair in promoted.windows(2) {
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

    // 7: no flapping: at most 3 promotions within any failoverTimeout (counted by the
    // service, so one promotion above a foreign epoch, however far, is one).
    let counted = promotion_times(o);
    for (i, first) in counted.iter().enumerate() {
        let within: Vec<&Duration> = counted[i..]
            .iter()
            .take_while(|t| **t <= *first + o.options.failover_timeout)
            .collect();
        if within.len() > 3 {
            let last = within.last().map_or(*first, |t| **t);
            add(
                7,
                Some(last),
                format!(
                    "{} promotions within {:.2}s (failoverTimeout {:.2}s): the role is handed back and forth",
                    within.len(),
                    (last - *first).as_secs_f64(),
                    o.options.failover_timeout.as_secs_f64()
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

    converges(o, &mut add);
    no_ping_pong(o, &mut add);
    nothing_spins(o, &mut add);
    egress_without_the_service(o, &mut add);
    let standalone_ran = o
        .faults
        .iter()
        .any(|f| f.kind == FaultKind::Standalone && f.lasts >= Duration::from_secs(2));
    if standalone_ran && o.standalone_received == 0 {
        add(
            12,
            None,
            "a standalone adapter ran on the same endpoint and egressed nothing".into(),
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

/// The longest a retry waits for this failoverTimeout.
fn retry_cap(timeout: Duration) -> Duration {
    failover_core::retry::cap_for(timeout)
}

/// Rule 8: data again within the bound after the faults stop.
fn converges(o: &Outcome, add: &mut impl FnMut(u8, Option<Duration>, String)) {
    let end = o.options.faults_end();
    let t = o.options.failover_timeout;
    let bound = end
        + t
        + t / 2
        + retry_cap(t)
        + crate::WARM_TEST_INTERVAL
        + crate::RESUBSCRIBE
        + SAMPLE_EVERY * 2;
    let Some(at_end) = o.samples.iter().rev().find(|s| s.at <= end) else {
        return;
    };
    let flowing = o
        .samples
        .iter()
        .find(|s| s.at > end && s.received > at_end.received);
    match flowing {
        Some(s) if s.at <= bound => {}
        Some(s) => add(
            8,
            Some(s.at),
            format!(
                "the faults stopped at {:.2}s and data reached the endpoint again only at {:.2}s (bound {:.2}s)",
                end.as_secs_f64(),
                s.at.as_secs_f64(),
                bound.as_secs_f64()
            ),
        ),
        None => add(
            8,
            None,
            format!(
                "the faults stopped at {:.2}s and no data reached the endpoint after",
                end.as_secs_f64()
            ),
        ),
    }
}

/// When each promotion was seen (several seen at once repeat that time), from the service's
/// count; a restarted service counts from 0 again.
fn promotion_times(o: &Outcome) -> Vec<Duration> {
    let mut times = Vec::new();
    let mut last = 0;
    for s in o.timeline.iter().filter(|s| s.exists) {
        let new = if s.promotions >= last {
            s.promotions - last
        } else {
            s.promotions
        };
        last = s.promotions;
        times.extend(std::iter::repeat_n(s.at, usize::try_from(new).unwrap_or(0)));
    }
    times
}

/// Rule 9: promotions within the faults' allowance.
fn no_ping_pong(o: &Outcome, add: &mut impl FnMut(u8, Option<Duration>, String)) {
    let times = promotion_times(o);
    let promotions = times.len() as u64;
    let last_at = times.last().copied().unwrap_or_default();
    let allowed = 1 + o
        .faults
        .iter()
        .map(|f| f.kind.promotions_allowed())
        .sum::<u64>();
    if promotions > allowed {
        add(
            9,
            Some(last_at),
            format!(
                "{promotions} promotions for {} faults (at most {allowed}): the role was handed back and forth",
                o.faults.len()
            ),
        );
    }
}

/// Rule 10: no counter grows faster than its bound over any second.
fn nothing_spins(o: &Outcome, add: &mut impl FnMut(u8, Option<Duration>, String)) {
    let window = Duration::from_secs(1);
    let mut j = 0;
    for (i, s) in o.samples.iter().enumerate() {
        while j < i && o.samples[j].at + window < s.at {
            j += 1;
        }
        let first = &o.samples[j];
        let checks: [(&str, u64, u64, u64); 2] = [
            ("fences", first.fences, s.fences, MAX_FENCES_PER_S),
            ("writes", first.writes, s.writes, MAX_WRITES_PER_S),
        ];
        for (what, from, to, max) in checks {
            if to.saturating_sub(from) > max {
                add(
                    10,
                    Some(s.at),
                    format!(
                        "the endpoint took {} {what} of the group within {:.1}s (at most {max} a second): a busy loop",
                        to - from,
                        (s.at - first.at).as_secs_f64()
                    ),
                );
                return;
            }
        }
        if let (Some(from), Some(to)) = (first.heartbeats, s.heartbeats)
            && to.saturating_sub(from) > MAX_HEARTBEATS_PER_S
        {
            add(
                10,
                Some(s.at),
                format!(
                    "the failover service took {} heartbeats of the group within {:.1}s (at most {MAX_HEARTBEATS_PER_S} a second): a busy loop",
                    to - from,
                    (s.at - first.at).as_secs_f64()
                ),
            );
            return;
        }
    }
}

/// How long data may pause while only the failover service is down (rule 11): a write in
/// flight and the next batch, and the sampling.
const OUTAGE_PAUSE: Duration = Duration::from_millis(1500);

/// Rule 11: data that flowed when the failover service went down goes on flowing.
fn egress_without_the_service(o: &Outcome, add: &mut impl FnMut(u8, Option<Duration>, String)) {
    let t = o.options.failover_timeout;
    for (i, f) in o.faults.iter().enumerate() {
        if f.kind != FaultKind::ArbiterOutage {
            continue;
        }
        // Only a settled pair: the fault before it ended 3 failoverTimeouts before.
        let settled = i == 0 || o.faults[i - 1].at + o.faults[i - 1].lasts + t * 3 <= f.at;
        let received_at = |at: Duration| {
            o.samples
                .iter()
                .rev()
                .find(|s| s.at <= at)
                .map(|s| s.received)
        };
        let flowing = match (
            received_at(f.at.saturating_sub(Duration::from_secs(1))),
            received_at(f.at),
        ) {
            (Some(before), Some(at)) => at > before,
            _ => false,
        };
        if !settled || !flowing {
            continue;
        }
        let mut last_rise = f.at;
        let mut last_received = received_at(f.at).unwrap_or(0);
        for s in o
            .samples
            .iter()
            .filter(|s| s.at > f.at && s.at <= f.at + f.lasts)
        {
            if s.received > last_received {
                last_received = s.received;
                last_rise = s.at;
            } else if s.at - last_rise > OUTAGE_PAUSE {
                add(
                    11,
                    Some(s.at),
                    format!(
                        "the failover service was down from {:.2}s and no data reached the endpoint from {:.2}s to {:.2}s: the Primary stopped egressing",
                        f.at.as_secs_f64(),
                        last_rise.as_secs_f64(),
                        s.at.as_secs_f64()
                    ),
                );
                break;
            }
        }
    }
}
