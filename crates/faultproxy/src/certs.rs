//! TLS servers with the certificates a terminal must refuse, each named for what is wrong
//! with it, all issued from a throwaway CA made in memory: [`CertKind::Expired`] (ended 30
//! days ago), [`CertKind::OtherName`] (for `acquirer.invalid`, not `localhost`/127.0.0.1),
//! [`CertKind::OtherCa`] (right name and dates, from a second CA the client does not pin),
//! and [`CertKind::Valid`] — right in every way but valid only from 30 days ago for a year,
//! as real certificates are, so that a client clock two years off refuses it.
//!
//! A [`CertServer`] answers any request that gets through the handshake with `200 ok` and
//! closes; the tests are about the handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What is wrong with a server certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertKind {
    /// Nothing: issued by the CA for `localhost` and 127.0.0.1, valid from 30 days ago for
    /// 365 days.
    Valid,
    /// Valid from 400 days ago until 30 days ago.
    Expired,
    /// For `acquirer.invalid` only.
    OtherName,
    /// Issued by another CA.
    OtherCa,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("making a test certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

/// A throwaway CA (the one a client pins) and a second one it does not.
pub struct TestPki {
    ca_pem: String,
    ca: Issuer<'static, KeyPair>,
    other_ca: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki").finish_non_exhaustive()
    }
}

/// The civil date (UTC) `offset_days` from today.
fn day(offset_days: i64) -> (i32, u8, u8) {
    let today = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| (d.as_secs() / 86_400) as i64)
        .unwrap_or(0);
    civil_from_days(today + offset_days)
}

/// Days since 1970-01-01 → (year, month, day), the well-known era-based formula.
fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

fn make_ca(name: &str) -> Result<(String, Issuer<'static, KeyPair>), CertError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), Issuer::new(params, key)))
}

impl TestPki {
    pub fn new() -> Result<TestPki, CertError> {
        let (ca_pem, ca) = make_ca("smartpos faultproxy test CA")?;
        let (_, other_ca) = make_ca("some other CA")?;
        Ok(TestPki {
            ca_pem,
            ca,
            other_ca,
        })
    }

    /// The CA certificate (PEM) a client pins.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A server certificate chain and key of `kind`.
    pub fn server_identity(
        &self,
        kind: CertKind,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), CertError> {
        let names = match kind {
            CertKind::OtherName => vec!["acquirer.invalid".to_owned()],
            _ => vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
        };
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "test server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let (from, until) = match kind {
            CertKind::Expired => (day(-400), day(-30)),
            _ => (day(-30), day(335)),
        };
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
        let key = KeyPair::generate()?;
        let issuer = match kind {
            CertKind::OtherCa => &self.other_ca,
            _ => &self.ca,
        };
        let cert = params.signed_by(&key, issuer)?;
        Ok((
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        ))
    }

    /// A rustls server configuration presenting a certificate of `kind`.
    pub fn server_config(&self, kind: CertKind) -> Result<rustls::ServerConfig, CertError> {
        let (chain, key) = self.server_identity(kind)?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// A TLS server on loopback presenting one kind of certificate; stops when dropped.
#[derive(Debug)]
pub struct CertServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for CertServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CertServer {
    pub async fn start(pki: &TestPki, kind: CertKind) -> Result<CertServer, CertError> {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(pki.server_config(kind)?));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    // Read the request head, answer, close.
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Ok(CertServer { addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_count_from_the_epoch() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_788), (2026, 12, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
