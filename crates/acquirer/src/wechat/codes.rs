//! WeChat Pay v2 `err_code` catalogue (payments.md §2.1) and what each answer means.
//!
//! `return_code` is transport: FAIL means the request was refused before any business
//! processing (signature, parameters, certificate), so nothing was charged. For micropay,
//! `result_code=FAIL` is *not necessarily* a failure (WeChat's API rules): only the codes listed
//! as final are; USERPAYING waits for the customer, SYSTEMERROR/BANKERROR and anything unlisted
//! are resolved by querying.

use super::{Api, Response};
use crate::disposition::{Disposition, FailureCause};

/// What an `err_code` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrCodeInfo {
    /// The `err_code`.
    pub err_code: &'static str,
    /// What a micropay answer with this code means.
    pub disposition: Disposition,
    /// One line for the cashier (English).
    pub hint_en: &'static str,
    /// One line for the cashier (Chinese).
    pub hint_zh: &'static str,
}

const fn e(
    err_code: &'static str,
    disposition: Disposition,
    hint_en: &'static str,
    hint_zh: &'static str,
) -> ErrCodeInfo {
    ErrCodeInfo {
        err_code,
        disposition,
        hint_en,
        hint_zh,
    }
}

const fn failed(c: FailureCause) -> Disposition {
    Disposition::Failed(c)
}

use FailureCause::{
    BuyerFunds as BUYER, MerchantConfig as MERCHANT, OrderState as ORDER, PaymentCode as CODE,
    Request as REQ, Risk as RISK,
};

