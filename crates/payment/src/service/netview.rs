//! What the network diagnostics daemon (smartpos-netd) says about an acquirer path, asked for
//! when a sale failed without the payment ever leaving the terminal: the cashier then reads
//! netd's diagnosis of that path ("Alipay unreachable: the connection to 10.0.0.5:443 was
//! refused for 3 minutes") next to the plain "nothing was charged".
//!
//! The library knows no bus: the daemon hands in a [`NetworkView`]. Asking is bounded by
//! [`NETWORK_VIEW_WAIT`], and no answer (netd not running, slow, or seeing nothing wrong)
//! leaves the plain explanation: payments never depend on netd.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::explain::Explanation;

/// The longest a never-sent sale waits for netd's view before it goes back to waiting for
/// a code with the plain explanation.
pub const NETWORK_VIEW_WAIT: Duration = Duration::from_secs(3);

/// netd's verdict on one acquirer path (its `Paths` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathDiagnosis {
    /// netd's stable code: `net.refused`, `net.dns`, `net.no_route`, `clock.off`, …
    pub code: String,
    pub reason_en: String,
    pub reason_zh: String,
}

impl PathDiagnosis {
    /// Whether netd sees something wrong with the path (not `ok`, not `unchecked`).
    pub fn is_failure(&self) -> bool {
        !matches!(self.code.as_str(), "ok" | "unchecked" | "")
    }
}

/// The future a [`NetworkView`] returns.
pub type Diagnosing<'a> = Pin<Box<dyn Future<Output = Option<PathDiagnosis>> + Send + 'a>>;

/// Where the payment service asks for the network's view of a path.
pub trait NetworkView: Send + Sync {
    /// netd's current diagnosis of the acquirer path named `path` in the merchant
    /// configuration, or `None` when there is none to be had.
    fn diagnose_path<'a>(&'a self, path: &'a str) -> Diagnosing<'a>;
}

/// `e` with netd's diagnosis of `path` added, when netd answers in time and sees a failure.
pub(super) async fn annotate(
    view: Option<Arc<dyn NetworkView>>,
    path: &str,
    e: Explanation,
) -> Explanation {
    let Some(view) = view else {
        return e;
    };
    match tokio::time::timeout(NETWORK_VIEW_WAIT, view.diagnose_path(path)).await {
        Ok(Some(d)) if d.is_failure() => crate::explain::with_network_diagnosis(e, &d),
        Ok(_) => e,
        Err(_) => {
            tracing::info!(
                path,
                "netd did not answer in time; the plain explanation stands"
            );
            e
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A netd that answers after `delay` with `code`.
    struct Netd {
        delay: Duration,
        code: &'static str,
    }

    impl NetworkView for Netd {
        fn diagnose_path<'a>(&'a self, path: &'a str) -> Diagnosing<'a> {
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                Some(PathDiagnosis {
                    code: self.code.into(),
                    reason_en: format!("{path}: 10.0.0.5 refused the connection"),
                    reason_zh: "服务器拒绝连接".into(),
                })
            })
        }
    }

    fn refused() -> Explanation {
        crate::explain::transport(&smartpos_transport::TransportError::new(
            smartpos_transport::ErrorClass::Refused,
            "connect 10.0.0.5:443: refused",
        ))
    }

    fn view(delay_ms: u64, code: &'static str) -> Option<Arc<dyn NetworkView>> {
        Some(Arc::new(Netd {
            delay: Duration::from_millis(delay_ms),
            code,
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn the_cashier_reads_netds_diagnosis_next_to_nothing_was_charged() {
        let e = annotate(view(10, "net.refused"), "alipay", refused()).await;
        assert_eq!(e.code, "net.refused", "what happened to this payment stays");
        assert!(e.en.starts_with(refused().en.as_ref()));
        assert!(
            e.en.ends_with("(network check: alipay: 10.0.0.5 refused the connection)"),
            "{}",
            e.en
        );
        assert!(e.zh.ends_with("(网络检测:服务器拒绝连接)"), "{}", e.zh);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_netd_or_one_that_sees_nothing_wrong_leaves_the_plain_words() {
        let slow = NETWORK_VIEW_WAIT + Duration::from_millis(1);
        let ms = u64::try_from(slow.as_millis()).unwrap();
        assert_eq!(
            annotate(view(ms, "net.refused"), "alipay", refused()).await,
            refused()
        );
        assert_eq!(
            annotate(view(1, "ok"), "alipay", refused()).await,
            refused()
        );
        assert_eq!(
            annotate(view(1, "unchecked"), "alipay", refused()).await,
            refused()
        );
        assert_eq!(annotate(None, "alipay", refused()).await, refused());
    }
}
