//! The payment daemon on a network that fails: the real paymentd, the acquirer emulator
//! behind the fault proxy (or a server with a bad certificate), and posctl — as a cashier
//! and a technician meet it.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use smartpos_acquirer_sim::ledger::TradeState;
use smartpos_bus::payment::{PaymentProxy, TransactionProxy};
use smartpos_faultproxy::certs::{CertKind, CertServer, TestPki};
use smartpos_faultproxy::{FaultProxy, Mode};
use smartpos_tests::acquirer::{self, Pace};
use smartpos_tests::{Daemon, TestBus, bin};
use zbus::zvariant::{OwnedObjectPath, Value};

/// An Alipay code (18 digits) whose digits 3–5 choose the emulator's scenario.
fn alipay_code(scenario: &str, n: u32) -> String {
    format!(
        "28{scenario}{:013}",
        5_000_000_000u64 + u64::from(std::process::id()) * 100 + u64::from(n)
    )
}

struct Stack {
    bus: TestBus,
    sim: smartpos_acquirer_sim::Sim,
    _paymentd: Daemon,
}

async fn start_paymentd(bus: &TestBus, cfg: &std::path::Path) -> Daemon {
    bus.spawn_daemon(
        "smartpos-paymentd",
        &["--config", cfg.to_str().unwrap()],
        "org.smartpos.Payment1",
    )
    .await
}

/// paymentd whose every acquirer path goes through a fault proxy in front of the emulator.
async fn behind_proxy() -> (Stack, FaultProxy) {
    let bus = TestBus::start();
    let sim = acquirer::start(bus.dir()).await;
    let proxy = FaultProxy::start("127.0.0.1:0".parse().unwrap(), sim.local_addr())
        .await
        .unwrap();
    let base = format!("https://{}", proxy.addr());
    let cfg = acquirer::paymentd_config_at(&sim, &base, bus.dir(), Pace::Fast, false, |_| {});
    let paymentd = start_paymentd(&bus, &cfg).await;
    (
        Stack {
            bus,
            sim,
            _paymentd: paymentd,
        },
        proxy,
    )
}

use smartpos_tests::tx_proxy as tx;

async fn pay(p: &PaymentProxy<'_>, fen: i64, order: &str, code: &str) -> OwnedObjectPath {
    p.pay_with_code(
        fen,
        "CNY",
        order,
        std::collections::HashMap::<&str, Value<'_>>::new(),
        code,
    )
    .await
    .unwrap()
}

/// Wait for a final state, noting every state on the way.
async fn settle(t: &TransactionProxy<'_>, within: Duration) -> (String, Vec<String>) {
    let mut changes = t.receive_changed().await.unwrap();
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let s = t.state().await.unwrap();
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        if matches!(s.as_str(), "succeeded" | "failed" | "cancelled") {
            return (s, seen);
        }
        if tokio::time::timeout_at(deadline, changes.next())
            .await
            .is_err()
        {
            return (t.state().await.unwrap(), seen);
        }
    }
}

#[tokio::test]
async fn a_second_sale_reuses_the_connection_to_the_acquirer() {
    let (s, proxy) = behind_proxy().await;
    let conn = s.bus.connect().await;
    let p = PaymentProxy::new(&conn).await.unwrap();
    for n in 1..=2 {
        let path = pay(
            &p,
            1_000 + i64::from(n),
            &format!("reuse-{n}"),
            &alipay_code("000", n),
        )
        .await;
        let (state, _) = settle(&tx(&conn, &path).await, Duration::from_secs(30)).await;
        assert_eq!(state, "succeeded");
    }
    assert_eq!(
        proxy.accepted(),
        1,
        "the second sale skipped the TCP connect and the TLS handshake"
    );
    assert_eq!(s.sim.ledger().trades.len(), 2);
}

