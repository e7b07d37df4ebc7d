//! The update engine: one task that polls the fleet server, downloads and verifies, installs
//! through RAUC inside the payment daemon's install window, reboots, and after the reboot
//! decides good or bad before telling the server how it ended.
//!
//! Feedback goes to the server at meaningful steps only (downloading, downloaded, installing,
//! installed awaiting reboot, and the final closed/success or closed/failure), each at most
//! once per action and run, never per percent. An unreachable server gets polls at a growing
//! interval and no feedback at all.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Config;
use crate::ddi::{
    self, Artifact, Base, CancelAction, ConfigData, DeploymentBase, Execution, Feedback, Finished,
    Handling, MaintenanceWindow,
};
use crate::fleet::{Auth, Client, HttpError};
use crate::payment::{self, Window};
use crate::plan::Plan;
use crate::rauc::{self, InstallerProxy, Outcome};
use crate::state::{LOCAL, Phase, Record, Store};
use crate::verify::Hasher;

/// What the daemon shows on the bus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// One of the `state::*` words below.
    pub state: String,
    pub percent: u32,
    pub step: String,
    pub current: String,
    pub pending: String,
    pub last_error: String,
    pub action: String,
}

/// The words `Status::state` takes (documented in the interface XML).
pub mod states {
    pub const IDLE: &str = "idle";
    pub const DOWNLOADING: &str = "downloading";
    /// Downloaded and verified; waiting for the server to allow the install (update skip,
    /// maintenance window unavailable).
    pub const DOWNLOADED: &str = "downloaded";
    /// Waiting for the sale in flight to end.
    pub const WAITING_FOR_SALE: &str = "waiting-for-sale";
    pub const INSTALLING: &str = "installing";
    pub const AWAITING_REBOOT: &str = "awaiting-reboot";
    pub const VERIFYING: &str = "verifying";
    pub const FAILED: &str = "failed";
}

