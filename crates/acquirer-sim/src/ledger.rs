//! The emulator's books: buyers, the merchant's switches, trades, used payment codes.
//!
//! The ledger is protocol-neutral: the Alipay, WeChat and QRA front ends translate their
//! requests into [`PayAttempt`]s and the results into their own codes. It serialises to JSON
//! (`GET /_sim/ledger`, and the `--ledger` file that survives a terminal crash test). Payment
//! codes are bearer tokens, so the ledger keeps only their SHA-256 and a masked form.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use smartpos_acquirer::mask_code;

use crate::scenario::{self, Scenario};

/// The default buyer: plenty of balance and Huabei, pays from balance.
pub const BUYER_DEFAULT: &str = "alice";
/// A buyer whose only funding is Huabei (花呗).
pub const BUYER_HUABEI_ONLY: &str = "huabei-only";
/// A buyer with 1.00 yuan.
pub const BUYER_LOW_BALANCE: &str = "low-balance";
/// A buyer who pays by credit card.
pub const BUYER_CREDIT_CARD: &str = "credit-card";

/// WeChat revokes a payment-code order the customer has not confirmed after 45 s.
pub const WECHAT_AUTO_REVOKE_MS: u64 = 45_000;
/// WeChat reverses an order only within 7 days; later it must be refunded.
pub const REVERSE_WINDOW_MS: u64 = 7 * 24 * 3600 * 1000;
/// Payment codes are valid for one minute after they were shown.
pub const CODE_VALIDITY_MS: u64 = 60_000;

/// Which front end a trade came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// Alipay OpenAPI.
    Alipay,
    /// WeChat Pay v2.
    Wechat,
    /// QRA aggregator.
    Qra,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Alipay => "alipay",
            Scheme::Wechat => "wechat",
            Scheme::Qra => "qra",
        }
    }
}

/// A buyer and their funds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buyer {
    /// Name used in the ledger.
    pub name: String,
    /// Payment-code prefixes that belong to this buyer (longest match wins).
    #[serde(default)]
    pub code_prefixes: Vec<String>,
    /// Balance (余额 / 零钱 / debit card) in fen.
    pub balance_fen: i64,
    /// Huabei quota left in fen (Alipay only).
    #[serde(default)]
    pub huabei_quota_fen: i64,
    /// Huabei is the only funding this buyer has or allows.
    #[serde(default)]
    pub huabei_only: bool,
    /// The balance is on a credit card.
    #[serde(default)]
    pub credit_card: bool,
    /// Daily payment-code limit in fen (PBOC 296号 tiers), if any.
    #[serde(default)]
    pub daily_limit_fen: Option<i64>,
    /// Paid today, for the daily limit.
    #[serde(default)]
    pub spent_today_fen: i64,
}

/// The merchant's contract switches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merchant {
    /// The Alipay face-to-face product is signed (else ACQ.ACCESS_FORBIDDEN).
    pub alipay_products_signed: bool,
    /// Huabei is enabled for this merchant.
    pub huabei_enabled: bool,
    /// The sub_code Alipay answers when Huabei would be needed but may not be used (there is no
    /// Huabei-specific code; docs/acquirers.md §1.8).
    pub huabei_refusal_sub_code: String,
}

impl Default for Merchant {
    fn default() -> Self {
        Self {
            alipay_products_signed: true,
            huabei_enabled: true,
            huabei_refusal_sub_code: "ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE".into(),
        }
    }
}

/// A trade's state, in the emulator's own terms; front ends map it to theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradeState {
    /// Waiting for the customer to confirm.
    WaitBuyerPay,
    /// Paid.
    Success,
    /// Closed without payment, or cancelled (Alipay) — refunded if it had been paid.
    Closed,
    /// Reversed/revoked (WeChat, QRA) — refunded if it had been paid.
    Revoked,
}

/// One funding source of a paid trade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundBill {
    /// Alipay `fund_channel` (`ALIPAYACCOUNT`, `PCREDIT`, `BANKCARD`).
    pub fund_channel: String,
    /// Amount in fen.
    pub amount_fen: i64,
}

