//! The fleet server's DDI resources over the stack's one HTTPS client
//! ([`smartpos_transport::Transport`]): the configured CA file as the only trust anchor,
//! kept-alive connections between polls, `TargetToken`/`GatewayToken` authorization, JSON in
//! and out, and the streaming download that resumes with an HTTP Range request and never holds
//! a body in memory.
//!
//! Links the server hands out (deploymentBase, download) are followed only when they point at
//! the configured server itself: the token is never sent anywhere else, and a plain `http://`
//! link is refused.

use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use smartpos_transport::{
    DownloadError, Endpoint, ErrorClass, Timeouts, TlsSettings, Transport, TransportError,
};
use tokio::io::{AsyncSeekExt, AsyncWrite};

use crate::verify::Hasher;

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

impl From<TransportError> for HttpError {
    fn from(e: TransportError) -> HttpError {
        let text = format!("{} ({})", e.detail, e.class.code());
        match e.class {
            ErrorClass::HttpStatus(status) => HttpError::Status {
                status,
                detail: e.detail,
            },
            c if c.sent() => HttpError::Broken(text),
            _ => HttpError::Unreachable(text),
        }
    }
}

/// The fleet server's client: one [`Transport`] to the configured server.
#[derive(Clone)]
pub struct Client {
    transport: Transport,
    /// The `Authorization:` value, marked sensitive (hyper keeps it out of debug output).
    authorization: Option<HeaderValue>,
    auth: Auth,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", self.transport.endpoint())
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
    /// `server` is `https://host[:port]`; `ca_file` holds the only CA trusted for it. The
    /// handshake gets the connect budget again.
    pub fn new(
        server: &str,
        ca_file: &Path,
        auth: Auth,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<Client, String> {
        let timeouts = Timeouts {
            connect: connect_timeout,
            handshake: connect_timeout,
            read: read_timeout,
            ..Timeouts::default()
        };
        let transport = Transport::new(server, &TlsSettings::new(ca_file), &timeouts)
            .map_err(|e| e.to_string())?;
        let authorization = match &auth {
            Auth::Target(t) => Some(format!("TargetToken {t}")),
            Auth::Gateway(t) => Some(format!("GatewayToken {t}")),
            Auth::None => None,
        }
        .map(|v| {
            HeaderValue::from_str(&v)
                .map(|mut v| {
                    v.set_sensitive(true);
                    v
                })
                .map_err(|_| "the token file holds characters a header cannot carry".to_owned())
        })
        .transpose()?;
        Ok(Client {
            transport,
            authorization,
            auth,
        })
    }

    /// The transport, for its counters (connections opened and reused).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    fn headers(&self, json_body: bool) -> Vec<(HeaderName, HeaderValue)> {
        let mut h = vec![(
            hyper::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        )];
        if json_body {
            h.push((
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ));
        }
        if let Some(a) = &self.authorization {
            h.push((hyper::header::AUTHORIZATION, a.clone()));
        }
        h
    }

    /// The path of `link` (absolute or server-relative), if it points at our server.
    fn path_of(&self, link: &str) -> Result<String, HttpError> {
        if link.starts_with('/') {
            return Ok(link.to_owned());
        }
        let other = Endpoint::parse(link).map_err(|e| HttpError::Unreachable(e.to_string()))?;
        let mine = self.transport.endpoint();
        if other.host != mine.host || other.port != mine.port {
            return Err(HttpError::Unreachable(format!(
                "the server sent a link to {}, not to itself ({}); not followed",
                other.host_header(),
                mine.host_header()
            )));
        }
        Ok(other.path)
    }

