//! Acquirers whose certificates a terminal must refuse: each is named for what it is on the
//! sale's explanation, the payment never leaves the terminal, and the sale waits for a new
//! scan. (A certificate from a CA that is not pinned: `emulator.rs`; a clock two years off:
//! `clock_far_off.rs`.)

mod common;

use std::time::Duration;

use common::alipay_code;
use common::certs::alipay_behind;
use smartpos_faultproxy::certs::CertKind;
use smartpos_payment::{Cause, PayTarget, SaleOptions, SaleState, Transaction};

async fn pay_through(kind: CertKind) -> Transaction {
    let bad = alipay_behind(kind).await;
    let svc = bad.harness.service();
    let tx = svc
        .pay_with_code(
            PayTarget::New {
                amount_fen: 880,
                currency: "CNY".into(),
                order_ref: "cert-1".into(),
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
    assert_eq!(t.state, SaleState::AwaitingCode, "{t:?}");
    assert!(
        bad.harness.sim.ledger().trades.is_empty(),
        "nothing reached an acquirer"
    );
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquirer_whose_certificate_expired_is_named_and_nothing_is_charged() {
    let e = pay_through(CertKind::Expired)
        .await
        .explanation
        .expect("explained");
    assert_eq!(
        (e.code.as_str(), e.cause),
        ("net.cert_expired", Cause::PlatformIncompatibility),
        "{e:?}"
    );
    assert!(e.en.contains("nothing was charged"), "{}", e.en);
    assert!(e.en.contains("date and time"), "{}", e.en);
    assert!(!e.en.contains("check the network"), "{}", e.en);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquirer_certificate_for_another_host_is_named_a_name_mismatch() {
    let e = pay_through(CertKind::OtherName)
        .await
        .explanation
        .expect("explained");
    assert_eq!(
        (e.code.as_str(), e.cause),
        ("net.cert_name_mismatch", Cause::PlatformIncompatibility),
        "{e:?}"
    );
    assert!(e.en.contains("nothing was charged"), "{}", e.en);
}
