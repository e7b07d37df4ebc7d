//! Alipay responses: find the response node verbatim, verify its signature, then read fields.
//!
//! The signature covers the exact bytes of the node's JSON object as the gateway wrote them, so
//! the node is located by scanning the raw text (braces counted outside string literals, `\`
//! escapes honoured) rather than by re-serialising parsed JSON. The scanner works on bytes with
//! bounds-checked access and never panics; it is fuzzed (`fuzz/fuzz_targets/alipay_response.rs`).

use serde_json::{Map, Value};
use thiserror::Error;

use super::Method;
use super::codes::{self, ResultCode};
use crate::disposition::Disposition;
use crate::keys::{KeyError, RsaSigner, RsaVerifier, SignatureError};
use crate::money::{AmountError, yuan_to_fen};

/// Responses larger than this are refused; real ones are a few KiB.
pub const MAX_RESPONSE_LEN: usize = 1024 * 1024;

/// An Alipay answer that cannot be trusted or read. In every case the payment outcome is
/// unknown: query the trade (never pay again).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResponseError {
    /// Not a JSON object, or cut off.
    #[error(
        "Alipay response is not well-formed JSON ({0}); treat the outcome as unknown and query"
    )]
    Malformed(String),
    /// Neither the expected node nor `error_response` is present.
    #[error("Alipay response has no {expected} node; treat the outcome as unknown and query")]
    NodeMissing {
        /// The node that was expected.
        expected: String,
    },
    /// The signature is missing or wrong.
    #[error("Alipay response signature: {0}")]
    Signature(#[from] SignatureError),
    /// Larger than [`MAX_RESPONSE_LEN`].
    #[error("Alipay response of {0} bytes is implausibly large; refusing it")]
    TooLarge(usize),
}

/// The verbatim pieces of a response body that the signature is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse<'a> {
    /// The node key found: `<method>_response` or `error_response`.
    pub node_name: &'a str,
    /// The node's JSON object, byte for byte as received.
    pub content: &'a str,
    /// The last top-level `sign` string, unescaped; `None` if absent or empty.
    pub sign: Option<String>,
}

/// How the signature of a parsed response was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureStatus {
    /// The signature verified with the Alipay public key.
    Verified,
    /// A business-error answer (it carries a `sub_code`) came without a signature; the SDKs
    /// accept these, so do we, but such an answer is never taken as proof of payment.
    UnsignedError,
}

/// One funding source of a payment (`fund_bill_list[]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct FundBill {
    /// `fund_channel`, e.g. `ALIPAYACCOUNT`, `PCREDIT` (花呗), `BANKCARD`.
    pub fund_channel: String,
    /// `amount` in yuan as sent.
    pub amount: String,
    /// `real_amount` if present.
    pub real_amount: Option<String>,
    /// `bank_code` if present.
    pub bank_code: Option<String>,
    /// `fund_type` if present (`DEBIT_CARD`, `CREDIT_CARD`, …).
    pub fund_type: Option<String>,
}

impl FundBill {
    /// True for Huabei (蚂蚁花呗) funding.
    pub fn is_huabei(&self) -> bool {
        self.fund_channel.eq_ignore_ascii_case("PCREDIT")
    }

    /// `amount` in fen.
    pub fn amount_fen(&self) -> Result<i64, AmountError> {
        yuan_to_fen(&self.amount)
    }
}

/// A verified Alipay response, fields as sent (strings), with typed accessors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Which node it came from (`error_response` for gateway-level errors).
    pub node_name: String,
    /// How the signature was established.
    pub signature: SignatureStatus,
    /// `code`.
    pub code: String,
    /// `msg`.
    pub msg: String,
    /// `sub_code`.
    pub sub_code: Option<String>,
    /// `sub_msg`.
    pub sub_msg: Option<String>,
    /// `trade_no` (Alipay's).
    pub trade_no: Option<String>,
    /// `out_trade_no` (ours).
    pub out_trade_no: Option<String>,
    /// `buyer_logon_id` (masked by Alipay).
    pub buyer_logon_id: Option<String>,
    /// `buyer_user_id`.
    pub buyer_user_id: Option<String>,
    /// `total_amount` (yuan).
    pub total_amount: Option<String>,
    /// `receipt_amount` (yuan).
    pub receipt_amount: Option<String>,
    /// `buyer_pay_amount` (yuan).
    pub buyer_pay_amount: Option<String>,
    /// `gmt_payment`.
    pub gmt_payment: Option<String>,
    /// `send_pay_date` (query).
    pub send_pay_date: Option<String>,
    /// `fund_bill_list`.
    pub fund_bill_list: Vec<FundBill>,
    /// `trade_status` (query).
    pub trade_status: Option<String>,
    /// `retry_flag` (cancel).
    pub retry_flag: Option<String>,
    /// `action` (cancel).
    pub action: Option<String>,
    /// `fund_change` (refund).
    pub fund_change: Option<String>,
    /// `refund_fee` (refund, yuan).
    pub refund_fee: Option<String>,
    /// `gmt_refund_pay` (refund/cancel).
    pub gmt_refund_pay: Option<String>,
}

