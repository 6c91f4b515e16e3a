//! The dashboard's data: every 250 ms the group's status from the failover service and, when
//! known, the endpoint's audit, made into a [`Snapshot`]; what changed, in plain words, into
//! the event feed. Snapshots go to every open page (server-sent events); the last minute and
//! the whole feed are kept for pages that open later.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use failover_proto::v1;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::narrate;

/// How often the feed samples.
pub const TICK: Duration = Duration::from_millis(250);
/// Snapshots kept for a page that opens later (one minute).
const HISTORY: usize = 240;
/// Feed lines kept.
const EVENTS: usize = 500;

/// One adapter as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterView {
    /// Its id in the group.
    pub id: String,
    /// Primary, Secondary, or Stale.
    pub role: String,
    /// Hot, Warm or Cold.
    pub mode: String,
    /// Failover score.
    pub score: u32,
    /// Since its last heartbeat.
    pub heartbeat_age_ms: u64,
    /// Points held for egress.
    pub buffered: u64,
    /// Points the endpoint accepted from it (the endpoint's count when known).
    pub egressed: u64,
    /// Points received from the source.
    pub collected: u64,
    /// Points per second accepted from it, over the last change of its count.
    pub egress_rate: f64,
}

/// The endpoint's audit, as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointView {
    /// Points expected (every stream, first to last).
    pub expected: u64,
    /// Distinct points held.
    pub received: u64,
    /// Expected and missing.
    pub lost: u64,
    /// Received twice.
    pub duplicated: u64,
    /// Refused from stale epochs.
    pub refused_stale: u64,
    /// The fenced epoch.
    pub fenced_epoch: u64,
    /// Largest gap in data time.
    pub largest_gap_ms: i64,
    /// Who delivered the source's ticks over the last minute (by data time): runs of ticks
    /// per adapter, on time or late; nobody delivered the ticks between two runs.
    pub coverage: Vec<CoverageView>,
}

/// Consecutive source ticks one adapter delivered first, on the page's time axis.
#[derive(Debug, Clone, Serialize)]
pub struct CoverageView {
    /// Data time of the first tick, in milliseconds since the dashboard started.
    pub from_ms: i64,
    /// Data time of the last tick, likewise.
    pub to_ms: i64,
    /// The first tick.
    pub first_seq: u64,
    /// The last tick.
    pub last_seq: u64,
    /// Who delivered them.
    pub adapter: String,
    /// They arrived a second or more after their data time (flushed).
    pub late: bool,
}

/// One feed line.
#[derive(Debug, Clone, Serialize)]
pub struct FeedEvent {
    /// Milliseconds since the dashboard started; for a change at the failover service, when
    /// the service's clock says it happened (a member went stale when its last heartbeat
    /// became older than failoverTimeout, the rest when the service took the status).
    pub at_ms: u64,
    /// "change" (seen at the failover service), "action" (a button), or "error".
    pub kind: String,
    /// Plain words.
    pub text: String,
}

/// The group at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Milliseconds since the dashboard started.
    pub at_ms: u64,
    /// The failover group.
    pub group: String,
    /// The failover service answers.
    pub connected: bool,
    /// The group's epoch.
    pub epoch: u64,
    /// The Primary's id ("" when none).
    pub primary: String,
    /// failoverTimeout.
    pub failover_timeout_ms: u64,
    /// The failover service's note on the group.
    pub note: String,
    /// Members, in the order they registered.
    pub adapters: Vec<AdapterView>,
    /// The endpoint's audit (None when not known).
    pub endpoint: Option<EndpointView>,
    /// Feed lines new since the previous snapshot.
    pub events: Vec<FeedEvent>,
}

/// What a page gets when it opens.
#[derive(Debug, Clone, Serialize)]
pub struct Initial {
    /// The last minute of snapshots, oldest first (their `events` emptied).
    pub history: Vec<Snapshot>,
    /// The whole feed, oldest first.
    pub events: Vec<FeedEvent>,
    /// Buttons work (a demo), or the page only watches.
    pub actions: bool,
}

#[derive(Debug, Default)]
struct Kept {
    history: VecDeque<Snapshot>,
    events: VecDeque<FeedEvent>,
    pending: Vec<FeedEvent>,
}

