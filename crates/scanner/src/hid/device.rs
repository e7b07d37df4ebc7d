//! Real keyboard-wedge scanners through evdev: matched by id or name, grabbed, hotplugged.
//!
//! `/dev/input` is rescanned every `rescan_interval` (2 s by default). That is simpler than
//! inotify or udev and works where there is no udev at all (the VM test, minimal images);
//! a scanner plugged in is usable within one interval. A device that fails a read (unplugged)
//! is dropped at once, with whatever partial code it had typed.
//!
//! Each device has its own [`WedgeAssembler`], so two scanners typing at the same moment never
//! mix their characters.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use evdev::raw_stream::RawDevice;
use evdev::{EventType, KeyCode, SynchronizationCode};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::CodeSource;
use super::wedge::{WedgeAssembler, WedgeCode, WedgeConfig, WedgeCounters};
use crate::{KeyEvent, SourceError};

/// Which input devices are scanners. Every field that is set must match; a matcher with no
/// field set matches nothing, so that a blank config never grabs the cashier's keyboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct HidMatch {
    pub vendor: Option<u16>,
    pub product: Option<u16>,
    /// Case-insensitive substring of the device name (`N:` in evemu, `name` in sysfs).
    pub name_contains: Option<String>,
}

impl HidMatch {
    pub fn matches(&self, vendor: u16, product: u16, name: &str) -> bool {
        if self.vendor.is_none() && self.product.is_none() && self.name_contains.is_none() {
            return false;
        }
        self.vendor.is_none_or(|v| v == vendor)
            && self.product.is_none_or(|p| p == product)
            && self
                .name_contains
                .as_ref()
                .is_none_or(|n| name.to_lowercase().contains(&n.to_lowercase()))
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct HidConfig {
    pub matchers: Vec<HidMatch>,
    /// Take the device exclusively (EVIOCGRAB) so its keys do not also reach the console or
    /// the vendor app's text fields.
    pub grab: bool,
    #[serde(with = "secs_f64")]
    pub rescan_interval: Duration,
    pub wedge: WedgeConfig,
    pub input_dir: PathBuf,
}

impl Default for HidConfig {
    fn default() -> Self {
        HidConfig {
            matchers: Vec::new(),
            grab: true,
            rescan_interval: Duration::from_secs(2),
            wedge: WedgeConfig::default(),
            input_dir: PathBuf::from("/dev/input"),
        }
    }
}

mod secs_f64 {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs: f64 = serde::Deserialize::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// One open scanner, for `posctl scanner status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HidDeviceInfo {
    pub path: PathBuf,
    pub name: String,
    pub vendor: u16,
    pub product: u16,
    pub grabbed: bool,
    pub counters: WedgeCounters,
}

/// The open scanners as the reading thread last saw them, for the daemon's bus thread.
#[derive(Debug, Clone, Default)]
pub struct HidStatusHandle(Arc<Mutex<Vec<HidDeviceInfo>>>);

impl HidStatusHandle {
    pub fn devices(&self) -> Vec<HidDeviceInfo> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

struct OpenScanner {
    info: HidDeviceInfo,
    // RawDevice rather than evdev::Device: the latter prints to stderr when it cannot ungrab
    // an unplugged device on drop. The kernel drops the grab with the fd anyway.
    device: RawDevice,
    assembler: WedgeAssembler,
}

/// A node's identity, so that a non-matching device is not reopened every scan while a new
/// device that reuses its `eventN` name is.
type NodeId = (u64, i64, i64);

fn node_id(path: &Path) -> Option<NodeId> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.rdev(), m.ctime(), m.ctime_nsec()))
}

/// All matching scanners on the system, as one [`CodeSource`].
pub struct HidScanners {
    config: HidConfig,
    open: Vec<OpenScanner>,
    skipped: HashMap<PathBuf, NodeId>,
    next_scan: Instant,
    pending: std::collections::VecDeque<WedgeCode>,
    status: HidStatusHandle,
    sysfs_dir: PathBuf,
}

impl std::fmt::Debug for HidScanners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HidScanners")
            .field("devices", &self.devices())
            .finish()
    }
}

