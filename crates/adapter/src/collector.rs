//! Collection from the data source: while the mode and role say so, a subscription whose points
//! go into the egress buffer and whose component reports set the source health (the score).

use std::sync::Arc;

use failover_core::modes::{Component, SourceHealth};
use failover_proto::{convert, v1};
use tonic::transport::Channel;

use failover_core::retry::{Backoff, RepeatLog};

use crate::state::Shared;

/// Runs for as long as the adapter runs.
pub async fn run(shared: Arc<Shared>, source: Channel) {
    let mut changed = shared.changed.subscribe();
    let mut backoff = Backoff::seeded(&format!("{}/collector", shared.settings.name))
        .broken(shared.settings.broken);
    let mut errors = RepeatLog::new(crate::session::REPEAT_LOG_INTERVAL);
    let origin = tokio::time::Instant::now();
    loop {
        if !shared.lock().activity().collect {
            // Only a real change is announced: every announcement wakes this loop again.
            let was_collecting = {
                let st = shared.lock();
                st.source_health != SourceHealth::Connecting || st.collecting_since_ms.is_some()
            };
            if was_collecting {
                shared.update(|st| {
                    tracing::info!("collection stopped (standby)");
                    st.source_health = SourceHealth::Connecting;
                    st.collecting_since_ms = None;
                });
            }
            if changed.changed().await.is_err() {
                return;
            }
            continue;
        }
        match collect(&shared, source.clone(), &mut changed, &mut backoff).await {
            Ok(()) => {
                errors.clear();
                continue;
            }
            Err(error) => {
                let cap = shared.update(|st| {
                    st.source_health = SourceHealth::Unreachable;
                    // What comes after the break is not what came before it.
                    st.collecting_since_ms = None;
                    st.source_failed_at = Some(tokio::time::Instant::now());
                    st.source_error = Some(error.clone());
                    // A failed collection is a failed connection test: a Warm or Cold adapter
                    // demoted for it stands by at 0 until a test passes, instead of claiming
                    // 100 (Warm) or 1 (Cold) and taking the role straight back. Found by the
                    // simulator: `failover-lab sim --seed 4 --modes Warm`, 150 promotions in
                    // 3 s, and `--seed 185 --modes Cold`, 530 in 5 s, with the source down.
                    if matches!(
                        st.mode(),
                        Some(failover_core::Mode::Warm | failover_core::Mode::Cold)
                    ) {
                        st.connection_test = Some(false);
                    }
                    st.retry_cap()
                });
                if let Some(line) =
                    errors.record(&format!("data source: {error}"), origin.elapsed())
                {
                    tracing::warn!("{line}");
                }
                let delay = backoff.next_delay(cap);
                // Our own update above is no reason to retry early.
                changed.borrow_and_update();
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    r = changed.changed() => { if r.is_err() { return; } }
                }
            }
        }
    }
}

/// Subscribes and collects until collection is no longer wanted (Ok) or the source fails (Err).
async fn collect(
    shared: &Shared,
    source: Channel,
    changed: &mut tokio::sync::watch::Receiver<u64>,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let mut client = v1::data_source_client::DataSourceClient::new(source)
        .max_decoding_message_size(64 * 1024 * 1024);
    let client_id = shared.settings.name.clone();
    let info = client
        .describe(v1::DescribeRequest {})
        .await
        .map_err(|s| format!("describe: {}", s.message()))?
        .into_inner();
    let components: Vec<Component> = info
        .components
        .iter()
        .map(|c| Component {
            id: c.id,
            streams: c.stream_count,
        })
        .collect();
    let mut stream = client
        .subscribe(v1::SubscribeRequest { client_id })
        .await
        .map_err(|s| format!("subscribe: {}", s.message()))?
        .into_inner();
    shared.update(|st| {
        st.components = components;
        st.source_error = None;
    });
    tracing::info!(
        streams = info.streams,
        components = info.components.len(),
        "collecting from the data source"
    );
    loop {
        tokio::select! {
            r = changed.changed() => {
                if r.is_err() || !shared.lock().activity().collect {
                    return Ok(());
                }
            }
            msg = stream.message() => match msg {
                Ok(Some(update)) => {
                    backoff.reset();
                    let points = match &update.batch {
                        Some(b) => convert::points_from_batch(b).map_err(|e| e.to_string())?,
                        None => Vec::new(),
                    };
                    let health = SourceHealth::Connected { down_components: update.down_components };
                    let health_changed = shared.lock().source_health != health;
                    let added = !points.is_empty();
                    let starts = shared.lock().collecting_since_ms.is_none() && !points.is_empty();
                    let apply = |st: &mut crate::state::AdapterState| {
                        if let Some(last) = points.last() {
                            st.last_data_unix_ms = Some(last.timestamp_ms);
                        }
                        if st.collecting_since_ms.is_none() {
                            st.collecting_since_ms = points.iter().map(|p| p.timestamp_ms).min();
                        }
                        st.buffer.extend(&points);
                        st.collected += points.len() as u64;
                        if health_changed {
                            tracing::info!(?health, "data source health changed");
                            st.source_health = health.clone();
                        }
                    };
                    if health_changed || starts {
                        shared.update(apply);
                    } else {
                        apply(&mut shared.lock());
                    }
                    if added {
                        shared.data.notify_one();
                    }
                }
                Ok(None) => return Err("the data source ended the subscription".into()),
                Err(status) => return Err(status.message().to_string()),
            }
        }
    }
}