/// `trade_status` of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeStatus {
    /// Created, waiting for the buyer to pay.
    WaitBuyerPay,
    /// Closed unpaid (timeout, cancel) or fully refunded.
    TradeClosed,
    /// Paid; refunds possible.
    TradeSuccess,
    /// Paid and finished; no refund possible.
    TradeFinished,
}

impl TradeStatus {
    /// Parse the wire value.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "WAIT_BUYER_PAY" => TradeStatus::WaitBuyerPay,
            "TRADE_CLOSED" => TradeStatus::TradeClosed,
            "TRADE_SUCCESS" => TradeStatus::TradeSuccess,
            "TRADE_FINISHED" => TradeStatus::TradeFinished,
            _ => return None,
        })
    }

    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            TradeStatus::WaitBuyerPay => "WAIT_BUYER_PAY",
            TradeStatus::TradeClosed => "TRADE_CLOSED",
            TradeStatus::TradeSuccess => "TRADE_SUCCESS",
            TradeStatus::TradeFinished => "TRADE_FINISHED",
        }
    }
}

/// `action` of a cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelAction {
    /// The trade was unpaid and is now closed.
    Close,
    /// The trade was paid and has been refunded.
    Refund,
}

impl Response {
    /// `code` as an enum.
    pub fn result_code(&self) -> ResultCode {
        ResultCode::parse(&self.code)
    }

    /// `trade_status`, if present and known.
    pub fn trade_status(&self) -> Option<TradeStatus> {
        self.trade_status.as_deref().and_then(TradeStatus::parse)
    }

    /// `retry_flag == "Y"`.
    pub fn should_retry(&self) -> bool {
        self.retry_flag.as_deref() == Some("Y")
    }

    /// `action` of a cancel; `None` when absent (the trade did not exist).
    pub fn cancel_action(&self) -> Option<CancelAction> {
        match self.action.as_deref() {
            Some("close") => Some(CancelAction::Close),
            Some("refund") => Some(CancelAction::Refund),
            _ => None,
        }
    }

    /// `fund_change == "Y"`: this refund call moved money (N: it was already refunded).
    pub fn fund_changed(&self) -> Option<bool> {
        self.fund_change.as_deref().map(|v| v == "Y")
    }

    /// `total_amount` in fen.
    pub fn total_fen(&self) -> Option<Result<i64, AmountError>> {
        self.total_amount.as_deref().map(yuan_to_fen)
    }

    /// `refund_fee` in fen.
    pub fn refund_fee_fen(&self) -> Option<Result<i64, AmountError>> {
        self.refund_fee.as_deref().map(yuan_to_fen)
    }

    /// True if any part of the payment was funded by Huabei (`fund_channel == PCREDIT`).
    pub fn paid_with_huabei(&self) -> bool {
        self.fund_bill_list.iter().any(FundBill::is_huabei)
    }

    /// What the terminal does next; see [`codes::disposition`].
    pub fn disposition(&self, method: Method) -> Disposition {
        codes::disposition(method, self)
    }
}

