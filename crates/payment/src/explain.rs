//! Every failure the cashier sees is named: one of the ten cause groups and a one-line
//! instruction in Chinese and English. Acquirer codes are explained from the one table per
//! acquirer in `smartpos-acquirer` (Alipay `sub_code` and `code`, docs/acquirers.md §1.5 and
//! §1.8; WeChat `err_code`, §2.1; the QRA aggregator's own codes, then WeChat's), the same rows
//! that give each code its disposition; a code not in the tables keeps the acquirer's raw code
//! and message so that a technician can still look it up.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use smartpos_acquirer::alipay::codes as alipay_codes;
use smartpos_acquirer::catalogue::{self, CodeRow};
use smartpos_acquirer::wechat::codes as wechat_codes;

use crate::classify::{CodeClass, CollectionWallet, NotPaymentCode};
use crate::model::FundingChannel;

/// The ten cause groups, defined next to the acquirer code tables that use them.
pub use smartpos_acquirer::catalogue::Cause;

/// Why a payment did not go through, and what the cashier does next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    pub cause: Cause,
    /// The acquirer's code (`ACQ.PAYMENT_REQUEST_HAS_RISK`, `wechat:NOTENOUGH`) or a local
    /// one (`local.collection_qr`, `risk.daily_limit`).
    pub code: String,
    /// Instruction for the cashier, Chinese.
    pub zh: Cow<'static, str>,
    /// Instruction for the cashier, English.
    pub en: Cow<'static, str>,
    /// The acquirer's own message, kept verbatim (its `sub_msg` / `err_code_des`).
    pub raw_message: Option<String>,
    /// Whether the acquirer code was in our tables; `false` means only the raw code is known.
    pub known: bool,
}

impl Explanation {
    pub fn new(
        cause: Cause,
        code: impl Into<String>,
        zh: &'static str,
        en: &'static str,
    ) -> Explanation {
        Explanation {
            cause,
            code: code.into(),
            zh: Cow::Borrowed(zh),
            en: Cow::Borrowed(en),
            raw_message: None,
            known: true,
        }
    }

    pub fn with_raw(mut self, raw: Option<&str>) -> Explanation {
        self.raw_message = raw.filter(|s| !s.is_empty()).map(str::to_owned);
        self
    }

    /// One line for a log or a receipt: `[risk_control] ACQ.PAYMENT_REQUEST_HAS_RISK: ...`.
    pub fn one_line(&self) -> String {
        format!(
            "[{}] {}: {} / {}",
            self.cause.as_str(),
            self.code,
            self.zh,
            self.en
        )
    }
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.one_line())
    }
}

fn from_row(row: &'static CodeRow) -> Explanation {
    Explanation::new(row.cause, row.code, row.zh, row.en)
}

fn lookup(table: &'static [CodeRow], code: &str) -> Option<Explanation> {
    catalogue::find(table, code).map(from_row)
}

fn unknown(code: String, raw: Option<&str>) -> Explanation {
    Explanation {
        cause: Cause::Guidance,
        zh: Cow::Owned(format!(
            "收单机构返回未知错误 {code},请记下错误码并联系服务商"
        )),
        en: Cow::Owned(format!(
            "the acquirer returned an unrecognised error {code}: note it and call the service provider"
        )),
        code,
        raw_message: raw.filter(|s| !s.is_empty()).map(str::to_owned),
        known: false,
    }
}

/// Explain an Alipay failure: by `sub_code` when present, else by `code`.
pub fn alipay(code: &str, sub_code: Option<&str>, message: Option<&str>) -> Explanation {
    match sub_code.filter(|s| !s.is_empty()) {
        Some(sub) => lookup(alipay_codes::SUB_CODES, sub)
            .map(|e| e.with_raw(message))
            .unwrap_or_else(|| unknown(sub.to_owned(), message)),
        None => lookup(alipay_codes::RESULT_CODES, code)
            .map(|e| e.with_raw(message))
            .unwrap_or_else(|| unknown(format!("alipay:{code}"), message)),
    }
}

/// Explain a WeChat Pay v2 failure by its `err_code` (or the orderquery `trade_state`).
pub fn wechat(err_code: &str, message: Option<&str>) -> Explanation {
    lookup(wechat_codes::ERR_CODES, err_code)
        .map(|e| e.with_raw(message))
        .unwrap_or_else(|| unknown(err_code.to_owned(), message))
}

