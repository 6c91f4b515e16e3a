//! Watches a running pair from outside, as a user would: the arbiter's group status stream
//! (roles, scores, staleness, epoch, the reason for the last change) and the endpoint's audit
//! (what each adapter has written), recorded into a [`Timeline`] with times relative to the
//! start of the observation.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

// The runtime's clock, which the simulator drives under `--target sim` (the real one elsewhere).
use tokio::time::Instant;
use tonic::transport::Channel;

use failover_proto::{convert, process, v1};
use serde::Serialize;

use crate::services::Addresses;
use failover_proto::convert::{role_label, status_point};

pub use failover_core::history::{AdapterSample, CoverageSpan, Event, Sample, StatusPoint};

/// A score changed, as the arbiter saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreTransition {
    /// The adapter.
    pub adapter: String,
    /// Milliseconds since the observation started.
    pub at_ms: u64,
    /// When the failover service reported it, on its wall clock (unix µs).
    pub service_us: i64,
    /// Before (None: the adapter had not joined yet).
    pub from: Option<u32>,
    /// After.
    pub to: u32,
}

/// A role changed, as the arbiter saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleTransition {
    /// The adapter.
    pub adapter: String,
    /// Milliseconds since the observation started.
    pub at_ms: u64,
    /// When the failover service reported it, on its wall clock (unix µs).
    pub service_us: i64,
    /// Before ("None" before it joined).
    pub from: String,
    /// After.
    pub to: String,
}

/// Most status points kept (a scenario sees a few hundred).
const MAX_HISTORY: usize = 100_000;

/// Everything observed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeline {
    /// Score changes.
    pub score_transitions: Vec<ScoreTransition>,
    /// Role changes.
    pub role_transitions: Vec<RoleTransition>,
    /// The story, in order.
    pub events: Vec<Event>,
    /// Periodic samples.
    pub samples: Vec<Sample>,
    /// The latest group status.
    #[serde(skip)]
    pub status: Option<v1::GroupStatus>,
    /// The latest audit.
    #[serde(skip)]
    pub audit: Option<v1::AuditReport>,
    /// Highest epoch the failover service has reported.
    pub max_epoch: u64,
    /// The watch on the failover service is open and has delivered a status (false again while
    /// it reconnects: the view is then the last one got).
    pub connected: bool,
    /// Every time the reported epoch went down (must stay empty).
    pub epoch_regressions: Vec<String>,
    /// The failover service's view at every change, in order.
    pub history: Vec<StatusPoint>,
    /// Who delivered the source's ticks, read from the endpoint at the end of a run (empty
    /// before).
    pub coverage: Vec<CoverageSpan>,
}

impl Timeline {
    /// Who the arbiter says is Primary now.
    pub fn primary(&self) -> Option<String> {
        self.status
            .as_ref()
            .map(|s| s.primary_adapter_id.clone())
            .filter(|p| !p.is_empty())
    }

    /// The role and score of an adapter now.
    pub fn session(&self, adapter: &str) -> Option<v1::SessionStatus> {
        self.status
            .as_ref()?
            .sessions
            .iter()
            .find(|s| s.adapter_id == adapter)
            .cloned()
    }

    /// The group's epoch now.
    pub fn epoch(&self) -> u64 {
        self.status.as_ref().map_or(0, |s| s.epoch)
    }
}

