//! [`PaymentService`]: the async API the daemon wires to D-Bus. It owns the journal, the
//! connectors and the lifecycle tasks; every state change is committed to the journal first
//! and then broadcast as a [`TxEvent`].
//!
//! Lifecycle of a sale (docs/acquirers.md §1.7, §2.1):
//! - pay once with the code; a code is never sent twice (the journal refuses it);
//! - "waiting for the customer" is queried at the acquirer's pace until its window closes;
//! - an unknown outcome is queried; if it is not paid by the end of the window, the order is
//!   cancelled (Alipay) or reversed (WeChat, QRA), repeated while the acquirer says retry;
//! - a path is failed over only when it provably never received the payment.
//!
//! The same `settle` loop finishes sales after a crash ([`PaymentService::resolve_all`]).
//!
//! One module per concern: [`validate`] (input rules), `sale` (creating and paying sales,
//! cancelling), `lifecycle` (the pay/poll/cancel loop), `refund`, `resolver` (finishing
//! what is open) and `health` (`posctl doctor`).

mod health;
mod lifecycle;
mod refund;
mod resolver;
mod sale;
pub mod validate;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};

use crate::classify::Scheme;
use crate::config::{Config, ConfigError};
use crate::connector::{self, Connector};
use crate::explain::Explanation;
use crate::journal::{Journal, JournalError, Patch};
use crate::model::{Refund, RefundState, SaleOptions, SaleState, Transaction, TxEvent, TxId};

