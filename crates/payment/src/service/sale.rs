//! Creating a sale, paying it with a scanned code, asking about it and cancelling it.
//!
//! Everything that can refuse a payment is checked before anything is written: the code, the
//! wallet, the route and the rules. The rules weigh the journal's figures (today's total,
//! recent payments) in the same journal transaction that takes the code, so two sales at
//! once cannot both pass a limit only one of them fits in.

use tokio::time::Instant;

use std::sync::Arc;

use crate::classify::{CodeClass, Scheme, classify, mask_code};
use crate::clock;
use crate::config::Config;
use crate::explain::{self, Cause, Explanation};
use crate::journal::{Attempted, JournalError, NewAttempt, Patch, Windows};
use crate::model::{Currency, FundingChannel, SaleOptions, SaleState, Transaction, TxId};
use crate::risk::{self, RiskDecision, RiskInput};

use super::validate::check_sale;
use super::{ActiveGuard, Inner, PayTarget, PaymentError, PaymentService, Profile, lock};

impl PaymentService {
    /// Create a sale, journaled in `AwaitingCode`. Nothing is sent yet. `order_ref` is the
    /// app's idempotency key: the same reference with the same amount returns the sale it
    /// already names. A sale every wallet would refuse (above the per-sale limit, no funding
    /// channel left) is refused here rather than at the payment.
    pub async fn sale(
        &self,
        amount_fen: i64,
        currency: &str,
        order_ref: &str,
        mut options: SaleOptions,
    ) -> Result<TxId, PaymentError> {
        let currency = check_sale(amount_fen, currency, order_ref, &mut options)?;
        let _starting = self.inner.start_sale()?;
        let profile = self.inner.profile();
        if let Some(e) = risk::precheck(&profile.config, amount_fen, &options) {
            tracing::info!(amount_fen, order_ref, rule = %e.code, "sale refused before a code");
            return Err(PaymentError::Blocked(e));
        }
        let order_ref_owned = order_ref.to_owned();
        let (t, created) = self
            .inner
            .db(move |j| j.create_or_find_sale(amount_fen, currency, &order_ref_owned, &options))
            .await?;
        if created {
            self.inner.pin(t.id, &profile);
            lock(&self.inner.created).insert(t.id, Instant::now());
            tracing::info!(tx = %t.id, amount_fen, order_ref, "sale created, awaiting a payment code");
            self.inner.emit(&t, None, None);
        } else {
            tracing::info!(tx = %t.id, order_ref, state = %t.state, "sale repeated by its order_ref; returning it");
        }
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
        let inner = &self.inner;
        let attempted = match target {
            PayTarget::New {
                amount_fen,
                currency,
                order_ref,
                mut options,
            } => {
                let profile = inner.profile();
                accepts(&profile.config, scheme)?;
                let currency = check_sale(amount_fen, &currency, &order_ref, &mut options)?;
                let _starting = inner.start_sale()?;
                if let Some(e) = risk::precheck(&profile.config, amount_fen, &options) {
                    return Err(PaymentError::Blocked(e));
                }
                let paths = paths_for(&profile, scheme, amount_fen)?;
                let (attempted, guard) = self
                    .pay_new(
                        &profile, amount_fen, currency, order_ref, options, scheme, &code, &paths,
                    )
                    .await?;
                match attempted {
                    Attempted::Existing(t) => {
                        if t.state != SaleState::AwaitingCode {
                            // A retry of a call whose reply was lost: the sale it made stands.
                            tracing::info!(tx = %t.id, state = %t.state, "payment repeated by its order_ref; returning the sale");
                            return Ok(t.id);
                        }
                        self.pay_existing(t.id, scheme, &code).await?
                    }
                    other => (other, paths, guard),
                }
            }
            PayTarget::Tx(tx) => self.pay_existing(tx, scheme, &code).await?,
            PayTarget::NextAwaiting => {
                let tx = self.next_awaiting().await?;
                self.pay_existing(tx, scheme, &code).await?
            }
        };
        let (t, paths, guard) = match attempted {
            (Attempted::Submitted(t), paths, guard) => (t, paths, guard),
            (Attempted::Refused(e), _, _) => {
                tracing::warn!(rule = %e.code, "payment refused by a local rule");
                return Err(PaymentError::Blocked(e));
            }
            (Attempted::Existing(t), _, _) => return Ok(t.id),
        };
        let tx = t.id;
        lock(&inner.submitted).insert(tx, Instant::now());
        tracing::info!(
            tx = %tx, %scheme, code = %mask_code(&code), path = %paths[0],
            out_trade_no = t.out_trade_no.as_deref().unwrap_or(""),
            "payment submitted"
        );
        inner.emit(&t, Some(SaleState::AwaitingCode), None);
        let guard = guard.unwrap_or_else(|| inner.activate(tx));
        let inner = inner.clone();
        tokio::spawn(async move {
            let _guard = guard;
            inner.drive_payment(tx, code, scheme, paths).await;
        });
        Ok(tx)
    }