/// Locate the response node and the signature in a raw body.
pub fn extract(body: &str, method: Method) -> Result<RawResponse<'_>, ResponseError> {
    if body.len() > MAX_RESPONSE_LEN {
        return Err(ResponseError::TooLarge(body.len()));
    }
    let expected = method.response_node();
    let members = top_level_members(body)?;
    let find = |name: &str| {
        members
            .iter()
            .rev()
            .find(|m| m.key == name && body.as_bytes().get(m.value.0) == Some(&b'{'))
    };
    let node = find(&expected)
        .or_else(|| find("error_response"))
        .ok_or_else(|| ResponseError::NodeMissing {
            expected: expected.clone(),
        })?;
    let sign = members
        .iter()
        .rev()
        .find(|m| m.key == "sign")
        .and_then(|m| body.get(m.value.0..m.value.1))
        .and_then(|raw| serde_json::from_str::<String>(raw).ok())
        .filter(|s| !s.is_empty());
    Ok(RawResponse {
        node_name: node.key,
        content: body
            .get(node.value.0..node.value.1)
            .ok_or_else(|| ResponseError::Malformed("node bounds".into()))?,
        sign,
    })
}

/// Verify the node signature with the Alipay public key, following the Java SDK: answers that
/// are successes (no `sub_code`) or carry a `sign` must verify; on a mismatch, try once more
/// with `\/` read as `/` (gateways that escape slashes after signing).
pub fn verify(
    raw: &RawResponse<'_>,
    node: &Map<String, Value>,
    alipay_public_key: &RsaVerifier,
) -> Result<SignatureStatus, ResponseError> {
    let has_sub_code = node
        .get("sub_code")
        .is_some_and(|v| !v.is_null() && v.as_str() != Some(""));
    let Some(sign) = raw.sign.as_deref() else {
        return if has_sub_code {
            Ok(SignatureStatus::UnsignedError)
        } else {
            Err(SignatureError::Missing.into())
        };
    };
    match alipay_public_key.verify_base64(raw.content.as_bytes(), sign) {
        Ok(()) => Ok(SignatureStatus::Verified),
        Err(SignatureError::Mismatch) if raw.content.contains("\\/") => {
            let unescaped = raw.content.replace("\\/", "/");
            alipay_public_key.verify_base64(unescaped.as_bytes(), sign)?;
            Ok(SignatureStatus::Verified)
        }
        Err(e) => Err(e.into()),
    }
}

/// Extract, verify and read an Alipay response body.
pub fn parse_and_verify(
    body: &str,
    method: Method,
    alipay_public_key: &RsaVerifier,
) -> Result<Response, ResponseError> {
    let raw = extract(body, method)?;
    let node = match serde_json::from_str::<Value>(raw.content) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(ResponseError::Malformed("node is not an object".into())),
        Err(e) => return Err(ResponseError::Malformed(e.to_string())),
    };
    let signature = verify(&raw, &node, alipay_public_key)?;
    Ok(read_fields(raw.node_name, signature, &node))
}

fn text(node: &Map<String, Value>, key: &str) -> Option<String> {
    match node.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn read_fields(node_name: &str, signature: SignatureStatus, node: &Map<String, Value>) -> Response {
    let fund_bill_list = node
        .get("fund_bill_list")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_object)
                .map(|item| FundBill {
                    fund_channel: text(item, "fund_channel").unwrap_or_default(),
                    amount: text(item, "amount").unwrap_or_default(),
                    real_amount: text(item, "real_amount"),
                    bank_code: text(item, "bank_code"),
                    fund_type: text(item, "fund_type"),
                })
                .collect()
        })
        .unwrap_or_default();
    Response {
        node_name: node_name.to_owned(),
        signature,
        code: text(node, "code").unwrap_or_default(),
        msg: text(node, "msg").unwrap_or_default(),
        sub_code: text(node, "sub_code").filter(|s| !s.is_empty()),
        sub_msg: text(node, "sub_msg"),
        trade_no: text(node, "trade_no"),
        out_trade_no: text(node, "out_trade_no"),
        buyer_logon_id: text(node, "buyer_logon_id"),
        buyer_user_id: text(node, "buyer_user_id"),
        total_amount: text(node, "total_amount"),
        receipt_amount: text(node, "receipt_amount"),
        buyer_pay_amount: text(node, "buyer_pay_amount"),
        gmt_payment: text(node, "gmt_payment"),
        send_pay_date: text(node, "send_pay_date"),
        fund_bill_list,
        trade_status: text(node, "trade_status"),
        retry_flag: text(node, "retry_flag"),
        action: text(node, "action"),
        fund_change: text(node, "fund_change"),
        refund_fee: text(node, "refund_fee"),
        gmt_refund_pay: text(node, "gmt_refund_pay"),
    }
}

