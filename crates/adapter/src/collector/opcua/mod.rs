//! Collection over OPC UA (a source URL `opc.tcp://host:port[/path]`), with async-opcua's
//! client, security mode None and an anonymous identity, the session named after the adapter.
//!
//! On connecting it reads the source's address space (docs/opcua.md): `TickOriginUnixMs` and
//! `TickRateHz`, and by browsing `FailoverLabSource`, each component's folder with its `Up`
//! flag and stream variables. It then subscribes to every stream and every `Up` flag (sampling
//! interval 0, a queue of two seconds of ticks). A value's tick is found from its source
//! timestamp ([`failover_proto::wires::opcua::tick_of`]); a value with a Bad status is not a
//! point. The modes keep their meaning: a Hot standby subscribes, a Warm one only opens a
//! session to test ([`test_connection`]), a Cold one does not connect. The client does not
//! reconnect by itself: a lost connection is the collector's error, retried with its backoff.
//!
//! Monitored items are created as many per call as the server's MaxMonitoredItemsPerCall allows,
//! and browses follow continuation points, so a source of any size is collected whole. History
//! recoveries read the streams' history with HistoryRead ([`read_history`]).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use failover_core::{
    Point,
    modes::{Component, SourceHealth},
    retry::Backoff,
};
use failover_proto::wires::opcua as nodes;
use opcua::{
    client::{Client, ClientBuilder, DataChangeCallback, IdentityToken, Session},
    crypto::SecurityPolicy,
    types::{
        AttributeId, BrowseDescription, BrowseDirection, BrowseResultMask, DataValue, Identifier,
        MessageSecurityMode, MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters,
        NodeClassMask, NodeId, ReadValueId, ReferenceTypeId, StatusCode, TimestampsToReturn,
        UserTokenPolicy, VariableId, Variant,
    },
};
use tokio::sync::mpsc;

use crate::state::Shared;

mod history;
pub use history::read_history;

/// The most values one publish carries.
const NOTIFICATIONS_PER_PUBLISH: u32 = 50_000;
/// The longest array the client decodes (a publish's values, a browse's references).
const MAX_ARRAY_LENGTH: usize = 100_000;
/// The most chunks of 64 KB a message the client takes is made of (64 MB).
const MAX_CHUNK_COUNT: usize = 1_024;

/// How long connecting (the channel and the session) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// An OPC UA server to collect from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpcUaServer {
    /// The endpoint URL, as given.
    pub url: String,
}

impl OpcUaServer {
    /// The server of an `opc.tcp://host[:port][/path]` URL; None for another scheme.
    pub fn from_url(url: &str) -> anyhow::Result<Option<OpcUaServer>> {
        let Ok(u) = url::Url::parse(url) else {
            return Ok(None);
        };
        if u.scheme() != "opc.tcp" {
            return Ok(None);
        }
        if u.host_str().is_none_or(str::is_empty) {
            anyhow::bail!("source {url}: an opc.tcp:// URL needs a host");
        }
        Ok(Some(OpcUaServer {
            url: url.to_string(),
        }))
    }

    fn client(&self, name: &str) -> Result<Client, String> {
        ClientBuilder::new()
            .application_name(format!("failover-lab adapter {name}"))
            .application_uri(format!("urn:failover-lab:adapter:{name}"))
            .product_uri("urn:failover-lab")
            .session_name(name)
            // A session left by a killed adapter is let go of after this.
            .session_timeout(10_000)
            // The collector retries with its own backoff.
            .session_retry_limit(0)
            .keep_alive_interval(Duration::from_secs(1))
            // A publish carries up to NOTIFICATIONS_PER_PUBLISH values: the stack's defaults
            // (arrays of 1000, messages of 320 KB) would refuse a large source's publishes.
            .max_array_length(MAX_ARRAY_LENGTH)
            .max_chunk_count(MAX_CHUNK_COUNT)
            .max_message_size(MAX_CHUNK_COUNT * 65_535)
            .request_timeout(Duration::from_secs(5))
            // Security None needs no certificate; the folder is only where one would be kept.
            .pki_dir(std::env::temp_dir().join("failover-lab-opcua-client-pki"))
            .client()
            .map_err(|e| format!("OPC UA client: {}", e.join("; ")))
    }

