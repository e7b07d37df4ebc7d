//! BoofCV photos of payment-style QR codes on phone and monitor screens, replayed as a
//! 720p camera stream.

mod common;

use std::time::Duration;

use smartpos_scanner::LumaImage;
use smartpos_scanner::decode::ops::{centre, fit_long_side, letterbox, point_in_quad};
use smartpos_scanner::decode::{Decoder, FrameDecoder};

use common::{boofcv_labels, images_in, load, qr_data};

/// The photo as a 1280x720 camera frame: scaled to fit, centred on grey, shifted by
/// `shake` pixels; returns the frame and the labels in frame pixels.
fn as_frame(
    photo: &LumaImage,
    labels: &[[[f32; 2]; 4]],
    shake: i32,
) -> (LumaImage, Vec<[[f32; 2]; 4]>) {
    let (frame, scale, [ox, oy]) = letterbox(photo, 1280, 720, (shake, shake / 2));
    let labels = labels
        .iter()
        .map(|q| q.map(|[x, y]| [x * scale + ox, y * scale + oy]))
        .collect();
    (frame, labels)
}

#[test]
fn a_code_on_a_phone_or_monitor_screen_is_read_within_three_frames() {
    let dir = qr_data().join("boofcv-qrcodes-v3/monitor");
    let photos = images_in(&dir);
    assert!(
        photos.len() >= 5,
        "expected the monitor photos in {}",
        dir.display()
    );
    let mut camera = FrameDecoder::default();
    let mut slowest = Duration::ZERO;
    for photo_path in &photos {
        let photo = load(photo_path);
        let labels = boofcv_labels(&photo_path.with_extension("txt"));
        camera.reset(); // a new customer steps up
        let mut read_at = None;
        for frame_no in 0..3 {
            let (frame, quads) = as_frame(&photo, &labels, frame_no * 2);
            let out = camera.decode(&frame);
            slowest = slowest.max(out.elapsed);
            assert!(!out.panicked, "{}: rqrr panicked", photo_path.display());
            let on_label = out.codes.iter().any(|c| {
                quads
                    .iter()
                    .any(|q| point_in_quad(c.centre(), q) || point_in_quad(centre(q), &c.corners))
            });
            if on_label {
                read_at = Some(frame_no);
                break;
            }
        }
        assert!(
            read_at.is_some(),
            "{}: the screen's code was not read within 3 frames",
            photo_path.display()
        );
    }
    // A hang check, not the performance budget (that is BENCH.md, in release): even an
    // unoptimised test build on a busy machine stays far below this.
    assert!(
        slowest < Duration::from_millis(750),
        "a frame took {slowest:?}"
    );
}

#[test]
fn still_photos_of_screens_are_read_and_located_at_1280_px() {
    let dir = qr_data().join("boofcv-qrcodes-v3/monitor");
    let mut decoder = Decoder::default();
    let (mut hits, mut labels_total) = (0, 0);
    for photo_path in images_in(&dir) {
        let full = load(&photo_path);
        let photo = fit_long_side(&full, 1280);
        let s = photo.width as f32 / full.width as f32;
        let labels: Vec<_> = boofcv_labels(&photo_path.with_extension("txt"))
            .iter()
            .map(|q| q.map(|[x, y]| [x * s, y * s]))
            .collect();
        labels_total += labels.len();
        let out = decoder.decode(&photo);
        hits += labels
            .iter()
            .filter(|q| out.codes.iter().any(|c| point_in_quad(c.centre(), q)))
            .count();
    }
    assert_eq!(
        hits, labels_total,
        "every labelled screen code is read where it is"
    );
}

#[test]
fn a_phone_photo_tagged_as_turned_is_read_as_stored_so_labels_line_up() {
    // This JPEG carries EXIF orientation 6 ("rotate 90°"); BoofCV labelled the stored pixels.
    let path = qr_data().join("boofcv-qrcodes-v3/blurred/image009.jpg");
    let full = load(&path);
    assert_eq!(
        (full.width, full.height),
        (4032, 3024),
        "EXIF rotation must not be applied"
    );
    let photo = fit_long_side(&full, 1280);
    let s = photo.width as f32 / full.width as f32;
    let labels: Vec<_> = boofcv_labels(&path.with_extension("txt"))
        .iter()
        .map(|q| q.map(|[x, y]| [x * s, y * s]))
        .collect();
    let out = Decoder::default().decode(&photo);
    assert!(
        out.codes
            .iter()
            .any(|c| labels.iter().any(|q| point_in_quad(c.centre(), q))),
        "the code is read where the label says"
    );
}
