//! The HTTPS client of one endpoint: hyper 1 (HTTP/1.1) over tokio-rustls.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::{ConfigError, Endpoint, Timeouts, TlsSettings};
use crate::error::{ErrorClass, TransportError};
use crate::probe::{ProbeReport, parse_http_date};

/// Biggest answer read into memory; acquirers' answers are a few KiB. Downloads stream.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

const USER_AGENT: &str = concat!("smartpos/", env!("CARGO_PKG_VERSION"));

/// A whole answer, read into memory.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpResponse {
    /// The body as text; `None` when it is not UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// The `Date:` header, when present and well-formed.
    pub fn date(&self) -> Option<SystemTime> {
        self.headers
            .get(hyper::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date)
    }
}

/// Why [`Transport::post_with`] sent nothing or got no answer: the body could not be built
/// (a local fault, nothing was sent), or the transport failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError<E> {
    #[error("building the request: {0}")]
    Build(E),
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// One endpoint with its pinned TLS settings. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    tls_with_client_cert: Option<TlsConnector>,
    timeouts: Timeouts,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("endpoint", &self.inner.endpoint)
            .field("mtls", &self.inner.tls_with_client_cert.is_some())
            .finish_non_exhaustive()
    }
}

/// A connection that completed its TLS handshake, and how long each step took.
pub(crate) struct Connected {
    pub(crate) tls: TlsStream<TcpStream>,
    pub(crate) local_ip: IpAddr,
}

/// How long each step of opening a connection took (a step not reached is zero).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Steps {
    pub(crate) dns: Option<Duration>,
    pub(crate) connect: Duration,
    pub(crate) handshake: Duration,
}

