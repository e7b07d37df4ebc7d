//! Alipay `code` and `sub_code` catalogue (docs/acquirers.md §1.5, §1.8) and what each means for
//! the terminal. A `sub_code` not in the table is a definite failure of cause
//! [`FailureCause::Acquirer`]: Alipay's own F2F demo treats every unlisted 40004 as FAILED.

use super::Method;
use super::response::{Response, SignatureStatus, TradeStatus};
use crate::catalogue::{
    Cause, CodeRow, INTEGRATION_EN, INTEGRATION_ZH, LIMIT_EN, LIMIT_ZH, MERCHANT_EN, MERCHANT_ZH,
    NO_FUNDS_EN, NO_FUNDS_ZH, OTHER_METHOD_EN, OTHER_METHOD_ZH, QUERYING_EN, QUERYING_ZH,
    RESCAN_EN, RESCAN_ZH, STATE_EN, STATE_ZH, TAKEN_EN, TAKEN_ZH, WALLET_EN, WALLET_ZH, find, row,
};
use crate::disposition::{Disposition, FailureCause};

/// The gateway-level `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultCode {
    /// 10000: success.
    Success,
    /// 10003: in progress, waiting for the buyer (barcode pay only).
    InProgress,
    /// 20000: service unavailable, outcome unknown.
    ServiceUnavailable,
    /// 20001: insufficient authorization (app_auth_token).
    InsufficientAuthorization,
    /// 40001: missing parameter.
    MissingParameter,
    /// 40002: invalid parameter (signature, app_id, …).
    InvalidParameter,
    /// 40004: business failure; see `sub_code`.
    BusinessFailed,
    /// 40005: rate-limited.
    RateLimited,
    /// 40006: no permission for this interface.
    NoPermission,
    /// Anything else, verbatim.
    Other(String),
}

impl ResultCode {
    /// Parse the wire value.
    pub fn parse(code: &str) -> Self {
        match code {
            "10000" => ResultCode::Success,
            "10003" => ResultCode::InProgress,
            "20000" => ResultCode::ServiceUnavailable,
            "20001" => ResultCode::InsufficientAuthorization,
            "40001" => ResultCode::MissingParameter,
            "40002" => ResultCode::InvalidParameter,
            "40004" => ResultCode::BusinessFailed,
            "40005" => ResultCode::RateLimited,
            "40006" => ResultCode::NoPermission,
            other => ResultCode::Other(other.to_owned()),
        }
    }

    /// The wire value.
    pub fn as_str(&self) -> &str {
        match self {
            ResultCode::Success => "10000",
            ResultCode::InProgress => "10003",
            ResultCode::ServiceUnavailable => "20000",
            ResultCode::InsufficientAuthorization => "20001",
            ResultCode::MissingParameter => "40001",
            ResultCode::InvalidParameter => "40002",
            ResultCode::BusinessFailed => "40004",
            ResultCode::RateLimited => "40005",
            ResultCode::NoPermission => "40006",
            ResultCode::Other(s) => s,
        }
    }

    /// The `msg` Alipay sends with this code.
    pub fn default_msg(&self) -> &'static str {
        match self {
            ResultCode::Success => "Success",
            ResultCode::InProgress => " order success pay inprocess",
            ResultCode::ServiceUnavailable => "Service Currently Unavailable",
            ResultCode::InsufficientAuthorization => "Insufficient Token Permissions",
            ResultCode::MissingParameter => "Missing Required Arguments",
            ResultCode::InvalidParameter => "Invalid Arguments",
            ResultCode::BusinessFailed => "Business Failed",
            ResultCode::RateLimited => "Call Limited",
            ResultCode::NoPermission => "Insufficient Isv Permissions",
            ResultCode::Other(_) => "",
        }
    }
}

const fn failed(cause: FailureCause) -> Disposition {
    Disposition::Failed(cause)
}

use FailureCause::{
    Acquirer as ACQ, BuyerFunds as BUYER, MerchantConfig as MERCHANT, OrderState as ORDER,
    PaymentCode as CODE, Request as REQ, Risk as RISK,
};

