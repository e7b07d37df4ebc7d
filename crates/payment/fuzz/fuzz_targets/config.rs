//! The merchant configuration arrives from the fleet server: whatever it holds, parsing and
//! validation must answer with an error, never a panic, and an accepted config must only
//! contain https acquirer URLs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smartpos_payment::config::{Config, Endpoint};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Endpoint::parse(text);
    let _ = smartpos_payment::clock::parse_rfc3339_ms(text);
    if let Ok(cfg) = Config::parse(text) {
        for p in &cfg.path {
            assert!(
                p.url
                    .get(..8)
                    .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
            );
        }
        let _ = cfg.staleness(0, std::time::Duration::from_secs(1));
    }
});
