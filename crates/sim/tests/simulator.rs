//! The simulator as its users see it: fault schedules drawn from a seed (the seed alone
//! decides; swarm mixes vary by seed), and whole simulations of the real services: a calm run
//! keeps every invariant; a run replays exactly from its seed; the bugs the simulator found
//! stay fixed; each deliberately broken rule is caught; the CI seed set covers every fault kind
//! in every mode and keeps every invariant. (An integration test: the crate is compiled once,
//! not again in test mode.)

use std::time::Duration;

use failover_sim::schedule::{SWARM_MAX_KINDS, draw};

use std::collections::BTreeSet;

use failover_core::Mode;
use failover_sim::{BrokenRule, CI_SEEDS, FaultKind, FaultMix, SimOptions, Swarm, run};

#[test]
fn a_calm_run_keeps_every_invariant_and_runs_much_faster_than_real_time() {
    let mut options = SimOptions::for_seed(1, Mode::Hot);
    options.mix = FaultMix::uniform(&[]);
    let o = run(&options);
    assert!(o.violations.is_empty(), "{:?}", o.violations);
    let audit = o.audit.expect("audit");
    // 8 streams at 10 Hz for most of the run, every point accepted once.
    assert!(audit.received > 4000, "{audit:?}");
    assert_eq!((audit.lost, audit.duplicated), (0, 0));
    // The group waits a heartbeat interval for its members (a Hot group new to a service that
    // has just started), promotes adapter-a, and nothing changes after.
    let primaries: Vec<(Option<&str>, u64)> = o
        .timeline
        .iter()
        .map(|s| (s.primary.as_deref(), s.epoch))
        .collect();
    assert_eq!(
        primaries,
        [(None, 0), (Some("adapter-a"), 1)],
        "{:?}",
        o.timeline
    );
    let promoted = o.timeline[1].at();
    assert!(
        promoted >= options.failover_timeout / 2 && promoted < options.failover_timeout,
        "{promoted:?}"
    );
    assert!(
        o.simulated > o.wall * 10,
        "{:?} simulated in {:?}",
        o.simulated,
        o.wall
    );
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let options = SimOptions::for_seed(2, Mode::Hot);
    let (a, b) = (run(&options), run(&options));
    assert!(!a.faults.is_empty());
    assert_eq!(a.faults, b.faults);
    assert_eq!(a.timeline, b.timeline);
    assert_eq!(a.audit, b.audit);
}

/// A seed of the first simulator, whose schedules drew from the classic kinds only.
fn classic(seed: u64, mode: Mode) -> SimOptions {
    SimOptions::with_pool(seed, mode, &FaultKind::CLASSIC, Swarm::Off)
}

/// A seed of the uniform draw from every kind (the simulator before swarm testing), in the CI
/// set's mode for it.
fn uniform(seed: u64) -> SimOptions {
    let mode = Mode::ALL[usize::try_from(seed % 3).unwrap_or(0)];
    SimOptions::with_pool(seed, mode, &FaultKind::ALL, Swarm::Off)
}

/// Found by the simulator: a restarted adapter kept its incarnation (its process id repeats
/// across restarts, as PID 1 of a container does), so a restarted Primary kept its role with
/// an empty buffer and the points produced while it was down were lost.
#[test]
fn regression_seed_21_a_restarted_primary_is_a_new_member() {
    let o = run(&classic(21, Mode::Hot));
    assert!(
        o.faults.iter().any(|f| f.kind == FaultKind::Crash),
        "the seed still crashes an adapter"
    );
    assert!(o.violations.is_empty(), "{:?}", o.violations);
}

/// Found by the simulator: with the whole source down, two Cold adapters handed the role back
/// and forth as fast as they could connect and fail (530 promotions in 5 s), since a Cold
/// standby always scored 1.
#[test]
fn regression_seed_185_cold_standbys_without_a_source_do_not_flap() {
    let o = run(&classic(185, Mode::Cold));
    assert!(
        o.faults.iter().any(|f| f.kind == FaultKind::SourceOutage),
        "the seed still takes the source down"
    );
    assert!(o.violations.is_empty(), "{:?}", o.violations);
    let last = o.timeline.last().map_or(0, |s| s.epoch);
    assert!(last < 20, "epoch {last} at the end");
}

