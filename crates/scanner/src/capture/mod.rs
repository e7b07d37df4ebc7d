//! Camera capture: a V4L2 device as a [`FrameSource`](crate::FrameSource), and a wrapper that
//! keeps it alive through unplugs and stalls.
//!
//! - [`v4l2::V4l2Source`]: open by path or by card/bus match, negotiate format, size and
//!   rate, stream with mmap buffers.
//! - [`resilient::ResilientSource`]: reopen with capped exponential backoff when the device
//!   goes away or stops delivering, and publish what it is doing ([`CaptureStatus`]).
//!
//! The decisions (which format, which size, how to unpad rows, how long to back off) are pure
//! functions here, tested without a camera.

pub mod resilient;
pub mod v4l2;

pub use resilient::{Backoff, ResiliencePolicy, ResilientSource, StatusHandle};
pub use v4l2::{CameraInfo, V4l2Source, list_cameras};

use std::path::PathBuf;

use crate::{FrameError, PixelFormat};

/// Which camera to open.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraSelector {
    /// A device node, e.g. `/dev/video0` or a udev symlink such as `/dev/v4l/by-id/…`.
    Path(PathBuf),
    /// Case-insensitive substring of the card name (`vivid`, `USB Camera`) or the bus info
    /// (`usb-0000:00:14.0-3`), matched against every `/dev/video*` that can capture video.
    Match(String),
}

impl CameraSelector {
    /// `/…` is a path, anything else a match.
    pub fn parse(s: &str) -> Self {
        if s.starts_with('/') {
            CameraSelector::Path(PathBuf::from(s))
        } else {
            CameraSelector::Match(s.to_string())
        }
    }

    /// Whether a device with this card name and bus info is the one wanted (for `Match`).
    pub fn matches(&self, card: &str, bus: &str) -> bool {
        match self {
            CameraSelector::Path(_) => false,
            CameraSelector::Match(needle) => {
                let n = needle.to_lowercase();
                !n.is_empty()
                    && (card.to_lowercase().contains(&n) || bus.to_lowercase().contains(&n))
            }
        }
    }
}

impl std::fmt::Display for CameraSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CameraSelector::Path(p) => write!(f, "{}", p.display()),
            CameraSelector::Match(m) => write!(f, "camera matching {m:?}"),
        }
    }
}

/// How to capture.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct CaptureConfig {
    pub camera: CameraSelector,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// mmap buffers queued with the driver: enough to absorb a slow decode, few enough that a
    /// frame is never old when it is read.
    pub buffers: u32,
    /// Formats in order of preference. Luma is all the decoder needs, so formats whose luma is
    /// a plain copy come first; MJPEG costs a JPEG decode per frame and comes last.
    pub formats: Vec<PixelFormat>,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            camera: CameraSelector::Path(PathBuf::from("/dev/video0")),
            width: 1280,
            height: 720,
            fps: 15,
            buffers: 4,
            formats: vec![
                PixelFormat::Grey,
                PixelFormat::Yuyv,
                PixelFormat::Nv12,
                PixelFormat::Mjpeg,
            ],
        }
    }
}

/// The first format in `preference` that the device offers.
pub fn choose_format(offered: &[[u8; 4]], preference: &[PixelFormat]) -> Option<PixelFormat> {
    preference
        .iter()
        .copied()
        .find(|p| offered.contains(&p.fourcc()))
}

/// A frame size a device offers for a format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeOption {
    Discrete {
        width: u32,
        height: u32,
    },
    Stepwise {
        min_width: u32,
        max_width: u32,
        step_width: u32,
        min_height: u32,
        max_height: u32,
        step_height: u32,
    },
}

/// The size to ask for: the wanted size if offered; otherwise the smallest offered size that
/// covers it (more pixels than needed only cost decode time, fewer lose small codes);
/// otherwise the largest offered. `None` when nothing is offered (ask for the wanted size and
/// let the driver adjust it).
pub fn choose_size(options: &[SizeOption], want: (u32, u32)) -> Option<(u32, u32)> {
    let (ww, wh) = want;
    let candidates: Vec<(u32, u32)> = options
        .iter()
        .map(|o| match *o {
            SizeOption::Discrete { width, height } => (width, height),
            SizeOption::Stepwise {
                min_width,
                max_width,
                step_width,
                min_height,
                max_height,
                step_height,
            } => {
                let fit = |want: u32, min: u32, max: u32, step: u32| {
                    let step = step.max(1);
                    let clamped = want.clamp(min, max.max(min));
                    // Round up to the step grid, without leaving the range.
                    let up = min + (clamped - min).div_ceil(step) * step;
                    if up <= max {
                        up
                    } else {
                        min + (clamped - min) / step * step
                    }
                };
                (
                    fit(ww, min_width, max_width, step_width),
                    fit(wh, min_height, max_height, step_height),
                )
            }
        })
        .collect();
    if candidates.contains(&want) {
        return Some(want);
    }
    let area = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
    candidates
        .iter()
        .copied()
        .filter(|&(w, h)| w >= ww && h >= wh)
        .min_by_key(|&s| area(s))
        .or_else(|| candidates.iter().copied().max_by_key(|&s| area(s)))
}

