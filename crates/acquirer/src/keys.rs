//! RSA keys for Alipay RSA2 (SHA256withRSA, PKCS#1 v1.5).
//!
//! ring does the signing and verification (constant-time, maintained with rustls); the `rsa`
//! crate only parses the key formats merchants are handed (PKCS#8 for the Java SDK, PKCS#1 for
//! the Python SDK, bare base64 from the Alipay console, X.509 SPKI for Alipay's public key) and
//! generates keys for the emulator and tests. Private key material is never logged; files are
//! written 0600. (`rsa` 0.9 carries RUSTSEC-2023-0071, a timing side channel in its
//! private-key operations; it performs none here — ring signs.)

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair};
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use thiserror::Error;

/// A key that cannot be loaded or used.
#[derive(Debug, Error)]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("cannot access key file {path}: {source}; check the path and its permissions")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The text is not a PEM or base64 RSA key of a known format.
    #[error(
        "not an RSA {what} key in PKCS#8, PKCS#1 or SPKI form; export it again as PEM (BEGIN PRIVATE KEY / BEGIN PUBLIC KEY)"
    )]
    Format {
        /// "private" or "public".
        what: &'static str,
    },
    /// ring refused the key (too short, not RSA, inconsistent).
    #[error("RSA key rejected ({0}); Alipay RSA2 needs an RSA key of at least 2048 bits")]
    Rejected(String),
    /// Key generation failed.
    #[error("RSA key generation failed: {0}")]
    Generate(String),
    /// Signing failed (ring reports no detail).
    #[error("RSA signing failed; the private key may be corrupt, load it again")]
    Sign,
}

/// Why a signature did not verify. Callers treat any of these as "the answer is not
/// authentic": never act on its content.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// No signature was present where one is required.
    #[error("the message carries no signature; treat the outcome as unknown and query")]
    Missing,
    /// The signature is not valid base64 / hex.
    #[error("the signature is not well-formed; treat the outcome as unknown and query")]
    Malformed,
    /// The signature does not match the content and key.
    #[error(
        "signature mismatch; check that the configured acquirer public key / API key is the current one"
    )]
    Mismatch,
}

/// Signs with an RSA private key (SHA256withRSA, PKCS#1 v1.5, base64 output).
pub struct RsaSigner {
    key_pair: RsaKeyPair,
    public: RsaVerifier,
    rng: ring::rand::SystemRandom,
}

impl std::fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaSigner")
            .field("modulus_bits", &(self.key_pair.public().modulus_len() * 8))
            .finish_non_exhaustive()
    }
}

impl RsaSigner {
    /// Load a private key: PEM `PRIVATE KEY` (PKCS#8) or `RSA PRIVATE KEY` (PKCS#1), or the
    /// bare base64 DER of either (as the Alipay key tool and console print them).
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let key = RsaPrivateKey::from_pkcs8_pem(text)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(text))
            .or_else(|_| {
                let der = B64
                    .decode(strip_whitespace(text))
                    .map_err(|_| KeyError::Format { what: "private" })?;
                RsaPrivateKey::from_pkcs8_der(&der)
                    .or_else(|_| RsaPrivateKey::from_pkcs1_der(&der))
                    .map_err(|_| KeyError::Format { what: "private" })
            })?;
        Self::from_rsa(&key)
    }

    /// Load a private key file (see [`RsaSigner::from_pem`]).
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text = fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_pem(&text)
    }

    fn from_rsa(key: &RsaPrivateKey) -> Result<Self, KeyError> {
        let der = key
            .to_pkcs8_der()
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        let key_pair = RsaKeyPair::from_pkcs8(der.as_bytes())
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        let public = RsaVerifier::from_rsa(&RsaPublicKey::from(key));
        Ok(Self {
            key_pair,
            public,
            rng: ring::rand::SystemRandom::new(),
        })
    }

    /// SHA256withRSA over `message`, base64 (standard alphabet, padded) — Alipay's `sign`.
    pub fn sign_base64(&self, message: &[u8]) -> Result<String, KeyError> {
        let mut sig = vec![0u8; self.key_pair.public().modulus_len()];
        self.key_pair
            .sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
            .map_err(|_| KeyError::Sign)?;
        Ok(B64.encode(sig))
    }

    /// The matching public key.
    pub fn verifier(&self) -> &RsaVerifier {
        &self.public
    }
}

/// Verifies SHA256withRSA signatures with an RSA public key.
#[derive(Clone, PartialEq, Eq)]
pub struct RsaVerifier {
    n: Vec<u8>,
    e: Vec<u8>,
}

impl std::fmt::Debug for RsaVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaVerifier")
            .field("modulus_bits", &(self.n.len() * 8))
            .finish()
    }
}

