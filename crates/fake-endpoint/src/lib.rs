//! fake-endpoint: the data endpoint the Primary egresses to, and the referee of every run.
//!
//! - **Fencing**: `Fence(group, adapter, epoch)` raises the group's fenced epoch and answers the
//!   per-stream watermark (last point accepted) in the same call. A write from an older epoch is
//!   refused as stale; a write from an epoch or adapter that has not fenced is refused as not
//!   fenced. So a paused or partitioned old Primary cannot write after a takeover, and the new
//!   Primary knows exactly where to resume.
//! - **Audit**: every accepted point goes into a per-stream [`StreamLedger`], so `Audit` can
//!   report expected vs received, lost, duplicated, out of order, refused as stale, the largest
//!   gap in data time, and which adapter and epoch wrote what and when.
//! - **Diagnostics**: `WriteDiagnostics` takes the adapters' own Failover.FailoverStatus and
//!   health values from every member (no fence), keeps the latest [`MAX_DIAGNOSTICS`] per
//!   group apart from the data, and `Audit` lists them when asked.
//! - **Outage**: `SetOutage(true)` makes every call but Audit answer UNAVAILABLE until ended.
//!
//! - **OMF** ([`omf`]): the HTTP listener (`--http-listen`) takes OMF as Edge Data Store, CONNECT
//!   and PI Web API do, and reads it back as Edge Data Store does. OMF values join the same
//!   ledger, so lost, duplicated and coverage mean the same over OMF.
//!
//! [`run`] serves `failover.v1.DataEndpoint` and the gRPC health service on a given listener,
//! and `/metrics`, OMF and its read-back on an HTTP listener.

pub mod omf;
mod record;

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};

use failover_proto::{convert, process, v1};
use record::GroupRecord;
use tonic::{Request, Response, Status};

/// Diagnostics values kept per group (older ones are dropped and counted).
pub const MAX_DIAGNOSTICS: usize = 10_000;
/// Most values in one WriteDiagnostics call.
pub const MAX_DIAGNOSTICS_PER_CALL: usize = 1_000;
/// Most fields in one diagnostics value.
pub const MAX_DIAGNOSTIC_FIELDS: usize = 32;

/// Checks a diagnostics request against the shared limits.
fn check_diagnostics(req: &v1::DiagnosticsRequest) -> Result<(), Status> {
    use failover_core::limits::{check_id, check_text};
    let invalid = Status::invalid_argument;
    if req.values.len() > MAX_DIAGNOSTICS_PER_CALL {
        return Err(invalid(format!(
            "values: {} in one call; at most {MAX_DIAGNOSTICS_PER_CALL}",
            req.values.len()
        )));
    }
    for v in &req.values {
        check_id("stream", &v.stream).map_err(invalid)?;
        if v.fields.len() > MAX_DIAGNOSTIC_FIELDS {
            return Err(invalid(format!(
                "fields: {} in one value; at most {MAX_DIAGNOSTIC_FIELDS}",
                v.fields.len()
            )));
        }
        for (k, text) in &v.fields {
            check_id("field name", k).map_err(invalid)?;
            check_text(k, text).map_err(invalid)?;
        }
    }
    Ok(())
}

/// The DataEndpoint service.
#[derive(Debug, Clone, Default)]
pub struct EndpointService {
    groups: Arc<Mutex<HashMap<String, GroupRecord>>>,
    outage: Arc<AtomicBool>,
    /// The OMF ingress: its settings and what OMF clients stored.
    omf: Arc<omf::Omf>,
    /// The deliberately broken rule of the self-tests (`BrokenRule::EpochCheck`): writes skip
    /// the epoch check.
    skip_epoch_check: bool,
}

/// Checks ids against the limits every part shares (`failover_core::limits`).
fn check_ids(group: &str, adapter: Option<&str>) -> Result<(), Status> {
    failover_core::limits::check_id("group_id", group).map_err(Status::invalid_argument)?;
    if let Some(a) = adapter {
        failover_core::limits::check_id("adapter_id", a).map_err(Status::invalid_argument)?;
    }
    Ok(())
}