impl Transport {
    /// The transport of `url` (`https://host[:port]/path`). Reads the CA file and the client
    /// certificate now, so a bad file is a configuration error at start-up.
    pub fn new(
        url: &str,
        tls: &TlsSettings,
        timeouts: &Timeouts,
    ) -> Result<Transport, ConfigError> {
        let endpoint = Endpoint::parse(url)?;
        let (plain, mtls) = crate::tls::client_configs(tls)?;
        let server_name = ServerName::try_from(endpoint.host.clone())
            .map_err(|e| ConfigError::Invalid(format!("{url:?}: bad host name: {e}")))?;
        Ok(Transport {
            inner: Arc::new(Inner {
                endpoint,
                server_name,
                tls: TlsConnector::from(Arc::new(plain)),
                tls_with_client_cert: mtls.map(|c| TlsConnector::from(Arc::new(c))),
                timeouts: *timeouts,
            }),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    pub fn timeouts(&self) -> &Timeouts {
        &self.inner.timeouts
    }

    fn connector(&self, client_cert: bool) -> Result<&TlsConnector, TransportError> {
        if client_cert {
            self.inner.tls_with_client_cert.as_ref().ok_or_else(|| {
                TransportError::new(
                    ErrorClass::Handshake,
                    "this call needs a client certificate, none is configured",
                )
            })
        } else {
            Ok(&self.inner.tls)
        }
    }

    /// DNS, TCP connect (both within the connect timeout) and the TLS handshake (within the
    /// handshake timeout). Every failure here is never-sent.
    pub(crate) async fn open(
        &self,
        client_cert: bool,
        steps: &mut Steps,
    ) -> Result<Connected, TransportError> {
        let connector = self.connector(client_cert)?;
        let host = self.inner.endpoint.host.as_str();
        let port = self.inner.endpoint.port;
        let t = &self.inner.timeouts;
        let deadline = Instant::now() + t.connect;
        let started = Instant::now();
        let addrs: Vec<std::net::SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![(ip, port).into()],
            Err(_) => {
                let found =
                    tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port))).await;
                steps.dns = Some(started.elapsed());
                match found {
                    Err(_) => {
                        return Err(TransportError::new(
                            ErrorClass::Dns,
                            format!("DNS lookup of {host} took longer than {:?}", t.connect),
                        ));
                    }
                    Ok(Err(e)) => {
                        return Err(TransportError::new(
                            ErrorClass::Dns,
                            format!("DNS lookup of {host}: {e}"),
                        ));
                    }
                    Ok(Ok(a)) => a.collect(),
                }
            }
        };
        if addrs.is_empty() {
            return Err(TransportError::new(
                ErrorClass::Dns,
                format!("{host} resolved to no address"),
            ));
        }
        let connecting = Instant::now();
        let mut last = None;
        let mut tcp = None;
        for addr in &addrs {
            match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    tcp = Some(s);
                    break;
                }
                Ok(Err(e)) => {
                    last = Some(TransportError::new(
                        ErrorClass::of_connect_io(&e),
                        format!("connect {addr}: {e}"),
                    ))
                }
                Err(_) => {
                    last = Some(TransportError::new(
                        ErrorClass::ConnectTimeout,
                        format!("no TCP connection to {addr} within {:?}", t.connect),
                    ));
                    break;
                }
            }
        }
        steps.connect = connecting.elapsed();
        let Some(tcp) = tcp else {
            return Err(last.unwrap_or_else(|| {
                TransportError::new(ErrorClass::Refused, format!("no connection to {host}"))
            }));
        };
        let _ = tcp.set_nodelay(true);
        let local_ip = tcp
            .local_addr()
            .map(|a| a.ip())
            .map_err(|e| TransportError::new(ErrorClass::Refused, format!("local address: {e}")))?;
        let shaking = Instant::now();
        let handshake = tokio::time::timeout(
            t.handshake,
            connector.connect(self.inner.server_name.clone(), tcp),
        )
        .await;
        steps.handshake = shaking.elapsed();
        let tls = match handshake {
            Err(_) => {
                return Err(TransportError::new(
                    ErrorClass::ConnectTimeout,
                    format!(
                        "no TLS handshake with {host}:{port} within {:?}",
                        t.handshake
                    ),
                ));
            }
            Ok(Err(e)) => {
                return Err(TransportError::new(
                    ErrorClass::of_handshake_io(&e),
                    format!("TLS handshake with {host}:{port}: {e}"),
                ));
            }
            Ok(Ok(tls)) => tls,
        };
        Ok(Connected { tls, local_ip })
    }

    /// Send `request` over `connection` and read the whole answer within the read timeout.
    /// Everything here may have reached the server.
    async fn exchange(
        &self,
        connection: Connected,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<HttpResponse, TransportError> {
        let host = self.inner.endpoint.host.as_str();
        let read = self.inner.timeouts.read;
        let exchange = async {
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(connection.tls))
                    .await
                    .map_err(|e| {
                        TransportError::new(
                            ErrorClass::ResetMidResponse,
                            format!("HTTP setup: {e}"),
                        )
                    })?;
            let driver = tokio::spawn(conn);
            let response = sender.send_request(request).await.map_err(|e| {
                TransportError::new(
                    ErrorClass::ResetMidResponse,
                    format!("no answer from {host}: {e}"),
                )
            })?;
            let status = response.status().as_u16();
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    TransportError::new(
                        ErrorClass::ResetMidResponse,
                        format!("reading the answer from {host}: {e}"),
                    )
                })?
                .to_bytes();
            driver.abort();
            Ok(HttpResponse {
                status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(read, exchange).await.map_err(|_| {
            TransportError::new(
                ErrorClass::ReadTimeout,
                format!("no whole answer from {host} within {read:?}"),
            )
        })?
    }

    fn build(
        &self,
        method: hyper::Method,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<hyper::Request<Full<Bytes>>, TransportError> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(hyper::header::HOST, self.inner.endpoint.host_header())
            .header(hyper::header::USER_AGENT, USER_AGENT);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.body(Full::new(body)).map_err(|e| {
            TransportError::new(
                ErrorClass::Handshake,
                format!("building the request for {path_and_query:?}: {e}"),
            )
        })
    }

    /// One request with a body known in advance; the whole answer is read into memory (at
    /// most [`MAX_RESPONSE_BYTES`]). Any HTTP status is an answer, not an error.
    pub async fn request(
        &self,
        method: hyper::Method,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        client_cert: bool,
    ) -> Result<HttpResponse, TransportError> {
        let request = self.build(method, path_and_query, headers, body)?;
        let connection = self.open(client_cert, &mut Steps::default()).await?;
        self.exchange(connection, request).await
    }

    /// POST an `application/x-www-form-urlencoded` body (Alipay's gateway).
    pub async fn post_form(
        &self,
        path_and_query: &str,
        body: String,
        client_cert: bool,
    ) -> Result<HttpResponse, TransportError> {
        let ct = HeaderValue::from_static("application/x-www-form-urlencoded;charset=utf-8");
        self.request(
            hyper::Method::POST,
            path_and_query,
            &[(hyper::header::CONTENT_TYPE, ct)],
            Bytes::from(body),
            client_cert,
        )
        .await
    }

    /// POST a body built once the connection is up, from the local address the server will
    /// see (WeChat's `spbill_create_ip`). If building fails, nothing is sent.
    pub async fn post_with<E>(
        &self,
        path_and_query: &str,
        content_type: &'static str,
        client_cert: bool,
        body: impl FnOnce(IpAddr) -> Result<String, E>,
    ) -> Result<HttpResponse, PostError<E>> {
        let connection = self.open(client_cert, &mut Steps::default()).await?;
        let body = body(connection.local_ip).map_err(PostError::Build)?;
        let request = self.build(
            hyper::Method::POST,
            path_and_query,
            &[(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static(content_type),
            )],
            Bytes::from(body),
        )?;
        Ok(self.exchange(connection, request).await?)
    }

    /// One `HEAD` of the base URL over a fresh connection, each step timed: DNS, TCP
    /// connect, TLS handshake (the pinned CA and the host name checked), the answer's status
    /// and `Date:`. Never fails: what went wrong is in the report.
    pub async fn probe(&self) -> ProbeReport {
        let started = Instant::now();
        let mut steps = Steps::default();
        let mut report = ProbeReport::default();
        let outcome = async {
            let connection = self.open(false, &mut steps).await?;
            let request = self.build(
                hyper::Method::HEAD,
                &self.inner.endpoint.path,
                &[],
                Bytes::new(),
            )?;
            let asked = Instant::now();
            let answer = self.exchange(connection, request).await;
            Ok::<_, TransportError>((answer, asked.elapsed()))
        }
        .await;
        report.dns = steps.dns;
        report.connect = steps.connect;
        report.handshake = steps.handshake;
        match outcome {
            Err(e) => report.fail(e),
            Ok((Err(e), _)) => report.fail(e),
            Ok((Ok(answer), took)) => {
                report.response = Some(took);
                report.http_status = Some(answer.status);
                report.date_header = answer.date();
                if answer.status >= 500 {
                    report.fail(TransportError::new(
                        ErrorClass::HttpStatus(answer.status),
                        format!(
                            "{} answered HTTP {}",
                            self.inner.endpoint.host, answer.status
                        ),
                    ));
                }
            }
        }
        report.total = started.elapsed();
        report
    }
}
