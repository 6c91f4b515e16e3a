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
//! [`run`] serves `failover.v1.DataEndpoint` and the gRPC health service on a given listener.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};

use failover_core::{
    ledger::{Insert, StreamLedger},
    points::StreamMap,
};
use failover_proto::{convert, process, v1};
use tonic::{Request, Response, Status};

/// Diagnostics values kept per group (older ones are dropped and counted).
pub const MAX_DIAGNOSTICS: usize = 10_000;
/// Most values in one WriteDiagnostics call.
pub const MAX_DIAGNOSTICS_PER_CALL: usize = 1_000;
/// Most fields in one diagnostics value.
pub const MAX_DIAGNOSTIC_FIELDS: usize = 32;

#[derive(Debug, Default, Clone)]
struct WriterTally {
    accepted: u64,
    duplicates: u64,
    refused_stale: u64,
    first_accepted_unix_us: i64,
    last_accepted_unix_us: i64,
}

#[derive(Debug, Default)]
struct GroupRecord {
    fenced_epoch: u64,
    fenced_by: Option<String>,
    /// The writer process holding the fence (see `FenceRequest.writer`).
    fenced_writer: Option<String>,
    streams: StreamMap<StreamLedger>,
    duplicated: u64,
    out_of_order: u64,
    refused_stale: u64,
    refused_not_fenced: u64,
    writers: BTreeMap<(String, u64), WriterTally>,
    last_accept_unix_us: Option<i64>,
    largest_arrival_gap_us: i64,
    fence_calls: u64,
    write_calls: u64,
    diagnostics: std::collections::VecDeque<v1::DiagnosticValue>,
    diagnostics_dropped: u64,
    /// Who delivered each tick first, on time or late.
    coverage: failover_core::coverage::Coverage,
}

impl GroupRecord {
    fn watermark(&self) -> Vec<v1::StreamWatermark> {
        let mut wm: Vec<v1::StreamWatermark> = self
            .streams
            .iter()
            .filter_map(|(s, l)| {
                l.last_seq()
                    .map(|seq| v1::StreamWatermark { stream_id: *s, seq })
            })
            .collect();
        wm.sort_unstable_by_key(|w| w.stream_id);
        wm
    }

    fn fence(&mut self, adapter: &str, writer: &str, epoch: u64) -> v1::FenceReply {
        // The holder is the writer process, not only its name: a second process with the same
        // name (a twin, found by the simulator: `failover-lab sim --seed 650 --modes Cold`, 688
        // points written twice) must not share a fence at the same epoch.
        let same_holder = self.fenced_by.as_deref().is_none_or(|holder| {
            holder == adapter && self.fenced_writer.as_deref().unwrap_or("") == writer
        });
        let granted = epoch > self.fenced_epoch || (epoch == self.fenced_epoch && same_holder);
        let detail = if granted {
            if epoch > self.fenced_epoch || self.fenced_by.is_none() {
                tracing::info!(adapter, epoch, previous = self.fenced_epoch, "fenced");
            }
            self.fenced_epoch = epoch;
            self.fenced_by = Some(adapter.to_string());
            self.fenced_writer = Some(writer.to_string());
            format!("fenced at epoch {epoch}; writes from older epochs are refused")
        } else {
            format!(
                "epoch {epoch} of {adapter} is not newer than the fenced epoch {} of {}{}",
                self.fenced_epoch,
                self.fenced_by.as_deref().unwrap_or("nobody"),
                if self.fenced_by.as_deref() == Some(adapter) {
                    " (another process with the same name)"
                } else {
                    ""
                }
            )
        };
        v1::FenceReply {
            granted,
            fenced_epoch: self.fenced_epoch,
            watermark: if granted {
                self.watermark()
            } else {
                Vec::new()
            },
            detail,
        }
    }

