//! What did the customer show? A payment code (付款码) is a short run of digits whose prefix
//! and length name the wallet; everything else that a scanner can read — above all the
//! merchant's or a person's *collection* QR (收款码), shown by mistake — must be recognised so
//! that the cashier hears "ask for the payment code", not "payment failed".
//!
//! Rules (docs/acquirers.md §1.8, §2.1, §3): Alipay 16–24 digits with prefix 25–30; WeChat 18 digits
//! with prefix 10–15 (15 = Hong Kong wallet); UnionPay 云闪付 19 digits with prefix 62. e-CNY
//! codes (19 digits, prefix 01) are recognised but not supported by this terminal.

use serde::{Deserialize, Serialize};

/// Longest input worth looking at. Real codes are at most 24 characters and collection URLs
/// are well under 200; anything longer is text that came from a document, not a wallet.
pub const MAX_SCANNED_LEN: usize = 512;

/// A wallet family that can be paid with a payment code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    Alipay,
    Wechat,
    Unionpay,
}

impl Scheme {
    pub const ALL: [Scheme; 3] = [Scheme::Alipay, Scheme::Wechat, Scheme::Unionpay];

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Alipay => "alipay",
            Scheme::Wechat => "wechat",
            Scheme::Unionpay => "unionpay",
        }
    }

    pub fn parse(s: &str) -> Option<Scheme> {
        Scheme::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whose collection QR the customer showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectionWallet {
    Alipay,
    Wechat,
    Unionpay,
}

/// Why a scan is not something this terminal can charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotPaymentCode {
    /// Nothing but whitespace.
    Empty,
    /// Longer than [`MAX_SCANNED_LEN`].
    Oversized,
    /// All digits, but no wallet uses this prefix/length combination (a barcode on goods,
    /// a truncated scan, a membership card).
    UnknownDigits,
    /// A recognised family this terminal does not accept (e-CNY).
    UnsupportedScheme,
    /// Some other URL: a web page, a mini-program link, a coupon.
    OtherUrl,
    /// Any other text.
    Text,
}

/// The verdict on one scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CodeClass {
    /// A payment code of this wallet; `code` is the normalised digits.
    Payment {
        scheme: Scheme,
        code: String,
    },
    /// A collection QR: the customer must open the *payment* code (付款码) instead.
    CollectionQr {
        wallet: CollectionWallet,
    },
    NotPayment {
        reason: NotPaymentCode,
    },
}

impl CodeClass {
    pub fn scheme(&self) -> Option<Scheme> {
        match self {
            CodeClass::Payment { scheme, .. } => Some(*scheme),
            _ => None,
        }
    }
}

/// Collection-QR URL prefixes, lower-case. QR alphanumeric mode upper-cases URLs, so the
/// comparison ignores case; plain `http://` variants exist on old printed stickers.
const COLLECTION_PREFIXES: &[(&str, CollectionWallet)] = &[
    ("https://qr.alipay.com/", CollectionWallet::Alipay),
    ("http://qr.alipay.com/", CollectionWallet::Alipay),
    ("wxp://", CollectionWallet::Wechat),
    ("https://payapp.weixin.qq.com/", CollectionWallet::Wechat),
    ("https://payapp.wechatpay.cn/", CollectionWallet::Wechat),
    ("https://qr.95516.com/", CollectionWallet::Unionpay),
    ("http://qr.95516.com/", CollectionWallet::Unionpay),
];

/// Classify one scan. Pure: no I/O, no allocation beyond the returned code.
pub fn classify(scanned: &str) -> CodeClass {
    if scanned.len() > MAX_SCANNED_LEN {
        return CodeClass::NotPayment {
            reason: NotPaymentCode::Oversized,
        };
    }
    // Keyboard-wedge scanners append CR/LF or a tab; some wallets render the code in groups
    // of four with spaces, which a camera decode of the 1-D barcode never has but a cashier
    // typing it by hand does.
    let trimmed = scanned.trim();
    if trimmed.is_empty() {
        return CodeClass::NotPayment {
            reason: NotPaymentCode::Empty,
        };
    }
    if let Some(wallet) = collection_wallet(trimmed) {
        return CodeClass::CollectionQr { wallet };
    }
    let compact: String = trimmed.chars().filter(|c| *c != ' ').collect();
    if !compact.is_empty() && compact.bytes().all(|b| b.is_ascii_digit()) {
        return classify_digits(compact);
    }
    if looks_like_url(trimmed) {
        return CodeClass::NotPayment {
            reason: NotPaymentCode::OtherUrl,
        };
    }
    CodeClass::NotPayment {
        reason: NotPaymentCode::Text,
    }
}

fn classify_digits(code: String) -> CodeClass {
    let len = code.len();
    let prefix: u32 = code
        .get(..2)
        .and_then(|p| p.parse().ok())
        .unwrap_or(u32::MAX);
    let scheme = match (prefix, len) {
        (25..=30, 16..=24) => Some(Scheme::Alipay),
        (10..=15, 18) => Some(Scheme::Wechat),
        (62, 19) => Some(Scheme::Unionpay),
        _ => None,
    };
    match scheme {
        Some(scheme) => CodeClass::Payment { scheme, code },
        None if prefix == 1 && len == 19 => CodeClass::NotPayment {
            reason: NotPaymentCode::UnsupportedScheme,
        },
        None => CodeClass::NotPayment {
            reason: NotPaymentCode::UnknownDigits,
        },
    }
}

