//! The QRA aggregator gateway (`POST /pay/gateway`): one URL, the operation in `service`, MD5
//! signing with the merchant key. Semantics as documented in `smartpos_acquirer::qra`.

use std::collections::BTreeMap;

use smartpos_acquirer::money::parse_fen;
use smartpos_acquirer::nonce::nonce_str;
use smartpos_acquirer::qra::Service;
use smartpos_acquirer::wechat::{SignType, sign};
use smartpos_acquirer::xml;

use crate::alipay::is_alipay_code;
use crate::ledger::{
    CancelResult, PayAttempt, PayResult, RefundResult, Scheme, Trade, TradeState, now_ms,
};
use crate::reply::{Reply, compact_time_gmt8, delivery_for};
use crate::scenario::Delivery;
use crate::server::State;
use crate::wechat::{is_wechat_code, refusal_code, trade_state};

type Fields = BTreeMap<String, String>;

/// The aggregator's `trade_type` for a code, or `None` if no scheme claims it.
pub fn trade_type(code: &str) -> Option<&'static str> {
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if code.len() == 19 && code.starts_with("62") {
        Some("pay.unionpay.micropay")
    } else if is_wechat_code(code) {
        Some("pay.weixin.micropay")
    } else if is_alipay_code(code) {
        Some("pay.alipay.micropay")
    } else {
        None
    }
}

fn status_fail(message: &str) -> Reply {
    let mut f = Fields::new();
    f.insert("version".into(), "2.0".into());
    f.insert("status".into(), "400".into());
    f.insert("message".into(), message.into());
    Reply::xml(xml::encode(&f))
}

struct Answer {
    fields: Fields,
    delivery: Delivery,
}

fn ok() -> Answer {
    Answer {
        fields: Fields::from([("result_code".to_owned(), "0".to_owned())]),
        delivery: Delivery::Normal,
    }
}

fn err(code: &str, msg: &str, need_query: Option<bool>) -> Answer {
    let mut f = Fields::new();
    f.insert("result_code".into(), "1".into());
    f.insert("err_code".into(), code.into());
    f.insert("err_msg".into(), msg.into());
    if let Some(q) = need_query {
        f.insert("need_query".into(), if q { "Y" } else { "N" }.into());
    }
    Answer {
        fields: f,
        delivery: Delivery::Normal,
    }
}

fn paid_fields(f: &mut Fields, t: &Trade, trade_type: &str) {
    f.insert("pay_result".into(), "0".into());
    f.insert("trade_type".into(), trade_type.into());
    f.insert("transaction_id".into(), t.trade_no.clone());
    f.insert("out_transaction_id".into(), format!("U{}", t.trade_no));
    f.insert("out_trade_no".into(), t.out_trade_no.clone());
    f.insert("total_fee".into(), t.amount_fen.to_string());
    f.insert(
        "bank_type".into(),
        t.bank_type.clone().unwrap_or_else(|| "OTHERS".into()),
    );
    if let Some(ms) = t.paid_ms {
        f.insert("time_end".into(), compact_time_gmt8(ms));
    }
}