fn set_nonblocking(device: &RawDevice) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let fd = device.as_raw_fd();
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// The key clock of evdev events: they carry CLOCK_REALTIME stamps.
fn realtime_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl HidScanners {
    /// Starts with no device open; the first `next_code` scans `/dev/input`.
    pub fn new(config: HidConfig) -> Self {
        if config.matchers.iter().all(|m| *m == HidMatch::default()) {
            tracing::warn!(
                "no HID scanner matcher configured: no keyboard-wedge scanner will be used"
            );
        }
        HidScanners {
            config,
            open: Vec::new(),
            skipped: HashMap::new(),
            next_scan: Instant::now(),
            pending: Default::default(),
            status: HidStatusHandle::default(),
            sysfs_dir: PathBuf::from("/sys/class/input"),
        }
    }

    /// The scanners open now.
    pub fn devices(&self) -> Vec<HidDeviceInfo> {
        self.open
            .iter()
            .map(|s| HidDeviceInfo {
                counters: s.assembler.counters(),
                ..s.info.clone()
            })
            .collect()
    }

    /// A handle that shows [`Self::devices`] as of the last `next_code` pass, from any thread.
    pub fn status_handle(&self) -> HidStatusHandle {
        self.status.clone()
    }

    fn publish(&self) {
        let devices = self.devices();
        *self.status.0.lock().unwrap_or_else(|e| e.into_inner()) = devices;
    }

    /// Look for new and removed devices now, instead of waiting for the next interval.
    pub fn rescan(&mut self) {
        self.next_scan = Instant::now() + self.config.rescan_interval;
        self.open.retain(|s| {
            let present = s.info.path.exists();
            if !present {
                tracing::info!(path = %s.info.path.display(), name = %s.info.name, "scanner removed");
            }
            present
        });
        let entries = match std::fs::read_dir(&self.config.input_dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(dir = %self.config.input_dir.display(), error = %e,
                    "cannot list input devices; is /dev/input mounted and readable?");
                return;
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("event"))
            })
            .collect();
        paths.sort();
        self.skipped.retain(|p, _| paths.contains(p));
        for path in paths {
            if self.open.iter().any(|s| s.info.path == path) {
                continue;
            }
            let Some(id) = node_id(&path) else { continue };
            if self.skipped.get(&path) == Some(&id) {
                continue;
            }
            match self.try_open(&path) {
                Ok(Some(s)) => self.open.push(s),
                Ok(None) => {
                    self.skipped.insert(path, id);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e,
                        "cannot open input device; the udev rule 70-smartpos-devices.rules gives the scanner user access to listed scanner models: add this vendor/product there");
                    self.skipped.insert(path, id);
                }
            }
        }
    }

    /// Whether sysfs says this node cannot be a configured scanner. Checked before opening, so
    /// the daemon never opens the cashier's keyboard or mouse (and needs no access to them).
    fn ruled_out_by_sysfs(&self, path: &Path) -> bool {
        let Some(node) = path.file_name() else {
            return false;
        };
        let dev = self.sysfs_dir.join(node).join("device");
        let read = |f: &str| {
            std::fs::read_to_string(dev.join(f))
                .ok()
                .map(|s| s.trim().to_string())
        };
        let hex = |f: &str| read(f).and_then(|v| u16::from_str_radix(&v, 16).ok());
        match (read("name"), hex("id/vendor"), hex("id/product")) {
            (Some(name), Some(vendor), Some(product)) => !self
                .config
                .matchers
                .iter()
                .any(|m| m.matches(vendor, product, &name)),
            // No sysfs (a container, a test directory): decide after opening.
            _ => false,
        }
    }

    fn try_open(&self, path: &Path) -> io::Result<Option<OpenScanner>> {
        if self.ruled_out_by_sysfs(path) {
            return Ok(None);
        }
        let mut device = RawDevice::open(path)?;
        let name = device.name().unwrap_or("").to_string();
        let id = device.input_id();
        let (vendor, product) = (id.vendor(), id.product());
        let has_enter = device
            .supported_keys()
            .is_some_and(|k| k.contains(KeyCode::KEY_ENTER));
        if !has_enter
            || !self
                .config
                .matchers
                .iter()
                .any(|m| m.matches(vendor, product, &name))
        {
            return Ok(None);
        }
        set_nonblocking(&device)?;
        let grabbed = if self.config.grab {
            match device.grab() {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(path = %path.display(), %name, error = %e,
                        "cannot grab the scanner; another program holds it, its keys may reach other apps");
                    false
                }
            }
        } else {
            false
        };
        tracing::info!(path = %path.display(), %name, vendor = format_args!("{vendor:04x}"),
            product = format_args!("{product:04x}"), grabbed, "scanner opened");
        let source = format!("{} ({name})", path.display());
        let info = HidDeviceInfo {
            path: path.to_path_buf(),
            name,
            vendor,
            product,
            grabbed,
            counters: WedgeCounters::default(),
        };
        Ok(Some(OpenScanner {
            info,
            device,
            assembler: WedgeAssembler::new(self.config.wedge.clone(), source),
        }))
    }

    /// Read whatever the devices marked ready have, feeding their assemblers.
    fn read_ready(&mut self, ready: &[bool]) {
        let mut gone = Vec::new();
        for (i, s) in self.open.iter_mut().enumerate() {
            if !ready.get(i).copied().unwrap_or(false) {
                continue;
            }
            match s.device.fetch_events() {
                Ok(events) => {
                    for ev in events {
                        if ev.event_type() == EventType::SYNCHRONIZATION
                            && ev.code() == SynchronizationCode::SYN_DROPPED.0
                        {
                            // The kernel's buffer overflowed: keys were lost, so the partial
                            // code (and the modifier state) cannot be trusted.
                            tracing::warn!(path = %s.info.path.display(), "input events dropped by the kernel; discarding the partial code");
                            s.assembler.discard();
                            continue;
                        }
                        if ev.event_type() != EventType::KEY {
                            continue;
                        }
                        let time = ev
                            .timestamp()
                            .duration_since(UNIX_EPOCH)
                            .unwrap_or_default();
                        let key = KeyEvent {
                            code: ev.code(),
                            value: ev.value(),
                            time,
                        };
                        if let Some(code) = s.assembler.feed(key) {
                            self.pending.push_back(code);
                        }
                    }
                }
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::info!(path = %s.info.path.display(), name = %s.info.name, error = %e,
                        "scanner stopped answering (unplugged?); dropping it");
                    gone.push(i);
                }
            }
        }
        for i in gone.into_iter().rev() {
            self.open.remove(i);
        }
    }

    fn poll_idle(&mut self) {
        let now = realtime_now();
        for s in &mut self.open {
            if let Some(code) = s.assembler.poll_idle(now) {
                self.pending.push_back(code);
            }
        }
    }
}