/// Assemble a response body around an already-serialised node (emulator side).
pub fn assemble(node_name: &str, content: &str, sign: Option<&str>) -> String {
    let name = Value::String(node_name.to_owned());
    match sign {
        Some(sign) => format!(
            "{{{name}:{content},\"sign\":{}}}",
            Value::String(sign.to_owned())
        ),
        None => format!("{{{name}:{content},\"sign\":\"\"}}"),
    }
}

/// Serialise `node`, sign it with the gateway key and wrap it (emulator side).
pub fn build_signed_response(
    node_name: &str,
    node: &Map<String, Value>,
    signer: &RsaSigner,
) -> Result<String, KeyError> {
    let content = Value::Object(node.clone()).to_string();
    let sign = signer.sign_base64(content.as_bytes())?;
    Ok(assemble(node_name, &content, Some(&sign)))
}

/// A top-level member of the response object: its key (raw, between the quotes) and the byte
/// range of its value.
struct Member<'a> {
    key: &'a str,
    value: (usize, usize),
}

fn malformed(what: &str, at: usize) -> ResponseError {
    ResponseError::Malformed(format!("{what} at byte {at}"))
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

/// Index just past the string literal starting at `i` (which is a `"`).
fn end_of_string(b: &[u8], mut i: usize) -> Result<usize, ResponseError> {
    let start = i;
    i += 1;
    loop {
        match b.get(i) {
            None => return Err(malformed("unterminated string", start)),
            Some(b'\\') => i += 2,
            Some(b'"') => return Ok(i + 1),
            Some(_) => i += 1,
        }
    }
}

/// Index just past the value starting at `i`.
fn end_of_value(b: &[u8], i: usize) -> Result<usize, ResponseError> {
    match b.get(i) {
        Some(b'"') => end_of_string(b, i),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j) {
                    None => return Err(malformed("unbalanced braces", i)),
                    Some(b'"') => {
                        j = end_of_string(b, j)?;
                        continue;
                    }
                    Some(b'{' | b'[') => depth += 1,
                    Some(b'}' | b']') => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(j + 1);
                        }
                    }
                    Some(_) => {}
                }
                j += 1;
            }
        }
        Some(_) => {
            let mut j = i;
            while let Some(&c) = b.get(j) {
                if matches!(c, b',' | b'}' | b']') || c.is_ascii_whitespace() {
                    break;
                }
                j += 1;
            }
            if j == i {
                Err(malformed("empty value", i))
            } else {
                Ok(j)
            }
        }
        None => Err(malformed("missing value", i)),
    }
}

