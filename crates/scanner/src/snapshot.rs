//! Snapshots for technicians: the camera's picture with the codes it found outlined
//! (`posctl scanner snapshot FILE.png`).
//!
//! The outline is drawn twice, black and then white inside it, so it shows on any background;
//! the first corner (the decoder's top-left of the code) gets a filled square so a mirrored or
//! rotated mounting is visible at a glance.

use std::path::Path;

use crate::LumaImage;

/// Four corners of a detected code, in pixel coordinates, in the decoder's order
/// (the same as `decode::Code::corners`).
pub type Quad = [[f32; 2]; 4];

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("the frame is {width}x{height} but has {len} bytes; it cannot be saved")]
    BadImage { width: u32, height: u32, len: usize },
    #[error(
        "cannot write the snapshot {path}: {reason}; check that the directory exists and is writable"
    )]
    Write { path: String, reason: String },
}

/// A copy of `img` with each quad outlined.
pub fn draw_outlines(img: &LumaImage, quads: &[Quad]) -> LumaImage {
    let mut out = img.clone();
    for q in quads {
        for (radius, value) in [(2, 0u8), (1, 255u8)] {
            for i in 0..4 {
                line(&mut out, q[i], q[(i + 1) % 4], radius, value);
            }
        }
        dot(&mut out, q[0], 4, 0);
        dot(&mut out, q[0], 3, 255);
    }
    out
}

/// `img` with the quads outlined, as PNG bytes (for a bus method that returns the picture).
pub fn encode_png(img: &LumaImage, quads: &[Quad]) -> Result<Vec<u8>, SnapshotError> {
    let drawn = draw_outlines(img, quads);
    let bad = || SnapshotError::BadImage {
        width: img.width,
        height: img.height,
        len: img.data.len(),
    };
    let buf = image::GrayImage::from_raw(drawn.width, drawn.height, drawn.data).ok_or_else(bad)?;
    let mut out = std::io::Cursor::new(Vec::new());
    buf.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| SnapshotError::Write {
            path: "(memory)".into(),
            reason: e.to_string(),
        })?;
    Ok(out.into_inner())
}

/// Write `img` with the quads outlined to `path` as PNG. The file appears whole or not at
/// all (written beside it, then renamed), so a viewer never opens half a picture.
pub fn write_snapshot_png(
    path: &Path,
    img: &LumaImage,
    quads: &[Quad],
) -> Result<(), SnapshotError> {
    let png = encode_png(img, quads)?;
    let write_err = |e: std::io::Error| SnapshotError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut tmp_name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    tmp_name.push(".part");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, png).map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        write_err(e)
    })
}

fn plot(img: &mut LumaImage, x: i64, y: i64, value: u8) {
    if x >= 0 && y >= 0 && (x as u64) < u64::from(img.width) && (y as u64) < u64::from(img.height) {
        let i = y as usize * img.width as usize + x as usize;
        if let Some(p) = img.data.get_mut(i) {
            *p = value;
        }
    }
}

fn dot(img: &mut LumaImage, c: [f32; 2], radius: i64, value: u8) {
    let (cx, cy) = (c[0].round() as i64, c[1].round() as i64);
    for dy in -radius..=radius {
        for dx in -radius..=radius {
            plot(img, cx + dx, cy + dy, value);
        }
    }
}

fn line(img: &mut LumaImage, a: [f32; 2], b: [f32; 2], radius: i64, value: u8) {
    if !(a.iter().chain(b.iter()).all(|v| v.is_finite())) {
        return;
    }
    // Clamp far-away coordinates so a wild corner cannot make this loop run for ever.
    let lim = 4.0 * (img.width.max(img.height) as f32 + 16.0);
    let (ax, ay) = (a[0].clamp(-lim, lim), a[1].clamp(-lim, lim));
    let (bx, by) = (b[0].clamp(-lim, lim), b[1].clamp(-lim, lim));
    let steps = (bx - ax).abs().max((by - ay).abs()).ceil().max(1.0) as i64;
    for s in 0..=steps {
        let t = s as f32 / steps as f32;
        dot(img, [ax + (bx - ax) * t, ay + (by - ay) * t], radius, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(w: u32, h: u32, v: u8) -> LumaImage {
        LumaImage {
            width: w,
            height: h,
            data: vec![v; (w * h) as usize],
        }
    }

    #[test]
    fn the_outline_is_drawn_on_a_copy_along_the_corners() {
        let img = grey(100, 80, 128);
        let quad = [[20.0, 20.0], [70.0, 20.0], [70.0, 60.0], [20.0, 60.0]];
        let out = draw_outlines(&img, &[quad]);
        assert!(
            img.data.iter().all(|&v| v == 128),
            "the original is untouched"
        );
        assert_eq!(out.get(45, 20), 255, "white core on the top edge");
        assert_eq!(out.get(45, 22), 0, "black rim beside it");
        assert_eq!(out.get(70, 40), 255, "right edge");
        assert_eq!(out.get(45, 40), 128, "inside the code is untouched");
        assert_eq!(out.get(5, 5), 128, "outside too");
    }

    #[test]
    fn corners_outside_the_picture_are_clipped_not_a_panic() {
        let img = grey(10, 10, 0);
        let quad = [[-50.0, -50.0], [1e9, 5.0], [5.0, f32::NAN], [5.0, 5.0]];
        let out = draw_outlines(&img, &[quad]);
        assert_eq!(out.data.len(), 100);
    }

    #[test]
    fn a_snapshot_is_a_png_that_reads_back_with_the_outline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.png");
        let img = grey(64, 48, 100);
        write_snapshot_png(
            &path,
            &img,
            &[[[10.0, 10.0], [50.0, 10.0], [50.0, 40.0], [10.0, 40.0]]],
        )
        .unwrap();
        let back = image::open(&path).unwrap().into_luma8();
        assert_eq!(back.dimensions(), (64, 48));
        assert_eq!(back.get_pixel(30, 10).0[0], 255);
        assert_eq!(back.get_pixel(30, 25).0[0], 100);
        assert!(!dir.path().join("snap.png.part").exists());
    }

    #[test]
    fn a_missing_directory_is_reported_with_what_to_check() {
        let err = write_snapshot_png(Path::new("/nonexistent-dir/snap.png"), &grey(4, 4, 0), &[])
            .unwrap_err();
        assert!(err.to_string().contains("writable"), "{err}");
    }
}
