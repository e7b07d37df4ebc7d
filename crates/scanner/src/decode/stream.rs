//! Decoding a camera stream: one [`FrameDecoder`] per camera, fed every frame.
//!
//! A customer holds the phone still for a moment, so the symbol found in one frame is
//! near the same place in the next. The decoder keeps that place (a region of interest)
//! and reads it first; only when the region comes up empty does it read the whole frame.
//! Frames with nothing read rotate through extra passes (a second binariser, rqrr at two
//! scales), so a hard code gets several different looks within a few frames while each
//! frame stays inside the 30 fps budget on one core.

use std::time::{Duration, Instant};

use super::ops::{self, Mapping, Rect};
use super::quirc::{Attempt, Looks, QuircStage};
use super::{Code, Symbology, merge, zxing};
use crate::LumaImage;

/// Tuning of [`FrameDecoder`].
#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub code128: bool,
    /// rqrr on frames where zxing-cpp read no QR.
    pub rqrr: bool,
    /// Long side of the copy rqrr gets on its cheaper look.
    pub rqrr_max_side: u32,
    /// How long rqrr may take on one frame.
    pub rqrr_budget: Duration,
    /// The region of interest is the previous read's box grown by this fraction per edge.
    pub roi_margin: f32,
    /// Frames without a read after which the region of interest is forgotten.
    pub roi_ttl: u32,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            code128: true,
            rqrr: true,
            rqrr_max_side: 640,
            rqrr_budget: Duration::from_millis(20),
            roi_margin: 0.6,
            roi_ttl: 10,
        }
    }
}

/// What one frame came to.
#[derive(Debug, Clone, Default)]
pub struct FrameOutcome {
    /// Frame number within this decoder's stream, from 0.
    pub index: u64,
    pub codes: Vec<Code>,
    pub elapsed: Duration,
    /// rqrr overran its deadline on this frame (or an earlier overrun still runs).
    pub timed_out: bool,
    /// rqrr panicked on this frame.
    pub panicked: bool,
    /// The codes came from the region of interest alone.
    pub from_roi: bool,
}

/// A stateful decoder for one camera's frames.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    cfg: StreamConfig,
    quirc: QuircStage,
    roi: Option<Rect>,
    frames_since_hit: u32,
    misses_in_a_row: u64,
    index: u64,
}

impl FrameDecoder {
    pub fn new(cfg: StreamConfig) -> Self {
        FrameDecoder {
            cfg,
            ..FrameDecoder::default()
        }
    }

    /// Forget where the last code was (a new sale, another camera position).
    pub fn reset(&mut self) {
        self.roi = None;
        self.frames_since_hit = 0;
        self.misses_in_a_row = 0;
    }

    /// Decode one frame.
    pub fn decode(&mut self, img: &LumaImage) -> FrameOutcome {
        let start = Instant::now();
        let mut out = FrameOutcome {
            index: self.index,
            ..FrameOutcome::default()
        };
        self.index += 1;
        if !super::well_formed(img) {
            return out;
        }

        if let Some(roi) = self
            .roi
            .filter(|r| r.x + r.width <= img.width && r.y + r.height <= img.height)
        {
            let window = ops::crop(img, roi);
            let map = Mapping {
                scale: 1.0,
                offset: [roi.x as f32, roi.y as f32],
            };
            out.codes = zxing::read(&window, map, zxing::Pass::Default, self.cfg.code128);
            out.from_roi = !out.codes.is_empty();
        }
        if out.codes.is_empty() {
            out.codes = zxing::read(
                img,
                Mapping::IDENTITY,
                zxing::Pass::Default,
                self.cfg.code128,
            );
        }
        if !out.codes.iter().any(|c| c.symbology == Symbology::Qr) {
            self.second_look(img, &mut out);
        }

        if out.codes.is_empty() {
            self.misses_in_a_row += 1;
            self.frames_since_hit += 1;
            if self.frames_since_hit > self.cfg.roi_ttl {
                self.roi = None;
            }
        } else {
            self.misses_in_a_row = 0;
            self.frames_since_hit = 0;
            self.roi = roi_of(&out.codes, self.cfg.roi_margin, img);
        }
        out.elapsed = start.elapsed();
        out
    }