    /// GET a JSON resource.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        link: &str,
    ) -> Result<T, HttpError> {
        let path = self.path_of(link)?;
        let answer = self
            .transport
            .request(
                hyper::Method::GET,
                &path,
                &self.headers(false),
                Bytes::new(),
                false,
            )
            .await?;
        if answer.status != 200 {
            return Err(HttpError::Status {
                status: answer.status,
                detail: snippet(&answer.body),
            });
        }
        serde_json::from_slice(&answer.body)
            .map_err(|e| HttpError::Malformed(format!("{path}: {e}")))
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
        let answer = self
            .transport
            .request(method, &path, &self.headers(true), Bytes::from(json), false)
            .await?;
        if (200..300).contains(&answer.status) {
            Ok(())
        } else {
            Err(HttpError::Status {
                status: answer.status,
                detail: snippet(&answer.body),
            })
        }
    }

    /// Stream `link` into `file` from byte `have` on (a Range request when `have > 0`),
    /// feeding `hasher` with every byte written, at most `cap` bytes per second.
    /// `progress` is told the file's length as it grows. If the server does not resume
    /// (it answers a Range request with the whole file), the file and the hasher start again
    /// from zero (`restarted`).
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
        let headers = self.headers(false);
        let mut fetched = Fetched::default();
        let mut from = have;
        loop {
            file.seek(std::io::SeekFrom::Start(from))
                .await
                .map_err(|e| HttpError::Storage(e.to_string()))?;
            let mut sink = HashingSink {
                file: &mut *file,
                hasher: &mut *hasher,
                progress: &mut *progress,
                length: from,
            };
            match self
                .transport
                .download(&path, &headers, from, &mut sink, cap)
                .await
            {
                Ok(report) => {
                    fetched.transferred += report.bytes;
                    return Ok(fetched);
                }
                Err(DownloadError::Transport(e))
                    if from > 0 && e.class == ErrorClass::HttpStatus(200) =>
                {
                    // The server sends the whole file to a Range request: start again from
                    // byte 0 (the transport read nothing of that answer).
                    tracing::info!(
                        "{path}: the server does not resume; downloading from the start"
                    );
                    fetched.restarted = true;
                    from = 0;
                    *hasher = Hasher::default();
                    file.set_len(0)
                        .await
                        .map_err(|e| HttpError::Storage(e.to_string()))?;
                }
                Err(DownloadError::Transport(e)) => return Err(e.into()),
                Err(DownloadError::Sink { source, .. }) => {
                    return Err(HttpError::Storage(source.to_string()));
                }
                Err(DownloadError::OtherEndpoint(m)) => return Err(HttpError::Unreachable(m)),
            }
        }
    }
}

/// The download's sink: the file, with every byte the file took fed to the hasher and the
/// file's length told to `progress`.
struct HashingSink<'a> {
    file: &'a mut tokio::fs::File,
    hasher: &'a mut Hasher,
    progress: &'a mut (dyn FnMut(u64) + Send),
    length: u64,
}

impl AsyncWrite for HashingSink<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut *this.file).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            // Only what the file took is hashed: a short write is retried with the rest.
            this.hasher.update(&buf[..n]);
            this.length += n as u64;
            (this.progress)(this.length);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.file).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.file).poll_shutdown(cx)
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

    fn client() -> Client {
        let dir = tempfile::tempdir().expect("tmp");
        let ca = dir.path().join("ca.pem");
        let cert =
            rcgen::generate_simple_self_signed(vec!["fleet.example".into()]).expect("self-signed");
        std::fs::write(&ca, cert.cert.pem()).expect("write");
        Client::new(
            "https://fleet.example:8443",
            &ca,
            Auth::Target("secret".into()),
            Duration::from_secs(1),
            Duration::from_secs(1),
        )
        .expect("client")
    }

    #[test]
    fn links_to_another_host_or_over_plain_http_are_not_followed() {
        let c = client();
        assert_eq!(
            c.path_of("https://Fleet.example:8443/DEFAULT/controller/v1/pos-1")
                .expect("same server"),
            "/DEFAULT/controller/v1/pos-1"
        );
        assert_eq!(c.path_of("/x").expect("relative"), "/x");
        assert!(c.path_of("https://fleet.example:9443/x").is_err());
        assert!(c.path_of("https://evil.example:8443/x").is_err());
        assert!(c.path_of("http://fleet.example:8443/x").is_err());
        assert!(c.path_of("https://user:pw@fleet.example:8443/x").is_err());
    }

    #[test]
    fn the_token_is_never_printed() {
        let c = client();
        let shown = format!("{c:?} {:?}", c.headers(true));
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("TargetToken"), "{shown}");
    }
}