/// Found by the simulator: the same with two Warm adapters, since a Warm adapter demoted for
/// failing to collect still scored 100 from its last connection test.
#[test]
fn regression_seed_4_warm_standbys_without_a_source_do_not_flap() {
    let o = run(&classic(4, Mode::Warm));
    assert!(o.faults.iter().any(|f| f.kind == FaultKind::SourceOutage));
    assert!(o.violations.is_empty(), "{:?}", o.violations);
}

/// Found by the simulator's operator faults (seed 155, Cold): a group recreated by members
/// that knew an epoch held promotions for a heartbeat interval, a Primary kept the role
/// meanwhile, and the hold was never cleared: the service's clock woke at once for ever (the
/// simulation never ended). Also a unit test in `failover_core::group`.
#[test]
fn regression_seed_155_the_service_clock_never_spins() {
    let o = run(&uniform(155));
    assert!(
        o.faults
            .iter()
            .any(|f| matches!(f.kind, FaultKind::GroupDelete | FaultKind::TimeoutChange)),
        "the seed still deletes and recreates the group: {:?}",
        o.faults
    );
    assert!(o.violations.is_empty(), "{:?}", o.violations);
}

/// Found by the simulator's operator faults (seed 650, Cold): after a restart of the failover
/// service, a second adapter named adapter-a joined first, knew no epoch, and was promoted at
/// epoch 1, the epoch the real adapter-a still held; the endpoint knew a fence's holder by name
/// only, granted the twin's fence, and 688 points were written twice. A fence now belongs to
/// one writer process (`FenceRequest.writer`).
#[test]
fn regression_seed_650_a_twin_cannot_share_a_fence() {
    let o = run(&uniform(650));
    assert!(o.faults.iter().any(|f| f.kind == FaultKind::Twin));
    assert!(o.violations.is_empty(), "{:?}", o.violations);
}

/// The pool of the campaign that found the next bugs (issue 20): `--modes Hot --faults
/// mode-switch,crash,timeout-change,latency,endpoint-outage,graceful-stop`, drawn uniformly.
fn focused(seed: u64) -> SimOptions {
    let pool = [
        FaultKind::ModeSwitch,
        FaultKind::Crash,
        FaultKind::TimeoutChange,
        FaultKind::Latency,
        FaultKind::EndpointOutage,
        FaultKind::GracefulStop,
    ];
    SimOptions::with_pool(seed, Mode::Hot, &pool, Swarm::Off)
}

fn count(o: &failover_sim::Outcome, kind: FaultKind) -> usize {
    o.faults.iter().filter(|f| f.kind == kind).count()
}

/// Found by the simulator (seed 30275): a failoverTimeout change deleted the group; while it
/// waited for its old Primary, adapter-a was switched to Warm (dropping its buffer) and, tied
/// at score 100 and registered first, was promoted over the Hot adapter-b, which alone held the
/// 2.5 s since the deletion: 200 points lost. The member holding data since the earliest now
/// goes first among equal scores.
#[test]
fn regression_seed_30275_a_warm_member_is_not_promoted_over_the_hot_one_holding_the_data() {
    let o = run(&focused(30275));
    assert!(count(&o, FaultKind::TimeoutChange) >= 1 && count(&o, FaultKind::ModeSwitch) >= 1);
    assert!(o.violations.is_empty(), "{:?}", o.violations);
}

