//! Amounts are integer fen everywhere in smartpos; Alipay alone wants a yuan string on the wire.
//! The conversion is done on digits, never through floating point, so `88.88` stays `8888`.

use thiserror::Error;

/// Why an amount string from an acquirer could not be read as fen.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AmountError {
    /// The amount is empty; the acquirer response is incomplete — query the trade instead.
    #[error("amount is empty; query the trade to learn the real amount")]
    Empty,
    /// The amount is not `digits[.d[d]]`; treat the response as malformed and query the trade.
    #[error("amount {0:?} is not a yuan amount with at most two decimals; query the trade")]
    Malformed(String),
    /// The amount does not fit in i64 fen.
    #[error("amount {0:?} is too large to be a real payment; check the acquirer response")]
    Overflow(String),
}

/// Format integer fen as the yuan string Alipay expects: always two decimals (`8888` → `"88.88"`).
pub fn fen_to_yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Parse a yuan string (`"88"`, `"88.8"`, `"88.88"`) into fen. Signs, exponents, spaces and a
/// third decimal are refused: an acquirer never sends them, so seeing one means the response is
/// not what we think it is.
pub fn yuan_to_fen(text: &str) -> Result<i64, AmountError> {
    smartpos_text::yuan_to_fen(text).map_err(|e| match e {
        smartpos_text::YuanError::Empty => AmountError::Empty,
        smartpos_text::YuanError::Malformed => AmountError::Malformed(text.to_owned()),
        smartpos_text::YuanError::Overflow => AmountError::Overflow(text.to_owned()),
    })
}

/// Parse a WeChat/QRA integer-fen field (`total_fee`, `cash_fee`, `refund_fee`).
pub fn parse_fen(text: &str) -> Result<i64, AmountError> {
    if text.is_empty() {
        return Err(AmountError::Empty);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AmountError::Malformed(text.to_owned()));
    }
    text.parse()
        .map_err(|_| AmountError::Overflow(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_of_88_88_yuan_round_trips_through_fen() {
        assert_eq!(fen_to_yuan(8888), "88.88");
        assert_eq!(yuan_to_fen("88.88"), Ok(8888));
    }

    #[test]
    fn one_fen_and_whole_yuan_keep_two_decimals() {
        assert_eq!(fen_to_yuan(1), "0.01");
        assert_eq!(fen_to_yuan(100), "1.00");
        assert_eq!(yuan_to_fen("1"), Ok(100));
        assert_eq!(yuan_to_fen("0.5"), Ok(50));
    }

    #[test]
    fn strange_amounts_are_refused_not_guessed() {
        for bad in [
            "", "-1.00", "1.234", "1e3", " 1.00", "1.", ".5", "1,00", "+1",
        ] {
            assert!(yuan_to_fen(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(matches!(
            yuan_to_fen("99999999999999999999"),
            Err(AmountError::Overflow(_))
        ));
        assert!(parse_fen("12a").is_err());
        assert_eq!(parse_fen("1"), Ok(1));
    }
}
