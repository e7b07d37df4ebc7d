//! netd's view of an acquirer path, for a sale that failed without the payment leaving the
//! terminal (see `smartpos_payment::service::netview`). Read from `org.smartpos.Network1` on
//! the bus this daemon already has; when netd is not on the bus, nothing is asked and the
//! sale keeps its plain explanation.

use std::time::Duration;

use smartpos_bus::network::NetworkProxy;
use smartpos_payment::service::netview::{Diagnosing, NetworkView, PathDiagnosis};
use zbus::Connection;
use zbus::proxy::CacheProperties;

/// How long reading netd's verdict may take (it is a property read).
const READ_WAIT: Duration = Duration::from_millis(500);
/// How long a fresh probe of the path may take; a probe that needs longer (a black hole, a
/// resolver that does not answer) is left to netd's schedule.
const PROBE_WAIT: Duration = Duration::from_secs(2);

pub struct NetdView {
    conn: Connection,
}

impl NetdView {
    pub fn new(conn: Connection) -> NetdView {
        NetdView { conn }
    }

    async fn diagnose(&self, path: &str) -> Option<PathDiagnosis> {
        // netd not running: no name owner, nothing to ask (and nothing to activate).
        let dbus = zbus::fdo::DBusProxy::new(&self.conn).await.ok()?;
        let name = zbus::names::BusName::try_from(smartpos_bus::network::INTERFACE).ok()?;
        if !tokio::time::timeout(READ_WAIT, dbus.name_has_owner(name))
            .await
            .ok()?
            .ok()?
        {
            return None;
        }
        let proxy = NetworkProxy::builder(&self.conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .ok()?;
        // What netd already knows: its scheduled probes may have seen the path fail.
        let rows = tokio::time::timeout(READ_WAIT, proxy.paths())
            .await
            .ok()?
            .ok()?;
        let known = row(rows, path);
        if known.as_ref().is_some_and(PathDiagnosis::is_failure) {
            return known;
        }
        // Its last look was before this failure: look at the path now. netd refuses a
        // probe of the same path again within its rate limit; its verdict then stands.
        match tokio::time::timeout(PROBE_WAIT, proxy.probe(path)).await {
            Ok(Ok(doc)) => from_status(&doc, path),
            Ok(Err(e)) => {
                tracing::info!(path, "netd did not probe the path: {e}");
                known
            }
            Err(_) => known,
        }
    }
}

impl NetworkView for NetdView {
    fn diagnose_path<'a>(&'a self, path: &'a str) -> Diagnosing<'a> {
        Box::pin(self.diagnose(path))
    }
}

fn row(
    rows: Vec<(String, String, bool, String, String, String)>,
    path: &str,
) -> Option<PathDiagnosis> {
    rows.into_iter()
        .find(|r| r.0 == path)
        .map(|(_, _, _, code, reason_en, reason_zh)| PathDiagnosis {
            code,
            reason_en,
            reason_zh,
        })
}

/// The path's verdict in netd's status document (`paths[]`).
fn from_status(doc: &str, path: &str) -> Option<PathDiagnosis> {
    let v: serde_json::Value = serde_json::from_str(doc).ok()?;
    let p = v["paths"].as_array()?.iter().find(|p| p["name"] == path)?;
    let text = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
    Some(PathDiagnosis {
        code: text("code"),
        reason_en: text("reason_en"),
        reason_zh: text("reason_zh"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_is_found_in_netds_status_document() {
        let doc = r#"{"online":false,"paths":[
            {"name":"wechat","kind":"wechat","online":true,"code":"ok","reason_en":"WeChat Pay reachable","reason_zh":"微信支付可达"},
            {"name":"alipay","kind":"alipay","online":false,"code":"net.refused",
             "reason_en":"Alipay unreachable: connection refused","reason_zh":"支付宝不可达:连接被拒绝"}]}"#;
        let d = from_status(doc, "alipay").unwrap();
        assert_eq!(d.code, "net.refused");
        assert!(d.is_failure());
        assert_eq!(d.reason_zh, "支付宝不可达:连接被拒绝");
        assert!(!from_status(doc, "wechat").unwrap().is_failure());
        assert_eq!(from_status(doc, "qra"), None);
        assert_eq!(from_status("not json", "alipay"), None);
    }
}