    /// A session on the server, connected, with the task that drives it.
    async fn connect(
        &self,
        name: &str,
    ) -> Result<(Arc<Session>, tokio::task::JoinHandle<StatusCode>), String> {
        let mut client = self.client(name)?;
        let (session, event_loop) = client
            .connect_to_endpoint_directly(
                (
                    self.url.as_str(),
                    SecurityPolicy::None.to_str(),
                    MessageSecurityMode::None,
                    UserTokenPolicy::anonymous(),
                ),
                IdentityToken::Anonymous,
            )
            .map_err(|e| format!("OPC UA {}: {e}", self.url))?;
        let mut driver = event_loop.spawn();
        tokio::select! {
            connected = tokio::time::timeout(CONNECT_TIMEOUT, session.wait_for_connection()) => {
                match connected {
                    Ok(true) => Ok((session, driver)),
                    _ => {
                        driver.abort();
                        Err(format!("OPC UA {}: no session within {CONNECT_TIMEOUT:?}", self.url))
                    }
                }
            }
            ended = &mut driver => Err(format!(
                "OPC UA {}: the connection failed ({})",
                self.url,
                ended.map_or_else(|e| e.to_string(), |s| s.to_string())
            )),
        }
    }
}

/// What the adapter learns of the source's address space on connecting.
#[derive(Debug, Clone, PartialEq)]
struct Layout {
    ns: u16,
    origin_unix_ms: i64,
    rate_hz: f64,
    /// component -> its streams.
    components: BTreeMap<u32, Vec<u32>>,
    /// Most monitored items the server creates in one call.
    items_per_call: usize,
}

fn status_err(what: &str, e: impl std::fmt::Display) -> String {
    format!("OPC UA {what}: {e}")
}

/// The string identifier of a node, if it has one.
fn string_id(id: &NodeId) -> Option<&str> {
    match &id.identifier {
        Identifier::String(s) => Some(s.as_ref()),
        _ => None,
    }
}

/// A node's children (objects and variables), following continuation points: a server answers
/// at most its MaxReferencesPerBrowseNode references at once (1000 by default in many stacks).
async fn browse_children(session: &Session, node: NodeId) -> Result<Vec<NodeId>, String> {
    let what = || format!("browse of {node}");
    let results = session
        .browse(
            &[BrowseDescription {
                node_id: node.clone(),
                browse_direction: BrowseDirection::Forward,
                reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
                include_subtypes: true,
                node_class_mask: (NodeClassMask::OBJECT | NodeClassMask::VARIABLE).bits(),
                result_mask: BrowseResultMask::All as u32,
            }],
            0,
            None,
        )
        .await
        .map_err(|e| status_err(&what(), e))?;
    let mut children = Vec::new();
    let mut result = results
        .into_iter()
        .next()
        .ok_or_else(|| status_err(&what(), "no result"))?;
    // A server that hands out continuation points forever is an error, not a loop.
    for _ in 0..MAX_BROWSE_PAGES {
        if !result.status_code.is_good() {
            return Err(status_err(&what(), result.status_code));
        }
        children.extend(
            result
                .references
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.node_id.node_id),
        );
        if result.continuation_point.is_null_or_empty() {
            return Ok(children);
        }
        result = session
            .browse_next(false, &[result.continuation_point])
            .await
            .map_err(|e| status_err(&what(), e))?
            .into_iter()
            .next()
            .ok_or_else(|| status_err(&what(), "no result"))?;
    }
    Err(status_err(
        &what(),
        format!("more than {MAX_BROWSE_PAGES} pages of references"),
    ))
}

/// The most pages of one browse followed.
const MAX_BROWSE_PAGES: usize = 10_000;

