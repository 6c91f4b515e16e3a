//! Fault schedules drawn from a seed: what fails, when, for how long. One fault at a time,
//! each healed before the next begins, all within the fault window; the seed alone decides.
//!
//! A run draws its faults from a [`FaultMix`]: which kinds, how many, how long and how close
//! together. By default each seed draws a mix of its own from the pool of kinds (swarm testing,
//! Groce et al., ISSTA 2012: a run that exercises a few features hard finds the bugs that hide
//! where those features meet, which a run spread thin over all of them rarely reaches);
//! [`FaultMix::uniform`] is the older draw, every kind of the pool in equal measure.
//!
//! Two families: the classic faults of machines and networks (crashes, pauses, partitions,
//! latency, outages), and what operators and misconfigured members do (mode switches,
//! failoverTimeout changes done the documented way, deleted sessions and groups, role
//! overrides, restarts with a changed document, unregistering, graceful stops, a second adapter
//! with the same name, a standalone adapter on the same endpoint, a far-ahead epoch, and the
//! failover service down for several failoverTimeouts).

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
    /// An adapter's mode is changed at runtime (PUT of its document), and back.
    ModeSwitch,
    /// failoverTimeout changed the documented way: both documents changed (refused by the
    /// group), sessions and group deleted, both rejoin; and back the same way.
    TimeoutChange,
    /// An operator deletes an adapter's session.
    SessionDelete,
    /// An operator deletes both sessions and the group.
    GroupDelete,
    /// An operator forces an adapter Primary (with an expiration, or until cleared; on a held,
    /// stale adapter in the `variant` case), then clears it.
    RoleOverride,
    /// An adapter crashes and starts with a changed document (another mode), and again with
    /// its own.
    RestartChanged,
    /// An adapter stops gracefully (it leaves its group) and starts again.
    GracefulStop,
    /// An adapter's document is deleted (it unregisters and egresses standalone), then put back.
    Unregister,
    /// A second adapter with the same name and document runs for a while.
    Twin,
    /// A standalone adapter (no failover document) egresses to the same endpoint for a while.
    Standalone,
    /// An epoch far ahead of the group's: the endpoint fenced by an intruder, or (`variant`) a
    /// member announcing it in its heartbeats.
    EpochAhead,
    /// The failover service is down for several failoverTimeouts, then starts again.
    ArbiterOutage,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 21] = [
        FaultKind::Crash,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::OneWayPartition,
        FaultKind::EndpointLink,
        FaultKind::Latency,
        FaultKind::SourceOutage,
        FaultKind::EndpointOutage,
        FaultKind::ArbiterRestart,
        FaultKind::ModeSwitch,
        FaultKind::TimeoutChange,
        FaultKind::SessionDelete,
        FaultKind::GroupDelete,
        FaultKind::RoleOverride,
        FaultKind::RestartChanged,
        FaultKind::GracefulStop,
        FaultKind::Unregister,
        FaultKind::Twin,
        FaultKind::Standalone,
        FaultKind::EpochAhead,
        FaultKind::ArbiterOutage,
    ];

    /// The faults of machines and networks (the first simulator's kinds; its regression seeds
    /// replay with these).
    pub const CLASSIC: [FaultKind; 9] = [
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
            FaultKind::ModeSwitch => "mode-switch",
            FaultKind::TimeoutChange => "timeout-change",
            FaultKind::SessionDelete => "session-delete",
            FaultKind::GroupDelete => "group-delete",
            FaultKind::RoleOverride => "role-override",
            FaultKind::RestartChanged => "restart-changed",
            FaultKind::GracefulStop => "graceful-stop",
            FaultKind::Unregister => "unregister",
            FaultKind::Twin => "twin",
            FaultKind::Standalone => "standalone",
            FaultKind::EpochAhead => "epoch-ahead",
            FaultKind::ArbiterOutage => "arbiter-outage",
        }
    }

    /// How many promotions this fault may cause at most (the no-ping-pong rule): a takeover,
    /// and for some a second one (the role back, a promotion above a foreign epoch, the group
    /// recreated).
    pub fn promotions_allowed(self) -> u64 {
        match self {
            FaultKind::Latency | FaultKind::Standalone | FaultKind::EndpointOutage => 1,
            FaultKind::TimeoutChange | FaultKind::GroupDelete => 4,
            _ => 2,
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
    /// A second choice for some kinds: a role override on a stale member, an epoch announced
    /// by a member rather than fenced at the endpoint.
    pub variant: bool,
    /// Start, in simulated time.
    pub at: Duration,
    /// How long until it is healed.
    pub lasts: Duration,
}

impl Fault {
    /// What fails, in words, without its times ("adapter-a held").
    pub fn what(&self) -> String {
        match self.kind {
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
            FaultKind::ModeSwitch => format!("{} mode switched at runtime, and back", self.adapter),
            FaultKind::TimeoutChange => {
                "failoverTimeout changed (documents, sessions and group deleted), and back"
                    .to_string()
            }
            FaultKind::SessionDelete => format!("{}'s session deleted", self.adapter),
            FaultKind::GroupDelete => "both sessions and the group deleted".to_string(),
            FaultKind::RoleOverride if self.variant => {
                format!("{} held, forced Primary while stale", self.adapter)
            }
            FaultKind::RoleOverride if self.outbound => {
                format!("{} forced Primary until cleared", self.adapter)
            }
            FaultKind::RoleOverride => format!("{} forced Primary, expiring", self.adapter),
            FaultKind::RestartChanged => {
                format!(
                    "{} restarts with a changed document, and again",
                    self.adapter
                )
            }
            FaultKind::GracefulStop => format!("{} stops gracefully, starts", self.adapter),
            FaultKind::Unregister => format!("{}'s document deleted, put back", self.adapter),
            FaultKind::Twin => format!("a second {} runs", self.adapter),
            FaultKind::Standalone => "a standalone adapter egresses too".to_string(),
            FaultKind::EpochAhead if self.variant => {
                "a member announces an epoch far ahead".to_string()
            }
            FaultKind::EpochAhead => "the endpoint is fenced far ahead".to_string(),
            FaultKind::ArbiterOutage => "arbiter down".to_string(),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (at, to) = (self.at.as_secs_f64(), (self.at + self.lasts).as_secs_f64());
        write!(f, "{at:7.2}s..{to:7.2}s  {}", self.what())
    }
}

/// How a run's faults are drawn: from which kinds, how long and how close together (and so
/// how many: as many as the fault window holds, from about 20 short ones back to back to a few
/// long ones). Lengths and gaps are in quarters of failoverTimeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultMix {
    /// The kinds drawn from, each in equal measure.
    pub kinds: Vec<FaultKind>,
    /// Each fault lasts from `lasts.0` to `lasts.1` quarters of failoverTimeout (a failover
    /// service outage lasts 3 to 10 failoverTimeouts whatever the mix).
    pub lasts: (u32, u32),
    /// The quiet time between two faults, from `gap.0` to `gap.1` quarters of failoverTimeout.
    pub gap: (u32, u32),
}

/// How many kinds a swarm mix takes at most.
pub const SWARM_MAX_KINDS: usize = 6;

impl FaultMix {
    /// Every kind of `pool` in equal measure, each fault 0.25 to 4 failoverTimeouts long, 0 to
    /// 2 apart, as many as the window holds (`failover-lab sim --swarm off`).
    pub fn uniform(pool: &[FaultKind]) -> FaultMix {
        FaultMix {
            kinds: pool.to_vec(),
            lasts: (1, 16),
            gap: (0, 8),
        }
    }

    /// A mix of the seed's own from `pool` (swarm testing): 1 to [`SWARM_MAX_KINDS`] kinds;
    /// faults short (0.25 to 1 failoverTimeout) or mixed (0.25 to 4); back to back (0 to 0.25
    /// apart) or mixed (0 to 2); as many as the window holds. (Measured on seeds 1 to 1000
    /// with each rule broken on purpose: mixes that also drew long faults, sparse gaps and a
    /// cap of 1 to 6 faults caught fewer of every broken rule than these.)
    pub fn swarm(seed: u64, pool: &[FaultKind]) -> FaultMix {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5a4d_1e55);
        let mut kinds: Vec<FaultKind> = pool.to_vec();
        kinds.sort();
        kinds.dedup();
        let take = rng.random_range(1..=kinds.len().clamp(1, SWARM_MAX_KINDS));
        // A partial Fisher-Yates shuffle: the first `take` are the mix.
        for i in 0..take.min(kinds.len()) {
            let j = rng.random_range(i..kinds.len());
            kinds.swap(i, j);
        }
        kinds.truncate(take);
        kinds.sort();
        let lasts = [(1, 4), (1, 16)][rng.random_range(0..2)];
        let gap = [(0, 1), (0, 8)][rng.random_range(0..2)];
        FaultMix { kinds, lasts, gap }
    }

    /// The mix in words: `crash, mode-switch; 0.25-1x failoverTimeout long, 0-0.25x apart`.
    pub fn describe(&self) -> String {
        let q = |n: u32| {
            let x = f64::from(n) / 4.0;
            format!("{x}")
        };
        let kinds: Vec<&str> = self.kinds.iter().map(|k| k.name()).collect();
        format!(
            "{}; {}-{}x failoverTimeout long, {}-{}x apart",
            if kinds.is_empty() {
                "no faults".to_string()
            } else {
                kinds.join(", ")
            },
            q(self.lasts.0),
            q(self.lasts.1),
            q(self.gap.0),
            q(self.gap.1),
        )
    }
}

