//! The link to smartpos-scannerd: a sale arms the scanner, and the code it reads in that
//! session pays that sale. A scan that is not a payment code (a collection QR, a wallet the
//! merchant does not take) leaves the sale waiting and tells the cashier why, via `Hint`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use smartpos_bus::scanner::ScannerProxy;
use smartpos_payment::{PayTarget, PaymentError, PaymentService, TxId};
use smartpos_runtime::redact::mask_code;
use zbus::Connection;

use crate::service::{Hints, announce, lock};

#[derive(Clone)]
pub struct ScanLink {
    proxy: Option<ScannerProxy<'static>>,
    /// Scanner session → the sale it pays.
    sessions: Arc<Mutex<HashMap<u64, TxId>>>,
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
        match p.start_scan(timeout_ms, &[]).await {
            Ok(session) => {
                self.available.store(true, Ordering::Relaxed);
                lock(&self.sessions).insert(session, tx);
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
        let sessions: Vec<u64> = {
            let mut s = lock(&self.sessions);
            let ids: Vec<u64> = s
                .iter()
                .filter(|(_, t)| **t == tx)
                .map(|(k, _)| *k)
                .collect();
            for id in &ids {
                s.remove(id);
            }
            ids
        };
        if let Some(p) = &self.proxy {
            for session in sessions {
                let _ = p.stop_scan(session).await;
            }
        }
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
                let Some(tx) = lock(&link.sessions).get(&args.session).copied() else {
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
                    lock(&link.sessions).remove(&args.session);
                    let _ = proxy.stop_scan(args.session).await;
                }
                match hint {
                    Some(h) => {
                        tracing::info!(%tx, "scan did not pay: {h}");
                        lock(&hints).insert(tx, h);
                        if let Ok(t) = svc.get(tx) {
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
