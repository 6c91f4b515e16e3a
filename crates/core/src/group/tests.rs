//! The group's rules, event by event, and exhaustively over short sequences.
use super::*;

const T: Duration = Duration::from_secs(4);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn hb(adapter: &str, score: u32) -> Heartbeat {
    Heartbeat {
        adapter_id: adapter.into(),
        incarnation: format!("{adapter}-1"),
        score,
        mode: Some(Mode::Hot),
        failover_timeout: T,
        name: None,
        description: None,
        known_epoch: 0,
        claims_primary: false,
        watermark: vec![],
        holds_data_since_ms: None,
        fenced_out_epoch: 0,
    }
}

struct Sim {
    g: Group,
    next: SessionId,
}

impl Sim {
    fn new() -> Self {
        Sim {
            g: Group::new("g", &hb("x", 0)),
            next: 1,
        }
    }
    /// A heartbeat; a new incarnation comes after its old stream closed (a restart).
    fn beat(&mut self, h: Heartbeat, now: u64) -> Vec<Transition> {
        let restarted = self
            .g
            .sessions()
            .iter()
            .find(|s| s.adapter_id == h.adapter_id && s.incarnation != h.incarnation)
            .map(|s| s.id);
        if let Some(old) = restarted {
            self.g.disconnected(old);
        }
        self.g
            .heartbeat(h, ms(now), &mut self.next)
            .expect("heartbeat accepted")
            .1
    }
    fn primary(&self) -> Option<&str> {
        self.g.primary().map(|p| p.adapter_id.as_str())
    }
}

fn promoted(changes: &[Transition]) -> Vec<(String, u64)> {
    changes
        .iter()
        .filter_map(|t| match &t.kind {
            TransitionKind::Promoted { adapter_id, epoch } => Some((adapter_id.clone(), *epoch)),
            _ => None,
        })
        .collect()
}

#[test]
fn lone_member_becomes_primary_and_second_is_secondary() {
    let mut s = Sim::new();
    let c = s.beat(hb("a", 100), 0);
    assert_eq!(promoted(&c), vec![("a".to_string(), 1)]);
    assert!(s.g.note().contains("lone live member"));
    let c = s.beat(hb("b", 100), 10);
    assert!(promoted(&c).is_empty());
    assert_eq!(s.primary(), Some("a"));
    let b = s.g.find_session("b").expect("b");
    assert_eq!(s.g.assignment(b).role, Role::Secondary);
    assert_eq!(s.g.assignment(b).primary_adapter_id, "a");
}

#[test]
fn ties_go_to_the_earliest_registered() {
    let mut s = Sim::new();
    s.beat(hb("x", 100), 0);
    s.beat(hb("b", 100), 0);
    s.beat(hb("a", 100), 0);
    let c = s.beat(hb("x", 0), 10);
    assert_eq!(promoted(&c), vec![("b".to_string(), 2)]);
}

#[test]
fn highest_score_wins_when_the_primary_must_be_replaced() {
    let mut s = Sim::new();
    s.beat(hb("a", 100), 0);
    s.beat(hb("b", 40), 0);
    s.beat(hb("c", 90), 0);
    let c = s.beat(hb("a", 0), 100);
    assert_eq!(s.primary(), Some("c"));
    assert_eq!(promoted(&c), vec![("c".to_string(), 2)]);
}

#[test]
fn degraded_primary_keeps_its_role() {
    let mut s = Sim::new();
    s.beat(hb("a", 100), 0);
    s.beat(hb("b", 100), 0);
    let c = s.beat(hb("a", 75), 1000);
    assert!(promoted(&c).is_empty());
    assert_eq!(s.primary(), Some("a"));
    assert_eq!(s.g.epoch(), 1);
    assert!(s.g.note().contains("degraded, score 75"), "{}", s.g.note());
    s.beat(hb("a", 1), 2000);
    assert_eq!(s.primary(), Some("a"));
}

#[test]
fn score_zero_fails_over_at_once() {
    let mut s = Sim::new();
    s.beat(hb("a", 100), 0);
    s.beat(hb("b", 100), 0);
    let c = s.beat(hb("a", 0), 500);
    assert_eq!(promoted(&c), vec![("b".to_string(), 2)]);
    assert!(c.iter().any(|t| t.reason.contains("a score dropped to 0")));
}

