//! Decoder benchmark.
//!
//! `decode-bench frames [--iters N]` times synthetic 1280x720 and 640x480 payment frames
//! (QR, QR + Code128, Code128, inverted QR, empty) through the still-image cascade, the
//! stream decoder and rqrr alone, and prints median / p95 ms per frame.
//!
//! `decode-bench files [--decoder cascade|zxing|rqrr] [--rqrr-max-side N] [--no-gh-retry]`
//! reads image paths (PGM, PNG, JPEG) from stdin, one per line, and prints one JSON object
//! per file with the decode time and the codes (used by `tools/bench-decoders/run.sh`).

use std::io::BufRead;
use std::time::{Duration, Instant};

use smartpos_scanner::LumaImage;
use smartpos_scanner::decode::synth::{Scene, payment_frame};
use smartpos_scanner::decode::{Code, Decoder, DecoderConfig, FrameDecoder, Symbology, quirc};
use smartpos_scanner::imagefile::load_luma;

const PAYLOAD: &str = "287654321098765432";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    match args.first().map(String::as_str) {
        Some("frames") => frames(flag("--iters").and_then(|v| v.parse().ok()).unwrap_or(200)),
        Some("files") => {
            let mut cfg = DecoderConfig::default();
            if let Some(v) = flag("--rqrr-max-side").and_then(|v| v.parse().ok()) {
                cfg.rqrr_max_side = v;
            }
            cfg.global_histogram_retry = !args.iter().any(|a| a == "--no-gh-retry");
            files(flag("--decoder").as_deref().unwrap_or("cascade"), cfg)
        }
        _ => {
            eprintln!(
                "usage: decode-bench frames [--iters N] | files [--decoder cascade|zxing|rqrr] < list"
            );
            std::process::exit(2);
        }
    }
}

fn files(which: &str, mut cfg: DecoderConfig) {
    if which == "zxing" {
        cfg.rqrr = false;
    }
    let mut decoder = Decoder::new(cfg);
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let path = line.trim();
        if path.is_empty() {
            continue;
        }
        let img = match load_luma(path.as_ref()) {
            Ok(img) => img,
            Err(e) => {
                println!(
                    "{}",
                    serde_json::json!({"file": path, "error": e.to_string()})
                );
                continue;
            }
        };
        let (codes, elapsed, timed_out, panicked) = if which == "rqrr" {
            let t = Instant::now();
            let r = std::panic::catch_unwind(|| quirc::scan_unguarded(&img));
            let e = t.elapsed();
            match r {
                Ok(c) => (c, e, false, false),
                Err(_) => (Vec::new(), e, false, true),
            }
        } else {
            let out = decoder.decode(&img);
            (out.codes, out.elapsed, out.timed_out, out.panicked)
        };
        let codes: Vec<_> = codes
            .iter()
            .map(|c| {
                serde_json::json!({"text": c.text, "symbology": c.symbology, "corners": c.corners,
                                   "core": format!("{:?}", c.core).to_lowercase()})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"file": path, "w": img.width, "h": img.height,
                               "ms": elapsed.as_secs_f64() * 1e3, "codes": codes,
                               "timed_out": timed_out, "panicked": panicked})
        );
    }
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.95))
}

fn mark(codes: &[Code], scene: Scene) -> &'static str {
    let qr = codes
        .iter()
        .any(|c| c.symbology == Symbology::Qr && c.text == PAYLOAD);
    let c128 = codes
        .iter()
        .any(|c| c.symbology == Symbology::Code128 && c.text == PAYLOAD);
    let wrong = codes.iter().any(|c| c.text != PAYLOAD);
    match (scene, qr, c128, wrong) {
        (_, _, _, true) => "WRONG",
        (Scene::Empty, false, false, _) => "-",
        (Scene::QrAndCode128, true, true, _) => "qr+128",
        (Scene::QrAndCode128, true, false, _) => "qr only",
        (_, true, _, _) | (Scene::Code128, _, true, _) => "read",
        _ => "MISS",
    }
}

fn frames(iters: usize) {
    let scenes = [
        ("qr", Scene::Qr),
        ("qr128", Scene::QrAndCode128),
        ("c128", Scene::Code128),
        ("inverted", Scene::InvertedQr),
        ("empty", Scene::Empty),
    ];
    println!(
        "synthetic payment frames, {iters} decodes each; ms per frame as median / p95; result"
    );
    println!("| frame | cascade (Decoder) | stream (FrameDecoder) | rqrr alone |");
    println!("|---|---|---|---|");
    for (w, h) in [(1280u32, 720u32), (640, 480)] {
        for (name, scene) in scenes {
            let (img, _) =
                payment_frame(w, h, scene, PAYLOAD, (w as i32 / 10, -(h as i32) / 20), 42)
                    .expect("the payment code encodes");
            let cascade = time(iters, &img, {
                let mut d = Decoder::default();
                move |i| d.decode(i).codes
            });
            let stream = time(iters, &img, {
                let mut d = FrameDecoder::default();
                move |i| d.decode(i).codes
            });
            let rqrr = time(iters, &img, quirc::scan_unguarded);
            let cell = |(med, p95, codes): (f64, f64, Vec<Code>)| {
                format!("{med:.2} / {p95:.2} {}", mark(&codes, scene))
            };
            println!(
                "| {name}_{h} | {} | {} | {} |",
                cell(cascade),
                cell(stream),
                cell(rqrr)
            );
        }
    }
}

fn time(
    iters: usize,
    img: &LumaImage,
    mut f: impl FnMut(&LumaImage) -> Vec<Code>,
) -> (f64, f64, Vec<Code>) {
    let first = f(img);
    let times = (0..iters)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f(img));
            t.elapsed()
        })
        .collect();
    let (med, p95) = stats(times);
    (med, p95, first)
}
