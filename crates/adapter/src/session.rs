//! The adapter's failover session: one heartbeat stream to the failover service.
//!
//! Heartbeats go every failoverTimeout/2, and at once when the score, mode, claimed role or
//! known epoch changes. Every assignment the service sends (answers and pushes) sets the role
//! and epoch.
//!
//! The failover service is no single point of failure for data (ours; Patroni calls it
//! failsafe mode): a Primary that loses the service keeps its role and egresses until the
//! service demotes it or the endpoint refuses its write (another member fenced it out). A
//! Secondary never promotes itself. The endpoint's fence keeps that safe: a new Primary fences
//! at a newer epoch before it writes, and from then on every write of the old one is refused.
//!
//! Leaving: when the document is deleted or replaced, or the adapter stops gracefully, the
//! session says so in a last heartbeat (`leaving`), so its role passes on at once.
//!
//! Retries back off with jitter, capped at a quarter of failoverTimeout; a repeated error is
//! logged once per 10 s with a count.
//!
//! The session's incarnation (name, process id, process start time, configuration version)
//! changes only with the configuration or a restart, so a reconnect after a blip continues the
//! same session, while a restarted adapter or a new group rejoins as a new member.

use std::sync::Arc;

use tokio::time::Instant;

use failover_core::{ClientFailoverConfig, Mode, Role};
use failover_proto::{
    convert, net, process,
    tls::{self, ClientTls},
    v1,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use failover_core::retry::{Backoff, RepeatLog};

use crate::{
    FailoverProtocol,
    state::{AdapterState, Shared},
    token,
};

/// How often a repeated error is logged.
pub const REPEAT_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the session for as long as the adapter runs.
pub async fn run(shared: Arc<Shared>) {
    let mut changed = shared.changed.subscribe();
    let mut config_version = 0u64;
    // When this process started: part of the incarnation, since a process id alone repeats
    // across restarts (an adapter is PID 1 in every start of its container; every simulated
    // host shares one). Found by the simulator (`failover-lab sim --seed 21 --modes Hot`): a
    // restarted Primary kept its session and role with an empty buffer, and the points
    // produced while it was down were lost although the Hot Secondary held them.
    let started_us = process::unix_us();
    // The configuration whose unchecked certificate was warned about.
    let mut warned_version = None;
    let mut backoff = Backoff::seeded(&format!("{}/{started_us}/session", shared.settings.name))
        .broken(shared.settings.broken);
    let mut errors = RepeatLog::new(REPEAT_LOG_INTERVAL);
    let origin = Instant::now();
    loop {
        if shared.lock().leaving {
            return;
        }
        let cfg = shared.lock().failover.clone();
        let Some(cfg) = cfg else {
            if changed.changed().await.is_err() {
                return;
            }
            continue;
        };
        let incarnation = format!(
            "{}-{}-{started_us}-{config_version}",
            shared.settings.name,
            std::process::id(),
        );
        if warned_version != Some(config_version)
            && cfg.endpoint.starts_with("https:")
            && !cfg.validate_endpoint_certificate
        {
            tracing::warn!(
                endpoint = cfg.endpoint,
                "{}",
                failover_core::config::UNCHECKED_CERTIFICATE_WARNING
            );
            warned_version = Some(config_version);
        }
        let end = match crate::cfs_client::protocol_of(shared.settings.failover_protocol, &cfg) {
            FailoverProtocol::Grpc => {
                session(&shared, &cfg, &incarnation, &mut changed, &mut backoff).await
            }
            _ => {
                crate::cfs_client::session(&shared, &cfg, &incarnation, &mut changed, &mut backoff)
                    .await
            }
        };
        match end {
            End::ConfigChanged => {
                config_version += 1;
                backoff.reset();
                errors.clear();
            }
            End::Left => return,
            // Reconnect at once with a fresh token: the same incarnation, so the same member.
            End::RenewToken => {}
            End::Failed(error) => {
                let primary = shared.update(|st| {
                    st.failover_error = Some(error.clone());
                    crate::state::broken_lease(st);
                    st.role == Some(Role::Primary)
                });
                if let Some(line) = errors.record(&error, origin.elapsed()) {
                    if primary {
                        tracing::warn!(
                            endpoint = cfg.endpoint,
                            "failover service: {line}; keeping the Primary role (failsafe) until the service demotes us or the endpoint refuses our write"
                        );
                    } else {
                        tracing::warn!(endpoint = cfg.endpoint, "failover service: {line}");
                    }
                }
                let delay = backoff.next_delay(failover_core::retry::cap_for(cfg.failover_timeout));
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    r = wait_config_change(&shared, &cfg, &mut changed) => {
                        if r { config_version += 1; backoff.reset(); errors.clear(); }
                    }
                }
            }
        }
    }
}

