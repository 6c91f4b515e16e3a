//! The source's MQTT side (`fake-data-source --mqtt-listen ADDR`): an MQTT 3.1.1 server of which
//! the source is the only publisher, on rumqttc's packet codec (no hand-written protocol).
//!
//! - **Points:** each tick, every stream of a component that is up publishes to
//!   `failover-lab/{component}/{stream}` a JSON message
//!   `{"seq":N,"timestamp":"2026-12-03T10:00:00.100Z","value":57.2}`: the tick's number, its data
//!   time and the value, the same points the gRPC subscribers get.
//! - **Component health:** `failover-lab/{component}/status`,
//!   `{"up":true,"first_stream":0,"streams":2}`, sent to a client when it subscribes and again
//!   whenever it changes (a component failed for everyone, or for that client alone).
//! - **QoS:** a subscription is granted QoS 0 or 1 as asked (2 is granted as 1). QoS 1 messages
//!   carry packet ids; the source does not resend them (a lost connection loses the messages in
//!   flight, as a client that subscribes anew sees).
//! - **Faults, as on gRPC:** the source down or a client's connection cut closes the connection
//!   and refuses a new one (CONNACK "server unavailable"); with `--max-clients` a client over the
//!   limit is refused the same way until a place is free; a failed component falls silent and
//!   its status says so.
//! - **The source alone publishes.** A client that publishes is disconnected, and the source
//!   says why in its log: nobody can put points on the source's topics.
//! - A subscriber that falls too far behind (the tick buffer of 4096 messages) is disconnected
//!   rather than skipped silently.

use std::{sync::Arc, time::Duration};

use futures::{SinkExt, StreamExt};
use rumqttc::mqttbytes::{
    QoS, matches,
    v4::{
        Codec, ConnAck, ConnectReturnCode, Packet, Publish, SubAck, SubscribeReasonCode, UnsubAck,
    },
};
use tokio::sync::broadcast;
use tokio_util::codec::Framed;

use crate::Shared;

pub use failover_proto::wires::mqtt::ROOT;
/// Largest packet taken from a client.
const MAX_INCOMING: usize = 64 * 1024;
/// Largest packet sent.
const MAX_OUTGOING: usize = 1024 * 1024;

/// The topic of a stream's points.
pub fn point_topic(component: u32, stream: u32) -> String {
    format!("{ROOT}/{component}/{stream}")
}

/// The topic of a component's health.
pub fn status_topic(component: u32) -> String {
    format!("{ROOT}/{component}/status")
}

