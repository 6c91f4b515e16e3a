//! Overload, answered the vendor's way: past `--max-rest-heartbeats` a second, a heartbeat of
//! the REST API is answered `429 Too Many Requests` with `Retry-After` (whole seconds, at least
//! 1), before the group is touched.
//!
//! - The limit is a token bucket: `max` heartbeats a second on average, bursts of up to `max`.
//! - A member told to wait is not made stale for the wait: its staleness counts from the end of
//!   the wait plus the jitter a client may add (a quarter of it), so a Primary refused for
//!   overload keeps its role ([`failover_core::group::Group::excuse`]). Its score and data stay
//!   as last reported.
//! - Only heartbeats are refused so; registrations, status and the admin calls are not (they
//!   are rare, and an operator must get through an overload).
//! - gRPC heartbeat streams are not limited: a stream costs no connection per heartbeat.

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::error;
use crate::Arbiter;

/// The wait a refused heartbeat is told, and the most a client may add to it as jitter.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How much later than [`RETRY_AFTER`] a client may come back (a quarter of it, as jitter).
pub const JITTER: Duration = Duration::from_millis(250);

/// A token bucket of heartbeats.
#[derive(Debug)]
pub struct HeartbeatLimit {
    per_second: f64,
    bucket: Mutex<(f64, Instant)>,
}

impl HeartbeatLimit {
    /// At most `per_second` heartbeats a second (at least 1).
    pub fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second.max(1));
        HeartbeatLimit {
            per_second,
            bucket: Mutex::new((per_second, Instant::now())),
        }
    }

    /// Takes a heartbeat's place: true when it may be taken, false when the service is over its
    /// limit and the heartbeat must be refused.
    pub fn admit(&self) -> bool {
        let mut b = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let refill = now.duration_since(b.1).as_secs_f64() * self.per_second;
        b.0 = (b.0 + refill).min(self.per_second);
        b.1 = now;
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The 429 answer to a heartbeat of session `client_id` of `group`, which is excused for the
/// wait it is told.
pub(super) fn too_many(arbiter: &Arbiter, group: &str, client_id: &str) -> Response {
    arbiter.excuse_pull_session(group, client_id, RETRY_AFTER + JITTER);
    let mut r = error(
        StatusCode::TOO_MANY_REQUESTS,
        "The failover service takes more heartbeats a second than it is allowed (--max-rest-heartbeats); this one was not taken.",
        format!(
            "Heartbeat again after Retry-After ({} s). The session keeps its role meanwhile: it is not made stale for the wait.",
            RETRY_AFTER.as_secs()
        ),
    )
    .into_response();
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(RETRY_AFTER.as_secs()),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_takes_its_rate_and_refills() {
        let l = HeartbeatLimit::new(50);
        let taken = (0..200).filter(|_| l.admit()).count();
        // A burst of 50, plus whatever refilled while the loop ran (well under a millisecond).
        assert!((50..=52).contains(&taken), "{taken}");
        std::thread::sleep(Duration::from_millis(100));
        let again = (0..200).filter(|_| l.admit()).count();
        // 100 ms or more of refill (5 or more), never the whole bucket again.
        assert!((4..50).contains(&again), "{again}");
    }
}
