//! Refunds of paid sales: journaled first under a fresh request number, then sent; an
//! unknown outcome is repeated with the same number.
//!
//! A pending refund has one owner at a time: the app's `Refund` call and the resolver may
//! both find it open, but only the task holding it sends it and records the answer; the
//! other waits for that answer (the app) or leaves it for its next pass (the resolver).

use std::sync::Arc;
use std::time::Duration;

use crate::connector::{RefundOrder, RefundOutcome};
use crate::journal::JournalError;
use crate::model::{Refund, RefundState, Transaction, TxId};

use super::validate::{MAX_ORDER_REF_LEN, check_amount, check_text};
use super::{Inner, PaymentError, PaymentService, lock};

/// Releases a refund's ownership when its sender is done, however it ends.
struct RefundOwner {
    inner: Arc<Inner>,
    rid: i64,
}

impl Drop for RefundOwner {
    fn drop(&mut self) {
        lock(&self.inner.refunds_in_flight).remove(&self.rid);
        self.inner.refund_released.notify_waiters();
    }
}

/// What an attempt to send a refund found.
pub(super) enum Sent {
    /// This task sent it (or found it already final); the refund as it now is.
    Done(Refund),
    /// Another task is sending it right now.
    Busy,
}

impl PaymentService {
    /// Refund part or all of a paid sale. `refund_ref` is the app's idempotency key: the
    /// same reference with the same amount returns the refund already made. When the
    /// resolver is sending this refund at that moment, the answer it gets is returned.
    pub async fn refund(
        &self,
        tx: TxId,
        amount_fen: i64,
        refund_ref: &str,
    ) -> Result<Refund, PaymentError> {
        check_amount(amount_fen)?;
        check_text("refund_ref", refund_ref, MAX_ORDER_REF_LEN, false)?;
        let inner = &self.inner;
        let terminal_id = inner.profile().config.terminal_id.clone();
        let refund_ref = refund_ref.to_owned();
        let (r, new) = inner
            .db(move |j| j.create_refund(tx, amount_fen, &refund_ref, &terminal_id))
            .await?;
        if r.state.is_terminal() {
            return Ok(r);
        }
        let t = self.read(tx).await?;
        if new {
            inner.emit_refund(&t, &r);
        }
        loop {
            // Register for the release before trying, so a release in between is not missed.
            let released = inner.refund_released.notified();
            match inner.send_refund(&t, r.id).await? {
                Sent::Done(r) => return Ok(r),
                Sent::Busy => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), released).await;
                }
            }
        }
    }
}

impl Inner {
    fn own_refund(self: &Arc<Self>, rid: i64) -> Option<RefundOwner> {
        lock(&self.refunds_in_flight)
            .insert(rid)
            .then(|| RefundOwner {
                inner: self.clone(),
                rid,
            })
    }

    /// Send refund `rid` of sale `t` unless another task holds it, and record the answer.
    pub(super) async fn send_refund(
        self: &Arc<Self>,
        t: &Transaction,
        rid: i64,
    ) -> Result<Sent, JournalError> {
        let Some(_owner) = self.own_refund(rid) else {
            return Ok(Sent::Busy);
        };
        // Read it again as its owner: the previous owner may have finished it meanwhile.
        let r = self.db(move |j| j.get_refund(rid)).await?;
        if r.state.is_terminal() {
            return Ok(Sent::Done(r));
        }
        let (Some(connector), Some(out)) = (self.connector(t), t.out_trade_no.clone()) else {
            return Ok(Sent::Done(r));
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
            return Ok(Sent::Done(r));
        }
        let from = r.state;
        let moved = self
            .db(move |j| j.refund_transition(rid, from, to, e.as_ref()))
            .await;
        let r = match moved {
            Ok(r) => r,
            // Moved by another process on the same journal (posctl is read-only, so only a
            // second daemon could): its record stands.
            Err(JournalError::RefundConflict { actual, .. }) => {
                tracing::warn!(tx = %t.id, refund = rid, actual = actual.as_str(), "refund recorded by someone else first");
                return Ok(Sent::Done(self.db(move |j| j.get_refund(rid)).await?));
            }
            Err(e) => return Err(e),
        };
        tracing::info!(tx = %t.id, refund = r.id, state = r.state.as_str(), amount_fen = r.amount_fen, "refund moved");
        self.emit_refund(t, &r);
        Ok(Sent::Done(r))
    }
}
