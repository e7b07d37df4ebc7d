//! The capture side end to end, with real parts and no hardware: frames recorded from a
//! camera replayed through the resilient source, decoded, judged for health and outlined in
//! a technician's snapshot; and a keyboard-wedge scanner's recorded keystrokes read as a code.

use std::time::{Duration, Instant, SystemTime};

use smartpos_scanner::capture::{CaptureState, ResiliencePolicy, ResilientSource};
use smartpos_scanner::decode::synth::{Scene, payment_frame};
use smartpos_scanner::decode::{Decoder, DecoderConfig};
use smartpos_scanner::health::{HealthMonitor, Verdict};
use smartpos_scanner::hid::{
    CodeSource, EndedBy, RecordedKeySource, WedgeConfig, WedgeReader, record_typed_code,
};
use smartpos_scanner::replay::{ReplayFolder, ReplayOptions, write_raw_frames};
use smartpos_scanner::snapshot::write_snapshot_png;
use smartpos_scanner::{Frame, FrameSource, LumaImage, PixelFormat, SourceError};

const ALIPAY_CODE: &str = "286912345678901234";

/// What a YUYV webcam delivers for this picture (neutral chroma).
fn as_yuyv(img: &LumaImage) -> Frame {
    Frame {
        width: img.width,
        height: img.height,
        format: PixelFormat::Yuyv,
        data: img.data.iter().flat_map(|&y| [y, 128]).collect(),
        seq: 0,
        captured: Instant::now(),
        wall: SystemTime::now(),
    }
}

#[test]
fn a_customer_holds_up_a_payment_code_and_the_technician_gets_a_snapshot() {
    // The terminal's webcam recorded 6 frames of a phone showing an Alipay code.
    let dir = tempfile::tempdir().unwrap();
    let frames: Vec<Frame> = (0..6)
        .map(|i| {
            as_yuyv(
                &payment_frame(640, 480, Scene::Qr, ALIPAY_CODE, (i * 3, -i * 2), i as u64)
                    .unwrap()
                    .0,
            )
        })
        .collect();
    write_raw_frames(&dir.path().join("scan"), &frames, Some(30.0)).unwrap();

    // The daemon plays them as its camera, through the same wrapper it uses for V4L2.
    let replay_dir = dir.path().join("scan");
    let mut camera = ResilientSource::new(
        "replay",
        move || {
            ReplayFolder::open(&replay_dir, ReplayOptions::default())
                .map_err(|e| SourceError::Other(e.to_string()))
        },
        &ResiliencePolicy::default(),
    );
    let status = camera.status_handle();
    let mut decoder = Decoder::new(DecoderConfig::default());
    let mut health = HealthMonitor::default();
    let mut last = None;
    loop {
        match camera.next_frame(Duration::from_secs(2)) {
            Ok(frame) => {
                let luma = frame.to_luma().unwrap();
                health.observe_frame(&luma, frame.captured);
                let outcome = decoder.decode(&luma);
                health.record_decode(!outcome.codes.is_empty());
                last = Some((luma, outcome.codes));
            }
            Err(SourceError::EndOfStream) => break,
            Err(e) => panic!("replay failed: {e}"),
        }
    }

    assert_eq!(status.status().state, CaptureState::Streaming);
    assert_eq!(status.status().frames, 6);
    let snap = health.snapshot(Instant::now());
    assert_eq!(snap.verdict, Verdict::Ok, "{snap:?}");
    assert_eq!((snap.decode_attempts, snap.decode_successes), (6, 6));
    assert!(snap.fps > 20.0, "played at about 30 fps: {}", snap.fps);

    // `posctl scanner snapshot` draws the code's outline on the last frame.
    let (luma, codes) = last.unwrap();
    assert_eq!(codes[0].text, ALIPAY_CODE);
    let png = dir.path().join("snapshot.png");
    write_snapshot_png(&png, &luma, &[codes[0].corners]).unwrap();
    let back = image::open(&png).unwrap().into_luma8();
    let [a, b, _, _] = codes[0].corners;
    let mid = ((a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0);
    assert_eq!(
        back.get_pixel(mid.0.round() as u32, mid.1.round() as u32).0[0],
        255,
        "outline on the top edge"
    );
}

#[test]
fn a_greasy_window_shows_as_a_dirty_window_while_codes_stop_reading() {
    let (sharp, _) = payment_frame(640, 480, Scene::Qr, ALIPAY_CODE, (0, 0), 7).unwrap();
    // Grease: light scattered over the picture (flat and bright) and fine detail smeared.
    let w = sharp.width as usize;
    let hazy: Vec<u8> = (0..sharp.data.len())
        .map(|i| {
            let (x, y) = (i % w, i / w);
            let mut sum = 0u32;
            let mut n = 0u32;
            for dy in -4i32..=4 {
                for dx in -4i32..=4 {
                    let (xx, yy) = (x as i32 + dx, y as i32 + dy);
                    if xx >= 0
                        && yy >= 0
                        && (xx as usize) < w
                        && (yy as usize) < sharp.data.len() / w
                    {
                        sum += u32::from(sharp.data[yy as usize * w + xx as usize]);
                        n += 1;
                    }
                }
            }
            (160.0 + 0.2 * (sum / n) as f32) as u8
        })
        .collect();
    let frame = LumaImage {
        data: hazy,
        ..sharp
    };
    let mut health = HealthMonitor::default();
    let mut decoder = Decoder::new(DecoderConfig::default());
    let t0 = Instant::now();
    for i in 0..5 {
        health.observe_frame(&frame, t0 + Duration::from_millis(66 * i));
        health.record_decode(!decoder.decode(&frame).codes.is_empty());
    }
    let snap = health.snapshot(t0 + Duration::from_millis(300));
    assert_eq!(snap.verdict, Verdict::DirtyWindow, "{:?}", snap.window);
    assert_eq!(
        (snap.decode_attempts, snap.decode_successes),
        (5, 0),
        "the code no longer reads"
    );
    assert_eq!(snap.recent_success_ratio, Some(0.0));
    assert!(snap.instruction_en.contains("clean the scan window"));
    assert!(snap.instruction_zh.contains("擦拭"));
}

#[test]
fn a_recorded_usb_scanner_types_the_code_and_enter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scan.evemu");
    std::fs::write(
        &path,
        record_typed_code(ALIPAY_CODE, Duration::from_millis(4), true),
    )
    .unwrap();

    let mut reader = WedgeReader::new(
        RecordedKeySource::open(&path, 4.0).unwrap(),
        WedgeConfig::default(),
    );
    let code = reader.next_code(Duration::from_secs(2)).unwrap();
    assert_eq!(code.text, ALIPAY_CODE);
    assert_eq!(code.ended_by, EndedBy::Enter);
    assert!(
        !format!("{code:?}").contains(ALIPAY_CODE),
        "logs never show the whole code"
    );
    assert!(matches!(
        reader.next_code(Duration::from_millis(50)),
        Err(SourceError::EndOfStream)
    ));
}
