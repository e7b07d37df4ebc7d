//! Health of the payment side (`posctl doctor`) and the summary of recent failures.

use std::time::Duration;

use crate::clock;
use crate::explain::{Cause, Explanation};
use crate::journal::JournalError;
use crate::model::{SaleState, Transaction};

use super::{PaymentService, lock};

impl PaymentService {
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
            let unreachable = |e: &str| {
                Explanation::new(
                    Cause::Network,
                    "net.acquirer_unreachable",
                    "无法与收单机构建立安全连接,请检查网络、系统时间和证书配置",
                    "cannot open a secure connection to the acquirer: check the network, the clock and the pinned CA",
                )
                .with_raw(Some(e))
            };
            let (ok, detail, explanation) = match connector.probe().await {
                Ok(report) => match (&report.error, &report.detail) {
                    (None, _) => (
                        true,
                        format!("TLS handshake in {} ms", report.handshake.as_millis()),
                        None,
                    ),
                    (Some(class), detail) => {
                        let e = format!("{class}: {}", detail.as_deref().unwrap_or(""));
                        let why = unreachable(&e);
                        (false, e, Some(why))
                    }
                },
                Err(e) => {
                    let why = unreachable(&e);
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
        let since = clock::now_ms() - 86_400_000;
        let failures = inner
            .db(move |j| j.sales_since(since))
            .await
            .map(summarise_failures);
        match failures {
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
        let open = inner.db(|j| j.unfinished_sales()).await.map(|v| {
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
        Ok(summarise_failures(
            lock(&self.inner.journal).sales_since(since_ms)?,
        ))
    }
}

fn summarise_failures(sales: Vec<Transaction>) -> Vec<(Explanation, usize)> {
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
    counts
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
