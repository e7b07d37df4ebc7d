//! The nouns of a sale: its id, its states and what the journal keeps about it.

use serde::{Deserialize, Serialize};

use crate::classify::Scheme;
use crate::explain::Explanation;

/// A sale's id in the journal; never reused (SQLite AUTOINCREMENT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TxId(pub i64);

impl std::fmt::Display for TxId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tx{}", self.0)
    }
}

/// Where a sale is. The lifecycle and the resolver only move a sale along
/// [`SaleState::can_move_to`]; every move is committed to the journal before it is acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaleState {
    /// Created; the next scanned payment code pays it.
    AwaitingCode,
    /// A code was taken and a merchant order number allocated; the request may be on the wire.
    Submitted,
    /// The acquirer said "in progress" (Alipay 10003, WeChat USERPAYING): the customer must
    /// confirm on the phone. Polled at the acquirer's pace.
    WaitingForCustomer,
    /// The outcome is not known (timeout, lost response, SYSTEMERROR): being resolved by
    /// query, then cancel/reverse. Never retried as a new payment.
    Unknown,
    Succeeded,
    /// The acquirer refused the payment; no money moved.
    Failed,
    /// Cancel (Alipay) / reverse (WeChat, QRA) requested and being repeated until confirmed.
    /// If no answer comes within the resolution window the sale goes back to `Unknown`
    /// (error code `sale.outcome_unknown`) with the cancel still requested.
    Cancelling,
    /// Cancelled or reversed: no money kept (a paid order is refunded by the cancel itself).
    Cancelled,
}

impl SaleState {
    pub const ALL: [SaleState; 8] = [
        SaleState::AwaitingCode,
        SaleState::Submitted,
        SaleState::WaitingForCustomer,
        SaleState::Unknown,
        SaleState::Succeeded,
        SaleState::Failed,
        SaleState::Cancelling,
        SaleState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SaleState::AwaitingCode => "awaiting_code",
            SaleState::Submitted => "submitted",
            SaleState::WaitingForCustomer => "waiting_for_customer",
            SaleState::Unknown => "unknown",
            SaleState::Succeeded => "succeeded",
            SaleState::Failed => "failed",
            SaleState::Cancelling => "cancelling",
            SaleState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<SaleState> {
        SaleState::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// A terminal state needs no more work from the resolver. `Succeeded` can still be
    /// voided by the cashier, which is a new decision, not unfinished work.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SaleState::Succeeded | SaleState::Failed | SaleState::Cancelled
        )
    }

    /// The allowed moves. `Submitted → Submitted` is fail-over to the next path with a fresh
    /// order number; `Submitted → AwaitingCode` is "no path received it, scan again".
    pub fn can_move_to(self, next: SaleState) -> bool {
        use SaleState::*;
        match self {
            AwaitingCode => matches!(next, Submitted | Cancelled | Failed),
            Submitted => matches!(
                next,
                Submitted
                    | AwaitingCode
                    | WaitingForCustomer
                    | Unknown
                    | Succeeded
                    | Failed
                    | Cancelling
            ),
            WaitingForCustomer => matches!(next, Unknown | Succeeded | Failed | Cancelling),
            Unknown => matches!(next, WaitingForCustomer | Succeeded | Failed | Cancelling),
            // `Unknown`: the cancel went unanswered for the whole resolution window; the till
            // is told "outcome unknown" while the resolver goes on cancelling.
            Cancelling => matches!(next, Cancelled | Succeeded | Unknown),
            Succeeded => matches!(next, Cancelling),
            Failed | Cancelled => false,
        }
    }
}

impl std::fmt::Display for SaleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundState {
    /// Recorded with its out_request_no; may be on the wire.
    Pending,
    Succeeded,
    Failed,
    /// Sent, answer lost: repeated with the same out_request_no until the acquirer answers.
    Unknown,
}

impl RefundState {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundState::Pending => "pending",
            RefundState::Succeeded => "succeeded",
            RefundState::Failed => "failed",
            RefundState::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<RefundState> {
        [
            RefundState::Pending,
            RefundState::Succeeded,
            RefundState::Failed,
            RefundState::Unknown,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, RefundState::Succeeded | RefundState::Failed)
    }

    /// Counts against the refundable amount: anything not definitely refused.
    pub fn holds_amount(self) -> bool {
        self != RefundState::Failed
    }
}

/// Only the renminbi is accepted by the acquirers this terminal talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Currency {
    #[serde(rename = "CNY")]
    Cny,
}

