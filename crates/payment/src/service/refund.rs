//! Refunds of paid sales: journaled first under a fresh request number, then sent; an
//! unknown outcome is repeated with the same number.

use crate::connector::{RefundOrder, RefundOutcome};
use crate::journal::JournalError;
use crate::model::{Refund, RefundState, Transaction, TxId};

use super::validate::{MAX_ORDER_REF_LEN, check_amount, check_text};
use super::{Inner, PaymentError, PaymentService, lock};

impl PaymentService {
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
}

impl Inner {
    pub(super) async fn send_refund(
        &self,
        t: &Transaction,
        r: Refund,
    ) -> Result<Refund, JournalError> {
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
