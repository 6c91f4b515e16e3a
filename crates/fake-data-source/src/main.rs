//! `fake-data-source`: serves deterministic streams for the adapters (see the library docs).

use clap::Parser;
use failover_proto::process::{self, LogFormat};

/// Deterministic data source for failover-lab: N streams in C components at a given rate,
/// identical for every subscriber; faults injected over gRPC.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to serve gRPC on.
    #[arg(long, default_value = "127.0.0.1:50051", env = "SOURCE_LISTEN")]
    listen: std::net::SocketAddr,
    /// Number of streams.
    #[arg(long, default_value_t = 8)]
    streams: u32,
    /// Number of components the streams are split into (score weights).
    #[arg(long, default_value_t = 4)]
    components: u32,
    /// Ticks per second; each tick produces one point per stream.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Seed of the values.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Data time of sequence number 0, in unix milliseconds (default: now). Give a restarted
    /// source the same origin and it goes on with the sequence numbers it would have reached.
    #[arg(long)]
    origin_unix_ms: Option<i64>,
    /// Most history points served per second (default: as fast as possible).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    history_rate: Option<u32>,
    /// Most clients connected at once (default: any number), as sources that take one client
    /// connection do: a client holds its place while its subscription is open; others are
    /// refused until it lets go. With 1, only a Cold pair's standby can wait its turn.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_clients: Option<u32>,
    /// Address to serve MQTT 3.1.1 on (none by default): every stream publishes to
    /// failover-lab/{component}/{stream} and each component's health to
    /// failover-lab/{component}/status, as JSON; the source is the only publisher.
    #[arg(long, env = "SOURCE_MQTT_LISTEN")]
    mqtt_listen: Option<std::net::SocketAddr>,
    /// Address to serve OPC UA on (none by default), at opc.tcp://ADDR/: a folder per component
    /// under Objects/FailoverLabSource with its Up flag and a Double variable per stream, each
    /// tick's value at its data time (docs/opcua.md). Security None, or Basic256Sha256 signed
    /// and encrypted; anonymous, or --opcua-user.
    #[arg(long, env = "SOURCE_OPCUA_LISTEN")]
    opcua_listen: Option<std::net::SocketAddr>,
    /// Folder of the OPC UA server's certificate and private key, made at first start and kept
    /// (default: failover-lab-opcua-pki in the system's temporary folder).
    #[arg(long, env = "SOURCE_OPCUA_PKI")]
    opcua_pki: Option<std::path::PathBuf>,
    /// A user name the OPC UA server takes besides anonymous; its password is read from
    /// SOURCE_OPCUA_PASSWORD (never from the command line, never logged).
    #[arg(long, env = "SOURCE_OPCUA_USER", requires = "opcua_listen")]
    opcua_user: Option<String>,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    process::init_tracing(args.log_format);
    let settings = fake_data_source::SourceSettings {
        streams: args.streams,
        components: args.components,
        rate_hz: args.rate,
        seed: args.seed,
        origin_unix_ms: args.origin_unix_ms,
        history_rate: args.history_rate,
        max_clients: args.max_clients,
    };
    settings.validate().map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let mqtt = match args.mqtt_listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
        None => None,
    };
    let opcua = match args.opcua_listen {
        Some(addr) => {
            let user = match args.opcua_user {
                Some(user) => {
                    let password = std::env::var("SOURCE_OPCUA_PASSWORD").map_err(|_| {
                        anyhow::anyhow!(
                            "--opcua-user {user:?} needs its password in SOURCE_OPCUA_PASSWORD"
                        )
                    })?;
                    Some((user, password))
                }
                None => None,
            };
            let settings = fake_data_source::opcua::OpcUaSettings {
                listen: addr,
                pki_dir: args
                    .opcua_pki
                    .unwrap_or_else(|| std::env::temp_dir().join("failover-lab-opcua-pki")),
                user,
            };
            Some((tokio::net::TcpListener::bind(addr).await?, settings))
        }
        None => None,
    };
    let wires = fake_data_source::ExtraWires { mqtt, opcua };
    fake_data_source::run_with_wires(listener, wires, settings, process::shutdown_signal()).await
}
