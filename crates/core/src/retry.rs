//! Retries that never spin: exponential backoff with jitter, capped in proportion to
//! failoverTimeout, and a log filter that says a repeated error once per interval with a count.
//!
//! The jitter is drawn from a seeded generator (the adapter's name, say), not the process's
//! random source, so simulated runs replay exactly while real adapters still spread apart.

use std::time::Duration;

/// Every retry's delay with backoff broken on purpose ([`crate::BrokenRule::FixedRetry`]): a
/// busy loop by any measure (a hundred a second), short of one that exhausts a simulated
/// host's ports with its reconnects (1 ms did, over a long outage).
pub const FIXED_DELAY: Duration = Duration::from_millis(10);

/// The first retry delay.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest delay when no failoverTimeout is known (a standalone adapter).
pub const DEFAULT_CAP: Duration = Duration::from_secs(1);

/// The longest retry delay for a failoverTimeout: a quarter of it, from 100 ms to 15 s. A
/// quarter keeps a reconnecting Primary well inside the heartbeat interval (failoverTimeout/2)
/// that a restarted failover service waits for it.
pub fn cap_for(failover_timeout: Duration) -> Duration {
    (failover_timeout / 4).clamp(FIRST_DELAY, Duration::from_secs(15))
}

/// Exponential backoff with "equal jitter": each delay is between half and all of
/// `min(cap, FIRST_DELAY * 2^attempt)`.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    state: u64,
    /// Backoff broken on purpose ([`crate::BrokenRule::FixedRetry`]): every delay
    /// [`FIXED_DELAY`].
    fixed: bool,
}

impl Backoff {
    /// A backoff whose jitter is drawn from `seed` (for example a hash of the adapter's name
    /// and the task's).
    pub fn new(seed: u64) -> Self {
        Backoff {
            attempt: 0,
            state: seed,
            fixed: false,
        }
    }

    /// This backoff, with its delays fixed at [`FIXED_DELAY`] when `broken` breaks
    /// [`crate::BrokenRule::FixedRetry`] (the simulator's self-test must catch the busy loops).
    #[must_use]
    pub fn broken(mut self, broken: crate::Broken) -> Self {
        self.fixed = broken.has(crate::BrokenRule::FixedRetry);
        self
    }

    /// A backoff seeded from a text.
    pub fn seeded(text: &str) -> Self {
        // FNV-1a: stable across processes and runs (unlike the std hasher's random keys).
        let seed = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        Backoff::new(seed)
    }

    /// The next delay, at most `cap`.
    pub fn next_delay(&mut self, cap: Duration) -> Duration {
        if self.fixed {
            return FIXED_DELAY;
        }
        let exp = FIRST_DELAY.saturating_mul(1u32 << self.attempt.min(16));
        let ceiling = exp.min(cap.max(Duration::from_millis(1)));
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let spread = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_micros(self.random() % spread)
    }

    /// A wait a server told (an HTTP 429's `Retry-After`), with jitter: between it and a
    /// quarter more, so the clients it told at once come back apart. Never shorter than told,
    /// and never below [`FIRST_DELAY`] (a `Retry-After: 0` is no licence to spin).
    pub fn told(&mut self, wait: Duration) -> Duration {
        let wait = wait.max(FIRST_DELAY);
        let spread = u64::try_from((wait / 4).as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        wait + Duration::from_micros(self.random() % spread)
    }

    /// Attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Back to the first delay after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// splitmix64.
    fn random(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Says a repeated error once per interval: the first time in full, then, while it repeats,
/// at most once per `interval` with how many times it happened since.
#[derive(Debug, Clone)]
pub struct RepeatLog {
    interval: Duration,
    last: Option<(String, Duration)>,
    repeats: u64,
}

impl RepeatLog {
    /// Reports at most once per `interval` (10 s is usual).
    pub fn new(interval: Duration) -> Self {
        RepeatLog {
            interval,
            last: None,
            repeats: 0,
        }
    }

    /// Records an error at `now` (any monotonic clock); returns the line to log, if any.
    pub fn record(&mut self, message: &str, now: Duration) -> Option<String> {
        match &mut self.last {
            Some((last, at)) if last == message => {
                self.repeats += 1;
                if now.saturating_sub(*at) < self.interval {
                    return None;
                }
                let line = format!(
                    "{message} (again {} times in the last {:.0} s)",
                    self.repeats,
                    now.saturating_sub(*at).as_secs_f64()
                );
                *at = now;
                self.repeats = 0;
                Some(line)
            }
            _ => {
                self.last = Some((message.to_string(), now));
                self.repeats = 0;
                Some(message.to_string())
            }
        }
    }

    /// The error is over: the next one is said in full.
    pub fn clear(&mut self) {
        self.last = None;
        self.repeats = 0;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_told_wait_is_kept_with_up_to_a_quarter_more() {
        let mut b = super::Backoff::seeded("adapter-a");
        let told = super::Duration::from_secs(1);
        let waits: Vec<_> = (0..100).map(|_| b.told(told)).collect();
        assert!(waits.iter().all(|w| *w >= told && *w < told * 5 / 4));
        // Spread apart, not one value.
        assert!(
            waits
                .iter()
                .any(|w| *w > told + super::Duration::from_millis(100))
        );
        assert!(
            waits
                .iter()
                .any(|w| *w < told + super::Duration::from_millis(150))
        );
        assert!(b.told(super::Duration::ZERO) >= super::FIRST_DELAY);
    }

    use super::*;

    #[test]
    fn delays_grow_with_jitter_up_to_the_cap_and_reset() {
        let cap = Duration::from_millis(500);
        let mut b = Backoff::seeded("adapter-a/session");
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay(cap)).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= FIRST_DELAY);
        assert!(delays.iter().all(|d| *d <= cap), "{delays:?}");
        assert!(delays[9] >= cap / 2, "{delays:?}");
        // Jitter: not all the same once capped.
        assert!(delays[5..].windows(2).any(|w| w[0] != w[1]), "{delays:?}");
        b.reset();
        assert!(b.next_delay(cap) <= FIRST_DELAY);
        // The same seed replays the same delays; another seed spreads apart.
        let again: Vec<Duration> = {
            let mut b = Backoff::seeded("adapter-a/session");
            (0..10).map(|_| b.next_delay(cap)).collect()
        };
        assert_eq!(delays, again);
        let mut other = Backoff::seeded("adapter-b/session");
        let other: Vec<Duration> = (0..10).map(|_| other.next_delay(cap)).collect();
        assert_ne!(delays, other);
    }

    #[test]
    fn caps_follow_the_failover_timeout() {
        assert_eq!(cap_for(Duration::from_secs(2)), Duration::from_millis(500));
        assert_eq!(cap_for(Duration::from_millis(100)), FIRST_DELAY);
        assert_eq!(cap_for(Duration::from_secs(3600)), Duration::from_secs(15));
    }

    #[test]
    fn a_repeated_error_is_said_once_per_interval_with_a_count() {
        let mut log = RepeatLog::new(Duration::from_secs(10));
        let s = Duration::from_secs;
        assert_eq!(log.record("refused", s(0)).as_deref(), Some("refused"));
        let said: Vec<String> = (1..=25)
            .filter_map(|t| log.record("refused", s(t)))
            .collect();
        assert_eq!(
            said,
            vec![
                "refused (again 10 times in the last 10 s)".to_string(),
                "refused (again 10 times in the last 10 s)".to_string()
            ]
        );
        assert_eq!(log.record("other", s(26)).as_deref(), Some("other"));
        log.clear();
        assert_eq!(log.record("other", s(27)).as_deref(), Some("other"));
    }
}