/// Found by the simulator (seed 30480): a failoverTimeout change, done the documented way,
/// deleted the group; adapter-a, just restarted after a crash and knowing no epoch, created it
/// again and was promoted at epoch 1 while epoch 2 had been handed out before: the epoch went
/// back from 2 to 1, and 4 promotions followed within 2.4 s. The service now promotes a group
/// created again above every epoch it handed out under that id, after a heartbeat interval in
/// which every member may rejoin. (With the floor left out, 13 of the 600 seeds of this pool
/// from 30001 break rule 3.)
#[test]
fn regression_seed_30480_a_recreated_group_never_goes_back_in_epoch() {
    let o = run(&focused(30480));
    assert!(
        count(&o, FaultKind::TimeoutChange) >= 1 && count(&o, FaultKind::Crash) >= 1,
        "{:?}",
        o.faults
    );
    assert!(o.violations.is_empty(), "{:?}", o.violations);
}

/// Found by the simulator (seed 100362, Hot): adapter-b restarted while the failover service
/// was down, so it knew no epoch; the restarted service promoted it at epoch 1, the epoch the
/// endpoint was fenced at by adapter-a. Its fence was refused, it stepped down and said so, but
/// the service, seeing no epoch above its own, promoted it at 1 again and again: nothing reached
/// the endpoint for the rest of the run. A Primary refused at its own epoch now makes the
/// service promote again above it. (A restarted service now also waits for every member before
/// its first promotion, which keeps this seed from promoting the newcomer at all: the test
/// breaks that wait on purpose to reach the refusal, and shows the run wedged with both broken.)
#[test]
fn regression_seed_100362_a_primary_refused_at_its_own_epoch_is_promoted_above_it() {
    let mut options = SimOptions::for_seed(100362, Mode::Hot);
    options.broken = failover_sim::Broken::of([BrokenRule::StartupWait]);
    let o = run(&options);
    assert!(
        count(&o, FaultKind::Crash) >= 1 && count(&o, FaultKind::ArbiterOutage) >= 1,
        "{:?}",
        o.faults
    );
    assert!(o.violations.is_empty(), "{:?}", o.violations);
    options.broken = options.broken.with(BrokenRule::RefusedEpoch);
    let wedged = run(&options);
    assert!(
        wedged.violations.iter().any(|v| v.rule == 8),
        "{:?}",
        wedged.violations
    );
}

/// Found by the swarm (seed 409179, Hot): the failover service came back after an outage,
/// adapter-b, its Primary, reclaimed the role and at once restarted with a changed document.
/// The reclaim had ended the service's wait for its members, so the restarted adapter-b, the
/// only member back yet and holding nothing from before its restart, was promoted, and a point
/// only the Hot adapter-a held was lost. The wait now lasts its whole heartbeat interval.
#[test]
fn regression_seed_409179_a_primary_restarting_within_the_services_wait_waits_for_the_rest() {
    let o = run(&SimOptions::for_seed(409179, Mode::Hot));
    assert!(
        count(&o, FaultKind::ArbiterOutage) >= 1 && count(&o, FaultKind::RestartChanged) >= 1,
        "{:?}",
        o.faults
    );
    assert!(o.violations.is_empty(), "{:?}", o.violations);
}

/// Found by the swarm (seed 406383, Hot): adapter-a, the Primary, restarted while adapter-b's
/// heartbeats could not reach the failover service; the restarted adapter-a, the only live
/// member, was rightly promoted, and the points it had collected and not written before the
/// restart, held only by the cut-off adapter-b, were lost. Rule 5 was wrong: a standby cut off
/// from the service cannot take the role, so such an episode hits both adapters.
#[test]
fn regression_seed_406383_a_standby_cut_off_from_the_service_cannot_save_a_restarted_primary() {
    let o = run(&SimOptions::for_seed(406383, Mode::Hot));
    assert!(
        count(&o, FaultKind::OneWayPartition) >= 1 && count(&o, FaultKind::RestartChanged) >= 1,
        "{:?}",
        o.faults
    );
    assert!(o.violations.is_empty(), "{:?}", o.violations);
}