#[test]
fn stale_primary_fails_over_only_after_the_timeout() {
    let mut s = Sim::new();
    s.beat(hb("a", 100), 0);
    s.beat(hb("b", 100), 0);
    s.beat(hb("b", 100), 2000);
    // Exactly at the timeout the session is not yet stale.
    assert!(promoted(&s.g.tick(ms(4000))).is_empty());
    assert_eq!(s.primary(), Some("a"));
    assert_eq!(s.g.next_deadline(), Some(ms(4001)));
    s.beat(hb("b", 100), 4000);
    let c = s.g.tick(ms(4001));
    assert_eq!(promoted(&c), vec![("b".to_string(), 2)]);
    let stale = c
        .iter()
        .find(|t| matches!(t.kind, TransitionKind::Stale { .. }))
        .expect("stale reported");
    assert!(
        stale
            .reason
            .contains("a last heartbeat 4.0 s ago > failoverTimeout 4.0 s: stale"),
        "{}",
        stale.reason
    );
    // Reported once only.
    assert!(
        s.g.tick(ms(4500))
            .iter()
            .all(|t| !matches!(t.kind, TransitionKind::Stale { .. }))
    );
}

/// A Primary told to wait by an overloaded service (429) keeps its role through the wait and
/// a failoverTimeout after it, and goes stale after that if it never comes back.
#[test]
fn a_member_told_to_wait_is_not_stale_for_the_wait() {
    let mut s = Sim::new();
    s.beat(hb("a", 100), 0);
    s.beat(hb("b", 100), 0);
    let a = s.g.find_session("a").expect("a");
    // At 3.5 s a's heartbeat is refused with Retry-After: told to wait until 6 s.
    s.g.excuse(a, ms(3500 + 2500));
    s.beat(hb("b", 100), 4000);
    s.beat(hb("b", 100), 8000);
    assert!(promoted(&s.g.tick(ms(10_000))).is_empty());
    assert_eq!(s.primary(), Some("a"));
    assert_eq!(s.g.next_deadline(), Some(ms(10_001)));
    s.beat(hb("b", 100), 10_000);
    assert_eq!(promoted(&s.g.tick(ms(10_001))), vec![("b".to_string(), 2)]);
    // An excuse never moves a heartbeat back.
    let b = s.g.find_session("b").expect("b");
    s.g.excuse(b, ms(1));
    assert!(!s.g.is_stale(s.g.session(b).expect("b"), ms(13_000)));
}

#[test]
fn no_automatic_failback() {
    let mut s = Sim::new();
    s.beat(hb("a", 100), 0);
    s.beat(hb("b", 100), 0);
    s.beat(hb("b", 100), 4000);
    s.g.tick(ms(4001));
    assert_eq!(s.primary(), Some("b"));
    // The old Primary comes back healthy (same incarnation after a pause, or a new one
    // after a restart): it stays Secondary.
    let c = s.beat(hb("a", 100), 4100);
    assert!(promoted(&c).is_empty());
    let mut restarted = hb("a", 100);
    restarted.incarnation = "a-2".into();
    let c = s.beat(restarted, 4200);
    assert!(promoted(&c).is_empty());
    assert_eq!(s.primary(), Some("b"));
    let a = s.g.find_session("a").expect("a");
    assert_eq!(s.g.role_of(a), Role::Secondary);
    // Even with a higher score than the degraded Primary.
    s.beat(hb("b", 50), 4300);
    assert_eq!(s.primary(), Some("b"));
}

#[test]
fn nobody_is_promoted_when_nobody_scores_above_zero() {
    let mut s = Sim::new();
    s.beat(hb("a", 100), 0);
    s.beat(hb("b", 0), 0);
    let c = s.beat(hb("a", 0), 100);
    assert!(promoted(&c).is_empty());
    assert_eq!(s.primary(), None);
    assert!(c.iter().any(|t| t.kind == TransitionKind::NoPrimary));
    assert!(s.g.note().contains("nobody egresses"));
    // The first to recover is promoted at a new epoch.
    let c = s.beat(hb("b", 100), 200);
    assert_eq!(promoted(&c), vec![("b".to_string(), 2)]);
}

