//! Connectors: one per acquirer protocol, all behind [`Connector`]. A connector turns a
//! payment, query, cancel/reverse or refund into signed wire requests (via
//! `smartpos-acquirer`), sends them over a pinned-CA [`Transport`] and returns a
//! typed outcome. The outcomes keep apart the two failures that must never be confused:
//! "the acquirer never received it" (fail over, rescan) and "it may have been received"
//! (query, then cancel — never pay again with the same code).

pub mod alipay;
pub mod qra;
pub mod wechat;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use smartpos_acquirer::{Disposition, FailureCause};
pub use smartpos_transport::{ErrorClass, ProbeReport, TlsSettings, Transport, TransportError};

use crate::classify::Scheme;
use crate::config::{ConfigError, PathConfig, PathKind, Timeouts};
use crate::explain::{self, Cause, Explanation};
use crate::model::{FundingChannel, FundingUsed};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A payment to send.
#[derive(Debug, Clone)]
pub struct PayOrder {
    pub out_trade_no: String,
    /// The payment code (bearer token; `Debug` of this struct is never logged).
    pub code: String,
    pub scheme: Scheme,
    pub amount_fen: i64,
    pub subject: String,
    pub disabled_funding: Vec<FundingChannel>,
    pub terminal_id: String,
    pub operator_id: Option<String>,
    /// The merchant configuration's version, named when its switches explain a refusal.
    pub config_version: u64,
}

/// A refund to send.
#[derive(Debug, Clone)]
pub struct RefundOrder {
    pub out_trade_no: String,
    pub out_request_no: String,
    pub total_fen: i64,
    pub refund_fen: i64,
}

/// What a paid trade looked like.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Paid {
    pub trade_no: Option<String>,
    pub paid_fen: Option<i64>,
    pub funding: Vec<FundingUsed>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PayOutcome {
    Paid(Paid),
    /// The customer has to confirm on the phone.
    WaitingForCustomer {
        trade_no: Option<String>,
    },
    /// A definite refusal; nothing was charged.
    Declined(Explanation),
    /// It may have gone through: query, then cancel.
    Unknown(Explanation),
    /// Provably never received: another path may be tried, the code is still unused.
    NeverSent(String),
    /// The order number was already taken at the acquirer by another sale (a terminal whose
    /// journal was recreated hands out old numbers again), and the query did not show this
    /// sale's payment under it. This request was refused: nothing was charged, and the sale
    /// may go again under a fresh order number. Never cancel the number: the trade behind it
    /// is someone else's.
    OrderNumberTaken(Explanation),
}

#[derive(Debug, Clone, PartialEq)]
pub enum QueryOutcome {
    Paid(Paid),
    Waiting,
    /// Not paid, and will not be (closed, revoked, failed, not found).
    NotPaid(Explanation),
    /// No usable answer; ask again later.
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// Closed, or reversed with the money refunded; either way none is kept.
    Done { refunded: bool },
    /// The acquirer says call again (`retry_flag=Y`, `recall=Y`), or no usable answer.
    Retry(String),
    /// The acquirer will not cancel (too late, already settled): query to learn the truth.
    Refused(Explanation),
}

#[derive(Debug, Clone, PartialEq)]
pub enum RefundOutcome {
    Refunded {
        refund_fen: Option<i64>,
    },
    Declined(Explanation),
    /// Send again with the same out_request_no.
    Unknown(String),
}

/// One acquirer path.
pub trait Connector: Send + Sync {
    /// The configured path name.
    fn name(&self) -> &str;
    fn pay<'a>(&'a self, order: &'a PayOrder) -> BoxFuture<'a, PayOutcome>;
    fn query<'a>(&'a self, out_trade_no: &'a str) -> BoxFuture<'a, QueryOutcome>;
    /// Alipay `trade.cancel`, WeChat and QRA `reverse`.
    fn cancel<'a>(&'a self, out_trade_no: &'a str) -> BoxFuture<'a, CancelOutcome>;
    fn refund<'a>(&'a self, order: &'a RefundOrder) -> BoxFuture<'a, RefundOutcome>;
    /// One timed probe of the path's endpoint (DNS, connect, TLS handshake against the
    /// pinned CA, a `HEAD` of the base URL: no payment call). A connector without a network
    /// transport reports that it cannot be probed.
    fn probe(&self) -> BoxFuture<'_, Result<ProbeReport, String>> {
        Box::pin(async { Err("this path cannot be probed".to_owned()) })
    }
}

