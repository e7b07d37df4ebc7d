//! `posctl doctor` and the daemons' `Diagnose()` on the real stack: a private bus, scannerd on
//! a replay camera, paymentd, and the acquirer emulator over TLS. Each story is something a
//! technician meets in a shop, and ends in the verdict the doctor must give.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use smartpos_bus::payment::{PaymentProxy, TransactionProxy};
use smartpos_bus::scanner::ScannerProxy;
use smartpos_scanner::decode::synth::{Scene, payment_frame};
use smartpos_tests::acquirer::{self, Pace};
use smartpos_tests::{Daemon, TestBus, bin, merchant, write_file};

/// An Alipay code (18 digits) whose digits 3–5 choose the emulator's scenario.
fn alipay_code(scenario: &str, n: u32) -> String {
    format!(
        "28{scenario}{:013}",
        5_000_000_000u64 + u64::from(std::process::id()) * 100 + u64::from(n)
    )
}

/// A replay camera showing `text`; `looping = false` plays three frames, then the camera
/// delivers nothing more (a camera that stops).
fn camera(dir: &Path, text: &str, looping: bool) -> PathBuf {
    let folder = dir.join("camera");
    std::fs::create_dir_all(&folder).unwrap();
    let (img, _) = payment_frame(1280, 720, Scene::Qr, text, (0, 0), 5).unwrap();
    let img = image::GrayImage::from_raw(img.width, img.height, img.data).unwrap();
    for i in 1..=3 {
        img.save(folder.join(format!("{i:04}.png"))).unwrap();
    }
    let cfg = format!(
        "[camera]\nreplay = \"{}\"\nfps = 10\nloop = {looping}\n",
        folder.display()
    );
    write_file(dir, "scannerd.toml", cfg.as_bytes())
}

struct Terminal {
    bus: TestBus,
    sim: smartpos_acquirer_sim::Sim,
    scannerd: Option<Daemon>,
    paymentd: Option<Daemon>,
    paymentd_cfg: PathBuf,
}

impl Terminal {
    /// The stack with a configuration synced a minute ago; `camera` = (what it shows, loop);
    /// `tweak` changes the merchant configuration before paymentd reads it.
    async fn start(camera_shows: Option<(&str, bool)>, tweak: impl FnOnce(&Path)) -> Terminal {
        Terminal::start_on(TestBus::start(), camera_shows, tweak).await
    }

    /// The same on a bus of the caller's making (e.g. one where RAUC may own its name).
    async fn start_on(
        bus: TestBus,
        camera_shows: Option<(&str, bool)>,
        tweak: impl FnOnce(&Path),
    ) -> Terminal {
        let sim = acquirer::start(bus.dir()).await;
        let scannerd = match camera_shows {
            Some((text, looping)) => {
                let cfg = camera(bus.dir(), text, looping);
                Some(
                    bus.spawn_daemon(
                        "smartpos-scannerd",
                        &["--config", cfg.to_str().unwrap()],
                        "org.smartpos.Scanner1",
                    )
                    .await,
                )
            }
            None => None,
        };
        let paymentd_cfg =
            acquirer::paymentd_config(&sim, bus.dir(), Pace::Fast, camera_shows.is_some());
        merchant::synced(bus.dir(), Duration::from_secs(60));
        tweak(bus.dir());
        let mut t = Terminal {
            bus,
            sim,
            scannerd,
            paymentd: None,
            paymentd_cfg,
        };
        t.start_paymentd().await;
        t
    }

    async fn start_paymentd(&mut self) {
        self.paymentd = Some(
            self.bus
                .spawn_daemon(
                    "smartpos-paymentd",
                    &["--config", self.paymentd_cfg.to_str().unwrap()],
                    "org.smartpos.Payment1",
                )
                .await,
        );
    }

    async fn payments(&self) -> (zbus::Connection, PaymentProxy<'static>) {
        let conn = self.bus.connect().await;
        let p = PaymentProxy::new(&conn).await.unwrap();
        (conn, p)
    }