/// The catalogue.
pub static ERR_CODES: &[ErrCodeInfo] = &[
    e(
        "SYSTEMERROR",
        Disposition::QueryNeeded,
        "WeChat system error: checking the payment status",
        "微信系统错误，正在查询支付结果",
    ),
    e(
        "BANKERROR",
        Disposition::QueryNeeded,
        "The customer's bank is slow: checking the payment status",
        "银行系统异常，正在查询支付结果",
    ),
    e(
        "USERPAYING",
        Disposition::WaitingForCustomer,
        "Waiting for the customer to enter the password on the phone",
        "等待顾客在手机上输入密码",
    ),
    e(
        "AUTHCODEEXPIRE",
        failed(CODE),
        "Payment code expired: ask the customer to refresh it and scan again",
        "付款码已过期，请顾客刷新后重新扫码",
    ),
    e(
        "AUTH_CODE_ERROR",
        failed(CODE),
        "Payment code already used or wrong: ask the customer to refresh it",
        "付款码错误或已使用，请顾客刷新付款码",
    ),
    e(
        "AUTH_CODE_INVALID",
        failed(CODE),
        "Not a WeChat payment code: ask for the payment code (付款码), not a collection code",
        "不是微信付款码，请顾客出示付款码",
    ),
    e(
        "NOTENOUGH",
        failed(BUYER),
        "Customer's balance is too low: ask for another card or method",
        "顾客余额不足，请更换银行卡或付款方式",
    ),
    e(
        "NOTSUPORTCARD",
        failed(BUYER),
        "This card cannot be used here (credit cards may be barred): ask for another",
        "不支持该卡类型，请更换银行卡",
    ),
    e(
        "BUYER_MISMATCH",
        failed(ORDER),
        "Order paid by another buyer: start a new sale",
        "支付账号不一致，请重新下单",
    ),
    e(
        "ORDERPAID",
        Disposition::OrderNumberTaken,
        "Order number already paid, possibly by another sale: query it and compare the amount",
        "该订单号已被支付（可能是其他交易），需查询并核对金额",
    ),
    e(
        "ORDERCLOSED",
        failed(ORDER),
        "Order closed: start a new sale",
        "订单已关闭，请重新下单",
    ),
    e(
        "ORDERREVERSED",
        failed(ORDER),
        "Order reversed: start a new sale",
        "订单已撤销，请重新下单",
    ),
    e(
        "OUT_TRADE_NO_USED",
        Disposition::OrderNumberTaken,
        "Order number reused with different details: start a new sale",
        "商户订单号重复，请重新下单",
    ),
    e(
        "ORDERNOTEXIST",
        failed(ORDER),
        "WeChat has no such order",
        "订单不存在",
    ),
    e(
        "TRADE_STATE_ERROR",
        failed(ORDER),
        "Order state does not allow this operation",
        "订单状态错误",
    ),
    e(
        "REVERSE_EXPIRE",
        failed(ORDER),
        "Too late to reverse (7 days): refund instead",
        "订单已超过撤销期限，请改为退款",
    ),
    e(
        "NOAUTH",
        failed(MERCHANT),
        "Merchant lacks this permission: contact WeChat Pay",
        "商户无此接口权限，请联系微信支付",
    ),
    e(
        "TRADE_ERROR",
        failed(RISK),
        "Refused by WeChat risk control or a rule: ask for another method",
        "交易被风控或规则拒绝，请更换付款方式",
    ),
    e(
        "PARAM_ERROR",
        failed(REQ),
        "Invalid request parameter: a configuration or software fault",
        "参数错误，请联系技术人员",
    ),
    e(
        "SIGNERROR",
        failed(REQ),
        "WeChat rejected the signature: check the API key",
        "签名错误，请检查API密钥",
    ),
    e(
        "LACK_PARAMS",
        failed(REQ),
        "Missing parameter: a software fault",
        "缺少参数",
    ),
    e(
        "XML_FORMAT_ERROR",
        failed(REQ),
        "Malformed request: a software fault",
        "XML格式错误",
    ),
    e(
        "NOT_UTF8",
        failed(REQ),
        "Request not UTF-8: a software fault",
        "编码格式错误",
    ),
    e(
        "REQUIRE_POST_METHOD",
        failed(REQ),
        "Request not POST: a software fault",
        "请使用POST方法",
    ),
    e(
        "POST_DATA_EMPTY",
        failed(REQ),
        "Empty request: a software fault",
        "请求数据为空",
    ),
    e(
        "APPID_NOT_EXIST",
        failed(MERCHANT),
        "WeChat does not know this appid: fix the terminal configuration",
        "APPID不存在，请检查配置",
    ),
    e(
        "MCHID_NOT_EXIST",
        failed(MERCHANT),
        "WeChat does not know this merchant id: fix the terminal configuration",
        "商户号不存在，请检查配置",
    ),
    e(
        "APPID_MCHID_NOT_MATCH",
        failed(MERCHANT),
        "appid and merchant id do not match: fix the terminal configuration",
        "appid与商户号不匹配，请检查配置",
    ),
    e(
        "INVALID_REQUEST",
        failed(REQ),
        "Request rejected as invalid",
        "无效请求",
    ),
    e(
        "BIZERR_NEED_RETRY",
        Disposition::Retry,
        "Refund busy: sending it again",
        "退款业务繁忙，正在重试",
    ),
    e(
        "FREQUENCY_LIMITED",
        Disposition::Retry,
        "Too many requests: retrying shortly",
        "请求过于频繁，稍后重试",
    ),
];

/// Look up an `err_code`.
pub fn lookup(err_code: &str) -> Option<&'static ErrCodeInfo> {
    ERR_CODES.iter().find(|e| e.err_code == err_code)
}

/// What the terminal does with a verified answer from `api`.
///
/// - micropay: SUCCESS → Success; table for FAIL; unlisted → QueryNeeded.
/// - orderquery: trade_state SUCCESS/REFUND → Success (the order was paid); USERPAYING, NOTPAY,
///   ACCEPT → WaitingForCustomer; CLOSED, REVOKED, PAYERROR → Failed(OrderState);
///   ORDERNOTEXIST → Failed(OrderState) (the micropay never arrived); SYSTEMERROR → Retry.
/// - reverse: `recall=Y` → Retry whatever else it says; SUCCESS → Success; ORDERNOTEXIST →
///   Success (nothing to reverse).
/// - refund: SUCCESS → Success; SYSTEMERROR/BIZERR_NEED_RETRY → Retry with the same
///   out_refund_no.
/// - `return_code=FAIL` anywhere → Failed(Request): the request never reached business
///   processing; fix the configuration.
pub fn disposition(api: Api, r: &Response) -> Disposition {
    match raw_disposition(api, r) {
        // Only a payment can collide with an order number already used; elsewhere the same
        // codes are a plain conflict with the order's state.
        Disposition::OrderNumberTaken if api != Api::Micropay => failed(ORDER),
        d => d,
    }
}

