//! WeChat Pay API v2 payment-code payment (付款码支付): micropay, orderquery, reverse, refund.
//! XML bodies with CDATA values, signed MD5 or HMAC-SHA256 with the merchant API key. Reverse
//! and refund live under `/secapi/` and need the merchant TLS client certificate.

pub mod codes;
pub mod sign;

use std::collections::BTreeMap;

use thiserror::Error;

pub use sign::SignType;

use crate::disposition::Disposition;
use crate::keys::SignatureError;
use crate::money::{AmountError, parse_fen};
use crate::nonce::nonce_str;
use crate::xml::{self, XmlError};

/// Production API host.
pub const PRODUCTION_HOST: &str = "api.mch.weixin.qq.com";

/// The v2 APIs a payment-code terminal uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// `POST /pay/micropay`.
    Micropay,
    /// `POST /pay/orderquery`.
    OrderQuery,
    /// `POST /secapi/pay/reverse` (client certificate required).
    Reverse,
    /// `POST /secapi/pay/refund` (client certificate required).
    Refund,
}

impl Api {
    /// The URL path.
    pub fn path(self) -> &'static str {
        match self {
            Api::Micropay => "/pay/micropay",
            Api::OrderQuery => "/pay/orderquery",
            Api::Reverse => "/secapi/pay/reverse",
            Api::Refund => "/secapi/pay/refund",
        }
    }

    /// Whether the merchant client certificate must be presented.
    pub fn needs_client_cert(self) -> bool {
        matches!(self, Api::Reverse | Api::Refund)
    }
}

/// The merchant's WeChat Pay identity. The API key is a secret: `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct MerchantConfig {
    /// `appid`.
    pub appid: String,
    /// `mch_id`.
    pub mch_id: String,
    /// `sub_appid` (service-provider mode).
    pub sub_appid: Option<String>,
    /// `sub_mch_id` (service-provider mode).
    pub sub_mch_id: Option<String>,
    /// The 32-character API key set in the merchant platform.
    pub api_key: String,
    /// How requests are signed (responses are checked the same way).
    pub sign_type: SignType,
}

impl std::fmt::Debug for MerchantConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerchantConfig")
            .field("appid", &self.appid)
            .field("mch_id", &self.mch_id)
            .field("sub_appid", &self.sub_appid)
            .field("sub_mch_id", &self.sub_mch_id)
            .field("api_key", &"<redacted>")
            .field("sign_type", &self.sign_type)
            .finish()
    }
}

/// A request field breaks the documented rules.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    /// `out_trade_no`/`out_refund_no` must be 1–32 of `[A-Za-z0-9_-|*]`.
    #[error("{field} {value:?} must be 1-32 letters, digits or _-|*; generate it again")]
    BadOrderNumber {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// Amount must be at least 1 fen.
    #[error("amount {0} fen is not a positive amount")]
    BadAmount(i64),
    /// A required field is empty.
    #[error("{0} is required")]
    Missing(&'static str),
}

/// `/pay/micropay` fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MicropayRequest {
    /// Merchant order number (≤32), the idempotency key.
    pub out_trade_no: String,
    /// The customer's payment code (bearer token: never log it whole).
    pub auth_code: String,
    /// `body`: what is bought.
    pub body: String,
    /// `total_fee` in fen.
    pub total_fen: i64,
    /// `spbill_create_ip`: the terminal's IP.
    pub spbill_create_ip: String,
    /// `device_info`: terminal id.
    pub device_info: Option<String>,
    /// `limit_pay=no_credit`: refuse credit cards.
    pub no_credit: bool,
    /// `attach`.
    pub attach: Option<String>,
    /// `goods_tag`.
    pub goods_tag: Option<String>,
}

/// Which order a query/reverse refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderRef {
    /// `out_trade_no`.
    OutTradeNo(String),
    /// `transaction_id`.
    TransactionId(String),
}

/// `/secapi/pay/refund` fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// The order.
    pub order: OrderRef,
    /// `out_refund_no`: unique per refund; resend the same after a timeout.
    pub out_refund_no: String,
    /// `total_fee`: the order amount in fen.
    pub total_fen: i64,
    /// `refund_fee` in fen.
    pub refund_fen: i64,
    /// `refund_desc`.
    pub refund_desc: Option<String>,
}