/// A refund of a trade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// `out_request_no` / `out_refund_no`.
    pub out_request_no: String,
    /// Amount in fen.
    pub amount_fen: i64,
    /// Emulator refund id.
    pub refund_id: String,
}

/// A trade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    /// Front end.
    pub scheme: Scheme,
    /// Merchant order number.
    pub out_trade_no: String,
    /// Acquirer trade number (`trade_no` / `transaction_id`).
    pub trade_no: String,
    /// Amount in fen.
    pub amount_fen: i64,
    /// `subject` / `body`.
    pub subject: String,
    /// State.
    pub state: TradeState,
    /// Buyer name.
    pub buyer: String,
    /// Masked payment code.
    pub code_masked: String,
    /// SHA-256 of the payment code.
    pub code_sha256: String,
    /// Funding (empty until paid).
    pub fund_bills: Vec<FundBill>,
    /// WeChat `bank_type` once paid.
    pub bank_type: Option<String>,
    /// Refunds so far.
    pub refunds: Vec<Refund>,
    /// Why the trade closed without payment, if it did.
    pub failure: Option<String>,
    /// What cancel/reverse did: `close` or `refund`.
    pub cancel_action: Option<String>,
    /// Created, ms since the epoch.
    pub created_ms: u64,
    /// Paid, ms since the epoch.
    pub paid_ms: Option<u64>,
    /// When a waiting trade resolves (None: never).
    pub resolves_at_ms: Option<u64>,
    /// Funding switches of the request, applied when a waiting trade resolves.
    pub huabei_allowed: bool,
    /// See `huabei_allowed`.
    pub credit_allowed: bool,
    /// Cancel/reverse calls still to be answered "retry".
    pub cancel_retries_left: u32,
}

impl Trade {
    /// Refunded so far, in fen.
    pub fn refunded_fen(&self) -> i64 {
        self.refunds.iter().map(|r| r.amount_fen).sum()
    }

    /// True if Huabei funded any part.
    pub fn huabei(&self) -> bool {
        self.fund_bills.iter().any(|b| b.fund_channel == "PCREDIT")
    }
}

/// A payment request, protocol-neutral.
#[derive(Debug, Clone)]
pub struct PayAttempt<'a> {
    /// Front end.
    pub scheme: Scheme,
    /// Merchant order number.
    pub out_trade_no: &'a str,
    /// The payment code.
    pub auth_code: &'a str,
    /// Amount in fen.
    pub amount_fen: i64,
    /// `subject` / `body`.
    pub subject: &'a str,
    /// Huabei may be used (not in `disable_pay_channels`).
    pub huabei_allowed: bool,
    /// Credit cards may be used (not `credit_group` / `limit_pay=no_credit`).
    pub credit_allowed: bool,
}

/// Why a payment was refused (nothing charged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The code was used before.
    CodeUsed,
    /// The code expired.
    CodeExpired,
    /// Risk control.
    Risk,
    /// Daily limit.
    DayLimit,
    /// Not enough funds in any allowed source.
    BalanceTooLow,
    /// Huabei would be needed but is disabled for the merchant or by the request; the
    /// configured Alipay sub_code is carried.
    HuabeiUnavailable(String),
    /// The buyer pays by credit card and credit is barred.
    CreditBarred,
    /// The merchant's product is not signed.
    ProductNotSigned,
}

/// An acquirer-side fault answered instead of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// ACQ.SYSTEM_ERROR / SYSTEMERROR.
    SystemError,
    /// Alipay 20000.
    ServiceUnavailable,
    /// WeChat BANKERROR.
    BankError,
}

/// The outcome of a [`PayAttempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayResult {
    /// Paid now.
    Paid(Trade),
    /// Waiting for the customer.
    Waiting(Trade),
    /// Refused; the trade is recorded closed.
    Refused(Refusal, Trade),
    /// A fault is answered; `Some` if the charge went through anyway.
    Fault(Fault, Option<Trade>),
    /// The order number exists with the same details, or is paid (whatever the details).
    Duplicate(Trade),
    /// The order number exists with other details.
    Inconsistent(Trade),
}

