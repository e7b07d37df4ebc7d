//! The terminal side of the emulator: a merchant configuration (schema 1, as
//! `crates/payment/config/merchant.example.toml` documents it) that points a terminal at this
//! emulator, with its CA pinned and its keys. Used by the integration tests and `make demo`
//! ([`merchant_config`]), and by the VM system test, whose terminal keeps its files under
//! `/etc/smartpos` ([`write_terminal_files`], `smartpos-acquirer-sim --write-terminal-config`).

use std::path::Path;

use crate::pki::{MerchantIds, Pki, files};

/// How fast the terminal polls: the documented pace, or shortened for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Alipay 5 × 5 s, WeChat every 5 s within 45 s (docs/acquirers.md §1.7, §2.1).
    Documented,
    /// The same flow, with intervals of a few hundred milliseconds.
    Fast,
    /// Polling at a few hundred milliseconds with windows of 20 s and the field's network
    /// timeouts: a terminal emulated in a VM without acceleration, where a TLS handshake
    /// can take seconds (the system test).
    Emulated,
}

/// Where the terminal finds each file the merchant configuration names.
struct Files {
    ca: String,
    app_key: String,
    alipay_pub: String,
    wechat_key: String,
    wx_cert: String,
    wx_key: String,
    qra_key: String,
}

/// Write the shared secrets next to the config (0600) and return the config's TOML text.
pub fn merchant_config(
    base_url: &str,
    pki: &Pki,
    dir: &Path,
    pace: Pace,
) -> std::io::Result<String> {
    let ids = &pki.merchant;
    let wechat_key = dir.join("wechat-api-key");
    write_secret(&wechat_key, &ids.wechat_api_key)?;
    let qra_key = dir.join("qra-key");
    write_secret(&qra_key, &ids.qra_key)?;
    let p = |name: &str| pki.path(name).display().to_string();
    let files = Files {
        ca: p(files::CA_CERT),
        app_key: p(files::APP_PRIVATE_KEY),
        alipay_pub: p(files::ALIPAY_PUBLIC_KEY),
        wechat_key: wechat_key.display().to_string(),
        wx_cert: p(files::WECHAT_CLIENT_CERT),
        wx_key: p(files::WECHAT_CLIENT_KEY),
        qra_key: qra_key.display().to_string(),
    };
    Ok(render(base_url, &pki.merchant, &files, pace))
}

/// Names of the files [`write_terminal_files`] writes, below its output directory.
pub mod terminal_files {
    /// The merchant configuration.
    pub const MERCHANT: &str = "merchant.toml";
    /// The acquirer CA the terminal pins.
    pub const CA: &str = "ca/acquirer-ca.pem";
    /// Keys and shared secrets (private keys and secrets 0600).
    pub const KEYS: [&str; 6] = [
        "keys/app-private.key.pem",
        "keys/alipay-public.pem",
        "keys/wechat-merchant.pem",
        "keys/wechat-merchant.key.pem",
        "keys/wechat-api-key",
        "keys/qra-key",
    ];
}

/// A terminal's configuration for this emulator, as a factory would provision it: writes
/// `merchant.toml`, `ca/acquirer-ca.pem` and `keys/*` into `out`; the merchant configuration
/// names them where the terminal will have them, below `at` (e.g. `/etc/smartpos`).
pub fn write_terminal_files(
    base_url: &str,
    pki: &Pki,
    out: &Path,
    at: &Path,
    pace: Pace,
) -> std::io::Result<()> {
    use terminal_files::{CA, KEYS, MERCHANT};
    std::fs::create_dir_all(out.join("keys"))?;
    std::fs::create_dir_all(out.join("ca"))?;
    std::fs::copy(pki.path(files::CA_CERT), out.join(CA))?;
    let copies = [
        files::APP_PRIVATE_KEY,
        files::ALIPAY_PUBLIC_KEY,
        files::WECHAT_CLIENT_CERT,
        files::WECHAT_CLIENT_KEY,
    ];
    for (from, to) in copies.iter().zip(&KEYS[..4]) {
        let text = std::fs::read(pki.path(from))?;
        write_secret(&out.join(to), &text)?;
    }
    write_secret(&out.join(KEYS[4]), pki.merchant.wechat_api_key.as_bytes())?;
    write_secret(&out.join(KEYS[5]), pki.merchant.qra_key.as_bytes())?;
    let at_ = |rel: &str| at.join(rel).display().to_string();
    let files = Files {
        ca: at_(CA),
        app_key: at_(KEYS[0]),
        alipay_pub: at_(KEYS[1]),
        wx_cert: at_(KEYS[2]),
        wx_key: at_(KEYS[3]),
        wechat_key: at_(KEYS[4]),
        qra_key: at_(KEYS[5]),
    };
    std::fs::write(
        out.join(MERCHANT),
        render(base_url, &pki.merchant, &files, pace),
    )
}

