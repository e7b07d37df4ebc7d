//! Shared helpers for the dataset tests: where the images are, and their labels.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use smartpos_scanner::LumaImage;
use smartpos_scanner::imagefile::load_luma;

/// The `qr-data` folder: `$SMARTPOS_QR_DATA`, else `../shared/qr-data` beside the
/// workspace root. A missing folder fails the test: these tests must not pass by reading
/// nothing.
pub fn qr_data() -> PathBuf {
    let dir = match std::env::var_os("SMARTPOS_QR_DATA") {
        Some(d) => PathBuf::from(d),
        None => {
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            let manifest = manifest
                .canonicalize()
                .unwrap_or_else(|_| manifest.to_path_buf());
            manifest.join("../../../shared/qr-data")
        }
    };
    assert!(
        dir.join("zxing-cpp-blackbox").is_dir() && dir.join("boofcv-qrcodes-v3").is_dir(),
        "the QR test images are not at {}: fetch them with tools/fetch-qr-data.sh (see \
         docs/test-data.md), or set SMARTPOS_QR_DATA to the folder holding \
         zxing-cpp-blackbox/ and boofcv-qrcodes-v3/",
        dir.display()
    );
    dir
}

/// Image files in `dir`, sorted by name.
pub fn images_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase)
                    .as_deref(),
                Some("png" | "jpg" | "jpeg" | "webp" | "pgm")
            )
        })
        .collect();
    v.sort();
    v
}

pub fn load(path: &Path) -> LumaImage {
    load_luma(path).unwrap_or_else(|e| panic!("{e}"))
}

/// BoofCV corner labels: a `SETS` file of 8 numbers per line, or 4 lines of `x y`.
pub fn boofcv_labels(path: &Path) -> Vec<[[f32; 2]; 4]> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let num = |s: &str| {
        s.parse::<f32>()
            .unwrap_or_else(|e| panic!("{}: {s:?}: {e}", path.display()))
    };
    let quad = |v: &[f32]| [[v[0], v[1]], [v[2], v[3]], [v[4], v[5]], [v[6], v[7]]];
    if rows.first().is_some_and(|r| r[0] == "SETS") {
        rows[1..]
            .iter()
            .filter(|r| r.len() >= 8)
            .map(|r| quad(&r[..8].iter().map(|s| num(s)).collect::<Vec<_>>()))
            .collect()
    } else {
        let pts: Vec<f32> = rows
            .iter()
            .filter(|r| r.len() >= 2)
            .flat_map(|r| [num(r[0]), num(r[1])])
            .collect();
        pts.chunks_exact(8).map(quad).collect()
    }
}

/// Expected payload of a blackbox image, line endings normalised.
pub fn expected_text(image: &Path) -> Option<String> {
    std::fs::read_to_string(image.with_extension("txt"))
        .ok()
        .map(|s| s.replace("\r\n", "\n"))
}
