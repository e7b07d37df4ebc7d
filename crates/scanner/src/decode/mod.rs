//! QR and Code128 decoding of luma images: still photos ([`Decoder`]) and camera streams
//! ([`FrameDecoder`]).
//!
//! Two cores in a cascade. zxing-cpp reads first, with the options of its Python binding's
//! defaults (rotate, downscale and invert passes), QR and Code128. When that reads nothing,
//! zxing-cpp tries once more for QR with a global-histogram binariser (glare and bright
//! spots break up the local threshold). When there is still no QR, rqrr gets a copy
//! downscaled to a bounded size, on a worker thread with a deadline and behind
//! `catch_unwind` (see [`quirc`]), with its own threshold and then a local-mean one.
//! Results are merged and de-duplicated by text and position (the earlier core wins a
//! disagreement), and every corner is given in the caller's own pixel coordinates.
//! `BENCH.md` beside the crate has the measurements behind these choices.
//!
//! Nothing here logs a payload: a payment code is a bearer token.

pub mod ops;
pub mod quirc;
mod stream;
pub mod synth;
mod zxing;

pub use stream::{FrameDecoder, FrameOutcome, StreamConfig};

use std::time::{Duration, Instant};

use ops::Mapping;

use crate::LumaImage;

/// The symbologies a payment code is shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Symbology {
    Qr,
    Code128,
}

impl Symbology {
    pub fn as_str(self) -> &'static str {
        match self {
            Symbology::Qr => "qr",
            Symbology::Code128 => "code128",
        }
    }
}

/// Which decoder core produced a code (for benchmarks and diagnostics, not for clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Core {
    #[default]
    Zxing,
    Rqrr,
}

/// One decoded code.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Code {
    /// The payload as text (zxing-cpp "plain" text mode; rqrr's UTF-8).
    pub text: String,
    pub symbology: Symbology,
    /// Top-left, top-right, bottom-right, bottom-left of the symbol as the decoder saw it,
    /// in the input image's pixels.
    pub corners: [[f32; 2]; 4],
    #[serde(skip)]
    pub core: Core,
}

impl std::fmt::Debug for Code {
    // The payload may be a live payment code: Debug output shows only its edges.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Code")
            .field("text", &mask(&self.text))
            .field("symbology", &self.symbology)
            .field("corners", &self.corners)
            .field("core", &self.core)
            .finish()
    }
}

/// First 2 and last 4 characters, the rest starred (the one rule, from `smartpos-text`).
pub use smartpos_text::mask_code as mask;

impl Code {
    pub fn centre(&self) -> [f32; 2] {
        ops::centre(&self.corners)
    }

    /// Two reads of the same symbol: same payload, and either centre lies in the other's quad.
    fn same_symbol(&self, other: &Code) -> bool {
        self.symbology == other.symbology
            && normalise_newlines(&self.text) == normalise_newlines(&other.text)
            && (ops::point_in_quad(self.centre(), &other.corners)
                || ops::point_in_quad(other.centre(), &self.corners))
    }

    /// Another read whose centre lies in this one's quad (whatever it says).
    fn overlaps(&self, other: &Code) -> bool {
        ops::point_in_quad(other.centre(), &self.corners)
            || ops::point_in_quad(self.centre(), &other.corners)
    }
}

fn normalise_newlines(s: &str) -> String {
    s.replace("\r\n", "\n")
}

/// Tuning of [`Decoder`]. The defaults are what the benchmark in `BENCH.md` measured.
#[derive(Debug, Clone)]
pub struct DecoderConfig {
    /// Run zxing-cpp (turned off only to exercise or measure rqrr on its own).
    pub zxing: bool,
    /// Read Code128 as well as QR.
    pub code128: bool,
    /// Run rqrr on images where zxing-cpp found no QR.
    pub rqrr: bool,
    /// rqrr gets a copy box-downscaled by a whole factor until its long side is at most this.
    pub rqrr_max_side: u32,
    /// How long rqrr may take on one image before its result is given up.
    pub rqrr_budget: Duration,
    /// Whole-call budget: rqrr is not waited for past it (zxing-cpp is never interrupted).
    pub budget: Duration,
    /// When nothing was read, one more zxing-cpp pass with a global-histogram binariser.
    pub global_histogram_retry: bool,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            zxing: true,
            code128: true,
            rqrr: true,
            rqrr_max_side: 800,
            rqrr_budget: Duration::from_millis(40),
            budget: Duration::from_millis(90),
            global_histogram_retry: true,
        }
    }
}