/// Why a session ended.
pub(crate) enum End {
    /// The document changed (or was deleted): rejoin as a new incarnation.
    ConfigChanged,
    /// The bearer token is due for renewal: reconnect as the same member.
    RenewToken,
    /// The adapter left its group (graceful stop).
    Left,
    /// The service could not be reached or refused; retried with backoff.
    Failed(String),
}

/// Resolves true when the configuration changed (anything but the mode), false if the
/// change channel closed.
pub(crate) async fn wait_config_change(
    shared: &Shared,
    cfg: &ClientFailoverConfig,
    changed: &mut tokio::sync::watch::Receiver<u64>,
) -> bool {
    loop {
        if changed.changed().await.is_err() {
            return false;
        }
        if config_changed(shared, cfg) {
            return true;
        }
    }
}

pub(crate) fn config_changed(shared: &Shared, cfg: &ClientFailoverConfig) -> bool {
    let st = shared.lock();
    if st.leaving {
        return true;
    }
    match &st.failover {
        Some(now) => {
            let mut same_mode = now.clone();
            same_mode.mode = cfg.mode;
            same_mode != *cfg
        }
        None => true,
    }
}

/// Sends one heartbeat on the session's stream, counting it.
async fn send_heartbeat(
    shared: &Shared,
    tx: &mpsc::Sender<v1::HeartbeatRequest>,
    hb: v1::HeartbeatRequest,
) -> Result<(), ()> {
    tx.send(hb).await.map_err(|_| ())?;
    shared.lock().heartbeats_sent += 1;
    Ok(())
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at + std::time::Duration::from_millis(1)).await,
        None => std::future::pending().await,
    }
}

/// What the heartbeat says, for change detection.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Said {
    pub(crate) score: u32,
    pub(crate) mode: Mode,
    pub(crate) claims_primary: bool,
    pub(crate) epoch: u64,
    pub(crate) known_epoch: u64,
    pub(crate) holds_data_since_ms: Option<i64>,
    pub(crate) fenced_out_epoch: u64,
}

impl Said {
    /// True when a heartbeat must go at once rather than at the next tick: the score, mode,
    /// claimed role or known epoch changed since `before`.
    pub(crate) fn calls_for_heartbeat(&self, before: &Said) -> bool {
        self.score != before.score
            || self.mode != before.mode
            || self.claims_primary != before.claims_primary
            || self.known_epoch != before.known_epoch
            || self.holds_data_since_ms.is_some() != before.holds_data_since_ms.is_some()
            || self.fenced_out_epoch != before.fenced_out_epoch
    }
}

pub(crate) fn heartbeat(
    shared: &Shared,
    st: &AdapterState,
    cfg: &ClientFailoverConfig,
    incarnation: &str,
) -> (v1::HeartbeatRequest, Said) {
    let mode = st.mode().unwrap_or(cfg.mode);
    let score = st.score();
    let claims_primary = st.role == Some(Role::Primary);
    let watermark = if claims_primary {
        convert::watermark_to_wire(&st.egress_watermark.to_pairs())
    } else {
        Vec::new()
    };
    (
        v1::HeartbeatRequest {
            group_id: cfg.failover_group_id.clone(),
            adapter_id: shared.settings.name.clone(),
            incarnation: incarnation.to_string(),
            score,
            mode: convert::mode_to_wire(mode) as i32,
            failover_timeout_ms: u64::try_from(cfg.failover_timeout.as_millis())
                .unwrap_or(u64::MAX),
            known_epoch: st.known_epoch,
            claims_primary,
            egress_watermark: watermark,
            holds_data_since_ms: st.collecting_since_ms.unwrap_or(0),
            fenced_out_epoch: st.fenced_out_through,
            name: cfg.name.clone().unwrap_or_default(),
            description: cfg.description.clone().unwrap_or_default(),
            stats: Some(v1::AdapterStats {
                buffered_points: st.buffer.len() as u64,
                egressed_points: st.egressed,
                collected_points: st.collected,
                fenced_epoch: st.last_fence.map_or(0, |f| f.0),
                flushed_at_fence: st.last_fence.map_or(0, |f| f.1),
            }),
            leaving: false,
        },
        Said {
            score,
            mode,
            claims_primary,
            epoch: st.epoch,
            known_epoch: st.known_epoch,
            holds_data_since_ms: st.collecting_since_ms,
            fenced_out_epoch: st.fenced_out_through,
        },
    )
}

