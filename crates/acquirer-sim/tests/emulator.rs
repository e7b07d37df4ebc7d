//! The emulator seen from a terminal: real TLS, real signatures, the shared protocol crate on
//! both sides. Each test is a story from the till.

use std::time::{Duration, Instant};

use serde_json::Value;
use smartpos_acquirer::alipay::{
    self, AppConfig, Method, PayRequest, RefundRequest, Request, TradeRef, response,
};
use smartpos_acquirer::disposition::{Disposition, FailureCause};
use smartpos_acquirer::keys::{RsaSigner, RsaVerifier, SignatureError, generate_rsa_key};
use smartpos_acquirer::wechat::{self, SignType};
use smartpos_acquirer::{qra, xml};
use smartpos_acquirer_sim::client::SimClient;
use smartpos_acquirer_sim::ledger::TradeState;
use smartpos_acquirer_sim::pki::files;
use smartpos_acquirer_sim::{Sim, SimConfig, start};

struct Till {
    _dir: Option<tempfile::TempDir>,
    sim: Sim,
    client: SimClient,
    cert_client: SimClient,
    app: AppConfig,
    app_key: RsaSigner,
    alipay_key: RsaVerifier,
}

async fn till() -> Till {
    let dir = tempfile::tempdir().unwrap();
    let mut t = till_at(dir.path(), None).await;
    t._dir = Some(dir);
    t
}

async fn till_at(dir: &std::path::Path, ledger: Option<std::path::PathBuf>) -> Till {
    let pki_dir = dir.join("pki");
    let sim = start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        pki_dir: pki_dir.clone(),
        ledger_file: ledger,
    })
    .await
    .unwrap();
    let client = SimClient::new(&pki_dir, sim.local_addr(), false).unwrap();
    let cert_client = SimClient::new(&pki_dir, sim.local_addr(), true).unwrap();
    Till {
        app: AppConfig {
            app_id: sim.pki().merchant.alipay_app_id.clone(),
            app_auth_token: None,
        },
        app_key: RsaSigner::from_file(&pki_dir.join(files::APP_PRIVATE_KEY)).unwrap(),
        alipay_key: RsaVerifier::from_file(&pki_dir.join(files::ALIPAY_PUBLIC_KEY)).unwrap(),
        _dir: None,
        sim,
        client,
        cert_client,
    }
}

impl Till {
    async fn alipay_raw(&self, req: Request) -> Result<String, String> {
        let signed = req.sign(&self.app_key).unwrap();
        let answer = self
            .client
            .post(
                &signed.path_and_query(),
                alipay::CONTENT_TYPE,
                signed.form_body(),
            )
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(answer.status, 200);
        Ok(answer.body)
    }

    async fn alipay(&self, req: Request) -> alipay::Response {
        let method = req.method();
        let body = self.alipay_raw(req).await.unwrap();
        response::parse_and_verify(&body, method, &self.alipay_key).unwrap()
    }

    async fn pay(&self, no: &str, code: &str, fen: i64, disable: &[&str]) -> alipay::Response {
        let pay = PayRequest {
            out_trade_no: no.into(),
            auth_code: code.into(),
            subject: "咖啡".into(),
            total_fen: fen,
            disable_pay_channels: disable.iter().map(|s| s.to_string()).collect(),
            query_fund_bill_list: true,
            ..PayRequest::default()
        };
        self.alipay(Request::pay(&self.app, &pay, &alipay::timestamp_now()).unwrap())
            .await
    }

    async fn query(&self, no: &str) -> alipay::Response {
        let req = Request::query(
            &self.app,
            &TradeRef::OutTradeNo(no.into()),
            &alipay::timestamp_now(),
        )
        .unwrap();
        self.alipay(req).await
    }

    async fn cancel(&self, no: &str) -> alipay::Response {
        let req = Request::cancel(
            &self.app,
            &TradeRef::OutTradeNo(no.into()),
            &alipay::timestamp_now(),
        )
        .unwrap();
        self.alipay(req).await
    }

    async fn control(&self, json: Value) {
        let a = self
            .client
            .post("/_sim/scenario", "application/json", json.to_string())
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{}", a.body);
    }

    async fn ledger(&self) -> Value {
        let a = self.client.get("/_sim/ledger").await.unwrap();
        serde_json::from_str(&a.body).unwrap()
    }

    fn wechat_cfg(&self, sign_type: SignType) -> wechat::MerchantConfig {
        let m = &self.sim.pki().merchant;
        wechat::MerchantConfig {
            appid: m.wechat_appid.clone(),
            mch_id: m.wechat_mch_id.clone(),
            sub_appid: None,
            sub_mch_id: None,
            api_key: m.wechat_api_key.clone(),
            sign_type,
        }
    }

