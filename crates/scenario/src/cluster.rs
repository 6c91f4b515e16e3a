//! The shape of a pair, as a scenario file's `[cluster]` describes it: the mode, the
//! failoverTimeout, the source, the adapters and how they reach the failover service; the
//! names of its components and links, what a step may do to a link, and the ClientFailover
//! document each adapter is given. Every stage (processes, compose, the simulator) builds its
//! pair from this.

use std::{path::PathBuf, time::Duration};

use failover_core::{DataCollectionMode, Mode, timespan::format_timespan};
use serde_json::Value;

/// The vendor's example ClientFailover document, byte for byte.
pub const VENDOR_EXAMPLE: &str = include_str!("../../../examples/ConfigureClientFailover.json");

/// Names of the components in a cluster.
pub const SOURCE: &str = "source";
/// The endpoint's name.
pub const ENDPOINT: &str = "endpoint";
/// The arbiter's name.
pub const ARBITER: &str = "arbiter";

/// The second failover service of a cluster whose services share an etcd store.
pub const ARBITER_2: &str = "arbiter-2";
/// The members of the etcd cluster of a cluster on an etcd store.
pub const ETCD_MEMBERS: [&str; 3] = ["etcd-1", "etcd-2", "etcd-3"];
/// Whichever failover service leads when the step runs (a cluster on an etcd store).
pub const LEADER: &str = "leader";

/// The components a cluster on an etcd store has beside the usual ones.
pub const STORE_COMPONENTS: [&str; 5] = [
    ARBITER_2,
    ETCD_MEMBERS[0],
    ETCD_MEMBERS[1],
    ETCD_MEMBERS[2],
    LEADER,
];

/// Where the cluster's failover services keep leadership and epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterStore {
    /// One failover service (`arbiter`), in memory.
    Memory,
    /// Two failover services (`arbiter`, `arbiter-2`) sharing a three-member etcd cluster
    /// (`etcd-1` to `etcd-3`): one leads, the other stands by. The adapters' documents list
    /// both services.
    Etcd {
        /// The lease the leader holds its role with (`--store-lease`).
        lease: Duration,
    },
}

/// The services an adapter talks to, each over a link with its own fault-injecting proxy.
pub const LINK_SERVICES: [&str; 3] = [ARBITER, SOURCE, ENDPOINT];

/// What a scenario does to a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkChange {
    /// Cut both ways, or one way (from the first named to the second).
    Cut {
        /// Only the direction from the first named to the second.
        one_way: bool,
    },
    /// Back to normal.
    Heal,
    /// Every byte dropped both ways; open connections stay open (half-open).
    Blackhole,
    /// Added delay, both ways or one way.
    Latency {
        /// Milliseconds.
        ms: u64,
        /// Only from the first named to the second.
        one_way: bool,
    },
}

/// The shape of a pair.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Hot, Warm or Cold.
    pub mode: Mode,
    /// The group's failoverTimeout.
    pub failover_timeout: Duration,
    /// Streams at the source.
    pub streams: u32,
    /// Components the streams are split into.
    pub components: u32,
    /// Source ticks per second.
    pub rate_hz: f64,
    /// Seed of the source's values.
    pub seed: u64,
    /// How often a Warm standby tests its connection.
    pub warm_test_interval: Duration,
    /// The adapters' dataCollectionMode.
    pub data_collection_mode: DataCollectionMode,
    /// Adapter names, in start order.
    pub adapters: Vec<String>,
    /// The adapters run from a command of the file's instead of failover-lab's adapter, by
    /// name (`[cluster.adapters.NAME]`).
    pub programs: std::collections::BTreeMap<String, crate::program::AdapterProgram>,
    /// The failover group id (the vendor example's by default).
    pub group_id: String,
    /// Where logs go (None: a fresh temporary folder).
    pub log_dir: Option<PathBuf>,
    /// Most history points the source serves per second (None: unthrottled).
    pub history_rate: Option<u32>,
    /// Connect adapters straight to the services, without the fault-injecting link proxies
    /// (link faults are then refused). For measurements, where a proxy would be the bottleneck.
    pub direct_links: bool,
    /// Extra command-line arguments for every adapter (for example `--batch-size`).
    pub adapter_args: Vec<String>,
    /// Extra command-line arguments for the failover service (for example
    /// `--max-rest-heartbeats`).
    pub arbiter_args: Vec<String>,
    /// What the failover service requires of heartbeat streams.
    pub auth: ClusterAuth,
    /// TLS between the adapters (and the lab) and the failover service.
    pub tls: ClusterTls,
    /// Keep each adapter's egress buffer on disk too (`--buffer-dir`, in the log folder), as
    /// the real adapters do: a restarted adapter then holds what it had not egressed.
    pub disk_buffer: bool,
    /// How the adapters talk to the failover service.
    pub failover_protocol: ClusterProtocol,
    /// How the Primary egresses to the data endpoint.
    pub egress: ClusterEgress,
    /// How the adapters collect from the source.
    pub source_protocol: ClusterSource,
    /// Whose failover design the adapters follow: failover-lab's, or the vendor's adapter
    /// framework's (REST, OMF without fencing, a Hot queue trimmed by time).
    pub behaviour: failover_core::Behaviour,
    /// Rules broken on purpose (`break = "epoch-check"`), to see the invariants catch them.
    pub broken: failover_core::Broken,
    /// Most clients the source takes at once (None: any number): with 1, as a source that
    /// allows one client connection, a Hot or Warm standby cannot connect.
    pub max_clients: Option<u32>,
    /// Where the failover services keep leadership and epochs.
    pub store: ClusterStore,
}