impl EndpointService {
    /// An endpoint breaking these rules on purpose (the endpoint's: epoch-check, every write
    /// taken whatever its epoch), for self-tests that must catch it.
    pub fn breaking(broken: failover_core::Broken) -> Self {
        EndpointService {
            skip_epoch_check: broken.has(failover_core::BrokenRule::EpochCheck),
            ..EndpointService::default()
        }
    }

    /// The same endpoint taking OMF with `settings`.
    pub fn with_omf(self, settings: omf::OmfSettings) -> Self {
        EndpointService {
            omf: Arc::new(omf::Omf::new(settings)),
            ..self
        }
    }

    /// True during a simulated outage.
    pub fn in_outage(&self) -> bool {
        self.outage.load(Ordering::SeqCst)
    }

    fn lock_groups(&self) -> MutexGuard<'_, HashMap<String, GroupRecord>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_outage(&self) -> Result<(), Status> {
        if self.outage.load(Ordering::SeqCst) {
            Err(Status::unavailable("data endpoint outage (simulated)"))
        } else {
            Ok(())
        }
    }

    fn with_group<T>(&self, group: &str, f: impl FnOnce(&mut GroupRecord) -> T) -> T {
        f(self.lock_groups().entry(group.to_string()).or_default())
    }
}

#[tonic::async_trait]
impl v1::data_endpoint_server::DataEndpoint for EndpointService {
    async fn fence(
        &self,
        request: Request<v1::FenceRequest>,
    ) -> Result<Response<v1::FenceReply>, Status> {
        let req = request.into_inner();
        check_ids(&req.group_id, Some(&req.adapter_id))?;
        self.with_group(&req.group_id, |g| g.fence_calls += 1);
        self.check_outage()?;
        let reply = self.with_group(&req.group_id, |g| {
            g.fence(&req.adapter_id, &req.writer, req.epoch)
        });
        Ok(Response::new(reply))
    }

    async fn write(
        &self,
        request: Request<v1::WriteRequest>,
    ) -> Result<Response<v1::WriteReply>, Status> {
        let req = request.into_inner();
        check_ids(&req.group_id, Some(&req.adapter_id))?;
        self.with_group(&req.group_id, |g| g.write_calls += 1);
        self.check_outage()?;
        let points = match &req.batch {
            Some(b) => convert::points_from_batch(b)
                .map_err(|e| Status::invalid_argument(e.to_string()))?,
            None => Vec::new(),
        };
        let skip = self.skip_epoch_check;
        let reply = self.with_group(&req.group_id, |g| {
            if skip {
                // The broken rule: write as whoever holds the fence, at its epoch.
                let (holder, writer, epoch) =
                    (g.fenced_by.clone(), g.fenced_writer.clone(), g.fenced_epoch);
                g.fenced_by = Some(req.adapter_id.clone());
                g.fenced_writer = Some(req.writer.clone());
                g.fenced_epoch = req.epoch;
                let reply = g.write(&req.adapter_id, &req.writer, req.epoch, &points);
                g.fenced_by = holder;
                g.fenced_writer = writer;
                g.fenced_epoch = epoch.max(req.epoch);
                return reply;
            }
            g.write(&req.adapter_id, &req.writer, req.epoch, &points)
        });
        if reply.outcome == v1::WriteOutcome::StaleEpoch as i32 {
            tracing::warn!(
                adapter = req.adapter_id,
                epoch = req.epoch,
                fenced = reply.fenced_epoch,
                points = points.len(),
                "write refused: stale epoch"
            );
        }
        Ok(Response::new(reply))
    }

    async fn audit(
        &self,
        request: Request<v1::AuditRequest>,
    ) -> Result<Response<v1::AuditReport>, Status> {
        let req = request.into_inner();
        check_ids(&req.group_id, None)?;
        let groups = self.lock_groups();
        let report = match groups.get(&req.group_id) {
            Some(g) => g.audit(&req.group_id, &req),
            None => GroupRecord::default().audit(&req.group_id, &req),
        };
        Ok(Response::new(report))
    }

