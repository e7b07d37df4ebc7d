//! Remote updates against a second, independent DDI server: `hawkbit_mock`, the mock server of
//! the hawkbit crates, for what goosebit does not do — several chunks and artifacts in one
//! deployment, sha256, `maintenanceWindow`, `download`/`update` skip and attempt,
//! `cancelAction`, `GatewayToken` — with the real RAUC, the real payment daemon and otad.
//!
//! The mock answers a feedback only when its body is exactly the one expected (anything else
//! gets a 404), so each expectation below checks the whole feedback, and its hit count checks
//! that it came once. It speaks plain HTTP: a TLS front made here sits before it (see
//! `smartpos_tests::update::TlsFront`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hawkbit::ddi::{Execution, Finished, MaintenanceWindow, Type};
use hawkbit_mock::ddi::{
    ChunkProtocol, Deployment, DeploymentBuilder, ServerBuilder, Target, TargetAuthorization,
};
use serde_json::json;
use smartpos_bus::payment::PaymentProxy;
use smartpos_bus::update::UpdateProxy;
use smartpos_tests::acquirer::{self, Pace};
use smartpos_tests::update::{Fleet, Logind, Rauc, RaucEnv, TlsFront, otad_config_for};
use smartpos_tests::{Daemon, TestBus, bin};
use zbus::zvariant::Value;

const OTAD: &str = "smartpos-otad";
const NAME: &str = "org.smartpos.Update1";

/// One terminal: RAUC booted from slot A, logind's stand-in, the payment daemon on the
/// emulator (merchant configuration version 7, Huabei on) trusting a fresh fleet key, and a
/// hawkbit_mock server (behind TLS) that knows the terminal.
struct Terminal {
    bus: TestBus,
    rauc_env: RaucEnv,
    _rauc: Rauc,
    logind: Logind,
    _sim: smartpos_acquirer_sim::Sim,
    _paymentd: Daemon,
    fleet_key: PathBuf,
    merchant: PathBuf,
    _front: TlsFront,
    /// Kept alive as long as the terminal (the targets hold it too).
    _server: hawkbit_mock::ddi::Server,
    config: PathBuf,
}

