//! HTTPS on loopback: rustls (ring) with an *optional* client certificate, so one port serves
//! both the plain APIs and WeChat's `/secapi/` paths, which refuse a connection that did not
//! present the merchant certificate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;
use smartpos_acquirer::wechat::Api;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::ledger::{Buyer, Ledger, LedgerFileError, Merchant, code_hash};
use crate::pki::{Pki, PkiError};
use crate::reply::Reply;
use crate::scenario::{Delivery, Scenario};

/// Request bodies above this are refused (real ones are under 4 KiB).
const MAX_BODY: usize = 256 * 1024;

/// How to start the emulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen; must be a loopback address (port 0 for an ephemeral port).
    pub listen: SocketAddr,
    /// The PKI directory (generated if empty).
    pub pki_dir: PathBuf,
    /// Persist the ledger here after every change, and load it at start.
    pub ledger_file: Option<PathBuf>,
}

/// The emulator cannot start.
#[derive(Debug, Error)]
pub enum SimError {
    /// A non-loopback address was given.
    #[error(
        "refusing to listen on {0}: the acquirer emulator only binds loopback (127.0.0.1 or ::1)"
    )]
    NotLoopback(SocketAddr),
    /// PKI trouble.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// Ledger file trouble.
    #[error(transparent)]
    Ledger(#[from] LedgerFileError),
    /// TLS configuration trouble.
    #[error("TLS setup failed: {0}; delete the PKI directory to regenerate it")]
    Tls(String),
    /// Could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Shared state of a running emulator.
pub struct State {
    /// Keys and identities.
    pub pki: Pki,
    ledger: Mutex<Ledger>,
    ledger_file: Option<PathBuf>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("pki", &self.pki)
            .field("ledger_file", &self.ledger_file)
            .finish_non_exhaustive()
    }
}

impl State {
    /// Lock the ledger. A panic while holding it cannot leave it half-updated in a way that
    /// matters for an emulator, so poisoning is ignored.
    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write the ledger file, if one is configured.
    pub fn persist(&self) {
        if let Some(path) = &self.ledger_file {
            let ledger = self.ledger();
            if let Err(e) = ledger.save(path) {
                tracing::error!(error = %e, "cannot persist the ledger");
            }
        }
    }
}

/// A running emulator.
#[derive(Debug)]
pub struct Sim {
    state: Arc<State>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Sim {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The PKI (keys, merchant identities).
    pub fn pki(&self) -> &Pki {
        &self.state.pki
    }

    /// A copy of the ledger.
    pub fn ledger(&self) -> Ledger {
        self.state.ledger().clone()
    }

    /// Change the ledger directly (tests).
    pub fn with_ledger<R>(&self, f: impl FnOnce(&mut Ledger) -> R) -> R {
        let r = f(&mut self.state.ledger());
        self.state.persist();
        r
    }

    /// Stop accepting connections.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn tls_config(pki: &Pki) -> Result<rustls::ServerConfig, SimError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(pki.ca_cert.clone())
        .map_err(|e| SimError::Tls(e.to_string()))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| SimError::Tls(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SimError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![pki.server_cert.clone()], pki.server_key.clone_key())
        .map_err(|e| SimError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Start the emulator.
pub async fn start(config: SimConfig) -> Result<Sim, SimError> {
    if !config.listen.ip().is_loopback() {
        return Err(SimError::NotLoopback(config.listen));
    }
    let pki = Pki::load_or_generate(&config.pki_dir)?;
    let ledger = match &config.ledger_file {
        Some(path) => Ledger::load(path)?,
        None => Ledger::default(),
    };
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(&pki)?));
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: config.listen,
        source,
    })?;
    let state = Arc::new(State {
        pki,
        ledger: Mutex::new(ledger),
        ledger_file: config.ledger_file.clone(),
    });
    state.persist();
    let task = tokio::spawn(accept_loop(listener, acceptor, state.clone()));
    tracing::info!(%addr, "acquirer emulator listening");
    Ok(Sim { state, addr, task })
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, state: Arc<State>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Answers are small and written in pieces; Nagle plus delayed ACK would add ~40 ms.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            // The verifier already checked the chain to our CA; only the merchant's own
            // certificate opens /secapi/.
            let merchant_cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .is_some_and(|c| c.as_ref() == state.pki.wechat_client_cert.as_ref());
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { serve(state, req, merchant_cert).await }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
}

/// The error that makes hyper drop a connection without answering (the "response lost"
/// scenario).
#[derive(Debug, Error)]
#[error("answer deliberately dropped by the lost-response scenario")]
struct Dropped;

