//! [`PaymentService`]: the async API the daemon wires to D-Bus. It owns the journal, the
//! connectors and the lifecycle tasks; every state change is committed to the journal first
//! and then broadcast as a [`TxEvent`].
//!
//! Lifecycle of a sale (payments.md §1.7, §2.1):
//! - pay once with the code; a code is never sent twice (the journal refuses it);
//! - "waiting for the customer" is queried at the acquirer's pace until its window closes;
//! - an unknown outcome is queried; if it is not paid by the end of the window, the order is
//!   cancelled (Alipay) or reversed (WeChat, QRA), repeated while the acquirer says retry;
//! - a path is failed over only when it provably never received the payment.
//!
//! The same `settle` loop finishes sales after a crash ([`PaymentService::resolve_all`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};

use crate::classify::{CodeClass, Scheme, classify, mask_code};
use crate::clock;
use crate::config::{Config, ConfigError, PathKind};
use crate::connector::{
    self, CancelOutcome, Connector, Paid, PayOrder, PayOutcome, QueryOutcome, RefundOrder,
    RefundOutcome,
};
use crate::explain::{self, Cause, Explanation};
use crate::journal::{Journal, JournalError, NewAttempt, Patch};
use crate::model::{
    Currency, Refund, RefundState, SaleOptions, SaleState, Transaction, TxEvent, TxId,
};
use crate::risk::{self, RiskDecision, RiskInput};

/// Largest amount any acquirer accepts: 100,000,000.00 yuan (Alipay `total_amount`).
pub const MAX_AMOUNT_FEN: i64 = 10_000_000_000;
pub const MAX_ORDER_REF_LEN: usize = 64;
pub const MAX_SUBJECT_LEN: usize = 128;
pub const MAX_OPERATOR_LEN: usize = 32;