    async fn write_diagnostics(
        &self,
        request: Request<v1::DiagnosticsRequest>,
    ) -> Result<Response<v1::DiagnosticsReply>, Status> {
        let req = request.into_inner();
        check_ids(&req.group_id, Some(&req.adapter_id))?;
        self.check_outage()?;
        check_diagnostics(&req)?;
        let accepted = req.values.len() as u64;
        self.with_group(&req.group_id, |g| {
            for mut v in req.values {
                v.adapter_id.clone_from(&req.adapter_id);
                g.diagnostics.push_back(v);
            }
            while g.diagnostics.len() > MAX_DIAGNOSTICS {
                g.diagnostics.pop_front();
                g.diagnostics_dropped += 1;
            }
        });
        Ok(Response::new(v1::DiagnosticsReply { accepted }))
    }

    async fn set_outage(
        &self,
        request: Request<v1::OutageRequest>,
    ) -> Result<Response<v1::OutageReply>, Status> {
        let down = request.into_inner().down;
        self.outage.store(down, Ordering::SeqCst);
        tracing::info!(down, "endpoint outage set");
        Ok(Response::new(v1::OutageReply { down }))
    }
}

impl EndpointService {
    /// The endpoint's Prometheus metrics (names documented in docs/metrics.md).
    pub fn metrics_text(&self) -> String {
        use failover_proto::metrics::Metrics;
        let mut m = Metrics::new();
        m.gauge(
            "failover_endpoint_outage",
            "1 while a simulated outage refuses every fence and write.",
            &[],
            if self.outage.load(Ordering::SeqCst) {
                1.0
            } else {
                0.0
            },
        );
        let groups = self.lock_groups();
        let mut ids: Vec<&String> = groups.keys().collect();
        ids.sort();
        for id in ids {
            let g = &groups[id];
            let l: &[(&str, &str)] = &[("group", id)];
            m.gauge(
                "failover_endpoint_fenced_epoch",
                "The epoch the group is fenced at: writes from older epochs are refused.",
                l,
                g.fenced_epoch as f64,
            );
            m.counter(
                "failover_endpoint_points_accepted_total",
                "Distinct points accepted.",
                l,
                g.writers.values().map(|w| w.accepted).sum(),
            );
            m.counter(
                "failover_endpoint_points_duplicated_total",
                "Points received again (not stored twice).",
                l,
                g.duplicated,
            );
            m.counter(
                "failover_endpoint_points_refused_stale_total",
                "Points refused because their epoch was older than the fenced one.",
                l,
                g.refused_stale,
            );
            m.counter(
                "failover_endpoint_points_refused_not_fenced_total",
                "Points refused because their writer had not fenced at their epoch.",
                l,
                g.refused_not_fenced,
            );
            m.gauge(
                "failover_endpoint_largest_arrival_gap_seconds",
                "Longest wall-clock pause between two accepted writes: the data gap of a takeover.",
                l,
                g.largest_arrival_gap_us as f64 / 1e6,
            );
        }
        m.finish()
    }
}

/// Serves the endpoint on `listener` until `shutdown` resolves, and on `metrics` (if given) its
/// HTTP side: `/metrics`, OMF and the read-back API.
pub async fn run(
    listener: tokio::net::TcpListener,
    metrics: Option<tokio::net::TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_service(EndpointService::default(), listener, metrics, shutdown).await
}

/// [`run`] with a service made beforehand (one with a rule broken on purpose, for the lab's
/// self-tests).
pub async fn run_service(
    service: EndpointService,
    listener: tokio::net::TcpListener,
    metrics: Option<tokio::net::TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(addr = ?listener.local_addr().ok(), "data endpoint serving");
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let metrics_task = metrics.map(|l| {
        let stop = shutdown.clone();
        tracing::info!(addr = ?l.local_addr().ok(), "HTTP at /metrics, OMF and its read-back");
        let app = http_routes(service.clone());
        tokio::spawn(async move { axum::serve(l, app).with_graceful_shutdown(stop).await })
    });
    let result = serve(process::incoming(listener), service, shutdown).await;
    if let Some(t) = metrics_task {
        t.abort();
    }
    result
}

