//! Payment codes are bearer tokens: whoever holds one can spend the customer's money for a
//! minute. They never appear whole in a log line, a D-Bus error or a journal note.

/// Mask a payment code for logging: keep the scheme prefix (first two characters) and the
/// last four, replace the rest with `*`. Anything of eight characters or fewer is masked
/// entirely but for its length, since prefix and tail would then reveal most of it.
///
/// ```
/// assert_eq!(smartpos_runtime::redact::mask_code("287654321098765432"), "28************5432");
/// assert_eq!(smartpos_runtime::redact::mask_code("12345"), "*****");
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
/// run of 10 or more digits is masked with [`mask_code`]. Non-digit text is kept, so a
/// collection URL stays recognisable.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alipay_code_keeps_prefix_and_last_four() {
        assert_eq!(mask_code("2876543210987654"), "28**********7654");
    }

    #[test]
    fn short_strings_reveal_nothing() {
        assert_eq!(mask_code("abcdefgh"), "********");
    }

    #[test]
    fn digits_inside_text_are_masked() {
        assert_eq!(
            mask_digits_in("code=134567890123456789&x=12"),
            "code=13************6789&x=12"
        );
    }
}
