//! `org.smartpos.Network1`: the monitor's state as properties, Probe on demand (caller check
//! and rate limit), Diagnose as findings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use smartpos_bus::diagnose::{Finding, Verdict};
use smartpos_bus::errors;
use smartpos_net::certs::CertState;
use smartpos_net::monitor::{Monitor, Status};
use smartpos_runtime::auth::Policy;
use smartpos_runtime::error::BusError;
use zbus::{Connection, interface, message::Header};

/// One link on the bus, as the interface XML has it: `(name, operstate, carrier, IPv4
/// addresses, IPv6 addresses)`.
pub type LinkRow = (String, String, bool, Vec<String>, Vec<String>);

use crate::probes;

/// What the daemon's tasks and its bus interface share.
pub struct Shared {
    pub monitor: Mutex<Monitor>,
    /// Woken whenever the monitor changed, so the publisher announces it.
    pub changed: tokio::sync::Notify,
    pub settings: probes::Settings,
    /// When each target was last probed on demand.
    on_demand: Mutex<HashMap<String, Instant>>,
}

impl Shared {
    pub fn new(monitor: Monitor, settings: probes::Settings) -> Arc<Shared> {
        Arc::new(Shared {
            monitor: Mutex::new(monitor),
            changed: tokio::sync::Notify::new(),
            settings,
            on_demand: Mutex::default(),
        })
    }

    pub fn monitor(&self) -> MutexGuard<'_, Monitor> {
        self.monitor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn status(&self) -> Status {
        self.monitor().status(SystemTime::now())
    }
}

pub struct NetworkService {
    pub shared: Arc<Shared>,
    pub probers: Policy,
    pub min_interval: Duration,
}

impl NetworkService {
    /// Refuse a target probed on demand less than `min_interval` ago; else note it now.
    fn rate_limit(&self, targets: &[String]) -> Result<(), BusError> {
        let mut seen = self
            .shared
            .on_demand
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        for t in targets {
            if let Some(at) = seen.get(t) {
                let since = now.duration_since(*at);
                if since < self.min_interval {
                    let wait = (self.min_interval - since).as_secs() + 1;
                    return Err(BusError::named(
                        errors::BUSY,
                        format!(
                            "{t} was probed on demand {} s ago: try again in {wait} s (the scheduled probes keep running)",
                            since.as_secs()
                        ),
                    ));
                }
            }
        }
        for t in targets {
            seen.insert(t.clone(), now);
        }
        Ok(())
    }
}

#[interface(name = "org.smartpos.Network1")]
impl NetworkService {
    #[zbus(out_args("status"))]
    async fn probe(
        &self,
        endpoint: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, BusError> {
        self.probers.check(&hdr, conn, "trigger probes").await?;
        let all = probes::names(&self.shared);
        let chosen: Vec<String> = if endpoint.is_empty() {
            all
        } else if all.contains(&endpoint) {
            vec![endpoint.clone()]
        } else {
            return Err(BusError::named(
                errors::NOT_FOUND,
                format!(
                    "no endpoint {endpoint:?}: this terminal probes {}",
                    all.join(", ")
                ),
            ));
        };
        self.rate_limit(&chosen)?;
        tracing::info!(targets = %chosen.join(","), "probing on demand");
        probes::run(&self.shared, &chosen).await;
        self.shared.changed.notify_one();
        serde_json::to_string(&self.shared.status())
            .map_err(|e| BusError::named(errors::FAILED, e.to_string()))
    }

    #[zbus(out_args("findings"))]
    async fn diagnose(&self) -> Vec<Finding> {
        findings(&self.shared.status())
    }

    #[zbus(property)]
    fn version(&self) -> String {
        smartpos_runtime::VERSION.to_owned()
    }

    #[zbus(property)]
    fn online(&self) -> bool {
        self.shared.status().online
    }

    #[zbus(property)]
    fn paths(&self) -> Vec<(String, String, bool, String, String, String)> {
        paths(&self.shared.status())
    }

    #[zbus(property)]
    fn links(&self) -> Vec<LinkRow> {
        links(&self.shared.status())
    }

    #[zbus(property)]
    fn carrying(&self) -> (String, String, String) {
        carrying(&self.shared.status())
    }

    #[zbus(property)]
    fn status(&self) -> String {
        serde_json::to_string(&self.shared.status()).unwrap_or_default()
    }
}

pub fn paths(s: &Status) -> Vec<(String, String, bool, String, String, String)> {
    s.paths
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.kind.clone(),
                p.online,
                p.code.clone(),
                p.reason_en.clone(),
                p.reason_zh.clone(),
            )
        })
        .collect()
}

pub fn links(s: &Status) -> Vec<LinkRow> {
    s.links
        .iter()
        .map(|l| {
            (
                l.name.clone(),
                l.operstate.clone(),
                l.carrier == Some(true),
                l.ipv4.clone(),
                l.ipv6.clone(),
            )
        })
        .collect()
}

pub fn carrying(s: &Status) -> (String, String, String) {
    s.carrying.as_ref().map_or_else(Default::default, |r| {
        (r.family.clone(), r.interface.clone(), r.gateway.clone())
    })
}

