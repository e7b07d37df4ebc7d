//! The lifecycle against scripted acquirers: answers the emulator cannot easily produce
//! (a path that never answers at all, a cancel refused after the money was taken).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smartpos_payment::config::Config;
use smartpos_payment::connector::{
    BoxFuture, CancelOutcome, Connector, Paid, PayOrder, PayOutcome, QueryOutcome, RefundOrder,
    RefundOutcome,
};
use smartpos_payment::explain::{self, Cause, Explanation};
use smartpos_payment::journal::Journal;
use smartpos_payment::{PayTarget, PaymentService, SaleOptions, SaleState};

/// An acquirer path that answers from a script and remembers what it was asked.
#[derive(Default)]
struct Scripted {
    name: String,
    pays: Mutex<VecDeque<PayOutcome>>,
    queries: Mutex<VecDeque<QueryOutcome>>,
    cancels: Mutex<VecDeque<CancelOutcome>>,
    /// Replaces the query script once a cancel is sent (what the acquirer says afterwards).
    queries_after_cancel: Mutex<VecDeque<QueryOutcome>>,
    calls: Mutex<Vec<String>>,
}

impl Scripted {
    fn new(name: &str) -> Arc<Scripted> {
        Arc::new(Scripted {
            name: name.into(),
            ..Scripted::default()
        })
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").clone()
    }
}

fn next<T: Clone>(q: &Mutex<VecDeque<T>>, default: T) -> T {
    let mut q = q.lock().expect("lock");
    if q.len() > 1 {
        q.pop_front().unwrap_or(default)
    } else {
        q.front().cloned().unwrap_or(default)
    }
}

impl Connector for Scripted {
    fn name(&self) -> &str {
        &self.name
    }
    fn pay<'a>(&'a self, order: &'a PayOrder) -> BoxFuture<'a, PayOutcome> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("pay {}", order.out_trade_no));
        let o = next(&self.pays, PayOutcome::NeverSent("unscripted".into()));
        Box::pin(async move { o })
    }
    fn query<'a>(&'a self, out: &'a str) -> BoxFuture<'a, QueryOutcome> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("query {out}"));
        let o = next(&self.queries, QueryOutcome::Unknown("unscripted".into()));
        Box::pin(async move { o })
    }
    fn cancel<'a>(&'a self, out: &'a str) -> BoxFuture<'a, CancelOutcome> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("cancel {out}"));
        let after: VecDeque<_> = self
            .queries_after_cancel
            .lock()
            .expect("lock")
            .drain(..)
            .collect();
        if !after.is_empty() {
            *self.queries.lock().expect("lock") = after;
        }
        let o = next(&self.cancels, CancelOutcome::Retry("unscripted".into()));
        Box::pin(async move { o })
    }
    fn refund<'a>(&'a self, order: &'a RefundOrder) -> BoxFuture<'a, RefundOutcome> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("refund {}", order.out_request_no));
        Box::pin(async move { RefundOutcome::Unknown("unscripted".into()) })
    }
}

fn config() -> Config {
    let text = include_str!("../config/merchant.example.toml")
        .replace("alipay_interval_ms = 5000", "alipay_interval_ms = 20")
        .replace("cancel_interval_ms = 2000", "cancel_interval_ms = 10")
        .replace("cancel_max_attempts = 10", "cancel_max_attempts = 3");
    Config::parse(&text).expect("config")
}

fn service(paths: &[&Arc<Scripted>]) -> PaymentService {
    let mut connectors: HashMap<String, Arc<dyn Connector>> = HashMap::new();
    for p in paths {
        connectors.insert(p.name.clone(), (*p).clone());
    }
    PaymentService::new(
        config(),
        Journal::open_in_memory().expect("journal"),
        connectors,
    )
}

async fn pay(svc: &PaymentService, code: &str) -> smartpos_payment::TxId {
    svc.pay_with_code(
        PayTarget::New {
            amount_fen: 1_999,
            currency: "CNY".into(),
            order_ref: "story".into(),
            options: SaleOptions::default(),
        },
        code,
    )
    .await
    .expect("submitted")
}

const ALIPAY: &str = "28763443825664394";

