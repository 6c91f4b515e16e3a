//! The intruder: what stands for a far-ahead epoch in a fault (`FaultKind::EpochAhead`) and in
//! the scenario steps `fence_ahead` and `member_ahead`. It speaks the lab's own gRPC over any
//! channel, so the seeded runs and every stage of the scenario runner use the same one.

use std::time::Duration;

use failover_core::Mode;
use failover_proto::v1;
use tokio::sync::{mpsc, watch};
use tonic::transport::Channel;

/// The intruder's name, as a member and as a writer.
pub const NAME: &str = "intruder";

/// Fences the endpoint for the group at `epoch`, as a writer named [`NAME`].
pub async fn fence(endpoint: Channel, group: &str, epoch: u64) -> Result<(), tonic::Status> {
    v1::data_endpoint_client::DataEndpointClient::new(endpoint)
        .fence(v1::FenceRequest {
            group_id: group.to_string(),
            adapter_id: NAME.into(),
            epoch,
            writer: NAME.into(),
        })
        .await
        .map(|_| ())
}

/// How the intruder member joins: the group's fixed settings (a heartbeat must carry them) and
/// the epoch it announces.
#[derive(Debug, Clone)]
pub struct Member {
    /// The group.
    pub group: String,
    /// The group's name and description, as fixed at its creation.
    pub name: String,
    /// Likewise.
    pub description: String,
    /// The group's failoverTimeout.
    pub failover_timeout: Duration,
    /// The mode it says it is in.
    pub mode: Mode,
    /// The epoch it announces.
    pub epoch: u64,
}

/// A member named [`NAME`] that announces `m.epoch` in its heartbeats (score 0, so it is never
/// promoted) every failoverTimeout/2, until `stop` says so; then it leaves. A stream that ends
/// ends it.
pub async fn member(arbiter: Channel, m: Member, mut stop: watch::Receiver<bool>) {
    let Member {
        group,
        name,
        description,
        failover_timeout,
        mode,
        epoch,
    } = m;
    let mut client = v1::arbiter_client::ArbiterClient::new(arbiter);
    let (tx, rx) = mpsc::channel(4);
    let beat = |leaving: bool| v1::HeartbeatRequest {
        group_id: group.clone(),
        adapter_id: NAME.into(),
        incarnation: format!("{NAME}-{epoch}"),
        score: 0,
        mode: failover_proto::convert::mode_to_wire(mode) as i32,
        failover_timeout_ms: u64::try_from(failover_timeout.as_millis()).unwrap_or(0),
        known_epoch: epoch,
        leaving,
        name: name.clone(),
        description: description.clone(),
        ..Default::default()
    };
    if tx.send(beat(false)).await.is_err() {
        return;
    }
    let Ok(response) = client
        .heartbeat(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
    else {
        return;
    };
    let mut answers = response.into_inner();
    loop {
        tokio::select! {
            () = tokio::time::sleep(failover_timeout / 2) => {
                if tx.send(beat(false)).await.is_err() { return; }
            }
            r = stop.changed() => {
                let stopped = r.is_ok() && *stop.borrow();
                if !stopped && r.is_ok() {
                    continue;
                }
                if stopped {
                    let _ = tx.send(beat(true)).await;
                    let _ = tokio::time::timeout(Duration::from_secs(1), answers.message()).await;
                }
                return;
            }
            m = answers.message() => if !matches!(m, Ok(Some(_))) { return; },
        }
    }
}
