//! Detached Ed25519 signatures over files the fleet server sends (the merchant
//! configuration), and writing such a file so that a power cut leaves the old or the new one,
//! never half of either.
//!
//! Formats (the contract between the payment and update daemons, docs/VENDOR-API.md):
//! - public key file: the 32 raw key bytes, base64 (standard alphabet, padded), one line;
//! - signature: the 64 raw signature bytes, base64, one line;
//! - private key file (signers only: the fleet, tests, the demo): PKCS#8 in PEM
//!   (`-----BEGIN PRIVATE KEY-----`), as ring generates it and as
//!   `openssl genpkey -algorithm ed25519` writes it. Written 0600, never logged.
//!
//! Signing and checking use ring (RFC 8032 Ed25519).

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{self, Ed25519KeyPair, KeyPair as _};

#[derive(Debug, thiserror::Error)]
pub enum SignedError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} is not valid: {why}")]
    Format { what: String, why: String },
    /// The signature does not verify with the configured key: the file was not signed by
    /// the holder of that key, or was changed after signing.
    #[error("the signature does not match the file and the configured public key")]
    BadSignature,
}

fn format_error(what: impl Into<String>, why: impl Into<String>) -> SignedError {
    SignedError::Format {
        what: what.into(),
        why: why.into(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, SignedError> {
    std::fs::read(path).map_err(|source| SignedError::Read {
        path: path.to_owned(),
        source,
    })
}

/// One base64 line of exactly `len` bytes.
fn decode_line(text: &[u8], len: usize, what: &str) -> Result<Vec<u8>, SignedError> {
    let text = std::str::from_utf8(text).map_err(|_| format_error(what, "not text"))?;
    let line = text.trim();
    if line.contains(char::is_whitespace) {
        return Err(format_error(what, "expected one base64 line"));
    }
    let bytes = B64
        .decode(line)
        .map_err(|e| format_error(what, format!("not base64 ({e})")))?;
    if bytes.len() != len {
        return Err(format_error(
            what,
            format!("{} bytes, expected {len}", bytes.len()),
        ));
    }
    Ok(bytes)
}

/// An Ed25519 public key that checks signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Parse the key file's text (one base64 line of 32 bytes).
    pub fn parse(text: &[u8]) -> Result<PublicKey, SignedError> {
        let bytes = decode_line(text, 32, "public key")?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes);
        Ok(PublicKey(key))
    }

    pub fn load(path: &Path) -> Result<PublicKey, SignedError> {
        PublicKey::parse(&read(path)?).map_err(|e| match e {
            SignedError::Format { why, .. } => format_error(path.display().to_string(), why),
            other => other,
        })
    }

    /// The key file's text.
    pub fn to_line(&self) -> String {
        format!("{}\n", B64.encode(self.0))
    }

    /// Check `signature` (the signature file's text: one base64 line of 64 bytes) over
    /// `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignedError> {
        let sig = decode_line(signature, 64, "signature")?;
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(message, &sig)
            .map_err(|_| SignedError::BadSignature)
    }
}

/// An Ed25519 private key, for signing. Its bytes are never printed (`Debug` shows the
/// public half only).
pub struct SigningKey(Ed25519KeyPair);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public().to_line().trim_end())
            .finish_non_exhaustive()
    }
}

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

