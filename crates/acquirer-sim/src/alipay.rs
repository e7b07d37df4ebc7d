//! The Alipay gateway (`POST /gateway.do`): verifies the app's RSA2 signature, runs the
//! ledger, answers with a node signed by the emulator's gateway key.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use smartpos_acquirer::alipay::{
    Method, parse_gateway_params, parse_timestamp_gmt8, response, verify_request,
};
use smartpos_acquirer::money::{fen_to_yuan, yuan_to_fen};

use crate::ledger::{Fault, PayAttempt, PayResult, Refusal, Scheme, Trade, TradeState, now_ms};
use crate::reply::{Reply, alipay_time, delivery_for};
use crate::scenario::Delivery;
use crate::server::State;

/// Is this an Alipay payment code (16–24 digits, prefix 25–30)?
pub fn is_alipay_code(code: &str) -> bool {
    (16..=24).contains(&code.len())
        && code.bytes().all(|b| b.is_ascii_digit())
        && matches!(
            code.get(..2).and_then(|p| p.parse::<u8>().ok()),
            Some(25..=30)
        )
}

struct Answer {
    node: Map<String, Value>,
    signed: bool,
    delivery: Delivery,
}

fn base(code: &str, msg: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("code".into(), code.into());
    m.insert("msg".into(), msg.into());
    m
}

fn business_error(sub_code: &str, sub_msg: &str) -> Map<String, Value> {
    let mut m = base("40004", "Business Failed");
    m.insert("sub_code".into(), sub_code.into());
    m.insert("sub_msg".into(), sub_msg.into());
    m
}

fn signed(node: Map<String, Value>) -> Answer {
    Answer {
        node,
        signed: true,
        delivery: Delivery::Normal,
    }
}

fn trade_fields(m: &mut Map<String, Value>, t: &Trade) {
    m.insert("trade_no".into(), t.trade_no.clone().into());
    m.insert("out_trade_no".into(), t.out_trade_no.clone().into());
    m.insert(
        "buyer_logon_id".into(),
        format!(
            "{}***@example.com",
            &t.buyer.chars().take(2).collect::<String>()
        )
        .into(),
    );
    m.insert("total_amount".into(), fen_to_yuan(t.amount_fen).into());
    // A real response field; its `/` exercises the escaped-slash verification rule.
    m.insert("store_name".into(), "smartpos test store 1/F".into());
}

fn paid_fields(m: &mut Map<String, Value>, t: &Trade) {
    trade_fields(m, t);
    let paid = fen_to_yuan(t.amount_fen);
    m.insert("receipt_amount".into(), paid.clone().into());
    m.insert("buyer_pay_amount".into(), paid.into());
    if let Some(ms) = t.paid_ms {
        m.insert("gmt_payment".into(), alipay_time(ms).into());
    }
    m.insert(
        "fund_bill_list".into(),
        Value::Array(
            t.fund_bills
                .iter()
                .map(|b| json!({"fund_channel": b.fund_channel, "amount": fen_to_yuan(b.amount_fen)}))
                .collect(),
        ),
    );
    m.insert(
        "buyer_user_id".into(),
        format!("2088{:012}", t.buyer.len()).into(),
    );
}

fn refusal_node(r: &Refusal) -> Map<String, Value> {
    let (code, msg) = match r {
        Refusal::CodeUsed | Refusal::CodeExpired => (
            "ACQ.PAYMENT_AUTH_CODE_INVALID",
            "支付失败，获取顾客账户信息失败，请顾客刷新付款码后重新收款",
        ),
        Refusal::Risk => (
            "ACQ.PAYMENT_REQUEST_HAS_RISK",
            "支付存在风险，请顾客更换其他支付方式",
        ),
        Refusal::DayLimit => (
            "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR",
            "买家付款日限额超限",
        ),
        Refusal::BalanceTooLow => ("ACQ.BUYER_BALANCE_NOT_ENOUGH", "买家余额不足"),
        Refusal::HuabeiUnavailable(code) => (code.as_str(), "没有可用的支付工具"),
        Refusal::CreditBarred => ("ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE", "没有可用的支付工具"),
        Refusal::ProductNotSigned => ("ACQ.ACCESS_FORBIDDEN", "无权限使用接口"),
    };
    business_error(code, msg)
}