fn check_no(field: &'static str, value: &str) -> Result<(), RequestError> {
    let ok = !value.is_empty()
        && value.len() <= 32
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(RequestError::BadOrderNumber {
            field,
            value: value.to_owned(),
        })
    }
}

fn order_fields(order: &OrderRef) -> Result<BTreeMap<String, String>, RequestError> {
    let mut f = BTreeMap::new();
    match order {
        OrderRef::OutTradeNo(no) => {
            check_no("out_trade_no", no)?;
            f.insert("out_trade_no".into(), no.clone());
        }
        OrderRef::TransactionId(id) if id.is_empty() => {
            return Err(RequestError::Missing("transaction_id"));
        }
        OrderRef::TransactionId(id) => {
            f.insert("transaction_id".into(), id.clone());
        }
    }
    Ok(f)
}

/// An unsigned request: the API and its business fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    api: Api,
    fields: BTreeMap<String, String>,
}

impl Request {
    /// `/pay/micropay`.
    pub fn micropay(m: &MicropayRequest) -> Result<Self, RequestError> {
        check_no("out_trade_no", &m.out_trade_no)?;
        if m.total_fen < 1 {
            return Err(RequestError::BadAmount(m.total_fen));
        }
        for (name, v) in [
            ("auth_code", &m.auth_code),
            ("body", &m.body),
            ("spbill_create_ip", &m.spbill_create_ip),
        ] {
            if v.is_empty() {
                return Err(RequestError::Missing(name));
            }
        }
        let mut f = BTreeMap::new();
        f.insert("out_trade_no".into(), m.out_trade_no.clone());
        f.insert("auth_code".into(), m.auth_code.clone());
        f.insert("body".into(), m.body.clone());
        f.insert("total_fee".into(), m.total_fen.to_string());
        f.insert("fee_type".into(), "CNY".into());
        f.insert("spbill_create_ip".into(), m.spbill_create_ip.clone());
        if m.no_credit {
            f.insert("limit_pay".into(), "no_credit".into());
        }
        for (k, v) in [
            ("device_info", &m.device_info),
            ("attach", &m.attach),
            ("goods_tag", &m.goods_tag),
        ] {
            if let Some(v) = v {
                f.insert(k.into(), v.clone());
            }
        }
        Ok(Self {
            api: Api::Micropay,
            fields: f,
        })
    }

    /// `/pay/orderquery`.
    pub fn order_query(order: &OrderRef) -> Result<Self, RequestError> {
        Ok(Self {
            api: Api::OrderQuery,
            fields: order_fields(order)?,
        })
    }

    /// `/secapi/pay/reverse`.
    pub fn reverse(order: &OrderRef) -> Result<Self, RequestError> {
        Ok(Self {
            api: Api::Reverse,
            fields: order_fields(order)?,
        })
    }

    /// `/secapi/pay/refund`.
    pub fn refund(r: &RefundRequest) -> Result<Self, RequestError> {
        let mut f = order_fields(&r.order)?;
        check_no("out_refund_no", &r.out_refund_no)?;
        if r.total_fen < 1 {
            return Err(RequestError::BadAmount(r.total_fen));
        }
        if r.refund_fen < 1 || r.refund_fen > r.total_fen {
            return Err(RequestError::BadAmount(r.refund_fen));
        }
        f.insert("out_refund_no".into(), r.out_refund_no.clone());
        f.insert("total_fee".into(), r.total_fen.to_string());
        f.insert("refund_fee".into(), r.refund_fen.to_string());
        f.insert("refund_fee_type".into(), "CNY".into());
        if let Some(d) = &r.refund_desc {
            f.insert("refund_desc".into(), d.clone());
        }
        Ok(Self {
            api: Api::Refund,
            fields: f,
        })
    }

    /// The API.
    pub fn api(&self) -> Api {
        self.api
    }

    /// Add the merchant identity, a fresh nonce, `sign_type` and `sign`; returns the fields as
    /// sent. Use [`Request::to_xml`] for the body.
    pub fn signed_fields(&self, cfg: &MerchantConfig) -> BTreeMap<String, String> {
        self.signed_fields_with_nonce(cfg, &nonce_str())
    }

