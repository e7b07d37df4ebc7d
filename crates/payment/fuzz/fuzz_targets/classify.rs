//! Anything a scanner can deliver goes through `classify`: it must never panic, and what it
//! calls a payment code must really be one (digits, a known prefix and length), so that no
//! URL or text is ever sent to an acquirer as `auth_code`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smartpos_payment::classify::{CodeClass, Scheme, classify, mask_code};
use smartpos_payment::explain;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let class = classify(text);
    // Every verdict but "payment" has a cashier-facing explanation.
    assert_eq!(explain::scan(&class).is_none(), class.scheme().is_some());
    if let CodeClass::Payment { scheme, code } = &class {
        assert!(
            code.bytes().all(|b| b.is_ascii_digit()),
            "non-digit payment code"
        );
        let prefix: u32 = code[..2].parse().expect("two digits");
        let ok = match scheme {
            Scheme::Alipay => (25..=30).contains(&prefix) && (16..=24).contains(&code.len()),
            Scheme::Wechat => (10..=15).contains(&prefix) && code.len() == 18,
            Scheme::Unionpay => prefix == 62 && code.len() == 19,
        };
        assert!(ok, "{scheme} code with a wrong prefix or length");
        // Classifying the normalised code again gives the same answer.
        assert_eq!(classify(code), class);
        // The mask never shows the middle of the code.
        let masked = mask_code(code);
        assert_eq!(masked.len(), code.len());
        assert_ne!(&masked[2..code.len() - 4], &code[2..code.len() - 4]);
    }
});
