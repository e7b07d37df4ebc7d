//! The link to smartpos-scannerd: a sale arms the scanner, and the code it reads in that
//! session pays that sale. A scan that is not a payment code (a collection QR, a wallet the
//! merchant does not take) leaves the sale waiting and tells the cashier why, via `Hint`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use smartpos_bus::scanner::ScannerProxy;
use smartpos_payment::{PayTarget, PaymentError, PaymentService, SaleState, TxId};
use smartpos_runtime::redact::mask_code;
use zbus::Connection;

use crate::service::{Hints, announce, lock};

/// Scanner session → the sale it pays, and when the session ends by itself.
///
/// A session id means something only to the scannerd run that handed it out and only while
/// the session lasts: an entry is dropped when the session times out (by its deadline here,
/// and on scannerd's SessionEnded), when the code it read has paid, and all entries are
/// dropped when scannerd's bus name changes owner. Otherwise, a code read in a vendor app's
/// own session that happened to get the same id would pay this sale.
#[derive(Default)]
pub struct Sessions {
    map: HashMap<u64, (TxId, Instant)>,
}

impl Sessions {
    pub fn insert(&mut self, session: u64, tx: TxId, until: Instant) {
        self.map.insert(session, (tx, until));
    }

    /// The sale `session` pays, if the session is ours and still running.
    pub fn sale_of(&mut self, session: u64, now: Instant) -> Option<TxId> {
        self.map.retain(|_, (_, until)| *until > now);
        self.map.get(&session).map(|(tx, _)| *tx)
    }

    pub fn remove(&mut self, session: u64) -> Option<TxId> {
        self.map.remove(&session).map(|(tx, _)| tx)
    }

    /// Forget the sessions of `tx`; their ids.
    pub fn remove_sale(&mut self, tx: TxId) -> Vec<u64> {
        let ids: Vec<u64> = self
            .map
            .iter()
            .filter(|(_, (t, _))| *t == tx)
            .map(|(k, _)| *k)
            .collect();
        for id in &ids {
            self.map.remove(id);
        }
        ids
    }

    /// Forget everything (scannerd restarted: its ids mean nothing now); the sales that were
    /// armed.
    pub fn clear(&mut self) -> Vec<TxId> {
        let mut txs: Vec<TxId> = self.map.drain().map(|(_, (tx, _))| tx).collect();
        txs.sort_unstable();
        txs.dedup();
        txs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_past_its_deadline_pays_nothing() {
        let mut s = Sessions::default();
        let now = Instant::now();
        s.insert(7, TxId(1), now + Duration::from_secs(60));
        s.insert(8, TxId(2), now + Duration::from_millis(10));
        assert_eq!(s.sale_of(7, now), Some(TxId(1)));
        assert_eq!(s.sale_of(8, now + Duration::from_secs(1)), None);
        assert_eq!(s.clear(), vec![TxId(1)]);
        assert_eq!(s.sale_of(7, now), None);
    }
}

#[derive(Clone)]
pub struct ScanLink {
    proxy: Option<ScannerProxy<'static>>,
    sessions: Arc<Mutex<Sessions>>,
    available: Arc<AtomicBool>,
}

impl ScanLink {
    pub async fn new(conn: &Connection, enabled: bool) -> ScanLink {
        let proxy = if enabled {
            match ScannerProxy::new(conn).await {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!("cannot make a scanner proxy: {e}");
                    None
                }
            }
        } else {
            None
        };
        ScanLink {
            proxy,
            sessions: Arc::default(),
            available: Arc::new(AtomicBool::new(enabled)),
        }
    }

    /// Whether this terminal uses smartpos-scannerd at all (`scanner = true`).
    pub fn enabled(&self) -> bool {
        self.proxy.is_some()
    }

    pub fn available(&self) -> bool {
        self.proxy.is_some() && self.available.load(Ordering::Relaxed)
    }

    /// Arm the scanner for sale `tx`. On failure, the hint to show the cashier.
    pub async fn arm(&self, tx: TxId, timeout_ms: u32) -> Result<(), String> {
        let Some(p) = &self.proxy else {
            return Err("the scanner is not used by this terminal: pay with PayWithCode / 本终端未启用扫码器".into());
        };
        // The deadline is taken before asking, so ours never outlives scannerd's.
        let until = Instant::now() + Duration::from_millis(u64::from(timeout_ms));
        match p.start_scan(timeout_ms, &[]).await {
            Ok(session) => {
                self.available.store(true, Ordering::Relaxed);
                lock(&self.sessions).insert(session, tx, until);
                tracing::info!(%tx, session, "scanner armed");
                Ok(())
            }
            Err(e) => {
                self.available.store(false, Ordering::Relaxed);
                tracing::warn!(%tx, "cannot arm the scanner: {e}");
                Err(format!(
                    "the scanner cannot be reached ({e}); check `posctl scanner status` / 扫码器无法连接, 请检查扫码器"
                ))
            }
        }
    }

