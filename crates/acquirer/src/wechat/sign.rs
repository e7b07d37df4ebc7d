//! WeChat Pay v2 signing (also used by QRA gateways with MD5): non-empty parameters except
//! `sign`, ASCII-sorted, `k=v&…` with raw values, then `&key=<API key>`; MD5 or
//! HMAC-SHA256(key = API key), uppercase hex. Responses and notifications are checked the same
//! way.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

use crate::keys::SignatureError;

/// `sign_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignType {
    /// `MD5`, the default when `sign_type` is absent.
    #[default]
    Md5,
    /// `HMAC-SHA256`.
    HmacSha256,
}

impl SignType {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            SignType::Md5 => "MD5",
            SignType::HmacSha256 => "HMAC-SHA256",
        }
    }

    /// Parse the wire value; absent means MD5.
    pub fn parse(text: Option<&str>) -> Option<SignType> {
        match text {
            None | Some("") | Some("MD5") => Some(SignType::Md5),
            Some("HMAC-SHA256") => Some(SignType::HmacSha256),
            _ => None,
        }
    }
}

/// The string signed, *without* the trailing `&key=…` (so it can be logged when debugging a
/// signature mismatch without revealing the key).
pub fn string_to_sign(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .filter(|(k, v)| k.as_str() != "sign" && !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Compute `sign` for `params` with the merchant API key.
pub fn sign(params: &BTreeMap<String, String>, api_key: &str, sign_type: SignType) -> String {
    let mut text = string_to_sign(params);
    text.push_str("&key=");
    text.push_str(api_key);
    match sign_type {
        SignType::Md5 => hex::encode_upper(Md5::digest(text.as_bytes())),
        SignType::HmacSha256 => {
            // HMAC accepts keys of any length, so this cannot fail.
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(api_key.as_bytes())
                .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
            mac.update(text.as_bytes());
            hex::encode_upper(mac.finalize().into_bytes())
        }
    }
}

/// Check the `sign` field of `params`, in constant time.
pub fn verify(
    params: &BTreeMap<String, String>,
    api_key: &str,
    sign_type: SignType,
) -> Result<(), SignatureError> {
    let received = params
        .get("sign")
        .filter(|s| !s.is_empty())
        .ok_or(SignatureError::Missing)?;
    let expected = sign(params, api_key, sign_type);
    let received = received.to_ascii_uppercase();
    if received.len() != expected.len() {
        return Err(SignatureError::Mismatch);
    }
    let diff = received
        .bytes()
        .zip(expected.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff == 0 {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc_example() -> BTreeMap<String, String> {
        [
            ("appid", "wxd930ea5d5a258f4f"),
            ("mch_id", "10000100"),
            ("device_info", "1000"),
            ("body", "test"),
            ("nonce_str", "ibuaiVcKdpRxkhJA"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

    #[test]
    fn the_official_signing_example_gives_the_published_md5_and_hmac() {
        let params = doc_example();
        assert_eq!(
            string_to_sign(&params),
            "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA"
        );
        assert_eq!(
            sign(&params, KEY, SignType::Md5),
            "9A0A8659F005D6984697E2CA0A9CF3B7"
        );
        assert_eq!(
            sign(&params, KEY, SignType::HmacSha256),
            "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
        );
    }

    #[test]
    fn empty_values_and_the_sign_itself_are_not_signed() {
        let mut params = doc_example();
        params.insert("attach".into(), String::new());
        params.insert("sign".into(), "9A0A8659F005D6984697E2CA0A9CF3B7".into());
        verify(&params, KEY, SignType::Md5).unwrap();
        params.insert("body".into(), "tesT".into());
        assert_eq!(
            verify(&params, KEY, SignType::Md5),
            Err(SignatureError::Mismatch)
        );
        params.remove("sign");
        assert_eq!(
            verify(&params, KEY, SignType::Md5),
            Err(SignatureError::Missing)
        );
    }
}
