//! Crash-test failpoints. With `SMARTPOS_FAILPOINT=<state-name>` in the environment, the
//! process aborts (as a kill -9 would end it: no destructors, no flush) right after the
//! journal commits a move into that state. Names are the journal's state names
//! (`submitted`, `waiting_for_customer`, …) and `refund_<state>` for refunds.
//!
//! Production never sets the variable; the check is one relaxed load after the first call.

use std::sync::OnceLock;

pub const ENV: &str = "SMARTPOS_FAILPOINT";

fn armed() -> Option<&'static str> {
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    POINT
        .get_or_init(|| std::env::var(ENV).ok().filter(|s| !s.is_empty()))
        .as_deref()
}

/// Called by the journal after each committed transition.
pub fn committed(state_name: &str) {
    if armed() == Some(state_name) {
        tracing::error!(
            failpoint = state_name,
            "failpoint hit: aborting after commit"
        );
        std::process::abort();
    }
}
