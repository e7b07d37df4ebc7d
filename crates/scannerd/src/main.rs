//! smartpos-scannerd: wires the scanner library to the system bus and to systemd.
//!
//! Exit codes: 0 clean stop, 78 bad configuration, 69 bus unavailable or name taken,
//! 70 internal error (see `smartpos_runtime::exit`).

mod config;
mod diagnose;
mod pipeline;
mod service;
mod sources;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use smartpos_runtime::{auth::Policy, bus, config::ConfigError, exit::Exit, notify};
use zbus::object_server::InterfaceRef;

use crate::service::{ScannerService, Shared};

const DAEMON: &str = "smartpos-scannerd";

/// The smartpos scanner daemon (org.smartpos.Scanner1).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file [default: /etc/smartpos/smartpos-scannerd.toml].
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
    #[error("{0}")]
    Source(String),
    #[error("bus error: {0}")]
    Zbus(#[from] zbus::Error),
}

impl smartpos_runtime::Failure for Error {
    fn exit(&self) -> Exit {
        match self {
            Error::Config(_) => Exit::Config,
            Error::Bus(_) => Exit::Unavailable,
            Error::Source(_) => Exit::Unavailable,
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
    let (cfg, from): (config::Config, _) =
        smartpos_runtime::config::load(DAEMON, args.config.as_deref())?;
    cfg.validate()
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

    let shared = Arc::new(Shared::default());
    let (tx, mut rx) = tokio::sync::mpsc::channel(service::CODE_QUEUE);
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();

    let camera = sources::camera(&cfg.camera).map_err(Error::Source)?;
    let has_camera = camera.is_some();
    if let Some(cam) = camera {
        let (s, t, st) = (shared.clone(), tx.clone(), stop.clone());
        threads.push(spawn("camera", move || {
            pipeline::run_camera(cam.source, cam.status, s, t, st)
        })?);
    }
    for src in sources::hid(&cfg.hid).map_err(Error::Source)? {
        let (s, t, st) = (shared.clone(), tx.clone(), stop.clone());
        threads.push(spawn("hid", move || {
            pipeline::run_codes(src.source, src.devices, s, t, st)
        })?);
    }
    drop(tx);

    let operator_uids = cfg.auth.operator_users.iter().filter_map(|u| uid_of(u));
    let service = ScannerService {
        shared: shared.clone(),
        operators: Policy::new(&cfg.auth.operator_groups).with_uids(operator_uids),
        technicians: Policy::new(&cfg.auth.technician_groups),
        default_timeout_ms: cfg.scan.default_timeout_ms,
        duplicate_window_ms: cfg.scan.duplicate_window_ms,
        has_camera,
    };
    let name = smartpos_bus::scanner::INTERFACE;
    let conn = bus::system_builder()?
        .name(name)?
        .serve_at(smartpos_bus::scanner::PATH, service)?
        .build()
        .await
        .map_err(|e| bus::build_error(name, e))?;
    let iface: InterfaceRef<ScannerService> = conn
        .object_server()
        .interface(smartpos_bus::scanner::PATH)
        .await?;
    notify::ready();
    notify::status("ready");
    let _watchdog = notify::spawn_watchdog();
    tracing::info!("serving {name} (camera: {has_camera})");

    let window = Duration::from_millis(u64::from(cfg.scan.duplicate_window_ms));
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut published = Published::default();
    let shutdown = smartpos_runtime::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(code) = rx.recv() => {
                service::deliver(&shared, &code, window, |session| {
                    ScannerService::code_scanned(
                        iface.signal_emitter(), &code.text, &code.symbology, &code.source,
                        code.monotonic_us, code.wall_us, session,
                    )
                }).await;
            }
            _ = tick.tick() => {
                for session in shared.expire() {
                    tracing::info!(session, "scan session timed out");
                    if let Err(e) = ScannerService::session_ended(iface.signal_emitter(), session, "timeout").await {
                        tracing::warn!(session, "cannot announce the end of the session: {e}");
                    }
                }
                // A signal that cannot be sent (the bus is briefly full) is not a reason to
                // stop scanning: say so and carry on.
                if let Err(e) = published.update(&iface).await {
                    tracing::warn!("cannot announce health: {e}");
                }
            }
        }
    }
    notify::stopping();
    stop.store(true, Ordering::Relaxed);
    // Source threads notice `stop` within their poll interval; don't wait on a wedged device.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    for t in threads {
        while !t.is_finished() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tracing::info!("stopped");
    Ok(())
}

fn spawn(
    what: &str,
    f: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, Error> {
    std::thread::Builder::new()
        .name(format!("scannerd-{what}"))
        .spawn(f)
        .map_err(|e| Error::Source(format!("cannot start the {what} thread: {e}")))
}

fn uid_of(user: &str) -> Option<u32> {
    match nix::unistd::User::from_name(user) {
        Ok(Some(u)) => Some(u.uid.as_raw()),
        _ => None,
    }
}

/// What was last announced with PropertiesChanged, so only changes are signalled.
#[derive(Default, PartialEq)]
struct Published {
    state: String,
    sources: Vec<(String, String, String)>,
    verdict: String,
    advice: String,
    attempts: u64,
    successes: u64,
    fps_tenths: i64,
}

impl Published {
    async fn update(&mut self, iface: &InterfaceRef<ScannerService>) -> zbus::Result<()> {
        let svc = iface.get().await;
        let e = iface.signal_emitter();
        let state = svc.state();
        if state != self.state {
            self.state = state;
            svc.state_changed(e).await?;
        }
        let sources = svc.sources();
        if sources != self.sources {
            self.sources = sources;
            svc.sources_changed(e).await?;
        }
        let verdict = svc.verdict();
        if verdict != self.verdict {
            tracing::info!("camera verdict: {verdict}");
            self.verdict = verdict;
            svc.verdict_changed(e).await?;
            svc.advice_changed(e).await?;
        }
        let (attempts, successes) = (svc.decode_attempts(), svc.decode_successes());
        if (attempts, successes) != (self.attempts, self.successes) {
            (self.attempts, self.successes) = (attempts, successes);
            svc.decode_attempts_changed(e).await?;
            svc.decode_successes_changed(e).await?;
            svc.brightness_changed(e).await?;
            svc.contrast_changed(e).await?;
            svc.sharpness_changed(e).await?;
        }
        #[allow(clippy::cast_possible_truncation)]
        let fps = (svc.frames_per_second() * 10.0).round() as i64;
        if fps != self.fps_tenths {
            self.fps_tenths = fps;
            svc.frames_per_second_changed(e).await?;
        }
        Ok(())
    }
}
