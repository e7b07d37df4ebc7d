//! Merchant configuration (TOML, schema 1): which wallets and funding channels this merchant
//! takes, the acquirer paths and routing rules, timeouts and polling pace, local risk rules
//! and the policy table. It is synced from the fleet server and carries that sync's version
//! and time, so a stale configuration can be named as a cause (docs/ARCHITECTURE.md cause 7).
//!
//! The example in `config/merchant.example.toml` is the contract and is parsed by a test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::classify::Scheme;
use crate::clock;
use crate::model::FundingChannel;

/// An acquirer path's parsed base URL (the transport's).
pub use smartpos_transport::Endpoint;

pub const CONFIG_SCHEMA: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read merchant config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("merchant config is not valid TOML for schema {CONFIG_SCHEMA}: {0}")]
    Parse(#[from] toml::de::Error),
    #[error(
        "merchant config schema {0} is not supported (this build reads {CONFIG_SCHEMA}); update smartpos-paymentd"
    )]
    Schema(u32),
    /// A configuration the terminal refuses to run with; the message names the field.
    #[error("merchant config: {0}")]
    Invalid(String),
    /// A file the configuration names (CA, key, certificate) is missing, unreadable or does
    /// not hold what its key says.
    #[error("merchant config: {}{key} {}: {problem}", .path.as_ref().map(|p| format!("path {p:?}: ")).unwrap_or_default(), .file.display())]
    File {
        /// The `[[path]]` it belongs to, once known.
        path: Option<String>,
        /// The configuration key naming the file (`ca_file`, `private_key_file`, …).
        key: &'static str,
        file: PathBuf,
        problem: String,
    },
}

impl ConfigError {
    /// A file problem, for the configuration key `key`.
    pub fn file(key: &'static str, file: &Path, problem: impl std::fmt::Display) -> ConfigError {
        ConfigError::File {
            path: None,
            key,
            file: file.to_owned(),
            problem: problem.to_string(),
        }
    }

    /// Say which `[[path]]` the error belongs to (once, however often it is called).
    pub fn in_path(self, name: &str) -> ConfigError {
        match self {
            ConfigError::File {
                path: None,
                key,
                file,
                problem,
            } => ConfigError::File {
                path: Some(name.to_owned()),
                key,
                file,
                problem,
            },
            ConfigError::Invalid(m) if !m.starts_with("path ") => {
                ConfigError::Invalid(format!("path {name:?}: {m}"))
            }
            other => other,
        }
    }
}

impl From<smartpos_transport::ConfigError> for ConfigError {
    fn from(e: smartpos_transport::ConfigError) -> ConfigError {
        match e {
            smartpos_transport::ConfigError::File { key, file, problem } => ConfigError::File {
                path: None,
                key,
                file,
                problem,
            },
            smartpos_transport::ConfigError::Invalid(m) => ConfigError::Invalid(m),
        }
    }
}

fn invalid<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid(msg.into()))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub schema: u32,
    /// Revision assigned by the fleet server; shown by `posctl doctor`.
    pub version: u64,
    /// When this revision was last confirmed with the fleet server (RFC 3339).
    pub synced_at: String,
    /// Up to 16 letters and digits; the first part of every merchant order number.
    pub terminal_id: String,
    pub merchant: Merchant,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub polling: Polling,
    #[serde(default)]
    pub risk: RiskRules,
    #[serde(default)]
    pub policy: Vec<PolicyRule>,
    #[serde(default)]
    pub path: Vec<PathConfig>,
    #[serde(default)]
    pub route: Vec<Route>,
}

/// The merchant's channel matrix.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Merchant {
    pub name: String,
    /// Merchant category code (MCC), matched by the policy table.
    #[serde(default)]
    pub category: String,
    /// Wallets this merchant accepts.
    pub schemes: Vec<Scheme>,
    /// Funding channels this merchant accepts; every other one is switched off at the
    /// acquirer (Alipay `disable_pay_channels`, WeChat `limit_pay=no_credit`).
    pub funding: Vec<FundingChannel>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// TCP connect plus TLS handshake (Alipay SDK default 3 s).
    pub connect_ms: u64,
    /// From request sent to full response (Alipay SDK default 15 s).
    pub read_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect_ms: 3_000,
            read_ms: 15_000,
        }
    }
}

impl Timeouts {
    pub fn connect(&self) -> Duration {
        Duration::from_millis(self.connect_ms)
    }
    pub fn read(&self) -> Duration {
        Duration::from_millis(self.read_ms)
    }

