//! UnionPay (and any other code) through a QRA-style aggregator gateway
//! (`unified.trade.micropay/query`, `unified.micropay.reverse`, `unified.trade.refund`),
//! XML signed with MD5 (docs/acquirers.md §3). One `auth_code` field carries every wallet's code.

use smartpos_acquirer::Disposition;
use smartpos_acquirer::qra::{
    self as wire, MerchantConfig, MicropayRequest, RefundRequest, Response, Service,
};

use super::Transport;
use super::{
    Answer, BoxFuture, CallError, CancelOutcome, Connector, Op, Paid, PayOrder, PayOutcome,
    QueryOutcome, RefundOrder, RefundOutcome, cancel_outcome, finish_pay, join_path, pay_outcome,
    query_outcome, read_secret, refund_outcome,
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
            transport: Transport::new(
                &path.url,
                &super::tls_settings(path, None),
                &timeouts.transport(),
            )?,
            merchant: MerchantConfig {
                mch_id: mch_id.clone(),
                key: read_secret("key_file", key_file, None)?,
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
        let path = join_path(&self.transport.endpoint().path, wire::GATEWAY_PATH);
        let merchant = &self.merchant;
        let answer = self
            .transport
            .post_with(&path, CONTENT_TYPE, false, move |ip| {
                let request = match fix_ip(ip) {
                    Some(r) => r.map_err(|e| e.to_string())?,
                    None => request,
                };
                Ok(request.to_xml(merchant))
            })
            .await?;
        if answer.status != 200 {
            return Err(CallError::Untrusted(format!(
                "HTTP status {}",
                answer.status
            )));
        }
        let body = answer
            .text()
            .ok_or_else(|| CallError::Untrusted("the answer is not UTF-8".into()))?;
        Response::parse(body, &merchant.key).map_err(|e| CallError::Untrusted(e.to_string()))
    }
}

impl Answer for Response {
    fn disposition(&self, op: Op) -> Disposition {
        Response::disposition(
            self,
            match op {
                Op::Pay => Service::Micropay,
                Op::Query => Service::Query,
                Op::Cancel => Service::Reverse,
                Op::Refund => Service::Refund,
            },
        )
    }

    fn explain(&self) -> Explanation {
        if !self.status_ok() {
            return Explanation::new(
                Cause::PlatformIncompatibility,
                "qra.status_fail",
                "聚合收单平台拒绝了请求,请联系技术支持检查商户号与密钥",
                "the aggregator rejected the request: have support check the merchant id and key",
            )
            .with_raw(self.get("message"));
        }
        let message = self.get("err_msg").or(self.get("message"));
        match self.err_code() {
            Some(code) => explain::qra(code, message),
            None => explain::qra(self.trade_state().unwrap_or("UNKNOWN"), message),
        }
    }

    fn paid(&self) -> Paid {
        let paid_fen = self.total_fen().and_then(Result::ok);
        // The aggregator names the wallet in trade_type; funding detail is not reported.
        let funding = self
            .trade_type()
            .filter(|t| !t.is_empty())
            .map(|t| {
                vec![FundingUsed {
                    raw: t.to_owned(),
                    channel: self
                        .get("bank_type")
                        .and_then(FundingChannel::from_wechat_bank_type),
                    amount_fen: paid_fen,
                }]
            })
            .unwrap_or_default();
        Paid {
            trade_no: self.transaction_id().map(str::to_owned),
            paid_fen,
            funding,
        }
    }

    fn trade_no(&self) -> Option<String> {
        self.transaction_id().map(str::to_owned)
    }

    fn refund_fen(&self) -> Option<i64> {
        Response::refund_fen(self).and_then(Result::ok)
    }

    /// The reverse answer does not say; [`QraConnector::cancel`] asks the trade first.
    fn refunded(&self) -> bool {
        false
    }

    fn detail(&self) -> String {
        format!(
            "status={} trade_state={} err_code={} recall={}",
            self.get("status").unwrap_or(""),
            self.trade_state().unwrap_or(""),
            self.err_code().unwrap_or(""),
            self.get("recall").unwrap_or("")
        )
    }
}

impl Connector for QraConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn probe(&self) -> BoxFuture<'_, Result<super::ProbeReport, String>> {
        Box::pin(async { Ok(self.transport.probe().await) })
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
                    op_user_id: Some(
                        order
                            .operator_id
                            .clone()
                            .unwrap_or_else(|| self.merchant.mch_id.clone()),
                    ),
                    op_device_id: Some(order.terminal_id.clone()),
                })
            };
            let first = make("127.0.0.1".into());
            let outcome = pay_outcome(self.call(first, |ip| Some(make(ip.to_string()))).await);
            finish_pay(self, order, outcome).await
        })
    }

    fn query<'a>(&'a self, out_trade_no: &'a str) -> BoxFuture<'a, QueryOutcome> {
        Box::pin(async move {
            query_outcome(
                self.call(wire::Request::query(out_trade_no), |_| None)
                    .await,
            )
        })
    }

    fn cancel<'a>(&'a self, out_trade_no: &'a str) -> BoxFuture<'a, CancelOutcome> {
        Box::pin(async move {
            // The reverse answer does not say whether money went back (docs/acquirers.md §3):
            // a paid order is refunded by its reverse, so ask the trade's state first.
            let was_paid = matches!(self.query(out_trade_no).await, QueryOutcome::Paid(_));
            match cancel_outcome(
                self.call(wire::Request::reverse(out_trade_no), |_| None)
                    .await,
            ) {
                CancelOutcome::Done { .. } => CancelOutcome::Done { refunded: was_paid },
                other => other,
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
                // Who ordered the refund; the terminal refunds on the merchant's authority,
                // so the merchant id, as WeChat v2 defaults it.
                op_user_id: self.merchant.mch_id.clone(),
            });
            refund_outcome(self.call(request, |_| None).await)
        })
    }
}
