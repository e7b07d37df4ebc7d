//! Input rules: what a sale or refund may carry. Checked before anything is written.

use crate::model::{Currency, SaleOptions};

/// Largest amount any acquirer accepts: 100,000,000.00 yuan (Alipay `total_amount`).
pub const MAX_AMOUNT_FEN: i64 = 10_000_000_000;
pub const MAX_ORDER_REF_LEN: usize = 64;
pub const MAX_SUBJECT_LEN: usize = 128;
pub const MAX_OPERATOR_LEN: usize = 32;

/// Bad input: refused before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("amount {0} fen is not above zero: enter the amount again")]
    AmountNotPositive(i64),
    #[error(
        "amount {0} fen is above the 100,000,000.00 yuan any acquirer accepts: check the amount"
    )]
    AmountTooLarge(i64),
    #[error("currency {0:?} is not accepted; only CNY is")]
    UnknownCurrency(String),
    #[error("{field} is longer than {max} characters: shorten it")]
    TooLong { field: &'static str, max: usize },
    #[error(
        "{field} is empty or contains control, formatting or text-direction characters: send plain printable text"
    )]
    BadText { field: &'static str },
}

/// Characters that are invisible or change how the text around them is shown: control
/// characters, and Unicode format characters (general category Cf) such as the bidi
/// overrides U+202A–U+202E and isolates U+2066–U+2069, which can make `123-ABC` read as
/// something else on a receipt or in a back office (CVE-2021-42574, "Trojan Source"), plus
/// the line and paragraph separators.
pub fn is_hidden_char(c: char) -> bool {
    c.is_control()
        || matches!(
            u32::from(c),
            0x00AD
                | 0x0600..=0x0605
                | 0x061C
                | 0x06DD
                | 0x070F
                | 0x0890..=0x0891
                | 0x08E2
                | 0x180E
                | 0x200B..=0x200F
                | 0x2028..=0x202E
                | 0x2060..=0x2064
                | 0x2066..=0x206F
                | 0xFEFF
                | 0xFFF9..=0xFFFB
                | 0x110BD
                | 0x110CD
                | 0x13430..=0x1343F
                | 0x1BCA0..=0x1BCA3
                | 0x1D173..=0x1D17A
                | 0xE0001
                | 0xE0020..=0xE007F
        )
}

/// At most `max` characters of untrusted text for an error message, with hidden characters
/// shown as escapes and a note of how much was cut: a 1 MB option name must not come back
/// whole in the reply, nor end up in the log.
pub fn excerpt(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == max {
            let rest = s.chars().count() - n;
            out.push_str(&format!("… ({rest} more characters)"));
            return out;
        }
        if is_hidden_char(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

pub(super) fn check_text(
    field: &'static str,
    s: &str,
    max: usize,
    allow_empty: bool,
) -> Result<(), ValidationError> {
    if s.chars().count() > max {
        return Err(ValidationError::TooLong { field, max });
    }
    if (!allow_empty && s.trim().is_empty()) || s.chars().any(is_hidden_char) {
        return Err(ValidationError::BadText { field });
    }
    Ok(())
}

pub(super) fn check_amount(amount_fen: i64) -> Result<(), ValidationError> {
    if amount_fen <= 0 {
        Err(ValidationError::AmountNotPositive(amount_fen))
    } else if amount_fen > MAX_AMOUNT_FEN {
        Err(ValidationError::AmountTooLarge(amount_fen))
    } else {
        Ok(())
    }
}

/// Check a sale's input. The options' `disable_funding` is reduced to each known channel once
/// (sorted): an app sending the same channel 100,000 times must not have it journaled so.
pub(super) fn check_sale(
    amount_fen: i64,
    currency: &str,
    order_ref: &str,
    options: &mut SaleOptions,
) -> Result<Currency, ValidationError> {
    options.disable_funding.sort();
    options.disable_funding.dedup();
    check_amount(amount_fen)?;
    let currency = Currency::parse(currency)
        .ok_or_else(|| ValidationError::UnknownCurrency(currency.chars().take(16).collect()))?;
    check_text("order_ref", order_ref, MAX_ORDER_REF_LEN, false)?;
    if let Some(s) = &options.subject {
        check_text("subject", s, MAX_SUBJECT_LEN, false)?;
    }
    if let Some(s) = &options.operator_id {
        check_text("operator_id", s, MAX_OPERATOR_LEN, false)?;
    }
    Ok(currency)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FundingChannel;

    #[test]
    fn bad_sale_input_is_named() {
        let mut o = SaleOptions::default();
        assert_eq!(
            check_sale(0, "CNY", "A1", &mut o),
            Err(ValidationError::AmountNotPositive(0))
        );
        assert_eq!(
            check_sale(-5, "CNY", "A1", &mut o),
            Err(ValidationError::AmountNotPositive(-5))
        );
        assert_eq!(
            check_sale(MAX_AMOUNT_FEN + 1, "CNY", "A1", &mut o),
            Err(ValidationError::AmountTooLarge(MAX_AMOUNT_FEN + 1))
        );
        assert_eq!(
            check_sale(100, "USD", "A1", &mut o),
            Err(ValidationError::UnknownCurrency("USD".into()))
        );
        assert_eq!(
            check_sale(100, "CNY", &"x".repeat(65), &mut o),
            Err(ValidationError::TooLong {
                field: "order_ref",
                max: 64
            })
        );
        assert_eq!(
            check_sale(100, "CNY", "line\nbreak", &mut o),
            Err(ValidationError::BadText { field: "order_ref" })
        );
        assert_eq!(check_sale(100, "CNY", "A1", &mut o), Ok(Currency::Cny));
    }

    #[test]
    fn an_order_ref_that_reverses_its_own_text_is_refused() {
        let mut o = SaleOptions::default();
        // "INV-2024" followed by RIGHT-TO-LEFT OVERRIDE: shown reversed in a back office.
        for bad in [
            "INV\u{202E}4202",
            "A\u{2066}1",
            "A\u{200B}1",
            "A\u{FEFF}",
            "A\u{2028}B",
        ] {
            assert_eq!(
                check_sale(100, "CNY", bad, &mut o),
                Err(ValidationError::BadText { field: "order_ref" }),
                "{bad:?}"
            );
        }
        // Chinese text and ordinary punctuation stay welcome.
        assert_eq!(
            check_sale(100, "CNY", "订单-42/A_1", &mut o),
            Ok(Currency::Cny)
        );
    }

    #[test]
    fn a_disable_funding_list_is_kept_once_per_channel() {
        let mut o = SaleOptions {
            disable_funding: [FundingChannel::Huabei, FundingChannel::CreditCard]
                .into_iter()
                .cycle()
                .take(100_000)
                .collect(),
            ..SaleOptions::default()
        };
        check_sale(100, "CNY", "A1", &mut o).expect("valid");
        assert_eq!(
            o.disable_funding,
            [FundingChannel::Huabei, FundingChannel::CreditCard]
        );
    }

    #[test]
    fn an_echoed_name_is_cut_short_and_hidden_characters_are_shown() {
        let huge = "k".repeat(1 << 20);
        let e = excerpt(&huge, 40);
        assert!(e.len() < 100, "{} bytes", e.len());
        assert!(e.ends_with("(1048536 more characters)"), "{e}");
        assert_eq!(excerpt("a\u{202E}b", 40), "a\\u{202e}b");
    }
}
