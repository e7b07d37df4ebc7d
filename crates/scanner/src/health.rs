//! Camera health: per-frame image statistics and a rolling verdict a technician can act on.
//!
//! Field reports of "can't take Huabei" often come down to the camera: no picture, a dark
//! counter, sunlight on the window, a phone held too close, or a scan window gone milky with
//! grease and scratches. Each has a signature in cheap statistics of the luma plane:
//!
//! | statistic | how | what it shows |
//! |---|---|---|
//! | `mean` | mean luma | exposure |
//! | `contrast` | standard deviation of luma | how much the scene varies; haze flattens it |
//! | `low`, `high` | 2nd and 98th luma percentile | haze lifts the blacks; a dark frame has no highlights |
//! | `clipped` | share of samples ≥ 250 | blown-out highlights |
//! | `sharpness` | variance of the 4-neighbour Laplacian | fine detail; defocus and haze remove it |
//!
//! Everything is computed on a grid subsampled to about 320 samples across (every 4th pixel
//! at 1280x720); the Laplacian at each grid point still uses its direct neighbours, so it
//! measures detail at full resolution. That costs about 60 k samples per frame.
//!
//! # Thresholds (8-bit luma), and why
//!
//! The verdict is taken on the median of each statistic over the last few frames, so a hand
//! or a phone passing through one frame changes nothing. In order of precedence:
//!
//! - **NoFrames**: no frame for `no_frames_after` (3 s; a camera at 5 fps or more delivers 15
//!   frames in that time), or none yet.
//! - **TooDark**: `mean < 40` *and* `high < 90`. Both, because a phone screen is emissive: at
//!   night a bright screen in a dark frame scans fine, and its highlights keep `high` up.
//! - **Overexposed**: `clipped > 0.35` or `mean > 215`: a third of the picture is saturated and
//!   a code in it has no modules left.
//! - **DirtyWindow**: `contrast < 20` *and* `sharpness < 25` *and* `low ≥ 40`. Haze is light
//!   scattered across the whole picture: nothing is dark any more (lifted blacks), everything
//!   is flat, and fine detail is gone. A clean scene under normal light has `contrast` well
//!   over 30 and its darkest 2% well under 40.
//! - **OutOfFocus**: `sharpness < 25` with normal contrast: the scene has large-scale contrast
//!   but no fine detail. A focused 720p camera shows a Laplacian variance in the hundreds;
//!   a code 2 cm from a fixed-focus lens, or a failed autofocus, drops it below 10-20.
//!
//! Limitation: a completely featureless, evenly lit scene (a white wall filling the view) has
//! the same statistics as haze or defocus. Mounted POS cameras see a counter or a ceiling with
//! some texture; a technician reading the verdict should look at a snapshot
//! (`posctl scanner snapshot`) before replacing a window.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::LumaImage;

/// Statistics of one frame's luma; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FrameStats {
    pub width: u32,
    pub height: u32,
    pub mean: f32,
    pub contrast: f32,
    pub sharpness: f32,
    pub low: u8,
    pub high: u8,
    pub clipped: f32,
}

/// Grid step so that about this many samples cross the longer side.
const GRID_TARGET: u32 = 320;

