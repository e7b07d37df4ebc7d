//! `/etc/smartpos/smartpos-paymentd.toml`: where the merchant configuration and the journal
//! are, whether to use the scanner, and who may sell. The merchant configuration itself
//! (wallets, funding, acquirer paths, risk, policy) is a separate, synced file.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The merchant configuration synced from the fleet server.
    pub merchant_config: PathBuf,
    /// The SQLite journal (WAL, synchronous=FULL). Its directory must exist.
    pub journal: PathBuf,
    /// Arm smartpos-scannerd for each sale and pay with the code it reads.
    pub scanner: bool,
    /// How long a sale keeps the scanner armed when the app does not say.
    pub scan_timeout_ms: u32,
    /// `Diagnose` calls the merchant configuration stale after this many seconds unsynced.
    pub max_config_age_s: u64,
    pub auth: AuthConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            merchant_config: PathBuf::from("/etc/smartpos/merchant.toml"),
            journal: PathBuf::from("/var/lib/smartpos-payment/journal.db"),
            scanner: true,
            scan_timeout_ms: 60_000,
            max_config_age_s: 86_400,
            auth: AuthConfig::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Groups whose members may sell, refund, cancel, query and list.
    pub operator_groups: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            operator_groups: vec!["smartpos-vendor".into(), "smartpos-tech".into()],
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        if self.scan_timeout_ms == 0 || self.scan_timeout_ms > 600_000 {
            return Err(format!(
                "scan_timeout_ms = {}: expected 1 to 600000",
                self.scan_timeout_ms
            ));
        }
        match self.journal.parent() {
            Some(dir) if dir.as_os_str().is_empty() || dir.is_dir() => Ok(()),
            Some(dir) => Err(format!(
                "journal = {:?}: its directory {} does not exist (systemd's StateDirectory= makes it)",
                self.journal,
                dir.display()
            )),
            None => Err(format!("journal = {:?} is not a file path", self.journal)),
        }
    }
}