/// The HTTP side: `/metrics`, OMF ingress on every vendor's path, and the read-back API.
pub fn http_routes(service: EndpointService) -> axum::Router {
    use axum::{
        body::{Body, Bytes},
        extract::{Path, Query, State},
        http::HeaderMap,
        routing::{get, post},
    };
    type Params = Query<HashMap<String, String>>;
    async fn metrics(State(s): State<EndpointService>) -> impl axum::response::IntoResponse {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                failover_proto::metrics::CONTENT_TYPE,
            )],
            s.metrics_text(),
        )
    }
    /// The body, read up to OMF's limit and no further.
    async fn limited(s: &EndpointService, body: Body) -> Result<Bytes, axum::response::Response> {
        axum::body::to_bytes(body, omf::MAX_BODY)
            .await
            .map_err(|_| {
                omf::refusal(
                &s.omf,
                &omf::message::Rejection::bad(format!(
                    "the body is over {} bytes (OMF's 192 KB), or broke off: send smaller batches",
                    omf::MAX_BODY
                ))
                .with_status(413),
                None,
            )
            })
    }
    async fn pi_web_api(
        State(s): State<EndpointService>,
        headers: HeaderMap,
        body: Body,
    ) -> axum::response::Response {
        match limited(&s, body).await {
            Ok(body) => omf::ingest(&s, ("default".into(), "default".into()), &headers, &body),
            Err(r) => r,
        }
    }
    /// `/api/v1/tenants/{t}/namespaces/{n}/...`: the tenant, the namespace and the rest.
    fn split(path: &str) -> Option<(String, String, &str)> {
        let mut words = path.trim_start_matches('/').splitn(5, '/');
        let (t, tenant, n, namespace) =
            (words.next()?, words.next()?, words.next()?, words.next()?);
        (t.eq_ignore_ascii_case("tenants") && n.eq_ignore_ascii_case("namespaces")).then(|| {
            (
                tenant.to_string(),
                namespace.to_string(),
                words.next().unwrap_or(""),
            )
        })
    }
    async fn api_post(
        State(s): State<EndpointService>,
        Path(path): Path<String>,
        headers: HeaderMap,
        body: Body,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        match split(&path) {
            Some((t, n, rest)) if rest.trim_end_matches('/').eq_ignore_ascii_case("omf") => {
                match limited(&s, body).await {
                    Ok(body) => omf::ingest(&s, (t, n), &headers, &body),
                    Err(r) => r,
                }
            }
            _ => (
                axum::http::StatusCode::NOT_FOUND,
                "OMF is posted to /api/v1/tenants/{tenant}/namespaces/{namespace}/omf",
            )
                .into_response(),
        }
    }
    async fn api_get(
        State(s): State<EndpointService>,
        Path(path): Path<String>,
        Query(query): Params,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let Some((t, n, rest)) = split(&path) else {
            return (
                axum::http::StatusCode::NOT_FOUND,
                "read back at /api/v1/tenants/{tenant}/namespaces/{namespace}/streams",
            )
                .into_response();
        };
        let stores = s.omf.stores.lock().unwrap_or_else(PoisonError::into_inner);
        omf::readback::read(&s.omf, stores.namespaces.get(&(t, n)), rest, &query)
    }
    axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/piwebapi/omf", post(pi_web_api))
        .route("/piwebapi/omf/", post(pi_web_api))
        .route("/api/v1/{*path}", post(api_post).get(api_get))
        // The body limit is OMF's, checked by the handlers to answer 413 in OMF's words.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(service)
}

/// Serves `service` (and the health service) on the connections of `incoming` until
/// `shutdown` resolves: TCP for [`run`], a simulator's network otherwise.
pub async fn serve<IO: process::ServerConn>(
    incoming: impl tokio_stream::Stream<Item = std::io::Result<IO>> + Send,
    service: EndpointService,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let health = process::health_service("failover.v1.DataEndpoint").await;
    process::server_builder()
        .add_service(health)
        .add_service(
            v1::data_endpoint_server::DataEndpointServer::new(service)
                .max_decoding_message_size(64 * 1024 * 1024),
        )
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(Into::into)
}
