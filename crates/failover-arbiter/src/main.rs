//! `failover-arbiter`: the failover service (see the library docs).

use clap::Parser;
use failover_proto::process::{self, LogFormat};

/// The failover service for failover-lab: adapters heartbeat to it with their failover scores
/// and it decides who is Primary, pushing role changes at once. Also serves the REST admin.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to serve gRPC (heartbeats, group watch) on.
    #[arg(long, default_value = "127.0.0.1:50053", env = "ARBITER_LISTEN")]
    listen: std::net::SocketAddr,
    /// Address to serve the REST admin on.
    #[arg(long, default_value = "127.0.0.1:5591", env = "ARBITER_REST_LISTEN")]
    rest_listen: std::net::SocketAddr,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    process::init_tracing(args.log_format);
    let grpc = tokio::net::TcpListener::bind(args.listen).await?;
    let rest = tokio::net::TcpListener::bind(args.rest_listen).await?;
    failover_arbiter::run(grpc, rest, process::shutdown_signal()).await
}
