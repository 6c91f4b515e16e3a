//! The simulated machines: each service's real code on a turmoil host, reached by name over
//! turmoil's network, in turmoil's time.
//!
//! Hosts: `source`, `endpoint`, `arbiter`, `adapter-a`, `adapter-b`, `twin` and `standalone`
//! (adapters that run only during their faults), and the `observer` client that watches the
//! group and the data flow and injects the source and endpoint faults. Servers take
//! turmoil's connections through [`incoming`]; clients dial through [`network`]; the wall
//! clock of every service reads simulated time ([`install_wall_clock`]).

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use failover_proto::net::{Network, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The data source's host.
pub const SOURCE: &str = "source";
/// The data endpoint's host.
pub const ENDPOINT: &str = "endpoint";
/// The failover service's host.
pub const ARBITER: &str = "arbiter";
/// The adapters' hosts (and names).
pub const ADAPTERS: [&str; 2] = ["adapter-a", "adapter-b"];
/// The observer client's host.
pub const OBSERVER: &str = "observer";
/// The host of a second adapter that takes the name of one of the pair (fault `twin`).
pub const TWIN: &str = "twin";
/// The host of a standalone adapter on the same endpoint (fault `standalone`).
pub const STANDALONE: &str = "standalone";
/// The standalone adapter's name.
pub const STANDALONE_NAME: &str = "adapter-s";

/// The gRPC port of the source.
pub const SOURCE_PORT: u16 = 50051;
/// The gRPC port of the endpoint.
pub const ENDPOINT_PORT: u16 = 50052;
/// The gRPC port of the failover service.
pub const ARBITER_PORT: u16 = 50053;

/// The unix time at which every simulation starts (2026-01-01T00:00:00Z).
pub const EPOCH_UNIX_US: i64 = 1_767_225_600_000_000;

/// `http://host:port`.
pub fn url(host: &str, port: u16) -> String {
    format!("http://{host}:{port}")
}

/// Makes the services' wall clock read simulated time (once per process). Outside a
/// simulation (another thread of the same process, such as a test running real processes) it
/// reads the real clock.
pub fn install_wall_clock() {
    fn simulated() -> i64 {
        match turmoil::sim_elapsed() {
            Some(elapsed) => {
                EPOCH_UNIX_US + i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX / 2)
            }
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        }
    }
    failover_proto::process::install_wall_clock(simulated);
}

/// Connections over turmoil's network, by host name.
pub fn network() -> Network {
    Network::custom(Arc::new(|host: String, port: u16| {
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
            Ok(Box::new(stream) as Box<dyn Stream>)
        })
    }))
}

/// A turmoil connection a tonic server can take.
#[derive(Debug)]
pub struct SimConn(turmoil::net::TcpStream);

impl AsyncRead for SimConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for SimConn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

/// The connections a turmoil listener on `port` accepts.
pub async fn incoming(
    port: u16,
) -> io::Result<impl tokio_stream::Stream<Item = io::Result<SimConn>> + Send> {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
    Ok(futures::stream::unfold(listener, |listener| async move {
        let conn = listener.accept().await.map(|(s, _)| SimConn(s));
        Some((conn, listener))
    }))
}

/// A turmoil listener an axum server can take (the adapters' REST APIs, the failover service's
/// admin API).
pub struct SimListener(turmoil::net::TcpListener);

impl std::fmt::Debug for SimListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SimListener")
            .field(&self.0.local_addr().ok())
            .finish()
    }
}

impl SimListener {
    /// Listens on `port` of the current host.
    pub async fn bind(port: u16) -> io::Result<SimListener> {
        Ok(SimListener(
            turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?,
        ))
    }
}

impl axum::serve::Listener for SimListener {
    type Io = turmoil::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(conn) => return conn,
                // Nothing to accept from now: wait, not spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// One HTTP/1.1 request over turmoil's network to `host:port`: the answer's status and body.
pub async fn http(
    host: &str,
    port: u16,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> io::Result<(u16, Vec<u8>)> {
    use http_body_util::BodyExt as _;
    let other = |e: &dyn std::fmt::Display| io::Error::other(e.to_string());
    let stream = turmoil::net::TcpStream::connect((host, port)).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| other(&e))?;
    tokio::spawn(conn);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", format!("{host}:{port}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.unwrap_or_default(),
        )))
        .map_err(|e| other(&e))?;
    let response = sender.send_request(request).await.map_err(|e| other(&e))?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| other(&e))?
        .to_bytes();
    Ok((status, bytes.to_vec()))
}

/// The simulation both worlds run on (a seeded run's and a scenario's): seeded, in steps of
/// [`crate::TICK`], each message delayed 0.2 to 2 ms, for at most `limit` of simulated time.
pub fn simulation<'a>(seed: u64, limit: std::time::Duration) -> turmoil::Sim<'a> {
    turmoil::Builder::new()
        .simulation_duration(limit)
        .tick_duration(crate::TICK)
        .min_message_latency(std::time::Duration::from_micros(200))
        .max_message_latency(std::time::Duration::from_millis(2))
        .rng_seed(seed)
        .build()
}

/// The data source's host, serving `settings` on [`SOURCE_PORT`].
pub fn add_source(sim: &mut turmoil::Sim<'_>, settings: fake_data_source::SourceSettings) {
    sim.host(SOURCE, move || async move {
        let incoming = incoming(SOURCE_PORT).await?;
        fake_data_source::serve(incoming, settings, std::future::pending())
            .await
            .map_err(crate::boxed)
    });
}

/// The endpoint's host on [`ENDPOINT_PORT`], breaking `broken`'s rules.
pub fn add_endpoint(sim: &mut turmoil::Sim<'_>, broken: crate::Broken) {
    sim.host(ENDPOINT, move || async move {
        let service = fake_endpoint::EndpointService::breaking(broken);
        let incoming = incoming(ENDPOINT_PORT).await?;
        fake_endpoint::serve(incoming, service, std::future::pending())
            .await
            .map_err(crate::boxed)
    });
}

/// The failover service's host on [`ARBITER_PORT`], breaking `broken`'s rules. At each start,
/// `setup` gets the new service (and its clock running) before it serves: a seeded run hands
/// it to its operator, a scenario serves its admin REST API.
pub fn add_arbiter<F, Fut>(sim: &mut turmoil::Sim<'_>, broken: crate::Broken, setup: F)
where
    F: Fn(failover_arbiter::Arbiter) -> Fut + 'static,
    Fut: Future<Output = Result<(), Box<dyn std::error::Error>>> + 'static,
{
    let setup = std::rc::Rc::new(setup);
    sim.host(ARBITER, move || {
        let setup = setup.clone();
        async move {
            let arbiter = failover_arbiter::Arbiter::breaking(Default::default(), broken);
            tokio::spawn(failover_arbiter::clock::run(arbiter.clone()));
            setup(arbiter.clone()).await?;
            let incoming = incoming(ARBITER_PORT).await?;
            failover_arbiter::service::serve_incoming(arbiter, incoming, std::future::pending())
                .await
                .map_err(crate::boxed)
        }
    });
}