    async fn wechat(&self, req: &wechat::Request, with_cert: bool) -> (u16, wechat::Response) {
        let cfg = self.wechat_cfg(SignType::HmacSha256);
        let client = if with_cert {
            &self.cert_client
        } else {
            &self.client
        };
        let a = client
            .post(req.api().path(), "text/xml", req.to_xml(&cfg))
            .await
            .unwrap();
        let resp = wechat::Response::parse(&a.body, &cfg.api_key, cfg.sign_type).unwrap();
        (a.status, resp)
    }

    fn micropay(no: &str, code: &str, fen: i64, no_credit: bool) -> wechat::Request {
        wechat::Request::micropay(&wechat::MicropayRequest {
            out_trade_no: no.into(),
            auth_code: code.into(),
            body: "便利店-饮料".into(),
            total_fen: fen,
            spbill_create_ip: "127.0.0.1".into(),
            no_credit,
            ..wechat::MicropayRequest::default()
        })
        .unwrap()
    }

    fn qra_cfg(&self) -> qra::MerchantConfig {
        let m = &self.sim.pki().merchant;
        qra::MerchantConfig {
            mch_id: m.qra_mch_id.clone(),
            key: m.qra_key.clone(),
        }
    }

    async fn qra(&self, req: &qra::Request) -> qra::Response {
        let cfg = self.qra_cfg();
        let a = self
            .client
            .post(qra::GATEWAY_PATH, "text/xml", req.to_xml(&cfg))
            .await
            .unwrap();
        qra::Response::parse(&a.body, &cfg.key).unwrap()
    }
}

// --- Alipay -------------------------------------------------------------------------------

#[tokio::test]
async fn a_huabei_only_customer_pays_and_the_receipt_says_huabei() {
    let t = till().await;
    let r = t.pay("HB1", "2860112345678901", 3500, &[]).await;
    assert_eq!(r.signature, response::SignatureStatus::Verified);
    assert_eq!(r.disposition(Method::TradePay), Disposition::Success);
    assert!(r.paid_with_huabei(), "{:?}", r.fund_bill_list);
    assert_eq!(r.total_fen(), Some(Ok(3500)));

    // The technician compares the terminal's journal with the acquirer's books.
    let ledger = t.ledger().await;
    let trade = &ledger["trades"]["alipay:HB1"];
    assert_eq!(trade["state"], "SUCCESS");
    assert_eq!(trade["fund_bills"][0]["fund_channel"], "PCREDIT");
    assert_eq!(trade["code_masked"], "28**********8901");
}

#[tokio::test]
async fn a_merchant_barring_huabei_turns_away_a_huabei_only_customer() {
    let t = till().await;
    let r = t
        .pay(
            "HB2",
            "2860112345678902",
            3500,
            &["pcredit", "pcreditpayInstallment"],
        )
        .await;
    assert_eq!(
        r.sub_code.as_deref(),
        Some("ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE")
    );
    assert_eq!(
        r.disposition(Method::TradePay),
        Disposition::Failed(FailureCause::BuyerFunds)
    );
    // Huabei not enabled in the merchant's contract, with a configured answer.
    t.control(serde_json::json!({"merchant": {
        "alipay_products_signed": true,
        "huabei_enabled": false,
        "huabei_refusal_sub_code": "ACQ.PAYMENT_FAIL"
    }}))
    .await;
    let r = t.pay("HB3", "2860112345678903", 3500, &[]).await;
    assert_eq!(r.sub_code.as_deref(), Some("ACQ.PAYMENT_FAIL"));
}

#[tokio::test]
async fn a_request_signed_with_the_wrong_key_is_refused_as_invalid_signature() {
    let mut t = till().await;
    t.app_key = generate_rsa_key(2048).unwrap().signer().unwrap();
    let r = t.pay("SIG1", "2800012345678901", 100, &[]).await;
    assert_eq!(r.code, "40002");
    assert_eq!(r.sub_code.as_deref(), Some("isv.invalid-signature"));
    assert_eq!(r.signature, response::SignatureStatus::UnsignedError);
    assert_eq!(
        r.disposition(Method::TradePay),
        Disposition::Failed(FailureCause::Request)
    );
    assert!(t.ledger().await["trades"].as_object().unwrap().is_empty());
}