    /// `posctl doctor --json ARGS`: (exit code, report).
    async fn doctor(&self, args: &[&str]) -> (i32, Value) {
        let mut cmd = self.bus.command(bin("posctl"));
        cmd.arg("doctor").arg("--json").args(args);
        // The emulator serves on this runtime while posctl waits: run it off the runtime.
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let report: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "posctl doctor printed no JSON ({e}): {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), report)
    }
}

fn group(report: &Value, n: u64) -> &Value {
    report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == n)
        .unwrap_or_else(|| panic!("no group {n} in {report:#}"))
}

fn finding<'a>(report: &'a Value, n: u64, subject: &str) -> &'a Value {
    group(report, n)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["subject"] == subject)
        .unwrap_or_else(|| panic!("no finding {subject} in group {n}: {:#}", group(report, n)))
}

fn verdict(report: &Value, n: u64) -> &str {
    group(report, n)["verdict"].as_str().unwrap()
}

use smartpos_tests::tx_proxy as tx;

/// Wait until the sale reaches a terminal state; returns it.
async fn settled(t: &TransactionProxy<'_>) -> String {
    let mut changes = t.receive_changed().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = t.state().await.unwrap();
        if matches!(s.as_str(), "succeeded" | "failed" | "cancelled") {
            return s;
        }
        if tokio::time::timeout_at(deadline, changes.next())
            .await
            .is_err()
        {
            return t.state().await.unwrap();
        }
    }
}