async fn serve(
    state: Arc<State>,
    req: Request<Incoming>,
    merchant_cert: bool,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
            ));
        }
    };
    let Ok(body) = String::from_utf8(body.to_vec()) else {
        return Ok(plain(StatusCode::BAD_REQUEST, "request body is not UTF-8"));
    };
    tracing::debug!(%method, %path, "request");
    if (path.starts_with("/pay/") && path != "/pay/gateway") || path.starts_with("/secapi/") {
        // WeChat's API is named by its path; Alipay and QRA count by method inside.
        state.ledger().count_request(&path);
    }
    let reply = match (&method, path.as_str()) {
        (&Method::POST, "/gateway.do") => crate::alipay::handle(&state, &query, &body),
        (&Method::POST, "/pay/micropay") => {
            crate::wechat::handle(&state, Api::Micropay, &body, merchant_cert)
        }
        (&Method::POST, "/pay/orderquery") => {
            crate::wechat::handle(&state, Api::OrderQuery, &body, merchant_cert)
        }
        (&Method::POST, "/secapi/pay/reverse") => {
            crate::wechat::handle(&state, Api::Reverse, &body, merchant_cert)
        }
        // `/pay/refund` is kept as an alias; both need the merchant certificate, as WeChat's
        // refund does.
        (&Method::POST, "/secapi/pay/refund" | "/pay/refund") => {
            crate::wechat::handle(&state, Api::Refund, &body, merchant_cert)
        }
        (&Method::POST, "/pay/gateway") => crate::qra::handle(&state, &body),
        (&Method::POST, "/_sim/scenario") => control(&state, &body),
        (&Method::GET, "/_sim/ledger") => {
            let json = serde_json::to_string_pretty(&*state.ledger()).unwrap_or_default();
            Reply::json(json)
        }
        (&Method::GET, "/_sim/health") => Reply::json("{\"ok\":true}".into()),
        _ => return Ok(plain(StatusCode::NOT_FOUND, "no such endpoint")),
    };
    match reply.delivery {
        Delivery::Drop => {
            tracing::info!(%path, "lost-response scenario: dropping the connection after the charge");
            return Err(Dropped);
        }
        Delivery::Delay(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        _ => {}
    }
    let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    if let Ok(v) = hyper::header::HeaderValue::from_str(reply.content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    if reply.status == 403 {
        resp.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    Ok(resp)
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r
}

/// `POST /_sim/scenario`: every field is optional; all present ones are applied.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Pin `scenario` to this exact code.
    pub code: Option<String>,
    /// The scenario for `code`.
    pub scenario: Option<Scenario>,
    /// The delay of the `slow` scenario.
    pub slow_delay_ms: Option<u64>,
    /// Replace the merchant switches.
    pub merchant: Option<Merchant>,
    /// Add or replace a buyer (by name).
    pub buyer: Option<Buyer>,
    /// Register when a code was shown (ms since the epoch), for expiry.
    pub issued_code: Option<IssuedCode>,
    /// Reset trades and used codes (keeps buyers and merchant).
    #[serde(default)]
    pub reset_trades: bool,
    /// Move the emulator's clock forward (waiting customers, the 45 s auto-revoke, code
    /// expiry).
    pub advance_clock_ms: Option<u64>,
    /// Sign every answer wrongly from now on (or stop).
    pub bad_signatures: Option<bool>,
}

/// A code and when it was shown.
#[derive(Debug, Deserialize)]
pub struct IssuedCode {
    /// The code.
    pub code: String,
    /// When it was shown.
    pub issued_ms: u64,
}

fn control(state: &State, body: &str) -> Reply {
    let c: Control = match serde_json::from_str(body) {
        Ok(c) => c,
        Err(e) => {
            return Reply::json(
                serde_json::json!({"ok": false, "error": e.to_string()}).to_string(),
            )
            .with_status(400);
        }
    };
    {
        let mut l = state.ledger();
        match (&c.code, c.scenario) {
            (Some(code), Some(s)) => {
                l.code_scenarios.insert(code_hash(code), s);
            }
            (None, None) => {}
            _ => {
                return Reply::json(
                    r#"{"ok":false,"error":"code and scenario go together"}"#.into(),
                )
                .with_status(400);
            }
        }
        if let Some(bad) = c.bad_signatures {
            l.bad_signatures = bad;
        }
        if let Some(ms) = c.slow_delay_ms {
            l.slow_delay_ms = ms;
        }
        if let Some(m) = c.merchant {
            l.merchant = m;
        }
        if let Some(b) = c.buyer {
            l.buyers.retain(|x| x.name != b.name);
            l.buyers.push(b);
        }
        if let Some(i) = c.issued_code {
            l.issued_codes.insert(code_hash(&i.code), i.issued_ms);
        }
        if let Some(ms) = c.advance_clock_ms {
            l.clock_offset_ms = l.clock_offset_ms.saturating_add(ms);
        }
        if c.reset_trades {
            l.trades.clear();
            l.used_codes.clear();
        }
    }
    state.persist();
    Reply::json(r#"{"ok":true}"#.into())
}
