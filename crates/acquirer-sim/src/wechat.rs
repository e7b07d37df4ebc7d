//! The WeChat Pay v2 endpoints: `/pay/micropay`, `/pay/orderquery`, and, only for a client
//! presenting the merchant certificate, `/secapi/pay/reverse` and `/secapi/pay/refund`.

use std::collections::BTreeMap;

use smartpos_acquirer::money::parse_fen;
use smartpos_acquirer::nonce::nonce_str;
use smartpos_acquirer::wechat::{Api, SignType, sign};
use smartpos_acquirer::xml;

use crate::ledger::{
    CancelResult, Fault, PayAttempt, PayResult, RefundResult, Refusal, Scheme, Trade, TradeState,
    now_ms,
};
use crate::reply::{Reply, compact_time_gmt8, delivery_for};
use crate::scenario::Delivery;
use crate::server::State;

/// Is this a WeChat payment code (18 digits, prefix 10–15)?
pub fn is_wechat_code(code: &str) -> bool {
    code.len() == 18
        && code.bytes().all(|b| b.is_ascii_digit())
        && matches!(
            code.get(..2).and_then(|p| p.parse::<u8>().ok()),
            Some(10..=15)
        )
}

type Fields = BTreeMap<String, String>;

fn fail_return(msg: &str) -> Reply {
    let mut f = Fields::new();
    f.insert("return_code".into(), "FAIL".into());
    f.insert("return_msg".into(), msg.into());
    Reply::xml(xml::encode(&f))
}

struct Answer {
    fields: Fields,
    delivery: Delivery,
}

fn ok() -> Answer {
    let mut f = Fields::new();
    f.insert("result_code".into(), "SUCCESS".into());
    Answer {
        fields: f,
        delivery: Delivery::Normal,
    }
}

fn err(code: &str, des: &str) -> Answer {
    let mut f = Fields::new();
    f.insert("result_code".into(), "FAIL".into());
    f.insert("err_code".into(), code.into());
    f.insert("err_code_des".into(), des.into());
    Answer {
        fields: f,
        delivery: Delivery::Normal,
    }
}

fn paid_fields(f: &mut Fields, t: &Trade) {
    f.insert("openid".into(), format!("oUpF8u{:0>22}", t.buyer.len()));
    f.insert("is_subscribe".into(), "N".into());
    f.insert("trade_type".into(), "MICROPAY".into());
    f.insert(
        "bank_type".into(),
        t.bank_type.clone().unwrap_or_else(|| "OTHERS".into()),
    );
    f.insert("total_fee".into(), t.amount_fen.to_string());
    f.insert("fee_type".into(), "CNY".into());
    f.insert("cash_fee".into(), t.amount_fen.to_string());
    f.insert("transaction_id".into(), t.trade_no.clone());
    f.insert("out_trade_no".into(), t.out_trade_no.clone());
    if let Some(ms) = t.paid_ms {
        f.insert("time_end".into(), compact_time_gmt8(ms));
    }
}

/// The WeChat `err_code` for a refusal (shared with the QRA front end).
pub fn refusal_code(r: &Refusal) -> (&'static str, &'static str) {
    match r {
        Refusal::CodeUsed => ("AUTH_CODE_ERROR", "每个二维码仅限使用一次，请刷新再试"),
        Refusal::CodeExpired => ("AUTHCODEEXPIRE", "二维码已过期，请用户在微信上刷新后再试"),
        Refusal::Risk => ("TRADE_ERROR", "交易错误：风险控制"),
        Refusal::DayLimit => ("TRADE_ERROR", "超出每日支付限额"),
        Refusal::BalanceTooLow | Refusal::HuabeiUnavailable(_) => (
            "NOTENOUGH",
            "用户帐号余额不足，请用户充值或更换支付卡后再支付",
        ),
        Refusal::CreditBarred => ("NOTSUPORTCARD", "该卡不支持当前支付，提示用户换卡支付"),
        Refusal::ProductNotSigned => ("NOAUTH", "商户无此接口权限"),
    }
}

