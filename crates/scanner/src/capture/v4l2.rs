//! A V4L2 camera through the `v4l` crate: single-planar capture, mmap streaming.
//!
//! The `v4l` crate panics in a few places instead of returning errors (a card name that is
//! not UTF-8, a failing STREAMOFF or close while dropping). A camera must never take the
//! daemon down, so those calls run under `catch_unwind` and become errors.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use v4l::buffer::{Flags as BufferFlags, Type};
use v4l::capability::Flags as CapFlags;
use v4l::framesize::FrameSizeEnum;
use v4l::io::traits::CaptureStream;
use v4l::prelude::{Device, MmapStream};
use v4l::video::Capture;
use v4l::video::capture::Parameters;
use v4l::{Format, FourCC};

use super::{CameraSelector, CaptureConfig, SizeOption, choose_format, choose_size, unpad};
use crate::{Frame, FrameSource, PixelFormat, SourceError};

/// A capture device found on the system, for `posctl scanner cameras` and for matching.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CameraInfo {
    pub path: PathBuf,
    pub card: String,
    pub driver: String,
    pub bus: String,
    /// Fourccs it offers for video capture.
    pub formats: Vec<String>,
}

fn fourcc_str(cc: [u8; 4]) -> String {
    String::from_utf8_lossy(&cc).trim_end().to_string()
}

/// Run a `v4l` call that may panic as one that returns an error.
fn guarded<T>(what: &str, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(io::Error::other(format!(
            "the v4l library panicked during {what}"
        ))),
    }
}

fn describe(path: &Path) -> io::Result<CameraInfo> {
    let dev = Device::with_path(path)?;
    let caps = guarded("VIDIOC_QUERYCAP", || dev.query_caps())?;
    if !caps.capabilities.contains(CapFlags::VIDEO_CAPTURE) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "not a single-planar video capture node",
        ));
    }
    let formats = guarded("VIDIOC_ENUM_FMT", || dev.enum_formats())?
        .iter()
        .map(|d| fourcc_str(d.fourcc.repr))
        .collect();
    Ok(CameraInfo {
        path: path.to_path_buf(),
        card: caps.card,
        driver: caps.driver,
        bus: caps.bus,
        formats,
    })
}

/// Every `/dev/video*` that captures video (metadata and output nodes are left out), in
/// node order.
pub fn list_cameras() -> Vec<CameraInfo> {
    list_cameras_in(Path::new("/dev"))
}

fn list_cameras_in(dir: &Path) -> Vec<CameraInfo> {
    let mut nodes: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("video"))
                })
                .collect()
        })
        .unwrap_or_default();
    // video10 after video9.
    nodes.sort_by_key(|p| {
        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        (
            n.trim_start_matches("video")
                .parse::<u32>()
                .unwrap_or(u32::MAX),
            n.to_string(),
        )
    });
    nodes
        .into_iter()
        .filter_map(|p| match describe(&p) {
            Ok(info) => Some(info),
            Err(e) => {
                tracing::debug!(path = %p.display(), error = %e, "not a usable capture node");
                None
            }
        })
        .collect()
}

fn map_io(e: io::Error, what: &str) -> SourceError {
    const ENODEV: i32 = 19;
    const ENXIO: i32 = 6;
    const EIO: i32 = 5;
    const ENOENT: i32 = 2;
    const ESHUTDOWN: i32 = 108;
    if e.kind() == io::ErrorKind::TimedOut {
        return SourceError::Timeout(Duration::ZERO);
    }
    match e.raw_os_error() {
        Some(ENODEV | ENXIO | EIO | ENOENT | ESHUTDOWN) => SourceError::Gone(format!(
            "{what}: {e}; the camera was unplugged or its driver failed, check the cable"
        )),
        _ => SourceError::Other(format!("{what}: {e}")),
    }
}

/// An open, negotiated V4L2 capture device.
pub struct V4l2Source {
    name: String,
    // The stream is dropped before the device (see Drop), and both keep the fd alive.
    stream: Option<MmapStream<'static>>,
    device: Option<Device>,
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
    seq: u64,
}

impl std::fmt::Debug for V4l2Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4l2Source")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("size", &(self.width, self.height))
            .finish()
    }
}

impl V4l2Source {
    /// Find, open and negotiate the camera, and set up streaming. A camera that is not there
    /// is [`SourceError::Gone`]; one that cannot deliver a usable format is `Other`.
    pub fn open(cfg: &CaptureConfig) -> Result<Self, SourceError> {
        let path = match &cfg.camera {
            CameraSelector::Path(p) => {
                if !p.exists() {
                    return Err(SourceError::Gone(format!(
                        "{} does not exist; plug the camera in or fix the camera path",
                        p.display()
                    )));
                }
                p.clone()
            }
            sel @ CameraSelector::Match(_) => {
                let cams = list_cameras();
                match cams.iter().find(|c| sel.matches(&c.card, &c.bus)) {
                    Some(c) => c.path.clone(),
                    None => {
                        let seen: Vec<String> = cams
                            .iter()
                            .map(|c| format!("{} {:?} {}", c.path.display(), c.card, c.bus))
                            .collect();
                        return Err(SourceError::Gone(format!(
                            "no {sel}; cameras present: [{}]; plug it in or fix the match",
                            seen.join(", ")
                        )));
                    }
                }
            }
        };
        Self::open_path(&path, cfg)
    }