    /// The transport's timeouts: `connect_ms` bounds DNS plus TCP connect, and again the TLS
    /// handshake; `read_ms` the answer.
    pub fn transport(&self) -> smartpos_transport::Timeouts {
        smartpos_transport::Timeouts {
            connect: self.connect(),
            handshake: self.connect(),
            read: self.read(),
            ..smartpos_transport::Timeouts::default()
        }
    }
}

/// Pace of "waiting for the customer" polling and of cancel retries. Defaults are the
/// acquirers' documented ones (docs/acquirers.md §1.7, §2.1); tests shorten them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Polling {
    /// Alipay F2F demo: `query_duration=5000`, `max_query_retry=5`.
    pub alipay_interval_ms: u64,
    pub alipay_max_queries: u32,
    /// WeChat guide: query every 3–5 s within 45 s (it revokes unpaid code orders at 45 s).
    pub wechat_interval_ms: u64,
    pub wechat_window_ms: u64,
    /// Aggregator (QRA): same pace as WeChat, the codes it routes behave alike.
    pub qra_interval_ms: u64,
    pub qra_window_ms: u64,
    /// Alipay demo: `cancel_duration=2000`, `max_cancel_retry=3`; WeChat `recall=Y` ≤ 10.
    pub cancel_interval_ms: u64,
    pub cancel_max_attempts: u32,
    /// How often the resolver sweeps the journal for unfinished work.
    pub resolver_interval_ms: u64,
    /// A sale still waiting for a code after this long is cancelled (nothing was sent).
    pub awaiting_code_expiry_ms: u64,
    /// WeChat advises reversing no sooner than about 15 s after the payment was sent
    /// (docs/acquirers.md §2.1); QRA reverses follow the same rule.
    pub wechat_reverse_delay_ms: u64,
    /// Ceiling of the exponential back-off between unanswered queries and between repeated
    /// cancels/reverses while the till waits (each starts at its acquirer's pace).
    pub backoff_max_ms: u64,
    /// How long after the payment was sent the till waits for a definite outcome. After it,
    /// a sale still unresolved is shown as `unknown` with error code `sale.outcome_unknown`
    /// ("do not charge again; call support") and resolved in the background.
    pub resolution_window_ms: u64,
    /// First pause of that background resolution; it doubles after each pass that still
    /// gets no answer, up to `background_max_ms`.
    pub background_interval_ms: u64,
    pub background_max_ms: u64,
}

impl Default for Polling {
    fn default() -> Polling {
        Polling {
            alipay_interval_ms: 5_000,
            alipay_max_queries: 5,
            wechat_interval_ms: 5_000,
            wechat_window_ms: 45_000,
            qra_interval_ms: 5_000,
            qra_window_ms: 45_000,
            cancel_interval_ms: 2_000,
            cancel_max_attempts: 10,
            resolver_interval_ms: 30_000,
            awaiting_code_expiry_ms: 600_000,
            wechat_reverse_delay_ms: 15_000,
            backoff_max_ms: 30_000,
            resolution_window_ms: 90_000,
            background_interval_ms: 180_000,
            background_max_ms: 1_800_000,
        }
    }
}

/// Local risk rules (docs/ARCHITECTURE.md cause 9), applied before anything is sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskRules {
    /// Largest single sale, fen. Alipay's own ceiling is 1e8 yuan.
    pub max_per_sale_fen: i64,
    /// Ceiling on money taken (or in flight) per China business day, fen.
    pub max_daily_fen: i64,
    /// At most this many payments sent within `velocity_window_s`.
    pub velocity_max_sales: u32,
    pub velocity_window_s: u64,
    /// Credit funding is switched off for round amounts at or above this (a classic
    /// cash-out 套现 pattern: "buy" exactly 5000.00 on Huabei, get cash back). 0 = off.
    pub cashout_round_amount_fen: i64,
    /// Self-dealing / cash-out pattern: the same amount sent this many times within
    /// `repeat_window_s` switches credit funding off for the next one. 0 = off.
    pub repeat_amount_max: u32,
    pub repeat_window_s: u64,
}

impl Default for RiskRules {
    fn default() -> RiskRules {
        RiskRules {
            max_per_sale_fen: 5_000_000,
            max_daily_fen: 50_000_000,
            velocity_max_sales: 20,
            velocity_window_s: 60,
            cashout_round_amount_fen: 100_000,
            repeat_amount_max: 3,
            repeat_window_s: 600,
        }
    }
}

