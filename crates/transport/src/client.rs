//! The HTTPS client of one endpoint: hyper 1 (HTTP/1.1) over tokio-rustls, with a small
//! keep-alive pool so that a request after the first skips DNS, connect and handshake.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
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

/// Idle connections kept per endpoint and kind (with or without client certificate): a till
/// has one sale at a time, with a query or a cancel now and then alongside.
const MAX_IDLE: usize = 4;
/// How long a kept-alive connection whose last answer was just read may take to be ready
/// for the next request; hyper's connection task needs one turn for it, not a round trip.
const READY_WAIT: Duration = Duration::from_millis(100);

const USER_AGENT: &str = concat!("smartpos/", env!("CARGO_PKG_VERSION"));

/// A whole answer, read into memory.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Whether it came over a kept-alive connection (no DNS, connect or handshake).
    pub reused: bool,
}

impl HttpResponse {
    /// The body as text; `None` when it is not UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// The `Date:` header, when present and well-formed.
    pub fn date(&self) -> Option<SystemTime> {
        date_of(&self.headers)
    }
}

pub(crate) fn date_of(headers: &HeaderMap) -> Option<SystemTime> {
    headers
        .get(hyper::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date)
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

/// Connections opened and requests that reused one, since the transport was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    pub opened: u64,
    pub reused: u64,
}

/// One endpoint with its pinned TLS settings. Cheap to clone; clones share the pool.
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
    /// Idle connections without (0) and with (1) the client certificate.
    idle: Mutex<[Vec<Conn>; 2]>,
    opened: AtomicU64,
    reused: AtomicU64,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("endpoint", &self.inner.endpoint)
            .field("mtls", &self.inner.tls_with_client_cert.is_some())
            .finish_non_exhaustive()
    }
}

/// A connection that completed its TLS handshake.
pub(crate) struct Connected {
    pub(crate) tls: TlsStream<TcpStream>,
    pub(crate) local_ip: IpAddr,
}

/// An HTTP/1.1 connection: hyper's sender and the task driving it (stopped when this is
/// dropped), the local address the server sees.
pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: tokio::task::AbortHandle,
    pub(crate) local_ip: IpAddr,
    idle_since: Instant,
    pub(crate) reused: bool,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// How long each step of opening a connection took (a step not reached is zero).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Steps {
    pub(crate) dns: Option<Duration>,
    pub(crate) connect: Duration,
    pub(crate) handshake: Duration,
}

/// A failure after the request may have been written.
fn after_sending(host: &str, what: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError::new(ErrorClass::ResetMidResponse, format!("{what} {host}: {e}"))
}