/// The TLS settings of a path: its CA file as the only trust anchor, and the client
/// certificate when the path has one.
pub(crate) fn tls_settings(
    path: &PathConfig,
    client_cert: Option<(&std::path::Path, &std::path::Path)>,
) -> TlsSettings {
    let settings = TlsSettings::new(&path.ca_file);
    match client_cert {
        Some((cert, key)) => settings.with_client_cert(cert, key),
        None => settings,
    }
}

/// Build the connector for a configured path (reads its keys and CA).
pub fn from_config(
    path: &PathConfig,
    timeouts: &Timeouts,
) -> Result<Arc<dyn Connector>, ConfigError> {
    let built: Result<Arc<dyn Connector>, ConfigError> = match &path.kind {
        PathKind::Alipay { .. } => alipay::AlipayConnector::from_config(path, timeouts)
            .map(|c| Arc::new(c) as Arc<dyn Connector>),
        PathKind::Wechat { .. } => wechat::WechatConnector::from_config(path, timeouts)
            .map(|c| Arc::new(c) as Arc<dyn Connector>),
        PathKind::Qra { .. } => qra::QraConnector::from_config(path, timeouts)
            .map(|c| Arc::new(c) as Arc<dyn Connector>),
    };
    built.map_err(|e| e.in_path(&path.name))
}

/// Why a call to an acquirer produced no trustworthy answer: refused locally before sending,
/// lost on the way (see [`TransportError`] for whether it provably never arrived), or answered
/// without a valid signature.
pub(crate) enum CallError {
    Local(String),
    Transport(TransportError),
    Untrusted(String),
}

impl From<smartpos_transport::PostError<String>> for CallError {
    fn from(e: smartpos_transport::PostError<String>) -> CallError {
        match e {
            // The request could not be built for this connection: nothing left.
            smartpos_transport::PostError::Build(e) => CallError::Local(e),
            smartpos_transport::PostError::Transport(t) => CallError::Transport(t),
        }
    }
}

impl CallError {
    pub(crate) fn detail(&self) -> String {
        match self {
            CallError::Local(s) | CallError::Untrusted(s) => s.clone(),
            CallError::Transport(t) => t.to_string(),
        }
    }
}

/// Which of the four calls an answer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Pay,
    Query,
    Cancel,
    Refund,
}

/// What the outcome mapping needs from a verified answer, whatever the protocol. Each
/// connector implements it once for its response type; [`pay_outcome`], [`query_outcome`],
/// [`cancel_outcome`] and [`refund_outcome`] are then the only places where "never sent",
/// "unknown", "paid" and "declined" are decided.
pub(crate) trait Answer {
    /// What the terminal does next, for the call `op` this answered.
    fn disposition(&self, op: Op) -> Disposition;
    /// The cashier-facing explanation of a failure (the code tables' row, or the raw code).
    fn explain(&self) -> Explanation;
    /// The trade as paid (trade number, amount, funding), from a pay or query answer.
    fn paid(&self) -> Paid;
    /// The acquirer's trade number, when the answer carries one.
    fn trade_no(&self) -> Option<String>;
    /// The refunded amount of a refund answer.
    fn refund_fen(&self) -> Option<i64>;
    /// A cancel/reverse answer says the paid amount went back to the customer.
    fn refunded(&self) -> bool;
    /// The raw codes, for logs and for "ask again" outcomes.
    fn detail(&self) -> String;
}

/// How a lost or unverifiable answer is explained while the outcome is being resolved.
pub(crate) fn no_answer(detail: &str) -> Explanation {
    Explanation::new(
        Cause::Network,
        "net.no_answer",
        "网络超时,正在查询付款结果,请勿重复收款",
        "no answer in time; querying the outcome: do not charge again",
    )
    .with_raw(Some(detail))
}

pub(crate) fn pay_outcome<A: Answer>(answer: Result<A, CallError>) -> PayOutcome {
    let r = match answer {
        Err(CallError::Local(e)) => return PayOutcome::Declined(local_request_error(e)),
        Err(CallError::Transport(e)) if !e.sent() => {
            return PayOutcome::NeverSent(e.to_string());
        }
        Err(CallError::Transport(e)) => {
            return PayOutcome::Unknown(no_answer(&e.to_string()));
        }
        Err(CallError::Untrusted(e)) => {
            return PayOutcome::Unknown(explain::untrusted_response(&e));
        }
        Ok(r) => r,
    };
    match r.disposition(Op::Pay) {
        Disposition::Success => PayOutcome::Paid(r.paid()),
        Disposition::WaitingForCustomer => PayOutcome::WaitingForCustomer {
            trade_no: r.trade_no(),
        },
        Disposition::QueryNeeded | Disposition::Retry => PayOutcome::Unknown(r.explain()),
        // Provisional: [`check_taken_number`] queries before anything is believed.
        Disposition::OrderNumberTaken => PayOutcome::OrderNumberTaken(r.explain()),
        d @ Disposition::Failed(_) => PayOutcome::Declined(declined(r.explain(), d)),
    }
}