    /// Create and submit in one journal transaction (see [`crate::journal::Journal::pay_new`]).
    /// A submitted sale is marked active before the journal is let go (see [`claim`]).
    #[allow(clippy::too_many_arguments)]
    async fn pay_new(
        &self,
        profile: &Arc<Profile>,
        amount_fen: i64,
        currency: Currency,
        order_ref: String,
        options: SaleOptions,
        scheme: Scheme,
        code: &str,
        paths: &[String],
    ) -> Result<(Attempted, Option<ActiveGuard>), PaymentError> {
        let config = profile.config.clone();
        let code = code.to_owned();
        let path = paths[0].clone();
        let inner = self.inner.clone();
        let (attempted, guard) = self
            .inner
            .db(move |j| {
                let attempt = NewAttempt {
                    scheme,
                    path: &path,
                    code: &code,
                    disabled_funding: &[],
                    terminal_id: &config.terminal_id,
                };
                let mut decide = decider(&config, scheme);
                claim(
                    &inner,
                    j.pay_new(
                        amount_fen,
                        currency,
                        &order_ref,
                        &options,
                        &attempt,
                        &windows(&config),
                        &mut decide,
                    ),
                )
            })
            .await?;
        if let Attempted::Submitted(t) = &attempted {
            self.inner.pin(t.id, profile);
            lock(&self.inner.created).insert(t.id, Instant::now());
            self.inner.emit(t, None, None);
        }
        Ok((attempted, guard))
    }

    /// Take the code for a sale awaiting one, after its route and the rules allow it. A
    /// refusal by the rules fails the sale (the app created it and is told why).
    async fn pay_existing(
        &self,
        tx: TxId,
        scheme: Scheme,
        code: &str,
    ) -> Result<(Attempted, Vec<String>, Option<ActiveGuard>), PaymentError> {
        let inner = &self.inner;
        let t = self.read(tx).await?;
        // The configuration the sale started with decides, not one applied since.
        let profile = inner.profile_of(tx);
        accepts(&profile.config, scheme)?;
        if t.state != SaleState::AwaitingCode {
            return Err(PaymentError::WrongState { tx, state: t.state });
        }
        let paths = paths_for(&profile, scheme, t.amount_fen)?;
        let config = profile.config.clone();
        let code = code.to_owned();
        let path = paths[0].clone();
        let claimer = inner.clone();
        let (attempted, guard) = inner
            .db(move |j| {
                let attempt = NewAttempt {
                    scheme,
                    path: &path,
                    code: &code,
                    disabled_funding: &[],
                    terminal_id: &config.terminal_id,
                };
                let mut decide = decider(&config, scheme);
                claim(
                    &claimer,
                    j.begin_checked_attempt(tx, &attempt, &windows(&config), &mut decide),
                )
            })
            .await?;
        if let Attempted::Refused(e) = &attempted {
            inner
                .transition(
                    tx,
                    SaleState::AwaitingCode,
                    SaleState::Failed,
                    &Patch {
                        explanation: Some(e),
                        note: Some(&format!("blocked by {}", e.code)),
                        ..Patch::default()
                    },
                )
                .await?;
        }
        Ok((attempted, paths, guard))
    }

    async fn next_awaiting(&self) -> Result<TxId, PaymentError> {
        self.inner
            .db(|j| j.unfinished_sales())
            .await?
            .into_iter()
            .find(|t| t.state == SaleState::AwaitingCode)
            .map(|t| t.id)
            .ok_or(PaymentError::NoSaleAwaitingCode)
    }

    /// Ask the acquirer now about a sale whose outcome is open, and return what is known.
    pub async fn query(&self, tx: TxId) -> Result<Transaction, PaymentError> {
        let t = self.read(tx).await?;
        if matches!(t.state, SaleState::WaitingForCustomer | SaleState::Unknown)
            && let Some(guard) = self.inner.try_activate(tx)
        {
            let _guard = guard;
            self.inner.query_step(&t).await?;
        }
        Ok(self.read(tx).await?)
    }

