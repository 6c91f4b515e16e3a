//! How a process opens connections: TCP by default, or a [`Network`] given from outside (the
//! deterministic simulator's), with TLS on top for `https://` URLs. Every gRPC client of the
//! services goes through [`Connector`], so the same service code runs on real sockets and in
//! simulation.

use std::{
    fmt,
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use rustls::pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tonic::codegen::http;

use crate::tls::ClientTls;

/// A byte stream of any transport.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Opens a connection to `(host, port)`.
pub type Dial = Arc<
    dyn Fn(String, u16) -> Pin<Box<dyn Future<Output = io::Result<Box<dyn Stream>>> + Send>>
        + Send
        + Sync,
>;

/// Where connections come from: TCP, or a dialer given from outside.
#[derive(Clone, Default)]
pub struct Network {
    dial: Option<Dial>,
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.dial.is_some() {
            "Network(custom)"
        } else {
            "Network(tcp)"
        })
    }
}

impl Network {
    /// Real TCP sockets.
    pub fn tcp() -> Self {
        Network::default()
    }

    /// Connections made by `dial` (a simulator's network).
    pub fn custom(dial: Dial) -> Self {
        Network { dial: Some(dial) }
    }

    /// Opens a connection to `(host, port)`.
    pub async fn open(&self, host: &str, port: u16) -> io::Result<Transport> {
        match &self.dial {
            Some(dial) => Ok(Transport::Custom(dial(host.to_string(), port).await?)),
            None => {
                let tcp = TcpStream::connect((host, port)).await?;
                let _ = tcp.set_nodelay(true);
                Ok(Transport::Tcp(tcp))
            }
        }
    }
}

/// One connection of a [`Network`].
pub enum Transport {
    /// TCP.
    Tcp(TcpStream),
    /// A dialer's.
    Custom(Box<dyn Stream>),
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Tcp(t) => t.fmt(f),
            Transport::Custom(_) => f.write_str("Transport::Custom"),
        }
    }
}

crate::delegate_io!(Transport, Transport::Tcp, Transport::Custom);

/// A client connection: plain for `http://`, TLS for `https://`.
#[derive(Debug)]
pub enum ClientIo {
    /// `http://`.
    Plain(Transport),
    /// `https://`.
    Tls(Box<tokio_rustls::client::TlsStream<Transport>>),
}

crate::delegate_io!(ClientIo, ClientIo::Plain, ClientIo::Tls);

/// Connects to a URI's host and port over `network`, with TLS for `https` (which needs `tls`).
pub async fn connect(
    uri: &http::Uri,
    network: &Network,
    tls: Option<&ClientTls>,
) -> io::Result<ClientIo> {
    let https = uri.scheme_str() == Some("https");
    let host = uri
        .host()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the URL has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let stream = network.open(&host, port).await?;
    if !https {
        return Ok(ClientIo::Plain(stream));
    }
    let tls = tls.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "an https URL needs TLS settings",
        )
    })?;
    let name =
        ServerName::try_from(host).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let stream = tokio_rustls::TlsConnector::from(tls.h2_config())
        .connect(name, stream)
        .await?;
    Ok(ClientIo::Tls(Box::new(stream)))
}

/// A connector for `tonic::transport::Endpoint::connect_with_connector`: over a [`Network`],
/// plain or TLS by the URI's scheme.
#[derive(Debug, Clone, Default)]
pub struct Connector {
    network: Network,
    tls: Option<ClientTls>,
}

impl Connector {
    /// Over `network`, with `tls` for `https` URIs (None: `https` is refused).
    pub fn new(network: Network, tls: Option<ClientTls>) -> Self {
        Connector { network, tls }
    }
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = hyper_util::rt::TokioIo<ClientIo>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let (network, tls) = (self.network.clone(), self.tls.clone());
        Box::pin(async move {
            connect(&uri, &network, tls.as_ref())
                .await
                .map(hyper_util::rt::TokioIo::new)
        })
    }
}

/// A gRPC channel to `url` over `network` (TLS for `https`, with `tls`), connected when first
/// used, with the keepalive and timeouts every client of the services uses.
pub fn lazy_channel(
    url: &str,
    network: &Network,
    tls: Option<ClientTls>,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    Ok(client_endpoint(url)?.connect_with_connector_lazy(Connector::new(network.clone(), tls)))
}

/// An endpoint for the failover service at `url`, with keepalives and deadlines derived from
/// failoverTimeout: a keepalive ping every failoverTimeout/4 that must be answered within
/// failoverTimeout/2, and a connect timeout of failoverTimeout/2 (at least 1 s). So a link whose
/// round trip stays under failoverTimeout/2 never breaks, and a dead one is noticed within
/// 3/4 of failoverTimeout, before the service declares the session stale.
pub fn failover_service_endpoint(
    url: &str,
    failover_timeout: std::time::Duration,
) -> Result<tonic::transport::Endpoint, tonic::transport::Error> {
    use std::time::Duration;
    let ping = (failover_timeout / 4).max(Duration::from_millis(50));
    let answer = (failover_timeout / 2).max(Duration::from_millis(100));
    Ok(tonic::transport::Endpoint::from_shared(url.to_string())?
        .connect_timeout((failover_timeout / 2).max(Duration::from_secs(1)))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(ping)
        .keep_alive_timeout(answer)
        .keep_alive_while_idle(true))
}

/// An endpoint for `url` with the settings every client of the services uses: 1 s connect
/// timeout, no Nagle, HTTP/2 keepalive every second with a 2 s timeout.
pub fn client_endpoint(url: &str) -> Result<tonic::transport::Endpoint, tonic::transport::Error> {
    Ok(tonic::transport::Endpoint::from_shared(url.to_string())?
        .connect_timeout(std::time::Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(std::time::Duration::from_secs(1))
        .keep_alive_timeout(std::time::Duration::from_secs(2)))
}
