//! `failover-arbiter`: the failover service (see the library docs).

use std::{path::PathBuf, sync::Arc};

use clap::Parser;
use failover_arbiter::auth::{AuthConfig, OAuthClient};
use failover_proto::process::{self, LogFormat};
use failover_proto::tls;

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
    /// Serve the live dashboard of one group here (a web page; none by default).
    #[arg(long, env = "ARBITER_DASHBOARD_LISTEN")]
    dashboard_listen: Option<std::net::SocketAddr>,
    /// The failover group the dashboard shows.
    #[arg(
        long,
        default_value = "FailoverGroup1",
        env = "ARBITER_DASHBOARD_GROUP"
    )]
    dashboard_group: String,
    /// gRPC URL of the data endpoint, for the dashboard's audit panel (none: not shown).
    #[arg(long, env = "ARBITER_DASHBOARD_ENDPOINT")]
    dashboard_endpoint: Option<String>,
    /// Require HTTP basic authentication on heartbeat streams, with this username (and
    /// --auth-password): adapters send the ClientFailover document's username and password.
    #[arg(long, env = "ARBITER_AUTH_USERNAME", requires = "auth_password")]
    auth_username: Option<String>,
    /// The password for --auth-username (better given as ARBITER_AUTH_PASSWORD).
    #[arg(long, env = "ARBITER_AUTH_PASSWORD", requires = "auth_username", hide_env_values = true,
          value_parser = |s: &str| Ok::<_, String>(failover_core::config::Secret::new(s)))]
    auth_password: Option<failover_core::config::Secret>,
    /// Issue bearer tokens to this OAuth2 client (client-credentials grant, at
    /// /identity/connect/token on the gRPC port) and take them on heartbeat streams: adapters
    /// send the ClientFailover document's clientId and clientSecret.
    #[arg(
        long,
        env = "ARBITER_OAUTH_CLIENT_ID",
        requires = "oauth_client_secret"
    )]
    oauth_client_id: Option<String>,
    /// The secret of --oauth-client-id (better given as ARBITER_OAUTH_CLIENT_SECRET).
    #[arg(long, env = "ARBITER_OAUTH_CLIENT_SECRET", requires = "oauth_client_id", hide_env_values = true,
          value_parser = |s: &str| Ok::<_, String>(failover_core::config::Secret::new(s)))]
    oauth_client_secret: Option<failover_core::config::Secret>,
    /// How long an issued token is valid (hh:mm:ss); adapters renew at 80% of it.
    #[arg(long, default_value = "01:00:00", value_parser = parse_lifetime)]
    oauth_token_lifetime: std::time::Duration,
    /// Serve gRPC (and the token endpoint) over TLS with this certificate chain (PEM).
    #[arg(
        long,
        env = "ARBITER_TLS_CERT",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "ARBITER_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve over TLS with a self-signed identity kept in this directory (made at first start:
    /// ca.pem, cert.pem, key.pem). Adapters trust it with --trusted-ca DIR/ca.pem, or take it
    /// unchecked with validateEndpointCertificate false.
    #[arg(long, env = "ARBITER_TLS_SELF_SIGNED")]
    tls_self_signed: Option<PathBuf>,
    /// A name or address the self-signed certificates (--tls-self-signed, and the vendor API's)
    /// are valid for (repeatable; localhost, 127.0.0.1, ::1 and the listen address are always
    /// in).
    #[arg(long = "tls-san", value_parser = parse_san)]
    tls_sans: Vec<String>,
    /// Serve the vendor's Client Failover Service REST API here (its default port is 5590;
    /// none unless given): the vendor's adapters register and heartbeat at
    /// https://HOST:PORT/api/v1/clientfailover. HTTPS with a self-signed certificate made at
    /// first start in --cfs-cert-dir, unless --cfs-plain-http.
    #[arg(long, env = "ARBITER_CFS_LISTEN")]
    cfs_listen: Option<std::net::SocketAddr>,
    /// Where the vendor API's self-signed certificate is made at first start and kept (ca.pem,
    /// cert.pem, key.pem); give --cfs-cert and --cfs-key to use your own instead.
    #[arg(long, env = "ARBITER_CFS_CERT_DIR", default_value_os_t = default_cfs_cert_dir())]
    cfs_cert_dir: PathBuf,
    /// The vendor API's certificate chain (PEM), instead of a self-signed one.
    #[arg(long, env = "ARBITER_CFS_CERT", requires = "cfs_key")]
    cfs_cert: Option<PathBuf>,
    /// The private key of --cfs-cert (PEM).
    #[arg(long, env = "ARBITER_CFS_KEY", requires = "cfs_cert")]
    cfs_key: Option<PathBuf>,
    /// Serve the vendor API over plain HTTP (no TLS): for tests and demos on one machine.
    #[arg(long, env = "ARBITER_CFS_PLAIN_HTTP", conflicts_with_all = ["cfs_cert", "cfs_key"])]
    cfs_plain_http: bool,
    /// Require basic authentication on the vendor API with the accounts of this JSON file:
    /// {"members": [{"username": "...", "password": "..."}], "administrators": [...]}.
    /// Members heartbeat, read, create groups and sessions and delete sessions; administrators
    /// may also delete groups, set overrides and change the log level. None: every request is
    /// taken.
    #[arg(long, env = "ARBITER_CFS_USERS")]
    cfs_users: Option<PathBuf>,
    /// Take at most this many heartbeats a second on the vendor API (bursts of as many);
    /// past it, a heartbeat is answered 429 Too Many Requests with Retry-After: 1, as the
    /// vendor documents, and its member is not made stale for the wait. None by default.
    #[arg(long, env = "ARBITER_MAX_REST_HEARTBEATS",
          value_parser = clap::value_parser!(u32).range(1..))]
    max_rest_heartbeats: Option<u32>,
    /// Where groups' leadership and epochs are kept: "memory" (this process alone decides), or
    /// etcd://HOST:PORT,HOST:PORT[/PREFIX] (etcd's v3 API, 3.4 or newer, plain HTTP): several
    /// failover services share the fleet, one leading at a time through a lease, the others
    /// standing by and refusing heartbeats with the leader's URL; epochs are reserved in etcd
    /// by compare-and-swap, so none goes back across leaders and restarts. Adapters list every
    /// service in their document's endpoint, comma-separated.
    #[arg(long, env = "ARBITER_STORE", default_value = "memory")]
    store: String,
    /// With an etcd store: the lease leadership is held with (hh:mm:ss, at least 00:00:01;
    /// etcd may round it up). A leader cut off from etcd stops deciding within three quarters
    /// of it; another leads within about a lease and a third of it.
    #[arg(long, env = "ARBITER_STORE_LEASE", default_value = "00:00:05", value_parser = parse_lifetime)]
    store_lease: std::time::Duration,
    /// With an etcd store: this service's gRPC URL as members reach it, named to them by the
    /// services standing by (default: http://, or https:// with TLS, and --listen, which must
    /// then not be 0.0.0.0).
    #[arg(long, env = "ARBITER_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Break a rule on purpose, for failover-lab's self-tests that must catch it
    /// (epoch-floor, data-blind-promotion, refused-epoch, startup-wait); repeatable.
    #[arg(long = "break", hide = true, value_parser = arbiter_rule)]
    broken: Vec<failover_core::BrokenRule>,
}

