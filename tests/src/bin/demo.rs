//! `make demo`: the whole stack on a private bus, with simulated devices, told as a story.
//!
//! Everything runs from a temporary directory and is torn down at the end (or on Ctrl-C).

use std::time::Duration;

use smartpos_scanner::decode::synth::{Scene, payment_frame};
use smartpos_tests::{TestBus, bin, write_file};

/// A made-up Alipay payment code (prefix 28, 18 digits): what a customer's phone shows.
const ALIPAY_CODE: &str = "287654321098765432";

fn step(n: u32, text: &str) {
    println!("\n== {n}. {text}");
}

fn run(bus: &TestBus, args: &[&str]) -> bool {
    println!("$ posctl {}", args.join(" "));
    let status = bus.command(bin("posctl")).args(args).status().expect("run posctl");
    if !status.success() {
        println!("(posctl exited with {status})");
    }
    status.success()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    // The daemons log errors only: the story is told on stdout.
    if std::env::var_os("SMARTPOS_LOG").is_none() {
        unsafe_env_set("SMARTPOS_LOG", "error");
    }
    step(1, "A private system bus with smartpos's own D-Bus policy");
    let bus = TestBus::start();
    println!("bus at {}", bus.address());

    step(2, "The camera: a replay of a customer's phone showing an Alipay payment code");
    let folder = bus.dir().join("camera");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let (img, _) = payment_frame(1280, 720, Scene::QrAndCode128, ALIPAY_CODE, (40, -20), 3).expect("frame");
    image::GrayImage::from_raw(img.width, img.height, img.data)
        .expect("frame size")
        .save(folder.join("0001.png"))
        .expect("write frame");
    println!("replay folder {} (1280x720, QR + Code128)", folder.display());
    let cfg = write_file(
        bus.dir(),
        "smartpos-scannerd.toml",
        format!("[camera]\nreplay = \"{}\"\nfps = 15\n", folder.display()).as_bytes(),
    );
    let _scannerd = bus
        .spawn_daemon("smartpos-scannerd", &["--config", cfg.to_str().expect("utf-8 path")], "org.smartpos.Scanner1")
        .await;

    step(3, "What runs");
    let mut ok = run(&bus, &["status"]);

    step(4, "The cashier arms the scanner; the customer holds up the phone");
    ok &= run(&bus, &["scan", "--timeout", "20"]);

    step(5, "Camera health, as a technician sees it");
    tokio::time::sleep(Duration::from_millis(600)).await;
    ok &= run(&bus, &["scanner", "status"]);

    println!("\n{}", if ok { "demo finished: all steps succeeded" } else { "demo finished with failures (see above)" });
    if ok { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE }
}

fn unsafe_env_set(key: &str, value: &str) {
    // SAFETY: called at the top of main, before the runtime or any other thread exists.
    unsafe { std::env::set_var(key, value) };
}