/// Explain a QRA aggregator failure by its `err_code` (or `trade_state`): the aggregator's own
/// codes, then WeChat's vocabulary, which it follows.
pub fn qra(err_code: &str, message: Option<&str>) -> Explanation {
    smartpos_acquirer::qra::lookup_code(err_code)
        .map(|row| from_row(row).with_raw(message))
        .unwrap_or_else(|| unknown(err_code.to_owned(), message))
}

/// The Alipay sub_codes this table knows (for tests and `posctl doctor` listings).
pub fn known_alipay_codes() -> impl Iterator<Item = &'static str> {
    alipay_codes::SUB_CODES.iter().map(|r| r.code)
}

/// The WeChat err_codes this table knows.
pub fn known_wechat_codes() -> impl Iterator<Item = &'static str> {
    wechat_codes::ERR_CODES.iter().map(|r| r.code)
}

/// The QRA aggregator's own codes (it otherwise uses WeChat's, see [`known_wechat_codes`]).
pub fn known_qra_codes() -> impl Iterator<Item = &'static str> {
    smartpos_acquirer::qra::QRA_CODES.iter().map(|r| r.code)
}

/// Explain a scan that is not something we can charge.
pub fn scan(class: &CodeClass) -> Option<Explanation> {
    let e = match class {
        CodeClass::Payment { .. } => return None,
        CodeClass::CollectionQr { wallet } => {
            let code = match wallet {
                CollectionWallet::Alipay => "local.collection_qr.alipay",
                CollectionWallet::Wechat => "local.collection_qr.wechat",
                CollectionWallet::Unionpay => "local.collection_qr.unionpay",
            };
            Explanation::new(
                Cause::UserError,
                code,
                "顾客出示的是收款码,请顾客打开付款码(付款码)",
                "that is a collection QR: ask the customer for the payment code (付款码)",
            )
        }
        CodeClass::NotPayment { reason } => match reason {
            NotPaymentCode::UnsupportedScheme => Explanation::new(
                Cause::Software,
                "local.unsupported_scheme",
                "本终端不支持该付款码(如数字人民币),请顾客换一种付款方式",
                "this terminal does not accept that code family (e.g. e-CNY): ask for another payment method",
            ),
            NotPaymentCode::Empty | NotPaymentCode::Oversized => Explanation::new(
                Cause::Hardware,
                "local.bad_scan",
                "未读到有效内容,请擦拭扫码窗口后重新扫码",
                "nothing usable was read: wipe the scan window and scan again",
            ),
            NotPaymentCode::UnknownDigits => Explanation::new(
                Cause::UserError,
                "local.not_payment_code",
                "这不是付款码(可能是商品条码),请顾客出示付款码",
                "not a payment code (a goods barcode?): ask for the payment code (付款码)",
            ),
            NotPaymentCode::OtherUrl | NotPaymentCode::Text => Explanation::new(
                Cause::UserError,
                "local.not_payment_code",
                "扫到的不是付款码,请顾客出示付款码",
                "that is not a payment code: ask for the payment code (付款码)",
            ),
        },
    };
    Some(e)
}

/// The scheme is valid but this merchant has not enabled it.
pub fn scheme_disabled(scheme: crate::classify::Scheme) -> Explanation {
    Explanation::new(
        Cause::MerchantConfig,
        format!("config.scheme_disabled.{scheme}"),
        "本商户未开通该钱包收款,请顾客换一种付款方式,并联系服务商开通",
        "this merchant does not accept that wallet: ask for another method and have it enabled",
    )
}

/// A failed HTTPS call, by the transport's class: its row in the catalogue
/// (`net.dns`, `net.cert_expired`, …, cause network or platform incompatibility), with the
/// transport's own words kept for the technician. A class that never sent the request says
/// nothing was charged; one after which it may have arrived says the outcome is queried.
pub fn transport(e: &smartpos_transport::TransportError) -> Explanation {
    lookup(catalogue::NETWORK_CODES, e.class.code())
        .unwrap_or_else(|| network_unreachable(""))
        .with_raw(Some(&e.detail))
}

