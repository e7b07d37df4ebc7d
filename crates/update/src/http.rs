//! HTTPS to the fleet server: hyper 1 over tokio-rustls (ring), the configured CA file as the
//! only trust anchor, `TargetToken`/`GatewayToken` authorization, and a streaming download
//! that resumes with an HTTP Range request and never holds a body in memory.
//!
//! Links the server hands out (deploymentBase, download) are followed only when they point at
//! the configured server itself: the token is never sent anywhere else, and a plain `http://`
//! link is refused.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::verify::Hasher;

/// Largest JSON answer read from the server (a deployment with many artifacts is a few KiB).
const MAX_JSON: usize = 1024 * 1024;

/// How the terminal proves who it is.
#[derive(Clone)]
pub enum Auth {
    /// hawkBit's per-device token.
    Target(String),
    /// hawkBit's tenant-wide token.
    Gateway(String),
    /// Nothing (a server with device authentication off).
    None,
}

impl std::fmt::Debug for Auth {
    // The token is a credential: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::Target(_) => "TargetToken",
            Auth::Gateway(_) => "GatewayToken",
            Auth::None => "none",
        })
    }
}

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    /// Nothing reached the server (DNS, connect, TLS handshake, a link we refuse to follow).
    #[error("cannot reach the fleet server: {0}")]
    Unreachable(String),
    /// The server answered with a status we did not want.
    #[error("the fleet server answered HTTP {status}: {detail}")]
    Status { status: u16, detail: String },
    /// The exchange broke off or timed out after it started.
    #[error("the exchange with the fleet server broke off: {0}")]
    Broken(String),
    /// The answer was not what DDI promises.
    #[error("the fleet server's answer cannot be read: {0}")]
    Malformed(String),
    /// Writing the downloaded bytes failed.
    #[error("cannot store the download: {0}")]
    Storage(String),
}

/// `https://host[:port]` of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    host: String,
    port: u16,
}

