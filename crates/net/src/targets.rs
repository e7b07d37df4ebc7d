//! What netd probes, taken from the configuration the stack already has: every acquirer
//! path of paymentd's merchant configuration and the fleet server of the update daemon's
//! configuration (when there is one). Only the keys netd needs are read; the files are
//! validated by their owners.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One HTTPS endpoint to probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The acquirer path's name ("alipay"), or "fleet".
    pub name: String,
    /// "alipay", "wechat", "qra" or "fleet".
    pub kind: String,
    /// Base URL, `https://host[:port][/prefix]`.
    pub url: String,
    /// The one CA the server's certificate must chain to.
    pub ca_file: PathBuf,
    /// The client certificate the path presents (WeChat's merchant certificate), if any:
    /// only its validity is checked, its key is never read.
    pub client_cert_file: Option<PathBuf>,
}

impl Target {
    /// The acquirer, as a cashier calls it.
    pub fn display_name(&self) -> String {
        let who = match self.kind.as_str() {
            "alipay" => "Alipay",
            "wechat" => "WeChat Pay",
            "qra" => "UnionPay QR",
            "fleet" => "the update server",
            _ => "",
        };
        if who.is_empty() || self.name == self.kind {
            if who.is_empty() {
                self.name.clone()
            } else {
                who.to_owned()
            }
        } else {
            format!("{who} ({})", self.name)
        }
    }

    /// The acquirer, as a cashier in China calls it.
    pub fn display_name_zh(&self) -> String {
        match self.kind.as_str() {
            "alipay" => "支付宝".to_owned(),
            "wechat" => "微信支付".to_owned(),
            "qra" => "银联二维码".to_owned(),
            "fleet" => "更新服务器".to_owned(),
            _ => self.name.clone(),
        }
    }

    /// The host of the URL (without brackets for IPv6 literals).
    pub fn host(&self) -> String {
        let rest = self
            .url
            .get(8..)
            .filter(|_| self.url.to_ascii_lowercase().starts_with("https://"))
            .unwrap_or(&self.url);
        let authority = rest.split('/').next().unwrap_or(rest);
        if let Some(v6) = authority.strip_prefix('[') {
            return v6.split(']').next().unwrap_or(v6).to_owned();
        }
        authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_owned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

#[derive(Deserialize)]
struct Merchant {
    #[serde(default)]
    path: Vec<MerchantPath>,
}

#[derive(Deserialize)]
struct MerchantPath {
    name: String,
    kind: String,
    url: String,
    ca_file: PathBuf,
    #[serde(default)]
    client_cert_file: Option<PathBuf>,
}

/// The acquirer paths of the merchant configuration at `file`.
pub fn from_merchant_config(file: &Path) -> Result<Vec<Target>, TargetError> {
    let text = std::fs::read_to_string(file).map_err(|source| TargetError::Read {
        path: file.to_owned(),
        source,
    })?;
    let m: Merchant = toml::from_str(&text).map_err(|e| TargetError::Parse {
        path: file.to_owned(),
        message: e.to_string(),
    })?;
    Ok(m.path
        .into_iter()
        .map(|p| Target {
            name: p.name,
            kind: p.kind,
            url: p.url,
            ca_file: p.ca_file,
            client_cert_file: p.client_cert_file,
        })
        .collect())
}

#[derive(Deserialize)]
struct Update {
    #[serde(default)]
    server: Option<UpdateServer>,
}

#[derive(Deserialize)]
struct UpdateServer {
    #[serde(default)]
    url: String,
    #[serde(default = "update_ca")]
    ca_file: PathBuf,
}

/// The update daemon's own default for `[server] ca_file` (`smartpos_update::config`).
fn update_ca() -> PathBuf {
    PathBuf::from("/etc/smartpos/update-ca.pem")
}

/// The fleet server of the update daemon's configuration at `file` (its `[server]` `url` and
/// `ca_file`), named "fleet"; `None` when the file sets no server (only local installs).
pub fn from_update_config(file: &Path) -> Result<Option<Target>, TargetError> {
    let text = std::fs::read_to_string(file).map_err(|source| TargetError::Read {
        path: file.to_owned(),
        source,
    })?;
    let u: Update = toml::from_str(&text).map_err(|e| TargetError::Parse {
        path: file.to_owned(),
        message: e.to_string(),
    })?;
    Ok(u.server.filter(|s| !s.url.is_empty()).map(|s| Target {
        name: "fleet".into(),
        kind: "fleet".into(),
        url: s.url,
        ca_file: s.ca_file,
        client_cert_file: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_server_of_the_update_daemons_configuration() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("smartpos-otad.toml");
        std::fs::write(
            &f,
            r#"[server]
url = "https://fleet.example.com:8443"
tenant = "shops"
controller_id = "T0001"
ca_file = "/etc/smartpos/fleet-ca.pem"
target_token_file = "/etc/smartpos/target-token"

[device]
hw_boardname = "pos-a1"

[polling]
interval_s = 300
"#,
        )
        .unwrap();
        let t = from_update_config(&f).unwrap().expect("a fleet server");
        assert_eq!(t.name, "fleet");
        assert_eq!(t.kind, "fleet");
        assert_eq!(t.url, "https://fleet.example.com:8443");
        assert_eq!(t.host(), "fleet.example.com");
        assert_eq!(t.ca_file, Path::new("/etc/smartpos/fleet-ca.pem"));
        assert_eq!(t.display_name(), "the update server");

        // The update daemon's default CA file when the configuration names none.
        std::fs::write(&f, "[server]\nurl = \"https://fleet.example.com\"\n").unwrap();
        let t = from_update_config(&f).unwrap().unwrap();
        assert_eq!(t.ca_file, Path::new("/etc/smartpos/update-ca.pem"));

        // No server (local installs only), an empty url, no file: nothing to probe.
        std::fs::write(&f, "[device]\nhw_boardname = \"pos-a1\"\n").unwrap();
        assert_eq!(from_update_config(&f).unwrap(), None);
        std::fs::write(&f, "[server]\nurl = \"\"\n").unwrap();
        assert_eq!(from_update_config(&f).unwrap(), None);
        assert!(matches!(
            from_update_config(&d.path().join("absent.toml")),
            Err(TargetError::Read { .. })
        ));
        std::fs::write(&f, "[server\n").unwrap();
        assert!(matches!(
            from_update_config(&f),
            Err(TargetError::Parse { .. })
        ));
    }

    #[test]
    fn the_acquirer_paths_of_a_merchant_configuration() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("merchant.toml");
        std::fs::write(
            &f,
            r#"schema = 1
version = 3
[merchant]
name = "Corner Shop"
[[path]]
name = "alipay"
kind = "alipay"
url = "https://openapi.alipay.com"
ca_file = "/etc/smartpos/alipay-ca.pem"
app_id = "2021"
[[path]]
name = "wx-backup"
kind = "wechat"
url = "https://[2001:db8::1]:8443/proxy"
ca_file = "/etc/smartpos/wx-ca.pem"
client_cert_file = "/etc/smartpos/wx-cert.pem"
client_key_file = "/etc/smartpos/wx-key.pem"
"#,
        )
        .unwrap();
        let t = from_merchant_config(&f).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].host(), "openapi.alipay.com");
        assert_eq!(t[0].display_name(), "Alipay");
        assert_eq!(t[1].host(), "2001:db8::1");
        assert_eq!(t[1].display_name(), "WeChat Pay (wx-backup)");
        assert_eq!(
            t[1].client_cert_file.as_deref(),
            Some(Path::new("/etc/smartpos/wx-cert.pem"))
        );
    }
}