/// Bytes per row of each plane of an unpadded frame, and the rows of each plane.
fn planes(format: PixelFormat, width: u32, height: u32) -> Option<Vec<(usize, usize)>> {
    let (w, h) = (width as usize, height as usize);
    Some(match format {
        PixelFormat::Grey => vec![(w, h)],
        PixelFormat::Yuyv => vec![(w * 2, h)],
        PixelFormat::Rgb24 => vec![(w * 3, h)],
        PixelFormat::Nv12 => vec![(w, h), (w, h.div_ceil(2))],
        PixelFormat::Mjpeg => return None,
    })
}

/// Copy a driver buffer into an unpadded frame. Drivers may pad each row to `stride` bytes
/// (`bytesperline`), which [`crate::Frame`] does not carry; NV12's chroma plane has the same
/// stride as its luma plane. MJPEG is copied up to `used` bytes.
pub fn unpad(
    buf: &[u8],
    used: usize,
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
) -> Result<Vec<u8>, FrameError> {
    let Some(planes) = planes(format, width, height) else {
        return Ok(buf[..used.min(buf.len())].to_vec());
    };
    let tight: usize = planes.iter().map(|(row, rows)| row * rows).sum();
    let short = |needed: usize| FrameError::ShortBuffer {
        format,
        width,
        height,
        needed,
        got: buf.len(),
    };
    let stride = stride.max(planes[0].0);
    if stride == planes[0].0 {
        return buf
            .get(..tight)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| short(tight));
    }
    let padded: usize = planes.iter().map(|&(_, rows)| stride * rows).sum();
    // The last row need not carry its padding.
    let needed = padded - (stride - planes.last().map_or(0, |p| p.0));
    if buf.len() < needed {
        return Err(short(needed));
    }
    let mut out = Vec::with_capacity(tight);
    let mut offset = 0;
    for (row, rows) in planes {
        for r in 0..rows {
            let start = offset + r * stride;
            out.extend_from_slice(&buf[start..start + row]);
        }
        offset += rows * stride;
    }
    Ok(out)
}

/// What capture is doing, as the daemon publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureState {
    /// Opening the device for the first time.
    Starting,
    /// Frames are arriving.
    Streaming,
    /// The device is open but no frame came for the stall time; it is about to be reopened.
    Stalled,
    /// The device failed (unplugged, I/O error); waiting to open it again.
    Reopening,
    /// The device is not there (no such node, no matching camera); looking again with backoff.
    Absent,
}

