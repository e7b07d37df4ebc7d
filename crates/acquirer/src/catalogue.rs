//! One catalogue row per acquirer code: what the terminal does next ([`Disposition`]), which of
//! the ten cause groups explains it to the cashier ([`Cause`]), and a one-line instruction in
//! Chinese and English. The tables themselves live next to each protocol
//! ([`crate::alipay::codes`], [`crate::wechat::codes`], [`crate::qra`]); the payment crate's
//! explanations are built from them, so a code cannot be known to one and not the other.

use serde::{Deserialize, Serialize};

use crate::disposition::Disposition;

/// The ten cause groups a failure is explained by, in their numbered order. The strings of
/// [`Cause::as_str`] (and the serde names) are part of the bus contract.
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

    /// The group's number, 1 to 10.
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

/// One acquirer code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeRow {
    /// The code as the acquirer sends it (Alipay `sub_code` or `code`, WeChat `err_code` or
    /// `trade_state`).
    pub code: &'static str,
    /// What a payment answer with this code means for the terminal.
    pub disposition: Disposition,
    /// The cause group the cashier is shown.
    pub cause: Cause,
    /// Instruction for the cashier, Chinese.
    pub zh: &'static str,
    /// Instruction for the cashier, English.
    pub en: &'static str,
}

pub(crate) const fn row(
    code: &'static str,
    disposition: Disposition,
    cause: Cause,
    zh: &'static str,
    en: &'static str,
) -> CodeRow {
    CodeRow {
        code,
        disposition,
        cause,
        zh,
        en,
    }
}

