//! QRA aggregator response handling must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smartpos_acquirer::qra::{Response, Service};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(fields) = smartpos_acquirer::xml::decode(text) {
        let r = Response::from_fields(fields);
        for s in Service::ALL {
            let _ = r.disposition(s);
        }
        let _ = (r.total_fen(), r.refund_fen());
    }
    let _ = Response::parse(text, "9d101c97133837e13dde2d32a5054abb");
});
