//! The Alipay string-to-sign, exactly as the SDKs build it (`AlipaySignature.getSignContent`):
//! every parameter actually sent except `sign`, empty keys/values dropped, ASCII-sorted by key,
//! joined `k=v&…` with raw (un-URL-encoded) values. A verifier uses what it received, including
//! parameters it does not know (the Java SDK signs its own `alipay_sdk`).

use std::collections::BTreeMap;

use crate::keys::{RsaVerifier, SignatureError};

/// Build the string to sign from request parameters (drops `sign`).
pub fn sign_content<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    content_excluding(params, &["sign"])
}

/// The string to check on an asynchronous notification: drops `sign` **and** `sign_type`
/// (`getSignCheckContentV1`).
pub fn notify_sign_content<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    content_excluding(params, &["sign", "sign_type"])
}

fn content_excluding<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    excluded: &[&str],
) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(k, v)| !k.is_empty() && !v.is_empty() && !excluded.contains(k))
        .collect();
    // Byte order on UTF-8 keys is ASCII order for the ASCII keys Alipay uses (Java TreeMap on
    // String compares UTF-16 units; identical for ASCII).
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Verify a received gateway request (emulator side): the `sign` parameter over
/// [`sign_content`] of everything else, with the app's public key.
pub fn verify_request(
    params: &BTreeMap<String, String>,
    app_public_key: &RsaVerifier,
) -> Result<(), SignatureError> {
    let sign = params.get("sign").ok_or(SignatureError::Missing)?;
    let content = sign_content(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    app_public_key.verify_base64(content.as_bytes(), sign)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alipay::{AppConfig, PayRequest, Request};
    use crate::keys::generate_rsa_key;

    #[test]
    fn the_documented_example_string_is_reproduced() {
        let biz = r#"{"out_trade_no":"20150320010101001","scene":"bar_code","auth_code":"28763443825664394","subject":"Iphone6 16G","total_amount":"88.88"}"#;
        let params = [
            ("timestamp", "2014-07-24 03:07:50"),
            ("method", "alipay.trade.pay"),
            ("app_id", "2014072300007148"),
            ("sign_type", "RSA2"),
            ("sign", "must-not-appear"),
            ("version", "1.0"),
            ("charset", "utf-8"),
            ("format", "json"),
            ("app_auth_token", ""),
            ("biz_content", biz),
        ];
        assert_eq!(
            sign_content(params),
            format!(
                "app_id=2014072300007148&biz_content={biz}&charset=utf-8&format=json&method=alipay.trade.pay&sign_type=RSA2&timestamp=2014-07-24 03:07:50&version=1.0"
            )
        );
        assert!(!notify_sign_content(params).contains("sign_type"));
    }

    #[test]
    fn the_gateway_accepts_what_the_terminal_signed_and_nothing_else() {
        let key = generate_rsa_key(2048).unwrap();
        let pay = PayRequest {
            out_trade_no: "T1".into(),
            auth_code: "28763443825664394".into(),
            subject: "咖啡".into(),
            total_fen: 1200,
            ..PayRequest::default()
        };
        let cfg = AppConfig {
            app_id: "2021000000000001".into(),
            app_auth_token: None,
        };
        let signed = Request::pay(&cfg, &pay, "2026-11-27 18:00:00")
            .unwrap()
            .sign(&key.signer().unwrap())
            .unwrap();
        // What arrives at the gateway, split across query and body as the SDKs do.
        let received =
            crate::alipay::parse_gateway_params(&signed.query_string(), &signed.form_body())
                .unwrap();
        assert_eq!(&received, signed.params());
        let verifier = key.verifier().unwrap();
        verify_request(&received, &verifier).unwrap();

        let mut tampered = received.clone();
        tampered.insert(
            "biz_content".into(),
            received["biz_content"].replace("12.00", "0.01"),
        );
        assert_eq!(
            verify_request(&tampered, &verifier),
            Err(SignatureError::Mismatch)
        );
        let mut unsigned = received;
        unsigned.remove("sign");
        assert_eq!(
            verify_request(&unsigned, &verifier),
            Err(SignatureError::Missing)
        );
    }
}
