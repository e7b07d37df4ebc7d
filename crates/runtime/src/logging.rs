//! Logging: to journald when systemd runs us (structured fields survive), to stderr otherwise.
//! The level comes from `SMARTPOS_LOG` (same syntax as `RUST_LOG`), default `info`.

use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

/// Install the global subscriber. Call once, first thing in `main`.
pub fn init(daemon: &str) {
    let filter = EnvFilter::try_from_env("SMARTPOS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // systemd sets JOURNAL_STREAM when our stderr is connected to the journal.
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
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