#[tokio::test]
async fn an_answer_cut_off_mid_way_is_resolved_by_query_and_charged_once() {
    let (s, proxy) = behind_proxy().await;
    let conn = s.bus.connect().await;
    let p = PaymentProxy::new(&conn).await.unwrap();
    // A first sale opens the connection the next one will use.
    let warm = pay(&p, 100, "cut-0", &alipay_code("000", 20)).await;
    assert_eq!(
        settle(&tx(&conn, &warm).await, Duration::from_secs(30))
            .await
            .0,
        "succeeded"
    );
    // The link breaks 40 bytes into the next answer — after the acquirer took the payment —
    // and stays broken (every new connection is cut in its handshake) for a while.
    proxy.set_mode(Mode::ResetAfter(40));
    let path = pay(&p, 4_200, "cut-1", &alipay_code("000", 21)).await;
    let t = tx(&conn, &path).await;
    let mut changes = t.receive_changed().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while t.state().await.unwrap() != "unknown" {
        assert!(
            tokio::time::timeout_at(deadline, changes.next())
                .await
                .is_ok(),
            "the cut-off answer never made the sale unknown (state {})",
            t.state().await.unwrap()
        );
    }
    assert_eq!(t.error_code().await.unwrap(), "net.reset_mid_response");
    // The link comes back; the terminal's query finds the payment.
    proxy.set_mode(Mode::Pass);
    let (state, seen) = settle(&t, Duration::from_secs(30)).await;
    assert_eq!(state, "succeeded", "{seen:?}");
    assert_eq!(t.paid_fen().await.unwrap(), 4_200);
    let ledger = s.sim.ledger();
    let trades: Vec<_> = ledger
        .trades
        .values()
        .filter(|t| t.amount_fen == 4_200)
        .collect();
    assert_eq!(trades.len(), 1, "one charge");
    assert_eq!(trades[0].state, TradeState::Success);
    assert_eq!(
        ledger.requests_to("alipay.trade.pay"),
        2,
        "the warm-up sale and this one: the payment was never sent again"
    );
    assert!(ledger.requests_to("alipay.trade.query") >= 1);
}

#[tokio::test]
async fn posctl_sale_returns_at_once_when_the_acquirer_certificate_expired() {
    let bus = TestBus::start();
    let sim = acquirer::start(bus.dir()).await;
    let pki = TestPki::new().unwrap();
    let expired = CertServer::start(&pki, CertKind::Expired).await.unwrap();
    let ca = bus.dir().join("alipay-ca.pem");
    std::fs::write(&ca, pki.ca_pem()).unwrap();
    let (url, sim_url) = (expired.url(), sim.base_url());
    let cfg = acquirer::paymentd_config_at(&sim, &sim_url, bus.dir(), Pace::Fast, false, |t| {
        // The Alipay path (the first) goes to the expired server and pins its CA.
        let head = "name = \"alipay\"\nkind = \"alipay\"\n";
        let at = t.find(head).unwrap() + head.len();
        let end = at + t[at..].match_indices('\n').nth(1).unwrap().0 + 1;
        t.replace_range(
            at..end,
            &format!("url = \"{url}\"\nca_file = \"{}\"\n", ca.display()),
        );
    });
    let _paymentd = start_paymentd(&bus, &cfg).await;
    let mut cmd = bus.command(bin("posctl"));
    cmd.args([
        "sale",
        "12.00",
        "--code",
        &alipay_code("000", 30),
        "--order-ref",
        "expired-till",
    ]);
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit 1 = not paid\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("NOT SENT — nothing was charged"), "{text}");
    assert!(
        text.contains("platform_incompatibility (net.cert_expired)"),
        "{text}"
    );
    assert!(text.contains("date and time"), "{text}");
    // It used to wait until killed; now it returns as soon as the sale is back to waiting.
    assert!(took < Duration::from_secs(15), "posctl took {took:?}");
    assert!(
        sim.ledger().trades.is_empty(),
        "nothing reached an acquirer"
    );
}