impl FrameStats {
    /// Compute the statistics of `img` on a subsampled grid.
    pub fn of(img: &LumaImage) -> FrameStats {
        let (w, h) = (img.width, img.height);
        let step = (w.max(h) / GRID_TARGET).max(1) as usize;
        let (wu, hu) = (w as usize, h as usize);
        let px = |x: usize, y: usize| f64::from(img.data[y * wu + x]);

        let mut hist = [0u64; 256];
        let (mut n, mut sum, mut sum_sq) = (0u64, 0f64, 0f64);
        let (mut ln, mut lsum, mut lsum_sq) = (0u64, 0f64, 0f64);
        if !img.data.is_empty() && img.data.len() >= wu * hu {
            for y in (0..hu).step_by(step) {
                for x in (0..wu).step_by(step) {
                    let v = px(x, y);
                    hist[img.data[y * wu + x] as usize] += 1;
                    n += 1;
                    sum += v;
                    sum_sq += v * v;
                    if x > 0 && y > 0 && x + 1 < wu && y + 1 < hu {
                        let lap =
                            px(x - 1, y) + px(x + 1, y) + px(x, y - 1) + px(x, y + 1) - 4.0 * v;
                        ln += 1;
                        lsum += lap;
                        lsum_sq += lap * lap;
                    }
                }
            }
        }
        let var = |n: u64, s: f64, sq: f64| {
            if n == 0 {
                0.0
            } else {
                (sq / n as f64 - (s / n as f64).powi(2)).max(0.0)
            }
        };
        let percentile = |p: f64| -> u8 {
            let target = (n as f64 * p).ceil().max(1.0) as u64;
            let mut acc = 0;
            for (v, &c) in hist.iter().enumerate() {
                acc += c;
                if acc >= target {
                    return v as u8;
                }
            }
            255
        };
        let clipped: u64 = hist[250..].iter().sum();
        FrameStats {
            width: w,
            height: h,
            mean: if n == 0 { 0.0 } else { (sum / n as f64) as f32 },
            contrast: var(n, sum, sum_sq).sqrt() as f32,
            sharpness: var(ln, lsum, lsum_sq) as f32,
            low: if n == 0 { 0 } else { percentile(0.02) },
            high: if n == 0 { 0 } else { percentile(0.98) },
            clipped: if n == 0 {
                0.0
            } else {
                clipped as f32 / n as f32
            },
        }
    }
}

/// What the camera's pictures say, with what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    NoFrames,
    TooDark,
    Overexposed,
    OutOfFocus,
    DirtyWindow,
}

impl Verdict {
    /// The stable name published on the bus.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::NoFrames => "no_frames",
            Verdict::TooDark => "too_dark",
            Verdict::Overexposed => "overexposed",
            Verdict::OutOfFocus => "out_of_focus",
            Verdict::DirtyWindow => "dirty_window",
        }
    }

    /// One line for the technician, in English.
    pub fn instruction_en(self) -> &'static str {
        match self {
            Verdict::Ok => "Camera is working normally.",
            Verdict::NoFrames => {
                "No picture from the camera: reseat its cable; if it stays dark, restart the terminal, then replace the camera."
            }
            Verdict::TooDark => {
                "Picture too dark: switch on the scan light or light the scan area better."
            }
            Verdict::Overexposed => {
                "Picture washed out: keep direct sunlight and strong lamps off the scan window, or shade it."
            }
            Verdict::OutOfFocus => {
                "Picture blurred: have the customer hold the phone 10-20 cm from the window; if still blurred, the camera needs service."
            }
            Verdict::DirtyWindow => {
                "Picture hazy: clean the scan window with a soft dry cloth; replace the window if it is scratched."
            }
        }
    }

    /// One line for the technician, in Chinese.
    pub fn instruction_zh(self) -> &'static str {
        match self {
            Verdict::Ok => "摄像头工作正常。",
            Verdict::NoFrames => {
                "摄像头无画面：请重新插紧摄像头连接线；仍无画面请重启终端，再不行请更换摄像头。"
            }
            Verdict::TooDark => "画面太暗：请打开补光灯或改善扫码区域照明。",
            Verdict::Overexposed => "画面过曝：请避免阳光直射或强光灯照射扫码窗口，或为其遮光。",
            Verdict::OutOfFocus => {
                "画面模糊：请顾客将手机置于距扫码窗口 10-20 厘米处；仍模糊则摄像头需维修。"
            }
            Verdict::DirtyWindow => "画面发雾：请用柔软干布擦拭扫码窗口；如有划痕请更换窗口。",
        }
    }
}