#[tokio::test]
async fn a_payment_code_is_good_for_one_payment_only() {
    let t = till().await;
    let code = "2800012345678904";
    assert_eq!(t.pay("U1", code, 1200, &[]).await.code, "10000");
    let again = t.pay("U2", code, 1200, &[]).await;
    assert_eq!(
        again.sub_code.as_deref(),
        Some("ACQ.PAYMENT_AUTH_CODE_INVALID")
    );
    assert_eq!(
        again.disposition(Method::TradePay),
        Disposition::Failed(FailureCause::PaymentCode)
    );
    // The same order sent twice (a retry after a timeout) is recognised, not charged twice,
    // and the answer is no evidence of payment by itself: it names no trade and no amount.
    let dup = t.pay("U1", code, 1200, &[]).await;
    assert_eq!(dup.sub_code.as_deref(), Some("ACQ.TRADE_HAS_SUCCESS"));
    assert_eq!(
        dup.disposition(Method::TradePay),
        Disposition::OrderNumberTaken
    );
    assert_eq!(dup.trade_no, None);
    assert_eq!(dup.total_amount, None);
    // Another customer's code and amount under that paid number (a terminal that lost its
    // journal) get the same answer.
    let other = t.pay("U1", "2800012345678911", 1300, &[]).await;
    assert_eq!(other.sub_code.as_deref(), Some("ACQ.TRADE_HAS_SUCCESS"));
    assert_eq!(
        other.disposition(Method::TradePay),
        Disposition::OrderNumberTaken
    );
    let alice = &t.sim.ledger().buyers[0];
    assert_eq!(alice.balance_fen, 10_000_000 - 1200);
}

