//! UnionPay (云闪付) and "any code" payments through a QRA-style aggregator gateway
//! (SwiftPass/威富通 protocol, `https://qra.95516.com/pay/gateway`): one URL, the operation in
//! the `service` field, flat XML bodies signed MD5 like WeChat v2 (`&key=` appended).
//!
//! Response semantics (assumptions, docs/acquirers.md §3 has no official table — documented here so
//! the emulator and the terminal agree):
//! - `status` is transport: `0` means the request was processed; anything else is like
//!   WeChat's `return_code=FAIL` (refused before business processing, unsigned, nothing charged).
//! - `result_code` is business: `0` is success. For micropay, success also needs
//!   `pay_result=0`; a non-zero `pay_result` with `result_code=0` is treated as "query".
//! - On `result_code≠0`, `need_query=Y` means the outcome is unknown (query), `need_query=N`
//!   means a definite failure; `err_code` uses the WeChat vocabulary (`USERPAYING`,
//!   `AUTHCODEEXPIRE`, `SYSTEMERROR`, …) and refines the cause.
//! - query returns `trade_state` with WeChat's values (SUCCESS, REFUND, NOTPAY, CLOSED,
//!   REVOKED, USERPAYING, PAYERROR) plus the aggregator's own `REVERSE` (冲正, a reversed
//!   order); `trade_type` names the scheme (`pay.unionpay.micropay`, `pay.weixin.micropay`,
//!   `pay.alipay.micropay`).
//! - reverse answers `recall=Y` when it must be called again, as WeChat does.
//!
//! Request fields follow the field lists of the public QRA clients (docs/acquirers.md §3):
//! micropay carries `op_user_id` (operator) and `op_device_id` (terminal); refund carries
//! `op_user_id`, which gateways built from those clients require. Query and reverse carry
//! neither. `terminal_info` is in neither client's field list and is not sent.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::catalogue::{Cause, CodeRow, STATE_EN, STATE_ZH, find, row};
use crate::disposition::{Disposition, FailureCause};
use crate::keys::SignatureError;
use crate::money::{AmountError, parse_fen};
use crate::nonce::nonce_str;
use crate::wechat::codes as wx_codes;
use crate::wechat::sign::{self, SignType};
use crate::xml::{self, XmlError};

/// The gateway path.
pub const GATEWAY_PATH: &str = "/pay/gateway";
/// Production host of the UnionPay QRA gateway.
pub const PRODUCTION_HOST: &str = "qra.95516.com";

/// The aggregator's own codes. Its `err_code` and `trade_state` otherwise follow WeChat Pay v2's
/// vocabulary (see the module doc), so [`lookup_code`] falls back to WeChat's table
/// ([`wx_codes::ERR_CODES`]): the aggregator path explains `NOTENOUGH` exactly as WeChat does.
pub static QRA_CODES: &[CodeRow] = &[
    // `trade_state=REVERSE` (冲正): the order was reversed, so it is not paid and the sale ends.
    row(
        "REVERSE",
        Disposition::Failed(FailureCause::OrderState),
        Cause::Guidance,
        STATE_ZH,
        STATE_EN,
    ),
];

/// The row for an aggregator `err_code` or `trade_state`: its own table first, then WeChat's.
pub fn lookup_code(code: &str) -> Option<&'static CodeRow> {
    find(QRA_CODES, code).or_else(|| wx_codes::lookup(code))
}

/// The `service` values a payment-code terminal uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// `unified.trade.micropay`.
    Micropay,
    /// `unified.trade.query`.
    Query,
    /// `unified.micropay.reverse`.
    Reverse,
    /// `unified.trade.refund`.
    Refund,
}

impl Service {
    /// All services.
    pub const ALL: [Service; 4] = [
        Service::Micropay,
        Service::Query,
        Service::Reverse,
        Service::Refund,
    ];