async fn read_layout(session: &Session) -> Result<Layout, String> {
    let namespaces = session
        .read(
            &[
                ReadValueId::from(NodeId::from(VariableId::Server_NamespaceArray)),
                ReadValueId::from(NodeId::from(
                    VariableId::Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
                )),
            ],
            TimestampsToReturn::Neither,
            0.0,
        )
        .await
        .map_err(|e| status_err("read of the namespaces", e))?;
    let items_per_call = items_per_call(namespaces.get(1));
    let ns = match namespaces.first().and_then(|v| v.value.as_ref()) {
        Some(Variant::Array(a)) => a
            .values
            .iter()
            .position(|v| matches!(v, Variant::String(s) if s.as_ref() == nodes::NAMESPACE_URI)),
        _ => None,
    }
    .and_then(|i| u16::try_from(i).ok())
    .ok_or_else(|| {
        format!(
            "OPC UA: the server has no namespace {} (not the lab's source?)",
            nodes::NAMESPACE_URI
        )
    })?;
    let tick = session
        .read(
            &[
                ReadValueId::from(NodeId::new(ns, nodes::TICK_ORIGIN)),
                ReadValueId::from(NodeId::new(ns, nodes::TICK_RATE)),
            ],
            TimestampsToReturn::Neither,
            0.0,
        )
        .await
        .map_err(|e| status_err("read of the tick", e))?;
    let origin_unix_ms = match tick.first().and_then(|v| v.value.as_ref()) {
        Some(Variant::Int64(v)) => *v,
        other => {
            return Err(format!(
                "OPC UA: TickOriginUnixMs is not an Int64: {other:?}"
            ));
        }
    };
    let rate_hz = match tick.get(1).and_then(|v| v.value.as_ref()) {
        Some(Variant::Double(v)) if v.is_finite() && *v > 0.0 => *v,
        other => return Err(format!("OPC UA: TickRateHz is not a rate: {other:?}")),
    };
    let mut components = BTreeMap::new();
    for folder in browse_children(session, NodeId::new(ns, nodes::SOURCE_FOLDER)).await? {
        let Some(component) = string_id(&folder)
            .and_then(|s| s.strip_prefix("component-"))
            .and_then(|c| c.parse::<u32>().ok())
        else {
            continue;
        };
        let mut streams: Vec<u32> = browse_children(session, folder)
            .await?
            .iter()
            .filter_map(|n| string_id(n).and_then(nodes::stream_of))
            .collect();
        streams.sort_unstable();
        components.insert(component, streams);
    }
    if components.is_empty() {
        return Err("OPC UA: the source's folder has no components".into());
    }
    Ok(Layout {
        ns,
        origin_unix_ms,
        rate_hz,
        components,
        items_per_call,
    })
}

/// How many monitored items to create in one call: the server's MaxMonitoredItemsPerCall
/// (0: no limit), or [`ITEMS_PER_CALL_UNKNOWN`] if it does not say.
fn items_per_call(limit: Option<&DataValue>) -> usize {
    let said = limit
        .filter(|v| v.status().is_good())
        .and_then(|v| match v.value {
            Some(Variant::UInt32(n)) => Some(n),
            _ => None,
        });
    match said {
        Some(0) => usize::MAX,
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => ITEMS_PER_CALL_UNKNOWN,
    }
}

/// Monitored items per call when the server does not give its limit.
const ITEMS_PER_CALL_UNKNOWN: usize = 500;

/// A value the subscription delivered: the node's string id and the value.
type Delivered = (String, DataValue);

/// Subscribes and collects until collection is no longer wanted (Ok) or the connection fails
/// (Err).
pub async fn collect(
    shared: &Shared,
    server: &OpcUaServer,
    changed: &mut tokio::sync::watch::Receiver<u64>,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let (session, mut driver) = server.connect(&shared.settings.name).await?;
    let result = subscribed(shared, server, &session, &mut driver, changed, backoff).await;
    if !driver.is_finished() {
        let _ = tokio::time::timeout(Duration::from_secs(1), session.disconnect()).await;
    }
    driver.abort();
    result
}

