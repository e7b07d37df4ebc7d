//! smartpos-otad: wires the update engine (`smartpos-update`) to the system bus and to
//! systemd.
//!
//! Exit codes: 0 clean stop, 78 bad configuration, 69 bus unavailable or name taken,
//! 70 internal error (see `smartpos_runtime::exit`).

mod service;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use smartpos_runtime::{
    auth::Policy, bus, config::ConfigError, exit::Exit, notify, strict::Strict,
};
use smartpos_update::{Engine, Status, config::Config};
use zbus::object_server::InterfaceRef;

use crate::service::UpdateService;

const DAEMON: &str = "smartpos-otad";
const PATH: &str = smartpos_bus::update::PATH;
const NAME: &str = smartpos_bus::update::INTERFACE;

/// The smartpos update daemon (org.smartpos.Update1).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file [default: /etc/smartpos/smartpos-otad.toml].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Bus(#[from] bus::BusError),
    #[error("bus error: {0}")]
    Zbus(#[from] zbus::Error),
}

impl smartpos_runtime::Failure for Error {
    fn exit(&self) -> Exit {
        match self {
            Error::Config(_) => Exit::Config,
            Error::Bus(_) => Exit::Unavailable,
            Error::Zbus(_) => Exit::Software,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    smartpos_runtime::logging::init(DAEMON);
    smartpos_runtime::run_daemon(DAEMON, run(args))
}

async fn run(args: Args) -> Result<(), Error> {
    let (cfg, from): (Config, _) = smartpos_runtime::config::load(DAEMON, args.config.as_deref())?;
    cfg.validate()
        .map_err(|m| ConfigError::semantic(from.as_deref(), m))?;
    let conn = bus::system_builder()?
        .build()
        .await
        .map_err(|e| bus::build_error(DAEMON, e))?;
    let (status_tx, status_rx) = tokio::sync::watch::channel(Status::default());
    // The CA and token files are read here, so --check-config finds a bad one too.
    let engine = Engine::new(cfg.clone(), conn.clone(), status_tx)
        .map_err(|m| ConfigError::semantic(from.as_deref(), m))?;
    if args.check_config {
        println!(
            "{}: configuration OK",
            from.as_deref()
                .map_or("defaults".into(), |p| p.display().to_string())
        );
        return Ok(());
    }
    match &from {
        Some(p) => tracing::info!("configuration from {}", p.display()),
        None => tracing::info!("no configuration file: using defaults"),
    }
    if cfg.server.url.is_empty() {
        tracing::info!("no fleet server configured: only local installs");
    }

    let (cmd_tx, cmd_rx) = tokio::sync::mpsc::channel(4);
    let service = UpdateService {
        status: status_rx.clone(),
        commands: cmd_tx,
        technicians: Policy::new(&cfg.auth.technician_groups),
    };
    engine.prime().await;
    conn.object_server().at(PATH, Strict::new(service)).await?;
    conn.request_name(NAME)
        .await
        .map_err(|e| bus::build_error(NAME, e))?;
    let iface: InterfaceRef<Strict<UpdateService>> = conn.object_server().interface(PATH).await?;
    notify::ready();
    notify::status("ready");
    let _watchdog = notify::spawn_watchdog();
    tracing::info!("serving {NAME}");

    let engine = tokio::spawn(engine.run(cmd_rx, smartpos_runtime::shutdown_signal()));
    let mut watch = status_rx;
    let mut published = Status::default();
    let shutdown = smartpos_runtime::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            r = watch.changed() => {
                if r.is_err() {
                    break;
                }
                let now = watch.borrow_and_update().clone();
                if let Err(e) = announce(&iface, &published, &now).await {
                    tracing::warn!("cannot announce the update state: {e}");
                }
                if now.state != published.state {
                    tracing::info!(state = %now.state, step = %now.step, "update state");
                    notify::status(&format!("{}: {}", now.state, now.step));
                }
                published = now;
            }
        }
    }
    notify::stopping();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), engine).await;
    tracing::info!("stopped");
    Ok(())
}

/// PropertiesChanged for what changed since `before`.
async fn announce(
    iface: &InterfaceRef<Strict<UpdateService>>,
    before: &Status,
    now: &Status,
) -> zbus::Result<()> {
    let guard = iface.get().await;
    let svc = guard.inner();
    let e = iface.signal_emitter();
    if now.state != before.state {
        svc.state_changed(e).await?;
    }
    if (now.percent, &now.step) != (before.percent, &before.step) {
        svc.progress_changed(e).await?;
    }
    if now.current != before.current {
        svc.current_version_changed(e).await?;
    }
    if now.pending != before.pending {
        svc.pending_version_changed(e).await?;
    }
    if now.last_error != before.last_error {
        svc.last_error_changed(e).await?;
    }
    if now.action != before.action {
        svc.action_id_changed(e).await?;
    }
    Ok(())
}
