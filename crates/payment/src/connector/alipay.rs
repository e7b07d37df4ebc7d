//! Alipay OpenAPI barcode pay (`alipay.trade.pay/query/cancel/refund`), RSA2-signed, with
//! every answer's signature verified before it is believed (docs/acquirers.md §1).

use smartpos_acquirer::alipay::{
    self as wire, AppConfig, Method, PayRequest, RefundRequest, Response, Scene, TradeRef,
};
use smartpos_acquirer::{Disposition, KeyError, RsaSigner, RsaVerifier};

use super::Transport;
use super::{
    Answer, BoxFuture, CallError, CancelOutcome, Connector, Op, Paid, PayOrder, PayOutcome,
    QueryOutcome, RefundOrder, RefundOutcome, cancel_outcome, finish_pay, join_path,
    local_request_error, pay_outcome, query_outcome, refund_outcome,
};
use crate::config::{ConfigError, PathConfig, PathKind, Timeouts};
use crate::explain::{self, Explanation};
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
        // The error names the file already; say the OS's reason once.
        let problem = |e: KeyError| match e {
            KeyError::Io { source, .. } => source.to_string(),
            e => e.to_string(),
        };
        let signer = RsaSigner::from_file(private_key_file)
            .map_err(|e| ConfigError::file("private_key_file", private_key_file, problem(e)))?;
        let verifier = RsaVerifier::from_file(alipay_public_key_file).map_err(|e| {
            ConfigError::file("alipay_public_key_file", alipay_public_key_file, problem(e))
        })?;
        Ok(AlipayConnector {
            name: path.name.clone(),
            transport: Transport::new(
                &path.url,
                &super::tls_settings(path, None),
                &timeouts.transport(),
            )?,
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
            join_path(&self.transport.endpoint().path, wire::GATEWAY_PATH),
            signed.query_string()
        );
        let body = signed.form_body();
        let answer = self
            .transport
            .post_with(&path, wire::CONTENT_TYPE, false, move |_| {
                Ok::<_, String>(body)
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
        wire::response::parse_and_verify(body, method, &self.verifier)
            .map_err(|e| CallError::Untrusted(e.to_string()))
    }
}

impl Answer for Response {
    fn disposition(&self, op: Op) -> Disposition {
        Response::disposition(
            self,
            match op {
                Op::Pay => Method::TradePay,
                Op::Query => Method::TradeQuery,
                Op::Cancel => Method::TradeCancel,
                Op::Refund => Method::TradeRefund,
            },
        )
    }

    fn explain(&self) -> Explanation {
        let message = self.sub_msg.as_deref().or(Some(self.msg.as_str()));
        explain::alipay(&self.code, self.sub_code.as_deref(), message)
    }

    fn paid(&self) -> Paid {
        Paid {
            trade_no: self.trade_no.clone(),
            paid_fen: self.total_amount.as_deref().and_then(yuan_to_fen),
            funding: self
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

    fn trade_no(&self) -> Option<String> {
        self.trade_no.clone()
    }

    fn refund_fen(&self) -> Option<i64> {
        self.refund_fee.as_deref().and_then(yuan_to_fen)
    }

    /// `action=refund`: the cancelled trade had been paid and was refunded
    /// (docs/acquirers.md §1.6).
    fn refunded(&self) -> bool {
        self.action.as_deref() == Some("refund")
    }

    fn detail(&self) -> String {
        format!(
            "{} {} {} retry_flag={}",
            self.code,
            self.msg.trim(),
            self.sub_code.as_deref().unwrap_or(""),
            self.retry_flag.as_deref().unwrap_or("")
        )
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

    fn probe(&self) -> BoxFuture<'_, Result<super::ProbeReport, String>> {
        Box::pin(async { Ok(self.transport.probe().await) })
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
            let outcome = pay_outcome(self.call(request).await);
            finish_pay(self, order, outcome).await
        })
    }

    fn query<'a>(&'a self, out_trade_no: &'a str) -> BoxFuture<'a, QueryOutcome> {
        Box::pin(async move {
            let trade = TradeRef::OutTradeNo(out_trade_no.to_owned());
            let request = match wire::Request::query(&self.app, &trade, &wire::timestamp_now()) {
                Ok(r) => r,
                Err(e) => return QueryOutcome::Unknown(e.to_string()),
            };
            query_outcome(self.call(request).await)
        })
    }

    fn cancel<'a>(&'a self, out_trade_no: &'a str) -> BoxFuture<'a, CancelOutcome> {
        Box::pin(async move {
            let trade = TradeRef::OutTradeNo(out_trade_no.to_owned());
            let request = match wire::Request::cancel(&self.app, &trade, &wire::timestamp_now()) {
                Ok(r) => r,
                Err(e) => return CancelOutcome::Retry(e.to_string()),
            };
            cancel_outcome(self.call(request).await)
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
            refund_outcome(self.call(request).await)
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
