//! Connectors: one per acquirer protocol, all behind [`Connector`]. A connector turns a
//! payment, query, cancel/reverse or refund into signed wire requests (via
//! `smartpos-acquirer`), sends them over a pinned-CA [`transport::Transport`] and returns a
//! typed outcome. The outcomes keep apart the two failures that must never be confused:
//! "the acquirer never received it" (fail over, rescan) and "it may have been received"
//! (query, then cancel — never pay again with the same code).

pub mod alipay;
pub mod qra;
pub mod transport;
pub mod wechat;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use smartpos_acquirer::{Disposition, FailureCause};

use crate::classify::Scheme;
use crate::config::{ConfigError, PathConfig, PathKind, Timeouts};
use crate::explain::{Cause, Explanation};
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
    /// Connect and handshake without sending anything (diagnostics). A connector without a
    /// network transport reports that it cannot be probed.
    fn probe(&self) -> BoxFuture<'_, Result<std::time::Duration, String>> {
        Box::pin(async { Err("this path cannot be probed".to_owned()) })
    }
}

/// Build the connector for a configured path (reads its keys and CA).
pub fn from_config(
    path: &PathConfig,
    timeouts: &Timeouts,
) -> Result<Arc<dyn Connector>, ConfigError> {
    Ok(match &path.kind {
        PathKind::Alipay { .. } => Arc::new(alipay::AlipayConnector::from_config(path, timeouts)?),
        PathKind::Wechat { .. } => Arc::new(wechat::WechatConnector::from_config(path, timeouts)?),
        PathKind::Qra { .. } => Arc::new(qra::QraConnector::from_config(path, timeouts)?),
    })
}

/// Fallback explanation when the acquirer's code is not in our tables but its disposition
/// says what kind of failure it is.
/// Why a call to an acquirer produced no trustworthy answer: refused locally before sending,
/// lost on the way (see [`TransportError`] for whether it provably never arrived), or answered
/// without a valid signature.
pub(crate) enum CallError {
    Local(String),
    Transport(transport::TransportError),
    Untrusted(String),
}

impl CallError {
    pub(crate) fn detail(&self) -> String {
        match self {
            CallError::Local(s) | CallError::Untrusted(s) => s.clone(),
            CallError::Transport(t) => t.to_string(),
        }
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

pub(crate) fn read_secret(path: &std::path::Path) -> Result<String, ConfigError> {
    let s = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(s.trim().to_owned())
}
