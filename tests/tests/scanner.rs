//! The scanner daemon on a private system bus, as a vendor app and a technician meet it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use smartpos_bus::scanner::ScannerProxy;
use smartpos_scanner::decode::synth::{Scene, payment_frame};
use smartpos_scanner::hid::record_typed_code;
use smartpos_tests::{TestBus, as_nobody, bin, write_file};

const CODE: &str = "287654321098765432";

/// A replay folder holding one photo of a customer's payment code.
fn replay_folder(dir: &Path) -> PathBuf {
    let folder = dir.join("replay");
    std::fs::create_dir_all(&folder).unwrap();
    let (img, _) = payment_frame(1280, 720, Scene::Qr, CODE, (0, 0), 7).unwrap();
    image::GrayImage::from_raw(img.width, img.height, img.data)
        .unwrap()
        .save(folder.join("0001.png"))
        .unwrap();
    folder
}

fn camera_config(bus: &TestBus) -> PathBuf {
    let folder = replay_folder(bus.dir());
    let toml = format!("[camera]\nreplay = \"{}\"\nfps = 10\n", folder.display());
    write_file(bus.dir(), "scannerd.toml", toml.as_bytes())
}

/// Start smartpos-scannerd on `bus` with the config file `cfg`, ready on the bus.
async fn scannerd(bus: &TestBus, cfg: &Path) -> smartpos_tests::Daemon {
    bus.spawn_daemon(
        "smartpos-scannerd",
        &["--config", cfg.to_str().unwrap()],
        "org.smartpos.Scanner1",
    )
    .await
}

async fn scanner(bus: &TestBus) -> ScannerProxy<'static> {
    ScannerProxy::new(&bus.connect().await).await.unwrap()
}

async fn next_code(
    s: &mut smartpos_bus::scanner::CodeScannedStream,
    within: Duration,
) -> Option<(String, String, String, u64)> {
    let sig = tokio::time::timeout(within, s.next()).await.ok()??;
    let a = sig.args().unwrap();
    Some((a.text, a.symbology, a.source, a.session))
}

#[tokio::test]
async fn a_customer_shows_a_payment_code_to_the_camera_and_the_app_receives_it() {
    let bus = TestBus::start();
    let cfg = camera_config(&bus);
    let _d = scannerd(&bus, &cfg).await;
    let s = scanner(&bus).await;
    let mut codes = s.receive_code_scanned().await.unwrap();
    let session = s.start_scan(20_000, &["camera"]).await.unwrap();
    let (text, symbology, source, got_session) = next_code(&mut codes, Duration::from_secs(15))
        .await
        .expect("a CodeScanned signal");
    assert_eq!(text, CODE);
    assert_eq!(symbology, "qr");
    assert!(source.starts_with("camera:"), "{source}");
    assert_eq!(got_session, session);
    assert_eq!(s.state().await.unwrap(), "scanning");
    // The same code keeps being in view: it is reported once per duplicate window, not per frame.
    assert!(
        next_code(&mut codes, Duration::from_millis(800))
            .await
            .is_none()
    );
    s.stop_scan(session).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.state().await.unwrap(), "idle");
    assert!(s.frames_per_second().await.unwrap() > 0.0);
    assert!(s.decode_successes().await.unwrap() >= 1);
}

#[tokio::test]
async fn a_usb_scanner_types_a_code_and_the_app_receives_it() {
    let bus = TestBus::start();
    let rec = write_file(
        bus.dir(),
        "scanner.evemu",
        record_typed_code(CODE, Duration::from_millis(4), true).as_bytes(),
    );
    // Give the session time to start before the recording plays.
    let toml = format!(
        "[hid]\nreplay = \"{}\"\nreplay_speed = 0.5\n",
        rec.display()
    );
    let cfg = write_file(bus.dir(), "scannerd.toml", toml.as_bytes());
    let _d = scannerd(&bus, &cfg).await;
    let s = scanner(&bus).await;
    let mut codes = s.receive_code_scanned().await.unwrap();
    let session = s.start_scan(20_000, &[]).await.unwrap();
    let (text, symbology, source, got) = next_code(&mut codes, Duration::from_secs(15))
        .await
        .expect("a CodeScanned signal");
    assert_eq!(
        (text.as_str(), symbology.as_str(), got),
        (CODE, "hid", session)
    );
    assert!(source.starts_with("hid:"), "{source}");
}