    fn write(
        &mut self,
        adapter: &str,
        writer: &str,
        epoch: u64,
        points: &[failover_core::Point],
    ) -> v1::WriteReply {
        let n = points.len() as u64;
        let tally_key = (adapter.to_string(), epoch);
        if epoch < self.fenced_epoch {
            self.refused_stale += n;
            self.writers.entry(tally_key).or_default().refused_stale += n;
            return v1::WriteReply {
                outcome: v1::WriteOutcome::StaleEpoch as i32,
                fenced_epoch: self.fenced_epoch,
                ..Default::default()
            };
        }
        if epoch > self.fenced_epoch
            || self.fenced_by.as_deref() != Some(adapter)
            || self.fenced_writer.as_deref().unwrap_or("") != writer
        {
            self.refused_not_fenced += n;
            return v1::WriteReply {
                outcome: v1::WriteOutcome::NotFenced as i32,
                fenced_epoch: self.fenced_epoch,
                ..Default::default()
            };
        }
        let now = process::unix_us();
        let (mut accepted, mut duplicates) = (0u64, 0u64);
        for p in points {
            self.coverage
                .record(p.seq, p.timestamp_ms, adapter, now.div_euclid(1000));
            match self
                .streams
                .entry(p.stream_id)
                .or_default()
                .insert(p.seq, p.timestamp_ms)
            {
                Insert::InOrder => accepted += 1,
                Insert::OutOfOrder => {
                    accepted += 1;
                    self.out_of_order += 1;
                }
                Insert::Duplicate => duplicates += 1,
            }
        }
        self.duplicated += duplicates;
        if accepted > 0 {
            if let Some(prev) = self.last_accept_unix_us {
                self.largest_arrival_gap_us = self.largest_arrival_gap_us.max(now - prev);
            }
            self.last_accept_unix_us = Some(now);
        }
        let t = self.writers.entry(tally_key).or_default();
        if t.accepted == 0 && accepted > 0 {
            t.first_accepted_unix_us = now;
        }
        if accepted > 0 {
            t.last_accepted_unix_us = now;
        }
        t.accepted += accepted;
        t.duplicates += duplicates;
        v1::WriteReply {
            outcome: v1::WriteOutcome::Accepted as i32,
            accepted,
            duplicates,
            fenced_epoch: self.fenced_epoch,
        }
    }

    fn audit(&self, group_id: &str, req: &v1::AuditRequest) -> v1::AuditReport {
        let (mut expected, mut received, mut lost, mut largest_gap_ms) = (0u64, 0u64, 0u64, 0i64);
        for ledger in self.streams.values() {
            received += ledger.held();
            largest_gap_ms = largest_gap_ms.max(ledger.largest_gap_ms());
            let (Some(first), Some(last)) = (ledger.first_seq(), ledger.last_seq()) else {
                continue;
            };
            let lo = if req.has_from_seq {
                req.from_seq
            } else {
                first
            };
            let hi = if req.has_through_seq {
                req.through_seq
            } else {
                last
            };
            if lo <= hi {
                let span = hi - lo + 1;
                expected += span;
                lost += span - ledger.held_between(lo, hi);
            }
        }
        // Streams that were expected but never received anything.
        let missing_streams =
            u64::from(req.expected_streams).saturating_sub(self.streams.len() as u64);
        if missing_streams > 0
            && req.has_from_seq
            && req.has_through_seq
            && req.from_seq <= req.through_seq
        {
            let span = req.through_seq - req.from_seq + 1;
            expected += span * missing_streams;
            lost += span * missing_streams;
        }
        v1::AuditReport {
            group_id: group_id.to_string(),
            expected,
            received,
            lost,
            duplicated: self.duplicated,
            fence_calls: self.fence_calls,
            write_calls: self.write_calls,
            out_of_order: self.out_of_order,
            refused_stale: self.refused_stale,
            refused_not_fenced: self.refused_not_fenced,
            largest_gap_ms,
            largest_arrival_gap_ms: self.largest_arrival_gap_us / 1000,
            fenced_epoch: self.fenced_epoch,
            writers: self
                .writers
                .iter()
                .map(|((adapter_id, epoch), t)| v1::WriterStats {
                    adapter_id: adapter_id.clone(),
                    epoch: *epoch,
                    accepted: t.accepted,
                    duplicates: t.duplicates,
                    refused_stale: t.refused_stale,
                    first_accepted_unix_us: t.first_accepted_unix_us,
                    last_accepted_unix_us: t.last_accepted_unix_us,
                })
                .collect(),
            streams: u32::try_from(self.streams.len()).unwrap_or(u32::MAX),
            diagnostics: if req.include_diagnostics {
                self.diagnostics.iter().cloned().collect()
            } else {
                Vec::new()
            },
            diagnostics_dropped: self.diagnostics_dropped,
            coverage: if req.include_coverage {
                self.coverage
                    .runs()
                    .into_iter()
                    .map(|r| v1::CoverageRun {
                        first_seq: r.first_seq,
                        last_seq: r.last_seq,
                        first_ms: r.first_ms,
                        last_ms: r.last_ms,
                        adapter_id: r.adapter,
                        late: r.late,
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

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

    fn check_outage(&self) -> Result<(), Status> {
        if self.outage.load(Ordering::SeqCst) {
            Err(Status::unavailable("data endpoint outage (simulated)"))
        } else {
            Ok(())
        }
    }

    fn with_group<T>(&self, group: &str, f: impl FnOnce(&mut GroupRecord) -> T) -> T {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        f(groups.entry(group.to_string()).or_default())
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
        let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
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
        let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
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

/// Serves the endpoint on `listener` until `shutdown` resolves, and its `/metrics` over HTTP
/// on `metrics` if given.
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
        let service = service.clone();
        let stop = shutdown.clone();
        tracing::info!(addr = ?l.local_addr().ok(), "metrics at /metrics");
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let service = service.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            failover_proto::metrics::CONTENT_TYPE,
                        )],
                        service.metrics_text(),
                    )
                }
            }),
        );
        tokio::spawn(async move { axum::serve(l, app).with_graceful_shutdown(stop).await })
    });
    let result = serve(process::incoming(listener), service, shutdown).await;
    if let Some(t) = metrics_task {
        t.abort();
    }
    result
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