/// Findings: the network group (3) for links, gateway, resolvers and paths; the platform
/// group (6) for the clock and the certificates, which break TLS rather than the network.
pub fn findings(s: &Status) -> Vec<Finding> {
    let mut out = Vec::new();
    let link = match &s.carrying {
        Some(r) => Finding::new(3, "link", Verdict::Ok).evidence(format!(
            "traffic goes out on {} ({}{})",
            r.interface,
            r.family,
            if r.gateway.is_empty() {
                String::new()
            } else {
                format!(" via {}", r.gateway)
            }
        )),
        None => Finding::new(3, "link", Verdict::Fail)
            .evidence("no link carries a default route")
            .code("net.no_route")
            .instruction(
                "网络未连接:请检查网线或Wi-Fi,然后重试",
                "no network: check the cable or Wi-Fi, then try again",
            ),
    };
    out.push(link);
    for (subject, g) in [("gateway", &s.gateway), ("gateway6", &s.gateway6)] {
        let Some(g) = g else { continue };
        let f = if !g.note.is_empty() {
            Finding::new(3, subject, Verdict::Unknown).evidence(g.note.clone())
        } else {
            match g.summary.last_ok {
                None => Finding::new(3, subject, Verdict::Unknown)
                    .evidence(format!("{} not pinged yet", g.address)),
                Some(true) => Finding::new(3, subject, Verdict::Ok).evidence(format!(
                    "{} answers: p50 {:.0} ms, loss {:.0}% over {} pings",
                    g.address,
                    g.summary.p50_ms.unwrap_or_default(),
                    g.summary.loss * 100.0,
                    g.summary.probes
                )),
                Some(false) => Finding::new(3, subject, Verdict::Warn)
                    .evidence(format!(
                        "{} does not answer pings ({})",
                        g.address,
                        g.summary
                            .last_error
                            .as_ref()
                            .map(|e| e.detail.as_str())
                            .unwrap_or_default()
                    ))
                    .code("net.gateway"),
            }
        };
        out.push(f);
    }
    for r in &s.resolvers {
        let subject = format!("dns:{}", r.address);
        out.push(match r.summary.last_ok {
            None => Finding::new(3, subject, Verdict::Unknown).evidence("not asked yet"),
            Some(true) => Finding::new(3, subject, Verdict::Ok).evidence(format!(
                "answers in {:.0} ms (p95 {:.0} ms)",
                r.summary.p50_ms.unwrap_or_default(),
                r.summary.p95_ms.unwrap_or_default()
            )),
            Some(false) => Finding::new(3, subject, Verdict::Warn)
                .evidence(
                    r.summary
                        .last_error
                        .as_ref()
                        .map(|e| e.detail.clone())
                        .unwrap_or_default(),
                )
                .code("net.dns"),
        });
    }
    for p in &s.paths {
        let verdict = match (p.online, p.code.as_str()) {
            (_, "unchecked") => Verdict::Unknown,
            (true, _) => Verdict::Ok,
            (false, _) => Verdict::Fail,
        };
        let mut f =
            Finding::new(3, format!("path:{}", p.name), verdict).evidence(p.reason_en.clone());
        if verdict == Verdict::Fail {
            f = f
                .code(p.code.clone())
                .instruction(p.reason_zh.clone(), p.reason_en.clone());
        }
        out.push(f);
    }
    let clock = Verdict::parse(&s.clock.verdict).unwrap_or(Verdict::Unknown);
    let mut f = Finding::new(6, "clock", clock).evidence(s.clock.text.clone());
    if matches!(clock, Verdict::Warn | Verdict::Fail) {
        f = f.code("clock.off").instruction(
            "终端时间不对:请校准时间(或联系技术支持)",
            "the terminal's clock is off: set the time (or call support)",
        );
    }
    out.push(f);
    for c in &s.certificates {
        let subject = format!("cert:{}:{}", c.owner, c.role);
        let when = |t: Option<i64>| t.map_or_else(String::new, |t| format!(" (Unix time {t})"));
        let f = match c.state {
            CertState::Ok => Finding::new(6, subject, Verdict::Ok).evidence(format!(
                "{} valid for {} more days",
                c.file.display(),
                c.days_left.unwrap_or_default()
            )),
            CertState::ExpiresSoon => Finding::new(6, subject, Verdict::Warn)
                .evidence(format!(
                    "{} expires in {} days{}",
                    c.file.display(),
                    c.days_left.unwrap_or_default(),
                    when(c.not_after)
                ))
                .code("cert.expires_soon")
                .instruction(
                    "证书即将过期:请联系技术支持更新",
                    "a certificate expires soon: call support to renew it",
                ),
            CertState::Expired | CertState::NotYetValid | CertState::Unreadable => {
                let (code, what) = match c.state {
                    CertState::Expired => ("cert.expired", format!("expired{}", when(c.not_after))),
                    CertState::NotYetValid => (
                        "cert.not_yet_valid",
                        format!("is not valid yet{}", when(c.not_before)),
                    ),
                    _ => ("cert.unreadable", format!("cannot be read: {}", c.problem)),
                };
                Finding::new(6, subject, Verdict::Fail)
                    .evidence(format!("{} {what}", c.file.display()))
                    .code(code)
                    .instruction(
                        "证书无效:此支付通道无法使用,请联系技术支持",
                        "a certificate is not valid: payments on this path fail; call support",
                    )
            }
        };
        out.push(f);
    }
    out
}