#[tokio::test]
async fn an_unknown_outcome_is_never_sent_down_the_next_path() {
    let direct = Scripted::new("alipay-direct");
    let aggregator = Scripted::new("aggregator");
    direct
        .pays
        .lock()
        .expect("lock")
        .push_back(PayOutcome::Unknown(explain::network_unreachable(
            "read timeout",
        )));
    direct
        .queries
        .lock()
        .expect("lock")
        .push_back(QueryOutcome::Paid(Paid {
            trade_no: Some("2026112722001".into()),
            paid_fen: Some(1_999),
            funding: vec![],
        }));
    let svc = service(&[&direct, &aggregator]);
    let tx = pay(&svc, ALIPAY).await;
    let t = svc
        .wait_settled(tx, Duration::from_secs(10))
        .await
        .expect("settled");
    assert_eq!(t.state, SaleState::Succeeded);
    assert!(aggregator.calls().is_empty(), "{:?}", aggregator.calls());
}

#[tokio::test]
async fn when_no_path_can_be_reached_the_code_is_released_for_a_rescan() {
    let direct = Scripted::new("alipay-direct");
    let aggregator = Scripted::new("aggregator");
    let svc = service(&[&direct, &aggregator]);
    let tx = pay(&svc, ALIPAY).await;
    let t = svc
        .wait_settled(tx, Duration::from_secs(10))
        .await
        .expect("settled");
    assert_eq!(t.state, SaleState::AwaitingCode);
    assert_eq!(
        t.explanation.as_ref().map(|e| e.cause),
        Some(Cause::Network)
    );
    assert_eq!(direct.calls().len(), 1);
    assert_eq!(aggregator.calls().len(), 1);
    // Two attempts, two order numbers, neither reused.
    let attempts = svc.with_journal(|j| j.attempts_of(tx)).expect("attempts");
    assert_eq!(attempts.len(), 2);
    // The network is back: the same code is scanned again and goes through.
    direct
        .pays
        .lock()
        .expect("lock")
        .push_back(PayOutcome::Paid(Paid::default()));
    svc.pay_with_code(PayTarget::Tx(tx), ALIPAY)
        .await
        .expect("rescan");
    let t = svc
        .wait_settled(tx, Duration::from_secs(10))
        .await
        .expect("settled");
    assert_eq!(t.state, SaleState::Succeeded);
    assert_eq!(svc.with_journal(|j| j.attempts_of(tx)).expect("a").len(), 3);
}

#[tokio::test]
async fn a_cancel_refused_after_the_money_was_taken_leaves_the_sale_paid() {
    let direct = Scripted::new("alipay-direct");
    let aggregator = Scripted::new("aggregator");
    direct
        .pays
        .lock()
        .expect("lock")
        .push_back(PayOutcome::WaitingForCustomer { trade_no: None });
    // The customer confirms just as the window closes: queries say waiting, the cancel is
    // refused, the query after it finds the payment.
    direct
        .queries
        .lock()
        .expect("lock")
        .push_back(QueryOutcome::Waiting);
    direct
        .queries_after_cancel
        .lock()
        .expect("lock")
        .push_back(QueryOutcome::Paid(Paid {
            trade_no: Some("T1".into()),
            paid_fen: Some(1_999),
            funding: vec![],
        }));
    direct
        .cancels
        .lock()
        .expect("lock")
        .push_back(CancelOutcome::Refused(explain::alipay(
            "40004",
            Some("ACQ.CANCEL_NOT_ALLOWED"),
            None,
        )));
    let svc = service(&[&direct, &aggregator]);
    let tx = pay(&svc, ALIPAY).await;
    let t = svc
        .wait_settled(tx, Duration::from_secs(10))
        .await
        .expect("settled");
    assert_eq!(t.state, SaleState::Succeeded, "{:?}", direct.calls());
    assert_eq!(
        t.explanation.map(|e| e.code),
        Some("ACQ.CANCEL_NOT_ALLOWED".to_owned())
    );
    let calls = direct.calls();
    let cancel_at = calls
        .iter()
        .position(|c| c.starts_with("cancel"))
        .expect("cancelled");
    let polls = calls[..cancel_at]
        .iter()
        .filter(|c| c.starts_with("query"))
        .count();
    assert!(
        (5..=6).contains(&polls),
        "polled at the Alipay pace (5 × interval): {calls:?}"
    );
    assert!(calls[cancel_at + 1].starts_with("query"), "{calls:?}");
}

