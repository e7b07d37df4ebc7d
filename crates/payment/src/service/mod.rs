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
//! A sale nothing answers for within `polling.resolution_window_ms` is shown to the till as
//! `unknown` with error code [`OUTCOME_UNKNOWN`] and resolved in the background at a slow,
//! backing-off pace until the acquirer answers.
//!
//! The journal is used from a blocking thread (`spawn_blocking`), never from the async
//! runtime's own threads: a `synchronous=FULL` commit waits for the disk.
//!
//! One module per concern: [`validate`] (input rules), `sale` (creating and paying sales,
//! cancelling), `lifecycle` (the pay/poll/cancel loop), `refund`, `resolver` (finishing
//! what is open) and `health` (`posctl doctor`).

mod health;
mod lifecycle;
pub mod netview;
mod refund;
pub mod reload;
mod resolver;
mod sale;
pub mod validate;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;

use crate::classify::Scheme;
use crate::config::{Config, ConfigError};
use crate::connector::{self, Connector};
use crate::explain::Explanation;
use crate::journal::{Journal, JournalError, Patch};
use crate::model::{
    FundingUsed, Refund, RefundState, SaleOptions, SaleState, Transaction, TxEvent, TxId,
};

/// Error code of a sale whose outcome nobody could establish within the resolution window:
/// the till must not charge again and should call support; the resolver goes on asking.
pub const OUTCOME_UNKNOWN: &str = "sale.outcome_unknown";

