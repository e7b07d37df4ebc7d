//! Synthetic payment frames (a phone screen showing a payment QR, optionally with its
//! Code128 above it, as Alipay and WeChat Pay show it) for tests and the benchmark.
//! Symbols are encoded by zxing-cpp's writer; the scene is painted here.

use zxingcpp::{BarcodeFormat, create, write};

use crate::LumaImage;

/// What a synthetic frame shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scene {
    /// One payment QR, dark on light.
    Qr,
    /// The QR with a Code128 of the same payload above it.
    QrAndCode128,
    /// Only the Code128.
    Code128,
    /// A light-on-dark QR (a phone in dark mode).
    InvertedQr,
    /// Background only: what the camera sees most of the day.
    Empty,
}

/// Why a frame could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// zxing-cpp's writer refused the payload (too long, or not encodable in Code128).
    #[error("cannot encode the payload as {format}: {reason}; use a shorter ASCII payload")]
    Encode {
        format: &'static str,
        reason: String,
    },
}

/// Where the symbols ended up, in frame pixels (top-left, top-right, bottom-right, bottom-left).
#[derive(Debug, Clone, Default)]
pub struct Truth {
    pub qr: Option<[[f32; 2]; 4]>,
    pub code128: Option<[[f32; 2]; 4]>,
}

/// A 1-pixel-per-module matrix (true = dark) from zxing-cpp's writer.
fn modules(
    format: BarcodeFormat,
    name: &'static str,
    payload: &str,
) -> Result<(usize, usize, Vec<bool>), SynthError> {
    let err = |e: zxingcpp::Error| SynthError::Encode {
        format: name,
        reason: e.to_string(),
    };
    let barcode = create(format).from_str(payload).map_err(err)?;
    let img = barcode
        .to_image_with(&write().scale(1).add_quiet_zones(false))
        .map_err(err)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    Ok((w, h, img.data().iter().map(|&p| p < 128).collect()))
}

/// Small deterministic noise source (xorshift), so frames are reproducible.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> i32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        // Roughly Gaussian with σ ≈ 3: sum of four uniforms in −3..=3.
        (0..4)
            .map(|i| ((self.0 >> (i * 8)) % 7) as i32 - 3)
            .sum::<i32>()
            / 2
    }
}

/// Paint a `width` × `height` frame showing `scene` for `payload`, shifted by `shift`
/// pixels (so consecutive frames of a stream differ), with noise seeded by `seed`.
pub fn payment_frame(
    width: u32,
    height: u32,
    scene: Scene,
    payload: &str,
    shift: (i32, i32),
    seed: u64,
) -> Result<(LumaImage, Truth), SynthError> {
    let (w, h) = (width as usize, height as usize);
    // A grey gradient, like a counter under a lamp.
    let mut px: Vec<f32> = (0..h)
        .flat_map(|y| {
            (0..w).map(move |x| 120.0 + 60.0 * (x as f32 / w as f32) - 30.0 * (y as f32 / h as f32))
        })
        .collect();
    let mut truth = Truth::default();
    // Module sizes of a phone held at a usual distance: 8 px at 720p, 5 px at 480p.
    let module = (height / 90).max(2) as usize;
    let (dark, light) = (35.0, 215.0);
    let (cx, cy) = (w as i32 / 2 + shift.0, h as i32 / 2 + shift.1);

    let mut paint = |x0: i32,
                     y0: i32,
                     cols: usize,
                     rows: usize,
                     mw: usize,
                     mh: usize,
                     quiet: usize,
                     bit: &dyn Fn(usize, usize) -> bool,
                     inv: bool|
     -> [[f32; 2]; 4] {
        let (fg, bg) = if inv { (light, dark) } else { (dark, light) };
        let (pw, ph) = (cols * mw + 2 * quiet * mw, rows * mh + 2 * quiet * mw);
        for yy in 0..ph {
            for xx in 0..pw {
                let (x, y) = (x0 + xx as i32, y0 + yy as i32);
                if x < 0 || y < 0 || x as usize >= w || y as usize >= h {
                    continue;
                }
                let (mx, my) = (
                    xx as isize / mw as isize - quiet as isize,
                    (yy as isize - (quiet * mw) as isize) / mh as isize,
                );
                let on = (yy >= quiet * mw)
                    && mx >= 0
                    && my >= 0
                    && (mx as usize) < cols
                    && (my as usize) < rows
                    && bit(mx as usize, my as usize);
                px[y as usize * w + x as usize] = if on { fg } else { bg };
            }
        }
        let (sx, sy) = (
            (x0 + (quiet * mw) as i32) as f32,
            (y0 + (quiet * mw) as i32) as f32,
        );
        let (ex, ey) = (sx + (cols * mw) as f32, sy + (rows * mh) as f32);
        [[sx, sy], [ex, sy], [ex, ey], [sx, ey]]
    };

    if matches!(scene, Scene::Qr | Scene::QrAndCode128 | Scene::InvertedQr) {
        let (qw, qh, bits) = modules(BarcodeFormat::QRCode, "QR", payload)?;
        let side = (qw + 8) * module;
        let top = if scene == Scene::QrAndCode128 {
            cy - side as i32 / 2 + side as i32 / 4
        } else {
            cy - side as i32 / 2
        };
        let quad = paint(
            cx - side as i32 / 2,
            top,
            qw,
            qh,
            module,
            module,
            4,
            &|x, y| bits[y * qw + x],
            scene == Scene::InvertedQr,
        );
        truth.qr = Some(quad);
    }
    if matches!(scene, Scene::QrAndCode128 | Scene::Code128) {
        let (bw, _bh, bits) = modules(BarcodeFormat::Code128, "Code128", payload)?;
        let mw = (module * 3 / 8).max(2);
        let bar_h = module * 10;
        let pw = (bw + 20) * mw;
        let top = if scene == Scene::QrAndCode128 {
            let qr_top = truth
                .qr
                .map(|q| q[0][1] as i32 - 4 * module as i32)
                .unwrap_or(cy);
            qr_top - bar_h as i32 - 10 * mw as i32 - module as i32
        } else {
            cy - bar_h as i32 / 2
        };
        let quad = paint(
            cx - pw as i32 / 2,
            top,
            bw,
            1,
            mw,
            bar_h,
            10,
            &|x, _| bits[x],
            false,
        );
        truth.code128 = Some(quad);
    }

    let mut noise = Noise(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let data = px
        .iter()
        .map(|&v| (v + noise.next() as f32).round().clamp(0.0, 255.0) as u8)
        .collect();
    Ok((
        LumaImage {
            width,
            height,
            data,
        },
        truth,
    ))
}