#[tokio::test]
async fn posctl_scan_prints_the_code_and_status_lists_the_scanner() {
    let bus = TestBus::start();
    let cfg = camera_config(&bus);
    let _d = scannerd(&bus, &cfg).await;
    let out = bus
        .command(bin("posctl"))
        .args(["scan", "--timeout", "15"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), CODE);

    let out = bus
        .command(bin("posctl"))
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let scanner = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["daemon"] == "scanner")
        .unwrap();
    assert_eq!(scanner["running"], true);
    assert_eq!(scanner["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(scanner["state"], "idle");
    let payment = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["daemon"] == "payment")
        .unwrap();
    assert_eq!(payment["running"], false);

    let out = bus
        .command(bin("posctl"))
        .args(["scanner", "status", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let h: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(h["verdict"], "ok", "{h}");
    assert_eq!(h["sources"][0]["kind"], "camera");

    let png = bus.dir().join("snap.png");
    let out = bus
        .command(bin("posctl"))
        .args(["scanner", "snapshot"])
        .arg(&png)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (1280, 720));
}

#[tokio::test]
async fn a_process_of_another_uid_may_read_health_but_not_arm_the_scanner() {
    let bus = TestBus::start();
    let cfg = camera_config(&bus);
    let _d = scannerd(&bus, &cfg).await;
    let out = as_nobody(&bus, &bin("posctl"))
        .args(["scan", "--timeout", "3"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{err}");
    assert!(err.contains("not allowed"), "{err}");
    // Refused by the bus policy itself, before the daemon saw it.
    assert!(err.contains("Rejected send message"), "{err}");

    let out = as_nobody(&bus, &bin("posctl"))
        .args(["scanner", "snapshot", "/tmp/x.png"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77));

    let out = as_nobody(&bus, &bin("posctl"))
        .args(["scanner", "status"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A policy an administrator might have loosened by mistake: anyone may call the scanner.
const LOOSE_POLICY: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><policy context="default"><allow send_destination="org.smartpos.Scanner1"/></policy></busconfig>"#;

#[tokio::test]
async fn the_daemon_refuses_a_stranger_even_when_the_bus_policy_lets_it_through() {
    let bus = TestBus::start_with_extra_policy(Some(LOOSE_POLICY));
    let cfg = camera_config(&bus);
    let _d = scannerd(&bus, &cfg).await;
    let out = as_nobody(&bus, &bin("posctl"))
        .args(["scan", "--timeout", "3"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{err}");
    assert!(err.contains("uid 65534 may not start a scan"), "{err}");
}

#[tokio::test]
async fn what_the_daemon_serves_matches_the_committed_xml() {
    let bus = TestBus::start();
    let cfg = write_file(bus.dir(), "empty.toml", b"");
    let _d = scannerd(&bus, &cfg).await;
    let conn = bus.connect().await;
    let intro = zbus::fdo::IntrospectableProxy::builder(&conn)
        .destination("org.smartpos.Scanner1")
        .unwrap()
        .path("/org/smartpos/Scanner1")
        .unwrap()
        .build()
        .await
        .unwrap();
    let served = intro.introspect().await.unwrap();
    smartpos_tests::contract::assert_matches(&served, "org.smartpos.Scanner1");
}

#[tokio::test]
async fn a_misspelt_config_key_stops_the_daemon_with_a_message_naming_it() {
    let bus = TestBus::start();
    let cfg = write_file(
        bus.dir(),
        "bad.toml",
        b"[camera]\nfps = 10\nrepaly = \"/tmp\"\n",
    );
    let out = bus
        .command(bin("smartpos-scannerd"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("bad.toml") && err.contains("line 3") && err.contains("repaly"),
        "{err}"
    );

    let cfg = write_file(bus.dir(), "bad2.toml", b"[camera]\nfps = \"fast\"\n");
    let out = bus
        .command(bin("smartpos-scannerd"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("key `fps`"), "{err}");
}

#[tokio::test]
async fn sigterm_stops_the_daemon_cleanly() {
    let bus = TestBus::start();
    let cfg = camera_config(&bus);
    let mut d = scannerd(&bus, &cfg).await;
    let status = d.terminate();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_camera_that_is_unplugged_is_reported_absent_and_the_daemon_keeps_serving() {
    let bus = TestBus::start();
    let cfg = write_file(
        bus.dir(),
        "scannerd.toml",
        b"[camera]\ndevice = \"/dev/video-smartpos-missing\"\n",
    );
    let _d = scannerd(&bus, &cfg).await;
    let s = scanner(&bus).await;
    let mut state = String::new();
    for _ in 0..60 {
        if let Some((_, _, st)) = s
            .sources()
            .await
            .unwrap()
            .into_iter()
            .find(|(k, _, _)| k == "camera")
        {
            state = st;
            if state.starts_with("absent") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(state.starts_with("absent"), "{state}");
    assert!(state.contains("video-smartpos-missing"), "{state}");
    assert_eq!(s.verdict().await.unwrap(), "no_frames");
    // Arming still works: a HID scanner could still be used.
    let session = s.start_scan(1000, &[]).await.unwrap();
    s.stop_scan(session).await.unwrap();
}

/// The BoofCV photos of codes on phone and monitor screens (docs/test-data.md), from
/// `../shared/qr-data` beside the workspace or the directory named by `SMARTPOS_QR_DATA`.
fn monitor_photos() -> Vec<PathBuf> {
    let root = std::env::var_os("SMARTPOS_QR_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| smartpos_tests::workspace().join("../shared/qr-data"));
    let dir = root.join("boofcv-qrcodes-v3/monitor");
    let mut photos: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; fetch the images with tools/fetch-qr-data.sh or set SMARTPOS_QR_DATA \
                 to the qr-data folder (docs/test-data.md)",
                dir.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jpg" || x == "png"))
        .collect();
    photos.sort();
    assert!(
        photos.len() >= 5,
        "too few monitor photos in {}",
        dir.display()
    );
    photos
}

#[tokio::test]
async fn a_code_on_a_phone_screen_is_read_by_the_daemon_within_three_frames() {
    use smartpos_scanner::decode::ops::letterbox;
    for photo in monitor_photos() {
        let bus = TestBus::start();
        let folder = bus.dir().join("camera");
        std::fs::create_dir_all(&folder).unwrap();
        let still = smartpos_scanner::imagefile::load_luma(&photo).unwrap();
        // A hand holding a phone: the same screen, slightly moved from frame to frame.
        for (i, shake) in [0, 3, -3, 5].into_iter().enumerate() {
            let (frame, _, _) = letterbox(&still, 1280, 720, (shake, shake / 2));
            image::GrayImage::from_raw(frame.width, frame.height, frame.data)
                .unwrap()
                .save(folder.join(format!("{i:04}.png")))
                .unwrap();
        }
        // Four frames a second, so the attempt count read right after the signal is exact.
        let cfg = write_file(
            bus.dir(),
            "scannerd.toml",
            format!("[camera]\nreplay = \"{}\"\nfps = 4\n", folder.display()).as_bytes(),
        );
        let _d = scannerd(&bus, &cfg).await;
        let s = scanner(&bus).await;
        let mut codes = s.receive_code_scanned().await.unwrap();
        s.start_scan(20_000, &["camera"]).await.unwrap();
        let got = next_code(&mut codes, Duration::from_secs(10)).await;
        let attempts = s.decode_attempts().await.unwrap();
        assert!(got.is_some(), "{}: nothing read", photo.display());
        assert!(
            (1..=3).contains(&attempts),
            "{}: read after {attempts} frames",
            photo.display()
        );
    }
}

#[tokio::test]
async fn sigterm_as_soon_as_scannerd_owns_its_name_stops_it_cleanly() {
    let bus = TestBus::start();
    let cfg = camera_config(&bus);
    for round in 0..10 {
        let status = bus
            .start_and_stop_at_name(
                "smartpos-scannerd",
                &["--config", cfg.to_str().unwrap()],
                "org.smartpos.Scanner1",
            )
            .await;
        assert_eq!(status.code(), Some(0), "round {round}: {status:?}");
    }
}
