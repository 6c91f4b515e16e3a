//! The lab's own wire to the data endpoint: `failover.v1.DataEndpoint` over gRPC, whose `Fence`
//! answers the watermark in the same call.

use failover_core::Point;
use failover_proto::{convert, v1};
use tonic::transport::Channel;

use super::{FenceAnswer, Resume, WriteAnswer};
use crate::state::Shared;

/// A gRPC data endpoint.
#[derive(Debug)]
pub struct GrpcSink {
    client: v1::data_endpoint_client::DataEndpointClient<Channel>,
}

impl GrpcSink {
    pub fn new(channel: Channel) -> Self {
        GrpcSink {
            client: v1::data_endpoint_client::DataEndpointClient::new(channel)
                .max_decoding_message_size(64 * 1024 * 1024),
        }
    }

    pub(super) async fn fence(
        &mut self,
        shared: &Shared,
        group: &str,
        epoch: u64,
    ) -> Result<FenceAnswer, String> {
        let request = v1::FenceRequest {
            group_id: group.to_string(),
            adapter_id: shared.settings.name.clone(),
            epoch,
            writer: shared.writer.clone(),
        };
        let reply = self
            .client
            .fence(request)
            .await
            .map_err(|s| s.message().to_string())?
            .into_inner();
        Ok(FenceAnswer {
            granted: reply.granted,
            fenced_epoch: reply.fenced_epoch,
            resume: Resume::Seqs(convert::watermark_from_wire(&reply.watermark)),
            detail: reply.detail,
        })
    }

    pub(super) async fn write(
        &mut self,
        shared: &Shared,
        group: &str,
        epoch: u64,
        batch: &[Point],
    ) -> Result<WriteAnswer, String> {
        let request = v1::WriteRequest {
            group_id: group.to_string(),
            adapter_id: shared.settings.name.clone(),
            epoch,
            batch: Some(convert::batch_from_points(batch)),
            writer: shared.writer.clone(),
        };
        let reply = self
            .client
            .write(request)
            .await
            .map_err(|s| s.message().to_string())?
            .into_inner();
        Ok(match v1::WriteOutcome::try_from(reply.outcome) {
            Ok(v1::WriteOutcome::Accepted) => WriteAnswer::Accepted {
                accepted: reply.accepted,
            },
            Ok(v1::WriteOutcome::StaleEpoch) => WriteAnswer::Stale {
                fenced_epoch: reply.fenced_epoch,
            },
            _ => WriteAnswer::NotFenced {
                fenced_epoch: reply.fenced_epoch,
            },
        })
    }
}
