//! `fake-endpoint`: the data endpoint that fences stale epochs and audits (see the library docs).

use clap::Parser;
use failover_proto::process::{self, LogFormat};

/// Data endpoint for failover-lab: accepts egress, refuses writes from stale epochs, and audits
/// every stream (lost, duplicated, out of order, gaps).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to serve gRPC on.
    #[arg(long, default_value = "127.0.0.1:50052", env = "ENDPOINT_LISTEN")]
    listen: std::net::SocketAddr,
    /// Address to serve Prometheus metrics on, at /metrics (none by default).
    #[arg(long, env = "ENDPOINT_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Take writes whatever their epoch: a broken rule, for failover-lab's self-tests (a
    /// scenario with `break = "epoch-check"`), which its invariants must catch. Never in use.
    #[arg(long, hide = true)]
    break_epoch_check: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    process::init_tracing(args.log_format);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let metrics = match args.metrics_listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
        None => None,
    };
    let service = fake_endpoint::EndpointService::default();
    if args.break_epoch_check {
        tracing::warn!("--break-epoch-check: writes are taken whatever their epoch (a self-test)");
        service.break_epoch_check();
    }
    fake_endpoint::run_service(service, listener, metrics, process::shutdown_signal()).await
}