/// Found by the swarm (seed 417888, Hot): an operator forced adapter-b Primary while it was
/// held; as documented, it stayed Primary while stale, so nobody egressed for 8.6 s, and what
/// the Hot adapter-a buffered meanwhile had nobody to flush it: 696 points. Rule 5 was wrong:
/// forcing the role onto an adapter that cannot egress is the operator's loss.
#[test]
fn regression_seed_417888_a_held_adapter_forced_primary_is_the_operators_loss() {
    let o = run(&SimOptions::for_seed(417888, Mode::Hot));
    assert!(
        o.faults
            .iter()
            .any(|f| f.kind == FaultKind::RoleOverride && f.variant),
        "{:?}",
        o.faults
    );
    assert!(o.violations.is_empty(), "{:?}", o.violations);
}

/// Found by the swarm (seed 1001025, Hot): a failoverTimeout change left the group with the
/// changed timeout, so both members' heartbeats were refused for 12 s (the documented "delete the
/// group to change it"), each adapter retrying with its backoff, about 4 a second in all. No
/// status changed meanwhile, and the observer took its heartbeat count from the status watch
/// alone: the 45 heartbeats of those 12 s were counted in the 0.9 s before the next change, a
/// busy loop that was not. The observer now reads the count at every sample.
#[test]
fn regression_seed_1001025_refused_heartbeats_are_counted_when_they_happen() {
    let o = run(&SimOptions::for_seed(1001025, Mode::Hot));
    assert!(
        count(&o, FaultKind::TimeoutChange) >= 1 && count(&o, FaultKind::Unregister) >= 1,
        "{:?}",
        o.faults
    );
    assert!(o.violations.is_empty(), "{:?}", o.violations);
}

/// Found by the swarm (seed 1011664, Warm): the whole source went down; adapter-a, the Primary,
/// and adapter-b, the Warm standby, both dropped to 0 at once, but the service read adapter-b's
/// last 100 first and promoted it. Promoted, adapter-b scored 100 "connecting to the source"
/// though its connection test had just failed; demoted for its 0, it scored 0 again as a Warm
/// standby; and so on every 20 ms, 41 heartbeats a second with nobody egressing. A Warm or Cold
/// Primary whose source was down when it last tried now scores 0 while it connects.
#[test]
fn regression_seed_1011664_a_promoted_standby_whose_source_just_failed_does_not_claim_it_is_good() {
    let o = run(&SimOptions::for_seed(1011664, Mode::Warm));
    assert!(count(&o, FaultKind::SourceOutage) >= 1, "{:?}", o.faults);
    assert!(o.violations.is_empty(), "{:?}", o.violations);
}

/// Found by the swarm (seed 1023789, Hot): adapter-a's link to the failover service took 771 ms
/// each way (failoverTimeout 1.7 s): its keepalive pings, to be answered within failoverTimeout/2,
/// went unanswered, its stream broke again and again, and the service saw it stale. Meanwhile
/// adapter-b, the Primary, restarted with a changed document; the restarted adapter-b, the only
/// live member, was rightly promoted, and the tick only adapter-a held was lost. Rule 5 was
/// wrong: a link too slow for the keepalive keeps a standby from the role as a cut does.
#[test]
fn regression_seed_1023789_a_standby_too_slow_for_the_keepalive_cannot_save_a_restarted_primary() {
    let o = run(&SimOptions::for_seed(1023789, Mode::Hot));
    assert!(
        count(&o, FaultKind::Latency) >= 1 && count(&o, FaultKind::RestartChanged) >= 1,
        "{:?}",
        o.faults
    );
    assert!(o.violations.is_empty(), "{:?}", o.violations);
}

/// Found by the swarm (seed 1020322, Warm): a Warm Primary demoted with its source down forgot
/// its failed connection test (a promotion ends the tests and drops their result), scored 100 as
/// a standby, was promoted again, and so on every 40 ms (46 promotions for 15 faults).
#[test]
fn regression_seed_1020322_a_demoted_warm_primary_remembers_its_source_was_down() {
    let o = run(&SimOptions::for_seed(1020322, Mode::Warm));
    assert!(count(&o, FaultKind::SourceOutage) >= 1, "{:?}", o.faults);
    assert!(o.violations.is_empty(), "{:?}", o.violations);
}

