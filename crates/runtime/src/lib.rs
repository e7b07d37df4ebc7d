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

/// This build's version, as daemons report it on the bus.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
