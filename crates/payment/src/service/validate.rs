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
    #[error("{field} is empty or contains control characters: send printable text")]
    BadText { field: &'static str },
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
    if (!allow_empty && s.trim().is_empty()) || s.chars().any(char::is_control) {
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

pub(super) fn check_sale(
    amount_fen: i64,
    currency: &str,
    order_ref: &str,
    options: &SaleOptions,
) -> Result<Currency, ValidationError> {
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

    #[test]
    fn bad_sale_input_is_named() {
        let o = SaleOptions::default();
        assert_eq!(
            check_sale(0, "CNY", "A1", &o),
            Err(ValidationError::AmountNotPositive(0))
        );
        assert_eq!(
            check_sale(-5, "CNY", "A1", &o),
            Err(ValidationError::AmountNotPositive(-5))
        );
        assert_eq!(
            check_sale(MAX_AMOUNT_FEN + 1, "CNY", "A1", &o),
            Err(ValidationError::AmountTooLarge(MAX_AMOUNT_FEN + 1))
        );
        assert_eq!(
            check_sale(100, "USD", "A1", &o),
            Err(ValidationError::UnknownCurrency("USD".into()))
        );
        assert_eq!(
            check_sale(100, "CNY", &"x".repeat(65), &o),
            Err(ValidationError::TooLong {
                field: "order_ref",
                max: 64
            })
        );
        assert_eq!(
            check_sale(100, "CNY", "line\nbreak", &o),
            Err(ValidationError::BadText { field: "order_ref" })
        );
        assert_eq!(check_sale(100, "CNY", "A1", &o), Ok(Currency::Cny));
    }
}
