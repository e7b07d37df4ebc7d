//! The payment daemon end to end: a private bus, scannerd on a replay camera, paymentd, and
//! the acquirer emulator over real TLS — as a vendor app and a cashier meet it.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use smartpos_acquirer_sim::ledger::TradeState;
use smartpos_bus::payment::{PaymentProxy, TransactionProxy};
use smartpos_scanner::decode::synth::{Scene, payment_frame};
use smartpos_tests::acquirer::{self, Pace};
use smartpos_tests::{Daemon, TestBus, as_nobody, bin, write_file};
use zbus::zvariant::{OwnedObjectPath, Value};

/// An Alipay code (18 digits) whose digits 3–5 choose the emulator's scenario.
fn alipay_code(scenario: &str, n: u32) -> String {
    format!(
        "28{scenario}{:013}",
        4_000_000_000u64 + u64::from(std::process::id()) * 100 + u64::from(n)
    )
}

fn camera_showing(dir: &Path, text: &str) -> std::path::PathBuf {
    let folder = dir.join(format!("camera-{}", text.len()));
    std::fs::create_dir_all(&folder).unwrap();
    let (img, _) = payment_frame(1280, 720, Scene::Qr, text, (0, 0), 5).unwrap();
    image::GrayImage::from_raw(img.width, img.height, img.data)
        .unwrap()
        .save(folder.join("0001.png"))
        .unwrap();
    let cfg = format!("[camera]\nreplay = \"{}\"\nfps = 10\n", folder.display());
    write_file(dir, "scannerd.toml", cfg.as_bytes())
}

struct Stack {
    bus: TestBus,
    sim: smartpos_acquirer_sim::Sim,
    _scannerd: Option<Daemon>,
    paymentd: Daemon,
}

