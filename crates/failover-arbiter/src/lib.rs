//! failover-arbiter: the failover service that decides who is Primary.
//!
//! A thin shell around [`failover_core::group::Group`]: it feeds the group heartbeats from
//! each adapter's `Heartbeat` stream and the passing of time, and acts on what changes:
//!
//! - [`service`]: the `failover.v1.Arbiter` gRPC service. Every heartbeat is answered; when a
//!   role or the epoch changes, every member of the group is told at once (pushed, not left for
//!   its next heartbeat), and observers of `WatchGroup` get the new status.
//! - [`clock`]: wakes at the exact moment a session can go stale or an override expire, so a
//!   takeover follows failoverTimeout by milliseconds.
//! - [`admin`]: operator actions (delete a session or an empty group, force a role), shared
//!   by the REST admin and the simulator.
//! - [`auth`]: basic credentials or bearer tokens on heartbeat streams, and the OAuth2
//!   client-credentials token endpoint (served on the gRPC port, which also takes HTTP/1.1).
//! - [`demo_cert`]: a self-signed TLS identity for demos (`--tls-self-signed`).
//! - [`rest`]: the REST admin of the real service: list groups and sessions, delete a session
//!   or an empty group, operator role override with optional expiration.
//!
//! [`run`] serves both on given listeners until the shutdown future resolves.

pub mod admin;
pub mod auth;
pub mod clock;
pub mod demo_cert;
pub mod rest;
pub mod service;
mod state;

use std::future::Future;

pub use state::Arbiter;

/// Serves gRPC on `grpc` and the REST admin on `rest` until `shutdown` resolves.
pub async fn run(
    grpc: tokio::net::TcpListener,
    rest: tokio::net::TcpListener,
    auth: auth::AuthConfig,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if let Some((username, _)) = &auth.basic {
        tracing::info!(
            username,
            "heartbeat streams may authenticate with basic credentials"
        );
    }
    if let Some(client) = &auth.oauth {
        tracing::info!(
            client_id = client.client_id,
            token_lifetime_s = client.token_lifetime.as_secs_f64(),
            "heartbeat streams may authenticate with bearer tokens from {}",
            auth::TOKEN_PATH
        );
    }
    let arbiter = Arbiter::with_auth(auth::Authenticator::new(&auth));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut stop_rest = stop_rx.clone();
    let clock = tokio::spawn(clock::run(arbiter.clone()));
    let rest_app = rest::router(arbiter.clone());
    tracing::info!(grpc = ?grpc.local_addr().ok(), rest = ?rest.local_addr().ok(), "failover arbiter serving");
    let rest_task = tokio::spawn(async move {
        axum::serve(rest, rest_app)
            .with_graceful_shutdown(async move {
                let _ = stop_rest.wait_for(|s| *s).await;
            })
            .await
    });
    let mut stop_grpc = stop_rx;
    if tls.is_some() {
        tracing::info!("gRPC and the token endpoint over TLS");
    }
    let arbiter_handle = arbiter.clone();
    let grpc_task = service::serve(arbiter, grpc, tls, async move {
        let _ = stop_grpc.wait_for(|s| *s).await;
    });
    let stopping = arbiter_handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        // Decide nothing more before the servers drain: a graceful restart must not fail over.
        stopping.stop_deciding();
        let _ = stop_tx.send(true);
    });
    let grpc_result = grpc_task.await;
    let rest_result = rest_task.await;
    clock.abort();
    grpc_result?;
    rest_result??;
    Ok(())
}
