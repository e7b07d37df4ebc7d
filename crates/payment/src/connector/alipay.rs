//! Alipay OpenAPI barcode pay (`alipay.trade.pay/query/cancel/refund`), RSA2-signed, with
//! every answer's signature verified before it is believed (payments.md §1).

use smartpos_acquirer::alipay::{
    self as wire, AppConfig, Method, PayRequest, RefundRequest, Response, Scene, TradeRef,
};
use smartpos_acquirer::{Disposition, RsaSigner, RsaVerifier};

use super::transport::{Transport, TransportError};
use super::{
    BoxFuture, CallError, CancelOutcome, Connector, Paid, PayOrder, PayOutcome, QueryOutcome,
    RefundOrder, RefundOutcome, declined, local_request_error,
};
use crate::config::{ConfigError, PathConfig, PathKind, Timeouts};
use crate::explain::{self, Cause, Explanation};
use crate::model::{FundingChannel, FundingUsed, yuan_to_fen};

pub struct AlipayConnector {
    name: String,
    transport: Transport,
    app: AppConfig,
    signer: RsaSigner,
    verifier: RsaVerifier,
    store_id: Option<String>,
}

impl std::fmt::Debug for AlipayConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlipayConnector")
            .field("name", &self.name)
            .field("app_id", &self.app.app_id)
            .finish_non_exhaustive()
    }
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

impl AlipayConnector {
    pub fn from_config(path: &PathConfig, timeouts: &Timeouts) -> Result<Self, ConfigError> {
        let PathKind::Alipay {
            app_id,
            private_key_file,
            alipay_public_key_file,
            store_id,
            ..
        } = &path.kind
        else {
            return Err(ConfigError::Invalid(format!(
                "path {:?} is not an Alipay path",
                path.name
            )));
        };
        let signer = RsaSigner::from_file(private_key_file)
            .map_err(|e| ConfigError::Invalid(format!("{}: {e}", private_key_file.display())))?;
        let verifier = RsaVerifier::from_file(alipay_public_key_file).map_err(|e| {
            ConfigError::Invalid(format!("{}: {e}", alipay_public_key_file.display()))
        })?;
        Ok(AlipayConnector {
            name: path.name.clone(),
            transport: Transport::new(&path.url, &path.ca_file, None, timeouts)?,
            app: AppConfig {
                app_id: app_id.clone(),
                app_auth_token: None,
            },
            signer,
            verifier,
            store_id: store_id.clone(),
        })
    }

    /// Sign, send and verify one call. `Err` carries the transport's verdict, or an
    /// "unknown" for an answer that could not be trusted.
    async fn call(&self, request: wire::Request) -> Result<Response, CallError> {
        let method = request.method();
        let signed = request
            .sign(&self.signer)
            .map_err(|e| CallError::Local(e.to_string()))?;
        let path = format!(
            "{}?{}",
            self.transport.endpoint().path,
            signed.query_string()
        );
        let body = signed.form_body();
        let answer = self
            .transport
            .post(&path, wire::CONTENT_TYPE, false, move |_| Ok(body))
            .await
            .map_err(CallError::Transport)?;
        if answer.status != 200 {
            return Err(CallError::Untrusted(format!(
                "HTTP status {}",
                answer.status
            )));
        }
        wire::response::parse_and_verify(&answer.body, method, &self.verifier)
            .map_err(|e| CallError::Untrusted(e.to_string()))
    }
}

fn explain_response(r: &Response) -> Explanation {
    let message = r.sub_msg.as_deref().or(Some(r.msg.as_str()));
    explain::alipay(&r.code, r.sub_code.as_deref(), message)
}

fn paid(r: &Response) -> Paid {
    Paid {
        trade_no: r.trade_no.clone(),
        paid_fen: r.total_amount.as_deref().and_then(yuan_to_fen),
        funding: r
            .fund_bill_list
            .iter()
            .map(|b| FundingUsed {
                raw: b.fund_channel.clone(),
                channel: FundingChannel::from_alipay_fund_channel(&b.fund_channel),
                amount_fen: yuan_to_fen(&b.amount),
            })
            .collect(),
    }
}

/// Alipay channel codes to put in `disable_pay_channels`.
pub fn disable_pay_channels(disabled: &[FundingChannel]) -> Vec<String> {
    disabled
        .iter()
        .flat_map(|c| c.alipay_channels().iter().map(|s| (*s).to_owned()))
        .collect()
}

