//! What netd knows: links, the gateway, the resolvers, each endpoint's rolling statistics,
//! the clock and the certificates, and from all of it one verdict per acquirer path in words
//! a cashier understands ("Alipay unreachable: DNS for openapi.alipay.com timed out at
//! 192.168.1.1 for 3 minutes").
//!
//! The monitor holds no sockets and reads no clock of its own: probes are made elsewhere and
//! fed in with the time they were made, so every sentence here is testable.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::certs::{CertState, CertStatus};
use crate::links::{DefaultRoute, Link, Links};
use crate::stats::{ProbeError, Sample, Summary, Window, unix};
use crate::targets::Target;
use crate::words;

/// Thresholds.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Probes kept per target for p50/p95/loss.
    pub window: usize,
    /// A clock further than this from a server's `Date:` is a warning.
    pub clock_warn: Duration,
    /// … and further than this, an error: certificates and signed requests stop working.
    pub clock_fail: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            window: 20,
            clock_warn: Duration::from_secs(60),
            clock_fail: Duration::from_secs(3_600),
        }
    }
}

/// What one HTTPS probe of an endpoint saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub dns_ms: Option<f64>,
    pub connect_ms: Option<f64>,
    pub handshake_ms: Option<f64>,
    pub http_status: Option<u16>,
    pub total_ms: f64,
    /// The connection came from the pool (no new handshake).
    pub reused: bool,
}

/// An endpoint probe's result, as fed to [`Monitor::endpoint_probed`].
#[derive(Debug, Clone)]
pub struct EndpointResult {
    pub at: SystemTime,
    pub timings: Timings,
    /// The server's `Date:` header, if it answered.
    pub server_date: Option<SystemTime>,
    pub error: Option<ProbeError>,
}

/// One probe target as a client reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetStatus {
    pub name: String,
    /// "gateway", "resolver", or the endpoint's kind ("alipay", "wechat", "qra", "fleet").
    pub kind: String,
    /// An address or URL.
    pub address: String,
    #[serde(flatten)]
    pub summary: Summary,
    pub last: Option<Timings>,
    /// Why it is not measured, when it is not ("ping sockets are not allowed …").
    pub note: String,
}

/// The clock as seen from the servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockStatus {
    /// `org.freedesktop.timedate1` NTPSynchronized; None where there is no timedated.
    pub ntp_synchronized: Option<bool>,
    /// Server clock minus ours, seconds, per endpoint that answered with a `Date:`.
    pub offsets: Vec<ClockOffset>,
    /// The largest offset (by magnitude), seconds.
    pub worst_offset_s: Option<i64>,
    /// "ok", "warn", "fail" or "unknown".
    pub verdict: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockOffset {
    pub endpoint: String,
    pub offset_s: i64,
    /// Unix seconds of the answer.
    pub at: u64,
}

/// One acquirer path's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStatus {
    pub name: String,
    pub kind: String,
    pub online: bool,
    /// A stable code for programs: "ok", "unchecked", "net.no_route", "net.dns", …,
    /// "clock.off", "cert.expired" …
    pub code: String,
    pub reason_en: String,
    pub reason_zh: String,
}

/// Everything, as `Network1.Status` and `posctl net status --json` give it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// At least one acquirer path is reachable (or, with none configured, a link carries a
    /// default route).
    pub online: bool,
    pub paths: Vec<PathStatus>,
    pub links: Vec<Link>,
    pub routes: Vec<DefaultRoute>,
    /// The default route that carries traffic.
    pub carrying: Option<DefaultRoute>,
    pub gateway: Option<TargetStatus>,
    /// The IPv6 default gateway, pinged with ICMPv6 when there is an IPv6 default route
    /// (whether or not it carries the traffic); its address is shown as `fe80::1%eth0` when
    /// link-local.
    #[serde(default)]
    pub gateway6: Option<TargetStatus>,
    pub resolvers: Vec<TargetStatus>,
    pub endpoints: Vec<TargetStatus>,
    pub clock: ClockStatus,
    pub certificates: Vec<CertStatus>,
}

struct Endpoint {
    target: Target,
    window: Window,
    last: Option<Timings>,
    offset: Option<ClockOffset>,
}