/// A rule the failover service can break.
fn arbiter_rule(s: &str) -> Result<failover_core::BrokenRule, String> {
    let rule: failover_core::BrokenRule = s.parse()?;
    if rule.service() == "failover-arbiter" {
        Ok(rule)
    } else {
        Err(format!(
            "{rule} is broken by {}, not the failover service",
            rule.service()
        ))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    process::init_tracing(args.log_format);
    let grpc = tokio::net::TcpListener::bind(args.listen).await?;
    let rest = tokio::net::TcpListener::bind(args.rest_listen).await?;
    if let Some(addr) = args.dashboard_listen {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        // The dashboard reads this arbiter over its own gRPC, like any observer.
        let mut own = args.listen;
        if own.ip().is_unspecified() {
            own.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let feed = failover_dashboard::Feed::new();
        tokio::spawn(feed.clone().run(
            format!("http://{own}"),
            args.dashboard_endpoint.clone(),
            args.dashboard_group.clone(),
        ));
        tracing::info!(addr = %addr, group = args.dashboard_group, "dashboard at http://{addr}/");
        tokio::spawn(async move {
            if let Err(e) =
                failover_dashboard::serve(listener, feed, None, std::future::pending()).await
            {
                tracing::error!("dashboard: {e:#}");
            }
        });
    }
    let auth = AuthConfig {
        basic: args.auth_username.clone().zip(args.auth_password.clone()),
        oauth: args
            .oauth_client_id
            .clone()
            .zip(args.oauth_client_secret.clone())
            .map(|(client_id, client_secret)| OAuthClient {
                client_id,
                client_secret,
                token_lifetime: args.oauth_token_lifetime,
            }),
    };
    let tls = tls_config(&args)?;
    let cfs = match args.cfs_listen {
        None => None,
        Some(addr) => Some(failover_arbiter::CfsServer {
            listener: tokio::net::TcpListener::bind(addr).await?,
            tls: cfs_tls_config(&args, addr)?,
            users: match &args.cfs_users {
                Some(path) => failover_arbiter::cfs_api::users::Users::load(path)?,
                None => failover_arbiter::cfs_api::users::Users::open(),
            },
            max_heartbeats: args.max_rest_heartbeats,
        }),
    };
    let broken = failover_core::Broken::of(args.broken.iter().copied());
    let store = store(&args, tls.is_some())?;
    failover_arbiter::run(
        grpc,
        rest,
        cfs,
        auth,
        tls,
        broken,
        store,
        process::shutdown_signal(),
    )
    .await
}

/// The etcd store the flags ask for (None: the in-memory one).
fn store(
    args: &Args,
    tls: bool,
) -> anyhow::Result<Option<failover_arbiter::etcd_store::EtcdStore>> {
    if args.store == "memory" {
        return Ok(None);
    }
    let advertise = match &args.advertise_url {
        Some(url) => url.clone(),
        None if args.listen.ip().is_unspecified() => anyhow::bail!(
            "--store {}: give --advertise-url (the URL members reach this service at): --listen {} names no address",
            args.store,
            args.listen
        ),
        None => format!("{}://{}", if tls { "https" } else { "http" }, args.listen),
    };
    failover_arbiter::etcd_store::EtcdStore::parse(&args.store, args.store_lease, advertise)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("--store {e}"))
}

/// `$XDG_STATE_HOME/failover-arbiter/cfs-certificate` (or under `~/.local/state`, or the
/// temporary directory when there is no home).
fn default_cfs_cert_dir() -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    state.join("failover-arbiter").join("cfs-certificate")
}