    /// Cancel a sale. Before a code: closed at once. In flight: the cancel is journaled and
    /// the lifecycle cancels/reverses at the acquirer. Paid, with no refund yet: voided by
    /// the acquirer's cancel/reverse (which refunds it).
    pub async fn cancel(&self, tx: TxId) -> Result<Transaction, PaymentError> {
        let inner = &self.inner;
        let t = self.read(tx).await?;
        match t.state {
            SaleState::AwaitingCode => {
                let why = Explanation::new(
                    Cause::Guidance,
                    "local.cancelled_by_cashier",
                    "收银员已取消",
                    "cancelled by the cashier",
                );
                Ok(inner
                    .transition(
                        tx,
                        SaleState::AwaitingCode,
                        SaleState::Cancelled,
                        &Patch {
                            explanation: Some(&why),
                            ..Patch::default()
                        },
                    )
                    .await?)
            }
            SaleState::Submitted | SaleState::WaitingForCustomer | SaleState::Unknown => {
                let t = inner.db(move |j| j.request_cancel(tx)).await?;
                inner.cancel_wakeup.notify_waiters();
                inner.spawn_settle_if_idle(tx);
                Ok(t)
            }
            SaleState::Succeeded => {
                if !inner.db(move |j| j.refunds_of(tx)).await?.is_empty() {
                    return Err(PaymentError::WrongState { tx, state: t.state });
                }
                let t = inner
                    .transition(
                        tx,
                        SaleState::Succeeded,
                        SaleState::Cancelling,
                        &Patch {
                            note: Some("void requested by the cashier"),
                            ..Patch::default()
                        },
                    )
                    .await?;
                inner.spawn_settle_if_idle(tx);
                Ok(t)
            }
            SaleState::Cancelling | SaleState::Cancelled | SaleState::Failed => Ok(t),
        }
    }
}

/// The merchant takes this wallet, or the cashier is told it does not.
fn accepts(config: &Config, scheme: Scheme) -> Result<(), PaymentError> {
    if config.merchant.schemes.contains(&scheme) {
        Ok(())
    } else {
        Err(PaymentError::SchemeDisabled(explain::scheme_disabled(
            scheme,
        )))
    }
}

/// The configured paths for this wallet and amount, each with a connector.
fn paths_for(
    profile: &Profile,
    scheme: Scheme,
    amount_fen: i64,
) -> Result<Vec<String>, PaymentError> {
    let route = profile
        .config
        .route_for(scheme, amount_fen)
        .ok_or(PaymentError::NoRoute { scheme })?;
    for p in &route.paths {
        if !profile.connectors.contains_key(p) {
            return Err(PaymentError::NoConnector(p.clone()));
        }
    }
    Ok(route.paths.clone())
}

/// Where the rules' journal figures start, now.
fn windows(config: &Config) -> Windows {
    let now = clock::now_ms();
    Windows {
        day_start_ms: clock::cst_day_start_ms(now),
        velocity_since_ms: now - risk::velocity_window(config).as_millis() as i64,
        repeat_since_ms: now - config.risk.repeat_window_s as i64 * 1000,
    }
}

/// The rules as the journal's verdict callback: the funding to switch off, or the refusal.
/// Mark a just-submitted sale as driven by this call while the journal is still held (this
/// runs inside the journal closure). Marked after the journal was let go, the resolver's
/// periodic pass could find the sale `Submitted` and not active in between, take it for one
/// left by a crash and query and cancel it alongside the payment this call is sending.
fn claim(
    inner: &Arc<Inner>,
    attempted: Result<Attempted, JournalError>,
) -> Result<(Attempted, Option<ActiveGuard>), JournalError> {
    let attempted = attempted?;
    let guard = match &attempted {
        Attempted::Submitted(t) => Some(inner.activate(t.id)),
        Attempted::Refused(_) | Attempted::Existing(_) => None,
    };
    Ok((attempted, guard))
}

fn decider(
    config: &Config,
    scheme: Scheme,
) -> impl FnMut(i64, &SaleOptions, crate::journal::Figures) -> Result<Vec<FundingChannel>, Explanation>
+ '_ {
    move |amount_fen, options, f| {
        let input = RiskInput {
            amount_fen,
            scheme,
            options,
            committed_today_fen: f.committed_today_fen,
            recent_submissions: f.recent_submissions,
            same_amount_recent: f.same_amount_recent,
        };
        match risk::evaluate(config, &input) {
            RiskDecision::Allow { disabled, applied } => {
                if !applied.is_empty() {
                    tracing::info!(rules = ?applied, "funding switched off by rules");
                }
                Ok(disabled)
            }
            RiskDecision::Block(e) => Err(e),
        }
    }
}