    /// The `service` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Micropay => "unified.trade.micropay",
            Service::Query => "unified.trade.query",
            Service::Reverse => "unified.micropay.reverse",
            Service::Refund => "unified.trade.refund",
        }
    }

    /// Parse a `service` value.
    pub fn parse(text: &str) -> Option<Self> {
        Service::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// The merchant's identity at the aggregator. `Debug` hides the key.
#[derive(Clone, PartialEq, Eq)]
pub struct MerchantConfig {
    /// `mch_id` issued by the aggregator.
    pub mch_id: String,
    /// The MD5 signing key.
    pub key: String,
}

impl std::fmt::Debug for MerchantConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerchantConfig")
            .field("mch_id", &self.mch_id)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// A request field breaks the rules.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    /// Order numbers are 1–32 of `[A-Za-z0-9_-]`.
    #[error("{field} {value:?} must be 1-32 letters, digits, '_' or '-'; generate it again")]
    BadOrderNumber {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// Amount must be positive (and a refund at most the order).
    #[error("amount {0} fen is not valid here")]
    BadAmount(i64),
    /// A required field is empty.
    #[error("{0} is required")]
    Missing(&'static str),
}

fn check_no(field: &'static str, v: &str) -> Result<(), RequestError> {
    if !v.is_empty()
        && v.len() <= 32
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(())
    } else {
        Err(RequestError::BadOrderNumber {
            field,
            value: v.to_owned(),
        })
    }
}

/// `unified.trade.micropay` fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MicropayRequest {
    /// Merchant order number (≤32), the idempotency key.
    pub out_trade_no: String,
    /// The payment code, any scheme (bearer token).
    pub auth_code: String,
    /// `body`.
    pub body: String,
    /// `total_fee` in fen.
    pub total_fen: i64,
    /// `mch_create_ip`.
    pub mch_create_ip: String,
    /// `limit_credit_pay=1`: refuse credit funding (aggregator switch, like `no_credit`).
    pub no_credit: bool,
    /// `op_user_id`: the operator (cashier) who took the payment.
    pub op_user_id: Option<String>,
    /// `op_device_id`: the terminal that took the payment.
    pub op_device_id: Option<String>,
}

/// `unified.trade.refund` fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// The order.
    pub out_trade_no: String,
    /// `out_refund_no`: unique per refund; resend the same one after a timeout.
    pub out_refund_no: String,
    /// `total_fee` in fen.
    pub total_fen: i64,
    /// `refund_fee` in fen.
    pub refund_fen: i64,
    /// `op_user_id`: who ordered the refund (required by the gateway).
    pub op_user_id: String,
}

/// An unsigned QRA request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    service: Service,
    fields: BTreeMap<String, String>,
}

impl Request {
    /// `unified.trade.micropay`.
    pub fn micropay(m: &MicropayRequest) -> Result<Self, RequestError> {
        check_no("out_trade_no", &m.out_trade_no)?;
        if m.total_fen < 1 {
            return Err(RequestError::BadAmount(m.total_fen));
        }
        for (name, v) in [
            ("auth_code", &m.auth_code),
            ("body", &m.body),
            ("mch_create_ip", &m.mch_create_ip),
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
        f.insert("mch_create_ip".into(), m.mch_create_ip.clone());
        if m.no_credit {
            f.insert("limit_credit_pay".into(), "1".into());
        }
        for (name, v) in [
            ("op_user_id", &m.op_user_id),
            ("op_device_id", &m.op_device_id),
        ] {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                f.insert(name.into(), v.clone());
            }
        }
        Ok(Self {
            service: Service::Micropay,
            fields: f,
        })
    }

    /// `unified.trade.query` by `out_trade_no`.
    pub fn query(out_trade_no: &str) -> Result<Self, RequestError> {
        check_no("out_trade_no", out_trade_no)?;
        Ok(Self {
            service: Service::Query,
            fields: BTreeMap::from([("out_trade_no".into(), out_trade_no.to_owned())]),
        })
    }