fn top_level_members(body: &str) -> Result<Vec<Member<'_>>, ResponseError> {
    let b = body.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return Err(malformed("expected '{'", i));
    }
    i += 1;
    let mut members = Vec::new();
    loop {
        i = skip_ws(b, i);
        match b.get(i) {
            Some(b'}') => return Ok(members),
            Some(b'"') => {}
            _ => return Err(malformed("expected a key", i)),
        }
        let key_end = end_of_string(b, i)?;
        let key = body
            .get(i + 1..key_end - 1)
            .ok_or_else(|| malformed("key", i))?;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return Err(malformed("expected ':'", i));
        }
        i = skip_ws(b, i + 1);
        let end = end_of_value(b, i)?;
        members.push(Member {
            key,
            value: (i, end),
        });
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => return Ok(members),
            _ => return Err(malformed("expected ',' or '}'", i)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{GeneratedRsaKey, generate_rsa_key};
    use std::sync::OnceLock;

    fn gateway_key() -> &'static GeneratedRsaKey {
        static KEY: OnceLock<GeneratedRsaKey> = OnceLock::new();
        KEY.get_or_init(|| generate_rsa_key(2048).unwrap())
    }

    fn signed_body(content: &str) -> String {
        let sign = gateway_key()
            .signer()
            .unwrap()
            .sign_base64(content.as_bytes())
            .unwrap();
        assemble("alipay_trade_pay_response", content, Some(&sign))
    }

    #[test]
    fn a_huabei_payment_is_verified_over_the_exact_bytes_and_reported() {
        // Odd spacing, a brace and an escaped quote inside a string: the signed bytes must be
        // found verbatim, not re-serialised.
        let content = r#"{ "code":"10000","msg":"Success","trade_no":"2026112722001","out_trade_no":"T1","subject":"a}\"{b","total_amount":"12.00","fund_bill_list":[{"amount":"12.00","fund_channel":"PCREDIT"}] }"#;
        let body = signed_body(content);
        let verifier = gateway_key().verifier().unwrap();
        let raw = extract(&body, Method::TradePay).unwrap();
        assert_eq!(raw.content, content);
        let resp = parse_and_verify(&body, Method::TradePay, &verifier).unwrap();
        assert_eq!(resp.signature, SignatureStatus::Verified);
        assert!(resp.paid_with_huabei());
        assert_eq!(resp.total_fen(), Some(Ok(1200)));
        assert_eq!(resp.disposition(Method::TradePay), Disposition::Success);
    }

    #[test]
    fn a_tampered_amount_is_caught() {
        let content =
            r#"{"code":"10000","msg":"Success","out_trade_no":"T1","total_amount":"12.00"}"#;
        let body = signed_body(content).replace("12.00", "0.01");
        let err = parse_and_verify(&body, Method::TradePay, &gateway_key().verifier().unwrap())
            .unwrap_err();
        assert_eq!(err, ResponseError::Signature(SignatureError::Mismatch));
    }

    #[test]
    fn a_gateway_that_escapes_slashes_after_signing_still_verifies() {
        let signed_content = r#"{"code":"10000","msg":"Success","gmt_payment":"2026/11/27"}"#;
        let sign = gateway_key()
            .signer()
            .unwrap()
            .sign_base64(signed_content.as_bytes())
            .unwrap();
        let sent = signed_content.replace('/', "\\/");
        // Written by hand: such a gateway escapes the slashes of the signature too.
        let body = format!(
            r#"{{"alipay_trade_pay_response":{sent},"sign":"{}"}}"#,
            sign.replace('/', "\\/")
        );
        let resp =
            parse_and_verify(&body, Method::TradePay, &gateway_key().verifier().unwrap()).unwrap();
        assert_eq!(resp.gmt_payment.as_deref(), Some("2026/11/27"));
    }

    #[test]
    fn an_unsigned_error_is_accepted_but_an_unsigned_success_is_not() {
        let verifier = gateway_key().verifier().unwrap();
        let err_body = r#"{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature","sub_msg":"验签出错"},"sign":""}"#;
        let resp = parse_and_verify(err_body, Method::TradePay, &verifier).unwrap();
        assert_eq!(resp.signature, SignatureStatus::UnsignedError);
        assert_eq!(resp.node_name, "error_response");
        let ok_body = r#"{"alipay_trade_pay_response":{"code":"10000","msg":"Success"},"sign":""}"#;
        assert_eq!(
            parse_and_verify(ok_body, Method::TradePay, &verifier),
            Err(ResponseError::Signature(SignatureError::Missing))
        );
        // A forged "already paid" without a signature must not count as payment: like a
        // signed one, it only sends the terminal to query the number (never to cancel it).
        let forged = r#"{"alipay_trade_pay_response":{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_HAS_SUCCESS"}}"#;
        let resp = parse_and_verify(forged, Method::TradePay, &verifier).unwrap();
        assert_eq!(
            resp.disposition(Method::TradePay),
            Disposition::OrderNumberTaken
        );
    }

    #[test]
    fn the_node_name_in_a_string_value_does_not_fool_the_scanner() {
        let body = r#"{"x":"\"alipay_trade_pay_response\":{}","alipay_trade_query_response":{"code":"10000"},"sign":"AA=="}"#;
        assert!(matches!(
            extract(body, Method::TradePay),
            Err(ResponseError::NodeMissing { .. })
        ));
        assert_eq!(
            extract(body, Method::TradeQuery).unwrap().content,
            r#"{"code":"10000"}"#
        );
    }

    #[test]
    fn truncated_and_garbage_bodies_are_errors() {
        for body in [
            "",
            "{",
            r#"{"alipay_trade_pay_response":{"code":"10000""#,
            r#"{"alipay_trade_pay_response":"#,
            "[1,2]",
            r#"{"a":1,}"#,
            "{\"\\",
            "\u{feff}",
        ] {
            assert!(extract(body, Method::TradePay).is_err(), "{body:?}");
        }
    }
}