/// A customer pays with `code`; returns the sale's final state.
async fn pay(term: &Terminal, amount_fen: i64, order: &str, code: &str) -> String {
    let (conn, p) = term.payments().await;
    let path = p
        .pay_with_code(amount_fen, "CNY", order, Default::default(), code)
        .await
        .unwrap();
    settled(&tx(&conn, &path).await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_in_order_gets_ok_wherever_it_can_be_checked() {
    let term = Terminal::start(Some(("no code yet", true)), |_| {}).await;
    assert_eq!(
        pay(&term, 1500, "ok-1", &alipay_code("000", 1)).await,
        "succeeded"
    );
    let (exit, r) = term.doctor(&[]).await;
    for g in [2, 4, 5, 7, 8, 9, 10] {
        assert_eq!(verdict(&r, g), "ok", "group {g}: {:#}", group(&r, g));
    }
    assert_eq!(
        finding(&r, 3, "path:alipay")["verdict"],
        "ok",
        "the acquirer path answers a TLS handshake"
    );
    // No network daemon on this terminal yet: links and clock are unknown, not OK.
    assert_eq!(finding(&r, 3, "links")["verdict"], "unknown");
    assert_eq!(verdict(&r, 3), "unknown");
    let alipay = finding(&r, 8, "funding:alipay")["evidence"]
        .as_str()
        .unwrap();
    assert!(alipay.contains("huabei on"), "{alipay}");
    let camera = verdict(&r, 1);
    assert_eq!(exit, if camera == "ok" { 0 } else { 2 }, "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_stops_delivering_frames_is_a_hardware_failure() {
    let term = Terminal::start(Some(("no code yet", false)), |_| {}).await;
    // The vendor app asks the scanner directly, as it would for its own health screen.
    let conn = term.bus.connect().await;
    let s = ScannerProxy::new(&conn).await.unwrap();
    let mut camera = None;
    for _ in 0..100 {
        let f = s.diagnose().await.unwrap();
        camera = f.into_iter().find(|f| f.subject.starts_with("camera:"));
        if camera.as_ref().is_some_and(|c| c.verdict == "fail") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let camera = camera.expect("a camera finding");
    assert_eq!(camera.verdict, "fail", "{camera:?}");
    assert_eq!((camera.group, camera.group_name.as_str()), (1, "hardware"));
    assert!(camera.evidence.contains("no frames"), "{camera:?}");
    assert!(camera.instruction_zh.contains("摄像头"), "{camera:?}");

    let (exit, r) = term.doctor(&["--lang", "en"]).await;
    assert_eq!(verdict(&r, 1), "fail");
    assert_eq!(exit, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huabei_switched_off_in_the_config_is_named_as_the_cause() {
    let term = Terminal::start(None, |dir| merchant::huabei_off(dir, 42)).await;
    let (exit, r) = term.doctor(&["--huabei"]).await;
    assert_eq!(exit, 1, "{r:#}");
    assert_eq!(
        r["huabei"]["en"],
        "Huabei is switched off in this shop's configuration (version 42, synced 1 minute ago): ask your service provider to enable 花呗 for this merchant"
    );
    assert!(r["huabei"]["zh"].as_str().unwrap().contains("开通花呗"));
    assert_eq!(verdict(&r, 8), "fail");
    // --huabei shows only what a Huabei payment depends on.
    let shown: Vec<u64> = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_u64().unwrap())
        .collect();
    assert_eq!(shown, [1, 3, 7, 8, 9, 10]);
    let alipay = finding(&r, 8, "funding:alipay")["evidence"]
        .as_str()
        .unwrap();
    assert!(alipay.contains("huabei off"), "{alipay}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_not_synced_for_three_days_is_a_sync_delay() {
    let term = Terminal::start(None, |dir| {
        merchant::synced(dir, Duration::from_secs(3 * 86_400 + 600));
    })
    .await;
    let (exit, r) = term.doctor(&["--huabei"]).await;
    assert_eq!(verdict(&r, 7), "warn");
    let cfg = finding(&r, 7, "config");
    assert_eq!(cfg["code"], "config.stale");
    assert!(
        cfg["evidence"].as_str().unwrap().contains("3 days ago"),
        "{cfg}"
    );
    assert!(
        cfg["instruction_en"].as_str().unwrap().contains("synced"),
        "{cfg}"
    );
    let en = r["huabei"]["en"].as_str().unwrap();
    assert!(
        en.contains("out of date") && en.contains("3 days ago"),
        "{en}"
    );
    assert_eq!(exit, 2, "only warnings: {r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquirer_answer_with_a_bad_signature_is_a_platform_failure() {
    let term = Terminal::start(None, |_| {}).await;
    // The acquirer charged, but its answer's signature does not verify: the terminal does
    // not trust it, queries, and finds the sale paid. The doctor still names the mismatch.
    assert_eq!(
        pay(&term, 2100, "sig-1", &alipay_code("503", 2)).await,
        "succeeded"
    );
    let (_, p) = term.payments().await;
    let f = p.diagnose().await.unwrap();
    let platform = f
        .iter()
        .find(|f| f.subject == "recent:platform_incompatibility")
        .expect("a platform finding");
    assert_eq!(platform.verdict, "fail", "{platform:?}");
    assert_eq!(platform.group, 6);
    assert_eq!(platform.code, "net.bad_response");
    let (exit, r) = term.doctor(&[]).await;
    assert_eq!(verdict(&r, 6), "fail");
    assert_eq!(exit, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alipay_answering_that_the_product_is_not_signed_is_a_merchant_configuration_failure() {
    let term = Terminal::start(None, |_| {}).await;
    // The shop's contract with Alipay lapsed: the terminal's configuration still takes
    // Huabei, but Alipay refuses every payment of this merchant.
    term.sim
        .with_ledger(|l| l.merchant.alipay_products_signed = false);
    assert_eq!(
        pay(&term, 3200, "unsigned-1", &alipay_code("000", 6)).await,
        "failed"
    );
    let (exit, r) = term.doctor(&["--huabei"]).await;
    assert_eq!(verdict(&r, 8), "fail", "{:#}", group(&r, 8));
    let answered = finding(&r, 8, "recent:merchant_config");
    assert_eq!(answered["code"], "ACQ.ACCESS_FORBIDDEN");
    assert!(
        answered["evidence"]
            .as_str()
            .unwrap()
            .contains("ACQ.ACCESS_FORBIDDEN ×1 — acquirer said: 无权限使用接口"),
        "{answered}"
    );
    // The switches in the configuration are fine; the sentence names Alipay's answer.
    let alipay = finding(&r, 8, "funding:alipay")["evidence"]
        .as_str()
        .unwrap();
    assert!(alipay.contains("huabei on"), "{alipay}");
    let en = r["huabei"]["en"].as_str().unwrap();
    assert!(
        en.contains("ended with ACQ.ACCESS_FORBIDDEN")
            && en.contains("the merchant has not signed this Alipay product"),
        "{en}"
    );
    assert_eq!(exit, 1, "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_risk_refusal_by_the_acquirer_is_a_risk_control_warning() {
    let term = Terminal::start(None, |_| {}).await;
    // First a sale above the terminal's own per-sale limit (50,000 CNY): a local rule refuses
    // it before any code is scanned, and says so as data.
    let (_, p) = term.payments().await;
    let refused = p.sale(6_000_000, "CNY", "risk-0", Default::default()).await;
    let Err(zbus::Error::MethodError(name, _, reply)) = refused else {
        panic!("a 60,000 CNY sale was created: {refused:?}");
    };
    assert_eq!(name.as_str(), "org.smartpos.Error.Refused");
    let (_, cause, code, _, _): (String, String, String, String, String) =
        reply.body().deserialize().unwrap();
    assert_eq!(
        (cause.as_str(), code.as_str()),
        ("risk_control", "risk.per_sale_limit")
    );
    // Then the acquirer's risk control refuses a customer.
    assert_eq!(
        pay(&term, 5000, "risk-1", &alipay_code("301", 3)).await,
        "failed"
    );
    let (exit, r) = term.doctor(&[]).await;
    assert_eq!(verdict(&r, 9), "warn");
    let risk = finding(&r, 9, "recent:risk_control");
    assert_eq!(risk["code"], "ACQ.PAYMENT_REQUEST_HAS_RISK");
    assert!(
        risk["evidence"].as_str().unwrap().contains(
            "local rules blocked: risk.per_sale_limit ×1; acquirer refused: ACQ.PAYMENT_REQUEST_HAS_RISK ×1"
        ),
        "{risk}"
    );
    assert_eq!(risk["instruction_en"], "ask for another payment method");
    // The guidance group lists the failure with what the cashier was told.
    let last = &group(&r, 5)["findings"][0];
    assert_eq!(last["code"], "ACQ.PAYMENT_REQUEST_HAS_RISK");
    assert_eq!(exit, 2, "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_blocked_by_a_policy_rule_is_a_compliance_warning() {
    let term = Terminal::start(None, |dir| {
        merchant::policy_cap(dir, "pboc-static-cap", 50_000)
    })
    .await;
    let (_, p) = term.payments().await;
    let refused = p
        .pay_with_code(
            60_000,
            "CNY",
            "policy-1",
            Default::default(),
            &alipay_code("000", 4),
        )
        .await;
    // No sale was created, so there is no sale object to read the explanation from: the
    // app gets it as data in the error itself, after the sentence every D-Bus library shows.
    let Err(zbus::Error::MethodError(name, message, reply)) = refused else {
        panic!("a 600 CNY sale above the 500 CNY cap went through: {refused:?}");
    };
    assert_eq!(name.as_str(), "org.smartpos.Error.Refused");
    let (sentence, cause, code, zh, en): (String, String, String, String, String) =
        reply.body().deserialize().unwrap();
    assert_eq!(Some(&sentence), message.as_ref());
    assert_eq!(
        (cause.as_str(), code.as_str()),
        ("compliance", "policy.pboc-static-cap")
    );
    assert_eq!(
        (zh.as_str(), en.as_str()),
        ("超过合规限额", "above the compliance cap for payment codes")
    );
    let (exit, r) = term.doctor(&[]).await;
    assert_eq!(verdict(&r, 10), "warn");
    let c = finding(&r, 10, "recent:compliance");
    assert_eq!(c["code"], "policy.pboc-static-cap");
    assert!(
        c["evidence"]
            .as_str()
            .unwrap()
            .contains("policy rules blocked: policy.pboc-static-cap ×1"),
        "{c}"
    );
    assert_eq!(exit, 2, "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_payment_code_is_a_user_error() {
    let term = Terminal::start(None, |_| {}).await;
    assert_eq!(
        pay(&term, 900, "exp-1", &alipay_code("201", 5)).await,
        "failed"
    );
    let (exit, r) = term.doctor(&["--lang", "zh"]).await;
    assert_eq!(verdict(&r, 4), "warn");
    let u = finding(&r, 4, "recent:user_error");
    assert_eq!(u["code"], "ACQ.PAYMENT_AUTH_CODE_INVALID");
    assert!(
        u["evidence"]
            .as_str()
            .unwrap()
            .contains("expired or used codes: 1"),
        "{u}"
    );
    assert!(
        u["instruction_zh"].as_str().unwrap().contains("刷新付款码"),
        "{u}"
    );
    assert_eq!(exit, 2, "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_code_shown_by_mistake_is_a_user_error() {
    let term = Terminal::start(Some(("https://qr.alipay.com/fkx12345abcdef", true)), |_| {}).await;
    let (conn, p) = term.payments().await;
    let path = p
        .sale(800, "CNY", "collect-1", Default::default())
        .await
        .unwrap();
    let t = tx(&conn, &path).await;
    for _ in 0..100 {
        if !t.hint().await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(t.hint().await.unwrap().contains("付款码"));
    // The sale still waits for a payment code: nothing failed in the journal, yet the doctor
    // knows what happened at the till.
    assert_eq!(t.state().await.unwrap(), "awaiting_code");
    let (exit, r) = term.doctor(&[]).await;
    assert_eq!(verdict(&r, 4), "warn");
    let u = finding(&r, 4, "recent:user_error");
    assert_eq!(u["code"], "local.collection_qr.alipay");
    assert!(
        u["evidence"]
            .as_str()
            .unwrap()
            .contains("collection codes shown: 1"),
        "{u}"
    );
    assert!(exit == 2 || exit == 1, "{r:#}");
    // The scanner saw QR codes from the camera; the payment side refused their family.
    let families = finding(&r, 2, "families")["evidence"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(families.contains("camera/qr"), "{families}");
    let refused = finding(&r, 2, "refused_families")["evidence"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        refused.contains("code families refused in the last 24 h: local.collection_qr.alipay ×"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_is_not_running_leaves_its_groups_unknown() {
    let mut term = Terminal::start(Some(("no code yet", true)), |_| {}).await;
    // The payment daemon stops.
    let status = term.paymentd.take().unwrap().terminate();
    assert!(status.success());
    let (exit, r) = term.doctor(&[]).await;
    for g in 4..=10 {
        assert_eq!(verdict(&r, g), "unknown", "group {g}: {:#}", group(&r, g));
    }
    let down = finding(&r, 2, "smartpos-paymentd");
    assert_eq!(down["verdict"], "fail");
    assert!(down["evidence"].as_str().unwrap().contains("not running"));
    assert_eq!(exit, 1);
    // Back up, and the scanner daemon stops instead.
    term.start_paymentd().await;
    assert!(term.scannerd.take().unwrap().terminate().success());
    let (_, r) = term.doctor(&[]).await;
    assert_eq!(verdict(&r, 1), "unknown");
    assert_eq!(finding(&r, 2, "smartpos-scannerd")["verdict"], "warn");
    assert_eq!(verdict(&r, 8), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_prints_both_languages_for_a_person() {
    let term = Terminal::start(None, |dir| merchant::huabei_off(dir, 9)).await;
    let mut cmd = term.bus.command(bin("posctl"));
    cmd.args(["doctor", "--huabei"]);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("merchant_config 商户配置"), "{text}");
    assert!(
        text.contains("Huabei: Huabei is switched off in this shop's configuration (version 9"),
        "{text}"
    );
    assert!(
        text.contains("花呗:请联系服务商为本商户开通花呗收款"),
        "{text}"
    );

    // A technician who reads only one of the two languages asks for it.
    let only = |lang: &'static str| {
        let mut cmd = term.bus.command(bin("posctl"));
        cmd.args(["doctor", "--huabei", "--lang", lang]);
        async move {
            let out = tokio::task::spawn_blocking(move || cmd.output())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(out.status.code(), Some(1));
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let en = only("en").await;
    assert!(en.contains(" merchant_config "), "{en}");
    assert!(
        en.contains("→ ask your service provider to enable 花呗 for this merchant"),
        "{en}"
    );
    assert!(
        !en.contains("商户配置") && !en.contains("请联系服务商"),
        "{en}"
    );
    assert!(!en.contains("花呗:"), "{en}");
    let zh = only("zh").await;
    assert!(zh.contains(" 商户配置 "), "{zh}");
    assert!(zh.contains("→ 请联系服务商为本商户开通花呗收款"), "{zh}");
    assert!(zh.contains("花呗:请联系服务商为本商户开通花呗收款"), "{zh}");
    assert!(
        !zh.contains("merchant_config") && !zh.contains("Huabei:"),
        "{zh}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_and_update_daemons_answer_for_their_groups_when_they_run() {
    use smartpos_bus::update::UpdateProxy;
    use smartpos_tests::update::{EXTRA_POLICY, RaucEnv, otad_config};

    let bus = TestBus::start_with_extra_policy(Some(EXTRA_POLICY));
    let rauc_env = RaucEnv::new(bus.dir());
    let _rauc = rauc_env.service(&bus, "A");
    let term = Terminal::start_on(bus, None, |_| {}).await;
    let dir = term.bus.dir().to_path_buf();
    // The update daemon, with no fleet server (a technician's USB stick is its only source),
    // on a system whose factory image is version 1.0.0.
    let otad_cfg = otad_config(&dir, None, "pos-doctor", &[], 5);
    let _otad = term
        .bus
        .spawn_daemon(
            "smartpos-otad",
            &["--config", otad_cfg.to_str().unwrap()],
            "org.smartpos.Update1",
        )
        .await;
    // The network daemon, probing the acquirer paths of the merchant configuration.
    let netd_cfg = write_file(
        &dir,
        "smartpos-netd.toml",
        format!(
            "merchant_config = \"{}\"\n\n[schedule]\nendpoint_interval_s = 1\ngateway_interval_s = 1\nresolver_interval_s = 1\nlink_poll_ms = 200\ntimeout_ms = 700\n",
            dir.join("merchant.toml").display()
        )
        .as_bytes(),
    );
    let _netd = term
        .bus
        .spawn_daemon(
            "smartpos-netd",
            &["--config", netd_cfg.to_str().unwrap()],
            "org.smartpos.Network1",
        )
        .await;

    let (_, r) = term.doctor(&[]).await;
    // Software: every daemon's version, netd's and otad's included.
    for daemon in ["smartpos-netd", "smartpos-otad"] {
        let f = finding(&r, 2, daemon);
        assert_eq!(f["verdict"], "ok", "{f}");
        assert!(f["evidence"].as_str().unwrap().starts_with(daemon), "{f}");
    }
    // Network: the links come from netd now, not "netd is not running".
    let link = finding(&r, 3, "link");
    assert_ne!(link["verdict"], "unknown", "{link}");
    assert!(
        !group(&r, 3)["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["subject"] == "links"),
        "{:#}",
        group(&r, 3)
    );
    // Platform: netd's clock, and the running system against the fleet, from otad.
    finding(&r, 6, "clock");
    let fleet = finding(&r, 6, "fleet");
    assert_eq!(fleet["verdict"], "ok", "{fleet}");
    assert!(
        fleet["evidence"]
            .as_str()
            .unwrap()
            .starts_with("running system 1.0.0; smartpos-otad is idle"),
        "{fleet}"
    );

    // A technician brings a stick with an older system; the terminal refuses it and keeps
    // 1.0.0. The doctor tells the next technician what happened.
    let old = rauc_env.bundle("0.9.0", None, 0);
    let conn = term.bus.connect().await;
    let update = UpdateProxy::new(&conn).await.unwrap();
    let err = update
        .install_local(&old.display().to_string())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, zbus::Error::MethodError(n, _, _) if n.as_str() == "org.smartpos.Error.Refused"),
        "{err:?}"
    );
    let (exit, r) = term.doctor(&[]).await;
    let fleet = finding(&r, 6, "fleet");
    assert_eq!(
        (&fleet["verdict"], &fleet["code"]),
        (&"warn".into(), &"update.failed".into()),
        "{fleet}"
    );
    assert!(
        fleet["evidence"].as_str().unwrap().contains(
            "running system 1.0.0; the last update did not install: downgrade from 1.0.0 to 0.9.0 refused"
        ),
        "{fleet}"
    );
    assert!(!fleet["instruction_en"].as_str().unwrap().is_empty());
    assert_ne!(exit, 0, "{r:#}");
}
