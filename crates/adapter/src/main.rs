//! `adapter`: one member of a failover pair (see the library docs).

use std::path::PathBuf;

use clap::Parser;
use failover_core::{
    ClientFailoverConfig, DataCollectionMode, DataSourceConfig, timespan::parse_timespan,
};
use failover_proto::process::{self, LogFormat};

/// A data adapter with client-level failover: collects from the data source, egresses to the
/// data endpoint while Primary, and heartbeats its failover score to the failover service named
/// by its ClientFailover document (PUT to /api/v1/configuration/System/ClientFailover, or
/// --config at start).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The adapter's name (its id in the failover group).
    #[arg(long, default_value = "adapter-a", env = "ADAPTER_NAME")]
    name: String,
    /// Address of the REST API (the vendor's default port is 5590).
    #[arg(long, default_value = "127.0.0.1:5590", env = "ADAPTER_REST_LISTEN")]
    rest_listen: std::net::SocketAddr,
    /// URL of the data source: `http(s)://` for the lab's gRPC `DataSource`, `mqtt://host:port`
    /// for MQTT, `opc.tcp://host:port` for OPC UA (live points and health; history recoveries
    /// need gRPC).
    #[arg(long, default_value = "http://127.0.0.1:50051", env = "ADAPTER_SOURCE")]
    source: String,
    /// URL of the data endpoint (where data is egressed; not the failover service): the lab's
    /// gRPC `DataEndpoint`, or OMF when its path ends in `/omf` (as
    /// `http://host:5590/api/v1/tenants/default/namespaces/default/omf`; see docs/omf.md).
    #[arg(
        long,
        default_value = "http://127.0.0.1:50052",
        env = "ADAPTER_DATA_ENDPOINT"
    )]
    data_endpoint: String,
    /// A ClientFailover JSON document to apply at start.
    #[arg(long, env = "ADAPTER_CONFIG")]
    config: Option<PathBuf>,
    /// dataCollectionMode at start: CurrentOnly, HistoryOnly or CurrentWithBackfill.
    #[arg(long, default_value = "CurrentOnly", value_parser = |s: &str| s.parse::<DataCollectionMode>().map_err(|e| e.to_string()))]
    data_collection_mode: DataCollectionMode,
    /// How often a Warm standby tests its source connection (hh:mm:ss; the vendor's is 5 minutes).
    #[arg(long, default_value = "00:05:00", value_parser = |s: &str| parse_timespan(s).map_err(|e| e.to_string()))]
    warm_test_interval: std::time::Duration,
    /// Most points held for egress in memory (without --buffer-dir); past it the oldest are
    /// dropped and counted.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    buffer_max_points: u64,
    /// Trust this CA (a PEM file; repeatable) for an https failover service, beside the
    /// system's bundle, when validateEndpointCertificate is true.
    #[arg(long = "trusted-ca", env = "ADAPTER_TRUSTED_CA", value_delimiter = ',')]
    trusted_ca: Vec<PathBuf>,
    /// Keep the egress buffer on disk in this directory too, so that a restart loses nothing
    /// collected and not yet egressed (the directory is created; one per adapter).
    #[arg(long, env = "ADAPTER_BUFFER_DIR")]
    buffer_dir: Option<PathBuf>,
    /// The cap of the buffer on disk, in MB (the real adapters' default is 1024); past it the
    /// oldest points are dropped and counted. With --buffer-dir it replaces --buffer-max-points
    /// (28 bytes a point; memory holds the same points, 32 bytes each).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    buffer_max_mb: u64,
    /// Most points per write to the endpoint.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    batch_size: u64,
    /// How to talk to the failover service: auto (by the document's endpoint: the vendor's
    /// REST API when its path holds /clientfailover, else gRPC), grpc or rest.
    #[arg(long, value_enum, default_value_t = adapter::FailoverProtocol::Auto, env = "ADAPTER_FAILOVER_PROTOCOL")]
    failover_protocol: adapter::FailoverProtocol,
    /// How often failover health's dynamic values (DeviceStatus, NextHealthMessageExpected) go
    /// to the data endpoint, beside the Failover.FailoverStatus values written at every role
    /// or score change (hh:mm:ss; the vendor's adapters: every minute).
    #[arg(long, default_value = "00:01:00", value_parser = |s: &str| parse_timespan(s).map_err(|e| e.to_string()).and_then(|d| if d.is_zero() { Err("must be above 00:00:00".to_string()) } else { Ok(d) }))]
    health_interval: std::time::Duration,
    /// Whose failover design to follow: lab (failover-lab's: the endpoint fenced by epoch, a
    /// takeover flushes exactly what follows the endpoint's watermark) or vendor (the vendor's
    /// adapter framework's, to compare: the Client Failover Service REST API with
    /// LastDataProcessedTime, a Hot queue trimmed by receive time, OMF without fencing; needs
    /// an OMF --data-endpoint). See docs/vendor-behaviour.md.
    #[arg(long, default_value = "lab", env = "ADAPTER_BEHAVIOUR", value_parser = |s: &str| s.parse::<failover_core::Behaviour>())]
    behaviour: failover_core::Behaviour,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Break a rule on purpose, for self-tests that must catch it (fixed-retry, no-failsafe,
    /// failed-standby-scores); repeatable.
    #[arg(long = "break", hide = true, value_parser = adapter_rule)]
    broken: Vec<failover_core::BrokenRule>,
}

/// A rule the adapter can break.
fn adapter_rule(s: &str) -> Result<failover_core::BrokenRule, String> {
    let rule: failover_core::BrokenRule = s.parse()?;
    if rule.service() == "adapter" {
        Ok(rule)
    } else {
        Err(format!(
            "{rule} is broken by {}, not the adapter",
            rule.service()
        ))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    process::init_tracing(args.log_format);
    let initial = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            Some(
                ClientFailoverConfig::from_json(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            )
        }
        None => None,
    };
    let settings = adapter::AdapterSettings {
        name: args.name,
        source_url: args.source,
        endpoint_url: args.data_endpoint,
        data_source: DataSourceConfig {
            data_collection_mode: args.data_collection_mode,
        },
        warm_test_interval: args.warm_test_interval,
        buffer_capacity: usize::try_from(args.buffer_max_points)?,
        buffer_dir: args.buffer_dir,
        trusted_ca: args.trusted_ca,
        network: failover_proto::net::Network::tcp(),
        buffer_max_bytes: args.buffer_max_mb << 20,
        batch_size: usize::try_from(args.batch_size)?,
        documents: None,
        failover_protocol: args.failover_protocol,
        health_interval: Some(args.health_interval),
        broken: failover_core::Broken::of(args.broken),
        behaviour: args.behaviour,
    };
    let rest = tokio::net::TcpListener::bind(args.rest_listen).await?;
    adapter::run(Some(rest), settings, initial, process::shutdown_signal()).await
}