fn render(base_url: &str, ids: &MerchantIds, f: &Files, pace: Pace) -> String {
    let polling = match pace {
        Pace::Documented => {
            "alipay_interval_ms = 5000\nalipay_max_queries = 5\nwechat_interval_ms = 5000\nwechat_window_ms = 45000\n\
             qra_interval_ms = 5000\nqra_window_ms = 45000\ncancel_interval_ms = 2000\ncancel_max_attempts = 10\n\
             resolver_interval_ms = 30000\nawaiting_code_expiry_ms = 600000\n"
        }
        Pace::Fast => {
            "alipay_interval_ms = 200\nalipay_max_queries = 5\nwechat_interval_ms = 300\nwechat_window_ms = 6000\n\
             qra_interval_ms = 300\nqra_window_ms = 6000\ncancel_interval_ms = 100\ncancel_max_attempts = 5\n\
             resolver_interval_ms = 200\nawaiting_code_expiry_ms = 600000\n\
             wechat_reverse_delay_ms = 100\nbackoff_max_ms = 800\nresolution_window_ms = 10000\n\
             background_interval_ms = 1000\nbackground_max_ms = 8000\n"
        }
        Pace::Emulated => {
            "alipay_interval_ms = 500\nalipay_max_queries = 40\nwechat_interval_ms = 500\nwechat_window_ms = 20000\n\
             qra_interval_ms = 500\nqra_window_ms = 20000\ncancel_interval_ms = 500\ncancel_max_attempts = 5\n\
             resolver_interval_ms = 1000\nawaiting_code_expiry_ms = 600000\n"
        }
    };
    let (connect_ms, read_ms) = match pace {
        Pace::Fast => (3000, 1500),
        Pace::Documented => (3000, 15000),
        Pace::Emulated => (10000, 15000),
    };
    format!(
        r#"schema = 1
version = 7
synced_at = "2026-11-27T09:30:00Z"
terminal_id = "T0001"

[merchant]
name = "Corner Shop"
category = "5411"
schemes = ["alipay", "wechat", "unionpay"]
funding = ["balance", "bank_card", "huabei", "huabei_instalments", "credit_card"]

[timeouts]
connect_ms = {connect_ms}
read_ms = {read_ms}

[polling]
{polling}
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
url = "{base_url}"
ca_file = "{ca}"
app_id = "{app_id}"
private_key_file = "{app_key}"
alipay_public_key_file = "{alipay_pub}"

[[path]]
name = "wechat"
kind = "wechat"
url = "{base_url}"
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
url = "{base_url}"
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
        ca = f.ca,
        app_id = ids.alipay_app_id,
        app_key = f.app_key,
        alipay_pub = f.alipay_pub,
        wx_appid = ids.wechat_appid,
        wx_mch = ids.wechat_mch_id,
        wechat_key = f.wechat_key,
        wx_cert = f.wx_cert,
        wx_key = f.wx_key,
        qra_mch = ids.qra_mch_id,
        qra_key = f.qra_key,
    )
}

fn write_secret(path: &Path, secret: impl AsRef<[u8]>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(secret.as_ref())
}
