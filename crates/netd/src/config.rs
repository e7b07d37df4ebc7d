//! `/etc/smartpos/smartpos-netd.toml`. Every key is optional; the defaults are what a
//! terminal runs with (docs/NETWORK.md has the full example).

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// paymentd's merchant configuration: each `[[path]]` is probed. A missing file means
    /// no acquirer paths (a terminal not yet provisioned), not an error.
    pub merchant_config: PathBuf,
    /// The resolver list, as the C library reads it.
    pub resolv_conf: PathBuf,
    /// Resolvers to time instead of `resolv_conf`'s, as `address` or `address:port`.
    pub resolvers: Vec<String>,
    /// The update daemon's configuration: its `[server]` is probed as "fleet". A missing
    /// file or no server there means no fleet server (only local installs).
    pub update_config: PathBuf,
    /// More HTTPS endpoints. One named "fleet" replaces the update daemon's server.
    pub endpoint: Vec<EndpointConfig>,
    pub schedule: Schedule,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            merchant_config: PathBuf::from("/etc/smartpos/merchant.toml"),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            resolvers: Vec::new(),
            update_config: PathBuf::from("/etc/smartpos/smartpos-otad.toml"),
            endpoint: Vec::new(),
            schedule: Schedule::default(),
            limits: LimitsConfig::default(),
            auth: AuthConfig::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    pub name: String,
    /// "fleet", or an acquirer kind.
    #[serde(default = "fleet")]
    pub kind: String,
    pub url: String,
    pub ca_file: PathBuf,
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
}

fn fleet() -> String {
    "fleet".to_owned()
}

/// How often each kind of probe runs. Each wait is drawn anew within ±`jitter_percent`, so
/// a fleet of terminals does not probe an acquirer in step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Schedule {
    pub endpoint_interval_s: u64,
    pub gateway_interval_s: u64,
    pub resolver_interval_s: u64,
    pub jitter_percent: u8,
    /// Links and routes are file reads: cheap enough to poll this often.
    pub link_poll_ms: u64,
    /// Certificate validity is re-read this often (and when a probe names a certificate).
    pub cert_interval_s: u64,
    /// Each probe gives up after this long.
    pub timeout_ms: u64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            endpoint_interval_s: 60,
            gateway_interval_s: 30,
            resolver_interval_s: 60,
            jitter_percent: 20,
            link_poll_ms: 2_000,
            cert_interval_s: 3_600,
            timeout_ms: 5_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Probes kept per target for p50/p95/loss.
    pub window: usize,
    /// Warn this many days before a certificate expires.
    pub cert_warn_days: u64,
    pub clock_warn_s: u64,
    pub clock_fail_s: u64,
    /// The same target is probed on demand at most once per this many milliseconds.
    pub probe_min_interval_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            window: 20,
            cert_warn_days: 30,
            clock_warn_s: 60,
            clock_fail_s: 3_600,
            probe_min_interval_ms: 10_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Groups whose members may call Probe.
    pub probe_groups: Vec<String>,
    /// Service users that may call Probe.
    pub probe_users: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            probe_groups: vec!["smartpos-vendor".into(), "smartpos-tech".into()],
            probe_users: vec!["smartpos-payment".into(), "smartpos-update".into()],
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        let s = &self.schedule;
        for (key, v) in [
            ("schedule.endpoint_interval_s", s.endpoint_interval_s),
            ("schedule.gateway_interval_s", s.gateway_interval_s),
            ("schedule.resolver_interval_s", s.resolver_interval_s),
            ("schedule.cert_interval_s", s.cert_interval_s),
        ] {
            if v == 0 {
                return Err(format!("{key} = 0: expected at least 1"));
            }
        }
        if s.link_poll_ms < 100 || s.timeout_ms < 100 {
            return Err(
                "schedule.link_poll_ms and schedule.timeout_ms must be at least 100".into(),
            );
        }
        if s.jitter_percent > 50 {
            return Err(format!(
                "schedule.jitter_percent = {}: expected 0 to 50",
                s.jitter_percent
            ));
        }
        if self.limits.window == 0 || self.limits.window > 1000 {
            return Err(format!(
                "limits.window = {}: expected 1 to 1000",
                self.limits.window
            ));
        }
        for r in &self.resolvers {
            parse_resolver(r)?;
        }
        for e in &self.endpoint {
            if !e.url.to_ascii_lowercase().starts_with("https://") {
                return Err(format!("endpoint {:?}: url must be https://", e.name));
            }
        }
        Ok(())
    }
}

/// `address` or `address:port` (`[v6]:port`).
pub fn parse_resolver(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(a) = s.parse::<std::net::SocketAddr>() {
        return Ok(a);
    }
    s.parse::<std::net::IpAddr>()
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .map_err(|_| format!("resolvers: {s:?} is not an address or address:port"))
}
