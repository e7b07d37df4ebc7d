//! WeChat v2 XML decoding and response handling must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smartpos_acquirer::wechat::{Api, Response, SignType};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(fields) = smartpos_acquirer::xml::decode(text) {
        // Whatever decodes must re-encode and decode to the same fields.
        let again = smartpos_acquirer::xml::decode(&smartpos_acquirer::xml::encode(&fields));
        assert_eq!(again.as_ref(), Ok(&fields));
        let r = Response::from_fields(fields);
        for api in [Api::Micropay, Api::OrderQuery, Api::Reverse, Api::Refund] {
            let _ = r.disposition(api);
        }
        let _ = (r.total_fen(), r.cash_fen(), r.refund_fen());
    }
    let _ = Response::parse(text, "192006250b4c09247ec02edce69f6a2d", SignType::Md5);
    let _ = Response::parse(text, "192006250b4c09247ec02edce69f6a2d", SignType::HmacSha256);
});
