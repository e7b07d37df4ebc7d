//! WeChat Pay API v2 payment-code flow (`/pay/micropay`, `/pay/orderquery`,
//! `/secapi/pay/reverse`, `/secapi/pay/refund`), XML signed with the merchant API key.
//! Reverse and refund go over mutual TLS with the merchant certificate (payments.md §2.1).

use smartpos_acquirer::Disposition;
use smartpos_acquirer::wechat::{
    self as wire, Api, MerchantConfig, MicropayRequest, OrderRef, RefundRequest, Response, SignType,
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
        let sign_type = match sign_type.as_str() {
            "md5" => SignType::Md5,
            _ => SignType::HmacSha256,
        };
        Ok(WechatConnector {
            name: path.name.clone(),
            transport: Transport::new(
                &path.url,
                &path.ca_file,
                Some((client_cert_file, client_key_file)),
                timeouts,
            )?,
            merchant: MerchantConfig {
                appid: appid.clone(),
                mch_id: mch_id.clone(),
                sub_appid: None,
                sub_mch_id: sub_mch_id.clone(),
                api_key: read_secret(api_key_file)?,
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
            .post(&path, CONTENT_TYPE, api.needs_client_cert(), move |ip| {
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
        Response::parse(&answer.body, &merchant.api_key, merchant.sign_type)
            .map_err(|e| CallError::Untrusted(e.to_string()))
    }
}

/// The configured URL may carry a prefix (a proxy path); the API path is appended to it.
pub(crate) fn join_path(base: &str, api: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), api)
}

fn explain_response(r: &Response) -> Explanation {
    if !r.return_ok() {
        return Explanation::new(
            Cause::PlatformIncompatibility,
            "wechat.return_code_fail",
            "微信支付拒绝了请求(通信/签名层),请联系技术支持检查商户号与密钥",
            "WeChat Pay rejected the request (signature or parameters): have support check the merchant id and key",
        )
        .with_raw(r.return_msg());
    }
    match r.err_code() {
        Some(code) => explain::wechat(code, r.err_code_des()),
        None => explain::wechat(r.trade_state().unwrap_or("UNKNOWN"), r.err_code_des()),
    }
}

fn paid(r: &Response) -> Paid {
    let paid_fen = r.total_fen().and_then(Result::ok);
    let funding = r
        .bank_type()
        .filter(|b| !b.is_empty())
        .map(|b| {
            vec![FundingUsed {
                raw: b.to_owned(),
                channel: FundingChannel::from_wechat_bank_type(b),
                amount_fen: r.cash_fen().and_then(Result::ok).or(paid_fen),
            }]
        })
        .unwrap_or_default();
    Paid {
        trade_no: r.transaction_id().map(str::to_owned),
        paid_fen,
        funding,
    }
}

impl Connector for WechatConnector {
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
            let result = self.call(first, |ip| Some(make(ip.to_string()))).await;
            match result {
                Err(CallError::Local(e)) => PayOutcome::Declined(local_request_error(e)),
                Err(CallError::Transport(TransportError::NotSent(e))) => PayOutcome::NeverSent(e),
                Err(CallError::Transport(TransportError::Unknown(e))) => {
                    PayOutcome::Unknown(no_answer(&e))
                }
                Err(CallError::Untrusted(e)) => {
                    PayOutcome::Unknown(explain::untrusted_response(&e))
                }
                Ok(r) => match r.disposition(Api::Micropay) {
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
            let request = wire::Request::order_query(&OrderRef::OutTradeNo(out_trade_no.into()));
            match self.call(request, |_| None).await {
                Err(e) => QueryOutcome::Unknown(e.detail()),
                Ok(r) => match r.disposition(Api::OrderQuery) {
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
            let request = wire::Request::reverse(&OrderRef::OutTradeNo(out_trade_no.into()));
            match self.call(request, |_| None).await {
                Err(e) => CancelOutcome::Retry(e.detail()),
                Ok(r) => match r.disposition(Api::Reverse) {
                    // WeChat does not say whether a reversed order had been paid; the
                    // lifecycle learned that from its own queries.
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
                order: OrderRef::OutTradeNo(order.out_trade_no.clone()),
                out_refund_no: order.out_request_no.clone(),
                total_fen: order.total_fen,
                refund_fen: order.refund_fen,
                refund_desc: None,
            });
            match self.call(request, |_| None).await {
                Err(CallError::Local(e)) => RefundOutcome::Declined(local_request_error(e)),
                Err(e) => RefundOutcome::Unknown(e.detail()),
                Ok(r) => match r.disposition(Api::Refund) {
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
