//! A new merchant configuration while sales go on, and the install window an update holds:
//! stories from the till, against the acquirer emulator.

mod common;

use std::time::Duration;

use common::{Harness, alipay_code};
use smartpos_payment::{
    Cause, FundingChannel, PayTarget, PaymentError, ReloadError, SaleOptions, SaleState,
};

const SETTLE: Duration = Duration::from_secs(30);

/// The running configuration's text with Huabei switched off, as version `v`.
fn huabei_off(h: &Harness, v: u64) -> String {
    std::fs::read_to_string(&h.config_path)
        .unwrap()
        .replace("version = 7", &format!("version = {v}"))
        .replace(
            "funding = [\"balance\", \"bank_card\", \"huabei\", \"huabei_instalments\", \"credit_card\"]",
            "funding = [\"balance\", \"bank_card\", \"credit_card\"]",
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customer_at_the_till_keeps_huabei_and_the_next_one_does_not() {
    let h = Harness::start().await;
    let svc = h.service();
    // The first customer's sale starts under version 7 (Huabei on).
    let first = svc
        .sale(2_300, "CNY", "before", SaleOptions::default())
        .await
        .unwrap();

    // The fleet switches Huabei off (version 8) while she looks for her phone.
    let text = huabei_off(&h, 8);
    let prepared = svc.prepare(&text).unwrap();
    assert_eq!(svc.config().version, 7, "prepare changes nothing");
    let now = svc.install(prepared).unwrap();
    assert_eq!((now.version, svc.config().version), (8, 8));
    assert!(
        !svc.config()
            .merchant
            .funding
            .contains(&FundingChannel::Huabei)
    );

    // She pays with Huabei: her sale keeps the configuration it started with.
    svc.pay_with_code(PayTarget::Tx(first), &alipay_code("601"))
        .await
        .unwrap();
    let t = svc.wait_settled(first, SETTLE).await.unwrap();
    assert_eq!(t.state, SaleState::Succeeded, "{t:?}");
    assert!(t.funded_by(FundingChannel::Huabei));
    assert!(!t.disabled_funding.contains(&FundingChannel::Huabei));

    // The next Huabei-only customer: Huabei is switched off at the acquirer now.
    let second = svc
        .pay_with_code(
            PayTarget::New {
                amount_fen: 2_400,
                currency: "CNY".into(),
                order_ref: "after".into(),
                options: SaleOptions::default(),
            },
            &alipay_code("601"),
        )
        .await
        .unwrap();
    let t = svc.wait_settled(second, SETTLE).await.unwrap();
    assert_eq!(t.state, SaleState::Failed, "{t:?}");
    assert!(t.disabled_funding.contains(&FundingChannel::Huabei));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_a_foreign_or_a_broken_configuration_changes_nothing() {
    let h = Harness::start().await;
    let svc = h.service();
    let good = std::fs::read_to_string(&h.config_path).unwrap();
    for (text, want) in [
        (huabei_off(&h, 7), "not newer"),
        (huabei_off(&h, 6), "not newer"),
        (
            huabei_off(&h, 9).replace("terminal_id = \"T0001\"", "terminal_id = \"T0002\""),
            "terminal",
        ),
        (
            huabei_off(&h, 9).replacen("[merchant]", "[merchant", 1),
            "TOML",
        ),
        (
            huabei_off(&h, 9).replacen("schemes = [", "schemes = [\"paypal\", ", 1),
            "paypal",
        ),
    ] {
        let e = svc.prepare(&text).expect_err(want);
        assert!(e.to_string().contains(want), "{want}: {e}");
    }
    // A CA file the new configuration names that is not on this terminal.
    let ca = good
        .lines()
        .find(|l| l.starts_with("ca_file = "))
        .unwrap()
        .to_owned();
    let text = huabei_off(&h, 9).replacen(&ca, "ca_file = \"/nonexistent/ca.pem\"", 1);
    let e = svc.prepare(&text).expect_err("missing CA");
    assert!(matches!(e, ReloadError::Config(_)), "{e}");
    assert!(e.to_string().contains("ca_file"), "{e}");
    assert_eq!(svc.config().version, 7);

    // Two configurations prepared at once: the newer wins, the older cannot replace it.
    let v9 = svc.prepare(&huabei_off(&h, 9)).unwrap();
    let v8 = svc.prepare(&huabei_off(&h, 8)).unwrap();
    svc.install(v9).unwrap();
    let e = svc.install(v8).expect_err("older after newer");
    assert!(
        matches!(
            e,
            ReloadError::NotNewer {
                running: 9,
                offered: 8
            }
        ),
        "{e}"
    );
    assert_eq!(svc.config().version, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_installs_only_when_the_till_is_quiet_and_then_the_till_waits() {
    let h = Harness::start().await;
    let svc = h.service();
    assert_eq!(svc.sales_in_flight().await.unwrap(), 0);
    let sale = svc
        .sale(1_000, "CNY", "waiting", SaleOptions::default())
        .await
        .unwrap();
    assert_eq!(svc.sales_in_flight().await.unwrap(), 1);
    let e = svc
        .close_for_install()
        .await
        .expect_err("a sale is in flight");
    assert!(matches!(e, PaymentError::SalesInFlight(1)), "{e}");
    assert!(
        !svc.closed_for_install(),
        "a refused close leaves the till open"
    );

    svc.cancel(sale).await.unwrap();
    assert_eq!(svc.sales_in_flight().await.unwrap(), 0);
    svc.close_for_install().await.unwrap();
    assert!(svc.closed_for_install());
    for r in [
        svc.sale(1_000, "CNY", "during", SaleOptions::default())
            .await,
        svc.pay_with_code(
            PayTarget::New {
                amount_fen: 1_000,
                currency: "CNY".into(),
                order_ref: "during-2".into(),
                options: SaleOptions::default(),
            },
            &alipay_code("000"),
        )
        .await,
    ] {
        let e = r.expect_err("refused while installing");
        let why = e.explanation().expect("explained").clone();
        assert_eq!(why.cause, Cause::Software);
        assert_eq!(why.code, "local.update_installing");
        assert!(why.en.contains("try again in a minute"), "{why}");
    }
    assert_eq!(svc.list_recent(10).unwrap().len(), 1, "nothing journaled");
    assert!(h.sim.ledger().trades.is_empty(), "nothing sent");

    svc.open_after_install();
    svc.sale(1_000, "CNY", "after", SaleOptions::default())
        .await
        .unwrap();
}