/// The outcome of a cancel/reverse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelResult {
    /// No such trade.
    NotFound,
    /// Not acted on this time: call again.
    RetryLater(Trade),
    /// Done; the trade carries `cancel_action`.
    Done(Trade),
}

/// The outcome of a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundResult {
    /// No such trade.
    NotFound,
    /// The trade is not paid (or was reversed).
    NotPaid(Trade),
    /// Same `out_request_no` and amount as before: no money moved this time.
    Repeat(Trade, Refund),
    /// Same `out_request_no`, different amount.
    Discordant(Trade),
    /// More than what is left to refund.
    Exceeds(Trade),
    /// Refunded now.
    Done(Trade, Refund),
}

/// The emulator's books.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Merchant switches.
    pub merchant: Merchant,
    /// Buyers.
    pub buyers: Vec<Buyer>,
    /// Trades by `scheme:out_trade_no`.
    pub trades: BTreeMap<String, Trade>,
    /// SHA-256 of used codes → trade key.
    pub used_codes: BTreeMap<String, String>,
    /// Scenarios pinned to exact codes (by SHA-256).
    pub code_scenarios: BTreeMap<String, Scenario>,
    /// When a code was shown (by SHA-256), for expiry; registered through the control API.
    pub issued_codes: BTreeMap<String, u64>,
    /// The delay of the `slow` scenario.
    pub slow_delay_ms: u64,
    /// Sequence for trade numbers.
    pub seq: u64,
    /// How far the emulator's clock runs ahead of the wall clock (`advance_clock_ms`), so a test
    /// can let "46 seconds pass" for the 45 s auto-revoke without waiting.
    #[serde(default)]
    pub clock_offset_ms: u64,
    /// How far an Alipay request `timestamp` may be from the emulator's wall clock before it
    /// is refused with `isv.invalid-timestamp` (a terminal with a wrong clock). The real
    /// gateway's tolerance is not documented; 15 minutes is an assumption.
    #[serde(default = "default_timestamp_tolerance_s")]
    pub alipay_timestamp_tolerance_s: u64,
    /// Requests received per API (`alipay.trade.cancel`, `/secapi/pay/reverse`,
    /// `unified.trade.reverse`, …), whatever their outcome, so a test can bound how hard a
    /// terminal pushes an acquirer.
    #[serde(default)]
    pub requests: BTreeMap<String, u64>,
    /// Sign every answer wrongly (a gateway whose key the terminal does not hold): unlike
    /// the `bad_signature` scenario, which spoils only the payment's answer, the queries,
    /// cancels and reverses that follow cannot be trusted either.
    #[serde(default)]
    pub bad_signatures: bool,
}

fn default_timestamp_tolerance_s() -> u64 {
    900
}

impl Default for Ledger {
    fn default() -> Self {
        let buyer = |name: &str, balance: i64, huabei: i64| Buyer {
            name: name.into(),
            code_prefixes: vec![],
            balance_fen: balance,
            huabei_quota_fen: huabei,
            huabei_only: false,
            credit_card: false,
            daily_limit_fen: None,
            spent_today_fen: 0,
        };
        let mut huabei_only = buyer(BUYER_HUABEI_ONLY, 0, 500_000);
        huabei_only.huabei_only = true;
        let mut credit = buyer(BUYER_CREDIT_CARD, 10_000_000, 0);
        credit.credit_card = true;
        Self {
            merchant: Merchant::default(),
            buyers: vec![
                buyer(BUYER_DEFAULT, 10_000_000, 1_000_000),
                huabei_only,
                buyer(BUYER_LOW_BALANCE, 100, 0),
                credit,
            ],
            trades: BTreeMap::new(),
            used_codes: BTreeMap::new(),
            code_scenarios: BTreeMap::new(),
            issued_codes: BTreeMap::new(),
            slow_delay_ms: 20_000,
            seq: 0,
            clock_offset_ms: 0,
            alipay_timestamp_tolerance_s: default_timestamp_tolerance_s(),
            requests: BTreeMap::new(),
            bad_signatures: false,
        }
    }
}

