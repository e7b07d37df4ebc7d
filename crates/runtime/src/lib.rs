//! What every smartpos daemon shares, so that the daemons themselves stay thin:
//! configuration ([`config`]), logging ([`logging`]), systemd notification ([`notify`]),
//! clean shutdown ([`shutdown_signal`]), the system-bus connection ([`bus`]), the in-daemon
//! caller check ([`auth`]), exit codes ([`exit`]), masking of payment codes ([`redact`]) and the
//! `InvalidArgs` answer to arguments of the wrong type ([`strict`]), the error names a
//! method answers with ([`error`]) and signed files written atomically ([`signed`]).

pub mod auth;
pub mod bus;
pub mod config;
pub mod error;
pub mod exit;
pub mod logging;
pub mod notify;
pub mod redact;
pub mod signed;
pub mod strict;

/// Set once SIGTERM or SIGINT has arrived; see [`shutdown_signal`].
static SHUTDOWN: std::sync::OnceLock<tokio::sync::watch::Receiver<bool>> =
    std::sync::OnceLock::new();

/// Take over SIGTERM and SIGINT now. [`run_daemon`] calls this before the daemon's `main`
/// runs, so a stop that arrives while the daemon is still starting (its bus name just
/// appeared, systemd already stopping it) ends it cleanly instead of by the signal's default
/// action. Must be called inside the runtime; later calls do nothing.
pub fn install_shutdown_handler() {
    use tokio::signal::unix::{SignalKind, signal};
    if SHUTDOWN.get().is_some() {
        return;
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    if SHUTDOWN.set(rx).is_err() {
        return;
    }
    // Registering is synchronous: from here on the signals are ours, even before the task
    // below first runs.
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    tokio::spawn(async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            },
            (Ok(mut term), Err(e)) => {
                tracing::warn!("cannot listen for SIGINT ({e}); only SIGTERM stops this daemon");
                term.recv().await;
                tracing::info!("SIGTERM: shutting down");
            }
            (Err(e), _) => {
                tracing::warn!("cannot listen for SIGTERM ({e}); only Ctrl-C stops this daemon");
                let _ = tokio::signal::ctrl_c().await;
                tracing::info!("SIGINT: shutting down");
            }
        }
        let _ = tx.send(true);
    });
}

/// Resolves on SIGTERM (systemd stop) or SIGINT (Ctrl-C), whichever comes first, including
/// one that arrived before this was called (see [`install_shutdown_handler`]).
pub async fn shutdown_signal() {
    install_shutdown_handler();
    let Some(rx) = SHUTDOWN.get() else { return };
    let mut rx = rx.clone();
    // An error means the sender is gone without a signal: never happens while the runtime
    // lives; treat it as a stop rather than hang.
    let _ = rx.wait_for(|stop| *stop).await;
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
    {
        let _in_runtime = rt.enter();
        install_shutdown_handler();
    }
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