#[cfg(test)]
mod tests {
    use super::*;
    use failover_core::Point;

    fn pts(stream: u32, seqs: std::ops::Range<u64>) -> Vec<Point> {
        seqs.map(|seq| Point {
            stream_id: stream,
            seq,
            timestamp_ms: seq as i64 * 100,
            value: 0.0,
        })
        .collect()
    }

    fn accepted(r: &v1::WriteReply) -> bool {
        r.outcome == v1::WriteOutcome::Accepted as i32
    }

    #[test]
    fn fencing_refuses_older_epochs_and_unfenced_writers() {
        let mut g = GroupRecord::default();
        assert!(
            !accepted(&g.write("a", "a@1", 1, &pts(0, 0..5))),
            "must fence first"
        );
        assert!(g.fence("a", "a@1", 1).granted);
        assert!(accepted(&g.write("a", "a@1", 1, &pts(0, 0..5))));
        // b takes over at epoch 2 and reads the watermark.
        let f = g.fence("b", "b@1", 2);
        assert!(f.granted);
        assert_eq!(
            f.watermark,
            vec![v1::StreamWatermark {
                stream_id: 0,
                seq: 4
            }]
        );
        // a, resumed, is refused as stale.
        let r = g.write("a", "a@1", 1, &pts(0, 5..8));
        assert_eq!(r.outcome, v1::WriteOutcome::StaleEpoch as i32);
        assert_eq!(g.refused_stale, 3);
        // a cannot fence back at its old epoch, nor at b's.
        assert!(!g.fence("a", "a@1", 1).granted);
        assert!(!g.fence("a", "a@1", 2).granted);
        // Another process named b cannot share b's fence at 2 (a twin).
        assert!(!g.fence("b", "b@2", 2).granted);
        // b re-fencing at its own epoch (after a lost reply) is fine.
        assert!(g.fence("b", "b@1", 2).granted);
        assert!(accepted(&g.write("b", "b@1", 2, &pts(0, 5..10))));
        let report = g.audit("g", &v1::AuditRequest::default());
        assert_eq!(
            (
                report.expected,
                report.received,
                report.lost,
                report.duplicated
            ),
            (10, 10, 0, 0)
        );
        assert_eq!(report.writers.len(), 2);
        assert_eq!(report.refused_stale, 3);
    }

    #[test]
    fn audit_counts_gaps_duplicates_and_expected_range() {
        let mut g = GroupRecord::default();
        g.fence("a", "a@1", 1);
        g.write("a", "a@1", 1, &pts(0, 0..10));
        g.write("a", "a@1", 1, &pts(0, 8..12));
        g.write("a", "a@1", 1, &pts(0, 20..25));
        g.write("a", "a@1", 1, &pts(1, 0..25));
        let report = g.audit("g", &v1::AuditRequest::default());
        assert_eq!(report.duplicated, 2);
        assert_eq!(report.lost, 8);
        assert_eq!(report.largest_gap_ms, 900);
        let bounded = g.audit(
            "g",
            &v1::AuditRequest {
                has_from_seq: true,
                from_seq: 0,
                has_through_seq: true,
                through_seq: 29,
                expected_streams: 3,
                ..Default::default()
            },
        );
        assert_eq!(bounded.expected, 90);
        assert_eq!(bounded.lost, 8 + 5 + 5 + 30);
    }
}