    /// As [`Request::signed_fields`] with a given nonce (tests, replays).
    pub fn signed_fields_with_nonce(
        &self,
        cfg: &MerchantConfig,
        nonce: &str,
    ) -> BTreeMap<String, String> {
        let mut f = self.fields.clone();
        f.insert("appid".into(), cfg.appid.clone());
        f.insert("mch_id".into(), cfg.mch_id.clone());
        if let Some(v) = cfg.sub_appid.as_ref().filter(|v| !v.is_empty()) {
            f.insert("sub_appid".into(), v.clone());
        }
        if let Some(v) = cfg.sub_mch_id.as_ref().filter(|v| !v.is_empty()) {
            f.insert("sub_mch_id".into(), v.clone());
        }
        f.insert("nonce_str".into(), nonce.to_owned());
        f.insert("sign_type".into(), cfg.sign_type.as_str().into());
        let signature = sign::sign(&f, &cfg.api_key, cfg.sign_type);
        f.insert("sign".into(), signature);
        f
    }

    /// The signed XML body.
    pub fn to_xml(&self, cfg: &MerchantConfig) -> String {
        xml::encode(&self.signed_fields(cfg))
    }
}

/// A WeChat answer that cannot be trusted or read: the outcome is unknown, query.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResponseError {
    /// Not a flat `<xml>` document.
    #[error("WeChat Pay response is not valid XML: {0}")]
    Xml(#[from] XmlError),
    /// `return_code` missing or unknown.
    #[error("WeChat Pay response has no valid return_code; treat the outcome as unknown and query")]
    NoReturnCode,
    /// The signature of a `return_code=SUCCESS` answer is missing or wrong.
    #[error("WeChat Pay response signature: {0}")]
    Signature(#[from] SignatureError),
    /// `sign_type` in the answer is not one we know.
    #[error("WeChat Pay response uses an unknown sign_type")]
    UnknownSignType,
}

/// A parsed, verified WeChat v2 answer. Fields are kept as sent; accessors type them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    fields: BTreeMap<String, String>,
}

impl Response {
    /// Parse and verify. `return_code=FAIL` answers are transport-level errors that WeChat does
    /// not sign; they are accepted unverified and never mean success. Every other answer must
    /// carry a valid signature under the merchant API key.
    pub fn parse(body: &str, api_key: &str, sign_type: SignType) -> Result<Self, ResponseError> {
        let fields = xml::decode(body)?;
        match fields.get("return_code").map(String::as_str) {
            Some("FAIL") => return Ok(Self { fields }),
            Some("SUCCESS") => {}
            _ => return Err(ResponseError::NoReturnCode),
        }
        // Some gateways echo sign_type; honour it if present, else the one we sent.
        let st = match fields.get("sign_type") {
            Some(t) => SignType::parse(Some(t)).ok_or(ResponseError::UnknownSignType)?,
            None => sign_type,
        };
        sign::verify(&fields, api_key, st)?;
        Ok(Self { fields })
    }

    /// Wrap already-verified fields (emulator side, tests).
    pub fn from_fields(fields: BTreeMap<String, String>) -> Self {
        Self { fields }
    }

    /// All fields.
    pub fn fields(&self) -> &BTreeMap<String, String> {
        &self.fields
    }

    /// A field by name.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// `return_code == SUCCESS`.
    pub fn return_ok(&self) -> bool {
        self.get("return_code") == Some("SUCCESS")
    }

    /// `return_msg`.
    pub fn return_msg(&self) -> Option<&str> {
        self.get("return_msg")
    }

    /// `result_code == SUCCESS`.
    pub fn result_ok(&self) -> bool {
        self.return_ok() && self.get("result_code") == Some("SUCCESS")
    }

    /// `err_code`.
    pub fn err_code(&self) -> Option<&str> {
        self.get("err_code").filter(|s| !s.is_empty())
    }

    /// `err_code_des`.
    pub fn err_code_des(&self) -> Option<&str> {
        self.get("err_code_des")
    }

    /// `trade_state` (orderquery).
    pub fn trade_state(&self) -> Option<&str> {
        self.get("trade_state")
    }

    /// `recall == Y` (reverse): call reverse again.
    pub fn recall(&self) -> bool {
        self.get("recall") == Some("Y")
    }

    /// `transaction_id`.
    pub fn transaction_id(&self) -> Option<&str> {
        self.get("transaction_id")
    }

    /// `out_trade_no`.
    pub fn out_trade_no(&self) -> Option<&str> {
        self.get("out_trade_no")
    }