async fn stack(camera_text: Option<&str>) -> Stack {
    let bus = TestBus::start();
    let sim = acquirer::start(bus.dir()).await;
    let scannerd = match camera_text {
        Some(text) => {
            let cfg = camera_showing(bus.dir(), text);
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
    let cfg = acquirer::paymentd_config(&sim, bus.dir(), Pace::Fast, camera_text.is_some());
    let paymentd = bus
        .spawn_daemon(
            "smartpos-paymentd",
            &["--config", cfg.to_str().unwrap()],
            "org.smartpos.Payment1",
        )
        .await;
    Stack {
        bus,
        sim,
        _scannerd: scannerd,
        paymentd,
    }
}

async fn payments(bus: &TestBus) -> (zbus::Connection, PaymentProxy<'static>) {
    let conn = bus.connect().await;
    let p = PaymentProxy::new(&conn).await.unwrap();
    (conn, p)
}

use smartpos_tests::tx_proxy as tx;

/// Wait until the sale reaches a terminal state; returns it.
async fn settled(t: &TransactionProxy<'_>, within: Duration) -> String {
    let mut changes = t.receive_changed().await.unwrap();
    let deadline = tokio::time::Instant::now() + within;
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

fn no_options() -> HashMap<&'static str, Value<'static>> {
    HashMap::new()
}

#[tokio::test]
async fn a_customer_shows_a_huabei_payment_code_and_the_app_sees_it_paid_with_huabei() {
    let code = alipay_code("601", 1);
    let s = stack(Some(&code)).await;
    let (conn, p) = payments(&s.bus).await;
    let path = p.sale(1234, "CNY", "order-1", no_options()).await.unwrap();
    let t = tx(&conn, &path).await;
    assert_eq!(settled(&t, Duration::from_secs(30)).await, "succeeded");
    assert_eq!(t.scheme().await.unwrap(), "alipay");
    assert_eq!(
        t.funding_channels().await.unwrap(),
        vec!["huabei".to_owned()]
    );
    assert_eq!(t.paid_fen().await.unwrap(), 1234);
    assert!(!t.acquirer_trade_no().await.unwrap().is_empty());
    let masked = t.code_masked().await.unwrap();
    assert!(
        masked.starts_with("28")
            && masked.ends_with(&code[code.len() - 4..])
            && masked.contains('*'),
        "{masked}"
    );
    // The acquirer's ledger holds exactly this one payment, funded by Huabei.
    let ledger = s.sim.ledger();
    let paid: Vec<_> = ledger
        .trades
        .values()
        .filter(|tr| tr.state == TradeState::Success)
        .collect();
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0].amount_fen, 1234);
    assert!(paid[0].huabei());
    assert_eq!(paid[0].out_trade_no, t.out_trade_no().await.unwrap());
}

#[tokio::test]
async fn a_risk_refusal_tells_the_cashier_the_cause_and_what_to_do() {
    let s = stack(None).await;
    let (conn, p) = payments(&s.bus).await;
    let path = p
        .pay_with_code(
            5000,
            "CNY",
            "order-risk",
            no_options(),
            &alipay_code("301", 2),
        )
        .await
        .unwrap();
    let t = tx(&conn, &path).await;
    assert_eq!(settled(&t, Duration::from_secs(30)).await, "failed");
    assert_eq!(t.cause().await.unwrap(), "risk_control");
    assert_eq!(
        t.error_code().await.unwrap(),
        "ACQ.PAYMENT_REQUEST_HAS_RISK"
    );
    assert!(!t.instruction_zh().await.unwrap().is_empty());
    assert!(
        t.instruction_en()
            .await
            .unwrap()
            .to_lowercase()
            .contains("another"),
        "{}",
        t.instruction_en().await.unwrap()
    );

    let out = s
        .bus
        .command(bin("posctl"))
        .args(["explain", &t.id().await.unwrap().to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains("risk_control")
            && text.contains("ACQ.PAYMENT_REQUEST_HAS_RISK"),
        "{text}"
    );
}

#[tokio::test]
async fn a_collection_code_shown_by_mistake_leaves_the_sale_waiting_with_a_hint() {
    let s = stack(Some("https://qr.alipay.com/fkx12345abcdef")).await;
    let (conn, p) = payments(&s.bus).await;
    let path = p
        .sale(800, "CNY", "order-collect", no_options())
        .await
        .unwrap();
    let t = tx(&conn, &path).await;
    let mut hint = String::new();
    for _ in 0..100 {
        hint = t.hint().await.unwrap();
        if !hint.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(hint.contains("付款码"), "{hint}");
    assert_eq!(t.state().await.unwrap(), "awaiting_code");
    assert!(
        s.sim.ledger().trades.is_empty(),
        "nothing was sent to the acquirer"
    );
    assert_eq!(p.cancel(&path.as_ref()).await.unwrap(), "cancelled");
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let s = stack(None).await;
    let (_conn, p) = payments(&s.bus).await;
    let invalid = |r: zbus::Result<OwnedObjectPath>| match r {
        Err(zbus::Error::MethodError(name, _, _)) => {
            name.as_str() == smartpos_bus::errors::INVALID_ARGS
        }
        _ => false,
    };
    let r = p.sale(-5, "CNY", "neg", no_options()).await;
    assert!(invalid(r.clone()), "{r:?}");
    assert!(invalid(p.sale(0, "CNY", "zero", no_options()).await));
    assert!(invalid(
        p.sale(10_000_000_001, "CNY", "huge", no_options()).await
    ));
    assert!(invalid(p.sale(100, "USD", "usd", no_options()).await));
    assert!(invalid(
        p.sale(100, "CNY", &"x".repeat(10_000), no_options()).await
    ));
    let mut odd = no_options();
    odd.insert("colour", Value::from("red"));
    assert!(invalid(p.sale(100, "CNY", "opt", odd).await));
    let mut wrong = no_options();
    wrong.insert("disable_funding", Value::from(vec!["gold"]));
    assert!(invalid(p.sale(100, "CNY", "opt2", wrong).await));
    assert!(
        p.list_transactions(50).await.unwrap().is_empty(),
        "nothing was journaled"
    );

    // A malformed code is refused by name, before anything is sent.
    let r = p
        .pay_with_code(100, "CNY", "junk", no_options(), "hello world")
        .await;
    assert!(
        matches!(&r, Err(zbus::Error::MethodError(n, Some(m), _)) if n.as_str() == smartpos_bus::payment::ERROR_REFUSED && m.contains("付款码")),
        "{r:?}"
    );
    assert!(s.sim.ledger().trades.is_empty());

    // A refund above what was paid is refused and the sale keeps its money.
    let path = p
        .pay_with_code(300, "CNY", "paid", no_options(), &alipay_code("000", 3))
        .await
        .unwrap();
    let conn = s.bus.connect().await;
    let t = tx(&conn, &path).await;
    assert_eq!(settled(&t, Duration::from_secs(30)).await, "succeeded");
    let r = p.refund(&path.as_ref(), 301, "too-much").await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(t.refunded_fen().await.unwrap(), 0);
    // A partial refund, then the same reference again: refunded once.
    let r1 = p.refund(&path.as_ref(), 100, "part-1").await.unwrap();
    let r2 = p.refund(&path.as_ref(), 100, "part-1").await.unwrap();
    assert_eq!(r1.get("id"), r2.get("id"));
    assert_eq!(t.refunded_fen().await.unwrap(), 100);
    let trade = s
        .sim
        .ledger()
        .trades
        .into_values()
        .find(|tr| tr.state == TradeState::Success)
        .unwrap();
    assert_eq!(trade.refunded_fen(), 100);
}

/// Bytes the journal takes on disk, its write-ahead log included.
fn journal_bytes(dir: &Path) -> u64 {
    ["journal.db", "journal.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// A careless vendor app: it repeats "no Huabei, no credit card" 100,000 times, sends an
/// option name of a megabyte, and pastes an invoice number carrying a right-to-left override
/// that would show it reversed in the back office. The sale keeps each channel once, the
/// refusal quotes a short excerpt of the name, and the hidden character is refused.
#[tokio::test]
async fn a_careless_app_s_oversized_or_hidden_input_is_kept_small_and_refused_briefly() {
    let s = stack(None).await;
    let (conn, p) = payments(&s.bus).await;
    let _warm = p
        .sale(100, "CNY", "first-of-the-day", no_options())
        .await
        .unwrap();
    let before = journal_bytes(s.bus.dir());
    let mut repeated = no_options();
    let channels: Vec<&str> = ["huabei", "credit_card"]
        .into_iter()
        .cycle()
        .take(100_000)
        .collect();
    repeated.insert("disable_funding", Value::from(channels));
    let path = p.sale(1800, "CNY", "careless-1", repeated).await.unwrap();
    let grown = journal_bytes(s.bus.dir()).saturating_sub(before);
    // Verbatim, the list took about 900 KB of journal per sale.
    assert!(grown < 64 * 1024, "the journal grew by {grown} bytes");
    let t = tx(&conn, &path).await;
    assert_eq!(t.state().await.unwrap(), "awaiting_code");

    let mut odd = no_options();
    let name = "k".repeat(1 << 20);
    odd.insert(name.as_str(), Value::from("x"));
    let r = p.sale(100, "CNY", "careless-2", odd).await;
    let Err(zbus::Error::MethodError(n, Some(message), _)) = &r else {
        panic!("{r:?}")
    };
    assert_eq!(n.as_str(), smartpos_bus::errors::INVALID_ARGS);
    assert!(message.len() < 1024, "{} bytes echoed", message.len());
    assert!(message.contains("more characters"), "{message}");

    let r = p.sale(100, "CNY", "INV\u{202E}4202", no_options()).await;
    let Err(zbus::Error::MethodError(n, Some(message), _)) = &r else {
        panic!("{r:?}")
    };
    assert_eq!(n.as_str(), smartpos_bus::errors::INVALID_ARGS);
    assert!(message.contains("text-direction"), "{message}");
    assert_eq!(
        p.list_transactions(50).await.unwrap().len(),
        2,
        "only the two accepted sales were journaled"
    );
}

#[tokio::test]
async fn what_paymentd_serves_matches_the_committed_xml() {
    let s = stack(None).await;
    let (conn, p) = payments(&s.bus).await;
    let path = p.sale(100, "CNY", "xml", no_options()).await.unwrap();
    for (object, iface) in [
        ("/org/smartpos/Payment1", "org.smartpos.Payment1"),
        (path.as_str(), "org.smartpos.Payment1.Transaction"),
    ] {
        let intro = zbus::fdo::IntrospectableProxy::builder(&conn)
            .destination("org.smartpos.Payment1")
            .unwrap()
            .path(object)
            .unwrap()
            .build()
            .await
            .unwrap();
        smartpos_tests::contract::assert_matches(&intro.introspect().await.unwrap(), iface);
    }
}

#[tokio::test]
async fn a_process_of_another_uid_cannot_take_payments() {
    let s = stack(None).await;
    let out = as_nobody(&s.bus, &bin("posctl"))
        .args(["sale", "1.00", "--code", &alipay_code("000", 4)])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(77),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.sim.ledger().trades.is_empty());
}

#[tokio::test]
async fn paymentd_killed_after_the_charge_finishes_the_sale_on_restart_without_charging_twice() {
    let mut s = stack(None).await;
    let (conn, p) = payments(&s.bus).await;
    // The acquirer charges, then the answer is lost on the way back.
    let path = p
        .pay_with_code(4200, "CNY", "lost", no_options(), &alipay_code("501", 5))
        .await
        .unwrap();
    for _ in 0..200 {
        if s.sim
            .ledger()
            .trades
            .values()
            .any(|tr| tr.state == TradeState::Success)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.paymentd.kill9();
    let cfg = s.bus.dir().join("smartpos-paymentd.toml");
    s.paymentd = s
        .bus
        .spawn_daemon(
            "smartpos-paymentd",
            &["--config", cfg.to_str().unwrap()],
            "org.smartpos.Payment1",
        )
        .await;
    let t = tx(&conn, &path).await;
    assert_eq!(settled(&t, Duration::from_secs(30)).await, "succeeded");
    let ledger = s.sim.ledger();
    assert_eq!(ledger.trades.len(), 1, "one order at the acquirer");
    let trade = ledger.trades.values().next().unwrap();
    assert_eq!((trade.state, trade.amount_fen), (TradeState::Success, 4200));
    assert_eq!(t.paid_fen().await.unwrap(), 4200);
}

#[tokio::test]
async fn a_sale_whose_answers_cannot_be_trusted_returns_to_the_till_as_unknown_do_not_charge_again()
{
    let s = stack(None).await;
    // The gateway signs with a key the terminal does not hold: nothing it says verifies.
    s.sim.with_ledger(|l| l.bad_signatures = true);
    let mut cmd = s.bus.command(bin("posctl"));
    cmd.args([
        "sale",
        "42.00",
        "--code",
        &alipay_code("000", 9),
        "--order-ref",
        "untrusted-till",
    ]);
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit 2 = outcome unknown, do not charge again\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("UNKNOWN") && text.contains("sale.outcome_unknown"),
        "{text}"
    );
    assert!(text.contains("do NOT charge again"), "{text}");
    // The fast pace's resolution window is 10 s.
    assert!(took < Duration::from_secs(30), "posctl took {took:?}");
    let ledger = s.sim.ledger();
    assert_eq!(ledger.trades.len(), 1, "charged at most once");
    let cancels = ledger.requests_to("alipay.trade.cancel");
    assert!((1..=6).contains(&cancels), "{cancels} cancels");
}

fn paymentd_exit(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(bin("smartpos-paymentd"))
        .args(args)
        .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
        .output()
        .expect("paymentd runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), said)
}

#[tokio::test]
async fn an_integrator_s_missing_or_wrong_key_files_are_named_by_check_config_and_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let sim = acquirer::start(dir.path()).await;
    let cfg = acquirer::paymentd_config(&sim, dir.path(), Pace::Fast, false);
    let cfg = cfg.to_str().unwrap();
    let merchant_path = dir.path().join("merchant.toml");
    let good = std::fs::read_to_string(&merchant_path).unwrap();
    let (code, said) = paymentd_exit(&["--config", cfg, "--check-config"]);
    assert_eq!(code, Some(0), "{said}");

    // The Alipay path's CA file does not exist.
    let first_ca = good
        .lines()
        .find(|l| l.starts_with("ca_file = "))
        .expect("a ca_file line")
        .to_owned();
    let nope = dir.path().join("nope-ca.pem");
    let missing = good.replacen(&first_ca, &format!("ca_file = \"{}\"", nope.display()), 1);
    std::fs::write(&merchant_path, &missing).unwrap();
    for args in [
        vec!["--config", cfg, "--check-config"],
        vec!["--config", cfg],
    ] {
        let (code, said) = paymentd_exit(&args);
        assert_eq!(code, Some(78), "{args:?}: {said}");
        assert!(said.contains("path \"alipay\""), "{said}");
        assert!(said.contains("ca_file"), "{said}");
        assert!(said.contains("nope-ca.pem"), "{said}");
        assert!(
            !said.contains("journal"),
            "a config fault blamed on the journal: {said}"
        );
    }
    assert!(
        !dir.path().join("journal.db").exists(),
        "the journal was opened before the configuration was checked"
    );

    // The CA file holds the WeChat client key instead of a certificate.
    let wx_key = good
        .lines()
        .find_map(|l| l.strip_prefix("client_key_file = "))
        .expect("client key")
        .trim_matches('"')
        .to_owned();
    let wrong = good.replacen(&first_ca, &format!("ca_file = \"{wx_key}\""), 1);
    std::fs::write(&merchant_path, &wrong).unwrap();
    let (code, said) = paymentd_exit(&["--config", cfg, "--check-config"]);
    assert_eq!(code, Some(78), "{said}");
    assert!(
        said.contains("ca_file") && said.contains("no PEM certificate"),
        "{said}"
    );

    // The Alipay private key file holds the Alipay *public* key.
    let line = |key: &str| {
        good.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .expect(key)
            .to_owned()
    };
    let public = line("alipay_public_key_file");
    let public_file = public.split('"').nth(1).unwrap();
    let wrong = good.replacen(
        &line("private_key_file"),
        &format!("private_key_file = \"{public_file}\""),
        1,
    );
    std::fs::write(&merchant_path, &wrong).unwrap();
    let (code, said) = paymentd_exit(&["--config", cfg, "--check-config"]);
    assert_eq!(code, Some(78), "{said}");
    assert!(said.contains("private_key_file"), "{said}");
}

/// The customer's code of a vendor app's own scan must never pay a sale paymentd armed the
/// scanner for before scannerd restarted: session ids are not reused across restarts, and
/// paymentd forgets scannerd's sessions when scannerd's bus name changes owner.
#[tokio::test]
async fn after_a_scanner_restart_a_vendor_apps_own_scan_does_not_pay_the_old_sale() {
    let bus = TestBus::start();
    let sim = acquirer::start(bus.dir()).await;
    let no_camera = write_file(bus.dir(), "no-camera.toml", b"");
    let mut scannerd = bus
        .spawn_daemon(
            "smartpos-scannerd",
            &["--config", no_camera.to_str().unwrap()],
            "org.smartpos.Scanner1",
        )
        .await;
    let cfg = acquirer::paymentd_config(&sim, bus.dir(), Pace::Fast, true);
    let _paymentd = bus
        .spawn_daemon(
            "smartpos-paymentd",
            &["--config", cfg.to_str().unwrap()],
            "org.smartpos.Payment1",
        )
        .await;
    let (conn, p) = payments(&bus).await;
    // The first customer's sale: paymentd arms the scanner for it.
    let first = p
        .sale(1111, "CNY", "first-customer", no_options())
        .await
        .unwrap();
    let t = tx(&conn, &first).await;
    assert_eq!(t.state().await.unwrap(), "awaiting_code");

    // The scanner restarts (an update, a crash) and now sees the second customer's code.
    assert!(scannerd.terminate().success());
    let second_code = alipay_code("000", 20);
    let camera = camera_showing(bus.dir(), &second_code);
    let _scannerd = bus
        .spawn_daemon(
            "smartpos-scannerd",
            &["--config", camera.to_str().unwrap()],
            "org.smartpos.Scanner1",
        )
        .await;
    // The vendor app scans for itself, in its own session.
    let scanner = smartpos_bus::scanner::ScannerProxy::new(&conn)
        .await
        .unwrap();
    let mut codes = scanner.receive_code_scanned().await.unwrap();
    let own = scanner.start_scan(20_000, &[]).await.unwrap();
    let sig = tokio::time::timeout(Duration::from_secs(20), codes.next())
        .await
        .expect("the vendor app receives the code")
        .unwrap();
    let args = sig.args().unwrap();
    assert_eq!(
        (args.text.as_str(), args.session),
        (second_code.as_str(), own)
    );

    // That code does not pay the old sale…
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        sim.ledger().trades.is_empty(),
        "nothing was sent to the acquirer: {:?}",
        sim.ledger().trades
    );
    assert_eq!(t.state().await.unwrap(), "awaiting_code");
    assert_eq!(t.paid_fen().await.unwrap(), 0);
    // …and the cashier is told the scanner restarted.
    let mut hint = String::new();
    for _ in 0..50 {
        hint = t.hint().await.unwrap();
        if !hint.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(hint.contains("restarted"), "{hint:?}");
    assert_eq!(p.cancel(&first.as_ref()).await.unwrap(), "cancelled");
}

/// Runs `dbus-send` as uid 65534 to GetAll a sale's properties; returns (success, output).
fn get_all_as_nobody(bus: &TestBus, path: &str, iface: &str) -> (bool, String) {
    let out = as_nobody(bus, Path::new("dbus-send"))
        .args([
            "--system",
            "--print-reply",
            "--dest=org.smartpos.Payment1",
            path,
            "org.freedesktop.DBus.Properties.GetAll",
            &format!("string:{iface}"),
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `gdbus monitor` of the payment service, as `nobody` or as the test's own user.
fn monitor(bus: &TestBus, as_stranger: bool) -> std::process::Child {
    let args = ["monitor", "--system", "--dest", "org.smartpos.Payment1"];
    let mut c = if as_stranger {
        let mut c = as_nobody(bus, Path::new("gdbus"));
        c.args(args);
        c
    } else {
        let mut c = bus.command("gdbus");
        c.args(args);
        c
    };
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn stop_monitor(mut child: std::process::Child) -> String {
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_process_of_another_uid_cannot_read_sales_or_hear_them_change() {
    let s = stack(None).await;
    let (conn, p) = payments(&s.bus).await;
    let stranger = monitor(&s.bus, true);
    let cashier = monitor(&s.bus, false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let path = p
        .pay_with_code(
            2500,
            "CNY",
            "private",
            no_options(),
            &alipay_code("000", 30),
        )
        .await
        .unwrap();
    let t = tx(&conn, &path).await;
    assert_eq!(settled(&t, Duration::from_secs(30)).await, "succeeded");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let heard_by_stranger = stop_monitor(stranger);
    let heard_by_cashier = stop_monitor(cashier);
    assert!(
        heard_by_cashier.contains("TransactionChanged"),
        "the signals were sent: {heard_by_cashier}"
    );
    // The stranger was connected and watching the service (so hearing nothing means refused).
    assert!(
        heard_by_stranger.contains("org.smartpos.Payment1 is owned by"),
        "the stranger's monitor never got going: {heard_by_stranger}"
    );
    assert!(
        !heard_by_stranger.contains("TransactionChanged")
            && !heard_by_stranger.contains("Changed ('succeeded'")
            && !heard_by_stranger.contains("private"),
        "a stranger heard: {heard_by_stranger}"
    );

    // Reading the sale: refused by the bus policy before the daemon sees it.
    let (ok, text) = get_all_as_nobody(&s.bus, path.as_str(), "org.smartpos.Payment1.Transaction");
    assert!(
        !ok && text.contains("AccessDenied") && text.contains("Rejected"),
        "{text}"
    );
    assert!(
        !text.contains("private") && !text.contains("2500"),
        "{text}"
    );
    // The service's own health stays readable.
    let (ok, text) = get_all_as_nobody(&s.bus, "/org/smartpos/Payment1", "org.smartpos.Payment1");
    assert!(ok && text.contains("TerminalId"), "{text}");
}

/// A policy an administrator might have loosened by mistake: anyone may talk to paymentd.
const LOOSE_POLICY: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><policy context="default"><allow send_destination="org.smartpos.Payment1"/></policy></busconfig>"#;

#[tokio::test]
async fn paymentd_refuses_a_stranger_a_sale_even_when_the_bus_policy_lets_it_through() {
    let bus = TestBus::start_with_extra_policy(Some(LOOSE_POLICY));
    let sim = acquirer::start(bus.dir()).await;
    let cfg = acquirer::paymentd_config(&sim, bus.dir(), Pace::Fast, false);
    let _paymentd = bus
        .spawn_daemon(
            "smartpos-paymentd",
            &["--config", cfg.to_str().unwrap()],
            "org.smartpos.Payment1",
        )
        .await;
    let (_conn, p) = payments(&bus).await;
    let path = p
        .sale(4321, "CNY", "private-2", no_options())
        .await
        .unwrap();
    let (ok, text) = get_all_as_nobody(&bus, path.as_str(), "org.smartpos.Payment1.Transaction");
    assert!(!ok && text.contains("AccessDenied"), "{text}");
    assert!(
        text.contains("may read sales"),
        "refused by the daemon: {text}"
    );
    assert!(
        !text.contains("private-2") && !text.contains("4321"),
        "{text}"
    );
    let (ok, text) = get_all_as_nobody(&bus, "/org/smartpos/Payment1", "org.smartpos.Payment1");
    assert!(ok && text.contains("TerminalId"), "{text}");
}

/// The D-Bus error name of a failed call.
fn error_name<T: std::fmt::Debug>(r: &zbus::Result<T>) -> String {
    match r {
        Err(zbus::Error::MethodError(name, _, _)) => name.to_string(),
        Err(zbus::Error::FDO(e)) => zbus::DBusError::name(&**e).to_string(),
        other => format!("not a D-Bus error: {other:?}"),
    }
}

#[tokio::test]
async fn each_kind_of_failure_has_its_own_error_name() {
    let s = stack(None).await;
    let (conn, p) = payments(&s.bus).await;
    let path = p
        .pay_with_code(600, "CNY", "kinds", no_options(), &alipay_code("000", 40))
        .await
        .unwrap();
    let t = tx(&conn, &path).await;
    assert_eq!(settled(&t, Duration::from_secs(30)).await, "succeeded");

    // An argument of the wrong type (i where the contract says x) is InvalidArgs, as the XML
    // promises, not zbus's own error.
    let r: zbus::Result<zbus::message::Message> = conn
        .call_method(
            Some("org.smartpos.Payment1"),
            "/org/smartpos/Payment1",
            Some("org.smartpos.Payment1"),
            "Sale",
            &(100i32, "CNY", "typed", HashMap::<&str, Value<'_>>::new()),
        )
        .await;
    assert_eq!(error_name(&r), smartpos_bus::errors::INVALID_ARGS, "{r:?}");
    let r: zbus::Result<zbus::message::Message> = conn
        .call_method(
            Some("org.smartpos.Payment1"),
            "/org/smartpos/Payment1",
            Some("org.smartpos.Payment1"),
            "Query",
            &("/org/smartpos/Payment1/tx/1",),
        )
        .await;
    assert_eq!(
        error_name(&r),
        smartpos_bus::errors::INVALID_ARGS,
        "a string is not a path: {r:?}"
    );

    // One sale, one path: tx/01 is not sale 1.
    let id = t.id().await.unwrap();
    let padded = OwnedObjectPath::try_from(format!("/org/smartpos/Payment1/tx/0{id}")).unwrap();
    let r = p.query(&padded.as_ref()).await;
    assert_eq!(error_name(&r), smartpos_bus::errors::INVALID_ARGS, "{r:?}");
    let r = p.refund(&padded.as_ref(), 100, "padded").await;
    assert_eq!(error_name(&r), smartpos_bus::errors::INVALID_ARGS, "{r:?}");
    assert_eq!(t.refunded_fen().await.unwrap(), 0);

    // A sale that does not exist is NotFound; a refund the sale cannot give is Refused.
    let missing = OwnedObjectPath::try_from("/org/smartpos/Payment1/tx/987654").unwrap();
    let r = p.query(&missing.as_ref()).await;
    assert_eq!(error_name(&r), smartpos_bus::errors::NOT_FOUND, "{r:?}");
    let r = p.refund(&path.as_ref(), 601, "too-much").await;
    assert_eq!(error_name(&r), smartpos_bus::errors::REFUSED, "{r:?}");
    let r = p.find_transaction("no-such-order").await;
    assert_eq!(error_name(&r), smartpos_bus::errors::NOT_FOUND, "{r:?}");
}

#[tokio::test]
async fn an_app_that_lost_the_answer_finds_its_sale_by_its_order_ref() {
    let s = stack(None).await;
    let (_conn, p) = payments(&s.bus).await;
    let path = p
        .sale(990, "CNY", "till-3/0042", no_options())
        .await
        .unwrap();
    let _other = p
        .sale(10, "CNY", "till-3/0043", no_options())
        .await
        .unwrap();
    assert_eq!(p.find_transaction("till-3/0042").await.unwrap(), path);
}

#[tokio::test]
async fn sigterm_as_soon_as_paymentd_owns_its_name_stops_it_cleanly() {
    let bus = TestBus::start();
    let sim = acquirer::start(bus.dir()).await;
    let cfg = acquirer::paymentd_config(&sim, bus.dir(), Pace::Fast, false);
    for round in 0..10 {
        let status = bus
            .start_and_stop_at_name(
                "smartpos-paymentd",
                &["--config", cfg.to_str().unwrap()],
                "org.smartpos.Payment1",
            )
            .await;
        assert_eq!(status.code(), Some(0), "round {round}: {status:?}");
    }
}

/// How many sale objects paymentd keeps on the bus (`EXPORTED` in
/// crates/paymentd/src/service.rs).
const SALE_OBJECTS: usize = 256;

#[tokio::test]
async fn after_a_long_day_old_finished_sales_leave_the_bus_and_a_lookup_brings_one_back() {
    // A long day at one till: the first sale of the morning still waits for its customer
    // (the app keeps watching it) while more than SALE_OBJECTS other sales are rung up and
    // cancelled. The bus does not keep every sale: the oldest finished one leaves it, the
    // one in progress stays, and when the cashier looks the old sale up it answers again.
    let s = stack(None).await;
    let (conn, p) = payments(&s.bus).await;
    let no_scan = HashMap::from([("scan", Value::Bool(false))]);
    let waiting = p
        .sale(500, "CNY", "morning/0000", no_scan.clone())
        .await
        .unwrap();
    let mut finished = Vec::new();
    // With the waiting one, that is one sale more than the bus keeps.
    for n in 1..=SALE_OBJECTS {
        let order = format!("morning/{n:04}");
        let path = p.sale(100, "CNY", &order, no_scan.clone()).await.unwrap();
        assert_eq!(p.cancel(&path).await.unwrap(), "cancelled");
        finished.push(path);
    }

    // The sale in progress is older than all of them and still answers.
    let w = tx(&conn, &waiting).await;
    assert_eq!(w.state().await.unwrap(), "awaiting_code");
    // The oldest finished sale left the bus; the next one did not.
    let first = tx(&conn, &finished[0]).await;
    let gone = first.state().await;
    assert!(
        gone.is_err(),
        "the oldest finished sale is still on the bus: {gone:?}"
    );
    assert_eq!(
        tx(&conn, &finished[1]).await.state().await.unwrap(),
        "cancelled"
    );

    // The cashier looks the first one up by its order number: it is back and answers.
    assert_eq!(
        p.find_transaction("morning/0001").await.unwrap(),
        finished[0]
    );
    assert_eq!(first.state().await.unwrap(), "cancelled");
    assert_eq!(first.amount_fen().await.unwrap(), 100);
    // It made room in turn: the oldest finished sale now on the bus left.
    assert!(tx(&conn, &finished[1]).await.state().await.is_err());
    assert_eq!(w.state().await.unwrap(), "awaiting_code");
}

/// A fake service manager's notification socket: what paymentd tells systemd.
struct Notifications {
    sock: tokio::net::UnixDatagram,
    path: std::path::PathBuf,
}

impl Notifications {
    fn bind(dir: &Path) -> Notifications {
        let path = dir.join("notify.sock");
        let sock = tokio::net::UnixDatagram::bind(&path).expect("bind the notify socket");
        Notifications { sock, path }
    }

    /// The next datagram, or None after `within`.
    async fn next(&self, within: Duration) -> Option<String> {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(within, self.sock.recv(&mut buf)).await {
            Ok(Ok(n)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            _ => None,
        }
    }

    /// How many `WATCHDOG=1` arrive within `window`, and whether `READY=1` did.
    async fn count(&self, window: Duration) -> (usize, bool) {
        let end = tokio::time::Instant::now() + window;
        let (mut pings, mut ready) = (0, false);
        while let Some(m) = self
            .next(end.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            pings += m.lines().filter(|l| *l == "WATCHDOG=1").count();
            ready |= m.lines().any(|l| l == "READY=1");
        }
        (pings, ready)
    }
}

#[tokio::test]
async fn paymentd_wedged_mid_sale_stops_its_watchdog_pings_and_once_restarted_finishes_the_sale() {
    // paymentd as systemd runs it: WatchdogSec=1s, and (a test build) a failpoint that
    // wedges the thread committing "waiting for the customer" while it holds the journal.
    let bus = TestBus::start();
    let sim = acquirer::start(bus.dir()).await;
    let cfg = acquirer::paymentd_config(&sim, bus.dir(), Pace::Fast, false);
    let notify = Notifications::bind(bus.dir());
    let env: [(&str, &std::ffi::OsStr); 3] = [
        ("NOTIFY_SOCKET", notify.path.as_os_str()),
        ("WATCHDOG_USEC", "1000000".as_ref()),
        ("SMARTPOS_FAILPOINT", "hang:waiting_for_customer".as_ref()),
    ];
    let args = ["--config", cfg.to_str().unwrap()];
    let name = "org.smartpos.Payment1";
    let mut paymentd = bus
        .spawn_daemon_env("smartpos-paymentd", &args, &env, name)
        .await;
    let (pings, ready) = notify.count(Duration::from_secs(2)).await;
    assert!(
        ready && pings >= 2,
        "a healthy paymentd: READY=1 and a ping every 0.5 s (ready {ready}, {pings} pings in 2 s)"
    );

    // The customer has to confirm on the phone (3 s): the sale waits, and the daemon wedges.
    let (conn, p) = payments(&bus).await;
    let path = p
        .pay_with_code(700, "CNY", "wedged", no_options(), &alipay_code("103", 7))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut last_ping = tokio::time::Instant::now();
    loop {
        let silence = Duration::from_secs(3);
        match notify.next(silence).await {
            Some(m) if m.lines().any(|l| l == "WATCHDOG=1") => {
                last_ping = tokio::time::Instant::now();
            }
            Some(_) => {}
            None if last_ping.elapsed() >= silence => break,
            None => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "paymentd went on pinging with its journal wedged (is target/debug/smartpos-paymentd \
             a test build, `make build-test`, with the failpoints feature?)"
        );
    }
    assert!(
        paymentd.child.try_wait().unwrap().is_none(),
        "paymentd is wedged, not dead: systemd's watchdog is what ends it"
    );

    // What systemd does next: kill it, start it again with the same environment.
    paymentd.kill9();
    let _paymentd = bus
        .spawn_daemon_env("smartpos-paymentd", &args, &env, name)
        .await;
    let (pings, ready) = notify.count(Duration::from_secs(2)).await;
    assert!(
        ready && pings >= 2,
        "restarted, the failpoint spent, paymentd pings again (ready {ready}, {pings} pings)"
    );
    let t = tx(&conn, &path).await;
    assert_eq!(settled(&t, Duration::from_secs(30)).await, "succeeded");
    assert_eq!(t.paid_fen().await.unwrap(), 700);
    let ledger = sim.ledger();
    assert_eq!(
        ledger.trades.len(),
        1,
        "one order at the acquirer, never a second charge"
    );
}

#[tokio::test]
async fn a_terminal_provisioned_with_the_files_the_emulator_writes_takes_a_payment() {
    // The VM system test's factory step: the emulator writes the terminal's merchant
    // configuration, CA and keys (here the terminal keeps them where they are written).
    let bus = TestBus::start();
    let sim = acquirer::start(bus.dir()).await;
    let out = bus.dir().join("factory");
    let status = std::process::Command::new(bin("smartpos-acquirer-sim"))
        .arg("--listen")
        .arg(sim.base_url().trim_start_matches("https://"))
        .arg("--pki-dir")
        .arg(&sim.pki().dir)
        .arg("--write-terminal-config")
        .arg(&out)
        .arg("--terminal-dir")
        .arg(&out)
        .args(["--pace", "fast"])
        .status()
        .expect("smartpos-acquirer-sim runs");
    assert!(status.success(), "--write-terminal-config: {status}");
    for key in ["app-private.key.pem", "wechat-api-key", "qra-key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("keys").join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "keys/{key} is {mode:o}");
    }
    let merchant = out.join("merchant.toml");
    let cfg = write_file(
        bus.dir(),
        "factory-paymentd.toml",
        format!(
            "merchant_config = \"{}\"\njournal = \"{}\"\nscanner = false\n",
            merchant.display(),
            bus.dir().join("factory-journal.db").display()
        )
        .as_bytes(),
    );
    let cfg = cfg.to_str().unwrap();
    let (code, said) = paymentd_exit(&["--config", cfg, "--check-config"]);
    assert_eq!(code, Some(0), "{said}");
    let _paymentd = bus
        .spawn_daemon(
            "smartpos-paymentd",
            &["--config", cfg],
            "org.smartpos.Payment1",
        )
        .await;
    let (conn, p) = payments(&bus).await;
    let path = p
        .pay_with_code(1234, "CNY", "factory", no_options(), &alipay_code("000", 9))
        .await
        .unwrap();
    let t = tx(&conn, &path).await;
    assert_eq!(settled(&t, Duration::from_secs(30)).await, "succeeded");
    // A WeChat payment too: its client certificate and API key come from the same files.
    let wechat = format!("134500{:012}", std::process::id());
    let path = p
        .pay_with_code(500, "CNY", "factory-wx", no_options(), &wechat)
        .await
        .unwrap();
    let t = tx(&conn, &path).await;
    assert_eq!(settled(&t, Duration::from_secs(30)).await, "succeeded");
}