/// The state netd keeps.
pub struct Monitor {
    limits: Limits,
    links: Links,
    gateway: Option<(String, Window, Option<Timings>)>,
    /// The IPv6 gateway as (address, interface), its window, its last ping.
    gateway6: Option<((String, String), Window, Option<Timings>)>,
    gateway_note: String,
    resolvers: Vec<(SocketAddr, Window)>,
    endpoints: Vec<Endpoint>,
    certs: Vec<CertStatus>,
    ntp: Option<bool>,
}

impl Monitor {
    pub fn new(limits: Limits, targets: Vec<Target>, resolvers: Vec<SocketAddr>) -> Monitor {
        let w = limits.window;
        Monitor {
            endpoints: targets
                .into_iter()
                .map(|target| Endpoint {
                    target,
                    window: Window::new(w),
                    last: None,
                    offset: None,
                })
                .collect(),
            resolvers: resolvers.into_iter().map(|r| (r, Window::new(w))).collect(),
            limits,
            links: Links::default(),
            gateway: None,
            gateway6: None,
            gateway_note: String::new(),
            certs: Vec::new(),
            ntp: None,
        }
    }

    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        self.endpoints.iter().map(|e| &e.target)
    }

    pub fn resolvers(&self) -> Vec<SocketAddr> {
        self.resolvers.iter().map(|(r, _)| *r).collect()
    }

    /// New links and routes; true if anything changed. A new gateway starts a new window.
    pub fn set_links(&mut self, links: Links) -> bool {
        if links == self.links {
            return false;
        }
        self.links = links;
        let gw = self
            .links
            .carrying()
            .filter(|r| r.family == "ipv4" && !r.gateway.is_empty())
            .map(|r| r.gateway.clone());
        match (&self.gateway, gw) {
            (Some((old, _, _)), Some(new)) if *old == new => {}
            (_, Some(new)) => self.gateway = Some((new, Window::new(self.limits.window), None)),
            (_, None) => self.gateway = None,
        }
        let gw6 = self
            .links
            .ipv6_gateway()
            .map(|r| (r.gateway.clone(), r.interface.clone()));
        match (&self.gateway6, gw6) {
            (Some((old, _, _)), Some(new)) if *old == new => {}
            (_, Some(new)) => {
                self.gateway6 = Some((new, Window::new(self.limits.window), None));
            }
            (_, None) => self.gateway6 = None,
        }
        true
    }

    pub fn links(&self) -> &Links {
        &self.links
    }

    /// The IPv4 gateway to ping, if traffic goes through one.
    pub fn gateway(&self) -> Option<&str> {
        self.gateway.as_ref().map(|(g, _, _)| g.as_str())
    }

    /// The IPv6 gateway to ping and the interface it is on, if there is an IPv6 default
    /// route through one.
    pub fn gateway6(&self) -> Option<(&str, &str)> {
        self.gateway6
            .as_ref()
            .map(|((g, i), _, _)| (g.as_str(), i.as_str()))
    }

    pub fn gateway6_probed(&mut self, at: SystemTime, result: Result<Duration, ProbeError>) {
        if let Some((_, w, last)) = &mut self.gateway6 {
            *last = result.as_ref().ok().map(|d| Timings {
                total_ms: ms(*d),
                ..Timings::default()
            });
            w.push(sample(at, result));
        }
    }

    pub fn gateway_probed(&mut self, at: SystemTime, result: Result<Duration, ProbeError>) {
        self.gateway_note.clear();
        if let Some((_, w, last)) = &mut self.gateway {
            *last = result.as_ref().ok().map(|d| Timings {
                total_ms: ms(*d),
                ..Timings::default()
            });
            w.push(sample(at, result));
        }
    }

    /// The gateway cannot be pinged from here (not a statement about the gateway).
    pub fn gateway_unmeasurable(&mut self, why: String) {
        self.gateway_note = why;
    }

    pub fn resolver_probed(
        &mut self,
        server: SocketAddr,
        at: SystemTime,
        result: Result<Duration, ProbeError>,
    ) {
        if let Some((_, w)) = self.resolvers.iter_mut().find(|(r, _)| *r == server) {
            w.push(sample(at, result));
        }
    }

    pub fn endpoint_probed(&mut self, name: &str, r: EndpointResult) {
        let Some(e) = self.endpoints.iter_mut().find(|e| e.target.name == name) else {
            return;
        };
        if let Some(date) = r.server_date {
            // The Date header has whole seconds: offsets below 2 s are noise.
            let offset = signed_secs(date, r.at);
            e.offset = Some(ClockOffset {
                endpoint: name.to_owned(),
                offset_s: if offset.abs() < 2 { 0 } else { offset },
                at: unix(r.at),
            });
        }
        e.last = Some(r.timings.clone());
        let latency = Duration::from_secs_f64(r.timings.total_ms.max(0.0) / 1000.0);
        e.window.push(Sample {
            at: r.at,
            latency: r.error.is_none().then_some(latency),
            error: r.error,
        });
    }

    pub fn set_ntp(&mut self, synced: Option<bool>) {
        self.ntp = synced;
    }

    pub fn set_certs(&mut self, certs: Vec<CertStatus>) {
        self.certs = certs;
    }

    pub fn certs(&self) -> &[CertStatus] {
        &self.certs
    }

    /// The worst clock offset seen, seconds (server minus ours).
    fn worst_offset(&self) -> Option<&ClockOffset> {
        self.endpoints
            .iter()
            .filter_map(|e| e.offset.as_ref())
            .max_by_key(|o| o.offset_s.unsigned_abs())
    }

    pub fn clock(&self) -> ClockStatus {
        let offsets: Vec<ClockOffset> = self
            .endpoints
            .iter()
            .filter_map(|e| e.offset.clone())
            .collect();
        let worst = self.worst_offset();
        let (verdict, text) = match worst {
            Some(o) if o.offset_s.unsigned_abs() > self.limits.clock_fail.as_secs() => (
                "fail",
                format!(
                    "the terminal's clock is {} ({}'s clock says so): certificates and signed requests fail until the time is set right",
                    offset_words(o.offset_s),
                    o.endpoint
                ),
            ),
            Some(o) if o.offset_s.unsigned_abs() > self.limits.clock_warn.as_secs() => (
                "warn",
                format!(
                    "the terminal's clock is {} ({}'s clock says so)",
                    offset_words(o.offset_s),
                    o.endpoint
                ),
            ),
            Some(_) => (
                if self.ntp == Some(false) {
                    "warn"
                } else {
                    "ok"
                },
                format!(
                    "within {} s of the servers' clocks{}",
                    self.limits.clock_warn.as_secs(),
                    match self.ntp {
                        Some(true) => ", NTP synchronized",
                        Some(false) => ", but NTP is not synchronized",
                        None => "",
                    }
                ),
            ),
            None => match self.ntp {
                Some(true) => ("ok", "NTP synchronized; no server answered yet".to_owned()),
                Some(false) => (
                    "warn",
                    "NTP is not synchronized and no server answered yet to compare with".to_owned(),
                ),
                None => (
                    "unknown",
                    "no server answered yet, and timedated is not there to ask".to_owned(),
                ),
            },
        };
        ClockStatus {
            ntp_synchronized: self.ntp,
            worst_offset_s: worst.map(|o| o.offset_s),
            offsets,
            verdict: verdict.to_owned(),
            text,
        }
    }

    /// The clock is far enough off to break certificate checks.
    fn clock_is_off(&self) -> Option<&ClockOffset> {
        self.worst_offset()
            .filter(|o| o.offset_s.unsigned_abs() > self.limits.clock_fail.as_secs())
    }

    pub fn status(&self, now: SystemTime) -> Status {
        let paths: Vec<PathStatus> = self
            .endpoints
            .iter()
            .filter(|e| e.target.kind != "fleet")
            .map(|e| self.path_status(e, now))
            .collect();
        let online = if paths.is_empty() {
            self.links.carrying().is_some()
        } else {
            paths.iter().any(|p| p.online)
        };
        Status {
            online,
            paths,
            links: self.links.links.clone(),
            routes: self.links.routes.clone(),
            carrying: self.links.carrying().cloned(),
            gateway: self.gateway.as_ref().map(|(g, w, last)| TargetStatus {
                name: "gateway".into(),
                kind: "gateway".into(),
                address: g.clone(),
                summary: w.summary(),
                last: last.clone(),
                note: self.gateway_note.clone(),
            }),
            gateway6: self
                .gateway6
                .as_ref()
                .map(|((g, i), w, last)| TargetStatus {
                    name: "gateway6".into(),
                    kind: "gateway".into(),
                    address: if g.parse().is_ok_and(|a| crate::ping::is_link_local(&a)) {
                        format!("{g}%{i}")
                    } else {
                        g.clone()
                    },
                    summary: w.summary(),
                    last: last.clone(),
                    note: self.gateway_note.clone(),
                }),
            resolvers: self
                .resolvers
                .iter()
                .map(|(r, w)| TargetStatus {
                    name: crate::dns::show(*r),
                    kind: "resolver".into(),
                    address: crate::dns::show(*r),
                    summary: w.summary(),
                    last: w.last().and_then(|s| {
                        s.latency.map(|l| Timings {
                            dns_ms: Some(ms(l)),
                            total_ms: ms(l),
                            ..Timings::default()
                        })
                    }),
                    note: String::new(),
                })
                .collect(),
            endpoints: self
                .endpoints
                .iter()
                .map(|e| TargetStatus {
                    name: e.target.name.clone(),
                    kind: e.target.kind.clone(),
                    address: e.target.url.clone(),
                    summary: e.window.summary(),
                    last: e.last.clone(),
                    note: String::new(),
                })
                .collect(),
            clock: self.clock(),
            certificates: self.certs.clone(),
        }
    }

    /// The verdict on one path, most basic cause first: no link, a certificate the
    /// configuration pins that is not valid now, the clock, then what the last probe saw.
    fn path_status(&self, e: &Endpoint, now: SystemTime) -> PathStatus {
        let who = e.target.display_name();
        let wzh = e.target.display_name_zh();
        let host = e.target.host();
        let verdict = |online: bool, code: &str, en: String, zh: String| PathStatus {
            name: e.target.name.clone(),
            kind: e.target.kind.clone(),
            online,
            code: code.to_owned(),
            reason_en: en,
            reason_zh: zh,
        };
        let since = |t: Option<SystemTime>| {
            t.and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default()
        };

        if self.links.carrying().is_none() {
            let down: Vec<&str> = self
                .links
                .links
                .iter()
                .filter(|l| l.name != "lo" && !l.usable())
                .map(|l| l.name.as_str())
                .collect();
            let why = if down.is_empty() {
                "no default route".to_owned()
            } else {
                format!("{} down (cable or Wi-Fi)", down.join(", "))
            };
            return verdict(
                false,
                "net.no_route",
                format!("{who} unreachable: no network, {why}"),
                format!("{wzh}无法连接:网络未连接,请检查网线或Wi-Fi"),
            );
        }

        let bad_cert = self.certs.iter().find(|c| {
            c.owner == e.target.name
                && matches!(
                    c.state,
                    CertState::Expired | CertState::NotYetValid | CertState::Unreadable
                )
        });
        if let Some(c) = bad_cert {
            let what = if c.role == "ca" {
                "the pinned CA certificate"
            } else {
                "the terminal's client certificate"
            };
            let (code, state) = match c.state {
                CertState::Expired => ("cert.expired", "has expired"),
                CertState::NotYetValid => ("cert.not_yet_valid", "is not valid yet"),
                _ => ("cert.unreadable", "cannot be read"),
            };
            if let Some(o) = self
                .clock_is_off()
                .filter(|_| c.state != CertState::Unreadable)
            {
                return verdict(
                    false,
                    "clock.off",
                    format!(
                        "{who} unreachable: the terminal's clock is {}, so {what} looks as if it {state}; set the clock",
                        offset_words(o.offset_s)
                    ),
                    format!("{wzh}无法连接:终端时间不对,请校准时间"),
                );
            }
            return verdict(
                false,
                code,
                format!(
                    "{who} unreachable: {what} ({}) {state}{}; call support to renew it",
                    c.file.display(),
                    if c.problem.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", c.problem)
                    }
                ),
                format!("{wzh}无法连接:证书无效,请联系技术支持"),
            );
        }

        let s = e.window.summary();
        match (s.last_ok, &s.last_error) {
            (None, _) => verdict(
                true,
                "unchecked",
                format!("{who}: not checked yet"),
                format!("{wzh}:尚未检测"),
            ),
            (Some(false), Some(err)) => {
                let d = since(e.window.failing_since());
                let (en, zh) = self.failure_words(&who, &wzh, &host, err, d);
                let code = if err.code.starts_with("net.cert_expired")
                    || err.code.starts_with("net.cert_not_yet_valid")
                {
                    if self.clock_is_off().is_some() {
                        "clock.off"
                    } else {
                        err.code.as_str()
                    }
                } else {
                    err.code.as_str()
                };
                verdict(false, code, en, zh)
            }
            _ => {
                let mut en = format!(
                    "{who} reachable: {}",
                    s.p50_ms.map_or("answering".into(), |p| format!(
                        "{p:.0} ms (p95 {:.0} ms)",
                        s.p95_ms.unwrap_or(p)
                    ))
                );
                if s.loss > 0.0 {
                    en.push_str(&format!(
                        ", {:.0}% of the last {} probes failed",
                        s.loss * 100.0,
                        s.probes
                    ));
                }
                verdict(true, "ok", en, format!("{wzh}连接正常"))
            }
        }
    }

    fn failure_words(
        &self,
        who: &str,
        wzh: &str,
        host: &str,
        err: &ProbeError,
        d: Duration,
    ) -> (String, String) {
        let for_en = if d.as_secs() > 0 {
            format!(" for {}", words::en(d))
        } else {
            String::new()
        };
        let for_zh = if d.as_secs() > 0 {
            format!("(已持续{})", words::zh(d))
        } else {
            String::new()
        };
        let gw_dead = self
            .gateway
            .as_ref()
            .and_then(|(g, w, _)| (w.summary().last_ok == Some(false)).then(|| g.clone()));
        let resolver = self.resolvers.first().map(|(r, _)| crate::dns::show(*r));
        let code = err.code.as_str();
        let (en, zh) = match code {
            "net.dns" => {
                let resolver_dead = self
                    .resolvers
                    .iter()
                    .any(|(_, w)| w.summary().last_ok == Some(false));
                let how = if resolver_dead || err.detail.contains("timed out") {
                    "timed out"
                } else {
                    "failed"
                };
                (
                    format!(
                        "DNS for {host} {how}{}",
                        resolver.map(|r| format!(" at {r}")).unwrap_or_default()
                    ),
                    "域名解析失败".to_owned(),
                )
            }
            "net.refused" => (
                format!("{host} refused the connection"),
                "服务器拒绝连接".into(),
            ),
            "net.connect_timeout" => match gw_dead {
                Some(g) => (
                    format!(
                        "no answer from {host}, and the shop's router {g} does not answer either"
                    ),
                    "网络不通,路由器无响应,请检查路由器".into(),
                ),
                None => (
                    format!("no answer from {host} (connection timed out)"),
                    "连接超时".into(),
                ),
            },
            "net.read_timeout" => (
                format!("{host} accepted the connection but did not answer"),
                "服务器无响应".into(),
            ),
            "net.reset" | "net.reset_mid_response" => (
                format!("the connection to {host} was cut off"),
                "连接被中断".into(),
            ),
            "net.handshake" => (
                format!("the secure connection to {host} failed"),
                "安全连接失败".into(),
            ),
            "net.cert_expired" | "net.cert_not_yet_valid" => match self.clock_is_off() {
                Some(o) => (
                    format!(
                        "the terminal's clock is {}, so {host}'s certificate looks {}; set the clock",
                        offset_words(o.offset_s),
                        if code == "net.cert_expired" {
                            "expired"
                        } else {
                            "not yet valid"
                        }
                    ),
                    "终端时间不对,请校准时间".into(),
                ),
                None => (
                    format!(
                        "{host}'s certificate {}",
                        if code == "net.cert_expired" {
                            "has expired"
                        } else {
                            "is not valid yet"
                        }
                    ),
                    "服务器证书无效,请联系技术支持".into(),
                ),
            },
            "net.cert_untrusted" => (
                format!(
                    "{host} presented a certificate not from the pinned CA (a wrong server, or the connection is intercepted)"
                ),
                "服务器证书不受信任,请联系技术支持".into(),
            ),
            "net.cert_name_mismatch" => (
                format!("{host} presented a certificate for another name"),
                "服务器证书名称不符,请联系技术支持".into(),
            ),
            c if c.starts_with("net.http") => (
                format!("{host} answers with an error ({})", err.detail),
                "服务器故障".into(),
            ),
            _ => (format!("{host}: {}", err.detail), "连接失败".into()),
        };
        (
            format!("{who} unreachable: {en}{for_en}"),
            format!("{wzh}无法连接:{zh}{for_zh}"),
        )
    }
}

