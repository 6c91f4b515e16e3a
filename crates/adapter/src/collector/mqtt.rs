//! Collection over MQTT (a source URL `mqtt://host:port`), with rumqttc: the adapter connects
//! with its name as client id, subscribes to `failover-lab/#` at QoS 1 and takes
//!
//! - `failover-lab/{component}/{stream}`: `{"seq":N,"timestamp":"…Z","value":V}`, a point;
//! - `failover-lab/{component}/status`: `{"up":B,"first_stream":S,"streams":N}`, a
//!   component's health, which with the others makes the score.
//!
//! A message on these topics that is not one of these is not ours: it is dropped and counted,
//! and the log says so (once per interval, not once per message). The modes keep their meaning:
//! a Hot standby subscribes, a Warm one only connects to test ([`test_connection`]), a Cold one
//! does not connect. MQTT keeps no history: history recoveries need a gRPC or OPC UA source.

use std::{collections::BTreeMap, time::Duration};

use failover_core::{
    Point,
    modes::{Component, SourceHealth},
    retry::{Backoff, RepeatLog},
};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

use crate::state::Shared;

pub use failover_proto::wires::mqtt::ROOT;

/// An MQTT server to collect from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttServer {
    pub host: String,
    pub port: u16,
}

impl MqttServer {
    /// The server of an `mqtt://host[:port]` URL (port 1883 by default); None for another
    /// scheme; an error for `mqtts://` (TLS is not supported yet) or a URL without a host.
    pub fn from_url(url: &str) -> anyhow::Result<Option<MqttServer>> {
        let Ok(u) = url::Url::parse(url) else {
            return Ok(None);
        };
        match u.scheme() {
            "mqtt" => {
                let host = u
                    .host_str()
                    .filter(|h| !h.is_empty())
                    .ok_or_else(|| anyhow::anyhow!("source {url}: an mqtt:// URL needs a host"))?;
                Ok(Some(MqttServer {
                    host: host.trim_matches(['[', ']']).to_string(),
                    port: u.port().unwrap_or(1883),
                }))
            }
            "mqtts" => anyhow::bail!(
                "source {url}: MQTT over TLS (mqtts://) is not supported yet; use mqtt://"
            ),
            _ => Ok(None),
        }
    }

    fn options(&self, client_id: &str) -> MqttOptions {
        let mut o = MqttOptions::new(client_id, self.host.clone(), self.port);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_clean_session(true);
        o.set_max_packet_size(1 << 20, 64 * 1024);
        o
    }
}

/// What one message on the source's topics is.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Point(Point),
    Status {
        component: u32,
        up: bool,
        streams: u32,
    },
}

/// Reads a message of the source's topics; Err says why it is not one.
pub fn read_message(topic: &str, payload: &[u8]) -> Result<Message, String> {
    let parts: Vec<&str> = topic.split('/').collect();
    let [root, component, last] = parts.as_slice() else {
        return Err(format!(
            "topic {topic:?} is not failover-lab/COMPONENT/STREAM or /status"
        ));
    };
    if *root != ROOT {
        return Err(format!("topic {topic:?} is not under {ROOT}/"));
    }
    let component: u32 = component
        .parse()
        .map_err(|_| format!("topic {topic:?}: the component is not a number"))?;
    let body: Value = serde_json::from_slice(payload)
        .map_err(|e| format!("{topic}: the message is not JSON ({e})"))?;
    let field = |k: &str| body.get(k).ok_or_else(|| format!("{topic}: no {k:?}"));
    if *last == "status" {
        let up = field("up")?
            .as_bool()
            .ok_or_else(|| format!("{topic}: \"up\" is not true or false"))?;
        let streams = field("streams")?
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("{topic}: \"streams\" is not a count"))?;
        return Ok(Message::Status {
            component,
            up,
            streams,
        });
    }
    let stream: u32 = last
        .parse()
        .map_err(|_| format!("topic {topic:?}: the stream is not a number"))?;
    let seq = field("seq")?
        .as_u64()
        .ok_or_else(|| format!("{topic}: \"seq\" is not a whole number"))?;
    let timestamp_ms = field("timestamp")?
        .as_str()
        .ok_or_else(|| format!("{topic}: \"timestamp\" is not text"))
        .and_then(|t| {
            failover_core::clock_time::parse_utc_ms(t).map_err(|e| format!("{topic}: {e}"))
        })?;
    let value = field("value")?
        .as_f64()
        .ok_or_else(|| format!("{topic}: \"value\" is not a number"))?;
    Ok(Message::Point(Point {
        stream_id: stream,
        seq,
        timestamp_ms,
        value,
    }))
}