impl SigningKey {
    /// A new random key, and its PKCS#8 PEM text (to be written with [`write_secret`]).
    pub fn generate() -> Result<(SigningKey, String), SignedError> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| format_error("new key", "the system random source failed"))?;
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|_| format_error("new key", "ring rejected its own key"))?;
        Ok((SigningKey(key), pem(pkcs8.as_ref())))
    }

    /// Parse a PKCS#8 PEM private key.
    pub fn parse_pem(text: &[u8]) -> Result<SigningKey, SignedError> {
        let what = "private key";
        let text = std::str::from_utf8(text).map_err(|_| format_error(what, "not text"))?;
        let (Some(begin), Some(end)) = (text.find(PEM_BEGIN), text.find(PEM_END)) else {
            return Err(format_error(
                what,
                format!("expected a PKCS#8 PEM block ({PEM_BEGIN})"),
            ));
        };
        let body: String = text
            .get(begin + PEM_BEGIN.len()..end)
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let der = B64
            .decode(body)
            .map_err(|_| format_error(what, "the PEM body is not base64"))?;
        // "maybe unchecked": also PKCS#8 v1 (no public key inside), as OpenSSL writes it.
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map(SigningKey)
            .map_err(|_| format_error(what, "not an Ed25519 PKCS#8 key"))
    }

    pub fn load(path: &Path) -> Result<SigningKey, SignedError> {
        SigningKey::parse_pem(&read(path)?).map_err(|e| match e {
            SignedError::Format { why, .. } => format_error(path.display().to_string(), why),
            other => other,
        })
    }

    pub fn public(&self) -> PublicKey {
        let mut key = [0u8; 32];
        key.copy_from_slice(self.0.public_key().as_ref());
        PublicKey(key)
    }

    /// The signature file's text for `message`: one base64 line.
    pub fn sign(&self, message: &[u8]) -> String {
        format!("{}\n", B64.encode(self.0.sign(message).as_ref()))
    }
}

fn pem(der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("{PEM_BEGIN}\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(PEM_END);
    out.push('\n');
    out
}

/// Write a secret (a private key) readable by its owner only: created 0600, never wider,
/// and an existing file is not overwritten.
pub fn write_secret(path: &Path, contents: &[u8]) -> Result<(), SignedError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| SignedError::Write {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(contents).map_err(err)?;
    f.sync_all().map_err(err)
}

/// Replace `path` with `contents` so that after a crash or power cut it holds either the old
/// or the new contents: write a temporary file in the same directory, fsync it, rename it
/// over `path`, fsync the directory (the rename itself is only durable once the directory
/// is). The new file gets `mode`.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), SignedError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |p: &Path| {
        let p = p.to_owned();
        move |source| SignedError::Write { path: p, source }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| format_error(path.display().to_string(), "not a file path"))?;
    let tmp = dir.join(format!(
        ".{}.new-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(err(&tmp))?;
        f.write_all(contents).map_err(err(&tmp))?;
        f.sync_all().map_err(err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(err(path))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return written;
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_made_with_the_key_verifies_and_any_change_does_not() {
        let (key, pem_text) = SigningKey::generate().unwrap();
        let again = SigningKey::parse_pem(pem_text.as_bytes()).unwrap();
        assert_eq!(key.public(), again.public());
        let public = PublicKey::parse(key.public().to_line().as_bytes()).unwrap();
        let file = b"version = 9\n";
        let sig = key.sign(file);
        assert_eq!(sig.trim().len(), 88, "64 bytes in base64, one line");
        public.verify(file, sig.as_bytes()).unwrap();
        assert!(matches!(
            public.verify(b"version = 90\n", sig.as_bytes()),
            Err(SignedError::BadSignature)
        ));
        let (other, _) = SigningKey::generate().unwrap();
        assert!(matches!(
            public.verify(file, other.sign(file).as_bytes()),
            Err(SignedError::BadSignature)
        ));
        assert!(matches!(
            public.verify(file, b"not base64!"),
            Err(SignedError::Format { .. })
        ));
        assert!(format!("{key:?}").contains("public"));
        assert!(!format!("{key:?}").contains(pem_text.lines().nth(1).unwrap()));
    }

    #[test]
    fn key_files_are_one_line_and_the_secret_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        assert!(PublicKey::parse(b"AAAA\n").is_err(), "3 bytes is no key");
        let dir = tempfile::tempdir().unwrap();
        let (key, pem_text) = SigningKey::generate().unwrap();
        let priv_path = dir.path().join("fleet.key");
        write_secret(&priv_path, pem_text.as_bytes()).unwrap();
        let mode = std::fs::metadata(&priv_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(write_secret(&priv_path, b"x").is_err(), "never overwritten");
        assert_eq!(SigningKey::load(&priv_path).unwrap().public(), key.public());
    }

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary_behind() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("merchant.toml");
        std::fs::write(&path, "old").unwrap();
        write_atomically(&path, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["merchant.toml"]);
        // A directory that cannot be written leaves the old file as it was.
        let missing = dir.path().join("no-such-dir").join("merchant.toml");
        assert!(write_atomically(&missing, b"x", 0o600).is_err());
    }
}