/// Split `https://host[:port]/path` into origin and path.
fn split_url(url: &str) -> Result<(Origin, String), String> {
    let lower = url.to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else {
        return Err(format!("{url:?} is not an https:// URL"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("{url:?}: no host, or credentials in the URL"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("{url:?}: bad port {p:?}"))?,
        ),
        _ => (authority, 443),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((
        Origin {
            host: host.to_ascii_lowercase(),
            port,
        },
        path.to_owned(),
    ))
}

/// The fleet server's client.
#[derive(Clone)]
pub struct Client {
    origin: Origin,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    auth: Auth,
    connect_timeout: Duration,
    read_timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("origin", &self.origin)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// A streamed download's account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fetched {
    /// Bytes that came over the wire in this call.
    pub transferred: u64,
    /// The server ignored the Range request and sent the file from its start.
    pub restarted: bool,
}

impl Client {
    /// `server` is `https://host[:port]`; `ca_file` holds the only CA trusted for it.
    pub fn new(
        server: &str,
        ca_file: &Path,
        auth: Auth,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<Client, String> {
        let (origin, _) = split_url(server)?;
        let pem = std::fs::read(ca_file)
            .map_err(|e| format!("cannot read the CA file {}: {e}", ca_file.display()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| format!("{}: not PEM: {e}", ca_file.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: unusable CA: {e}", ca_file.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("{} holds no certificate", ca_file.display()));
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let server_name = ServerName::try_from(origin.host.clone())
            .map_err(|e| format!("{server:?}: bad host name: {e}"))?;
        Ok(Client {
            origin,
            server_name,
            tls: TlsConnector::from(Arc::new(config)),
            auth,
            connect_timeout,
            read_timeout,
        })
    }

    /// The path of `link` (absolute or server-relative), if it points at our server.
    fn path_of(&self, link: &str) -> Result<String, HttpError> {
        if link.starts_with('/') {
            return Ok(link.to_owned());
        }
        let (origin, path) = split_url(link).map_err(HttpError::Unreachable)?;
        if origin != self.origin {
            return Err(HttpError::Unreachable(format!(
                "the server sent a link to {}:{}, not to itself ({}:{}); not followed",
                origin.host, origin.port, self.origin.host, self.origin.port
            )));
        }
        Ok(path)
    }

    async fn connect(&self) -> Result<tokio_rustls::client::TlsStream<TcpStream>, HttpError> {
        let (host, port) = (self.origin.host.as_str(), self.origin.port);
        tokio::time::timeout(self.connect_timeout, async {
            let tcp = TcpStream::connect((host, port))
                .await
                .map_err(|e| HttpError::Unreachable(format!("connect {host}:{port}: {e}")))?;
            let _ = tcp.set_nodelay(true);
            self.tls
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(|e| HttpError::Unreachable(format!("TLS handshake with {host}: {e}")))
        })
        .await
        .map_err(|_| {
            HttpError::Unreachable(format!(
                "no TLS connection to {host}:{port} within {:?}",
                self.connect_timeout
            ))
        })?
    }

    fn request(&self, method: hyper::Method, path: &str) -> hyper::http::request::Builder {
        let host = if self.origin.port == 443 {
            self.origin.host.clone()
        } else {
            format!("{}:{}", self.origin.host, self.origin.port)
        };
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, host)
            .header(hyper::header::USER_AGENT, "smartpos-otad/0.1")
            .header(hyper::header::ACCEPT, "application/json");
        match &self.auth {
            Auth::Target(t) => {
                b = b.header(hyper::header::AUTHORIZATION, format!("TargetToken {t}"))
            }
            Auth::Gateway(t) => {
                b = b.header(hyper::header::AUTHORIZATION, format!("GatewayToken {t}"));
            }
            Auth::None => {}
        }
        b
    }

    async fn send<B>(
        &self,
        request: hyper::Request<B>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, HttpError>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let tls = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| HttpError::Broken(format!("HTTP setup: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        tokio::time::timeout(self.read_timeout, sender.send_request(request))
            .await
            .map_err(|_| HttpError::Broken(format!("no answer within {:?}", self.read_timeout)))?
            .map_err(|e| HttpError::Broken(e.to_string()))
    }

    async fn read_small(
        &self,
        response: hyper::Response<hyper::body::Incoming>,
    ) -> Result<(u16, Bytes), HttpError> {
        let status = response.status().as_u16();
        let body = tokio::time::timeout(
            self.read_timeout,
            Limited::new(response.into_body(), MAX_JSON).collect(),
        )
        .await
        .map_err(|_| {
            HttpError::Broken(format!(
                "answer not complete within {:?}",
                self.read_timeout
            ))
        })?
        .map_err(|e| HttpError::Broken(e.to_string()))?
        .to_bytes();
        Ok((status, body))
    }

    /// GET a JSON resource.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        link: &str,
    ) -> Result<T, HttpError> {
        let path = self.path_of(link)?;
        let req = self
            .request(hyper::Method::GET, &path)
            .body(Empty::<Bytes>::new())
            .map_err(|e| HttpError::Unreachable(format!("building the request: {e}")))?;
        let (status, body) = self.read_small(self.send(req).await?).await?;
        if status != 200 {
            return Err(HttpError::Status {
                status,
                detail: snippet(&body),
            });
        }
        serde_json::from_slice(&body).map_err(|e| HttpError::Malformed(format!("{path}: {e}")))
    }

    /// PUT or POST a JSON body; 2xx is success.
    pub async fn send_json<T: serde::Serialize>(
        &self,
        method: hyper::Method,
        link: &str,
        body: &T,
    ) -> Result<(), HttpError> {
        let path = self.path_of(link)?;
        let json = serde_json::to_vec(body).map_err(|e| HttpError::Malformed(e.to_string()))?;
        let req = self
            .request(method, &path)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(json)))
            .map_err(|e| HttpError::Unreachable(format!("building the request: {e}")))?;
        let (status, body) = self.read_small(self.send(req).await?).await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(HttpError::Status {
                status,
                detail: snippet(&body),
            })
        }
    }

    /// Stream `link` into `file` from byte `have` on (a Range request when `have > 0`),
    /// feeding `hasher` with every byte written, at most `cap` bytes per second.
    /// `progress` is told the file's length as it grows. If the server ignores the Range
    /// request, the file and the hasher start again from zero (`restarted`).
    pub async fn download(
        &self,
        link: &str,
        file: &mut tokio::fs::File,
        have: u64,
        hasher: &mut Hasher,
        cap: Option<u64>,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<Fetched, HttpError> {
        let path = self.path_of(link)?;
        let mut req = self.request(hyper::Method::GET, &path);
        if have > 0 {
            req = req.header(hyper::header::RANGE, format!("bytes={have}-"));
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|e| HttpError::Unreachable(format!("building the request: {e}")))?;
        let response = self.send(req).await?;
        let status = response.status().as_u16();
        let mut fetched = Fetched::default();
        let mut length = have;
        match status {
            206 if have > 0 => {
                let range = response
                    .headers()
                    .get(hyper::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let start = range
                    .strip_prefix("bytes ")
                    .and_then(|r| r.split('-').next())
                    .and_then(|s| s.parse::<u64>().ok());
                if start != Some(have) {
                    return Err(HttpError::Malformed(format!(
                        "asked for bytes from {have}, got Content-Range {range:?}"
                    )));
                }
            }
            200 => {
                if have > 0 {
                    fetched.restarted = true;
                    length = 0;
                    *hasher = Hasher::default();
                    file.set_len(0)
                        .await
                        .map_err(|e| HttpError::Storage(e.to_string()))?;
                }
            }
            _ => {
                let (_, body) = self.read_small(response).await?;
                return Err(HttpError::Status {
                    status,
                    detail: snippet(&body),
                });
            }
        }
        file.seek(std::io::SeekFrom::Start(length))
            .await
            .map_err(|e| HttpError::Storage(e.to_string()))?;
        let mut body = response.into_body();
        let started = Instant::now();
        loop {
            let frame = tokio::time::timeout(self.read_timeout, body.frame())
                .await
                .map_err(|_| HttpError::Broken(format!("no data for {:?}", self.read_timeout)))?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| HttpError::Broken(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            file.write_all(&data)
                .await
                .map_err(|e| HttpError::Storage(e.to_string()))?;
            hasher.update(&data);
            fetched.transferred += data.len() as u64;
            length += data.len() as u64;
            progress(length);
            if let Some(cap) = cap.filter(|c| *c > 0) {
                // Keep the average at or under the cap: sleep off what we are ahead.
                let due = Duration::from_secs_f64(fetched.transferred as f64 / cap as f64);
                let spent = started.elapsed();
                if due > spent {
                    tokio::time::sleep(due - spent).await;
                }
            }
        }
        file.flush()
            .await
            .map_err(|e| HttpError::Storage(e.to_string()))?;
        Ok(fetched)
    }
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s: String = s.chars().filter(|c| !c.is_control()).take(200).collect();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_split_into_origin_and_path_and_plain_http_is_refused() {
        let (o, p) = split_url("https://Fleet.example:8443/DEFAULT/controller/v1/pos-1").unwrap();
        assert_eq!(
            o,
            Origin {
                host: "fleet.example".into(),
                port: 8443
            }
        );
        assert_eq!(p, "/DEFAULT/controller/v1/pos-1");
        let (o, p) = split_url("https://[::1]/x").unwrap();
        assert_eq!(
            o,
            Origin {
                host: "::1".into(),
                port: 443
            }
        );
        assert_eq!(p, "/x");
        assert!(split_url("http://fleet.example/x").is_err());
        assert!(split_url("https://user:pw@fleet.example/x").is_err());
    }
}
