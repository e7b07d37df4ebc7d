//! `/etc/smartpos/smartpos-paymentd.toml`: where the merchant configuration and the journal
//! are, whether to use the scanner, and who may sell. The merchant configuration itself
//! (wallets, funding, acquirer paths, risk, policy) is a separate, synced file; a new one
//! arrives signed through `ApplyMerchantConfig` and is checked against
//! `merchant_config_key`.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The merchant configuration synced from the fleet server. `ApplyMerchantConfig`
    /// replaces it (a temporary file in the same directory, then a rename), so paymentd must
    /// be able to write its directory: `/etc/smartpos/merchant/` on the terminal (the
    /// data partition; the unit binds it writable), nothing else under `/etc/smartpos`.
    pub merchant_config: PathBuf,
    /// The fleet's Ed25519 public key (32 bytes, base64, one line) that signs merchant
    /// configurations. Read at each `ApplyMerchantConfig`; without it none is applied.
    pub merchant_config_key: PathBuf,
    /// An update's install window closes by itself after this many seconds.
    pub install_window_max_s: u64,
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
            merchant_config: PathBuf::from("/etc/smartpos/merchant/merchant.toml"),
            merchant_config_key: PathBuf::from("/etc/smartpos/merchant-config.pub"),
            install_window_max_s: 900,
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
    /// Groups whose members may also apply a signed merchant configuration (technicians).
    pub technician_groups: Vec<String>,
    /// Users of the update service: they may open and close the install window and apply
    /// merchant configurations (besides root).
    pub update_users: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            operator_groups: vec!["smartpos-vendor".into(), "smartpos-tech".into()],
            technician_groups: vec!["smartpos-tech".into()],
            update_users: vec!["smartpos-update".into()],
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        if self.install_window_max_s == 0 || self.install_window_max_s > 3_600 {
            return Err(format!(
                "install_window_max_s = {}: expected 1 to 3600",
                self.install_window_max_s
            ));
        }
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
