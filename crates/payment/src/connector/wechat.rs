//! WeChat Pay API v2 payment-code flow (`/pay/micropay`, `/pay/orderquery`,
//! `/secapi/pay/reverse`, `/secapi/pay/refund`), XML signed with the merchant API key.
//! Reverse and refund go over mutual TLS with the merchant certificate (docs/acquirers.md §2.1).

use smartpos_acquirer::Disposition;
use smartpos_acquirer::wechat::{
    self as wire, Api, MerchantConfig, MicropayRequest, OrderRef, RefundRequest, Response,
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

pub struct WechatConnector {
    name: String,
    transport: Transport,
    merchant: MerchantConfig,
}

impl std::fmt::Debug for WechatConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatConnector")
            .field("name", &self.name)
            .field("merchant", &self.merchant)
            .finish_non_exhaustive()
    }
}

impl WechatConnector {
    pub fn from_config(path: &PathConfig, timeouts: &Timeouts) -> Result<Self, ConfigError> {
        let PathKind::Wechat {
            appid,
            mch_id,
            sub_mch_id,
            api_key_file,
            sign_type,
            client_cert_file,
            client_key_file,
        } = &path.kind
        else {
            return Err(ConfigError::Invalid(format!(
                "path {:?} is not a WeChat path",
                path.name
            )));
        };
        let sign_type = crate::config::wechat_sign_type(sign_type).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "sign_type {sign_type:?} must be MD5 or HMAC-SHA256"
            ))
        })?;
        Ok(WechatConnector {
            name: path.name.clone(),
            transport: Transport::new(
                &path.url,
                &super::tls_settings(path, Some((client_cert_file, client_key_file))),
                &timeouts.transport(),
            )?,
            merchant: MerchantConfig {
                appid: appid.clone(),
                mch_id: mch_id.clone(),
                sub_appid: None,
                sub_mch_id: sub_mch_id.clone(),
                // WeChat v2 API keys are 32 characters.
                api_key: read_secret("api_key_file", api_key_file, Some(32))?,
                sign_type,
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
        let api = request.api();
        let path = join_path(&self.transport.endpoint().path, api.path());
        let merchant = &self.merchant;
        let answer = self
            .transport
            .post_with(&path, CONTENT_TYPE, api.needs_client_cert(), move |ip| {
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
        Response::parse(body, &merchant.api_key, merchant.sign_type)
            .map_err(|e| CallError::Untrusted(e.to_string()))
    }
}

impl Answer for Response {
    fn disposition(&self, op: Op) -> Disposition {
        Response::disposition(
            self,
            match op {
                Op::Pay => Api::Micropay,
                Op::Query => Api::OrderQuery,
                Op::Cancel => Api::Reverse,
                Op::Refund => Api::Refund,
            },
        )
    }

    fn explain(&self) -> Explanation {
        if !self.return_ok() {
            return Explanation::new(
                Cause::PlatformIncompatibility,
                "wechat.return_code_fail",
                "微信支付拒绝了请求(通信/签名层),请联系技术支持检查商户号与密钥",
                "WeChat Pay rejected the request (signature or parameters): have support check the merchant id and key",
            )
            .with_raw(self.return_msg());
        }
        match self.err_code() {
            Some(code) => explain::wechat(code, self.err_code_des()),
            None => explain::wechat(self.trade_state().unwrap_or("UNKNOWN"), self.err_code_des()),
        }
    }

    fn paid(&self) -> Paid {
        let paid_fen = self.total_fen().and_then(Result::ok);
        let funding = self
            .bank_type()
            .filter(|b| !b.is_empty())
            .map(|b| {
                vec![FundingUsed {
                    raw: b.to_owned(),
                    channel: FundingChannel::from_wechat_bank_type(b),
                    amount_fen: self.cash_fen().and_then(Result::ok).or(paid_fen),
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

    /// WeChat's reverse does not say whether the reversed order had been paid; the lifecycle
    /// learned that from its own queries.
    fn refunded(&self) -> bool {
        false
    }

    fn detail(&self) -> String {
        format!(
            "trade_state={} err_code={} recall={}",
            self.trade_state().unwrap_or(""),
            self.err_code().unwrap_or(""),
            self.get("recall").unwrap_or("")
        )
    }
}

impl Connector for WechatConnector {
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
                    spbill_create_ip: ip,
                    device_info: Some(order.terminal_id.clone()),
                    // WeChat has one switch: credit cards off. Huabei is Alipay's.
                    no_credit: order.disabled_funding.contains(&FundingChannel::CreditCard),
                    attach: None,
                    goods_tag: None,
                })
            };
            // Validate before connecting so a bad order never opens a connection.
            let first = make("127.0.0.1".into());
            let outcome = pay_outcome(self.call(first, |ip| Some(make(ip.to_string()))).await);
            finish_pay(self, order, outcome).await
        })
    }

    fn query<'a>(&'a self, out_trade_no: &'a str) -> BoxFuture<'a, QueryOutcome> {
        Box::pin(async move {
            let request = wire::Request::order_query(&OrderRef::OutTradeNo(out_trade_no.into()));
            query_outcome(self.call(request, |_| None).await)
        })
    }

    fn cancel<'a>(&'a self, out_trade_no: &'a str) -> BoxFuture<'a, CancelOutcome> {
        Box::pin(async move {
            let request = wire::Request::reverse(&OrderRef::OutTradeNo(out_trade_no.into()));
            cancel_outcome(self.call(request, |_| None).await)
        })
    }

    fn refund<'a>(&'a self, order: &'a RefundOrder) -> BoxFuture<'a, RefundOutcome> {
        Box::pin(async move {
            let request = wire::Request::refund(&RefundRequest {
                order: OrderRef::OutTradeNo(order.out_trade_no.clone()),
                out_refund_no: order.out_request_no.clone(),
                total_fen: order.total_fen,
                refund_fen: order.refund_fen,
                refund_desc: None,
            });
            refund_outcome(self.call(request, |_| None).await)
        })
    }
}