    /// `unified.micropay.reverse` by `out_trade_no`.
    pub fn reverse(out_trade_no: &str) -> Result<Self, RequestError> {
        check_no("out_trade_no", out_trade_no)?;
        Ok(Self {
            service: Service::Reverse,
            fields: BTreeMap::from([("out_trade_no".into(), out_trade_no.to_owned())]),
        })
    }

    /// `unified.trade.refund`.
    pub fn refund(r: &RefundRequest) -> Result<Self, RequestError> {
        check_no("out_trade_no", &r.out_trade_no)?;
        check_no("out_refund_no", &r.out_refund_no)?;
        if r.total_fen < 1 {
            return Err(RequestError::BadAmount(r.total_fen));
        }
        if r.refund_fen < 1 || r.refund_fen > r.total_fen {
            return Err(RequestError::BadAmount(r.refund_fen));
        }
        if r.op_user_id.is_empty() {
            return Err(RequestError::Missing("op_user_id"));
        }
        let mut f = BTreeMap::new();
        f.insert("out_trade_no".into(), r.out_trade_no.clone());
        f.insert("out_refund_no".into(), r.out_refund_no.clone());
        f.insert("total_fee".into(), r.total_fen.to_string());
        f.insert("refund_fee".into(), r.refund_fen.to_string());
        f.insert("op_user_id".into(), r.op_user_id.clone());
        Ok(Self {
            service: Service::Refund,
            fields: f,
        })
    }

    /// The service.
    pub fn service(&self) -> Service {
        self.service
    }

    /// Add `service`, `version`, `charset`, `sign_type`, `mch_id`, `nonce_str`, `sign`.
    pub fn signed_fields(&self, cfg: &MerchantConfig) -> BTreeMap<String, String> {
        self.signed_fields_with_nonce(cfg, &nonce_str())
    }

    /// As [`Request::signed_fields`] with a given nonce.
    pub fn signed_fields_with_nonce(
        &self,
        cfg: &MerchantConfig,
        nonce: &str,
    ) -> BTreeMap<String, String> {
        let mut f = self.fields.clone();
        f.insert("service".into(), self.service.as_str().into());
        f.insert("version".into(), "2.0".into());
        f.insert("charset".into(), "UTF-8".into());
        f.insert("sign_type".into(), "MD5".into());
        f.insert("mch_id".into(), cfg.mch_id.clone());
        f.insert("nonce_str".into(), nonce.to_owned());
        let s = sign::sign(&f, &cfg.key, SignType::Md5);
        f.insert("sign".into(), s);
        f
    }

    /// The signed XML body.
    pub fn to_xml(&self, cfg: &MerchantConfig) -> String {
        xml::encode(&self.signed_fields(cfg))
    }
}

/// A QRA answer that cannot be trusted or read: the outcome is unknown, query.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResponseError {
    /// Not a flat `<xml>` document.
    #[error("aggregator response is not valid XML: {0}")]
    Xml(#[from] XmlError),
    /// No `status`.
    #[error("aggregator response has no status; treat the outcome as unknown and query")]
    NoStatus,
    /// Signature missing or wrong on a `status=0` answer.
    #[error("aggregator response signature: {0}")]
    Signature(#[from] SignatureError),
}

/// A parsed, verified QRA answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    fields: BTreeMap<String, String>,
}

