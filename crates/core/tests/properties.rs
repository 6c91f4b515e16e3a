//! Properties of the failover rules over random event sequences (proptest), beyond the
//! exhaustive short sequences of the unit tests:
//! - never two Primaries in one epoch, and at most one Primary at any moment;
//! - epochs only grow;
//! - a Primary is live and scores above 0;
//! - a Hot takeover's flush starts right after the watermark: trimming a buffer by a watermark
//!   removes exactly the points it covers and keeps every later one, in order.

use std::{collections::BTreeMap, time::Duration};

use failover_core::{
    Mode, Point, Role, Watermark,
    buffer::EgressBuffer,
    group::{Group, Heartbeat, SessionId},
};
use proptest::prelude::*;

const TIMEOUT: Duration = Duration::from_secs(4);
const NAMES: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Event {
    /// A heartbeat from adapter `who` with this score.
    Beat { who: usize, score: u32 },
    /// Adapter `who` restarts: a new incarnation.
    Restart { who: usize },
    /// Time passes (milliseconds).
    Wait { ms: u64 },
    /// An operator deletes adapter `who`'s session.
    Remove { who: usize },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => (0..3usize, prop::sample::select(vec![0u32, 1, 50, 75, 100]))
            .prop_map(|(who, score)| Event::Beat { who, score }),
        1 => (0..3usize).prop_map(|who| Event::Restart { who }),
        2 => (0..6000u64).prop_map(|ms| Event::Wait { ms }),
        1 => (0..3usize).prop_map(|who| Event::Remove { who }),
    ]
}

fn heartbeat(who: usize, incarnation: u32, score: u32) -> Heartbeat {
    Heartbeat {
        adapter_id: NAMES[who].into(),
        incarnation: format!("{}-{incarnation}", NAMES[who]),
        score,
        mode: Some(Mode::Hot),
        failover_timeout: TIMEOUT,
        name: None,
        description: None,
        known_epoch: 0,
        claims_primary: false,
        watermark: vec![],
        holds_data_since_ms: None,
        fenced_out_epoch: 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn one_primary_per_epoch_and_epochs_only_grow(events in prop::collection::vec(event(), 1..80)) {
        let mut group = Group::new("g", &heartbeat(0, 0, 0));
        let mut next: SessionId = 1;
        let mut now = Duration::ZERO;
        let mut incarnation = [1u32; 3];
        let mut last_epoch = 0;
        let mut primary_of_epoch: BTreeMap<u64, String> = BTreeMap::new();
        for ev in &events {
            match *ev {
                Event::Beat { who, score } => {
                    // A refused heartbeat (none is expected here) changes nothing.
                    let _ = group.heartbeat(heartbeat(who, incarnation[who], score), now, &mut next);
                }
                Event::Restart { who } => {
                    incarnation[who] += 1;
                    let _ = group.heartbeat(heartbeat(who, incarnation[who], 100), now, &mut next);
                }
                Event::Wait { ms } => {
                    now += Duration::from_millis(ms);
                    group.tick(now);
                }
                Event::Remove { who } => {
                    let _ = group.remove_session(NAMES[who], now);
                }
            }
            prop_assert!(group.epoch() >= last_epoch, "epoch went down: {events:?}");
            last_epoch = group.epoch();
            let primaries: Vec<_> = group
                .sessions()
                .iter()
                .filter(|s| group.role_of(s.id) == Role::Primary)
                .collect();
            prop_assert!(primaries.len() <= 1, "two Primaries: {events:?}");
            if let Some(p) = group.primary() {
                prop_assert!(p.score > 0 && !group.is_stale(p, now), "{events:?}");
                let holder = primary_of_epoch
                    .entry(group.epoch())
                    .or_insert_with(|| p.adapter_id.clone());
                prop_assert_eq!(holder, &p.adapter_id, "two Primaries in epoch {}", group.epoch());
            }
        }
    }

    #[test]
    fn the_flush_starts_right_after_the_watermark(
        streams in 1..6u32,
        ticks in 1..40u64,
        // Per stream: which ticks are missing (a component down), and its watermark.
        gaps in prop::collection::vec(prop::collection::vec(any::<bool>(), 40), 6),
        marks in prop::collection::vec(prop::option::of(0..45u64), 6),
        // History points appended after the live ones, out of order.
        history in prop::collection::vec((0..6u32, 0..40u64), 0..20),
    ) {
        let mut buffer = EgressBuffer::new(100_000);
        let mut all = Vec::new();
        for seq in 0..ticks {
            for s in 0..streams {
                if !gaps[s as usize][seq as usize] {
                    all.push(Point { stream_id: s, seq, timestamp_ms: seq as i64, value: 0.0 });
                }
            }
        }
        for (s, seq) in history {
            if s < streams {
                all.push(Point { stream_id: s, seq, timestamp_ms: seq as i64, value: 1.0 });
            }
        }
        buffer.extend(all.iter().copied());
        let wm = Watermark::from_pairs(
            (0..streams).filter_map(|s| marks[s as usize].map(|m| (s, m))),
        );
        buffer.trim(&wm);
        let kept = buffer.front_batch(usize::MAX);
        let expected: Vec<Point> = all.into_iter().filter(|p| !wm.covers(p)).collect();
        prop_assert_eq!(kept, expected);
    }
}
