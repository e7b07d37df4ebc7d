//! Image files to luma, and the per-file report that `posctl decode` prints.
//!
//! EXIF orientation is deliberately not applied: the pixels are decoded as stored, so
//! corner coordinates match labels made on the stored file (as BoofCV's are).

use std::path::Path;
use std::time::Duration;

use crate::LumaImage;
use crate::decode::{Code, Decoder};

/// Why an image file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImageFileError {
    #[error("cannot read {path}: {source}; check the path and its permissions")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a PNG, JPEG, PGM or WebP image this build can decode: {reason}")]
    Format { path: String, reason: String },
}

/// Load a PNG, JPEG, PGM/PPM (or WebP) file as 8-bit luma, without EXIF rotation.
/// Colour is reduced with the BT.601 weights, the same as camera frames.
pub fn load_luma(path: &Path) -> Result<LumaImage, ImageFileError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ImageFileError::Io {
        path: shown.clone(),
        source,
    })?;
    let format = image::guess_format(&bytes).map_err(|e| ImageFileError::Format {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let img = image::load_from_memory_with_format(&bytes, format).map_err(|e| {
        ImageFileError::Format {
            path: shown.clone(),
            reason: e.to_string(),
        }
    })?;
    let (width, height) = (img.width(), img.height());
    let data = if img.color().has_color() {
        img.into_rgb8()
            .pixels()
            .map(|p| bt601(p.0[0], p.0[1], p.0[2]))
            .collect()
    } else {
        img.into_luma8().into_raw()
    };
    Ok(LumaImage {
        width,
        height,
        data,
    })
}

fn bt601(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 299 + u32::from(g) * 587 + u32::from(b) * 114 + 500) / 1000) as u8
}

/// Write `img` as a binary PGM (P5), the format the benchmark feeds the decoders.
pub fn write_pgm(img: &LumaImage, path: &Path) -> std::io::Result<()> {
    let mut out = format!("P5\n{} {}\n255\n", img.width, img.height).into_bytes();
    out.extend_from_slice(&img.data);
    std::fs::write(path, out)
}

/// One line of `posctl decode` output.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileReport {
    pub file: String,
    /// Decode time only (loading the file is not counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codes: Option<Vec<Code>>,
    /// Set instead of `ms` and `codes` when the file could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl FileReport {
    /// The report as one JSON line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!("{{\"file\":{:?},\"error\":{:?}}}", self.file, e.to_string())
        })
    }
}

/// Load `path` and decode it with `decoder`: what `posctl decode FILE` prints per file.
pub fn decode_file(decoder: &mut Decoder, path: &Path) -> FileReport {
    let file = path.display().to_string();
    match load_luma(path) {
        Ok(img) => {
            let out = decoder.decode(&img);
            FileReport {
                file,
                ms: Some(ms(out.elapsed)),
                codes: Some(out.codes),
                error: None,
            }
        }
        Err(e) => FileReport {
            file,
            ms: None,
            codes: None,
            error: Some(e.to_string()),
        },
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::synth::{Scene, payment_frame};

    #[test]
    fn a_pgm_round_trips_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let img = LumaImage {
            width: 3,
            height: 2,
            data: vec![0, 1, 2, 253, 254, 255],
        };
        let path = dir.path().join("x.pgm");
        write_pgm(&img, &path).unwrap();
        assert_eq!(load_luma(&path).unwrap(), img);
    }

    #[test]
    fn a_technician_decodes_a_saved_frame_and_gets_one_json_line() {
        let dir = tempfile::tempdir().unwrap();
        let (img, _) = payment_frame(640, 480, Scene::Qr, "287654321098765432", (0, 0), 1).unwrap();
        let path = dir.path().join("frame.png");
        image::GrayImage::from_raw(img.width, img.height, img.data.clone())
            .unwrap()
            .save(&path)
            .unwrap();
        let report = decode_file(&mut Decoder::default(), &path);
        let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(v["codes"][0]["text"], "287654321098765432");
        assert_eq!(v["codes"][0]["symbology"], "qr");
        assert_eq!(v["codes"][0]["corners"].as_array().unwrap().len(), 4);
        assert!(v["ms"].as_f64().unwrap() >= 0.0);
        assert!(v.get("error").is_none());
    }

    #[test]
    fn a_file_that_is_not_an_image_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "not an image").unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&decode_file(&mut Decoder::default(), &path).to_json()).unwrap();
        assert!(v["error"].as_str().unwrap().contains("notes.txt"));
        assert!(v.get("codes").is_none());
        let missing = decode_file(&mut Decoder::default(), &dir.path().join("gone.jpg"));
        assert!(missing.error.unwrap().contains("cannot read"));
    }
}