/// A never-sent failure with the network daemon's diagnosis of the path added to both
/// instructions, so the cashier reads what is wrong with the network, not only that nothing
/// was charged. Cause and code stay the transport's: they say what happened to this payment.
pub fn with_network_diagnosis(
    mut e: Explanation,
    d: &crate::service::netview::PathDiagnosis,
) -> Explanation {
    e.en = Cow::Owned(format!("{} (network check: {})", e.en, d.reason_en));
    e.zh = Cow::Owned(format!("{}(网络检测:{})", e.zh, d.reason_zh));
    e
}

/// No acquirer path could be reached, for a reason the transport did not classify.
pub fn network_unreachable(detail: &str) -> Explanation {
    Explanation::new(
        Cause::Network,
        "net.unreachable",
        "网络不通,付款未发出,请检查网络后重新扫码",
        "no connection, nothing was charged: check the network, then scan again",
    )
    .with_raw(Some(detail))
}

/// The acquirer asks the customer to confirm on the phone (Alipay 10003, WeChat USERPAYING).
pub fn waiting_for_customer() -> Explanation {
    Explanation::new(
        Cause::UserError,
        "local.waiting_for_customer",
        "等待顾客在手机上输入密码确认,请勿重复收款",
        "waiting for the customer to confirm on the phone: do not charge again",
    )
}

/// The merchant configuration has not been confirmed with the fleet server for too long.
pub fn stale_config(age: std::time::Duration, version: u64) -> Explanation {
    Explanation {
        cause: Cause::SyncDelay,
        code: "config.stale".into(),
        zh: Cow::Owned(format!(
            "商户配置(版本 {version})已 {} 小时未同步,请检查网络并联系服务商同步配置",
            age.as_secs() / 3600
        )),
        en: Cow::Owned(format!(
            "merchant configuration (version {version}) not synced for {} h: check the network and have it synced",
            age.as_secs() / 3600
        )),
        raw_message: None,
        known: true,
    }
}

/// The acquirer says the order number was already used, and its query did not show this
/// sale's payment under it: a number handed out again (a recreated journal). This request was
/// refused, so nothing was charged; the sale may go again under a fresh order number.
pub fn order_number_taken(said: &Explanation, found: &str) -> Explanation {
    Explanation::new(
        Cause::Software,
        "local.order_number_taken",
        "订单号与以往交易重复,本次未扣款,请重新扫描顾客的付款码",
        "the order number was used by an earlier sale; nothing was charged: scan the customer's code again",
    )
    .with_raw(Some(&format!("{}: {found}", said.code)))
}

fn funding_name_zh(c: FundingChannel) -> &'static str {
    match c {
        FundingChannel::Balance => "余额",
        FundingChannel::BankCard => "借记卡",
        FundingChannel::Huabei => "花呗",
        FundingChannel::HuabeiInstalments => "花呗分期",
        FundingChannel::CreditCard => "信用卡",
    }
}

fn funding_name_en(c: FundingChannel) -> &'static str {
    match c {
        FundingChannel::Balance => "balance",
        FundingChannel::BankCard => "debit card",
        FundingChannel::Huabei => "Huabei",
        FundingChannel::HuabeiInstalments => "Huabei instalments",
        FundingChannel::CreditCard => "credit card",
    }
}

/// The acquirer refused because no funding the customer has was left, after this terminal
/// itself switched `channels` off (Alipay `disable_pay_channels`, WeChat
/// `limit_pay=no_credit`, QRA `limit_credit_pay`): the cause is the merchant's configuration
/// (version `version`), not the customer. `refusal` is the acquirer's own explanation, whose
/// code and message are kept.
pub fn switched_off_by_config(
    refusal: Explanation,
    channels: &[FundingChannel],
    version: u64,
) -> Explanation {
    let zh: Vec<&str> = channels.iter().map(|c| funding_name_zh(*c)).collect();
    let en: Vec<&str> = channels.iter().map(|c| funding_name_en(*c)).collect();
    let (zh, en) = (zh.join("、"), en.join(", "));
    Explanation {
        cause: Cause::MerchantConfig,
        zh: Cow::Owned(format!(
            "本商户配置(版本 {version})关闭了{zh}收款,顾客无其他可用付款方式;请顾客换一种付款方式。如需接受{zh},请联系服务商在商户配置中开通"
        )),
        en: Cow::Owned(format!(
            "this merchant's configuration (version {version}) switched {en} off and the customer had nothing else to pay with: ask for another payment method; to accept {en}, ask the service provider to enable it in the merchant configuration"
        )),
        code: refusal.code,
        raw_message: refusal.raw_message,
        known: true,
    }
}