/// One row of the policy table (docs/ARCHITECTURE.md cause 10). A rule applies when the merchant's
/// category is listed (or none is listed), the scheme matches (or none is listed) and, if
/// `virtual_goods_only`, the sale is for virtual goods.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    pub name: String,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub schemes: Vec<Scheme>,
    #[serde(default)]
    pub virtual_goods_only: bool,
    /// Funding switched off at the acquirer when the rule applies.
    #[serde(default)]
    pub deny_funding: Vec<FundingChannel>,
    /// Sales above this are refused locally when the rule applies.
    #[serde(default)]
    pub max_per_sale_fen: Option<i64>,
    /// Cashier-facing reason, Chinese and English.
    #[serde(default)]
    pub reason_zh: Option<String>,
    #[serde(default)]
    pub reason_en: Option<String>,
}

/// WeChat's `sign_type`, in WeChat's own spelling (`MD5`, `HMAC-SHA256`) or ours (`md5`,
/// `hmac_sha256`), any case.
pub fn wechat_sign_type(text: &str) -> Option<smartpos_acquirer::wechat::SignType> {
    use smartpos_acquirer::wechat::SignType;
    match text.to_ascii_lowercase().replace('-', "_").as_str() {
        "md5" => Some(SignType::Md5),
        "hmac_sha256" => Some(SignType::HmacSha256),
        _ => None,
    }
}

/// The documented API paths the terminal appends to a path's `url`
/// (docs/acquirers.md §1.1, §2.1, §3): a `url` that already ends in one is refused.
fn api_paths() -> impl Iterator<Item = &'static str> {
    [
        smartpos_acquirer::alipay::GATEWAY_PATH,
        smartpos_acquirer::qra::GATEWAY_PATH,
    ]
    .into_iter()
    .chain(
        [
            smartpos_acquirer::wechat::Api::Micropay,
            smartpos_acquirer::wechat::Api::OrderQuery,
            smartpos_acquirer::wechat::Api::Reverse,
            smartpos_acquirer::wechat::Api::Refund,
        ]
        .map(smartpos_acquirer::wechat::Api::path),
    )
}

/// One acquirer path: a direct acquirer or an aggregator.
// No `deny_unknown_fields` here: serde cannot combine it with `flatten`; the per-kind
// fields are still checked by `PathKind`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathConfig {
    pub name: String,
    /// The acquirer's base URL, `https://host[:port]` with an optional prefix (a proxy's
    /// path), the same rule for every kind: the terminal appends each call's documented path
    /// (Alipay `/gateway.do`, WeChat `/pay/micropay` …, QRA `/pay/gateway`). A URL that
    /// already ends in one of those paths, carries a query or is plaintext is refused.
    pub url: String,
    /// PEM file with the one CA this path's server certificate must chain to.
    pub ca_file: PathBuf,
    #[serde(flatten)]
    pub kind: PathKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PathKind {
    Alipay {
        app_id: String,
        /// PKCS#8 or PKCS#1 PEM, RSA 2048.
        private_key_file: PathBuf,
        /// Alipay's public key (SPKI PEM) for response verification.
        alipay_public_key_file: PathBuf,
        #[serde(default)]
        store_id: Option<String>,
        #[serde(default)]
        sys_service_provider_id: Option<String>,
    },
    Wechat {
        appid: String,
        mch_id: String,
        #[serde(default)]
        sub_mch_id: Option<String>,
        /// File holding the 32-character API key.
        api_key_file: PathBuf,
        /// `md5` or `hmac_sha256`, or WeChat's own spelling `MD5` / `HMAC-SHA256`.
        #[serde(default = "default_wechat_sign")]
        sign_type: String,
        /// Merchant TLS client certificate and key: reverse and refund need mutual TLS.
        client_cert_file: PathBuf,
        client_key_file: PathBuf,
    },
    Qra {
        mch_id: String,
        key_file: PathBuf,
    },
}

fn default_wechat_sign() -> String {
    "hmac_sha256".to_owned()
}

impl PathKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            PathKind::Alipay { .. } => "alipay",
            PathKind::Wechat { .. } => "wechat",
            PathKind::Qra { .. } => "qra",
        }
    }

    /// Wallets a path can carry: a direct acquirer only its own, an aggregator all.
    pub fn serves(&self, scheme: Scheme) -> bool {
        match self {
            PathKind::Alipay { .. } => scheme == Scheme::Alipay,
            PathKind::Wechat { .. } => scheme == Scheme::Wechat,
            PathKind::Qra { .. } => true,
        }
    }
}

