//! Which points a run must not lose (rule 5), given its mode and its faults: the stretches of
//! sequence numbers the endpoint's audit must find complete.

use std::time::Duration;

use failover_core::Mode;

use crate::{ADAPTERS, Fault, FaultKind, RATE_HZ, SimOptions};

/// How far a Primary's writes may trail collection (a write in flight, the next batch).
pub(crate) const EGRESS_LAG: Duration = Duration::from_millis(500);

/// How often a Warm standby tests its source connection in the simulation.
pub(crate) const WARM_TEST_INTERVAL: Duration = Duration::from_secs(1);

/// A source outage takes this long to heal for the adapters: their resubscription backoff
/// (at most 1 s) and the way back.
pub(crate) const RESUBSCRIBE: Duration = Duration::from_millis(1500);

/// True for a fault that takes away what the adapter it hits collected, or its collection:
/// a crash, a restart, a graceful stop, a mode switch (a standby leaving Hot drops its buffer),
/// a document deleted (it egresses standalone), a hold (its subscription may fall behind).
/// Until it collects again, the other adapter alone holds the data.
fn takes_custody(f: &Fault) -> bool {
    matches!(
        f.kind,
        FaultKind::Crash
            | FaultKind::RestartChanged
            | FaultKind::GracefulStop
            | FaultKind::ModeSwitch
            | FaultKind::Pause
            | FaultKind::Unregister
    ) || (f.kind == FaultKind::RoleOverride && f.variant)
}

/// The adapters a fault keeps from holding data or from taking the role, which leaves a sole
/// holder's data to nobody: the one it takes custody from; the one whose session is deleted or
/// whose role is forced; one whose heartbeats cannot reach the failover service (the swarm found
/// a Primary restarting while its standby was cut off: the restarted one, the only live member,
/// was promoted, and the points only the standby held were lost, seed 406383); and, when an
/// operator forces an adapter Primary while it is held, every adapter, as the role stays with
/// the one that cannot egress while the override holds (documented), and what the other
/// buffered meanwhile has nobody to flush it (seed 417888). Latency on an adapter's link to the
/// service counts as a cut once its round trip reaches failoverTimeout/2: the keepalive pings
/// go unanswered and its stream breaks (`failover_proto::net::failover_service_endpoint`; the
/// swarm found a standby 771 ms away each way at failoverTimeout 1.7 s, seed 1023789).
fn hit_by(f: &Fault, timeout: Duration) -> Vec<&'static str> {
    match f.kind {
        FaultKind::RoleOverride if f.variant => ADAPTERS.to_vec(),
        FaultKind::Latency if f.latency * 2 >= timeout / 2 => vec![f.adapter],
        FaultKind::SessionDelete | FaultKind::RoleOverride | FaultKind::Partition => {
            vec![f.adapter]
        }
        FaultKind::OneWayPartition if f.outbound => vec![f.adapter],
        _ if takes_custody(f) => vec![f.adapter],
        _ => Vec::new(),
    }
}

/// When the pair has recovered from a fault, as far as Hot's copies go: an adapter that lost
/// its collection collects again, and a takeover it caused has happened (failoverTimeout and a
/// heartbeat interval after it began); a failover service that was down has decided again
/// (its grace of a heartbeat interval, then the takeover).
fn recovery(f: &Fault, timeout: Duration) -> Duration {
    let end = f.at + f.lasts;
    if takes_custody(f) {
        (end + RESUBSCRIBE).max(f.at + timeout + timeout / 2)
    } else if matches!(f.kind, FaultKind::ArbiterRestart | FaultKind::ArbiterOutage) {
        end + timeout + RESUBSCRIBE
    } else {
        end + timeout / 2
    }
}

/// The stretches of sequence numbers in which no point may be lost, from 2 s in (or the first
/// promotion's bound) to 2 s before the end.
///
/// Hot: every point produced while the source was up, except where faults overlapped so that
/// the pair lost both copies. Left out: a source outage and the resubscription after it; and
/// each episode of faults (each beginning before the pair recovered from the one before, see
/// [`recovery`]) in which one adapter lost its data or collection and the other was hit too
/// ([`hit_by`]: it lost them as well, or its role, or its way to the failover service), from the
/// episode's first fault to its recovery: a Primary crashed and its standby crashed before
/// flushing, a standby just restarted and the Primary failed before it collected, or a Primary
/// restarted while its standby was cut off from the service. Only one adapter held those points
/// at some moment, and it could not egress them, in any design. An episode that hits one adapter
/// only (with the failover service, the endpoint's links and latency failing around it) is
/// checked in full.
///
/// Warm and Cold lose what is produced between a failure and the takeover, so there every fault
/// window is left out too, from what the Primary may not have written yet to the takeover's
/// bound (two failoverTimeouts, a Warm standby's connection test, and the resubscription after).
pub(crate) fn clean_ranges(options: &SimOptions, faults: &[Fault]) -> Vec<(u64, u64)> {
    let seq = |t: Duration| u64::try_from(t.as_millis()).unwrap_or(u64::MAX) * RATE_HZ / 1000;
    let timeout = options.failover_timeout;
    let takeover = timeout * 2 + WARM_TEST_INTERVAL + RESUBSCRIBE;
    let mut left_out: Vec<(Duration, Duration)> = Vec::new();
    if options.mode == Mode::Hot {
        for f in faults.iter().filter(|f| f.kind == FaultKind::SourceOutage) {
            left_out.push((f.at, f.at + f.lasts + RESUBSCRIBE));
        }
        let mut i = 0;
        while let Some(first) = faults.get(i) {
            let mut until = recovery(first, timeout);
            let mut episode = vec![first];
            i += 1;
            while let Some(g) = faults.get(i).filter(|g| g.at < until) {
                until = until.max(recovery(g, timeout));
                episode.push(g);
                i += 1;
            }
            let custody = episode.iter().any(|f| takes_custody(f));
            let hit: std::collections::BTreeSet<&str> =
                episode.iter().flat_map(|f| hit_by(f, timeout)).collect();
            if custody && hit.len() >= 2 {
                left_out.push((first.at.saturating_sub(EGRESS_LAG), until));
            }
        }
    } else {
        for f in faults {
            // What a failed Warm or Cold Primary had collected and not yet written is part of
            // its failure's loss too.
            left_out.push((f.at.saturating_sub(EGRESS_LAG), f.at + f.lasts + takeover));
        }
    }
    left_out.sort();
    let mut ranges = Vec::new();
    // From 2 s in, or after the first promotion's bound: the service, just started, waits a
    // heartbeat interval for the members before it, and a Warm or Cold Primary collects only
    // from its promotion on (a Hot one flushes what it collected before).
    let mut from = seq(Duration::from_secs(2).max(timeout / 2 + RESUBSCRIBE));
    for (since, until) in left_out {
        let down = seq(since);
        if down > from {
            ranges.push((from, down - 1));
        }
        from = from.max(seq(until) + 1);
    }
    let last = seq(options.duration().saturating_sub(Duration::from_secs(2)));
    if last > from {
        ranges.push((from, last));
    }
    ranges
}
