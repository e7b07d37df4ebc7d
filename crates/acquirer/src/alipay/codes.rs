//! Alipay `code` and `sub_code` catalogue (payments.md §1.5, §1.8) and what each means for the
//! terminal. A `sub_code` not in the table is a definite failure of cause
//! [`FailureCause::Acquirer`]: Alipay's own F2F demo treats every unlisted 40004 as FAILED.

use super::Method;
use super::response::{Response, SignatureStatus, TradeStatus};
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

/// What a `sub_code` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubCodeInfo {
    /// The `sub_code`.
    pub sub_code: &'static str,
    /// What a `alipay.trade.pay` answer with this sub_code means.
    pub disposition: Disposition,
    /// One line for the cashier (English).
    pub hint_en: &'static str,
    /// One line for the cashier (Chinese).
    pub hint_zh: &'static str,
}

const fn entry(
    sub_code: &'static str,
    disposition: Disposition,
    hint_en: &'static str,
    hint_zh: &'static str,
) -> SubCodeInfo {
    SubCodeInfo {
        sub_code,
        disposition,
        hint_en,
        hint_zh,
    }
}

const fn failed(cause: FailureCause) -> Disposition {
    Disposition::Failed(cause)
}

use FailureCause::{
    Acquirer as ACQ, BuyerFunds as BUYER, MerchantConfig as MERCHANT, OrderState as ORDER,
    PaymentCode as CODE, Request as REQ, Risk as RISK,
};

