//! What a [`crate::Transport`] is built from: the endpoint's URL, its TLS settings and its
//! timeouts, and the error for a setting the transport refuses.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::time_provider::TimeProvider;

/// A setting or a file the transport cannot work with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file (CA, client certificate or key) is missing, unreadable or does not hold what
    /// its configuration key says.
    #[error("{key} {}: {problem}", .file.display())]
    File {
        /// The configuration key naming the file (`ca_file`, `client_cert_file`, …).
        key: &'static str,
        file: PathBuf,
        problem: String,
    },
    /// A URL or setting the transport refuses; the message names it.
    #[error("{0}")]
    Invalid(String),
}

impl ConfigError {
    pub fn file(key: &'static str, file: &Path, problem: impl std::fmt::Display) -> ConfigError {
        ConfigError::File {
            key,
            file: file.to_owned(),
            problem: problem.to_string(),
        }
    }
}

/// `https://host[:port]/path` split for the HTTP client. Nothing but `https` is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Lower-case host name or IP literal (without brackets).
    pub host: String,
    pub port: u16,
    /// The base path, `/` when the URL has none.
    pub path: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let Some(rest) = strip_prefix_ignore_case(url, "https://") else {
            return invalid(format!(
                "{url:?} is not an https:// URL; payments never travel in plaintext"
            ));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') || authority.is_empty() {
            return invalid(format!("{url:?}: no host, or credentials in the URL"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| ConfigError::Invalid(format!("{url:?}: bad port {p:?}")))?;
                (h, port)
            }
            _ => (authority, 443),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return invalid(format!("{url:?}: no host"));
        }
        Ok(Endpoint {
            host: host.to_ascii_lowercase(),
            port,
            path: path.to_owned(),
        })
    }

    /// The `Host:` header value (port omitted when it is 443, IPv6 literals bracketed).
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 443 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The URL this endpoint was parsed from, normalised.
    pub fn url(&self) -> String {
        format!("https://{}{}", self.host_header(), self.path)
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len()
        && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes()))
    .then(|| &s[prefix.len()..])
}

/// The trust and identity of one endpoint. Build with [`TlsSettings::new`] (or a struct
/// literal ending in `..TlsSettings::default()`), so fields added later do not break callers.
#[derive(Clone, Default)]
pub struct TlsSettings {
    /// PEM file with the CA certificate(s) that are the endpoint's only trust anchors.
    pub ca_file: PathBuf,
    /// `(certificate chain PEM, private key PEM)` for endpoints that ask for a client
    /// certificate (WeChat reverse and refund, a fleet server with mutual TLS).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// The clock certificates are checked against; the system clock when `None`. Tests put
    /// a clock that is years off here; the payment daemon puts its own wall clock.
    pub time: Option<Arc<dyn TimeProvider>>,
}

impl TlsSettings {
    pub fn new(ca_file: impl Into<PathBuf>) -> TlsSettings {
        TlsSettings {
            ca_file: ca_file.into(),
            ..TlsSettings::default()
        }
    }

    pub fn with_client_cert(
        mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> TlsSettings {
        self.client_cert = Some((cert.into(), key.into()));
        self
    }

    pub fn with_time(mut self, time: Arc<dyn TimeProvider>) -> TlsSettings {
        self.time = Some(time);
        self
    }
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("time", &self.time.as_ref().map(|_| "injected"))
            .finish()
    }
}

/// How long each step may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// DNS lookup plus TCP connect.
    pub connect: Duration,
    /// The TLS handshake, once connected.
    pub handshake: Duration,
    /// From the request written to the whole answer read.
    pub read: Duration,
    /// How long an idle kept-alive connection is kept for the next request. Below the
    /// servers' own keep-alive timeouts, so the terminal, not the server, closes it first.
    pub idle: Duration,
}

impl Default for Timeouts {
    /// Connect 3 s and read 15 s as the Alipay SDK's defaults; the handshake gets the
    /// connect budget again; idle connections are kept 50 s.
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(3),
            handshake: Duration::from_secs(3),
            read: Duration::from_secs(15),
            idle: Duration::from_secs(50),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_split_host_port_and_path() {
        assert_eq!(
            Endpoint::parse("https://127.0.0.1:8443/proxy").expect("ok"),
            Endpoint {
                host: "127.0.0.1".into(),
                port: 8443,
                path: "/proxy".into()
            }
        );
        let e = Endpoint::parse("HTTPS://Api.Mch.Weixin.QQ.com").expect("ok");
        assert_eq!(e.path, "/");
        assert_eq!(e.host_header(), "api.mch.weixin.qq.com");
        let v6 = Endpoint::parse("https://[::1]:9443/x").expect("ok");
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.url(), "https://[::1]:9443/x");
        assert!(Endpoint::parse("https://user:pw@host/").is_err());
        assert!(Endpoint::parse("ftp://host/").is_err());
        assert!(Endpoint::parse("http://host/").is_err());
    }
}
