//! `Payment1.Diagnose()`: what the payment side knows about each cause group, as findings a
//! vendor app can show and `posctl doctor` prints.
//!
//! Evidence comes from three places: the merchant configuration (version, age, channel
//! matrix, local rules, policy table), the journal (sales that failed in the last 24 hours,
//! with their explanations), and what this process saw since it started that the journal
//! does not keep: answers on the way to an outcome (an acquirer answer whose signature did
//! not verify, before the query found the sale paid) and scans that were not payment codes
//! (a collection code shown by mistake leaves the sale waiting, so no failure is journaled).

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use smartpos_bus::diagnose::{Finding, Verdict};
use smartpos_payment::{
    Cause, Explanation, FundingChannel, PaymentError, PaymentService, SaleState, Scheme, TxEvent,
    TxId, clock,
};
use tokio::sync::broadcast;

use crate::service::{json_name, lock};

/// How far back recent failures are looked for.
const WINDOW_MS: i64 = 86_400_000;
/// Explanations kept in memory (each is small; a busy till makes a few hundred a day).
const KEEP: usize = 1000;

/// One explanation seen: when, for which sale.
#[derive(Debug, Clone)]
struct Seen {
    at_ms: i64,
    tx: i64,
    why: Explanation,
}

struct Diag {
    max_config_age: Duration,
    seen: Mutex<VecDeque<Seen>>,
}

static DIAG: OnceLock<Diag> = OnceLock::new();

fn diag() -> &'static Diag {
    DIAG.get_or_init(|| Diag {
        max_config_age: Duration::from_secs(86_400),
        seen: Mutex::new(VecDeque::new()),
    })
}

