//! A terminal whose clock is two years behind (the RTC lost its battery, NTP has not run):
//! the acquirer's certificate is "not valid yet" by it, and the cashier is told to set the
//! clock — not to check the network.
//!
//! The wall-clock step is process-wide: this test lives in its own test binary.

mod common;

use std::time::Duration;

use common::alipay_code;
use common::certs::alipay_behind;
use smartpos_faultproxy::certs::CertKind;
use smartpos_payment::{Cause, PayTarget, SaleOptions, SaleState, clock};

const TWO_YEARS_MS: i64 = 2 * 365 * 86_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_two_years_behind_is_named_as_the_clock() {
    // A certificate as real ones are: valid from 30 days ago for a year.
    let bad = alipay_behind(CertKind::Valid).await;
    let svc = bad.harness.service();
    clock::step_wall_clock(-TWO_YEARS_MS);
    let tx = svc
        .pay_with_code(
            PayTarget::New {
                amount_fen: 1_000,
                currency: "CNY".into(),
                order_ref: "rtc-1".into(),
                options: SaleOptions::default(),
            },
            &alipay_code("000"),
        )
        .await
        .expect("submitted");
    let t = svc
        .wait_settled(tx, Duration::from_secs(30))
        .await
        .expect("settled");
    clock::step_wall_clock(TWO_YEARS_MS);
    assert_eq!(t.state, SaleState::AwaitingCode, "{t:?}");
    let e = t.explanation.expect("explained");
    assert_eq!(
        (e.code.as_str(), e.cause),
        ("net.cert_not_yet_valid", Cause::PlatformIncompatibility),
        "{e:?}"
    );
    assert!(e.en.contains("clock"), "{}", e.en);
    assert!(e.en.contains("nothing was charged"), "{}", e.en);
}
