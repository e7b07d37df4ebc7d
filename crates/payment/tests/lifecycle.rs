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
use smartpos_payment::journal::JournalError;
use smartpos_payment::{
    FundingChannel, OUTCOME_UNKNOWN, PayTarget, PaymentError, PaymentService, RefundState,
    SaleOptions, SaleState,
};

/// An acquirer path that answers from a script and remembers what it was asked.
#[derive(Default)]
struct Scripted {
    name: String,
    pays: Mutex<VecDeque<PayOutcome>>,
    queries: Mutex<VecDeque<QueryOutcome>>,
    cancels: Mutex<VecDeque<CancelOutcome>>,
    /// Replaces the query script once a cancel is sent (what the acquirer says afterwards).
    queries_after_cancel: Mutex<VecDeque<QueryOutcome>>,
    refunds: Mutex<VecDeque<RefundOutcome>>,
    /// How long a refund takes to answer.
    refund_delay: Mutex<Duration>,
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
    /// Script the next pay answer.
    fn will_pay(&self, outcome: PayOutcome) {
        self.pays.lock().expect("lock").push_back(outcome);
    }
    fn count(&self, prefix: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.starts_with(prefix))
            .count()
    }
}

/// The acquirer's evidence of a payment: its trade number and the amount.
fn paid(trade_no: &str, fen: i64) -> PayOutcome {
    PayOutcome::Paid(Paid {
        trade_no: Some(trade_no.into()),
        paid_fen: Some(fen),
        funding: vec![],
    })
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
        let o = next(
            &self.pays,
            PayOutcome::NeverSent(smartpos_payment::explain::network_unreachable("unscripted")),
        );
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
        let o = next(&self.refunds, RefundOutcome::Unknown("unscripted".into()));
        let delay = *self.refund_delay.lock().expect("lock");
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            o
        })
    }
}

fn config() -> Config {
    let text = include_str!("../config/merchant.example.toml")
        .replace("alipay_interval_ms = 5000", "alipay_interval_ms = 20")
        .replace("cancel_interval_ms = 2000", "cancel_interval_ms = 10")
        .replace("cancel_max_attempts = 10", "cancel_max_attempts = 3")
        .replace(
            "background_interval_ms = 180000",
            "background_interval_ms = 0",
        )
        .replace(
            "wechat_reverse_delay_ms = 15000",
            "wechat_reverse_delay_ms = 10",
        );
    Config::parse(&text).expect("config")
}

fn service(paths: &[&Arc<Scripted>]) -> PaymentService {
    service_with(config(), paths)
}

fn service_with(config: Config, paths: &[&Arc<Scripted>]) -> PaymentService {
    let mut connectors: HashMap<String, Arc<dyn Connector>> = HashMap::new();
    for p in paths {
        connectors.insert(p.name.clone(), (*p).clone());
    }
    PaymentService::new(
        config,
        Journal::open_in_memory().expect("journal"),
        connectors,
    )
}