/// Found by the swarm (seed 1032518, Cold): the simulated operator finished a failoverTimeout
/// change by reading the timeout back from adapter-a's document, which another fault had just
/// deleted, so it stopped at once and left the group at the old timeout for good: nobody could
/// join it again. The simulator's fault, not the pair's; the operator now aims at the timeout it
/// changed the documents to.
#[test]
fn regression_seed_1032518_a_timeout_change_is_finished_whatever_else_happens() {
    let o = run(&SimOptions::for_seed(1032518, Mode::Cold));
    assert!(
        count(&o, FaultKind::TimeoutChange) >= 1 && count(&o, FaultKind::Unregister) >= 1,
        "{:?}",
        o.faults
    );
    assert!(o.violations.is_empty(), "{:?}", o.violations);
}

/// Each rule broken on purpose is caught on a default seed, by the invariant meant for it,
/// and replays exactly; the same seed with the rule intact keeps every invariant.
#[test]
fn each_broken_rule_is_caught_by_its_invariant_and_replays() {
    let cases = [
        // The old Primary, cut from the endpoint, writes again after the takeover.
        (BrokenRule::EpochCheck, 11, Mode::Cold, Swarm::Off, 5),
        // Fence retries during an endpoint outage, every 10 ms.
        (BrokenRule::FixedRetry, 4, Mode::Warm, Swarm::Off, 10),
        // The Primary steps down while the failover service is down: data stops.
        (BrokenRule::NoFailsafe, 1, Mode::Warm, Swarm::Off, 11),
        // With the source down, the standbys take the role back and forth.
        (
            BrokenRule::FailedStandbyScores,
            38,
            Mode::Cold,
            Swarm::Off,
            9,
        ),
        // A group deleted and created again promotes at an epoch handed out before.
        (BrokenRule::EpochFloor, 2, Mode::Cold, Swarm::On, 3),
        // A Warm member is promoted over the Hot one that alone holds the data (the focused
        // pool of the campaign that found it).
        (
            BrokenRule::DataBlindPromotion,
            30275,
            Mode::Hot,
            Swarm::Off,
            5,
        ),
        // A just-started service promotes a member restarted as Warm while the Hot Primary,
        // on its way back, still egresses.
        (BrokenRule::StartupWait, 966, Mode::Hot, Swarm::On, 5),
    ];
    for (broken, seed, mode, swarm, rule) in cases {
        let mut options = if broken == BrokenRule::DataBlindPromotion {
            focused(seed)
        } else {
            SimOptions::with_pool(seed, mode, &FaultKind::ALL, swarm)
        };
        options.broken = failover_sim::Broken::of([broken]);
        let o = run(&options);
        assert!(
            o.violations.iter().any(|v| v.rule == rule),
            "{broken:?} on seed {seed} went unnoticed by rule {rule}: {:?}",
            o.violations
        );
        let again = run(&options);
        assert_eq!(o.violations, again.violations, "{broken:?} does not replay");
        options.broken = failover_sim::Broken::NONE;
        let intact = run(&options);
        assert!(
            intact.violations.is_empty(),
            "seed {seed} intact: {:?}",
            intact.violations
        );
    }
}

#[test]
fn the_ci_seed_set_covers_every_fault_in_every_mode_and_keeps_every_invariant() {
    let seeds: Vec<u64> = CI_SEEDS.collect();
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let half = seeds.len() / 2;
        let (a, b) = seeds.split_at(half);
        let run_all = |s: &[u64]| {
            s.iter()
                .map(|seed| run(&SimOptions::for_ci(*seed)))
                .collect::<Vec<_>>()
        };
        let first = scope.spawn(move || run_all(a));
        let mut rest = run_all(b);
        let mut all = first.join().expect("thread");
        all.append(&mut rest);
        all
    });
    let mut covered = BTreeSet::new();
    for o in &outcomes {
        assert!(
            o.violations.is_empty(),
            "seed {} ({:?}): {:?}",
            o.options.seed,
            o.options.mode,
            o.violations
        );
        for f in &o.faults {
            covered.insert((o.options.mode.as_str(), f.kind.name()));
        }
    }
    for mode in Mode::ALL {
        for kind in FaultKind::ALL {
            assert!(
                covered.contains(&(mode.as_str(), kind.name())),
                "{} never met {} in the CI seeds",
                mode.as_str(),
                kind.name()
            );
        }
    }
}

