//! The invariants every seeded run must keep, checked on what the observer and the endpoint
//! saw. The rules every run keeps on any stage (1, 2, 3, 5's duplicates, 7, 10) are
//! [`failover_scenario::invariants`], shared with the scenario runner; the ones here need the
//! run's fault schedule:
//!
//! 4. once the faults stop, a live member is Primary within failoverTimeout plus a heartbeat
//!    interval, and the endpoint receives data after that;
//! 5. nothing is lost that the mode must keep: in Hot mode every point produced while the
//!    source was up, in Warm and Cold every point produced outside a failure and its takeover;
//! 6. no service fails or panics;
//! 8. the pair converges: once the faults stop, data reaches the endpoint again within
//!    failoverTimeout, a heartbeat interval, the retry cap, a Warm connection test and a
//!    resubscription;
//! 9. no ping-pong: the group promotes at most once at the start and a bounded number of times
//!    per fault (`FaultKind::promotions_allowed`);
//! 11. the failover service is no single point of failure for data: while it is down (and
//!     nothing else is failing), data that was flowing goes on flowing;
//! 12. a standalone adapter on the same endpoint egresses as itself.

use std::time::Duration;

use failover_core::Mode;
pub use failover_scenario::invariants::Violation;
use failover_scenario::invariants::{self as shared, promotion_times};

use crate::{FaultKind, Outcome, SAMPLE_EVERY};

/// What the run observed, for the rules every run keeps.
fn observed(o: &Outcome, audit: &failover_proto::v1::AuditReport) -> shared::Observed {
    shared::Observed {
        writers: audit
            .writers
            .iter()
            .map(|w| shared::Writer {
                adapter: w.adapter_id.clone(),
                epoch: w.epoch,
                accepted: w.accepted,
                first_accepted_us: w.first_accepted_unix_us,
                last_accepted_us: w.last_accepted_unix_us,
            })
            .collect(),
        duplicated: audit.duplicated,
        statuses: o.timeline.clone(),
        samples: o.samples.clone(),
        service_restarts: o
            .faults
            .iter()
            .filter(|f| matches!(f.kind, FaultKind::ArbiterRestart | FaultKind::ArbiterOutage))
            .map(|f| f.at + f.lasts)
            .collect(),
        fault_starts: o.faults.iter().map(|f| f.at).collect(),
        failover_timeout: o.options.failover_timeout,
        members: crate::world::ADAPTERS.len(),
        rate_hz: crate::RATE_HZ as f64,
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

    for x in shared::check(&observed(o, audit)) {
        add(x.rule, x.at, x.what);
    }

    // 4: a Primary soon after the faults stop, and data after that.
    let end = o.options.faults_end();
    let timeout = o.options.failover_timeout;
    let bound = end + timeout + timeout / 2 + Duration::from_millis(200);
    let state_at = |t: Duration| o.timeline.iter().rev().find(|s| s.at() <= t);
    let led = o
        .timeline
        .iter()
        .filter(|s| s.at() >= end)
        .chain(state_at(end))
        .filter(|s| s.primary.as_ref().is_some_and(|p| s.is_live(p)))
        .map(|s| s.at().max(end))
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
    let Some(at_end) = o.samples.iter().rev().find(|s| s.at() <= end) else {
        return;
    };
    let flowing = o
        .samples
        .iter()
        .find(|s| s.at() > end && s.received > at_end.received);
    match flowing {
        Some(s) if s.at() <= bound => {}
        Some(s) => add(
            8,
            Some(s.at()),
            format!(
                "the faults stopped at {:.2}s and data reached the endpoint again only at {:.2}s (bound {:.2}s)",
                end.as_secs_f64(),
                s.at().as_secs_f64(),
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

/// Rule 9: promotions within the faults' allowance.
fn no_ping_pong(o: &Outcome, add: &mut impl FnMut(u8, Option<Duration>, String)) {
    let times = promotion_times(&o.timeline);
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
                .find(|s| s.at() <= at)
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
            .filter(|s| s.at() > f.at && s.at() <= f.at + f.lasts)
        {
            if s.received > last_received {
                last_received = s.received;
                last_rise = s.at();
            } else if s.at() - last_rise > OUTAGE_PAUSE {
                add(
                    11,
                    Some(s.at()),
                    format!(
                        "the failover service was down from {:.2}s and no data reached the endpoint from {:.2}s to {:.2}s: the Primary stopped egressing",
                        f.at.as_secs_f64(),
                        last_rise.as_secs_f64(),
                        s.at().as_secs_f64()
                    ),
                );
                break;
            }
        }
    }
}
