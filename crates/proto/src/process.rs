//! What every failover-lab server process does the same way.

use std::time::Duration;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Replaces the log filter of the running process (set by [`init_tracing`]).
type SetFilter = Box<dyn Fn(tracing_subscriber::EnvFilter) -> Result<(), String> + Send + Sync>;

/// The time on each log line: the system's, or, where a wall clock was installed (the
/// simulator's, [`install_wall_clock`]), that clock's time of day, so a simulated run's log
/// lines read in simulated time (a simulation starts at midnight).
#[derive(Debug, Clone, Copy)]
struct LogClock;

impl tracing_subscriber::fmt::time::FormatTime for LogClock {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        if WALL_CLOCK.get().is_none() {
            return tracing_subscriber::fmt::time::SystemTime.format_time(w);
        }
        let us = unix_us().rem_euclid(86_400_000_000);
        let (s, frac) = (us / 1_000_000, us % 1_000_000);
        write!(
            w,
            "{:02}:{:02}:{:02}.{frac:06}",
            s / 3600,
            s / 60 % 60,
            s % 60
        )
    }
}

/// The running process's log filter, and how to change it.
static LOG_FILTER: std::sync::Mutex<Option<(String, SetFilter)>> = std::sync::Mutex::new(None);

/// Sets up tracing to stderr; `RUST_LOG` overrides the default level (info). The filter can be
/// changed at runtime with [`set_log_filter`].
pub fn init_tracing(format: LogFormat) {
    let directive = std::env::var("RUST_LOG")
        .ok()
        .filter(|d| tracing_subscriber::EnvFilter::try_new(d).is_ok())
        .unwrap_or_else(|| "info".to_string());
    let filter = tracing_subscriber::EnvFilter::new(&directive);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_timer(LogClock)
        .with_target(false);
    // A second call (tests) keeps the first subscriber.
    let set: SetFilter = match format {
        LogFormat::Text => {
            let builder = builder.with_filter_reloading();
            let handle = builder.reload_handle();
            if builder.try_init().is_err() {
                return;
            }
            Box::new(move |f| handle.reload(f).map_err(|e| e.to_string()))
        }
        LogFormat::Json => {
            let builder = builder.json().with_filter_reloading();
            let handle = builder.reload_handle();
            if builder.try_init().is_err() {
                return;
            }
            Box::new(move |f| handle.reload(f).map_err(|e| e.to_string()))
        }
    };
    *LOG_FILTER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((directive, set));
}

/// The log filter in force (an `EnvFilter` directive such as `info`), if [`init_tracing`] set
/// one up in this process.
pub fn log_filter() -> Option<String> {
    LOG_FILTER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
        .map(|(d, _)| d.clone())
}

/// Changes the log filter at runtime (`directive` as in `RUST_LOG`: `debug`, `warn`, ...).
pub fn set_log_filter(directive: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(directive).map_err(|e| e.to_string())?;
    let mut slot = LOG_FILTER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some((current, set)) = slot.as_mut() else {
        return Err("this process did not set up its logging with init_tracing".into());
    };
    set(filter)?;
    *current = directive.to_string();
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// The gRPC health service, reporting `service` (and the whole server) as serving.
pub async fn health_service(
    service: &str,
) -> tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health> {
    let (reporter, server) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(service, tonic_health::ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    server
}

/// HTTP/2 keepalive for every server: a vanished peer is noticed within seconds.
pub const KEEPALIVE: Duration = Duration::from_secs(2);

/// A tonic server builder with the settings every failover-lab server uses.
pub fn server_builder() -> tonic::transport::Server {
    server_builder_with_keepalive(KEEPALIVE, KEEPALIVE)
}

/// The failover service's keepalive: lenient, since its clients' own keepalives derive from
/// their failoverTimeout (a slow link with a long failoverTimeout must not break) and a member
/// that vanishes is declared stale by its missing heartbeats anyway. A round trip up to 20 s is
/// tolerated.
pub const FAILOVER_SERVICE_KEEPALIVE: (Duration, Duration) =
    (Duration::from_secs(10), Duration::from_secs(20));

/// A tonic server builder with the given HTTP/2 keepalive interval and timeout.
pub fn server_builder_with_keepalive(
    interval: Duration,
    timeout: Duration,
) -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(interval))
        .http2_keepalive_timeout(Some(timeout))
}

/// The connections a listener accepts, with `TCP_NODELAY` set on each: tonic's own nodelay
/// setting applies only to listeners it binds, and without it every small gRPC reply waits
/// ~40 ms for a delayed ACK (Nagle).
pub fn incoming(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|stream| {
            // A socket without nodelay still works, only slower.
            let _ = stream.set_nodelay(true);
        })
    })
}

/// A connection a gRPC server can take: TCP, TLS, or a simulator's stream.
pub trait ServerConn:
    tokio::io::AsyncRead
    + tokio::io::AsyncWrite
    + tonic::transport::server::Connected
    + Unpin
    + Send
    + 'static
{
}
impl<T> ServerConn for T where
    T: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static
{
}

/// A stream fed by a task: `body` gets the sending end of a channel and runs spawned; the
/// stream ends when the task drops it. For server-streaming gRPC answers.
pub fn task_stream<T, F, Fut>(
    body: F,
) -> std::pin::Pin<Box<dyn tokio_stream::Stream<Item = T> + Send>>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(body(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// The process's wall clock, if one was installed (the simulator's): microseconds since the
/// unix epoch.
static WALL_CLOCK: std::sync::OnceLock<fn() -> i64> = std::sync::OnceLock::new();

/// Makes [`unix_us`] and [`unix_ms`] read `clock` instead of the system's wall clock, for the
/// rest of the process (a simulator's time). The first call wins.
pub fn install_wall_clock(clock: fn() -> i64) {
    let _ = WALL_CLOCK.set(clock);
}

/// Milliseconds since the unix epoch, from the wall clock.
pub fn unix_ms() -> i64 {
    unix_us().div_euclid(1000)
}

/// Microseconds since the unix epoch, from the wall clock.
pub fn unix_us() -> i64 {
    if let Some(clock) = WALL_CLOCK.get() {
        return clock();
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