fn pay(state: &State, biz: &Map<String, Value>) -> Answer {
    let s = |k: &str| biz.get(k).and_then(Value::as_str).unwrap_or("");
    let out_trade_no = s("out_trade_no");
    let auth_code = s("auth_code");
    if out_trade_no.is_empty() || auth_code.is_empty() || s("subject").is_empty() {
        return signed(business_error("ACQ.INVALID_PARAMETER", "参数无效"));
    }
    if !matches!(s("scene"), "bar_code" | "wave_code") {
        return signed(business_error("ACQ.INVALID_PARAMETER", "scene 参数无效"));
    }
    let Ok(amount) = yuan_to_fen(s("total_amount")) else {
        return signed(business_error(
            "ACQ.INVALID_PARAMETER",
            "total_amount 参数无效",
        ));
    };
    if !(1..=10_000_000_000).contains(&amount) {
        return signed(business_error("ACQ.TOTAL_FEE_EXCEED", "订单金额超过限额"));
    }
    if !is_alipay_code(auth_code) {
        // Not an Alipay code at all: refused before the ledger sees it, so it is not consumed.
        return signed(business_error(
            "ACQ.PAYMENT_AUTH_CODE_INVALID",
            "支付失败，获取顾客账户信息失败，请顾客刷新付款码后重新收款",
        ));
    }
    let disabled: Vec<&str> = s("disable_pay_channels")
        .split(',')
        .map(str::trim)
        .collect();
    let huabei_allowed = !disabled
        .iter()
        .any(|c| matches!(*c, "pcredit" | "credit_group"));
    let credit_allowed = !disabled.iter().any(|c| {
        matches!(
            *c,
            "credit_group" | "creditCard" | "creditCardExpress" | "creditCardCartoon"
        )
    });
    let attempt = PayAttempt {
        scheme: Scheme::Alipay,
        out_trade_no,
        auth_code,
        amount_fen: amount,
        subject: s("subject"),
        huabei_allowed,
        credit_allowed,
    };
    let mut ledger = state.ledger();
    let scenario = ledger.scenario_for(auth_code);
    let delivery = delivery_for(scenario, ledger.slow_delay_ms);
    let result = ledger.pay(&attempt, now_ms());
    drop(ledger);
    let mut answer = match result {
        PayResult::Paid(t) => {
            let mut m = base("10000", "Success");
            paid_fields(&mut m, &t);
            return Answer {
                node: m,
                signed: true,
                delivery,
            };
        }
        PayResult::Waiting(t) => {
            let mut m = base("10003", " order success pay inprocess");
            trade_fields(&mut m, &t);
            signed(m)
        }
        PayResult::Refused(r, _) => signed(refusal_node(&r)),
        PayResult::Fault(Fault::ServiceUnavailable, _) => {
            let mut m = base("20000", "Service Currently Unavailable");
            m.insert("sub_code".into(), "isp.unknow-error".into());
            m.insert("sub_msg".into(), "系统繁忙".into());
            signed(m)
        }
        PayResult::Fault(_, charged) => {
            let a = signed(business_error("ACQ.SYSTEM_ERROR", "系统错误"));
            if charged.is_some() {
                return Answer { delivery, ..a };
            }
            a
        }
        PayResult::Duplicate(t) => match t.state {
            // A business error carries no trade fields: the terminal learns who paid, and
            // how much, only by querying the number.
            TradeState::Success => signed(business_error("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")),
            TradeState::WaitBuyerPay => {
                let mut m = base("10003", " order success pay inprocess");
                trade_fields(&mut m, &t);
                signed(m)
            }
            TradeState::Closed | TradeState::Revoked => {
                signed(business_error("ACQ.TRADE_HAS_CLOSE", "交易已经关闭"))
            }
        },
        PayResult::Inconsistent(_) => {
            signed(business_error("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改"))
        }
    };
    answer.delivery = Delivery::Normal;
    answer
}

fn find_trade(state: &State, biz: &Map<String, Value>) -> Option<Trade> {
    let now = now_ms();
    let mut ledger = state.ledger();
    if let Some(no) = biz.get("out_trade_no").and_then(Value::as_str) {
        ledger.query(Scheme::Alipay, no, now)
    } else if let Some(no) = biz.get("trade_no").and_then(Value::as_str) {
        ledger.query_by_trade_no(Scheme::Alipay, no, now)
    } else {
        None
    }
}