/// The `sub_code` table: disposition of an `alipay.trade.pay` answer, cause and instruction
/// (docs/acquirers.md §1.8, copies of Alipay's error-code pages). The texts are what the cashier
/// is shown through `smartpos_payment::explain`.
pub static SUB_CODES: &[CodeRow] = &[
    row(
        "ACQ.SYSTEM_ERROR",
        Disposition::QueryNeeded,
        Cause::Network,
        QUERYING_ZH,
        QUERYING_EN,
    ),
    row(
        "AQC.SYSTEM_ERROR",
        Disposition::QueryNeeded,
        Cause::Network,
        QUERYING_ZH,
        QUERYING_EN,
    ),
    row(
        "isp.unknow-error",
        Disposition::QueryNeeded,
        Cause::Network,
        QUERYING_ZH,
        QUERYING_EN,
    ),
    row(
        "aop.unknow-error",
        Disposition::QueryNeeded,
        Cause::Network,
        QUERYING_ZH,
        QUERYING_EN,
    ),
    row(
        "ACQ.PAYMENT_AUTH_CODE_INVALID",
        failed(CODE),
        Cause::UserError,
        RESCAN_ZH,
        RESCAN_EN,
    ),
    row(
        "ACQ.AUTH_TOKEN_IS_NOT_EXIST",
        failed(CODE),
        Cause::UserError,
        RESCAN_ZH,
        RESCAN_EN,
    ),
    row(
        "ACQ.PULL_MOBILE_CASHIER_FAIL",
        failed(CODE),
        Cause::UserError,
        "顾客手机未能打开收银台,请顾客刷新付款码后重新扫码",
        "the customer's phone could not open the cashier: ask them to refresh the code and scan again",
    ),
    row(
        "ACQ.NOT_SUPPORT_PAYMENT_INST",
        failed(CODE),
        Cause::PlatformIncompatibility,
        "顾客支付宝版本过旧,请顾客升级支付宝或换一种付款方式",
        "the customer's Alipay app is too old: ask them to update it or pay another way",
    ),
    row(
        "ACQ.BUYER_BALANCE_NOT_ENOUGH",
        failed(BUYER),
        Cause::UserError,
        NO_FUNDS_ZH,
        NO_FUNDS_EN,
    ),
    row(
        "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH",
        failed(BUYER),
        Cause::UserError,
        NO_FUNDS_ZH,
        NO_FUNDS_EN,
    ),
    row(
        "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR",
        failed(BUYER),
        Cause::Compliance,
        "顾客付款码已达当日限额,请顾客换一种付款方式",
        "the customer reached the daily payment-code limit: ask for another payment method",
    ),
    row(
        "ACQ.BUYER_PAYMENT_AMOUNT_MONTH_LIMIT_ERROR",
        failed(BUYER),
        Cause::Compliance,
        "顾客付款码已达当月限额,请顾客换一种付款方式",
        "the customer reached the monthly payment-code limit: ask for another payment method",
    ),
    row(
        "ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE",
        failed(BUYER),
        Cause::UserError,
        "顾客没有可用的付款方式(花呗/余额/银行卡均不可用),请顾客换一种付款方式",
        "no funding source available (Huabei, balance, card): ask for another payment method",
    ),
    row(
        "ACQ.ERROR_BALANCE_PAYMENT_DISABLE",
        failed(BUYER),
        Cause::UserError,
        WALLET_ZH,
        WALLET_EN,
    ),
    row(
        "ACQ.MOBILE_PAYMENT_SWITCH_OFF",
        failed(BUYER),
        Cause::UserError,
        WALLET_ZH,
        WALLET_EN,
    ),
    row(
        "ACQ.USER_FACE_PAYMENT_SWITCH_OFF",
        failed(BUYER),
        Cause::UserError,
        WALLET_ZH,
        WALLET_EN,
    ),
    row(
        "ACQ.BUYER_ENABLE_STATUS_FORBID",
        failed(BUYER),
        Cause::RiskControl,
        OTHER_METHOD_ZH,
        OTHER_METHOD_EN,
    ),
    row(
        "ACQ.BUYER_NOT_EXIST",
        failed(BUYER),
        Cause::UserError,
        RESCAN_ZH,
        RESCAN_EN,
    ),
    row(
        "ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT",
        failed(BUYER),
        Cause::Compliance,
        WALLET_ZH,
        WALLET_EN,
    ),
    row(
        "ACQ.NOT_CERTIFIED_USER",
        failed(BUYER),
        Cause::Compliance,
        WALLET_ZH,
        WALLET_EN,
    ),
    row(
        "ACQ.BUYER_NOT_MAINLAND_CERT",
        failed(BUYER),
        Cause::Compliance,
        OTHER_METHOD_ZH,
        OTHER_METHOD_EN,
    ),
    row(
        "ACQ.ZM_CREDIT_AUTH_FAIL",
        failed(BUYER),
        Cause::RiskControl,
        OTHER_METHOD_ZH,
        OTHER_METHOD_EN,
    ),
    row(
        "ACQ.PAYMENT_REQUEST_HAS_RISK",
        failed(RISK),
        Cause::RiskControl,
        OTHER_METHOD_ZH,
        OTHER_METHOD_EN,
    ),
    row(
        "ACQ.PAYMENT_FAIL",
        failed(RISK),
        Cause::RiskControl,
        "支付失败,请顾客刷新付款码重试一次,仍失败请换一种付款方式",
        "payment failed: ask the customer to refresh the code once, then pay another way",
    ),
    row(
        "ACQ.RISK_MERCHANT_IP_NOT_EXIST",
        failed(RISK),
        Cause::RiskControl,
        "收单机构风控拒绝(终端IP),请联系服务商",
        "acquirer risk control rejected the terminal's IP: call the service provider",
    ),
    row(
        "ACQ.ACCESS_FORBIDDEN",
        failed(MERCHANT),
        Cause::MerchantConfig,
        "商户未签约该支付宝产品或签约已过期,收银台无法处理,请联系服务商/收单机构",
        "the merchant has not signed this Alipay product, or it expired; not fixable at the till: call the service provider",
    ),
    row(
        "ACQ.PRODUCT_AMOUNT_LIMIT_ERROR",
        failed(MERCHANT),
        Cause::MerchantConfig,
        LIMIT_ZH,
        LIMIT_EN,
    ),
    row(
        "ACQ.BEYOND_PAY_RESTRICTION",
        failed(MERCHANT),
        Cause::Compliance,
        LIMIT_ZH,
        LIMIT_EN,
    ),
    row(
        "ACQ.BEYOND_PER_RECEIPT_RESTRICTION",
        failed(MERCHANT),
        Cause::Compliance,
        LIMIT_ZH,
        LIMIT_EN,
    ),
    row(
        "ACQ.BEYOND_PER_RECEIPT_DAY_RESTRICTION",
        failed(MERCHANT),
        Cause::Compliance,
        LIMIT_ZH,
        LIMIT_EN,
    ),
    row(
        "ACQ.BEYOND_PER_RECEIPT_SINGLE_RESTRICTION",
        failed(MERCHANT),
        Cause::Compliance,
        LIMIT_ZH,
        LIMIT_EN,
    ),
    row(
        "ACQ.MERCHANT_PERM_RECEIPT_DAY_LIMIT",
        failed(MERCHANT),
        Cause::MerchantConfig,
        LIMIT_ZH,
        LIMIT_EN,
    ),
    row(
        "ACQ.MERCHANT_PERM_RECEIPT_SINGLE_LIMIT",
        failed(MERCHANT),
        Cause::MerchantConfig,
        LIMIT_ZH,
        LIMIT_EN,
    ),
    row(
        "ACQ.MERCHANT_PERM_RECEIPT_SUSPEND_LIMIT",
        failed(MERCHANT),
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    row(
        "ACQ.RESTRICTED_MERCHANT_INDUSTRY",
        failed(MERCHANT),
        Cause::Compliance,
        "金额超过本行业单笔上限,请顾客分开付款或换一种方式",
        "amount above the industry cap for this merchant: split the payment or pay another way",
    ),
    // docs/acquirers.md §1.8 files this under merchant configuration (not fixable at the POS).
    row(
        "ACQ.SELLER_BEEN_BLOCKED",
        failed(MERCHANT),
        Cause::MerchantConfig,
        "商户支付宝账号被冻结,收银台无法处理,请联系服务商/收单机构",
        "the merchant's Alipay account is blocked; not fixable at the till: call the service provider",
    ),
    row(
        "ACQ.MERCHANT_STATUS_NOT_NORMAL",
        failed(MERCHANT),
        Cause::MerchantConfig,
        "商户状态异常(可能长期未交易),请联系服务商激活",
        "merchant account not active (possibly idle for months): call the service provider",
    ),
    row(
        "ACQ.MERCHANT_AGREEMENT_NOT_EXIST",
        failed(MERCHANT),
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    row(
        "ACQ.MERCHANT_AGREEMENT_INVALID",
        failed(MERCHANT),
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    row(
        "ACQ.SECONDARY_MERCHANT_STATUS_ERROR",
        failed(MERCHANT),
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    // docs/acquirers.md §1.8: merchant configuration, like the other sub-merchant codes.
    row(
        "ACQ.SECONDARY_MERCHANT_ISV_PUNISH_INDIRECT",
        failed(MERCHANT),
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    row(
        "ACQ.INVALID_STORE_ID",
        failed(MERCHANT),
        Cause::MerchantConfig,
        "门店编号无效,请联系服务商检查终端的商户配置",
        "the store id is not valid: have the service provider check the terminal's merchant configuration",
    ),
    row(
        "ACQ.PARTNER_ERROR",
        failed(MERCHANT),
        Cause::MerchantConfig,
        "应用ID与商户不匹配,请联系服务商检查商户配置",
        "the app id and the merchant do not match: have the service provider check the merchant configuration",
    ),
    row(
        "ACQ.UN_SUPPORT_TRADE_SCENE",
        failed(MERCHANT),
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    row(
        "ACQ.EXIST_FORBIDDEN_WORD",
        failed(REQ),
        Cause::Compliance,
        "订单标题含违禁词,请联系服务商修改商品名称",
        "the order subject contains a forbidden word: have the goods name changed",
    ),
    row(
        "ACQ.TOTAL_FEE_EXCEED",
        failed(REQ),
        Cause::UserError,
        "金额超出允许范围(0.01–1亿元),请核对金额",
        "amount out of range (0.01 to 100,000,000 yuan): check the amount",
    ),
    // docs/acquirers.md §1.8: "if the buyer matches, treat as paid", so never paid by itself;
    // §1.7: a number reused with other details is CONTEXT_INCONSISTENT. Both mean the number
    // was taken: the connector queries and compares (software: our numbering handed it out).
    row(
        "ACQ.TRADE_HAS_SUCCESS",
        Disposition::OrderNumberTaken,
        Cause::Software,
        TAKEN_ZH,
        TAKEN_EN,
    ),
    row(
        "ACQ.TRADE_HAS_CLOSE",
        failed(ORDER),
        Cause::Guidance,
        STATE_ZH,
        STATE_EN,
    ),
    row(
        "ACQ.TRADE_BUYER_NOT_MATCH",
        failed(ORDER),
        Cause::UserError,
        STATE_ZH,
        STATE_EN,
    ),
    row(
        "ACQ.BUYER_SELLER_EQUAL",
        failed(RISK),
        Cause::RiskControl,
        "付款人与收款商户为同一人,不允许自付,请换人付款",
        "buyer and merchant are the same person: self-payment is not allowed",
    ),
    // docs/acquirers.md §1.7: the same out_trade_no re-submitted with different details.
    row(
        "ACQ.CONTEXT_INCONSISTENT",
        Disposition::OrderNumberTaken,
        Cause::Software,
        TAKEN_ZH,
        TAKEN_EN,
    ),
    row(
        "ACQ.TRADE_STATUS_ERROR",
        failed(ORDER),
        Cause::Guidance,
        STATE_ZH,
        STATE_EN,
    ),
    row(
        "ACQ.INVALID_PARAMETER",
        failed(REQ),
        Cause::PlatformIncompatibility,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    row(
        "ACQ.TRADE_NOT_EXIST",
        failed(ORDER),
        Cause::Guidance,
        STATE_ZH,
        STATE_EN,
    ),
    row(
        "ACQ.CANCEL_NOT_ALLOWED",
        failed(ORDER),
        Cause::Guidance,
        "该交易已不能撤销,请改为退款",
        "this sale can no longer be cancelled: refund it instead",
    ),
    row(
        "ACQ.SELLER_BALANCE_NOT_ENOUGH",
        failed(MERCHANT),
        Cause::MerchantConfig,
        "商户账户余额不足,无法退款,请联系服务商",
        "merchant balance too low for the refund: call the service provider",
    ),
    row(
        "ACQ.TRADE_HAS_FINISHED",
        failed(ORDER),
        Cause::Guidance,
        "交易已完结,不能退款",
        "this sale is finished and can no longer be refunded",
    ),
    row(
        "ACQ.DISCORDANT_REPEAT_REQUEST",
        failed(ORDER),
        Cause::Software,
        "退款请求与之前不一致,请使用新的退款单号",
        "refund differs from an earlier one with the same number: use a new refund reference",
    ),
    row(
        "ACQ.TRADE_NOT_ALLOW_REFUND",
        failed(ORDER),
        Cause::Guidance,
        "该交易不允许退款",
        "this sale does not allow refunds",
    ),
    row(
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
        failed(ORDER),
        Cause::Guidance,
        "退款金额超出可退金额,请核对退款金额",
        "the refund is more than what is left to refund: check the amount",
    ),
    row(
        "ACQ.REASON_TRADE_BEEN_FREEZEN",
        failed(ORDER),
        Cause::RiskControl,
        "交易被冻结,不能退款,请联系服务商",
        "the sale is frozen and cannot be refunded: call the service provider",
    ),
    row(
        "isv.invalid-signature",
        failed(REQ),
        Cause::PlatformIncompatibility,
        "支付宝验签失败,请联系技术支持检查应用私钥与支付宝公钥配置",
        "Alipay rejected the signature: call support to check the app private key and the Alipay public key",
    ),
    row(
        "isv.invalid-app-id",
        failed(MERCHANT),
        Cause::MerchantConfig,
        "支付宝不认识该应用ID,请联系服务商检查商户配置",
        "Alipay does not know this app id: have the service provider check the merchant configuration",
    ),
    row(
        "isv.missing-signature",
        failed(REQ),
        Cause::Software,
        "请求未签名,请联系技术支持更新终端",
        "the request was not signed: call support to update the terminal",
    ),
    row(
        "isv.invalid-timestamp",
        failed(REQ),
        Cause::SyncDelay,
        "请求时间被拒绝,请检查终端时钟与网络时间同步",
        "request time rejected: check the terminal clock and its network time sync",
    ),
];

/// The gateway `code` when an answer has no `sub_code` to go by (docs/acquirers.md §1.5). The
/// disposition is the one [`disposition`] gives a payment answer.
pub static RESULT_CODES: &[CodeRow] = &[
    // 20000 is `isp.unknow-error`: the outcome is unknown.
    row(
        "20000",
        Disposition::QueryNeeded,
        Cause::Network,
        QUERYING_ZH,
        QUERYING_EN,
    ),
    row(
        "20001",
        failed(MERCHANT),
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    row(
        "40001",
        failed(REQ),
        Cause::PlatformIncompatibility,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    row(
        "40002",
        failed(REQ),
        Cause::PlatformIncompatibility,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    row(
        "40005",
        failed(ACQ),
        Cause::Network,
        "请求过于频繁,请稍候再试",
        "too many requests: wait a moment and try again",
    ),
    row(
        "40006",
        failed(MERCHANT),
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
];

/// Look up a gateway `code` without a `sub_code`.
pub fn lookup_result_code(code: &str) -> Option<&'static CodeRow> {
    find(RESULT_CODES, code)
}

/// Look up a `sub_code`.
pub fn lookup(sub_code: &str) -> Option<&'static CodeRow> {
    find(SUB_CODES, sub_code)
}

/// What the terminal does with a verified response to `method`.
///
/// - pay: 10000 → Success; 10003 → WaitingForCustomer; 20000 → QueryNeeded; 40004 → the
///   catalogue (an unknown sub_code is a definite failure, as in Alipay's demo); 40001/40002 →
///   our fault; 20001/40006 → merchant configuration; 40005 → acquirer refusal.
/// - query: Success only for TRADE_SUCCESS/TRADE_FINISHED; WAIT_BUYER_PAY → WaitingForCustomer;
///   TRADE_CLOSED → Failed(OrderState); ACQ.TRADE_NOT_EXIST → Failed(OrderState) (the pay never
///   arrived); system errors → Retry.
/// - cancel: `retry_flag=Y` → Retry, else 10000 → Success (closed or refunded);
///   ACQ.TRADE_NOT_EXIST → Success (nothing to cancel: the payment never reached Alipay).
/// - refund: 10000 → Success (`fund_change=N` means an earlier identical request did it);
///   system errors → Retry with the same `out_request_no`.
///
/// An answer without a signature is never Success: it becomes QueryNeeded (pay) or Retry.
pub fn disposition(method: Method, response: &Response) -> Disposition {
    let d = match raw_disposition(method, response) {
        // Only a payment can collide with an order number already used; on a query, cancel
        // or refund the same codes are a plain conflict with the trade's state.
        Disposition::OrderNumberTaken if method != Method::TradePay => failed(ORDER),
        d => d,
    };
    if d == Disposition::Success && response.signature != SignatureStatus::Verified {
        return match method {
            Method::TradePay => Disposition::QueryNeeded,
            _ => Disposition::Retry,
        };
    }
    d
}

fn raw_disposition(method: Method, r: &Response) -> Disposition {
    let code = r.result_code();
    let sub = r.sub_code.as_deref().unwrap_or("");
    let transient = matches!(code, ResultCode::ServiceUnavailable)
        || lookup(sub).is_some_and(|e| e.disposition == Disposition::QueryNeeded);
    let generic = |code: &ResultCode| match code {
        ResultCode::MissingParameter | ResultCode::InvalidParameter => {
            lookup(sub).map_or(failed(REQ), |e| e.disposition)
        }
        ResultCode::InsufficientAuthorization | ResultCode::NoPermission => failed(MERCHANT),
        _ => lookup(sub).map_or(failed(ACQ), |e| e.disposition),
    };
    match method {
        Method::TradePay => match code {
            ResultCode::Success => Disposition::Success,
            ResultCode::InProgress => Disposition::WaitingForCustomer,
            _ if transient => Disposition::QueryNeeded,
            ResultCode::Other(_) => Disposition::QueryNeeded,
            c => generic(&c),
        },
        Method::TradeQuery => match code {
            ResultCode::Success => match r.trade_status() {
                Some(TradeStatus::TradeSuccess | TradeStatus::TradeFinished) => {
                    Disposition::Success
                }
                Some(TradeStatus::WaitBuyerPay) => Disposition::WaitingForCustomer,
                Some(TradeStatus::TradeClosed) => failed(ORDER),
                None => Disposition::Retry,
            },
            _ if transient => Disposition::Retry,
            ResultCode::Other(_) | ResultCode::RateLimited => Disposition::Retry,
            c => generic(&c),
        },
        Method::TradeCancel => {
            if r.should_retry() {
                return Disposition::Retry;
            }
            match code {
                ResultCode::Success => Disposition::Success,
                _ if sub == "ACQ.TRADE_NOT_EXIST" => Disposition::Success,
                _ if transient => Disposition::Retry,
                ResultCode::Other(_) | ResultCode::RateLimited => Disposition::Retry,
                c => generic(&c),
            }
        }
        Method::TradeRefund => match code {
            ResultCode::Success => Disposition::Success,
            _ if transient => Disposition::Retry,
            ResultCode::Other(_) | ResultCode::RateLimited => Disposition::Retry,
            c => generic(&c),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(code: &str, sub: Option<&str>) -> Response {
        Response {
            node_name: "x".into(),
            signature: SignatureStatus::Verified,
            code: code.into(),
            msg: String::new(),
            sub_code: sub.map(Into::into),
            sub_msg: None,
            trade_no: None,
            out_trade_no: None,
            buyer_logon_id: None,
            buyer_user_id: None,
            total_amount: None,
            receipt_amount: None,
            buyer_pay_amount: None,
            gmt_payment: None,
            send_pay_date: None,
            fund_bill_list: vec![],
            trade_status: None,
            retry_flag: None,
            action: None,
            fund_change: None,
            refund_fee: None,
            gmt_refund_pay: None,
        }
    }

    #[test]
    fn the_catalogue_has_no_duplicates() {
        for (i, e) in SUB_CODES.iter().enumerate() {
            assert!(
                SUB_CODES[i + 1..].iter().all(|o| o.code != e.code),
                "{} twice",
                e.code
            );
        }
    }

    #[test]
    fn a_customer_typing_the_password_is_waited_for_not_failed() {
        assert_eq!(
            resp("10003", None).disposition(Method::TradePay),
            Disposition::WaitingForCustomer
        );
    }

    #[test]
    fn a_system_error_on_pay_means_query_never_repay() {
        for r in [
            resp("40004", Some("ACQ.SYSTEM_ERROR")),
            resp("20000", Some("isp.unknow-error")),
        ] {
            assert_eq!(r.disposition(Method::TradePay), Disposition::QueryNeeded);
        }
    }

    #[test]
    fn a_used_code_asks_for_a_fresh_one_and_risk_asks_for_another_method() {
        assert_eq!(
            resp("40004", Some("ACQ.PAYMENT_AUTH_CODE_INVALID")).disposition(Method::TradePay),
            Disposition::Failed(FailureCause::PaymentCode)
        );
        assert_eq!(
            resp("40004", Some("ACQ.PAYMENT_REQUEST_HAS_RISK")).disposition(Method::TradePay),
            Disposition::Failed(FailureCause::Risk)
        );
        assert_eq!(
            resp("40004", Some("ACQ.SOMETHING_NEW")).disposition(Method::TradePay),
            Disposition::Failed(FailureCause::Acquirer)
        );
        assert_eq!(
            resp("40002", Some("isv.invalid-signature")).disposition(Method::TradePay),
            Disposition::Failed(FailureCause::Request)
        );
    }

    #[test]
    fn cancel_with_retry_flag_is_sent_again_and_query_reads_trade_status() {
        let mut r = resp("40004", Some("ACQ.SYSTEM_ERROR"));
        r.retry_flag = Some("Y".into());
        assert_eq!(r.disposition(Method::TradeCancel), Disposition::Retry);
        let mut q = resp("10000", None);
        q.trade_status = Some("WAIT_BUYER_PAY".into());
        assert_eq!(
            q.disposition(Method::TradeQuery),
            Disposition::WaitingForCustomer
        );
        q.trade_status = Some("TRADE_CLOSED".into());
        assert_eq!(
            q.disposition(Method::TradeQuery),
            Disposition::Failed(FailureCause::OrderState)
        );
        assert_eq!(
            resp("40004", Some("ACQ.TRADE_NOT_EXIST")).disposition(Method::TradeCancel),
            Disposition::Success
        );
    }
}
