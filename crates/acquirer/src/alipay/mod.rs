//! Alipay OpenAPI barcode payment (当面付 条码支付): `alipay.trade.pay`, `.query`, `.cancel`,
//! `.refund`, signed RSA2.
//!
//! The terminal builds a [`Request`] from a typed biz model, [`Request::sign`]s it with the app
//! private key and sends [`SignedRequest::query_string`] + [`SignedRequest::form_body`] to
//! `POST /gateway.do`. The answer goes through [`response::parse_and_verify`], which checks the
//! signature over the verbatim response node before any field is believed. The emulator uses
//! the same module from the other side ([`parse_gateway_params`], [`verify_request`],
//! [`response::build_signed_response`]).

pub mod codes;
pub mod response;
pub mod sign;

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use thiserror::Error;

pub use codes::ResultCode;
pub use response::{FundBill, RawResponse, Response, ResponseError, SignatureStatus};
pub use sign::{sign_content, verify_request};

use crate::form;
use crate::keys::{KeyError, RsaSigner};
use crate::money::fen_to_yuan;

/// The gateway path on the Alipay host.
pub const GATEWAY_PATH: &str = "/gateway.do";
/// Production gateway host.
pub const PRODUCTION_HOST: &str = "openapi.alipay.com";
/// The content type the SDKs send.
pub const CONTENT_TYPE: &str = "application/x-www-form-urlencoded;charset=utf-8";

/// The four OpenAPI methods a barcode-pay terminal uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `alipay.trade.pay`: charge a payment code.
    TradePay,
    /// `alipay.trade.query`: learn a trade's state.
    TradeQuery,
    /// `alipay.trade.cancel`: close an unpaid trade or refund a paid one (撤销).
    TradeCancel,
    /// `alipay.trade.refund`: refund all or part of a paid trade.
    TradeRefund,
}

impl Method {
    /// All methods, for tables and tests.
    pub const ALL: [Method; 4] = [
        Method::TradePay,
        Method::TradeQuery,
        Method::TradeCancel,
        Method::TradeRefund,
    ];

    /// The `method` parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::TradePay => "alipay.trade.pay",
            Method::TradeQuery => "alipay.trade.query",
            Method::TradeCancel => "alipay.trade.cancel",
            Method::TradeRefund => "alipay.trade.refund",
        }
    }

    /// Parse a `method` parameter value.
    pub fn parse(text: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == text)
    }

    /// The JSON key of this method's response node: dots become `_`, plus `_response`.
    pub fn response_node(self) -> String {
        format!("{}_response", self.as_str().replace('.', "_"))
    }
}

/// The terminal's identity at Alipay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    /// `app_id` from the Alipay open platform.
    pub app_id: String,
    /// `app_auth_token` when an ISV acts for the merchant.
    pub app_auth_token: Option<String>,
}

/// A request that cannot be built because a field breaks Alipay's documented rules.
#[derive(Debug, Error)]
pub enum RequestError {
    /// `out_trade_no` / `out_request_no` must be 1–64 of `[A-Za-z0-9_]`.
    #[error("{field} {value:?} must be 1-64 letters, digits or '_'; generate it again")]
    BadOrderNumber {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// Amount outside [0.01, 100000000.00] yuan.
    #[error("amount {0} fen is outside Alipay's range 1..=10000000000 fen")]
    AmountOutOfRange(i64),
    /// A required field is empty.
    #[error("{0} is required")]
    Missing(&'static str),
    /// Signing failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// `scene` of a barcode payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scene {
    /// A code scanned from the phone screen.
    #[default]
    BarCode,
    /// Sound-wave payment.
    WaveCode,
}

impl Scene {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Scene::BarCode => "bar_code",
            Scene::WaveCode => "wave_code",
        }
    }
}