/// The thresholds of the module docs; change them only with a measured reason.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct HealthConfig {
    /// No frame for this long → `NoFrames`.
    pub no_frames_after_secs: f64,
    /// Frames whose statistics are combined (median) into the verdict.
    pub window_frames: usize,
    /// Time over which frames per second are counted.
    pub fps_window_secs: f64,
    /// Decode attempts over which the recent success ratio is counted.
    pub decode_window: usize,
    pub dark_mean: f32,
    pub dark_high: u8,
    pub overexposed_mean: f32,
    pub overexposed_clipped: f32,
    pub low_contrast: f32,
    pub low_sharpness: f32,
    pub haze_low: u8,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            no_frames_after_secs: 3.0,
            window_frames: 9,
            fps_window_secs: 5.0,
            decode_window: 100,
            dark_mean: 40.0,
            dark_high: 90,
            overexposed_mean: 215.0,
            overexposed_clipped: 0.35,
            low_contrast: 20.0,
            low_sharpness: 25.0,
            haze_low: 40,
        }
    }
}

impl HealthConfig {
    /// The verdict for frame statistics alone (frames are arriving).
    pub fn judge(&self, s: &FrameStats) -> Verdict {
        if s.mean < self.dark_mean && s.high < self.dark_high {
            Verdict::TooDark
        } else if s.clipped > self.overexposed_clipped || s.mean > self.overexposed_mean {
            Verdict::Overexposed
        } else if s.sharpness < self.low_sharpness
            && s.contrast < self.low_contrast
            && s.low >= self.haze_low
        {
            Verdict::DirtyWindow
        } else if s.sharpness < self.low_sharpness {
            Verdict::OutOfFocus
        } else {
            Verdict::Ok
        }
    }
}

/// What the daemon publishes (D-Bus properties, `posctl scanner status`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HealthSnapshot {
    pub verdict: Verdict,
    pub instruction_en: String,
    pub instruction_zh: String,
    pub fps: f64,
    pub frames_total: u64,
    /// Seconds since the last frame; `None` before the first.
    pub last_frame_age_secs: Option<f64>,
    pub decode_attempts: u64,
    pub decode_successes: u64,
    /// Success ratio of the last `decode_window` attempts; `None` before the first.
    pub recent_success_ratio: Option<f64>,
    /// The last frame's statistics.
    pub last: Option<FrameStats>,
    /// The medians over the window that the verdict was taken on.
    pub window: Option<FrameStats>,
}

/// Rolling camera health: feed it frames and decode results, ask it for a snapshot.
#[derive(Debug, Clone)]
pub struct HealthMonitor {
    config: HealthConfig,
    frame_times: VecDeque<Instant>,
    stats: VecDeque<FrameStats>,
    frames_total: u64,
    last_frame: Option<Instant>,
    decode_attempts: u64,
    decode_successes: u64,
    recent_decodes: VecDeque<bool>,
}

impl Default for HealthMonitor {
    fn default() -> Self {
        HealthMonitor::new(HealthConfig::default())
    }
}

impl HealthMonitor {
    pub fn new(config: HealthConfig) -> Self {
        HealthMonitor {
            config,
            frame_times: VecDeque::new(),
            stats: VecDeque::new(),
            frames_total: 0,
            last_frame: None,
            decode_attempts: 0,
            decode_successes: 0,
            recent_decodes: VecDeque::new(),
        }
    }

    /// A frame arrived at `at`; computes its statistics.
    pub fn observe_frame(&mut self, img: &LumaImage, at: Instant) -> FrameStats {
        let s = FrameStats::of(img);
        self.record_stats(s, at);
        s
    }

    /// A frame arrived at `at`, with statistics computed elsewhere.
    pub fn record_stats(&mut self, stats: FrameStats, at: Instant) {
        self.record_frame_time(at);
        self.stats.push_back(stats);
        while self.stats.len() > self.config.window_frames.max(1) {
            self.stats.pop_front();
        }
    }

