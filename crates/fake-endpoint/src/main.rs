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
    /// Address to serve HTTP on (none by default): Prometheus metrics at /metrics, OMF at
    /// /api/v1/tenants/{tenant}/namespaces/{namespace}/omf and /piwebapi/omf, and OMF's
    /// read-back at /api/v1/tenants/{tenant}/namespaces/{namespace}/streams.
    #[arg(long, visible_alias = "http-listen", env = "ENDPOINT_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Which OMF containers are which streams of which group: `{group}` and `{stream}` (a
    /// number) once each. Values of a matching container join that group's audit.
    #[arg(long, default_value = fake_endpoint::omf::DEFAULT_CONTAINER_PATTERN)]
    omf_containers: String,
    /// The source's tick, so a date-time index maps to a sequence number: the source's
    /// `--origin-unix-ms` ...
    #[arg(long, requires = "tick_rate")]
    tick_origin_unix_ms: Option<i64>,
    /// ... and its `--rate` (ticks per second). Without them, the audit counts a date-time
    /// index as its unix milliseconds: received and duplicated are right, lost is not.
    #[arg(long, requires = "tick_origin_unix_ms")]
    tick_rate: Option<f64>,
    /// Require HTTP basic credentials on OMF, as `USER:PASSWORD` (as PI Web API does). Given by
    /// the environment so it shows in no process list; never logged.
    #[arg(
        long,
        env = "ENDPOINT_OMF_BASIC",
        hide_env_values = true,
        conflicts_with = "omf_bearer"
    )]
    omf_basic: Option<String>,
    /// Require this bearer token on OMF (as CONNECT data services does); never logged.
    #[arg(long, env = "ENDPOINT_OMF_BEARER", hide_env_values = true)]
    omf_bearer: Option<String>,
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
    use fake_endpoint::omf;
    let tick = match (args.tick_origin_unix_ms, args.tick_rate) {
        (Some(origin_unix_ms), Some(rate_hz)) if rate_hz.is_finite() && rate_hz > 0.0 => {
            Some(omf::Tick {
                origin_unix_ms,
                rate_hz,
            })
        }
        (Some(_), Some(rate)) => anyhow::bail!("--tick-rate must be above 0, not {rate}"),
        _ => None,
    };
    let auth = match (args.omf_basic, args.omf_bearer) {
        (Some(basic), _) => match basic.split_once(':') {
            Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                omf::OmfAuth::Basic {
                    user: user.to_string(),
                    password: password.to_string(),
                }
            }
            _ => anyhow::bail!("--omf-basic must be USER:PASSWORD, both non-empty"),
        },
        (None, Some(token)) if !token.is_empty() => omf::OmfAuth::Bearer(token),
        (None, Some(_)) => anyhow::bail!("--omf-bearer must not be empty"),
        (None, None) => omf::OmfAuth::None,
    };
    let settings = omf::OmfSettings {
        tick,
        containers: omf::ContainerPattern::parse(&args.omf_containers)
            .map_err(|e| anyhow::anyhow!("--omf-containers: {e}"))?,
        auth,
        ..omf::OmfSettings::default()
    };
    let service = fake_endpoint::EndpointService::breaking(failover_core::Broken::of(args.broken))
        .with_omf(settings);
    fake_endpoint::run_service(service, listener, metrics, process::shutdown_signal()).await
}
