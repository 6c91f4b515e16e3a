//! failover-arbiter: the failover service that decides who is Primary.
//!
//! A thin shell around [`failover_core::group::Group`]: it feeds the group heartbeats from
//! each adapter's `Heartbeat` stream and the passing of time, and acts on what changes:
//!
//! - [`service`]: the `failover.v1.Arbiter` gRPC service. Every heartbeat is answered; when a
//!   role or the epoch changes, every member of the group is told at once (pushed, not left for
//!   its next heartbeat), and observers of `WatchGroup` get the new status.
//! - [`etcd_store`]: with `--store etcd://...`, several services share a fleet through etcd:
//!   one leads (a lease), the others stand by naming it, and epochs are reserved there by
//!   compare-and-swap, so none goes back across leaders and restarts.
//! - [`clock`]: wakes at the exact moment a session can go stale or an override expire, so a
//!   takeover follows failoverTimeout by milliseconds.
//! - [`admin`]: operator actions (delete a session or an empty group, force a role), shared
//!   by the REST admin and the simulator.
//! - [`auth`]: basic credentials or bearer tokens on heartbeat streams, and the OAuth2
//!   client-credentials token endpoint (served on the gRPC port, which also takes HTTP/1.1).
//! - [`demo_cert`]: a self-signed TLS identity for demos (`--tls-self-signed`).
//! - [`rest`]: failover-lab's own REST admin and `/metrics`: list groups and sessions, delete
//!   a session or an empty group, operator role override with optional expiration.
//! - [`cfs_api`]: the vendor's Client Failover Service REST API (groups, client sessions,
//!   heartbeats answered with the role, status, overrides, configuration), with basic
//!   authentication in the vendor's two roles, so the vendor's adapters can use this service;
//!   [`pull`] holds what it does to the groups (roles pulled in heartbeat answers,
//!   PendingPrimary).
//!
//! [`run`] serves them on given listeners until the shutdown future resolves.

pub mod admin;
pub mod auth;
pub mod cfs_api;
pub mod clock;
pub mod demo_cert;
pub mod etcd_store;
pub mod pull;
pub mod rest;
pub mod service;
mod state;

use std::future::Future;

pub use state::{Arbiter, OverrideWrite, Standing, StoredOverride};

/// Where and how to serve the vendor's REST API.
#[derive(Debug)]
pub struct CfsServer {
    /// Its port.
    pub listener: tokio::net::TcpListener,
    /// Its TLS identity (None: plain HTTP).
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Who may call it.
    pub users: cfs_api::users::Users,
    /// Heartbeats past this many a second are answered 429 with Retry-After (None: no limit).
    pub max_heartbeats: Option<u32>,
}

/// Serves gRPC on `grpc`, the REST admin on `rest` and the vendor's API where `cfs` says, until
/// `shutdown` resolves. With `store`, it decides only while it leads the services sharing that
/// etcd store.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    grpc: tokio::net::TcpListener,
    rest: tokio::net::TcpListener,
    cfs: Option<CfsServer>,
    auth: auth::AuthConfig,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    broken: failover_core::Broken,
    store: Option<etcd_store::EtcdStore>,
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
    for rule in broken.rules() {
        tracing::warn!("--break {rule}: a rule broken on purpose (a self-test)");
    }
    let arbiter = Arbiter::breaking(auth::Authenticator::new(&auth), broken);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut stop_rest = stop_rx.clone();
    let store_task = store.map(|store| {
        tracing::info!(
            endpoints = ?store.endpoints,
            prefix = store.prefix,
            lease_ms = store.lease.as_millis() as u64,
            advertise = store.advertise,
            "etcd store: campaigning to lead the services that share it"
        );
        arbiter.follow(None, "campaigning in etcd".into());
        let mut stop = stop_rx.clone();
        tokio::spawn(etcd_store::run(arbiter.clone(), store, async move {
            let _ = stop.wait_for(|s| *s).await;
        }))
    });
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
    let cfs_task = cfs.map(|cfs| {
        tracing::info!(
            addr = ?cfs.listener.local_addr().ok(),
            https = cfs.tls.is_some(),
            basic_auth = cfs.users.required(),
            "the vendor's Client Failover Service API at /api/v1/clientfailover"
        );
        let app = cfs_api::router(arbiter.clone(), cfs.users, cfs.max_heartbeats);
        let mut stop = stop_rx.clone();
        tokio::spawn(cfs_api::serve(cfs.listener, app, cfs.tls, async move {
            let _ = stop.wait_for(|s| *s).await;
        }))
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
    if let Some(task) = cfs_task {
        task.await??;
    }
    clock.abort();
    if let Some(task) = store_task {
        // It gives up its lease (bounded by its calls' timeouts).
        let _ = task.await;
    }
    grpc_result?;
    rest_result??;
    Ok(())
}