fn micropay(state: &State, f: &Fields) -> Answer {
    let g = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let Ok(amount) = parse_fen(g("total_fee")) else {
        return err("PARAM_ERROR", "total_fee 参数错误");
    };
    if g("out_trade_no").is_empty() || g("body").is_empty() || g("auth_code").is_empty() {
        return err("LACK_PARAMS", "缺少参数");
    }
    if amount < 1 {
        return err("PARAM_ERROR", "total_fee 参数错误");
    }
    let code = g("auth_code");
    if !is_wechat_code(code) {
        return err("AUTH_CODE_INVALID", "请扫描微信支付被扫条码/二维码");
    }
    let attempt = PayAttempt {
        scheme: Scheme::Wechat,
        out_trade_no: g("out_trade_no"),
        auth_code: code,
        amount_fen: amount,
        subject: g("body"),
        huabei_allowed: false,
        credit_allowed: g("limit_pay") != "no_credit",
    };
    let mut ledger = state.ledger();
    let delivery = delivery_for(ledger.scenario_for(code), ledger.slow_delay_ms);
    let result = ledger.pay(&attempt, now_ms());
    drop(ledger);
    match result {
        PayResult::Paid(t) => {
            let mut a = ok();
            paid_fields(&mut a.fields, &t);
            a.delivery = delivery;
            a
        }
        PayResult::Waiting(_) => err("USERPAYING", "需要用户输入支付密码"),
        PayResult::Refused(r, _) => {
            let (c, d) = refusal_code(&r);
            err(c, d)
        }
        PayResult::Fault(fault, charged) => {
            let mut a = match fault {
                Fault::BankError => err("BANKERROR", "银行系统异常"),
                _ => err("SYSTEMERROR", "系统超时，请立即调用被扫订单结果查询API"),
            };
            if charged.is_some() {
                a.delivery = delivery;
            }
            a
        }
        PayResult::Duplicate(t) => match t.state {
            TradeState::Success => err("ORDERPAID", "订单已支付"),
            TradeState::WaitBuyerPay => err("USERPAYING", "需要用户输入支付密码"),
            TradeState::Closed => err("ORDERCLOSED", "订单已关闭"),
            TradeState::Revoked => err("ORDERREVERSED", "订单已撤销"),
        },
        PayResult::Inconsistent(_) => err("OUT_TRADE_NO_USED", "商户订单号重复"),
    }
}

fn find(state: &State, f: &Fields) -> Option<Trade> {
    let now = now_ms();
    let mut ledger = state.ledger();
    if let Some(no) = f.get("out_trade_no").filter(|s| !s.is_empty()) {
        ledger.query(Scheme::Wechat, no, now)
    } else if let Some(id) = f.get("transaction_id").filter(|s| !s.is_empty()) {
        ledger.query_by_trade_no(Scheme::Wechat, id, now)
    } else {
        None
    }
}

/// WeChat `trade_state` of a trade (shared with the QRA front end).
pub fn trade_state(t: &Trade) -> &'static str {
    match t.state {
        TradeState::WaitBuyerPay => "USERPAYING",
        TradeState::Success if !t.refunds.is_empty() => "REFUND",
        TradeState::Success => "SUCCESS",
        TradeState::Closed if t.cancel_action.is_none() && t.failure.is_some() => "PAYERROR",
        TradeState::Closed => "CLOSED",
        TradeState::Revoked => "REVOKED",
    }
}

fn orderquery(state: &State, f: &Fields) -> Answer {
    let Some(t) = find(state, f) else {
        return err("ORDERNOTEXIST", "此交易订单号不存在");
    };
    let mut a = ok();
    if t.state == TradeState::Success {
        paid_fields(&mut a.fields, &t);
    } else {
        a.fields
            .insert("out_trade_no".into(), t.out_trade_no.clone());
        a.fields
            .insert("total_fee".into(), t.amount_fen.to_string());
    }
    a.fields
        .insert("trade_state".into(), trade_state(&t).into());
    a
}

fn reverse(state: &State, f: &Fields) -> Answer {
    let Some(t) = find(state, f) else {
        let mut a = err("ORDERNOTEXIST", "订单不存在");
        a.fields.insert("recall".into(), "N".into());
        return a;
    };
    let now = state.ledger().emulator_now_ms();
    if now.saturating_sub(t.created_ms) > crate::ledger::REVERSE_WINDOW_MS {
        let mut a = err("REVERSE_EXPIRE", "订单已超过撤销期限，请使用退款接口");
        a.fields.insert("recall".into(), "N".into());
        return a;
    }
    let result = state
        .ledger()
        .cancel(Scheme::Wechat, &t.out_trade_no, now_ms());
    match result {
        CancelResult::NotFound => {
            let mut a = err("ORDERNOTEXIST", "订单不存在");
            a.fields.insert("recall".into(), "N".into());
            a
        }
        CancelResult::RetryLater(_) => {
            let mut a = err("SYSTEMERROR", "系统繁忙，请重新调用撤销");
            a.fields.insert("recall".into(), "Y".into());
            a
        }
        CancelResult::Done(_) => {
            let mut a = ok();
            a.fields.insert("recall".into(), "N".into());
            a
        }
    }
}

