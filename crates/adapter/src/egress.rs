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

use std::{sync::Arc, time::Duration};

use failover_core::{Point, Watermark};
use failover_proto::{convert, process, v1};
use tonic::transport::Channel;

use failover_core::retry::{Backoff, RepeatLog};

use crate::state::Shared;

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
pub async fn run(shared: Arc<Shared>, endpoint: Channel) {
    let mut changed = shared.changed.subscribe();
    let mut client = v1::data_endpoint_client::DataEndpointClient::new(endpoint)
        .max_decoding_message_size(64 * 1024 * 1024);
    let mut backoff =
        Backoff::seeded(&format!("{}/egress", shared.settings.name)).broken(shared.settings.broken);
    let mut errors = RepeatLog::new(crate::session::REPEAT_LOG_INTERVAL);
    let origin = tokio::time::Instant::now();
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
        let (outcome, wake_on_change) = if fenced_at != Some(epoch) {
            (fence(&shared, &mut client, &group, epoch).await, true)
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
                write(&shared, &mut client, &group, epoch, &batch).await,
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

async fn fence(
    shared: &Shared,
    client: &mut v1::data_endpoint_client::DataEndpointClient<Channel>,
    group: &str,
    epoch: u64,
) -> Result<(), String> {
    let request = v1::FenceRequest {
        group_id: group.to_string(),
        adapter_id: shared.settings.name.clone(),
        epoch,
        writer: shared.writer.clone(),
    };
    match client.fence(request).await.map(tonic::Response::into_inner) {
        Ok(reply) if reply.granted => {
            let watermark = convert::watermark_from_wire(&reply.watermark);
            shared.update(|st| {
                if st.epoch != epoch || !st.may_egress() {
                    return; // the role changed meanwhile; start over
                }
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
        Err(status) => Err(endpoint_failed(shared, &status)),
    }
}

async fn write(
    shared: &Shared,
    client: &mut v1::data_endpoint_client::DataEndpointClient<Channel>,
    group: &str,
    epoch: u64,
    batch: &[Point],
) -> Result<(), String> {
    let request = v1::WriteRequest {
        group_id: group.to_string(),
        adapter_id: shared.settings.name.clone(),
        epoch,
        batch: Some(convert::batch_from_points(batch)),
        writer: shared.writer.clone(),
    };
    let reply = match client.write(request).await {
        Ok(r) => r.into_inner(),
        Err(status) => return Err(endpoint_failed(shared, &status)),
    };
    match v1::WriteOutcome::try_from(reply.outcome) {
        Ok(v1::WriteOutcome::Accepted) => {
            let sent = Watermark::from_pairs(batch.iter().map(|p| (p.stream_id, p.seq)));
            let recovered = {
                let mut st = shared.lock();
                for (stream, seq) in sent.to_pairs() {
                    st.egress_watermark.advance(stream, seq);
                }
                // Drop what the endpoint now holds (exact even if the buffer changed meanwhile).
                let wm = st.egress_watermark.clone();
                st.buffer.trim(&wm);
                st.egressed += reply.accepted;
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
        Ok(v1::WriteOutcome::StaleEpoch) => {
            let why = format!(
                "the endpoint refused a write: epoch {epoch} is older than the fenced epoch {}",
                reply.fenced_epoch
            );
            shared.update(|st| {
                st.refused_stale += batch.len() as u64;
                if st.failover.is_some() {
                    st.fenced_out(reply.fenced_epoch, why.clone());
                } else {
                    st.fenced_at = None;
                    st.endpoint_error = Some(why.clone());
                }
            });
            Err(why)
        }
        _ => {
            // Not fenced at this epoch (the endpoint restarted, say): fence again, after a
            // backoff if it keeps happening.
            shared.update(|st| st.fenced_at = None);
            Err(format!(
                "the endpoint says epoch {epoch} is not fenced (fenced epoch {}): fencing again",
                reply.fenced_epoch
            ))
        }
    }
}

/// Records an endpoint failure; returns its description.
fn endpoint_failed(shared: &Shared, status: &tonic::Status) -> String {
    let msg = format!("data endpoint: {}", status.message());
    shared.update(|st| {
        st.endpoint_error = Some(msg.clone());
        // Re-read the watermark before writing again: the failed write may have landed.
        st.fenced_at = None;
    });
    format!("{msg}; keeping data buffered")
}
