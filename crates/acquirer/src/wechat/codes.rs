//! WeChat Pay v2 `err_code` catalogue (docs/acquirers.md §2.1) and what each answer means.
//!
//! `return_code` is transport: FAIL means the request was refused before any business
//! processing (signature, parameters, certificate), so nothing was charged. For micropay,
//! `result_code=FAIL` is *not necessarily* a failure (WeChat's API rules): only the codes listed
//! as final are; USERPAYING waits for the customer, SYSTEMERROR/BANKERROR and anything unlisted
//! are resolved by querying.

use super::{Api, Response};
use crate::catalogue::{
    Cause, CodeRow, INTEGRATION_EN, INTEGRATION_ZH, MERCHANT_EN, MERCHANT_ZH, NO_FUNDS_EN,
    NO_FUNDS_ZH, OTHER_METHOD_EN, OTHER_METHOD_ZH, QUERYING_EN, QUERYING_ZH, RESCAN_EN, RESCAN_ZH,
    STATE_EN, STATE_ZH, TAKEN_EN, TAKEN_ZH, find, row,
};
use crate::disposition::{Disposition, FailureCause};

const fn failed(c: FailureCause) -> Disposition {
    Disposition::Failed(c)
}

use FailureCause::{
    BuyerFunds as BUYER, MerchantConfig as MERCHANT, OrderState as ORDER, PaymentCode as CODE,
    Request as REQ, Risk as RISK,
};

