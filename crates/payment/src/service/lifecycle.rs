//! The lifecycle of a sale (docs/acquirers.md §1.7, §2.1): pay once, poll "waiting for the
//! customer" at the acquirer's pace, query an unknown outcome, cancel/reverse what is not
//! paid by the end of the window, and fail over only a path that never received the payment.

use std::sync::Arc;
use std::time::Duration;

use crate::classify::Scheme;
use crate::clock;
use crate::config::PathKind;
use crate::connector::{CancelOutcome, Paid, PayOrder, PayOutcome, QueryOutcome};
use crate::explain::{self, Cause, Explanation};
use crate::journal::{JournalError, NewAttempt, Patch};
use crate::model::{SaleState, Transaction, TxId};

use super::{Inner, Step, lock};

/// Polling pace for a path: interval between queries and the window after submission in
/// which the customer may still confirm.
#[derive(Debug, Clone, Copy)]
struct Pace {
    interval: Duration,
    window: Duration,
    /// Alipay's flow counts queries (`max_query_retry`); WeChat's is a time window.
    max_queries: Option<u32>,
}

impl Inner {
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

    pub(super) async fn drive_payment(
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
                config_version: self.config.version,
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
                // Another sale's order number: this request was refused and charged nothing,
                // so the sale waits for a scan again and goes under a fresh number.
                PayOutcome::OrderNumberTaken(e) => {
                    self.advance(
                        tx,
                        from,
                        SaleState::AwaitingCode,
                        &Patch {
                            explanation: Some(&e),
                            release_code: true,
                            note: Some("order number already used at the acquirer; nothing charged; code released"),
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

    pub(super) fn record_paid(&self, tx: TxId, from: SaleState, p: &Paid, note: &str) -> Step {
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
    pub(super) async fn settle(self: &Arc<Self>, tx: TxId) {
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
    pub(super) fn voidable(&self, t: &Transaction) -> bool {
        lock(&self.journal)
            .refunds_of(t.id)
            .map(|r| r.is_empty())
            .unwrap_or(false)
    }

    /// Query at the acquirer's pace until paid, refused, cancelled by the cashier or out of
    /// time; then move on (to `Succeeded` or `Cancelling`).
    pub(super) async fn poll(self: &Arc<Self>, t: &Transaction) -> Step {
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
    pub(super) async fn query_step(&self, t: &Transaction) -> Result<Option<Step>, JournalError> {
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
    pub(super) async fn cancel_at_acquirer(&self, t: &Transaction) -> Step {
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
