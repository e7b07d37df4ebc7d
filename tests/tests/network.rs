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