/// Subscribes and collects until collection is no longer wanted (Ok) or the connection fails
/// (Err).
pub async fn collect(
    shared: &Shared,
    server: &MqttServer,
    changed: &mut tokio::sync::watch::Receiver<u64>,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let (client, mut events) = AsyncClient::new(server.options(&shared.settings.name), 256);
    // component -> (up, streams)
    let mut components: BTreeMap<u32, (bool, u32)> = BTreeMap::new();
    let mut not_ours = RepeatLog::new(crate::session::REPEAT_LOG_INTERVAL);
    let origin = tokio::time::Instant::now();
    loop {
        tokio::select! {
            r = changed.changed() => {
                if r.is_err() || !shared.lock().activity().collect {
                    let _ = client.try_disconnect();
                    return Ok(());
                }
            }
            event = events.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    if ack.code != ConnectReturnCode::Success {
                        return Err(format!("the MQTT server refused the connection: {:?}", ack.code));
                    }
                    client
                        .try_subscribe(format!("{ROOT}/#"), QoS::AtLeastOnce)
                        .map_err(|e| format!("MQTT subscribe: {e}"))?;
                    shared.update(|st| st.source_error = None);
                    tracing::info!(server = ?server, "collecting from the data source over MQTT");
                }
                Ok(Event::Incoming(Packet::Publish(p))) => match read_message(&p.topic, &p.payload) {
                    Ok(Message::Point(point)) => {
                        backoff.reset();
                        let health = health_of(&components);
                        take_points(shared, &[point], health);
                    }
                    Ok(Message::Status { component, up, streams }) => {
                        components.insert(component, (up, streams));
                        shared.update(|st| {
                            st.components = components
                                .iter()
                                .map(|(id, (_, streams))| Component { id: *id, streams: *streams })
                                .collect();
                        });
                        take_points(shared, &[], health_of(&components));
                    }
                    Err(why) => {
                        if let Some(line) = not_ours.record(
                            &format!("a message on the source's topics that is not ours, dropped: {why}"),
                            origin.elapsed(),
                        ) {
                            tracing::warn!("{line}");
                        }
                    }
                },
                Ok(_) => {}
                Err(e) => return Err(format!("MQTT: {e}")),
            }
        }
    }
}

fn health_of(components: &BTreeMap<u32, (bool, u32)>) -> SourceHealth {
    if components.is_empty() {
        return SourceHealth::Connecting;
    }
    SourceHealth::Connected {
        down_components: components
            .iter()
            .filter(|(_, (up, _))| !up)
            .map(|(id, _)| *id)
            .collect(),
    }
}

fn take_points(shared: &Shared, points: &[Point], health: SourceHealth) {
    super::take_update(shared, points, health);
}

/// A connection test: connect, wait for the server's CONNACK, and leave.
pub async fn test_connection(server: &MqttServer, client_id: &str) -> (bool, String) {
    // The adapter's own client id, so the source knows (and can refuse) it by name; a test runs
    // only while the adapter does not collect, so no session of its own is pushed off.
    let (client, mut events) = AsyncClient::new(server.options(client_id), 4);
    let answer = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(a))) => {
                    return if a.code == ConnectReturnCode::Success {
                        (true, "connection test passed (MQTT)".to_string())
                    } else {
                        (
                            false,
                            format!("the MQTT server refused the connection: {:?}", a.code),
                        )
                    };
                }
                Ok(_) => {}
                Err(e) => return (false, format!("MQTT: {e}")),
            }
        }
    })
    .await
    .unwrap_or_else(|_| (false, "no answer within 2 s".to_string()));
    let _ = client.try_disconnect();
    // Let the DISCONNECT go out.
    let _ = tokio::time::timeout(Duration::from_millis(200), events.poll()).await;
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_the_source_are_read_and_others_are_named() {
        let p = read_message(
            "failover-lab/1/3",
            br#"{"seq":7,"timestamp":"2026-01-01T00:00:00.700Z","value":1.5}"#,
        );
        assert_eq!(
            p,
            Ok(Message::Point(Point {
                stream_id: 3,
                seq: 7,
                timestamp_ms: 1_767_225_600_700,
                value: 1.5
            }))
        );
        assert_eq!(
            read_message(
                "failover-lab/1/status",
                br#"{"up":false,"first_stream":2,"streams":2}"#
            ),
            Ok(Message::Status {
                component: 1,
                up: false,
                streams: 2
            })
        );
        for (topic, payload) in [
            ("failover-lab/1/3", &b"not json"[..]),
            (
                "failover-lab/1/3",
                br#"{"seq":-1,"timestamp":"2026-01-01T00:00:00Z","value":1}"#,
            ),
            (
                "failover-lab/1/3",
                br#"{"seq":1,"timestamp":"yesterday","value":1}"#,
            ),
            (
                "failover-lab/x/3",
                br#"{"seq":1,"timestamp":"2026-01-01T00:00:00Z","value":1}"#,
            ),
            ("failover-lab/1/3/4", br#"{}"#),
            ("failover-lab/1/status", br#"{"up":"yes","streams":2}"#),
        ] {
            assert!(read_message(topic, payload).is_err(), "{topic} {payload:?}");
        }
    }

    #[test]
    fn mqtt_urls_pick_the_wire() {
        assert_eq!(
            MqttServer::from_url("mqtt://127.0.0.1:1884").ok().flatten(),
            Some(MqttServer {
                host: "127.0.0.1".into(),
                port: 1884
            })
        );
        assert_eq!(
            MqttServer::from_url("mqtt://broker")
                .ok()
                .flatten()
                .map(|s| s.port),
            Some(1883)
        );
        assert!(matches!(
            MqttServer::from_url("http://127.0.0.1:50051"),
            Ok(None)
        ));
        assert!(MqttServer::from_url("mqtts://broker").is_err());
    }
}
