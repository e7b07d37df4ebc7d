//! UnionPay (and any other code) through a QRA-style aggregator gateway
//! (`unified.trade.micropay/query`, `unified.micropay.reverse`, `unified.trade.refund`),
//! XML signed with MD5 (payments.md §3). One `auth_code` field carries every wallet's code.

use smartpos_acquirer::Disposition;
use smartpos_acquirer::qra::{
    self as wire, MerchantConfig, MicropayRequest, RefundRequest, Response, Service,
};

use super::alipay::no_answer;
use super::transport::{Transport, TransportError};
use super::{
    BoxFuture, CallError, CancelOutcome, Connector, Paid, PayOrder, PayOutcome, QueryOutcome,
    RefundOrder, RefundOutcome, declined, local_request_error, read_secret,
};
use crate::config::{ConfigError, PathConfig, PathKind, Timeouts};
use crate::explain::{self, Cause, Explanation};
use crate::model::{FundingChannel, FundingUsed};

const CONTENT_TYPE: &str = "text/xml; charset=utf-8";

pub struct QraConnector {
    name: String,
    transport: Transport,
    merchant: MerchantConfig,
}

impl std::fmt::Debug for QraConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QraConnector")
            .field("name", &self.name)
            .field("merchant", &self.merchant)
            .finish_non_exhaustive()
    }
}

impl QraConnector {
    pub fn from_config(path: &PathConfig, timeouts: &Timeouts) -> Result<Self, ConfigError> {
        let PathKind::Qra { mch_id, key_file } = &path.kind else {
            return Err(ConfigError::Invalid(format!(
                "path {:?} is not an aggregator path",
                path.name
            )));
        };
        Ok(QraConnector {
            name: path.name.clone(),
            transport: Transport::new(&path.url, &path.ca_file, None, timeouts)?,
            merchant: MerchantConfig {
                mch_id: mch_id.clone(),
                key: read_secret(key_file)?,
                device_id: None,
            },
        })
    }

    async fn call(
        &self,
        request: Result<wire::Request, wire::RequestError>,
        fix_ip: impl FnOnce(std::net::IpAddr) -> Option<Result<wire::Request, wire::RequestError>>
        + Send,
    ) -> Result<Response, CallError> {
        let request = request.map_err(|e| CallError::Local(e.to_string()))?;
        let path = self.transport.endpoint().path.clone();
        let merchant = &self.merchant;
        let answer = self
            .transport
            .post(&path, CONTENT_TYPE, false, move |ip| {
                let request = match fix_ip(ip) {
                    Some(r) => r.map_err(|e| e.to_string())?,
                    None => request,
                };
                Ok(request.to_xml(merchant))
            })
            .await
            .map_err(CallError::Transport)?;
        if answer.status != 200 {
            return Err(CallError::Untrusted(format!(
                "HTTP status {}",
                answer.status
            )));
        }
        Response::parse(&answer.body, &merchant.key)
            .map_err(|e| CallError::Untrusted(e.to_string()))
    }
}

fn explain_response(r: &Response) -> Explanation {
    if !r.status_ok() {
        return Explanation::new(
            Cause::PlatformIncompatibility,
            "qra.status_fail",
            "聚合收单平台拒绝了请求,请联系技术支持检查商户号与密钥",
            "the aggregator rejected the request: have support check the merchant id and key",
        )
        .with_raw(r.get("message"));
    }
    let message = r.get("err_msg").or(r.get("message"));
    match r.err_code() {
        Some(code) => explain::wechat(code, message),
        None => explain::wechat(r.trade_state().unwrap_or("UNKNOWN"), message),
    }
}

fn paid(r: &Response) -> Paid {
    let paid_fen = r.total_fen().and_then(Result::ok);
    // The aggregator names the wallet in trade_type; funding detail is not reported.
    let funding = r
        .trade_type()
        .filter(|t| !t.is_empty())
        .map(|t| {
            vec![FundingUsed {
                raw: t.to_owned(),
                channel: r
                    .get("bank_type")
                    .and_then(FundingChannel::from_wechat_bank_type),
                amount_fen: paid_fen,
            }]
        })
        .unwrap_or_default();
    Paid {
        trade_no: r.transaction_id().map(str::to_owned),
        paid_fen,
        funding,
    }
}