/// The row for `code` in `table`.
pub fn find(table: &'static [CodeRow], code: &str) -> Option<&'static CodeRow> {
    table.iter().find(|r| r.code == code)
}

// Instructions shared by several rows.
pub(crate) const RESCAN_ZH: &str = "付款码无效或已使用,请顾客刷新付款码后重新扫码";
pub(crate) const RESCAN_EN: &str =
    "the payment code is invalid or used: ask the customer to refresh it and scan again";
pub(crate) const OTHER_METHOD_ZH: &str = "请顾客换一种付款方式";
pub(crate) const OTHER_METHOD_EN: &str = "ask for another payment method";
pub(crate) const NO_FUNDS_ZH: &str = "顾客余额或额度不足,请顾客换一张卡或换一种付款方式";
pub(crate) const NO_FUNDS_EN: &str =
    "the customer's balance or credit is not enough: ask for another card or payment method";
pub(crate) const WALLET_ZH: &str =
    "请顾客在手机上检查支付设置(付款开关、实名认证)后重试,或换一种付款方式";
pub(crate) const WALLET_EN: &str = "ask the customer to check the wallet settings (payment switch, identity verification), or pay another way";
pub(crate) const MERCHANT_ZH: &str = "商户收款权限或配置有误,收银台无法处理,请联系服务商/收单机构";
pub(crate) const MERCHANT_EN: &str =
    "merchant account or configuration problem, not fixable at the till: call the service provider";
pub(crate) const LIMIT_ZH: &str = "超出商户收款限额,请顾客分开付款或换一种方式,并联系服务商";
pub(crate) const LIMIT_EN: &str = "above the merchant's collection limit: split the payment or pay another way, and call the service provider";
pub(crate) const INTEGRATION_ZH: &str = "终端与收单平台不兼容(签名/参数),请联系技术支持更新终端";
pub(crate) const INTEGRATION_EN: &str =
    "terminal and acquirer disagree (signature/parameters): call support to update the terminal";
pub(crate) const STATE_ZH: &str = "该订单已结束,请重新发起收款";
pub(crate) const STATE_EN: &str = "this order is already closed: start a new sale";
pub(crate) const QUERYING_ZH: &str = "结果未知,正在向收单机构查询,请稍候,不要重复收款";
pub(crate) const QUERYING_EN: &str =
    "outcome unknown, querying the acquirer: wait, do not charge again";

/// The acquirer says the order number was used before: the terminal queries it and compares the
/// amount before believing anything (see [`Disposition::OrderNumberTaken`]).
pub(crate) const TAKEN_ZH: &str = "该订单号以前已被使用,正在向收单机构查询核对金额,请勿重复收款";
pub(crate) const TAKEN_EN: &str = "this order number was used before: querying the acquirer to compare the amount, do not charge again";

/// One row per error class of the HTTPS transport (`smartpos_transport::ErrorClass::code`):
/// what the cashier is told when the network, not the acquirer, decided the outcome. A class
/// that provably never sent the request ([`Disposition::Retry`]: send again, or rescan) says
/// that nothing was charged and what to check; a class after which the request may have
/// arrived ([`Disposition::QueryNeeded`]) says the outcome is being queried. Certificate and
/// handshake failures are platform incompatibility (cause 6), never "check the network": no
/// amount of reconnecting fixes a certificate that has expired, is for another name or is
/// from another CA.
pub const NETWORK_CODES: &[CodeRow] = &[
    row(
        "net.dns",
        Disposition::Retry,
        Cause::Network,
        "无法解析收单机构的地址(DNS),付款未发出、未扣款:请检查网络或路由器后重新扫码",
        "cannot look up the acquirer's address (DNS): nothing was charged; check the network or router, then scan again",
    ),
    row(
        "net.refused",
        Disposition::Retry,
        Cause::Network,
        "无法连接收单机构的服务器,付款未发出、未扣款:请检查网络后重新扫码",
        "the acquirer's server cannot be reached (refused, no route): nothing was charged; check the network, then scan again",
    ),
    row(
        "net.connect_timeout",
        Disposition::Retry,
        Cause::Network,
        "连接收单机构超时,付款未发出、未扣款:网络很慢或中断,请检查网络后重新扫码",
        "no connection to the acquirer in time: nothing was charged; the network is slow or down, check it, then scan again",
    ),
    row(
        "net.handshake",
        Disposition::Retry,
        Cause::PlatformIncompatibility,
        "与收单机构的安全连接协商失败,付款未发出、未扣款:终端与收单平台不兼容,请联系技术支持",
        "the secure connection to the acquirer could not be agreed: nothing was charged; terminal and acquirer are incompatible, call support",
    ),
    row(
        "net.cert_expired",
        Disposition::Retry,
        Cause::PlatformIncompatibility,
        "按终端时间收单机构证书已过期,付款未发出、未扣款:请先核对终端日期时间,时间正确则联系技术支持",
        "the acquirer's certificate has expired by this terminal's clock: nothing was charged; check the terminal's date and time, if it is right call support",
    ),
    row(
        "net.cert_not_yet_valid",
        Disposition::Retry,
        Cause::PlatformIncompatibility,
        "终端时间不准(收单机构证书按终端时间尚未生效),付款未发出、未扣款:请校正终端日期时间后重新扫码",
        "the terminal's clock is wrong (the acquirer's certificate is not valid yet by it): nothing was charged; set the date and time, then scan again",
    ),
    row(
        "net.cert_untrusted",
        Disposition::Retry,
        Cause::PlatformIncompatibility,
        "收单机构证书不是预置的证书机构签发的,付款未发出、未扣款:网络可能被劫持或证书配置有误,请勿换网络绕过,联系技术支持",
        "the acquirer's certificate is not from the pinned CA: nothing was charged; the connection may be intercepted or the CA misconfigured, do not work around it, call support",
    ),
    row(
        "net.cert_name_mismatch",
        Disposition::Retry,
        Cause::PlatformIncompatibility,
        "收单机构证书与地址不符,付款未发出、未扣款:网络可能被劫持或地址配置有误,请联系技术支持",
        "the acquirer's certificate is for another name: nothing was charged; the connection may be redirected or the address misconfigured, call support",
    ),
    row(
        "net.read_timeout",
        Disposition::QueryNeeded,
        Cause::Network,
        QUERYING_NETWORK_ZH,
        QUERYING_NETWORK_EN,
    ),
    row(
        "net.reset_mid_response",
        Disposition::QueryNeeded,
        Cause::Network,
        "应答途中连接中断,正在向收单机构查询结果,请勿重复收款",
        "the connection broke during the acquirer's answer: querying the outcome, do not charge again",
    ),
    row(
        "net.http_status",
        Disposition::QueryNeeded,
        Cause::Network,
        "收单机构服务器返回错误页面,正在查询结果,请勿重复收款",
        "the acquirer's server answered with an HTTP error: querying the outcome, do not charge again",
    ),
];

const QUERYING_NETWORK_ZH: &str = "收单机构未及时应答,正在查询付款结果,请勿重复收款";
const QUERYING_NETWORK_EN: &str =
    "no answer from the acquirer in time: querying the outcome, do not charge again";

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> [(&'static str, &'static [CodeRow]); 5] {
        [
            ("network", NETWORK_CODES),
            ("alipay sub_code", crate::alipay::codes::SUB_CODES),
            ("alipay code", crate::alipay::codes::RESULT_CODES),
            ("wechat", crate::wechat::codes::ERR_CODES),
            ("qra", crate::qra::QRA_CODES),
        ]
    }

    #[test]
    fn every_row_is_complete_and_every_code_appears_once() {
        for (name, table) in tables() {
            for (i, r) in table.iter().enumerate() {
                assert!(!r.code.trim().is_empty(), "{name}: row {i} has no code");
                assert!(!r.zh.trim().is_empty(), "{name} {}: no zh", r.code);
                assert!(!r.en.trim().is_empty(), "{name} {}: no en", r.code);
                assert!(
                    table[i + 1..].iter().all(|o| o.code != r.code),
                    "{name}: {} twice",
                    r.code
                );
            }
        }
        // QRA falls back to WeChat's table, so its own rows must not shadow WeChat's.
        for r in crate::qra::QRA_CODES {
            assert!(crate::wechat::codes::lookup(r.code).is_none(), "{}", r.code);
        }
    }

    #[test]
    fn an_order_number_taken_is_never_explained_as_a_payment() {
        for (name, table) in tables() {
            for r in table {
                if r.disposition == Disposition::OrderNumberTaken {
                    assert!(r.en.contains("do not charge again"), "{name} {}", r.code);
                    assert_eq!(r.cause, Cause::Software, "{name} {}", r.code);
                }
            }
        }
    }

    #[test]
    fn a_network_failure_says_whether_anything_was_charged() {
        for r in NETWORK_CODES {
            assert!(
                matches!(r.cause, Cause::Network | Cause::PlatformIncompatibility),
                "{}",
                r.code
            );
            match r.disposition {
                Disposition::Retry => {
                    assert!(r.en.contains("nothing was charged"), "{}", r.code);
                    assert!(r.zh.contains("未扣款"), "{}", r.code);
                }
                Disposition::QueryNeeded => {
                    assert!(r.en.contains("do not charge again"), "{}", r.code);
                    assert!(r.zh.contains("请勿重复收款"), "{}", r.code);
                }
                d => panic!("{}: {d:?}", r.code),
            }
            // A certificate is never the network's fault, and never fixed by checking it.
            if r.code.starts_with("net.cert_") || r.code == "net.handshake" {
                assert_eq!(r.cause, Cause::PlatformIncompatibility, "{}", r.code);
                assert!(!r.en.contains("check the network"), "{}", r.code);
            }
        }
    }

    #[test]
    fn cause_numbers_and_names_are_stable() {
        assert_eq!(Cause::Hardware.number(), 1);
        assert_eq!(Cause::RiskControl.number(), 9);
        assert_eq!(Cause::Compliance.number(), 10);
        for c in Cause::ALL {
            assert_eq!(Cause::parse(c.as_str()), Some(c));
            let json = serde_json::to_string(&c).expect("serialises");
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
    }
}