impl Currency {
    pub fn parse(s: &str) -> Option<Currency> {
        (s == "CNY").then_some(Currency::Cny)
    }

    pub fn as_str(self) -> &'static str {
        "CNY"
    }
}

/// How the customer's money was funded; the merchant's channel matrix switches these on and
/// off, and each maps onto the acquirer's own switch (Alipay `disable_pay_channels`, WeChat
/// `limit_pay=no_credit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FundingChannel {
    Balance,
    BankCard,
    /// Huabei 花呗 (`pcredit`).
    Huabei,
    /// Huabei instalments 花呗分期 (`pcreditpayInstallment`).
    HuabeiInstalments,
    CreditCard,
}

impl FundingChannel {
    pub const ALL: [FundingChannel; 5] = [
        FundingChannel::Balance,
        FundingChannel::BankCard,
        FundingChannel::Huabei,
        FundingChannel::HuabeiInstalments,
        FundingChannel::CreditCard,
    ];

    /// Credit funding, the kind policies restrict (cash-out risk, PBOC/issuer rules).
    pub fn is_credit(self) -> bool {
        matches!(
            self,
            FundingChannel::Huabei | FundingChannel::HuabeiInstalments | FundingChannel::CreditCard
        )
    }

    /// Alipay channel codes (docs/acquirers.md §1.4) that switch this funding off.
    pub fn alipay_channels(self) -> &'static [&'static str] {
        match self {
            FundingChannel::Balance => &["balance", "moneyFund"],
            FundingChannel::BankCard => &["bankPay", "debitCardExpress"],
            FundingChannel::Huabei => &["pcredit"],
            FundingChannel::HuabeiInstalments => &["pcreditpayInstallment"],
            FundingChannel::CreditCard => &["creditCard", "creditCardExpress", "creditCardCartoon"],
        }
    }

    /// Map Alipay's `fund_channel` of `fund_bill_list` back to a channel.
    pub fn from_alipay_fund_channel(fund_channel: &str) -> Option<FundingChannel> {
        match fund_channel.to_ascii_uppercase().as_str() {
            "PCREDIT" => Some(FundingChannel::Huabei),
            "PCREDITPAYINSTALLMENT" => Some(FundingChannel::HuabeiInstalments),
            "ALIPAYACCOUNT" | "FINANCEACCOUNT" => Some(FundingChannel::Balance),
            "BANKCARD" | "DEBIT_CARD" => Some(FundingChannel::BankCard),
            "CREDIT_CARD" | "CREDITCARD" => Some(FundingChannel::CreditCard),
            _ => None,
        }
    }

    /// Map WeChat's `bank_type` only where the code itself says what it is: `CFT` (零钱) and
    /// `LQT` (零钱通) are balance, `*_CREDIT` a credit card, `*_DEBIT` a debit (bank) card
    /// (docs/acquirers.md §2.1). Anything else — `OTHERS`, a bare bank code — names no kind
    /// of funding: `None`, and the raw code is kept beside it.
    pub fn from_wechat_bank_type(bank_type: &str) -> Option<FundingChannel> {
        let b = bank_type.to_ascii_uppercase();
        if b == "CFT" || b == "LQT" {
            Some(FundingChannel::Balance)
        } else if b.len() > "_CREDIT".len() && b.ends_with("_CREDIT") {
            Some(FundingChannel::CreditCard)
        } else if b.len() > "_DEBIT".len() && b.ends_with("_DEBIT") {
            Some(FundingChannel::BankCard)
        } else {
            None
        }
    }
}

/// One funding source the acquirer reported for a paid sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundingUsed {
    /// The acquirer's own word: Alipay `fund_channel` (`PCREDIT`), WeChat `bank_type`.
    pub raw: String,
    pub channel: Option<FundingChannel>,
    pub amount_fen: Option<i64>,
}

/// What the checkout app says about a sale beyond its amount.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SaleOptions {
    /// Goods description sent as `subject` / `body`; the merchant name when absent.
    pub subject: Option<String>,
    /// Virtual goods: no Huabei or credit card (docs/acquirers.md §4).
    pub virtual_goods: bool,
    /// Funding the app wants off for this sale, on top of the merchant's matrix and policies.
    pub disable_funding: Vec<FundingChannel>,
    pub operator_id: Option<String>,
}