impl Connector for AlipayConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn probe(&self) -> BoxFuture<'_, Result<std::time::Duration, String>> {
        Box::pin(async { self.transport.probe().await.map_err(|e| e.to_string()) })
    }

    fn pay<'a>(&'a self, order: &'a PayOrder) -> BoxFuture<'a, PayOutcome> {
        Box::pin(async move {
            let request = PayRequest {
                out_trade_no: order.out_trade_no.clone(),
                auth_code: order.code.clone(),
                subject: order.subject.clone(),
                total_fen: order.amount_fen,
                scene: Scene::default(),
                disable_pay_channels: disable_pay_channels(&order.disabled_funding),
                timeout_express: None,
                store_id: self.store_id.clone(),
                terminal_id: Some(order.terminal_id.clone()),
                operator_id: order.operator_id.clone(),
                query_fund_bill_list: true,
            };
            let request = match wire::Request::pay(&self.app, &request, &wire::timestamp_now()) {
                Ok(r) => r,
                Err(e) => return PayOutcome::Declined(local_request_error(e)),
            };
            match self.call(request).await {
                Err(CallError::Local(e)) => PayOutcome::Declined(local_request_error(e)),
                Err(CallError::Transport(TransportError::NotSent(e))) => PayOutcome::NeverSent(e),
                Err(CallError::Transport(TransportError::Unknown(e))) => {
                    PayOutcome::Unknown(no_answer(&e))
                }
                Err(CallError::Untrusted(e)) => {
                    PayOutcome::Unknown(explain::untrusted_response(&e))
                }
                Ok(r) => match r.disposition(Method::TradePay) {
                    Disposition::Success => PayOutcome::Paid(paid(&r)),
                    Disposition::WaitingForCustomer => PayOutcome::WaitingForCustomer {
                        trade_no: r.trade_no.clone(),
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
            let trade = TradeRef::OutTradeNo(out_trade_no.to_owned());
            let request = match wire::Request::query(&self.app, &trade, &wire::timestamp_now()) {
                Ok(r) => r,
                Err(e) => return QueryOutcome::Unknown(e.to_string()),
            };
            match self.call(request).await {
                Err(e) => QueryOutcome::Unknown(e.detail()),
                Ok(r) => match r.disposition(Method::TradeQuery) {
                    Disposition::Success => QueryOutcome::Paid(paid(&r)),
                    Disposition::WaitingForCustomer => QueryOutcome::Waiting,
                    Disposition::QueryNeeded | Disposition::Retry => {
                        QueryOutcome::Unknown(format!("{} {}", r.code, r.msg.trim()))
                    }
                    d @ Disposition::Failed(_) => {
                        QueryOutcome::NotPaid(declined(explain_response(&r), d))
                    }
                },
            }
        })
    }

    fn cancel<'a>(&'a self, out_trade_no: &'a str) -> BoxFuture<'a, CancelOutcome> {
        Box::pin(async move {
            let trade = TradeRef::OutTradeNo(out_trade_no.to_owned());
            let request = match wire::Request::cancel(&self.app, &trade, &wire::timestamp_now()) {
                Ok(r) => r,
                Err(e) => return CancelOutcome::Retry(e.to_string()),
            };
            match self.call(request).await {
                Err(e) => CancelOutcome::Retry(e.detail()),
                Ok(r) => match r.disposition(Method::TradeCancel) {
                    Disposition::Success => CancelOutcome::Done {
                        refunded: r.action.as_deref() == Some("refund"),
                    },
                    Disposition::Retry
                    | Disposition::QueryNeeded
                    | Disposition::WaitingForCustomer => CancelOutcome::Retry(format!(
                        "{} {} retry_flag={}",
                        r.code,
                        r.sub_code.as_deref().unwrap_or(""),
                        r.retry_flag.as_deref().unwrap_or("")
                    )),
                    d @ Disposition::Failed(_) => {
                        CancelOutcome::Refused(declined(explain_response(&r), d))
                    }
                },
            }
        })
    }

    fn refund<'a>(&'a self, order: &'a RefundOrder) -> BoxFuture<'a, RefundOutcome> {
        Box::pin(async move {
            let request = RefundRequest {
                trade: TradeRef::OutTradeNo(order.out_trade_no.clone()),
                refund_fen: order.refund_fen,
                out_request_no: order.out_request_no.clone(),
                refund_reason: None,
            };
            let request = match wire::Request::refund(&self.app, &request, &wire::timestamp_now()) {
                Ok(r) => r,
                Err(e) => return RefundOutcome::Declined(local_request_error(e)),
            };
            match self.call(request).await {
                Err(CallError::Local(e)) => RefundOutcome::Declined(local_request_error(e)),
                Err(e) => RefundOutcome::Unknown(e.detail()),
                Ok(r) => match r.disposition(Method::TradeRefund) {
                    Disposition::Success => RefundOutcome::Refunded {
                        refund_fen: r.refund_fee.as_deref().and_then(yuan_to_fen),
                    },
                    d @ Disposition::Failed(_) => {
                        RefundOutcome::Declined(declined(explain_response(&r), d))
                    }
                    _ => RefundOutcome::Unknown(format!(
                        "{} {}",
                        r.code,
                        r.sub_code.as_deref().unwrap_or("")
                    )),
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switching_off_credit_names_alipay_channels() {
        let v = disable_pay_channels(&[FundingChannel::Huabei, FundingChannel::HuabeiInstalments]);
        assert_eq!(v, ["pcredit", "pcreditpayInstallment"]);
    }
}
