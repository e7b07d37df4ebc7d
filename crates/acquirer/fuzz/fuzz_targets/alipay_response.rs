//! Alipay response extraction, verification and field reading must never panic, whatever the
//! gateway (or a man in the middle) sends.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use smartpos_acquirer::alipay::{Method, response};
use smartpos_acquirer::keys::{RsaVerifier, generate_rsa_key};

fn verifier() -> &'static RsaVerifier {
    static V: OnceLock<RsaVerifier> = OnceLock::new();
    V.get_or_init(|| generate_rsa_key(2048).unwrap().verifier().unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for method in Method::ALL {
        let _ = response::extract(text, method);
        if let Ok(r) = response::parse_and_verify(text, method, verifier()) {
            let _ = r.disposition(method);
            let _ = r.total_fen();
            let _ = r.refund_fee_fen();
            let _ = r.fund_bill_list.iter().map(|b| b.amount_fen()).count();
        }
    }
    let _ = smartpos_acquirer::alipay::parse_gateway_params(text, text);
    let _ = smartpos_acquirer::alipay::parse_timestamp_gmt8(text);
    let _ = smartpos_acquirer::money::yuan_to_fen(text);
});