#[test]
fn cold_standby_at_one_is_promoted_only_when_the_primary_drops() {
    let mut s = Sim::new();
    let mut a = hb("a", 1);
    a.mode = Some(Mode::Cold);
    let mut b = hb("b", 1);
    b.mode = Some(Mode::Cold);
    s.beat(a.clone(), 0);
    assert_eq!(s.primary(), Some("a"));
    a.score = 100;
    s.beat(a.clone(), 10);
    s.beat(b.clone(), 20);
    assert_eq!(s.primary(), Some("a"));
    a.score = 0;
    let c = s.beat(a, 30);
    assert_eq!(promoted(&c), vec![("b".to_string(), 2)]);
}

#[test]
fn restarted_primary_loses_its_session_and_rejoins_as_secondary() {
    let mut s = Sim::new();
    s.beat(hb("a", 100), 0);
    s.beat(hb("b", 100), 0);
    let mut again = hb("a", 100);
    again.incarnation = "a-2".into();
    let c = s.beat(again, 500);
    assert_eq!(promoted(&c), vec![("b".to_string(), 2)]);
    assert_eq!(s.g.sessions().len(), 2);
    let a = s.g.find_session("a").expect("a");
    assert_eq!(s.g.role_of(a), Role::Secondary);
}

#[test]
fn fixed_fields_cannot_change() {
    let mut s = Sim::new();
    s.beat(hb("a", 100), 0);
    let mut other = hb("b", 100);
    other.failover_timeout = Duration::from_secs(9);
    let err =
        s.g.heartbeat(other, ms(1), &mut s.next)
            .expect_err("refused");
    assert!(err.to_string().contains("failoverTimeout"), "{err}");
    assert!(err.to_string().contains("delete the group"), "{err}");
    let mut named = hb("b", 100);
    named.name = Some("other".into());
    assert!(matches!(
        s.g.heartbeat(named, ms(1), &mut s.next),
        Err(GroupError::FixedField { field: "name", .. })
    ));
    assert_eq!(s.g.sessions().len(), 1);
}

#[test]
fn restarted_arbiter_adopts_the_primary_and_keeps_epochs_growing() {
    let mut s = Sim::new();
    let mut a = hb("a", 100);
    a.known_epoch = 7;
    a.claims_primary = true;
    let c = s.beat(a, 0);
    assert!(promoted(&c).is_empty());
    assert!(
        c.iter()
            .any(|t| matches!(t.kind, TransitionKind::Adopted { epoch: 7, .. }))
    );
    assert_eq!(s.primary(), Some("a"));
    assert_eq!(s.g.epoch(), 7);
    // The Secondary reconnecting with an older claim changes nothing.
    let mut b = hb("b", 100);
    b.known_epoch = 6;
    b.claims_primary = true;
    s.beat(b, 10);
    assert_eq!(s.primary(), Some("a"));

    // Had the Secondary come first, nobody is promoted for a heartbeat interval, and the
    // old Primary reclaims its role when it comes within it.
    let mut s = Sim::new();
    let mut b = hb("b", 100);
    b.known_epoch = 7;
    let c = s.beat(b.clone(), 0);
    assert_eq!(s.primary(), None);
    assert!(
        c.iter()
            .any(|t| t.reason.contains("waiting 2.0 s for its members to rejoin")),
        "{c:?}"
    );
    assert_eq!(s.g.next_deadline(), Some(ms(2000)));
    let mut a = hb("a", 100);
    a.known_epoch = 7;
    a.claims_primary = true;
    s.beat(a, 1500);
    assert_eq!(s.primary(), Some("a"));
    assert_eq!(s.g.epoch(), 7);

    // When it does not come back, the highest score is promoted past the known epoch.
    let mut s = Sim::new();
    s.beat(b, 0);
    assert!(promoted(&s.g.tick(ms(1999))).is_empty());
    assert_eq!(promoted(&s.g.tick(ms(2000))), vec![("b".to_string(), 8)]);
}