fn raw_disposition(api: Api, r: &Response) -> Disposition {
    if !r.return_ok() {
        return failed(REQ);
    }
    let err = r.err_code().unwrap_or("");
    let entry = lookup(err);
    match api {
        Api::Micropay => {
            if r.result_ok() {
                Disposition::Success
            } else {
                entry.map_or(Disposition::QueryNeeded, |e| e.disposition)
            }
        }
        Api::OrderQuery => {
            if r.result_ok() {
                match r.trade_state() {
                    Some("SUCCESS" | "REFUND") => Disposition::Success,
                    Some("USERPAYING" | "NOTPAY" | "ACCEPT") => Disposition::WaitingForCustomer,
                    Some("CLOSED" | "REVOKED" | "PAYERROR") => failed(ORDER),
                    _ => Disposition::Retry,
                }
            } else {
                match entry.map(|e| e.disposition) {
                    Some(Disposition::QueryNeeded | Disposition::Retry) | None => {
                        Disposition::Retry
                    }
                    Some(d) => d,
                }
            }
        }
        Api::Reverse => {
            if r.recall() {
                Disposition::Retry
            } else if r.result_ok() || err == "ORDERNOTEXIST" {
                Disposition::Success
            } else {
                match entry.map(|e| e.disposition) {
                    Some(Disposition::QueryNeeded | Disposition::Retry) | None => {
                        Disposition::Retry
                    }
                    Some(d) => d,
                }
            }
        }
        Api::Refund => {
            if r.result_ok() {
                Disposition::Success
            } else {
                match entry.map(|e| e.disposition) {
                    Some(Disposition::QueryNeeded | Disposition::Retry) | None => {
                        Disposition::Retry
                    }
                    Some(d) => d,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn answer(pairs: &[(&str, &str)]) -> Response {
        let mut f: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        f.entry("return_code".into()).or_insert("SUCCESS".into());
        Response::from_fields(f)
    }

    #[test]
    fn a_customer_entering_the_password_is_waited_for() {
        let r = answer(&[("result_code", "FAIL"), ("err_code", "USERPAYING")]);
        assert_eq!(
            r.disposition(Api::Micropay),
            Disposition::WaitingForCustomer
        );
    }

    #[test]
    fn an_unknown_micropay_failure_is_queried_not_assumed() {
        let r = answer(&[("result_code", "FAIL"), ("err_code", "SOMETHING_NEW")]);
        assert_eq!(r.disposition(Api::Micropay), Disposition::QueryNeeded);
        let r = answer(&[("result_code", "FAIL"), ("err_code", "BANKERROR")]);
        assert_eq!(r.disposition(Api::Micropay), Disposition::QueryNeeded);
    }

    #[test]
    fn an_expired_code_asks_for_a_fresh_one() {
        let r = answer(&[("result_code", "FAIL"), ("err_code", "AUTHCODEEXPIRE")]);
        assert_eq!(
            r.disposition(Api::Micropay),
            Disposition::Failed(FailureCause::PaymentCode)
        );
    }

    #[test]
    fn reverse_is_repeated_while_wechat_says_recall() {
        let r = answer(&[
            ("result_code", "FAIL"),
            ("err_code", "SYSTEMERROR"),
            ("recall", "Y"),
        ]);
        assert_eq!(r.disposition(Api::Reverse), Disposition::Retry);
        let r = answer(&[("result_code", "SUCCESS"), ("recall", "N")]);
        assert_eq!(r.disposition(Api::Reverse), Disposition::Success);
    }

    #[test]
    fn the_query_after_45_seconds_shows_a_revoked_order_as_failed() {
        let r = answer(&[("result_code", "SUCCESS"), ("trade_state", "REVOKED")]);
        assert_eq!(
            r.disposition(Api::OrderQuery),
            Disposition::Failed(FailureCause::OrderState)
        );
        let r = answer(&[("return_code", "FAIL"), ("return_msg", "签名错误")]);
        assert_eq!(
            r.disposition(Api::OrderQuery),
            Disposition::Failed(FailureCause::Request)
        );
    }
}