/// Bad input: refused before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("amount {0} fen is not above zero: enter the amount again")]
    AmountNotPositive(i64),
    #[error(
        "amount {0} fen is above the 100,000,000.00 yuan any acquirer accepts: check the amount"
    )]
    AmountTooLarge(i64),
    #[error("currency {0:?} is not accepted; only CNY is")]
    UnknownCurrency(String),
    #[error("{field} is longer than {max} characters: shorten it")]
    TooLong { field: &'static str, max: usize },
    #[error("{field} is empty or contains control characters: send printable text")]
    BadText { field: &'static str },
}

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

fn check_text(
    field: &'static str,
    s: &str,
    max: usize,
    allow_empty: bool,
) -> Result<(), ValidationError> {
    if s.chars().count() > max {
        return Err(ValidationError::TooLong { field, max });
    }
    if (!allow_empty && s.trim().is_empty()) || s.chars().any(char::is_control) {
        return Err(ValidationError::BadText { field });
    }
    Ok(())
}

fn check_amount(amount_fen: i64) -> Result<(), ValidationError> {
    if amount_fen <= 0 {
        Err(ValidationError::AmountNotPositive(amount_fen))
    } else if amount_fen > MAX_AMOUNT_FEN {
        Err(ValidationError::AmountTooLarge(amount_fen))
    } else {
        Ok(())
    }
}

fn check_sale(
    amount_fen: i64,
    currency: &str,
    order_ref: &str,
    options: &SaleOptions,
) -> Result<Currency, ValidationError> {
    check_amount(amount_fen)?;
    let currency = Currency::parse(currency)
        .ok_or_else(|| ValidationError::UnknownCurrency(currency.chars().take(16).collect()))?;
    check_text("order_ref", order_ref, MAX_ORDER_REF_LEN, false)?;
    if let Some(s) = &options.subject {
        check_text("subject", s, MAX_SUBJECT_LEN, false)?;
    }
    if let Some(s) = &options.operator_id {
        check_text("operator_id", s, MAX_OPERATOR_LEN, false)?;
    }
    Ok(currency)
}

/// Polling pace for a path: interval between queries and the window after submission in
/// which the customer may still confirm.
#[derive(Debug, Clone, Copy)]
struct Pace {
    interval: Duration,
    window: Duration,
    /// Alipay's flow counts queries (`max_query_retry`); WeChat's is a time window.
    max_queries: Option<u32>,
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

    /// Create a sale, journaled in `AwaitingCode`. Nothing is sent yet.
    pub async fn sale(
        &self,
        amount_fen: i64,
        currency: &str,
        order_ref: &str,
        options: SaleOptions,
    ) -> Result<TxId, PaymentError> {
        let currency = check_sale(amount_fen, currency, order_ref, &options)?;
        let t = lock(&self.inner.journal).create_sale(amount_fen, currency, order_ref, &options)?;
        tracing::info!(tx = %t.id, amount_fen, order_ref, "sale created, awaiting a payment code");
        self.inner.emit(&t, None, None);
        Ok(t.id)
    }

    /// Pay a sale with a scanned code. Returns once the attempt is journaled as `Submitted`;
    /// the rest of the lifecycle runs in the background and is reported on [`Self::subscribe`].
    pub async fn pay_with_code(&self, target: PayTarget, code: &str) -> Result<TxId, PaymentError> {
        let class = classify(code);
        let CodeClass::Payment { scheme, code } = class else {
            let e = explain::scan(&class).unwrap_or_else(|| explain::network_unreachable("?"));
            tracing::info!(code = %crate::classify::mask_code(code.trim()), reason = %e.code, "scan is not a payment code");
            return Err(PaymentError::NotPaymentCode(e));
        };
        if !self.inner.config.merchant.schemes.contains(&scheme) {
            return Err(PaymentError::SchemeDisabled(explain::scheme_disabled(
                scheme,
            )));
        }
        let tx = match target {
            PayTarget::Tx(tx) => tx,
            PayTarget::NextAwaiting => self.next_awaiting()?,
            PayTarget::New {
                amount_fen,
                currency,
                order_ref,
                options,
            } => {
                self.sale(amount_fen, &currency, &order_ref, options)
                    .await?
            }
        };
        let inner = &self.inner;
        let t = lock(&inner.journal).get(tx)?;
        if t.state != SaleState::AwaitingCode {
            return Err(PaymentError::WrongState { tx, state: t.state });
        }
        let route = inner
            .config
            .route_for(scheme, t.amount_fen)
            .ok_or(PaymentError::NoRoute { scheme })?;
        let paths = route.paths.clone();
        for p in &paths {
            if !inner.connectors.contains_key(p) {
                return Err(PaymentError::NoConnector(p.clone()));
            }
        }
        let decision = {
            let j = lock(&inner.journal);
            let now = clock::now_ms();
            let input = RiskInput {
                amount_fen: t.amount_fen,
                scheme,
                options: &t.options,
                committed_today_fen: j.committed_amount_since(clock::cst_day_start_ms(now))?,
                recent_submissions: j.submissions_since(
                    now - risk::velocity_window(&inner.config).as_millis() as i64,
                )?,
                same_amount_recent: j.submissions_of_amount_since(
                    t.amount_fen,
                    now - inner.config.risk.repeat_window_s as i64 * 1000,
                )?,
            };
            risk::evaluate(&inner.config, &input)
        };
        let (disabled, applied) = match decision {
            RiskDecision::Block(e) => {
                let t = inner.transition(
                    tx,
                    SaleState::AwaitingCode,
                    SaleState::Failed,
                    &Patch {
                        explanation: Some(&e),
                        note: Some(&format!("blocked by {}", e.code)),
                        ..Patch::default()
                    },
                )?;
                tracing::warn!(tx = %t.id, rule = %e.code, "sale refused by a local rule");
                return Err(PaymentError::Blocked(e));
            }
            RiskDecision::Allow { disabled, applied } => (disabled, applied),
        };
        let t = {
            let mut j = lock(&inner.journal);
            j.begin_attempt(
                tx,
                SaleState::AwaitingCode,
                &NewAttempt {
                    scheme,
                    path: &paths[0],
                    code: &code,
                    disabled_funding: &disabled,
                    terminal_id: &inner.config.terminal_id,
                },
            )?
        };
        tracing::info!(
            tx = %tx, %scheme, code = %mask_code(&code), path = %paths[0],
            out_trade_no = t.out_trade_no.as_deref().unwrap_or(""),
            rules = ?applied, "payment submitted"
        );
        inner.emit(&t, Some(SaleState::AwaitingCode), None);
        let guard = inner.activate(tx);
        let inner = inner.clone();
        tokio::spawn(async move {
            let _guard = guard;
            inner.drive_payment(tx, code, scheme, paths).await;
        });
        Ok(tx)
    }

    fn next_awaiting(&self) -> Result<TxId, PaymentError> {
        let j = lock(&self.inner.journal);
        j.unfinished_sales()?
            .into_iter()
            .find(|t| t.state == SaleState::AwaitingCode)
            .map(|t| t.id)
            .ok_or(PaymentError::NoSaleAwaitingCode)
    }

    /// Ask the acquirer now about a sale whose outcome is open, and return what is known.
    pub async fn query(&self, tx: TxId) -> Result<Transaction, PaymentError> {
        let t = self.get(tx)?;
        if matches!(t.state, SaleState::WaitingForCustomer | SaleState::Unknown)
            && let Some(guard) = self.inner.try_activate(tx)
        {
            let _guard = guard;
            self.inner.query_step(&t).await?;
        }
        Ok(self.get(tx)?)
    }

    /// Cancel a sale. Before a code: closed at once. In flight: the cancel is journaled and
    /// the lifecycle cancels/reverses at the acquirer. Paid, with no refund yet: voided by
    /// the acquirer's cancel/reverse (which refunds it).
    pub async fn cancel(&self, tx: TxId) -> Result<Transaction, PaymentError> {
        let inner = &self.inner;
        let t = self.get(tx)?;
        match t.state {
            SaleState::AwaitingCode => {
                let why = Explanation::new(
                    Cause::Guidance,
                    "local.cancelled_by_cashier",
                    "收银员已取消",
                    "cancelled by the cashier",
                );
                Ok(inner.transition(
                    tx,
                    SaleState::AwaitingCode,
                    SaleState::Cancelled,
                    &Patch {
                        explanation: Some(&why),
                        ..Patch::default()
                    },
                )?)
            }
            SaleState::Submitted | SaleState::WaitingForCustomer | SaleState::Unknown => {
                let t = lock(&inner.journal).request_cancel(tx)?;
                inner.cancel_wakeup.notify_waiters();
                inner.spawn_settle_if_idle(tx);
                Ok(t)
            }
            SaleState::Succeeded => {
                if !lock(&inner.journal).refunds_of(tx)?.is_empty() {
                    return Err(PaymentError::WrongState { tx, state: t.state });
                }
                let t = inner.transition(
                    tx,
                    SaleState::Succeeded,
                    SaleState::Cancelling,
                    &Patch {
                        note: Some("void requested by the cashier"),
                        ..Patch::default()
                    },
                )?;
                inner.spawn_settle_if_idle(tx);
                Ok(t)
            }
            SaleState::Cancelling | SaleState::Cancelled | SaleState::Failed => Ok(t),
        }
    }

    /// Refund part or all of a paid sale. `refund_ref` is the app's idempotency key: the
    /// same reference with the same amount returns the refund already made.
    pub async fn refund(
        &self,
        tx: TxId,
        amount_fen: i64,
        refund_ref: &str,
    ) -> Result<Refund, PaymentError> {
        check_amount(amount_fen)?;
        check_text("refund_ref", refund_ref, MAX_ORDER_REF_LEN, false)?;
        let inner = &self.inner;
        let (r, _new) = lock(&inner.journal).create_refund(
            tx,
            amount_fen,
            refund_ref,
            &inner.config.terminal_id,
        )?;
        if r.state.is_terminal() {
            return Ok(r);
        }
        let t = self.get(tx)?;
        inner.emit_refund(&t, &r);
        Ok(inner.send_refund(&t, r).await?)
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

    /// Finish every unfinished sale and refund in the journal: the start-up pass after a
    /// crash or reboot, and the periodic sweep. Sales a live task drives are skipped.
    pub async fn resolve_all(&self) -> Result<ResolveReport, PaymentError> {
        let inner = &self.inner;
        let mut report = ResolveReport::default();
        let now = clock::now_ms();
        let expiry = inner.config.polling.awaiting_code_expiry_ms as i64;
        let unfinished = lock(&inner.journal).unfinished_sales()?;
        let mut pending = Vec::new();
        for t in unfinished {
            if t.state == SaleState::AwaitingCode {
                if now - t.created_at_ms >= expiry && !self.is_active(t.id) {
                    let why = Explanation::new(
                        Cause::Guidance,
                        "local.expired",
                        "收款等待超时已取消,请重新发起收款",
                        "the sale waited too long for a code and was cancelled: start again",
                    );
                    match inner.transition(
                        t.id,
                        SaleState::AwaitingCode,
                        SaleState::Cancelled,
                        &Patch {
                            explanation: Some(&why),
                            ..Patch::default()
                        },
                    ) {
                        Ok(_) => report.expired += 1,
                        Err(JournalError::Conflict { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                continue;
            }
            let Some(guard) = inner.try_activate(t.id) else {
                continue;
            };
            report.examined += 1;
            // Each sale in its own task: one still inside its confirmation window must not
            // hold up the others.
            let task_inner = inner.clone();
            let id = t.id;
            pending.push((
                id,
                tokio::spawn(async move {
                    let _guard = guard;
                    task_inner.settle(id).await;
                }),
            ));
        }
        for (id, task) in pending {
            if let Err(e) = task.await {
                tracing::error!(tx = %id, error = %e, "resolver task ended abnormally");
            }
            if inner.state_of(id)?.is_terminal() {
                report.finished += 1;
            } else {
                report.still_open += 1;
            }
        }
        let refunds = lock(&inner.journal).unfinished_refunds()?;
        for r in refunds {
            let t = self.get(r.tx)?;
            let r = inner.send_refund(&t, r).await?;
            if r.state.is_terminal() {
                report.refunds_finished += 1;
            } else {
                report.still_open += 1;
            }
        }
        if report != ResolveReport::default() {
            tracing::info!(?report, "resolver pass");
        }
        Ok(report)
    }

    /// Health of the payment side: configuration age (cause 7), a TLS handshake with every
    /// acquirer path against its pinned CA (causes 3 and 6), and work left open in the
    /// journal.
    pub async fn doctor(&self, max_config_age: Duration) -> Vec<Finding> {
        let inner = &self.inner;
        let cfg = &inner.config;
        let mut out = Vec::new();
        let stale = cfg.staleness(clock::now_ms(), max_config_age);
        out.push(Finding {
            subject: "config".into(),
            ok: stale.is_none(),
            detail: format!(
                "version {}, synced {} ({} s ago)",
                cfg.version,
                cfg.synced_at,
                cfg.age(clock::now_ms()).as_secs()
            ),
            explanation: stale,
        });
        let mut names: Vec<_> = inner.connectors.keys().cloned().collect();
        names.sort();
        for name in names {
            let connector = inner.connectors[&name].clone();
            let (ok, detail, explanation) = match connector.probe().await {
                Ok(d) => (true, format!("TLS handshake in {} ms", d.as_millis()), None),
                Err(e) => {
                    let why = Explanation::new(
                        Cause::Network,
                        "net.acquirer_unreachable",
                        "无法与收单机构建立安全连接,请检查网络、系统时间和证书配置",
                        "cannot open a secure connection to the acquirer: check the network, the clock and the pinned CA",
                    )
                    .with_raw(Some(&e));
                    (false, e, Some(why))
                }
            };
            out.push(Finding {
                subject: format!("path:{name}"),
                ok,
                detail,
                explanation,
            });
        }
        match self.recent_failures(clock::now_ms() - 86_400_000) {
            Ok(failures) if !failures.is_empty() => {
                let detail = failures
                    .iter()
                    .map(|(e, n)| format!("{} ×{n} ({})", e.cause.as_str(), e.code))
                    .collect::<Vec<_>>()
                    .join(", ");
                out.push(Finding {
                    subject: "recent_failures".into(),
                    ok: false,
                    detail: format!("last 24 h: {detail}"),
                    explanation: failures.into_iter().next().map(|(e, _)| e),
                });
            }
            Ok(_) => out.push(Finding {
                subject: "recent_failures".into(),
                ok: true,
                detail: "no failed sale in the last 24 h".into(),
                explanation: None,
            }),
            Err(e) => tracing::warn!(error = %e, "cannot summarise recent failures"),
        }
        let open = lock(&inner.journal).unfinished_sales().map(|v| {
            v.iter()
                .filter(|t| t.state != SaleState::AwaitingCode)
                .count()
        });
        out.push(match open {
            Ok(n) => Finding {
                subject: "journal".into(),
                ok: true,
                detail: format!("{n} sale(s) being resolved"),
                explanation: None,
            },
            Err(e) => Finding {
                subject: "journal".into(),
                ok: false,
                detail: e.to_string(),
                explanation: Some(Explanation::new(
                    Cause::Software,
                    "local.journal_unreadable",
                    "交易日志无法读取,请联系技术支持",
                    "the payment journal cannot be read: call support",
                )),
            },
        });
        out
    }

    /// Why recent sales did not go through, most frequent first: each distinct failure code
    /// with its explanation and how often it occurred. "Can't take Huabei" shows up here as,
    /// e.g., `ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE` repeated.
    pub fn recent_failures(
        &self,
        since_ms: i64,
    ) -> Result<Vec<(Explanation, usize)>, JournalError> {
        let sales = lock(&self.inner.journal).sales_since(since_ms)?;
        let mut counts: Vec<(Explanation, usize)> = Vec::new();
        for t in sales {
            if !matches!(t.state, SaleState::Failed | SaleState::Cancelled) {
                continue;
            }
            let Some(e) = t.explanation else { continue };
            if e.code == "local.cancelled_by_cashier" {
                continue;
            }
            match counts.iter_mut().find(|(x, _)| x.code == e.code) {
                Some((_, n)) => *n += 1,
                None => counts.push((e, 1)),
            }
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.code.cmp(&b.0.code)));
        Ok(counts)
    }

    /// Run [`Self::resolve_all`] now and then every `polling.resolver_interval_ms`.
    pub fn spawn_resolver(&self) -> tokio::task::JoinHandle<()> {
        let svc = self.clone();
        let every = Duration::from_millis(self.inner.config.polling.resolver_interval_ms.max(10));
        tokio::spawn(async move {
            loop {
                if let Err(e) = svc.resolve_all().await {
                    tracing::error!(error = %e, "resolver pass failed; retrying later");
                }
                tokio::time::sleep(every).await;
            }
        })
    }
}

/// One line of a health check (`posctl doctor`).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// What was checked: `config`, `path:<name>`, `journal`.
    pub subject: String,
    pub ok: bool,
    pub detail: String,
    /// Set when not ok: the cause group and what to do.
    pub explanation: Option<Explanation>,
}

/// What one resolver pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResolveReport {
    pub examined: usize,
    pub finished: usize,
    pub still_open: usize,
    pub expired: usize,
    pub refunds_finished: usize,
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

    fn pace(&self, t: &Transaction) -> Pace {
        let p = &self.config.polling;
        let kind = t
            .path
            .as_deref()
            .and_then(|name| self.config.path(name))
            .map(|p| &p.kind);
        let ms = |interval: u64, window: u64| Pace {
            interval: Duration::from_millis(interval),
            window: Duration::from_millis(window),
            max_queries: None,
        };
        match kind {
            Some(PathKind::Alipay { .. }) => Pace {
                max_queries: Some(p.alipay_max_queries.max(1)),
                ..ms(
                    p.alipay_interval_ms,
                    p.alipay_interval_ms * u64::from(p.alipay_max_queries),
                )
            },
            Some(PathKind::Wechat { .. }) => ms(p.wechat_interval_ms, p.wechat_window_ms),
            Some(PathKind::Qra { .. }) | None => ms(p.qra_interval_ms, p.qra_window_ms),
        }
    }

    async fn drive_payment(
        self: &Arc<Self>,
        tx: TxId,
        code: String,
        scheme: Scheme,
        paths: Vec<String>,
    ) {
        let mut index = 0;
        loop {
            let t = match lock(&self.journal).get(tx) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(tx = %tx, error = %e, "cannot read the sale back; the resolver will finish it");
                    return;
                }
            };
            let Some(connector) = self.connectors.get(&paths[index]).cloned() else {
                return;
            };
            let order = PayOrder {
                out_trade_no: t.out_trade_no.clone().unwrap_or_default(),
                code: code.clone(),
                scheme,
                amount_fen: t.amount_fen,
                subject: t
                    .options
                    .subject
                    .clone()
                    .unwrap_or_else(|| self.config.merchant.name.clone()),
                disabled_funding: t.disabled_funding.clone(),
                terminal_id: self.config.terminal_id.clone(),
                operator_id: t.options.operator_id.clone(),
            };
            let outcome = connector.pay(&order).await;
            drop(order);
            let from = SaleState::Submitted;
            let step = match outcome {
                PayOutcome::NeverSent(why) if index + 1 < paths.len() => {
                    index += 1;
                    tracing::warn!(tx = %tx, failed = %paths[index - 1], next = %paths[index], %why, "path never received the payment; failing over");
                    let r = lock(&self.journal).begin_attempt(
                        tx,
                        SaleState::Submitted,
                        &NewAttempt {
                            scheme,
                            path: &paths[index],
                            code: &code,
                            disabled_funding: &t.disabled_funding,
                            terminal_id: &self.config.terminal_id,
                        },
                    );
                    match r {
                        Ok(t) => {
                            self.emit(&t, Some(SaleState::Submitted), None);
                            continue;
                        }
                        Err(e) => {
                            tracing::error!(tx = %tx, error = %e, "fail-over not journaled");
                            return;
                        }
                    }
                }
                PayOutcome::NeverSent(why) => {
                    let e = explain::network_unreachable(&why);
                    self.advance(
                        tx,
                        from,
                        SaleState::AwaitingCode,
                        &Patch {
                            explanation: Some(&e),
                            release_code: true,
                            note: Some("no path received the payment; code released"),
                            ..Patch::default()
                        },
                    );
                    return;
                }
                PayOutcome::Paid(p) => self.record_paid(tx, from, &p, "paid"),
                PayOutcome::Declined(e) => self.advance(
                    tx,
                    from,
                    SaleState::Failed,
                    &Patch {
                        explanation: Some(&e),
                        ..Patch::default()
                    },
                ),
                PayOutcome::WaitingForCustomer { trade_no } => {
                    let e = explain::waiting_for_customer();
                    self.advance(
                        tx,
                        from,
                        SaleState::WaitingForCustomer,
                        &Patch {
                            acquirer_trade_no: trade_no.as_deref(),
                            explanation: Some(&e),
                            ..Patch::default()
                        },
                    )
                }
                PayOutcome::Unknown(e) => self.advance(
                    tx,
                    from,
                    SaleState::Unknown,
                    &Patch {
                        explanation: Some(&e),
                        ..Patch::default()
                    },
                ),
            };
            if matches!(step, Step::Moved) {
                self.settle(tx).await;
            }
            return;
        }
    }

    fn record_paid(&self, tx: TxId, from: SaleState, p: &Paid, note: &str) -> Step {
        self.advance(
            tx,
            from,
            SaleState::Succeeded,
            &Patch {
                acquirer_trade_no: p.trade_no.as_deref(),
                paid_fen: p.paid_fen,
                funding: Some(&p.funding),
                clear_explanation: true,
                note: Some(note),
                ..Patch::default()
            },
        )
    }

    /// Drive a sale to a terminal state, or until only the resolver can go on.
    async fn settle(self: &Arc<Self>, tx: TxId) {
        loop {
            let t = match lock(&self.journal).get(tx) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(tx = %tx, error = %e, "cannot read the sale");
                    return;
                }
            };
            let step = match t.state {
                SaleState::AwaitingCode | SaleState::Failed | SaleState::Cancelled => return,
                SaleState::Succeeded => {
                    if t.cancel_requested && self.voidable(&t) {
                        self.advance(
                            tx,
                            SaleState::Succeeded,
                            SaleState::Cancelling,
                            &Patch {
                                note: Some("cancel requested while the payment was in flight"),
                                ..Patch::default()
                            },
                        )
                    } else {
                        return;
                    }
                }
                // Only seen after a crash: the request may or may not have left.
                SaleState::Submitted => self.advance(
                    tx,
                    SaleState::Submitted,
                    SaleState::Unknown,
                    &Patch {
                        note: Some("found submitted after a restart; outcome unknown"),
                        ..Patch::default()
                    },
                ),
                SaleState::WaitingForCustomer | SaleState::Unknown => self.poll(&t).await,
                SaleState::Cancelling => self.cancel_at_acquirer(&t).await,
            };
            if matches!(step, Step::Later) {
                return;
            }
        }
    }

    /// A paid sale is voided only if no refund touched it (else refunds are the way).
    fn voidable(&self, t: &Transaction) -> bool {
        lock(&self.journal)
            .refunds_of(t.id)
            .map(|r| r.is_empty())
            .unwrap_or(false)
    }

    /// Query at the acquirer's pace until paid, refused, cancelled by the cashier or out of
    /// time; then move on (to `Succeeded` or `Cancelling`).
    async fn poll(self: &Arc<Self>, t: &Transaction) -> Step {
        let pace = self.pace(t);
        let deadline_ms =
            t.submitted_at_ms.unwrap_or(t.created_at_ms) + pace.window.as_millis() as i64;
        // After a restart past the window: one query, then cancel. Otherwise wait one
        // interval before the first query (the customer needs time to type the password),
        // except for an unknown outcome, which is queried at once.
        let recovered = clock::now_ms() >= deadline_ms;
        let mut first = recovered || t.state == SaleState::Unknown;
        let mut queries = 0u32;
        loop {
            let t = match lock(&self.journal).get(t.id) {
                Ok(t) => t,
                Err(_) => return Step::Later,
            };
            if !matches!(t.state, SaleState::WaitingForCustomer | SaleState::Unknown) {
                return Step::Moved;
            }
            if t.cancel_requested {
                return self.advance(
                    t.id,
                    t.state,
                    SaleState::Cancelling,
                    &Patch {
                        note: Some("cancelled by the cashier"),
                        ..Patch::default()
                    },
                );
            }
            if !first {
                let nap = match pace.max_queries {
                    Some(_) => pace.interval,
                    None => {
                        let left =
                            Duration::from_millis((deadline_ms - clock::now_ms()).max(0) as u64);
                        pace.interval.min(left.max(Duration::from_millis(1)))
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(nap) => {}
                    _ = self.cancel_wakeup.notified() => continue,
                }
            }
            first = false;
            match self.query_step(&t).await {
                Ok(Some(step)) => return step,
                Ok(None) => {}
                Err(_) => return Step::Later,
            }
            queries += 1;
            let out_of_time = recovered
                || match pace.max_queries {
                    Some(max) => queries >= max,
                    None => clock::now_ms() >= deadline_ms,
                };
            if out_of_time {
                let t = match lock(&self.journal).get(t.id) {
                    Ok(t) => t,
                    Err(_) => return Step::Later,
                };
                let e = if t.state == SaleState::WaitingForCustomer {
                    explain::customer_did_not_confirm()
                } else {
                    t.explanation
                        .clone()
                        .unwrap_or_else(|| alipay_no_answer("no definite answer within the window"))
                };
                return self.advance(
                    t.id,
                    t.state,
                    SaleState::Cancelling,
                    &Patch {
                        explanation: Some(&e),
                        note: Some("window closed without payment; cancelling"),
                        ..Patch::default()
                    },
                );
            }
        }
    }

    /// One query. `Some(step)` when it decided the sale's next state.
    async fn query_step(&self, t: &Transaction) -> Result<Option<Step>, JournalError> {
        let Some(connector) = self.connector(t) else {
            return Ok(Some(Step::Later));
        };
        let Some(out) = t.out_trade_no.clone() else {
            return Ok(Some(Step::Later));
        };
        match connector.query(&out).await {
            QueryOutcome::Paid(p) => Ok(Some(self.record_paid(t.id, t.state, &p, "query: paid"))),
            QueryOutcome::Waiting => {
                if t.state == SaleState::Unknown {
                    let e = explain::waiting_for_customer();
                    self.advance(
                        t.id,
                        SaleState::Unknown,
                        SaleState::WaitingForCustomer,
                        &Patch {
                            explanation: Some(&e),
                            ..Patch::default()
                        },
                    );
                }
                Ok(None)
            }
            QueryOutcome::NotPaid(e) => {
                // Closed, revoked, failed or never arrived: cancel anyway, so an order that
                // arrives late cannot be paid afterwards.
                Ok(Some(self.advance(
                    t.id,
                    t.state,
                    SaleState::Cancelling,
                    &Patch {
                        explanation: Some(&e),
                        note: Some("query: not paid; cancelling to close it for good"),
                        ..Patch::default()
                    },
                )))
            }
            QueryOutcome::Unknown(why) => {
                tracing::info!(tx = %t.id, %why, "query gave no answer");
                Ok(None)
            }
        }
    }

    /// Cancel/reverse, repeated while the acquirer says retry, up to the configured count;
    /// after that the resolver keeps trying on its own schedule.
    async fn cancel_at_acquirer(&self, t: &Transaction) -> Step {
        let (Some(connector), Some(out)) = (self.connector(t), t.out_trade_no.clone()) else {
            tracing::error!(tx = %t.id, "cancelling sale has no path or order number");
            return Step::Later;
        };
        let p = &self.config.polling;
        for attempt in 0..p.cancel_max_attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(p.cancel_interval_ms)).await;
            }
            match connector.cancel(&out).await {
                CancelOutcome::Done { refunded } => {
                    let note = if refunded {
                        "cancelled at the acquirer; the paid amount was refunded"
                    } else {
                        "cancelled/reversed at the acquirer"
                    };
                    return self.advance(
                        t.id,
                        SaleState::Cancelling,
                        SaleState::Cancelled,
                        &Patch {
                            note: Some(note),
                            ..Patch::default()
                        },
                    );
                }
                CancelOutcome::Retry(why) => {
                    tracing::info!(tx = %t.id, attempt, %why, "cancel to be repeated");
                }
                CancelOutcome::Refused(e) => {
                    // Too late to cancel: the query tells whether the money was taken.
                    return match connector.query(&out).await {
                        QueryOutcome::Paid(paid) => {
                            tracing::warn!(tx = %t.id, code = %e.code, "cancel refused and the sale is paid; it stands (refund it if needed)");
                            self.advance(
                                t.id,
                                SaleState::Cancelling,
                                SaleState::Succeeded,
                                &Patch {
                                    acquirer_trade_no: paid.trade_no.as_deref(),
                                    paid_fen: paid.paid_fen,
                                    funding: Some(&paid.funding),
                                    explanation: Some(&e),
                                    note: Some("cancel refused; payment stands"),
                                    ..Patch::default()
                                },
                            )
                        }
                        QueryOutcome::NotPaid(_) => self.advance(
                            t.id,
                            SaleState::Cancelling,
                            SaleState::Cancelled,
                            &Patch {
                                note: Some("cancel refused but the order is not paid"),
                                ..Patch::default()
                            },
                        ),
                        QueryOutcome::Waiting | QueryOutcome::Unknown(_) => Step::Later,
                    };
                }
            }
        }
        Step::Later
    }

    async fn send_refund(&self, t: &Transaction, r: Refund) -> Result<Refund, JournalError> {
        let (Some(connector), Some(out)) = (self.connector(t), t.out_trade_no.clone()) else {
            return Ok(r);
        };
        let order = RefundOrder {
            out_trade_no: out,
            out_request_no: r.out_request_no.clone(),
            total_fen: t.paid_fen.unwrap_or(t.amount_fen),
            refund_fen: r.amount_fen,
        };
        let (to, e) = match connector.refund(&order).await {
            RefundOutcome::Refunded { .. } => (RefundState::Succeeded, None),
            RefundOutcome::Declined(e) => (RefundState::Failed, Some(e)),
            RefundOutcome::Unknown(why) => {
                tracing::info!(tx = %t.id, refund = r.id, %why, "refund outcome unknown; will repeat with the same number");
                (RefundState::Unknown, None)
            }
        };
        if to == r.state {
            return Ok(r);
        }
        let r = lock(&self.journal).refund_transition(r.id, r.state, to, e.as_ref())?;
        tracing::info!(tx = %t.id, refund = r.id, state = r.state.as_str(), amount_fen = r.amount_fen, "refund moved");
        self.emit_refund(t, &r);
        Ok(r)
    }
}

