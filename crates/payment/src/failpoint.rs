//! Crash-test failpoints, compiled in only with the `failpoints` cargo feature (test builds:
//! `cargo build --features smartpos-paymentd/failpoints`, see the Makefile's `build-test`).
//! There, with `SMARTPOS_FAILPOINT=<state-name>` in the environment, the process aborts (as a
//! kill -9 would end it: no destructors, no flush) right after the journal commits a move
//! into that state. Names are the journal's state names (`submitted`,
//! `waiting_for_customer`, …) and `refund_<state>` for refunds.
//!
//! A build without the feature — every release build, `make install` — never reads the
//! variable: a stray environment entry cannot abort a till.

pub const ENV: &str = "SMARTPOS_FAILPOINT";

/// Whether this build honours [`ENV`].
pub const ENABLED: bool = cfg!(feature = "failpoints");

#[cfg(feature = "failpoints")]
fn armed() -> Option<&'static str> {
    use std::sync::OnceLock;
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    POINT
        .get_or_init(|| std::env::var(ENV).ok().filter(|s| !s.is_empty()))
        .as_deref()
}

/// Called by the journal after each committed transition.
#[cfg(feature = "failpoints")]
pub fn committed(state_name: &str) {
    if armed() == Some(state_name) {
        tracing::error!(
            failpoint = state_name,
            "failpoint hit: aborting after commit"
        );
        std::process::abort();
    }
}

/// Called by the journal after each committed transition; nothing in this build.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn committed(_state_name: &str) {}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use super::*;
    use crate::journal::Journal;
    use crate::model::{Currency, SaleOptions};

    const CHILD: &str = "failpoint::tests::child_commits_a_sale";

    /// The child half of the test below: commit a sale, which a failpoints build armed
    /// with `awaiting_code` does not survive.
    #[test]
    #[ignore = "run as a child process by the_failpoint_variable_does_only_what_the_build_allows"]
    fn child_commits_a_sale() {
        let mut j = Journal::open_in_memory().expect("journal");
        j.create_sale(100, Currency::Cny, "fp", &SaleOptions::default())
            .expect("sale");
    }

    #[test]
    fn the_failpoint_variable_does_only_what_the_build_allows() {
        let out = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", CHILD, "--ignored", "--test-threads=1"])
            .env(ENV, "awaiting_code")
            .stdin(Stdio::null())
            .output()
            .expect("run the child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if ENABLED {
            assert!(
                !out.status.success(),
                "a failpoints build must abort at the armed point: {stdout}"
            );
        } else {
            assert!(
                out.status.success() && stdout.contains("1 passed"),
                "a production build must ignore {ENV} and commit normally: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