impl Connector for QraConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn probe(&self) -> BoxFuture<'_, Result<std::time::Duration, String>> {
        Box::pin(async { self.transport.probe().await.map_err(|e| e.to_string()) })
    }

    fn pay<'a>(&'a self, order: &'a PayOrder) -> BoxFuture<'a, PayOutcome> {
        Box::pin(async move {
            let make = |ip: String| {
                wire::Request::micropay(&MicropayRequest {
                    out_trade_no: order.out_trade_no.clone(),
                    auth_code: order.code.clone(),
                    body: order.subject.clone(),
                    total_fen: order.amount_fen,
                    mch_create_ip: ip,
                    no_credit: order.disabled_funding.iter().any(|c| c.is_credit()),
                })
            };
            let first = make("127.0.0.1".into());
            match self.call(first, |ip| Some(make(ip.to_string()))).await {
                Err(CallError::Local(e)) => PayOutcome::Declined(local_request_error(e)),
                Err(CallError::Transport(TransportError::NotSent(e))) => PayOutcome::NeverSent(e),
                Err(CallError::Transport(TransportError::Unknown(e))) => {
                    PayOutcome::Unknown(no_answer(&e))
                }
                Err(CallError::Untrusted(e)) => {
                    PayOutcome::Unknown(explain::untrusted_response(&e))
                }
                Ok(r) => match r.disposition(Service::Micropay) {
                    Disposition::Success => PayOutcome::Paid(paid(&r)),
                    Disposition::WaitingForCustomer => PayOutcome::WaitingForCustomer {
                        trade_no: r.transaction_id().map(str::to_owned),
                    },
                    Disposition::QueryNeeded | Disposition::Retry => {
                        PayOutcome::Unknown(explain_response(&r))
                    }
                    d @ Disposition::Failed(_) => {
                        PayOutcome::Declined(declined(explain_response(&r), d))
                    }
                },
            }
        })
    }

    fn query<'a>(&'a self, out_trade_no: &'a str) -> BoxFuture<'a, QueryOutcome> {
        Box::pin(async move {
            match self
                .call(wire::Request::query(out_trade_no), |_| None)
                .await
            {
                Err(e) => QueryOutcome::Unknown(e.detail()),
                Ok(r) => match r.disposition(Service::Query) {
                    Disposition::Success => QueryOutcome::Paid(paid(&r)),
                    Disposition::WaitingForCustomer => QueryOutcome::Waiting,
                    d @ Disposition::Failed(_) => {
                        QueryOutcome::NotPaid(declined(explain_response(&r), d))
                    }
                    _ => QueryOutcome::Unknown(format!(
                        "trade_state={} err_code={}",
                        r.trade_state().unwrap_or(""),
                        r.err_code().unwrap_or("")
                    )),
                },
            }
        })
    }

    fn cancel<'a>(&'a self, out_trade_no: &'a str) -> BoxFuture<'a, CancelOutcome> {
        Box::pin(async move {
            match self
                .call(wire::Request::reverse(out_trade_no), |_| None)
                .await
            {
                Err(e) => CancelOutcome::Retry(e.detail()),
                Ok(r) => match r.disposition(Service::Reverse) {
                    Disposition::Success => CancelOutcome::Done { refunded: false },
                    d @ Disposition::Failed(_) => {
                        CancelOutcome::Refused(declined(explain_response(&r), d))
                    }
                    _ => CancelOutcome::Retry(format!(
                        "recall={} err_code={}",
                        r.get("recall").unwrap_or(""),
                        r.err_code().unwrap_or("")
                    )),
                },
            }
        })
    }

    fn refund<'a>(&'a self, order: &'a RefundOrder) -> BoxFuture<'a, RefundOutcome> {
        Box::pin(async move {
            let request = wire::Request::refund(&RefundRequest {
                out_trade_no: order.out_trade_no.clone(),
                out_refund_no: order.out_request_no.clone(),
                total_fen: order.total_fen,
                refund_fen: order.refund_fen,
            });
            match self.call(request, |_| None).await {
                Err(CallError::Local(e)) => RefundOutcome::Declined(local_request_error(e)),
                Err(e) => RefundOutcome::Unknown(e.detail()),
                Ok(r) => match r.disposition(Service::Refund) {
                    Disposition::Success => RefundOutcome::Refunded {
                        refund_fen: r.refund_fen().and_then(Result::ok),
                    },
                    d @ Disposition::Failed(_) => {
                        RefundOutcome::Declined(declined(explain_response(&r), d))
                    }
                    _ => RefundOutcome::Unknown(format!("err_code={}", r.err_code().unwrap_or(""))),
                },
            }
        })
    }
}