/// A service that leads through a shared store promotes above the epochs it reserved there
/// (`promote_above`), never at an epoch another service may have handed out; the Primary of the
/// service before it still reclaims its role at its own epoch.
#[test]
fn promotions_go_above_the_reserved_floor_and_a_primary_still_reclaims_below_it() {
    let mut s = Sim::new();
    s.g.promote_above(1_000);
    let mut b = hb("b", 100);
    b.known_epoch = 7;
    s.beat(b.clone(), 0);
    assert_eq!(s.primary(), None, "waits for its members first");
    let mut a = hb("a", 100);
    a.known_epoch = 7;
    a.claims_primary = true;
    s.beat(a, 500);
    assert_eq!(
        s.primary(),
        Some("a"),
        "the old Primary reclaims at its epoch"
    );
    assert_eq!(s.g.epoch(), 7);

    // Nobody reclaims: the promotion goes above the floor, not to 8.
    let mut s = Sim::new();
    s.g.promote_above(1_000);
    s.beat(b, 0);
    assert_eq!(
        promoted(&s.g.tick(ms(2000))),
        vec![("b".to_string(), 1_001)]
    );
    // A brand-new group too.
    let mut s = Sim::new();
    s.g.promote_above(40);
    assert_eq!(
        promoted(&s.beat(hb("a", 100), 0)),
        vec![("a".to_string(), 41)]
    );
}

/// Found by the simulator (seed 409179, Hot): the failover service came back after an outage,
/// the old Primary reclaimed its role within the service's wait, and restarted at once. The wait
/// had ended with the reclaim, so the restarted Primary, the only member back yet, was promoted
/// with nothing buffered, and the point only the Hot standby held was lost. The wait for the
/// members to rejoin lasts its whole heartbeat interval, reclaim or not.
#[test]
fn a_primary_that_reclaims_and_restarts_within_the_wait_does_not_end_it() {
    let mut s = Sim::new();
    let mut b = hb("b", 100);
    b.known_epoch = 2;
    b.claims_primary = true;
    b.holds_data_since_ms = Some(5_000);
    s.beat(b.clone(), 0);
    assert_eq!(s.primary(), Some("b"), "the old Primary reclaims its role");
    // It restarts: a new incarnation, collecting from now on.
    let mut restarted = hb("b", 100);
    restarted.incarnation = "b-2".into();
    restarted.known_epoch = 2;
    restarted.holds_data_since_ms = Some(28_000);
    let c = s.beat(restarted.clone(), 400);
    assert!(promoted(&c).is_empty(), "promoted within the wait: {c:?}");
    assert_eq!(s.primary(), None);
    assert!(s.g.note().contains("waiting"), "{}", s.g.note());
    // The Hot standby, collecting all along, rejoins within the wait and goes first.
    let mut a = hb("a", 100);
    a.known_epoch = 1;
    a.holds_data_since_ms = Some(1_000);
    s.beat(a, 1_500);
    assert_eq!(s.primary(), None, "still within the wait");
    assert_eq!(promoted(&s.g.tick(ms(2_000))), vec![("a".to_string(), 3)]);
}

/// Once the group has had a Primary, the member holding data since the earliest goes
/// first among equal scores (a Hot standby before one that holds nothing, a long-collecting
/// one before one that just resubscribed); before that, the earliest registered.
#[test]
fn among_equal_scores_the_member_holding_data_longest_is_promoted() {
    let mut s = Sim::new();
    let mut a = hb("a", 100);
    a.holds_data_since_ms = None;
    let mut b = hb("b", 100);
    b.holds_data_since_ms = Some(1_000);
    // The group remembers an epoch (it existed before): it waits, then chooses.
    s.g.remember_epoch(3);
    s.beat(a.clone(), 0);
    s.beat(b.clone(), 10);
    assert_eq!(s.primary(), None, "waits for its members");
    assert_eq!(promoted(&s.g.tick(ms(2000))), vec![("b".to_string(), 4)]);

    // Both collecting: the earlier wins, whoever registered first.
    let mut s = Sim::new();
    s.g.remember_epoch(3);
    a.holds_data_since_ms = Some(5_000);
    s.beat(a.clone(), 0);
    s.beat(b.clone(), 10);
    assert_eq!(promoted(&s.g.tick(ms(2000))), vec![("b".to_string(), 4)]);

    // A group with no history: the earliest registered, whatever they hold.
    let mut s = Sim::new();
    s.beat(a, 0);
    s.beat(b, 10);
    assert_eq!(s.primary(), Some("a"));
}

