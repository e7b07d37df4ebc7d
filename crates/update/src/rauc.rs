//! RAUC's `de.pengutronix.rauc.Installer` (the RAUC 1.8 surface only: `InstallBundle`,
//! `Info`, `Mark`, `GetSlotStatus`, `GetPrimary`, `Operation`, `Progress`, `LastError`,
//! `BootSlot`, `Completed`). RAUC, not this daemon, writes slots and the bootloader.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use zbus::zvariant::{OwnedValue, Value};

#[zbus::proxy(
    interface = "de.pengutronix.rauc.Installer",
    default_service = "de.pengutronix.rauc",
    default_path = "/"
)]
pub trait Installer {
    fn install_bundle(&self, source: &str, args: HashMap<&str, Value<'_>>) -> zbus::Result<()>;
    /// (compatible, version) of a bundle, after RAUC checked its signature.
    fn info(&self, bundle: &str) -> zbus::Result<(String, String)>;
    /// (`good`|`bad`|`active`, `booted`|`other`|slot) → (slot name, message).
    fn mark(&self, state: &str, slot_identifier: &str) -> zbus::Result<(String, String)>;
    fn get_slot_status(&self) -> zbus::Result<Vec<(String, HashMap<String, OwnedValue>)>>;
    fn get_primary(&self) -> zbus::Result<String>;

    #[zbus(property)]
    fn operation(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn last_error(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn progress(&self) -> zbus::Result<(i32, String, i32)>;
    #[zbus(property)]
    fn boot_slot(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn compatible(&self) -> zbus::Result<String>;

    #[zbus(signal)]
    fn completed(&self, result: i32) -> zbus::Result<()>;
}

/// One slot as `GetSlotStatus` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slot {
    pub name: String,
    pub class: String,
    pub bootname: String,
    /// `booted`, `active` or `inactive`.
    pub state: String,
    pub boot_status: String,
    pub bundle_version: String,
}

fn text(map: &HashMap<String, OwnedValue>, key: &str) -> String {
    map.get(key)
        .and_then(|v| String::try_from(v.clone()).ok())
        .unwrap_or_default()
}

/// The slots, in RAUC's order.
pub async fn slots(rauc: &InstallerProxy<'_>) -> zbus::Result<Vec<Slot>> {
    Ok(rauc
        .get_slot_status()
        .await?
        .into_iter()
        .map(|(name, m)| Slot {
            class: text(&m, "class"),
            bootname: text(&m, "bootname"),
            state: text(&m, "state"),
            boot_status: text(&m, "boot-status"),
            bundle_version: text(&m, "bundle.version"),
            name,
        })
        .collect())
}

/// The version the booted slot was installed with, if RAUC installed it (a factory-written
/// slot has none).
pub async fn booted_version(rauc: &InstallerProxy<'_>) -> zbus::Result<Option<String>> {
    Ok(slots(rauc)
        .await?
        .into_iter()
        .find(|s| s.state == "booted" && !s.bundle_version.is_empty())
        .map(|s| s.bundle_version))
}

/// How an install ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Installed,
    /// RAUC's `LastError`.
    Failed(String),
}

/// Install `bundle` and wait for `Completed`, reporting `Progress` (percent, message) as it
/// comes. A bundle RAUC refuses (signature, compatible) ends as [`Outcome::Failed`] with
/// RAUC's own words.
pub async fn install(
    rauc: &InstallerProxy<'_>,
    bundle: &str,
    limit: Duration,
    mut progress: impl FnMut(i32, &str),
) -> zbus::Result<Outcome> {
    // Subscribe before starting, or a quick install completes unseen.
    let mut completed = rauc.receive_completed().await?;
    let mut changes = rauc.receive_progress_changed().await;
    rauc.install_bundle(bundle, HashMap::new()).await?;
    let wait = async {
        loop {
            tokio::select! {
                Some(sig) = completed.next() => {
                    let code = sig.args().map(|a| a.result).unwrap_or(-1);
                    return Ok::<_, zbus::Error>(code);
                }
                Some(p) = changes.next() => {
                    if let Ok((pct, msg, _)) = p.get().await {
                        progress(pct, &msg);
                    }
                }
            }
        }
    };
    let code = tokio::time::timeout(limit, wait)
        .await
        .map_err(|_| zbus::Error::Failure(format!("RAUC did not finish within {limit:?}")))??;
    if code == 0 {
        Ok(Outcome::Installed)
    } else {
        let err = rauc.last_error().await.unwrap_or_default();
        Ok(Outcome::Failed(if err.is_empty() {
            format!("RAUC reported failure {code}")
        } else {
            err
        }))
    }
}