fn sample(at: SystemTime, r: Result<Duration, ProbeError>) -> Sample {
    match r {
        Ok(d) => Sample {
            at,
            latency: Some(d),
            error: None,
        },
        Err(e) => Sample {
            at,
            latency: None,
            error: Some(e),
        },
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `a - b` in whole seconds.
fn signed_secs(a: SystemTime, b: SystemTime) -> i64 {
    match a.duration_since(b) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Server minus ours: positive means our clock is behind.
pub fn offset_words(offset_s: i64) -> String {
    let d = words::en(Duration::from_secs(offset_s.unsigned_abs()));
    if offset_s > 0 {
        format!("{d} behind")
    } else {
        format!("{d} ahead")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::Link;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    fn shop() -> Links {
        Links {
            links: vec![Link {
                name: "eth0".into(),
                operstate: "up".into(),
                carrier: Some(true),
                ipv4: vec!["192.168.1.23".into()],
                ipv6: vec![],
            }],
            routes: vec![DefaultRoute {
                family: "ipv4".into(),
                interface: "eth0".into(),
                gateway: "192.168.1.1".into(),
                metric: 100,
            }],
        }
    }

    fn alipay() -> Target {
        Target {
            name: "alipay".into(),
            kind: "alipay".into(),
            url: "https://openapi.alipay.com".into(),
            ca_file: "/etc/smartpos/alipay-ca.pem".into(),
            client_cert_file: None,
        }
    }

    fn monitor() -> Monitor {
        let mut m = Monitor::new(
            Limits::default(),
            vec![alipay()],
            vec!["192.168.1.1:53".parse().unwrap()],
        );
        m.set_links(shop());
        m
    }

    fn dns_timeout(at: SystemTime) -> EndpointResult {
        EndpointResult {
            at,
            timings: Timings::default(),
            server_date: None,
            error: Some(ProbeError {
                code: "net.dns".into(),
                detail: "lookup timed out".into(),
            }),
        }
    }

    #[test]
    fn dns_timing_out_for_three_minutes_is_said_as_a_cashier_reads_it() {
        let mut m = monitor();
        m.resolver_probed(
            "192.168.1.1:53".parse().unwrap(),
            t(0),
            Err(ProbeError {
                code: "net.dns".into(),
                detail: "timed out".into(),
            }),
        );
        m.endpoint_probed("alipay", dns_timeout(t(0)));
        m.endpoint_probed("alipay", dns_timeout(t(120)));
        let s = m.status(t(180));
        assert!(!s.online);
        let p = &s.paths[0];
        assert_eq!(p.code, "net.dns");
        assert_eq!(
            p.reason_en,
            "Alipay unreachable: DNS for openapi.alipay.com timed out at 192.168.1.1 for 3 minutes"
        );
        assert_eq!(p.reason_zh, "支付宝无法连接:域名解析失败(已持续3分钟)");
    }

    #[test]
    fn an_ipv6_router_is_pinged_beside_the_ipv4_one() {
        let mut m = monitor();
        assert_eq!(m.gateway6(), None, "no IPv6 default route, nothing to ping");
        let mut l = shop();
        l.links[0].ipv6 = vec!["2001:db8::23".into()];
        l.routes.push(DefaultRoute {
            family: "ipv6".into(),
            interface: "eth0".into(),
            gateway: "fe80::1".into(),
            metric: 1024,
        });
        assert!(m.set_links(l.clone()));
        // IPv4 still carries the traffic; both routers are watched.
        assert_eq!(m.gateway(), Some("192.168.1.1"));
        assert_eq!(m.gateway6(), Some(("fe80::1", "eth0")));
        m.gateway6_probed(t(0), Ok(Duration::from_millis(3)));
        m.gateway6_probed(
            t(30),
            Err(ProbeError {
                code: "net.gateway".into(),
                detail: "the gateway fe80::1 did not answer a ping within 5 s".into(),
            }),
        );
        let s = m.status(t(31));
        let g6 = s.gateway6.expect("the IPv6 gateway is in the status");
        assert_eq!(g6.name, "gateway6");
        assert_eq!(g6.address, "fe80::1%eth0");
        assert_eq!(g6.summary.probes, 2);
        assert_eq!(g6.summary.last_ok, Some(false));
        assert!((g6.summary.loss - 0.5).abs() < 1e-9);
        assert_eq!(
            s.gateway.unwrap().summary.probes,
            0,
            "the IPv4 router apart"
        );
        // The same router after a link poll keeps its window; a new one starts afresh.
        assert!(!m.set_links(l.clone()));
        l.routes[1].gateway = "fe80::2".into();
        assert!(m.set_links(l));
        assert_eq!(m.status(t(40)).gateway6.unwrap().summary.probes, 0);
    }

    #[test]
    fn a_pulled_cable_is_named_before_anything_a_probe_saw() {
        let mut m = monitor();
        m.endpoint_probed("alipay", dns_timeout(t(0)));
        let mut l = shop();
        l.links[0].operstate = "down".into();
        l.links[0].carrier = Some(false);
        assert!(m.set_links(l));
        let p = &m.status(t(10)).paths[0];
        assert_eq!(p.code, "net.no_route");
        assert_eq!(
            p.reason_en,
            "Alipay unreachable: no network, eth0 down (cable or Wi-Fi)"
        );
        assert!(m.gateway().is_none());
    }

    #[test]
    fn a_clock_two_years_behind_is_named_as_the_cause_of_an_expired_certificate() {
        let mut fleet = alipay();
        fleet.name = "fleet".into();
        fleet.kind = "fleet".into();
        fleet.url = "https://fleet.example.com".into();
        let mut m = Monitor::new(Limits::default(), vec![alipay(), fleet], vec![]);
        m.set_links(shop());
        let two_years = 2 * 365 * 86_400 + 86_400;
        m.endpoint_probed(
            "fleet",
            EndpointResult {
                at: t(0),
                timings: Timings {
                    total_ms: 40.0,
                    http_status: Some(200),
                    ..Timings::default()
                },
                server_date: Some(t(two_years)),
                error: None,
            },
        );
        m.endpoint_probed(
            "alipay",
            EndpointResult {
                at: t(1),
                timings: Timings::default(),
                server_date: None,
                error: Some(ProbeError {
                    code: "net.cert_not_yet_valid".into(),
                    detail: "certificate not valid yet".into(),
                }),
            },
        );
        let s = m.status(t(1));
        assert_eq!(s.clock.verdict, "fail");
        assert_eq!(
            s.clock.worst_offset_s,
            Some(i64::try_from(two_years).unwrap())
        );
        assert!(s.clock.text.contains("2 years behind"), "{}", s.clock.text);
        let p = &s.paths[0];
        assert_eq!(p.code, "clock.off");
        assert_eq!(
            p.reason_en,
            "Alipay unreachable: the terminal's clock is 2 years behind, so openapi.alipay.com's certificate looks not yet valid; set the clock"
        );
        // The fleet server is not an acquirer path.
        assert_eq!(s.paths.len(), 1);
    }

    #[test]
    fn recovery_is_seen_and_loss_is_told() {
        let mut m = monitor();
        m.endpoint_probed("alipay", dns_timeout(t(0)));
        m.endpoint_probed(
            "alipay",
            EndpointResult {
                at: t(60),
                timings: Timings {
                    total_ms: 48.0,
                    http_status: Some(404),
                    ..Timings::default()
                },
                server_date: Some(t(60)),
                error: None,
            },
        );
        let s = m.status(t(61));
        assert!(s.online);
        let p = &s.paths[0];
        assert_eq!(p.code, "ok");
        assert_eq!(
            p.reason_en,
            "Alipay reachable: 48 ms (p95 48 ms), 50% of the last 2 probes failed"
        );
        assert_eq!(s.clock.verdict, "ok");
    }
}
