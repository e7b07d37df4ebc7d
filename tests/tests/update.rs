//! Remote updates as a technician and the fleet operator see them: goosebit offers a bundle,
//! smartpos-otad downloads, verifies and installs it through the real RAUC into the other
//! file-backed slot, the terminal "reboots" (RAUC restarted from the slot the bootloader
//! backend now boots, the daemons restarted), and only then does goosebit hear the outcome.
//!
//! Needs `rauc`, `mkfs.ext4`, `openssl`, `curl` and Python 3 (tools/deps.sh installs them);
//! goosebit comes from the venv `tools/goosebit-venv.sh` makes.

use std::path::Path;
use std::time::{Duration, Instant};

use smartpos_bus::update::UpdateProxy;
use smartpos_tests::update::{Goosebit, Logind, RaucEnv, otad_config};
use smartpos_tests::{Daemon, TestBus};

const OTAD: &str = "smartpos-otad";
const NAME: &str = "org.smartpos.Update1";

async fn otad(bus: &TestBus, config: &Path) -> Daemon {
    let c = config.display().to_string();
    bus.spawn_daemon(OTAD, &["--config", &c], NAME).await
}

async fn scannerd(bus: &TestBus) -> Daemon {
    // No camera, no HID scanner: the daemon still comes up and owns its name.
    let cfg = smartpos_tests::write_file(bus.dir(), "scannerd.toml", b"");
    let c = cfg.display().to_string();
    bus.spawn_daemon(
        "smartpos-scannerd",
        &["--config", &c],
        "org.smartpos.Scanner1",
    )
    .await
}