async fn subscribed(
    shared: &Shared,
    server: &OpcUaServer,
    session: &Arc<Session>,
    driver: &mut tokio::task::JoinHandle<StatusCode>,
    changed: &mut tokio::sync::watch::Receiver<u64>,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let layout = read_layout(session).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Delivered>();
    let subscription = session
        .create_subscription(
            Duration::from_millis(100),
            100,
            10,
            NOTIFICATIONS_PER_PUBLISH,
            0,
            true,
            DataChangeCallback::new(move |value, item| {
                if let Some(id) = string_id(&item.item_to_monitor().node_id) {
                    let _ = tx.send((id.to_string(), value));
                }
            }),
        )
        .await
        .map_err(|e| status_err("create subscription", e))?;
    // Two seconds of ticks per item, so a slow publish loses nothing.
    let queue = (layout.rate_hz * 2.0).ceil().clamp(10.0, 10_000.0) as u32;
    let mut items: Vec<MonitoredItemCreateRequest> = Vec::new();
    for (component, streams) in &layout.components {
        items.push(request(
            NodeId::new(layout.ns, nodes::component_up(*component)),
            1,
        ));
        for s in streams {
            items.push(request(NodeId::new(layout.ns, nodes::stream(*s)), queue));
        }
    }
    let total = items.len();
    for chunk in items.chunks(layout.items_per_call.max(1)) {
        let created = session
            .create_monitored_items(subscription, TimestampsToReturn::Both, chunk.to_vec())
            .await
            .map_err(|e| {
                status_err(
                    &format!(
                        "create monitored items ({total} in calls of at most {})",
                        chunk.len()
                    ),
                    e,
                )
            })?;
        if let Some(bad) = created.iter().find(|r| !r.result.status_code.is_good()) {
            return Err(status_err("create monitored items", bad.result.status_code));
        }
    }
    shared.update(|st| {
        st.components = layout
            .components
            .iter()
            .map(|(id, streams)| Component {
                id: *id,
                streams: u32::try_from(streams.len()).unwrap_or(u32::MAX),
            })
            .collect();
        st.source_error = None;
    });
    tracing::info!(
        url = server.url,
        components = layout.components.len(),
        "collecting from the data source over OPC UA"
    );
    let mut up: BTreeMap<u32, bool> = BTreeMap::new();
    let mut points = Vec::new();
    loop {
        tokio::select! {
            r = changed.changed() => {
                if r.is_err() || !shared.lock().activity().collect {
                    return Ok(());
                }
            }
            ended = &mut *driver => {
                return Err(format!(
                    "OPC UA {}: the connection was lost ({})",
                    server.url,
                    ended.map_or_else(|e| e.to_string(), |s| s.to_string())
                ));
            }
            first = rx.recv() => {
                let Some(first) = first else {
                    return Err("OPC UA: the subscription ended".into());
                };
                points.clear();
                let mut health_changed = false;
                let mut next = Some(first);
                while let Some((id, value)) = next {
                    match read_value(&layout, &id, &value) {
                        Some(Reading::Point(p)) => points.push(p),
                        Some(Reading::Up(c, is_up)) => {
                            health_changed |= up.insert(c, is_up) != Some(is_up);
                        }
                        None => {}
                    }
                    next = rx.try_recv().ok();
                }
                if !points.is_empty() {
                    backoff.reset();
                }
                if !points.is_empty() || health_changed {
                    super::take_update(shared, &points, health_of(&up));
                }
            }
        }
    }
}

fn request(node: NodeId, queue_size: u32) -> MonitoredItemCreateRequest {
    MonitoredItemCreateRequest {
        item_to_monitor: ReadValueId {
            node_id: node,
            attribute_id: AttributeId::Value as u32,
            ..Default::default()
        },
        monitoring_mode: MonitoringMode::Reporting,
        requested_parameters: MonitoringParameters {
            // Every value, not a sample of them.
            sampling_interval: 0.0,
            queue_size,
            discard_oldest: false,
            ..Default::default()
        },
    }
}

/// What one delivered value is.
#[derive(Debug, Clone, PartialEq)]
enum Reading {
    Point(Point),
    Up(u32, bool),
}

fn read_value(layout: &Layout, id: &str, value: &DataValue) -> Option<Reading> {
    if let Some(component) = nodes::component_of_up(id) {
        return match value.value {
            Some(Variant::Boolean(b)) if value.status().is_good() => {
                Some(Reading::Up(component, b))
            }
            _ => Some(Reading::Up(component, false)),
        };
    }
    let stream = nodes::stream_of(id)?;
    if !value.status().is_good() {
        return None;
    }
    let Some(Variant::Double(v)) = value.value else {
        return None;
    };
    let timestamp_ms = value
        .source_timestamp
        .map(|t| nodes::unix_ms_of_ticks(t.ticks()))?;
    let seq = nodes::tick_of(layout.origin_unix_ms, layout.rate_hz, timestamp_ms)?;
    Some(Reading::Point(Point {
        stream_id: stream,
        seq,
        timestamp_ms,
        value: v,
    }))
}

