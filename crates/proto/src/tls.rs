//! TLS to the failover service, with rustls (the ring provider) and without tonic's own TLS:
//! the server side is an acceptor whose connections feed tonic's `serve_with_incoming`; the
//! client side is the [`crate::net::Connector`] with a [`ClientTls`]. One port carries gRPC
//! (ALPN `h2`) and the token endpoint (ALPN `http/1.1`).
//!
//! The client's policy is the ClientFailover document's `validateEndpointCertificate`:
//! - `true`: the service's certificate must chain to a trusted CA (the system bundle, plus any
//!   `--trusted-ca` file the adapter was given) and name the host of the endpoint URL;
//! - `false`: any certificate is taken (the handshake's signatures are still checked, so the
//!   connection is encrypted, but to whom is not known), and the adapter logs a warning.

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject},
};
use tokio::net::TcpStream;

/// The system's CA bundle (Debian's `ca-certificates`), trusted when present.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A TLS setting that cannot be used: which file or setting, and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| {
            TlsError(format!(
                "cannot read certificates from {}: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        TlsError(format!(
            "cannot read a private key from {}: {e}",
            path.display()
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// Client.

/// How a client checks the failover service's certificate.
#[derive(Debug, Clone)]
pub struct ClientTls {
    h2: Arc<ClientConfig>,
    http1: Arc<ClientConfig>,
    validated: bool,
}

impl ClientTls {
    /// `validate` is `validateEndpointCertificate`; `trusted_ca` are PEM files of CAs to trust
    /// beside the system bundle.
    pub fn new(validate: bool, trusted_ca: &[PathBuf]) -> Result<Self, TlsError> {
        let config = |alpn: &[u8]| -> Result<ClientConfig, TlsError> {
            let builder = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError(e.to_string()))?;
            let mut config = if validate {
                let mut roots = RootCertStore::empty();
                if let Ok(system) = load_certs(Path::new(SYSTEM_BUNDLE)) {
                    roots.add_parsable_certificates(system);
                }
                for path in trusted_ca {
                    for cert in load_certs(path)? {
                        roots.add(cert).map_err(|e| {
                            TlsError(format!(
                                "{}: not a usable CA certificate: {e}",
                                path.display()
                            ))
                        })?;
                    }
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
                    .with_no_client_auth()
            };
            config.alpn_protocols = vec![alpn.to_vec()];
            Ok(config)
        };
        Ok(ClientTls {
            h2: Arc::new(config(b"h2")?),
            http1: Arc::new(config(b"http/1.1")?),
            validated: validate,
        })
    }

    /// The configuration for gRPC clients (ALPN h2).
    pub fn h2_config(&self) -> Arc<ClientConfig> {
        self.h2.clone()
    }

    /// The configuration for HTTP/1.1 clients (the token request).
    pub fn http1_config(&self) -> ClientConfig {
        (*self.http1).clone()
    }

    /// True when the service's certificate is checked.
    pub fn validated(&self) -> bool {
        self.validated
    }
}

/// Takes any certificate (`validateEndpointCertificate: false`), still checking that the
/// handshake was signed by the key of the certificate presented.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Implements `AsyncRead` and `AsyncWrite` for an enum of streams by delegating to each variant.
#[macro_export]
#[doc(hidden)]
macro_rules! delegate_io {
    ($ty:ty, $($variant:path),+) => {
        impl tokio::io::AsyncRead for $ty {
            fn poll_read(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> std::task::Poll<std::io::Result<()>> {
                match self.get_mut() { $($variant(s) => std::pin::Pin::new(s).poll_read(cx, buf),)+ }
            }
        }
        impl tokio::io::AsyncWrite for $ty {
            fn poll_write(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
                match self.get_mut() { $($variant(s) => std::pin::Pin::new(s).poll_write(cx, buf),)+ }
            }
            fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
                match self.get_mut() { $($variant(s) => std::pin::Pin::new(s).poll_flush(cx),)+ }
            }
            fn poll_shutdown(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
                match self.get_mut() { $($variant(s) => std::pin::Pin::new(s).poll_shutdown(cx),)+ }
            }
            fn poll_write_vectored(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> std::task::Poll<std::io::Result<usize>> {
                match self.get_mut() { $($variant(s) => std::pin::Pin::new(s).poll_write_vectored(cx, bufs),)+ }
            }
            fn is_write_vectored(&self) -> bool {
                match self { $($variant(s) => s.is_write_vectored(),)+ }
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Server.

/// A server configuration from a certificate chain and its key, offering `h2` and `http/1.1`.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            TlsError(format!(
                "the certificate and key do not make a TLS identity: {e}"
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A server-side TLS connection, for tonic.
#[derive(Debug)]
pub enum ServerIo {
    /// The one kind.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

crate::delegate_io!(ServerIo, ServerIo::Tls);

impl tonic::transport::server::Connected for ServerIo {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

/// The TLS connections a listener accepts: each handshake runs on its own (a slow or failing
/// one holds up no other), within 10 s; failed handshakes are logged and dropped.
pub fn incoming(
    listener: tokio::net::TcpListener,
    config: Arc<ServerConfig>,
) -> impl tokio_stream::Stream<Item = io::Result<ServerIo>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            if tx.is_closed() {
                return;
            }
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(ServerIo::Tls(Box::new(stream)))).await;
                    }
                    Ok(Err(e)) => tracing::warn!(%peer, "TLS handshake failed: {e}"),
                    Err(_) => tracing::warn!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// `first`, then each cause in `source`'s chain that it does not already say, joined by ": ".
pub fn with_causes(first: String, source: Option<&(dyn std::error::Error + 'static)>) -> String {
    let mut text = first;
    let mut source = source;
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// The text of an error and its causes (tonic and rustls keep the cause apart), with a hint
/// when a certificate was not trusted.
pub fn explain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = with_causes(e.to_string(), e.source());
    if text.contains("invalid peer certificate") {
        text.push_str(
            " (the failover service's certificate is not trusted: give the adapter its CA with \
             --trusted-ca, or set validateEndpointCertificate to false)",
        );
    }
    text
}