async fn pay(svc: &PaymentService, code: &str) -> smartpos_payment::TxId {
    svc.pay_with_code(
        PayTarget::New {
            amount_fen: 1_999,
            currency: "CNY".into(),
            order_ref: format!("story-{code}"),
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
        SaleState::Unknown,
        "the acquirer kept saying retry: the till is told the outcome is unknown"
    );
    assert_eq!(
        t.explanation.as_ref().map(|e| e.code.as_str()),
        Some(OUTCOME_UNKNOWN)
    );
    assert!(t.cancel_requested, "the cancel stays requested");
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
async fn a_sale_above_the_terminal_limit_is_refused_when_it_is_created() {
    let direct = Scripted::new("alipay-direct");
    let aggregator = Scripted::new("aggregator");
    let svc = service(&[&direct, &aggregator]);
    let err = svc
        .sale(5_000_001, "CNY", "too-big", SaleOptions::default())
        .await
        .expect_err("refused at Sale");
    let e = err.explanation().expect("explained").clone();
    assert_eq!(
        (e.cause, e.code.as_str()),
        (Cause::RiskControl, "risk.per_sale_limit")
    );
    // PayWithCode refuses it the same way, before creating anything.
    let err = svc
        .pay_with_code(
            PayTarget::New {
                amount_fen: 5_000_001,
                currency: "CNY".into(),
                order_ref: "too-big".into(),
                options: SaleOptions::default(),
            },
            ALIPAY,
        )
        .await
        .expect_err("refused");
    assert!(matches!(err, PaymentError::Blocked(_)), "{err}");
    assert!(
        svc.list_recent(10).expect("journal").is_empty(),
        "no sale left behind"
    );
    assert!(direct.calls().is_empty() && aggregator.calls().is_empty());
}

#[tokio::test]
async fn an_app_that_switches_every_funding_channel_off_is_told_at_sale() {
    let direct = Scripted::new("alipay-direct");
    let svc = service(&[&direct, &Scripted::new("aggregator")]);
    let options = SaleOptions {
        disable_funding: FundingChannel::ALL.to_vec(),
        ..SaleOptions::default()
    };
    let err = svc
        .sale(1_000, "CNY", "nothing-left", options)
        .await
        .expect_err("refused");
    assert_eq!(
        err.explanation().map(|e| e.code.as_str()),
        Some("config.no_funding_left")
    );
    assert!(svc.list_recent(10).expect("journal").is_empty());
}

#[tokio::test]
async fn a_refused_payment_leaves_no_sale_behind() {
    let direct = Scripted::new("alipay-direct");
    let svc = service(&[&direct, &Scripted::new("aggregator")]);
    // A WeChat code, and the example merchant routes WeChat only to a path not wired here.
    let err = svc
        .pay_with_code(
            PayTarget::New {
                amount_fen: 1_000,
                currency: "CNY".into(),
                order_ref: "no-route".into(),
                options: SaleOptions::default(),
            },
            "134567890123456789",
        )
        .await
        .expect_err("no connector");
    assert!(
        matches!(
            err,
            PaymentError::NoConnector(_) | PaymentError::NoRoute { .. }
        ),
        "{err}"
    );
    // A code already used elsewhere is refused before a sale exists, too.
    let tx = pay(&svc, ALIPAY).await;
    let err = svc
        .pay_with_code(
            PayTarget::New {
                amount_fen: 1_000,
                currency: "CNY".into(),
                order_ref: "reused-code".into(),
                options: SaleOptions::default(),
            },
            ALIPAY,
        )
        .await
        .expect_err("code reused");
    assert!(
        matches!(err, PaymentError::Journal(JournalError::CodeAlreadyUsed(t)) if t == tx),
        "{err}"
    );
    let sales = svc.list_recent(10).expect("journal");
    assert_eq!(sales.len(), 1, "only the paid sale: {sales:?}");
}

#[tokio::test]
async fn an_app_retrying_after_no_reply_gets_the_same_sale_never_a_second() {
    let direct = Scripted::new("alipay-direct");
    direct.will_pay(paid("T1", 1_999));
    let svc = service(&[&direct, &Scripted::new("aggregator")]);
    // The app's Sale reached the daemon, which died before replying; the app asks again.
    let first = svc
        .sale(1_999, "CNY", "till-7-0042", SaleOptions::default())
        .await
        .expect("sale");
    let again = svc
        .sale(1_999, "CNY", "till-7-0042", SaleOptions::default())
        .await
        .expect("same sale");
    assert_eq!(first, again);
    // The retry of PayWithCode for that sale, still awaiting its code, pays it.
    let paid = svc
        .pay_with_code(
            PayTarget::New {
                amount_fen: 1_999,
                currency: "CNY".into(),
                order_ref: "till-7-0042".into(),
                options: SaleOptions::default(),
            },
            ALIPAY,
        )
        .await
        .expect("paid");
    assert_eq!(paid, first);
    let t = svc
        .wait_settled(first, Duration::from_secs(10))
        .await
        .expect("s");
    assert_eq!(t.state, SaleState::Succeeded);
    // A third try after that lost reply returns the paid sale and sends nothing.
    let third = svc
        .pay_with_code(
            PayTarget::New {
                amount_fen: 1_999,
                currency: "CNY".into(),
                order_ref: "till-7-0042".into(),
                options: SaleOptions::default(),
            },
            "28763443825664396",
        )
        .await
        .expect("same sale");
    assert_eq!(third, first);
    assert_eq!(direct.count("pay"), 1, "paid once: {:?}", direct.calls());
    // The same reference with another amount is refused, clearly.
    let err = svc
        .sale(2_000, "CNY", "till-7-0042", SaleOptions::default())
        .await
        .expect_err("other amount");
    assert!(
        matches!(&err, PaymentError::Journal(JournalError::OrderRefReused { tx, amount_fen: 1_999, .. }) if *tx == first),
        "{err}"
    );
    assert!(err.to_string().contains("new order_ref"), "{err}");
    // And the app finds its sale by its reference.
    let found = svc
        .find_by_order_ref("till-7-0042")
        .await
        .expect("journal")
        .expect("found");
    assert_eq!((found.id, found.state), (first, SaleState::Succeeded));
    assert!(
        svc.find_by_order_ref("nope")
            .await
            .expect("journal")
            .is_none()
    );
    assert_eq!(svc.list_recent(10).expect("journal").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tills_racing_for_the_last_of_the_daily_limit_cannot_both_pass() {
    let config = Config::parse(
        &include_str!("../config/merchant.example.toml")
            .replace("max_daily_fen = 50000000", "max_daily_fen = 100000"),
    )
    .expect("config");
    let direct = Scripted::new("alipay-direct");
    direct
        .pays
        .lock()
        .expect("lock")
        .push_back(PayOutcome::Unknown(explain::network_unreachable("slow")));
    let svc = service_with(config, &[&direct, &Scripted::new("aggregator")]);
    // Eight sales of 600.00 at once against a 1000.00 daily limit: one fits, no second one.
    let mut tasks = Vec::new();
    for i in 0..8u32 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            svc.pay_with_code(
                PayTarget::New {
                    amount_fen: 60_000,
                    currency: "CNY".into(),
                    order_ref: format!("race-{i}"),
                    options: SaleOptions::default(),
                },
                &format!("2876344382566{:04}", 4000 + i),
            )
            .await
        }));
    }
    let mut passed = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => passed += 1,
            Err(PaymentError::Blocked(e)) => assert_eq!(e.code, "risk.daily_limit"),
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(passed, 1, "exactly one sale fits in the day's limit");
    assert_eq!(svc.list_recent(20).expect("journal").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_the_resolver_also_finds_open_is_sent_once_and_reported_done() {
    let direct = Scripted::new("alipay-direct");
    direct.will_pay(paid("T1", 1_999));
    direct
        .refunds
        .lock()
        .expect("lock")
        .push_back(RefundOutcome::Refunded {
            refund_fen: Some(500),
        });
    *direct.refund_delay.lock().expect("lock") = Duration::from_millis(300);
    let svc = service(&[&direct, &Scripted::new("aggregator")]);
    let tx = pay(&svc, ALIPAY).await;
    assert_eq!(
        svc.wait_settled(tx, Duration::from_secs(10))
            .await
            .expect("s")
            .state,
        SaleState::Succeeded
    );
    // The cashier refunds while the resolver's sweep comes round.
    let refund = {
        let svc = svc.clone();
        tokio::spawn(async move { svc.refund(tx, 500, "r-1").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let report = svc
        .resolve_all()
        .await
        .expect("the resolver's pass is not aborted");
    let r = refund
        .await
        .expect("task")
        .expect("the app is told the refund's outcome");
    assert_eq!(r.state, RefundState::Succeeded);
    assert_eq!(direct.count("refund"), 1, "sent once: {:?}", direct.calls());
    assert_eq!(report.refunds_finished + report.still_open, 1, "{report:?}");
    assert_eq!(
        svc.refunds_of(tx).expect("refunds")[0].state,
        RefundState::Succeeded
    );
    assert_eq!(svc.get(tx).expect("sale").refunded_fen, 500);
}

/// The Alipay path answers nothing that can be trusted (every signature fails): at the
/// documented pace, the terminal sends a bounded number of requests, tells the till
/// "outcome unknown — do not charge again" within the resolution window, and then only
/// repeats the cancel at the slow background pace.
#[tokio::test(start_paused = true)]
async fn an_acquirer_whose_answers_never_verify_is_not_hammered() {
    let direct = Scripted::new("alipay-direct");
    let bad = || Explanation::new(Cause::Software, "sig.bad", "验签失败", "bad signature");
    direct
        .pays
        .lock()
        .expect("lock")
        .push_back(PayOutcome::Unknown(bad()));
    direct
        .queries
        .lock()
        .expect("lock")
        .push_back(QueryOutcome::Unknown("signature does not verify".into()));
    direct
        .cancels
        .lock()
        .expect("lock")
        .push_back(CancelOutcome::Retry("signature does not verify".into()));
    // The documented pace, as shipped.
    let config = Config::parse(include_str!("../config/merchant.example.toml")).expect("config");
    let window = Duration::from_millis(config.polling.resolution_window_ms);
    let svc = service_with(config, &[&direct, &Scripted::new("aggregator")]);
    let _resolver = svc.spawn_resolver();
    let start = tokio::time::Instant::now();
    let tx = pay(&svc, ALIPAY).await;
    let t = svc
        .wait_settled(tx, Duration::from_secs(600))
        .await
        .expect("s");
    let waited = start.elapsed();
    assert_eq!(t.state, SaleState::Unknown);
    let e = t.explanation.expect("explained");
    assert_eq!(
        (e.code.as_str(), e.cause),
        (OUTCOME_UNKNOWN, Cause::Software)
    );
    assert!(waited <= window, "the till waited {waited:?}");
    // Alipay's F2F flow: 5 queries, then a cancel retried 3 times (docs/acquirers.md §1.7).
    assert_eq!(direct.count("query"), 5, "{:?}", direct.calls());
    assert_eq!(direct.count("cancel"), 4, "{:?}", direct.calls());
    // The 72 s of the report: no more than that (it was 155 cancels).
    tokio::time::sleep(Duration::from_secs(72).saturating_sub(start.elapsed())).await;
    assert_eq!(direct.count("cancel"), 4, "{:?}", direct.calls());
    // Then one cancel per background pass, 3 min after the hand-over and doubling: within
    // the next hour at 3, 9, 21 and 45 min.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let background = direct.count("cancel") - 4;
    assert!(
        (3..=4).contains(&background),
        "{background} background cancels"
    );
    assert_eq!(
        direct.count("query"),
        5,
        "no query while the cancel is unanswered"
    );
    assert_eq!(direct.count("pay"), 1, "never paid again");
    let t = svc.get(tx).expect("sale");
    assert_eq!((t.state, t.cancel_requested), (SaleState::Unknown, true));
    // When the acquirer finally answers, the next pass closes the sale.
    direct
        .cancels
        .lock()
        .expect("lock")
        .push_front(CancelOutcome::Done { refunded: false });
    tokio::time::sleep(Duration::from_secs(1800)).await;
    assert_eq!(svc.get(tx).expect("sale").state, SaleState::Cancelled);
}

/// The disk is slow (a `synchronous=FULL` commit waiting for the flash): the journal is
/// busy, but the runtime's thread stays free for the bus, the scanner and the timers.
#[tokio::test(flavor = "current_thread")]
async fn a_slow_journal_does_not_stall_the_runtime() {
    let svc = service(&[
        &Scripted::new("alipay-direct"),
        &Scripted::new("aggregator"),
    ]);
    let tx = svc
        .sale(100, "CNY", "slow-disk", SaleOptions::default())
        .await
        .expect("sale");
    // Another thread holds the journal for 600 ms, as a long commit would.
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let holder = {
        let svc = svc.clone();
        std::thread::spawn(move || {
            svc.with_journal(|_| {
                held_tx.send(()).expect("signal");
                std::thread::sleep(Duration::from_millis(600));
            })
        })
    };
    held_rx.recv().expect("the journal is held");
    let reader = {
        let svc = svc.clone();
        tokio::spawn(async move { svc.read(tx).await })
    };
    // The only runtime thread must still run a 20 ms timer while the read waits.
    let start = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let ticked = start.elapsed();
    assert!(
        ticked < Duration::from_millis(300),
        "the runtime was blocked for {ticked:?}"
    );
    let t = reader.await.expect("task").expect("read");
    assert_eq!(t.id, tx);
    holder.join().expect("holder");
}

/// A loaded till: the runtime comes back late to a payment it has just journaled as
/// submitted. Meanwhile the resolver's periodic pass must not take that sale for one a crash
/// left behind (submitted, nobody driving it) and query and cancel it alongside the payment
/// the till is sending: the customer pays once, and the sale is told paid.
#[test]
fn a_payment_just_journaled_is_not_taken_by_the_resolver_for_a_crashed_one() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let direct = Scripted::new("alipay-direct");
    direct
        .pays
        .lock()
        .expect("lock")
        .push_back(PayOutcome::Paid(Paid {
            trade_no: Some("T9".into()),
            paid_fen: Some(1_999),
            funding: vec![],
        }));
    let svc = service(&[&direct, &Scripted::new("aggregator")]);
    // The resolver sweeps every few milliseconds, on a thread and runtime of its own.
    let stop = Arc::new(AtomicBool::new(false));
    let resolver = {
        let (svc, stop) = (svc.clone(), stop.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                while !stop.load(Ordering::Relaxed) {
                    svc.resolve_all().await.expect("resolver pass");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
        })
    };
    let till = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let t = till.block_on(async {
        let paying = tokio::spawn({
            let svc = svc.clone();
            async move { pay(&svc, ALIPAY).await }
        });
        // The payment goes to the journal; the till's only thread is then busy elsewhere
        // for 300 ms, so the call cannot carry on the moment the journal lets go.
        let submitted = || {
            svc.list_recent(1)
                .expect("journal")
                .first()
                .is_some_and(|t| t.state != SaleState::AwaitingCode)
        };
        tokio::task::yield_now().await;
        for _ in 0..400 {
            if submitted() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(submitted(), "the payment never reached the journal");
        std::thread::sleep(Duration::from_millis(300));
        let tx = paying.await.expect("task");
        svc.wait_settled(tx, Duration::from_secs(10))
            .await
            .expect("settled")
    });
    stop.store(true, Ordering::Relaxed);
    resolver.join().expect("resolver thread");
    assert_eq!(t.state, SaleState::Succeeded, "{t:?}");
    assert_eq!(t.paid_fen, Some(1_999));
    assert_eq!(
        (
            direct.count("pay"),
            direct.count("query"),
            direct.count("cancel")
        ),
        (1, 0, 0),
        "{:?}",
        direct.calls()
    );
}

/// Submitting a sale and claiming it for the task that pays it are one step. With the
/// resolver sweeping the journal all the while (as it does every few seconds on a till, and
/// at once after a restart), no sale just submitted is ever taken for one "found submitted
/// after a restart": nobody queries or re-drives it behind the paying task's back, and every
/// sale keeps the paying task's own outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolver_sweeping_all_the_time_never_takes_a_sale_from_the_task_paying_it() {
    let direct = Scripted::new("alipay-direct");
    let aggregator = Scripted::new("aggregator");
    direct.will_pay(paid("T1", 1_999));
    let mut config = config();
    config.risk.velocity_max_sales = 1_000_000;
    config.risk.max_daily_fen = i64::MAX / 2;
    let svc = service_with(config, &[&direct, &aggregator]);
    let sweeping = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sweeper = {
        let svc = svc.clone();
        let sweeping = sweeping.clone();
        tokio::spawn(async move {
            let mut passes = 0u32;
            while sweeping.load(std::sync::atomic::Ordering::Relaxed) {
                svc.resolve_all().await.expect("resolver pass");
                passes += 1;
            }
            passes
        })
    };
    let mut sales = Vec::new();
    for i in 0..150 {
        sales.push(pay(&svc, &format!("2876344382566{i:04}")).await);
    }
    for tx in &sales {
        let t = svc
            .wait_settled(*tx, Duration::from_secs(10))
            .await
            .expect("settled");
        assert_eq!(t.state, SaleState::Succeeded, "sale {tx}: {t:?}");
    }
    sweeping.store(false, std::sync::atomic::Ordering::Relaxed);
    let passes = sweeper.await.expect("sweeper");
    assert!(passes > 10, "the resolver swept only {passes} times");
    assert_eq!(direct.count("pay"), 150, "{:?}", direct.calls());
    assert_eq!(
        direct.count("query"),
        0,
        "the resolver asked about sales their own task was paying: {:?}",
        direct.calls()
    );
}