/// smartpos-netd watching the merchant configuration's paths, probing every second, with a
/// resolver that answers nothing (the tests do not ask the machine's own).
async fn start_netd(bus: &TestBus) -> (Daemon, std::net::UdpSocket) {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let cfg = format!(
        "merchant_config = \"{}\"\nresolvers = [\"{}\"]\n\n[schedule]\nendpoint_interval_s = 1\ngateway_interval_s = 5\nresolver_interval_s = 5\ntimeout_ms = 700\n",
        bus.dir().join("merchant.toml").display(),
        silent.local_addr().unwrap()
    );
    let cfg = smartpos_tests::write_file(bus.dir(), "smartpos-netd.toml", cfg.as_bytes());
    let netd = bus
        .spawn_daemon(
            "smartpos-netd",
            &["--config", cfg.to_str().unwrap()],
            "org.smartpos.Network1",
        )
        .await;
    (netd, silent)
}

/// A cashier scans while the Alipay server is down, on a till from `behind_proxy`; returns
/// posctl's exit code and what it printed.
async fn sale_while_alipay_is_down(
    s: &Stack,
    proxy: &FaultProxy,
    order: &str,
    n: u32,
) -> (i32, String) {
    proxy.set_mode(Mode::Refuse);
    let mut cmd = s.bus.command(bin("posctl"));
    cmd.args([
        "sale",
        "8.80",
        "--code",
        &alipay_code("000", n),
        "--order-ref",
        order,
    ]);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_that_never_left_tells_the_cashier_what_netd_sees_on_the_path() {
    let (s, proxy) = behind_proxy().await;
    let (_netd, _dns) = start_netd(&s.bus).await;
    let conn = s.bus.connect().await;
    let (code, text) = sale_while_alipay_is_down(&s, &proxy, "netd-down", 40).await;
    assert_eq!(code, 1, "not paid, back to waiting\n{text}");
    assert!(text.contains("NOT SENT — nothing was charged"), "{text}");
    assert!(text.contains("network (net.refused)"), "{text}");

    // What netd says about the Alipay path now is what the cashier was told.
    let net = smartpos_bus::network::NetworkProxy::new(&conn)
        .await
        .unwrap();
    let rows = net.paths().await.unwrap();
    let alipay = rows
        .iter()
        .find(|r| r.0 == "alipay")
        .expect("netd watches alipay");
    assert!(
        alipay.3 == "net.refused" || alipay.3 == "net.no_route",
        "netd sees the path down: {alipay:?}"
    );
    // The reason without its "for N seconds", which grows while we read it.
    let reason = alipay.4.split(" for ").next().unwrap();
    assert!(reason.starts_with("Alipay unreachable: "), "{alipay:?}");
    assert!(
        text.contains(&format!("network check: {reason}")),
        "the cashier reads netd's diagnosis {reason:?}\n{text}"
    );

    // The app sees the same, in both languages, on the sale's object.
    let p = PaymentProxy::new(&conn).await.unwrap();
    let sale = p.find_transaction("netd-down").await.unwrap();
    let t = tx(&conn, &sale).await;
    assert_eq!(t.state().await.unwrap(), "awaiting_code");
    assert_eq!(t.error_code().await.unwrap(), "net.refused");
    assert!(t.instruction_en().await.unwrap().contains(reason));
    let zh = t.instruction_zh().await.unwrap();
    assert!(zh.contains("网络检测:支付宝无法连接"), "{zh}");
    assert!(s.sim.ledger().trades.is_empty(), "nothing reached Alipay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_netd_a_sale_that_never_left_still_goes_back_to_waiting() {
    let (s, proxy) = behind_proxy().await;
    let (code, text) = sale_while_alipay_is_down(&s, &proxy, "no-netd", 41).await;
    assert_eq!(code, 1, "not paid, back to waiting\n{text}");
    assert!(text.contains("NOT SENT — nothing was charged"), "{text}");
    assert!(text.contains("network (net.refused)"), "{text}");
    assert!(
        !text.contains("network check"),
        "no netd, no diagnosis\n{text}"
    );

    // And when the server is back, the next scan pays.
    proxy.set_mode(Mode::Pass);
    let conn = s.bus.connect().await;
    let p = PaymentProxy::new(&conn).await.unwrap();
    let path = pay(&p, 880, "no-netd-2", &alipay_code("000", 60)).await;
    let (state, _) = settle(&tx(&conn, &path).await, Duration::from_secs(30)).await;
    assert_eq!(state, "succeeded");
}