async fn session(
    shared: &Arc<Shared>,
    cfg: &ClientFailoverConfig,
    incarnation: &str,
    changed: &mut tokio::sync::watch::Receiver<u64>,
    backoff: &mut Backoff,
) -> End {
    let tls = if cfg.endpoint.starts_with("https:") {
        match ClientTls::new(
            cfg.validate_endpoint_certificate,
            &shared.settings.trusted_ca,
        ) {
            Ok(t) => Some(t),
            Err(e) => return End::Failed(format!("TLS to {}: {e}", cfg.endpoint)),
        }
    } else {
        None
    };
    let channel = match net::failover_service_endpoint(&cfg.endpoint, cfg.failover_timeout) {
        Ok(e) => e,
        Err(e) => return End::Failed(format!("endpoint {}: {e}", cfg.endpoint)),
    };
    let channel = match channel
        .connect_with_connector(net::Connector::new(
            shared.settings.network.clone(),
            tls.clone(),
        ))
        .await
    {
        Ok(c) => c,
        Err(e) => {
            return End::Failed(format!(
                "cannot reach the failover service at {}: {}",
                cfg.endpoint,
                tls::explain(&e)
            ));
        }
    };
    let mut client = v1::arbiter_client::ArbiterClient::new(channel);
    let (tx, rx) = mpsc::channel::<v1::HeartbeatRequest>(16);
    let (first, said) = heartbeat(shared, &shared.lock(), cfg, incarnation);
    if send_heartbeat(shared, &tx, first).await.is_err() {
        return End::Failed("heartbeat stream closed".into());
    }
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    let (authorization, token_renewal) = match authorization(shared, cfg, tls.as_ref()).await {
        Ok(a) => a,
        Err(e) => return End::Failed(e),
    };
    if let Some(header) = authorization {
        match tonic::metadata::MetadataValue::try_from(header) {
            Ok(value) => {
                request
                    .metadata_mut()
                    .insert(failover_proto::auth::HEADER, value);
            }
            Err(_) => {
                return End::Failed(
                    "the credentials hold characters an HTTP header cannot carry".into(),
                );
            }
        }
    }
    let mut inbound = match client.heartbeat(request).await {
        Ok(r) => r.into_inner(),
        Err(status) if status.code() == tonic::Code::Unauthenticated => {
            return End::Failed(format!(
                "the failover service refused our credentials: {}",
                status.message()
            ));
        }
        Err(status) => return End::Failed(stream_error(cfg, &status)),
    };
    let end = heartbeats(
        shared,
        cfg,
        incarnation,
        changed,
        backoff,
        &tx,
        &mut inbound,
        said,
        token_renewal,
    )
    .await;
    if matches!(end, End::ConfigChanged | End::Left) {
        leave(shared, cfg, incarnation, &tx, &mut inbound).await;
    }
    end
}

/// Words for a failed heartbeat stream: the service's own refusal as it said it, or, when the
/// connection itself broke (a cut link, a restart), which service and why ("http2 error" alone
/// tells an operator nothing).
fn stream_error(cfg: &ClientFailoverConfig, status: &tonic::Status) -> String {
    use std::error::Error;
    use tonic::Code;
    let broke = match status.code() {
        Code::Unknown | Code::Internal | Code::Cancelled | Code::DeadlineExceeded => true,
        // The service's own "stopping" refusal says so itself.
        Code::Unavailable => !status.message().contains("failover service"),
        _ => false,
    };
    if !broke {
        return status.message().to_string();
    }
    // The message and its causes (a Status's Display carries its metadata too).
    format!(
        "lost the heartbeat stream to the failover service at {}: {} (reconnecting)",
        cfg.endpoint,
        tls::with_causes(status.message().to_string(), status.source())
    )
}

