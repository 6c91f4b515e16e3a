//! What a run observed, as one history on every stage: the failover service's view at each
//! change ([`StatusPoint`]), periodic samples of the data flow with each adapter's egress
//! ([`Sample`]), the story ([`Event`]) and who delivered each source tick ([`CoverageSpan`]).
//!
//! The observer of real processes (the harness's `observe`) and the simulator's observer both
//! record these types; the rules every run keeps (`failover-scenario`'s `invariants`), the
//! simulator's own checks, the recordings, the timeline pictures and the replay read them, with
//! no copy in between. Times are milliseconds since the observation started (simulated
//! milliseconds in the simulator).

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};

/// The role label of a member that is in the group but whose heartbeats are late.
pub const STALE: &str = "Stale";

/// The failover service's view at one moment: what `hold` and `never` conditions are checked
/// against, at every change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusPoint {
    /// Milliseconds since the observation started (when the observer received it).
    pub at_ms: u64,
    /// When the failover service took this view, on its wall clock (unix µs; 0 when the clock
    /// is simulated): what `hold` and `never` windows are drawn on, so a view still on its way
    /// when a window closes counts.
    pub service_us: i64,
    /// The Primary (None: nobody).
    pub primary: Option<String>,
    /// The group's epoch.
    pub epoch: u64,
    /// Per member: its role as the lab shows it (Primary, Secondary, Stale, None) and its last
    /// reported score.
    pub adapters: Vec<(String, String, u32)>,
    /// False while the group does not exist (deleted, or the service restarted).
    pub exists: bool,
    /// Promotions the service has made in the group since it started.
    pub promotions: u64,
    /// Of those, the promotions an operator or a leaving member asked for.
    #[serde(default)]
    pub requested_promotions: u64,
}

impl StatusPoint {
    /// When it was observed.
    pub fn at(&self) -> Duration {
        Duration::from_millis(self.at_ms)
    }

    /// The members whose heartbeats arrive, with their role.
    pub fn live(&self) -> impl Iterator<Item = (&str, &str)> {
        self.adapters
            .iter()
            .filter(|(_, role, _)| role != STALE)
            .map(|(name, role, _)| (name.as_str(), role.as_str()))
    }

    /// True when `adapter` is a member whose heartbeats arrive.
    pub fn is_live(&self, adapter: &str) -> bool {
        self.live().any(|(name, _)| name == adapter)
    }

    /// A member's role label and score (None: not a member).
    pub fn member(&self, adapter: &str) -> Option<(&str, u32)> {
        self.adapters
            .iter()
            .find(|(name, _, _)| name == adapter)
            .map(|(_, role, score)| (role.as_str(), *score))
    }
}

/// One adapter in a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterSample {
    /// Primary, Secondary, Stale or None, as the service last showed it.
    pub role: String,
    /// Failover score, as the service last showed it.
    pub score: u32,
    /// Points the endpoint accepted from it so far (every epoch of it): its egress.
    pub accepted: u64,
}

/// A periodic sample of the whole pair: the data flow and the work of the services.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Sample {
    /// Milliseconds since the observation started.
    pub at_ms: u64,
    /// Per adapter: role, score, points accepted from it so far.
    pub adapters: BTreeMap<String, AdapterSample>,
    /// Distinct points the endpoint holds.
    pub received: u64,
    /// The group's epoch.
    pub epoch: u64,
    /// Fence calls the endpoint has taken for the group.
    pub fences: u64,
    /// Write calls the endpoint has taken for the group.
    pub writes: u64,
    /// Heartbeats of the group the failover service had taken since it started, as its last
    /// status said (None: it did not answer).
    pub heartbeats: Option<u64>,
}

impl Sample {
    /// When it was taken.
    pub fn at(&self) -> Duration {
        Duration::from_millis(self.at_ms)
    }

    /// Each adapter's role and score as `status` shows them, with the points the endpoint
    /// accepted from it (`accepted`, by adapter); an adapter `status` does not know is None
    /// with score 0.
    pub fn adapters_at(
        names: &[&str],
        status: Option<&StatusPoint>,
        accepted: &BTreeMap<String, u64>,
    ) -> BTreeMap<String, AdapterSample> {
        names
            .iter()
            .map(|name| {
                let (role, score) = status
                    .and_then(|s| s.member(name))
                    .map_or(("None".to_string(), 0), |(r, sc)| (r.to_string(), sc));
                let sample = AdapterSample {
                    role,
                    score,
                    accepted: accepted.get(*name).copied().unwrap_or(0),
                };
                ((*name).to_string(), sample)
            })
            .collect()
    }
}

/// One line of the story.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Milliseconds since the observation started.
    pub at_ms: u64,
    /// fault, step, role, score, stale, arbiter, endpoint.
    pub kind: String,
    /// Plain words.
    pub text: String,
}

/// Consecutive source ticks one adapter delivered first, on time or late, placed on the
/// observation's time axis by their data time; nobody delivered the ticks between two spans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoverageSpan {
    /// Data time of the first tick, in milliseconds since the observation started.
    pub from_ms: f64,
    /// Data time of the last tick, likewise.
    pub to_ms: f64,
    /// The first tick.
    pub first_seq: u64,
    /// The last tick.
    pub last_seq: u64,
    /// Who delivered them.
    pub adapter: String,
    /// They arrived a second or more after their data time (flushed after a takeover, or sent
    /// after an outage).
    pub late: bool,
}