    fn open_path(path: &Path, cfg: &CaptureConfig) -> Result<Self, SourceError> {
        let shown = path.display().to_string();
        let dev = Device::with_path(path).map_err(|e| map_io(e, &format!("open {shown}")))?;
        let caps =
            guarded("VIDIOC_QUERYCAP", || dev.query_caps()).map_err(|e| map_io(e, &shown))?;
        if !caps.capabilities.contains(CapFlags::VIDEO_CAPTURE) {
            return Err(SourceError::Other(format!(
                "{shown} ({}) is not a single-planar video capture node; pick another /dev/video*",
                caps.card
            )));
        }
        let offered: Vec<[u8; 4]> = guarded("VIDIOC_ENUM_FMT", || dev.enum_formats())
            .map_err(|e| map_io(e, &format!("list formats of {shown}")))?
            .iter()
            .map(|d| d.fourcc.repr)
            .collect();
        let format = choose_format(&offered, &cfg.formats).ok_or_else(|| {
            SourceError::Other(format!(
                "{shown} ({}) offers {:?}, none of the configured {:?}; this camera cannot be used",
                caps.card,
                offered.iter().map(|c| fourcc_str(*c)).collect::<Vec<_>>(),
                cfg.formats
            ))
        })?;
        let fourcc = FourCC::new(&format.fourcc());
        let sizes: Vec<SizeOption> =
            guarded("VIDIOC_ENUM_FRAMESIZES", || dev.enum_framesizes(fourcc))
                .unwrap_or_default()
                .into_iter()
                .map(|s| match s.size {
                    FrameSizeEnum::Discrete(d) => SizeOption::Discrete {
                        width: d.width,
                        height: d.height,
                    },
                    FrameSizeEnum::Stepwise(s) => SizeOption::Stepwise {
                        min_width: s.min_width,
                        max_width: s.max_width,
                        step_width: s.step_width,
                        min_height: s.min_height,
                        max_height: s.max_height,
                        step_height: s.step_height,
                    },
                })
                .collect();
        let (w, h) =
            choose_size(&sizes, (cfg.width, cfg.height)).unwrap_or((cfg.width, cfg.height));
        let set = guarded("VIDIOC_S_FMT", || {
            dev.set_format(&Format::new(w, h, fourcc))
        })
        .map_err(|e| {
            map_io(
                e,
                &format!(
                    "set format {} {w}x{h} on {shown}",
                    fourcc_str(format.fourcc())
                ),
            )
        })?;
        let actual = PixelFormat::from_fourcc(set.fourcc.repr)
            .filter(|f| cfg.formats.contains(f))
            .ok_or_else(|| {
                SourceError::Other(format!(
                    "{shown} switched to {} instead of {}; this driver cannot be used",
                    fourcc_str(set.fourcc.repr),
                    fourcc_str(format.fourcc())
                ))
            })?;
        if (set.width, set.height) != (cfg.width, cfg.height) {
            tracing::info!(device = %shown, wanted = ?(cfg.width, cfg.height), got = ?(set.width, set.height),
                "camera does not offer the configured size; using the nearest it has");
        }
        if cfg.fps > 0 {
            match guarded("VIDIOC_S_PARM", || {
                dev.set_params(&Parameters::with_fps(cfg.fps))
            }) {
                Ok(p) => {
                    let got = p
                        .interval
                        .denominator
                        .checked_div(p.interval.numerator)
                        .unwrap_or(0);
                    if got != cfg.fps {
                        tracing::info!(device = %shown, wanted = cfg.fps, got, "camera runs at another frame rate");
                    }
                }
                Err(e) => {
                    tracing::warn!(device = %shown, error = %e, "cannot set the frame rate; using the driver's")
                }
            }
        }
        let stream = guarded("VIDIOC_REQBUFS", || {
            MmapStream::with_buffers(&dev, Type::VideoCapture, cfg.buffers.max(2))
        })
        .map_err(|e| map_io(e, &format!("allocate capture buffers on {shown}")))?;
        let name = format!("{shown} ({})", caps.card);
        tracing::info!(camera = %name, format = %fourcc_str(actual.fourcc()), width = set.width,
            height = set.height, stride = set.stride, "camera opened");
        Ok(V4l2Source {
            name,
            stream: Some(stream),
            device: Some(dev),
            format: actual,
            width: set.width,
            height: set.height,
            stride: set.stride as usize,
            seq: 0,
        })
    }

    pub fn format(&self) -> (PixelFormat, u32, u32) {
        (self.format, self.width, self.height)
    }
}

impl FrameSource for V4l2Source {
    fn name(&self) -> &str {
        &self.name
    }

