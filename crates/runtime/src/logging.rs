//! Logging: to journald when systemd runs us (structured fields survive), to stderr otherwise.
//! The level comes from `SMARTPOS_LOG` (same syntax as `RUST_LOG`), default `info`.

use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

/// Install the global subscriber. Call once, first thing in `main`.
pub fn init(daemon: &str) {
    let filter = EnvFilter::try_from_env("SMARTPOS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let under_journald = stderr_is_journal();
    let journald = if under_journald {
        tracing_journald::layer()
            .map(|l| l.with_syslog_identifier(daemon.to_owned()))
            .ok()
    } else {
        None
    };
    let registry = tracing_subscriber::registry();
    match journald {
        Some(layer) => {
            let _ = registry.with(layer.with_filter(filter)).try_init();
        }
        None => {
            let stderr = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false)
                .with_filter(filter);
            let _ = registry.with(stderr).try_init();
        }
    }
}

/// True when stderr is the journal stream systemd gave us. systemd sets `JOURNAL_STREAM` to
/// the `device:inode` of that stream, and the variable is inherited by everything started
/// from the service: a test run from a CI job that runs as a systemd service has it too, with
/// stderr redirected to a file. Only a match of stderr's own device and inode counts (as
/// systemd.exec(5) says to check).
fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    stderr_dev_ino() == Some((dev, ino))
}

fn stderr_dev_ino() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sets or removes `JOURNAL_STREAM` for this test binary.
    fn set_journal_stream(value: Option<&str>) {
        match value {
            // SAFETY: only the one test below touches the environment, and nothing else in
            // this test binary reads it while it runs.
            Some(v) => unsafe { std::env::set_var("JOURNAL_STREAM", v) },
            // SAFETY: as above.
            None => unsafe { std::env::remove_var("JOURNAL_STREAM") },
        }
    }

    #[test]
    fn an_inherited_journal_stream_that_is_not_our_stderr_is_ignored() {
        set_journal_stream(Some("8:12345"));
        assert!(
            !stderr_is_journal(),
            "a stream of another process is not ours"
        );
        let (dev, ino) = stderr_dev_ino().expect("stderr is open in tests");
        set_journal_stream(Some(&format!("{dev}:{ino}")));
        assert!(stderr_is_journal(), "our own stderr's device and inode");
        set_journal_stream(Some("garbage"));
        assert!(!stderr_is_journal());
        set_journal_stream(None);
    }
}
