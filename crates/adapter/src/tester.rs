//! Connection tests: a Warm standby (and a HistoryOnly adapter, which has no live subscription)
//! tests its source connection when it starts standing by and then every warm test interval
//! (default 5 minutes, Doc); the result sets its score (100 passed, 0 failed). A standby whose
//! own collection failed (Warm or Cold) tests too, and stands at 0 until a test passes; after a
//! failed test the next comes within failoverTimeout (at least 1 s), not the whole interval,
//! so a pair whose source returns takes the role again within a failoverTimeout.

use std::{sync::Arc, time::Duration};

use failover_proto::v1;
use tokio::time::Instant;

use crate::{collector::SourceWire, state::Shared};

/// Runs for as long as the adapter runs.
pub async fn run(shared: Arc<Shared>, source: SourceWire) {
    let mut changed = shared.changed.subscribe();
    let interval = shared.settings.warm_test_interval;
    let mut next_test: Option<Instant> = None;
    loop {
        if !shared.lock().activity().test_connection {
            if next_test.take().is_some() {
                shared.update(|st| st.connection_test = None);
            }
            if changed.changed().await.is_err() {
                return;
            }
            continue;
        }
        let due = *next_test.get_or_insert_with(Instant::now);
        tokio::select! {
            () = tokio::time::sleep_until(due) => {
                let (ok, detail) = test(&source, &shared.settings.name).await;
                shared.update(|st| {
                    if st.connection_test != Some(ok) {
                        tracing::info!(event = "connection_test", ok, "source connection test: {detail}");
                    }
                    st.connection_test = Some(ok);
                    st.source_known_down = !ok;
                });
                let retest = shared.lock().failover.as_ref().map_or(interval, |f| {
                    f.failover_timeout.max(Duration::from_secs(1))
                });
                next_test = Some(Instant::now() + if ok { interval } else { interval.min(retest) });
            }
            r = changed.changed() => { if r.is_err() { return; } }
        }
    }
}

/// One connection test on the source's wire.
async fn test(source: &SourceWire, name: &str) -> (bool, String) {
    match source {
        SourceWire::Grpc(channel) => {
            let mut client = v1::data_source_client::DataSourceClient::new(channel.clone());
            let request = v1::ClientRequest {
                client_id: name.to_string(),
            };
            match tokio::time::timeout(Duration::from_secs(2), client.test_connection(request))
                .await
            {
                Ok(Ok(r)) => {
                    let r = r.into_inner();
                    (r.ok, r.detail)
                }
                Ok(Err(status)) => (false, status.message().to_string()),
                Err(_) => (false, "no answer within 2 s".to_string()),
            }
        }
        SourceWire::Mqtt(server) => crate::collector::mqtt::test_connection(server, name).await,
        SourceWire::OpcUa(server) => crate::collector::opcua::test_connection(server, name).await,
    }
}
