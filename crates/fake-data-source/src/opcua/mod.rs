//! The source's OPC UA side (`fake-data-source --opcua-listen ADDR`): an OPC UA server built on
//! async-opcua (no hand-written protocol), serving the same points and faults as gRPC and MQTT.
//!
//! - **Address space** (namespace `urn:failover-lab:data-source`, string NodeIds, see
//!   [`failover_proto::wires::opcua`]): `Objects/FailoverLabSource` holds `TickOriginUnixMs` and
//!   `TickRateHz`, and a folder per component holding its `Up` flag and a Double variable per
//!   stream. Each tick sets every stream's value with its **source timestamp at the tick's data
//!   time**, so a client finds a point's tick from its time and the two tick variables.
//! - **Reads and subscriptions:** a read answers the last value; a monitored item is sent every
//!   tick's value (ask for a queue as long as a publishing interval's ticks; the server keeps up
//!   to [`QUEUE_LIMIT`] per item). A read of an unknown node answers `BadNodeIdUnknown`. One
//!   subscription may watch every node; one call creates at most 1000 monitored items (the
//!   server's MaxMonitoredItemsPerCall), and one browse answers at most 1000 references a node
//!   (more follow a continuation point).
//! - **History:** the stream variables are historizing: HistoryRead (raw) returns a stream's
//!   values in a time range, throttled by `--history-rate` as gRPC's history is ([`history`]).
//! - **Security:** an endpoint with security mode None, and one signed and encrypted with
//!   Basic256Sha256. The server's certificate and key are made at first start in `--opcua-pki`
//!   and kept there; client certificates are trusted (a lab, not a plant).
//! - **Identity:** anonymous, and a user name with a password when `--opcua-user` and
//!   `SOURCE_OPCUA_PASSWORD` are given (the password is never logged).
//! - **Faults, as on the other wires:** the source down stops the server (connections close,
//!   new ones are refused) until it is up again; a failed component's `Up` turns false and its
//!   streams answer `BadNoCommunication` and fall silent; `--max-clients` is the server's
//!   session limit (a session over it is refused with `BadTooManySessions`). Faults for one
//!   client by name and cut clients are gRPC's and MQTT's: on OPC UA, cut the link with the
//!   lab's proxy instead.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use failover_proto::wires::opcua as nodes;
use opcua::{
    server::{
        ANONYMOUS_USER_TOKEN_ID, ServerBuilder, ServerEndpoint, ServerHandle, ServerUserToken,
        diagnostics::NamespaceMetadata,
        node_manager::memory::{InMemoryNodeManager, InMemoryNodeManagerBuilder},
    },
    types::{DataValue, DateTime, NodeId, StatusCode, Variant},
};
use tokio::sync::broadcast;

use crate::Shared;

/// The most values a monitored item queues between two publishes.
pub const QUEUE_LIMIT: usize = 10_000;
/// The id of the user name token in the server's configuration.
const USER_TOKEN_ID: &str = "lab-user";
/// An OPC UA time from unix milliseconds.
pub fn opcua_time(unix_ms: i64) -> DateTime {
    DateTime::from(nodes::ticks_of_unix_ms(unix_ms))
}

/// How the OPC UA server is set up.
#[derive(Debug, Clone)]
pub struct OpcUaSettings {
    /// Where it listens (a port of 0 is chosen once, then kept across restarts).
    pub listen: SocketAddr,
    /// Where its certificate and key are made at first start and kept.
    pub pki_dir: PathBuf,
    /// A user name and its password, taken besides anonymous.
    pub user: Option<(String, String)>,
}