impl CodeSource for HidScanners {
    fn name(&self) -> &str {
        "hid"
    }

    fn next_code(&mut self, timeout: Duration) -> Result<WedgeCode, SourceError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(code) = self.pending.pop_front() {
                self.publish();
                return Ok(code);
            }
            let now = Instant::now();
            if now >= self.next_scan {
                self.rescan();
                self.publish();
            }
            if now >= deadline {
                return Err(SourceError::Timeout(timeout));
            }
            let mut wait = (deadline - now).min(self.next_scan.saturating_duration_since(now));
            let key_now = realtime_now();
            for s in &self.open {
                if let Some(d) = s.assembler.deadline() {
                    wait = wait.min(d.saturating_sub(key_now) + Duration::from_millis(1));
                }
            }
            let ready: Vec<bool> = {
                let mut fds: Vec<PollFd<'_>> = self
                    .open
                    .iter()
                    .map(|s| PollFd::new(s.device.as_fd(), PollFlags::POLLIN))
                    .collect();
                let ms = PollTimeout::try_from(wait.min(Duration::from_secs(60)))
                    .unwrap_or(PollTimeout::MAX);
                match poll(&mut fds, ms) {
                    Ok(_) => fds.iter().map(|f| f.any().unwrap_or(false)).collect(),
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => {
                        return Err(SourceError::Other(format!(
                            "poll on input devices failed: {e}"
                        )));
                    }
                }
            };
            self.read_ready(&ready);
            self.poll_idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scanner_is_matched_by_vendor_and_product() {
        let m = HidMatch {
            vendor: Some(0x1eab),
            product: Some(0x1a03),
            name_contains: None,
        };
        assert!(m.matches(0x1eab, 0x1a03, "Newland"));
        assert!(!m.matches(0x1eab, 0x0001, "Newland"));
    }

