//! Crash-test failpoints, compiled in only with the `failpoints` cargo feature (test builds:
//! `cargo build --features smartpos-paymentd/failpoints`, see the Makefile's `build-test`).
//! There, `SMARTPOS_FAILPOINT` in the environment names a journal state and what happens
//! right after the journal commits a move into it:
//!
//! - `<state>`: the process aborts, as a kill -9 would end it (no destructors, no flush);
//! - `hang:<state>`: the committing thread stops for good while it holds the journal, as a
//!   deadlock would leave it. The rest of the process runs on; nothing it does needs the
//!   journal can finish, so the daemon's watchdog pings stop (`smartpos-paymentd` pings only
//!   after a journal round trip) and systemd kills it. A service manager restarts the daemon
//!   with the same environment, so a hang fires **once per journal and state**: it leaves
//!   `<journal>.failpoint-hang-<state>` beside the journal file first, and a process that
//!   finds that file carries on (an in-memory journal: once per process).
//!
//! Names are the journal's state names (`submitted`, `waiting_for_customer`, …) and
//! `refund_<state>` for refunds.
//!
//! A build without the feature — every release build, `make install` — never reads the
//! variable: a stray environment entry cannot abort or wedge a till.

pub const ENV: &str = "SMARTPOS_FAILPOINT";

/// Whether this build honours [`ENV`].
pub const ENABLED: bool = cfg!(feature = "failpoints");

/// What an armed failpoint does.
#[cfg(feature = "failpoints")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Abort,
    Hang,
}

#[cfg(feature = "failpoints")]
fn parse(value: &str) -> Option<(Action, &str)> {
    let (action, state) = match value.strip_prefix("hang:") {
        Some(state) => (Action::Hang, state),
        None => (Action::Abort, value),
    };
    (!state.is_empty()).then_some((action, state))
}

#[cfg(feature = "failpoints")]
fn armed() -> Option<(Action, &'static str)> {
    use std::sync::OnceLock;
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    POINT
        .get_or_init(|| std::env::var(ENV).ok())
        .as_deref()
        .and_then(parse)
}

/// Called by the journal after each committed transition. `journal` is the journal's file
/// (`None` or empty for an in-memory one).
#[cfg(feature = "failpoints")]
pub fn committed(state_name: &str, journal: Option<&str>) {
    match armed() {
        Some((Action::Abort, s)) if s == state_name => {
            tracing::error!(
                failpoint = state_name,
                "failpoint hit: aborting after commit"
            );
            std::process::abort();
        }
        Some((Action::Hang, s)) if s == state_name && first_hang(state_name, journal) => {
            tracing::error!(
                failpoint = state_name,
                "failpoint hit: hanging after commit, holding the journal"
            );
            loop {
                std::thread::park();
            }
        }
        _ => {}
    }
}

/// Whether this hang has not fired yet for this journal; marks it fired.
#[cfg(feature = "failpoints")]
fn first_hang(state_name: &str, journal: Option<&str>) -> bool {
    use std::sync::atomic::{AtomicBool, Ordering};
    static FIRED_IN_MEMORY: AtomicBool = AtomicBool::new(false);
    let Some(journal) = journal.filter(|j| !j.is_empty()) else {
        return !FIRED_IN_MEMORY.swap(true, Ordering::SeqCst);
    };
    let marker = format!("{journal}.failpoint-hang-{state_name}");
    // create_new: exactly one process wins, and a restarted one finds the file. Synced, so
    // that a kill right after does not lose it.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
    {
        Ok(f) => {
            let _ = f.sync_all();
            if let Some(dir) = std::path::Path::new(&marker).parent()
                && let Ok(d) = std::fs::File::open(dir)
            {
                let _ = d.sync_all();
            }
            true
        }
        Err(e) => {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                tracing::warn!(%marker, "failpoint hang not armed: cannot write its marker: {e}");
            }
            false
        }
    }
}

/// Called by the journal after each committed transition; nothing in this build.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn committed(_state_name: &str, _journal: Option<&str>) {}

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
