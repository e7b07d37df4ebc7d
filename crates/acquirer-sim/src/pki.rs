//! The throwaway test PKI: a CA, the emulator's server certificate (`localhost`, 127.0.0.1),
//! the WeChat merchant client certificate, the emulator's Alipay gateway key pair and the
//! terminal's Alipay app key pair, plus the shared secrets (WeChat API key, QRA key).
//!
//! Everything is written to one directory so the terminal side can be configured from files.
//! If the directory already holds a PKI, it is loaded instead, so a restarted emulator keeps
//! the identities a terminal was configured with. Private keys are written 0600.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use smartpos_acquirer::keys::{self, RsaSigner, RsaVerifier, write_secret_file};
use thiserror::Error;

/// File names inside the PKI directory.
pub mod files {
    /// CA certificate: the terminal pins it as the acquirer CA.
    pub const CA_CERT: &str = "ca.pem";
    /// Server certificate for `localhost` / 127.0.0.1.
    pub const SERVER_CERT: &str = "server.pem";
    /// Server private key.
    pub const SERVER_KEY: &str = "server.key.pem";
    /// WeChat merchant client certificate (for `/secapi/`).
    pub const WECHAT_CLIENT_CERT: &str = "wechat-merchant.pem";
    /// WeChat merchant client key.
    pub const WECHAT_CLIENT_KEY: &str = "wechat-merchant.key.pem";
    /// The emulator's Alipay gateway private key (signs responses).
    pub const ALIPAY_GATEWAY_KEY: &str = "alipay-gateway.key.pem";
    /// The Alipay public key the terminal verifies responses with.
    pub const ALIPAY_PUBLIC_KEY: &str = "alipay-public.pem";
    /// The terminal's app private key (signs requests).
    pub const APP_PRIVATE_KEY: &str = "app-private.key.pem";
    /// The terminal's app public key (the emulator verifies requests with it).
    pub const APP_PUBLIC_KEY: &str = "app-public.pem";
    /// Merchant identities and shared secrets, JSON ([`super::MerchantIds`]).
    pub const MERCHANT: &str = "merchant.json";
}

/// A PKI that cannot be created or loaded.
#[derive(Debug, Error)]
pub enum PkiError {
    /// Filesystem trouble.
    #[error("cannot use PKI file {path}: {source}; check the --pki-dir path and permissions")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("test certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// An RSA key could not be generated or loaded.
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    /// A PEM file is not what it should be.
    #[error("{path} is not a valid PEM {what}; delete the PKI directory to regenerate it")]
    Pem {
        /// The file.
        path: PathBuf,
        /// "certificate" or "private key".
        what: &'static str,
    },
    /// merchant.json is unreadable.
    #[error(
        "{path} is not valid merchant JSON ({message}); delete the PKI directory to regenerate it"
    )]
    Merchant {
        /// The file.
        path: PathBuf,
        /// The parse error.
        message: String,
    },
}

/// The merchant identities the emulator accepts and the shared secrets, as the terminal must
/// be configured. Written to `merchant.json` (0600: it holds the API keys).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantIds {
    /// Alipay `app_id`.
    pub alipay_app_id: String,
    /// WeChat `appid`.
    pub wechat_appid: String,
    /// WeChat `mch_id`.
    pub wechat_mch_id: String,
    /// WeChat API key (secret).
    pub wechat_api_key: String,
    /// QRA `mch_id`.
    pub qra_mch_id: String,
    /// QRA MD5 key (secret).
    pub qra_key: String,
}

impl std::fmt::Debug for MerchantIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerchantIds")
            .field("alipay_app_id", &self.alipay_app_id)
            .field("wechat_appid", &self.wechat_appid)
            .field("wechat_mch_id", &self.wechat_mch_id)
            .field("qra_mch_id", &self.qra_mch_id)
            .finish_non_exhaustive()
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf[..]);
    hex::encode(buf)
}

impl MerchantIds {
    fn generate() -> Self {
        Self {
            alipay_app_id: "2021000000000001".into(),
            wechat_appid: "wx2421b1c4370ec43b".into(),
            wechat_mch_id: "1900000109".into(),
            wechat_api_key: random_hex(16),
            qra_mch_id: "7551000001".into(),
            qra_key: random_hex(16),
        }
    }
}

