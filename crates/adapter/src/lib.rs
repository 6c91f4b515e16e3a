//! adapter: one member of a failover pair, like an AVEVA/OSIsoft PI Adapter with client
//! failover.
//!
//! It collects points from the data source, keeps them in a bounded egress buffer, and egresses
//! them to the data endpoint while it is Primary; it heartbeats its failover score to the
//! failover service, which decides its role. Hot, Warm and Cold: docs/rules.md, B10-B12.
//!
//! The adapter is a few tasks around one shared [`state::AdapterState`]:
//! - [`session`]: the session with the failover service; role, epoch, lease: over gRPC (a
//!   heartbeat stream) or the vendor's Client Failover Service REST API (register, heartbeat,
//!   role pulled from each answer);
//! - [`token`]: bearer tokens for that stream (OAuth2 client credentials), renewed early;
//! - [`collector`]: the subscription to the data source (points and component health);
//! - [`tester`]: connection tests of a Warm standby (and of HistoryOnly adapters);
//! - [`egress`]: fence, read the watermark, flush what follows it, write live data;
//! - [`spool`]: the egress buffer, on disk too with `--buffer-dir`, so a restart loses
//!   nothing collected;
//! - [`diagnostics`]: the vendor's Failover.FailoverStatus stream and failover health, egressed
//!   to the endpoint by every member;
//! - [`history`]: on-demand history recoveries (HistoryOnly), never carried over a failover;
//! - [`rest`]: the REST API (ClientFailover document, FailoverState, DataSource).
//!
//! [`run`] starts them all on a given REST listener and stops them when shutdown resolves;
//! a graceful stop leaves the failover group, so the other member takes over at once.

pub mod collector;
pub mod diagnostics;
pub mod egress;
pub mod history;
pub mod rest;
pub mod session;
pub mod spool;
pub mod state;
pub mod tester;
pub mod token;

use std::{future::Future, time::Duration};

use failover_core::{ClientFailoverConfig, DataSourceConfig};
use failover_proto::net;

/// How the adapter talks to its failover service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FailoverProtocol {
    /// By the document's endpoint: the vendor's REST API when its path holds
    /// `/clientfailover` (as `https://host:5590/api/v1/clientfailover`), else gRPC.
    #[default]
    Auto,
    /// failover-lab's gRPC heartbeat stream: roles pushed at once.
    Grpc,
    /// The vendor's Client Failover Service REST API: roles pulled in heartbeat answers.
    Rest,
}

/// What an adapter is started with.
#[derive(Debug, Clone)]
pub struct AdapterSettings {
    /// The adapter's name: its id in the failover group and at the source and endpoint.
    pub name: String,
    /// URL of the data source: `http(s)://` for the lab's gRPC `DataSource`, `mqtt://host:port`
    /// for MQTT, `opc.tcp://host:port` for OPC UA (live points and health; history recoveries
    /// need gRPC).
    pub source_url: String,
    /// gRPC URL of the data endpoint.
    pub endpoint_url: String,
    /// DataSource settings at start.
    pub data_source: DataSourceConfig,
    /// How often a Warm standby tests its source connection (Doc: 5 minutes).
    pub warm_test_interval: Duration,
    /// Most points held for egress in memory, without a buffer directory; past it the oldest
    /// are dropped and counted.
    pub buffer_capacity: usize,
    /// Where connections come from: TCP, or a simulator's network.
    pub network: net::Network,
    /// CA certificates (PEM files) trusted for the failover service's TLS, beside the system
    /// bundle, when the document validates its certificate.
    pub trusted_ca: Vec<std::path::PathBuf>,
    /// Where the egress buffer is kept on disk too (None: memory only).
    pub buffer_dir: Option<std::path::PathBuf>,
    /// The cap of the buffer on disk, in bytes (its points are the cap in memory as well).
    pub buffer_max_bytes: u64,
    /// Most points per write.
    pub batch_size: usize,
    /// ClientFailover documents applied while running, as a PUT (Some) or DELETE (None) of the
    /// REST API would: the simulator's operator. None: only the REST API changes it.
    pub documents: Option<tokio::sync::watch::Receiver<Option<ClientFailoverConfig>>>,
    /// How to talk to the failover service.
    pub failover_protocol: FailoverProtocol,
    /// How often failover health's dynamic values go to the endpoint (the vendor's: a minute);
    /// None: no diagnostics are egressed at all (the simulator's adapters).
    pub health_interval: Option<Duration>,
    /// Rules broken on purpose, for the simulator's self-tests (none but there): those of
    /// `failover_core::BrokenRule` the adapter keeps (fixed-retry, no-failsafe,
    /// failed-standby-scores).
    pub broken: failover_core::Broken,
    /// Whose failover design this adapter follows: failover-lab's, or the vendor's adapter
    /// framework's (REST heartbeats with LastDataProcessedTime, a Hot queue trimmed by time, OMF
    /// without fencing; docs/vendor-behaviour.md).
    pub behaviour: failover_core::Behaviour,
}

