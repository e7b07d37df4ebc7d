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

async fn tx(conn: &zbus::Connection, path: &OwnedObjectPath) -> TransactionProxy<'static> {
    TransactionProxy::builder(conn)
        .path(path.clone())
        .unwrap()
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap()
}

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
        Err(zbus::Error::FDO(e)) => matches!(*e, zbus::fdo::Error::InvalidArgs(_)),
        Err(zbus::Error::MethodError(name, _, _)) => {
            name.as_str() == "org.freedesktop.DBus.Error.InvalidArgs"
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
