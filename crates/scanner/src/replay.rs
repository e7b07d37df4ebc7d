//! Replay sources: recorded frames played as a camera, for tests and the demo.
//!
//! Two kinds of folder, chosen by whether it has a `frames.toml`:
//!
//! - **Images**: every `*.png`, `*.jpg`/`*.jpeg`, `*.pgm`/`*.pnm`/`*.ppm` (and `*.webp` if the
//!   image loader has it), in file-name order. Each is loaded when it is played, so a long
//!   folder costs no memory up front; it is delivered as a `GREY` frame.
//! - **Raw frames**, exactly as a camera delivers them, so the capture-to-luma path is tested
//!   too. A manifest and one file per frame:
//!
//!   ```toml
//!   # frames.toml
//!   width = 1280
//!   height = 720
//!   format = "yuyv"   # grey | yuyv | nv12 | rgb24 | mjpeg
//!   fps = 15          # optional; the player's own setting wins
//!   ```
//!
//!   and `0000.yuyv`, `0001.yuyv`, … (extension = format; `.grey`, `.nv12`, `.rgb`, `.mjpg`),
//!   played in name order. Raw files must have exactly the size the format needs (rows
//!   without padding); MJPEG files are whole JPEGs. [`write_raw_frames`] writes such a folder.
//!
//! Frames are paced at the given rate and never delivered in a burst: if the consumer falls
//! behind, the next frame is due one period after the last delivery, as with a camera that
//! keeps its rate.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::{Frame, FrameSource, PixelFormat, SourceError, imagefile};

/// Why a replay folder cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {source}; check the replay path")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{dir} has no frames to play (images or frames.toml with NNNN.<format> files)")]
    Empty { dir: String },
    #[error("{path}: {what}; see the frames.toml format in the smartpos-scanner replay docs")]
    Manifest { path: String, what: String },
    #[error(
        "{path} has {got} bytes, but a {width}x{height} {format} frame has {needed}; re-record it"
    )]
    WrongSize {
        path: String,
        format: &'static str,
        width: u32,
        height: u32,
        needed: usize,
        got: usize,
    },
    #[error("cannot write {what}: {reason}")]
    Write { what: String, reason: String },
}

/// How to play a source.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReplayOptions {
    /// Frames per second; `None` takes the manifest's, or 10. Zero or less: as fast as asked.
    pub fps: Option<f64>,
    /// Start again after the last frame instead of ending the stream.
    pub looping: bool,
}

/// The name used for a format in `frames.toml` and as a raw file extension.
pub fn format_name(f: PixelFormat) -> &'static str {
    match f {
        PixelFormat::Grey => "grey",
        PixelFormat::Yuyv => "yuyv",
        PixelFormat::Nv12 => "nv12",
        PixelFormat::Mjpeg => "mjpeg",
        PixelFormat::Rgb24 => "rgb24",
    }
}

fn format_extension(f: PixelFormat) -> &'static str {
    match f {
        PixelFormat::Grey => "grey",
        PixelFormat::Yuyv => "yuyv",
        PixelFormat::Nv12 => "nv12",
        PixelFormat::Mjpeg => "mjpg",
        PixelFormat::Rgb24 => "rgb",
    }
}

fn parse_format(name: &str) -> Option<PixelFormat> {
    Some(match name.to_ascii_lowercase().as_str() {
        "grey" | "gray" => PixelFormat::Grey,
        "yuyv" => PixelFormat::Yuyv,
        "nv12" => PixelFormat::Nv12,
        "mjpeg" | "mjpg" => PixelFormat::Mjpeg,
        "rgb24" | "rgb" | "rgb3" => PixelFormat::Rgb24,
        _ => return None,
    })
}