/// The catalogue. Sources: payments.md §1.8 (copies of Alipay's error-code pages).
pub static SUB_CODES: &[SubCodeInfo] = &[
    entry(
        "ACQ.SYSTEM_ERROR",
        Disposition::QueryNeeded,
        "Alipay system error: checking the payment status",
        "支付宝系统错误，正在查询支付结果",
    ),
    entry(
        "AQC.SYSTEM_ERROR",
        Disposition::QueryNeeded,
        "Alipay system error: checking the payment status",
        "支付宝系统错误，正在查询支付结果",
    ),
    entry(
        "isp.unknow-error",
        Disposition::QueryNeeded,
        "Alipay service unavailable: checking the payment status",
        "支付宝服务暂不可用，正在查询支付结果",
    ),
    entry(
        "aop.unknow-error",
        Disposition::QueryNeeded,
        "Alipay service unavailable: checking the payment status",
        "支付宝服务暂不可用，正在查询支付结果",
    ),
    entry(
        "ACQ.PAYMENT_AUTH_CODE_INVALID",
        failed(CODE),
        "Payment code expired or already used: ask the customer to refresh it and scan again",
        "付款码已失效或已使用，请顾客刷新付款码后重新扫码",
    ),
    entry(
        "ACQ.AUTH_TOKEN_IS_NOT_EXIST",
        failed(CODE),
        "Payment code not recognised: ask the customer to refresh it",
        "付款码无效，请顾客刷新付款码",
    ),
    entry(
        "ACQ.PULL_MOBILE_CASHIER_FAIL",
        failed(CODE),
        "Could not open the cashier on the phone: ask the customer to refresh the code",
        "唤起移动收银台失败，请顾客刷新付款码",
    ),
    entry(
        "ACQ.NOT_SUPPORT_PAYMENT_INST",
        failed(CODE),
        "The customer's Alipay app is too old for this payment: ask them to update it",
        "顾客的支付宝版本不支持，请升级后重试",
    ),
    entry(
        "ACQ.BUYER_BALANCE_NOT_ENOUGH",
        failed(BUYER),
        "Customer's balance is too low: ask for another funding source",
        "顾客余额不足，请更换付款方式",
    ),
    entry(
        "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH",
        failed(BUYER),
        "Customer's bank card balance is too low: ask for another card",
        "顾客银行卡余额不足，请更换银行卡",
    ),
    entry(
        "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR",
        failed(BUYER),
        "Customer reached the daily payment limit: ask for another payment method",
        "顾客当日付款额度已满，请更换付款方式",
    ),
    entry(
        "ACQ.BUYER_PAYMENT_AMOUNT_MONTH_LIMIT_ERROR",
        failed(BUYER),
        "Customer reached the monthly payment limit: ask for another payment method",
        "顾客当月付款额度已满，请更换付款方式",
    ),
    entry(
        "ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE",
        failed(BUYER),
        "No usable funding source (Huabei may be disabled for this merchant): ask for another method",
        "没有可用的付款渠道（可能不支持花呗），请更换付款方式",
    ),
    entry(
        "ACQ.ERROR_BALANCE_PAYMENT_DISABLE",
        failed(BUYER),
        "Customer has balance payment switched off: ask them to choose another source",
        "顾客关闭了余额支付，请选择其他付款渠道",
    ),
    entry(
        "ACQ.MOBILE_PAYMENT_SWITCH_OFF",
        failed(BUYER),
        "Customer has payment-code payments switched off in Alipay",
        "顾客关闭了付款码支付功能",
    ),
    entry(
        "ACQ.USER_FACE_PAYMENT_SWITCH_OFF",
        failed(BUYER),
        "Customer has face-to-face payment switched off in Alipay",
        "顾客关闭了当面付功能",
    ),
    entry(
        "ACQ.BUYER_ENABLE_STATUS_FORBID",
        failed(BUYER),
        "Customer's account is restricted: ask for another payment method",
        "顾客账户状态受限，请更换付款方式",
    ),
    entry(
        "ACQ.BUYER_NOT_EXIST",
        failed(BUYER),
        "Customer's account does not exist",
        "买家账户不存在",
    ),
    entry(
        "ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT",
        failed(BUYER),
        "Customer's account is not verified (real-name): ask for another method",
        "顾客未完成实名认证，请更换付款方式",
    ),
    entry(
        "ACQ.NOT_CERTIFIED_USER",
        failed(BUYER),
        "Customer's account is not verified (real-name): ask for another method",
        "顾客未实名认证，请更换付款方式",
    ),
    entry(
        "ACQ.BUYER_NOT_MAINLAND_CERT",
        failed(BUYER),
        "Customer's identity is not a mainland certificate",
        "买家非大陆证件",
    ),
    entry(
        "ACQ.ZM_CREDIT_AUTH_FAIL",
        failed(BUYER),
        "Customer's credit check failed: ask for another method",
        "芝麻信用验证失败，请更换付款方式",
    ),
    entry(
        "ACQ.PAYMENT_REQUEST_HAS_RISK",
        failed(RISK),
        "Refused by Alipay risk control: ask for another payment method",
        "支付宝风控拒绝，请更换付款方式",
    ),
    entry(
        "ACQ.PAYMENT_FAIL",
        failed(RISK),
        "Payment failed: ask the customer to refresh once, then use another method",
        "支付失败，请顾客刷新一次付款码，仍失败请更换付款方式",
    ),
    entry(
        "ACQ.RISK_MERCHANT_IP_NOT_EXIST",
        failed(RISK),
        "Alipay risk control needs the terminal IP: check the merchant configuration",
        "风控要求商户IP，请检查商户配置",
    ),
    entry(
        "ACQ.ACCESS_FORBIDDEN",
        failed(MERCHANT),
        "The merchant's Alipay product is not signed or expired: contact the acquirer",
        "商户未签约或签约已过期，请联系收单机构",
    ),
    entry(
        "ACQ.PRODUCT_AMOUNT_LIMIT_ERROR",
        failed(MERCHANT),
        "Merchant product quota reached: contact the acquirer",
        "商户产品额度已满，请联系收单机构",
    ),
    entry(
        "ACQ.BEYOND_PAY_RESTRICTION",
        failed(MERCHANT),
        "Merchant collection limit reached: contact the acquirer",
        "商户收款额度超限，请联系收单机构",
    ),
    entry(
        "ACQ.BEYOND_PER_RECEIPT_RESTRICTION",
        failed(MERCHANT),
        "Merchant per-receipt limit reached: contact the acquirer",
        "商户收款额度超限，请联系收单机构",
    ),
    entry(
        "ACQ.BEYOND_PER_RECEIPT_DAY_RESTRICTION",
        failed(MERCHANT),
        "Merchant daily collection limit reached: contact the acquirer",
        "商户当日收款额度超限",
    ),
    entry(
        "ACQ.BEYOND_PER_RECEIPT_SINGLE_RESTRICTION",
        failed(MERCHANT),
        "Amount above the merchant's single-payment limit",
        "超过商户单笔收款限额",
    ),
    entry(
        "ACQ.MERCHANT_PERM_RECEIPT_DAY_LIMIT",
        failed(MERCHANT),
        "Merchant daily receipt limit reached: contact the acquirer",
        "商户当日收款额度超限",
    ),
    entry(
        "ACQ.MERCHANT_PERM_RECEIPT_SINGLE_LIMIT",
        failed(MERCHANT),
        "Amount above the merchant's single-receipt limit",
        "超过商户单笔收款限额",
    ),
    entry(
        "ACQ.MERCHANT_PERM_RECEIPT_SUSPEND_LIMIT",
        failed(MERCHANT),
        "Merchant collection suspended: contact the acquirer",
        "商户收款功能被暂停，请联系收单机构",
    ),
    entry(
        "ACQ.RESTRICTED_MERCHANT_INDUSTRY",
        failed(MERCHANT),
        "Amount above the cap for the merchant's industry",
        "超过行业限额",
    ),
    entry(
        "ACQ.SELLER_BEEN_BLOCKED",
        failed(MERCHANT),
        "Merchant account blocked: contact the acquirer",
        "商户账号被冻结，请联系收单机构",
    ),
    entry(
        "ACQ.MERCHANT_STATUS_NOT_NORMAL",
        failed(MERCHANT),
        "Merchant status abnormal (idle > 3 months?): contact the acquirer",
        "商户状态异常，请联系收单机构",
    ),
    entry(
        "ACQ.MERCHANT_AGREEMENT_NOT_EXIST",
        failed(MERCHANT),
        "Merchant agreement missing: contact the acquirer",
        "商户协议不存在，请联系收单机构",
    ),
    entry(
        "ACQ.MERCHANT_AGREEMENT_INVALID",
        failed(MERCHANT),
        "Merchant agreement invalid: contact the acquirer",
        "商户协议已失效，请联系收单机构",
    ),
    entry(
        "ACQ.SECONDARY_MERCHANT_STATUS_ERROR",
        failed(MERCHANT),
        "Sub-merchant status abnormal: contact the acquirer",
        "二级商户状态异常",
    ),
    entry(
        "ACQ.SECONDARY_MERCHANT_ISV_PUNISH_INDIRECT",
        failed(MERCHANT),
        "Sub-merchant's service provider is restricted: contact the acquirer",
        "二级商户所属服务商被处罚",
    ),
    entry(
        "ACQ.INVALID_STORE_ID",
        failed(MERCHANT),
        "Store id not valid: fix the terminal configuration",
        "门店编号无效，请检查终端配置",
    ),
    entry(
        "ACQ.PARTNER_ERROR",
        failed(MERCHANT),
        "Merchant/app id mismatch: fix the terminal configuration",
        "应用与商户不匹配，请检查配置",
    ),
    entry(
        "ACQ.UN_SUPPORT_TRADE_SCENE",
        failed(MERCHANT),
        "This payment scene is not enabled for the merchant",
        "商户不支持该交易场景",
    ),
    entry(
        "ACQ.EXIST_FORBIDDEN_WORD",
        failed(REQ),
        "The order title contains a forbidden word: change the subject",
        "订单标题含违禁词",
    ),
    entry(
        "ACQ.TOTAL_FEE_EXCEED",
        failed(REQ),
        "Amount outside Alipay's range",
        "订单金额超出范围",
    ),
    entry(
        "ACQ.TRADE_HAS_SUCCESS",
        Disposition::OrderNumberTaken,
        "This order number was paid before, possibly by another sale: query it and compare the amount",
        "该订单号已被支付（可能是其他交易），需查询并核对金额",
    ),
    entry(
        "ACQ.TRADE_HAS_CLOSE",
        failed(ORDER),
        "This order is closed: start a new sale",
        "订单已关闭，请重新下单",
    ),
    entry(
        "ACQ.TRADE_BUYER_NOT_MATCH",
        failed(ORDER),
        "This order was paid by another buyer: start a new sale",
        "交易买家不匹配，请重新下单",
    ),
    entry(
        "ACQ.BUYER_SELLER_EQUAL",
        failed(RISK),
        "Buyer and merchant are the same account: not allowed",
        "买卖家不能相同",
    ),
    entry(
        "ACQ.CONTEXT_INCONSISTENT",
        Disposition::OrderNumberTaken,
        "Order number reused with different details: start a new sale",
        "交易信息被篡改（订单号重复使用），请重新下单",
    ),
    entry(
        "ACQ.TRADE_STATUS_ERROR",
        failed(ORDER),
        "Trade state does not allow this operation",
        "交易状态不合法",
    ),
    entry(
        "ACQ.INVALID_PARAMETER",
        failed(REQ),
        "Invalid request parameter: a configuration or software fault",
        "参数无效，请联系技术人员",
    ),
    entry(
        "ACQ.TRADE_NOT_EXIST",
        failed(ORDER),
        "Alipay has no such trade",
        "交易不存在",
    ),
    entry(
        "ACQ.CANCEL_NOT_ALLOWED",
        failed(ORDER),
        "This trade can no longer be cancelled: refund it instead",
        "该交易不允许撤销，请改为退款",
    ),
    entry(
        "ACQ.SELLER_BALANCE_NOT_ENOUGH",
        failed(MERCHANT),
        "Merchant balance too low for the refund",
        "商户余额不足，无法退款",
    ),
    entry(
        "ACQ.TRADE_HAS_FINISHED",
        failed(ORDER),
        "Trade finished: no refund possible",
        "交易已完结，无法退款",
    ),
    entry(
        "ACQ.DISCORDANT_REPEAT_REQUEST",
        failed(ORDER),
        "Refund request number reused with a different amount",
        "退款请求号重复但金额不一致",
    ),
    entry(
        "ACQ.TRADE_NOT_ALLOW_REFUND",
        failed(ORDER),
        "This trade does not allow refunds",
        "该交易不允许退款",
    ),
    entry(
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
        failed(ORDER),
        "Refund amount exceeds what is left to refund",
        "退款金额超限",
    ),
    entry(
        "ACQ.REASON_TRADE_BEEN_FREEZEN",
        failed(ORDER),
        "Trade is frozen: contact the acquirer",
        "交易已被冻结",
    ),
    entry(
        "isv.invalid-signature",
        failed(REQ),
        "Alipay rejected the signature: the app private key or Alipay public key is wrong",
        "验签失败，请检查应用私钥与支付宝公钥配置",
    ),
    entry(
        "isv.invalid-app-id",
        failed(MERCHANT),
        "Alipay does not know this app id: fix the terminal configuration",
        "应用ID无效，请检查配置",
    ),
    entry(
        "isv.missing-signature",
        failed(REQ),
        "The request was not signed: a software fault",
        "缺少签名",
    ),
    entry(
        "isv.invalid-timestamp",
        failed(REQ),
        "Request timestamp rejected: check the terminal clock",
        "时间戳无效，请检查终端时间",
    ),
];

/// Look up a `sub_code`.
pub fn lookup(sub_code: &str) -> Option<&'static SubCodeInfo> {
    SUB_CODES.iter().find(|e| e.sub_code == sub_code)
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
                SUB_CODES[i + 1..].iter().all(|o| o.sub_code != e.sub_code),
                "{} twice",
                e.sub_code
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