/// Requests from the bus.
#[derive(Debug)]
pub enum Command {
    /// Poll the server now.
    Check,
    /// Install a bundle a technician brought; the reply comes once it is accepted or refused.
    InstallLocal {
        path: PathBuf,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// Why an action failed (its text goes to the server and to `LastError`).
#[derive(Debug, thiserror::Error)]
enum ActionError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// What handling a deployment left us with.
enum Progress {
    /// Nothing more to do for it now.
    Done,
    /// It is still open (waiting for a window or a sale): poll sooner.
    Open,
}

pub struct Engine {
    cfg: Config,
    client: Option<Client>,
    bus: zbus::Connection,
    store: Store,
    status: watch::Sender<Status>,
    base_path: String,
    config_data_sent: bool,
    /// (action, step) feedback already sent in this run.
    reported: HashSet<(String, u32)>,
    /// Actions closed in this run (a server may still list one until it has caught up).
    closed: HashSet<String>,
    /// Cancel requests answered in this run: a server that still lists one is not answered
    /// again at every poll.
    cancels_answered: HashSet<String>,
}

/// Read a token file: one line, whitespace trimmed.
fn read_token(path: &Path) -> Result<String, String> {
    let t = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
    let t = t.trim().to_owned();
    if t.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(t)
}

impl Engine {
    /// Set up from the configuration; fails on files the configuration names but that
    /// cannot be used (CA, token).
    pub fn new(
        cfg: Config,
        bus: zbus::Connection,
        status: watch::Sender<Status>,
    ) -> Result<Engine, String> {
        let client = if cfg.server.url.is_empty() {
            None
        } else {
            let auth = match (
                &cfg.server.target_token_file,
                &cfg.server.gateway_token_file,
            ) {
                (Some(p), _) => Auth::Target(read_token(p)?),
                (None, Some(p)) => Auth::Gateway(read_token(p)?),
                (None, None) => Auth::None,
            };
            Some(Client::new(
                &cfg.server.url,
                &cfg.server.ca_file,
                auth,
                Duration::from_millis(cfg.server.connect_timeout_ms),
                Duration::from_millis(cfg.server.read_timeout_ms),
            )?)
        };
        let base_path = format!(
            "/{}/controller/v1/{}",
            cfg.server.tenant, cfg.server.controller_id
        );
        Ok(Engine {
            store: Store::new(&cfg.download.dir),
            cfg,
            client,
            bus,
            status,
            base_path,
            config_data_sent: false,
            reported: HashSet::new(),
            closed: HashSet::new(),
            cancels_answered: HashSet::new(),
        })
    }

    fn set(&self, f: impl FnOnce(&mut Status)) {
        self.status.send_if_modified(|s| {
            let before = s.clone();
            f(s);
            *s != before
        });
    }

    fn set_state(&self, state: &str, step: &str) {
        self.set(|s| {
            s.state = state.to_owned();
            s.step = step.to_owned();
        });
    }

    async fn rauc(&self) -> zbus::Result<InstallerProxy<'static>> {
        InstallerProxy::new(&self.bus).await
    }

    /// The running version: what RAUC installed into the booted slot, else the factory
    /// image's version file.
    async fn current_version(&self) -> String {
        if let Ok(rauc) = self.rauc().await
            && let Ok(Some(v)) = rauc::booted_version(&rauc).await
        {
            return v;
        }
        std::fs::read_to_string(&self.cfg.device.version_file)
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    }

    async fn refresh_current(&self) {
        let v = self.current_version().await;
        self.set(|s| s.current = v);
    }

    /// Fill in what the bus shows from the start (the running version), before the daemon
    /// takes its name.
    pub async fn prime(&self) {
        self.set_state(states::IDLE, "");
        self.refresh_current().await;
    }

    /// Run until `shutdown` resolves.
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        // Right after the reboot into a new slot the first state is `verifying`, never `idle`:
        // `idle` with the new version would read as "done" before the self-check ran.
        if let Ok(Some(Record {
            phase: Phase::AwaitingReboot { .. },
            ..
        })) = self.store.load()
        {
            self.set_state(states::VERIFYING, "checking the new system");
        } else {
            self.set_state(states::IDLE, "");
        }
        self.refresh_current().await;
        tokio::select! {
            () = &mut shutdown => return,
            () = self.after_boot() => {}
        }
        let mut errors = 0u32;
        let p = self.cfg.polling.clone();
        loop {
            let mut wait = p.default_sleep();
            if self.client.is_some() {
                tokio::select! {
                    () = &mut shutdown => return,
                    r = self.poll_once() => match r {
                        Ok(next) => {
                            errors = 0;
                            wait = next;
                        }
                        Err(e) => {
                            errors = errors.saturating_add(1);
                            tracing::warn!(errors, "poll failed: {e}");
                        }
                    }
                }
            }
            let wait = ddi::next_poll(
                wait.max(Duration::from_secs(p.min_sleep_s)),
                errors,
                Duration::from_secs(p.error_backoff_s),
                Duration::from_secs(p.error_backoff_max_s),
            );
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(wait) => {}
                Some(cmd) = commands.recv() => match cmd {
                    Command::Check => tracing::info!("check requested"),
                    Command::InstallLocal { path, reply } => self.install_local(&path, reply).await,
                }
            }
        }
    }

    // ---- after the reboot -------------------------------------------------------------

    /// Finish what the last run left: judge a freshly booted slot, or report a fall-back.
    async fn after_boot(&mut self) {
        let record = match self.store.load() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("cannot read the action state: {e}");
                return;
            }
        };
        let Some(record) = record else { return };
        self.set(|s| s.action = record.action.clone());
        match record.phase.clone() {
            Phase::AwaitingReboot { version, slot } => {
                self.set(|s| s.pending = version.clone());
                self.set_state(states::VERIFYING, "checking the new system");
                let verdict = self.judge(&version, &slot).await;
                match verdict {
                    Ok(detail) => {
                        tracing::info!("{detail}");
                        self.close(&record.action, true, &detail).await;
                    }
                    Err((reason, booted_new)) => {
                        tracing::error!("the new system failed: {reason}");
                        if booted_new {
                            self.fall_back(&record.action, &reason).await;
                        } else {
                            self.close(&record.action, false, &reason).await;
                        }
                    }
                }
            }
            Phase::FallingBack { reason } => {
                let detail = format!("the previous system is running again: {reason}");
                self.close(&record.action, false, &detail).await;
            }
            Phase::Closing { success, detail } => {
                self.close(&record.action, success, &detail).await;
            }
        }
        self.refresh_current().await;
    }

    /// Ok(detail) if the booted slot is the new one and it proves itself within the deadline;
    /// Err((reason, whether the new slot is the one running)).
    async fn judge(&self, version: &str, slot: &str) -> Result<String, (String, bool)> {
        let rauc = self
            .rauc()
            .await
            .map_err(|e| (format!("RAUC is not reachable: {e}"), false))?;
        let booted = rauc
            .boot_slot()
            .await
            .map_err(|e| (format!("RAUC cannot say which slot booted: {e}"), false))?;
        if booted != slot {
            return Err((
                format!(
                    "the new system in slot {slot} did not come up; slot {booted} booted instead"
                ),
                false,
            ));
        }
        let running = rauc::booted_version(&rauc)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        if running != version {
            return Err((
                format!("slot {slot} runs version {running:?}, not the installed {version}"),
                true,
            ));
        }
        let deadline = Duration::from_secs(self.cfg.selfcheck.deadline_s);
        self.self_check(deadline).await.map_err(|r| (r, true))?;
        match rauc.mark("good", "booted").await {
            Ok((name, msg)) => tracing::info!("RAUC: {name}: {msg}"),
            Err(e) => return Err((format!("RAUC would not mark the slot good: {e}"), true)),
        }
        Ok(format!(
            "version {version} running from slot {slot}; self-check passed; marked good"
        ))
    }

    /// Every configured daemon owns its bus name and answers, within `deadline`.
    async fn self_check(&self, deadline: Duration) -> Result<(), String> {
        let until = tokio::time::Instant::now() + deadline;
        let dbus = zbus::fdo::DBusProxy::new(&self.bus)
            .await
            .map_err(|e| e.to_string())?;
        for name in &self.cfg.selfcheck.bus_names {
            loop {
                let owned = match zbus::names::BusName::try_from(name.as_str()) {
                    Ok(n) => dbus.name_has_owner(n).await.unwrap_or(false),
                    Err(e) => return Err(format!("{name}: {e}")),
                };
                if owned && self.ping(name).await {
                    break;
                }
                if tokio::time::Instant::now() >= until {
                    return Err(format!(
                        "{name} did not come up within {deadline:?} of the new system's start"
                    ));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Ok(())
    }

    async fn ping(&self, name: &str) -> bool {
        let r = self
            .bus
            .call_method(
                Some(name),
                "/",
                Some("org.freedesktop.DBus.Peer"),
                "Ping",
                &(),
            )
            .await;
        r.is_ok()
    }

    /// Mark the new slot bad, make the old one primary, remember why, and reboot into it.
    async fn fall_back(&mut self, action: &str, reason: &str) {
        match self.rauc().await {
            Ok(rauc) => {
                if let Err(e) = rauc.mark("bad", "booted").await {
                    tracing::error!("RAUC would not mark the slot bad: {e}");
                }
                if let Err(e) = rauc.mark("active", "other").await {
                    tracing::error!("RAUC would not activate the previous slot: {e}");
                }
            }
            Err(e) => tracing::error!("RAUC is not reachable: {e}"),
        }
        self.save(&Record {
            action: action.to_owned(),
            phase: Phase::FallingBack {
                reason: reason.to_owned(),
            },
        });
        self.set(|s| s.last_error = reason.to_owned());
        self.set_state(states::FAILED, "rebooting into the previous system");
        self.reboot().await;
    }

    fn save(&self, record: &Record) {
        if let Err(e) = self.store.save(record) {
            tracing::error!("cannot save the action state: {e}");
        }
    }

    /// Decide the outcome and tell the server (for a technician's install: nobody to tell).
    /// Kept until the server has taken it, so a server that is down hears it later.
    async fn close(&mut self, action: &str, success: bool, detail: &str) {
        self.save(&Record {
            action: action.to_owned(),
            phase: Phase::Closing {
                success,
                detail: detail.to_owned(),
            },
        });
        self.set(|s| {
            s.pending.clear();
            s.percent = if success { 100 } else { 0 };
            if !success {
                s.last_error = detail.to_owned();
            }
        });
        self.set_state(
            if success {
                states::IDLE
            } else {
                states::FAILED
            },
            detail,
        );
        self.closed.insert(action.to_owned());
        self.flush_closing().await;
    }

    /// Send a decided outcome the server has not taken yet.
    async fn flush_closing(&mut self) {
        let Ok(Some(Record {
            action,
            phase: Phase::Closing { success, detail },
        })) = self.store.load()
        else {
            return;
        };
        if action != LOCAL && self.client.is_some() {
            let finished = if success {
                Finished::Success
            } else {
                Finished::Failure
            };
            let fb = Feedback::new(&action, Execution::Closed, finished, &detail);
            if let Err(e) = self.feedback(&action, &fb).await {
                // 410: the server no longer knows the action; nothing left to tell.
                if !matches!(e, HttpError::Status { status: 410, .. }) {
                    tracing::warn!("the server has not heard the outcome of {action} yet: {e}");
                    return;
                }
            }
            // The new version goes to the server with the next configData.
            self.config_data_sent = false;
        }
        if let Err(e) = self.store.clear() {
            tracing::error!("cannot clear the action state: {e}");
        }
    }

    async fn feedback(&self, action: &str, fb: &Feedback) -> Result<(), HttpError> {
        let Some(client) = &self.client else {
            return Ok(());
        };
        let path = format!("{}/deploymentBase/{action}/feedback", self.base_path);
        client.send_json(hyper::Method::POST, &path, fb).await
    }

    /// Send step `cnt` of 4 once per action and run.
    async fn step(&mut self, action: &str, cnt: u32, detail: &str) {
        if action == LOCAL || !self.reported.insert((action.to_owned(), cnt)) {
            return;
        }
        let fb = if cnt == 2 {
            let mut f = Feedback::new(action, Execution::Downloaded, Finished::None, detail);
            f.status.result.progress = Some(ddi::FeedbackProgress { cnt, of: 4 });
            f
        } else {
            Feedback::step(action, cnt, 4, detail)
        };
        if let Err(e) = self.feedback(action, &fb).await {
            tracing::warn!("feedback {cnt}/4 for {action} not delivered: {e}");
            self.reported.remove(&(action.to_owned(), cnt));
        }
    }

    async fn reboot(&self) {
        if !self.cfg.install.reboot {
            tracing::info!("reboot is off in the configuration: reboot the terminal to finish");
            return;
        }
        tracing::info!("rebooting through logind");
        let r = self
            .bus
            .call_method(
                Some("org.freedesktop.login1"),
                "/org/freedesktop/login1",
                Some("org.freedesktop.login1.Manager"),
                "Reboot",
                &(false,),
            )
            .await;
        if let Err(e) = r {
            tracing::error!("logind would not reboot: {e}");
            self.set(|s| s.last_error = format!("reboot the terminal to finish: logind said {e}"));
        }
    }

    // ---- polling ----------------------------------------------------------------------

    /// One poll; returns the wait before the next one.
    async fn poll_once(&mut self) -> Result<Duration, HttpError> {
        let Some(client) = self.client.clone() else {
            return Ok(self.cfg.polling.default_sleep());
        };
        let base: Base = client.get_json(&self.base_path).await?;
        let sleep = base.sleep().unwrap_or(self.cfg.polling.default_sleep());
        let active = Duration::from_secs(self.cfg.polling.active_sleep_s).min(sleep);
        self.flush_closing().await;
        let pending = self.store.load().ok().flatten();
        if let Some(link) = &base.links.config_data
            && !self.config_data_sent
        {
            self.send_config_data(&client, &link.href).await?;
        }
        if let Some(link) = &base.links.cancel_action
            && !self.cancels_answered.contains(&link.href)
        {
            self.cancel(&client, &link.href, pending.as_ref()).await?;
            self.cancels_answered.insert(link.href.clone());
            return Ok(active);
        }
        if let Some(link) = &base.links.deployment_base {
            let d: DeploymentBase = client.get_json(&link.href).await?;
            // An action already installed (awaiting its reboot, or decided) is not done again.
            if pending.as_ref().is_some_and(|r| r.action == d.id) || self.closed.contains(&d.id) {
                return Ok(sleep);
            }
            return Ok(match self.deployment(&client, d).await {
                Progress::Done => sleep,
                Progress::Open => active,
            });
        }
        Ok(sleep)
    }

    async fn send_config_data(&mut self, client: &Client, href: &str) -> Result<(), HttpError> {
        let current = self.status.borrow().current.clone();
        let mut data = BTreeMap::new();
        data.insert(
            "hw_boardname".to_owned(),
            self.cfg.device.hw_boardname.clone(),
        );
        data.insert(
            "hw_revision".to_owned(),
            self.cfg.device.hw_revision.clone(),
        );
        data.insert("sw_version".to_owned(), current);
        data.insert(
            "stack_version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        );
        client
            .send_json(
                hyper::Method::PUT,
                href,
                &ConfigData {
                    mode: "merge",
                    data,
                },
            )
            .await?;
        self.config_data_sent = true;
        Ok(())
    }

    /// Accept a cancel before the install started (drop the download), refuse it after.
    async fn cancel(
        &mut self,
        client: &Client,
        href: &str,
        pending: Option<&Record>,
    ) -> Result<(), HttpError> {
        let c: CancelAction = client.get_json(href).await?;
        let stop = c.cancel_action.stop_id;
        let installed = pending.is_some_and(|r| r.action == stop);
        let (execution, finished, detail) = if installed {
            (
                Execution::Rejected,
                Finished::None,
                "already installed; the new system is being verified",
            )
        } else {
            let _ = std::fs::remove_dir_all(self.action_dir(&stop));
            self.closed.insert(stop.clone());
            self.set(|s| s.pending.clear());
            self.set_state(states::IDLE, "the server cancelled the update");
            (
                Execution::Closed,
                Finished::Success,
                "cancelled before the install; download removed",
            )
        };
        tracing::info!("cancel of action {stop}: {detail}");
        let fb = Feedback::new(&c.id, execution, finished, detail);
        let path = format!("{}/cancelAction/{}/feedback", self.base_path, c.id);
        client.send_json(hyper::Method::POST, &path, &fb).await
    }

    fn action_dir(&self, action: &str) -> PathBuf {
        let safe: String = action
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        self.cfg.download.dir.join(format!("action-{safe}"))
    }

    /// Work on a deployment as far as the server and the till allow.
    async fn deployment(&mut self, client: &Client, d: DeploymentBase) -> Progress {
        let action = d.id.clone();
        self.set(|s| s.action = action.clone());
        match self.try_deployment(client, &d).await {
            Ok(p) => p,
            Err(e) => {
                let detail = e.to_string();
                tracing::error!("action {action}: {detail}");
                let _ = std::fs::remove_dir_all(self.action_dir(&action));
                self.close(&action, false, &detail).await;
                Progress::Done
            }
        }
    }

    async fn try_deployment(
        &mut self,
        client: &Client,
        d: &DeploymentBase,
    ) -> Result<Progress, ActionError> {
        let action = d.id.as_str();
        let dep = &d.deployment;
        if dep.download == Handling::Skip {
            self.set_state(states::IDLE, "the server holds the download back");
            return Ok(Progress::Open);
        }
        let plan = Plan::of(dep).map_err(ActionError::Refused)?;
        if let Some((_, version)) = plan.bundle {
            self.set(|s| s.pending = version.to_owned());
        }
        let dir = self.action_dir(action);
        let names = plan.names().join(", ");
        self.step(action, 1, &format!("downloading {names}")).await;
        let mut bundle_file = None;
        if let Some((artifact, _)) = plan.bundle {
            bundle_file = Some(self.download(client, &dir, artifact).await?);
        }
        let mut configs = Vec::new();
        for (config, signature) in &plan.configs {
            configs.push((
                config.filename.as_str(),
                self.download(client, &dir, config).await?,
                self.download(client, &dir, signature).await?,
            ));
        }
        let in_window = dep.update != Handling::Skip
            && dep.maintenance_window != Some(MaintenanceWindow::Unavailable);
        self.step(action, 2, &format!("downloaded and verified {names}"))
            .await;
        if !in_window {
            self.set_state(states::DOWNLOADED, "waiting for the maintenance window");
            return Ok(Progress::Open);
        }
        if let Some(file) = &bundle_file
            && !configs.is_empty()
        {
            // A bundle RAUC or the version rule refuses fails the whole action: find that out
            // before the configurations change what the till sells.
            self.vet(&file.to_string_lossy(), dep.update == Handling::Forced)
                .await?;
        }
        let mut applied = Vec::new();
        for (name, file, signature) in &configs {
            applied.push(self.apply_config(&dir, name, file, signature).await?);
        }
        match bundle_file {
            Some(file) => {
                self.install(action, &file, dep.update == Handling::Forced)
                    .await
            }
            None => {
                // Only configuration: nothing to reboot into, the action is done.
                let _ = std::fs::remove_dir_all(&dir);
                self.close(action, true, &applied.join("; ")).await;
                Ok(Progress::Done)
            }
        }
    }

    /// Hand a verified merchant configuration to the payment daemon, once per action (a
    /// marker remembers it, so an action still waiting for its bundle's install does not
    /// offer the same version again). Returns what was applied.
    async fn apply_config(
        &mut self,
        dir: &Path,
        name: &str,
        file: &Path,
        signature: &Path,
    ) -> Result<String, ActionError> {
        let marker = dir.join(format!(".{name}.applied"));
        if let Ok(done) = std::fs::read_to_string(&marker) {
            return Ok(done);
        }
        let read = |p: &Path| {
            std::fs::read(p)
                .map_err(|e| ActionError::Refused(format!("cannot read {}: {e}", p.display())))
        };
        let (config, sig) = (read(file)?, read(signature)?);
        self.set_state(states::INSTALLING, &format!("applying {name}"));
        let (version, synced_at) = payment::apply_config(&self.bus, &config, &sig)
            .await
            .map_err(|why| {
                ActionError::Refused(format!("merchant configuration {name} refused: {why}"))
            })?;
        let done = format!("merchant configuration {name} version {version} applied ({synced_at})");
        tracing::info!("{done}");
        if let Err(e) = std::fs::write(&marker, &done) {
            tracing::warn!("cannot remember that {name} was applied: {e}");
        }
        Ok(done)
    }

    /// Download `artifact` into `dir`, resuming a partial file, and verify it.
    async fn download(
        &mut self,
        client: &Client,
        dir: &Path,
        artifact: &Artifact,
    ) -> Result<PathBuf, ActionError> {
        let name = Path::new(&artifact.filename)
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.starts_with('.'))
            .ok_or_else(|| {
                ActionError::Refused(format!("artifact name {:?} refused", artifact.filename))
            })?
            .to_owned();
        let link = artifact.links.download.as_ref().ok_or_else(|| {
            ActionError::Refused(format!("{name}: the server gave no https download link"))
        })?;
        std::fs::create_dir_all(dir)
            .map_err(|e| ActionError::Refused(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join(&name);
        let verified = dir.join(format!(".{name}.verified"));
        if verified.exists() {
            return Ok(path);
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .await
            .map_err(|e| ActionError::Refused(format!("cannot open {}: {e}", path.display())))?;
        let mut have = file.metadata().await.map(|m| m.len()).unwrap_or(0);
        if have > artifact.size {
            file.set_len(0).await.ok();
            have = 0;
        }
        check_space(
            dir,
            artifact.size - have,
            self.cfg.download.free_space_margin_bytes,
        )?;
        // The bytes already on disk count towards the hash.
        let mut hasher = Hasher::default();
        if have > 0 {
            let mut buf = vec![0u8; 64 * 1024];
            let mut left = have;
            while left > 0 {
                let n = file
                    .read(&mut buf[..usize::try_from(left.min(64 * 1024)).unwrap_or(64 * 1024)])
                    .await
                    .map_err(|e| ActionError::Refused(format!("reading {name}: {e}")))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                left -= n as u64;
            }
        }
        self.set_state(states::DOWNLOADING, &format!("downloading {name}"));
        let size = artifact.size.max(1);
        let status = self.status.clone();
        let mut report = move |len: u64| {
            let pct = u32::try_from(len.saturating_mul(100) / size)
                .unwrap_or(100)
                .min(100);
            status.send_if_modified(|s| {
                let changed = s.percent != pct;
                s.percent = pct;
                changed
            });
        };
        let cap = Some(self.cfg.download.bandwidth_bytes_per_s).filter(|c| *c > 0);
        let resumed_from = have;
        let mut over_wire = 0u64;
        let mut tries = 0;
        loop {
            tries += 1;
            if hasher.bytes() >= artifact.size {
                break;
            }
            match client
                .download(
                    &link.href,
                    &mut file,
                    hasher.bytes(),
                    &mut hasher,
                    cap,
                    &mut report,
                )
                .await
            {
                Ok(f) => {
                    over_wire += f.transferred;
                    break;
                }
                Err(HttpError::Broken(e)) if tries < self.cfg.download.tries.max(1) => {
                    tracing::warn!(
                        "{name}: download broke off at {} bytes ({e}); resuming",
                        hasher.bytes()
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        tracing::info!(
            "{name}: {} bytes, {over_wire} over the wire in this run (resumed from {resumed_from})",
            hasher.bytes()
        );
        if let Err(m) = hasher.check(&name, artifact.size, &artifact.hashes) {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(ActionError::Refused(format!("download refused: {m}")));
        }
        std::fs::write(&verified, b"")
            .map_err(|e| ActionError::Refused(format!("cannot mark {name} verified: {e}")))?;
        Ok(path)
    }

    /// RAUC checks the bundle's signature and reads its version (Info); a downgrade is
    /// refused unless `forced`. Returns the bundle's version.
    async fn vet(&self, bundle: &str, forced: bool) -> Result<String, ActionError> {
        let rauc = self
            .rauc()
            .await
            .map_err(|e| ActionError::Refused(format!("RAUC is not reachable: {e}")))?;
        let (_compatible, version) = rauc.info(bundle).await.map_err(|e| {
            ActionError::Refused(format!("RAUC refused the bundle: {}", rauc_message(&e)))
        })?;
        let current = self.current_version().await;
        if crate::version::is_downgrade(&version, &current) {
            if forced {
                tracing::warn!(
                    "installing {version} over {current}: downgrade forced by the server"
                );
            } else {
                return Err(ActionError::Refused(format!(
                    "downgrade from {current} to {version} refused: the deployment is not forced"
                )));
            }
        }
        Ok(version)
    }

    /// Install a verified bundle: vet it, wait for the till, install, reboot.
    async fn install(
        &mut self,
        action: &str,
        bundle: &Path,
        forced: bool,
    ) -> Result<Progress, ActionError> {
        let bundle_str = bundle.to_string_lossy().into_owned();
        let version = self.vet(&bundle_str, forced).await?;
        self.set(|s| s.pending = version.clone());
        let rauc = self
            .rauc()
            .await
            .map_err(|e| ActionError::Refused(format!("RAUC is not reachable: {e}")))?;
        match payment::begin(&self.bus).await {
            Window::Held | Window::NoPaymentDaemon => {}
            Window::Wait(why) => {
                self.set_state(states::WAITING_FOR_SALE, &why);
                return Ok(Progress::Open);
            }
        }
        self.step(action, 3, &format!("installing {version}")).await;
        self.set(|s| s.percent = 0);
        self.set_state(states::INSTALLING, &format!("installing {version}"));
        let status = self.status.clone();
        let outcome = rauc::install(
            &rauc,
            &bundle_str,
            Duration::from_secs(self.cfg.install.timeout_s),
            |pct, msg| {
                let pct = u32::try_from(pct.clamp(0, 100)).unwrap_or(0);
                status.send_if_modified(|s| {
                    let changed = s.percent != pct || s.step != msg;
                    s.percent = pct;
                    s.step = msg.to_owned();
                    changed
                });
            },
        )
        .await;
        payment::end(&self.bus).await;
        let outcome =
            outcome.map_err(|e| ActionError::Refused(format!("RAUC: {}", rauc_message(&e))))?;
        if let Some(dir) = bundle.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
        match outcome {
            Outcome::Failed(e) => Err(ActionError::Refused(format!(
                "RAUC refused the install: {e}"
            ))),
            Outcome::Installed => {
                let slot = primary_bootname(&rauc).await.map_err(|e| {
                    ActionError::Refused(format!("RAUC cannot name the new slot: {e}"))
                })?;
                self.save(&Record {
                    action: action.to_owned(),
                    phase: Phase::AwaitingReboot {
                        version: version.clone(),
                        slot: slot.clone(),
                    },
                });
                self.step(
                    action,
                    4,
                    &format!("installed {version} into slot {slot}; rebooting to verify it"),
                )
                .await;
                self.set_state(
                    states::AWAITING_REBOOT,
                    &format!("{version} in slot {slot}"),
                );
                self.reboot().await;
                Ok(Progress::Done)
            }
        }
    }

    /// A technician's bundle: same checks, never a downgrade, nobody to report to. The
    /// answer comes once RAUC has vetted the bundle; the install then goes on (Progress,
    /// State).
    async fn install_local(&mut self, path: &Path, reply: oneshot::Sender<Result<(), String>>) {
        if self.store.load().ok().flatten().is_some() {
            let _ = reply.send(Err(
                "an update is already installed and waiting for its reboot or its report".into(),
            ));
            return;
        }
        if !path.is_absolute() || !path.is_file() {
            let _ = reply.send(Err(format!("{} is not a bundle file", path.display())));
            return;
        }
        // A private copy: the technician's stick may be pulled out, and `install` removes
        // the bundle's directory when it is done.
        let copy = match self.copy_local(path) {
            Ok(c) => c,
            Err(e) => {
                let _ = reply.send(Err(e.to_string()));
                return;
            }
        };
        if let Err(e) = self.vet(&copy.to_string_lossy(), false).await {
            let _ = std::fs::remove_dir_all(self.action_dir(LOCAL));
            let detail = e.to_string();
            tracing::warn!("local install refused: {detail}");
            self.set(|s| s.last_error = detail.clone());
            let _ = reply.send(Err(detail));
            return;
        }
        self.set(|s| {
            s.action = LOCAL.to_owned();
            s.last_error.clear();
            s.percent = 0;
        });
        // Before the answer: a caller that reads State right after it sees the install.
        self.set_state(states::INSTALLING, "waiting for the install window");
        let _ = reply.send(Ok(()));
        match self.install(LOCAL, &copy, false).await {
            Ok(Progress::Open) => {
                let _ = std::fs::remove_dir_all(self.action_dir(LOCAL));
                self.set(|s| s.last_error = "a sale is in flight; try again when it ends".into());
                self.set_state(states::IDLE, "");
            }
            Ok(Progress::Done) => {}
            Err(e) => {
                let detail = e.to_string();
                tracing::error!("local install: {detail}");
                self.set(|s| {
                    s.last_error = detail.clone();
                    s.pending.clear();
                });
                self.set_state(states::FAILED, &detail);
            }
        }
    }

    fn copy_local(&self, path: &Path) -> Result<PathBuf, ActionError> {
        let dir = self.action_dir(LOCAL);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| ActionError::Refused(format!("cannot create {}: {e}", dir.display())))?;
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        check_space(&dir, size, self.cfg.download.free_space_margin_bytes)?;
        let copy = dir.join("local.raucb");
        std::fs::copy(path, &copy)
            .map_err(|e| ActionError::Refused(format!("cannot read {}: {e}", path.display())))?;
        Ok(copy)
    }
}

/// The boot name (what `BootSlot` says after the reboot) of the slot RAUC made primary;
/// `GetPrimary` answers with the slot's name (`rootfs.1`).
async fn primary_bootname(rauc: &InstallerProxy<'_>) -> zbus::Result<String> {
    let primary = rauc.get_primary().await?;
    Ok(rauc::slots(rauc)
        .await?
        .into_iter()
        .find(|s| s.name == primary)
        .map_or(primary, |s| s.bootname))
}

fn rauc_message(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(_, Some(msg), _) => msg.clone(),
        other => other.to_string(),
    }
}

/// Refuse before downloading what the file system cannot hold (plus a margin).
fn check_space(dir: &Path, need: u64, margin: u64) -> Result<(), ActionError> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(|e| {
        ActionError::Refused(format!("cannot read free space of {}: {e}", dir.display()))
    })?;
    #[allow(clippy::useless_conversion)]
    let free = u64::from(st.blocks_available()).saturating_mul(u64::from(st.fragment_size()));
    if free < need.saturating_add(margin) {
        return Err(ActionError::Refused(format!(
            "not enough space in {}: {need} bytes needed plus {margin} kept free, {free} free",
            dir.display()
        )));
    }
    Ok(())
}
