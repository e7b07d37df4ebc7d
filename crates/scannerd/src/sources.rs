//! Build the configured sources.

use smartpos_scanner::FrameSource;
use smartpos_scanner::capture::resilient::{ResiliencePolicy, ResilientSource, StatusHandle};
use smartpos_scanner::capture::{CameraSelector, CaptureConfig};
use smartpos_scanner::hid::device::HidStatusHandle;
use smartpos_scanner::hid::{CodeSource, HidScanners, RecordedKeySource, WedgeReader};
use smartpos_scanner::replay::{ReplayFolder, ReplayOptions};

use crate::config::{CameraConfig, HidSection};

/// A camera and, for a live device, the handle through which it reports reopen/stall state.
pub struct Camera {
    pub source: Box<dyn FrameSource>,
    pub status: Option<StatusHandle>,
}

/// The camera, if one is configured.
pub fn camera(cfg: &CameraConfig) -> Result<Option<Camera>, String> {
    if let Some(dir) = &cfg.replay {
        let options = ReplayOptions {
            fps: Some(f64::from(cfg.fps)),
            looping: cfg.looping,
        };
        let folder =
            ReplayFolder::open(dir, options).map_err(|e| format!("[camera] replay: {e}"))?;
        return Ok(Some(Camera {
            source: Box::new(folder),
            status: None,
        }));
    }
    let selector = match (&cfg.device, &cfg.name_match) {
        (Some(path), _) => CameraSelector::Path(path.clone()),
        (None, Some(m)) => CameraSelector::Match(m.clone()),
        (None, None) => return Ok(None),
    };
    let capture = CaptureConfig {
        camera: selector,
        width: cfg.width,
        height: cfg.height,
        fps: cfg.fps,
        ..CaptureConfig::default()
    };
    Ok(Some(live_camera(capture)))
}

fn live_camera(capture: CaptureConfig) -> Camera {
    let source = ResilientSource::v4l2(capture, &ResiliencePolicy::default());
    let status = Some(source.status_handle());
    Camera {
        source: Box::new(source),
        status,
    }
}

/// A code source and, for real scanners, the handle listing the devices it has open.
pub struct Hid {
    pub source: Box<dyn CodeSource>,
    pub devices: Option<HidStatusHandle>,
}

/// HID scanners: real devices (if any matcher is configured) and a replayed recording.
pub fn hid(cfg: &HidSection) -> Result<Vec<Hid>, String> {
    let mut out = Vec::new();
    if !cfg.devices.matchers.is_empty() {
        let scanners = HidScanners::new(cfg.devices.clone());
        let devices = Some(scanners.status_handle());
        out.push(Hid {
            source: Box::new(scanners),
            devices,
        });
    }
    if let Some(path) = &cfg.replay {
        let rec = RecordedKeySource::open(path, cfg.replay_speed.unwrap_or(1.0))
            .map_err(|e| format!("[hid] replay {}: {e}", path.display()))?;
        out.push(Hid {
            source: Box::new(WedgeReader::new(rec, cfg.devices.wedge.clone())),
            devices: None,
        });
    }
    Ok(out)
}
