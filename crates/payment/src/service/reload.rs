//! A new merchant configuration while the daemon runs.
//!
//! [`PaymentService::prepare`] checks a configuration completely — TOML, schema, every rule
//! of [`Config::validate`], every file it names (connectors are built from them), a version
//! above the running one, the same terminal — and changes nothing. [`PaymentService::install`]
//! then makes it the one new sales use. Sales already started keep the configuration they
//! started with to their end (their channel matrix, risk rules, polling pace and
//! connectors); the next sale uses the new one. The caller writes the file between the two
//! steps, so that what runs is what is on disk.

use std::sync::Arc;

use crate::config::{Config, ConfigError};

use super::{PaymentService, Profile, build_connectors};

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Versions only go up: an older or the same configuration is never applied again.
    #[error(
        "merchant config version {offered} is not newer than the running version {running}; nothing was changed"
    )]
    NotNewer { running: u64, offered: u64 },
    /// A configuration made for another terminal (its order numbers would carry another id).
    #[error(
        "merchant config is for terminal {offered:?}, this terminal is {running:?}; nothing was changed"
    )]
    OtherTerminal { running: String, offered: String },
}

/// A configuration checked by [`PaymentService::prepare`], with its connectors, ready to be
/// installed.
pub struct Prepared {
    profile: Arc<Profile>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("version", &self.profile.config.version)
            .finish_non_exhaustive()
    }
}

impl Prepared {
    pub fn config(&self) -> &Config {
        &self.profile.config
    }
}

impl PaymentService {
    /// Check `text` as the next merchant configuration; nothing changes.
    pub fn prepare(&self, text: &str) -> Result<Prepared, ReloadError> {
        let config = Config::parse(text)?;
        self.newer(&config)?;
        let connectors = build_connectors(&config)?;
        Ok(Prepared {
            profile: Arc::new(Profile {
                config: Arc::new(config),
                connectors,
            }),
        })
    }

    /// Make `prepared` the configuration of every sale started from now on. Checked again
    /// against the running version, so that of two configurations prepared at once the
    /// older cannot replace the newer.
    pub fn install(&self, prepared: Prepared) -> Result<Arc<Config>, ReloadError> {
        let mut current = self
            .inner
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        check_newer(&current.config, &prepared.profile.config)?;
        let from = current.config.version;
        *current = prepared.profile;
        tracing::info!(
            from,
            to = current.config.version,
            synced_at = %current.config.synced_at,
            "merchant configuration applied"
        );
        Ok(current.config.clone())
    }

    /// Held while a configuration is checked, written and installed: one change at a time.
    pub async fn reload_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.reloading.lock().await
    }

    fn newer(&self, offered: &Config) -> Result<(), ReloadError> {
        check_newer(&self.inner.profile().config, offered)
    }
}

fn check_newer(running: &Config, offered: &Config) -> Result<(), ReloadError> {
    if offered.terminal_id != running.terminal_id {
        return Err(ReloadError::OtherTerminal {
            running: running.terminal_id.clone(),
            offered: offered.terminal_id.clone(),
        });
    }
    if offered.version <= running.version {
        return Err(ReloadError::NotNewer {
            running: running.version,
            offered: offered.version,
        });
    }
    Ok(())
}
