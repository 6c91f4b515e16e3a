//! The session over failover-lab's gRPC: one bidirectional heartbeat stream to the failover
//! service, whose answers and pushes carry role assignments.

use std::sync::Arc;

use tokio::time::Instant;

use failover_core::{ClientFailoverConfig, retry::Backoff};
use failover_proto::{net, tls, v1};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::member::{
    End, Said, apply_assignment, authorization, config_changed, endpoint_tls, heartbeat, left,
    log_score_change,
};
use crate::state::Shared;

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

pub(super) async fn session(
    shared: &Arc<Shared>,
    cfg: &ClientFailoverConfig,
    incarnation: &str,
    changed: &mut tokio::sync::watch::Receiver<u64>,
    backoff: &mut Backoff,
) -> End {
    let tls = match endpoint_tls(shared, cfg) {
        Ok(tls) => tls,
        Err(e) => return End::Failed(e),
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
