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
    /// Break a rule on purpose, for failover-lab's self-tests that must catch it (a scenario
    /// with `break = "epoch-check"`: writes taken whatever their epoch). Never in use.
    #[arg(long = "break", hide = true, value_parser = endpoint_rule)]
    broken: Vec<failover_core::BrokenRule>,
}

/// A rule the endpoint can break.
fn endpoint_rule(s: &str) -> Result<failover_core::BrokenRule, String> {
    let rule: failover_core::BrokenRule = s.parse()?;
    if rule.service() == "fake-endpoint" {
        Ok(rule)
    } else {
        Err(format!(
            "{rule} is broken by {}, not the endpoint",
            rule.service()
        ))
    }
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
    for rule in &args.broken {
        tracing::warn!("--break {rule}: a rule broken on purpose (a self-test)");
    }
    let service = fake_endpoint::EndpointService::breaking(failover_core::Broken::of(args.broken));
    fake_endpoint::run_service(service, listener, metrics, process::shutdown_signal()).await
}