/// The acquirer answered a payment with "this order number is already paid / used"
/// (docs/acquirers.md §1.8 `ACQ.TRADE_HAS_SUCCESS`, §2.1 `ORDERPAID`, `OUT_TRADE_NO_USED`).
/// That answer is no evidence that this sale was paid: the terminal sends each order number
/// once, so the trade behind it is either this very request delivered twice, or another
/// sale's (a journal recreated on the same day hands out old numbers again). Query it: only a
/// paid trade with a trade number and exactly this sale's amount is believed; anything else
/// is a collision, and this sale was never charged.
pub(crate) async fn check_taken_number<C: Connector + ?Sized>(
    connector: &C,
    order: &PayOrder,
    outcome: PayOutcome,
) -> PayOutcome {
    let PayOutcome::OrderNumberTaken(said) = outcome else {
        return outcome;
    };
    let found = match connector.query(&order.out_trade_no).await {
        QueryOutcome::Paid(p)
            if p.paid_fen == Some(order.amount_fen)
                && p.trade_no.as_deref().is_some_and(|t| !t.is_empty()) =>
        {
            return PayOutcome::Paid(p);
        }
        QueryOutcome::Paid(p) => format!(
            "the number is paid as trade {:?} for {:?} fen, not this sale's {} fen",
            p.trade_no.unwrap_or_default(),
            p.paid_fen,
            order.amount_fen
        ),
        QueryOutcome::Waiting => "the number belongs to an unfinished trade".to_owned(),
        QueryOutcome::NotPaid(e) => format!("the number's trade is not paid ({})", e.code),
        QueryOutcome::Unknown(why) => format!("the query gave no answer ({why})"),
    };
    PayOutcome::OrderNumberTaken(explain::order_number_taken(&said, &found))
}

/// Everything a connector does after the payment's answer: settle an "order number taken"
/// by query ([`check_taken_number`]), and name the merchant's configuration when its own
/// funding switches explain a refusal ([`blame_switched_off`]).
pub(crate) async fn finish_pay<C: Connector + ?Sized>(
    connector: &C,
    order: &PayOrder,
    outcome: PayOutcome,
) -> PayOutcome {
    let outcome = check_taken_number(connector, order, outcome).await;
    blame_switched_off(order, outcome)
}

/// Refusals that mean "nothing the customer has may be used here": Alipay
/// `ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE` (docs/acquirers.md §1.8) and WeChat/QRA
/// `NOTSUPORTCARD` (docs/acquirers.md §2.1), with the channels of ours that can cause each.
fn switched_off_channels(code: &str, disabled: &[FundingChannel]) -> Vec<FundingChannel> {
    let explains = |c: &FundingChannel| match code {
        // Any channel we switched off may have been the customer's only one.
        "ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE" => true,
        // WeChat's one switch, `limit_pay=no_credit`, bars credit cards (QRA: all credit).
        "NOTSUPORTCARD" => c.is_credit(),
        _ => false,
    };
    disabled.iter().copied().filter(explains).collect()
}

/// A refusal that this terminal's own switches explain is the merchant's configuration
/// (cause 8), not the customer's doing: say which channel, which configuration version, and
/// what to ask the service provider.
fn blame_switched_off(order: &PayOrder, outcome: PayOutcome) -> PayOutcome {
    match outcome {
        PayOutcome::Declined(e) => {
            let channels = switched_off_channels(&e.code, &order.disabled_funding);
            if channels.is_empty() {
                PayOutcome::Declined(e)
            } else {
                PayOutcome::Declined(explain::switched_off_by_config(
                    e,
                    &channels,
                    order.config_version,
                ))
            }
        }
        other => other,
    }
}