    fn next_frame(&mut self, timeout: Duration) -> Result<Frame, SourceError> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let stream = self
                .stream
                .as_mut()
                .ok_or_else(|| SourceError::Other("stream closed".into()))?;
            stream.set_timeout(remaining.min(Duration::from_secs(3600)));
            let (fmt, w, h, stride) = (self.format, self.width, self.height, self.stride);
            let result = guarded("VIDIOC_DQBUF", || {
                let (buf, meta) = stream.next()?;
                let broken = meta.flags.contains(BufferFlags::ERROR);
                let used = if meta.bytesused == 0 {
                    buf.len()
                } else {
                    meta.bytesused as usize
                };
                Ok((broken, unpad(buf, used, fmt, w, h, stride)))
            });
            match result {
                Ok((false, Ok(data))) => {
                    self.seq += 1;
                    return Ok(Frame {
                        width: w,
                        height: h,
                        format: fmt,
                        data,
                        seq: self.seq - 1,
                        captured: Instant::now(),
                        wall: SystemTime::now(),
                    });
                }
                // A corrupt frame (the driver flags it, or it is short) is skipped, as the
                // camera will send another within a frame period.
                Ok((true, _)) => {
                    tracing::debug!(camera = %self.name, "driver marked a frame as corrupt; skipped")
                }
                Ok((false, Err(e))) => {
                    tracing::debug!(camera = %self.name, error = %e, "short frame skipped")
                }
                Err(e) => {
                    return Err(match map_io(e, &format!("capture from {}", self.name)) {
                        SourceError::Timeout(_) => SourceError::Timeout(timeout),
                        other => other,
                    });
                }
            }
            if Instant::now() >= deadline {
                return Err(SourceError::Timeout(timeout));
            }
        }
    }
}

impl Drop for V4l2Source {
    fn drop(&mut self) {
        // v4l's Stream panics if STREAMOFF fails with anything but ENODEV (an unplug can also
        // give EIO); a dying camera must not abort the daemon.
        if let Some(stream) = self.stream.take()
            && catch_unwind(AssertUnwindSafe(move || drop(stream))).is_err()
        {
            tracing::warn!(camera = %self.name, "closing the capture stream failed; the device is probably gone");
        }
        // The device holds the last reference to the fd, and v4l panics if close() fails.
        if let Some(device) = self.device.take()
            && catch_unwind(AssertUnwindSafe(move || drop(device))).is_err()
        {
            tracing::warn!(camera = %self.name, "closing the camera failed; the device is probably gone");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_device_path_is_gone_with_advice() {
        let cfg = CaptureConfig {
            camera: CameraSelector::Path("/dev/video-does-not-exist".into()),
            ..CaptureConfig::default()
        };
        match V4l2Source::open(&cfg) {
            Err(SourceError::Gone(msg)) => assert!(msg.contains("plug the camera in"), "{msg}"),
            other => panic!("expected Gone, got {other:?}"),
        }
    }

    #[test]
    fn no_matching_camera_is_gone_and_lists_what_is_there() {
        let cfg = CaptureConfig {
            camera: CameraSelector::Match("no-such-camera-anywhere".into()),
            ..CaptureConfig::default()
        };
        match V4l2Source::open(&cfg) {
            Err(SourceError::Gone(msg)) => assert!(msg.contains("cameras present"), "{msg}"),
            other => panic!("expected Gone, got {other:?}"),
        }
    }

    #[test]
    fn a_directory_with_no_video_nodes_lists_no_cameras() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("video0"), b"not a device").unwrap();
        assert!(list_cameras_in(dir.path()).is_empty());
    }

    #[test]
    fn unplug_errors_are_gone_and_timeouts_are_timeouts() {
        assert!(matches!(
            map_io(io::Error::from_raw_os_error(19), "x"),
            SourceError::Gone(_)
        ));
        assert!(matches!(
            map_io(io::Error::from(io::ErrorKind::TimedOut), "x"),
            SourceError::Timeout(_)
        ));
        assert!(matches!(
            map_io(io::Error::from_raw_os_error(22), "x"),
            SourceError::Other(_)
        ));
    }

    /// On a machine with a real or vivid camera: `SMARTPOS_TEST_CAMERA=/dev/video0 cargo test
    /// -p smartpos-scanner -- --ignored real_camera`.
    #[test]
    #[ignore = "needs a V4L2 camera; set SMARTPOS_TEST_CAMERA"]
    fn real_camera_delivers_frames() {
        let Ok(dev) = std::env::var("SMARTPOS_TEST_CAMERA") else {
            return;
        };
        let cfg = CaptureConfig {
            camera: CameraSelector::parse(&dev),
            width: 640,
            height: 480,
            ..CaptureConfig::default()
        };
        let mut cam = V4l2Source::open(&cfg).unwrap();
        let (format, w, h) = cam.format();
        let t0 = Instant::now();
        for _ in 0..10 {
            let f = cam.next_frame(Duration::from_secs(2)).unwrap();
            let luma = f.to_luma().unwrap();
            assert_eq!((luma.width, luma.height), (w, h));
        }
        eprintln!(
            "{}: {format:?} {w}x{h}, 10 frames in {:?}",
            cam.name(),
            t0.elapsed()
        );
    }
}