/// A routing rule: for this scheme (and amount band), try these paths in order. The next
/// path is used only when the previous one provably never received the payment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub scheme: Scheme,
    #[serde(default)]
    pub min_fen: Option<i64>,
    #[serde(default)]
    pub max_fen: Option<i64>,
    pub paths: Vec<String>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.schema != CONFIG_SCHEMA {
            return Err(ConfigError::Schema(self.schema));
        }
        if clock::parse_rfc3339_ms(&self.synced_at).is_none() {
            return invalid(format!(
                "synced_at {:?} is not an RFC 3339 time",
                self.synced_at
            ));
        }
        let t = &self.terminal_id;
        if t.is_empty() || t.len() > 16 || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return invalid(format!(
                "terminal_id {t:?} must be 1–16 letters and digits (it starts every order number)"
            ));
        }
        if self.merchant.schemes.is_empty() {
            return invalid("merchant.schemes is empty: the terminal could take no payment");
        }
        if self.timeouts.connect_ms == 0 || self.timeouts.read_ms == 0 {
            return invalid("timeouts must be above zero");
        }
        let p = &self.polling;
        if p.wechat_interval_ms == 0 || p.alipay_interval_ms == 0 || p.qra_interval_ms == 0 {
            return invalid("polling intervals must be above zero");
        }
        let mut names = BTreeSet::new();
        for path in &self.path {
            if !names.insert(path.name.as_str()) {
                return invalid(format!("path {:?} is defined twice", path.name));
            }
            let endpoint =
                Endpoint::parse(&path.url).map_err(|e| ConfigError::from(e).in_path(&path.name))?;
            if endpoint.path.contains(['?', '#']) {
                return invalid(format!(
                    "path {:?}: url {:?} carries a query or fragment; give the base URL only",
                    path.name, path.url
                ));
            }
            let base = endpoint.path.trim_end_matches('/');
            if let Some(api) = api_paths().find(|api| base.ends_with(api)) {
                return invalid(format!(
                    "path {:?}: url {:?} ends in the API path {api:?}; give the base URL \
                     (https://host[:port][/prefix]), the terminal appends each call's path",
                    path.name, path.url
                ));
            }
            if let PathKind::Wechat { sign_type, .. } = &path.kind
                && wechat_sign_type(sign_type).is_none()
            {
                return invalid(format!(
                    "path {:?}: sign_type {sign_type:?} must be MD5 or HMAC-SHA256",
                    path.name
                ));
            }
        }
        for route in &self.route {
            if route.paths.is_empty() {
                return invalid(format!("a route for {} lists no path", route.scheme));
            }
            for name in &route.paths {
                let Some(path) = self.path.iter().find(|p| &p.name == name) else {
                    return invalid(format!(
                        "route for {} names path {name:?}, which is not defined",
                        route.scheme
                    ));
                };
                if !path.kind.serves(route.scheme) {
                    return invalid(format!(
                        "route for {} uses path {name:?}, a {} acquirer that cannot carry it",
                        route.scheme,
                        path.kind.as_str()
                    ));
                }
            }
        }
        for scheme in &self.merchant.schemes {
            if !self.route.iter().any(|r| r.scheme == *scheme) {
                return invalid(format!(
                    "merchant accepts {scheme} but no route sends it anywhere"
                ));
            }
        }
        Ok(())
    }

    /// Time since the last sync with the fleet server.
    pub fn age(&self, now_ms: i64) -> Duration {
        let synced = clock::parse_rfc3339_ms(&self.synced_at).unwrap_or(0);
        Duration::from_millis(now_ms.saturating_sub(synced).max(0) as u64)
    }

    /// A diagnosis when the configuration is older than `max_age` (docs/ARCHITECTURE.md cause 7).
    pub fn staleness(&self, now_ms: i64, max_age: Duration) -> Option<crate::explain::Explanation> {
        let age = self.age(now_ms);
        (age > max_age).then(|| crate::explain::stale_config(age, self.version))
    }

    /// The ordered paths for a payment of `amount_fen` in `scheme`: the first matching route.
    pub fn route_for(&self, scheme: Scheme, amount_fen: i64) -> Option<&Route> {
        self.route.iter().find(|r| {
            r.scheme == scheme
                && r.min_fen.is_none_or(|m| amount_fen >= m)
                && r.max_fen.is_none_or(|m| amount_fen <= m)
        })
    }

    pub fn path(&self, name: &str) -> Option<&PathConfig> {
        self.path.iter().find(|p| p.name == name)
    }

    /// Funding channels this merchant does not accept.
    pub fn merchant_disabled_funding(&self) -> Vec<FundingChannel> {
        FundingChannel::ALL
            .into_iter()
            .filter(|c| !self.merchant.funding.contains(c))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../config/merchant.example.toml");

    #[test]
    fn the_example_config_parses_and_routes_every_wallet() {
        let cfg = Config::parse(EXAMPLE).expect("example config");
        assert_eq!(cfg.timeouts.connect(), Duration::from_secs(3));
        assert_eq!(cfg.timeouts.read(), Duration::from_secs(15));
        assert_eq!(cfg.polling.alipay_max_queries, 5);
        for scheme in Scheme::ALL {
            assert!(cfg.route_for(scheme, 100).is_some(), "{scheme}");
        }
        // Big Alipay sales go through the aggregator in the example.
        assert_eq!(
            cfg.route_for(Scheme::Alipay, 6_000_000)
                .map(|r| r.paths[0].as_str()),
            Some("aggregator")
        );
    }

    #[test]
    fn a_plaintext_acquirer_url_is_refused() {
        let text = EXAMPLE.replace(
            "url = \"https://openapi.alipay.com\"",
            "url = \"http://openapi.alipay.com\"",
        );
        let err = Config::parse(&text).expect_err("http must be refused");
        assert!(err.to_string().contains("plaintext"), "{err}");
        // Said once: `merchant config: path "alipay-direct": "http://…"`, not twice.
        assert_eq!(
            err.to_string().matches("merchant config").count(),
            1,
            "{err}"
        );
        assert!(err.to_string().contains("path \"alipay-direct\""), "{err}");
    }

    #[test]
    fn every_url_is_a_base_and_an_api_path_in_it_is_refused() {
        // The integrator copies WeChat's documented endpoint, or Alipay's, into `url`.
        for (from, to) in [
            (
                "url = \"https://api.mch.weixin.qq.com\"",
                "url = \"https://api.mch.weixin.qq.com/pay/micropay\"",
            ),
            (
                "url = \"https://openapi.alipay.com\"",
                "url = \"https://openapi.alipay.com/gateway.do\"",
            ),
            (
                "url = \"https://qra.95516.com\"",
                "url = \"https://qra.95516.com/pay/gateway/\"",
            ),
        ] {
            assert!(EXAMPLE.contains(from), "{from}");
            let err = Config::parse(&EXAMPLE.replace(from, to)).expect_err(to);
            assert!(err.to_string().contains("base URL"), "{err}");
        }
        // A proxy prefix is a base like any other.
        let text = EXAMPLE.replace(
            "url = \"https://api.mch.weixin.qq.com\"",
            "url = \"https://proxy.example.com/wxpay\"",
        );
        Config::parse(&text).expect("a prefixed base is accepted");
    }

    #[test]
    fn wechat_s_own_spelling_of_the_sign_type_is_accepted() {
        for (spelling, want) in [
            (
                "HMAC-SHA256",
                smartpos_acquirer::wechat::SignType::HmacSha256,
            ),
            (
                "hmac_sha256",
                smartpos_acquirer::wechat::SignType::HmacSha256,
            ),
            ("MD5", smartpos_acquirer::wechat::SignType::Md5),
        ] {
            let text = EXAMPLE.replace(
                "sign_type = \"HMAC-SHA256\"",
                &format!("sign_type = \"{spelling}\""),
            );
            Config::parse(&text).expect(spelling);
            assert_eq!(wechat_sign_type(spelling), Some(want));
        }
        let text = EXAMPLE.replace("sign_type = \"HMAC-SHA256\"", "sign_type = \"SHA1\"");
        assert!(Config::parse(&text).is_err());
    }

    #[test]
    fn a_route_to_a_missing_or_wrong_path_is_refused() {
        let text = EXAMPLE.replace("paths = [\"wechat-direct\"", "paths = [\"alipay-direct\"");
        assert!(Config::parse(&text).is_err());
    }

    #[test]
    fn a_misspelt_key_in_a_path_is_refused_not_ignored() {
        let text = EXAMPLE.replace(
            "app_id = \"2014072300007148\"",
            "appid = \"2014072300007148\"",
        );
        assert!(Config::parse(&text).is_err());
        let text = EXAMPLE.replace(
            "key_file = \"/etc/smartpos/keys/qra-key\"",
            "key_file = \"/etc/smartpos/keys/qra-key\"\nsign_typ = \"md5\"",
        );
        assert!(Config::parse(&text).is_err(), "unknown key accepted");
    }

    #[test]
    fn config_age_is_measured_from_the_last_sync() {
        let cfg = Config::parse(EXAMPLE).expect("example config");
        let synced = clock::parse_rfc3339_ms(&cfg.synced_at).expect("time");
        assert_eq!(cfg.age(synced + 90_000), Duration::from_secs(90));
    }
}
