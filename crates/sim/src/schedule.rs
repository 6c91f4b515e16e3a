//! Fault schedules drawn from a seed: what fails, when, for how long. One fault at a time,
//! each healed before the next begins, all within the fault window; the seed alone decides.

use std::{fmt, time::Duration};

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::world::ADAPTERS;

/// The kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// An adapter's host crashes, and is started again later (a new process).
    Crash,
    /// An adapter's host is held: nothing it sends or is sent gets through until released.
    Pause,
    /// An adapter and the failover service cannot reach each other.
    Partition,
    /// An adapter's messages to the failover service are lost, not the other way (or the
    /// reverse).
    OneWayPartition,
    /// An adapter cannot reach the endpoint.
    EndpointLink,
    /// Latency on an adapter's link to the failover service.
    Latency,
    /// The whole data source is down.
    SourceOutage,
    /// The endpoint refuses every write.
    EndpointOutage,
    /// The failover service crashes and starts again (its state is lost).
    ArbiterRestart,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Crash,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::OneWayPartition,
        FaultKind::EndpointLink,
        FaultKind::Latency,
        FaultKind::SourceOutage,
        FaultKind::EndpointOutage,
        FaultKind::ArbiterRestart,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::OneWayPartition => "one-way",
            FaultKind::EndpointLink => "endpoint-link",
            FaultKind::Latency => "latency",
            FaultKind::SourceOutage => "source-outage",
            FaultKind::EndpointOutage => "endpoint-outage",
            FaultKind::ArbiterRestart => "arbiter-restart",
        }
    }
}

impl std::str::FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a fault kind; accepted: {}",
                    FaultKind::ALL.map(FaultKind::name).join(", ")
                )
            })
    }
}

/// One fault: its kind, the adapter it hits (if any), when it starts and how long it lasts.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// What fails.
    pub kind: FaultKind,
    /// The adapter hit (crash, pause, links, latency).
    pub adapter: &'static str,
    /// For a one-way partition: true when the adapter's messages are lost, false when the
    /// service's are. For latency: the added delay.
    pub outbound: bool,
    /// Added latency, for [`FaultKind::Latency`].
    pub latency: Duration,
    /// Start, in simulated time.
    pub at: Duration,
    /// How long until it is healed.
    pub lasts: Duration,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (at, to) = (self.at.as_secs_f64(), (self.at + self.lasts).as_secs_f64());
        let what = match self.kind {
            FaultKind::Crash => format!("{} crashes, restarts", self.adapter),
            FaultKind::Pause => format!("{} held", self.adapter),
            FaultKind::Partition => format!("{} <-/-> arbiter", self.adapter),
            FaultKind::OneWayPartition if self.outbound => {
                format!("{} -/-> arbiter (one way)", self.adapter)
            }
            FaultKind::OneWayPartition => format!("arbiter -/-> {} (one way)", self.adapter),
            FaultKind::EndpointLink => format!("{} <-/-> endpoint", self.adapter),
            FaultKind::Latency => format!(
                "{} <-> arbiter +{} ms",
                self.adapter,
                self.latency.as_millis()
            ),
            FaultKind::SourceOutage => "source down".to_string(),
            FaultKind::EndpointOutage => "endpoint refuses writes".to_string(),
            FaultKind::ArbiterRestart => "arbiter crashes, restarts".to_string(),
        };
        write!(f, "{at:7.2}s..{to:7.2}s  {what}")
    }
}

/// The faults of one run: from `window.0` to `window.1`, kinds from `kinds`.
pub fn draw(
    seed: u64,
    kinds: &[FaultKind],
    window: (Duration, Duration),
    failover_timeout: Duration,
) -> Vec<Fault> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_fa17);
    let mut faults = Vec::new();
    if kinds.is_empty() {
        return faults;
    }
    let mut t = window.0;
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
    loop {
        // Short faults (under failoverTimeout) and long ones (several), in equal measure.
        let lasts = Duration::from_millis(
            rng.random_range(ms(failover_timeout) / 4..=ms(failover_timeout) * 4),
        );
        if t + lasts > window.1 {
            break;
        }
        let kind = kinds[rng.random_range(0..kinds.len())];
        faults.push(Fault {
            kind,
            adapter: ADAPTERS[rng.random_range(0..ADAPTERS.len())],
            outbound: rng.random_bool(0.5),
            latency: Duration::from_millis(rng.random_range(5..=ms(failover_timeout) / 2 + 5)),
            at: t,
            lasts,
        });
        // A quiet gap before the next, sometimes none.
        t += lasts + Duration::from_millis(rng.random_range(0..=ms(failover_timeout) * 2));
    }
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_alone_decides_and_faults_stay_in_the_window() {
        let window = (Duration::from_secs(5), Duration::from_secs(60));
        let a = draw(7, &FaultKind::ALL, window, Duration::from_secs(2));
        assert_eq!(a, draw(7, &FaultKind::ALL, window, Duration::from_secs(2)));
        assert_ne!(a, draw(8, &FaultKind::ALL, window, Duration::from_secs(2)));
        assert!(!a.is_empty());
        for pair in a.windows(2) {
            assert!(pair[0].at + pair[0].lasts <= pair[1].at, "one at a time");
        }
        assert!(
            a.iter()
                .all(|f| f.at >= window.0 && f.at + f.lasts <= window.1)
        );
        assert!(draw(7, &[], window, Duration::from_secs(2)).is_empty());
        assert_eq!(
            "one-way".parse::<FaultKind>(),
            Ok(FaultKind::OneWayPartition)
        );
        assert!("flood".parse::<FaultKind>().is_err());
    }
}
