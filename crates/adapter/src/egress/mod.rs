//! Egress to the data endpoint, while this adapter may egress (Primary, or standalone).
//!
//! Before the first write at an epoch, the adapter fences the endpoint at that epoch and reads
//! the per-stream watermark in the same call, drops from its buffer everything the watermark
//! covers, and then writes the rest in order: a promoted Hot Secondary flushes exactly the
//! points after the watermark, then live data. After any failed write it fences again (which
//! re-reads the watermark), so a write whose reply was lost is never sent twice. A fence or a
//! write refused because the endpoint holds a newer epoch means another writer fenced it: this
//! one steps down at once and reports the epoch in its next heartbeat (sent at once), and the
//! service answers with a promotion above it or a demotion. Every retry backs off.
//!
//! A standalone adapter (no failover configured) egresses as itself, in a group of its own
//! (`standalone/<name>`), so any number of them share an endpoint.
//!
//! The vendor's behaviour (docs/vendor-behaviour.md) skips the fence: it writes its buffer in
//! order as it is (its LastDataProcessedTime moves when data is handed over, not when the
//! endpoint takes it: V4).
//!
//! The rules above are the same on both wires ([`Sink`]): the lab's gRPC `DataEndpoint`
//! ([`grpc`]), and OMF over HTTP ([`omf`]), picked by an endpoint URL whose path ends in `/omf`.

pub mod grpc;
pub mod omf;

use std::{sync::Arc, time::Duration};

use failover_core::{Point, Watermark, points::StreamMap};
use failover_proto::process;

use failover_core::retry::{Backoff, RepeatLog};

use crate::state::Shared;

/// Where a new Primary resumes, as the endpoint tells it.
#[derive(Debug, Clone, PartialEq)]
pub enum Resume {
    /// The last sequence number held per stream (the lab's endpoint over gRPC).
    Seqs(Watermark),
    /// The data time of the last value held per stream (an OMF endpoint read back): every
    /// buffered point of a stream at or before it is already there.
    Times(StreamMap<i64>),
}

/// The endpoint's answer to a fence.
#[derive(Debug, Clone, PartialEq)]
pub struct FenceAnswer {
    pub granted: bool,
    pub fenced_epoch: u64,
    pub resume: Resume,
    pub detail: String,
}

/// The endpoint's answer to a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteAnswer {
    /// Taken: `accepted` points new to the endpoint.
    Accepted { accepted: u64 },
    /// Refused: another writer fenced a newer epoch.
    Stale { fenced_epoch: u64 },
    /// Refused: this epoch is not fenced by this writer (the endpoint restarted, say).
    NotFenced { fenced_epoch: u64 },
    /// The batch's first `through` points are done with: the last `rejected` of them were
    /// refused as bad (an OMF 400), which no retry of the same points can change.
    Rejected {
        through: usize,
        rejected: u64,
        reason: String,
    },
}

/// A data endpoint, on one of its wires. A transport failure is an `Err` with its words.
#[derive(Debug)]
pub enum Sink {
    Grpc(grpc::GrpcSink),
    Omf(omf::OmfSink),
}

impl Sink {
    /// The sink for `settings.endpoint_url`: OMF when its path ends in `/omf`, else gRPC.
    pub fn for_settings(settings: &crate::AdapterSettings) -> anyhow::Result<Sink> {
        if omf::is_omf_url(&settings.endpoint_url) {
            Ok(Sink::Omf(omf::OmfSink::new(settings)?))
        } else {
            Ok(Sink::Grpc(grpc::GrpcSink::new(
                failover_proto::net::lazy_channel(&settings.endpoint_url, &settings.network, None)?,
            )))
        }
    }

    async fn fence(
        &mut self,
        shared: &Shared,
        group: &str,
        epoch: u64,
    ) -> Result<FenceAnswer, String> {
        match self {
            Sink::Grpc(s) => s.fence(shared, group, epoch).await,
            Sink::Omf(s) => s.fence(shared, group, epoch).await,
        }
    }

