//! The one masking of payment codes and the one yuan parser (see README.md). No dependencies:
//! every smartpos crate may use it.

/// Mask a payment code: keep the scheme prefix (first two characters) and the last four,
/// replace the rest with `*`. Eight characters or fewer are masked entirely but for their
/// length, since prefix and tail would then reveal most of it.
///
/// ```
/// assert_eq!(smartpos_text::mask_code("287654321098765432"), "28************5432");
/// assert_eq!(smartpos_text::mask_code("12345"), "*****");
/// ```
pub fn mask_code(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    let n = chars.len();
    if n <= 8 {
        return "*".repeat(n);
    }
    let mut out = String::with_capacity(n);
    out.extend(&chars[..2]);
    out.extend(std::iter::repeat_n('*', n - 6));
    out.extend(&chars[n - 4..]);
    out
}

/// Mask anything that might be a payment code inside free text (a URL, a decoded QR): every
/// run of 10 or more digits is masked with [`mask_code`]. Other text is kept, so a collection
/// URL stays recognisable.
pub fn mask_digits_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 10 {
            out.push_str(&mask_code(run));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Why a yuan string is not an amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YuanError {
    /// Nothing was given.
    Empty,
    /// Not `digits[.d[d]]`.
    Malformed,
    /// More fen than an `i64` holds.
    Overflow,
}

impl std::fmt::Display for YuanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            YuanError::Empty => "the amount is empty",
            YuanError::Malformed => {
                "the amount is not yuan with at most two decimals (e.g. 12, 12.3, 12.34)"
            }
            YuanError::Overflow => "the amount is too large",
        })
    }
}

impl std::error::Error for YuanError {}

/// Parse yuan (`"88"`, `"88.8"`, `"88.88"`) into fen, on digits. Signs, spaces, exponents, a
/// trailing dot and a third decimal are refused: neither a cashier nor an acquirer means
/// anything exact by them.
///
/// ```
/// assert_eq!(smartpos_text::yuan_to_fen("88.88"), Ok(8888));
/// assert!(smartpos_text::yuan_to_fen("1.234").is_err());
/// ```
pub fn yuan_to_fen(text: &str) -> Result<i64, YuanError> {
    if text.is_empty() {
        return Err(YuanError::Empty);
    }
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) if !f.is_empty() => (w, f),
        Some(_) => return Err(YuanError::Malformed),
        None => (text, ""),
    };
    if whole.is_empty()
        || frac.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(YuanError::Malformed);
    }
    let whole: i64 = whole.parse().map_err(|_| YuanError::Overflow)?;
    let frac: i64 = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(2)
        .fold(0, |acc, b| acc * 10 + i64::from(b - b'0'));
    whole
        .checked_mul(100)
        .and_then(|f| f.checked_add(frac))
        .ok_or(YuanError::Overflow)
}

/// Format fen as yuan with two decimals (`8888` → `"88.88"`, `-5` → `"-0.05"`).
pub fn fen_to_yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_keeps_its_scheme_prefix_and_last_four_digits() {
        assert_eq!(mask_code("2876543210987654"), "28**********7654");
        assert_eq!(mask_code("134567890123456789"), "13************6789");
        assert_eq!(mask_code("123456789"), "12***6789");
    }

    #[test]
    fn a_short_string_reveals_only_its_length() {
        assert_eq!(mask_code("abcdefgh"), "********");
        assert_eq!(mask_code("1234567"), "*******");
        assert_eq!(mask_code(""), "");
    }

    #[test]
    fn masking_counts_characters_not_bytes() {
        assert_eq!(mask_code("付款码付款码付款码付"), "付款****付款码付");
    }

    #[test]
    fn digits_inside_text_are_masked() {
        assert_eq!(
            mask_digits_in("code=134567890123456789&x=12"),
            "code=13************6789&x=12"
        );
    }

    #[test]
    fn yuan_amounts_are_read_exactly() {
        assert_eq!(yuan_to_fen("88.88"), Ok(8888));
        assert_eq!(yuan_to_fen("0.5"), Ok(50));
        assert_eq!(yuan_to_fen("0.05"), Ok(5));
        assert_eq!(yuan_to_fen("12"), Ok(1200));
        assert_eq!(yuan_to_fen("007.10"), Ok(710));
    }

    #[test]
    fn anything_but_plain_yuan_is_refused() {
        for bad in [
            "1.234", "-1.00", "+1", "1e3", " 1", "1 ", "1.", ".5", "1.2.3", "1,00", "abc",
        ] {
            assert_eq!(yuan_to_fen(bad), Err(YuanError::Malformed), "{bad:?}");
        }
        assert_eq!(yuan_to_fen(""), Err(YuanError::Empty));
        assert_eq!(
            yuan_to_fen("92233720368547758.08"),
            Err(YuanError::Overflow)
        );
        assert_eq!(
            yuan_to_fen("99999999999999999999"),
            Err(YuanError::Overflow)
        );
    }

    #[test]
    fn fen_format_as_yuan_and_back() {
        for fen in [0, 5, 50, 8888, 1_000_000] {
            assert_eq!(yuan_to_fen(&fen_to_yuan(fen)), Ok(fen));
        }
        assert_eq!(fen_to_yuan(-5), "-0.05");
    }
}