/// The vendor API's TLS identity: the given one, or a self-signed one (made at first start).
fn cfs_tls_config(
    args: &Args,
    addr: std::net::SocketAddr,
) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    if args.cfs_plain_http {
        return Ok(None);
    }
    let (chain, key) = match (&args.cfs_cert, &args.cfs_key) {
        (Some(cert), Some(key)) => (tls::load_certs(cert)?, tls::load_key(key)?),
        _ => {
            let mut names: Vec<String> =
                ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
            if !addr.ip().is_unspecified() && !names.contains(&addr.ip().to_string()) {
                names.push(addr.ip().to_string());
            }
            for n in &args.tls_sans {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
            failover_arbiter::demo_cert::ensure(&args.cfs_cert_dir, &names)?
        }
    };
    Ok(Some(tls::server_config(chain, key)?))
}

/// The TLS identity the flags ask for, if any.
fn tls_config(args: &Args) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    let (chain, key) = match (&args.tls_cert, &args.tls_key, &args.tls_self_signed) {
        (Some(cert), Some(key), _) => (tls::load_certs(cert)?, tls::load_key(key)?),
        (_, _, Some(dir)) => {
            let mut names: Vec<String> =
                ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
            if !args.listen.ip().is_unspecified() {
                names.push(args.listen.ip().to_string());
            }
            for n in &args.tls_sans {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
            failover_arbiter::demo_cert::ensure(dir, &names)?
        }
        _ => return Ok(None),
    };
    Ok(Some(tls::server_config(chain, key)?))
}

/// A name or address for a self-signed certificate.
fn parse_san(s: &str) -> Result<String, String> {
    match rustls::pki_types::ServerName::try_from(s) {
        Ok(_) => Ok(s.to_string()),
        Err(_) => Err(format!(
            "{s:?} is neither a DNS name nor an IP address (such as arbiter.example or 10.0.0.5)"
        )),
    }
}

/// A token lifetime: a timespan of at least one second.
fn parse_lifetime(s: &str) -> Result<std::time::Duration, String> {
    let d = failover_core::timespan::parse_timespan(s).map_err(|e| e.to_string())?;
    if d < std::time::Duration::from_secs(1) {
        return Err(format!(
            "{s:?} is shorter than the accepted minimum of 00:00:01"
        ));
    }
    Ok(d)
}
