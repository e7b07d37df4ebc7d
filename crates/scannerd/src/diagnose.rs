//! `Scanner1.Diagnose()`: the hardware group (cameras and HID scanners present, frames
//! flowing, the camera's image verdict, recent decode success) and the software group (this
//! daemon's and the decoder's versions, the code families read since start).
//!
//! Which payment-code families were refused (a collection code, e-CNY) is known only to the
//! payment service, which classifies codes: `Payment1.Diagnose()` reports it.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use smartpos_bus::diagnose::{Finding, Verdict};
use smartpos_scanner::health::Verdict as Camera;

use crate::service::Shared;

/// Codes handed to a session since start, by (source kind, symbology).
static SEEN: OnceLock<Mutex<BTreeMap<(String, String), u64>>> = OnceLock::new();

fn seen_map() -> &'static Mutex<BTreeMap<(String, String), u64>> {
    SEEN.get_or_init(Mutex::default)
}

/// A code of `symbology` from a source of `kind` was handed to a session.
pub fn code_seen(kind: &str, symbology: &str) {
    let mut m = seen_map()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *m.entry((kind.to_owned(), symbology.to_owned()))
        .or_default() += 1;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The findings, from what the source threads last published.
pub fn findings(shared: &Shared, has_camera: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let sources = lock(&shared.sources).clone();
    let health = lock(&shared.health).clone();
    let cameras: Vec<_> = sources.iter().filter(|(k, _, _)| k == "camera").collect();
    let hids: Vec<_> = sources.iter().filter(|(k, _, _)| k == "hid").collect();

    if !has_camera {
        out.push(Finding::new(1, "camera", Verdict::Ok).evidence(
            "no camera is configured ([camera] in smartpos-scannerd.toml); codes come from HID scanners",
        ));
    }
    for (_, name, state) in &cameras {
        let subject = format!("camera:{name}");
        let f = if state != "streaming" {
            Finding::new(1, subject, Verdict::Fail)
                .evidence(format!("camera {name} is {state}: no frames are flowing"))
                .code("no_frames")
                .instruction(
                    Camera::NoFrames.instruction_zh(),
                    Camera::NoFrames.instruction_en(),
                )
        } else if let Some(h) = &health {
            let verdict = match h.verdict {
                Camera::Ok => Verdict::Ok,
                Camera::NoFrames => Verdict::Fail,
                _ => Verdict::Warn,
            };
            let stats = h
                .last
                .as_ref()
                .map(|s| {
                    format!(
                        ", brightness {:.0}, contrast {:.0}, sharpness {:.0}",
                        s.mean, s.contrast, s.sharpness
                    )
                })
                .unwrap_or_default();
            let mut f = Finding::new(1, subject, verdict)
                .evidence(format!(
                    "camera {name} streaming at {:.1} fps, {} frames{stats}; image verdict {}",
                    h.fps,
                    h.frames_total,
                    h.verdict.as_str()
                ))
                .code(h.verdict.as_str());
            if verdict != Verdict::Ok {
                f = f.instruction(h.instruction_zh.clone(), h.instruction_en.clone());
            }
            f
        } else {
            Finding::new(1, subject, Verdict::Unknown).evidence(format!(
                "camera {name} is streaming but no frame was measured yet"
            ))
        };
        out.push(f);
    }
    if has_camera && cameras.is_empty() {
        out.push(
            Finding::new(1, "camera", Verdict::Fail)
                .evidence("a camera is configured but its source did not start")
                .code("no_frames")
                .instruction(
                    Camera::NoFrames.instruction_zh(),
                    Camera::NoFrames.instruction_en(),
                ),
        );
    }
    out.push(if hids.is_empty() {
        Finding::new(1, "hid", Verdict::Ok).evidence("no HID (keyboard-wedge) scanner attached")
    } else {
        let list = hids
            .iter()
            .map(|(_, n, s)| format!("{n} ({s})"))
            .collect::<Vec<_>>()
            .join(", ");
        let all_down = hids
            .iter()
            .all(|(_, _, s)| s.starts_with("absent") || s.starts_with("error"));
        let f = Finding::new(1, "hid", if all_down { Verdict::Fail } else { Verdict::Ok })
            .evidence(format!("HID scanners: {list}"));
        if all_down {
            f.instruction(
                "扫码枪未连接,请重新插紧扫码枪的USB线",
                "no HID scanner is working: reseat the scanner's USB cable",
            )
        } else {
            f
        }
    });
    if !has_camera && hids.is_empty() {
        out.push(
            Finding::new(1, "sources", Verdict::Fail)
                .evidence("no camera and no HID scanner: nothing can read a payment code")
                .instruction(
                    "没有可用的扫码设备,请连接扫码枪或配置摄像头",
                    "no scanning device: connect a scanner or configure the camera",
                ),
        );
    }
    if let Some(h) = &health {
        let ratio = h
            .recent_success_ratio
            .map(|r| format!("{:.0}% of recent scanning frames held a code", r * 100.0))
            .unwrap_or_else(|| "no frame decoded while scanning yet".to_owned());
        out.push(Finding::new(1, "decode", Verdict::Ok).evidence(format!(
            "{ratio}; {} of {} frames since start",
            h.decode_successes, h.decode_attempts
        )));
    }

    out.push(
        Finding::new(2, "scannerd", Verdict::Ok)
            .evidence(format!("smartpos-scannerd {}", smartpos_runtime::VERSION)),
    );
    out.push(Finding::new(2, "decoder", Verdict::Ok).evidence(format!(
        "smartpos-scanner {} decoder: zxing-cpp (QR, Code 128), rqrr as a second QR core",
        smartpos_runtime::VERSION
    )));
    let seen = lock(seen_map()).clone();
    out.push(
        Finding::new(2, "families", Verdict::Ok).evidence(if seen.is_empty() {
            "no code read since start".to_owned()
        } else {
            let list = seen
                .iter()
                .map(|((k, s), n)| format!("{k}/{s} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "read since start: {list} (payment-code families refused are in Payment1.Diagnose)"
            )
        }),
    );
    out
}