/// Bytes of one unpadded raw frame; `None` for MJPEG, whose size varies.
pub fn raw_frame_size(f: PixelFormat, width: u32, height: u32) -> Option<usize> {
    let px = width as usize * height as usize;
    match f {
        PixelFormat::Grey => Some(px),
        PixelFormat::Yuyv => Some(px * 2),
        PixelFormat::Nv12 => Some(px + px / 2),
        PixelFormat::Rgb24 => Some(px * 3),
        PixelFormat::Mjpeg => None,
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Manifest {
    width: u32,
    height: u32,
    format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fps: Option<f64>,
}

/// Keeps a frame rate without bursts.
#[derive(Debug, Clone)]
struct Pacer {
    period: Option<Duration>,
    next_due: Option<Instant>,
}

impl Pacer {
    fn new(fps: f64) -> Self {
        let period = (fps.is_finite() && fps > 0.0).then(|| Duration::from_secs_f64(1.0 / fps));
        Pacer {
            period,
            next_due: None,
        }
    }

    /// Wait until the next frame is due, or fail with `Timeout` if it is not due within `timeout`.
    fn wait(&mut self, timeout: Duration) -> Result<(), SourceError> {
        let Some(period) = self.period else {
            return Ok(());
        };
        let now = Instant::now();
        let due = *self.next_due.get_or_insert(now);
        if due > now {
            let wait = due - now;
            if wait > timeout {
                thread::sleep(timeout);
                return Err(SourceError::Timeout(timeout));
            }
            thread::sleep(wait);
        }
        // On time: keep the schedule, so sleep overshoot does not drift the rate. Late by a
        // period or more: start the schedule again from now instead of catching up in a burst.
        let now = Instant::now();
        self.next_due = Some(if now < due + period {
            due + period
        } else {
            now + period
        });
        Ok(())
    }
}

enum Entries {
    Images(Vec<PathBuf>),
    Raw {
        files: Vec<PathBuf>,
        width: u32,
        height: u32,
        format: PixelFormat,
    },
}

/// A folder of images or raw frames, played as a camera.
pub struct ReplayFolder {
    name: String,
    entries: Entries,
    next: usize,
    seq: u64,
    looping: bool,
    pacer: Pacer,
}

impl std::fmt::Debug for ReplayFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayFolder")
            .field("name", &self.name)
            .field("frames", &self.len())
            .finish()
    }
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, ReplayError> {
    let io = |source| ReplayError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let path = e.map_err(io)?.path();
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn extension(p: &Path) -> String {
    p.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

impl ReplayFolder {
    pub fn open(dir: &Path, options: ReplayOptions) -> Result<Self, ReplayError> {
        let manifest_path = dir.join("frames.toml");
        let files = list_dir(dir)?;
        let (entries, manifest_fps) = if manifest_path.exists() {
            let shown = manifest_path.display().to_string();
            let text =
                std::fs::read_to_string(&manifest_path).map_err(|source| ReplayError::Io {
                    path: shown.clone(),
                    source,
                })?;
            let m: Manifest = toml::from_str(&text).map_err(|e| ReplayError::Manifest {
                path: shown.clone(),
                what: e.to_string(),
            })?;
            let format = parse_format(&m.format).ok_or_else(|| ReplayError::Manifest {
                path: shown.clone(),
                what: format!(
                    "unknown format {:?} (grey, yuyv, nv12, rgb24, mjpeg)",
                    m.format
                ),
            })?;
            if m.width == 0 || m.height == 0 {
                return Err(ReplayError::Manifest {
                    path: shown,
                    what: "width and height must be positive".into(),
                });
            }
            let ext = format_extension(format);
            let frames: Vec<PathBuf> = files.into_iter().filter(|p| extension(p) == ext).collect();
            (
                Entries::Raw {
                    files: frames,
                    width: m.width,
                    height: m.height,
                    format,
                },
                m.fps,
            )
        } else {
            const IMAGE_EXTS: &[&str] = &["png", "jpg", "jpeg", "pgm", "pnm", "ppm", "webp"];
            let images = files
                .into_iter()
                .filter(|p| IMAGE_EXTS.contains(&extension(p).as_str()))
                .collect();
            (Entries::Images(images), None)
        };
        let folder = ReplayFolder {
            name: dir.display().to_string(),
            entries,
            next: 0,
            seq: 0,
            looping: options.looping,
            pacer: Pacer::new(options.fps.or(manifest_fps).unwrap_or(10.0)),
        };
        if folder.is_empty() {
            return Err(ReplayError::Empty {
                dir: dir.display().to_string(),
            });
        }
        Ok(folder)
    }

    pub fn len(&self) -> usize {
        match &self.entries {
            Entries::Images(v) => v.len(),
            Entries::Raw { files, .. } => files.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn load(&self, index: usize) -> Result<(Vec<u8>, u32, u32, PixelFormat), String> {
        match &self.entries {
            Entries::Images(paths) => {
                let img = imagefile::load_luma(&paths[index]).map_err(|e| e.to_string())?;
                Ok((img.data, img.width, img.height, PixelFormat::Grey))
            }
            Entries::Raw {
                files,
                width,
                height,
                format,
            } => {
                let path = &files[index];
                let data = std::fs::read(path).map_err(|source| {
                    ReplayError::Io {
                        path: path.display().to_string(),
                        source,
                    }
                    .to_string()
                })?;
                if let Some(needed) = raw_frame_size(*format, *width, *height)
                    && data.len() != needed
                {
                    return Err(ReplayError::WrongSize {
                        path: path.display().to_string(),
                        format: format_name(*format),
                        width: *width,
                        height: *height,
                        needed,
                        got: data.len(),
                    }
                    .to_string());
                }
                Ok((data, *width, *height, *format))
            }
        }
    }
}

impl FrameSource for ReplayFolder {
    fn name(&self) -> &str {
        &self.name
    }

    fn next_frame(&mut self, timeout: Duration) -> Result<Frame, SourceError> {
        if self.next >= self.len() {
            if !self.looping {
                return Err(SourceError::EndOfStream);
            }
            self.next = 0;
        }
        self.pacer.wait(timeout)?;
        let index = self.next;
        self.next += 1;
        let (data, width, height, format) = self.load(index).map_err(SourceError::Other)?;
        self.seq += 1;
        Ok(Frame {
            width,
            height,
            format,
            data,
            seq: self.seq - 1,
            captured: Instant::now(),
            wall: SystemTime::now(),
        })
    }
}

/// Frames held in memory, played as a camera: for tests.
#[derive(Debug, Clone)]
pub struct VecSource {
    name: String,
    frames: Vec<Frame>,
    next: usize,
    seq: u64,
    looping: bool,
    pacer: Pacer,
}

impl VecSource {
    /// Plays `frames` at `options.fps` (`None` or ≤ 0: as fast as asked).
    pub fn new(name: impl Into<String>, frames: Vec<Frame>, options: ReplayOptions) -> Self {
        VecSource {
            name: name.into(),
            frames,
            next: 0,
            seq: 0,
            looping: options.looping,
            pacer: Pacer::new(options.fps.unwrap_or(0.0)),
        }
    }
}

impl FrameSource for VecSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn next_frame(&mut self, timeout: Duration) -> Result<Frame, SourceError> {
        if self.next >= self.frames.len() {
            if !self.looping || self.frames.is_empty() {
                return Err(SourceError::EndOfStream);
            }
            self.next = 0;
        }
        self.pacer.wait(timeout)?;
        let mut frame = self.frames[self.next].clone();
        self.next += 1;
        frame.seq = self.seq;
        self.seq += 1;
        frame.captured = Instant::now();
        frame.wall = SystemTime::now();
        Ok(frame)
    }
}

/// Write `frames` as a raw replay folder (`frames.toml` + `NNNN.<format>`), e.g. frames
/// captured from a real camera or vivid, to replay them later. All frames must share size
/// and format; raw frames must be unpadded.
pub fn write_raw_frames(dir: &Path, frames: &[Frame], fps: Option<f64>) -> Result<(), ReplayError> {
    let first = frames.first().ok_or_else(|| ReplayError::Write {
        what: dir.display().to_string(),
        reason: "no frames".into(),
    })?;
    let (width, height, format) = (first.width, first.height, first.format);
    std::fs::create_dir_all(dir).map_err(|source| ReplayError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    for (i, f) in frames.iter().enumerate() {
        let path = dir.join(format!("{i:04}.{}", format_extension(format)));
        if (f.width, f.height, f.format) != (width, height, format) {
            return Err(ReplayError::Write {
                what: path.display().to_string(),
                reason: format!(
                    "frame {i} is {}x{} {}, the first was {width}x{height} {}",
                    f.width,
                    f.height,
                    format_name(f.format),
                    format_name(format)
                ),
            });
        }
        let data = match raw_frame_size(format, width, height) {
            Some(n) if f.data.len() >= n => &f.data[..n],
            Some(n) => {
                return Err(ReplayError::WrongSize {
                    path: path.display().to_string(),
                    format: format_name(format),
                    width,
                    height,
                    needed: n,
                    got: f.data.len(),
                });
            }
            None => &f.data[..],
        };
        std::fs::write(&path, data).map_err(|source| ReplayError::Io {
            path: path.display().to_string(),
            source,
        })?;
    }
    let manifest = Manifest {
        width,
        height,
        format: format_name(format).to_string(),
        fps,
    };
    let text = toml::to_string(&manifest).map_err(|e| ReplayError::Write {
        what: "frames.toml".into(),
        reason: e.to_string(),
    })?;
    let path = dir.join("frames.toml");
    std::fs::write(&path, text).map_err(|source| ReplayError::Io {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LumaImage;

    fn grey(w: u32, h: u32, v: u8) -> LumaImage {
        LumaImage {
            width: w,
            height: h,
            data: vec![v; (w * h) as usize],
        }
    }

    fn yuyv_frame(w: u32, h: u32, luma: u8) -> Frame {
        let data = (0..w * h).flat_map(|_| [luma, 128]).collect();
        Frame {
            width: w,
            height: h,
            format: PixelFormat::Yuyv,
            data,
            seq: 0,
            captured: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    #[test]
    fn an_image_folder_plays_in_name_order_then_ends() {
        let dir = tempfile::tempdir().unwrap();
        imagefile::write_pgm(&grey(8, 4, 30), &dir.path().join("b.pgm")).unwrap();
        imagefile::write_pgm(&grey(8, 4, 10), &dir.path().join("a.pgm")).unwrap();
        image::GrayImage::from_raw(8, 4, vec![200; 32])
            .unwrap()
            .save(dir.path().join("c.png"))
            .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a frame").unwrap();
        let mut src = ReplayFolder::open(
            dir.path(),
            ReplayOptions {
                fps: Some(0.0),
                looping: false,
            },
        )
        .unwrap();
        assert_eq!(src.len(), 3);
        let lumas: Vec<u8> = (0..3)
            .map(|_| src.next_frame(Duration::from_secs(1)).unwrap().data[0])
            .collect();
        assert_eq!(lumas, vec![10, 30, 200]);
        assert!(matches!(
            src.next_frame(Duration::from_secs(1)),
            Err(SourceError::EndOfStream)
        ));
    }

    #[test]
    fn raw_yuyv_frames_round_trip_through_a_folder_and_loop() {
        let dir = tempfile::tempdir().unwrap();
        let frames = vec![yuyv_frame(4, 2, 50), yuyv_frame(4, 2, 60)];
        write_raw_frames(dir.path(), &frames, Some(30.0)).unwrap();
        assert!(dir.path().join("0001.yuyv").exists());
        let mut src = ReplayFolder::open(
            dir.path(),
            ReplayOptions {
                fps: Some(0.0),
                looping: true,
            },
        )
        .unwrap();
        let got: Vec<(u64, u8)> = (0..5)
            .map(|_| {
                let f = src.next_frame(Duration::from_secs(1)).unwrap();
                assert_eq!(f.format, PixelFormat::Yuyv);
                (f.seq, f.to_luma().unwrap().data[0])
            })
            .collect();
        assert_eq!(got, vec![(0, 50), (1, 60), (2, 50), (3, 60), (4, 50)]);
    }

    #[test]
    fn a_truncated_raw_frame_is_named_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        write_raw_frames(
            dir.path(),
            &[yuyv_frame(4, 2, 1), yuyv_frame(4, 2, 2)],
            None,
        )
        .unwrap();
        std::fs::write(dir.path().join("0000.yuyv"), [0u8; 5]).unwrap();
        let mut src = ReplayFolder::open(
            dir.path(),
            ReplayOptions {
                fps: Some(0.0),
                looping: false,
            },
        )
        .unwrap();
        let err = src
            .next_frame(Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("0000.yuyv") && err.contains("16"), "{err}");
        assert_eq!(
            src.next_frame(Duration::from_secs(1))
                .unwrap()
                .to_luma()
                .unwrap()
                .data[0],
            2
        );
    }

    #[test]
    fn a_bad_manifest_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("frames.toml"),
            "width = 4\nheight = 2\nformat = \"h264\"\n",
        )
        .unwrap();
        let err = ReplayFolder::open(dir.path(), ReplayOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("h264"), "{err}");
    }

    #[test]
    fn an_empty_folder_is_an_error_not_an_endless_wait() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            ReplayFolder::open(dir.path(), ReplayOptions::default()),
            Err(ReplayError::Empty { .. })
        ));
    }

    #[test]
    fn frames_are_paced_at_the_requested_rate() {
        let frames = (0..6).map(|i| Frame::from_luma(grey(2, 2, i), 0)).collect();
        let mut src = VecSource::new(
            "test",
            frames,
            ReplayOptions {
                fps: Some(50.0),
                looping: false,
            },
        );
        let t0 = Instant::now();
        for _ in 0..6 {
            src.next_frame(Duration::from_secs(1)).unwrap();
        }
        // Six frames at 50 fps: the first at once, then five periods of 20 ms.
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(95), "{took:?}");
        assert!(took < Duration::from_millis(400), "{took:?}");
    }

    #[test]
    fn waiting_less_than_a_frame_period_times_out() {
        let frames = vec![Frame::from_luma(grey(2, 2, 0), 0); 2];
        let mut src = VecSource::new(
            "slow",
            frames,
            ReplayOptions {
                fps: Some(1.0),
                looping: false,
            },
        );
        src.next_frame(Duration::from_millis(10)).unwrap();
        assert!(matches!(
            src.next_frame(Duration::from_millis(10)),
            Err(SourceError::Timeout(_))
        ));
    }

    #[test]
    fn a_slow_consumer_gets_no_burst() {
        let frames = vec![Frame::from_luma(grey(2, 2, 0), 0); 4];
        let mut src = VecSource::new(
            "t",
            frames,
            ReplayOptions {
                fps: Some(50.0),
                looping: false,
            },
        );
        src.next_frame(Duration::from_secs(1)).unwrap();
        thread::sleep(Duration::from_millis(100));
        src.next_frame(Duration::from_secs(1)).unwrap();
        let t = Instant::now();
        src.next_frame(Duration::from_secs(1)).unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(15),
            "the third frame waits its period"
        );
    }

    #[test]
    fn write_refuses_mixed_frames() {
        let dir = tempfile::tempdir().unwrap();
        let frames = vec![yuyv_frame(4, 2, 0), Frame::from_luma(grey(4, 2, 0), 1)];
        assert!(write_raw_frames(dir.path(), &frames, None).is_err());
    }
}