fn posctl_ok(bus: &TestBus, args: &[&str]) -> String {
    let out = bus.command(bin("posctl")).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "posctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Terminal {
    async fn start(device: &str, auth: TargetAuthorization) -> (Terminal, Target) {
        let bus = TestBus::start_with_extra_policy(Some(smartpos_tests::update::EXTRA_POLICY));
        let rauc_env = RaucEnv::new(bus.dir());
        let rauc = rauc_env.service(&bus, "A");
        let logind = Logind::start(&bus).await;
        let sim = acquirer::start(bus.dir()).await;
        let cfg = acquirer::paymentd_config(&sim, bus.dir(), Pace::Fast, false);
        let fleet_key = bus.dir().join("fleet.key");
        let public = bus.dir().join("merchant-config.pub");
        posctl_ok(
            &bus,
            &[
                "config",
                "keygen",
                "--key",
                fleet_key.to_str().unwrap(),
                "--public",
                public.to_str().unwrap(),
            ],
        );
        let mut text = std::fs::read_to_string(&cfg).unwrap();
        text.push_str(&format!("merchant_config_key = \"{}\"\n", public.display()));
        std::fs::write(&cfg, text).unwrap();
        let paymentd = bus
            .spawn_daemon(
                "smartpos-paymentd",
                &["--config", cfg.to_str().unwrap()],
                "org.smartpos.Payment1",
            )
            .await;
        let server = ServerBuilder::default().target_authorization(auth).build();
        let target = server.add_target(device);
        let front = TlsFront::start(bus.dir(), &server.base_url());
        let (key, token) = match &target.client_auth {
            hawkbit::ddi::ClientAuthorization::TargetToken(t) => ("target_token_file", t.clone()),
            hawkbit::ddi::ClientAuthorization::GatewayToken(t) => ("gateway_token_file", t.clone()),
            hawkbit::ddi::ClientAuthorization::None => ("", String::new()),
        };
        let config = otad_config_for(
            bus.dir(),
            Some(Fleet {
                url: &front.url,
                ca: &front.ca,
                token: (!key.is_empty()).then_some((key, token.as_str())),
            }),
            device,
            &[],
            5,
        );
        let merchant = smartpos_tests::merchant::path(bus.dir());
        let t = Terminal {
            bus,
            rauc_env,
            _rauc: rauc,
            logind,
            _sim: sim,
            _paymentd: paymentd,
            fleet_key,
            merchant,
            _front: front,
            _server: server,
            config,
        };
        (t, target)
    }

    async fn otad(&self) -> Daemon {
        let c = self.config.display().to_string();
        self.bus.spawn_daemon(OTAD, &["--config", &c], NAME).await
    }

    async fn connect(
        &self,
    ) -> (
        zbus::Connection,
        UpdateProxy<'static>,
        PaymentProxy<'static>,
    ) {
        let conn = self.bus.connect().await;
        let update = UpdateProxy::builder(&conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .unwrap();
        let pay = PaymentProxy::builder(&conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .unwrap();
        (conn, update, pay)
    }

    /// The running merchant configuration at `version` with Huabei switched off, written to
    /// `name`, and its signature `name.sig` by `key` (default: the fleet's key).
    fn signed_config(&self, name: &str, version: u64, key: Option<&Path>) -> (PathBuf, PathBuf) {
        let now = std::fs::read_to_string(&self.merchant).unwrap();
        let edited = now.replace("version = 7", &format!("version = {version}")).replace(
            "funding = [\"balance\", \"bank_card\", \"huabei\", \"huabei_instalments\", \"credit_card\"]",
            "funding = [\"balance\", \"bank_card\", \"credit_card\"]",
        );
        assert_ne!(
            edited, now,
            "the emulator's merchant configuration changed shape"
        );
        let dir = self.bus.dir().join("fleet-files");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(name);
        std::fs::write(&file, edited).unwrap();
        let sig = dir.join(format!("{name}.sig"));
        posctl_ok(
            &self.bus,
            &[
                "config",
                "sign",
                "--key",
                key.unwrap_or(&self.fleet_key).to_str().unwrap(),
                "--out",
                sig.to_str().unwrap(),
                file.to_str().unwrap(),
            ],
        );
        (file, sig)
    }

    /// A key the terminal does not trust.
    fn foreign_key(&self) -> PathBuf {
        let key = self.bus.dir().join("foreign.key");
        let public = self.bus.dir().join("foreign.pub");
        posctl_ok(
            &self.bus,
            &[
                "config",
                "keygen",
                "--key",
                key.to_str().unwrap(),
                "--public",
                public.to_str().unwrap(),
            ],
        );
        key
    }

    fn download_dir_is_empty(&self) -> bool {
        std::fs::read_dir(self.bus.dir().join("otad-state"))
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with("action-"))
    }
}

/// (path, md5, sha1, sha256) of a file, as the mock's deployment builder takes it.
fn hashed(path: &Path) -> Hashed {
    let sum = |tool: &str| {
        let out = Command::new(tool).arg(path).output().unwrap();
        assert!(out.status.success(), "{tool}");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    (
        path.to_owned(),
        sum("md5sum"),
        sum("sha1sum"),
        sum("sha256sum"),
    )
}

type Hashed = (PathBuf, String, String, String);

fn artifacts<'a>(files: &[&'a Hashed]) -> Vec<(PathBuf, &'a str, &'a str, &'a str)> {
    files
        .iter()
        .map(|(p, md5, sha1, sha256)| (p.clone(), md5.as_str(), sha1.as_str(), sha256.as_str()))
        .collect()
}