fn micropay(state: &State, f: &Fields) -> Answer {
    let g = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let Ok(amount) = parse_fen(g("total_fee")) else {
        return err("PARAM_ERROR", "total_fee 参数错误", Some(false));
    };
    if amount < 1 || g("out_trade_no").is_empty() || g("body").is_empty() {
        return err("PARAM_ERROR", "参数错误", Some(false));
    }
    let code = g("auth_code");
    let Some(tt) = trade_type(code) else {
        return err("AUTH_CODE_INVALID", "无法识别的付款码", Some(false));
    };
    let attempt = PayAttempt {
        scheme: Scheme::Qra,
        out_trade_no: g("out_trade_no"),
        auth_code: code,
        amount_fen: amount,
        subject: g("body"),
        huabei_allowed: g("limit_credit_pay") != "1",
        credit_allowed: g("limit_credit_pay") != "1",
    };
    let mut ledger = state.ledger();
    let delivery = delivery_for(ledger.scenario_for(code), ledger.slow_delay_ms);
    let result = ledger.pay(&attempt, now_ms());
    drop(ledger);
    match result {
        PayResult::Paid(t) => {
            let mut a = ok();
            paid_fields(&mut a.fields, &t, tt);
            a.delivery = delivery;
            a
        }
        PayResult::Waiting(_) => err("USERPAYING", "需要用户输入支付密码", Some(true)),
        PayResult::Refused(r, _) => {
            let (c, d) = refusal_code(&r);
            err(c, d, Some(false))
        }
        PayResult::Fault(_, charged) => {
            let mut a = err("SYSTEMERROR", "系统错误，请查询订单", Some(true));
            if charged.is_some() {
                a.delivery = delivery;
            }
            a
        }
        PayResult::Duplicate(t) => match t.state {
            TradeState::Success => err("ORDERPAID", "订单已支付", Some(false)),
            TradeState::WaitBuyerPay => err("USERPAYING", "需要用户输入支付密码", Some(true)),
            TradeState::Closed => err("ORDERCLOSED", "订单已关闭", Some(false)),
            TradeState::Revoked => err("ORDERREVERSED", "订单已撤销", Some(false)),
        },
        PayResult::Inconsistent(_) => err("OUT_TRADE_NO_USED", "商户订单号重复", Some(false)),
    }
}

fn query(state: &State, f: &Fields) -> Answer {
    let no = f.get("out_trade_no").map(String::as_str).unwrap_or("");
    let Some(t) = state.ledger().query(Scheme::Qra, no, now_ms()) else {
        return err("ORDERNOTEXIST", "订单不存在", None);
    };
    let mut a = ok();
    if t.state == TradeState::Success {
        paid_fields(&mut a.fields, &t, "");
        a.fields.remove("trade_type");
    } else {
        a.fields
            .insert("out_trade_no".into(), t.out_trade_no.clone());
        a.fields
            .insert("total_fee".into(), t.amount_fen.to_string());
    }
    // The aggregator's own word for a reversed order is `REVERSE` (冲正), outside WeChat's
    // vocabulary; the rest is WeChat's.
    let state = match t.state {
        TradeState::Revoked => "REVERSE",
        _ => trade_state(&t),
    };
    a.fields.insert("trade_state".into(), state.into());
    a
}

/// The fields a gateway built from the public QRA clients' field lists insists on, per
/// service (docs/acquirers.md §3). `a|b` means either.
fn required(service: Service) -> &'static [&'static str] {
    match service {
        Service::Micropay => &[
            "out_trade_no",
            "body",
            "total_fee",
            "mch_create_ip",
            "auth_code",
            "nonce_str",
        ],
        Service::Query => &["out_trade_no|transaction_id", "nonce_str"],
        Service::Reverse => &["out_trade_no", "nonce_str"],
        Service::Refund => &[
            "out_trade_no|transaction_id",
            "out_refund_no",
            "total_fee",
            "refund_fee",
            "op_user_id",
            "nonce_str",
        ],
    }
}

fn missing(service: Service, fields: &Fields) -> Option<&'static str> {
    required(service).iter().copied().find(|alts| {
        !alts
            .split('|')
            .any(|k| fields.get(k).is_some_and(|v| !v.is_empty()))
    })
}

fn reverse(state: &State, f: &Fields) -> Answer {
    let no = f.get("out_trade_no").map(String::as_str).unwrap_or("");
    let result = state.ledger().cancel(Scheme::Qra, no, now_ms());
    let mut a = match result {
        CancelResult::NotFound => err("ORDERNOTEXIST", "订单不存在", None),
        CancelResult::RetryLater(_) => {
            let mut a = err("SYSTEMERROR", "系统繁忙，请重新调用撤销", None);
            a.fields.insert("recall".into(), "Y".into());
            return a;
        }
        CancelResult::Done(_) => ok(),
    };
    a.fields.insert("recall".into(), "N".into());
    a
}