/// SHA-256 of a payment code, hex.
pub fn code_hash(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

fn key(scheme: Scheme, out_trade_no: &str) -> String {
    format!("{}:{out_trade_no}", scheme.as_str())
}

/// Now, in ms since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A ledger file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerFileError {
    /// I/O.
    #[error("ledger file {path}: {source}; check --ledger")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// JSON.
    #[error("ledger file {path} is not a ledger ({message}); move it away to start afresh")]
    Json {
        /// The file.
        path: std::path::PathBuf,
        /// Parse error.
        message: String,
    },
}

impl Ledger {
    /// Count one request to `api`.
    pub fn count_request(&mut self, api: &str) {
        *self.requests.entry(api.to_owned()).or_default() += 1;
    }

    /// How many requests `api` received.
    pub fn requests_to(&self, api: &str) -> u64 {
        self.requests.get(api).copied().unwrap_or(0)
    }

    /// Load from `path`, or a default ledger if the file does not exist.
    pub fn load(path: &Path) -> Result<Self, LedgerFileError> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| LedgerFileError::Json {
                path: path.to_owned(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(LedgerFileError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Write to `path` atomically (temp file, fsync, rename), so a reader never sees half a
    /// ledger.
    pub fn save(&self, path: &Path) -> Result<(), LedgerFileError> {
        use std::io::Write;
        let io = |source| LedgerFileError::Io {
            path: path.to_owned(),
            source,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| LedgerFileError::Json {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&json).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    fn next_trade_no(&mut self, scheme: Scheme, now: u64) -> String {
        self.seq += 1;
        let prefix = match scheme {
            Scheme::Alipay => "2026",
            Scheme::Wechat => "4200",
            Scheme::Qra => "7551",
        };
        format!(
            "{prefix}{:012}{:012}",
            now / 1000 % 1_000_000_000_000,
            self.seq
        )
    }

    /// The emulator's current time: the wall clock plus `clock_offset_ms`.
    pub fn emulator_now_ms(&self) -> u64 {
        now_ms() + self.clock_offset_ms
    }

    /// The scenario for a code: a pinned one, else its digits.
    pub fn scenario_for(&self, code: &str) -> Scenario {
        self.code_scenarios
            .get(&code_hash(code))
            .copied()
            .unwrap_or_else(|| scenario::for_digits(scenario::digits(code)))
    }

    fn buyer_index_for(&self, code: &str) -> usize {
        let name = scenario::buyer_for_digits(scenario::digits(code)).or_else(|| {
            self.buyers
                .iter()
                .flat_map(|b| b.code_prefixes.iter().map(move |p| (p, b)))
                .filter(|(p, _)| code.starts_with(p.as_str()))
                .max_by_key(|(p, _)| p.len())
                .map(|(_, b)| b.name.as_str())
        });
        let name = name.unwrap_or(BUYER_DEFAULT);
        self.buyers.iter().position(|b| b.name == name).unwrap_or(0)
    }

    /// Resolve waiting trades whose customer has confirmed, and revoke WeChat/QRA trades left
    /// unconfirmed for 45 s. `now` is wall-clock time; the ledger adds its clock offset.
    pub fn tick(&mut self, now: u64) {
        self.tick_at(now + self.clock_offset_ms);
    }

    fn tick_at(&mut self, now: u64) {
        let keys: Vec<String> = self
            .trades
            .iter()
            .filter(|(_, t)| t.state == TradeState::WaitBuyerPay)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            let Some(t) = self.trades.get(&k).cloned() else {
                continue;
            };
            if t.resolves_at_ms.is_some_and(|at| at <= now) {
                let buyer = self
                    .buyers
                    .iter()
                    .position(|b| b.name == t.buyer)
                    .unwrap_or(0);
                let funded = self.fund(
                    buyer,
                    t.scheme,
                    t.amount_fen,
                    t.huabei_allowed,
                    t.credit_allowed,
                );
                if let Some(trade) = self.trades.get_mut(&k) {
                    match funded {
                        Ok((bills, bank_type)) => {
                            trade.state = TradeState::Success;
                            trade.fund_bills = bills;
                            trade.bank_type = bank_type;
                            trade.paid_ms = t.resolves_at_ms;
                        }
                        Err(refusal) => {
                            trade.state = TradeState::Closed;
                            trade.failure = Some(format!("{refusal:?}"));
                        }
                    }
                }
            } else if t.scheme != Scheme::Alipay
                && now.saturating_sub(t.created_ms) >= WECHAT_AUTO_REVOKE_MS
                && let Some(trade) = self.trades.get_mut(&k)
            {
                trade.state = TradeState::Revoked;
                trade.failure = Some("not confirmed within 45 s: revoked by the acquirer".into());
            }
        }
    }

    /// Take funds from the buyer: balance first unless they are Huabei-only, then Huabei.
    fn fund(
        &mut self,
        buyer: usize,
        scheme: Scheme,
        amount: i64,
        huabei_allowed: bool,
        credit_allowed: bool,
    ) -> Result<(Vec<FundBill>, Option<String>), Refusal> {
        let merchant_huabei = self.merchant.huabei_enabled;
        let refusal_code = self.merchant.huabei_refusal_sub_code.clone();
        let Some(b) = self.buyers.get_mut(buyer) else {
            return Err(Refusal::BalanceTooLow);
        };
        if let Some(limit) = b.daily_limit_fen
            && b.spent_today_fen + amount > limit
        {
            return Err(Refusal::DayLimit);
        }
        let bill = |channel: &str| FundBill {
            fund_channel: channel.into(),
            amount_fen: amount,
        };
        let result = if b.credit_card {
            if !credit_allowed {
                Err(if scheme == Scheme::Alipay {
                    Refusal::HuabeiUnavailable("ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE".into())
                } else {
                    Refusal::CreditBarred
                })
            } else if b.balance_fen >= amount {
                b.balance_fen -= amount;
                Ok((vec![bill("BANKCARD")], Some("CMB_CREDIT".to_owned())))
            } else {
                Err(Refusal::BalanceTooLow)
            }
        } else if !b.huabei_only && b.balance_fen >= amount {
            b.balance_fen -= amount;
            Ok((vec![bill("ALIPAYACCOUNT")], Some("OTHERS".to_owned())))
        } else if scheme == Scheme::Alipay && b.huabei_quota_fen >= amount {
            if merchant_huabei && huabei_allowed {
                b.huabei_quota_fen -= amount;
                Ok((vec![bill("PCREDIT")], None))
            } else {
                Err(Refusal::HuabeiUnavailable(refusal_code))
            }
        } else {
            Err(Refusal::BalanceTooLow)
        };
        if result.is_ok() {
            b.spent_today_fen += amount;
        }
        result
    }

    /// Charge a payment code.
    pub fn pay(&mut self, p: &PayAttempt<'_>, now: u64) -> PayResult {
        let now = now + self.clock_offset_ms;
        self.tick_at(now);
        let k = key(p.scheme, p.out_trade_no);
        if let Some(existing) = self.trades.get(&k) {
            // A paid order number is answered "already paid" whatever the new request carries
            // (another code, another amount): the acquirer checks the number's state first. A
            // terminal that recreated its journal meets exactly this.
            return if existing.state == TradeState::Success
                || existing.amount_fen == p.amount_fen && existing.subject == p.subject
            {
                PayResult::Duplicate(existing.clone())
            } else {
                PayResult::Inconsistent(existing.clone())
            };
        }
        let hash = code_hash(p.auth_code);
        let code_used = self.used_codes.contains_key(&hash);
        let scenario = self.scenario_for(p.auth_code);
        let buyer = self.buyer_index_for(p.auth_code);
        let trade_no = self.next_trade_no(p.scheme, now);
        let mut trade = Trade {
            scheme: p.scheme,
            out_trade_no: p.out_trade_no.to_owned(),
            trade_no,
            amount_fen: p.amount_fen,
            subject: p.subject.to_owned(),
            state: TradeState::Closed,
            buyer: self
                .buyers
                .get(buyer)
                .map(|b| b.name.clone())
                .unwrap_or_default(),
            code_masked: mask_code(p.auth_code),
            code_sha256: hash.clone(),
            fund_bills: vec![],
            bank_type: None,
            refunds: vec![],
            failure: None,
            cancel_action: None,
            created_ms: now,
            paid_ms: None,
            resolves_at_ms: None,
            huabei_allowed: p.huabei_allowed,
            credit_allowed: p.credit_allowed,
            cancel_retries_left: u32::from(scenario == Scenario::CancelRetryOnce),
        };
        // Faults that never reached the books: no trade, and the code is not consumed.
        match scenario {
            Scenario::SystemError => return PayResult::Fault(Fault::SystemError, None),
            Scenario::ServiceUnavailable => {
                return PayResult::Fault(Fault::ServiceUnavailable, None);
            }
            _ => {}
        }
        // A payment code is single-use, even when the payment fails.
        self.used_codes.insert(hash.clone(), k.clone());
        let expired = scenario == Scenario::ExpiredCode
            || self
                .issued_codes
                .get(&hash)
                .is_some_and(|issued| now.saturating_sub(*issued) > CODE_VALIDITY_MS);
        let refusal = if code_used {
            Some(Refusal::CodeUsed)
        } else if expired {
            Some(Refusal::CodeExpired)
        } else if p.scheme == Scheme::Alipay && !self.merchant.alipay_products_signed {
            Some(Refusal::ProductNotSigned)
        } else if scenario == Scenario::Risk {
            Some(Refusal::Risk)
        } else if scenario == Scenario::DayLimit {
            Some(Refusal::DayLimit)
        } else {
            None
        };
        if let Some(r) = refusal {
            trade.failure = Some(format!("{r:?}"));
            self.trades.insert(k, trade.clone());
            return PayResult::Refused(r, trade);
        }
        match scenario {
            Scenario::WaitThenPay { after_ms } => {
                trade.state = TradeState::WaitBuyerPay;
                trade.resolves_at_ms = Some(now + after_ms);
                self.trades.insert(k, trade.clone());
                return PayResult::Waiting(trade);
            }
            Scenario::WaitForever => {
                trade.state = TradeState::WaitBuyerPay;
                self.trades.insert(k, trade.clone());
                return PayResult::Waiting(trade);
            }
            _ => {}
        }
        match self.fund(
            buyer,
            p.scheme,
            p.amount_fen,
            p.huabei_allowed,
            p.credit_allowed,
        ) {
            Ok((bills, bank_type)) => {
                trade.state = TradeState::Success;
                trade.fund_bills = bills;
                trade.bank_type = bank_type;
                trade.paid_ms = Some(now);
                self.trades.insert(k, trade.clone());
                match scenario {
                    Scenario::SystemErrorCharged => {
                        PayResult::Fault(Fault::SystemError, Some(trade))
                    }
                    Scenario::BankErrorCharged => PayResult::Fault(Fault::BankError, Some(trade)),
                    _ => PayResult::Paid(trade),
                }
            }
            Err(r) => {
                trade.failure = Some(format!("{r:?}"));
                self.trades.insert(k, trade.clone());
                PayResult::Refused(r, trade)
            }
        }
    }

    /// A trade by order number (after resolving timers).
    pub fn query(&mut self, scheme: Scheme, out_trade_no: &str, now: u64) -> Option<Trade> {
        let now = now + self.clock_offset_ms;
        self.tick_at(now);
        self.trades.get(&key(scheme, out_trade_no)).cloned()
    }

    /// A trade by acquirer trade number.
    pub fn query_by_trade_no(&mut self, scheme: Scheme, trade_no: &str, now: u64) -> Option<Trade> {
        let now = now + self.clock_offset_ms;
        self.tick_at(now);
        self.trades
            .values()
            .find(|t| t.scheme == scheme && t.trade_no == trade_no)
            .cloned()
    }

    fn give_back(&mut self, buyer: &str, channel: &str, amount: i64) {
        if let Some(b) = self.buyers.iter_mut().find(|b| b.name == buyer) {
            if channel == "PCREDIT" {
                b.huabei_quota_fen += amount;
            } else {
                b.balance_fen += amount;
            }
            b.spent_today_fen = (b.spent_today_fen - amount).max(0);
        }
    }

    /// Cancel (Alipay) / reverse (WeChat, QRA): close an unpaid trade, refund a paid one.
    pub fn cancel(&mut self, scheme: Scheme, out_trade_no: &str, now: u64) -> CancelResult {
        let now = now + self.clock_offset_ms;
        self.tick_at(now);
        let k = key(scheme, out_trade_no);
        let Some(t) = self.trades.get(&k).cloned() else {
            return CancelResult::NotFound;
        };
        if t.cancel_retries_left > 0 {
            if let Some(t) = self.trades.get_mut(&k) {
                t.cancel_retries_left -= 1;
            }
            return CancelResult::RetryLater(t);
        }
        let closed = if scheme == Scheme::Alipay {
            TradeState::Closed
        } else {
            TradeState::Revoked
        };
        match t.state {
            TradeState::WaitBuyerPay => {
                if let Some(tr) = self.trades.get_mut(&k) {
                    tr.state = closed;
                    tr.cancel_action = Some("close".into());
                    tr.resolves_at_ms = None;
                }
            }
            TradeState::Success => {
                let left = t.amount_fen - t.refunded_fen();
                let channel = t
                    .fund_bills
                    .first()
                    .map(|b| b.fund_channel.clone())
                    .unwrap_or_default();
                self.give_back(&t.buyer, &channel, left);
                if let Some(tr) = self.trades.get_mut(&k) {
                    tr.state = closed;
                    tr.cancel_action = Some("refund".into());
                }
            }
            TradeState::Closed | TradeState::Revoked => {
                if let Some(tr) = self.trades.get_mut(&k)
                    && tr.cancel_action.is_none()
                {
                    tr.cancel_action = Some("close".into());
                }
            }
        }
        match self.trades.get(&k) {
            Some(t) => CancelResult::Done(t.clone()),
            None => CancelResult::NotFound,
        }
    }

    /// Refund part or all of a paid trade, idempotent by `out_request_no`.
    pub fn refund(
        &mut self,
        scheme: Scheme,
        out_trade_no: &str,
        out_request_no: &str,
        amount_fen: i64,
        now: u64,
    ) -> RefundResult {
        let now = now + self.clock_offset_ms;
        self.tick_at(now);
        let k = key(scheme, out_trade_no);
        let Some(t) = self.trades.get(&k).cloned() else {
            return RefundResult::NotFound;
        };
        if let Some(previous) = t
            .refunds
            .iter()
            .find(|r| r.out_request_no == out_request_no)
        {
            return if previous.amount_fen == amount_fen {
                RefundResult::Repeat(t.clone(), previous.clone())
            } else {
                RefundResult::Discordant(t)
            };
        }
        if t.state != TradeState::Success {
            return RefundResult::NotPaid(t);
        }
        if amount_fen < 1 || amount_fen > t.amount_fen - t.refunded_fen() {
            return RefundResult::Exceeds(t);
        }
        self.seq += 1;
        let refund = Refund {
            out_request_no: out_request_no.to_owned(),
            amount_fen,
            refund_id: format!("5030{:012}{:012}", now / 1000 % 1_000_000_000_000, self.seq),
        };
        let channel = t
            .fund_bills
            .first()
            .map(|b| b.fund_channel.clone())
            .unwrap_or_default();
        self.give_back(&t.buyer, &channel, amount_fen);
        let Some(tr) = self.trades.get_mut(&k) else {
            return RefundResult::NotFound;
        };
        tr.refunds.push(refund.clone());
        RefundResult::Done(tr.clone(), refund)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt<'a>(scheme: Scheme, no: &'a str, code: &'a str, fen: i64) -> PayAttempt<'a> {
        PayAttempt {
            scheme,
            out_trade_no: no,
            auth_code: code,
            amount_fen: fen,
            subject: "coffee",
            huabei_allowed: true,
            credit_allowed: true,
        }
    }

    #[test]
    fn a_code_pays_once_and_is_refused_the_second_time() {
        let mut l = Ledger::default();
        let code = "281234567890123456";
        assert!(matches!(
            l.pay(&attempt(Scheme::Alipay, "A1", code, 1200), 0),
            PayResult::Paid(_)
        ));
        assert!(matches!(
            l.pay(&attempt(Scheme::Alipay, "A2", code, 1200), 0),
            PayResult::Refused(Refusal::CodeUsed, _)
        ));
        assert!(matches!(
            l.pay(&attempt(Scheme::Alipay, "A1", code, 1200), 0),
            PayResult::Duplicate(_)
        ));
        // A paid number is "already paid" whatever the new request carries.
        assert!(matches!(
            l.pay(&attempt(Scheme::Alipay, "A1", code, 1300), 0),
            PayResult::Duplicate(_)
        ));
        // A number in another state with other details is inconsistent.
        assert!(matches!(
            l.pay(&attempt(Scheme::Alipay, "A2", code, 1300), 0),
            PayResult::Inconsistent(_)
        ));
        assert_eq!(l.buyers[0].balance_fen, 10_000_000 - 1200);
    }

    #[test]
    fn a_huabei_only_buyer_pays_with_pcredit_unless_the_merchant_disabled_it() {
        let mut l = Ledger::default();
        match l.pay(
            &attempt(Scheme::Alipay, "H1", "286010000000000001", 5000),
            0,
        ) {
            PayResult::Paid(t) => assert!(t.huabei()),
            other => panic!("{other:?}"),
        }
        l.merchant.huabei_enabled = false;
        assert!(matches!(
            l.pay(
                &attempt(Scheme::Alipay, "H2", "286010000000000002", 5000),
                0
            ),
            PayResult::Refused(Refusal::HuabeiUnavailable(_), _)
        ));
    }

    #[test]
    fn an_unconfirmed_wechat_order_is_revoked_after_45_seconds() {
        let mut l = Ledger::default();
        assert!(matches!(
            l.pay(
                &attempt(Scheme::Wechat, "W1", "131020000000000001", 100),
                1_000
            ),
            PayResult::Waiting(_)
        ));
        assert_eq!(
            l.query(Scheme::Wechat, "W1", 30_000).unwrap().state,
            TradeState::WaitBuyerPay
        );
        assert_eq!(
            l.query(Scheme::Wechat, "W1", 46_000).unwrap().state,
            TradeState::Revoked
        );
    }

    #[test]
    fn refunds_are_idempotent_by_request_number_and_bounded_by_the_amount() {
        let mut l = Ledger::default();
        l.pay(
            &attempt(Scheme::Alipay, "R1", "281111111111111111", 1000),
            0,
        );
        assert!(matches!(
            l.refund(Scheme::Alipay, "R1", "q1", 400, 0),
            RefundResult::Done(..)
        ));
        assert!(matches!(
            l.refund(Scheme::Alipay, "R1", "q1", 400, 0),
            RefundResult::Repeat(..)
        ));
        assert!(matches!(
            l.refund(Scheme::Alipay, "R1", "q1", 500, 0),
            RefundResult::Discordant(_)
        ));
        assert!(matches!(
            l.refund(Scheme::Alipay, "R1", "q2", 700, 0),
            RefundResult::Exceeds(_)
        ));
        assert!(matches!(
            l.refund(Scheme::Alipay, "R1", "q2", 600, 0),
            RefundResult::Done(..)
        ));
        assert_eq!(l.buyers[0].balance_fen, 10_000_000);
    }

    #[test]
    fn the_ledger_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.json");
        let mut l = Ledger::default();
        l.pay(&attempt(Scheme::Qra, "Q1", "6212345678901234567", 99), 0);
        l.save(&path).unwrap();
        assert_eq!(Ledger::load(&path).unwrap(), l);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("6212345678901234567"),
            "codes are never stored whole"
        );
    }
}