fn read_timeout(host: &str, read: Duration) -> TransportError {
    TransportError::new(
        ErrorClass::ReadTimeout,
        format!("no whole answer from {host} within {read:?}"),
    )
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
                idle: Mutex::new([Vec::new(), Vec::new()]),
                opened: AtomicU64::new(0),
                reused: AtomicU64::new(0),
            }),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    pub fn timeouts(&self) -> &Timeouts {
        &self.inner.timeouts
    }

    pub fn stats(&self) -> TransportStats {
        TransportStats {
            opened: self.inner.opened.load(Ordering::Relaxed),
            reused: self.inner.reused.load(Ordering::Relaxed),
        }
    }

    /// Close every idle connection: the next request opens a fresh one.
    pub fn close_idle(&self) {
        let drained: Vec<Conn> = {
            let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.iter_mut().flat_map(std::mem::take).collect()
        };
        drop(drained);
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
        self.inner.opened.fetch_add(1, Ordering::Relaxed);
        Ok(Connected { tls, local_ip })
    }

    /// A fresh connection, ready for HTTP/1.1. Failures up to the TLS handshake are
    /// never-sent; setting up HTTP on it does no I/O, but it comes after the handshake, so
    /// it counts as maybe-sent like everything after.
    pub(crate) async fn fresh(
        &self,
        client_cert: bool,
        steps: &mut Steps,
    ) -> Result<Conn, TransportError> {
        let connected = self.open(client_cert, steps).await?;
        let host = self.inner.endpoint.host.as_str();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(connected.tls))
            .await
            .map_err(|e| after_sending(host, "HTTP setup with", e))?;
        let driver = tokio::spawn(conn).abort_handle();
        Ok(Conn {
            sender,
            driver,
            local_ip: connected.local_ip,
            idle_since: Instant::now(),
            reused: false,
        })
    }

    /// An idle connection still open, newest first; stale ones are closed.
    ///
    /// A connection whose answer was read to the end a moment ago may not say ready yet:
    /// hyper's connection task, on another worker thread, has still to notice the answer is
    /// complete and ask for the next request. Such a connection is waited for briefly
    /// ([`READY_WAIT`]) rather than dropped; one that does not get ready in that time, or
    /// closes, is dropped and the next one tried.
    async fn checkout(&self, client_cert: bool) -> Option<Conn> {
        let idle_for = self.inner.timeouts.idle;
        loop {
            let mut conn = {
                let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
                idle[usize::from(client_cert)].pop()?
            };
            if conn.idle_since.elapsed() >= idle_for || conn.sender.is_closed() {
                continue;
            }
            if conn.sender.is_ready()
                || matches!(
                    tokio::time::timeout(READY_WAIT, conn.sender.ready()).await,
                    Ok(Ok(()))
                )
            {
                conn.reused = true;
                return Some(conn);
            }
        }
    }

    /// Keep a connection whose last answer was read to the end, for the next request.
    pub(crate) fn checkin(&self, client_cert: bool, mut conn: Conn) {
        if conn.sender.is_closed() {
            return;
        }
        conn.idle_since = Instant::now();
        let dropped = {
            let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
            let list = &mut idle[usize::from(client_cert)];
            list.push(conn);
            (list.len() > MAX_IDLE).then(|| list.remove(0))
        };
        drop(dropped);
    }

    /// Send one request and wait for the answer's head, within `read` from the moment it is
    /// sent. A kept-alive connection is used when one is idle; if it turns out closed before
    /// hyper wrote a byte of the request (hyper hands the request back), the request goes
    /// once more over a fresh connection — nothing was sent on the stale one.
    pub(crate) async fn send<E>(
        &self,
        client_cert: bool,
        steps: &mut Steps,
        make: impl FnOnce(IpAddr) -> Result<hyper::Request<Full<Bytes>>, PostError<E>>,
    ) -> Result<(Conn, hyper::Response<Incoming>, Instant), PostError<E>> {
        let host = self.inner.endpoint.host.as_str();
        let read = self.inner.timeouts.read;
        let mut conn = match self.checkout(client_cert).await {
            Some(c) => c,
            None => self.fresh(client_cert, steps).await?,
        };
        let request = make(conn.local_ip)?;
        let mut deadline = Instant::now() + read;
        let sent = tokio::time::timeout_at(deadline, conn.sender.try_send_request(request)).await;
        let response = match sent {
            Err(_) => return Err(read_timeout(host, read).into()),
            Ok(Ok(r)) => r,
            Ok(Err(mut e)) => match e.take_message() {
                Some(request) if conn.reused => {
                    tracing::debug!(%host, "kept-alive connection closed before use; opening a fresh one");
                    conn = self.fresh(client_cert, steps).await?;
                    deadline = Instant::now() + read;
                    match tokio::time::timeout_at(deadline, conn.sender.send_request(request)).await
                    {
                        Err(_) => return Err(read_timeout(host, read).into()),
                        Ok(Err(e)) => return Err(after_sending(host, "no answer from", e).into()),
                        Ok(Ok(r)) => r,
                    }
                }
                _ => return Err(after_sending(host, "no answer from", e.into_error()).into()),
            },
        };
        if conn.reused {
            self.inner.reused.fetch_add(1, Ordering::Relaxed);
        }
        Ok((conn, response, deadline))
    }

    /// Read a whole answer (at most [`MAX_RESPONSE_BYTES`]) by `deadline`, then keep the
    /// connection for the next request.
    async fn read_whole(
        &self,
        client_cert: bool,
        conn: Conn,
        response: hyper::Response<Incoming>,
        deadline: Instant,
    ) -> Result<HttpResponse, TransportError> {
        let host = self.inner.endpoint.host.as_str();
        let status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        let body =
            tokio::time::timeout_at(deadline, Limited::new(body, MAX_RESPONSE_BYTES).collect())
                .await
                .map_err(|_| read_timeout(host, self.inner.timeouts.read))?
                .map_err(|e| after_sending(host, "reading the answer from", e))?
                .to_bytes();
        let reused = conn.reused;
        self.checkin(client_cert, conn);
        Ok(HttpResponse {
            status,
            headers: parts.headers,
            body,
            reused,
        })
    }

    pub(crate) fn build(
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
            // Nothing was sent: the request could not even be put together.
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
        let (conn, response, deadline) = self
            .send::<std::convert::Infallible>(client_cert, &mut Steps::default(), |_| Ok(request))
            .await
            .map_err(|e| match e {
                PostError::Transport(t) => t,
                PostError::Build(never) => match never {},
            })?;
        self.read_whole(client_cert, conn, response, deadline).await
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

    /// POST a body built once the connection is chosen, from the local address the server
    /// will see (WeChat's `spbill_create_ip`). If building fails, nothing is sent.
    pub async fn post_with<E>(
        &self,
        path_and_query: &str,
        content_type: &'static str,
        client_cert: bool,
        body: impl FnOnce(IpAddr) -> Result<String, E>,
    ) -> Result<HttpResponse, PostError<E>> {
        let (conn, response, deadline) = self
            .send(client_cert, &mut Steps::default(), |ip| {
                let body = body(ip).map_err(PostError::Build)?;
                Ok(self.build(
                    hyper::Method::POST,
                    path_and_query,
                    &[(
                        hyper::header::CONTENT_TYPE,
                        HeaderValue::from_static(content_type),
                    )],
                    Bytes::from(body),
                )?)
            })
            .await?;
        Ok(self
            .read_whole(client_cert, conn, response, deadline)
            .await?)
    }

    /// One `HEAD` of the base URL over a fresh connection, each step timed: DNS, TCP
    /// connect, TLS handshake (the pinned CA and the host name checked), the answer's status
    /// and `Date:`. Never fails: what went wrong is in the report. The connection is kept for
    /// the next request.
    pub async fn probe(&self) -> ProbeReport {
        let started = Instant::now();
        let mut steps = Steps::default();
        let mut report = ProbeReport::default();
        let outcome = async {
            let mut c = self.fresh(false, &mut steps).await?;
            let request = self.build(
                hyper::Method::HEAD,
                &self.inner.endpoint.path,
                &[],
                Bytes::new(),
            )?;
            let asked = Instant::now();
            let deadline = Instant::now() + self.inner.timeouts.read;
            let host = self.inner.endpoint.host.as_str();
            let response = tokio::time::timeout_at(deadline, c.sender.send_request(request))
                .await
                .map_err(|_| read_timeout(host, self.inner.timeouts.read))?
                .map_err(|e| after_sending(host, "no answer from", e))?;
            let answer = self.read_whole(false, c, response, deadline).await?;
            Ok::<_, TransportError>((answer, asked.elapsed()))
        }
        .await;
        report.dns = steps.dns;
        report.connect = steps.connect;
        report.handshake = steps.handshake;
        match outcome {
            Err(e) => report.fail(e),
            Ok((answer, took)) => {
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