fn query(state: &State, biz: &Map<String, Value>) -> Answer {
    let Some(t) = find_trade(state, biz) else {
        return signed(business_error("ACQ.TRADE_NOT_EXIST", "交易不存在"));
    };
    let mut m = base("10000", "Success");
    let status = match t.state {
        TradeState::WaitBuyerPay => "WAIT_BUYER_PAY",
        TradeState::Success if t.refunded_fen() >= t.amount_fen => "TRADE_CLOSED",
        TradeState::Success => "TRADE_SUCCESS",
        TradeState::Closed | TradeState::Revoked => "TRADE_CLOSED",
    };
    if t.state == TradeState::Success || !t.fund_bills.is_empty() {
        paid_fields(&mut m, &t);
        if let Some(ms) = t.paid_ms {
            m.insert("send_pay_date".into(), alipay_time(ms).into());
        }
    } else {
        trade_fields(&mut m, &t);
    }
    m.insert("trade_status".into(), status.into());
    signed(m)
}

fn cancel(state: &State, biz: &Map<String, Value>) -> Answer {
    let Some(no) = biz
        .get("out_trade_no")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| find_trade(state, biz).map(|t| t.out_trade_no))
    else {
        return signed(business_error("ACQ.INVALID_PARAMETER", "参数无效"));
    };
    let result = state.ledger().cancel(Scheme::Alipay, &no, now_ms());
    match result {
        crate::ledger::CancelResult::NotFound => {
            let mut m = business_error("ACQ.TRADE_NOT_EXIST", "交易不存在");
            m.insert("retry_flag".into(), "N".into());
            signed(m)
        }
        crate::ledger::CancelResult::RetryLater(t) => {
            let mut m = business_error("ACQ.SYSTEM_ERROR", "系统错误，请重试");
            m.insert("retry_flag".into(), "Y".into());
            m.insert("out_trade_no".into(), t.out_trade_no.into());
            signed(m)
        }
        crate::ledger::CancelResult::Done(t) => {
            let mut m = base("10000", "Success");
            m.insert("trade_no".into(), t.trade_no.clone().into());
            m.insert("out_trade_no".into(), t.out_trade_no.clone().into());
            m.insert("retry_flag".into(), "N".into());
            if let Some(action) = &t.cancel_action {
                m.insert("action".into(), action.clone().into());
                if action == "refund" {
                    m.insert("gmt_refund_pay".into(), alipay_time(now_ms()).into());
                }
            }
            signed(m)
        }
    }
}

fn refund(state: &State, biz: &Map<String, Value>) -> Answer {
    let Ok(amount) = yuan_to_fen(
        biz.get("refund_amount")
            .and_then(Value::as_str)
            .unwrap_or(""),
    ) else {
        return signed(business_error(
            "ACQ.INVALID_PARAMETER",
            "refund_amount 参数无效",
        ));
    };
    let Some(t) = find_trade(state, biz) else {
        return signed(business_error("ACQ.TRADE_NOT_EXIST", "交易不存在"));
    };
    // Without out_request_no Alipay treats the call as the refund identified by the trade.
    let request_no = biz
        .get("out_request_no")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(&t.out_trade_no)
        .to_owned();
    let result = state.ledger().refund(
        Scheme::Alipay,
        &t.out_trade_no,
        &request_no,
        amount,
        now_ms(),
    );
    use crate::ledger::RefundResult as R;
    let done = |t: &Trade, changed: bool| {
        let mut m = base("10000", "Success");
        m.insert("trade_no".into(), t.trade_no.clone().into());
        m.insert("out_trade_no".into(), t.out_trade_no.clone().into());
        m.insert("fund_change".into(), if changed { "Y" } else { "N" }.into());
        m.insert("refund_fee".into(), fen_to_yuan(t.refunded_fen()).into());
        m.insert("gmt_refund_pay".into(), alipay_time(now_ms()).into());
        signed(m)
    };
    match result {
        R::NotFound => signed(business_error("ACQ.TRADE_NOT_EXIST", "交易不存在")),
        R::NotPaid(t) if matches!(t.state, TradeState::Closed | TradeState::Revoked) => {
            signed(business_error("ACQ.TRADE_HAS_CLOSE", "交易已经关闭"))
        }
        R::NotPaid(_) => signed(business_error("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")),
        R::Repeat(t, _) => done(&t, false),
        R::Discordant(_) => signed(business_error(
            "ACQ.DISCORDANT_REPEAT_REQUEST",
            "请求信息不一致",
        )),
        R::Exceeds(_) => signed(business_error(
            "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
            "退款金额超限",
        )),
        R::Done(t, _) => done(&t, true),
    }
}

fn gateway_error(code: &str, msg: &str, sub_code: &str, sub_msg: &str) -> Reply {
    let mut m = base(code, msg);
    m.insert("sub_code".into(), sub_code.into());
    m.insert("sub_msg".into(), sub_msg.into());
    Reply::json(response::assemble(
        "error_response",
        &Value::Object(m).to_string(),
        None,
    ))
}

