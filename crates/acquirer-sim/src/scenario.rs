//! Scenarios: how the emulated acquirer behaves for a given payment code.
//!
//! A scenario is chosen by the **three digits after the two-digit scheme prefix** of the
//! payment code, so a test can pick one with a code that is still a well-formed Alipay
//! (25–30, 16–24 digits), WeChat (10–14, 18 digits) or UnionPay (62, 19 digits) code. A
//! control call (`POST /_sim/scenario`) can also pin a scenario to an exact code.
//!
//! | digits | scenario | Alipay | WeChat / QRA |
//! |---|---|---|---|
//! | other  | `normal` | 10000 | SUCCESS |
//! | `101` | `wait_then_pay` (10 s) | 10003, then TRADE_SUCCESS | USERPAYING, then SUCCESS |
//! | `103` | `wait_then_pay` (3 s) | as above | as above |
//! | `102` | `wait_forever` | 10003, WAIT_BUYER_PAY until cancelled | USERPAYING, REVOKED after 45 s |
//! | `201` | `expired_code` | ACQ.PAYMENT_AUTH_CODE_INVALID | AUTHCODEEXPIRE |
//! | `301` | `risk` | ACQ.PAYMENT_REQUEST_HAS_RISK | TRADE_ERROR |
//! | `302` | `day_limit` | ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR | TRADE_ERROR (daily limit) |
//! | `401` | `system_error` (not charged) | 40004 ACQ.SYSTEM_ERROR | SYSTEMERROR |
//! | `402` | `system_error_charged` | 40004 ACQ.SYSTEM_ERROR, trade paid | SYSTEMERROR, trade paid |
//! | `403` | `service_unavailable` (not charged) | 20000 isp.unknow-error | SYSTEMERROR |
//! | `404` | `bank_error_charged` | ACQ.SYSTEM_ERROR, trade paid | BANKERROR, trade paid |
//! | `501` | `lost_response` | charged, connection dropped without an answer | same |
//! | `502` | `slow` | charged, answer after the configured delay (default 20 s) | same |
//! | `503` | `bad_signature` | charged, response `sign` corrupted | same |
//! | `504` | `escaped_slashes` | charged, response escapes `/` after signing | as normal |
//! | `601` | buyer `huabei-only` | paid with PCREDIT, or refused if Huabei is off | NOTENOUGH |
//! | `602` | buyer `low-balance` (1.00 yuan) | ACQ.BUYER_BALANCE_NOT_ENOUGH | NOTENOUGH |
//! | `603` | buyer `credit-card` | paid by credit card unless `credit_group` disabled | bank_type CMB_CREDIT, or NOTSUPORTCARD with `no_credit` |
//! | `801` | `cancel_retry_once` | charged; first cancel answers retry_flag=Y | first reverse answers recall=Y |

use serde::{Deserialize, Serialize};

/// How the emulator treats a payment code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scenario {
    /// Pays at once from the buyer's funds.
    Normal,
    /// The customer must confirm; the payment completes `after_ms` later.
    WaitThenPay {
        /// Delay until the customer confirms.
        after_ms: u64,
    },
    /// The customer never confirms (WeChat revokes after 45 s).
    WaitForever,
    /// The code has expired.
    ExpiredCode,
    /// Risk control refuses.
    Risk,
    /// The buyer's daily limit is exceeded.
    DayLimit,
    /// System error; nothing charged.
    SystemError,
    /// System error answered, but the charge went through.
    SystemErrorCharged,
    /// Alipay 20000 (WeChat SYSTEMERROR); nothing charged.
    ServiceUnavailable,
    /// WeChat BANKERROR (Alipay ACQ.SYSTEM_ERROR); the charge went through.
    BankErrorCharged,
    /// Charged, then the connection is dropped without an answer.
    LostResponse,
    /// Charged, answered after the configured delay.
    Slow,
    /// Charged, the answer's signature is corrupted.
    BadSignature,
    /// Charged, the Alipay answer escapes `/` as `\/` after signing.
    EscapedSlashes,
    /// Charged; the first cancel/reverse answers retry_flag=Y / recall=Y without acting.
    CancelRetryOnce,
}

/// A buyer selected by the scenario digits rather than by the buyer table.
pub fn buyer_for_digits(digits: &str) -> Option<&'static str> {
    match digits {
        "601" => Some(crate::ledger::BUYER_HUABEI_ONLY),
        "602" => Some(crate::ledger::BUYER_LOW_BALANCE),
        "603" => Some(crate::ledger::BUYER_CREDIT_CARD),
        _ => None,
    }
}

/// The scenario digits of a code (three digits after the two-digit prefix).
pub fn digits(code: &str) -> &str {
    code.get(2..5).unwrap_or("")
}

/// The scenario selected by the code's digits.
pub fn for_digits(digits: &str) -> Scenario {
    match digits {
        "101" => Scenario::WaitThenPay { after_ms: 10_000 },
        "103" => Scenario::WaitThenPay { after_ms: 3_000 },
        "102" => Scenario::WaitForever,
        "201" => Scenario::ExpiredCode,
        "301" => Scenario::Risk,
        "302" => Scenario::DayLimit,
        "401" => Scenario::SystemError,
        "402" => Scenario::SystemErrorCharged,
        "403" => Scenario::ServiceUnavailable,
        "404" => Scenario::BankErrorCharged,
        "501" => Scenario::LostResponse,
        "502" => Scenario::Slow,
        "503" => Scenario::BadSignature,
        "504" => Scenario::EscapedSlashes,
        "801" => Scenario::CancelRetryOnce,
        _ => Scenario::Normal,
    }
}

/// How the HTTP answer is delivered, independent of its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Answer normally.
    Normal,
    /// Drop the connection without answering.
    Drop,
    /// Answer after a delay.
    Delay(u64),
    /// Corrupt the signature.
    BadSignature,
    /// Escape `/` as `\/` in the Alipay answer after signing.
    EscapedSlashes,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digits_after_the_prefix_choose_the_scenario() {
        assert_eq!(
            for_digits(digits("281010000000000000")),
            Scenario::WaitThenPay { after_ms: 10_000 }
        );
        assert_eq!(
            for_digits(digits("134011234567890123")),
            Scenario::SystemError
        );
        assert_eq!(for_digits(digits("2812")), Scenario::Normal);
        assert_eq!(
            buyer_for_digits(digits("286011234567890123")),
            Some("huabei-only")
        );
    }
}