/// A Primary that says the endpoint refused it at the group's epoch (another writer holds
/// it) is promoted again above it at once.
#[test]
fn a_primary_refused_at_its_own_epoch_is_promoted_above_it() {
    let mut s = Sim::new();
    s.beat(hb("a", 100), 0);
    s.beat(hb("b", 100), 0);
    assert_eq!((s.primary(), s.g.epoch()), (Some("a"), 1));
    let mut refused = hb("a", 100);
    refused.known_epoch = 1;
    refused.fenced_out_epoch = 1;
    let c = s.beat(refused.clone(), 100);
    assert_eq!(promoted(&c), vec![("a".to_string(), 2)]);
    assert!(c[0].reason.contains("the endpoint refused it"), "{c:?}");
    // The same report later, below the new epoch, changes nothing; nor does a refusal
    // reported by a member that is not Primary.
    assert!(promoted(&s.beat(refused, 200)).is_empty());
    let mut other = hb("b", 100);
    other.known_epoch = 2;
    other.fenced_out_epoch = 2;
    assert!(promoted(&s.beat(other, 300)).is_empty());
    assert_eq!(s.g.epoch(), 2);
}

#[test]
fn override_forces_a_role_until_it_expires() {
    let mut s = Sim::new();
    s.beat(hb("a", 100), 0);
    s.beat(hb("b", 100), 0);
    let c =
        s.g.set_override("b", Some(Role::Primary), Some(ms(1000)), ms(0))
            .expect("override");
    assert_eq!(promoted(&c), vec![("b".to_string(), 2)]);
    assert!(
        c[0].reason.contains("b is Primary for 1.0 s"),
        "{}",
        c[0].reason
    );
    // While forced, even a score of 0 keeps it.
    s.beat(hb("b", 0), 100);
    assert_eq!(s.primary(), Some("b"));
    s.beat(hb("b", 100), 200);
    assert_eq!(s.g.next_deadline(), Some(ms(1000)));
    // After expiry the normal rules resume: b keeps the role (no failback).
    s.beat(hb("a", 100), 900);
    s.beat(hb("b", 100), 900);
    let c = s.g.tick(ms(1000));
    assert!(c.iter().any(|t| t.reason.contains("expired")));
    assert_eq!(s.primary(), Some("b"));
    // Forcing Secondary hands the role on.
    let c =
        s.g.set_override("b", Some(Role::Secondary), None, ms(1100))
            .expect("override");
    assert_eq!(promoted(&c), vec![("a".to_string(), 3)]);
    assert!(s.g.set_override("zzz", None, None, ms(1)).is_err());
}

/// Doc (the vendor's role override page): "the session will still remain in primary role
/// while the role override is in effect", stale or not; overrides are meant for a machine
/// that may be restarting often. The fence keeps it safe: nobody else is promoted, so no
/// other writer fences past it.
#[test]
fn a_stale_forced_primary_keeps_the_role_while_the_override_holds() {
    let mut s = Sim::new();
    s.beat(hb("a", 100), 0);
    s.beat(hb("b", 100), 0);
    let c =
        s.g.set_override("b", Some(Role::Primary), Some(ms(10_000)), ms(0))
            .expect("override");
    assert_eq!(promoted(&c), vec![("b".to_string(), 2)]);
    // b stops heartbeating (its machine restarts); a goes on.
    for t in (1000..10_000).step_by(1000) {
        s.beat(hb("a", 100), t);
        let c = s.g.tick(ms(t));
        assert!(promoted(&c).is_empty(), "at {t} ms: {c:?}");
        assert_eq!(s.primary(), Some("b"), "at {t} ms");
    }
    assert!(s.g.note().contains("override"), "{}", s.g.note());
    // When the override expires, the rules resume: b is stale, a takes over.
    s.beat(hb("a", 100), 10_000);
    s.g.tick(ms(10_000));
    assert_eq!((s.primary(), s.g.epoch()), (Some("a"), 3));
}