/// The `authorization` header the document asks for (bearer first: clientId and clientSecret
/// are the document's choice of a token; else basic with username and password), and when a
/// bearer token is due for renewal.
pub(crate) async fn authorization(
    shared: &Shared,
    cfg: &ClientFailoverConfig,
    tls: Option<&ClientTls>,
) -> Result<(Option<String>, Option<Instant>), String> {
    match (
        &cfg.client_id,
        &cfg.client_secret,
        &cfg.username,
        &cfg.password,
    ) {
        (Some(id), Some(secret), _, _) => {
            let url = token::token_url(cfg);
            let http = tls
                .map_or_else(reqwest::Client::builder, |t| {
                    reqwest::Client::builder().use_preconfigured_tls(t.http1_config())
                })
                .build()
                .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
            let t = token::fetch(&http, &url, id, secret.expose()).await?;
            shared.update(|st| st.tokens_fetched += 1);
            Ok((Some(t.header), Some(t.renew_at)))
        }
        (_, _, Some(username), Some(password)) => Ok((
            Some(failover_proto::auth::basic_header(
                username,
                password.expose(),
            )),
            None,
        )),
        _ => Ok((None, None)),
    }
}

/// Says goodbye on the session's stream: a last heartbeat with `leaving`, and its answer
/// awaited for at most a heartbeat interval (capped at 2 s), so the role passes on at once.
async fn leave(
    shared: &Shared,
    cfg: &ClientFailoverConfig,
    incarnation: &str,
    tx: &mpsc::Sender<v1::HeartbeatRequest>,
    inbound: &mut tonic::Streaming<v1::RoleAssignment>,
) {
    let (mut hb, _) = heartbeat(shared, &shared.lock(), cfg, incarnation);
    hb.leaving = true;
    if send_heartbeat(shared, tx, hb).await.is_err() {
        return;
    }
    let wait = cfg
        .heartbeat_interval()
        .min(std::time::Duration::from_secs(2));
    let answered = tokio::time::timeout(wait, async {
        loop {
            match inbound.message().await {
                Ok(Some(a)) if a.role == v1::Role::Unspecified as i32 => return true,
                Ok(Some(_)) => continue,
                _ => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    left(shared, cfg, answered);
}

/// The adapter has left its group (over gRPC or REST): no role, and the log says whether the
/// service answered.
pub(crate) fn left(shared: &Shared, cfg: &ClientFailoverConfig, answered: bool) {
    shared.update(|st| {
        if st.role.is_some() {
            st.role_changes += 1;
        }
        st.role = None;
        st.fenced_at = None;
        st.role_reason = format!("left group {}", cfg.failover_group_id);
    });
    tracing::info!(
        event = "left",
        group = cfg.failover_group_id,
        answered,
        "left failover group {}{}",
        cfg.failover_group_id,
        if answered {
            ""
        } else {
            " (no answer: the service will find the session stale)"
        }
    );
}

/// The heartbeat loop of an open session, until it ends.
#[allow(clippy::too_many_arguments)]
async fn heartbeats(
    shared: &Arc<Shared>,
    cfg: &ClientFailoverConfig,
    incarnation: &str,
    changed: &mut tokio::sync::watch::Receiver<u64>,
    backoff: &mut Backoff,
    tx: &mpsc::Sender<v1::HeartbeatRequest>,
    inbound: &mut tonic::Streaming<v1::RoleAssignment>,
    mut said: Said,
    token_renewal: Option<Instant>,
) -> End {
    let mut ticker = tokio::time::interval(cfg.heartbeat_interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let (hb, now_said) = heartbeat(shared, &shared.lock(), cfg, incarnation);
                log_score_change(shared, &said, &now_said);
                said = now_said;
                if send_heartbeat(shared, tx, hb).await.is_err() {
                    return End::Failed("heartbeat stream closed".into());
                }
            }
            () = sleep_until_opt(token_renewal) => return End::RenewToken,
            r = changed.changed() => {
                if r.is_err() {
                    return End::Failed("adapter shutting down".into());
                }
                if shared.lock().leaving {
                    return End::Left;
                }
                if config_changed(shared, cfg) {
                    return End::ConfigChanged;
                }
                let (hb, now_said) = heartbeat(shared, &shared.lock(), cfg, incarnation);
                if now_said.calls_for_heartbeat(&said) {
                    log_score_change(shared, &said, &now_said);
                    said = now_said;
                    if send_heartbeat(shared, tx, hb).await.is_err() {
                        return End::Failed("heartbeat stream closed".into());
                    }
                }
            }
            msg = inbound.message() => match msg {
                Ok(Some(a)) => {
                    backoff.reset();
                    apply_assignment(shared, a);
                }
                Ok(None) => return End::Failed(format!(
                    "the failover service at {} ended the heartbeat stream (reconnecting)",
                    cfg.endpoint
                )),
                Err(status) => return End::Failed(stream_error(cfg, &status)),
            }
        }
    }
}

pub(crate) fn log_score_change(shared: &Shared, before: &Said, after: &Said) {
    if before.score != after.score {
        let st = shared.lock();
        tracing::info!(
            event = "score",
            from = before.score,
            to = after.score,
            role = st.role.map_or("None", Role::as_str),
            "score {} -> {}: {}",
            before.score,
            after.score,
            score_reason(&st)
        );
    }
}

/// Plain words for the current score.
pub fn score_reason(st: &AdapterState) -> String {
    use failover_core::modes::SourceHealth;
    match (st.mode(), st.role, &st.source_health, st.connection_test) {
        (Some(Mode::Cold), r, _, _) if r != Some(Role::Primary) && st.own_collection_failed() => {
            "Cold standby whose own collection failed (score 0 until a connection test passes)"
                .into()
        }
        (Some(Mode::Cold), r, _, _) if r != Some(Role::Primary) => "Cold standby (score 1)".into(),
        (Some(Mode::Warm), r, _, t) if r != Some(Role::Primary) => match t {
            Some(false) => "Warm standby: source connection test failed".into(),
            _ => "Warm standby: source connection test passed".into(),
        },
        (_, _, SourceHealth::Unreachable, _) => match &st.source_error {
            Some(e) => format!("source unreachable: collecting nothing ({e})"),
            None => "source unreachable: collecting nothing".into(),
        },
        (_, _, SourceHealth::Connected { down_components }, _) if !down_components.is_empty() => {
            format!("components {down_components:?} down")
        }
        (_, _, SourceHealth::Connecting, _) => "connecting to the source".into(),
        _ => "every source component collecting".into(),
    }
}

pub(crate) fn apply_assignment(shared: &Shared, a: v1::RoleAssignment) {
    let assigned = convert::role_from_wire(a.role);
    shared.update(|st| {
        st.last_assignment_at = Some(Instant::now());
        st.failover_error = None;
        st.session_id = a.session_id.clone();
        if st.role == Some(Role::Primary) && assigned != Some(Role::Primary) && a.epoch < st.epoch {
            // A service that knows only an older epoch than ours (it restarted, or the group
            // was recreated, and it is still waiting for us to reclaim the role) has decided
            // nothing about us: keep the role (failsafe) and keep claiming it.
            st.role_reason = a.reason.clone();
            return;
        }
        st.known_epoch = st.known_epoch.max(a.epoch);
        // An assignment older than an epoch we have seen is stale; one at or below the epoch
        // another writer holds at the endpoint cannot be fenced: wait for the promotion above
        // it (our heartbeat has told the service).
        let role = match assigned {
            Some(Role::Primary) if a.epoch < st.known_epoch || a.epoch <= st.fenced_out_through => {
                None
            }
            r => r,
        };
        if role != st.role || a.epoch != st.epoch {
            tracing::info!(
                event = "role",
                from = st.role.map_or("None", Role::as_str),
                to = role.map_or("None", Role::as_str),
                epoch = a.epoch,
                primary = a.primary_adapter_id,
                "role {} -> {} at epoch {}: {}",
                st.role.map_or("None", Role::as_str),
                role.map_or("None", Role::as_str),
                a.epoch,
                a.reason
            );
            if st.role == Some(Role::Primary) && role != Some(Role::Primary) {
                st.abandon_recoveries();
                if st.mode() != Some(Mode::Hot) {
                    // A Warm or Cold standby holds no data.
                    st.drop_buffer();
                }
            }
            st.fenced_at = None;
            st.role_since_unix_us = Some(process::unix_us());
            if role != st.role {
                st.role_changes += 1;
                st.promoted_at = (role == Some(Role::Primary)).then(Instant::now);
            }
        }
        st.role = role;
        st.epoch = a.epoch;
        st.primary_adapter_id = a.primary_adapter_id.clone();
        st.role_reason = a.reason.clone();
        if role == Some(Role::Secondary) && st.mode() == Some(Mode::Hot) {
            // Keep only what the Primary has not yet egressed.
            let wm = convert::watermark_from_wire(&a.primary_watermark);
            st.buffer.trim(&wm);
        }
    });
}