// Fault schedules.

#[test]
fn the_seed_alone_decides_and_faults_stay_in_the_window() {
    let window = (Duration::from_secs(5), Duration::from_secs(60));
    let all = FaultMix::uniform(&FaultKind::ALL);
    let a = draw(7, &all, window, Duration::from_secs(2));
    assert_eq!(FaultKind::ALL.len(), 21);
    assert!(
        FaultKind::CLASSIC
            .iter()
            .all(|k| FaultKind::ALL.contains(k))
    );
    assert_eq!(a, draw(7, &all, window, Duration::from_secs(2)));
    assert_ne!(a, draw(8, &all, window, Duration::from_secs(2)));
    assert!(!a.is_empty());
    for pair in a.windows(2) {
        assert!(pair[0].at + pair[0].lasts <= pair[1].at, "one at a time");
    }
    assert!(
        a.iter()
            .all(|f| f.at >= window.0 && f.at + f.lasts <= window.1)
    );
    assert!(draw(7, &FaultMix::uniform(&[]), window, Duration::from_secs(2)).is_empty());
    assert_eq!(
        "one-way".parse::<FaultKind>(),
        Ok(FaultKind::OneWayPartition)
    );
    assert!("flood".parse::<FaultKind>().is_err());
}

/// Swarm mixes: the seed alone decides; each takes 1 to 6 kinds of the pool and nothing
/// else; over many seeds every kind of the pool is taken, and mixes differ in size, length
/// and spacing; a schedule keeps to its mix.
#[test]
fn swarm_mixes_vary_by_seed_and_schedules_keep_to_them() {
    let pool = [FaultKind::Crash, FaultKind::ModeSwitch, FaultKind::Latency];
    assert_eq!(FaultMix::swarm(3, &pool), FaultMix::swarm(3, &pool));
    let mixes: Vec<FaultMix> = (0..400)
        .map(|s| FaultMix::swarm(s, &FaultKind::ALL))
        .collect();
    let mut taken = std::collections::BTreeSet::new();
    let mut sizes = std::collections::BTreeSet::new();
    for m in &mixes {
        assert!((1..=SWARM_MAX_KINDS).contains(&m.kinds.len()), "{m:?}");
        taken.extend(m.kinds.iter().copied());
        sizes.insert(m.kinds.len());
    }
    assert_eq!(
        taken.len(),
        FaultKind::ALL.len(),
        "every kind is drawn sometimes"
    );
    assert_eq!(
        sizes.len(),
        SWARM_MAX_KINDS,
        "every size is drawn sometimes"
    );
    for field in [
        mixes
            .iter()
            .map(|m| m.lasts)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        mixes
            .iter()
            .map(|m| m.gap)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
    ] {
        assert_eq!(field, 2, "intensity varies");
    }
    let small = FaultMix::swarm(5, &pool);
    assert!(small.kinds.iter().all(|k| pool.contains(k)));
    let window = (Duration::from_secs(5), Duration::from_secs(35));
    let timeout = Duration::from_secs(2);
    for seed in 0..200 {
        let mix = FaultMix::swarm(seed, &FaultKind::ALL);
        let faults = draw(seed, &mix, window, timeout);
        for f in &faults {
            assert!(mix.kinds.contains(&f.kind), "{f:?} outside {mix:?}");
            if f.kind != FaultKind::ArbiterOutage {
                let q = f.lasts.as_millis() * 4 / timeout.as_millis();
                assert!(
                    (u128::from(mix.lasts.0)..=u128::from(mix.lasts.1)).contains(&q),
                    "{f:?} outside {mix:?}"
                );
            }
        }
    }
    assert!(
        FaultMix::swarm(9, &pool)
            .describe()
            .contains("x failoverTimeout long")
    );
}
