//! The resolver: finishes every sale and refund a crash, a restart or an exhausted
//! lifecycle left open, at start-up and then periodically.

use std::time::Duration;

use crate::clock;
use crate::explain::{Cause, Explanation};
use crate::journal::{JournalError, Patch};
use crate::model::SaleState;

use super::{PaymentError, PaymentService, lock};

impl PaymentService {
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

/// What one resolver pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResolveReport {
    pub examined: usize,
    pub finished: usize,
    pub still_open: usize,
    pub expired: usize,
    pub refunds_finished: usize,
}
