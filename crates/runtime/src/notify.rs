//! systemd notification: READY, STATUS and the watchdog. Outside systemd (no
//! `NOTIFY_SOCKET`) every call is a no-op, so daemons call them unconditionally.

use sd_notify::NotifyState;

/// Tell systemd start-up is complete (`Type=notify`).
pub fn ready() {
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready]) {
        tracing::warn!("sd_notify READY failed: {e}");
    }
}

/// A one-line status for `systemctl status`.
pub fn status(text: &str) {
    let _ = sd_notify::notify(&[NotifyState::Status(text)]);
}

/// Tell systemd we are stopping.
pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
}

/// If the unit has `WatchdogSec=`, ping at half the period from a task of its own.
///
/// The ping runs on the runtime that also serves the bus, so a wedged runtime stops the
/// pings and systemd restarts the daemon, which is the point.
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let full = sd_notify::watchdog_enabled().filter(|d| !d.is_zero())?;
    let period = full / 2;
    tracing::info!("watchdog enabled, pinging every {period:?}");
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            let _ = sd_notify::notify(&[NotifyState::Watchdog]);
        }
    }))
}