#[tokio::test]
async fn a_cancel_that_keeps_failing_is_left_to_the_resolver_which_finishes_it() {
    let direct = Scripted::new("alipay-direct");
    let aggregator = Scripted::new("aggregator");
    direct
        .pays
        .lock()
        .expect("lock")
        .push_back(PayOutcome::Declined(Explanation::new(
            Cause::Network,
            "x",
            "x",
            "x",
        )));
    let svc = service(&[&direct, &aggregator]);
    // Declined is final: no query, no cancel.
    let tx = pay(&svc, ALIPAY).await;
    assert_eq!(
        svc.wait_settled(tx, Duration::from_secs(10))
            .await
            .expect("s")
            .state,
        SaleState::Failed
    );
    assert_eq!(direct.calls().len(), 1);

    let direct = Scripted::new("alipay-direct");
    direct
        .pays
        .lock()
        .expect("lock")
        .push_back(PayOutcome::Unknown(explain::network_unreachable("reset")));
    direct
        .queries
        .lock()
        .expect("lock")
        .push_back(QueryOutcome::NotPaid(explain::wechat(
            "ORDERNOTEXIST",
            None,
        )));
    let svc = service(&[&direct, &aggregator]);
    let tx = pay(&svc, "28763443825664395").await;
    let t = svc
        .wait_settled(tx, Duration::from_secs(10))
        .await
        .expect("s");
    assert_eq!(
        t.state,
        SaleState::Cancelling,
        "the acquirer kept saying retry"
    );
    assert_eq!(
        direct
            .calls()
            .iter()
            .filter(|c| c.starts_with("cancel"))
            .count(),
        3
    );
    direct
        .cancels
        .lock()
        .expect("lock")
        .push_front(CancelOutcome::Done { refunded: false });
    let report = svc.resolve_all().await.expect("resolver");
    assert_eq!(report.finished, 1);
    assert_eq!(svc.get(tx).expect("sale").state, SaleState::Cancelled);
}

#[tokio::test]
async fn a_void_the_acquirer_refuses_leaves_the_sale_paid_and_stops() {
    let direct = Scripted::new("alipay-direct");
    let aggregator = Scripted::new("aggregator");
    let paid = Paid {
        trade_no: Some("T9".into()),
        paid_fen: Some(1_999),
        funding: vec![],
    };
    direct
        .pays
        .lock()
        .expect("lock")
        .push_back(PayOutcome::Paid(paid.clone()));
    direct
        .queries
        .lock()
        .expect("lock")
        .push_back(QueryOutcome::Paid(paid));
    direct
        .cancels
        .lock()
        .expect("lock")
        .push_back(CancelOutcome::Refused(explain::alipay(
            "40004",
            Some("ACQ.CANCEL_NOT_ALLOWED"),
            None,
        )));
    let svc = service(&[&direct, &aggregator]);
    let tx = pay(&svc, ALIPAY).await;
    assert_eq!(
        svc.wait_settled(tx, Duration::from_secs(10))
            .await
            .expect("s")
            .state,
        SaleState::Succeeded
    );
    let t = svc.cancel(tx).await.expect("void requested");
    assert_eq!(t.state, SaleState::Cancelling);
    let t = svc
        .wait_settled(tx, Duration::from_secs(10))
        .await
        .expect("s");
    assert_eq!(t.state, SaleState::Succeeded);
    assert!(!t.cancel_requested);
    let e = t.explanation.expect("explained");
    assert!(e.en.contains("refund it instead"), "{}", e.en);
    assert_eq!(
        direct
            .calls()
            .iter()
            .filter(|c| c.starts_with("cancel"))
            .count(),
        1,
        "the refused void is not repeated"
    );
}

#[tokio::test]
async fn a_sale_above_the_terminal_limit_is_refused_before_anything_is_sent() {
    let direct = Scripted::new("alipay-direct");
    let aggregator = Scripted::new("aggregator");
    let svc = service(&[&direct, &aggregator]);
    let tx = svc
        .sale(5_000_001, "CNY", "too-big", SaleOptions::default())
        .await
        .expect("sale");
    let err = svc
        .pay_with_code(PayTarget::Tx(tx), ALIPAY)
        .await
        .expect_err("blocked");
    let e = err.explanation().expect("explained").clone();
    assert_eq!(
        (e.cause, e.code.as_str()),
        (Cause::RiskControl, "risk.per_sale_limit")
    );
    let t = svc.get(tx).expect("sale");
    assert_eq!(t.state, SaleState::Failed);
    assert_eq!(t.explanation, Some(e));
    assert!(direct.calls().is_empty() && aggregator.calls().is_empty());
}
