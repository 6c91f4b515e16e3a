//! The rules every run must keep, whatever stage it ran on: checked by the scenario runner after
//! the last step of every scenario (processes, compose, simulator) and by the simulator after
//! every seeded run, on what each observed. The rules are numbered as `failover-lab sim`
//! reports them:
//!
//! 1. at most one adapter's writes are accepted per epoch;
//! 2. no write is accepted from an epoch after a newer epoch's first write (a fenced epoch);
//! 3. the group's epoch only grows while the failover service runs (a restarted service starts
//!    again, and is checked from its restart; a group waiting at epoch 0 has promoted nobody);
//! 5. nothing is written twice (the rest of rule 5, loss, depends on the faults: the
//!    simulator checks it against its schedule, a scenario with `audit = { lost = 0 }`);
//! 7. roles settle: within any failoverTimeout, the failover service passes the Primary role
//!    to another adapter at most 3 times, and twice more for each fault that began within it
//!    or the failoverTimeout before (more is a flap: the role handed back and forth with no
//!    fault to explain it). Counted from what the service decided, as the simulator showed
//!    the earlier count (every promotion) to be wrong three ways:
//!    - a promotion of the adapter that was Primary last (again after a moment with nobody
//!      Primary, or at a new epoch above a foreign one) hands nothing over: a recreated group,
//!      a source outage and a far-ahead fence gave 4 promotions in 2.2 s and one handover;
//!    - a handover somebody asked for (an operator deleted the Primary's session or forced a
//!      role, or the Primary left) is the asker's, not a flap: two failoverTimeout changes done
//!      the documented way gave 4 in 2.6 s;
//!    - faults close together each move the role: two source outages 0.5 s apart in Cold mode
//!      made each standby try the source in turn, 4 handovers in 1.25 s.
//!
//!    A promotion that spins is caught by rule 10 and, in the simulator, by rule 9's count per
//!    fault;
//! 10. nothing spins: over any second, the failover service takes at most
//!     [`max_heartbeats_per_s`] heartbeats of the group, and the endpoint at most
//!     [`MAX_FENCES_PER_S`] fences and [`max_writes_per_s`] writes.
//!
//! The simulator adds the rules that need its fault schedule (4, 6, 8, 9, 11, 12: see
//! `failover_sim::check`).

use std::{fmt, time::Duration};

pub use failover_core::history::{Sample, StatusPoint};

/// The rules of this module, by number.
pub const RULES: [u8; 6] = [1, 2, 3, 5, 7, 10];

/// The rules a pair of the vendor's behaviour is held to. It fences nothing and reports no
/// epoch, so rules 1-3 (one writer per epoch, fenced epochs, epochs of a recreated group) and 5
/// (nothing written twice) are its design's to break: they are measured (the audit's lost and
/// duplicated), not enforced.
pub const VENDOR_RULES: [u8; 2] = [7, 10];

/// The rules every run of pairs of this behaviour keeps.
pub fn rules_for(behaviour: failover_core::Behaviour) -> &'static [u8] {
    match behaviour {
        failover_core::Behaviour::Lab => &RULES,
        failover_core::Behaviour::Vendor => &VENDOR_RULES,
    }
}

/// Most fences the endpoint may take for the group in one second (rule 10).
pub const MAX_FENCES_PER_S: u64 = 20;

/// Most heartbeats of the group the failover service may take in one second (rule 10): each
/// member heartbeats every failoverTimeout/2 (at least 0.5 s in the simulator: 4 a second for
/// a pair), plus one per change; 40, or ten times the steady rate where that is more.
pub fn max_heartbeats_per_s(members: usize, failover_timeout: Duration) -> u64 {
    let interval_ms = (failover_timeout.as_millis() / 2).max(1);
    let steady = u64::try_from(members).unwrap_or(u64::MAX) * (1000 / interval_ms).max(1) as u64;
    40.max(steady.saturating_mul(10))
}

