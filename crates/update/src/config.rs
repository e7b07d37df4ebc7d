//! `/etc/smartpos/smartpos-otad.toml`. Every table and key is optional; with no `[server]`
//! url the daemon polls nothing and only a technician's `InstallLocal` installs. A full
//! example is in `docs/UPDATES.md`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: Server,
    pub device: Device,
    pub polling: PollingConfig,
    pub download: DownloadConfig,
    pub install: InstallConfig,
    pub selfcheck: SelfCheck,
    pub auth: AuthConfig,
}

/// The hawkBit DDI server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// `https://host[:port]`; empty = no fleet server.
    pub url: String,
    pub tenant: String,
    /// This terminal's controller id on the server.
    pub controller_id: String,
    /// The only CA trusted for the server.
    pub ca_file: PathBuf,
    /// A file holding this terminal's `TargetToken` (0600, never logged).
    pub target_token_file: Option<PathBuf>,
    /// A file holding the tenant's `GatewayToken`, for servers set up that way.
    pub gateway_token_file: Option<PathBuf>,
    pub connect_timeout_ms: u64,
    pub read_timeout_ms: u64,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            url: String::new(),
            tenant: "DEFAULT".into(),
            controller_id: String::new(),
            ca_file: PathBuf::from("/etc/smartpos/update-ca.pem"),
            target_token_file: None,
            gateway_token_file: None,
            connect_timeout_ms: 10_000,
            read_timeout_ms: 30_000,
        }
    }
}

/// What the terminal tells the server about itself (DDI configData).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Device {
    /// The board name; equal to the RAUC `compatible` of its bundles.
    pub hw_boardname: String,
    pub hw_revision: String,
    /// The factory image's version, read when the booted slot was not installed by RAUC
    /// (and so carries no bundle version).
    pub version_file: PathBuf,
}

impl Default for Device {
    fn default() -> Self {
        Device {
            hw_boardname: String::new(),
            hw_revision: "default".into(),
            version_file: PathBuf::from("/usr/lib/smartpos/version"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PollingConfig {
    /// Used when the server names no interval.
    pub default_sleep_s: u64,
    /// The shortest interval honoured, whatever the server says.
    pub min_sleep_s: u64,
    /// While an action is open (waiting for a window, a sale, a cancel): poll this often.
    pub active_sleep_s: u64,
    /// After a failed poll: wait this long, doubling per failure up to `error_backoff_max_s`.
    pub error_backoff_s: u64,
    pub error_backoff_max_s: u64,
}

impl Default for PollingConfig {
    fn default() -> Self {
        PollingConfig {
            default_sleep_s: 300,
            min_sleep_s: 1,
            active_sleep_s: 5,
            error_backoff_s: 30,
            error_backoff_max_s: 3600,
        }
    }
}

impl PollingConfig {
    pub fn default_sleep(&self) -> Duration {
        Duration::from_secs(self.default_sleep_s)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownloadConfig {
    /// Where bundles are downloaded to (the unit's StateDirectory).
    pub dir: PathBuf,
    /// Bytes per second; 0 = no cap.
    pub bandwidth_bytes_per_s: u64,
    /// Space left free on the download's file system after the download.
    pub free_space_margin_bytes: u64,
    /// Tries per artifact (each resumes where the last one broke off).
    pub tries: u32,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            dir: PathBuf::from("/var/lib/smartpos-update"),
            bandwidth_bytes_per_s: 0,
            free_space_margin_bytes: 16 * 1024 * 1024,
            tries: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstallConfig {
    /// Longest a RAUC install may take.
    pub timeout_s: u64,
    /// Reboot through logind once installed (off: a technician reboots).
    pub reboot: bool,
}

impl Default for InstallConfig {
    fn default() -> Self {
        InstallConfig {
            timeout_s: 900,
            reboot: true,
        }
    }
}

/// What must hold after booting a new slot before it is marked good.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelfCheck {
    /// Bus names that must be owned and answer (each daemon owns its name right before it
    /// tells systemd READY).
    pub bus_names: Vec<String>,
    /// How long after start-up they have.
    pub deadline_s: u64,
}

impl Default for SelfCheck {
    fn default() -> Self {
        SelfCheck {
            bus_names: vec![
                "org.smartpos.Scanner1".into(),
                "org.smartpos.Payment1".into(),
            ],
            deadline_s: 180,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Groups whose members may Check and InstallLocal (besides root).
    pub technician_groups: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            technician_groups: vec!["smartpos-tech".into()],
        }
    }
}

impl Config {
    /// Values that parse but cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if !self.server.url.is_empty() {
            if !self.server.url.to_ascii_lowercase().starts_with("https://") {
                return Err(format!(
                    "server.url {:?}: updates travel over https:// only",
                    self.server.url
                ));
            }
            if self.server.controller_id.is_empty() {
                return Err("server.controller_id: required when server.url is set".into());
            }
            if self.server.target_token_file.is_some() && self.server.gateway_token_file.is_some() {
                return Err(
                    "server: give target_token_file or gateway_token_file, not both".into(),
                );
            }
            if self.device.hw_boardname.is_empty() {
                return Err("device.hw_boardname: required when server.url is set".into());
            }
        }
        if self.polling.min_sleep_s == 0 || self.polling.error_backoff_s == 0 {
            return Err("polling: min_sleep_s and error_backoff_s must be at least 1".into());
        }
        Ok(())
    }
}
