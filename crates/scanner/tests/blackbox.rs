//! The zxing-cpp blackbox photos: payloads must be read exactly, and nothing may be read
//! where there is no barcode.

mod common;

use std::time::Duration;

use smartpos_scanner::decode::{Decoder, DecoderConfig, Symbology};

use common::{expected_text, images_in, load, qr_data};

/// Read every labelled image of the sets starting with `prefix`; returns (read, total).
fn read_set(prefix: &str, symbology: Symbology) -> (usize, usize) {
    let root = qr_data().join("zxing-cpp-blackbox");
    let mut decoder = Decoder::default();
    let (mut read, mut total) = (0, 0);
    let mut sets: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    sets.sort();
    assert!(
        !sets.is_empty(),
        "no {prefix}* folders in {}",
        root.display()
    );
    for set in sets {
        for image in images_in(&set) {
            let Some(want) = expected_text(&image) else {
                continue;
            };
            total += 1;
            let out = decoder.decode(&load(&image));
            let ours: Vec<_> = out
                .codes
                .iter()
                .filter(|c| c.symbology == symbology)
                .collect();
            if ours.is_empty() {
                continue;
            }
            // A misread payment code charges the wrong customer: anything read must be right.
            assert!(
                ours.iter().any(|c| c.text.replace("\r\n", "\n") == want),
                "{}: read {} code(s), none with the printed payload",
                image.display(),
                ours.len()
            );
            read += 1;
        }
    }
    (read, total)
}

#[test]
fn every_qr_code_read_from_a_photo_says_exactly_what_was_printed() {
    let (read, total) = read_set("qrcode-", Symbology::Qr);
    assert_eq!(total, 137);
    // zxing-cpp alone reads 125 of these; the cascade must not fall far below that.
    assert!(read >= 120, "read only {read} of {total} QR photos");
}

#[test]
fn every_code128_read_from_a_photo_says_exactly_what_was_printed() {
    let (read, total) = read_set("code128-", Symbology::Code128);
    assert_eq!(total, 22);
    assert_eq!(read, total, "every Code128 photo is read");
}

#[test]
fn photos_without_any_barcode_read_as_nothing() {
    let root = qr_data().join("zxing-cpp-blackbox");
    let mut decoder = Decoder::default();
    let mut seen = 0;
    for set in ["falsepositives-1", "falsepositives-2"] {
        for image in images_in(&root.join(set)) {
            seen += 1;
            let out = decoder.decode(&load(&image));
            assert!(
                out.codes.is_empty(),
                "{}: read {:?} where there is no barcode",
                image.display(),
                out.codes
            );
        }
    }
    assert_eq!(seen, 46);
}

#[test]
fn a_photo_that_makes_rqrr_panic_costs_one_empty_result_not_the_daemon() {
    let image = qr_data().join("zxing-cpp-blackbox/qrcode-6/7.png");
    let img = load(&image);
    // Plain rqrr really does panic on this photo.
    let plain = std::panic::catch_unwind(|| smartpos_scanner::decode::quirc::scan_unguarded(&img));
    assert!(
        plain.is_err(),
        "rqrr no longer panics on {}; pick another photo",
        image.display()
    );

    // Generous time: this is about surviving the panic, and tests share the CPU.
    let mut rqrr_only = Decoder::new(DecoderConfig {
        zxing: false,
        rqrr_max_side: 4096,
        rqrr_budget: Duration::from_secs(5),
        budget: Duration::from_secs(5),
        ..DecoderConfig::default()
    });
    let out = rqrr_only.decode(&img);
    assert!(out.panicked && out.codes.is_empty());
    // The same decoder keeps working afterwards.
    let (frame, _) = smartpos_scanner::decode::synth::payment_frame(
        640,
        480,
        smartpos_scanner::decode::synth::Scene::Qr,
        "287654321098765432",
        (0, 0),
        3,
    )
    .unwrap();
    let after = rqrr_only.decode(&frame);
    assert_eq!(after.codes.len(), 1, "{after:?}");
    assert!(!after.panicked);

    // And the full cascade reads the photo (zxing-cpp gets it; rqrr is never asked).
    let full = Decoder::default().decode(&img);
    assert_eq!(full.codes.len(), 1);
    assert_eq!(
        Some(full.codes[0].text.replace("\r\n", "\n")),
        common::expected_text(&image)
    );
}