/// Start remembering the explanations that sales pass through. Call once, at start.
pub fn init(mut events: broadcast::Receiver<TxEvent>, max_config_age: Duration) {
    let _ = DIAG.set(Diag {
        max_config_age,
        seen: Mutex::new(VecDeque::new()),
    });
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(ev) => {
                    if let Some(e) = ev.explanation {
                        remember(ev.tx, e);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

/// A scan for sale `tx` did not pay, for the reason `why` (the sale keeps waiting).
pub fn scan_refused(tx: TxId, why: &Explanation) {
    remember(tx, why.clone());
}

/// A Sale or PayWithCode call refused before any sale was created (a local risk or policy
/// rule, a wallet switched off): nothing is journaled, so the doctor remembers it here, as sale
/// 0.
pub fn call_refused(e: &PaymentError) {
    if let Some(why) = e.explanation() {
        remember(TxId(0), why.clone());
    }
}

fn remember(tx: TxId, why: Explanation) {
    // "Waiting for the customer" is a state, not a failure.
    if why.code == "local.waiting_for_customer" {
        return;
    }
    let mut seen = lock(&diag().seen);
    if seen.len() >= KEEP {
        seen.pop_front();
    }
    seen.push_back(Seen {
        at_ms: clock::now_ms(),
        tx: tx.0,
        why,
    });
}

/// Codes that end a sale without anything being wrong: not evidence of a cause.
fn is_routine(code: &str) -> bool {
    matches!(code, "local.cancelled_by_cashier" | "local.expired")
}

/// Failures of the last 24 hours, newest first: the journal's failed and cancelled sales,
/// then what this process saw on the way (each (sale, code) once).
async fn recent(svc: &PaymentService) -> Vec<Seen> {
    let since = clock::now_ms() - WINDOW_MS;
    let mut out: Vec<Seen> = Vec::new();
    match svc.read_since(since).await {
        Ok(sales) => {
            for t in sales {
                if !matches!(t.state, SaleState::Failed | SaleState::Cancelled) {
                    continue;
                }
                if let Some(e) = t.explanation
                    && !is_routine(&e.code)
                {
                    out.push(Seen {
                        at_ms: t.updated_at_ms,
                        tx: t.id.0,
                        why: e,
                    });
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "diagnose: cannot read recent sales"),
    }
    let mut known: HashSet<(i64, String)> =
        out.iter().map(|s| (s.tx, s.why.code.clone())).collect();
    for s in lock(&diag().seen).iter() {
        if s.at_ms >= since && known.insert((s.tx, s.why.code.clone())) {
            out.push(s.clone());
        }
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.at_ms));
    out
}

/// "3 days ago", "5 hours ago", "just now".
pub fn ago(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = match s {
        0..60 => return "just now".into(),
        60..3600 => (s / 60, "minute"),
        3600..172_800 => (s / 3600, "hour"),
        _ => (s / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

fn cause_group(c: Cause) -> u8 {
    c.number()
}

/// How bad recent failures of a cause are for the terminal: the terminal's own setup or
/// software (platform, merchant configuration) fails; a customer's or an acquirer's
/// decision about one sale warns.
fn severity(c: Cause) -> Verdict {
    match c {
        Cause::PlatformIncompatibility | Cause::MerchantConfig => Verdict::Fail,
        _ => Verdict::Warn,
    }
}

/// Counts per code, most frequent first, with the explanation of each.
fn by_code<'a>(items: impl Iterator<Item = &'a Seen>) -> Vec<(&'a Explanation, usize)> {
    let mut v: Vec<(&Explanation, usize)> = Vec::new();
    for s in items {
        match v.iter_mut().find(|(e, _)| e.code == s.why.code) {
            Some((_, n)) => *n += 1,
            None => v.push((&s.why, 1)),
        }
    }
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.code.cmp(&b.0.code)));
    v
}

fn counts_text(v: &[(&Explanation, usize)]) -> String {
    v.iter()
        .map(|(e, n)| format!("{} ×{n}", e.code))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Codes that say a scanned code's family cannot pay here: a collection code, something that
/// is not a payment code, a wallet the software or this merchant does not take.
fn is_refused_family(code: &str) -> bool {
    code.starts_with("local.collection_qr")
        || code.starts_with("config.scheme_disabled")
        || matches!(code, "local.not_payment_code" | "local.unsupported_scheme")
}

fn user_error_kind(code: &str) -> &'static str {
    match code {
        "ACQ.PAYMENT_AUTH_CODE_INVALID"
        | "ACQ.AUTH_TOKEN_IS_NOT_EXIST"
        | "ACQ.BUYER_NOT_EXIST"
        | "AUTHCODEEXPIRE"
        | "AUTH_CODE_ERROR" => "expired or used codes",
        "local.customer_timeout" | "ACQ.PULL_MOBILE_CASHIER_FAIL" => {
            "customers who did not confirm"
        }
        c if c.starts_with("local.collection_qr") => "collection codes shown",
        "local.not_payment_code" | "AUTH_CODE_INVALID" => "other codes shown",
        _ => "other",
    }
}

/// Findings for every cause group the payment side can speak to.
pub async fn findings(
    svc: &PaymentService,
    scanner_enabled: bool,
    scanner_reachable: bool,
) -> Vec<Finding> {
    let cfg = svc.config();
    let now = clock::now_ms();
    let max_age = diag().max_config_age;
    let mut out = Vec::new();
    let probes = svc.doctor(max_age).await;

    // 2 software: this daemon and its journal.
    out.push(
        Finding::new(2, "paymentd", Verdict::Ok)
            .evidence(format!("smartpos-paymentd {}", smartpos_runtime::VERSION)),
    );
    for p in probes.iter().filter(|p| p.subject == "journal") {
        let mut f = Finding::new(2, "journal", if p.ok { Verdict::Ok } else { Verdict::Fail })
            .evidence(p.detail.clone());
        if let Some(e) = &p.explanation {
            f = f
                .code(e.code.clone())
                .instruction(e.zh.clone(), e.en.clone());
        }
        out.push(f);
    }
    out.push(match (scanner_enabled, scanner_reachable) {
        (false, _) => Finding::new(2, "scanner_link", Verdict::Ok)
            .evidence("no scanner is used (scanner = false): the app scans and calls PayWithCode"),
        (true, true) => Finding::new(2, "scanner_link", Verdict::Ok)
            .evidence("smartpos-scannerd reached when a sale last armed it"),
        (true, false) => Finding::new(2, "scanner_link", Verdict::Fail)
            .evidence("smartpos-paymentd cannot arm smartpos-scannerd")
            .code("local.scanner_unreachable")
            .instruction(
                "扫码服务无法连接,请检查扫码器或重启终端",
                "the scanner service cannot be reached: check the scanner or restart the terminal",
            ),
    });

    // 3 network: a TLS handshake with every acquirer path.
    for p in probes.iter().filter(|p| p.subject.starts_with("path:")) {
        let mut f = Finding::new(
            3,
            p.subject.clone(),
            if p.ok { Verdict::Ok } else { Verdict::Fail },
        )
        .evidence(p.detail.clone());
        if let Some(e) = &p.explanation {
            f = f
                .code(e.code.clone())
                .instruction(e.zh.clone(), e.en.clone());
        }
        out.push(f);
    }

    // 7 sync delay.
    let age = cfg.age(now);
    let stale = cfg.staleness(now, max_age);
    let mut f = Finding::new(
        7,
        "config",
        if stale.is_some() {
            Verdict::Warn
        } else {
            Verdict::Ok
        },
    )
    .evidence(format!(
        "merchant configuration version {}, synced {} ({}); threshold {} h",
        cfg.version,
        cfg.synced_at,
        ago(age),
        max_age.as_secs() / 3600
    ));
    if let Some(e) = &stale {
        f = f
            .code(e.code.clone())
            .instruction(e.zh.clone(), e.en.clone());
    }
    out.push(f);

    // 8 merchant configuration: the channel matrix per wallet.
    let funding = &cfg.merchant.funding;
    for scheme in Scheme::ALL {
        let f = if cfg.merchant.schemes.contains(&scheme) {
            let channels = FundingChannel::ALL
                .iter()
                .map(|c| {
                    format!(
                        "{} {}",
                        json_name(c),
                        if funding.contains(c) { "on" } else { "off" }
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let routed = cfg.route.iter().any(|r| r.scheme == scheme);
            let mut f = Finding::new(
                8,
                format!("funding:{scheme}"),
                if routed { Verdict::Ok } else { Verdict::Fail },
            )
            .evidence(format!("{scheme} accepted; {channels}"));
            if !routed {
                f = f.code("config.no_route").instruction(
                    "商户配置中该钱包没有收单通道,请联系服务商",
                    "no acquirer path is configured for this wallet: call the service provider",
                );
            }
            f
        } else {
            Finding::new(8, format!("funding:{scheme}"), Verdict::Ok)
                .evidence(format!("{scheme} is not accepted by this merchant"))
        };
        out.push(f);
    }

    let recent = recent(svc).await;
    let of = |c: Cause| recent.iter().filter(move |s| s.why.cause == c);

    // 2 software: the code families the classifier refused (the scanner reports the ones it
    // read; only this side knows which of them could not pay).
    let refused = by_code(recent.iter().filter(|s| is_refused_family(&s.why.code)));
    out.push(
        Finding::new(2, "refused_families", Verdict::Ok).evidence(if refused.is_empty() {
            "no code family refused in the last 24 h".to_owned()
        } else {
            format!(
                "code families refused in the last 24 h: {}",
                counts_text(&refused)
            )
        }),
    );

    // Recent failures, per cause (guidance is the list of last failures below).
    for cause in Cause::ALL {
        if cause == Cause::Guidance {
            continue;
        }
        let counts = by_code(of(cause));
        let Some((top, _)) = counts.first() else {
            if matches!(
                cause,
                Cause::UserError
                    | Cause::PlatformIncompatibility
                    | Cause::RiskControl
                    | Cause::Compliance
            ) {
                out.push(
                    Finding::new(
                        cause_group(cause),
                        format!("recent:{}", cause.as_str()),
                        Verdict::Ok,
                    )
                    .evidence(format!(
                        "no {} failure in the last 24 h",
                        cause.as_str().replace('_', " ")
                    )),
                );
            }
            continue;
        };
        let evidence = match cause {
            Cause::UserError => {
                let mut kinds: Vec<(&str, usize)> = Vec::new();
                for (e, n) in &counts {
                    let k = user_error_kind(&e.code);
                    match kinds.iter_mut().find(|(x, _)| *x == k) {
                        Some((_, m)) => *m += n,
                        None => kinds.push((k, *n)),
                    }
                }
                let kinds = kinds
                    .iter()
                    .map(|(k, n)| format!("{k}: {n}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                format!("last 24 h: {kinds} ({})", counts_text(&counts))
            }
            Cause::RiskControl | Cause::Compliance => {
                let local: Vec<_> = counts
                    .iter()
                    .filter(|(e, _)| e.code.starts_with("risk.") || e.code.starts_with("policy."))
                    .cloned()
                    .collect();
                let acquirer: Vec<_> = counts
                    .iter()
                    .filter(|(e, _)| {
                        !(e.code.starts_with("risk.") || e.code.starts_with("policy."))
                    })
                    .cloned()
                    .collect();
                let what = if cause == Cause::RiskControl {
                    "local rules"
                } else {
                    "policy rules"
                };
                let mut parts = Vec::new();
                if !local.is_empty() {
                    parts.push(format!("{what} blocked: {}", counts_text(&local)));
                }
                if !acquirer.is_empty() {
                    parts.push(format!("acquirer refused: {}", counts_text(&acquirer)));
                }
                format!("last 24 h: {}", parts.join("; "))
            }
            _ => format!("last 24 h: {}", counts_text(&counts)),
        };
        let raw = top
            .raw_message
            .as_deref()
            .map(|m| format!(" — acquirer said: {m}"))
            .unwrap_or_default();
        out.push(
            Finding::new(
                cause_group(cause),
                format!("recent:{}", cause.as_str()),
                severity(cause),
            )
            .evidence(format!("{evidence}{raw}"))
            .code(top.code.clone())
            .instruction(top.zh.clone(), top.en.clone()),
        );
    }

    // 9 risk control and 10 compliance: the rules in force.
    let r = &cfg.risk;
    out.push(
        Finding::new(9, "local_rules", Verdict::Ok).evidence(format!(
            "per sale ≤ {} fen, per day ≤ {} fen, at most {} sales per {} s",
            r.max_per_sale_fen, r.max_daily_fen, r.velocity_max_sales, r.velocity_window_s
        )),
    );
    let names: Vec<&str> = cfg.policy.iter().map(|p| p.name.as_str()).collect();
    out.push(
        Finding::new(10, "policy", Verdict::Ok).evidence(if names.is_empty() {
            "no policy rule configured".to_owned()
        } else {
            format!(
                "{} rule(s): {} (merchant category {:?})",
                names.len(),
                names.join(", "),
                cfg.merchant.category
            )
        }),
    );

    // 5 guidance: the last failures, each with what the cashier was told.
    let last: Vec<&Seen> = recent.iter().take(5).collect();
    if last.is_empty() {
        out.push(
            Finding::new(5, "last_failures", Verdict::Ok)
                .evidence("no failed sale in the last 24 h"),
        );
    }
    for s in last {
        let age = Duration::from_millis(u64::try_from(now - s.at_ms).unwrap_or(0));
        out.push(
            Finding::new(
                5,
                format!("tx:{}", s.tx),
                if s.why.known {
                    Verdict::Ok
                } else {
                    Verdict::Warn
                },
            )
            .evidence(format!(
                "sale {} {}: [{}] {}{}",
                s.tx,
                ago(age),
                s.why.cause.as_str(),
                s.why.code,
                s.why
                    .raw_message
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ))
            .code(s.why.code.clone())
            .instruction(s.why.zh.clone(), s.why.en.clone()),
        );
    }

    out.push(huabei(svc, &probes, &recent, stale.as_ref()));
    out
}

/// One finding that answers "can this terminal take Huabei?", in a sentence a merchant
/// understands: the evidence states the cause, the instruction what to do.
fn huabei(
    svc: &PaymentService,
    probes: &[smartpos_payment::Finding],
    recent: &[Seen],
    stale: Option<&Explanation>,
) -> Finding {
    let cfg = svc.config();
    let synced = format!(
        "version {}, synced {}",
        cfg.version,
        ago(cfg.age(clock::now_ms()))
    );
    let alipay = Scheme::Alipay;
    if !cfg.merchant.schemes.contains(&alipay) {
        return Finding::new(8, "huabei", Verdict::Fail)
            .code(format!("config.scheme_disabled.{alipay}"))
            .evidence(format!(
                "Alipay, and with it Huabei, is switched off in this shop's configuration ({synced})"
            ))
            .instruction(
                "请联系服务商为本商户开通支付宝和花呗收款",
                "ask your service provider to enable Alipay and 花呗 for this merchant",
            );
    }
    if !cfg.merchant.funding.contains(&FundingChannel::Huabei) {
        return Finding::new(8, "huabei", Verdict::Fail)
            .code("config.huabei_off")
            .evidence(format!(
                "Huabei is switched off in this shop's configuration ({synced})"
            ))
            .instruction(
                "请联系服务商为本商户开通花呗收款",
                "ask your service provider to enable 花呗 for this merchant",
            );
    }
    if let Some(rule) = cfg.policy.iter().find(|p| {
        p.deny_funding.contains(&FundingChannel::Huabei)
            && !p.virtual_goods_only
            && (p.categories.is_empty() || p.categories.contains(&cfg.merchant.category))
            && (p.schemes.is_empty() || p.schemes.contains(&alipay))
    }) {
        return Finding::new(10, "huabei", Verdict::Fail)
            .code(format!("policy.{}", rule.name))
            .evidence(format!(
                "a compliance rule ({}) does not allow Huabei for this shop's business category {:?} ({synced})",
                rule.name, cfg.merchant.category
            ))
            .instruction(
                "本商户所属行业不允许使用花呗,请顾客使用余额或银行卡付款",
                "花呗 cannot be offered in this business category: ask the customer to pay from balance or a bank card",
            );
    }
    let Some(route) = cfg.route.iter().find(|r| r.scheme == alipay) else {
        return Finding::new(8, "huabei", Verdict::Fail)
            .code("config.no_route")
            .evidence(format!(
                "no acquirer path for Alipay is configured for this shop ({synced})"
            ))
            .instruction(
                "请联系服务商配置支付宝收单通道",
                "ask your service provider to configure an Alipay acquirer path",
            );
    };
    let unreachable: Vec<&str> = route
        .paths
        .iter()
        .filter(|p| {
            probes
                .iter()
                .any(|f| f.subject == format!("path:{p}") && !f.ok)
        })
        .map(String::as_str)
        .collect();
    if !unreachable.is_empty() && unreachable.len() == route.paths.len() {
        return Finding::new(3, "huabei", Verdict::Fail)
            .code("net.acquirer_unreachable")
            .evidence(format!(
                "the terminal cannot reach Alipay's gateway ({})",
                unreachable.join(", ")
            ))
            .instruction(
                "请检查网络连接、系统时间和证书后重试",
                "check the network connection, the clock and the certificates, then try again",
            );
    }
    if let Some(s) = recent.iter().find(|s| {
        matches!(
            s.why.cause,
            Cause::MerchantConfig | Cause::PlatformIncompatibility
        )
    }) {
        return Finding::new(s.why.cause.number(), "huabei", Verdict::Fail)
            .code(s.why.code.clone())
            .evidence(format!(
                "a sale in the last 24 h ended with {}, which the terminal cannot get past by itself ({})",
                s.why.code, s.why.en
            ))
            .instruction(s.why.zh.clone(), s.why.en.clone());
    }
    if let Some(e) = stale {
        return Finding::new(7, "huabei", Verdict::Warn)
            .code(e.code.clone())
            .evidence(format!(
                "Huabei is on in this shop's configuration, but the configuration is out of date ({synced})"
            ))
            .instruction(e.zh.clone(), e.en.clone());
    }
    Finding::new(8, "huabei", Verdict::Ok)
        .evidence(format!(
            "Huabei is on for this shop ({synced}) and the terminal reaches Alipay"
        ))
        .instruction(
            "终端可以收花呗;若顾客花呗仍被拒,是顾客自己的额度或支付宝风控所致,请顾客换一种付款方式",
            "this terminal takes 花呗; if a customer's Huabei is still refused, it is their own limit or Alipay's risk control: ask them to pay another way",
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_a_person_would_say_them() {
        assert_eq!(ago(Duration::from_secs(5)), "just now");
        assert_eq!(ago(Duration::from_secs(60)), "1 minute ago");
        assert_eq!(ago(Duration::from_secs(3 * 3600)), "3 hours ago");
        assert_eq!(ago(Duration::from_secs(3 * 86_400 + 5)), "3 days ago");
    }

    #[test]
    fn the_terminal_fails_on_its_own_faults_and_warns_on_a_customers() {
        assert_eq!(severity(Cause::MerchantConfig), Verdict::Fail);
        assert_eq!(severity(Cause::PlatformIncompatibility), Verdict::Fail);
        assert_eq!(severity(Cause::UserError), Verdict::Warn);
        assert_eq!(severity(Cause::RiskControl), Verdict::Warn);
    }
}
