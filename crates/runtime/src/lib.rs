//! What every smartpos daemon shares, so that the daemons themselves stay thin:
//! configuration ([`config`]), logging ([`logging`]), systemd notification ([`notify`]),
//! clean shutdown ([`shutdown_signal`]), the system-bus connection ([`bus`]), the in-daemon
//! caller check ([`auth`]), exit codes ([`exit`]) and masking of payment codes ([`redact`]).

pub mod auth;
pub mod bus;
pub mod config;
pub mod exit;
pub mod logging;
pub mod notify;
pub mod redact;

/// Resolves on SIGTERM (systemd stop) or SIGINT (Ctrl-C), whichever comes first.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM ({e}); only Ctrl-C will stop this daemon");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}

/// A failure that knows its exit code.
pub trait Failure: std::fmt::Display {
    fn exit(&self) -> exit::Exit;
}

/// Run a daemon's async `main` on a two-thread runtime; on failure log it (journal and
/// stderr, where a technician running it by hand looks) and return its exit code.
pub fn run_daemon<E: Failure>(
    daemon: &str,
    main: impl std::future::Future<Output = Result<(), E>>,
) -> std::process::ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return exit::Exit::Software.into();
        }
    };
    match rt.block_on(main) {
        Ok(()) => exit::Exit::Ok.into(),
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("{daemon}: {e}");
            e.exit().into()
        }
    }
}

/// This build's version, as daemons report it on the bus.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
