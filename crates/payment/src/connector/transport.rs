//! HTTPS to one acquirer: hyper 1 over tokio-rustls (ring), a root store holding only that
//! acquirer's CA, optional merchant client certificate (WeChat reverse/refund), connect and
//! read timeouts.
//!
//! The one distinction that matters for money: a failure before the TLS handshake completed
//! (DNS, refused or timed-out connect, handshake failure) means the acquirer provably never
//! received the request — [`TransportError::NotSent`], safe to send elsewhere. Anything after
//! that, the acquirer may have acted on it — [`TransportError::Unknown`], query before doing
//! anything else. rustls sends no early data, so no request byte leaves before the handshake.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::{ConfigError, Endpoint, Timeouts};

/// Biggest answer read from an acquirer; their answers are a few KiB.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The request provably never reached the acquirer.
    #[error("request not sent: {0}")]
    NotSent(String),
    /// The request may have reached the acquirer; its effect is unknown.
    #[error("request sent, outcome unknown: {0}")]
    Unknown(String),
}

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// One acquirer endpoint with its pinned TLS settings.
#[derive(Clone)]
pub struct Transport {
    endpoint: Endpoint,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    tls_with_client_cert: Option<TlsConnector>,
    connect_timeout: Duration,
    read_timeout: Duration,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("endpoint", &self.endpoint)
            .field("mtls", &self.tls_with_client_cert.is_some())
            .finish_non_exhaustive()
    }
}

/// The PEM certificates in `path`, the file named by configuration key `key`.
fn read_pem_certs(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let data = std::fs::read(path).map_err(|e| ConfigError::file(key, path, e))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigError::file(key, path, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(ConfigError::file(
            key,
            path,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

fn read_pem_key(key: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let data = std::fs::read(path).map_err(|e| ConfigError::file(key, path, e))?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .map_err(|e| ConfigError::file(key, path, e))?
        .ok_or_else(|| {
            ConfigError::file(
                key,
                path,
                "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
            )
        })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Transport {
    /// `ca_file` is the only trust anchor: a certificate from any other CA — including
    /// public web CAs — is refused. `client_cert` is `(cert chain PEM, key PEM)`.
    pub fn new(
        url: &str,
        ca_file: &Path,
        client_cert: Option<(&Path, &Path)>,
        timeouts: &Timeouts,
    ) -> Result<Transport, ConfigError> {
        let endpoint = Endpoint::parse(url)?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in read_pem_certs("ca_file", ca_file)? {
            roots
                .add(cert)
                .map_err(|e| ConfigError::file("ca_file", ca_file, format!("unusable CA: {e}")))?;
        }
        let roots = Arc::new(roots);
        let builder = || {
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots.clone()))
                .map_err(|e| ConfigError::Invalid(format!("TLS setup: {e}")))
        };
        let plain = builder()?.with_no_client_auth();
        let mtls = match client_cert {
            Some((cert, key)) => Some(
                builder()?
                    .with_client_auth_cert(
                        read_pem_certs("client_cert_file", cert)?,
                        read_pem_key("client_key_file", key)?,
                    )
                    .map_err(|e| ConfigError::file("client_cert_file", cert, e))?,
            ),
            None => None,
        };
        let server_name = ServerName::try_from(endpoint.host.clone())
            .map_err(|e| ConfigError::Invalid(format!("{url:?}: bad host name: {e}")))?;
        Ok(Transport {
            endpoint,
            server_name,
            tls: TlsConnector::from(Arc::new(plain)),
            tls_with_client_cert: mtls.map(|c| TlsConnector::from(Arc::new(c))),
            connect_timeout: timeouts.connect(),
            read_timeout: timeouts.read(),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Connect and complete the TLS handshake (pinned CA checked), send nothing: a
    /// reachability probe for diagnostics. Returns how long it took.
    pub async fn probe(&self) -> Result<Duration, TransportError> {
        let start = tokio::time::Instant::now();
        self.connect(&self.tls).await?;
        Ok(start.elapsed())
    }

    async fn connect(
        &self,
        connector: &TlsConnector,
    ) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, IpAddr), TransportError> {
        let host = self.endpoint.host.as_str();
        let port = self.endpoint.port;
        tokio::time::timeout(self.connect_timeout, async {
            let addrs: Vec<_> = tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| TransportError::NotSent(format!("DNS lookup of {host}: {e}")))?
                .collect();
            let mut last = format!("{host} resolved to no address");
            let mut tcp = None;
            for addr in addrs {
                match TcpStream::connect(addr).await {
                    Ok(s) => {
                        tcp = Some(s);
                        break;
                    }
                    Err(e) => last = format!("connect {addr}: {e}"),
                }
            }
            let tcp = tcp.ok_or(TransportError::NotSent(last))?;
            let _ = tcp.set_nodelay(true);
            let local = tcp
                .local_addr()
                .map(|a| a.ip())
                .map_err(|e| TransportError::NotSent(format!("local address: {e}")))?;
            let tls = connector
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(|e| TransportError::NotSent(format!("TLS handshake with {host}: {e}")))?;
            Ok::<_, TransportError>((tls, local))
        })
        .await
        .map_err(|_| {
            TransportError::NotSent(format!(
                "no TLS connection to {host}:{port} within {:?}",
                self.connect_timeout
            ))
        })?
    }

    /// POST to `path_and_query`. `body` is built once the connection is up, from the local
    /// address the acquirer will see (WeChat's `spbill_create_ip`); if it fails, nothing is
    /// sent.
    pub async fn post(
        &self,
        path_and_query: &str,
        content_type: &str,
        client_cert: bool,
        body: impl FnOnce(IpAddr) -> Result<String, String>,
    ) -> Result<HttpResponse, TransportError> {
        let connector = if client_cert {
            self.tls_with_client_cert.as_ref().ok_or_else(|| {
                TransportError::NotSent(
                    "this call needs the merchant client certificate, none is configured".into(),
                )
            })?
        } else {
            &self.tls
        };
        let host = self.endpoint.host.as_str();
        let port = self.endpoint.port;
        let (tls, local_ip) = self.connect(connector).await?;
        let body = body(local_ip).map_err(TransportError::NotSent)?;
        let request = hyper::Request::post(path_and_query)
            .header(hyper::header::HOST, host_header(host, port))
            .header(hyper::header::CONTENT_TYPE, content_type)
            .header(hyper::header::USER_AGENT, "smartpos-payment/0.1")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| TransportError::NotSent(format!("building the request: {e}")))?;

        // From here on the acquirer may see the request: every failure is "unknown".
        let exchange = async {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| TransportError::Unknown(format!("HTTP setup: {e}")))?;
            let driver = tokio::spawn(conn);
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| TransportError::Unknown(format!("sending to {host}: {e}")))?;
            let status = response.status().as_u16();
            let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    TransportError::Unknown(format!("reading the answer from {host}: {e}"))
                })?
                .to_bytes();
            driver.abort();
            let body = String::from_utf8(bytes.to_vec())
                .map_err(|_| TransportError::Unknown(format!("answer from {host} is not UTF-8")))?;
            Ok(HttpResponse { status, body })
        };
        tokio::time::timeout(self.read_timeout, exchange)
            .await
            .map_err(|_| {
                TransportError::Unknown(format!(
                    "no answer from {host} within {:?}",
                    self.read_timeout
                ))
            })?
    }
}

fn host_header(host: &str, port: u16) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    if port == 443 {
        host
    } else {
        format!("{host}:{port}")
    }
}