/// Records a running pair until dropped.
#[derive(Debug)]
pub struct Observer {
    timeline: Arc<Mutex<Timeline>>,
    start: Instant,
    start_unix_us: i64,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Observer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Observer {
    /// Starts watching the group at the arbiter and sampling the endpoint.
    pub fn start(addrs: &Addresses, group_id: &str) -> Observer {
        let tcp = failover_proto::net::Network::tcp();
        let channels = failover_proto::net::lazy_channel(
            &addrs.arbiter_url(),
            &tcp,
            addrs.arbiter_tls.clone(),
        )
        .and_then(|a| {
            failover_proto::net::lazy_channel(&Addresses::url(addrs.endpoint), &tcp, None)
                .map(|e| (a, e))
        });
        match channels {
            Ok((arbiter, endpoint)) => Observer::start_on(arbiter, endpoint, group_id),
            // Addresses always make valid URLs; an observer that sees nothing says so by
            // never connecting.
            Err(_) => Observer::start_on_nothing(),
        }
    }

    fn start_on_nothing() -> Observer {
        Observer {
            timeline: Arc::default(),
            start: Instant::now(),
            start_unix_us: process::unix_us(),
            tasks: Vec::new(),
        }
    }

    /// Starts watching the group over these connections to the failover service and the
    /// endpoint (any transport: TCP, TLS, the simulator's network).
    pub fn start_on(arbiter: Channel, endpoint: Channel, group_id: &str) -> Observer {
        let timeline = Arc::new(Mutex::new(Timeline::default()));
        let start = Instant::now();
        let watch = tokio::spawn(watch_group(
            arbiter.clone(),
            group_id.to_string(),
            timeline.clone(),
            start,
        ));
        let sample = tokio::spawn(sample_endpoint(
            endpoint,
            arbiter,
            group_id.to_string(),
            timeline.clone(),
            start,
        ));
        Observer {
            timeline,
            start,
            start_unix_us: process::unix_us(),
            tasks: vec![watch, sample],
        }
    }

    /// Milliseconds since the start.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Converts a wall-clock time (unix µs) into milliseconds since the start.
    pub fn ms_of_unix_us(&self, unix_us: i64) -> f64 {
        (unix_us - self.start_unix_us) as f64 / 1000.0
    }

    /// Puts the endpoint's coverage of the run on the timeline (data times on its axis).
    pub fn record_coverage(&self, runs: &[v1::CoverageRun]) {
        let spans = runs
            .iter()
            .map(|r| CoverageSpan {
                from_ms: self.ms_of_unix_us(r.first_ms.saturating_mul(1000)),
                to_ms: self.ms_of_unix_us(r.last_ms.saturating_mul(1000)),
                first_seq: r.first_seq,
                last_seq: r.last_seq,
                adapter: r.adapter_id.clone(),
                late: r.late,
            })
            .collect();
        self.lock().coverage = spans;
    }

    /// Adds a line to the story (faults, steps).
    pub fn mark(&self, kind: &str, text: impl Into<String>) {
        let at_ms = self.now_ms();
        self.lock().events.push(Event {
            at_ms,
            kind: kind.into(),
            text: text.into(),
        });
    }

    /// A copy of the timeline so far.
    pub fn snapshot(&self) -> Timeline {
        self.lock().clone()
    }

    /// True while the watch on the failover service is open: its view is current.
    pub fn view_is_current(&self) -> bool {
        self.lock().connected
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timeline> {
        self.timeline.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `cond` holds on the timeline, polling every 20 ms; false after `within`.
    pub async fn wait_for(
        &self,
        within: Duration,
        mut cond: impl FnMut(&Timeline) -> bool,
    ) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if cond(&self.lock()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn ms_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

async fn watch_group(
    arbiter: Channel,
    group: String,
    timeline: Arc<Mutex<Timeline>>,
    start: Instant,
) {
    let lost = timeline.clone();
    follow_group_noting_loss(
        arbiter,
        group,
        |status| {
            record_status(
                &mut timeline.lock().unwrap_or_else(PoisonError::into_inner),
                status,
                ms_since(start),
            );
        },
        // The view is the last one got until the service answers again.
        || {
            lost.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .connected = false
        },
    )
    .await;
}

/// Hands every status of a group to `on_status`, reconnecting to the arbiter (of `addrs`)
/// whenever the watch ends; runs until dropped.
pub async fn follow_group(addrs: Addresses, group: String, on_status: impl FnMut(v1::GroupStatus)) {
    let channel = failover_proto::net::lazy_channel(
        &addrs.arbiter_url(),
        &failover_proto::net::Network::tcp(),
        addrs.arbiter_tls.clone(),
    );
    match channel {
        Ok(channel) => follow_group_on(channel, group, on_status).await,
        Err(_) => std::future::pending().await,
    }
}

/// [`follow_group`] over a connection of any transport.
pub async fn follow_group_on(
    arbiter: Channel,
    group: String,
    on_status: impl FnMut(v1::GroupStatus),
) {
    follow_group_noting_loss(arbiter, group, on_status, || {}).await;
}

/// [`follow_group_on`], calling `on_lost` whenever the watch ends or cannot be opened (the
/// service is gone, restarting, or stands by).
pub async fn follow_group_noting_loss(
    arbiter: Channel,
    group: String,
    mut on_status: impl FnMut(v1::GroupStatus),
    mut on_lost: impl FnMut(),
) {
    let mut client = v1::arbiter_client::ArbiterClient::new(arbiter);
    loop {
        if let Ok(resp) = client
            .watch_group(v1::GroupRequest {
                group_id: group.clone(),
            })
            .await
        {
            let mut stream = resp.into_inner();
            while let Ok(Some(status)) = stream.message().await {
                on_status(status);
            }
        }
        on_lost();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Folds a new group status into the timeline: role, score, staleness and note changes.
pub fn record_status(t: &mut Timeline, status: v1::GroupStatus, at_ms: u64) {
    t.connected = true;
    let previous = t.status.take();
    let before = |adapter: &str| {
        previous
            .as_ref()
            .and_then(|p| p.sessions.iter().find(|s| s.adapter_id == adapter).cloned())
    };
    for s in &status.sessions {
        let old = before(&s.adapter_id);
        let old_score = old.as_ref().map(|o| o.score);
        if old_score != Some(s.score) {
            t.score_transitions.push(ScoreTransition {
                adapter: s.adapter_id.clone(),
                at_ms,
                service_us: status.observed_at_unix_us,
                from: old_score,
                to: s.score,
            });
        }
        let old_role = old.as_ref().map(|o| {
            convert::role_from_wire(o.role).map_or("None".to_string(), |r| r.as_str().into())
        });
        let new_role =
            convert::role_from_wire(s.role).map_or("None".to_string(), |r| r.as_str().into());
        if old_role.as_deref() != Some(new_role.as_str()) {
            t.role_transitions.push(RoleTransition {
                adapter: s.adapter_id.clone(),
                at_ms,
                service_us: status.observed_at_unix_us,
                from: old_role.unwrap_or_else(|| "None".into()),
                to: new_role,
            });
        }
    }
    // The story in words: the one narrator of a group's changes, the dashboard's.
    let story = failover_dashboard::narrate::story(previous.as_ref(), &status);
    // The service's own note, unless the story says it already ("adapter-b promoted, epoch 2").
    let old_note = previous.as_ref().map(|p| p.note.as_str()).unwrap_or("");
    let note_head = status.note.split(" (").next().unwrap_or_default();
    let note_told = story.iter().any(|(_, text)| text.starts_with(note_head));
    for (kind, text) in story {
        t.events.push(Event {
            at_ms,
            kind: kind.into(),
            text,
        });
    }
    // Epoch 0 is a group (re)created by the failover service (a restart, a deleted group) that
    // has not promoted anyone yet; only the epochs of promotions are fencing tokens, and those
    // must never go down.
    if status.exists && status.epoch > 0 {
        if status.epoch < t.max_epoch {
            t.epoch_regressions.push(format!(
                "at {:.2}s the epoch went from {} to {}",
                at_ms as f64 / 1000.0,
                t.max_epoch,
                status.epoch
            ));
        }
        t.max_epoch = t.max_epoch.max(status.epoch);
    }
    if !status.note.is_empty() && status.note != old_note && !note_told {
        t.events.push(Event {
            at_ms,
            kind: "arbiter".into(),
            text: status.note.clone(),
        });
    }
    let point = status_point(Some(&status), at_ms);
    let changed = t.history.last().is_none_or(|last| {
        (
            &last.primary,
            last.epoch,
            &last.adapters,
            last.exists,
            last.promotions,
        ) != (
            &point.primary,
            point.epoch,
            &point.adapters,
            point.exists,
            point.promotions,
        )
    });
    if changed && t.history.len() < MAX_HISTORY {
        t.history.push(point);
    }
    t.status = Some(status);
}

/// Samples the endpoint's record of the group, with the failover service's heartbeat count
/// read at the same time (`GetGroup`: the status watch speaks only when a status changes, and
/// heartbeats, refused ones too, go on meanwhile).
async fn sample_endpoint(
    endpoint: Channel,
    arbiter: Channel,
    group: String,
    timeline: Arc<Mutex<Timeline>>,
    start: Instant,
) {
    let mut client = v1::data_endpoint_client::DataEndpointClient::new(endpoint);
    let mut arbiter = v1::arbiter_client::ArbiterClient::new(arbiter);
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    loop {
        ticker.tick().await;
        let audit = match client
            .audit(v1::AuditRequest {
                group_id: group.clone(),
                ..Default::default()
            })
            .await
        {
            Ok(r) => r.into_inner(),
            Err(_) => continue,
        };
        let heartbeats = arbiter
            .get_group(v1::GroupRequest {
                group_id: group.clone(),
            })
            .await
            .ok()
            .map(tonic::Response::into_inner)
            .and_then(|g| g.exists.then_some(g.heartbeats));
        let mut t = timeline.lock().unwrap_or_else(PoisonError::into_inner);
        let mut adapters = BTreeMap::new();
        if let Some(status) = &t.status {
            for s in &status.sessions {
                let accepted = audit
                    .writers
                    .iter()
                    .filter(|w| w.adapter_id == s.adapter_id)
                    .map(|w| w.accepted)
                    .sum();
                adapters.insert(
                    s.adapter_id.clone(),
                    AdapterSample {
                        role: role_label(s),
                        score: s.score,
                        accepted,
                    },
                );
            }
        }
        let epoch = t.epoch();
        t.samples.push(Sample {
            at_ms: ms_since(start),
            adapters,
            received: audit.received,
            epoch,
            fences: audit.fence_calls,
            writes: audit.write_calls,
            heartbeats,
        });
        t.audit = Some(audit);
    }
}

/// Prints a group's status on every change until interrupted (`failover-lab watch`).
pub async fn watch_print(arbiter: &str, group: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let connected = async {
            let mut client =
                v1::arbiter_client::ArbiterClient::connect(format!("http://{arbiter}")).await?;
            let mut stream = client
                .watch_group(v1::GroupRequest {
                    group_id: group.to_string(),
                })
                .await?
                .into_inner();
            let mut last_note = String::new();
            while let Some(status) = stream.message().await? {
                let members: Vec<String> = status
                    .sessions
                    .iter()
                    .map(|s| {
                        format!(
                            "{} {} score {} hb {:.1}s",
                            s.adapter_id,
                            role_label(s),
                            s.score,
                            s.heartbeat_age_ms as f64 / 1000.0
                        )
                    })
                    .collect();
                let line = if status.exists {
                    format!("epoch {} | {}", status.epoch, members.join(" | "))
                } else {
                    format!("group {group} does not exist yet")
                };
                println!("{:8.2}s  {line}", start.elapsed().as_secs_f64());
                if status.note != last_note && !status.note.is_empty() {
                    println!("{:8.2}s    {}", start.elapsed().as_secs_f64(), status.note);
                    last_note = status.note.clone();
                }
            }
            anyhow::Ok(())
        };
        tokio::select! {
            r = connected => {
                if let Err(e) = r {
                    eprintln!("{:8.2}s  failover service at {arbiter}: {e}; retrying", start.elapsed().as_secs_f64());
                }
            }
            () = failover_proto::process::shutdown_signal() => return Ok(()),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
