//! What an acquirer answer means for the terminal, independent of the protocol that carried it.
//!
//! Each protocol module maps its own codes onto [`Disposition`]; the payment state machine only
//! ever branches on this enum, so "USERPAYING", "10003" and a QRA `need_query=Y` all lead to the
//! same, tested, code path.

use serde::{Deserialize, Serialize};

/// The next step the terminal must take after an acquirer answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "cause", rename_all = "snake_case")]
pub enum Disposition {
    /// The operation took effect: the payment is paid, the cancel/reverse closed the trade, the
    /// refund was accepted.
    Success,
    /// The customer has to confirm on the phone (password, large amount). Query at the
    /// acquirer's pace; do not cancel yet.
    WaitingForCustomer,
    /// The outcome is unknown (system error, lost response, unsigned success). Query the trade;
    /// if it did not go through, cancel/reverse it. Never send the payment again: the payment
    /// code is single-use.
    QueryNeeded,
    /// A query, cancel/reverse or refund must be sent again with the same identifiers
    /// (`retry_flag=Y`, `recall=Y`, a transient error).
    Retry,
    /// The acquirer says this merchant order number is already taken (Alipay
    /// `ACQ.TRADE_HAS_SUCCESS` / `ACQ.CONTEXT_INCONSISTENT`, WeChat and QRA `ORDERPAID` /
    /// `OUT_TRADE_NO_USED`). This request was not carried out, and the trade behind the number
    /// may be another sale's (a terminal whose journal was recreated hands out old numbers
    /// again). Never success by itself: query the number and believe a payment only when its
    /// amount (and trade number) match this sale; otherwise this sale was never charged and may
    /// go again under a fresh order number. Never cancel the number: that could reverse someone
    /// else's payment.
    OrderNumberTaken,
    /// A definite failure: nothing was charged (or nothing changed), for the given cause.
    Failed(FailureCause),
}

impl Disposition {
    /// True when the terminal can close the sale without another call to the acquirer.
    pub fn is_final(self) -> bool {
        matches!(self, Disposition::Success | Disposition::Failed(_))
    }
}

/// Who or what has to act for a failed payment to succeed next time. This is what the cashier
/// is told; `posctl doctor` groups failures by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCause {
    /// The payment code is expired, already used, or not a payment code: ask the customer to
    /// refresh the code and scan again.
    PaymentCode,
    /// The buyer's funds, limits or payment settings refused it: ask for another funding
    /// source or another payment method.
    BuyerFunds,
    /// The acquirer's risk control refused it: ask for another payment method.
    Risk,
    /// The merchant's contract or configuration refused it (product not signed, quota, merchant
    /// id or app id wrong): the merchant must contact the acquirer; not fixable at the till.
    MerchantConfig,
    /// The order number or trade state conflicts (order already paid, closed, reused with other
    /// details): start a new sale with a fresh order number.
    OrderState,
    /// Our own request was malformed or badly signed (missing parameter, wrong key): a
    /// configuration or software fault for the technician.
    Request,
    /// The acquirer refused it for a reason not in the catalogue; the message says more.
    Acquirer,
}