/// Doc: overrides are meant for "a machine that may be restarting often": the override
/// belongs to the member (its name), so a restart, which makes a new session, keeps it.
#[test]
fn an_override_survives_the_members_restart() {
    let mut s = Sim::new();
    s.beat(hb("a", 100), 0);
    s.beat(hb("b", 100), 0);
    s.g.set_override("b", Some(Role::Primary), None, ms(0))
        .expect("override");
    assert_eq!(s.primary(), Some("b"));
    let mut restarted = hb("b", 100);
    restarted.incarnation = "b-2".into();
    s.beat(restarted, 500);
    let b = s.g.primary().expect("a Primary");
    assert_eq!(
        (b.adapter_id.as_str(), b.incarnation.as_str()),
        ("b", "b-2"),
        "the restarted b is Primary again"
    );
    assert_eq!(
        b.role_override.map(|o| o.role),
        Some(Role::Primary),
        "its override holds"
    );
}

/// Found in review: an epoch reported at u64::MAX overflowed the next promotion (a panic
/// in debug builds, epoch 0 and a promotion at every recompute in release). The services
/// refuse such reports (`limits::check_epoch`); the group saturates regardless.
#[test]
fn a_far_ahead_epoch_never_overflows_or_loops() {
    let mut s = Sim::new();
    s.beat(hb("a", 100), 0);
    let mut b = hb("b", 100);
    b.known_epoch = u64::MAX;
    let c = s.beat(b.clone(), 10);
    assert_eq!(promoted(&c), vec![("a".to_string(), u64::MAX)]);
    assert!(
        promoted(&s.beat(b, 20)).is_empty(),
        "no promotion at every heartbeat"
    );
    assert!(promoted(&s.beat(hb("a", 100), 30)).is_empty());
}

/// Found in review: a REST member registering the id "1" (another member's session number)
/// or another member's name made later lookups by that key hit the wrong session.
#[test]
fn ids_are_unambiguous_and_a_group_has_a_bounded_number_of_members() {
    let mut s = Sim::new();
    s.beat(hb("a", 100), 0);
    let a = s.g.find_session("a").expect("a");
    for taken in [a.to_string(), "a".to_string()] {
        let e = s.g.register(&taken, "x", ms(10), &mut s.next).unwrap_err();
        assert!(matches!(e, GroupError::SessionIdInUse { .. }), "{e:?}");
    }
    s.g.register("guid-1", "x", ms(10), &mut s.next)
        .expect("a fresh id");
    let x = s.g.find_session("guid-1").expect("by its id");
    assert_eq!(s.g.session(x).map(|s| s.adapter_id.as_str()), Some("x"));
    for i in s.g.sessions().len()..crate::limits::MAX_SESSIONS_PER_GROUP {
        s.beat(hb(&format!("m{i}"), 0), 20);
    }
    let e =
        s.g.heartbeat(hb("one-too-many", 0), ms(30), &mut s.next)
            .unwrap_err();
    assert!(matches!(e, GroupError::Full { .. }), "{e:?}");
}

#[test]
fn deleting_the_primary_session_fails_over() {
    let mut s = Sim::new();
    s.beat(hb("a", 100), 0);
    s.beat(hb("b", 100), 0);
    let c = s.g.remove_session("a", ms(10)).expect("removed");
    assert_eq!(promoted(&c), vec![("b".to_string(), 2)]);
    assert_eq!(s.g.sessions().len(), 1);
}