/// The waiting window passed without the customer confirming.
pub fn customer_did_not_confirm() -> Explanation {
    Explanation::new(
        Cause::UserError,
        "local.customer_timeout",
        "顾客未在手机上确认付款,交易已撤销,请重新收款",
        "the customer did not confirm on the phone; the sale was cancelled: start again",
    )
}

/// The acquirer's answer could not be trusted (bad signature) or parsed.
pub fn untrusted_response(detail: &str) -> Explanation {
    Explanation::new(
        Cause::PlatformIncompatibility,
        "net.bad_response",
        "收单机构应答无法验证,正在查询结果,请勿重复收款",
        "the acquirer's answer could not be verified; querying: do not charge again",
    )
    .with_raw(Some(detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transport_error_class_has_a_cashier_instruction() {
        use smartpos_transport::{ErrorClass, TransportError};
        for class in ErrorClass::ALL {
            let e = transport(&TransportError::new(class, "detail"));
            assert_eq!(e.code, class.code(), "{class:?}");
            assert!(e.known, "{class:?}");
            assert_eq!(e.raw_message.as_deref(), Some("detail"));
            if class.sent() {
                assert!(e.en.contains("do not charge again"), "{class:?}: {}", e.en);
            } else {
                assert!(e.en.contains("nothing was charged"), "{class:?}: {}", e.en);
            }
        }
        // The three an integrator met as "no connection, check the network" (issue 8).
        for class in [
            ErrorClass::CertExpired,
            ErrorClass::CertUntrusted,
            ErrorClass::CertNameMismatch,
        ] {
            let e = transport(&TransportError::new(class, ""));
            assert_eq!(e.cause, Cause::PlatformIncompatibility, "{class:?}");
            assert_ne!(e.code, "net.unreachable");
            assert!(!e.en.contains("check the network"), "{class:?}");
        }
    }

    #[test]
    fn huabei_risk_refusal_tells_the_cashier_to_ask_for_another_method() {
        let e = alipay(
            "40004",
            Some("ACQ.PAYMENT_REQUEST_HAS_RISK"),
            Some("支付存在风险"),
        );
        assert_eq!(e.cause, Cause::RiskControl);
        assert_eq!(e.zh, "请顾客换一种付款方式");
        assert_eq!(e.en, "ask for another payment method");
        assert_eq!(e.raw_message.as_deref(), Some("支付存在风险"));
        assert!(e.known);
    }

    #[test]
    fn every_code_in_the_research_catalogue_is_known() {
        let alipay_codes = [
            "ACQ.SYSTEM_ERROR",
            "AQC.SYSTEM_ERROR",
            "ACQ.PAYMENT_AUTH_CODE_INVALID",
            "ACQ.AUTH_TOKEN_IS_NOT_EXIST",
            "ACQ.PULL_MOBILE_CASHIER_FAIL",
            "ACQ.NOT_SUPPORT_PAYMENT_INST",
            "ACQ.BUYER_BALANCE_NOT_ENOUGH",
            "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH",
            "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR",
            "ACQ.BUYER_PAYMENT_AMOUNT_MONTH_LIMIT_ERROR",
            "ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE",
            "ACQ.ERROR_BALANCE_PAYMENT_DISABLE",
            "ACQ.MOBILE_PAYMENT_SWITCH_OFF",
            "ACQ.USER_FACE_PAYMENT_SWITCH_OFF",
            "ACQ.BUYER_ENABLE_STATUS_FORBID",
            "ACQ.BUYER_NOT_EXIST",
            "ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT",
            "ACQ.NOT_CERTIFIED_USER",
            "ACQ.BUYER_NOT_MAINLAND_CERT",
            "ACQ.ZM_CREDIT_AUTH_FAIL",
            "ACQ.PAYMENT_REQUEST_HAS_RISK",
            "ACQ.PAYMENT_FAIL",
            "ACQ.RISK_MERCHANT_IP_NOT_EXIST",
            "ACQ.ACCESS_FORBIDDEN",
            "ACQ.PRODUCT_AMOUNT_LIMIT_ERROR",
            "ACQ.BEYOND_PAY_RESTRICTION",
            "ACQ.BEYOND_PER_RECEIPT_RESTRICTION",
            "ACQ.BEYOND_PER_RECEIPT_DAY_RESTRICTION",
            "ACQ.BEYOND_PER_RECEIPT_SINGLE_RESTRICTION",
            "ACQ.MERCHANT_PERM_RECEIPT_DAY_LIMIT",
            "ACQ.MERCHANT_PERM_RECEIPT_SINGLE_LIMIT",
            "ACQ.MERCHANT_PERM_RECEIPT_SUSPEND_LIMIT",
            "ACQ.RESTRICTED_MERCHANT_INDUSTRY",
            "ACQ.SELLER_BEEN_BLOCKED",
            "ACQ.MERCHANT_STATUS_NOT_NORMAL",
            "ACQ.MERCHANT_AGREEMENT_NOT_EXIST",
            "ACQ.MERCHANT_AGREEMENT_INVALID",
            "ACQ.SECONDARY_MERCHANT_STATUS_ERROR",
            "ACQ.SECONDARY_MERCHANT_ISV_PUNISH_INDIRECT",
            "ACQ.INVALID_STORE_ID",
            "ACQ.PARTNER_ERROR",
            "ACQ.UN_SUPPORT_TRADE_SCENE",
            "ACQ.EXIST_FORBIDDEN_WORD",
            "ACQ.TOTAL_FEE_EXCEED",
            "ACQ.TRADE_HAS_SUCCESS",
            "ACQ.TRADE_HAS_CLOSE",
            "ACQ.TRADE_BUYER_NOT_MATCH",
            "ACQ.BUYER_SELLER_EQUAL",
            "ACQ.CONTEXT_INCONSISTENT",
            "ACQ.TRADE_STATUS_ERROR",
            "ACQ.INVALID_PARAMETER",
            "ACQ.CANCEL_NOT_ALLOWED",
            "ACQ.TRADE_NOT_EXIST",
            "ACQ.SELLER_BALANCE_NOT_ENOUGH",
            "ACQ.TRADE_HAS_FINISHED",
            "ACQ.DISCORDANT_REPEAT_REQUEST",
            "ACQ.TRADE_NOT_ALLOW_REFUND",
            "ACQ.REASON_TRADE_BEEN_FREEZEN",
        ];
        for c in alipay_codes {
            let e = alipay("40004", Some(c), None);
            assert!(e.known, "{c} missing from the Alipay table");
            assert!(!e.zh.is_empty() && !e.en.is_empty());
        }
        let wechat_codes = [
            "SYSTEMERROR",
            "BANKERROR",
            "USERPAYING",
            "AUTHCODEEXPIRE",
            "AUTH_CODE_ERROR",
            "AUTH_CODE_INVALID",
            "NOTENOUGH",
            "NOTSUPORTCARD",
            "BUYER_MISMATCH",
            "ORDERPAID",
            "ORDERCLOSED",
            "ORDERREVERSED",
            "OUT_TRADE_NO_USED",
            "NOAUTH",
            "TRADE_ERROR",
            "PARAM_ERROR",
            "SIGNERROR",
            "LACK_PARAMS",
            "XML_FORMAT_ERROR",
            "NOT_UTF8",
            "APPID_NOT_EXIST",
            "MCHID_NOT_EXIST",
            "APPID_MCHID_NOT_MATCH",
            "INVALID_REQUEST",
            "ORDERNOTEXIST",
            "REVERSE_EXPIRE",
        ];
        for c in wechat_codes {
            assert!(wechat(c, None).known, "{c} missing from the WeChat table");
        }
    }

    #[test]
    fn an_unknown_acquirer_code_keeps_the_raw_code_and_message() {
        let e = alipay("40004", Some("ACQ.SOMETHING_NEW"), Some("新错误"));
        assert!(!e.known);
        assert_eq!(e.code, "ACQ.SOMETHING_NEW");
        assert_eq!(e.raw_message.as_deref(), Some("新错误"));
        assert!(e.zh.contains("ACQ.SOMETHING_NEW"));
        let w = wechat("BRAND_NEW", Some("desc"));
        assert_eq!((w.code.as_str(), w.known), ("BRAND_NEW", false));
    }

    #[test]
    fn a_collection_qr_asks_for_the_payment_code() {
        let e = scan(&crate::classify::classify("wxp://f2f0abc")).expect("explained");
        assert_eq!(e.cause, Cause::UserError);
        assert!(e.en.contains("payment code (付款码)"));
    }

    /// The drift test: every code the acquirer crate gives a disposition for is explained from
    /// the same row, with its cause and both instructions, through the public functions the
    /// connectors call.
    #[test]
    fn every_code_the_acquirer_crate_knows_is_explained_from_its_row() {
        let check = |row: &CodeRow, e: Explanation| {
            assert!(e.known, "{} not explained", row.code);
            assert_eq!(e.cause, row.cause, "{}", row.code);
            assert_eq!((e.zh.as_ref(), e.en.as_ref()), (row.zh, row.en));
            assert!(!e.zh.is_empty() && !e.en.is_empty(), "{}", row.code);
        };
        for row in alipay_codes::SUB_CODES {
            check(row, alipay("40004", Some(row.code), None));
        }
        for row in alipay_codes::RESULT_CODES {
            check(row, alipay(row.code, None, None));
        }
        for row in wechat_codes::ERR_CODES {
            check(row, wechat(row.code, None));
            check(row, qra(row.code, None));
        }
        for row in smartpos_acquirer::qra::QRA_CODES {
            check(row, qra(row.code, None));
        }
        // Every gateway code Alipay answers a failed payment with has a row of its own.
        for code in ["20000", "20001", "40001", "40002", "40005", "40006"] {
            let r = smartpos_acquirer::alipay::codes::ResultCode::parse(code);
            assert!(alipay(r.as_str(), None, None).known, "{code}");
        }
        // Codes and query states the disposition functions match by name.
        for code in ["ACQ.TRADE_NOT_EXIST", "ACQ.SYSTEM_ERROR"] {
            assert!(alipay("40004", Some(code), None).known, "{code}");
        }
        for state in [
            "CLOSED",
            "REVOKED",
            "PAYERROR",
            "ORDERNOTEXIST",
            "USERPAYING",
        ] {
            assert!(wechat(state, None).known, "{state}");
            assert!(qra(state, None).known, "{state}");
        }
        assert!(qra("REVERSE", None).known);
    }

    #[test]
    fn an_order_number_used_before_is_never_told_as_paid() {
        // The cashier must not hear "already paid" for a number another sale used: the
        // connector first queries and compares the amount.
        for e in [
            alipay("40004", Some("ACQ.TRADE_HAS_SUCCESS"), None),
            alipay("40004", Some("ACQ.CONTEXT_INCONSISTENT"), None),
            wechat("ORDERPAID", None),
            qra("OUT_TRADE_NO_USED", None),
        ] {
            assert_eq!(e.cause, Cause::Software, "{}", e.code);
            assert!(e.en.contains("do not charge again"), "{}", e.en);
            assert!(!e.en.contains("already paid"), "{}", e.en);
        }
    }

    #[test]
    fn the_aggregator_speaks_wechat_plus_its_own_reverse_state() {
        assert_eq!(
            qra("NOTENOUGH", Some("余额不足")),
            wechat("NOTENOUGH", Some("余额不足"))
        );
        let reversed = qra("REVERSE", None);
        assert_eq!(reversed.cause, Cause::Guidance);
        assert!(
            !wechat("REVERSE", None).known,
            "REVERSE is the aggregator's word only"
        );
        assert!(known_qra_codes().all(|c| !known_wechat_codes().any(|w| w == c)));
    }

    #[test]
    fn cause_numbers_follow_the_design_table() {
        assert_eq!(Cause::Hardware.number(), 1);
        assert_eq!(Cause::RiskControl.number(), 9);
        assert_eq!(Cause::Compliance.number(), 10);
        for c in Cause::ALL {
            assert_eq!(Cause::parse(c.as_str()), Some(c));
        }
    }
}