/// Handle one gateway call.
pub fn handle(state: &State, url_query: &str, body: &str) -> Reply {
    let params: BTreeMap<String, String> = match parse_gateway_params(url_query, body) {
        Ok(p) => p,
        Err(e) => {
            return gateway_error(
                "40002",
                "Invalid Arguments",
                "isv.invalid-parameter",
                &e.to_string(),
            );
        }
    };
    let Some(method) = params.get("method").and_then(|m| Method::parse(m)) else {
        return gateway_error(
            "40001",
            "Missing Required Arguments",
            "isv.missing-method",
            "缺少方法名参数",
        );
    };
    if let Some(name) = params.get("method") {
        state.ledger().count_request(name);
    }
    let node_name = method.response_node();
    let unsigned_error = |code: &str, msg: &str, sub: &str, sub_msg: &str| {
        let mut m = base(code, msg);
        m.insert("sub_code".into(), sub.into());
        m.insert("sub_msg".into(), sub_msg.into());
        Reply::json(response::assemble(
            &node_name,
            &Value::Object(m).to_string(),
            None,
        ))
    };
    if params.get("app_id") != Some(&state.pki.merchant.alipay_app_id) {
        return unsigned_error(
            "40002",
            "Invalid Arguments",
            "isv.invalid-app-id",
            "无效的AppID参数",
        );
    }
    if params.get("sign_type").map(String::as_str) != Some("RSA2") {
        return unsigned_error(
            "40002",
            "Invalid Arguments",
            "isv.invalid-signature-type",
            "无效的签名类型",
        );
    }
    let tolerance = i64::try_from(state.ledger().alipay_timestamp_tolerance_s).unwrap_or(i64::MAX);
    let wall = (now_ms() / 1000) as i64;
    let clock_ok = params
        .get("timestamp")
        .and_then(|t| parse_timestamp_gmt8(t))
        .is_some_and(|t| (t - wall).abs() <= tolerance);
    if !clock_ok {
        return unsigned_error(
            "40002",
            "Invalid Arguments",
            "isv.invalid-timestamp",
            "非法的时间戳参数：请检查终端时间",
        );
    }
    if let Err(e) = verify_request(&params, &state.pki.app_verifier) {
        tracing::warn!(method = method.as_str(), error = %e, "alipay request signature rejected");
        return unsigned_error(
            "40002",
            "Invalid Arguments",
            "isv.invalid-signature",
            "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配",
        );
    }
    let biz = match params
        .get("biz_content")
        .map(|b| serde_json::from_str::<Value>(b))
    {
        Some(Ok(Value::Object(m))) => m,
        _ => {
            return unsigned_error(
                "40004",
                "Business Failed",
                "ACQ.INVALID_PARAMETER",
                "biz_content 无效",
            );
        }
    };
    let mut answer = match method {
        Method::TradePay => pay(state, &biz),
        Method::TradeQuery => query(state, &biz),
        Method::TradeCancel => cancel(state, &biz),
        Method::TradeRefund => refund(state, &biz),
    };
    if state.ledger().bad_signatures && answer.delivery == Delivery::Normal {
        answer.delivery = Delivery::BadSignature;
    }
    state.persist();
    render(state, &node_name, answer)
}

fn render(state: &State, node_name: &str, answer: Answer) -> Reply {
    let content = Value::Object(answer.node).to_string();
    if !answer.signed {
        return Reply::json(response::assemble(node_name, &content, None));
    }
    let sign = match state
        .pki
        .alipay_gateway_signer
        .sign_base64(content.as_bytes())
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot sign an alipay response");
            return Reply::json(response::assemble(node_name, &content, None));
        }
    };
    match answer.delivery {
        Delivery::BadSignature => {
            // Signed over different bytes: a well-formed signature that does not match.
            let wrong = state
                .pki
                .alipay_gateway_signer
                .sign_base64(format!("{content} ").as_bytes())
                .unwrap_or(sign);
            Reply::json(response::assemble(node_name, &content, Some(&wrong)))
        }
        Delivery::EscapedSlashes => {
            let body = format!(
                r#"{{"{node_name}":{},"sign":"{}"}}"#,
                content.replace('/', "\\/"),
                sign.replace('/', "\\/")
            );
            Reply::json(body)
        }
        other => {
            Reply::json(response::assemble(node_name, &content, Some(&sign))).with_delivery(other)
        }
    }
}
