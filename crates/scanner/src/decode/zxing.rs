//! The primary decoder core: zxing-cpp (C++, bundled and built by the `zxing-cpp` crate).
//!
//! Options mirror the zxing-cpp Python binding's defaults (try rotate, downscale and invert,
//! local-average binariser), restricted to the symbologies a payment code comes in.

use std::panic::{AssertUnwindSafe, catch_unwind};

use zxingcpp::{BarcodeFormat, BarcodeReader, Binarizer, ImageFormat, ImageView, TextMode};

use super::ops::Mapping;
use super::{Code, Symbology};
use crate::LumaImage;

/// Which zxing-cpp pass to run; the stream decoder alternates them between frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// The Python binding's defaults.
    Default,
    /// A global-histogram binariser: catches low-contrast codes that the local-average
    /// threshold breaks up.
    GlobalHistogram,
}

fn reader(pass: Pass, code128: bool) -> BarcodeReader {
    let both = [BarcodeFormat::QRCode, BarcodeFormat::Code128];
    let reader = BarcodeReader::new()
        .try_harder(true)
        .try_invert(true)
        .try_downscale(true)
        .text_mode(TextMode::Plain);
    match pass {
        Pass::Default => reader
            .formats(if code128 { &both[..] } else { &both[..1] })
            .try_rotate(true)
            .binarizer(Binarizer::LocalAverage),
        // The retry is for QR codes the local threshold broke up (glare, bright spots).
        // QR detection does not depend on orientation, so the rotated passes (which only
        // help linear codes) are skipped: that halves the retry's cost.
        Pass::GlobalHistogram => reader
            .formats(&both[..1])
            .try_rotate(false)
            .binarizer(Binarizer::GlobalHistogram),
    }
}

/// Decode every QR (and Code128 when asked) in `img`; corners go through `map` back to
/// the caller's pixels. A zxing-cpp error (it reports only bad arguments) reads as nothing.
pub(crate) fn read(img: &LumaImage, map: Mapping, pass: Pass, code128: bool) -> Vec<Code> {
    // The Rust wrapper panics on a few "cannot happen" states of the C API; a frame that
    // reaches one reads as nothing instead of taking the scanner down.
    catch_unwind(AssertUnwindSafe(|| read_inner(img, map, pass, code128))).unwrap_or_else(|_| {
        tracing::warn!(
            width = img.width,
            height = img.height,
            "zxing-cpp wrapper panicked"
        );
        Vec::new()
    })
}

fn read_inner(img: &LumaImage, map: Mapping, pass: Pass, code128: bool) -> Vec<Code> {
    if img.width == 0 || img.height == 0 {
        return Vec::new();
    }
    let Ok(view) = ImageView::from_slice(&img.data, img.width, img.height, ImageFormat::Lum) else {
        return Vec::new();
    };
    let Ok(found) = reader(pass, code128).from(view) else {
        return Vec::new();
    };
    found
        .iter()
        .filter(|b| b.is_valid())
        .filter_map(|b| {
            let symbology = match b.format() {
                BarcodeFormat::QRCode => Symbology::Qr,
                BarcodeFormat::Code128 => Symbology::Code128,
                _ => return None,
            };
            let p = b.position();
            let corners = [p.top_left, p.top_right, p.bottom_right, p.bottom_left]
                .map(|c| map.map([c.x as f32, c.y as f32]));
            Some(Code {
                text: b.text(),
                symbology,
                corners,
                core: super::Core::Zxing,
            })
        })
        .collect()
}