/// Issue 13, item 1: a member reporting an epoch ahead of the group's (the other adapter of
/// a recreated group, or the endpoint fenced ahead) used to raise the group's epoch with no
/// promotion, so the Primary's fence was refused for ever.
#[test]
fn a_newer_epoch_reported_by_a_member_promotes_the_primary_again_above_it() {
    let mut s = Sim::new();
    s.beat(hb("a", 100), 0);
    assert_eq!(s.g.epoch(), 1);
    let mut b = hb("b", 100);
    b.known_epoch = 6;
    let c = s.beat(b.clone(), 10);
    assert_eq!(promoted(&c), vec![("a".to_string(), 7)]);
    assert!(
        s.g.note().contains("promoted again, epoch 7"),
        "{}",
        s.g.note()
    );
    assert_eq!(s.g.epoch(), 7);
    // Once above, the same report changes nothing: no loop.
    assert!(promoted(&s.beat(b, 20)).is_empty());
    // The Primary itself reports the endpoint's newer fence (its fence was refused).
    let mut a = hb("a", 100);
    a.known_epoch = 9;
    let c = s.beat(a, 30);
    assert_eq!(promoted(&c), vec![("a".to_string(), 10)]);
    // Without a Primary, the next promotion goes above the newest epoch seen.
    let mut s = Sim::new();
    s.beat(hb("a", 0), 0);
    let mut b = hb("b", 0);
    b.known_epoch = 4;
    s.beat(b, 0);
    assert_eq!(s.g.epoch(), 0, "the epoch moves only with a promotion");
    assert_eq!(
        promoted(&s.beat(hb("a", 100), 10)),
        vec![("a".to_string(), 5)]
    );
}