pub use health::Finding;
pub use resolver::ResolveReport;
pub use validate::{
    MAX_AMOUNT_FEN, MAX_OPERATOR_LEN, MAX_ORDER_REF_LEN, MAX_SUBJECT_LEN, ValidationError,
};

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// What was scanned is not a payment code; the sale still waits for one.
    #[error("not a payment code: {0}")]
    NotPaymentCode(Explanation),
    /// The merchant does not take this wallet; the sale still waits for another code.
    #[error("{0}")]
    SchemeDisabled(Explanation),
    /// A local risk rule or policy refused the sale; it is now failed.
    #[error("refused before sending: {0}")]
    Blocked(Explanation),
    #[error("{tx} is {state}; that is not possible now")]
    WrongState { tx: TxId, state: SaleState },
    #[error("no sale is waiting for a payment code: start a sale first")]
    NoSaleAwaitingCode,
    #[error(
        "no acquirer path is configured for {scheme} at this amount: check the merchant configuration"
    )]
    NoRoute { scheme: Scheme },
    #[error("configured path {0:?} has no connector: reload the merchant configuration")]
    NoConnector(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl PaymentError {
    /// The cashier-facing explanation, when there is one.
    pub fn explanation(&self) -> Option<&Explanation> {
        match self {
            PaymentError::NotPaymentCode(e)
            | PaymentError::SchemeDisabled(e)
            | PaymentError::Blocked(e) => Some(e),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Which sale a scanned code pays.
#[derive(Debug, Clone)]
pub enum PayTarget {
    /// This sale (must be awaiting a code).
    Tx(TxId),
    /// The oldest sale awaiting a code: what the daemon does with a scanner event.
    NextAwaiting,
    /// Create the sale and pay it in one step.
    New {
        amount_fen: i64,
        currency: String,
        order_ref: String,
        options: SaleOptions,
    },
}

#[derive(Clone)]
pub struct PaymentService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PaymentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentService")
            .field("terminal_id", &self.inner.config.terminal_id)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: Config,
    journal: Mutex<Journal>,
    connectors: HashMap<String, Arc<dyn Connector>>,
    events: broadcast::Sender<TxEvent>,
    /// Sales a live task is driving; the resolver leaves them alone.
    active: Mutex<HashSet<TxId>>,
    /// Woken when the cashier asks to cancel, so pollers need not sleep it out.
    cancel_wakeup: Notify,
}

/// Removes a sale from the active set when its task ends, however it ends.
struct ActiveGuard {
    inner: Arc<Inner>,
    tx: TxId,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        lock(&self.inner.active).remove(&self.tx);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves SQLite consistent (transactions roll back), so
    // the data behind a poisoned lock is still good.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

enum Step {
    /// State changed; look again.
    Moved,
    /// Nothing more can be done now; the resolver tries again later.
    Later,
}

impl PaymentService {
    /// Assemble from parts (tests inject connectors here).
    pub fn new(
        config: Config,
        journal: Journal,
        connectors: HashMap<String, Arc<dyn Connector>>,
    ) -> PaymentService {
        let (events, _) = broadcast::channel(256);
        PaymentService {
            inner: Arc::new(Inner {
                config,
                journal: Mutex::new(journal),
                connectors,
                events,
                active: Mutex::new(HashSet::new()),
                cancel_wakeup: Notify::new(),
            }),
        }
    }

    /// Open the journal and build a connector for every configured path.
    pub fn open(config: Config, journal_path: &Path) -> Result<PaymentService, StartError> {
        let journal = Journal::open(journal_path)?;
        let mut connectors = HashMap::new();
        for path in &config.path {
            connectors.insert(
                path.name.clone(),
                connector::from_config(path, &config.timeouts)?,
            );
        }
        Ok(PaymentService::new(config, journal, connectors))
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// State changes of every sale and refund.
    pub fn subscribe(&self) -> broadcast::Receiver<TxEvent> {
        self.inner.events.subscribe()
    }

    pub fn get(&self, tx: TxId) -> Result<Transaction, JournalError> {
        lock(&self.inner.journal).get(tx)
    }

    pub fn list_recent(&self, n: usize) -> Result<Vec<Transaction>, JournalError> {
        lock(&self.inner.journal).list_recent(n)
    }

    pub fn refunds_of(&self, tx: TxId) -> Result<Vec<Refund>, JournalError> {
        lock(&self.inner.journal).refunds_of(tx)
    }

    /// Run `f` with the journal (diagnostics, tests).
    pub fn with_journal<R>(&self, f: impl FnOnce(&Journal) -> R) -> R {
        f(&lock(&self.inner.journal))
    }

    /// Whether a live task is driving this sale.
    pub fn is_active(&self, tx: TxId) -> bool {
        lock(&self.inner.active).contains(&tx)
    }

    /// Wait until the sale is terminal, or until nothing is driving it and it is waiting
    /// for the resolver. Returns the sale as it then is.
    pub async fn wait_settled(
        &self,
        tx: TxId,
        limit: Duration,
    ) -> Result<Transaction, PaymentError> {
        let mut events = self.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let t = self.get(tx)?;
            if !self.is_active(tx) && t.state != SaleState::Submitted {
                return Ok(t);
            }
            let tick = tokio::time::sleep(Duration::from_millis(10));
            tokio::select! {
                _ = events.recv() => {}
                _ = tick => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(self.get(tx)?),
            }
        }
    }
}

impl Inner {
    fn activate(self: &Arc<Self>, tx: TxId) -> ActiveGuard {
        lock(&self.active).insert(tx);
        ActiveGuard {
            inner: self.clone(),
            tx,
        }
    }

    fn try_activate(self: &Arc<Self>, tx: TxId) -> Option<ActiveGuard> {
        lock(&self.active).insert(tx).then(|| ActiveGuard {
            inner: self.clone(),
            tx,
        })
    }

    fn spawn_settle_if_idle(self: &Arc<Self>, tx: TxId) {
        if let Some(guard) = self.try_activate(tx) {
            let inner = self.clone();
            tokio::spawn(async move {
                let _guard = guard;
                inner.settle(tx).await;
            });
        }
    }

    fn emit(&self, t: &Transaction, from: Option<SaleState>, refund: Option<(i64, RefundState)>) {
        // No subscriber is fine: the journal is the record, events are a courtesy.
        let _ = self.events.send(TxEvent {
            tx: t.id,
            from,
            to: t.state,
            refund,
            explanation: t.explanation.clone(),
        });
    }

    fn emit_refund(&self, t: &Transaction, r: &Refund) {
        let _ = self.events.send(TxEvent {
            tx: t.id,
            from: Some(t.state),
            to: t.state,
            refund: Some((r.id, r.state)),
            explanation: r.explanation.clone(),
        });
    }

    fn state_of(&self, tx: TxId) -> Result<SaleState, JournalError> {
        Ok(lock(&self.journal).get(tx)?.state)
    }

    fn transition(
        &self,
        tx: TxId,
        from: SaleState,
        to: SaleState,
        patch: &Patch<'_>,
    ) -> Result<Transaction, JournalError> {
        let t = lock(&self.journal).transition(tx, from, to, patch)?;
        tracing::info!(
            tx = %tx, %from, %to,
            why = t.explanation.as_ref().map(|e| e.code.as_str()).unwrap_or(""),
            "sale moved"
        );
        self.emit(&t, Some(from), None);
        Ok(t)
    }

    /// Like [`Self::transition`], for the lifecycle: a conflict (the cashier moved the sale)
    /// or a journal failure is logged and ends this step; the next pass re-reads.
    fn advance(&self, tx: TxId, from: SaleState, to: SaleState, patch: &Patch<'_>) -> Step {
        match self.transition(tx, from, to, patch) {
            Ok(_) => Step::Moved,
            Err(JournalError::Conflict { actual, .. }) => {
                tracing::info!(tx = %tx, %from, %to, %actual, "sale moved by someone else; re-reading");
                Step::Moved
            }
            Err(e) => {
                tracing::error!(tx = %tx, %from, %to, error = %e, "could not journal a transition");
                Step::Later
            }
        }
    }

    fn connector(&self, t: &Transaction) -> Option<Arc<dyn Connector>> {
        t.path
            .as_ref()
            .and_then(|p| self.connectors.get(p))
            .cloned()
    }
}