    /// `bank_type`, e.g. `CMB_CREDIT`, `OTHERS`.
    pub fn bank_type(&self) -> Option<&str> {
        self.get("bank_type")
    }

    /// True if the payment was funded by a credit card (`bank_type` ends in `_CREDIT`).
    pub fn paid_with_credit_card(&self) -> bool {
        self.bank_type().is_some_and(|b| b.ends_with("_CREDIT"))
    }

    /// `total_fee` in fen.
    pub fn total_fen(&self) -> Option<Result<i64, AmountError>> {
        self.get("total_fee").map(parse_fen)
    }

    /// `cash_fee` in fen (what the buyer actually paid, after coupons).
    pub fn cash_fen(&self) -> Option<Result<i64, AmountError>> {
        self.get("cash_fee").map(parse_fen)
    }

    /// `refund_fee` in fen.
    pub fn refund_fen(&self) -> Option<Result<i64, AmountError>> {
        self.get("refund_fee").map(parse_fen)
    }

    /// `refund_id`.
    pub fn refund_id(&self) -> Option<&str> {
        self.get("refund_id")
    }

    /// `openid`.
    pub fn openid(&self) -> Option<&str> {
        self.get("openid")
    }

    /// `time_end`.
    pub fn time_end(&self) -> Option<&str> {
        self.get("time_end")
    }

    /// What the terminal does next; see [`codes::disposition`].
    pub fn disposition(&self, api: Api) -> Disposition {
        codes::disposition(api, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> MerchantConfig {
        MerchantConfig {
            appid: "wxd930ea5d5a258f4f".into(),
            mch_id: "10000100".into(),
            sub_appid: None,
            sub_mch_id: None,
            api_key: "192006250b4c09247ec02edce69f6a2d".into(),
            sign_type: SignType::HmacSha256,
        }
    }

    #[test]
    fn a_micropay_body_is_signed_and_bars_credit_when_asked() {
        let req = Request::micropay(&MicropayRequest {
            out_trade_no: "1217752501201407033233368018".into(),
            auth_code: "120061098828009406".into(),
            body: "门店-咖啡".into(),
            total_fen: 1200,
            spbill_create_ip: "192.168.0.8".into(),
            no_credit: true,
            ..MicropayRequest::default()
        })
        .unwrap();
        let body = req.to_xml(&cfg());
        let fields = xml::decode(&body).unwrap();
        assert_eq!(fields["limit_pay"], "no_credit");
        assert_eq!(fields["total_fee"], "1200");
        assert_eq!(fields["sign_type"], "HMAC-SHA256");
        sign::verify(&fields, &cfg().api_key, SignType::HmacSha256).unwrap();
        assert!(!format!("{:?}", cfg()).contains("192006250b"));
    }

    #[test]
    fn an_answer_signed_with_another_key_is_not_believed() {
        let mut f = BTreeMap::new();
        for (k, v) in [
            ("return_code", "SUCCESS"),
            ("result_code", "SUCCESS"),
            ("out_trade_no", "T1"),
            ("total_fee", "1200"),
        ] {
            f.insert(k.to_owned(), v.to_owned());
        }
        let good = sign::sign(&f, &cfg().api_key, SignType::Md5);
        f.insert("sign".into(), good);
        let body = xml::encode(&f);
        let r = Response::parse(&body, &cfg().api_key, SignType::Md5).unwrap();
        assert!(r.result_ok());
        assert_eq!(r.disposition(Api::Micropay), Disposition::Success);
        assert_eq!(
            Response::parse(&body, "another-key", SignType::Md5),
            Err(ResponseError::Signature(SignatureError::Mismatch))
        );
        let fail = "<xml><return_code>FAIL</return_code><return_msg>签名失败</return_msg></xml>";
        let r = Response::parse(fail, &cfg().api_key, SignType::Md5).unwrap();
        assert!(!r.return_ok());
        assert_eq!(
            Response::parse("<xml><a>1</a></xml>", "k", SignType::Md5),
            Err(ResponseError::NoReturnCode)
        );
    }

    #[test]
    fn refunds_cannot_exceed_the_order() {
        assert_eq!(
            Request::refund(&RefundRequest {
                order: OrderRef::OutTradeNo("T1".into()),
                out_refund_no: "R1".into(),
                total_fen: 100,
                refund_fen: 101,
                refund_desc: None,
            }),
            Err(RequestError::BadAmount(101))
        );
    }
}
