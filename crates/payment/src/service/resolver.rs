//! The resolver: finishes every sale and refund a crash, a restart or an exhausted
//! lifecycle left open, at start-up and then periodically.

use std::time::Duration;

use tokio::time::Instant;

use crate::clock;
use crate::explain::{Cause, Explanation};
use crate::journal::{JournalError, Patch};
use crate::model::SaleState;

use super::refund::Sent;
use super::{PaymentError, PaymentService, lock};

impl PaymentService {
    /// Finish every unfinished sale and refund in the journal: the start-up pass after a
    /// crash or reboot, and the periodic sweep. Sales a live task drives are skipped.
    pub async fn resolve_all(&self) -> Result<ResolveReport, PaymentError> {
        let inner = &self.inner;
        let mut report = ResolveReport::default();
        let now = clock::now_ms();
        let expiry = Duration::from_millis(inner.profile().config.polling.awaiting_code_expiry_ms);
        let unfinished = inner.db(|j| j.unfinished_sales()).await?;
        let mut pending = Vec::new();
        for t in unfinished {
            if t.state == SaleState::AwaitingCode {
                // Measured on the monotonic clock for sales this process created; the wall
                // clock only for sales from before a restart.
                let age = match lock(&inner.created).get(&t.id) {
                    Some(at) => at.elapsed(),
                    None => Duration::from_millis((now - t.created_at_ms).max(0) as u64),
                };
                if age >= expiry && !self.is_active(t.id) {
                    let why = Explanation::new(
                        Cause::Guidance,
                        "local.expired",
                        "收款等待超时已取消,请重新发起收款",
                        "the sale waited too long for a code and was cancelled: start again",
                    );
                    let moved = inner
                        .transition(
                            t.id,
                            SaleState::AwaitingCode,
                            SaleState::Cancelled,
                            &Patch {
                                explanation: Some(&why),
                                ..Patch::default()
                            },
                        )
                        .await;
                    match moved {
                        Ok(_) => {
                            lock(&inner.created).remove(&t.id);
                            report.expired += 1;
                        }
                        Err(JournalError::Conflict { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                continue;
            }
            // A sale handed to background resolution waits for its slot.
            if lock(&inner.background)
                .get(&t.id)
                .is_some_and(|(next, _)| Instant::now() < *next)
            {
                report.deferred += 1;
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
            if inner.state_of(id).await?.is_terminal() {
                lock(&inner.background).remove(&id);
                lock(&inner.submitted).remove(&id);
                report.finished += 1;
            } else {
                // Still open: not again before its background slot.
                inner.schedule_background(id, false);
                report.still_open += 1;
            }
        }
        let refunds = inner.db(|j| j.unfinished_refunds()).await?;
        for r in refunds {
            // One refund failing to be recorded must not hold up the others.
            let sent = match self.read(r.tx).await {
                Ok(t) => inner.send_refund(&t, r.id).await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(Sent::Done(r)) if r.state.is_terminal() => report.refunds_finished += 1,
                Ok(_) => report.still_open += 1,
                Err(e) => {
                    tracing::error!(refund = r.id, error = %e, "refund not resolved in this pass");
                    report.still_open += 1;
                }
            }
        }
        let quiet = ResolveReport {
            deferred: report.deferred,
            ..ResolveReport::default()
        };
        if report != quiet {
            tracing::info!(?report, "resolver pass");
        }
        Ok(report)
    }

    /// Run [`Self::resolve_all`] now and then every `polling.resolver_interval_ms`.
    pub fn spawn_resolver(&self) -> tokio::task::JoinHandle<()> {
        let svc = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = svc.resolve_all().await {
                    tracing::error!(error = %e, "resolver pass failed; retrying later");
                }
                // Read each time: an applied configuration may change the pace.
                let every = svc.config().polling.resolver_interval_ms.max(10);
                tokio::time::sleep(Duration::from_millis(every)).await;
            }
        })
    }
}

/// What one resolver pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResolveReport {
    pub examined: usize,
    pub finished: usize,
    pub still_open: usize,
    pub expired: usize,
    /// Sales in background resolution whose next slot has not come yet.
    pub deferred: usize,
    pub refunds_finished: usize,
}
