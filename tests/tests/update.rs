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
    bus.spawn_daemon("smartpos-scannerd", &["--config", &c], "org.smartpos.Scanner1")
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

async fn wait_for_device(g: &Goosebit, device: &str, limit: Duration, what: &str, cond: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(d) = g.device(device)
            && cond(&d)
        {
            return d;
        }
        assert!(Instant::now() < deadline, "goosebit never showed {what}: {:?}", g.device(device));
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
async fn the_fleet_rolls_out_a_new_version_and_hears_success_only_after_the_new_system_proved_itself() {
    let bus = TestBus::start_with_extra_policy(Some(smartpos_tests::update::EXTRA_POLICY));
    let rauc_env = RaucEnv::new(bus.dir());
    let bundle = rauc_env.bundle("1.1.0", None, 0);
    let goosebit = Goosebit::start(bus.dir());
    let mut logind = Logind::start(&bus).await;
    let rauc = rauc_env.service(&bus, "A");
    let scanner = scannerd(&bus).await;
    let config = otad_config(bus.dir(), Some(&goosebit), "pos-0001", &["org.smartpos.Scanner1"], 20);
    let mut daemon = otad(&bus, &config).await;
    let conn = bus.connect().await;
    let update = UpdateProxy::new(&conn).await.unwrap();
    assert_eq!(update.current_version().await.unwrap(), "1.0.0");

    // The terminal announces itself; the operator rolls 1.1.0 out to it.
    wait_for_device(&goosebit, "pos-0001", Duration::from_secs(30), "the terminal", |d| d["sw_version"] == "1.0.0").await;
    let id = goosebit.upload(&bundle);
    goosebit.assign("pos-0001", id);
    update.check().await.unwrap();

    // Installed into the other slot, then the reboot is asked for; goosebit has not been
    // told success yet.
    reboot_requested(&mut logind, Duration::from_secs(60)).await;
    assert_eq!(update.state().await.unwrap(), "awaiting-reboot");
    assert_eq!(update.pending_version().await.unwrap(), "1.1.0");
    assert_eq!(rauc_env.primary(), "B", "RAUC made the new slot primary");
    let d = goosebit.device("pos-0001").unwrap();
    assert_ne!(d["last_state"], "Finished", "success reported before the reboot: {d}");

    // Reboot: RAUC comes up from slot B, the daemons start again.
    daemon.terminate();
    drop(scanner);
    drop(rauc);
    let _rauc = rauc_env.service(&bus, "B");
    let _scanner = scannerd(&bus).await;
    let _daemon = otad(&bus, &config).await;
    let update = UpdateProxy::new(&conn).await.unwrap();
    wait_for(&update, Duration::from_secs(30), "1.1.0 running and idle", |s, c, _| s == "idle" && c == "1.1.0").await;
    assert_eq!(rauc_env.boot_state("B"), "good", "the new slot was marked good");
    wait_for_device(&goosebit, "pos-0001", Duration::from_secs(30), "success", |d| {
        d["sw_version"] == "1.1.0" && d["last_state"] == "Finished"
    })
    .await;
}
