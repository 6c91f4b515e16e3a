//! Egress to the data endpoint, while this adapter may egress (Primary, or standalone).
//!
//! Before the first write at an epoch, the adapter fences the endpoint at that epoch and reads
//! the per-stream watermark in the same call, drops from its buffer everything the watermark
//! covers, and then writes the rest in order: a promoted Hot Secondary flushes exactly the
//! points after the watermark, then live data. After any failed write it fences again (which
//! re-reads the watermark), so a write whose reply was lost is never sent twice. A write
//! refused as stale means another adapter was promoted: this one steps down at once.

use std::{sync::Arc, time::Duration};

use failover_core::{Point, Watermark};
use failover_proto::{convert, process, v1};
use tonic::transport::Channel;

use crate::state::{Backoff, Shared};

/// Group id used by an adapter without failover configuration.
pub const STANDALONE_GROUP: &str = "standalone";

/// Runs for as long as the adapter runs.
pub async fn run(shared: Arc<Shared>, endpoint: Channel) {
    let mut changed = shared.changed.subscribe();
    let mut client = v1::data_endpoint_client::DataEndpointClient::new(endpoint)
        .max_decoding_message_size(64 * 1024 * 1024);
    let mut backoff = Backoff::new(Duration::from_secs(1));
    loop {
        let (may, group, epoch, fenced_at) = {
            let mut st = shared.lock();
            st.check_lease(tokio::time::Instant::now());
            let group = st
                .failover
                .as_ref()
                .map_or(STANDALONE_GROUP.to_string(), |f| {
                    f.failover_group_id.clone()
                });
            (st.may_egress(), group, st.epoch, st.fenced_at)
        };
        if !may {
            if changed.changed().await.is_err() {
                return;
            }
            continue;
        }
        if fenced_at != Some(epoch) {
            match fence(&shared, &mut client, &group, epoch).await {
                Ok(()) => backoff.reset(),
                Err(()) => tokio::time::sleep(backoff.next_delay()).await,
            }
            continue;
        }
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
        match write(&shared, &mut client, &group, epoch, &batch).await {
            Ok(()) => backoff.reset(),
            Err(()) => tokio::time::sleep(backoff.next_delay()).await,
        }
    }
}

async fn fence(
    shared: &Shared,
    client: &mut v1::data_endpoint_client::DataEndpointClient<Channel>,
    group: &str,
    epoch: u64,
) -> Result<(), ()> {
    let request = v1::FenceRequest {
        group_id: group.to_string(),
        adapter_id: shared.settings.name.clone(),
        epoch,
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
            shared.update(|st| {
                st.known_epoch = st.known_epoch.max(reply.fenced_epoch);
                st.step_down(format!(
                    "the endpoint refused to fence at epoch {epoch}: {}",
                    reply.detail
                ));
            });
            Ok(())
        }
        Err(status) => {
            endpoint_failed(shared, &status);
            Err(())
        }
    }
}

async fn write(
    shared: &Shared,
    client: &mut v1::data_endpoint_client::DataEndpointClient<Channel>,
    group: &str,
    epoch: u64,
    batch: &[Point],
) -> Result<(), ()> {
    let request = v1::WriteRequest {
        group_id: group.to_string(),
        adapter_id: shared.settings.name.clone(),
        epoch,
        batch: Some(convert::batch_from_points(batch)),
    };
    let reply = match client.write(request).await {
        Ok(r) => r.into_inner(),
        Err(status) => {
            endpoint_failed(shared, &status);
            return Err(());
        }
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
            shared.update(|st| {
                st.refused_stale += batch.len() as u64;
                st.known_epoch = st.known_epoch.max(reply.fenced_epoch);
                st.step_down(format!(
                    "the endpoint refused a write: epoch {epoch} is older than the fenced epoch {}",
                    reply.fenced_epoch
                ));
            });
            Ok(())
        }
        _ => {
            // Not fenced at this epoch (the endpoint restarted, say): fence again.
            shared.update(|st| st.fenced_at = None);
            Ok(())
        }
    }
}

fn endpoint_failed(shared: &Shared, status: &tonic::Status) {
    shared.update(|st| {
        let msg = format!("data endpoint: {}", status.message());
        if st.endpoint_error.as_deref() != Some(msg.as_str()) {
            tracing::warn!(buffered = st.buffer.len(), "{msg}; keeping data buffered");
        }
        st.endpoint_error = Some(msg);
        // Re-read the watermark before writing again: the failed write may have landed.
        st.fenced_at = None;
    });
}
