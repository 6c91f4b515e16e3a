//! The fleet's simulated members: each a task that speaks the real protocol as our adapter
//! does (score 100, Hot, claiming Primary while told so, the newest epoch it heard), and
//! records what it was told and when.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use failover_core::retry::Backoff;
use failover_proto::{process, v1};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{group_id, member_name};

/// What one member knows and has been told.
#[derive(Debug, Default)]
pub(super) struct Member {
    /// Told Primary by its last answer.
    pub(super) primary: AtomicBool,
    /// The newest epoch heard.
    pub(super) epoch: AtomicU64,
    /// When it last sent a heartbeat (unix µs).
    pub(super) last_sent_us: AtomicI64,
    /// When it was last told Primary after having been told otherwise (unix µs).
    pub(super) promoted_us: AtomicI64,
    /// The first answer saying Primary after `Shared::restart_us` (unix µs; 0: none yet).
    pub(super) primary_after_restart_us: AtomicI64,
}

/// What every member shares.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// When the service was restarted (unix µs; 0: not yet).
    pub(super) restart_us: AtomicI64,
}

/// One member over gRPC: a heartbeat stream, a heartbeat every failoverTimeout/2, reconnecting
/// (the same incarnation: a restarted service adopts a Primary that says so) to the next of
/// `channels` (one per failover service) at once, backing off only after every one failed in a
/// row, as our adapter does.
pub(super) async fn grpc_member(
    channels: Vec<tonic::transport::Channel>,
    g: usize,
    m: usize,
    ft: Duration,
    me: Arc<Member>,
    shared: Arc<Shared>,
) {
    let (group, name) = (group_id(g), member_name(g, m));
    let mut backoff = Backoff::seeded(&name);
    let beat = |me: &Member| v1::HeartbeatRequest {
        group_id: group.clone(),
        adapter_id: name.clone(),
        incarnation: format!("{name}-1"),
        score: 100,
        mode: v1::Mode::Hot as i32,
        failover_timeout_ms: u64::try_from(ft.as_millis()).unwrap_or(0),
        known_epoch: me.epoch.load(Ordering::Relaxed),
        claims_primary: me.primary.load(Ordering::Relaxed),
        ..Default::default()
    };
    let (mut service, mut failed_in_a_row) = (0, 0);
    loop {
        let (tx, rx) = mpsc::channel(4);
        me.last_sent_us.store(process::unix_us(), Ordering::Relaxed);
        let _ = tx.send(beat(&me)).await;
        let Some(channel) = channels.get(service) else {
            return;
        };
        let mut client = v1::arbiter_client::ArbiterClient::new(channel.clone());
        if let Ok(response) = client
            .heartbeat(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
        {
            let mut answers = response.into_inner();
            let mut ticker = tokio::time::interval(ft / 2);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {
                        me.last_sent_us.store(process::unix_us(), Ordering::Relaxed);
                        if tx.send(beat(&me)).await.is_err() {
                            break;
                        }
                    }
                    a = answers.message() => match a {
                        Ok(Some(a)) => {
                            backoff.reset();
                            failed_in_a_row = 0;
                            told(&me, &shared, a.role == v1::Role::Primary as i32, a.epoch);
                        }
                        _ => break,
                    },
                }
            }
        }
        let at = move_on(
            &mut backoff,
            &mut service,
            &mut failed_in_a_row,
            channels.len(),
            ft,
        );
        tokio::time::sleep_until(at).await;
    }
}

