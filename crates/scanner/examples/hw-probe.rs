//! Probe capture and keyboard-wedge input against real kernel devices: a V4L2 camera (vivid in
//! the VM system test, or a USB camera on a terminal) and uinput virtual scanners.
//!
//! ```text
//! hw-probe camera <path|match> [--size 1280x720] [--fps 15] [--frames 30]
//!                 [--formats grey,yuyv,nv12,mjpeg] [--snapshot FILE.png] [--save-raw DIR]
//!                 [--watch SECS]
//! hw-probe hid
//! hw-probe press <device> <control name>   (e.g. vivid's "Disconnect" button)
//! hw-probe record-scan <text> [--interval-ms 4] [--no-enter] > scan.evemu
//! hw-probe read-scan <scan.evemu> [--speed 1.0]
//! ```
//!
//! `record-scan` writes what a US-layout scanner sends to type `text` as an evemu recording
//! (for the demo and tests); `read-scan` plays a recording (also one made with `evemu-record`
//! on a terminal) through the wedge assembler and prints the codes, masked.
//!
//! `camera` streams through `ResilientSource` and prints the negotiated format, the frame rate
//! and the health verdict; `--save-raw` writes the frames as a replay folder; `--watch` keeps
//! streaming and prints every capture state change (for unplug/replug tests). `hid` creates
//! virtual scanners with uinput (needs /dev/uinput and root), and checks that codes typed on
//! them are read whole, that the scanners are grabbed, that two scanners typing at once do not
//! mix, and that unplug and replug are noticed. Each prints `…-OK` and exits 0 on success.