/// The feed of one group, shared by the poller and the pages.
#[derive(Debug, Clone)]
pub struct Feed {
    kept: Arc<Mutex<Kept>>,
    ticks: broadcast::Sender<Arc<String>>,
    start: Instant,
    /// The wall clock when `start` was taken (unix ms), to place the processes' timestamps.
    start_unix_ms: i64,
}

impl Default for Feed {
    fn default() -> Self {
        Self::new()
    }
}

impl Feed {
    /// An empty feed.
    pub fn new() -> Self {
        Feed {
            kept: Arc::default(),
            ticks: broadcast::channel(64).0,
            start: Instant::now(),
            start_unix_ms: failover_proto::process::unix_ms(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Adds a line the failover service's clock dates (unix ms), at that moment.
    fn say_at(&self, kind: &str, text: String, unix_ms: i64) {
        let at_ms = u64::try_from(unix_ms - self.start_unix_ms).unwrap_or(0);
        self.lock().pending.push(FeedEvent {
            at_ms,
            kind: kind.into(),
            text,
        });
    }

    /// The coverage runs of the last minute (and a little before), on the page's time axis.
    fn coverage_view(&self, runs: &[v1::CoverageRun]) -> Vec<CoverageView> {
        let since = i64::try_from(self.now_ms()).unwrap_or(i64::MAX) - 70_000;
        runs.iter()
            .map(|r| CoverageView {
                from_ms: r.first_ms - self.start_unix_ms,
                to_ms: r.last_ms - self.start_unix_ms,
                first_seq: r.first_seq,
                last_seq: r.last_seq,
                adapter: r.adapter_id.clone(),
                late: r.late,
            })
            .filter(|c| c.to_ms >= since)
            .collect()
    }

    /// Adds a line to the feed; it goes out with the next snapshot.
    pub fn say(&self, kind: &str, text: impl Into<String>) {
        let e = FeedEvent {
            at_ms: self.now_ms(),
            kind: kind.into(),
            text: text.into(),
        };
        self.lock().pending.push(e);
    }

    /// What a page opening now gets.
    pub fn initial(&self, actions: bool) -> Initial {
        let kept = self.lock();
        Initial {
            history: kept.history.iter().cloned().collect(),
            events: kept.events.iter().chain(&kept.pending).cloned().collect(),
            actions,
        }
    }

    /// Every later snapshot, as JSON.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<String>> {
        self.ticks.subscribe()
    }

    fn publish(&self, mut snap: Snapshot) {
        let json = {
            let mut kept = self.lock();
            snap.events = std::mem::take(&mut kept.pending);
            kept.events.extend(snap.events.iter().cloned());
            while kept.events.len() > EVENTS {
                kept.events.pop_front();
            }
            let json = serde_json::to_string(&snap).unwrap_or_default();
            snap.events.clear();
            kept.history.push_back(snap);
            while kept.history.len() > HISTORY {
                kept.history.pop_front();
            }
            json
        };
        // No page open is fine.
        let _ = self.ticks.send(Arc::new(json));
    }

    /// Samples the group every [`TICK`] until dropped: the status from the failover service at
    /// `arbiter`, the audit from the endpoint at `endpoint` if given.
    pub async fn run(self, arbiter: String, endpoint: Option<String>, group: String) {
        let mut previous: Option<v1::GroupStatus> = None;
        let mut track = EgressTrack::new();
        let mut arbiter_client = None;
        let mut endpoint_client = None;
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if arbiter_client.is_none() {
                arbiter_client = v1::arbiter_client::ArbiterClient::connect(arbiter.clone())
                    .await
                    .ok();
            }
            let status = match arbiter_client.as_mut() {
                Some(c) => match c
                    .get_group(v1::GroupRequest {
                        group_id: group.clone(),
                    })
                    .await
                {
                    Ok(r) => Some(r.into_inner()),
                    Err(_) => {
                        arbiter_client = None;
                        None
                    }
                },
                None => None,
            };
            if let (Some(url), None) = (&endpoint, &endpoint_client) {
                endpoint_client =
                    v1::data_endpoint_client::DataEndpointClient::connect(url.clone())
                        .await
                        .ok();
            }
            let audit = match endpoint_client.as_mut() {
                Some(c) => match c
                    .audit(v1::AuditRequest {
                        group_id: group.clone(),
                        include_coverage: true,
                        ..Default::default()
                    })
                    .await
                {
                    Ok(r) => Some(r.into_inner()),
                    Err(_) => {
                        endpoint_client = None;
                        None
                    }
                },
                None => None,
            };
            let connected = status.is_some();
            let status = status.filter(|s| s.exists);
            if let Some(s) = &status {
                // In causal order, each at the time the failover service gives it.
                for (at, line) in narrate::timed_changes(previous.as_ref(), s) {
                    self.say_at("change", line, at);
                }
            }
            let adapters = status
                .as_ref()
                .map(|s| adapter_views(s, audit.as_ref(), &mut track))
                .unwrap_or_default();
            let snap = Snapshot {
                at_ms: self.now_ms(),
                group: group.clone(),
                connected,
                epoch: status.as_ref().map_or(0, |s| s.epoch),
                primary: status
                    .as_ref()
                    .map(|s| s.primary_adapter_id.clone())
                    .unwrap_or_default(),
                failover_timeout_ms: status.as_ref().map_or(0, |s| s.failover_timeout_ms),
                note: status.as_ref().map(|s| s.note.clone()).unwrap_or_default(),
                adapters,
                endpoint: audit.map(|a| EndpointView {
                    expected: a.expected,
                    received: a.received,
                    lost: a.lost,
                    duplicated: a.duplicated,
                    refused_stale: a.refused_stale,
                    fenced_epoch: a.fenced_epoch,
                    largest_gap_ms: a.largest_gap_ms,
                    coverage: self.coverage_view(&a.coverage),
                }),
                events: Vec::new(),
            };
            if status.is_some() {
                previous = status;
            }
            self.publish(snap);
        }
    }
}

/// Per adapter: its last egressed count, when that count last changed, and the rate then.
type EgressTrack = Vec<(String, u64, Instant, f64)>;

/// Points accepted from `adapter`: the endpoint's count when the audit is known (live), else
/// what the adapter last reported in a heartbeat.
fn egressed_of(m: &v1::SessionStatus, audit: Option<&v1::AuditReport>) -> u64 {
    match audit {
        Some(a) => a
            .writers
            .iter()
            .filter(|w| w.adapter_id == m.adapter_id)
            .map(|w| w.accepted)
            .sum(),
        None => m.stats.as_ref().map_or(0, |s| s.egressed_points),
    }
}

fn adapter_views(
    s: &v1::GroupStatus,
    audit: Option<&v1::AuditReport>,
    track: &mut EgressTrack,
) -> Vec<AdapterView> {
    let now = Instant::now();
    // A count that has not moved for this long means nothing is flowing.
    let idle = Duration::from_millis(s.failover_timeout_ms.max(1000));
    let mut members = s.sessions.clone();
    members.sort_by_key(|m| m.registered_order);
    let mut next: EgressTrack = Vec::new();
    let views = members
        .iter()
        .map(|m| {
            let stats = m.stats.unwrap_or_default();
            let egressed = egressed_of(m, audit);
            let (rate, since) = match track.iter().find(|t| t.0 == m.adapter_id) {
                Some((_, before, at, _)) if egressed > *before => {
                    let dt = now.duration_since(*at).as_secs_f64().max(1e-3);
                    ((egressed - before) as f64 / dt, now)
                }
                Some((_, _, at, rate)) if now.duration_since(*at) < idle => (*rate, *at),
                Some((_, _, at, _)) => (0.0, *at),
                None => (0.0, now),
            };
            next.push((m.adapter_id.clone(), egressed, since, rate));
            AdapterView {
                id: m.adapter_id.clone(),
                role: if m.stale {
                    "Stale".into()
                } else if m.role == v1::Role::Primary as i32 {
                    "Primary".into()
                } else {
                    "Secondary".into()
                },
                mode: match v1::Mode::try_from(m.mode) {
                    Ok(v1::Mode::Hot) => "Hot",
                    Ok(v1::Mode::Warm) => "Warm",
                    Ok(v1::Mode::Cold) => "Cold",
                    _ => "?",
                }
                .into(),
                score: m.score,
                heartbeat_age_ms: m.heartbeat_age_ms,
                buffered: stats.buffered_points,
                egressed,
                collected: stats.collected_points,
                egress_rate: rate,
            }
        })
        .collect();
    *track = next;
    views
}