/// Most writes the endpoint may take for the group in one second (rule 10): the Primary writes
/// about once per source tick; 60, or six times the source's rate where that is more.
pub fn max_writes_per_s(rate_hz: f64) -> u64 {
    let per_tick = if rate_hz.is_finite() && rate_hz > 0.0 {
        (rate_hz * 6.0).ceil() as u64
    } else {
        0
    };
    60.max(per_tick)
}

/// A broken invariant, in words, with the time it was seen at (since the run's start) when
/// known.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// Which rule (as numbered in the module).
    pub rule: u8,
    /// When, since the start of the run.
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

/// What the endpoint accepted from one writer at one epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    /// The adapter.
    pub adapter: String,
    /// Its epoch.
    pub epoch: u64,
    /// Points accepted.
    pub accepted: u64,
    /// When the first was accepted (unix µs).
    pub first_accepted_us: i64,
    /// When the last was accepted (unix µs).
    pub last_accepted_us: i64,
}

/// What a run observed, for the rules every run keeps.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The endpoint's writers at the end.
    pub writers: Vec<Writer>,
    /// Points the endpoint holds twice, at the end.
    pub duplicated: u64,
    /// The group's statuses, in order (each change at least).
    pub statuses: Vec<StatusPoint>,
    /// The services' counters, sampled in order.
    pub samples: Vec<Sample>,
    /// When the failover service started again after being down (its epochs count from then).
    pub service_restarts: Vec<Duration>,
    /// When each fault began (each may move the role twice: rule 7).
    pub fault_starts: Vec<Duration>,
    /// The group's failoverTimeout.
    pub failover_timeout: Duration,
    /// Members of the group (for the heartbeat bound).
    pub members: usize,
    /// The source's ticks per second (for the write bound).
    pub rate_hz: f64,
}

/// Every rule of this module the run broke.
pub fn check(o: &Observed) -> Vec<Violation> {
    check_rules(o, &RULES)
}

/// The rules of `rules` the run broke.
pub fn check_rules(o: &Observed, rules: &[u8]) -> Vec<Violation> {
    let mut v = check_all(o);
    v.retain(|x| rules.contains(&x.rule));
    v
}

fn check_all(o: &Observed) -> Vec<Violation> {
    let mut v = one_writer_per_epoch(&o.writers);
    v.extend(epochs_only_grow(&o.statuses, &o.service_restarts));
    if o.duplicated > 0 {
        v.push(Violation {
            rule: 5,
            at: None,
            what: format!("{} points duplicated", o.duplicated),
        });
    }
    v.extend(no_flapping(
        &o.statuses,
        o.failover_timeout,
        &o.fault_starts,
    ));
    v.extend(nothing_spins(
        &o.samples,
        max_heartbeats_per_s(o.members, o.failover_timeout),
        max_writes_per_s(o.rate_hz),
    ));
    v
}

/// Rules 1 and 2: the writers of each epoch, and their order.
pub fn one_writer_per_epoch(writers: &[Writer]) -> Vec<Violation> {
    let mut v = Vec::new();
    let writers: Vec<&Writer> = writers.iter().filter(|w| w.accepted > 0).collect();
    for (i, a) in writers.iter().enumerate() {
        for b in &writers[i + 1..] {
            if a.epoch == b.epoch && a.adapter != b.adapter {
                v.push(Violation {
                    rule: 1,
                    at: None,
                    what: format!(
                        "epoch {}: writes accepted from both {} and {}",
                        a.epoch, a.adapter, b.adapter
                    ),
                });
            }
            let (old, new) = if a.epoch < b.epoch { (a, b) } else { (b, a) };
            if old.epoch < new.epoch && old.last_accepted_us > new.first_accepted_us {
                v.push(Violation {
                    rule: 2,
                    at: None,
                    what: format!(
                        "a write of {} at epoch {} was accepted after {} wrote at epoch {}",
                        old.adapter, old.epoch, new.adapter, new.epoch
                    ),
                });
            }
        }
    }
    v
}

