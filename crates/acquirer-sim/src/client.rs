//! A minimal HTTPS client for the emulator, the way a terminal connects: rustls (ring) pinned
//! to the test CA, optionally presenting the WeChat merchant certificate. Used by the tests
//! and handy for the payment crate's own tests.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::pki::files;

/// A client-side failure.
#[derive(Debug, Error)]
pub enum ClientError {
    /// Could not read the PKI.
    #[error("cannot load client TLS material from {0}")]
    Pki(String),
    /// TLS configuration.
    #[error("TLS config: {0}")]
    Tls(String),
    /// Connect, handshake or HTTP failure (includes the connection dropped without an answer).
    #[error("transport: {0}")]
    Transport(String),
}

/// An HTTPS client for one emulator.
#[derive(Clone)]
pub struct SimClient {
    connector: TlsConnector,
    addr: SocketAddr,
}

impl std::fmt::Debug for SimClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimClient")
            .field("addr", &self.addr)
            .finish()
    }
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// Body.
    pub body: String,
}

impl SimClient {
    /// A client trusting the PKI's CA; with `merchant_cert`, it presents the WeChat merchant
    /// client certificate.
    pub fn new(pki_dir: &Path, addr: SocketAddr, merchant_cert: bool) -> Result<Self, ClientError> {
        let pki_err = |what: &str| ClientError::Pki(format!("{} ({what})", pki_dir.display()));
        let ca = CertificateDer::from_pem_file(pki_dir.join(files::CA_CERT))
            .map_err(|_| pki_err("ca"))?;
        let mut roots = RootCertStore::empty();
        roots.add(ca).map_err(|e| ClientError::Tls(e.to_string()))?;
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots);
        let config = if merchant_cert {
            let cert = CertificateDer::from_pem_file(pki_dir.join(files::WECHAT_CLIENT_CERT))
                .map_err(|_| pki_err("client cert"))?;
            let key = PrivateKeyDer::from_pem_file(pki_dir.join(files::WECHAT_CLIENT_KEY))
                .map_err(|_| pki_err("client key"))?;
            builder
                .with_client_auth_cert(vec![cert], key)
                .map_err(|e| ClientError::Tls(e.to_string()))?
        } else {
            builder.with_no_client_auth()
        };
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            addr,
        })
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Result<HttpAnswer, ClientError> {
        let t = |e: &dyn std::fmt::Display| ClientError::Transport(e.to_string());
        let tcp = TcpStream::connect(self.addr).await.map_err(|e| t(&e))?;
        // Request headers and body go out as separate writes; do not let Nagle hold the body.
        tcp.set_nodelay(true).map_err(|e| t(&e))?;
        let name = ServerName::try_from("localhost").map_err(|e| t(&e))?;
        let tls = self.connector.connect(name, tcp).await.map_err(|e| t(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| t(&e))?;
        tokio::spawn(conn);
        let resp = sender.send_request(req).await.map_err(|e| t(&e))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| t(&e))?
            .to_bytes();
        Ok(HttpAnswer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// POST `body` to `path_and_query`.
    pub async fn post(
        &self,
        path_and_query: &str,
        content_type: &str,
        body: String,
    ) -> Result<HttpAnswer, ClientError> {
        let req = Request::post(path_and_query)
            .header(hyper::header::HOST, "localhost")
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        self.send(req).await
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> Result<HttpAnswer, ClientError> {
        let req = Request::get(path)
            .header(hyper::header::HOST, "localhost")
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        self.send(req).await
    }
}