/// Takes an answer's role and epoch, as our adapter does: an answer at an epoch older than
/// ours decides nothing (a restarted service still waiting for us to reclaim the role, or a
/// stale one), so a Primary keeps its role and its claim.
fn told(me: &Member, shared: &Shared, primary: bool, epoch: u64) {
    let now = process::unix_us();
    if epoch < me.epoch.load(Ordering::Relaxed) {
        return;
    }
    me.epoch.fetch_max(epoch, Ordering::Relaxed);
    let was = me.primary.swap(primary, Ordering::Relaxed);
    if primary && !was {
        me.promoted_us.store(now, Ordering::Relaxed);
    }
    let restart = shared.restart_us.load(Ordering::Relaxed);
    if primary && restart > 0 && now > restart {
        let _ = me.primary_after_restart_us.compare_exchange(
            0,
            now,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
}

/// One member over the vendor's REST API: the group and its session registered, then a
/// heartbeat every failoverTimeout/2 with our extensions (claims, epoch); 404 registers again
/// (a new leader knows no group registered with the one before), 429 waits as told, anything
/// else moves to the next of `bases` (one per failover service), backing off only after every
/// one failed in a row.
pub(super) async fn rest_member(
    http: reqwest::Client,
    bases: Vec<String>,
    g: usize,
    m: usize,
    ft: Duration,
    me: Arc<Member>,
    shared: Arc<Shared>,
) {
    let (group, name) = (group_id(g), member_name(g, m));
    let mut backoff = Backoff::seeded(&name);
    let timeout = failover_core::timespan::format_timespan(ft);
    let mut registered = false;
    let mut next = tokio::time::Instant::now();
    let (mut service, mut failed_in_a_row) = (0, 0);
    loop {
        tokio::time::sleep_until(next).await;
        let Some(base) = bases.get(service) else {
            return;
        };
        let cf = format!("{base}/api/v1/clientfailover");
        let session = format!("{cf}/groups/{group}/clientsessions/{name}");
        if !registered {
            let r = async {
                http.post(format!("{cf}/groups"))
                    .json(&json!({"Id": group, "FailoverTimeout": timeout}))
                    .send()
                    .await?
                    .error_for_status()?;
                http.post(format!("{cf}/groups/{group}/clientsessions"))
                    .json(&json!({"Id": name, "Name": name}))
                    .send()
                    .await?
                    .error_for_status()
            }
            .await;
            if r.is_err() {
                next = move_on(
                    &mut backoff,
                    &mut service,
                    &mut failed_in_a_row,
                    bases.len(),
                    ft,
                );
                registered = false;
                continue;
            }
            registered = true;
        }
        let body = json!({
            "FailoverScore": 100,
            "Mode": "Hot",
            "KnownEpoch": me.epoch.load(Ordering::Relaxed),
            "ClaimsPrimary": me.primary.load(Ordering::Relaxed),
        });
        me.last_sent_us.store(process::unix_us(), Ordering::Relaxed);
        next = tokio::time::Instant::now() + ft / 2;
        match http
            .post(format!("{session}/heartbeat"))
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status().as_u16() == 200 => {
                backoff.reset();
                failed_in_a_row = 0;
                let a: Value = r.json().await.unwrap_or(Value::Null);
                let epoch = a["Epoch"].as_u64().unwrap_or(0);
                told(&me, &shared, a["Role"].as_u64() == Some(1), epoch);
            }
            Ok(r) if r.status().as_u16() == 404 => {
                registered = false;
                next = tokio::time::Instant::now();
            }
            Ok(r) if r.status().as_u16() == 429 => {
                let wait = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .map_or(ft / 2, Duration::from_secs);
                next = tokio::time::Instant::now() + backoff.told(wait);
            }
            _ => {
                next = move_on(
                    &mut backoff,
                    &mut service,
                    &mut failed_in_a_row,
                    bases.len(),
                    ft,
                );
                registered = false;
            }
        }
    }
}

/// Moves to the next of `services` after a failure: at once, unless every one failed in a row
/// (then after a backoff). Answers when to try.
fn move_on(
    backoff: &mut Backoff,
    service: &mut usize,
    failed_in_a_row: &mut usize,
    services: usize,
    ft: Duration,
) -> tokio::time::Instant {
    *service = (*service + 1) % services.max(1);
    *failed_in_a_row += 1;
    if *failed_in_a_row < services {
        return tokio::time::Instant::now();
    }
    *failed_in_a_row = 0;
    tokio::time::Instant::now() + backoff.next_delay(failover_core::retry::cap_for(ft))
}