pub(crate) fn query_outcome<A: Answer>(answer: Result<A, CallError>) -> QueryOutcome {
    let r = match answer {
        Err(e) => return QueryOutcome::Unknown(e.detail()),
        Ok(r) => r,
    };
    match r.disposition(Op::Query) {
        Disposition::Success => QueryOutcome::Paid(r.paid()),
        Disposition::WaitingForCustomer => QueryOutcome::Waiting,
        d @ Disposition::Failed(_) => QueryOutcome::NotPaid(declined(r.explain(), d)),
        Disposition::QueryNeeded | Disposition::Retry | Disposition::OrderNumberTaken => {
            QueryOutcome::Unknown(r.detail())
        }
    }
}

pub(crate) fn cancel_outcome<A: Answer>(answer: Result<A, CallError>) -> CancelOutcome {
    let r = match answer {
        Err(e) => return CancelOutcome::Retry(e.detail()),
        Ok(r) => r,
    };
    match r.disposition(Op::Cancel) {
        Disposition::Success => CancelOutcome::Done {
            refunded: r.refunded(),
        },
        d @ Disposition::Failed(_) => CancelOutcome::Refused(declined(r.explain(), d)),
        Disposition::Retry
        | Disposition::QueryNeeded
        | Disposition::WaitingForCustomer
        | Disposition::OrderNumberTaken => CancelOutcome::Retry(r.detail()),
    }
}

pub(crate) fn refund_outcome<A: Answer>(answer: Result<A, CallError>) -> RefundOutcome {
    let r = match answer {
        Err(CallError::Local(e)) => return RefundOutcome::Declined(local_request_error(e)),
        Err(e) => return RefundOutcome::Unknown(e.detail()),
        Ok(r) => r,
    };
    match r.disposition(Op::Refund) {
        Disposition::Success => RefundOutcome::Refunded {
            refund_fen: r.refund_fen(),
        },
        d @ Disposition::Failed(_) => RefundOutcome::Declined(declined(r.explain(), d)),
        _ => RefundOutcome::Unknown(r.detail()),
    }
}

pub(crate) fn cause_of(cause: FailureCause) -> Cause {
    match cause {
        FailureCause::PaymentCode => Cause::UserError,
        FailureCause::BuyerFunds => Cause::UserError,
        FailureCause::Risk => Cause::RiskControl,
        FailureCause::MerchantConfig => Cause::MerchantConfig,
        FailureCause::OrderState => Cause::Guidance,
        FailureCause::Request => Cause::PlatformIncompatibility,
        FailureCause::Acquirer => Cause::Guidance,
    }
}

/// Explanation for a definite failure: the table's when it knows the code, else the raw code
/// with the cause the acquirer crate inferred.
pub(crate) fn declined(known: Explanation, disposition: Disposition) -> Explanation {
    match disposition {
        Disposition::Failed(c) if !known.known => Explanation {
            cause: cause_of(c),
            ..known
        },
        _ => known,
    }
}

/// A request that could not even be built is our bug or our configuration; it never left.
pub(crate) fn local_request_error(detail: impl std::fmt::Display) -> Explanation {
    Explanation::new(
        Cause::Software,
        "local.request_invalid",
        "终端无法生成付款请求,请联系技术支持",
        "the terminal could not build the request: call support",
    )
    .with_raw(Some(&detail.to_string()))
}

/// A shared secret kept in a file (WeChat API key, QRA key): one line of printable ASCII
/// without spaces, of exactly `len` characters when the acquirer fixes it.
pub(crate) fn read_secret(
    key: &'static str,
    path: &std::path::Path,
    len: Option<usize>,
) -> Result<String, ConfigError> {
    let s = std::fs::read_to_string(path).map_err(|e| ConfigError::file(key, path, e))?;
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::file(
            key,
            path,
            "does not hold a key (one line of letters and digits)",
        ));
    }
    if let Some(len) = len
        && s.len() != len
    {
        return Err(ConfigError::file(
            key,
            path,
            format!("holds {} characters, not {len}", s.len()),
        ));
    }
    Ok(s.to_owned())
}

/// The documented API path appended to a path's base URL (which may carry a proxy prefix).
pub(crate) fn join_path(base: &str, api: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), api)
}

/// Read and check every file the configuration names — each path's CA, keys and client
/// certificate — exactly as the connectors will use them. The daemon calls this for
/// `--check-config` and before it opens the journal, so a bad file is a configuration
/// error naming its key and path, never a journal error.
pub fn check_files(config: &crate::config::Config) -> Result<(), ConfigError> {
    for path in &config.path {
        from_config(path, &config.timeouts)?;
    }
    Ok(())
}
