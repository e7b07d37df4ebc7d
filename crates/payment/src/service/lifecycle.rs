//! The lifecycle of a sale (docs/acquirers.md §1.7, §2.1): pay once, poll "waiting for the
//! customer" at the acquirer's pace, query an unknown outcome, cancel/reverse what is not
//! paid by the end of the window, and fail over only a path that never received the payment.
//!
//! Nothing hammers an acquirer: unanswered queries and repeated cancels/reverses back off
//! exponentially (from the acquirer's own pace up to `polling.backoff_max_ms`). When no
//! definite answer came within `polling.resolution_window_ms` of the payment, the sale is
//! shown as `unknown` with [`OUTCOME_UNKNOWN`] and handed to the resolver, which repeats the
//! cancel/reverse once per pass at a pace starting at `polling.background_interval_ms` and
//! doubling up to `polling.background_max_ms`.
//!
//! Durations (polling windows, back-off, the resolution window) are measured on the
//! monotonic clock; the wall clock is only what is stored and shown, so an NTP step cannot
//! cut a customer's confirmation short.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::classify::Scheme;
use crate::clock;
use crate::config::PathKind;
use crate::connector::{CancelOutcome, Paid, PayOrder, PayOutcome, QueryOutcome};
use crate::explain::{self, Cause, Explanation};
use crate::journal::{JournalError, NewAttempt, Patch};
use crate::model::{SaleState, Transaction, TxId};

use super::{Inner, OUTCOME_UNKNOWN, Step, lock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Alipay,
    Wechat,
    Qra,
}

/// Polling pace for a path: interval between queries and the window after submission in
/// which the customer may still confirm.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pace {
    kind: Kind,
    interval: Duration,
    window: Duration,
    /// Alipay's flow counts queries (`max_query_retry`); WeChat's is a time window.
    max_queries: Option<u32>,
}

/// What one query established.
pub(super) enum Queried {
    /// It decided the sale's next state.
    Decided(Step),
    /// The customer is still confirming.
    Waiting,
    /// No usable answer (timeout, bad signature, system error).
    NoAnswer,
}

/// `base` doubled `n` times, at most `ceiling` (and never below `base`).
fn backoff(base: Duration, n: u32, ceiling: Duration) -> Duration {
    let factor = 1u32.checked_shl(n.min(16)).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(ceiling.max(base))
}

/// The till's answer when nobody could tell whether the money was taken. Timeouts are a
/// network matter; an answer that cannot be trusted (bad signature, garbled reply) is one
/// for support, so the cause follows the last failure seen.
fn outcome_unknown(last: Option<&Explanation>) -> Explanation {
    let cause = match last.map(|e| e.cause) {
        Some(Cause::Network) => Cause::Network,
        _ => Cause::Software,
    };
    let raw = last.map(|e| match &e.raw_message {
        Some(m) => format!("{}: {m}", e.code),
        None => e.code.clone(),
    });
    Explanation::new(
        cause,
        OUTCOME_UNKNOWN,
        "交易结果未知:请勿重复收款,请联系技术支持",
        "outcome unknown — do NOT charge again; call support",
    )
    .with_raw(raw.as_deref())
}

fn is_outcome_unknown(t: &Transaction) -> bool {
    t.explanation
        .as_ref()
        .is_some_and(|e| e.code == OUTCOME_UNKNOWN)
}

impl Inner {
    fn pace(&self, t: &Transaction) -> Pace {
        let config = self.profile_of(t.id).config.clone();
        let p = &config.polling;
        let kind = t
            .path
            .as_deref()
            .and_then(|name| config.path(name))
            .map(|p| &p.kind);
        let ms = |kind: Kind, interval: u64, window: u64| Pace {
            kind,
            interval: Duration::from_millis(interval),
            window: Duration::from_millis(window),
            max_queries: None,
        };
        match kind {
            Some(PathKind::Alipay { .. }) => Pace {
                max_queries: Some(p.alipay_max_queries.max(1)),
                ..ms(
                    Kind::Alipay,
                    p.alipay_interval_ms,
                    p.alipay_interval_ms * u64::from(p.alipay_max_queries),
                )
            },
            Some(PathKind::Wechat { .. }) => {
                ms(Kind::Wechat, p.wechat_interval_ms, p.wechat_window_ms)
            }
            Some(PathKind::Qra { .. }) | None => ms(Kind::Qra, p.qra_interval_ms, p.qra_window_ms),
        }
    }

