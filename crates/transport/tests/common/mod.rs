//! A small HTTPS server for the transport's tests: the fault proxy's throwaway CA, keep-alive,
//! `HEAD /` with a `Date:`, `POST /echo`, `GET /file` with ranges, `GET /slow`.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use smartpos_faultproxy::certs::{CertKind, TestPki};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The file `GET /file` serves: 64 KiB that tell their own offsets apart.
pub fn file() -> Vec<u8> {
    (0..64 * 1024u32).map(|i| (i % 251) as u8).collect()
}

pub struct Server {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The CA file a client pins, written into `dir`.
pub fn ca_file(pki: &TestPki, dir: &std::path::Path) -> PathBuf {
    let path = dir.join("ca.pem");
    std::fs::write(&path, pki.ca_pem()).expect("write CA");
    path
}

async fn serve(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let date = "Tue, 01 Dec 2026 12:00:00 GMT";
    let path = req.uri().path().to_owned();
    let range = req
        .headers()
        .get(hyper::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.strip_suffix('-'))
        .and_then(|v| v.parse::<usize>().ok());
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let response = match (method, path.as_str()) {
        (hyper::Method::POST, "/echo") => Response::new(Full::new(body)),
        (hyper::Method::GET, "/file") => {
            let file = file();
            match range {
                Some(start) if start < file.len() => Response::builder()
                    .status(StatusCode::PARTIAL_CONTENT)
                    .header(
                        hyper::header::CONTENT_RANGE,
                        format!("bytes {start}-{}/{}", file.len() - 1, file.len()),
                    )
                    .body(Full::new(Bytes::from(file[start..].to_vec())))
                    .expect("response"),
                _ => Response::new(Full::new(Bytes::from(file))),
            }
        }
        (hyper::Method::GET, "/slow") => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Response::new(Full::new(Bytes::from_static(b"late")))
        }
        (hyper::Method::HEAD | hyper::Method::GET, "/") => Response::new(Full::new(Bytes::new())),
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::new()))
            .expect("response"),
    };
    let mut response = response;
    response.headers_mut().insert(
        hyper::header::DATE,
        hyper::header::HeaderValue::from_static(date),
    );
    Ok(response)
}

impl Server {
    pub async fn start(pki: &TestPki) -> Server {
        let config = pki.server_config(CertKind::Valid).expect("server TLS");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), hyper::service::service_fn(serve))
                        .await;
                });
            }
        });
        Server { addr, task }
    }
}