/// Issue 13, item 2: two adapters with one name replaced each other's session at every
/// heartbeat.
#[test]
fn a_second_live_adapter_with_the_same_name_is_refused_and_a_restart_is_not() {
    let mut s = Sim::new();
    s.beat(hb("a", 100), 0);
    let mut twin = hb("a", 100);
    twin.incarnation = "a-twin".into();
    let err =
        s.g.heartbeat(twin.clone(), ms(500), &mut s.next)
            .expect_err("refused");
    assert!(matches!(err, GroupError::NameInUse { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("a is already a live member of group \"g\"")
            && text.contains("give each adapter its own --name"),
        "{text}"
    );
    assert_eq!(s.primary(), Some("a"));
    assert_eq!(s.g.epoch(), 1);
    // The first one's stream closes (a restart): the newcomer replaces it at once.
    let a = s.g.find_session("a").expect("a");
    s.g.disconnected(a);
    s.beat(twin.clone(), 600);
    assert_ne!(s.g.find_session("a").expect("a"), a);
    // A stale session is replaced too, even if its stream looks open.
    let mut third = hb("a", 100);
    third.incarnation = "a-3".into();
    s.beat(third, 600 + 4001);
    assert_eq!(s.g.sessions().len(), 1);
}

/// Found by the simulator (`failover-lab sim --seed 155`): a group recreated by members that
/// knew an epoch holds promotions for a heartbeat interval; a Primary forced meanwhile kept
/// the role, the hold was never cleared, and `next_deadline` stayed in the past, so the
/// service's clock woke again at once, for ever (a busy loop).
#[test]
fn a_hold_ends_when_a_primary_is_kept_so_no_deadline_lies_in_the_past() {
    let mut s = Sim::new();
    let mut b = hb("b", 100);
    b.known_epoch = 3;
    s.beat(b, 0);
    s.beat(hb("a", 100), 10);
    assert_eq!(s.primary(), None, "holding for the previous Primary");
    s.g.set_override("a", Some(Role::Primary), None, ms(20))
        .expect("override");
    assert_eq!(s.primary(), Some("a"));
    s.beat(hb("a", 100), 1900);
    s.beat(hb("b", 100), 1900);
    let now = ms(2500);
    s.g.tick(now);
    assert!(
        s.g.next_deadline().is_none_or(|d| d > now),
        "deadline {:?} is not after {now:?}",
        s.g.next_deadline()
    );
}

/// Found by `liveness::a_stopping_failover_service_promotes_nobody`: after a restart of the
/// service, the old Primary's first heartbeat scored 0 (it was resubscribing to its
/// source), so it was not adopted, and a needless failover followed. A claim is adopted as
/// soon as its score is above 0, within the hold.
#[test]
fn a_restarted_service_adopts_the_primary_once_it_scores_again() {
    let mut s = Sim::new();
    let mut a = hb("a", 0);
    a.known_epoch = 1;
    a.claims_primary = true;
    s.beat(a.clone(), 0);
    assert_eq!(s.primary(), None);
    let mut b = hb("b", 100);
    b.known_epoch = 1;
    s.beat(b, 100);
    a.score = 100;
    let c = s.beat(a, 300);
    assert!(
        c.iter()
            .any(|t| matches!(t.kind, TransitionKind::Adopted { epoch: 1, .. })),
        "{c:?}"
    );
    assert_eq!((s.primary(), s.g.epoch()), (Some("a"), 1));
    assert!(promoted(&s.g.tick(ms(2000))).is_empty());
}

/// Issue 13, item 9: a member that leaves hands its role on at once.
#[test]
fn a_primary_that_leaves_hands_over_at_once_and_the_group_empties() {
    let mut s = Sim::new();
    s.beat(hb("a", 100), 0);
    s.beat(hb("b", 100), 0);
    let a = s.g.find_session("a").expect("a");
    let c = s.g.leave(a, ms(100));
    assert!(
        c.iter()
            .any(|t| matches!(t.kind, TransitionKind::Left { .. }))
    );
    assert_eq!(promoted(&c), vec![("b".to_string(), 2)]);
    let b = s.g.find_session("b").expect("b");
    s.g.leave(b, ms(200));
    assert!(s.g.sessions().is_empty());
    assert_eq!(s.primary(), None);
    assert!(
        s.g.leave(b, ms(300)).is_empty(),
        "leaving twice is harmless"
    );
}

/// Exhaustive over small worlds: whatever the order of heartbeats, scores and ticks, there
/// is at most one Primary, epochs never decrease, a Primary is never stale or at 0 unless
/// forced, and a live member above 0 always means somebody is Primary.
#[test]
fn invariants_hold_over_every_short_event_sequence() {
    #[derive(Clone, Copy, Debug)]
    enum Ev {
        Beat(usize, u32),
        Restart(usize),
        Tick(u64),
    }
    let names = ["a", "b"];
    let mut events = Vec::new();
    for who in 0..2 {
        for score in [0, 1, 75, 100] {
            events.push(Ev::Beat(who, score));
        }
        events.push(Ev::Restart(who));
    }
    events.push(Ev::Tick(3000));
    let n = events.len();
    let mut checked = 0;
    for a in 0..n {
        for b in 0..n {
            for c in 0..n {
                for d in 0..n {
                    let mut s = Sim::new();
                    let mut now = 0;
                    let mut inc = [1, 1];
                    let mut last_epoch = 0;
                    for ev in [events[a], events[b], events[c], events[d]] {
                        let mut beat = |w: usize, score: u32, restart: bool| {
                            if restart {
                                inc[w] += 1;
                            }
                            let mut h = hb(names[w], score);
                            h.incarnation = format!("{}-{}", names[w], inc[w]);
                            h
                        };
                        match ev {
                            Ev::Beat(w, score) => {
                                let h = beat(w, score, false);
                                s.beat(h, now);
                            }
                            Ev::Restart(w) => {
                                let h = beat(w, 100, true);
                                s.beat(h, now);
                            }
                            Ev::Tick(dt) => {
                                now += dt;
                                s.g.tick(ms(now));
                            }
                        }
                        now += 10;
                        assert!(s.g.epoch() >= last_epoch);
                        last_epoch = s.g.epoch();
                        if let Some(p) = s.g.primary() {
                            assert!(p.score > 0, "{events:?}");
                            assert!(!s.g.is_stale(p, ms(now - 10)));
                        } else {
                            let live_above_zero =
                                s.g.sessions()
                                    .iter()
                                    .any(|x| x.score > 0 && !s.g.is_stale(x, ms(now - 10)));
                            assert!(!live_above_zero, "nobody Primary: {:?}", s.g);
                        }
                        let at = ms(now - 10);
                        assert!(
                            s.g.next_deadline().is_none_or(|d| d > at),
                            "a deadline in the past makes the service's clock spin: {events:?}"
                        );
                        let primaries =
                            s.g.sessions()
                                .iter()
                                .filter(|x| s.g.role_of(x.id) == Role::Primary)
                                .count();
                        assert!(primaries <= 1);
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 10_000);
}