/// `alipay.trade.pay` biz_content.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PayRequest {
    /// Merchant order number, the idempotency key (≤64 of `[A-Za-z0-9_]`).
    pub out_trade_no: String,
    /// The customer's payment code (bearer token: never log it whole).
    pub auth_code: String,
    /// Order title shown to the buyer.
    pub subject: String,
    /// Amount in fen; sent as a yuan string.
    pub total_fen: i64,
    /// `bar_code` unless sound-wave.
    pub scene: Scene,
    /// Channels the buyer may not use, e.g. `pcredit`, `pcreditpayInstallment`, `credit_group`.
    pub disable_pay_channels: Vec<String>,
    /// `timeout_express`, e.g. `2m`.
    pub timeout_express: Option<String>,
    /// `store_id`.
    pub store_id: Option<String>,
    /// `terminal_id`.
    pub terminal_id: Option<String>,
    /// `operator_id`.
    pub operator_id: Option<String>,
    /// Ask for `fund_bill_list` in the answer (needed to see Huabei funding).
    pub query_fund_bill_list: bool,
}

/// Which trade a query/cancel refers to: by merchant order number or Alipay trade number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeRef {
    /// `out_trade_no`.
    OutTradeNo(String),
    /// `trade_no`.
    TradeNo(String),
}

/// `alipay.trade.refund` biz_content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// The trade to refund.
    pub trade: TradeRef,
    /// Amount to refund, in fen.
    pub refund_fen: i64,
    /// Unique per refund of a trade; required for partial refunds; resend the same one after a
    /// timeout so the refund is not applied twice.
    pub out_request_no: String,
    /// `refund_reason`.
    pub refund_reason: Option<String>,
}

/// A request ready to be signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: Method,
    params: BTreeMap<String, String>,
}

fn check_order_number(field: &'static str, value: &str) -> Result<(), RequestError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RequestError::BadOrderNumber {
            field,
            value: value.to_owned(),
        })
    }
}

fn check_amount(fen: i64) -> Result<(), RequestError> {
    if (1..=10_000_000_000).contains(&fen) {
        Ok(())
    } else {
        Err(RequestError::AmountOutOfRange(fen))
    }
}

fn put(map: &mut Map<String, Value>, key: &str, value: &str) {
    map.insert(key.to_owned(), Value::String(value.to_owned()));
}

fn put_opt(map: &mut Map<String, Value>, key: &str, value: Option<&String>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        put(map, key, v);
    }
}

fn trade_ref_json(trade: &TradeRef) -> Result<Map<String, Value>, RequestError> {
    let mut biz = Map::new();
    match trade {
        TradeRef::OutTradeNo(no) => {
            check_order_number("out_trade_no", no)?;
            put(&mut biz, "out_trade_no", no);
        }
        TradeRef::TradeNo(no) if no.is_empty() => return Err(RequestError::Missing("trade_no")),
        TradeRef::TradeNo(no) => put(&mut biz, "trade_no", no),
    }
    Ok(biz)
}

impl Request {
    /// A request with the common parameters and the given biz_content JSON text.
    /// `timestamp` is `yyyy-MM-dd HH:mm:ss` in GMT+8 (see [`timestamp_gmt8`]).
    pub fn new(config: &AppConfig, method: Method, biz_content: String, timestamp: &str) -> Self {
        let mut params = BTreeMap::new();
        params.insert("app_id".into(), config.app_id.clone());
        params.insert("method".into(), method.as_str().into());
        params.insert("format".into(), "json".into());
        params.insert("charset".into(), "utf-8".into());
        params.insert("sign_type".into(), "RSA2".into());
        params.insert("timestamp".into(), timestamp.into());
        params.insert("version".into(), "1.0".into());
        params.insert("biz_content".into(), biz_content);
        if let Some(token) = config.app_auth_token.as_ref().filter(|t| !t.is_empty()) {
            params.insert("app_auth_token".into(), token.clone());
        }
        Self { method, params }
    }