/// A deployment with an OS chunk holding `bundle` and/or a merchant-config chunk holding a
/// configuration and its signature.
fn deployment(
    id: &str,
    download: Type,
    update: Type,
    window: Option<MaintenanceWindow>,
    bundle: Option<(&Hashed, &str)>,
    config: Option<(&Hashed, &Hashed)>,
) -> Deployment {
    let mut b = DeploymentBuilder::new(id, download, update);
    if let Some(w) = window {
        b = b.maintenance_window(w);
    }
    if let Some((bundle, version)) = bundle {
        b = b.chunk(
            ChunkProtocol::HTTPS,
            "os",
            version,
            "pos",
            artifacts(&[bundle]),
        );
    }
    if let Some((file, sig)) = config {
        b = b.chunk(
            ChunkProtocol::HTTPS,
            "merchant-config",
            "8",
            "shop",
            artifacts(&[file, sig]),
        );
    }
    b.build()
}

fn step(cnt: u32) -> Option<serde_json::Value> {
    Some(json!({"cnt": cnt, "of": 4}))
}

/// Wait until `cond` holds for otad's (state, last error), asking it to poll now and then.
async fn wait_for(
    update: &UpdateProxy<'_>,
    limit: Duration,
    what: &str,
    cond: impl Fn(&str, &str) -> bool,
) {
    let deadline = Instant::now() + limit;
    let mut next_check = Instant::now();
    loop {
        let state = update.state().await.unwrap_or_default();
        let err = update.last_error().await.unwrap_or_default();
        if cond(&state, &err) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: state {state:?}, last error {err:?}"
        );
        if Instant::now() >= next_check {
            // The mock asks for a poll a minute; the operator's console would not wait.
            let _ = update.check().await;
            next_check = Instant::now() + Duration::from_secs(2);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_hits(what: &str, limit: Duration, hits: impl Fn() -> usize) {
    let deadline = Instant::now() + limit;
    while hits() == 0 {
        assert!(Instant::now() < deadline, "the server never got {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn reboot_requested(logind: &mut Logind, limit: Duration) {
    tokio::time::timeout(limit, logind.reboots.recv())
        .await
        .expect("otad asked logind for a reboot in time")
        .expect("logind stand-in alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_and_a_signed_merchant_config_wait_for_the_maintenance_window_then_both_go_in() {
    let (mut t, target) = Terminal::start("pos-h1", TargetAuthorization::TargetToken).await;
    // The server asks the terminal who it is (configData), with its TargetToken.
    target.request_config(json!({
        "mode": "merge",
        "data": {
            "hw_boardname": smartpos_tests::update::COMPATIBLE,
            "hw_revision": "default",
            "sw_version": "1.0.0",
            "stack_version": env!("CARGO_PKG_VERSION"),
        },
    }));
    let _otad = t.otad().await;
    let (_conn, update, pay) = t.connect().await;
    wait_hits("configData", Duration::from_secs(30), || {
        target.config_data_hits()
    })
    .await;

    // The operator deploys 1.2.0 and merchant configuration 8 (Huabei off) together: the
    // download may start, the install must wait for the shop's maintenance window.
    let bundle = hashed(&t.rauc_env.bundle("1.2.0", None, 0));
    let (file, sig) = t.signed_config("merchant-v8.toml", 8, None);
    let (file, sig) = (hashed(&file), hashed(&sig));
    let names = "pos-1.2.0.raucb, merchant-v8.toml, merchant-v8.toml.sig";
    let downloading = target.expect_deployment_feedback(
        "21",
        Execution::Proceeding,
        Finished::None,
        step(1),
        vec![&format!("downloading {names}")],
    );
    let downloaded = target.expect_deployment_feedback(
        "21",
        Execution::Downloaded,
        Finished::None,
        step(2),
        vec![&format!("downloaded and verified {names}")],
    );
    let installing = target.expect_deployment_feedback(
        "21",
        Execution::Proceeding,
        Finished::None,
        step(3),
        vec!["installing 1.2.0"],
    );
    let installed = target.expect_deployment_feedback(
        "21",
        Execution::Proceeding,
        Finished::None,
        step(4),
        vec!["installed 1.2.0 into slot B; rebooting to verify it"],
    );
    target.push_deployment(deployment(
        "21",
        Type::Forced,
        Type::Attempt,
        Some(MaintenanceWindow::Unavailable),
        Some((&bundle, "1.2.0")),
        Some((&file, &sig)),
    ));
    wait_for(&update, Duration::from_secs(60), "the download", |s, _| {
        s == "downloaded"
    })
    .await;
    // Polls go on (every second while the action is open); the steps were told once each.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!((downloading.calls(), downloaded.calls()), (1, 1));
    assert_eq!(
        installing.calls(),
        0,
        "installed outside the maintenance window"
    );
    assert_eq!(
        pay.config_version().await.unwrap(),
        7,
        "config applied outside the window"
    );
    assert_eq!(t.rauc_env.primary(), "A");

    // The window opens: the configuration is applied at once, the bundle installed, and the
    // terminal reboots to prove the new system.
    target.push_deployment(deployment(
        "21",
        Type::Forced,
        Type::Attempt,
        Some(MaintenanceWindow::Available),
        Some((&bundle, "1.2.0")),
        Some((&file, &sig)),
    ));
    update.check().await.unwrap();
    reboot_requested(&mut t.logind, Duration::from_secs(60)).await;
    assert_eq!(t.rauc_env.primary(), "B");
    assert_eq!(pay.config_version().await.unwrap(), 8);
    wait_hits(
        "installed, awaiting reboot",
        Duration::from_secs(10),
        || installed.calls(),
    )
    .await;
    assert_eq!(
        (
            downloading.calls(),
            downloaded.calls(),
            installing.calls(),
            installed.calls()
        ),
        (1, 1, 1, 1),
        "each step once, no feedback per percent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_paying_at_the_till_holds_the_install_back_until_the_sale_ends() {
    let (mut t, target) = Terminal::start("pos-h2", TargetAuthorization::GatewayToken).await;
    let _otad = t.otad().await;
    let (_conn, update, pay) = t.connect().await;

    // A customer is at the till when the update arrives.
    let sale = pay
        .sale(
            1500,
            "CNY",
            "at-the-till",
            HashMap::from([("scan", Value::from(false))]),
        )
        .await
        .unwrap();
    let bundle = hashed(&t.rauc_env.bundle("1.3.0", None, 0));
    target.push_deployment(deployment(
        "22",
        Type::Forced,
        Type::Forced,
        None,
        Some((&bundle, "1.3.0")),
        None,
    ));
    wait_for(
        &update,
        Duration::from_secs(60),
        "waiting for the sale",
        |s, _| s == "waiting-for-sale",
    )
    .await;
    // It keeps waiting while the sale is open.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(update.state().await.unwrap(), "waiting-for-sale");
    assert_eq!(t.rauc_env.primary(), "A", "installed during a sale");

    // The customer walks away; the next poll installs.
    assert_eq!(pay.cancel(&sale.as_ref()).await.unwrap(), "cancelled");
    reboot_requested(&mut t.logind, Duration::from_secs(60)).await;
    assert_eq!(t.rauc_env.primary(), "B");
    // The till sells again once the install is done (the window was released).
    let next = pay
        .sale(
            900,
            "CNY",
            "after-install",
            HashMap::from([("scan", Value::from(false))]),
        )
        .await
        .expect("the install window was released");
    pay.cancel(&next.as_ref()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_holds_the_download_then_the_install_then_cancels_and_nothing_is_installed() {
    let (t, target) = Terminal::start("pos-h3", TargetAuthorization::TargetToken).await;
    let _otad = t.otad().await;
    let (_conn, update, _pay) = t.connect().await;
    let bundle = hashed(&t.rauc_env.bundle("1.4.0", None, 0));

    // download: skip — nothing is fetched.
    target.push_deployment(deployment(
        "23",
        Type::Skip,
        Type::Skip,
        None,
        Some((&bundle, "1.4.0")),
        None,
    ));
    update.check().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        t.download_dir_is_empty(),
        "downloaded although the server said skip"
    );
    assert_eq!(update.state().await.unwrap(), "idle");

    // download: attempt, update: skip — fetched and verified, not installed.
    target.push_deployment(deployment(
        "23",
        Type::Attempt,
        Type::Skip,
        None,
        Some((&bundle, "1.4.0")),
        None,
    ));
    wait_for(&update, Duration::from_secs(60), "the download", |s, _| {
        s == "downloaded"
    })
    .await;
    assert!(!t.download_dir_is_empty());

    // The operator cancels: the terminal agrees, drops the download, and says so once.
    let cancelled = target.expect_cancel_feedback(
        "23",
        Execution::Closed,
        Finished::Success,
        vec!["cancelled before the install; download removed"],
    );
    target.cancel_action("23");
    wait_hits("the cancel's answer", Duration::from_secs(30), || {
        cancelled.calls()
    })
    .await;
    wait_for(&update, Duration::from_secs(10), "idle", |s, _| s == "idle").await;
    assert!(t.download_dir_is_empty(), "the download was kept");
    // The server still lists the cancel (this mock never forgets it): no second answer.
    for _ in 0..3 {
        update.check().await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(
        cancelled.calls(),
        1,
        "the cancel was answered more than once"
    );
    assert_eq!(t.rauc_env.primary(), "A", "installed although cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_config_signed_by_a_stranger_is_refused_and_the_till_keeps_selling_with_the_old_one()
 {
    let (t, target) = Terminal::start("pos-h4", TargetAuthorization::TargetToken).await;
    let _otad = t.otad().await;
    let (conn, update, pay) = t.connect().await;

    // A configuration that says "Huabei off", signed with a key the terminal does not trust.
    let foreign = t.foreign_key();
    let (file, sig) = t.signed_config("merchant-v9.toml", 9, Some(&foreign));
    let (file, sig) = (hashed(&file), hashed(&sig));
    target.push_deployment(deployment(
        "24",
        Type::Forced,
        Type::Forced,
        None,
        None,
        Some((&file, &sig)),
    ));
    wait_for(&update, Duration::from_secs(60), "the refusal", |s, e| {
        s == "failed" && e.contains("merchant-v9.toml refused") && e.contains("signature")
    })
    .await;
    assert_eq!(pay.config_version().await.unwrap(), 7);
    // The server hears exactly why (the outcome is kept and sent again at each poll until
    // the server takes it: the mock takes only the body it expects).
    let why = update.last_error().await.unwrap();
    assert!(why.contains("version 7) stays"), "{why}");
    let failed = target.expect_deployment_feedback(
        "24",
        Execution::Closed,
        Finished::Failure,
        None,
        vec![&why],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while failed.calls() == 0 {
        assert!(
            Instant::now() < deadline,
            "the server never heard the failure"
        );
        update.check().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The till still sells with Huabei, as configuration 7 says.
    let path = pay
        .pay_with_code(
            3100,
            "CNY",
            "still-huabei",
            HashMap::new(),
            &format!(
                "28601{:013}",
                5_000_000_000u64 + u64::from(std::process::id())
            ),
        )
        .await
        .unwrap();
    let sale = smartpos_tests::tx_proxy(&conn, &path).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(
        sale.state().await.unwrap().as_str(),
        "succeeded" | "failed" | "cancelled"
    ) {
        assert!(Instant::now() < deadline, "the sale did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sale.state().await.unwrap(), "succeeded");
    assert_eq!(sale.funding_channels().await.unwrap(), ["huabei"]);

    // The same change signed by the fleet: applied without a reboot, and the server hears
    // success with the version.
    let (file, sig) = t.signed_config("merchant-v10.toml", 10, None);
    let (file, sig) = (hashed(&file), hashed(&sig));
    target.push_deployment(deployment(
        "25",
        Type::Forced,
        Type::Forced,
        None,
        None,
        Some((&file, &sig)),
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    while pay.config_version().await.unwrap() != 10 {
        assert!(
            Instant::now() < deadline,
            "configuration 10 was not applied"
        );
        let _ = update.check().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait_for(&update, Duration::from_secs(10), "idle", |s, _| s == "idle").await;
    assert_eq!(
        t.rauc_env.primary(),
        "A",
        "a configuration needs no new system"
    );
    assert!(t.download_dir_is_empty());
}
