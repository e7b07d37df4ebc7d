//! The terminal boots with a stale clock and NTP steps it forward while a customer is
//! confirming a payment or a sale waits for its code. Durations are measured on the
//! monotonic clock, so the step changes nothing but the times shown.
//!
//! The wall-clock step is process-wide: these tests live in their own test binary.

mod common;

use std::time::Duration;

use common::{Harness, wechat_code};
use smartpos_payment::{PayTarget, SaleOptions, SaleState, clock};

const HOUR_MS: i64 = 3_600_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ntp_step_does_not_cut_a_wechat_customers_confirmation_short() {
    let h = Harness::start().await;
    let svc = h.service();
    // The customer needs 3 s to type the password (WeChat USERPAYING), within the 6 s window.
    let tx = svc
        .pay_with_code(
            PayTarget::New {
                amount_fen: 150_050,
                currency: "CNY".into(),
                order_ref: "ntp-1".into(),
                options: SaleOptions::default(),
            },
            &wechat_code("103"),
        )
        .await
        .expect("submitted");
    // Meanwhile NTP moves the wall clock an hour forward.
    tokio::time::sleep(Duration::from_millis(500)).await;
    clock::step_wall_clock(HOUR_MS);
    let t = svc
        .wait_settled(tx, Duration::from_secs(30))
        .await
        .expect("settled");
    assert_eq!(t.state, SaleState::Succeeded, "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ntp_step_does_not_expire_a_sale_waiting_for_its_code() {
    let h = Harness::start().await;
    let svc = h.service();
    let tx = svc
        .sale(2_000, "CNY", "ntp-2", SaleOptions::default())
        .await
        .expect("sale");
    // The 10-minute awaiting-code expiry must not fire because the clock jumped an hour.
    clock::step_wall_clock(HOUR_MS);
    let report = svc.resolve_all().await.expect("resolver");
    assert_eq!(report.expired, 0);
    assert_eq!(svc.get(tx).expect("sale").state, SaleState::AwaitingCode);
}