/// The `err_code` table (and the orderquery `trade_state` values that end a sale): disposition
/// of a micropay answer, cause and instruction (docs/acquirers.md §2.1). The texts are what the
/// cashier is shown through `smartpos_payment::explain`.
pub static ERR_CODES: &[CodeRow] = &[
    row(
        "SYSTEMERROR",
        Disposition::QueryNeeded,
        Cause::Network,
        QUERYING_ZH,
        QUERYING_EN,
    ),
    row(
        "BANKERROR",
        Disposition::QueryNeeded,
        Cause::Network,
        QUERYING_ZH,
        QUERYING_EN,
    ),
    row(
        "USERPAYING",
        Disposition::WaitingForCustomer,
        Cause::UserError,
        "等待顾客在手机上输入密码确认",
        "waiting for the customer to confirm on the phone",
    ),
    row(
        "AUTHCODEEXPIRE",
        failed(CODE),
        Cause::UserError,
        "付款码已过期,请顾客刷新付款码后重新扫码",
        "the payment code expired: ask the customer to refresh it and scan again",
    ),
    row(
        "AUTH_CODE_ERROR",
        failed(CODE),
        Cause::UserError,
        RESCAN_ZH,
        RESCAN_EN,
    ),
    row(
        "AUTH_CODE_INVALID",
        failed(CODE),
        Cause::UserError,
        "这不是微信付款码,请顾客出示付款码",
        "not a WeChat payment code: ask for the payment code (付款码)",
    ),
    row(
        "NOTENOUGH",
        failed(BUYER),
        Cause::UserError,
        NO_FUNDS_ZH,
        NO_FUNDS_EN,
    ),
    row(
        "NOTSUPORTCARD",
        failed(BUYER),
        Cause::UserError,
        "顾客的卡不支持此交易(可能为信用卡受限),请顾客换一张卡或换一种付款方式",
        "the customer's card is not accepted here (credit may be barred): ask for another card or method",
    ),
    row(
        "BUYER_MISMATCH",
        failed(ORDER),
        Cause::UserError,
        STATE_ZH,
        STATE_EN,
    ),
    // docs/acquirers.md §2.1 lists ORDERPAID/OUT_TRADE_NO_USED as final for the micropay itself,
    // not as evidence that this sale was paid: the connector queries and compares.
    row(
        "ORDERPAID",
        Disposition::OrderNumberTaken,
        Cause::Software,
        TAKEN_ZH,
        TAKEN_EN,
    ),
    row(
        "ORDERCLOSED",
        failed(ORDER),
        Cause::Guidance,
        STATE_ZH,
        STATE_EN,
    ),
    row(
        "ORDERREVERSED",
        failed(ORDER),
        Cause::Guidance,
        STATE_ZH,
        STATE_EN,
    ),
    row(
        "OUT_TRADE_NO_USED",
        Disposition::OrderNumberTaken,
        Cause::Software,
        TAKEN_ZH,
        TAKEN_EN,
    ),
    row(
        "ORDERNOTEXIST",
        failed(ORDER),
        Cause::Guidance,
        STATE_ZH,
        STATE_EN,
    ),
    row(
        "TRADE_STATE_ERROR",
        failed(ORDER),
        Cause::Guidance,
        STATE_ZH,
        STATE_EN,
    ),
    row(
        "REVERSE_EXPIRE",
        failed(ORDER),
        Cause::Guidance,
        "已超过撤销期限,请改为退款",
        "too late to reverse: refund instead",
    ),
    row(
        "NOAUTH",
        failed(MERCHANT),
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    row(
        "TRADE_ERROR",
        failed(RISK),
        Cause::RiskControl,
        OTHER_METHOD_ZH,
        OTHER_METHOD_EN,
    ),
    row(
        "PARAM_ERROR",
        failed(REQ),
        Cause::PlatformIncompatibility,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    row(
        "SIGNERROR",
        failed(REQ),
        Cause::PlatformIncompatibility,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    row(
        "LACK_PARAMS",
        failed(REQ),
        Cause::PlatformIncompatibility,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    row(
        "XML_FORMAT_ERROR",
        failed(REQ),
        Cause::PlatformIncompatibility,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    row(
        "NOT_UTF8",
        failed(REQ),
        Cause::PlatformIncompatibility,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    row(
        "REQUIRE_POST_METHOD",
        failed(REQ),
        Cause::PlatformIncompatibility,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    row(
        "POST_DATA_EMPTY",
        failed(REQ),
        Cause::PlatformIncompatibility,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    row(
        "APPID_NOT_EXIST",
        failed(MERCHANT),
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    row(
        "MCHID_NOT_EXIST",
        failed(MERCHANT),
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    row(
        "APPID_MCHID_NOT_MATCH",
        failed(MERCHANT),
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    row(
        "INVALID_REQUEST",
        failed(REQ),
        Cause::PlatformIncompatibility,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    row(
        "BIZERR_NEED_RETRY",
        Disposition::Retry,
        Cause::Network,
        "退款业务繁忙,正在用同一退款单号重试,请勿重复退款",
        "WeChat refund busy: retrying with the same refund number, do not refund again",
    ),
    row(
        "FREQUENCY_LIMITED",
        Disposition::Retry,
        Cause::Network,
        "请求过于频繁,稍候自动重试",
        "too many requests: retrying shortly",
    ),
    // orderquery `trade_state` values (docs/acquirers.md §2.1), explained like err_codes.
    row("CLOSED", failed(ORDER), Cause::Guidance, STATE_ZH, STATE_EN),
    row(
        "REVOKED",
        failed(ORDER),
        Cause::Guidance,
        STATE_ZH,
        STATE_EN,
    ),
    row(
        "PAYERROR",
        failed(ORDER),
        Cause::UserError,
        "支付失败,请顾客刷新付款码重试或换一种付款方式",
        "payment failed: ask the customer to refresh the code, or pay another way",
    ),
    // The terminal's own name for a refund refused because the merchant balance is short
    // (WeChat sends NOTENOUGH on a refund for that).
    row(
        "NOTENOUGH_REFUND",
        failed(MERCHANT),
        Cause::MerchantConfig,
        "商户账户余额不足,无法退款,请联系服务商",
        "merchant balance too low for the refund: call the service provider",
    ),
];

/// Look up an `err_code`.
pub fn lookup(err_code: &str) -> Option<&'static CodeRow> {
    find(ERR_CODES, err_code)
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