/// What one decode call came to.
#[derive(Debug, Clone, Default)]
pub struct DecodeOutcome {
    pub codes: Vec<Code>,
    pub elapsed: Duration,
    /// rqrr did not finish within its deadline, or was skipped because an earlier run
    /// still had not.
    pub timed_out: bool,
    /// rqrr panicked on this image (the decoder carries on).
    pub panicked: bool,
    /// rqrr was consulted for this image.
    pub rqrr_ran: bool,
}

/// A still-image decoder. Keep one and reuse it: it owns the rqrr worker thread.
#[derive(Debug, Default)]
pub struct Decoder {
    cfg: DecoderConfig,
    quirc: quirc::QuircStage,
}

impl Decoder {
    pub fn new(cfg: DecoderConfig) -> Self {
        Decoder {
            cfg,
            quirc: quirc::QuircStage::default(),
        }
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// Decode every QR and Code128 in `img`.
    pub fn decode(&mut self, img: &LumaImage) -> DecodeOutcome {
        let start = Instant::now();
        let mut out = DecodeOutcome::default();
        if !well_formed(img) {
            return out;
        }
        let cfg = &self.cfg;
        if cfg.zxing {
            let found = zxing::read(img, Mapping::IDENTITY, zxing::Pass::Default, cfg.code128);
            merge(&mut out.codes, found);
        }
        // rqrr starts on its own thread as soon as the first pass has missed, so that the
        // zxing-cpp retry below runs alongside it when a second core is free.
        let job = (cfg.rqrr && !has_qr(&out.codes)).then(|| {
            out.rqrr_ran = true;
            let (small, map) = shrink_for_rqrr(img, cfg.rqrr_max_side);
            (
                Instant::now(),
                self.quirc.start(small, map, quirc::Looks::Both),
            )
        });
        if cfg.zxing && out.codes.is_empty() && cfg.global_histogram_retry {
            let found = zxing::read(
                img,
                Mapping::IDENTITY,
                zxing::Pass::GlobalHistogram,
                cfg.code128,
            );
            merge(&mut out.codes, found);
        }
        if let Some((started, job)) = job {
            let deadline = (start + cfg.budget).min(started + cfg.rqrr_budget);
            let attempt = match job {
                Ok(id) => self.quirc.wait(id, deadline),
                Err(refused) => refused,
            };
            match attempt {
                quirc::Attempt::Codes(codes) => merge(&mut out.codes, codes),
                quirc::Attempt::TimedOut | quirc::Attempt::Busy => out.timed_out = true,
                quirc::Attempt::Panicked => out.panicked = true,
            }
        }
        out.elapsed = start.elapsed();
        out
    }
}

/// An image whose buffer holds at least width × height bytes, and is not empty. Anything
/// else reads as nothing rather than risking an out-of-range index.
fn well_formed(img: &LumaImage) -> bool {
    let need = u64::from(img.width) * u64::from(img.height);
    need > 0 && img.data.len() as u64 >= need
}

fn has_qr(codes: &[Code]) -> bool {
    codes.iter().any(|c| c.symbology == Symbology::Qr)
}

/// A box-downscaled copy for rqrr (whole factor, so modules stay crisp) and how to map back.
fn shrink_for_rqrr(img: &LumaImage, max_side: u32) -> (LumaImage, Mapping) {
    let long = img.width.max(img.height);
    let k = long.div_ceil(max_side.max(64)).max(1);
    if k == 1 {
        return (img.clone(), Mapping::IDENTITY);
    }
    (
        ops::downscale_int(img, k),
        Mapping {
            scale: k as f32,
            offset: [0.0, 0.0],
        },
    )
}

/// Add `new` codes to `codes`, skipping repeats of a symbol already there and reads that
/// land on a symbol already read with a different payload (the earlier core wins).
fn merge(codes: &mut Vec<Code>, new: Vec<Code>) {
    for c in new {
        // Nested or overlapping symbols read by one core are real (a "double QR" holds a
        // small code inside a big one); a different payload on the same spot from the
        // other core is a misread.
        let clash = codes.iter().any(|k| {
            k.same_symbol(&c) || (k.core != c.core && k.symbology == c.symbology && k.overlaps(&c))
        });
        if !clash {
            codes.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str, x: f32, core: Core) -> Code {
        Code {
            text: text.into(),
            symbology: Symbology::Qr,
            corners: [[x, 0.0], [x + 10.0, 0.0], [x + 10.0, 10.0], [x, 10.0]],
            core,
        }
    }

    #[test]
    fn corners_from_the_downscaled_rqrr_pass_land_on_the_code_in_the_input() {
        let (img, truth) = synth::payment_frame(
            1280,
            720,
            synth::Scene::Qr,
            "287654321098765432",
            (150, 40),
            4,
        )
        .unwrap();
        let mut rqrr_only = Decoder::new(DecoderConfig {
            zxing: false,
            rqrr_max_side: 640,
            rqrr_budget: Duration::from_secs(5),
            budget: Duration::from_secs(5),
            ..DecoderConfig::default()
        });
        let out = rqrr_only.decode(&img);
        assert_eq!(out.codes.len(), 1, "{out:?}");
        let (got, want) = (out.codes[0].corners, truth.qr.unwrap());
        for (g, w) in got.iter().zip(want.iter()) {
            // rqrr saw a half-size copy: two input pixels per pixel it reports.
            assert!(
                (g[0] - w[0]).abs() <= 6.0 && (g[1] - w[1]).abs() <= 6.0,
                "{got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn decoders_can_move_to_the_capture_thread() {
        fn send<T: Send>() {}
        send::<Decoder>();
        send::<FrameDecoder>();
    }

    #[test]
    fn a_truncated_or_empty_buffer_reads_as_nothing() {
        let mut d = Decoder::default();
        let short = LumaImage {
            width: 640,
            height: 480,
            data: vec![0; 100],
        };
        assert!(d.decode(&short).codes.is_empty());
        let empty = LumaImage {
            width: 0,
            height: 0,
            data: vec![],
        };
        assert!(d.decode(&empty).codes.is_empty());
        let mut f = FrameDecoder::default();
        assert!(f.decode(&short).codes.is_empty());
    }

    #[test]
    fn debug_output_never_shows_a_whole_payment_code() {
        let c = code("287654321098765432", 0.0, Core::Zxing);
        let shown = format!("{c:?}");
        assert!(!shown.contains("287654321098765432"), "{shown}");
        assert!(shown.contains("28************5432"), "{shown}");
    }

    #[test]
    fn the_same_code_read_by_both_cores_is_reported_once() {
        let mut codes = vec![code("A\r\nB", 0.0, Core::Zxing)];
        merge(
            &mut codes,
            vec![
                code("A\nB", 1.0, Core::Rqrr),
                code("other", 100.0, Core::Rqrr),
            ],
        );
        assert_eq!(codes.len(), 2);
        assert_eq!(codes[0].core, Core::Zxing);
        assert_eq!(codes[1].text, "other");
    }

    #[test]
    fn a_double_qr_keeps_both_the_outer_and_the_inner_code() {
        let mut codes = Vec::new();
        merge(
            &mut codes,
            vec![
                code("outer", 0.0, Core::Zxing),
                code("inner", 2.0, Core::Zxing),
            ],
        );
        assert_eq!(codes.len(), 2);
    }

    #[test]
    fn a_conflicting_read_at_the_same_place_is_dropped() {
        let mut codes = vec![code("right", 0.0, Core::Zxing)];
        merge(&mut codes, vec![code("wrong", 2.0, Core::Rqrr)]);
        assert_eq!(codes.len(), 1);
        assert_eq!(codes[0].text, "right");
    }

    #[test]
    fn rqrr_gets_a_whole_factor_downscale_and_corners_map_back() {
        let img = LumaImage {
            width: 1280,
            height: 720,
            data: vec![0; 1280 * 720],
        };
        let (small, map) = shrink_for_rqrr(&img, 800);
        assert_eq!((small.width, small.height), (640, 360));
        assert_eq!(map.map([10.0, 20.0]), [20.0, 40.0]);
    }
}
