//! The install window: while an update installs (and may restart this daemon), no new sale
//! starts. One caller holds it at a time; it ends when that caller calls
//! `EndInstallWindow`, when its connection leaves the bus (the update service crashed or was
//! stopped), or after `install_window_max_s`, whichever comes first, so that a forgotten
//! window cannot keep the shop from selling.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use smartpos_payment::PaymentService;
use tokio::sync::Mutex;
use tokio::time::Instant;
use zbus::Connection;

/// Who holds the window, since when.
struct Held {
    holder: String,
    since: Instant,
    /// Tells a watcher of an earlier holding that it is over.
    generation: u64,
    watcher: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
pub struct Window {
    svc: PaymentService,
    max: Duration,
    held: Arc<Mutex<(Option<Held>, u64)>>,
}

/// Why the window cannot be opened or closed by this caller.
#[derive(Debug)]
pub enum Refusal {
    /// Sales in flight, or another caller holds it: try again later.
    Busy(String),
    /// The caller does not hold it.
    NotHolder(String),
    Failed(String),
}

impl Window {
    pub fn new(svc: PaymentService, max: Duration) -> Window {
        Window {
            svc,
            max,
            held: Arc::default(),
        }
    }

    /// Open the window for the bus connection `holder`. Opening it again by the same
    /// holder starts its time again.
    pub async fn begin(&self, holder: &str, conn: &Connection) -> Result<(), Refusal> {
        let mut state = self.held.lock().await;
        if let Some(h) = &state.0 {
            if h.holder != holder {
                return Err(Refusal::Busy(format!(
                    "the install window is held by {} (for {} s); try again when it ends",
                    h.holder,
                    h.since.elapsed().as_secs()
                )));
            }
            h.watcher.abort();
        } else {
            self.svc.close_for_install().await.map_err(|e| {
                if matches!(e, smartpos_payment::PaymentError::SalesInFlight(_)) {
                    Refusal::Busy(e.to_string())
                } else {
                    Refusal::Failed(e.to_string())
                }
            })?;
        }
        state.1 += 1;
        let generation = state.1;
        let watcher = tokio::spawn(
            self.clone()
                .watch(holder.to_owned(), generation, conn.clone()),
        );
        state.0 = Some(Held {
            holder: holder.to_owned(),
            since: Instant::now(),
            generation,
            watcher,
        });
        tracing::info!(
            holder,
            max_s = self.max.as_secs(),
            "install window open: new sales are refused"
        );
        Ok(())
    }

    /// Close the window held by `holder`. Closing a window nobody holds is not an error
    /// (the holder's retry after a lost reply).
    pub async fn end(&self, holder: &str) -> Result<(), Refusal> {
        let mut state = self.held.lock().await;
        match &state.0 {
            None => Ok(()),
            Some(h) if h.holder != holder => Err(Refusal::NotHolder(format!(
                "the install window is held by {}, not by this caller",
                h.holder
            ))),
            Some(_) => {
                if let Some(h) = state.0.take() {
                    h.watcher.abort();
                }
                self.svc.open_after_install();
                tracing::info!(
                    holder,
                    "install window closed by its holder: sales may start"
                );
                Ok(())
            }
        }
    }

    /// End holding `generation` (if it is still the current one), saying why.
    async fn release(&self, generation: u64, why: &str) {
        let mut state = self.held.lock().await;
        if state.0.as_ref().is_some_and(|h| h.generation == generation) {
            let h = state.0.take();
            self.svc.open_after_install();
            tracing::warn!(
                holder = h.as_ref().map(|h| h.holder.as_str()).unwrap_or(""),
                "install window closed: {why}; sales may start"
            );
        }
    }

    /// Wait for the holder to leave the bus or for the time to run out.
    async fn watch(self, holder: String, generation: u64, conn: Connection) {
        let left = async {
            let Ok(dbus) = zbus::fdo::DBusProxy::new(&conn).await else {
                return false;
            };
            let Ok(mut owners) = dbus
                .receive_name_owner_changed_with_args(&[(0, holder.as_str())])
                .await
            else {
                return false;
            };
            // Subscribed first, then asked: a holder that left in between is seen too.
            let Ok(name) = zbus::names::BusName::try_from(holder.as_str()) else {
                return false;
            };
            if !dbus.name_has_owner(name).await.unwrap_or(true) {
                return true;
            }
            while let Some(sig) = owners.next().await {
                if sig.args().is_ok_and(|a| a.new_owner().is_none()) {
                    return true;
                }
            }
            false
        };
        let max = self.max;
        tokio::select! {
            gone = left => {
                if gone {
                    self.release(generation, "its holder left the bus").await;
                } else {
                    // Cannot watch the bus: the time limit still applies.
                    tokio::time::sleep(max).await;
                    self.release(generation, "its time ran out").await;
                }
            }
            _ = tokio::time::sleep(max) => {
                self.release(generation, "its time ran out").await;
            }
        }
    }
}
