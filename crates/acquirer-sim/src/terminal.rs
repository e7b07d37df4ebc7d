//! The terminal side of the emulator: a merchant configuration (schema 1, as
//! `crates/payment/config/merchant.example.toml` documents it) that points a terminal at this
//! emulator, with its CA pinned and its keys. Used by the integration tests and `make demo`.

use std::path::Path;

use crate::pki::{Pki, files};

/// How fast the terminal polls: the documented pace, or shortened for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Alipay 5 × 5 s, WeChat every 5 s within 45 s (docs/acquirers.md §1.7, §2.1).
    Documented,
    /// The same flow, with intervals of a few hundred milliseconds.
    Fast,
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
    };
    let read_ms = if pace == Pace::Fast { 1500 } else { 15000 };
    Ok(format!(
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
connect_ms = 3000
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
    ))
}

fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(secret.as_bytes())
}