/// Serves MQTT on `listener` until the task is dropped.
pub(crate) async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((socket, peer)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    if let Err(why) = connection(socket, &shared).await {
                        tracing::info!(%peer, "MQTT connection closed: {why}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("MQTT accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

type Conn = Framed<tokio::net::TcpStream, Codec>;

async fn send(conn: &mut Conn, packet: Packet) -> Result<(), String> {
    conn.send(packet).await.map_err(|e| e.to_string())
}

/// One client's connection, from CONNECT to its end.
async fn connection(socket: tokio::net::TcpStream, shared: &Arc<Shared>) -> Result<(), String> {
    let mut conn = Framed::new(
        socket,
        Codec {
            max_incoming_size: MAX_INCOMING,
            max_outgoing_size: MAX_OUTGOING,
        },
    );
    let connect = match tokio::time::timeout(Duration::from_secs(10), conn.next()).await {
        Ok(Some(Ok(Packet::Connect(c)))) => c,
        Ok(Some(Ok(other))) => return Err(format!("the first packet was not CONNECT: {other:?}")),
        Ok(Some(Err(e))) => return Err(format!("not MQTT 3.1.1: {e}")),
        Ok(None) => return Err("closed before CONNECT".into()),
        Err(_) => return Err("no CONNECT within 10 s".into()),
    };
    let client = connect.client_id.clone();
    let place = match shared
        .refuse(&client)
        .and_then(|()| Shared::hold(shared, &client))
    {
        Ok(place) => place,
        Err(status) => {
            let _ = send(
                &mut conn,
                Packet::ConnAck(ConnAck::new(ConnectReturnCode::ServiceUnavailable, false)),
            )
            .await;
            return Err(format!("{client:?} refused: {}", status.message()));
        }
    };
    // The client's place (with --max-clients) is held while it is connected.
    let _place = place;
    send(
        &mut conn,
        Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)),
    )
    .await?;
    tracing::info!(client, "MQTT client connected");
    // A client silent for one and a half keep-alives is gone (MQTT 3.1.1, 3.1.2.10).
    let silence = match connect.keep_alive {
        0 => Duration::from_secs(24 * 3600),
        k => Duration::from_millis(u64::from(k) * 1500),
    };
    let mut filters: Vec<(String, QoS)> = Vec::new();
    let mut ticks = shared.ticks.subscribe();
    let mut faults_changed = shared.fault_version.subscribe();
    let mut told_down: Option<Vec<u32>> = None;
    let mut pkid: u16 = 0;
    let mut next_pkid = move || {
        pkid = pkid.checked_add(1).unwrap_or(1);
        pkid
    };
    loop {
        if let Err(status) = shared.refuse(&client) {
            return Err(format!("{client:?}: {}", status.message()));
        }
        let down = shared.faults().down_for(&client);
        if !filters.is_empty() && told_down.as_ref() != Some(&down) {
            for (component, first_stream, streams) in shared.settings.component_ranges() {
                let topic = status_topic(component);
                if let Some(qos) = granted(&filters, &topic) {
                    let body = serde_json::json!({
                        "up": !down.contains(&component),
                        "first_stream": first_stream,
                        "streams": streams,
                    });
                    let mut p = Publish::new(topic, qos, body.to_string());
                    if qos != QoS::AtMostOnce {
                        p.pkid = next_pkid();
                    }
                    conn.feed(Packet::Publish(p))
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            conn.flush().await.map_err(|e| e.to_string())?;
            told_down = Some(down.clone());
        }
        tokio::select! {
            packet = tokio::time::timeout(silence, conn.next()) => match packet {
                Err(_) => return Err(format!("{client:?} silent past its keep-alive")),
                Ok(None) | Ok(Some(Ok(Packet::Disconnect))) => {
                    tracing::info!(client, "MQTT client disconnected");
                    return Ok(());
                }
                Ok(Some(Err(e))) => return Err(format!("{client:?} sent a bad packet: {e}")),
                Ok(Some(Ok(Packet::Subscribe(s)))) => {
                    let codes = s
                        .filters
                        .iter()
                        .map(|f| {
                            if rumqttc::mqttbytes::valid_filter(&f.path) {
                                let qos = match f.qos {
                                    QoS::AtMostOnce => QoS::AtMostOnce,
                                    _ => QoS::AtLeastOnce,
                                };
                                filters.retain(|(p, _)| *p != f.path);
                                filters.push((f.path.clone(), qos));
                                SubscribeReasonCode::Success(qos)
                            } else {
                                SubscribeReasonCode::Failure
                            }
                        })
                        .collect();
                    send(&mut conn, Packet::SubAck(SubAck::new(s.pkid, codes))).await?;
                    tracing::info!(client, filters = ?s.filters.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), "MQTT subscribed");
                    // Health goes out again, to the new filters too.
                    told_down = None;
                }
                Ok(Some(Ok(Packet::Unsubscribe(u)))) => {
                    filters.retain(|(p, _)| !u.topics.contains(p));
                    send(&mut conn, Packet::UnsubAck(UnsubAck::new(u.pkid))).await?;
                }
                Ok(Some(Ok(Packet::PingReq))) => send(&mut conn, Packet::PingResp).await?,
                Ok(Some(Ok(Packet::Publish(p)))) => {
                    return Err(format!(
                        "{client:?} published to {:?}: the source is the only publisher on its \
                         topics, so a client that publishes is disconnected",
                        p.topic
                    ));
                }
                // Acknowledgements of our QoS 1 messages (nothing is resent), and the rest.
                Ok(Some(Ok(_))) => {}
            },
            changed = faults_changed.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            tick = ticks.recv(), if !filters.is_empty() => match tick {
                Ok(p) => {
                    let b = &p.batch;
                    let mut sent = false;
                    for i in 0..b.stream_ids.len() {
                        let stream = b.stream_ids[i];
                        let component = shared.settings.component_of(stream);
                        if down.contains(&component) {
                            continue;
                        }
                        let topic = point_topic(component, stream);
                        let Some(qos) = granted(&filters, &topic) else {
                            continue;
                        };
                        let body = format!(
                            "{{\"seq\":{},\"timestamp\":\"{}\",\"value\":{}}}",
                            b.seqs[i],
                            failover_core::clock_time::format_utc_ms(b.timestamps_ms[i]),
                            b.values[i]
                        );
                        let mut m = Publish::new(topic, qos, body);
                        if qos != QoS::AtMostOnce {
                            m.pkid = next_pkid();
                        }
                        conn.feed(Packet::Publish(m)).await.map_err(|e| e.to_string())?;
                        sent = true;
                    }
                    if sent {
                        conn.flush().await.map_err(|e| e.to_string())?;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Err(format!("{client:?} fell {n} ticks behind; disconnected rather than skipped"));
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
        }
    }
}

/// The QoS a topic goes out at to these filters (the highest granted), or None.
fn granted(filters: &[(String, QoS)], topic: &str) -> Option<QoS> {
    filters
        .iter()
        .filter(|(f, _)| matches(topic, f))
        .map(|(_, q)| *q)
        .max_by_key(|q| *q as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_the_qos_granted() {
        assert_eq!(point_topic(1, 3), "failover-lab/1/3");
        assert_eq!(status_topic(0), "failover-lab/0/status");
        let f = vec![
            ("failover-lab/+/status".to_string(), QoS::AtMostOnce),
            ("failover-lab/#".to_string(), QoS::AtLeastOnce),
        ];
        assert_eq!(granted(&f, "failover-lab/0/status"), Some(QoS::AtLeastOnce));
        assert_eq!(granted(&f[..1], "failover-lab/0/3"), None);
    }
}