/// The loaded PKI, ready for the server.
pub struct Pki {
    /// Where the files are.
    pub dir: PathBuf,
    /// CA certificate (DER).
    pub ca_cert: CertificateDer<'static>,
    /// Server certificate (DER).
    pub server_cert: CertificateDer<'static>,
    /// Server key.
    pub server_key: PrivateKeyDer<'static>,
    /// The WeChat merchant client certificate the emulator recognises (DER).
    pub wechat_client_cert: CertificateDer<'static>,
    /// Signs Alipay responses.
    pub alipay_gateway_signer: RsaSigner,
    /// Verifies the terminal's Alipay requests.
    pub app_verifier: RsaVerifier,
    /// Identities and secrets.
    pub merchant: MerchantIds,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .field("merchant", &self.merchant)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Load the PKI in `dir`, generating it first if `dir` has none.
    pub fn load_or_generate(dir: &Path) -> Result<Self, PkiError> {
        if !dir.join(files::MERCHANT).exists() {
            generate(dir)?;
        }
        load(dir)
    }

    /// Path of a file in the PKI directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_public(path: &Path, contents: &str) -> Result<(), PkiError> {
    fs::write(path, contents).map_err(io_err(path))
}

fn generate(dir: &Path) -> Result<(), PkiError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "smartpos acquirer-sim test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate()?;
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params.signed_by(&server_key, &issuer)?;

    let merchant = MerchantIds::generate();
    let client_key = KeyPair::generate()?;
    let mut client_params = CertificateParams::new(Vec::<String>::new())?;
    client_params
        .distinguished_name
        .push(DnType::CommonName, merchant.wechat_mch_id.clone());
    client_params
        .distinguished_name
        .push(DnType::OrganizationName, "smartpos test merchant");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &issuer)?;

    write_public(&dir.join(files::CA_CERT), &ca_cert.pem())?;
    write_public(&dir.join(files::SERVER_CERT), &server_cert.pem())?;
    write_secret_file(&dir.join(files::SERVER_KEY), &server_key.serialize_pem())?;
    write_public(&dir.join(files::WECHAT_CLIENT_CERT), &client_cert.pem())?;
    write_secret_file(
        &dir.join(files::WECHAT_CLIENT_KEY),
        &client_key.serialize_pem(),
    )?;

    let gateway = keys::generate_rsa_key(2048)?;
    write_secret_file(
        &dir.join(files::ALIPAY_GATEWAY_KEY),
        &gateway.private_pkcs8_pem,
    )?;
    write_public(
        &dir.join(files::ALIPAY_PUBLIC_KEY),
        &gateway.public_spki_pem,
    )?;
    let app = keys::generate_rsa_key(2048)?;
    write_secret_file(&dir.join(files::APP_PRIVATE_KEY), &app.private_pkcs8_pem)?;
    write_public(&dir.join(files::APP_PUBLIC_KEY), &app.public_spki_pem)?;

    let json = serde_json::to_string_pretty(&merchant).map_err(|e| PkiError::Merchant {
        path: dir.join(files::MERCHANT),
        message: e.to_string(),
    })?;
    // Written last: its presence marks a complete PKI.
    write_secret_file(&dir.join(files::MERCHANT), &json)?;
    tracing::info!(dir = %dir.display(), "generated a throwaway test PKI");
    Ok(())
}

fn load_cert(path: &Path) -> Result<CertificateDer<'static>, PkiError> {
    CertificateDer::from_pem_file(path).map_err(|_| PkiError::Pem {
        path: path.to_owned(),
        what: "certificate",
    })
}

fn load(dir: &Path) -> Result<Pki, PkiError> {
    let merchant_path = dir.join(files::MERCHANT);
    let text = fs::read_to_string(&merchant_path).map_err(io_err(&merchant_path))?;
    let merchant: MerchantIds = serde_json::from_str(&text).map_err(|e| PkiError::Merchant {
        path: merchant_path.clone(),
        message: e.to_string(),
    })?;
    let key_path = dir.join(files::SERVER_KEY);
    let server_key = PrivateKeyDer::from_pem_file(&key_path).map_err(|_| PkiError::Pem {
        path: key_path.clone(),
        what: "private key",
    })?;
    Ok(Pki {
        dir: dir.to_owned(),
        ca_cert: load_cert(&dir.join(files::CA_CERT))?,
        server_cert: load_cert(&dir.join(files::SERVER_CERT))?,
        server_key,
        wechat_client_cert: load_cert(&dir.join(files::WECHAT_CLIENT_CERT))?,
        alipay_gateway_signer: RsaSigner::from_file(&dir.join(files::ALIPAY_GATEWAY_KEY))?,
        app_verifier: RsaVerifier::from_file(&dir.join(files::APP_PUBLIC_KEY))?,
        merchant,
    })
}