/// A sale as the journal holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    pub id: TxId,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub amount_fen: i64,
    pub currency: Currency,
    pub order_ref: String,
    pub options: SaleOptions,
    pub state: SaleState,
    pub scheme: Option<Scheme>,
    pub path: Option<String>,
    pub out_trade_no: Option<String>,
    pub submitted_at_ms: Option<i64>,
    pub code_masked: Option<String>,
    pub disabled_funding: Vec<FundingChannel>,
    pub acquirer_trade_no: Option<String>,
    pub paid_fen: Option<i64>,
    pub funding: Vec<FundingUsed>,
    pub cancel_requested: bool,
    pub explanation: Option<Explanation>,
    /// Sum of the refunds the acquirer confirmed, read with the sale in one statement.
    #[serde(default)]
    pub refunded_fen: i64,
}

impl Transaction {
    /// Did credit (Huabei, instalments, credit card) fund this sale?
    pub fn funded_by(&self, channel: FundingChannel) -> bool {
        self.funding.iter().any(|f| f.channel == Some(channel))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    pub id: i64,
    pub tx: TxId,
    pub refund_ref: String,
    pub out_request_no: String,
    pub amount_fen: i64,
    pub state: RefundState,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub explanation: Option<Explanation>,
}

/// A state change, as broadcast to the daemon (and from there as a D-Bus signal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxEvent {
    pub tx: TxId,
    pub from: Option<SaleState>,
    pub to: SaleState,
    /// Set when the event is about a refund of this sale.
    pub refund: Option<(i64, RefundState)>,
    pub explanation: Option<Explanation>,
}

/// Yuan string with two decimals, as Alipay's `total_amount` wants it.
pub fn fen_to_yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let a = fen.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// Parse an acquirer's yuan string ("20.00", "0.5") into fen, exactly (no floats).
pub fn yuan_to_fen(s: &str) -> Option<i64> {
    smartpos_text::yuan_to_fen(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_cross_between_fen_and_yuan_exactly() {
        assert_eq!(fen_to_yuan(8888), "88.88");
        assert_eq!(fen_to_yuan(5), "0.05");
        assert_eq!(yuan_to_fen("20.00"), Some(2000));
        assert_eq!(yuan_to_fen("0.5"), Some(50));
        assert_eq!(yuan_to_fen("12"), Some(1200));
        assert_eq!(yuan_to_fen("1.234"), None);
        assert_eq!(yuan_to_fen("-1.00"), None);
        assert_eq!(yuan_to_fen("1e3"), None);
    }

    #[test]
    fn a_sale_cannot_leave_a_final_failure() {
        for s in SaleState::ALL {
            assert!(!SaleState::Failed.can_move_to(s));
            assert!(!SaleState::Cancelled.can_move_to(s));
            assert_eq!(SaleState::parse(s.as_str()), Some(s));
        }
        // A payment in flight is never "retried" back into waiting for a new code once the
        // acquirer may have it.
        assert!(!SaleState::Unknown.can_move_to(SaleState::AwaitingCode));
        assert!(!SaleState::WaitingForCustomer.can_move_to(SaleState::Submitted));
    }

    #[test]
    fn huabei_shows_up_as_pcredit_in_alipay_fund_bills() {
        assert_eq!(
            FundingChannel::from_alipay_fund_channel("PCREDIT"),
            Some(FundingChannel::Huabei)
        );
        assert_eq!(
            FundingChannel::from_wechat_bank_type("CMB_CREDIT"),
            Some(FundingChannel::CreditCard)
        );
        assert_eq!(
            FundingChannel::from_wechat_bank_type("CFT"),
            Some(FundingChannel::Balance)
        );
    }

    #[test]
    fn a_wechat_bank_type_that_names_no_card_is_not_called_a_bank_card() {
        // `OTHERS` ("other banks") says nothing about debit or credit.
        assert_eq!(FundingChannel::from_wechat_bank_type("OTHERS"), None);
        assert_eq!(FundingChannel::from_wechat_bank_type("CMC"), None);
        assert_eq!(FundingChannel::from_wechat_bank_type(""), None);
        assert_eq!(FundingChannel::from_wechat_bank_type("_DEBIT"), None);
        assert_eq!(
            FundingChannel::from_wechat_bank_type("ICBC_DEBIT"),
            Some(FundingChannel::BankCard)
        );
        assert_eq!(
            FundingChannel::from_wechat_bank_type("LQT"),
            Some(FundingChannel::Balance)
        );
    }
}