/// The faults of one run: from `window.0` to `window.1`, drawn as `mix` says.
pub fn draw(
    seed: u64,
    mix: &FaultMix,
    window: (Duration, Duration),
    failover_timeout: Duration,
) -> Vec<Fault> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_fa17);
    let mut faults = Vec::new();
    let kinds = &mix.kinds;
    if kinds.is_empty() {
        return faults;
    }
    let mut t = window.0;
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
    let quarters = |n: u32| ms(failover_timeout) * u64::from(n) / 4;
    let (lasts_lo, lasts_hi) = (
        quarters(mix.lasts.0),
        quarters(mix.lasts.1.max(mix.lasts.0)),
    );
    let (gap_lo, gap_hi) = (quarters(mix.gap.0), quarters(mix.gap.1.max(mix.gap.0)));
    loop {
        // With the uniform mix: short faults (under failoverTimeout) and long ones (several),
        // in equal measure.
        let mut lasts = Duration::from_millis(rng.random_range(lasts_lo.max(1)..=lasts_hi.max(1)));
        let kind = kinds[rng.random_range(0..kinds.len())];
        let adapter = ADAPTERS[rng.random_range(0..ADAPTERS.len())];
        let outbound = rng.random_bool(0.5);
        let latency = Duration::from_millis(rng.random_range(5..=ms(failover_timeout) / 2 + 5));
        // Drawn for the new kinds only, so the classic kinds' seeds replay as before.
        let variant = match kind {
            FaultKind::ArbiterOutage => {
                lasts = failover_timeout * rng.random_range(3..=10);
                false
            }
            FaultKind::RoleOverride | FaultKind::EpochAhead => rng.random_bool(0.5),
            _ => false,
        };
        if t + lasts > window.1 {
            break;
        }
        faults.push(Fault {
            kind,
            adapter,
            outbound,
            latency,
            variant,
            at: t,
            lasts,
        });
        // A quiet gap before the next, sometimes none.
        t += lasts + Duration::from_millis(rng.random_range(gap_lo..=gap_hi));
    }
    faults
}