pub use health::Finding;
pub use netview::{NetworkView, PathDiagnosis};
pub use reload::{Prepared, ReloadError};
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
    /// A local risk rule or policy refused the payment. A sale created before is now failed;
    /// with [`PayTarget::New`] or at `Sale`, no sale was created.
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
    /// An update holds the install window: no new sale starts until it ends.
    #[error("{0}")]
    Installing(Explanation),
    /// The install window cannot open while sales are in flight.
    #[error("{0} sale(s) in flight: the install window opens when they are finished")]
    SalesInFlight(u32),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl PaymentError {
    /// The cashier-facing explanation, when there is one.
    pub fn explanation(&self) -> Option<&Explanation> {
        match self {
            PaymentError::NotPaymentCode(e)
            | PaymentError::SchemeDisabled(e)
            | PaymentError::Blocked(e)
            | PaymentError::Installing(e) => Some(e),
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
    /// Create the sale and pay it in one step. `order_ref` is the idempotency key: when it
    /// already names a sale (same amount), that sale is returned, and paid with this code
    /// if it is still awaiting one; never a second sale.
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
            .field("terminal_id", &self.inner.profile().config.terminal_id)
            .finish_non_exhaustive()
    }
}

/// One merchant configuration and the connectors built from it. A sale keeps the profile
/// it started with to its end, so a configuration applied meanwhile (see [`reload`]) never
/// changes a sale in flight; the next sale takes the new one.
pub(crate) struct Profile {
    config: Arc<Config>,
    connectors: HashMap<String, Arc<dyn Connector>>,
}

/// Whether new sales may start: closed while an update installs (see
/// [`PaymentService::close_for_install`]).
#[derive(Default)]
struct Gate {
    closed: bool,
    /// Sale and PayWithCode calls past the gate whose sale may not be journaled yet.
    starting: u32,
}

/// Counts a sale start past the gate until it is journaled (or refused).
struct Starting {
    inner: Arc<Inner>,
}

impl Drop for Starting {
    fn drop(&mut self) {
        let mut g = lock(&self.inner.gate);
        g.starting = g.starting.saturating_sub(1);
    }
}

/// The cashier's answer while an update installs.
pub fn installing() -> Explanation {
    Explanation::new(
        crate::explain::Cause::Software,
        "local.update_installing",
        "正在安装更新,请一分钟后再试",
        "an update is being installed, try again in a minute",
    )
}

struct Inner {
    /// The merchant configuration new sales use.
    current: RwLock<Arc<Profile>>,
    /// The profile each sale started in this process runs with, until it is finished.
    pinned: Mutex<HashMap<TxId, Arc<Profile>>>,
    /// Serialises configuration changes (check, write, install).
    reloading: tokio::sync::Mutex<()>,
    gate: Mutex<Gate>,
    journal: Arc<Mutex<Journal>>,
    events: broadcast::Sender<TxEvent>,
    /// Sales a live task is driving; the resolver leaves them alone.
    active: Mutex<HashSet<TxId>>,
    /// Woken when the cashier asks to cancel, so pollers need not sleep it out.
    cancel_wakeup: Notify,
    /// Sales handed to background resolution: when the resolver may look again, and the
    /// pause after that (doubling up to `polling.background_max_ms`).
    background: Mutex<HashMap<TxId, (Instant, Duration)>>,
    /// Refunds a task is sending now: each pending refund has one owner at a time.
    refunds_in_flight: Mutex<HashSet<i64>>,
    /// Woken when a refund's owner lets go of it.
    refund_released: Notify,
    /// When this process created each sale, on the monotonic clock: a wall-clock step (NTP
    /// at boot) must not expire a sale early.
    created: Mutex<HashMap<TxId, Instant>>,
    /// When this process sent each sale's current attempt, on the monotonic clock.
    submitted: Mutex<HashMap<TxId, Instant>>,
    /// Where a never-sent sale asks for netd's diagnosis of its path (none: not asked).
    network: RwLock<Option<Arc<dyn NetworkView>>>,
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
        let profile = Arc::new(Profile {
            config: Arc::new(config),
            connectors,
        });
        PaymentService {
            inner: Arc::new(Inner {
                current: RwLock::new(profile),
                pinned: Mutex::new(HashMap::new()),
                reloading: tokio::sync::Mutex::new(()),
                gate: Mutex::new(Gate::default()),
                journal: Arc::new(Mutex::new(journal)),
                events,
                active: Mutex::new(HashSet::new()),
                cancel_wakeup: Notify::new(),
                background: Mutex::new(HashMap::new()),
                refunds_in_flight: Mutex::new(HashSet::new()),
                refund_released: Notify::new(),
                created: Mutex::new(HashMap::new()),
                submitted: Mutex::new(HashMap::new()),
                network: RwLock::new(None),
            }),
        }
    }

    /// Open the journal and build a connector for every configured path.
    pub fn open(config: Config, journal_path: &Path) -> Result<PaymentService, StartError> {
        let connectors = build_connectors(&config)?;
        let journal = Journal::open(journal_path)?;
        Ok(PaymentService::new(config, journal, connectors))
    }

    /// Ask `view` for the network's diagnosis of a path whenever a sale fails without the
    /// payment having left the terminal (see [`netview`]).
    pub fn set_network_view(&self, view: Arc<dyn NetworkView>) {
        *self
            .inner
            .network
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(view);
    }

    /// The merchant configuration new sales use now.
    pub fn config(&self) -> Arc<Config> {
        self.inner.profile().config.clone()
    }

    /// Sales the till is still busy with: started and not finished, leaving out those
    /// handed to background resolution (the till was told "outcome unknown" and moved on;
    /// a restart resumes them from the journal).
    pub async fn sales_in_flight(&self) -> Result<u32, JournalError> {
        let open = self.inner.db(|j| j.unfinished_sales()).await?;
        let n = open
            .iter()
            .filter(|t| {
                t.explanation
                    .as_ref()
                    .is_none_or(|e| e.code != OUTCOME_UNKNOWN)
            })
            .count();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Close the till for an update: from now on Sale and PayWithCode are refused with
    /// [`PaymentError::Installing`]. Refused with [`PaymentError::SalesInFlight`] (and
    /// nothing closed) while a sale is in flight or being started.
    pub async fn close_for_install(&self) -> Result<(), PaymentError> {
        {
            let mut g = lock(&self.inner.gate);
            if g.starting > 0 {
                return Err(PaymentError::SalesInFlight(g.starting));
            }
            // Closed before counting: a sale that comes now is refused, and every sale that
            // came before is in the journal already.
            g.closed = true;
        }
        match self.sales_in_flight().await {
            Ok(0) => Ok(()),
            Ok(n) => {
                self.open_after_install();
                Err(PaymentError::SalesInFlight(n))
            }
            Err(e) => {
                self.open_after_install();
                Err(e.into())
            }
        }
    }

    /// Let sales start again.
    pub fn open_after_install(&self) {
        lock(&self.inner.gate).closed = false;
    }

    /// Whether an update holds the till closed.
    pub fn closed_for_install(&self) -> bool {
        lock(&self.inner.gate).closed
    }

    /// State changes of every sale and refund.
    pub fn subscribe(&self) -> broadcast::Receiver<TxEvent> {
        self.inner.events.subscribe()
    }

    /// One sale with everything its D-Bus object shows (the refunded sum included), read in
    /// one statement. Blocks the calling thread for the read; async callers use
    /// [`Self::read`].
    pub fn get(&self, tx: TxId) -> Result<Transaction, JournalError> {
        lock(&self.inner.journal).get(tx)
    }

    /// [`Self::get`] from a blocking thread, off the async runtime.
    pub async fn read(&self, tx: TxId) -> Result<Transaction, JournalError> {
        self.inner.db(move |j| j.get(tx)).await
    }

    /// The sale the app's order reference names (the newest, for journals from before
    /// references were unique): how an app finds its sale after a lost reply.
    pub async fn find_by_order_ref(
        &self,
        order_ref: &str,
    ) -> Result<Option<Transaction>, JournalError> {
        let order_ref = order_ref.to_owned();
        self.inner
            .db(move |j| j.find_by_order_ref(&order_ref))
            .await
    }

    pub fn list_recent(&self, n: usize) -> Result<Vec<Transaction>, JournalError> {
        lock(&self.inner.journal).list_recent(n)
    }

    /// [`Self::list_recent`] from a blocking thread, off the async runtime.
    pub async fn read_recent(&self, n: usize) -> Result<Vec<Transaction>, JournalError> {
        self.inner.db(move |j| j.list_recent(n)).await
    }

    /// Sales created since `since_ms`, oldest first, read from a blocking thread.
    pub async fn read_since(&self, since_ms: i64) -> Result<Vec<Transaction>, JournalError> {
        self.inner.db(move |j| j.sales_since(since_ms)).await
    }

    pub fn refunds_of(&self, tx: TxId) -> Result<Vec<Refund>, JournalError> {
        lock(&self.inner.journal).refunds_of(tx)
    }

    /// Run `f` with the journal (diagnostics, tests).
    pub fn with_journal<R>(&self, f: impl FnOnce(&Journal) -> R) -> R {
        f(&lock(&self.inner.journal))
    }

    /// A round trip through the journal on the path every sale takes (its lock, a blocking
    /// thread, a read): returns once the work loop could use the journal. A journal wedged
    /// by a stuck thread never returns, which is how the daemon's watchdog notices.
    pub async fn journal_alive(&self) -> Result<(), JournalError> {
        self.inner.db(|j| j.ping()).await
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
            // Activity first, then the state: read the other way round, a task that moves the
            // sale on and ends between the two reads would leave us returning the state it
            // had already left (a sale "cancelling" with nobody cancelling it).
            if !self.is_active(tx) {
                let t = self.read(tx).await?;
                if t.state != SaleState::Submitted {
                    return Ok(t);
                }
            }
            let tick = tokio::time::sleep(Duration::from_millis(10));
            tokio::select! {
                _ = events.recv() => {}
                _ = tick => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(self.read(tx).await?),
            }
        }
    }
}