/// A snapshot of capture for `posctl scanner status` and the bus.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CaptureStatus {
    pub state: CaptureState,
    /// What is (or was last) opened: device path and card, or the replay folder.
    pub source: String,
    /// The latest failure, with what to do; cleared by nothing, so a technician sees the
    /// last trouble even after recovery.
    pub last_error: Option<String>,
    /// Seconds in the current state.
    pub state_secs: f64,
    pub frames: u64,
    pub reopens: u64,
    pub last_frame_age_secs: Option<f64>,
    /// Seconds until the next open attempt, while reopening.
    pub next_attempt_in_secs: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [PixelFormat; 4] = [
        PixelFormat::Grey,
        PixelFormat::Yuyv,
        PixelFormat::Nv12,
        PixelFormat::Mjpeg,
    ];

    #[test]
    fn grey_wins_when_offered() {
        assert_eq!(
            choose_format(&[*b"MJPG", *b"YUYV", *b"GREY"], &ALL),
            Some(PixelFormat::Grey)
        );
    }

    #[test]
    fn a_usb_webcam_with_yuyv_and_mjpeg_streams_yuyv() {
        assert_eq!(
            choose_format(&[*b"MJPG", *b"YUYV"], &ALL),
            Some(PixelFormat::Yuyv)
        );
    }

    #[test]
    fn nv12_before_mjpeg_and_mjpeg_as_the_last_resort() {
        assert_eq!(
            choose_format(&[*b"MJPG", *b"NV12"], &ALL),
            Some(PixelFormat::Nv12)
        );
        assert_eq!(
            choose_format(&[*b"H264", *b"MJPG"], &ALL),
            Some(PixelFormat::Mjpeg)
        );
    }

    #[test]
    fn vivid_offers_only_raw_formats_and_that_is_enough() {
        let vivid = [
            *b"YUYV", *b"UYVY", *b"YVYU", *b"VYUY", *b"NV16", *b"NV12", *b"RGB3",
        ];
        assert_eq!(choose_format(&vivid, &ALL), Some(PixelFormat::Yuyv));
        let raw_only = [PixelFormat::Grey, PixelFormat::Yuyv, PixelFormat::Nv12];
        assert_eq!(
            choose_format(&[*b"MJPG"], &raw_only),
            None,
            "MJPEG can be switched off"
        );
    }

    #[test]
    fn a_camera_with_no_usable_format_is_refused() {
        assert_eq!(choose_format(&[*b"H264", *b"UYVY"], &ALL), None);
    }

    #[test]
    fn the_wanted_size_is_taken_when_offered() {
        let opts = [
            SizeOption::Discrete {
                width: 640,
                height: 480,
            },
            SizeOption::Discrete {
                width: 1280,
                height: 720,
            },
            SizeOption::Discrete {
                width: 1920,
                height: 1080,
            },
        ];
        assert_eq!(choose_size(&opts, (1280, 720)), Some((1280, 720)));
    }

    #[test]
    fn otherwise_the_smallest_size_covering_it() {
        let opts = [
            SizeOption::Discrete {
                width: 640,
                height: 480,
            },
            SizeOption::Discrete {
                width: 2592,
                height: 1944,
            },
            SizeOption::Discrete {
                width: 1600,
                height: 1200,
            },
        ];
        assert_eq!(choose_size(&opts, (1280, 720)), Some((1600, 1200)));
    }

    #[test]
    fn an_old_vga_camera_gives_what_it_has() {
        let opts = [
            SizeOption::Discrete {
                width: 320,
                height: 240,
            },
            SizeOption::Discrete {
                width: 640,
                height: 480,
            },
        ];
        assert_eq!(choose_size(&opts, (1280, 720)), Some((640, 480)));
        assert_eq!(choose_size(&[], (1280, 720)), None);
    }

    #[test]
    fn stepwise_sizes_snap_to_the_grid() {
        let vivid = SizeOption::Stepwise {
            min_width: 16,
            max_width: 4096,
            step_width: 2,
            min_height: 16,
            max_height: 2160,
            step_height: 2,
        };
        assert_eq!(choose_size(&[vivid], (1280, 720)), Some((1280, 720)));
        let coarse = SizeOption::Stepwise {
            min_width: 160,
            max_width: 1000,
            step_width: 16,
            min_height: 120,
            max_height: 1000,
            step_height: 16,
        };
        assert_eq!(choose_size(&[coarse], (1281, 719)), Some((992, 728)));
    }

    #[test]
    fn tight_rows_are_copied_as_they_are() {
        let buf = [1, 2, 3, 4, 5, 6, 0, 0];
        assert_eq!(
            unpad(&buf, 8, PixelFormat::Grey, 3, 2, 3).unwrap(),
            vec![1, 2, 3, 4, 5, 6]
        );
    }

    #[test]
    fn padded_grey_rows_lose_their_padding() {
        // 3 pixels wide, 4 bytes per line.
        let buf = [1, 2, 3, 99, 4, 5, 6, 99];
        assert_eq!(
            unpad(&buf, 8, PixelFormat::Grey, 3, 2, 4).unwrap(),
            vec![1, 2, 3, 4, 5, 6]
        );
    }

    #[test]
    fn padded_nv12_keeps_both_planes() {
        // 2x2 luma + one UV row of 2 bytes, stride 4.
        let buf = [1, 2, 0, 0, 3, 4, 0, 0, 128, 129, 0, 0];
        assert_eq!(
            unpad(&buf, 12, PixelFormat::Nv12, 2, 2, 4).unwrap(),
            vec![1, 2, 3, 4, 128, 129]
        );
    }

    #[test]
    fn a_short_driver_buffer_is_an_error() {
        assert!(matches!(
            unpad(&[0; 10], 10, PixelFormat::Yuyv, 4, 2, 8),
            Err(FrameError::ShortBuffer { .. })
        ));
    }

    #[test]
    fn mjpeg_is_cut_at_bytesused() {
        assert_eq!(
            unpad(
                &[0xff, 0xd8, 0xff, 0xd9, 0, 0],
                4,
                PixelFormat::Mjpeg,
                9,
                9,
                0
            )
            .unwrap()
            .len(),
            4
        );
    }

    #[test]
    fn selectors_parse_paths_and_matches() {
        assert_eq!(
            CameraSelector::parse("/dev/video2"),
            CameraSelector::Path("/dev/video2".into())
        );
        let m = CameraSelector::parse("usb camera");
        assert!(m.matches("HD USB Camera", "usb-0000:00:14.0-3"));
        assert!(CameraSelector::parse("14.0-3").matches("HD USB Camera", "usb-0000:00:14.0-3"));
        assert!(!m.matches("vivid", "platform:vivid-000"));
        assert!(!CameraSelector::Match(String::new()).matches("x", "y"));
    }

    #[test]
    fn capture_config_reads_from_toml() {
        let cfg: CaptureConfig =
            toml::from_str("camera = { match = \"vivid\" }\nwidth = 640\nheight = 480\n").unwrap();
        assert_eq!(cfg.camera, CameraSelector::Match("vivid".into()));
        assert_eq!(
            (cfg.width, cfg.height, cfg.fps, cfg.buffers),
            (640, 480, 15, 4)
        );
        assert_eq!(cfg.formats[0], PixelFormat::Grey);
    }
}
