//! rustls client configurations: the ring provider, TLS 1.2 and 1.3 only, the endpoint's CA
//! file as the only trust anchor, an optional client certificate, an injectable clock.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::time_provider::{DefaultTimeProvider, TimeProvider};

use crate::config::{ConfigError, TlsSettings};

/// The protocol versions offered: TLS 1.3 first, then 1.2. Nothing older is ever negotiated.
pub(crate) static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The PEM certificates in `path`, the file named by configuration key `key`.
pub(crate) fn read_pem_certs(
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

pub(crate) fn read_pem_key(
    key: &'static str,
    path: &Path,
) -> Result<PrivateKeyDer<'static>, ConfigError> {
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

/// The two client configurations of one endpoint: without and (when configured) with the
/// client certificate. `ca_file` is the only trust anchor: a certificate from any other CA —
/// public web CAs included — is refused.
pub(crate) fn client_configs(
    settings: &TlsSettings,
) -> Result<(rustls::ClientConfig, Option<rustls::ClientConfig>), ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_pem_certs("ca_file", &settings.ca_file)? {
        roots.add(cert).map_err(|e| {
            ConfigError::file("ca_file", &settings.ca_file, format!("unusable CA: {e}"))
        })?;
    }
    let roots = Arc::new(roots);
    let time: Arc<dyn TimeProvider> = settings
        .time
        .clone()
        .unwrap_or_else(|| Arc::new(DefaultTimeProvider));
    let builder = || {
        rustls::ClientConfig::builder_with_details(
            Arc::new(rustls::crypto::ring::default_provider()),
            time.clone(),
        )
        .with_protocol_versions(VERSIONS)
        .map(|b| b.with_root_certificates(roots.clone()))
        .map_err(|e| ConfigError::Invalid(format!("TLS setup: {e}")))
    };
    let plain = builder()?.with_no_client_auth();
    let mtls = match &settings.client_cert {
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
    Ok((plain, mtls))
}