impl RsaVerifier {
    /// Load a public key: PEM `PUBLIC KEY` (X.509 SPKI, what Alipay hands out), `RSA PUBLIC
    /// KEY` (PKCS#1), or bare base64 SPKI DER as copied from the Alipay console.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let key = RsaPublicKey::from_public_key_pem(text)
            .or_else(|_| RsaPublicKey::from_pkcs1_pem(text))
            .or_else(|_| {
                let der = B64
                    .decode(strip_whitespace(text))
                    .map_err(|_| KeyError::Format { what: "public" })?;
                RsaPublicKey::from_public_key_der(&der)
                    .or_else(|_| RsaPublicKey::from_pkcs1_der(&der))
                    .map_err(|_| KeyError::Format { what: "public" })
            })?;
        Ok(Self::from_rsa(&key))
    }

    /// Load a public key file (see [`RsaVerifier::from_pem`]).
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text = fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_pem(&text)
    }

    fn from_rsa(key: &RsaPublicKey) -> Self {
        Self {
            n: key.n().to_bytes_be(),
            e: key.e().to_bytes_be(),
        }
    }

    /// Verify a base64 SHA256withRSA signature over `message`.
    pub fn verify_base64(&self, message: &[u8], signature_b64: &str) -> Result<(), SignatureError> {
        if signature_b64.is_empty() {
            return Err(SignatureError::Missing);
        }
        let sig = B64
            .decode(signature_b64.trim())
            .map_err(|_| SignatureError::Malformed)?;
        ring::signature::RsaPublicKeyComponents {
            n: &self.n,
            e: &self.e,
        }
        .verify(&RSA_PKCS1_2048_8192_SHA256, message, &sig)
        .map_err(|_| SignatureError::Mismatch)
    }
}

fn strip_whitespace(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// A freshly generated RSA key pair in PEM form: private as PKCS#8, public as X.509 SPKI.
pub struct GeneratedRsaKey {
    /// `-----BEGIN PRIVATE KEY-----` (PKCS#8). Secret: write with [`write_secret_file`].
    pub private_pkcs8_pem: String,
    /// `-----BEGIN PUBLIC KEY-----` (SPKI).
    pub public_spki_pem: String,
}

impl std::fmt::Debug for GeneratedRsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedRsaKey")
            .field("public_spki_pem", &self.public_spki_pem)
            .finish_non_exhaustive()
    }
}

impl GeneratedRsaKey {
    /// The signer for the private half.
    pub fn signer(&self) -> Result<RsaSigner, KeyError> {
        RsaSigner::from_pem(&self.private_pkcs8_pem)
    }

    /// The verifier for the public half.
    pub fn verifier(&self) -> Result<RsaVerifier, KeyError> {
        RsaVerifier::from_pem(&self.public_spki_pem)
    }
}

/// Generate an RSA key pair of `bits` (2048 is what Alipay issues). For the emulator's test
/// PKI and for tests; production keys come from the merchant's Alipay console.
pub fn generate_rsa_key(bits: usize) -> Result<GeneratedRsaKey, KeyError> {
    let mut rng = rsa::rand_core::OsRng;
    let key = RsaPrivateKey::new(&mut rng, bits).map_err(|e| KeyError::Generate(e.to_string()))?;
    let private_pkcs8_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Generate(e.to_string()))?
        .to_string();
    let public_spki_pem = RsaPublicKey::from(&key)
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    Ok(GeneratedRsaKey {
        private_pkcs8_pem,
        public_spki_pem,
    })
}

/// Write secret material (a private key, an API key) readable by the owner only (0600), even
/// when the file already existed with wider permissions.
pub fn write_secret_file(path: &Path, contents: &str) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// Key generation is slow-ish; one key serves all tests in this module.
    pub(crate) fn test_key() -> &'static GeneratedRsaKey {
        static KEY: OnceLock<GeneratedRsaKey> = OnceLock::new();
        KEY.get_or_init(|| generate_rsa_key(2048).expect("keygen"))
    }

    #[test]
    fn a_signature_made_with_the_app_key_verifies_with_its_public_key() {
        let key = test_key();
        let signer = key.signer().unwrap();
        let sig = signer.sign_base64(b"app_id=2014072300007148").unwrap();
        let verifier = key.verifier().unwrap();
        verifier
            .verify_base64(b"app_id=2014072300007148", &sig)
            .unwrap();
        assert_eq!(&verifier, signer.verifier());
        assert_eq!(
            verifier.verify_base64(b"app_id=2014072300007149", &sig),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verifier.verify_base64(b"x", "not base64!"),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verifier.verify_base64(b"x", ""),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn keys_pasted_from_the_console_as_bare_base64_load() {
        let key = test_key();
        let body: String = key
            .public_spki_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let verifier = RsaVerifier::from_pem(&body).unwrap();
        assert_eq!(&verifier, &key.verifier().unwrap());
        let priv_body: String = key
            .private_pkcs8_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        RsaSigner::from_pem(&priv_body).unwrap();
        assert!(matches!(
            RsaVerifier::from_pem("hello"),
            Err(KeyError::Format { what: "public" })
        ));
    }

    #[test]
    fn private_keys_are_written_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app_private_key.pem");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_secret_file(&path, &test_key().private_pkcs8_pem).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        RsaSigner::from_file(&path).unwrap();
    }
}