    /// Stop scanning for sale `tx` (cancelled, or paid by other means).
    pub async fn disarm(&self, tx: TxId) {
        let sessions = lock(&self.sessions).remove_sale(tx);
        if let Some(p) = &self.proxy {
            for session in sessions {
                let _ = p.stop_scan(session).await;
            }
        }
    }

    /// Keep the session map honest: drop a session when scannerd says it ended, and drop them
    /// all when scannerd's bus name changes owner (it restarted and will hand out new ids).
    /// Sales that lose their session get a hint telling the cashier to scan again.
    pub fn spawn_session_watch(
        &self,
        svc: PaymentService,
        hints: Hints,
        conn: Connection,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let proxy = self.proxy.clone()?;
        let link = self.clone();
        Some(tokio::spawn(async move {
            let dbus = match zbus::fdo::DBusProxy::new(&conn).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!("cannot watch the scanner's bus name: {e}");
                    return;
                }
            };
            let owners = dbus
                .receive_name_owner_changed_with_args(&[(0, smartpos_bus::scanner::INTERFACE)])
                .await;
            let ended = proxy.receive_session_ended().await;
            let (mut owners, mut ended) = match (owners, ended) {
                (Ok(o), Ok(e)) => (o, e),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!("cannot watch scanner sessions: {e}");
                    return;
                }
            };
            loop {
                tokio::select! {
                    Some(sig) = owners.next() => {
                        let Ok(args) = sig.args() else { continue };
                        let orphaned = lock(&link.sessions).clear();
                        tracing::info!(
                            new_owner = ?args.new_owner(),
                            dropped = orphaned.len(),
                            "smartpos-scannerd changed owner: its session ids are void"
                        );
                        for tx in orphaned {
                            let Ok(t) = svc.read(tx).await else { continue };
                            if t.state != SaleState::AwaitingCode {
                                continue;
                            }
                            lock(&hints).insert(
                                tx,
                                "the scanner restarted and no longer scans for this sale: cancel it and start again / 扫码器已重启, 请取消本单后重新收款".into(),
                            );
                            let _ = announce(&conn, tx, t.state.as_str()).await;
                        }
                    }
                    Some(sig) = ended.next() => {
                        let Ok(args) = sig.args() else { continue };
                        if let Some(tx) = lock(&link.sessions).remove(args.session) {
                            tracing::info!(%tx, session = args.session, reason = %args.reason, "scan session ended");
                        }
                    }
                    else => break,
                }
            }
        }))
    }

    /// Take scanned codes and pay the sales they belong to, until the bus connection ends.
    pub fn spawn_listener(
        &self,
        svc: PaymentService,
        hints: Hints,
        conn: Connection,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let proxy = self.proxy.clone()?;
        let link = self.clone();
        Some(tokio::spawn(async move {
            let mut codes = match proxy.receive_code_scanned().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("cannot subscribe to scanned codes: {e}");
                    return;
                }
            };
            while let Some(sig) = codes.next().await {
                let Ok(args) = sig.args() else { continue };
                let Some(tx) = lock(&link.sessions).sale_of(args.session, Instant::now()) else {
                    continue;
                };
                tracing::info!(%tx, code = %mask_code(&args.text), source = %args.source, "code for sale");
                let outcome = svc.pay_with_code(PayTarget::Tx(tx), &args.text).await;
                let hint = match &outcome {
                    Ok(_) => None,
                    // The sale keeps waiting for a proper payment code.
                    Err(PaymentError::NotPaymentCode(e) | PaymentError::SchemeDisabled(e)) => {
                        crate::diagnose::scan_refused(tx, e);
                        Some(e.one_line())
                    }
                    Err(e) => Some(e.to_string()),
                };
                let keep_scanning = matches!(
                    outcome,
                    Err(PaymentError::NotPaymentCode(_) | PaymentError::SchemeDisabled(_))
                );
                if !keep_scanning {
                    lock(&link.sessions).remove(args.session);
                    let _ = proxy.stop_scan(args.session).await;
                }
                match hint {
                    Some(h) => {
                        tracing::info!(%tx, "scan did not pay: {h}");
                        lock(&hints).insert(tx, h);
                        if let Ok(t) = svc.read(tx).await {
                            let _ = announce(&conn, tx, t.state.as_str()).await;
                        }
                    }
                    None => {
                        lock(&hints).remove(&tx);
                    }
                }
            }
        }))
    }
}
