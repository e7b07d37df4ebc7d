//! `/etc/smartpos/smartpos-scannerd.toml`. Every table and key is optional; see
//! `docs/scanner.md` for a full example.

use std::path::PathBuf;

use serde::Deserialize;
use smartpos_scanner::hid::HidConfig;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub camera: CameraConfig,
    pub hid: HidSection,
    pub scan: ScanConfig,
    pub auth: AuthConfig,
}

/// Which camera, if any. `device`, `match` and `replay` are alternatives: give one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraConfig {
    /// A device path such as `/dev/video0`.
    pub device: Option<PathBuf>,
    /// A case-insensitive substring of the card name or bus info (`vivid`, `usb-0000:00:14.0-2`).
    #[serde(rename = "match")]
    pub name_match: Option<String>,
    /// A folder of images (PNG, JPEG, PGM) or raw frames played as a camera.
    pub replay: Option<PathBuf>,
    /// Play the replay folder again from the start when it ends.
    #[serde(rename = "loop")]
    pub looping: bool,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            device: None,
            name_match: None,
            replay: None,
            looping: true,
            width: 1280,
            height: 720,
            fps: 30,
        }
    }
}

/// Keyboard-wedge scanners: real devices by match, and/or a recorded evemu stream.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HidSection {
    /// Real scanners (evdev). No matchers = no real scanners.
    #[serde(flatten)]
    pub devices: HidConfig,
    /// An evemu-record file played as a scanner (tests, demo).
    pub replay: Option<PathBuf>,
    /// Playback speed of `replay` (1.0 = as recorded).
    pub replay_speed: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanConfig {
    /// Session length when StartScan asks for 0.
    pub default_timeout_ms: u32,
    /// The same text within this window is reported once.
    pub duplicate_window_ms: u32,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            default_timeout_ms: 60_000,
            duplicate_window_ms: 1_500,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Groups whose members may arm and disarm the scanner.
    pub operator_groups: Vec<String>,
    /// Groups whose members may also take snapshots.
    pub technician_groups: Vec<String>,
    /// Service users (e.g. `smartpos-payment`) that may arm and disarm the scanner.
    pub operator_users: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            operator_groups: vec!["smartpos-vendor".into(), "smartpos-tech".into()],
            technician_groups: vec!["smartpos-tech".into()],
            operator_users: vec!["smartpos-payment".into()],
        }
    }
}

impl Config {
    /// Checks that serde cannot express.
    pub fn validate(&self) -> Result<(), String> {
        let c = &self.camera;
        let chosen = [
            c.device.is_some(),
            c.name_match.is_some(),
            c.replay.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if chosen > 1 {
            return Err("[camera]: give only one of `device`, `match` and `replay`".into());
        }
        if c.fps == 0 || c.fps > 120 {
            return Err(format!("[camera] fps = {}: expected 1 to 120", c.fps));
        }
        if c.width == 0 || c.height == 0 {
            return Err("[camera] width and height must be positive".into());
        }
        if self.scan.default_timeout_ms == 0
            || self.scan.default_timeout_ms > crate::service::MAX_SESSION_MS
        {
            return Err(format!(
                "[scan] default_timeout_ms = {}: expected 1 to {}",
                self.scan.default_timeout_ms,
                crate::service::MAX_SESSION_MS
            ));
        }
        if let Some(s) = self.hid.replay_speed
            && !(s > 0.0 && s <= 1000.0)
        {
            return Err(format!(
                "[hid] replay_speed = {s}: expected more than 0 and at most 1000"
            ));
        }
        Ok(())
    }
}
