//! `posctl config …`: signed merchant configurations.
//!
//! `keygen` and `sign` are for the fleet side, tests and the demo (no daemon needed): a key
//! pair in the formats of `smartpos_runtime::signed`, and a signature file for a merchant
//! configuration. `apply` is for technicians: it hands a configuration and its signature to
//! the payment daemon (`ApplyMerchantConfig`), which checks and applies it without a
//! restart. The private key is written 0600 and never printed.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use smartpos_runtime::signed::{PublicKey, SigningKey, write_secret};

use crate::Error;

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Make a signing key pair (fleet side, tests, demo): PRIV is written 0600.
    Keygen {
        #[arg(long, value_name = "PRIV")]
        key: PathBuf,
        /// The public key file for terminals (/etc/smartpos/merchant-config.pub).
        #[arg(long, value_name = "PUB")]
        public: PathBuf,
    },
    /// Sign FILE with the private key PRIV; the signature line goes to SIG.
    Sign {
        #[arg(long, value_name = "PRIV")]
        key: PathBuf,
        #[arg(long, value_name = "SIG")]
        out: PathBuf,
        file: PathBuf,
    },
    /// Check FILE's signature SIG with the public key PUB, as the terminal will.
    Verify {
        #[arg(long, value_name = "PUB")]
        public: PathBuf,
        file: PathBuf,
        sig: PathBuf,
    },
    /// Apply a signed merchant configuration now, without a restart (technicians).
    Apply { file: PathBuf, sig: PathBuf },
}

pub async fn run(cmd: ConfigCmd, json: bool) -> Result<(), Error> {
    match cmd {
        // Local files only: no bus.
        ConfigCmd::Keygen { key, public } => keygen(&key, &public, json),
        ConfigCmd::Sign { key, out, file } => sign(&key, &out, &file, json),
        ConfigCmd::Verify { public, file, sig } => verify(&public, &file, &sig, json),
        ConfigCmd::Apply { file, sig } => apply(&file, &sig, json).await,
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path)
        .map_err(|e| Error::Input(format!("cannot read {what} {}: {e}", path.display())))
}

/// A new key pair: the private key (PKCS#8 PEM, 0600, never overwritten) and the public key
/// line that goes to `/etc/smartpos/merchant-config.pub` on terminals.
pub fn keygen(key: &Path, public: &Path, json: bool) -> Result<(), Error> {
    if public.exists() {
        return Err(Error::Usage(format!(
            "{} exists; not overwritten",
            public.display()
        )));
    }
    let (signer, pem) = SigningKey::generate().map_err(|e| Error::Failed(e.to_string()))?;
    write_secret(key, pem.as_bytes()).map_err(|e| Error::Input(e.to_string()))?;
    let line = signer.public().to_line();
    std::fs::write(public, &line)
        .map_err(|e| Error::Input(format!("cannot write {}: {e}", public.display())))?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "private_key": key, "public_key": public, "public": line.trim() })
        );
    } else {
        println!(
            "private key: {} (0600, keep it off terminals)",
            key.display()
        );
        println!("public key:  {} = {}", public.display(), line.trim());
    }
    Ok(())
}

/// Sign `file` with the private key `key`; the signature line goes to `out`.
pub fn sign(key: &Path, out: &Path, file: &Path, json: bool) -> Result<(), Error> {
    let signer = SigningKey::load(key).map_err(|e| Error::Input(e.to_string()))?;
    let body = read(file, "the file to sign")?;
    let sig = signer.sign(&body);
    std::fs::write(out, &sig)
        .map_err(|e| Error::Input(format!("cannot write {}: {e}", out.display())))?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "file": file, "signature": out, "public": signer.public().to_line().trim() })
        );
    } else {
        println!(
            "signed {} ({} bytes) -> {}",
            file.display(),
            body.len(),
            out.display()
        );
    }
    Ok(())
}

/// Check `file` against `sig` with the public key `public`, as the terminal will.
pub fn verify(public: &Path, file: &Path, sig: &Path, json: bool) -> Result<(), Error> {
    let key = PublicKey::load(public).map_err(|e| Error::Input(e.to_string()))?;
    let body = read(file, "the file")?;
    let sig_text = read(sig, "the signature")?;
    key.verify(&body, &sig_text)
        .map_err(|e| Error::Input(format!("{}: {e}", file.display())))?;
    if json {
        println!("{}", serde_json::json!({ "file": file, "verified": true }));
    } else {
        println!("{}: signature OK", file.display());
    }
    Ok(())
}

/// Hand `file` and its signature `sig` to the payment daemon.
pub async fn apply(file: &Path, sig: &Path, json: bool) -> Result<(), Error> {
    let body = read(file, "the merchant configuration")?;
    let sig_text = read(sig, "the signature")?;
    let (_conn, p) = crate::payment::connect().await?;
    let (version, synced_at) =
        p.apply_merchant_config(&body, &sig_text)
            .await
            .map_err(|e| match &e {
                zbus::Error::MethodError(name, msg, _)
                    if name.as_str() == smartpos_bus::errors::REFUSED
                        || name.as_str() == smartpos_bus::errors::INVALID_ARGS =>
                {
                    Error::Input(msg.clone().unwrap_or_default())
                }
                _ => Error::from(e),
            })?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "applied": true, "version": version, "synced_at": synced_at })
        );
    } else {
        println!(
            "merchant configuration version {version} (synced {synced_at}) applied; the next sale uses it"
        );
    }
    Ok(())
}