/// Rule 3: the epochs of promotions never go back, except across a restart of the service.
pub fn epochs_only_grow(statuses: &[StatusPoint], restarts: &[Duration]) -> Vec<Violation> {
    let promoted: Vec<&StatusPoint> = statuses
        .iter()
        .filter(|s| s.exists && s.epoch > 0)
        .collect();
    promoted
        .windows(2)
        .filter(|pair| {
            pair[1].epoch < pair[0].epoch
                && !restarts
                    .iter()
                    .any(|r| pair[0].at() <= *r && *r <= pair[1].at())
        })
        .map(|pair| Violation {
            rule: 3,
            at: Some(pair[1].at()),
            what: format!(
                "the epoch went back from {} to {}",
                pair[0].epoch, pair[1].epoch
            ),
        })
        .collect()
}

/// When each promotion was seen (several seen at once repeat that time), from the service's
/// count; a restarted service counts from 0 again.
pub fn promotion_times(statuses: &[StatusPoint]) -> Vec<Duration> {
    let mut times = Vec::new();
    let mut last = 0;
    for s in statuses.iter().filter(|s| s.exists) {
        let new = if s.promotions >= last {
            s.promotions - last
        } else {
            s.promotions
        };
        last = s.promotions;
        times.extend(std::iter::repeat_n(
            s.at(),
            usize::try_from(new).unwrap_or(0),
        ));
    }
    times
}

/// When the failover service passed the Primary role, of its own decision, to another adapter
/// than the one that held it last (the first Primary of a run counts as one), from statuses
/// that show each change (one promotion each at most, as the service's watch reports them). A
/// handover somebody asked for (the status counts it in `requested`) is left out.
pub fn handover_times(statuses: &[StatusPoint]) -> Vec<(Duration, String)> {
    let mut times = Vec::new();
    let mut last: Option<&str> = None;
    let mut requested = 0;
    for s in statuses.iter().filter(|s| s.exists) {
        // A restarted service counts from 0 again.
        let asked = s.requested_promotions != requested;
        requested = s.requested_promotions;
        if let Some(p) = s.primary.as_deref()
            && last != Some(p)
        {
            if !asked {
                times.push((s.at(), p.to_string()));
            }
            last = Some(p);
        }
    }
    times
}

/// Handovers the service may decide within a failoverTimeout with no fault around (rule 7).
pub const SETTLED_HANDOVERS: usize = 3;

/// Handovers each fault may cause, on top (rule 7).
pub const HANDOVERS_PER_FAULT: usize = 2;

/// Rule 7: the service passes the role to another adapter at most [`SETTLED_HANDOVERS`] times
/// within any failoverTimeout, plus [`HANDOVERS_PER_FAULT`] for each fault that began within it
/// or the failoverTimeout before.
pub fn no_flapping(
    statuses: &[StatusPoint],
    failover_timeout: Duration,
    fault_starts: &[Duration],
) -> Vec<Violation> {
    let counted = handover_times(statuses);
    for (i, (first, _)) in counted.iter().enumerate() {
        let within: Vec<&(Duration, String)> = counted[i..]
            .iter()
            .take_while(|(t, _)| *t <= *first + failover_timeout)
            .collect();
        let last = within.last().map_or(*first, |(t, _)| *t);
        let faults = fault_starts
            .iter()
            .filter(|f| **f + failover_timeout >= *first && **f <= last)
            .count();
        let allowed = SETTLED_HANDOVERS + HANDOVERS_PER_FAULT * faults;
        if within.len() > allowed {
            let order: Vec<&str> = within.iter().map(|(_, a)| a.as_str()).collect();
            return vec![Violation {
                rule: 7,
                at: Some(last),
                what: format!(
                    "the Primary role passed {} times within {:.2}s ({}; failoverTimeout {:.2}s; at most {allowed} with {faults} fault(s) around): it is handed back and forth",
                    within.len(),
                    (last - *first).as_secs_f64(),
                    order.join(" -> "),
                    failover_timeout.as_secs_f64()
                ),
            }];
        }
    }
    Vec::new()
}