fn health_of(up: &BTreeMap<u32, bool>) -> SourceHealth {
    if up.is_empty() {
        return SourceHealth::Connecting;
    }
    SourceHealth::Connected {
        down_components: up.iter().filter(|(_, u)| !**u).map(|(c, _)| *c).collect(),
    }
}

/// A connection test: open a session, read the server's state, and close it.
pub async fn test_connection(server: &OpcUaServer, name: &str) -> (bool, String) {
    let (session, driver) = match server.connect(name).await {
        Ok(connected) => connected,
        Err(why) => return (false, why),
    };
    let answer = match session
        .read(
            &[ReadValueId::from(NodeId::from(
                VariableId::Server_ServerStatus_State,
            ))],
            TimestampsToReturn::Neither,
            0.0,
        )
        .await
    {
        Ok(v) if v.first().is_some_and(|v| v.status().is_good()) => {
            (true, "connection test passed (OPC UA)".to_string())
        }
        Ok(v) => (
            false,
            format!(
                "OPC UA: the server's state is unreadable ({})",
                v.first()
                    .map_or(StatusCode::BadUnexpectedError, |v| v.status())
            ),
        ),
        Err(e) => (false, status_err("read of the server's state", e)),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), session.disconnect()).await;
    driver.abort();
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            ns: 2,
            origin_unix_ms: 1_000,
            rate_hz: 10.0,
            components: BTreeMap::from([(0, vec![0, 1])]),
            items_per_call: 1000,
        }
    }

    fn at(unix_ms: i64, value: Variant, status: StatusCode) -> DataValue {
        DataValue {
            value: Some(value),
            status: Some(status),
            source_timestamp: Some(opcua::types::DateTime::from(nodes::ticks_of_unix_ms(
                unix_ms,
            ))),
            ..Default::default()
        }
    }

    #[test]
    fn values_become_points_at_their_tick_and_bad_ones_do_not() {
        let l = layout();
        assert_eq!(
            read_value(
                &l,
                "stream-1",
                &at(1_700, Variant::Double(2.5), StatusCode::Good)
            ),
            Some(Reading::Point(Point {
                stream_id: 1,
                seq: 7,
                timestamp_ms: 1_700,
                value: 2.5
            }))
        );
        assert_eq!(
            read_value(
                &l,
                "stream-1",
                &at(1_700, Variant::Double(2.5), StatusCode::BadNoCommunication)
            ),
            None
        );
        assert_eq!(
            read_value(
                &l,
                "stream-1",
                &at(1_700, Variant::Int32(2), StatusCode::Good)
            ),
            None
        );
        assert_eq!(
            read_value(
                &l,
                "stream-1",
                &at(900, Variant::Double(2.5), StatusCode::Good)
            ),
            None,
            "before the origin"
        );
        assert_eq!(
            read_value(
                &l,
                "component-0.up",
                &at(0, Variant::Boolean(false), StatusCode::Good)
            ),
            Some(Reading::Up(0, false))
        );
        assert_eq!(
            read_value(
                &l,
                "something-else",
                &at(0, Variant::Boolean(true), StatusCode::Good)
            ),
            None
        );
    }

    #[test]
    fn the_servers_item_limit_per_call_is_kept_and_a_missing_one_is_guessed_low() {
        let said = |v: Variant| DataValue {
            value: Some(v),
            status: Some(StatusCode::Good),
            ..Default::default()
        };
        assert_eq!(items_per_call(Some(&said(Variant::UInt32(1000)))), 1000);
        assert_eq!(items_per_call(Some(&said(Variant::UInt32(0)))), usize::MAX);
        assert_eq!(items_per_call(None), ITEMS_PER_CALL_UNKNOWN);
        assert_eq!(
            items_per_call(Some(&DataValue {
                status: Some(StatusCode::BadNodeIdUnknown),
                ..Default::default()
            })),
            ITEMS_PER_CALL_UNKNOWN
        );
    }

    #[test]
    fn opc_tcp_urls_pick_the_wire() {
        assert_eq!(
            OpcUaServer::from_url("opc.tcp://127.0.0.1:4840/")
                .ok()
                .flatten(),
            Some(OpcUaServer {
                url: "opc.tcp://127.0.0.1:4840/".into()
            })
        );
        assert!(matches!(OpcUaServer::from_url("mqtt://broker"), Ok(None)));
    }
}
