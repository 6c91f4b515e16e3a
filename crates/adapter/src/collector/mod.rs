//! Collection from the data source: while the mode and role say so, a subscription whose points
//! go into the egress buffer and whose component reports set the source health (the score).
//!
//! The source URL's scheme picks the wire ([`SourceWire`]): `http(s)://` is the lab's gRPC
//! `DataSource` (here), `mqtt://` an MQTT 3.1.1 server publishing the lab's topics
//! ([`mqtt`]), `opc.tcp://` an OPC UA server with the lab's address space ([`opcua`]). The rules
//! above are the same on all three.

pub mod mqtt;
pub mod opcua;

use std::sync::Arc;

use failover_core::modes::{Component, SourceHealth};
use failover_proto::{convert, v1};
use tonic::transport::Channel;

use failover_core::retry::{Backoff, RepeatLog};

use crate::state::Shared;

/// How the adapter reaches its source.
#[derive(Debug, Clone)]
pub enum SourceWire {
    /// The lab's gRPC `DataSource`: subscriptions, connection tests, history.
    Grpc(Channel),
    /// An MQTT server (`mqtt://host:port`): live points and component health; no history.
    Mqtt(mqtt::MqttServer),
    /// An OPC UA server (`opc.tcp://host:port`): live values and component health; no history.
    OpcUa(opcua::OpcUaServer),
}

impl SourceWire {
    /// The wire for `url`, with `grpc` as the channel when it is gRPC.
    pub fn for_url(url: &str, grpc: Channel) -> anyhow::Result<SourceWire> {
        if let Some(server) = mqtt::MqttServer::from_url(url)? {
            return Ok(SourceWire::Mqtt(server));
        }
        if let Some(server) = opcua::OpcUaServer::from_url(url)? {
            return Ok(SourceWire::OpcUa(server));
        }
        Ok(SourceWire::Grpc(grpc))
    }
}

/// Adds the points and health of one update from the source to the adapter's state.
pub(crate) fn take_update(shared: &Shared, points: &[failover_core::Point], health: SourceHealth) {
    let health_changed = shared.lock().source_health != health;
    let vendor = shared.settings.behaviour == failover_core::Behaviour::Vendor;
    // Only the vendor's behaviour stamps what it receives.
    let received_ms = if vendor { shared.clock_ms() } else { 0 };
    let added = !points.is_empty();
    let starts = shared.lock().collecting_since_ms.is_none() && !points.is_empty();
    let apply = |st: &mut crate::state::AdapterState| {
        if matches!(health, SourceHealth::Connected { .. }) {
            st.source_known_down = false;
        }
        if let Some(last) = points.last() {
            st.last_data_unix_ms = Some(last.timestamp_ms);
        }
        if st.collecting_since_ms.is_none() {
            st.collecting_since_ms = points.iter().map(|p| p.timestamp_ms).min();
        }
        st.buffer.extend(points);
        if vendor {
            st.received.record(received_ms, points);
            if st.role == Some(failover_core::Role::Primary) && !points.is_empty() {
                // V4: a Primary hands what it receives to its egress at once: processed.
                st.last_data_processed_ms = Some(received_ms);
            }
        }
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

/// Runs for as long as the adapter runs.
pub async fn run(shared: Arc<Shared>, source: SourceWire) {
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
        let collected = match &source {
            SourceWire::Grpc(channel) => {
                collect(&shared, channel.clone(), &mut changed, &mut backoff).await
            }
            SourceWire::Mqtt(server) => {
                mqtt::collect(&shared, server, &mut changed, &mut backoff).await
            }
            SourceWire::OpcUa(server) => {
                opcua::collect(&shared, server, &mut changed, &mut backoff).await
            }
        };
        match collected {
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
                    st.source_known_down = true;
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
                    take_update(shared, &points, health);
                }
                Ok(None) => return Err("the data source ended the subscription".into()),
                Err(status) => return Err(status.message().to_string()),
            }
        }
    }
}
