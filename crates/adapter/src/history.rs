//! On-demand history recovery (HistoryOnly): a recovery requested on this adapter reads the
//! source's history for its range and buffers it for egress, only while this adapter is
//! Primary (or standalone). It is this adapter's alone: when the adapter loses the Primary role
//! the recovery is abandoned, and the other adapter does not resume or finish it (Doc).

use std::{sync::Arc, time::Duration};

use failover_proto::{convert, v1};
use tonic::transport::Channel;

use crate::state::{RecoveryStatus, Shared};

/// Runs for as long as the adapter runs.
pub async fn run(shared: Arc<Shared>, source: Channel) {
    let mut changed = shared.changed.subscribe();
    let mut client = v1::data_source_client::DataSourceClient::new(source);
    loop {
        let next = {
            let mut st = shared.lock();
            if st.may_egress() {
                st.recoveries
                    .iter_mut()
                    .find(|r| r.status == RecoveryStatus::Pending)
                    .map(|r| {
                        r.status = RecoveryStatus::Running;
                        (r.id.clone(), r.from_seq, r.to_seq)
                    })
            } else {
                None
            }
        };
        let Some((id, from_seq, to_seq)) = next else {
            if changed.changed().await.is_err() {
                return;
            }
            continue;
        };
        tracing::info!(recovery = id, from_seq, to_seq, "history recovery started");
        let outcome = recover(&shared, &mut client, &id, from_seq, to_seq).await;
        shared.update(|st| {
            if let Some(r) = st.recoveries.iter_mut().find(|r| r.id == id)
                && r.status == RecoveryStatus::Running
            {
                r.status = match &outcome {
                    Ok(()) => RecoveryStatus::Completed,
                    Err(e) => RecoveryStatus::Failed(e.clone()),
                };
                tracing::info!(
                    recovery = id,
                    status = r.status.name(),
                    points = r.points,
                    "history recovery ended"
                );
            }
        });
    }
}

async fn recover(
    shared: &Shared,
    client: &mut v1::data_source_client::DataSourceClient<Channel>,
    id: &str,
    from_seq: u64,
    to_seq: u64,
) -> Result<(), String> {
    let request = v1::HistoryRequest {
        client_id: shared.settings.name.clone(),
        from_seq,
        to_seq,
    };
    let mut stream = client
        .read_history(request)
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    loop {
        let batch = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .map_err(|_| "the source stopped answering".to_string())?
            .map_err(|s| s.message().to_string())?;
        let Some(batch) = batch else { return Ok(()) };
        let points = convert::points_from_batch(&batch).map_err(|e| e.to_string())?;
        let still_running = {
            let mut st = shared.lock();
            let running = st
                .recoveries
                .iter()
                .any(|r| r.id == id && r.status == RecoveryStatus::Running);
            if running {
                st.buffer.extend(&points);
                if let Some(r) = st.recoveries.iter_mut().find(|r| r.id == id) {
                    r.points += points.len() as u64;
                }
            }
            running
        };
        if !still_running {
            // Abandoned when the role was lost; not carried over.
            return Ok(());
        }
        shared.data.notify_one();
    }
}