impl Response {
    /// Parse and verify with the MD5 key. `status≠0` answers are unsigned transport errors and
    /// are accepted as such; `status=0` answers must carry a valid `sign`.
    pub fn parse(body: &str, key: &str) -> Result<Self, ResponseError> {
        let fields = xml::decode(body)?;
        match fields.get("status").map(String::as_str) {
            None | Some("") => return Err(ResponseError::NoStatus),
            Some("0") => sign::verify(&fields, key, SignType::Md5)?,
            Some(_) => {}
        }
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

    /// A field.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// `status == 0`.
    pub fn status_ok(&self) -> bool {
        self.get("status") == Some("0")
    }

    /// `result_code == 0` (and `status == 0`).
    pub fn result_ok(&self) -> bool {
        self.status_ok() && self.get("result_code") == Some("0")
    }

    /// `need_query == Y`.
    pub fn need_query(&self) -> bool {
        self.get("need_query") == Some("Y")
    }

    /// `err_code`.
    pub fn err_code(&self) -> Option<&str> {
        self.get("err_code").filter(|s| !s.is_empty())
    }

    /// `trade_state` (query).
    pub fn trade_state(&self) -> Option<&str> {
        self.get("trade_state")
    }

    /// `trade_type`, e.g. `pay.unionpay.micropay`.
    pub fn trade_type(&self) -> Option<&str> {
        self.get("trade_type")
    }

    /// `recall == Y` (reverse).
    pub fn recall(&self) -> bool {
        self.get("recall") == Some("Y")
    }

    /// `transaction_id` (aggregator's).
    pub fn transaction_id(&self) -> Option<&str> {
        self.get("transaction_id")
    }

    /// `total_fee` in fen.
    pub fn total_fen(&self) -> Option<Result<i64, AmountError>> {
        self.get("total_fee").map(parse_fen)
    }

    /// `refund_fee` in fen.
    pub fn refund_fen(&self) -> Option<Result<i64, AmountError>> {
        self.get("refund_fee").map(parse_fen)
    }

    /// What the terminal does next (see the module doc for the assumed semantics).
    pub fn disposition(&self, service: Service) -> Disposition {
        if !self.status_ok() {
            return Disposition::Failed(FailureCause::Request);
        }
        let from_table = self.err_code().and_then(lookup_code).map(|e| e.disposition);
        let definite = |d: Option<Disposition>| match d {
            Some(Disposition::Failed(c)) => Disposition::Failed(c),
            _ => Disposition::Failed(FailureCause::Acquirer),
        };
        match service {
            Service::Micropay => {
                if self.result_ok() {
                    if self.get("pay_result") == Some("0") {
                        Disposition::Success
                    } else {
                        Disposition::QueryNeeded
                    }
                } else if from_table == Some(Disposition::WaitingForCustomer) {
                    Disposition::WaitingForCustomer
                } else if from_table == Some(Disposition::OrderNumberTaken) {
                    Disposition::OrderNumberTaken
                } else if self.need_query()
                    || matches!(from_table, Some(Disposition::QueryNeeded) | None)
                        && self.get("need_query") != Some("N")
                {
                    Disposition::QueryNeeded
                } else {
                    definite(from_table)
                }
            }
            Service::Query => {
                if self.result_ok() {
                    match self.trade_state() {
                        Some("SUCCESS" | "REFUND") => Disposition::Success,
                        Some("USERPAYING" | "NOTPAY") => Disposition::WaitingForCustomer,
                        Some("CLOSED" | "REVOKED" | "REVERSE" | "PAYERROR") => {
                            Disposition::Failed(FailureCause::OrderState)
                        }
                        _ => Disposition::Retry,
                    }
                } else if self.err_code() == Some("ORDERNOTEXIST") {
                    Disposition::Failed(FailureCause::OrderState)
                } else {
                    Disposition::Retry
                }
            }
            Service::Reverse => {
                if self.recall() {
                    Disposition::Retry
                } else if self.result_ok() || self.err_code() == Some("ORDERNOTEXIST") {
                    Disposition::Success
                } else if let Some(Disposition::Failed(c)) = from_table {
                    Disposition::Failed(c)
                } else {
                    Disposition::Retry
                }
            }
            Service::Refund => {
                if self.result_ok() {
                    Disposition::Success
                } else if let Some(Disposition::Failed(c)) = from_table {
                    Disposition::Failed(c)
                } else {
                    Disposition::Retry
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> MerchantConfig {
        MerchantConfig {
            mch_id: "7551000001".into(),
            key: "9d101c97133837e13dde2d32a5054abb".into(),
        }
    }

    fn signed_answer(pairs: &[(&str, &str)]) -> String {
        let mut f: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let s = sign::sign(&f, &cfg().key, SignType::Md5);
        f.insert("sign".into(), s);
        xml::encode(&f)
    }

    #[test]
    fn a_unionpay_code_paid_through_the_aggregator_is_success() {
        let body = signed_answer(&[
            ("status", "0"),
            ("result_code", "0"),
            ("pay_result", "0"),
            ("trade_type", "pay.unionpay.micropay"),
            ("total_fee", "1200"),
        ]);
        let r = Response::parse(&body, &cfg().key).unwrap();
        assert_eq!(r.disposition(Service::Micropay), Disposition::Success);
        assert_eq!(r.total_fen(), Some(Ok(1200)));
        assert!(Response::parse(&body, "wrong").is_err());
    }

    #[test]
    fn need_query_decides_between_unknown_and_failed() {
        let r = Response::from_fields(
            [("status", "0"), ("result_code", "1"), ("need_query", "Y")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
        );
        assert_eq!(r.disposition(Service::Micropay), Disposition::QueryNeeded);
        let r = Response::from_fields(
            [
                ("status", "0"),
                ("result_code", "1"),
                ("need_query", "N"),
                ("err_code", "AUTHCODEEXPIRE"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
        );
        assert_eq!(
            r.disposition(Service::Micropay),
            Disposition::Failed(FailureCause::PaymentCode)
        );
    }

    #[test]
    fn requests_carry_service_and_a_valid_md5_sign() {
        let f = Request::query("T1").unwrap().signed_fields(&cfg());
        assert_eq!(f["service"], "unified.trade.query");
        sign::verify(&f, &cfg().key, SignType::Md5).unwrap();
        assert!(!format!("{:?}", cfg()).contains("9d101c97"));
    }

    #[test]
    fn the_operator_and_terminal_travel_as_the_public_clients_send_them() {
        // A gateway written from the public QRA clients refuses a refund without op_user_id.
        let refund = RefundRequest {
            out_trade_no: "T1".into(),
            out_refund_no: "R1".into(),
            total_fen: 100,
            refund_fen: 100,
            op_user_id: String::new(),
        };
        assert_eq!(
            Request::refund(&refund),
            Err(RequestError::Missing("op_user_id"))
        );
        let f = Request::refund(&RefundRequest {
            op_user_id: "7551000001".into(),
            ..refund
        })
        .unwrap()
        .signed_fields(&cfg());
        assert_eq!(f["op_user_id"], "7551000001");
        let f = Request::micropay(&MicropayRequest {
            out_trade_no: "T2".into(),
            auth_code: "6212345678901234567".into(),
            body: "shop".into(),
            total_fen: 100,
            mch_create_ip: "10.0.0.2".into(),
            no_credit: false,
            op_user_id: Some("cashier-7".into()),
            op_device_id: Some("POS01".into()),
        })
        .unwrap()
        .signed_fields(&cfg());
        assert_eq!(f["op_user_id"], "cashier-7");
        assert_eq!(f["op_device_id"], "POS01");
        // Query and reverse carry neither.
        let f = Request::reverse("T2").unwrap().signed_fields(&cfg());
        assert!(!f.contains_key("op_device_id") && !f.contains_key("op_user_id"));
    }

    #[test]
    fn a_reversed_order_is_not_paid_and_not_unknown() {
        let r = Response::from_fields(
            [
                ("status", "0"),
                ("result_code", "0"),
                ("trade_state", "REVERSE"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
        );
        assert_eq!(
            r.disposition(Service::Query),
            Disposition::Failed(FailureCause::OrderState)
        );
    }
}