    #[test]
    fn a_scanner_is_matched_by_name_whatever_the_case() {
        let m = HidMatch {
            name_contains: Some("barcode".into()),
            ..HidMatch::default()
        };
        assert!(m.matches(1, 2, "Honeywell USB BarCode Scanner"));
        assert!(!m.matches(1, 2, "AT Translated Set 2 keyboard"));
    }

    #[test]
    fn an_empty_matcher_never_takes_the_cashiers_keyboard() {
        assert!(!HidMatch::default().matches(0x1eab, 0x1a03, "anything"));
    }

    #[test]
    fn with_no_input_directory_there_are_no_devices_and_waiting_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = HidConfig {
            matchers: vec![HidMatch {
                name_contains: Some("scanner".into()),
                ..Default::default()
            }],
            input_dir: dir.path().join("missing"),
            ..HidConfig::default()
        };
        let mut hid = HidScanners::new(cfg);
        let t0 = Instant::now();
        let status = hid.status_handle();
        assert!(matches!(
            hid.next_code(Duration::from_millis(30)),
            Err(SourceError::Timeout(_))
        ));
        assert!(t0.elapsed() >= Duration::from_millis(30));
        assert!(hid.devices().is_empty());
        assert!(
            status.devices().is_empty(),
            "the bus thread sees no scanner either"
        );
    }

    #[test]
    fn non_device_files_in_the_input_directory_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("event7"), b"not a device").unwrap();
        let cfg = HidConfig {
            matchers: vec![HidMatch {
                name_contains: Some("scanner".into()),
                ..Default::default()
            }],
            input_dir: dir.path().to_path_buf(),
            ..HidConfig::default()
        };
        let mut hid = HidScanners::new(cfg);
        hid.rescan();
        assert!(hid.devices().is_empty());
        assert_eq!(
            hid.skipped.len(),
            1,
            "remembered, so it is not reopened every scan"
        );
    }

    #[test]
    fn the_cashiers_keyboard_is_ruled_out_from_sysfs_without_opening_it() {
        let input = tempfile::tempdir().unwrap();
        let sys = tempfile::tempdir().unwrap();
        for (node, name, vendor, product) in [
            ("event3", "AT Translated Set 2 keyboard", "0001", "0001"),
            ("event4", "Newland HR22 Scanner", "1eab", "1a03"),
        ] {
            // Not real device nodes: opening one fails, so a node that is opened is remembered
            // as a failure, and one ruled out is remembered without an open attempt.
            std::fs::write(input.path().join(node), b"").unwrap();
            let dev = sys.path().join(node).join("device");
            std::fs::create_dir_all(dev.join("id")).unwrap();
            std::fs::write(dev.join("name"), format!("{name}\n")).unwrap();
            std::fs::write(dev.join("id/vendor"), format!("{vendor}\n")).unwrap();
            std::fs::write(dev.join("id/product"), format!("{product}\n")).unwrap();
        }
        let cfg = HidConfig {
            matchers: vec![HidMatch {
                vendor: Some(0x1eab),
                ..Default::default()
            }],
            input_dir: input.path().to_path_buf(),
            ..HidConfig::default()
        };
        let mut hid = HidScanners::new(cfg);
        hid.sysfs_dir = sys.path().to_path_buf();
        assert!(
            hid.ruled_out_by_sysfs(&input.path().join("event3")),
            "the keyboard"
        );
        assert!(
            !hid.ruled_out_by_sysfs(&input.path().join("event4")),
            "the scanner"
        );
        assert!(
            !hid.ruled_out_by_sysfs(&input.path().join("event9")),
            "no sysfs: open to find out"
        );
        assert!(matches!(
            hid.try_open(&input.path().join("event3")),
            Ok(None)
        ));
        assert!(
            hid.try_open(&input.path().join("event4")).is_err(),
            "the scanner is opened"
        );
    }

    #[test]
    fn the_config_reads_from_toml_with_defaults() {
        let cfg: HidConfig = toml::from_str(
            "rescan_interval = 0.5\n[[matchers]]\nvendor = 7851\n[wedge]\ninter_key_timeout = 80\n",
        )
        .unwrap();
        assert_eq!(cfg.rescan_interval, Duration::from_millis(500));
        assert_eq!(cfg.matchers[0].vendor, Some(0x1eab));
        assert_eq!(cfg.wedge.inter_key_timeout, Duration::from_millis(80));
        assert_eq!(cfg.wedge.min_len_on_timeout, 6);
        assert!(cfg.grab);
    }
}
