//! Test harness: the real acquirer emulator on loopback (TLS with its own throwaway CA) and
//! a merchant configuration pointing the terminal at it, with the polling pace shortened.

#![allow(dead_code)]

pub mod certs;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use smartpos_acquirer_sim::pki::files;
use smartpos_acquirer_sim::terminal::{Pace, merchant_config};
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

/// The emulator's own terminal configuration (fast pace), plus a dead Alipay path for the
/// fail-over tests.
pub fn config_text(sim: &Sim, dir: &Path) -> String {
    let base = merchant_config(&sim.base_url(), sim.pki(), dir, Pace::Fast)
        .expect("write merchant secrets");
    let pki = sim.pki();
    let p = |name: &str| pki.path(name).display().to_string();
    let dead = format!(
        r#"# Nothing listens on port 1: connection refused, the payment provably never left.
[[path]]
name = "alipay-dead"
kind = "alipay"
url = "https://127.0.0.1:1"
ca_file = "{ca}"
app_id = "{app_id}"
private_key_file = "{app_key}"
alipay_public_key_file = "{alipay_pub}"

[[path]]
name = "wechat""#,
        ca = p(files::CA_CERT),
        app_id = pki.merchant.alipay_app_id,
        app_key = p(files::APP_PRIVATE_KEY),
        alipay_pub = p(files::ALIPAY_PUBLIC_KEY),
    );
    let text = base.replacen("[[path]]\nname = \"wechat\"", &dead, 1);
    assert_ne!(
        text, base,
        "the emulator's terminal config no longer has a wechat path"
    );
    text
}