    /// How long ago the current attempt was sent: on the monotonic clock when this process
    /// sent it, else (after a restart) from the journal's wall-clock time, never negative.
    fn since_submitted(&self, t: &Transaction) -> Duration {
        if let Some(at) = lock(&self.submitted).get(&t.id) {
            return at.elapsed();
        }
        let at = t.submitted_at_ms.unwrap_or(t.created_at_ms);
        Duration::from_millis((clock::now_ms() - at).max(0) as u64)
    }

    /// When the till stops waiting for this sale (monotonic).
    fn resolution_deadline(&self, t: &Transaction) -> Instant {
        let window =
            Duration::from_millis(self.profile_of(t.id).config.polling.resolution_window_ms);
        Instant::now() + window.saturating_sub(self.since_submitted(t))
    }

    pub(super) async fn drive_payment(
        self: &Arc<Self>,
        tx: TxId,
        code: String,
        scheme: Scheme,
        paths: Vec<String>,
    ) {
        // The configuration the sale started with, to its end.
        let profile = self.profile_of(tx);
        let config = &profile.config;
        let mut index = 0;
        loop {
            let t = match self.db(move |j| j.get(tx)).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(tx = %tx, error = %e, "cannot read the sale back; the resolver will finish it");
                    return;
                }
            };
            let Some(connector) = profile.connectors.get(&paths[index]).cloned() else {
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
                    .unwrap_or_else(|| config.merchant.name.clone()),
                disabled_funding: t.disabled_funding.clone(),
                terminal_id: config.terminal_id.clone(),
                operator_id: t.options.operator_id.clone(),
                config_version: config.version,
            };
            let outcome = connector.pay(&order).await;
            drop(order);
            let from = SaleState::Submitted;
            let step = match outcome {
                PayOutcome::NeverSent(why) if index + 1 < paths.len() => {
                    index += 1;
                    tracing::warn!(tx = %tx, failed = %paths[index - 1], next = %paths[index], code = %why.code, detail = why.raw_message.as_deref().unwrap_or(""), "path never received the payment; failing over");
                    let (path, code, disabled, terminal_id) = (
                        paths[index].clone(),
                        code.clone(),
                        t.disabled_funding.clone(),
                        config.terminal_id.clone(),
                    );
                    let r = self
                        .db(move |j| {
                            j.begin_attempt(
                                tx,
                                SaleState::Submitted,
                                &NewAttempt {
                                    scheme,
                                    path: &path,
                                    code: &code,
                                    disabled_funding: &disabled,
                                    terminal_id: &terminal_id,
                                },
                            )
                        })
                        .await;
                    match r {
                        Ok(t) => {
                            lock(&self.submitted).insert(tx, Instant::now());
                            self.emit(&t, Some(SaleState::Submitted), None);
                            continue;
                        }
                        Err(e) => {
                            tracing::error!(tx = %tx, error = %e, "fail-over not journaled");
                            return;
                        }
                    }
                }
                PayOutcome::NeverSent(e) => {
                    let view = self
                        .network
                        .read()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .clone();
                    let e = super::netview::annotate(view, &paths[index], e).await;
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
                    )
                    .await;
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
                    )
                    .await;
                    return;
                }
                PayOutcome::Paid(p) => self.record_paid(tx, from, &p, "paid").await,
                PayOutcome::Declined(e) => {
                    self.advance(
                        tx,
                        from,
                        SaleState::Failed,
                        &Patch {
                            explanation: Some(&e),
                            ..Patch::default()
                        },
                    )
                    .await
                }
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
                    .await
                }
                PayOutcome::Unknown(e) => {
                    self.advance(
                        tx,
                        from,
                        SaleState::Unknown,
                        &Patch {
                            explanation: Some(&e),
                            ..Patch::default()
                        },
                    )
                    .await
                }
            };
            if matches!(step, Step::Moved) {
                self.settle(tx).await;
            }
            return;
        }
    }

    pub(super) async fn record_paid(
        &self,
        tx: TxId,
        from: SaleState,
        p: &Paid,
        note: &str,
    ) -> Step {
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
        .await
    }

    /// Drive a sale to a terminal state, or until only the resolver can go on.
    pub(super) async fn settle(self: &Arc<Self>, tx: TxId) {
        loop {
            let t = match self.db(move |j| j.get(tx)).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(tx = %tx, error = %e, "cannot read the sale");
                    return;
                }
            };
            let step = match t.state {
                SaleState::AwaitingCode | SaleState::Failed | SaleState::Cancelled => return,
                SaleState::Succeeded => {
                    if t.cancel_requested && self.voidable(&t).await {
                        self.advance(
                            tx,
                            SaleState::Succeeded,
                            SaleState::Cancelling,
                            &Patch {
                                note: Some("cancel requested while the payment was in flight"),
                                ..Patch::default()
                            },
                        )
                        .await
                    } else {
                        return;
                    }
                }
                // Only seen after a crash: the request may or may not have left.
                SaleState::Submitted => {
                    self.advance(
                        tx,
                        SaleState::Submitted,
                        SaleState::Unknown,
                        &Patch {
                            note: Some("found submitted after a restart; outcome unknown"),
                            ..Patch::default()
                        },
                    )
                    .await
                }
                SaleState::WaitingForCustomer | SaleState::Unknown => self.poll(&t).await,
                SaleState::Cancelling => match self.cancel_at_acquirer(&t).await {
                    Step::Later => self.hand_over(tx).await,
                    moved => moved,
                },
            };
            if matches!(step, Step::Later) {
                return;
            }
        }
    }

    /// The cancel/reverse went unanswered: show the till "outcome unknown — do not charge
    /// again", keep the cancel requested, and let the resolver repeat it at its slow pace.
    async fn hand_over(&self, tx: TxId) -> Step {
        let t = match self.db(move |j| j.get(tx)).await {
            Ok(t) if t.state == SaleState::Cancelling => t,
            _ => return Step::Later,
        };
        let first = !is_outcome_unknown(&t);
        let e = if first {
            outcome_unknown(t.explanation.as_ref())
        } else {
            t.explanation
                .clone()
                .unwrap_or_else(|| outcome_unknown(None))
        };
        self.advance(
            tx,
            SaleState::Cancelling,
            SaleState::Unknown,
            &Patch {
                explanation: Some(&e),
                request_cancel: true,
                note: Some(if first {
                    "no definite answer within the resolution window; resolving in the background"
                } else {
                    "background cancel unanswered; trying again later"
                }),
                ..Patch::default()
            },
        )
        .await;
        if first {
            tracing::warn!(tx = %tx, cause = e.cause.as_str(), "outcome unknown: the till is told not to charge again");
        }
        self.schedule_background(tx, true);
        Step::Later
    }

    /// When the resolver may look at `tx` again: the first time after
    /// `background_interval_ms`, then each time twice as long, up to `background_max_ms`.
    /// With `bump` false an existing schedule is kept as it is.
    pub(super) fn schedule_background(&self, tx: TxId, bump: bool) {
        let config = self.profile_of(tx).config.clone();
        let p = &config.polling;
        let first = Duration::from_millis(p.background_interval_ms);
        let ceiling = Duration::from_millis(p.background_max_ms).max(first);
        let mut map = lock(&self.background);
        let pause = match map.get(&tx) {
            Some(_) if !bump => return,
            Some((_, last)) => last.saturating_mul(2).min(ceiling),
            None => first,
        };
        map.insert(tx, (Instant::now() + pause, pause));
    }

    /// A paid sale is voided only if no refund touched it (else refunds are the way).
    async fn voidable(&self, t: &Transaction) -> bool {
        let id = t.id;
        self.db(move |j| j.refunds_of(id))
            .await
            .map(|r| r.is_empty())
            .unwrap_or(false)
    }

    /// Query at the acquirer's pace until paid, refused, cancelled by the cashier or out of
    /// time; then move on (to `Succeeded` or `Cancelling`). Unanswered queries back off.
    async fn poll(self: &Arc<Self>, t: &Transaction) -> Step {
        let pace = self.pace(t);
        let elapsed = self.since_submitted(t);
        let deadline = Instant::now() + pace.window.saturating_sub(elapsed);
        let ceiling = Duration::from_millis(self.profile_of(t.id).config.polling.backoff_max_ms);
        // After a restart past the window: one query, then cancel. Otherwise wait one
        // interval before the first query (the customer needs time to type the password),
        // except for an unknown outcome, which is queried at once.
        let recovered = elapsed >= pace.window;
        let mut first = recovered || t.state == SaleState::Unknown;
        let mut queries = 0u32;
        let mut unanswered = 0u32;
        let id = t.id;
        loop {
            let t = match self.db(move |j| j.get(id)).await {
                Ok(t) => t,
                Err(_) => return Step::Later,
            };
            if !matches!(t.state, SaleState::WaitingForCustomer | SaleState::Unknown) {
                return Step::Moved;
            }
            if t.cancel_requested {
                return self
                    .advance(
                        t.id,
                        t.state,
                        SaleState::Cancelling,
                        &Patch {
                            note: Some(if is_outcome_unknown(&t) {
                                "background resolution: cancelling again"
                            } else {
                                "cancelled by the cashier"
                            }),
                            ..Patch::default()
                        },
                    )
                    .await;
            }
            if !first {
                // Alipay's demo counts its queries (5, every 5 s): that bounds them already.
                // WeChat's guide gives a window (every 3–5 s within 45 s): unanswered
                // queries back off inside it.
                let nap = match pace.max_queries {
                    Some(_) => pace.interval,
                    None => backoff(pace.interval, unanswered, ceiling).min(
                        deadline
                            .saturating_duration_since(Instant::now())
                            .max(Duration::from_millis(1)),
                    ),
                };
                tokio::select! {
                    _ = tokio::time::sleep(nap) => {}
                    _ = self.cancel_wakeup.notified() => continue,
                }
            }
            first = false;
            match self.query_step(&t).await {
                Ok(Queried::Decided(step)) => return step,
                Ok(Queried::Waiting) => unanswered = 0,
                Ok(Queried::NoAnswer) => unanswered += 1,
                Err(_) => return Step::Later,
            }
            queries += 1;
            let out_of_time = recovered
                || match pace.max_queries {
                    Some(max) => queries >= max,
                    None => Instant::now() >= deadline,
                };
            if out_of_time {
                let t = match self.db(move |j| j.get(id)).await {
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
                return self
                    .advance(
                        t.id,
                        t.state,
                        SaleState::Cancelling,
                        &Patch {
                            explanation: Some(&e),
                            note: Some("window closed without payment; cancelling"),
                            ..Patch::default()
                        },
                    )
                    .await;
            }
        }
    }

    /// One query, and the move it decides.
    pub(super) async fn query_step(&self, t: &Transaction) -> Result<Queried, JournalError> {
        let Some(connector) = self.connector(t) else {
            return Ok(Queried::Decided(Step::Later));
        };
        let Some(out) = t.out_trade_no.clone() else {
            return Ok(Queried::Decided(Step::Later));
        };
        match connector.query(&out).await {
            QueryOutcome::Paid(p) => Ok(Queried::Decided(
                self.record_paid(t.id, t.state, &p, "query: paid").await,
            )),
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
                    )
                    .await;
                }
                Ok(Queried::Waiting)
            }
            QueryOutcome::NotPaid(e) => {
                // Closed, revoked, failed or never arrived: cancel anyway, so an order that
                // arrives late cannot be paid afterwards.
                Ok(Queried::Decided(
                    self.advance(
                        t.id,
                        t.state,
                        SaleState::Cancelling,
                        &Patch {
                            explanation: Some(&e),
                            note: Some("query: not paid; cancelling to close it for good"),
                            ..Patch::default()
                        },
                    )
                    .await,
                ))
            }
            QueryOutcome::Unknown(why) => {
                tracing::info!(tx = %t.id, %why, "query gave no answer");
                Ok(Queried::NoAnswer)
            }
        }
    }

    /// Cancel/reverse, repeated while the acquirer says retry (or does not answer), with
    /// exponential back-off, at most as often as its protocol allows and only within the
    /// resolution window; `Step::Later` when it stays unanswered. In background resolution
    /// (the till was already told "outcome unknown") one request per pass.
    async fn cancel_at_acquirer(&self, t: &Transaction) -> Step {
        let (Some(connector), Some(out)) = (self.connector(t), t.out_trade_no.clone()) else {
            tracing::error!(tx = %t.id, "cancelling sale has no path or order number");
            return Step::Later;
        };
        let config = self.profile_of(t.id).config.clone();
        let p = &config.polling;
        let pace = self.pace(t);
        let background = is_outcome_unknown(t);
        let window_end = self.resolution_deadline(t);
        if !background && pace.kind != Kind::Alipay {
            // WeChat: reverse no sooner than ~15 s after the payment (docs/acquirers.md §2.1).
            let wait = Duration::from_millis(p.wechat_reverse_delay_ms)
                .saturating_sub(self.since_submitted(t));
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        // Alipay's demo retries a cancel 3 times (docs/acquirers.md §1.7); WeChat repeats a
        // reverse while recall=Y, about 10 times (§2.1).
        let protocol_max = match pace.kind {
            Kind::Alipay => 4,
            Kind::Wechat | Kind::Qra => 10,
        };
        let attempts = if background {
            1
        } else {
            p.cancel_max_attempts.clamp(1, protocol_max)
        };
        let first_pause = Duration::from_millis(p.cancel_interval_ms);
        let ceiling = Duration::from_millis(p.backoff_max_ms);
        for attempt in 0..attempts {
            if attempt > 0 {
                let pause = backoff(first_pause, attempt - 1, ceiling);
                if Instant::now() + pause > window_end {
                    break;
                }
                tokio::time::sleep(pause).await;
            }
            match connector.cancel(&out).await {
                CancelOutcome::Done { refunded } => {
                    let note = if refunded {
                        "cancelled at the acquirer; the paid amount was refunded"
                    } else {
                        "cancelled/reversed at the acquirer"
                    };
                    return self
                        .advance(
                            t.id,
                            SaleState::Cancelling,
                            SaleState::Cancelled,
                            &Patch {
                                note: Some(note),
                                ..Patch::default()
                            },
                        )
                        .await;
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
                            .await
                        }
                        QueryOutcome::NotPaid(_) => {
                            self.advance(
                                t.id,
                                SaleState::Cancelling,
                                SaleState::Cancelled,
                                &Patch {
                                    note: Some("cancel refused but the order is not paid"),
                                    ..Patch::default()
                                },
                            )
                            .await
                        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_its_ceiling() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(2), 0, s(30)), s(2));
        assert_eq!(backoff(s(2), 1, s(30)), s(4));
        assert_eq!(backoff(s(2), 3, s(30)), s(16));
        assert_eq!(backoff(s(2), 4, s(30)), s(30));
        assert_eq!(backoff(s(2), 60, s(30)), s(30));
        // A ceiling below the acquirer's own pace never makes it faster.
        assert_eq!(backoff(s(5), 3, s(1)), s(5));
    }

    #[test]
    fn an_unknown_outcome_names_its_cause_and_says_not_to_charge_again() {
        let net = Explanation::new(Cause::Network, "net.timeout", "超时", "timeout");
        let e = outcome_unknown(Some(&net));
        assert_eq!(
            (e.cause, e.code.as_str()),
            (Cause::Network, OUTCOME_UNKNOWN)
        );
        assert!(e.en.contains("do NOT charge again"), "{}", e.en);
        assert!(e.zh.contains("请勿重复收款"), "{}", e.zh);
        let sig = Explanation::new(Cause::Software, "sig.bad", "签名错误", "bad signature");
        assert_eq!(outcome_unknown(Some(&sig)).cause, Cause::Software);
        assert_eq!(outcome_unknown(None).cause, Cause::Software);
    }
}