fn refund(state: &State, f: &Fields) -> Answer {
    let g = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let (Ok(total), Ok(amount)) = (parse_fen(g("total_fee")), parse_fen(g("refund_fee"))) else {
        return err("PARAM_ERROR", "金额参数错误", None);
    };
    let mut ledger = state.ledger();
    let now = now_ms();
    let Some(t) = ledger.query(Scheme::Qra, g("out_trade_no"), now) else {
        return err("ORDERNOTEXIST", "订单不存在", None);
    };
    if total != t.amount_fen || g("out_refund_no").is_empty() {
        return err("PARAM_ERROR", "订单金额与原交易不一致或缺少退款单号", None);
    }
    let result = ledger.refund(
        Scheme::Qra,
        g("out_trade_no"),
        g("out_refund_no"),
        amount,
        now,
    );
    drop(ledger);
    match result {
        RefundResult::NotFound => err("ORDERNOTEXIST", "订单不存在", None),
        RefundResult::NotPaid(_) => err("TRADE_STATE_ERROR", "订单状态错误", None),
        RefundResult::Repeat(t, r) | RefundResult::Done(t, r) => {
            let mut a = ok();
            a.fields.insert("transaction_id".into(), t.trade_no);
            a.fields.insert("out_trade_no".into(), t.out_trade_no);
            a.fields.insert("out_refund_no".into(), r.out_request_no);
            a.fields.insert("refund_id".into(), r.refund_id);
            a.fields
                .insert("refund_fee".into(), r.amount_fen.to_string());
            a.fields.insert("refund_channel".into(), "ORIGINAL".into());
            a
        }
        RefundResult::Discordant(_) => err("INVALID_REQUEST", "退款单号重复但金额不一致", None),
        RefundResult::Exceeds(_) => err("INVALID_REQUEST", "退款金额大于可退金额", None),
    }
}

/// Handle one gateway call.
pub fn handle(state: &State, body: &str) -> Reply {
    let fields = match xml::decode(body) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "qra request is not XML");
            return status_fail("XML格式错误");
        }
    };
    let merchant = &state.pki.merchant;
    if sign::verify(&fields, &merchant.qra_key, SignType::Md5).is_err() {
        return status_fail("验证签名不通过");
    }
    if fields.get("mch_id") != Some(&merchant.qra_mch_id) {
        return status_fail("商户号不存在");
    }
    let Some(service) = fields.get("service").and_then(|s| Service::parse(s)) else {
        return status_fail("不支持的接口 service");
    };
    if let Some(name) = fields.get("service") {
        state.ledger().count_request(name);
    }
    if let Some(field) = missing(service, &fields) {
        return status_fail(&format!("参数错误: {field}"));
    }
    let mut answer = match service {
        Service::Micropay => micropay(state, &fields),
        Service::Query => query(state, &fields),
        Service::Reverse => reverse(state, &fields),
        Service::Refund => refund(state, &fields),
    };
    state.persist();
    let f = &mut answer.fields;
    f.insert("version".into(), "2.0".into());
    f.insert("charset".into(), "UTF-8".into());
    f.insert("sign_type".into(), "MD5".into());
    f.insert("status".into(), "0".into());
    f.insert("mch_id".into(), merchant.qra_mch_id.clone());
    f.insert("nonce_str".into(), nonce_str());
    let key = if answer.delivery == Delivery::BadSignature || state.ledger().bad_signatures {
        "not-the-merchant-key"
    } else {
        merchant.qra_key.as_str()
    };
    let signature = sign::sign(f, key, SignType::Md5);
    f.insert("sign".into(), signature);
    let delivery = match answer.delivery {
        Delivery::BadSignature | Delivery::EscapedSlashes => Delivery::Normal,
        d => d,
    };
    Reply::xml(xml::encode(f)).with_delivery(delivery)
}
