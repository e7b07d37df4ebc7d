//! hawkBit's Direct Device Integration (DDI) API, the parts a terminal uses: the controller
//! base (poll), configData, deploymentBase with several chunks and artifacts, cancelAction and
//! feedback. Field names follow the hawkBit DDI API reference; everything a server may leave
//! out is optional here, because goosebit leaves out much of it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `GET /{tenant}/controller/v1/{controllerId}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Base {
    #[serde(default)]
    pub config: Option<BaseConfig>,
    #[serde(rename = "_links", default)]
    pub links: BaseLinks,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct BaseConfig {
    #[serde(default)]
    pub polling: Option<Polling>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Polling {
    /// `HH:MM:SS`.
    pub sleep: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct BaseLinks {
    #[serde(rename = "deploymentBase")]
    pub deployment_base: Option<Link>,
    #[serde(rename = "configData")]
    pub config_data: Option<Link>,
    #[serde(rename = "cancelAction")]
    pub cancel_action: Option<Link>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Link {
    pub href: String,
}

impl Base {
    /// The server's polling interval, if it gave one we can read.
    pub fn sleep(&self) -> Option<Duration> {
        parse_sleep(&self.config.as_ref()?.polling.as_ref()?.sleep)
    }
}

/// `HH:MM:SS` → duration. hawkBit may add a jitter suffix (`~10%`), which is ignored: the
/// terminal adds its own jitter.
pub fn parse_sleep(s: &str) -> Option<Duration> {
    let s = s.split('~').next()?.trim();
    let mut parts = s.split(':').map(|p| p.parse::<u64>());
    let (h, m, sec) = (
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
    );
    if parts.next().is_some() || m >= 60 || sec >= 60 {
        return None;
    }
    Some(Duration::from_secs(h * 3600 + m * 60 + sec))
}

/// `GET …/deploymentBase/{actionId}`.
#[derive(Debug, Clone, Deserialize)]
pub struct DeploymentBase {
    pub id: String,
    pub deployment: Deployment,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Deployment {
    pub download: Handling,
    pub update: Handling,
    #[serde(rename = "maintenanceWindow", default)]
    pub maintenance_window: Option<MaintenanceWindow>,
    #[serde(default)]
    pub chunks: Vec<Chunk>,
}

/// `skip`, `attempt` or `forced`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Handling {
    Skip,
    Attempt,
    Forced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaintenanceWindow {
    Available,
    Unavailable,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Chunk {
    pub part: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Artifact {
    pub filename: String,
    pub size: u64,
    #[serde(default)]
    pub hashes: Hashes,
    #[serde(rename = "_links", default)]
    pub links: ArtifactLinks,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Hashes {
    pub sha1: Option<String>,
    pub md5: Option<String>,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ArtifactLinks {
    /// Over TLS. The `download-http` link (plain HTTP) is never used.
    pub download: Option<Link>,
}

/// `GET …/cancelAction/{id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct CancelAction {
    pub id: String,
    #[serde(rename = "cancelAction")]
    pub cancel_action: CancelStop,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CancelStop {
    #[serde(rename = "stopId")]
    pub stop_id: String,
}

/// What a terminal reports about an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Execution {
    Proceeding,
    Downloaded,
    Closed,
    Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Finished {
    Success,
    Failure,
    None,
}

#[derive(Debug, Clone, Serialize)]
pub struct Feedback {
    pub id: String,
    pub status: FeedbackStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeedbackStatus {
    pub execution: Execution,
    pub result: FeedbackResult,
    pub details: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeedbackResult {
    pub finished: Finished,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<FeedbackProgress>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeedbackProgress {
    pub cnt: u32,
    pub of: u32,
}

impl Feedback {
    pub fn new(id: &str, execution: Execution, finished: Finished, detail: &str) -> Feedback {
        Feedback {
            id: id.to_owned(),
            status: FeedbackStatus {
                execution,
                result: FeedbackResult {
                    finished,
                    progress: None,
                },
                details: vec![detail.to_owned()],
            },
        }
    }

    /// A step of `of` (downloading = 1, downloaded = 2, installing = 3, installed = 4).
    pub fn step(id: &str, cnt: u32, of: u32, detail: &str) -> Feedback {
        let mut f = Feedback::new(id, Execution::Proceeding, Finished::None, detail);
        f.status.result.progress = Some(FeedbackProgress { cnt, of });
        f
    }
}

/// `PUT …/configData`.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigData {
    pub mode: &'static str,
    pub data: std::collections::BTreeMap<String, String>,
}

/// The wait before the next poll: the server's interval with ±10 % jitter (a fleet that
/// rebooted together does not poll together), or after `errors` failures in a row, a
/// doubling back-off from `base` capped at `max`, also jittered.
pub fn next_poll(server: Duration, errors: u32, base: Duration, max: Duration) -> Duration {
    let wait = if errors == 0 {
        server
    } else {
        let factor = 1u32 << errors.saturating_sub(1).min(16);
        base.saturating_mul(factor).min(max)
    };
    jitter(wait, 10)
}

fn jitter(d: Duration, percent: u64) -> Duration {
    use rand::Rng;
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let spread = ms / 100 * percent;
    if spread == 0 {
        return d;
    }
    let delta = rand::rng().random_range(0..=2 * spread);
    Duration::from_millis(ms - spread + delta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_sleep_is_read_with_or_without_its_jitter_suffix() {
        assert_eq!(parse_sleep("00:05:00"), Some(Duration::from_secs(300)));
        assert_eq!(parse_sleep("01:00:10~10%"), Some(Duration::from_secs(3610)));
        assert_eq!(parse_sleep("00:61:00"), None);
        assert_eq!(parse_sleep("5m"), None);
    }

    #[test]
    fn a_failing_server_is_polled_less_and_less_often_up_to_the_cap() {
        let (base, max) = (Duration::from_secs(30), Duration::from_secs(3600));
        let server = Duration::from_secs(300);
        let ok = next_poll(server, 0, base, max);
        assert!(ok >= Duration::from_secs(270) && ok <= Duration::from_secs(330));
        let mut last = Duration::ZERO;
        for errors in 1..=6 {
            let w = next_poll(server, errors, base, max);
            let nominal = base * (1 << (errors - 1));
            assert!(
                w >= nominal * 9 / 10 && w <= nominal * 11 / 10,
                "{errors}: {w:?}"
            );
            assert!(w > last);
            last = w;
        }
        let capped = next_poll(server, 30, base, max);
        assert!(capped <= max * 11 / 10 && capped >= max * 9 / 10);
    }

    #[test]
    fn a_hawkbit_deployment_with_two_chunks_and_a_maintenance_window_is_read() {
        let json = r#"{"id":"5","deployment":{"download":"forced","update":"attempt","maintenanceWindow":"unavailable",
          "chunks":[{"part":"os","version":"1.2.0","name":"pos","artifacts":[{"filename":"pos.raucb","size":11,
            "hashes":{"sha1":"aa","md5":"bb","sha256":"cc"},"_links":{"download":{"href":"https://h/d"},"md5sum":{"href":"x"}}}]},
           {"part":"merchant-config","version":"9","name":"cfg","artifacts":[
             {"filename":"merchant.toml","size":3,"hashes":{"sha1":"dd"},"_links":{"download":{"href":"https://h/c"}}},
             {"filename":"merchant.toml.sig","size":89,"hashes":{"sha1":"ee"},"_links":{"download":{"href":"https://h/s"}}}]}]},
          "actionHistory":{"status":"RUNNING","messages":[]}}"#;
        let d: DeploymentBase = serde_json::from_str(json).unwrap();
        assert_eq!(d.deployment.update, Handling::Attempt);
        assert_eq!(
            d.deployment.maintenance_window,
            Some(MaintenanceWindow::Unavailable)
        );
        assert_eq!(d.deployment.chunks.len(), 2);
        assert_eq!(d.deployment.chunks[1].artifacts.len(), 2);
        assert_eq!(
            d.deployment.chunks[0].artifacts[0].hashes.sha256.as_deref(),
            Some("cc")
        );
    }

    #[test]
    fn feedback_has_the_shape_hawkbit_reads() {
        let f = Feedback::step("7", 1, 4, "downloading");
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id":"7","status":{"execution":"proceeding",
                "result":{"finished":"none","progress":{"cnt":1,"of":4}},"details":["downloading"]}})
        );
        let f = Feedback::new("7", Execution::Closed, Finished::Failure, "sha1 mismatch");
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(
            v["status"]["result"],
            serde_json::json!({"finished":"failure"})
        );
    }
}
