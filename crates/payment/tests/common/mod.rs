//! Test harness: the real acquirer emulator on loopback (TLS with its own throwaway CA) and
//! a merchant configuration pointing the terminal at it, with the polling pace shortened.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use smartpos_acquirer_sim::pki::files;
use smartpos_acquirer_sim::{Sim, SimConfig};
use smartpos_payment::PaymentService;
use smartpos_payment::config::Config;

pub struct Harness {
    pub sim: Sim,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub journal_path: PathBuf,
}

/// Unique tail digits so that no two codes in a run collide (codes are single-use).
pub fn tail(n: usize) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let v = NEXT.fetch_add(1, Ordering::Relaxed) + u64::from(std::process::id()) * 1000;
    let s = format!("{v:0width$}", width = n);
    s[s.len() - n..].to_owned()
}

/// An Alipay code (18 digits) that selects an emulator scenario by its digits 3–5.
pub fn alipay_code(scenario: &str) -> String {
    format!("28{scenario}{}", tail(13))
}

/// A WeChat code (18 digits).
pub fn wechat_code(scenario: &str) -> String {
    format!("13{scenario}{}", tail(13))
}

/// A UnionPay code (19 digits).
pub fn unionpay_code(scenario: &str) -> String {
    format!("62{scenario}{}", tail(14))
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(|_| {}).await
    }

    /// Start the emulator and write a config; `edit` may change the TOML text.
    pub async fn start_with(edit: impl FnOnce(&mut String)) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = smartpos_acquirer_sim::start(SimConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            pki_dir: dir.path().join("pki"),
            ledger_file: None,
        })
        .await
        .expect("emulator starts");
        let mut text = config_text(&sim, dir.path());
        edit(&mut text);
        let config_path = dir.path().join("merchant.toml");
        std::fs::write(&config_path, &text).expect("write config");
        let journal_path = dir.path().join("payments.db");
        Harness {
            sim,
            dir,
            config_path,
            journal_path,
        }
    }

    pub fn config(&self) -> Config {
        Config::load(&self.config_path).expect("config loads")
    }

    pub fn service(&self) -> PaymentService {
        PaymentService::open(self.config(), &self.journal_path).expect("service opens")
    }
}

pub fn config_text(sim: &Sim, dir: &Path) -> String {
    let pki = sim.pki();
    let ids = &pki.merchant;
    let wechat_key = dir.join("wechat-api-key");
    std::fs::write(&wechat_key, &ids.wechat_api_key).expect("write key");
    let qra_key = dir.join("qra-key");
    std::fs::write(&qra_key, &ids.qra_key).expect("write key");
    let p = |name: &str| pki.path(name).display().to_string();
    let base = sim.base_url();
    format!(
        r#"
schema = 1
version = 7
synced_at = "2026-11-27T09:30:00Z"
terminal_id = "T0001"

[merchant]
name = "Corner Shop"
category = "5411"
schemes = ["alipay", "wechat", "unionpay"]
funding = ["balance", "bank_card", "huabei", "huabei_instalments", "credit_card"]

[timeouts]
connect_ms = 3000
read_ms = 1500

[polling]
alipay_interval_ms = 200
alipay_max_queries = 5
wechat_interval_ms = 300
wechat_window_ms = 6000
qra_interval_ms = 300
qra_window_ms = 6000
cancel_interval_ms = 100
cancel_max_attempts = 5
resolver_interval_ms = 200
awaiting_code_expiry_ms = 600000

[risk]
max_per_sale_fen = 5000000
max_daily_fen = 50000000
velocity_max_sales = 100
velocity_window_s = 60
cashout_round_amount_fen = 100000

[[policy]]
name = "no-credit-for-quasi-cash"
categories = ["5933"]
deny_funding = ["huabei", "huabei_instalments", "credit_card"]

[[path]]
name = "alipay"
kind = "alipay"
url = "{base}/gateway.do"
ca_file = "{ca}"
app_id = "{app_id}"
private_key_file = "{app_key}"
alipay_public_key_file = "{alipay_pub}"

# Nothing listens on port 1: connection refused, the payment provably never left.
[[path]]
name = "alipay-dead"
kind = "alipay"
url = "https://127.0.0.1:1/gateway.do"
ca_file = "{ca}"
app_id = "{app_id}"
private_key_file = "{app_key}"
alipay_public_key_file = "{alipay_pub}"

[[path]]
name = "wechat"
kind = "wechat"
url = "{base}"
ca_file = "{ca}"
appid = "{wx_appid}"
mch_id = "{wx_mch}"
api_key_file = "{wechat_key}"
sign_type = "hmac_sha256"
client_cert_file = "{wx_cert}"
client_key_file = "{wx_key}"

[[path]]
name = "qra"
kind = "qra"
url = "{base}/pay/gateway"
ca_file = "{ca}"
mch_id = "{qra_mch}"
key_file = "{qra_key}"

[[route]]
scheme = "alipay"
paths = ["alipay"]

[[route]]
scheme = "wechat"
paths = ["wechat"]

[[route]]
scheme = "unionpay"
paths = ["qra"]
"#,
        ca = p(files::CA_CERT),
        app_id = ids.alipay_app_id,
        app_key = p(files::APP_PRIVATE_KEY),
        alipay_pub = p(files::ALIPAY_PUBLIC_KEY),
        wx_appid = ids.wechat_appid,
        wx_mch = ids.wechat_mch_id,
        wechat_key = wechat_key.display(),
        wx_cert = p(files::WECHAT_CLIENT_CERT),
        wx_key = p(files::WECHAT_CLIENT_KEY),
        qra_mch = ids.qra_mch_id,
        qra_key = qra_key.display(),
    )
}