    /// Extra passes for a frame where zxing-cpp's default pass read no QR. They alternate
    /// between frames so no single frame pays for all of them.
    fn second_look(&mut self, img: &LumaImage, out: &mut FrameOutcome) {
        let odd = self.misses_in_a_row % 2 == 1;
        // rqrr starts first, on its own thread, so the zxing-cpp retry overlaps it.
        let job = self.cfg.rqrr.then(|| {
            let (small, map) = self.rqrr_input(img, odd);
            (
                Instant::now(),
                self.quirc
                    .start(small, map, if odd { Looks::LocalMean } else { Looks::Own }),
            )
        });
        if odd {
            let found = zxing::read(
                img,
                Mapping::IDENTITY,
                zxing::Pass::GlobalHistogram,
                self.cfg.code128,
            );
            merge(&mut out.codes, found);
        }
        if let Some((started, job)) = job {
            let attempt = match job {
                Ok(id) => self.quirc.wait(id, started + self.cfg.rqrr_budget),
                Err(refused) => refused,
            };
            match attempt {
                Attempt::Codes(codes) => merge(&mut out.codes, codes),
                Attempt::TimedOut | Attempt::Busy => out.timed_out = true,
                Attempt::Panicked => out.panicked = true,
            }
        }
    }

    /// What rqrr reads: the region of interest when there is one, else the whole frame;
    /// at a cheap scale with its own threshold on even frames, at up to twice that scale
    /// with the local-mean threshold on odd ones.
    fn rqrr_input(&self, img: &LumaImage, odd: bool) -> (LumaImage, Mapping) {
        let inside = |r: &Rect| r.x + r.width <= img.width && r.y + r.height <= img.height;
        let (base, base_map) = match self.roi.filter(inside) {
            Some(r) => (
                ops::crop(img, r),
                Mapping {
                    scale: 1.0,
                    offset: [r.x as f32, r.y as f32],
                },
            ),
            None => (img.clone(), Mapping::IDENTITY),
        };
        let max_side = if odd {
            self.cfg.rqrr_max_side * 2
        } else {
            self.cfg.rqrr_max_side
        };
        let k = base
            .width
            .max(base.height)
            .div_ceil(max_side.max(64))
            .max(1);
        let map = Mapping {
            scale: base_map.scale * k as f32,
            offset: base_map.offset,
        };
        (ops::downscale_int(&base, k), map)
    }
}

/// The box around every code read, grown by `margin`, in frame pixels.
fn roi_of(codes: &[Code], margin: f32, img: &LumaImage) -> Option<Rect> {
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in codes.iter().flat_map(|c| c.corners.iter()) {
        x0 = x0.min(p[0]);
        y0 = y0.min(p[1]);
        x1 = x1.max(p[0]);
        y1 = y1.max(p[1]);
    }
    let r = Rect::around(
        &[[x0, y0], [x1, y0], [x1, y1], [x0, y1]],
        margin,
        img.width,
        img.height,
    )?;
    // A region nearly as big as the frame saves nothing.
    (r.area() * 10 < u64::from(img.width) * u64::from(img.height) * 7).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::synth::{Scene, payment_frame};

    const PAY: &str = "287654321098765432";

    #[test]
    fn a_customer_holding_the_phone_still_is_read_from_the_region_of_interest() {
        let mut dec = FrameDecoder::default();
        let mut roi_reads = 0;
        for i in 0..5 {
            let (img, truth) =
                payment_frame(1280, 720, Scene::Qr, PAY, (i * 3, -i), i as u64).unwrap();
            let out = dec.decode(&img);
            assert_eq!(out.codes.len(), 1, "frame {i}");
            assert_eq!(out.codes[0].text, PAY);
            let q = truth.qr.unwrap();
            assert!(
                ops::point_in_quad(out.codes[0].centre(), &q),
                "frame {i}: corners in frame pixels"
            );
            roi_reads += usize::from(out.from_roi);
        }
        assert!(
            roi_reads >= 3,
            "later frames come from the region of interest ({roi_reads})"
        );
    }

    #[test]
    fn the_alipay_screen_gives_both_the_qr_and_the_code128() {
        let mut dec = FrameDecoder::default();
        let (img, _) = payment_frame(1280, 720, Scene::QrAndCode128, PAY, (0, 0), 7).unwrap();
        let out = dec.decode(&img);
        let mut kinds: Vec<_> = out
            .codes
            .iter()
            .map(|c| (c.symbology, c.text.as_str()))
            .collect();
        kinds.sort_by_key(|k| k.0.as_str());
        assert_eq!(kinds, vec![(Symbology::Code128, PAY), (Symbology::Qr, PAY)]);
    }

    #[test]
    fn an_empty_counter_yields_nothing_and_the_region_is_forgotten() {
        let mut dec = FrameDecoder::new(StreamConfig {
            roi_ttl: 2,
            ..StreamConfig::default()
        });
        let (img, _) = payment_frame(640, 480, Scene::Qr, PAY, (0, 0), 1).unwrap();
        assert_eq!(dec.decode(&img).codes.len(), 1);
        assert!(dec.roi.is_some());
        let (empty, _) = payment_frame(640, 480, Scene::Empty, PAY, (0, 0), 2).unwrap();
        for _ in 0..3 {
            let out = dec.decode(&empty);
            assert!(out.codes.is_empty());
            assert!(!out.panicked);
        }
        assert!(dec.roi.is_none());
    }
}