fn collection_wallet(text: &str) -> Option<CollectionWallet> {
    COLLECTION_PREFIXES
        .iter()
        .find(|(prefix, _)| starts_with_ignore_case(text, prefix))
        .map(|(_, wallet)| *wallet)
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn looks_like_url(text: &str) -> bool {
    match text.find("://") {
        Some(i) if i > 0 => text[..i]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.'),
        _ => false,
    }
}

/// Mask a payment code for logs: first two and last four characters kept (the one rule, from
/// `smartpos-text`). A code is a bearer token for a minute.
pub use smartpos_text::mask_code;

#[cfg(test)]
mod tests {
    use super::*;

    fn pay(scheme: Scheme, code: &str) -> CodeClass {
        CodeClass::Payment {
            scheme,
            code: code.to_owned(),
        }
    }

    #[test]
    fn an_alipay_code_from_the_phone_is_alipay_at_every_allowed_length() {
        for len in 16..=24 {
            for prefix in 25..=30 {
                let code = format!("{prefix}{}", "7".repeat(len - 2));
                assert_eq!(classify(&code), pay(Scheme::Alipay, &code), "{code}");
            }
        }
    }

    #[test]
    fn an_alipay_prefix_with_a_wrong_length_is_not_a_code() {
        for code in ["2876544", "287654432109876", "2876544321098765432109876"] {
            assert_eq!(
                classify(code),
                CodeClass::NotPayment {
                    reason: NotPaymentCode::UnknownDigits
                },
                "{code}"
            );
        }
    }

    #[test]
    fn a_wechat_code_is_18_digits_with_prefix_10_to_15() {
        for prefix in 10..=15 {
            let code = format!("{prefix}4567890123456789");
            assert_eq!(classify(&code), pay(Scheme::Wechat, &code));
        }
        assert_eq!(
            classify("16345678901234567"),
            CodeClass::NotPayment {
                reason: NotPaymentCode::UnknownDigits
            }
        );
        assert_eq!(
            classify("1345678901234567890"),
            CodeClass::NotPayment {
                reason: NotPaymentCode::UnknownDigits
            }
        );
    }

    #[test]
    fn a_unionpay_code_is_19_digits_starting_62() {
        assert_eq!(
            classify("6212345678901234567"),
            pay(Scheme::Unionpay, "6212345678901234567")
        );
        // An 18-digit 62… code is neither UnionPay nor anything else.
        assert_eq!(
            classify("621234567890123456"),
            CodeClass::NotPayment {
                reason: NotPaymentCode::UnknownDigits
            }
        );
    }

    #[test]
    fn an_ecny_code_is_recognised_but_not_accepted() {
        assert_eq!(
            classify("0112345678901234567"),
            CodeClass::NotPayment {
                reason: NotPaymentCode::UnsupportedScheme
            }
        );
    }

    #[test]
    fn the_scanner_line_ending_and_hand_typed_spaces_are_ignored() {
        assert_eq!(
            classify("134567890123456789\r\n"),
            pay(Scheme::Wechat, "134567890123456789")
        );
        assert_eq!(
            classify("2876 5443 8256 6439 4"),
            pay(Scheme::Alipay, "28765443825664394")
        );
    }

    #[test]
    fn the_customer_showed_a_collection_qr_instead_of_the_payment_code() {
        let cases = [
            (
                "https://qr.alipay.com/fkx12345abcde",
                CollectionWallet::Alipay,
            ),
            (
                "HTTPS://QR.ALIPAY.COM/FKX12345ABCDE",
                CollectionWallet::Alipay,
            ),
            ("wxp://f2f0abcdefghijklmn", CollectionWallet::Wechat),
            (
                "https://payapp.weixin.qq.com/qr/AbCdEf?t=1",
                CollectionWallet::Wechat,
            ),
            (
                "https://qr.95516.com/00010000/0123456789",
                CollectionWallet::Unionpay,
            ),
        ];
        for (text, wallet) in cases {
            assert_eq!(classify(text), CodeClass::CollectionQr { wallet }, "{text}");
        }
    }

    #[test]
    fn other_urls_and_text_are_not_payment_codes() {
        assert_eq!(
            classify("https://example.com/menu"),
            CodeClass::NotPayment {
                reason: NotPaymentCode::OtherUrl
            }
        );
        // Look-alike host: qr.alipay.com.evil.example is not Alipay's collection host.
        assert_eq!(
            classify("https://qr.alipay.com.evil.example/x"),
            CodeClass::NotPayment {
                reason: NotPaymentCode::OtherUrl
            }
        );
        assert_eq!(
            classify("WIFI:S:shop;T:WPA;P:secret;;"),
            CodeClass::NotPayment {
                reason: NotPaymentCode::Text
            }
        );
        assert_eq!(
            classify("   "),
            CodeClass::NotPayment {
                reason: NotPaymentCode::Empty
            }
        );
        assert_eq!(
            classify(&"2".repeat(MAX_SCANNED_LEN + 1)),
            CodeClass::NotPayment {
                reason: NotPaymentCode::Oversized
            }
        );
        // Full-width digits are not ASCII digits and must not slip through.
        assert_eq!(
            classify("２８７６５４４３８２５６６４３９４"),
            CodeClass::NotPayment {
                reason: NotPaymentCode::Text
            }
        );
    }

    #[test]
    fn codes_are_masked_like_the_runtime_does() {
        assert_eq!(mask_code("287654321098765432"), "28************5432");
        assert_eq!(mask_code("12345"), "*****");
    }
}