fn refund(state: &State, f: &Fields) -> Answer {
    let g = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let (Ok(total), Ok(amount)) = (parse_fen(g("total_fee")), parse_fen(g("refund_fee"))) else {
        return err("PARAM_ERROR", "total_fee/refund_fee 参数错误");
    };
    if g("out_refund_no").is_empty() {
        return err("LACK_PARAMS", "缺少 out_refund_no");
    }
    let Some(t) = find(state, f) else {
        return err("ORDERNOTEXIST", "订单不存在");
    };
    if total != t.amount_fen {
        return err("PARAM_ERROR", "订单金额或退款金额与之前请求不一致");
    }
    let result = state.ledger().refund(
        Scheme::Wechat,
        &t.out_trade_no,
        g("out_refund_no"),
        amount,
        now_ms(),
    );
    let done = |t: &Trade, r: &crate::ledger::Refund| {
        let mut a = ok();
        a.fields.insert("transaction_id".into(), t.trade_no.clone());
        a.fields
            .insert("out_trade_no".into(), t.out_trade_no.clone());
        a.fields
            .insert("out_refund_no".into(), r.out_request_no.clone());
        a.fields.insert("refund_id".into(), r.refund_id.clone());
        a.fields
            .insert("refund_fee".into(), r.amount_fen.to_string());
        a.fields
            .insert("total_fee".into(), t.amount_fen.to_string());
        a.fields.insert("cash_fee".into(), t.amount_fen.to_string());
        a
    };
    match result {
        RefundResult::NotFound => err("ORDERNOTEXIST", "订单不存在"),
        RefundResult::NotPaid(_) => err("TRADE_STATE_ERROR", "订单状态错误"),
        RefundResult::Repeat(t, r) | RefundResult::Done(t, r) => done(&t, &r),
        RefundResult::Discordant(_) => err("INVALID_REQUEST", "退款单号重复但金额不一致"),
        RefundResult::Exceeds(_) => err("INVALID_REQUEST", "退款金额大于可退金额"),
    }
}

/// Handle one call to `api`. `client_cert` is true when the TLS peer presented the merchant
/// certificate.
pub fn handle(state: &State, api: Api, body: &str, client_cert: bool) -> Reply {
    if api.needs_client_cert() && !client_cert {
        tracing::warn!(
            path = api.path(),
            "secapi call without the merchant client certificate"
        );
        return fail_return("证书错误：请使用商户API证书（client certificate required）")
            .with_status(403);
    }
    let fields = match xml::decode(body) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "wechat request is not XML");
            return fail_return("XML格式错误");
        }
    };
    let merchant = &state.pki.merchant;
    let Some(sign_type) = SignType::parse(fields.get("sign_type").map(String::as_str)) else {
        return fail_return("sign_type 参数错误");
    };
    if sign::verify(&fields, &merchant.wechat_api_key, sign_type).is_err() {
        let mut f = Fields::new();
        f.insert("return_code".into(), "FAIL".into());
        f.insert("return_msg".into(), "签名错误".into());
        f.insert("err_code".into(), "SIGNERROR".into());
        return Reply::xml(xml::encode(&f));
    }
    let mut answer = if fields.get("mch_id") != Some(&merchant.wechat_mch_id) {
        err("MCHID_NOT_EXIST", "商户号不存在")
    } else if fields.get("appid") != Some(&merchant.wechat_appid) {
        err("APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
    } else {
        match api {
            Api::Micropay => micropay(state, &fields),
            Api::OrderQuery => orderquery(state, &fields),
            Api::Reverse => reverse(state, &fields),
            Api::Refund => refund(state, &fields),
        }
    };
    state.persist();
    let f = &mut answer.fields;
    f.insert("return_code".into(), "SUCCESS".into());
    f.insert("return_msg".into(), "OK".into());
    f.insert("appid".into(), merchant.wechat_appid.clone());
    f.insert("mch_id".into(), merchant.wechat_mch_id.clone());
    f.insert("nonce_str".into(), nonce_str());
    let signature = sign::sign(f, &merchant.wechat_api_key, sign_type);
    let signature = if answer.delivery == Delivery::BadSignature || state.ledger().bad_signatures {
        sign::sign(f, "not-the-merchant-api-key", sign_type)
    } else {
        signature
    };
    f.insert("sign".into(), signature);
    let delivery = match answer.delivery {
        Delivery::BadSignature | Delivery::EscapedSlashes => Delivery::Normal,
        d => d,
    };
    Reply::xml(xml::encode(f)).with_delivery(delivery)
}
