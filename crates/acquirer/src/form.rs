//! `application/x-www-form-urlencoded`, as the Alipay gateway reads it. A few lines of our own
//! rather than a dependency: the terminal only needs to encode, the emulator to decode.

use thiserror::Error;

/// A form/query string that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormError {
    /// A `%` escape is truncated or not hex.
    #[error("bad percent escape in form data at byte {0}; the sender must URL-encode values")]
    BadEscape(usize),
    /// The decoded bytes are not UTF-8 (the protocol says `charset=utf-8`).
    #[error("form data is not UTF-8; the sender must use charset=utf-8")]
    NotUtf8,
}

/// Percent-encode one value: unreserved characters stay, space becomes `+`.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3 / 2);
    for &b in value.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push_str(&format!("{b:02X}"));
            }
        }
    }
    out
}

/// Encode pairs as `k=v&k=v`.
pub fn encode_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Decode one component (`+` is a space).
pub fn decode(text: &str) -> Result<String, FormError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(FormError::BadEscape(i))?;
                let hi = (hex[0] as char)
                    .to_digit(16)
                    .ok_or(FormError::BadEscape(i))?;
                let lo = (hex[1] as char)
                    .to_digit(16)
                    .ok_or(FormError::BadEscape(i))?;
                // Both digits are < 16, so the byte cannot overflow.
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::NotUtf8)
}

/// Decode `k=v&k=v` into pairs, in order. Empty segments are skipped; a key without `=` has an
/// empty value.
pub fn decode_pairs(text: &str) -> Result<Vec<(String, String)>, FormError> {
    text.split('&')
        .filter(|s| !s.is_empty())
        .map(|seg| {
            let (k, v) = seg.split_once('=').unwrap_or((seg, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn biz_content_json_survives_the_round_trip() {
        let json = r#"{"subject":"Iphone6 16G","total_amount":"88.88","x":"a&b=c/中"}"#;
        let enc = encode(json);
        assert!(!enc.contains('&') && !enc.contains('"'));
        assert_eq!(decode(&enc).unwrap(), json);
    }

    #[test]
    fn truncated_escapes_are_errors_not_panics() {
        assert_eq!(decode("abc%4"), Err(FormError::BadEscape(3)));
        assert_eq!(decode("%zz"), Err(FormError::BadEscape(0)));
        assert_eq!(decode("%ff"), Err(FormError::NotUtf8));
        assert_eq!(
            decode_pairs("a=1&&b&c=%20+").unwrap(),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), String::new()),
                ("c".into(), "  ".into())
            ]
        );
    }
}