    /// `alipay.trade.pay`.
    pub fn pay(
        config: &AppConfig,
        pay: &PayRequest,
        timestamp: &str,
    ) -> Result<Self, RequestError> {
        check_order_number("out_trade_no", &pay.out_trade_no)?;
        check_amount(pay.total_fen)?;
        if pay.auth_code.is_empty() {
            return Err(RequestError::Missing("auth_code"));
        }
        if pay.subject.is_empty() {
            return Err(RequestError::Missing("subject"));
        }
        let mut biz = Map::new();
        put(&mut biz, "out_trade_no", &pay.out_trade_no);
        put(&mut biz, "scene", pay.scene.as_str());
        put(&mut biz, "auth_code", &pay.auth_code);
        put(&mut biz, "subject", &pay.subject);
        put(&mut biz, "total_amount", &fen_to_yuan(pay.total_fen));
        if !pay.disable_pay_channels.is_empty() {
            put(
                &mut biz,
                "disable_pay_channels",
                &pay.disable_pay_channels.join(","),
            );
        }
        put_opt(&mut biz, "timeout_express", pay.timeout_express.as_ref());
        put_opt(&mut biz, "store_id", pay.store_id.as_ref());
        put_opt(&mut biz, "terminal_id", pay.terminal_id.as_ref());
        put_opt(&mut biz, "operator_id", pay.operator_id.as_ref());
        if pay.query_fund_bill_list {
            biz.insert(
                "query_options".into(),
                Value::Array(vec![Value::String("fund_bill_list".into())]),
            );
        }
        Ok(Self::new(
            config,
            Method::TradePay,
            Value::Object(biz).to_string(),
            timestamp,
        ))
    }

    /// `alipay.trade.query`; asks for `fund_bill_list` so Huabei funding is visible.
    pub fn query(
        config: &AppConfig,
        trade: &TradeRef,
        timestamp: &str,
    ) -> Result<Self, RequestError> {
        let mut biz = trade_ref_json(trade)?;
        biz.insert(
            "query_options".into(),
            Value::Array(vec![Value::String("fund_bill_list".into())]),
        );
        Ok(Self::new(
            config,
            Method::TradeQuery,
            Value::Object(biz).to_string(),
            timestamp,
        ))
    }

    /// `alipay.trade.cancel`.
    pub fn cancel(
        config: &AppConfig,
        trade: &TradeRef,
        timestamp: &str,
    ) -> Result<Self, RequestError> {
        let biz = trade_ref_json(trade)?;
        Ok(Self::new(
            config,
            Method::TradeCancel,
            Value::Object(biz).to_string(),
            timestamp,
        ))
    }

    /// `alipay.trade.refund`.
    pub fn refund(
        config: &AppConfig,
        refund: &RefundRequest,
        timestamp: &str,
    ) -> Result<Self, RequestError> {
        let mut biz = trade_ref_json(&refund.trade)?;
        check_amount(refund.refund_fen)?;
        check_order_number("out_request_no", &refund.out_request_no)?;
        put(&mut biz, "refund_amount", &fen_to_yuan(refund.refund_fen));
        put(&mut biz, "out_request_no", &refund.out_request_no);
        put_opt(&mut biz, "refund_reason", refund.refund_reason.as_ref());
        Ok(Self::new(
            config,
            Method::TradeRefund,
            Value::Object(biz).to_string(),
            timestamp,
        ))
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The parameters as they will be signed (no `sign` yet).
    pub fn params(&self) -> &BTreeMap<String, String> {
        &self.params
    }

    /// Sign with the app private key (RSA2) and add `sign`.
    pub fn sign(self, signer: &RsaSigner) -> Result<SignedRequest, RequestError> {
        let content = sign_content(self.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let signature = signer.sign_base64(content.as_bytes())?;
        let mut params = self.params;
        params.insert("sign".into(), signature);
        Ok(SignedRequest {
            method: self.method,
            params,
        })
    }
}

/// A signed request, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    method: Method,
    params: BTreeMap<String, String>,
}

impl SignedRequest {
    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// All parameters including `sign`.
    pub fn params(&self) -> &BTreeMap<String, String> {
        &self.params
    }

