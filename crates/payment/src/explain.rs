//! Every failure the cashier sees is named: one of the ten cause groups of DESIGN.md and a
//! one-line instruction in Chinese and English. Acquirer codes come from payments.md §1.8
//! (Alipay `sub_code`) and §2.1 (WeChat `err_code`); a code not in the tables keeps the
//! acquirer's raw code and message so that a technician can still look it up.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::classify::{CodeClass, CollectionWallet, NotPaymentCode};
use crate::model::FundingChannel;

/// The ten cause groups of DESIGN.md, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    Hardware,
    Software,
    Network,
    UserError,
    Guidance,
    PlatformIncompatibility,
    SyncDelay,
    MerchantConfig,
    RiskControl,
    Compliance,
}

impl Cause {
    pub const ALL: [Cause; 10] = [
        Cause::Hardware,
        Cause::Software,
        Cause::Network,
        Cause::UserError,
        Cause::Guidance,
        Cause::PlatformIncompatibility,
        Cause::SyncDelay,
        Cause::MerchantConfig,
        Cause::RiskControl,
        Cause::Compliance,
    ];

    /// DESIGN.md row number.
    pub fn number(self) -> u8 {
        Cause::ALL.iter().position(|c| *c == self).unwrap_or(0) as u8 + 1
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Hardware => "hardware",
            Cause::Software => "software",
            Cause::Network => "network",
            Cause::UserError => "user_error",
            Cause::Guidance => "guidance",
            Cause::PlatformIncompatibility => "platform_incompatibility",
            Cause::SyncDelay => "sync_delay",
            Cause::MerchantConfig => "merchant_config",
            Cause::RiskControl => "risk_control",
            Cause::Compliance => "compliance",
        }
    }

    pub fn parse(s: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

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

type Row = (&'static str, Cause, &'static str, &'static str);

const RESCAN_ZH: &str = "付款码无效或已使用,请顾客刷新付款码后重新扫码";
const RESCAN_EN: &str =
    "the payment code is invalid or used: ask the customer to refresh it and scan again";
const OTHER_METHOD_ZH: &str = "请顾客换一种付款方式";
const OTHER_METHOD_EN: &str = "ask for another payment method";
const NO_FUNDS_ZH: &str = "顾客余额或额度不足,请顾客换一张卡或换一种付款方式";
const NO_FUNDS_EN: &str =
    "the customer's balance or credit is not enough: ask for another card or payment method";
const WALLET_ZH: &str = "请顾客在手机上检查支付设置(付款开关、实名认证)后重试,或换一种付款方式";
const WALLET_EN: &str = "ask the customer to check the wallet settings (payment switch, identity verification), or pay another way";
const MERCHANT_ZH: &str = "商户收款权限或配置有误,收银台无法处理,请联系服务商/收单机构";
const MERCHANT_EN: &str =
    "merchant account or configuration problem, not fixable at the till: call the service provider";
const LIMIT_ZH: &str = "超出商户收款限额,请顾客分开付款或换一种方式,并联系服务商";
const LIMIT_EN: &str = "above the merchant's collection limit: split the payment or pay another way, and call the service provider";
const INTEGRATION_ZH: &str = "终端与收单平台不兼容(签名/参数),请联系技术支持更新终端";
const INTEGRATION_EN: &str =
    "terminal and acquirer disagree (signature/parameters): call support to update the terminal";
const STATE_ZH: &str = "该订单已结束,请重新发起收款";
const STATE_EN: &str = "this order is already closed: start a new sale";
const QUERYING_ZH: &str = "结果未知,正在向收单机构查询,请稍候,不要重复收款";
const QUERYING_EN: &str = "outcome unknown, querying the acquirer: wait, do not charge again";

/// Alipay `sub_code` table (payments.md §1.8).
const ALIPAY: &[Row] = &[
    ("ACQ.SYSTEM_ERROR", Cause::Network, QUERYING_ZH, QUERYING_EN),
    ("AQC.SYSTEM_ERROR", Cause::Network, QUERYING_ZH, QUERYING_EN),
    (
        "ACQ.PAYMENT_AUTH_CODE_INVALID",
        Cause::UserError,
        RESCAN_ZH,
        RESCAN_EN,
    ),
    (
        "ACQ.AUTH_TOKEN_IS_NOT_EXIST",
        Cause::UserError,
        RESCAN_ZH,
        RESCAN_EN,
    ),
    (
        "ACQ.PULL_MOBILE_CASHIER_FAIL",
        Cause::UserError,
        "顾客手机未能打开收银台,请顾客刷新付款码后重新扫码",
        "the customer's phone could not open the cashier: ask them to refresh the code and scan again",
    ),
    (
        "ACQ.NOT_SUPPORT_PAYMENT_INST",
        Cause::PlatformIncompatibility,
        "顾客支付宝版本过旧,请顾客升级支付宝或换一种付款方式",
        "the customer's Alipay app is too old: ask them to update it or pay another way",
    ),
    (
        "ACQ.BUYER_BALANCE_NOT_ENOUGH",
        Cause::UserError,
        NO_FUNDS_ZH,
        NO_FUNDS_EN,
    ),
    (
        "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH",
        Cause::UserError,
        NO_FUNDS_ZH,
        NO_FUNDS_EN,
    ),
    (
        "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR",
        Cause::Compliance,
        "顾客付款码已达当日限额,请顾客换一种付款方式",
        "the customer reached the daily payment-code limit: ask for another payment method",
    ),
    (
        "ACQ.BUYER_PAYMENT_AMOUNT_MONTH_LIMIT_ERROR",
        Cause::Compliance,
        "顾客付款码已达当月限额,请顾客换一种付款方式",
        "the customer reached the monthly payment-code limit: ask for another payment method",
    ),
    (
        "ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE",
        Cause::UserError,
        "顾客没有可用的付款方式(花呗/余额/银行卡均不可用),请顾客换一种付款方式",
        "no funding source available (Huabei, balance, card): ask for another payment method",
    ),
    (
        "ACQ.ERROR_BALANCE_PAYMENT_DISABLE",
        Cause::UserError,
        WALLET_ZH,
        WALLET_EN,
    ),
    (
        "ACQ.MOBILE_PAYMENT_SWITCH_OFF",
        Cause::UserError,
        WALLET_ZH,
        WALLET_EN,
    ),
    (
        "ACQ.USER_FACE_PAYMENT_SWITCH_OFF",
        Cause::UserError,
        WALLET_ZH,
        WALLET_EN,
    ),
    (
        "ACQ.BUYER_ENABLE_STATUS_FORBID",
        Cause::RiskControl,
        OTHER_METHOD_ZH,
        OTHER_METHOD_EN,
    ),
    (
        "ACQ.BUYER_NOT_EXIST",
        Cause::UserError,
        RESCAN_ZH,
        RESCAN_EN,
    ),
    (
        "ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT",
        Cause::Compliance,
        WALLET_ZH,
        WALLET_EN,
    ),
    (
        "ACQ.NOT_CERTIFIED_USER",
        Cause::Compliance,
        WALLET_ZH,
        WALLET_EN,
    ),
    (
        "ACQ.BUYER_NOT_MAINLAND_CERT",
        Cause::Compliance,
        OTHER_METHOD_ZH,
        OTHER_METHOD_EN,
    ),
    (
        "ACQ.ZM_CREDIT_AUTH_FAIL",
        Cause::RiskControl,
        OTHER_METHOD_ZH,
        OTHER_METHOD_EN,
    ),
    (
        "ACQ.PAYMENT_REQUEST_HAS_RISK",
        Cause::RiskControl,
        OTHER_METHOD_ZH,
        OTHER_METHOD_EN,
    ),
    (
        "ACQ.PAYMENT_FAIL",
        Cause::RiskControl,
        "支付失败,请顾客刷新付款码重试一次,仍失败请换一种付款方式",
        "payment failed: ask the customer to refresh the code once, then pay another way",
    ),
    (
        "ACQ.RISK_MERCHANT_IP_NOT_EXIST",
        Cause::RiskControl,
        "收单机构风控拒绝(终端IP),请联系服务商",
        "acquirer risk control rejected the terminal's IP: call the service provider",
    ),
    (
        "ACQ.ACCESS_FORBIDDEN",
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    (
        "ACQ.PRODUCT_AMOUNT_LIMIT_ERROR",
        Cause::MerchantConfig,
        LIMIT_ZH,
        LIMIT_EN,
    ),
    (
        "ACQ.BEYOND_PAY_RESTRICTION",
        Cause::Compliance,
        LIMIT_ZH,
        LIMIT_EN,
    ),
    (
        "ACQ.BEYOND_PER_RECEIPT_RESTRICTION",
        Cause::Compliance,
        LIMIT_ZH,
        LIMIT_EN,
    ),
    (
        "ACQ.BEYOND_PER_RECEIPT_DAY_RESTRICTION",
        Cause::Compliance,
        LIMIT_ZH,
        LIMIT_EN,
    ),
    (
        "ACQ.BEYOND_PER_RECEIPT_SINGLE_RESTRICTION",
        Cause::Compliance,
        LIMIT_ZH,
        LIMIT_EN,
    ),
    (
        "ACQ.MERCHANT_PERM_RECEIPT_DAY_LIMIT",
        Cause::MerchantConfig,
        LIMIT_ZH,
        LIMIT_EN,
    ),
    (
        "ACQ.MERCHANT_PERM_RECEIPT_SINGLE_LIMIT",
        Cause::MerchantConfig,
        LIMIT_ZH,
        LIMIT_EN,
    ),
    (
        "ACQ.MERCHANT_PERM_RECEIPT_SUSPEND_LIMIT",
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    (
        "ACQ.RESTRICTED_MERCHANT_INDUSTRY",
        Cause::Compliance,
        "金额超过本行业单笔上限,请顾客分开付款或换一种方式",
        "amount above the industry cap for this merchant: split the payment or pay another way",
    ),
    (
        "ACQ.SELLER_BEEN_BLOCKED",
        Cause::RiskControl,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    (
        "ACQ.MERCHANT_STATUS_NOT_NORMAL",
        Cause::MerchantConfig,
        "商户状态异常(可能长期未交易),请联系服务商激活",
        "merchant account not active (possibly idle for months): call the service provider",
    ),
    (
        "ACQ.MERCHANT_AGREEMENT_NOT_EXIST",
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    (
        "ACQ.MERCHANT_AGREEMENT_INVALID",
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    (
        "ACQ.SECONDARY_MERCHANT_STATUS_ERROR",
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    (
        "ACQ.SECONDARY_MERCHANT_ISV_PUNISH_INDIRECT",
        Cause::RiskControl,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    (
        "ACQ.INVALID_STORE_ID",
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    (
        "ACQ.PARTNER_ERROR",
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    (
        "ACQ.UN_SUPPORT_TRADE_SCENE",
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    (
        "ACQ.EXIST_FORBIDDEN_WORD",
        Cause::Compliance,
        "订单标题含违禁词,请联系服务商修改商品名称",
        "the order subject contains a forbidden word: have the goods name changed",
    ),
    (
        "ACQ.TOTAL_FEE_EXCEED",
        Cause::UserError,
        "金额超出允许范围(0.01–1亿元),请核对金额",
        "amount out of range (0.01 to 100,000,000 yuan): check the amount",
    ),
    (
        "ACQ.TRADE_HAS_SUCCESS",
        Cause::Guidance,
        "该订单已支付成功,请勿重复收款",
        "this order is already paid: do not charge again",
    ),
    ("ACQ.TRADE_HAS_CLOSE", Cause::Guidance, STATE_ZH, STATE_EN),
    (
        "ACQ.TRADE_BUYER_NOT_MATCH",
        Cause::UserError,
        STATE_ZH,
        STATE_EN,
    ),
    (
        "ACQ.BUYER_SELLER_EQUAL",
        Cause::RiskControl,
        "付款人与收款商户为同一人,不允许自付,请换人付款",
        "buyer and merchant are the same person: self-payment is not allowed",
    ),
    (
        "ACQ.CONTEXT_INCONSISTENT",
        Cause::Software,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    (
        "ACQ.TRADE_STATUS_ERROR",
        Cause::Guidance,
        STATE_ZH,
        STATE_EN,
    ),
    (
        "ACQ.INVALID_PARAMETER",
        Cause::PlatformIncompatibility,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    ("ACQ.TRADE_NOT_EXIST", Cause::Guidance, STATE_ZH, STATE_EN),
    (
        "ACQ.CANCEL_NOT_ALLOWED",
        Cause::Guidance,
        "该交易已不能撤销,请改为退款",
        "this sale can no longer be cancelled: refund it instead",
    ),
    (
        "ACQ.SELLER_BALANCE_NOT_ENOUGH",
        Cause::MerchantConfig,
        "商户账户余额不足,无法退款,请联系服务商",
        "merchant balance too low for the refund: call the service provider",
    ),
    (
        "ACQ.TRADE_HAS_FINISHED",
        Cause::Guidance,
        "交易已完结,不能退款",
        "this sale is finished and can no longer be refunded",
    ),
    (
        "ACQ.DISCORDANT_REPEAT_REQUEST",
        Cause::Software,
        "退款请求与之前不一致,请使用新的退款单号",
        "refund differs from an earlier one with the same number: use a new refund reference",
    ),
    (
        "ACQ.TRADE_NOT_ALLOW_REFUND",
        Cause::Guidance,
        "该交易不允许退款",
        "this sale does not allow refunds",
    ),
    (
        "ACQ.REASON_TRADE_BEEN_FREEZEN",
        Cause::RiskControl,
        "交易被冻结,不能退款,请联系服务商",
        "the sale is frozen and cannot be refunded: call the service provider",
    ),
];

/// Alipay top-level `code` when there is no `sub_code` to go by (payments.md §1.5).
const ALIPAY_CODES: &[Row] = &[
    ("20000", Cause::Network, QUERYING_ZH, QUERYING_EN),
    ("20001", Cause::MerchantConfig, MERCHANT_ZH, MERCHANT_EN),
    (
        "40001",
        Cause::PlatformIncompatibility,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    (
        "40002",
        Cause::PlatformIncompatibility,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    (
        "40005",
        Cause::Network,
        "请求过于频繁,请稍候再试",
        "too many requests: wait a moment and try again",
    ),
    ("40006", Cause::MerchantConfig, MERCHANT_ZH, MERCHANT_EN),
];

/// WeChat Pay v2 `err_code` table (payments.md §2.1). QRA aggregators reuse these names.
const WECHAT: &[Row] = &[
    ("SYSTEMERROR", Cause::Network, QUERYING_ZH, QUERYING_EN),
    ("BANKERROR", Cause::Network, QUERYING_ZH, QUERYING_EN),
    (
        "USERPAYING",
        Cause::UserError,
        "等待顾客在手机上输入密码确认",
        "waiting for the customer to confirm on the phone",
    ),
    (
        "AUTHCODEEXPIRE",
        Cause::UserError,
        "付款码已过期,请顾客刷新付款码后重新扫码",
        "the payment code expired: ask the customer to refresh it and scan again",
    ),
    ("AUTH_CODE_ERROR", Cause::UserError, RESCAN_ZH, RESCAN_EN),
    (
        "AUTH_CODE_INVALID",
        Cause::UserError,
        "这不是微信付款码,请顾客出示付款码",
        "not a WeChat payment code: ask for the payment code (付款码)",
    ),
    ("NOTENOUGH", Cause::UserError, NO_FUNDS_ZH, NO_FUNDS_EN),
    (
        "NOTSUPORTCARD",
        Cause::UserError,
        "顾客的卡不支持此交易(可能为信用卡受限),请顾客换一张卡或换一种付款方式",
        "the customer's card is not accepted here (credit may be barred): ask for another card or method",
    ),
    ("BUYER_MISMATCH", Cause::UserError, STATE_ZH, STATE_EN),
    (
        "ORDERPAID",
        Cause::Guidance,
        "该订单已支付成功,请勿重复收款",
        "this order is already paid: do not charge again",
    ),
    ("ORDERCLOSED", Cause::Guidance, STATE_ZH, STATE_EN),
    ("ORDERREVERSED", Cause::Guidance, STATE_ZH, STATE_EN),
    (
        "OUT_TRADE_NO_USED",
        Cause::Software,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    ("NOAUTH", Cause::MerchantConfig, MERCHANT_ZH, MERCHANT_EN),
    (
        "TRADE_ERROR",
        Cause::RiskControl,
        OTHER_METHOD_ZH,
        OTHER_METHOD_EN,
    ),
    (
        "PARAM_ERROR",
        Cause::PlatformIncompatibility,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    (
        "SIGNERROR",
        Cause::PlatformIncompatibility,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    (
        "LACK_PARAMS",
        Cause::PlatformIncompatibility,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    (
        "XML_FORMAT_ERROR",
        Cause::PlatformIncompatibility,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    (
        "NOT_UTF8",
        Cause::PlatformIncompatibility,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    (
        "APPID_NOT_EXIST",
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    (
        "MCHID_NOT_EXIST",
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    (
        "APPID_MCHID_NOT_MATCH",
        Cause::MerchantConfig,
        MERCHANT_ZH,
        MERCHANT_EN,
    ),
    (
        "INVALID_REQUEST",
        Cause::PlatformIncompatibility,
        INTEGRATION_ZH,
        INTEGRATION_EN,
    ),
    ("ORDERNOTEXIST", Cause::Guidance, STATE_ZH, STATE_EN),
    // `trade_state` values of orderquery, explained like err_codes.
    ("CLOSED", Cause::Guidance, STATE_ZH, STATE_EN),
    ("REVOKED", Cause::Guidance, STATE_ZH, STATE_EN),
    (
        "PAYERROR",
        Cause::UserError,
        "支付失败,请顾客刷新付款码重试或换一种付款方式",
        "payment failed: ask the customer to refresh the code, or pay another way",
    ),
    (
        "REVERSE_EXPIRE",
        Cause::Guidance,
        "已超过撤销期限,请改为退款",
        "too late to reverse: refund instead",
    ),
    (
        "NOTENOUGH_REFUND",
        Cause::MerchantConfig,
        "商户账户余额不足,无法退款,请联系服务商",
        "merchant balance too low for the refund: call the service provider",
    ),
];

fn lookup(table: &[Row], code: &str) -> Option<Explanation> {
    table
        .iter()
        .find(|(c, ..)| *c == code)
        .map(|(c, cause, zh, en)| Explanation::new(*cause, *c, zh, en))
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
        Some(sub) => lookup(ALIPAY, sub)
            .map(|e| e.with_raw(message))
            .unwrap_or_else(|| unknown(sub.to_owned(), message)),
        None => lookup(ALIPAY_CODES, code)
            .map(|e| e.with_raw(message))
            .unwrap_or_else(|| unknown(format!("alipay:{code}"), message)),
    }
}

/// Explain a WeChat Pay v2 (or QRA aggregator) failure by its `err_code`.
pub fn wechat(err_code: &str, message: Option<&str>) -> Explanation {
    lookup(WECHAT, err_code)
        .map(|e| e.with_raw(message))
        .unwrap_or_else(|| unknown(err_code.to_owned(), message))
}

/// The Alipay sub_codes this table knows (for tests and `posctl doctor` listings).
pub fn known_alipay_codes() -> impl Iterator<Item = &'static str> {
    ALIPAY.iter().map(|r| r.0)
}

/// The WeChat err_codes this table knows.
pub fn known_wechat_codes() -> impl Iterator<Item = &'static str> {
    WECHAT.iter().map(|r| r.0)
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

/// No acquirer path could be reached at all.
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
