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
/// pings and systemd restarts the daemon, which is the point. A daemon whose work can wedge
/// elsewhere (a blocking thread holding a lock) uses [`spawn_watchdog_with`].
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    spawn_watchdog_with(|| async {})
}

/// [`spawn_watchdog`], pinging only after `alive()` completed: each period the task awaits
/// `alive()` (a round trip through the daemon's work loop) and then sends `WATCHDOG=1`. If
/// `alive()` never completes, no ping is sent again and systemd's watchdog kills the
/// daemon; one that completes late only delays the ping.
pub fn spawn_watchdog_with<F, Fut>(mut alive: F) -> Option<tokio::task::JoinHandle<()>>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let full = sd_notify::watchdog_enabled().filter(|d| !d.is_zero())?;
    let period = full / 2;
    tracing::info!("watchdog enabled, pinging every {period:?} once the work loop answers");
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        // A late answer must not be followed by a burst of catch-up pings.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            alive().await;
            let _ = sd_notify::notify(&[NotifyState::Watchdog]);
        }
    }))
}