    /// Common parameters (everything but `biz_content`), URL-encoded, as the SDKs put them in
    /// the URL query.
    pub fn query_string(&self) -> String {
        form::encode_pairs(
            self.params
                .iter()
                .filter(|(k, _)| k.as_str() != "biz_content")
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }

    /// `biz_content=…`, URL-encoded, for the form body.
    pub fn form_body(&self) -> String {
        form::encode_pairs(
            self.params
                .get_key_value("biz_content")
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }

    /// `/gateway.do?<query_string>`.
    pub fn path_and_query(&self) -> String {
        format!("{GATEWAY_PATH}?{}", self.query_string())
    }
}

/// Why a gateway request could not be read (emulator side).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GatewayParamsError {
    /// Bad URL encoding.
    #[error(transparent)]
    Form(#[from] form::FormError),
    /// The same parameter appears twice with different values.
    #[error("parameter {0} appears twice with different values")]
    Conflict(String),
}

/// Merge the parameters of a gateway request from the URL query and the form body; the SDKs
/// split them between the two. A parameter repeated with a different value is refused, since
/// the signature could then cover a value other than the one acted on.
pub fn parse_gateway_params(
    query: &str,
    body: &str,
) -> Result<BTreeMap<String, String>, GatewayParamsError> {
    let mut params = BTreeMap::new();
    for (k, v) in form::decode_pairs(query)?
        .into_iter()
        .chain(form::decode_pairs(body)?)
    {
        match params.get(&k) {
            Some(existing) if existing != &v => return Err(GatewayParamsError::Conflict(k)),
            _ => {
                params.insert(k, v);
            }
        }
    }
    Ok(params)
}

/// Format a Unix time as Alipay's `timestamp`: `yyyy-MM-dd HH:mm:ss` in GMT+8.
pub fn timestamp_gmt8(unix_secs: i64) -> String {
    let t = unix_secs + 8 * 3600;
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Parse Alipay's `timestamp` (`yyyy-MM-dd HH:mm:ss`, GMT+8) back into Unix seconds; `None`
/// if it is not exactly that shape or not a real date and time.
pub fn parse_timestamp_gmt8(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let max_day = *month_days.get(usize::try_from(month - 1).ok()?)?;
    if !(1..=max_day).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - 8 * 3600)
}

/// Alipay's `timestamp` for now.
pub fn timestamp_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    timestamp_gmt8(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AppConfig {
        AppConfig {
            app_id: "2014072300007148".into(),
            app_auth_token: None,
        }
    }

    #[test]
    fn the_timestamp_is_beijing_time() {
        // 2014-07-23 19:07:50 UTC is 2014-07-24 03:07:50 in Beijing.
        assert_eq!(timestamp_gmt8(1_406_142_470), "2014-07-24 03:07:50");
        assert_eq!(timestamp_gmt8(0), "1970-01-01 08:00:00");
        assert_eq!(
            timestamp_gmt8(951_782_400 - 8 * 3600),
            "2000-02-29 00:00:00"
        );
    }

    #[test]
    fn a_pay_request_carries_yuan_and_the_huabei_switch() {
        let pay = PayRequest {
            out_trade_no: "20150320010101001".into(),
            auth_code: "28763443825664394".into(),
            subject: "Iphone6 16G".into(),
            total_fen: 8888,
            disable_pay_channels: vec!["pcredit".into(), "pcreditpayInstallment".into()],
            query_fund_bill_list: true,
            ..PayRequest::default()
        };
        let req = Request::pay(&config(), &pay, "2014-07-24 03:07:50").unwrap();
        let biz: Value = serde_json::from_str(&req.params()["biz_content"]).unwrap();
        assert_eq!(biz["total_amount"], "88.88");
        assert_eq!(biz["scene"], "bar_code");
        assert_eq!(biz["disable_pay_channels"], "pcredit,pcreditpayInstallment");
        assert_eq!(biz["query_options"][0], "fund_bill_list");
        assert_eq!(req.params()["method"], "alipay.trade.pay");
    }

    #[test]
    fn order_numbers_and_amounts_outside_the_rules_are_refused_before_sending() {
        let mut pay = PayRequest {
            out_trade_no: "bad-no".into(),
            auth_code: "28763443825664394".into(),
            subject: "x".into(),
            total_fen: 1,
            ..PayRequest::default()
        };
        assert!(matches!(
            Request::pay(&config(), &pay, "t"),
            Err(RequestError::BadOrderNumber { .. })
        ));
        pay.out_trade_no = "ok_1".into();
        pay.total_fen = 0;
        assert!(matches!(
            Request::pay(&config(), &pay, "t"),
            Err(RequestError::AmountOutOfRange(0))
        ));
    }

    #[test]
    fn the_gateway_reads_params_from_query_and_body_alike() {
        let params = parse_gateway_params("a=1&sign=x%2By", "biz_content=%7B%7D&a=1").unwrap();
        assert_eq!(params["sign"], "x+y");
        assert_eq!(params["biz_content"], "{}");
        assert_eq!(
            parse_gateway_params("a=1", "a=2"),
            Err(GatewayParamsError::Conflict("a".into()))
        );
    }
}