/// Wait until `cond` holds for the updater's properties.
async fn wait_for(
    update: &UpdateProxy<'_>,
    limit: Duration,
    what: &str,
    cond: impl Fn(&str, &str, &str) -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        let state = update.state().await.unwrap_or_default();
        let current = update.current_version().await.unwrap_or_default();
        let err = update.last_error().await.unwrap_or_default();
        if cond(&state, &current, &err) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: state {state:?}, current {current:?}, last error {err:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_device(
    g: &Goosebit,
    device: &str,
    limit: Duration,
    what: &str,
    cond: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(d) = g.device(device)
            && cond(&d)
        {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "goosebit never showed {what}: {:?}",
            g.device(device)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn reboot_requested(logind: &mut Logind, limit: Duration) {
    tokio::time::timeout(limit, logind.reboots.recv())
        .await
        .expect("otad asked logind for a reboot in time")
        .expect("logind stand-in alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_rolls_out_a_new_version_and_hears_success_only_after_the_new_system_proved_itself()
 {
    let bus = TestBus::start_with_extra_policy(Some(smartpos_tests::update::EXTRA_POLICY));
    let rauc_env = RaucEnv::new(bus.dir());
    let bundle = rauc_env.bundle("1.1.0", None, 0);
    let goosebit = Goosebit::start(bus.dir());
    let mut logind = Logind::start(&bus).await;
    let rauc = rauc_env.service(&bus, "A");
    let scanner = scannerd(&bus).await;
    let config = otad_config(
        bus.dir(),
        Some(&goosebit),
        "pos-0001",
        &["org.smartpos.Scanner1"],
        20,
    );
    let mut daemon = otad(&bus, &config).await;
    let conn = bus.connect().await;
    let update = UpdateProxy::new(&conn).await.unwrap();
    assert_eq!(update.current_version().await.unwrap(), "1.0.0");

    // The terminal announces itself; the operator rolls 1.1.0 out to it.
    wait_for_device(
        &goosebit,
        "pos-0001",
        Duration::from_secs(30),
        "the terminal",
        |d| d["sw_version"] == "1.0.0",
    )
    .await;
    let id = goosebit.upload(&bundle);
    goosebit.assign("pos-0001", id);
    update.check().await.unwrap();

    // Installed into the other slot, then the reboot is asked for; goosebit has not been
    // told success yet.
    reboot_requested(&mut logind, Duration::from_secs(60)).await;
    // The phase was saved before the reboot was asked for; the bus properties follow it
    // (their PropertiesChanged may arrive just after logind's call).
    wait_for(
        &update,
        Duration::from_secs(10),
        "awaiting-reboot",
        |s, _, _| s == "awaiting-reboot",
    )
    .await;
    assert_eq!(update.pending_version().await.unwrap(), "1.1.0");
    assert_eq!(rauc_env.primary(), "B", "RAUC made the new slot primary");
    let d = goosebit.device("pos-0001").unwrap();
    assert_ne!(
        d["last_state"], "Finished",
        "success reported before the reboot: {d}"
    );

    // Reboot: RAUC comes up from slot B, the daemons start again.
    daemon.terminate();
    drop(scanner);
    drop(rauc);
    let _rauc = rauc_env.service(&bus, "B");
    let _scanner = scannerd(&bus).await;
    let _daemon = otad(&bus, &config).await;
    let update = UpdateProxy::new(&conn).await.unwrap();
    wait_for(
        &update,
        Duration::from_secs(30),
        "1.1.0 running and idle",
        |s, c, _| s == "idle" && c == "1.1.0",
    )
    .await;
    assert_eq!(
        rauc_env.boot_state("B"),
        "good",
        "the new slot was marked good"
    );
    wait_for_device(
        &goosebit,
        "pos-0001",
        Duration::from_secs(30),
        "success",
        |d| d["sw_version"] == "1.1.0" && d["last_state"] == "Finished",
    )
    .await;
}

/// One terminal with RAUC booted from slot A, goosebit and logind's stand-in.
struct Rig {
    bus: TestBus,
    rauc_env: RaucEnv,
    goosebit: Goosebit,
    logind: Logind,
    rauc: Option<smartpos_tests::update::Rauc>,
    config: std::path::PathBuf,
}

impl Rig {
    async fn start(device: &str, selfcheck: &[&str], deadline_s: u64) -> Rig {
        let bus = TestBus::start_with_extra_policy(Some(smartpos_tests::update::EXTRA_POLICY));
        let rauc_env = RaucEnv::new(bus.dir());
        let goosebit = Goosebit::start(bus.dir());
        let logind = Logind::start(&bus).await;
        let rauc = Some(rauc_env.service(&bus, "A"));
        let config = otad_config(bus.dir(), Some(&goosebit), device, selfcheck, deadline_s);
        Rig {
            bus,
            rauc_env,
            goosebit,
            logind,
            rauc,
            config,
        }
    }

    /// Offer `bundle` to `device` once otad has announced it.
    async fn offer(&self, device: &str, bundle: &Path) -> u64 {
        wait_for_device(
            &self.goosebit,
            device,
            Duration::from_secs(30),
            "the terminal",
            |d| d["sw_version"] == "1.0.0",
        )
        .await;
        let id = self.goosebit.upload(bundle);
        self.goosebit.assign(device, id);
        id
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_system_whose_daemons_do_not_come_up_is_marked_bad_and_the_terminal_falls_back() {
    let mut rig = Rig::start("pos-0002", &["org.smartpos.Scanner1"], 3).await;
    let bundle = rig.rauc_env.bundle("1.2.0", None, 0);
    let scanner = scannerd(&rig.bus).await;
    let mut daemon = otad(&rig.bus, &rig.config).await;
    let conn = rig.bus.connect().await;
    rig.offer("pos-0002", &bundle).await;
    UpdateProxy::new(&conn)
        .await
        .unwrap()
        .check()
        .await
        .unwrap();
    reboot_requested(&mut rig.logind, Duration::from_secs(60)).await;
    assert_eq!(rig.rauc_env.primary(), "B");

    // The new system boots, but its scanner daemon never comes up.
    daemon.terminate();
    drop(scanner);
    rig.rauc = None;
    rig.rauc = Some(rig.rauc_env.service(&rig.bus, "B"));
    let mut daemon = otad(&rig.bus, &rig.config).await;
    reboot_requested(&mut rig.logind, Duration::from_secs(30)).await;
    assert_eq!(
        rig.rauc_env.boot_state("B"),
        "bad",
        "the new slot was marked bad"
    );
    assert_eq!(rig.rauc_env.primary(), "A", "the old slot boots next");
    let d = rig.goosebit.device("pos-0002").unwrap();
    assert_ne!(
        d["last_state"], "Error",
        "failure reported before falling back: {d}"
    );

    // Back on the old system, the server hears why.
    daemon.terminate();
    rig.rauc = None;
    rig.rauc = Some(rig.rauc_env.service(&rig.bus, "A"));
    let _daemon = otad(&rig.bus, &rig.config).await;
    let update = UpdateProxy::new(&conn).await.unwrap();
    wait_for(
        &update,
        Duration::from_secs(30),
        "the failure reported",
        |s, c, e| {
            s == "failed" && c == "1.0.0" && e.contains("org.smartpos.Scanner1 did not come up")
        },
    )
    .await;
    wait_for_device(
        &rig.goosebit,
        "pos-0002",
        Duration::from_secs(30),
        "the failure",
        |d| d["last_state"] == "Error" && d["sw_version"] == "1.0.0",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_altered_on_the_server_is_refused_before_rauc_sees_it() {
    let rig = Rig::start("pos-0003", &[], 5).await;
    let bundle = rig.rauc_env.bundle("1.3.0", None, 0);
    let _daemon = otad(&rig.bus, &rig.config).await;
    rig.offer("pos-0003", &bundle).await;
    // Someone flips a byte in the stored artifact after goosebit hashed it.
    let stored = rig.goosebit.artifacts();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let mut data = std::fs::read(&stored[0]).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&stored[0], data).unwrap();
    let conn = rig.bus.connect().await;
    let update = UpdateProxy::new(&conn).await.unwrap();
    update.check().await.unwrap();
    wait_for(
        &update,
        Duration::from_secs(30),
        "the download refused",
        |s, _, e| s == "failed" && e.contains("sha1") && e.contains("download refused"),
    )
    .await;
    wait_for_device(
        &rig.goosebit,
        "pos-0003",
        Duration::from_secs(30),
        "the failure",
        |d| d["last_state"] == "Error",
    )
    .await;
    assert_eq!(rig.rauc_env.primary(), "A", "nothing was installed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_signed_by_a_foreign_ca_is_refused_by_rauc_and_the_server_is_told() {
    let rig = Rig::start("pos-0004", &[], 5).await;
    let rogue = smartpos_tests::update::Ca::new(&rig.bus.dir().join("rogue"), "rogue-ca");
    let (cert, key) = rogue.leaf(
        &rig.bus.dir().join("rogue"),
        "rogue-signer",
        "/CN=rogue",
        "keyUsage=critical,digitalSignature\n",
    );
    let bundle = rig.rauc_env.bundle("1.4.0", Some((&cert, &key)), 0);
    let _daemon = otad(&rig.bus, &rig.config).await;
    rig.offer("pos-0004", &bundle).await;
    let conn = rig.bus.connect().await;
    let update = UpdateProxy::new(&conn).await.unwrap();
    update.check().await.unwrap();
    wait_for(
        &update,
        Duration::from_secs(30),
        "RAUC's refusal",
        |s, _, e| {
            // RAUC 1.8's Info answers a bad signature with "rauc info error" only (its log has
            // the detail): the refusal is RAUC's, whatever its words.
            s == "failed" && e.contains("RAUC refused the bundle")
        },
    )
    .await;
    wait_for_device(
        &rig.goosebit,
        "pos-0004",
        Duration::from_secs(30),
        "the failure",
        |d| d["last_state"] == "Error",
    )
    .await;
    assert_eq!(rig.rauc_env.primary(), "A", "nothing was installed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_cannot_install_an_older_bundle_than_the_one_running() {
    let bus = TestBus::start_with_extra_policy(Some(smartpos_tests::update::EXTRA_POLICY));
    let rauc_env = RaucEnv::new(bus.dir());
    let _rauc = rauc_env.service(&bus, "A");
    let config = otad_config(bus.dir(), None, "pos-0005", &[], 5);
    let _daemon = otad(&bus, &config).await;
    let old = rauc_env.bundle("0.9.0", None, 0);
    let conn = bus.connect().await;
    let update = UpdateProxy::new(&conn).await.unwrap();
    let err = update
        .install_local(&old.display().to_string())
        .await
        .unwrap_err();
    let zbus::Error::MethodError(name, Some(msg), _) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(name.as_str(), "org.smartpos.Error.Refused");
    assert!(
        msg.contains("downgrade from 1.0.0 to 0.9.0 refused"),
        "{msg}"
    );
    assert_eq!(rauc_env.primary(), "A", "nothing was installed");
    assert_eq!(update.current_version().await.unwrap(), "1.0.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_fleet_server_is_polled_less_and_less_often() {
    // A port that takes connections and drops them, counting each.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(s);
        }
    });
    let bus = TestBus::start();
    let ca = smartpos_tests::update::Ca::new(&bus.dir().join("ca"), "fleet-ca");
    let config = smartpos_tests::write_file(bus.dir(), "otad.toml", format!(
        "[server]\nurl = \"https://127.0.0.1:{port}\"\ncontroller_id = \"pos-0006\"\nca_file = \"{}\"\n\
         [device]\nhw_boardname = \"test-pos-x86\"\n\
         [polling]\ndefault_sleep_s = 1\nerror_backoff_s = 1\nerror_backoff_max_s = 8\n\
         [download]\ndir = \"{}\"\n[selfcheck]\nbus_names = []\n",
        ca.cert.display(), bus.dir().display()).as_bytes());
    let _daemon = otad(&bus, &config).await;
    tokio::time::sleep(Duration::from_secs(16)).await;
    // Polling every second would be 16 tries; backing off 1, 2, 4, 8 s (±10 %) is 4 or 5.
    let tries = count.load(std::sync::atomic::Ordering::SeqCst);
    assert!((3..=6).contains(&tries), "{tries} polls in 16 s");
    let conn = bus.connect().await;
    let update = UpdateProxy::new(&conn).await.unwrap();
    assert_eq!(
        update.state().await.unwrap(),
        "idle",
        "a server being away is not a failed update"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_half_way_resumes_where_it_stopped_and_fetches_each_byte_once() {
    let mut rig = Rig::start("pos-0007", &[], 5).await;
    let bundle = rig.rauc_env.bundle("1.7.0", None, 2 * 1024 * 1024);
    let size = std::fs::metadata(&bundle).unwrap().len();
    let port: u16 = rig
        .goosebit
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let proxy = smartpos_tests::update::CuttingProxy::start(port, size / 2);
    // otad talks to goosebit through the proxy (goosebit's links name the proxy, from the
    // Host header).
    let text = std::fs::read_to_string(&rig.config).unwrap();
    std::fs::write(
        &rig.config,
        text.replace(
            &rig.goosebit.url,
            &format!("https://127.0.0.1:{}", proxy.port),
        ),
    )
    .unwrap();
    let _daemon = otad(&rig.bus, &rig.config).await;
    rig.offer("pos-0007", &bundle).await;
    let conn = rig.bus.connect().await;
    UpdateProxy::new(&conn)
        .await
        .unwrap()
        .check()
        .await
        .unwrap();
    reboot_requested(&mut rig.logind, Duration::from_secs(90)).await;
    assert!(
        proxy.cut.load(std::sync::atomic::Ordering::SeqCst),
        "the download was cut"
    );
    let sent = proxy.from_server.load(std::sync::atomic::Ordering::SeqCst);
    // Polls, TLS and HTTP overhead are a few tens of KiB; a restart from zero would add
    // half the bundle again.
    assert!(
        sent < size + 256 * 1024,
        "{sent} bytes sent for a {size}-byte bundle"
    );
    assert!(sent >= size, "{sent} < {size}");
    assert_eq!(rig.rauc_env.primary(), "B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_installs_a_bundle_from_a_stick_with_posctl_and_a_stranger_cannot() {
    let bus = TestBus::start_with_extra_policy(Some(smartpos_tests::update::EXTRA_POLICY));
    let rauc_env = RaucEnv::new(bus.dir());
    let _rauc = rauc_env.service(&bus, "A");
    let mut logind = Logind::start(&bus).await;
    let config = otad_config(bus.dir(), None, "pos-0008", &[], 5);
    let _daemon = otad(&bus, &config).await;
    let conn = bus.connect().await;

    // The daemon serves exactly its contract.
    let intro = zbus::fdo::IntrospectableProxy::builder(&conn)
        .destination(NAME)
        .unwrap()
        .path(smartpos_bus::update::PATH)
        .unwrap()
        .build()
        .await
        .unwrap();
    smartpos_tests::contract::assert_matches(&intro.introspect().await.unwrap(), NAME);

    let bundle = rauc_env.bundle("1.8.0", None, 0);
    // Anyone may read the state, but a stranger may not install.
    let posctl = smartpos_tests::bin("posctl");
    let out = smartpos_tests::as_nobody(&bus, &posctl)
        .args(["update", "install"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a stranger installed a bundle");
    let out = smartpos_tests::as_nobody(&bus, &posctl)
        .args(["--json", "update", "status"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = bus
        .command(&posctl)
        .args(["--json", "update", "install"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "awaiting-reboot", "{v}");
    assert_eq!(v["pending_version"], "1.8.0", "{v}");
    assert_eq!(v["action_id"], "local", "{v}");
    reboot_requested(&mut logind, Duration::from_secs(10)).await;
    assert_eq!(rauc_env.primary(), "B");
}