/// Runs the adapter, serving its REST API on `rest` (None: no REST API; configured by
/// `initial` only), until `shutdown` resolves.
pub async fn run<L>(
    rest: Option<L>,
    settings: AdapterSettings,
    initial: Option<ClientFailoverConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    if settings.behaviour == failover_core::Behaviour::Vendor {
        if !egress::omf::is_omf_url(&settings.endpoint_url) {
            anyhow::bail!(
                "--behaviour vendor egresses OMF, as the vendor's adapters do: the data endpoint \
                 {} must be an OMF URL (its path ends in /omf)",
                settings.endpoint_url
            );
        }
        if settings.failover_protocol == FailoverProtocol::Grpc {
            anyhow::bail!(
                "--behaviour vendor speaks the vendor's Client Failover Service REST API: it \
                 cannot go with --failover-protocol grpc"
            );
        }
    }
    let source = net::lazy_channel(&settings.source_url, &settings.network, None)?;
    // The wire: gRPC, MQTT for mqtt://, OPC UA for opc.tcp://.
    let wire = collector::SourceWire::for_url(&settings.source_url, source.clone())?;
    let sink = egress::Sink::for_settings(&settings)?;
    // Diagnostics go to the lab's gRPC endpoint only (an OMF endpoint gets data alone).
    let diagnostics_endpoint = match &sink {
        egress::Sink::Grpc(_) => Some(net::lazy_channel(
            &settings.endpoint_url,
            &settings.network,
            None,
        )?),
        egress::Sink::Omf(_) => None,
    };
    let buffer = match &settings.buffer_dir {
        None => spool::DurableBuffer::in_memory(settings.buffer_capacity),
        Some(dir) => {
            let (buffer, restored) =
                spool::DurableBuffer::open(dir, settings.buffer_max_bytes, spool::SEGMENT_BYTES)
                    .map_err(|e| {
                        anyhow::anyhow!("cannot use the buffer directory {}: {e}", dir.display())
                    })?;
            tracing::info!(
                dir = %dir.display(),
                restored,
                max_mb = settings.buffer_max_bytes >> 20,
                "egress buffer on disk; {restored} points restored from it"
            );
            buffer
        }
    };
    let restored = buffer.len() as u64;
    let shared = state::Shared::new(settings, buffer);
    shared.update(|st| st.restored = restored);
    if initial.is_some() {
        rest::apply_failover(&shared, initial);
    }
    let operator = shared.settings.documents.clone().map(|mut documents| {
        let shared = shared.clone();
        tokio::spawn(async move {
            while documents.changed().await.is_ok() {
                let document = documents.borrow_and_update().clone();
                rest::apply_failover(&shared, document);
            }
        })
    });
    let session_task = tokio::spawn(session::run(shared.clone()));
    let mut tasks = vec![
        tokio::spawn(collector::run(shared.clone(), wire.clone())),
        tokio::spawn(tester::run(shared.clone(), wire.clone())),
        tokio::spawn(egress::run(shared.clone(), sink)),
        tokio::spawn(history::run(shared.clone(), wire)),
        tokio::spawn(sync_buffer(shared.clone())),
    ];
    if let Some(endpoint) = diagnostics_endpoint {
        tasks.push(tokio::spawn(diagnostics::run(shared.clone(), endpoint)));
    }
    tracing::info!(
        name = shared.settings.name,
        rest = ?rest.as_ref().and_then(|r| r.local_addr().ok()),
        source = shared.settings.source_url,
        endpoint = shared.settings.endpoint_url,
        "adapter running"
    );
    let served = match rest {
        Some(rest) => {
            axum::serve(rest, rest::router(shared.clone()))
                .with_graceful_shutdown(shutdown)
                .await
        }
        // Configured at start only (the simulator's adapters).
        None => {
            shutdown.await;
            Ok(())
        }
    };
    // A graceful stop: stop collecting and egressing, then leave the failover group, so the
    // other member takes over at once instead of after failoverTimeout.
    for t in tasks.into_iter().chain(operator) {
        t.abort();
    }
    let leave_within =
        shared.lock().failover.as_ref().map(|f| {
            f.heartbeat_interval().min(Duration::from_secs(2)) + Duration::from_millis(500)
        });
    shared.update(|st| st.leaving = true);
    let mut session_task = session_task;
    if let Some(bound) = leave_within
        && tokio::time::timeout(bound, &mut session_task)
            .await
            .is_err()
    {
        tracing::warn!(
            "could not leave the failover group in time; the service will find the session stale"
        );
    }
    session_task.abort();
    let st = shared.lock();
    tracing::info!(
        buffered = st.buffer.len(),
        egressed = st.egressed,
        "adapter stopped"
    );
    served.map_err(Into::into)
}

/// Flushes the buffer's disk copy to the device every second.
async fn sync_buffer(shared: std::sync::Arc<state::Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(file) = shared.lock().buffer.sync_handle() else {
            return;
        };
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || file.sync_data()).await {
            tracing::warn!("cannot flush the egress buffer to disk: {e}");
        }
    }
}

/// Settings for unit tests: our design, a 1000-point buffer in memory, no source to reach,
/// egressing to `endpoint_url`.
#[cfg(test)]
pub(crate) fn test_settings(endpoint_url: &str) -> AdapterSettings {
    AdapterSettings {
        behaviour: failover_core::Behaviour::Lab,
        name: "a".into(),
        source_url: "http://127.0.0.1:9".into(),
        endpoint_url: endpoint_url.into(),
        data_source: Default::default(),
        warm_test_interval: Duration::from_secs(1),
        buffer_capacity: 1000,
        network: failover_proto::net::Network::tcp(),
        trusted_ca: Vec::new(),
        buffer_dir: None,
        buffer_max_bytes: 1 << 20,
        batch_size: 100,
        documents: None,
        failover_protocol: FailoverProtocol::Auto,
        health_interval: None,
        broken: failover_core::Broken::NONE,
    }
}