    /// A frame arrived at `at` but its statistics were skipped (to save CPU): it still counts
    /// for the frame rate and `NoFrames`.
    pub fn record_frame_time(&mut self, at: Instant) {
        self.frames_total += 1;
        self.last_frame = Some(self.last_frame.map_or(at, |l| l.max(at)));
        self.frame_times.push_back(at);
        let window = Duration::from_secs_f64(self.config.fps_window_secs.max(0.1));
        while self
            .frame_times
            .front()
            .is_some_and(|&t| at.saturating_duration_since(t) > window)
        {
            self.frame_times.pop_front();
        }
    }

    /// The daemon tried to decode a frame; `success` when it found a code.
    pub fn record_decode(&mut self, success: bool) {
        self.decode_attempts += 1;
        self.decode_successes += u64::from(success);
        self.recent_decodes.push_back(success);
        while self.recent_decodes.len() > self.config.decode_window.max(1) {
            self.recent_decodes.pop_front();
        }
    }

    /// Frames per second over the fps window ending at `now`.
    pub fn fps(&self, now: Instant) -> f64 {
        let window = Duration::from_secs_f64(self.config.fps_window_secs.max(0.1));
        let recent: Vec<Instant> = self
            .frame_times
            .iter()
            .copied()
            .filter(|&t| now.saturating_duration_since(t) <= window)
            .collect();
        match (recent.first(), recent.last()) {
            (Some(&first), Some(&last)) if recent.len() >= 2 && last > first => {
                (recent.len() - 1) as f64 / (last - first).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    /// The medians of each statistic over the window.
    pub fn window_stats(&self) -> Option<FrameStats> {
        let last = *self.stats.back()?;
        let med = |f: &dyn Fn(&FrameStats) -> f32| -> f32 {
            let mut v: Vec<f32> = self.stats.iter().map(f).collect();
            v.sort_by(f32::total_cmp);
            v[v.len() / 2]
        };
        Some(FrameStats {
            width: last.width,
            height: last.height,
            mean: med(&|s| s.mean),
            contrast: med(&|s| s.contrast),
            sharpness: med(&|s| s.sharpness),
            low: med(&|s| f32::from(s.low)) as u8,
            high: med(&|s| f32::from(s.high)) as u8,
            clipped: med(&|s| s.clipped),
        })
    }

    pub fn verdict(&self, now: Instant) -> Verdict {
        let fresh = self.last_frame.is_some_and(|t| {
            now.saturating_duration_since(t)
                < Duration::from_secs_f64(self.config.no_frames_after_secs)
        });
        match self.window_stats() {
            Some(s) if fresh => self.config.judge(&s),
            _ => Verdict::NoFrames,
        }
    }

    pub fn snapshot(&self, now: Instant) -> HealthSnapshot {
        let verdict = self.verdict(now);
        let recent_ok = self.recent_decodes.iter().filter(|&&s| s).count();
        HealthSnapshot {
            verdict,
            instruction_en: verdict.instruction_en().to_string(),
            instruction_zh: verdict.instruction_zh().to_string(),
            fps: self.fps(now),
            frames_total: self.frames_total,
            last_frame_age_secs: self
                .last_frame
                .map(|t| now.saturating_duration_since(t).as_secs_f64()),
            decode_attempts: self.decode_attempts,
            decode_successes: self.decode_successes,
            recent_success_ratio: (!self.recent_decodes.is_empty())
                .then(|| recent_ok as f64 / self.recent_decodes.len() as f64),
            last: self.stats.back().copied(),
            window: self.window_stats(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u32 = 1280;
    const H: u32 = 720;

    fn image(f: impl Fn(u32, u32) -> u8) -> LumaImage {
        let mut data = Vec::with_capacity((W * H) as usize);
        for y in 0..H {
            for x in 0..W {
                data.push(f(x, y));
            }
        }
        LumaImage {
            width: W,
            height: H,
            data,
        }
    }

    /// A black-and-white checkerboard of 12 px cells: what a printed QR code looks like to
    /// the decoder, with sharp edges everywhere.
    fn checkerboard(dark: u8, light: u8) -> LumaImage {
        checkerboard_of(12, dark, light)
    }

    fn checkerboard_of(cell: u32, dark: u8, light: u8) -> LumaImage {
        image(|x, y| {
            if (x / cell + y / cell).is_multiple_of(2) {
                dark
            } else {
                light
            }
        })
    }

    /// Three passes of a box blur: close to a Gaussian of sigma ≈ radius.
    fn blurred(img: &LumaImage, radius: i64) -> LumaImage {
        let (w, h) = (img.width as i64, img.height as i64);
        let mut cur: Vec<f32> = img.data.iter().map(|&v| f32::from(v)).collect();
        for _ in 0..3 {
            for horizontal in [true, false] {
                let mut next = vec![0f32; cur.len()];
                for y in 0..h {
                    for x in 0..w {
                        let mut s = 0.0;
                        for d in -radius..=radius {
                            let (xx, yy) = if horizontal {
                                ((x + d).clamp(0, w - 1), y)
                            } else {
                                (x, (y + d).clamp(0, h - 1))
                            };
                            s += cur[(yy * w + xx) as usize];
                        }
                        next[(y * w + x) as usize] = s / (2 * radius + 1) as f32;
                    }
                }
                cur = next;
            }
        }
        LumaImage {
            width: img.width,
            height: img.height,
            data: cur.iter().map(|&v| v.round() as u8).collect(),
        }
    }

    /// Feed the same frame `n` times, 40 ms apart (25 fps), and return the monitor and the
    /// time of the last frame.
    fn monitor_seeing(img: &LumaImage, n: usize) -> (HealthMonitor, Instant) {
        let mut m = HealthMonitor::default();
        let t0 = Instant::now();
        let mut t = t0;
        for i in 0..n {
            t = t0 + Duration::from_millis(40 * i as u64);
            m.observe_frame(img, t);
        }
        (m, t)
    }

    #[test]
    fn a_sharp_code_in_good_light_is_ok() {
        let (m, t) = monitor_seeing(&checkerboard(20, 230), 10);
        let snap = m.snapshot(t);
        assert_eq!(snap.verdict, Verdict::Ok, "{snap:?}");
        assert!((snap.fps - 25.0).abs() < 0.5, "fps {}", snap.fps);
        assert_eq!(snap.frames_total, 10);
    }

    #[test]
    fn a_camera_that_never_delivered_says_no_frames() {
        let m = HealthMonitor::default();
        let snap = m.snapshot(Instant::now());
        assert_eq!(snap.verdict, Verdict::NoFrames);
        assert_eq!(snap.fps, 0.0);
        assert_eq!(snap.last_frame_age_secs, None);
        assert!(snap.instruction_zh.contains("摄像头"));
    }

    #[test]
    fn a_camera_that_stopped_three_seconds_ago_says_no_frames() {
        let (m, t) = monitor_seeing(&checkerboard(20, 230), 10);
        assert_eq!(m.verdict(t + Duration::from_secs(1)), Verdict::Ok);
        assert_eq!(m.verdict(t + Duration::from_secs(4)), Verdict::NoFrames);
        assert_eq!(m.snapshot(t + Duration::from_secs(10)).fps, 0.0);
    }

    #[test]
    fn a_dark_shop_at_night_is_too_dark() {
        let (m, t) = monitor_seeing(&checkerboard(5, 45), 10);
        assert_eq!(m.verdict(t), Verdict::TooDark, "{:?}", m.window_stats());
    }

    #[test]
    fn a_bright_phone_screen_in_a_dark_shop_is_not_too_dark() {
        // Mostly black, with a lit 300x300 screen showing a code.
        let img = image(|x, y| {
            if (400..700).contains(&x) && (200..500).contains(&y) {
                if (x / 12 + y / 12) % 2 == 0 { 10 } else { 240 }
            } else {
                8
            }
        });
        let (m, t) = monitor_seeing(&img, 10);
        assert_ne!(m.verdict(t), Verdict::TooDark, "{:?}", m.window_stats());
    }

    #[test]
    fn sunlight_on_the_window_is_overexposed() {
        let (m, t) = monitor_seeing(&checkerboard(200, 255), 10);
        assert_eq!(m.verdict(t), Verdict::Overexposed, "{:?}", m.window_stats());
    }

    #[test]
    fn a_phone_held_too_close_is_out_of_focus() {
        // The counter and the phone are big shapes, so large-scale contrast stays; the edges
        // between them are smeared over a dozen pixels.
        let img = blurred(&checkerboard_of(96, 20, 230), 4);
        let (m, t) = monitor_seeing(&img, 10);
        let s = m.window_stats().unwrap();
        assert!(s.contrast > 40.0, "large-scale contrast stays: {s:?}");
        assert_eq!(m.verdict(t), Verdict::OutOfFocus, "{s:?}");
    }

    #[test]
    fn a_greasy_scratched_window_is_a_dirty_window() {
        // Haze: the picture is blurred, and scattered light lifts the blacks and flattens it.
        let sharp = checkerboard(20, 230);
        let soft = blurred(&sharp, 3);
        let hazy = LumaImage {
            data: soft
                .data
                .iter()
                .map(|&v| (f32::from(v) * 0.15 + 150.0) as u8)
                .collect(),
            ..soft
        };
        let (m, t) = monitor_seeing(&hazy, 10);
        assert_eq!(m.verdict(t), Verdict::DirtyWindow, "{:?}", m.window_stats());
    }

    #[test]
    fn one_odd_frame_does_not_change_the_verdict() {
        let good = checkerboard(20, 230);
        let (mut m, t) = monitor_seeing(&good, 8);
        let dark = checkerboard(5, 45);
        m.observe_frame(&dark, t + Duration::from_millis(40));
        assert_eq!(m.verdict(t + Duration::from_millis(40)), Verdict::Ok);
    }

    #[test]
    fn decode_results_are_counted_in_total_and_recently() {
        let mut m = HealthMonitor::new(HealthConfig {
            decode_window: 4,
            ..HealthConfig::default()
        });
        for ok in [false, false, false, false, true, true] {
            m.record_decode(ok);
        }
        let snap = m.snapshot(Instant::now());
        assert_eq!((snap.decode_attempts, snap.decode_successes), (6, 2));
        assert_eq!(snap.recent_success_ratio, Some(0.5));
    }

    #[test]
    fn the_snapshot_serialises_with_snake_case_verdicts() {
        let (m, t) = monitor_seeing(&checkerboard(5, 45), 3);
        let json = serde_json::to_string(&m.snapshot(t)).unwrap();
        assert!(json.contains("\"verdict\":\"too_dark\""), "{json}");
        let back: HealthSnapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back.verdict, Verdict::TooDark);
    }

    #[test]
    fn every_verdict_has_both_instructions() {
        use Verdict::*;
        for v in [Ok, NoFrames, TooDark, Overexposed, OutOfFocus, DirtyWindow] {
            assert!(!v.instruction_en().is_empty() && !v.instruction_zh().is_empty());
            assert_eq!(
                serde_json::to_string(&v).unwrap(),
                format!("\"{}\"", v.as_str())
            );
        }
    }

    #[test]
    fn statistics_of_a_tiny_or_empty_image_do_not_panic() {
        let s = FrameStats::of(&LumaImage {
            width: 0,
            height: 0,
            data: vec![],
        });
        assert_eq!(s.mean, 0.0);
        let s = FrameStats::of(&LumaImage {
            width: 1,
            height: 1,
            data: vec![128],
        });
        assert_eq!((s.mean, s.sharpness, s.low, s.high), (128.0, 0.0, 128, 128));
    }

    #[test]
    fn stats_of_a_720p_frame_are_cheap() {
        let img = checkerboard(20, 230);
        let t0 = Instant::now();
        for _ in 0..20 {
            std::hint::black_box(FrameStats::of(&img));
        }
        let per_frame = t0.elapsed() / 20;
        eprintln!("FrameStats::of 1280x720: {per_frame:?} per frame");
        // Generous even for an unoptimised build on a loaded CI core.
        assert!(per_frame < Duration::from_millis(50), "{per_frame:?}");
    }
}