/// A connector for every path of `config` (their files read and checked now).
pub(crate) fn build_connectors(
    config: &Config,
) -> Result<HashMap<String, Arc<dyn Connector>>, ConfigError> {
    let mut connectors = HashMap::new();
    for path in &config.path {
        connectors.insert(
            path.name.clone(),
            connector::from_config(path, &config.timeouts)?,
        );
    }
    Ok(connectors)
}

impl Inner {
    /// The profile new sales use.
    fn profile(&self) -> Arc<Profile> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The profile sale `tx` runs with: the one it started with in this process, else (a
    /// sale from before a restart) the current one.
    fn profile_of(&self, tx: TxId) -> Arc<Profile> {
        match lock(&self.pinned).get(&tx) {
            Some(p) => p.clone(),
            None => self.profile(),
        }
    }

    fn pin(&self, tx: TxId, profile: &Arc<Profile>) {
        lock(&self.pinned).insert(tx, profile.clone());
    }

    /// Pass the gate to start a sale, or be refused while an update installs.
    fn start_sale(self: &Arc<Self>) -> Result<Starting, PaymentError> {
        let mut g = lock(&self.gate);
        if g.closed {
            return Err(PaymentError::Installing(installing()));
        }
        g.starting += 1;
        Ok(Starting {
            inner: self.clone(),
        })
    }

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
        if t.state.is_terminal() {
            // Finished: it no longer needs the configuration it started with.
            lock(&self.pinned).remove(&t.id);
        }
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

    /// Run `f` with the journal on a blocking thread: a commit waits for the disk
    /// (`synchronous=FULL`) and must not hold up the runtime's threads.
    async fn db<R, F>(&self, f: F) -> R
    where
        F: FnOnce(&mut Journal) -> R + Send + 'static,
        R: Send + 'static,
    {
        let journal = self.journal.clone();
        match tokio::task::spawn_blocking(move || f(&mut lock(&journal))).await {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    async fn state_of(&self, tx: TxId) -> Result<SaleState, JournalError> {
        Ok(self.db(move |j| j.get(tx)).await?.state)
    }

    async fn transition(
        &self,
        tx: TxId,
        from: SaleState,
        to: SaleState,
        patch: &Patch<'_>,
    ) -> Result<Transaction, JournalError> {
        let owned = OwnedPatch::from(patch);
        let t = self
            .db(move |j| j.transition(tx, from, to, &owned.as_patch()))
            .await?;
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
    async fn advance(&self, tx: TxId, from: SaleState, to: SaleState, patch: &Patch<'_>) -> Step {
        match self.transition(tx, from, to, patch).await {
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

    /// The connector of the sale's path, from the profile it runs with (or, for a path
    /// that profile lacks, the current one).
    fn connector(&self, t: &Transaction) -> Option<Arc<dyn Connector>> {
        let path = t.path.as_ref()?;
        if let Some(c) = self.profile_of(t.id).connectors.get(path) {
            return Some(c.clone());
        }
        self.profile().connectors.get(path).cloned()
    }
}

/// A [`Patch`] that owns its data, to cross into the journal's blocking thread.
struct OwnedPatch {
    acquirer_trade_no: Option<String>,
    paid_fen: Option<i64>,
    funding: Option<Vec<FundingUsed>>,
    explanation: Option<Explanation>,
    clear_explanation: bool,
    release_code: bool,
    request_cancel: bool,
    note: Option<String>,
}

impl OwnedPatch {
    fn from(p: &Patch<'_>) -> OwnedPatch {
        OwnedPatch {
            acquirer_trade_no: p.acquirer_trade_no.map(str::to_owned),
            paid_fen: p.paid_fen,
            funding: p.funding.map(<[FundingUsed]>::to_vec),
            explanation: p.explanation.cloned(),
            clear_explanation: p.clear_explanation,
            release_code: p.release_code,
            request_cancel: p.request_cancel,
            note: p.note.map(str::to_owned),
        }
    }

    fn as_patch(&self) -> Patch<'_> {
        Patch {
            acquirer_trade_no: self.acquirer_trade_no.as_deref(),
            paid_fen: self.paid_fen,
            funding: self.funding.as_deref(),
            explanation: self.explanation.as_ref(),
            clear_explanation: self.clear_explanation,
            release_code: self.release_code,
            request_cancel: self.request_cancel,
            note: self.note.as_deref(),
        }
    }
}