/// Serves OPC UA until the task is dropped, stopping the server while the source is down.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    settings: OpcUaSettings,
    shared: Arc<Shared>,
) {
    let addr = listener.local_addr().unwrap_or(settings.listen);
    let mut listener = Some(listener);
    let mut faults = shared.fault_version.subscribe();
    let mut backoff = Duration::from_millis(100);
    loop {
        while shared.faults().source_down {
            if faults.changed().await.is_err() {
                return;
            }
        }
        let l = match listener.take() {
            Some(l) => l,
            None => match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(%addr, "OPC UA: cannot listen again ({e}); retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        backoff = Duration::from_millis(100);
        let (server, handle, manager) = match build(&settings, addr, &shared) {
            Ok(built) => built,
            Err(e) => {
                tracing::error!("OPC UA server not started: {e}");
                return;
            }
        };
        let updates = tokio::spawn(update(handle.clone(), manager, shared.clone()));
        let run = server.run_with(l);
        tokio::pin!(run);
        loop {
            tokio::select! {
                r = &mut run => {
                    if let Err(e) = r {
                        tracing::warn!("OPC UA server ended: {e}");
                    }
                    break;
                }
                c = faults.changed() => {
                    if c.is_err() || shared.faults().source_down {
                        tracing::info!("the source is down: the OPC UA server stops");
                        handle.cancel();
                    }
                }
            }
        }
        updates.abort();
    }
}

mod history;

/// The node manager of the source's namespace.
type SourceNodeManager = InMemoryNodeManager<history::SourceNodes>;

type Built = (opcua::server::Server, ServerHandle, Arc<SourceNodeManager>);

/// A server with the source's address space.
fn build(
    settings: &OpcUaSettings,
    addr: SocketAddr,
    shared: &Arc<Shared>,
) -> Result<Built, String> {
    let mut user_ids = vec![ANONYMOUS_USER_TOKEN_ID.to_string()];
    let mut builder = ServerBuilder::new()
        .application_name("failover-lab data source")
        .application_uri("urn:failover-lab:fake-data-source")
        .product_uri("urn:failover-lab")
        .create_sample_keypair(true)
        .pki_dir(settings.pki_dir.clone())
        .trust_client_certs(true)
        .host(addr.ip().to_string())
        .port(addr.port())
        .max_sessions(
            shared
                .settings
                .max_clients
                .map_or(100, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        )
        .with_node_manager(InMemoryNodeManagerBuilder::new(
            history::SourceNodesBuilder {
                namespace: NamespaceMetadata {
                    namespace_uri: nodes::NAMESPACE_URI.to_string(),
                    ..Default::default()
                },
                shared: shared.clone(),
            },
        ));
    if let Some((user, pass)) = &settings.user {
        builder = builder.add_user_token(
            USER_TOKEN_ID,
            ServerUserToken::user_pass(user.clone(), pass.clone()),
        );
        user_ids.push(USER_TOKEN_ID.to_string());
    }
    builder = builder
        .add_endpoint("none", ServerEndpoint::new_none("/", &user_ids))
        .add_endpoint(
            "basic256sha256-sign-encrypt",
            ServerEndpoint::new_basic256sha256_sign_encrypt("/", &user_ids),
        )
        .default_endpoint("none")
        .discovery_urls(vec![format!("opc.tcp://{addr}/")]);
    {
        let limits = &mut builder.limits_mut().subscriptions;
        limits.max_monitored_item_queue_size = QUEUE_LIMIT;
        // A sampling interval of 0 (asked for by clients that want every value) is kept as 0,
        // not raised to a minimum: every tick is a sample.
        limits.min_sampling_interval_ms = 0.0;
        limits.max_queued_notifications = 200;
        // One subscription may watch every node of the source (each stream, each component's
        // `Up`, the two tick variables), however many streams it has. A single call still
        // takes at most the server's advertised MaxMonitoredItemsPerCall (1000).
        limits.max_monitored_items_per_sub = items_of_the_whole_source(&shared.settings);
    }
    let (server, handle) = builder.build()?;
    let manager = handle
        .node_managers()
        .get_of_type::<SourceNodeManager>()
        .ok_or("the node manager was not made")?;
    let ns = handle
        .get_namespace_index(nodes::NAMESPACE_URI)
        .ok_or("the namespace was not registered")?;
    populate(&manager, ns, shared);
    Ok((server, handle, manager))
}

/// The monitored items a client needs to watch every node of the source.
fn items_of_the_whole_source(settings: &crate::SourceSettings) -> usize {
    let nodes = u64::from(settings.streams) + u64::from(settings.components) + 2;
    usize::try_from(nodes).unwrap_or(usize::MAX).max(1_000)
}

fn node(ns: u16, id: &str) -> NodeId {
    NodeId::new(ns, id.to_string())
}

/// The access level of a stream variable: its value and its history can be read.
fn history_readable() -> opcua::server::address_space::AccessLevel {
    use opcua::server::address_space::AccessLevel;
    AccessLevel::CURRENT_READ | AccessLevel::HISTORY_READ
}

/// Folders and variables, before the server runs.
fn populate(manager: &SourceNodeManager, ns: u16, shared: &Shared) {
    use opcua::server::address_space::Variable;
    let mut space = manager.address_space().write();
    let source = node(ns, nodes::SOURCE_FOLDER);
    space.add_folder(
        &source,
        opcua::types::QualifiedName::new(ns, "FailoverLabSource"),
        "FailoverLabSource",
        &NodeId::objects_folder_id(),
    );
    let _ = space.add_variables(
        vec![
            Variable::new(
                &node(ns, nodes::TICK_ORIGIN),
                opcua::types::QualifiedName::new(ns, "TickOriginUnixMs"),
                "TickOriginUnixMs",
                shared.origin_unix_ms,
            ),
            Variable::new(
                &node(ns, nodes::TICK_RATE),
                opcua::types::QualifiedName::new(ns, "TickRateHz"),
                "TickRateHz",
                shared.settings.rate_hz,
            ),
        ],
        &source,
    );
    for (component, first, count) in shared.settings.component_ranges() {
        let folder = node(ns, &nodes::component_folder(component));
        let name = format!("Component{component}");
        space.add_folder(
            &folder,
            opcua::types::QualifiedName::new(ns, name.as_str()),
            name.as_str(),
            &source,
        );
        let mut vars = vec![Variable::new(
            &node(ns, &nodes::component_up(component)),
            opcua::types::QualifiedName::new(ns, "Up"),
            "Up",
            true,
        )];
        for stream in first..first + count {
            let name = format!("Stream{stream}");
            let mut v = Variable::new(
                &node(ns, &nodes::stream(stream)),
                opcua::types::QualifiedName::new(ns, name.as_str()),
                name.as_str(),
                0.0_f64,
            );
            // Its history can be read (history.rs).
            v.set_historizing(true);
            v.set_access_level(history_readable());
            v.set_user_access_level(history_readable());
            // No value before the first tick.
            v.set_data_value(DataValue {
                value: None,
                status: Some(StatusCode::BadWaitingForInitialData),
                ..Default::default()
            });
            vars.push(v);
        }
        let _ = space.add_variables(vars, &folder);
    }
}

/// Sets the streams' values every tick and the components' health on every fault.
async fn update(handle: ServerHandle, manager: Arc<SourceNodeManager>, shared: Arc<Shared>) {
    let Some(ns) = handle.get_namespace_index(nodes::NAMESPACE_URI) else {
        return;
    };
    let subscriptions = handle.subscriptions().clone();
    let streams: Vec<NodeId> = (0..shared.settings.streams)
        .map(|s| node(ns, &nodes::stream(s)))
        .collect();
    let components = shared.settings.component_ranges();
    let ups: Vec<NodeId> = components
        .iter()
        .map(|(c, _, _)| node(ns, &nodes::component_up(*c)))
        .collect();
    let mut ticks = shared.ticks.subscribe();
    let mut faults = shared.fault_version.subscribe();
    let mut down: Option<Vec<u32>> = None;
    loop {
        // Everyone's view: faults for one client alone are not OPC UA's (see the module doc).
        let now_down = shared
            .faults()
            .down_components
            .iter()
            .copied()
            .collect::<Vec<_>>();
        if down.as_ref() != Some(&now_down) {
            let now = DateTime::now();
            let mut values: Vec<(&NodeId, DataValue)> = Vec::new();
            for (i, (component, first, count)) in components.iter().enumerate() {
                let up = !now_down.contains(component);
                values.push((&ups[i], DataValue::new_at(up, now)));
                if !up {
                    for s in *first..first + count {
                        if let Some(id) = streams.get(s as usize) {
                            values.push((
                                id,
                                DataValue {
                                    value: None,
                                    status: Some(StatusCode::BadNoCommunication),
                                    source_timestamp: Some(now),
                                    server_timestamp: Some(now),
                                    ..Default::default()
                                },
                            ));
                        }
                    }
                }
            }
            if let Err(e) = manager.set_values(
                &subscriptions,
                values.into_iter().map(|(id, v)| (id, None, v)),
            ) {
                tracing::warn!("OPC UA: component health not set: {e}");
            }
            down = Some(now_down.clone());
        }
        tokio::select! {
            c = faults.changed() => if c.is_err() { return },
            tick = ticks.recv() => match tick {
                Ok(p) => {
                    let b = &p.batch;
                    let now = DateTime::now();
                    // One tick at a time: a monitored item is told the node's value after each
                    // call, so two ticks of a stream in one call would send the last one twice.
                    let mut start = 0;
                    while start < b.seqs.len() {
                        let seq = b.seqs[start];
                        let end = start + b.seqs[start..].iter().take_while(|s| **s == seq).count();
                        let values = (start..end).filter_map(|i| {
                            let stream = b.stream_ids[i];
                            if now_down.contains(&shared.settings.component_of(stream)) {
                                return None;
                            }
                            let id = streams.get(stream as usize)?;
                            Some((
                                id,
                                None,
                                DataValue {
                                    value: Some(Variant::Double(b.values[i])),
                                    status: Some(StatusCode::Good),
                                    source_timestamp: Some(opcua_time(b.timestamps_ms[i])),
                                    server_timestamp: Some(now),
                                    ..Default::default()
                                },
                            ))
                        });
                        if let Err(e) = manager.set_values(&subscriptions, values) {
                            tracing::warn!("OPC UA: values not set: {e}");
                        }
                        start = end;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("OPC UA: the server fell {n} ticks behind the source; those values were not set");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcua_times_are_unix_milliseconds_both_ways_by_async_opcuas_own_calendar() {
        let t = opcua_time(1_767_225_600_700);
        assert_eq!(nodes::unix_ms_of_ticks(t.ticks()), 1_767_225_600_700);
        assert_eq!(t.to_rfc3339(), "2026-01-01T00:00:00.700Z");
    }
}
