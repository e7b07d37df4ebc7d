//! Creating a sale, paying it with a scanned code, asking about it and cancelling it.

use crate::classify::{CodeClass, classify, mask_code};
use crate::clock;
use crate::explain::{self, Cause, Explanation};
use crate::journal::{NewAttempt, Patch};
use crate::model::{SaleOptions, SaleState, Transaction, TxId};
use crate::risk::{self, RiskDecision, RiskInput};

use super::validate::check_sale;
use super::{PayTarget, PaymentError, PaymentService, lock};

impl PaymentService {
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
}