    async fn write(
        &mut self,
        shared: &Shared,
        group: &str,
        epoch: u64,
        batch: &[Point],
    ) -> Result<WriteAnswer, String> {
        match self {
            Sink::Grpc(s) => s.write(shared, group, epoch, batch).await,
            Sink::Omf(s) => s.write(shared, group, epoch, batch).await,
        }
    }
}

/// The endpoint group of an adapter without failover configuration: one of its own.
pub fn standalone_group(name: &str) -> String {
    format!("standalone/{name}")
}

/// The endpoint group this adapter egresses to now.
pub fn egress_group(shared: &Shared, st: &crate::state::AdapterState) -> String {
    st.failover.as_ref().map_or_else(
        || standalone_group(&shared.settings.name),
        |f| f.failover_group_id.clone(),
    )
}

/// Runs for as long as the adapter runs.
pub async fn run(shared: Arc<Shared>, mut sink: Sink) {
    let mut changed = shared.changed.subscribe();
    let mut backoff =
        Backoff::seeded(&format!("{}/egress", shared.settings.name)).broken(shared.settings.broken);
    let mut errors = RepeatLog::new(crate::session::REPEAT_LOG_INTERVAL);
    let origin = tokio::time::Instant::now();
    // The vendor's behaviour never fences: it writes its queue as it is.
    let fences = shared.settings.behaviour == failover_core::Behaviour::Lab;
    loop {
        let (may, group, epoch, fenced_at, cap) = {
            let st = shared.lock();
            (
                st.may_egress(),
                egress_group(&shared, &st),
                st.epoch,
                st.fenced_at,
                st.retry_cap(),
            )
        };
        if !may {
            if changed.changed().await.is_err() {
                return;
            }
            continue;
        }
        // A fence first (whose failure may end early on a new role or epoch), else a write.
        let (outcome, wake_on_change) = if fences && fenced_at != Some(epoch) {
            (fence(&shared, &mut sink, &group, epoch).await, true)
        } else {
            let batch = {
                let st = shared.lock();
                st.buffer.front_batch(shared.settings.batch_size)
            };
            if batch.is_empty() {
                tokio::select! {
                    () = shared.data.notified() => {}
                    r = changed.changed() => { if r.is_err() { return; } }
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                continue;
            }
            (
                write(&shared, &mut sink, &group, epoch, &batch).await,
                false,
            )
        };
        match outcome {
            Ok(()) => {
                backoff.reset();
                errors.clear();
            }
            Err(why) => {
                if let Some(line) = errors.record(&why, origin.elapsed()) {
                    tracing::warn!(buffered = shared.lock().buffer.len(), "{line}");
                }
                let delay = backoff.next_delay(cap);
                if wake_on_change {
                    // Our own update (the refusal) is no reason to retry early.
                    changed.borrow_and_update();
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        // A new role or epoch: try at once.
                        r = changed.changed() => { if r.is_err() { return; } }
                    }
                } else {
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

async fn fence(shared: &Shared, sink: &mut Sink, group: &str, epoch: u64) -> Result<(), String> {
    match sink.fence(shared, group, epoch).await {
        Ok(reply) if reply.granted => {
            shared.update(|st| {
                if st.epoch != epoch || !st.may_egress() {
                    return; // the role changed meanwhile; start over
                }
                let watermark = match &reply.resume {
                    Resume::Seqs(w) => w.clone(),
                    Resume::Times(times) => st.buffer.watermark_through(times),
                };
                let trimmed = st.buffer.trim(&watermark);
                tracing::info!(
                    event = "fenced",
                    epoch,
                    streams = watermark.len(),
                    skipped = trimmed,
                    flushing = st.buffer.len(),
                    "fenced the endpoint at epoch {epoch}; {} buffered points after the watermark to flush ({trimmed} already there)",
                    st.buffer.len()
                );
                st.egress_watermark = watermark;
                st.fenced_at = Some(epoch);
                st.fenced_unix_us = Some(process::unix_us());
                st.last_fence = Some((epoch, st.buffer.len() as u64));
                st.endpoint_error = None;
            });
            Ok(())
        }
        Ok(reply) => {
            let why = format!(
                "the endpoint refused to fence at epoch {epoch}: {}",
                reply.detail
            );
            shared.update(|st| {
                if st.failover.is_some() {
                    st.fenced_out(reply.fenced_epoch, why.clone());
                } else {
                    // Standalone: nobody else should write in our group; say so and retry.
                    st.endpoint_error = Some(why.clone());
                }
            });
            Err(why)
        }
        Err(why) => Err(endpoint_failed(shared, why)),
    }
}

async fn write(
    shared: &Shared,
    sink: &mut Sink,
    group: &str,
    epoch: u64,
    batch: &[Point],
) -> Result<(), String> {
    let reply = match sink.write(shared, group, epoch, batch).await {
        Ok(r) => r,
        Err(why) => return Err(endpoint_failed(shared, why)),
    };
    match reply {
        WriteAnswer::Accepted { accepted } => {
            let sent = Watermark::from_pairs(batch.iter().map(|p| (p.stream_id, p.seq)));
            let recovered = {
                let mut st = shared.lock();
                for (stream, seq) in sent.to_pairs() {
                    st.egress_watermark.advance(stream, seq);
                }
                // Drop what the endpoint now holds (exact even if the buffer changed meanwhile).
                let wm = st.egress_watermark.clone();
                st.buffer.trim(&wm);
                // Forget the receive times of what the endpoint now holds (the vendor's
                // LastDataProcessedTime moved when the data was handed over, V4).
                st.received.sent(&wm);
                st.egressed += accepted;
                if let Some(at) = st.promoted_at.take() {
                    st.last_takeover = Some(at.elapsed());
                }
                st.endpoint_error.take().is_some()
            };
            if recovered {
                tracing::info!("data endpoint reachable again; egress resumed");
                shared.notify();
            }
            Ok(())
        }
        WriteAnswer::Rejected {
            through,
            rejected,
            reason,
        } => {
            // Sending the same points again would be refused again: they are dropped, and the
            // audit counts them lost. Said loudly, and kept as the endpoint's error.
            tracing::error!(rejected, "{reason}; these points are dropped");
            let done = Watermark::from_pairs(
                batch[..through.min(batch.len())]
                    .iter()
                    .map(|p| (p.stream_id, p.seq)),
            );
            shared.update(|st| {
                for (stream, seq) in done.to_pairs() {
                    st.egress_watermark.advance(stream, seq);
                }
                let wm = st.egress_watermark.clone();
                st.buffer.trim(&wm);
                // Forget the receive times of what the endpoint now holds (the vendor's
                // LastDataProcessedTime moved when the data was handed over, V4).
                st.received.sent(&wm);
                st.endpoint_error = Some(format!("{reason} ({rejected} points dropped)"));
            });
            Ok(())
        }
        WriteAnswer::Stale { fenced_epoch } => {
            let why = format!(
                "the endpoint refused a write: epoch {epoch} is older than the fenced epoch {fenced_epoch}"
            );
            shared.update(|st| {
                st.refused_stale += batch.len() as u64;
                if st.failover.is_some() {
                    st.fenced_out(fenced_epoch, why.clone());
                } else {
                    st.fenced_at = None;
                    st.endpoint_error = Some(why.clone());
                }
            });
            Err(why)
        }
        WriteAnswer::NotFenced { fenced_epoch } => {
            // Not fenced at this epoch (the endpoint restarted, say): fence again, after a
            // backoff if it keeps happening.
            shared.update(|st| st.fenced_at = None);
            Err(format!(
                "the endpoint says epoch {epoch} is not fenced (fenced epoch {fenced_epoch}): fencing again"
            ))
        }
    }
}

/// Records an endpoint failure; returns its description.
fn endpoint_failed(shared: &Shared, why: String) -> String {
    let msg = format!("data endpoint: {why}");
    shared.update(|st| {
        st.endpoint_error = Some(msg.clone());
        // Re-read the watermark before writing again: the failed write may have landed.
        st.fenced_at = None;
    });
    format!("{msg}; keeping data buffered")
}
