//! Nonces and order numbers. WeChat and QRA want a random `nonce_str` (≤32 chars) per request;
//! the terminal wants merchant order numbers that are unique without coordination.

use rand::Rng;
use rand::distr::Alphanumeric;

/// A 32-character alphanumeric nonce, as WeChat Pay v2 and QRA gateways expect.
pub fn nonce_str() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn nonces_are_32_chars_and_do_not_repeat() {
        let a = super::nonce_str();
        let b = super::nonce_str();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