/// What the failover service of a cluster requires of heartbeat streams, and what the
/// adapters' ClientFailover documents carry to satisfy it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterAuth {
    /// Nothing: the vendor example's username and password are sent and not checked.
    #[default]
    None,
    /// HTTP basic with the vendor example's username and password.
    Basic,
    /// Bearer tokens: the documents carry [`BEARER_CLIENT_ID`] and [`BEARER_CLIENT_SECRET`]
    /// (and no username or password), `tokenEndpoint` null (the service's well-known path),
    /// and the service issues tokens valid this long.
    Bearer {
        /// How long each token is valid; adapters renew at 80% of it.
        token_lifetime: Duration,
    },
}

/// TLS to the failover service of a cluster. With TLS, the service makes a self-signed identity
/// (`--tls-self-signed`, in the log folder) and the documents' endpoint is `https://`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterTls {
    /// Plain HTTP/2.
    #[default]
    Off,
    /// `validateEndpointCertificate: true`, and the adapters are given the service's CA
    /// (`--trusted-ca`).
    TrustedCa,
    /// `validateEndpointCertificate: false` and no CA given: the adapters take the certificate
    /// unchecked, with a warning.
    Unchecked,
}

/// How a cluster's adapters talk to the failover service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterProtocol {
    /// failover-lab's gRPC heartbeat stream (roles pushed at once).
    #[default]
    Grpc,
    /// The vendor's Client Failover Service REST API (roles pulled in heartbeat answers): the
    /// documents' endpoint is the service's `/api/v1/clientfailover`.
    Rest,
}

/// How a cluster's adapters collect from the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterSource {
    /// The lab's `DataSource` over gRPC.
    #[default]
    Grpc,
    /// MQTT 3.1.1: the source's topics `failover-lab/{component}/{stream}` and `/status`.
    Mqtt,
    /// OPC UA: the source's address space, a variable per stream (security None, anonymous).
    OpcUa,
}

impl ClusterSource {
    /// The name in scenario files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterSource::Grpc => "grpc",
            ClusterSource::Mqtt => "mqtt",
            ClusterSource::OpcUa => "opcua",
        }
    }
}

/// How a cluster's Primary egresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterEgress {
    /// The lab's `DataEndpoint` over gRPC: fence and watermark in one call.
    #[default]
    Grpc,
    /// OMF over HTTP to the endpoint's `/api/v1/tenants/default/namespaces/default/omf`, fenced
    /// by the lab's extension headers.
    Omf,
}

/// The accounts of the vendor API of a REST cluster with basic authentication: the vendor
/// example's username and password as a member, and this administrator.
pub const CFS_ADMIN: (&str, &str) = ("failover-lab-admin", "AdminPassword1");

/// The OAuth2 client id of a bearer-authenticated cluster's adapters.
pub const BEARER_CLIENT_ID: &str = "failover-lab-adapter";
/// Its client secret (a test value, like the vendor example's password).
pub const BEARER_CLIENT_SECRET: &str = "ClientSecret1";

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            mode: Mode::Hot,
            failover_timeout: Duration::from_secs(4),
            streams: 8,
            components: 4,
            rate_hz: 10.0,
            seed: 1,
            warm_test_interval: Duration::from_secs(1),
            data_collection_mode: DataCollectionMode::CurrentOnly,
            adapters: vec!["adapter-a".into(), "adapter-b".into()],
            programs: std::collections::BTreeMap::new(),
            group_id: "FailoverGroup1".into(),
            log_dir: None,
            history_rate: None,
            direct_links: false,
            adapter_args: Vec::new(),
            arbiter_args: Vec::new(),
            auth: ClusterAuth::None,
            disk_buffer: true,
            tls: ClusterTls::Off,
            failover_protocol: ClusterProtocol::Grpc,
            egress: ClusterEgress::Grpc,
            source_protocol: ClusterSource::Grpc,
            behaviour: failover_core::Behaviour::Lab,
            broken: failover_core::Broken::NONE,
            max_clients: None,
            store: ClusterStore::Memory,
        }
    }
}

impl ClusterSpec {
    /// The first adapter that is not `name` (the other one of a pair).
    pub fn other_adapter(&self, name: &str) -> Option<String> {
        self.adapters.iter().find(|a| *a != name).cloned()
    }

    /// The vendor's example document, with the failover service's URL, the timeout and the
    /// mode of this cluster (everything else as the vendor wrote it, password included).
    pub fn client_failover_document(&self, arbiter_url: &str) -> serde_json::Result<Value> {
        let mut doc: Value = serde_json::from_str(VENDOR_EXAMPLE)?;
        doc["endpoint"] = Value::String(arbiter_url.to_string());
        doc["failoverTimeout"] = Value::String(format_timespan(self.failover_timeout));
        doc["mode"] = Value::String(self.mode.as_str().to_string());
        doc["failoverGroupId"] = Value::String(self.group_id.clone());
        if self.tls != ClusterTls::Off {
            doc["endpoint"] = Value::String(arbiter_url.replacen("http://", "https://", 1));
            doc["validateEndpointCertificate"] = Value::Bool(self.tls == ClusterTls::TrustedCa);
        }
        if let ClusterAuth::Bearer { .. } = self.auth {
            doc["username"] = Value::Null;
            doc["password"] = Value::Null;
            doc["clientId"] = BEARER_CLIENT_ID.into();
            doc["clientSecret"] = BEARER_CLIENT_SECRET.into();
        }
        Ok(doc)
    }
}