use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use evdev::uinput::VirtualDevice;
use evdev::{AttributeSet, BusType, EventType, InputEvent, InputId, KeyCode};
use smartpos_scanner::capture::{CameraSelector, CaptureConfig, ResiliencePolicy, ResilientSource};
use smartpos_scanner::health::HealthMonitor;
use smartpos_scanner::hid::wedge::mask_code;
use smartpos_scanner::hid::wedge::type_text;
use smartpos_scanner::hid::{
    CodeSource, HidConfig, HidMatch, HidScanners, RecordedKeySource, WedgeConfig, WedgeReader,
};
use smartpos_scanner::{FrameSource, PixelFormat, SourceError};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("camera") => camera(&args[1..]),
        Some("hid") => hid(),
        Some("press") => press(&args[1..]),
        Some("record-scan") => record_scan(&args[1..]),
        Some("read-scan") => read_scan(&args[1..]),
        _ => Err(
            "usage: hw-probe camera <path|match> [--size WxH] [--fps N] [--frames N] \
                  [--snapshot FILE.png] [--save-raw DIR] | hw-probe hid"
                .to_string(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hw-probe: {e}");
            ExitCode::FAILURE
        }
    }
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn camera(args: &[String]) -> Result<(), String> {
    let selector = args
        .first()
        .ok_or("camera: which device? a path or a card/bus match")?;
    let (width, height) = match flag(args, "--size") {
        Some(s) => {
            let (w, h) = s.split_once('x').ok_or("--size is WxH")?;
            (
                w.parse().map_err(|_| "bad width")?,
                h.parse().map_err(|_| "bad height")?,
            )
        }
        None => (1280, 720),
    };
    let fps = flag(args, "--fps")
        .map_or(Ok(15), str::parse)
        .map_err(|_| "bad --fps")?;
    let n: usize = flag(args, "--frames")
        .map_or(Ok(30), str::parse)
        .map_err(|_| "bad --frames")?;
    let mut cfg = CaptureConfig {
        camera: CameraSelector::parse(selector),
        width,
        height,
        fps,
        ..CaptureConfig::default()
    };
    if let Some(list) = flag(args, "--formats") {
        cfg.formats = list
            .split(',')
            .map(|f| match f {
                "grey" => Ok(PixelFormat::Grey),
                "yuyv" => Ok(PixelFormat::Yuyv),
                "nv12" => Ok(PixelFormat::Nv12),
                "mjpeg" => Ok(PixelFormat::Mjpeg),
                other => Err(format!("unknown format {other}")),
            })
            .collect::<Result<_, _>>()?;
    }
    for cam in smartpos_scanner::capture::list_cameras() {
        println!(
            "camera {} card={:?} bus={} formats={:?}",
            cam.path.display(),
            cam.card,
            cam.bus,
            cam.formats
        );
    }
    let mut src = ResilientSource::v4l2(cfg, &ResiliencePolicy::default());
    let mut health = HealthMonitor::default();
    let mut frames = Vec::new();
    let t0 = Instant::now();
    while frames.len() < n {
        match src.next_frame(Duration::from_secs(5)) {
            Ok(f) => {
                let luma = f.to_luma().map_err(|e| e.to_string())?;
                health.observe_frame(&luma, f.captured);
                frames.push(f);
            }
            Err(SourceError::Timeout(_)) => {
                return Err(format!("no frame within 5 s; status {:?}", src.status()));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    let elapsed = t0.elapsed();
    let last = frames.last().ok_or("no frames")?;
    let snap = health.snapshot(Instant::now());
    println!(
        "status {}",
        serde_json::to_string(&src.status()).map_err(|e| e.to_string())?
    );
    println!(
        "health {}",
        serde_json::to_string(&snap).map_err(|e| e.to_string())?
    );
    if let Some(path) = flag(args, "--snapshot") {
        let luma = last.to_luma().map_err(|e| e.to_string())?;
        smartpos_scanner::snapshot::write_snapshot_png(&PathBuf::from(path), &luma, &[])
            .map_err(|e| e.to_string())?;
    }
    if let Some(dir) = flag(args, "--save-raw") {
        smartpos_scanner::replay::write_raw_frames(
            &PathBuf::from(dir),
            &frames,
            Some(f64::from(fps)),
        )
        .map_err(|e| e.to_string())?;
    }
    if let Some(secs) = flag(args, "--watch") {
        watch(&mut src, secs.parse().map_err(|_| "bad --watch")?);
    }
    println!(
        "CAMERA-OK {} {:?} {}x{} {} frames in {:.2} s, {:.1} fps, {} bytes/frame, verdict {}",
        src.status().source,
        last.format,
        last.width,
        last.height,
        frames.len(),
        elapsed.as_secs_f64(),
        snap.fps,
        last.data.len(),
        snap.verdict.as_str()
    );
    Ok(())
}

fn record_scan(args: &[String]) -> Result<(), String> {
    let text = args.first().ok_or("record-scan <text>")?;
    let ms: u64 = flag(args, "--interval-ms")
        .map_or(Ok(4), str::parse)
        .map_err(|_| "bad --interval-ms")?;
    let enter = !args.iter().any(|a| a == "--no-enter");
    print!(
        "{}",
        smartpos_scanner::hid::record_typed_code(text, Duration::from_millis(ms), enter)
    );
    Ok(())
}

fn read_scan(args: &[String]) -> Result<(), String> {
    let path = PathBuf::from(args.first().ok_or("read-scan <file>")?);
    let speed: f64 = flag(args, "--speed")
        .map_or(Ok(1.0), str::parse)
        .map_err(|_| "bad --speed")?;
    let rec = RecordedKeySource::open(&path, speed).map_err(|e| e.to_string())?;
    let mut reader = WedgeReader::new(rec, WedgeConfig::default());
    loop {
        match reader.next_code(Duration::from_secs(3600)) {
            Ok(code) => println!(
                "code {} ({} chars, ended by {:?})",
                mask_code(&code.text),
                code.text.chars().count(),
                code.ended_by
            ),
            Err(SourceError::EndOfStream) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    println!("counters {:?}", reader.counters());
    Ok(())
}

/// Press a button control by name: vivid's "Disconnect" simulates a USB unplug.
fn press(args: &[String]) -> Result<(), String> {
    let [dev, name, ..] = args else {
        return Err("press <device> <control name>".into());
    };
    let dev = v4l::Device::with_path(dev).map_err(|e| format!("open {dev}: {e}"))?;
    let ctrl = dev
        .query_controls()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|c| c.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| format!("no control named {name:?}"))?;
    dev.set_control(v4l::control::Control {
        id: ctrl.id,
        value: v4l::control::Value::Integer(1),
    })
    .map_err(|e| format!("press {name:?} ({:#x}): {e}", ctrl.id))?;
    println!("pressed {name:?} ({:#x})", ctrl.id);
    Ok(())
}

/// Keep streaming for `secs`, printing each capture state change.
fn watch<S: FrameSource>(src: &mut ResilientSource<S>, secs: f64) {
    let t0 = Instant::now();
    let mut last = None;
    let mut frames = 0u64;
    let mut states = Vec::new();
    while t0.elapsed().as_secs_f64() < secs {
        if src.next_frame(Duration::from_millis(200)).is_ok() {
            frames += 1;
        }
        let st = src.status();
        if last != Some(st.state) {
            println!(
                "watch t={:.1}s state={:?} source={} error={:?}",
                t0.elapsed().as_secs_f64(),
                st.state,
                st.source,
                st.last_error
            );
            states.push(format!("{:?}", st.state));
            last = Some(st.state);
        }
    }
    let st = src.status();
    println!(
        "WATCH states=[{}] frames={frames} reopens={}",
        states.join(","),
        st.reopens
    );
}

const SCANNER_NAME: &str = "smartpos probe scanner";

fn virtual_scanner(product: u16) -> Result<VirtualDevice, String> {
    let mut keys = AttributeSet::<KeyCode>::new();
    for code in 1..=127u16 {
        keys.insert(KeyCode::new(code));
    }
    let name = format!("{SCANNER_NAME} {product}");
    VirtualDevice::builder()
        .and_then(|b| {
            b.name(name.as_bytes())
                .input_id(InputId::new(BusType::BUS_USB, 0x1eab, product, 1))
                .with_keys(&keys)?
                .build()
        })
        .map_err(|e| {
            format!("cannot create a uinput device (is /dev/uinput there, are we root?): {e}")
        })
}

/// Type `text` and Enter on a virtual scanner, a key every 2 ms as a real one does.
fn type_on(dev: &mut VirtualDevice, text: &str) -> Result<(), String> {
    for k in type_text(text, Duration::ZERO, Duration::from_millis(2), true) {
        dev.emit(&[InputEvent::new(EventType::KEY.0, k.code, k.value)])
            .map_err(|e| e.to_string())?;
        thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn wait_for_devices(hid: &mut HidScanners, n: usize) -> Result<(), String> {
    let t0 = Instant::now();
    while hid.devices().len() != n {
        if t0.elapsed() > Duration::from_secs(5) {
            return Err(format!("expected {n} scanners, have {:?}", hid.devices()));
        }
        match hid.next_code(Duration::from_millis(50)) {
            Err(SourceError::Timeout(_)) => {}
            other => return Err(format!("unexpected while waiting for devices: {other:?}")),
        }
    }
    Ok(())
}

fn hid() -> Result<(), String> {
    let cfg = HidConfig {
        matchers: vec![HidMatch {
            name_contains: Some(SCANNER_NAME.into()),
            vendor: Some(0x1eab),
            product: None,
        }],
        rescan_interval: Duration::from_millis(100),
        // uinput stamps events when the typing thread writes them, and under emulation that
        // thread can be descheduled for tens of ms; a real scanner's USB reports are stamped
        // on arrival, a few ms apart. A generous timeout keeps this probe about the plumbing.
        wedge: WedgeConfig {
            inter_key_timeout: Duration::from_millis(500),
            ..WedgeConfig::default()
        },
        ..HidConfig::default()
    };
    let mut hid = HidScanners::new(cfg);
    let mut a = virtual_scanner(1)?;
    wait_for_devices(&mut hid, 1)?;
    let info = hid.devices()[0].clone();
    let status = hid.status_handle();
    if !info.grabbed {
        return Err(format!("scanner not grabbed: {info:?}"));
    }
    // A second reader must see nothing while we hold the grab.
    let mut spy = evdev::Device::open(&info.path).map_err(|e| e.to_string())?;
    spy.set_nonblocking(true).map_err(|e| e.to_string())?;

    let typist = thread::spawn(move || type_on(&mut a, "286912345678901234").map(|()| a));
    let code = hid
        .next_code(Duration::from_secs(5))
        .map_err(|e| format!("first code: {e}"))?;
    let mut a = typist.join().map_err(|_| "typist panicked")??;
    if code.text != "286912345678901234" {
        return Err(format!("read {:?}", code.text));
    }
    let leaked = spy.fetch_events().map(|ev| ev.count()).unwrap_or(0);
    if leaked != 0 {
        return Err(format!(
            "{leaked} events reached another reader despite the grab"
        ));
    }
    let seen = status.devices();
    if seen.len() != 1 || seen[0].counters.codes != 1 {
        return Err(format!("status handle shows {seen:?}"));
    }
    println!(
        "hid: code read whole from {}, grabbed, nothing leaked",
        info.path.display()
    );

    let url = "https://qr.alipay.com/fkx12345ABCDE?t=1&x=%2F_a-b.c";
    let typist = thread::spawn(move || type_on(&mut a, url).map(|()| a));
    let code = hid
        .next_code(Duration::from_secs(5))
        .map_err(|e| format!("url: {e}"))?;
    let mut a = typist.join().map_err(|_| "typist panicked")??;
    if code.text != url {
        return Err(format!("url read as {:?}", code.text));
    }
    println!("hid: payment URL with punctuation read whole");

    let mut b = virtual_scanner(2)?;
    wait_for_devices(&mut hid, 2)?;
    let ta = thread::spawn(move || type_on(&mut a, "134567890123456789").map(|()| a));
    let tb = thread::spawn(move || type_on(&mut b, "281111222233334444").map(|()| b));
    let mut got = vec![
        hid.next_code(Duration::from_secs(5))
            .map_err(|e| format!("two scanners: {e}"))?
            .text,
        hid.next_code(Duration::from_secs(5))
            .map_err(|e| format!("two scanners: {e}"))?
            .text,
    ];
    got.sort();
    let _a = ta.join().map_err(|_| "typist panicked")??;
    let b = tb.join().map_err(|_| "typist panicked")??;
    if got != ["134567890123456789", "281111222233334444"] {
        return Err(format!("two scanners typing at once gave {got:?}"));
    }
    println!("hid: two scanners typing at once, both codes intact");

    drop(b);
    wait_for_devices(&mut hid, 1)?;
    println!("hid: unplug noticed");
    let mut c = virtual_scanner(3)?;
    wait_for_devices(&mut hid, 2)?;
    let typist = thread::spawn(move || type_on(&mut c, "255555666677778888").map(|()| c));
    let code = hid
        .next_code(Duration::from_secs(5))
        .map_err(|e| format!("after replug: {e}"))?;
    typist.join().map_err(|_| "typist panicked")??;
    if code.text != "255555666677778888" {
        return Err(format!("after replug read {:?}", code.text));
    }
    println!("HID-OK grab, whole codes, URL, two scanners at once, unplug and replug");
    Ok(())
}