fn alipay_no_answer(detail: &str) -> Explanation {
    Explanation::new(
        Cause::Network,
        "net.no_answer",
        "网络超时,正在撤销该笔交易,请勿重复收款",
        "no answer in time; the sale is being cancelled: do not charge again",
    )
    .with_raw(Some(detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_sale_input_is_named() {
        let o = SaleOptions::default();
        assert_eq!(
            check_sale(0, "CNY", "A1", &o),
            Err(ValidationError::AmountNotPositive(0))
        );
        assert_eq!(
            check_sale(-5, "CNY", "A1", &o),
            Err(ValidationError::AmountNotPositive(-5))
        );
        assert_eq!(
            check_sale(MAX_AMOUNT_FEN + 1, "CNY", "A1", &o),
            Err(ValidationError::AmountTooLarge(MAX_AMOUNT_FEN + 1))
        );
        assert_eq!(
            check_sale(100, "USD", "A1", &o),
            Err(ValidationError::UnknownCurrency("USD".into()))
        );
        assert_eq!(
            check_sale(100, "CNY", &"x".repeat(65), &o),
            Err(ValidationError::TooLong {
                field: "order_ref",
                max: 64
            })
        );
        assert_eq!(
            check_sale(100, "CNY", "line\nbreak", &o),
            Err(ValidationError::BadText { field: "order_ref" })
        );
        assert_eq!(check_sale(100, "CNY", "A1", &o), Ok(Currency::Cny));
    }
}