/// Rule 10: no counter grows faster than its bound over any second.
pub fn nothing_spins(samples: &[Sample], max_heartbeats: u64, max_writes: u64) -> Vec<Violation> {
    let window = Duration::from_secs(1);
    let mut j = 0;
    for (i, s) in samples.iter().enumerate() {
        while j < i && samples[j].at() + window < s.at() {
            j += 1;
        }
        let first = &samples[j];
        let checks: [(&str, u64, u64, u64); 2] = [
            ("fences", first.fences, s.fences, MAX_FENCES_PER_S),
            ("writes", first.writes, s.writes, max_writes),
        ];
        for (what, from, to, max) in checks {
            if to.saturating_sub(from) > max {
                return vec![Violation {
                    rule: 10,
                    at: Some(s.at()),
                    what: format!(
                        "the endpoint took {} {what} of the group within {:.1}s (at most {max} a second): a busy loop",
                        to - from,
                        (s.at() - first.at()).as_secs_f64()
                    ),
                }];
            }
        }
        if let (Some(from), Some(to)) = (first.heartbeats, s.heartbeats)
            && to.saturating_sub(from) > max_heartbeats
        {
            return vec![Violation {
                rule: 10,
                at: Some(s.at()),
                what: format!(
                    "the failover service took {} heartbeats of the group within {:.1}s (at most {max_heartbeats} a second): a busy loop",
                    to - from,
                    (s.at() - first.at()).as_secs_f64()
                ),
            }];
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(adapter: &str, epoch: u64, first: i64, last: i64) -> Writer {
        Writer {
            adapter: adapter.into(),
            epoch,
            accepted: 10,
            first_accepted_us: first,
            last_accepted_us: last,
        }
    }

    fn point(at_ms: u64, epoch: u64, primary: Option<&str>, promotions: u64) -> StatusPoint {
        StatusPoint {
            at_ms,
            service_us: 0,
            primary: primary.map(String::from),
            epoch,
            adapters: Vec::new(),
            exists: true,
            promotions,
            requested_promotions: 0,
        }
    }

    fn status(at_ms: u64, epoch: u64, promotions: u64) -> StatusPoint {
        point(
            at_ms,
            epoch,
            Some(if epoch % 2 == 1 { "a" } else { "b" }),
            promotions,
        )
    }

    #[test]
    fn two_writers_at_one_epoch_and_a_fenced_write_are_caught() {
        let good = [writer("a", 1, 0, 100), writer("b", 2, 200, 300)];
        assert!(one_writer_per_epoch(&good).is_empty());
        let same_epoch = [writer("a", 1, 0, 100), writer("b", 1, 200, 300)];
        assert_eq!(one_writer_per_epoch(&same_epoch)[0].rule, 1);
        let after_fence = [writer("a", 1, 0, 250), writer("b", 2, 200, 300)];
        assert_eq!(one_writer_per_epoch(&after_fence)[0].rule, 2);
    }

    #[test]
    fn an_epoch_going_back_is_caught_unless_the_service_restarted_between() {
        let s = [status(0, 2, 1), status(1000, 1, 1)];
        assert_eq!(epochs_only_grow(&s, &[])[0].rule, 3);
        assert!(epochs_only_grow(&s, &[Duration::from_millis(500)]).is_empty());
    }

    #[test]
    fn four_handovers_within_a_failover_timeout_are_a_flap() {
        let steady = [status(0, 1, 1), status(5000, 2, 2)];
        assert!(no_flapping(&steady, Duration::from_secs(2), &[]).is_empty());
        let flap: Vec<StatusPoint> = (1..=4).map(|i| status(i * 100, i, i)).collect();
        let v = no_flapping(&flap, Duration::from_secs(2), &[]);
        assert_eq!(v[0].rule, 7);
        assert!(v[0].what.contains("a -> b -> a -> b"), "{}", v[0].what);
        // One fault just before explains two more.
        assert!(
            no_flapping(&flap, Duration::from_secs(2), &[Duration::from_millis(50)]).is_empty()
        );
        // Six need two faults; a fault long before explains nothing.
        let six: Vec<StatusPoint> = (1..=6).map(|i| status(i * 100, i, i)).collect();
        assert_eq!(
            no_flapping(&six, Duration::from_secs(2), &[Duration::from_millis(50)])[0].rule,
            7
        );
        let later: Vec<StatusPoint> = (1..=4).map(|i| status(10_000 + i * 100, i, i)).collect();
        assert_eq!(
            no_flapping(&later, Duration::from_secs(2), &[Duration::ZERO])[0].rule,
            7
        );
    }

    /// The simulator's seed 30424 (Hot): a group created again promotes adapter-a, a source
    /// outage promotes adapter-b and leaves nobody Primary, adapter-b is promoted again when it
    /// returns and once more above a far-ahead fence: four promotions within 2.2 s, one
    /// handover. Not a flap.
    #[test]
    fn promotions_of_the_last_primary_again_are_no_flap() {
        let s = |at_ms: u64, epoch: u64, primary: Option<&str>| point(at_ms, epoch, primary, epoch);
        let statuses = [
            s(14_300, 5, Some("a")),
            s(14_530, 6, Some("b")),
            s(14_540, 6, None),
            s(15_540, 7, Some("b")),
            s(16_540, 13, Some("b")),
        ];
        assert!(no_flapping(&statuses, Duration::from_millis(2900), &[]).is_empty());
        assert_eq!(
            handover_times(&statuses)
                .iter()
                .map(|(_, a)| a.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    /// The simulator's seed 30181 (Hot, `--swarm off`): two failoverTimeout changes done the
    /// documented way, each deleting the Primary's session (the other member is promoted for a
    /// moment) and the group, which is created again: four handovers within 3 s, two of them
    /// asked for by the operator. Not a flap; the same handovers decided by the service are one.
    #[test]
    fn handovers_somebody_asked_for_are_no_flap() {
        let s = |at_ms: u64, primary: &str, requested: u64| StatusPoint {
            requested_promotions: requested,
            ..point(at_ms, at_ms, Some(primary), at_ms)
        };
        let asked = [
            s(7_800, "a", 0),
            s(8_120, "a", 0),
            s(8_280, "b", 1),
            s(9_840, "a", 1),
            s(10_760, "b", 2),
        ];
        assert!(no_flapping(&asked, Duration::from_millis(3100), &[]).is_empty());
        let decided: Vec<StatusPoint> = asked
            .iter()
            .map(|x| StatusPoint {
                requested_promotions: 0,
                ..x.clone()
            })
            .collect();
        assert_eq!(
            no_flapping(&decided, Duration::from_millis(3100), &[])[0].rule,
            7
        );
    }

    #[test]
    fn a_busy_loop_is_caught_and_a_steady_pair_is_not() {
        let sample = |ms: u64, writes: u64, hb: u64| Sample {
            at_ms: ms,
            fences: 1,
            writes,
            heartbeats: Some(hb),
            ..Sample::default()
        };
        let steady: Vec<Sample> = (0..20).map(|i| sample(i * 250, i * 3, i)).collect();
        assert!(nothing_spins(&steady, 40, 60).is_empty());
        let spinning: Vec<Sample> = (0..20).map(|i| sample(i * 250, i * 3, i * 50)).collect();
        assert_eq!(nothing_spins(&spinning, 40, 60)[0].rule, 10);
        assert_eq!(max_heartbeats_per_s(2, Duration::from_secs(2)), 40);
        assert!(max_heartbeats_per_s(2, Duration::from_millis(100)) > 40);
        assert_eq!(max_writes_per_s(10.0), 60);
        assert_eq!(max_writes_per_s(100.0), 600);
    }

    #[test]
    fn duplicates_break_rule_5() {
        let o = Observed {
            duplicated: 3,
            failover_timeout: Duration::from_secs(2),
            members: 2,
            rate_hz: 10.0,
            ..Observed::default()
        };
        assert_eq!(check(&o)[0].rule, 5);
    }
}