#[tokio::test]
async fn a_customer_typing_the_password_is_waited_for_and_then_paid() {
    let t = till().await;
    let code = "2800012345678905";
    t.control(
        serde_json::json!({"code": code, "scenario": {"kind": "wait_then_pay", "after_ms": 600}}),
    )
    .await;
    let r = t.pay("W1", code, 880, &[]).await;
    assert_eq!(r.code, "10003");
    assert_eq!(
        r.disposition(Method::TradePay),
        Disposition::WaitingForCustomer
    );
    assert!(r.trade_no.is_some(), "10003 already carries trade_no");
    let q = t.query("W1").await;
    assert_eq!(q.trade_status.as_deref(), Some("WAIT_BUYER_PAY"));
    assert_eq!(
        q.disposition(Method::TradeQuery),
        Disposition::WaitingForCustomer
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let q = t.query("W1").await;
    assert_eq!(q.trade_status.as_deref(), Some("TRADE_SUCCESS"));
    assert_eq!(q.disposition(Method::TradeQuery), Disposition::Success);
    assert_eq!(q.fund_bill_list[0].fund_channel, "ALIPAYACCOUNT");
}

#[tokio::test]
async fn a_customer_who_never_confirms_is_cancelled_and_the_trade_closed() {
    let t = till().await;
    let r = t.pay("N1", "2810212345678901", 500, &[]).await;
    assert_eq!(r.code, "10003");
    let c = t.cancel("N1").await;
    assert_eq!(c.disposition(Method::TradeCancel), Disposition::Success);
    assert_eq!(c.action.as_deref(), Some("close"));
    assert_eq!(
        t.query("N1").await.trade_status.as_deref(),
        Some("TRADE_CLOSED")
    );
}

#[tokio::test]
async fn a_cancel_answered_with_retry_flag_is_sent_again_and_refunds_the_charge() {
    let t = till().await;
    assert_eq!(
        t.pay("C1", "2880112345678901", 700, &[]).await.code,
        "10000"
    );
    let first = t.cancel("C1").await;
    assert_eq!(first.retry_flag.as_deref(), Some("Y"));
    assert_eq!(first.disposition(Method::TradeCancel), Disposition::Retry);
    let second = t.cancel("C1").await;
    assert_eq!(second.action.as_deref(), Some("refund"));
    assert_eq!(
        second.disposition(Method::TradeCancel),
        Disposition::Success
    );
    assert_eq!(t.sim.ledger().buyers[0].balance_fen, 10_000_000);
    // A cancel for an order Alipay never saw is nothing to undo.
    let none = t.cancel("NEVER").await;
    assert_eq!(none.sub_code.as_deref(), Some("ACQ.TRADE_NOT_EXIST"));
    assert_eq!(none.disposition(Method::TradeCancel), Disposition::Success);
}

#[tokio::test]
async fn a_system_error_is_resolved_by_query_not_by_paying_again() {
    let t = till().await;
    let charged = t.pay("E1", "2840212345678901", 1000, &[]).await;
    assert_eq!(charged.sub_code.as_deref(), Some("ACQ.SYSTEM_ERROR"));
    assert_eq!(
        charged.disposition(Method::TradePay),
        Disposition::QueryNeeded
    );
    assert_eq!(
        t.query("E1").await.disposition(Method::TradeQuery),
        Disposition::Success
    );

    let not_charged = t.pay("E2", "2840112345678901", 1000, &[]).await;
    assert_eq!(
        not_charged.disposition(Method::TradePay),
        Disposition::QueryNeeded
    );
    let q = t.query("E2").await;
    assert_eq!(q.sub_code.as_deref(), Some("ACQ.TRADE_NOT_EXIST"));

    let unavailable = t.pay("E3", "2840312345678901", 1000, &[]).await;
    assert_eq!(unavailable.code, "20000");
    assert_eq!(
        unavailable.disposition(Method::TradePay),
        Disposition::QueryNeeded
    );
}

#[tokio::test]
async fn risk_and_daily_limit_refusals_carry_their_own_codes() {
    let t = till().await;
    let risk = t.pay("R1", "2830112345678901", 100, &[]).await;
    assert_eq!(
        risk.sub_code.as_deref(),
        Some("ACQ.PAYMENT_REQUEST_HAS_RISK")
    );
    assert_eq!(
        risk.disposition(Method::TradePay),
        Disposition::Failed(FailureCause::Risk)
    );
    let limit = t.pay("R2", "2830212345678901", 100, &[]).await;
    assert_eq!(
        limit.sub_code.as_deref(),
        Some("ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR")
    );
    let low = t.pay("R3", "2860212345678901", 500, &[]).await;
    assert_eq!(
        low.sub_code.as_deref(),
        Some("ACQ.BUYER_BALANCE_NOT_ENOUGH")
    );
    let expired = t.pay("R4", "2820112345678901", 500, &[]).await;
    assert_eq!(
        expired.sub_code.as_deref(),
        Some("ACQ.PAYMENT_AUTH_CODE_INVALID")
    );
    // A WeChat code shown to the Alipay gateway is not an Alipay code.
    let wrong = t.pay("R5", "134567890123456789", 500, &[]).await;
    assert_eq!(
        wrong.sub_code.as_deref(),
        Some("ACQ.PAYMENT_AUTH_CODE_INVALID")
    );
}

#[tokio::test]
async fn a_lost_answer_after_the_charge_is_found_by_query() {
    let t = till().await;
    let pay = PayRequest {
        out_trade_no: "L1".into(),
        auth_code: "2850112345678901".into(),
        subject: "x".into(),
        total_fen: 4200,
        ..PayRequest::default()
    };
    let lost = t
        .alipay_raw(Request::pay(&t.app, &pay, &alipay::timestamp_now()).unwrap())
        .await;
    assert!(lost.is_err(), "the connection must drop without an answer");
    let q = t.query("L1").await;
    assert_eq!(q.disposition(Method::TradeQuery), Disposition::Success);
    assert_eq!(q.total_fen(), Some(Ok(4200)));
}

#[tokio::test]
async fn a_slow_gateway_answers_after_the_configured_delay() {
    let t = till().await;
    t.control(serde_json::json!({"slow_delay_ms": 1200})).await;
    let started = Instant::now();
    let r = t.pay("S1", "2850212345678901", 100, &[]).await;
    assert!(started.elapsed() >= Duration::from_millis(1200));
    assert_eq!(r.code, "10000");
}

#[tokio::test]
async fn a_forged_answer_is_not_believed_but_an_escaped_one_is() {
    let t = till().await;
    let pay = |no: &str, code: &str| PayRequest {
        out_trade_no: no.into(),
        auth_code: code.into(),
        subject: "x".into(),
        total_fen: 100,
        ..PayRequest::default()
    };
    let body = t
        .alipay_raw(
            Request::pay(
                &t.app,
                &pay("B1", "2850312345678901"),
                &alipay::timestamp_now(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        response::parse_and_verify(&body, Method::TradePay, &t.alipay_key),
        Err(response::ResponseError::Signature(SignatureError::Mismatch))
    );
    let body = t
        .alipay_raw(
            Request::pay(
                &t.app,
                &pay("B2", "2850412345678901"),
                &alipay::timestamp_now(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert!(body.contains("\\/"), "the scenario escapes slashes: {body}");
    let r = response::parse_and_verify(&body, Method::TradePay, &t.alipay_key).unwrap();
    assert_eq!(r.disposition(Method::TradePay), Disposition::Success);
}

#[tokio::test]
async fn a_customer_returns_goods_in_two_parts_and_a_repeated_refund_moves_no_money() {
    let t = till().await;
    assert_eq!(
        t.pay("F1", "2800012345678906", 1000, &[]).await.code,
        "10000"
    );
    let refund = |no: &str, fen: i64| {
        Request::refund(
            &t.app,
            &RefundRequest {
                trade: TradeRef::OutTradeNo("F1".into()),
                refund_fen: fen,
                out_request_no: no.into(),
                refund_reason: Some("退货".into()),
            },
            &alipay::timestamp_now(),
        )
        .unwrap()
    };
    let r1 = t.alipay(refund("F1R1", 300)).await;
    assert_eq!(r1.fund_changed(), Some(true));
    assert_eq!(r1.refund_fee_fen(), Some(Ok(300)));
    let again = t.alipay(refund("F1R1", 300)).await;
    assert_eq!(again.fund_changed(), Some(false));
    assert_eq!(again.disposition(Method::TradeRefund), Disposition::Success);
    let too_much = t.alipay(refund("F1R2", 800)).await;
    assert_eq!(
        too_much.sub_code.as_deref(),
        Some("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
    );
    let rest = t.alipay(refund("F1R2", 700)).await;
    assert_eq!(rest.refund_fee_fen(), Some(Ok(1000)));
    assert_eq!(
        t.query("F1").await.trade_status.as_deref(),
        Some("TRADE_CLOSED")
    );
}

// --- WeChat Pay ---------------------------------------------------------------------------

#[tokio::test]
async fn a_wechat_payment_is_signed_both_ways_and_reversal_needs_the_merchant_certificate() {
    let t = till().await;
    let (_, r) = t
        .wechat(
            &Till::micropay("WX1", "134000000000000001", 1500, false),
            false,
        )
        .await;
    assert_eq!(r.disposition(wechat::Api::Micropay), Disposition::Success);
    assert_eq!(r.cash_fen(), Some(Ok(1500)));
    assert!(r.transaction_id().is_some());

    let order = wechat::OrderRef::OutTradeNo("WX1".into());
    let reverse = wechat::Request::reverse(&order).unwrap();
    let (status, r) = t.wechat(&reverse, false).await;
    assert_eq!(status, 403, "no client certificate, no reversal");
    assert!(!r.return_ok());
    assert_eq!(
        t.sim.ledger().trades["wechat:WX1"].state,
        TradeState::Success
    );

    let (status, r) = t.wechat(&reverse, true).await;
    assert_eq!(status, 200);
    assert_eq!(r.disposition(wechat::Api::Reverse), Disposition::Success);
    assert_eq!(
        t.sim.ledger().trades["wechat:WX1"].state,
        TradeState::Revoked
    );
}

#[tokio::test]
async fn a_wechat_request_signed_with_the_wrong_api_key_gets_signerror() {
    let t = till().await;
    let mut cfg = t.wechat_cfg(SignType::Md5);
    cfg.api_key = "00000000000000000000000000000000".into();
    let body = Till::micropay("WX2", "134000000000000002", 100, false).to_xml(&cfg);
    let a = t
        .client
        .post("/pay/micropay", "text/xml", body)
        .await
        .unwrap();
    let fields = xml::decode(&a.body).unwrap();
    assert_eq!(fields["return_code"], "FAIL");
    assert_eq!(fields["err_code"], "SIGNERROR");
}

#[tokio::test]
async fn a_wechat_customer_entering_the_password_shows_userpaying_then_success() {
    let t = till().await;
    let code = "134000000000000003";
    t.control(
        serde_json::json!({"code": code, "scenario": {"kind": "wait_then_pay", "after_ms": 500}}),
    )
    .await;
    let (_, r) = t
        .wechat(&Till::micropay("WX3", code, 100, false), false)
        .await;
    assert_eq!(r.err_code(), Some("USERPAYING"));
    assert_eq!(
        r.disposition(wechat::Api::Micropay),
        Disposition::WaitingForCustomer
    );
    let q = wechat::Request::order_query(&wechat::OrderRef::OutTradeNo("WX3".into())).unwrap();
    assert_eq!(
        t.wechat(&q, false).await.1.trade_state(),
        Some("USERPAYING")
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, r) = t.wechat(&q, false).await;
    assert_eq!(r.trade_state(), Some("SUCCESS"));
    assert_eq!(r.disposition(wechat::Api::OrderQuery), Disposition::Success);
}

#[tokio::test]
async fn an_old_wechat_code_has_expired_and_a_credit_card_is_barred_by_no_credit() {
    let t = till().await;
    let code = "134000000000000004";
    let shown = smartpos_acquirer_sim::ledger::now_ms() - 61_000;
    t.control(serde_json::json!({"issued_code": {"code": code, "issued_ms": shown}}))
        .await;
    let (_, r) = t
        .wechat(&Till::micropay("WX4", code, 100, false), false)
        .await;
    assert_eq!(r.err_code(), Some("AUTHCODEEXPIRE"));
    assert_eq!(
        r.disposition(wechat::Api::Micropay),
        Disposition::Failed(FailureCause::PaymentCode)
    );
    let (_, r) = t
        .wechat(
            &Till::micropay("WX5", "136030000000000001", 100, true),
            false,
        )
        .await;
    assert_eq!(r.err_code(), Some("NOTSUPORTCARD"));
    let (_, r) = t
        .wechat(
            &Till::micropay("WX6", "136030000000000002", 100, false),
            false,
        )
        .await;
    assert!(r.paid_with_credit_card());
}

#[tokio::test]
async fn wechat_reverse_says_recall_once_then_refunds_and_refund_is_idempotent() {
    let t = till().await;
    let (_, r) = t
        .wechat(
            &Till::micropay("WX7", "138010000000000001", 900, false),
            false,
        )
        .await;
    assert!(r.result_ok());
    let reverse = wechat::Request::reverse(&wechat::OrderRef::OutTradeNo("WX7".into())).unwrap();
    let (_, first) = t.wechat(&reverse, true).await;
    assert!(first.recall());
    assert_eq!(first.disposition(wechat::Api::Reverse), Disposition::Retry);
    let (_, second) = t.wechat(&reverse, true).await;
    assert_eq!(
        second.disposition(wechat::Api::Reverse),
        Disposition::Success
    );

    let (_, r) = t
        .wechat(
            &Till::micropay("WX8", "134000000000000005", 900, false),
            false,
        )
        .await;
    assert!(r.result_ok());
    let refund = wechat::Request::refund(&wechat::RefundRequest {
        order: wechat::OrderRef::OutTradeNo("WX8".into()),
        out_refund_no: "WX8R1".into(),
        total_fen: 900,
        refund_fen: 400,
        refund_desc: None,
    })
    .unwrap();
    let (_, a) = t.wechat(&refund, true).await;
    let (_, b) = t.wechat(&refund, true).await;
    assert_eq!(a.refund_id(), b.refund_id());
    assert_eq!(t.sim.ledger().trades["wechat:WX8"].refunded_fen(), 400);
}

// --- QRA aggregator -----------------------------------------------------------------------

#[tokio::test]
async fn a_unionpay_code_pays_through_the_aggregator() {
    let t = till().await;
    let req = qra::Request::micropay(&qra::MicropayRequest {
        out_trade_no: "UP1".into(),
        auth_code: "6200012345678901234".into(),
        body: "超市".into(),
        total_fen: 2599,
        mch_create_ip: "127.0.0.1".into(),
        no_credit: false,
        op_user_id: None,
        op_device_id: Some("POS01".into()),
    })
    .unwrap();
    let r = t.qra(&req).await;
    assert_eq!(r.disposition(qra::Service::Micropay), Disposition::Success);
    assert_eq!(r.trade_type(), Some("pay.unionpay.micropay"));
    let q = t.qra(&qra::Request::query("UP1").unwrap()).await;
    assert_eq!(q.trade_state(), Some("SUCCESS"));

    let waiting = qra::Request::micropay(&qra::MicropayRequest {
        out_trade_no: "UP2".into(),
        auth_code: "6210212345678901234".into(),
        body: "超市".into(),
        total_fen: 100,
        mch_create_ip: "127.0.0.1".into(),
        no_credit: false,
        op_user_id: None,
        op_device_id: Some("POS01".into()),
    })
    .unwrap();
    let r = t.qra(&waiting).await;
    assert!(r.need_query());
    assert_eq!(
        r.disposition(qra::Service::Micropay),
        Disposition::WaitingForCustomer
    );
    let r = t.qra(&qra::Request::reverse("UP2").unwrap()).await;
    assert_eq!(r.disposition(qra::Service::Reverse), Disposition::Success);
    assert_eq!(t.sim.ledger().trades["qra:UP2"].state, TradeState::Revoked);
    // The aggregator's own word for a reversed order, which a terminal must understand.
    let q = t.qra(&qra::Request::query("UP2").unwrap()).await;
    assert_eq!(q.trade_state(), Some("REVERSE"));
    assert_eq!(
        q.disposition(qra::Service::Query),
        Disposition::Failed(FailureCause::OrderState)
    );
}

#[tokio::test]
async fn the_aggregator_refuses_a_refund_that_names_no_operator() {
    // A gateway written from the public QRA clients wants op_user_id on every refund.
    let t = till().await;
    let paid = qra::Request::micropay(&qra::MicropayRequest {
        out_trade_no: "UP9".into(),
        auth_code: "6200012345678909876".into(),
        body: "超市".into(),
        total_fen: 800,
        mch_create_ip: "127.0.0.1".into(),
        no_credit: false,
        op_user_id: Some("cashier-1".into()),
        op_device_id: Some("POS01".into()),
    })
    .unwrap();
    assert_eq!(
        t.qra(&paid).await.disposition(qra::Service::Micropay),
        Disposition::Success
    );
    // Hand-build the refund without op_user_id, as the terminal used to send it.
    let cfg = t.qra_cfg();
    let mut f = qra::Request::refund(&qra::RefundRequest {
        out_trade_no: "UP9".into(),
        out_refund_no: "UR9".into(),
        total_fen: 800,
        refund_fen: 800,
        op_user_id: "x".into(),
    })
    .unwrap()
    .signed_fields(&cfg);
    f.remove("op_user_id");
    f.remove("sign");
    let sig = smartpos_acquirer::wechat::sign::sign(
        &f,
        &cfg.key,
        smartpos_acquirer::wechat::SignType::Md5,
    );
    f.insert("sign".into(), sig);
    let a = t
        .client
        .post(
            qra::GATEWAY_PATH,
            "text/xml",
            smartpos_acquirer::xml::encode(&f),
        )
        .await
        .unwrap();
    let r = qra::Response::parse(&a.body, &cfg.key).unwrap();
    assert!(!r.status_ok());
    assert_eq!(r.get("message"), Some("参数错误: op_user_id"));
    assert_eq!(t.sim.ledger().trades["qra:UP9"].refunded_fen(), 0);
    // With it, the refund goes through.
    let r = t
        .qra(
            &qra::Request::refund(&qra::RefundRequest {
                out_trade_no: "UP9".into(),
                out_refund_no: "UR9".into(),
                total_fen: 800,
                refund_fen: 800,
                op_user_id: cfg.mch_id.clone(),
            })
            .unwrap(),
        )
        .await;
    assert_eq!(r.disposition(qra::Service::Refund), Disposition::Success);
    assert_eq!(t.sim.ledger().trades["qra:UP9"].refunded_fen(), 800);
}

// --- the emulator itself ------------------------------------------------------------------

#[tokio::test]
async fn the_ledger_and_keys_survive_an_emulator_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.json");
    let first = till_at(dir.path(), Some(ledger.clone())).await;
    let code = "2800012345678907";
    assert_eq!(first.pay("P1", code, 1200, &[]).await.code, "10000");
    first.sim.shutdown();

    // Same directory: same keys (the terminal's configuration still works), same books.
    let second = till_at(dir.path(), Some(ledger)).await;
    let q = second.query("P1").await;
    assert_eq!(q.trade_status.as_deref(), Some("TRADE_SUCCESS"));
    let reused = second.pay("P2", code, 1200, &[]).await;
    assert_eq!(
        reused.sub_code.as_deref(),
        Some("ACQ.PAYMENT_AUTH_CODE_INVALID")
    );
}

#[tokio::test]
async fn the_emulator_refuses_to_listen_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let err = start(SimConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        pki_dir: dir.path().join("pki"),
        ledger_file: None,
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("loopback"));
}

#[tokio::test]
async fn the_binary_announces_its_ephemeral_port_and_serves_the_ledger() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_smartpos-acquirer-sim"))
        .args(["--listen", "127.0.0.1:0", "--pki-dir"])
        .arg(&pki)
        .arg("--ledger")
        .arg(dir.path().join("ledger.json"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    })
    .await
    .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on https://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let client = SimClient::new(&pki, addr.parse().unwrap(), false).unwrap();
    let ledger = client.get("/_sim/ledger").await;
    child.kill().unwrap();
    child.wait().unwrap();
    let ledger: Value = serde_json::from_str(&ledger.unwrap().body).unwrap();
    assert_eq!(ledger["buyers"][0]["name"], "alice");
    assert!(dir.path().join("ledger.json").exists());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(pki.join(files::APP_PRIVATE_KEY))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "private keys are owner-only");
}

#[tokio::test]
async fn a_wechat_customer_who_walks_away_finds_the_order_revoked_after_45_seconds() {
    let t = till().await;
    let (_, r) = t
        .wechat(
            &Till::micropay("WX9", "131020000000000001", 100, false),
            false,
        )
        .await;
    assert_eq!(r.err_code(), Some("USERPAYING"));
    let q = wechat::Request::order_query(&wechat::OrderRef::OutTradeNo("WX9".into())).unwrap();
    t.control(serde_json::json!({"advance_clock_ms": 30_000}))
        .await;
    assert_eq!(
        t.wechat(&q, false).await.1.trade_state(),
        Some("USERPAYING")
    );
    t.control(serde_json::json!({"advance_clock_ms": 16_000}))
        .await;
    let (_, r) = t.wechat(&q, false).await;
    assert_eq!(r.trade_state(), Some("REVOKED"));
    assert_eq!(
        r.disposition(wechat::Api::OrderQuery),
        Disposition::Failed(FailureCause::OrderState)
    );
}

#[tokio::test]
async fn a_terminal_with_a_wrong_clock_is_told_so_by_alipay() {
    let t = till().await;
    let pay = PayRequest {
        out_trade_no: "CLK1".into(),
        auth_code: "2800012345678908".into(),
        subject: "x".into(),
        total_fen: 100,
        ..PayRequest::default()
    };
    // The terminal thinks it is an hour later than it is.
    let wrong =
        alipay::timestamp_gmt8((smartpos_acquirer_sim::ledger::now_ms() / 1000) as i64 + 3600);
    let r = t.alipay(Request::pay(&t.app, &pay, &wrong).unwrap()).await;
    assert_eq!(r.sub_code.as_deref(), Some("isv.invalid-timestamp"));
    let hint = smartpos_acquirer::alipay::codes::lookup("isv.invalid-timestamp").unwrap();
    assert!(hint.en.contains("clock"));
}

#[tokio::test]
async fn wechat_lost_and_forged_answers_are_resolved_by_orderquery() {
    let t = till().await;
    let cfg = t.wechat_cfg(SignType::HmacSha256);
    let lost = Till::micropay("WXL", "135010000000000001", 300, false);
    let sent = t
        .client
        .post(lost.api().path(), "text/xml", lost.to_xml(&cfg))
        .await;
    assert!(sent.is_err(), "the connection drops after the charge");
    let q = wechat::Request::order_query(&wechat::OrderRef::OutTradeNo("WXL".into())).unwrap();
    assert_eq!(t.wechat(&q, false).await.1.trade_state(), Some("SUCCESS"));

    let forged = Till::micropay("WXF", "135030000000000001", 300, false);
    let a = t
        .client
        .post(forged.api().path(), "text/xml", forged.to_xml(&cfg))
        .await
        .unwrap();
    assert_eq!(
        wechat::Response::parse(&a.body, &cfg.api_key, cfg.sign_type),
        Err(wechat::ResponseError::Signature(SignatureError::Mismatch))
    );
    let q = wechat::Request::order_query(&wechat::OrderRef::OutTradeNo("WXF".into())).unwrap();
    assert_eq!(t.wechat(&q, false).await.1.trade_state(), Some("SUCCESS"));
}

#[tokio::test]
async fn a_week_old_wechat_order_cannot_be_reversed_only_refunded() {
    let t = till().await;
    let (_, r) = t
        .wechat(
            &Till::micropay("WXOLD", "134000000000000009", 500, false),
            false,
        )
        .await;
    assert!(r.result_ok());
    t.control(serde_json::json!({"advance_clock_ms": 8u64 * 24 * 3600 * 1000}))
        .await;
    let reverse = wechat::Request::reverse(&wechat::OrderRef::OutTradeNo("WXOLD".into())).unwrap();
    let (_, r) = t.wechat(&reverse, true).await;
    assert_eq!(r.err_code(), Some("REVERSE_EXPIRE"), "{:?}", r.fields());
    assert_eq!(
        r.disposition(wechat::Api::Reverse),
        Disposition::Failed(FailureCause::OrderState)
    );
}

#[tokio::test]
async fn the_alipay_gateway_takes_every_parameter_from_the_form_body_too() {
    let t = till().await;
    let pay = PayRequest {
        out_trade_no: "FORM1".into(),
        auth_code: "2800012345678909".into(),
        subject: "x".into(),
        total_fen: 250,
        ..PayRequest::default()
    };
    let signed = Request::pay(&t.app, &pay, &alipay::timestamp_now())
        .unwrap()
        .sign(&t.app_key)
        .unwrap();
    // Some SDKs post everything as the form and nothing in the URL.
    let body = smartpos_acquirer::form::encode_pairs(
        signed
            .params()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let a = t
        .client
        .post(alipay::GATEWAY_PATH, alipay::CONTENT_TYPE, body)
        .await
        .unwrap();
    let r = response::parse_and_verify(&a.body, Method::TradePay, &t.alipay_key).unwrap();
    assert_eq!(r.code, "10000");
    assert_eq!(r.total_fen(), Some(Ok(250)));
}
