//! smartpos-paymentd: wires the payment library to the system bus, the scanner and systemd.
//!
//! Exit codes: 0 clean stop, 78 bad configuration (daemon or merchant file), 74 journal
//! cannot be opened, 69 bus unavailable or name taken, 70 internal error.

mod config;
mod diagnose;
mod install;
mod netview;
mod scan;
mod service;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use smartpos_payment::PaymentService;
use smartpos_runtime::{
    auth::{Policy, Readers},
    bus,
    config::ConfigError,
    exit::Exit,
    notify,
    strict::Strict,
};

use crate::scan::ScanLink;
use crate::service::{Hints, Objects, PaymentIface, Updates, announce};

const DAEMON: &str = "smartpos-paymentd";

/// The smartpos payment daemon (org.smartpos.Payment1).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file [default: /etc/smartpos/smartpos-paymentd.toml].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the configuration (and the merchant configuration) and exit.
    #[arg(long)]
    check_config: bool,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Merchant(String),
    #[error("cannot open the payment journal: {0}")]
    Journal(String),
    #[error(transparent)]
    Bus(#[from] bus::BusError),
    #[error("bus error: {0}")]
    Zbus(#[from] zbus::Error),
}

impl smartpos_runtime::Failure for Error {
    fn exit(&self) -> Exit {
        match self {
            Error::Config(_) | Error::Merchant(_) => Exit::Config,
            Error::Journal(_) => Exit::IoErr,
            Error::Bus(_) => Exit::Unavailable,
            Error::Zbus(_) => Exit::Software,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    smartpos_runtime::logging::init(DAEMON);
    // One TLS provider for the process: ring (docs/ARCHITECTURE.md, "TLS").
    let _ = rustls::crypto::ring::default_provider().install_default();
    smartpos_runtime::run_daemon(DAEMON, run(args))
}

async fn run(args: Args) -> Result<(), Error> {
    let (cfg, from): (config::Config, _) =
        smartpos_runtime::config::load(DAEMON, args.config.as_deref())?;
    cfg.validate()
        .map_err(|m| ConfigError::semantic(from.as_deref(), m))?;
    let merchant_error = |e: smartpos_payment::config::ConfigError| {
        Error::Merchant(format!("{}: {e}", cfg.merchant_config.display()))
    };
    let merchant =
        smartpos_payment::config::Config::load(&cfg.merchant_config).map_err(merchant_error)?;
    // Every CA, key and certificate the merchant config names, read and parsed as the
    // connectors will: a bad one is a configuration error (78), never a journal error.
    smartpos_payment::connector::check_files(&merchant).map_err(merchant_error)?;
    if args.check_config {
        println!(
            "configuration OK (merchant config version {})",
            merchant.version
        );
        return Ok(());
    }
    let svc = PaymentService::open(merchant, &cfg.journal).map_err(|e| match e {
        smartpos_payment::service::StartError::Config(e) => merchant_error(e),
        smartpos_payment::service::StartError::Journal(e) => Error::Journal(e.to_string()),
    })?;
    tracing::info!(journal = %cfg.journal.display(), terminal = %svc.config().terminal_id, "journal open");

    diagnose::init(
        svc.subscribe(),
        std::time::Duration::from_secs(cfg.max_config_age_s),
    );
    let hints: Hints = Hints::default();
    let policy = Policy::new(&cfg.auth.operator_groups);
    let objects = Objects::new(
        svc.clone(),
        hints.clone(),
        Readers::new(policy.clone(), "sales"),
    );
    let conn = bus::system_builder()?
        .build()
        .await
        .map_err(|e| bus::build_error(DAEMON, e))?;
    let scan = ScanLink::new(&conn, cfg.scanner).await;
    // A sale that never left the terminal carries netd's diagnosis of its path, when netd
    // is running; without it, sales go on with the plain explanation.
    svc.set_network_view(std::sync::Arc::new(netview::NetdView::new(conn.clone())));
    let update_uids = user_ids(&cfg.auth.update_users);
    let updates = Updates {
        installers: Policy::new(&[]).with_uids(update_uids.iter().copied()),
        appliers: Policy::new(&cfg.auth.technician_groups).with_uids(update_uids),
        window: install::Window::new(
            svc.clone(),
            std::time::Duration::from_secs(cfg.install_window_max_s),
        ),
        merchant_config: cfg.merchant_config.clone(),
        key: cfg.merchant_config_key.clone(),
    };
    let iface = PaymentIface {
        svc: svc.clone(),
        policy,
        scan: scan.clone(),
        hints: hints.clone(),
        objects: objects.clone(),
        scan_timeout_ms: cfg.scan_timeout_ms,
        updates,
    };
    let server = conn.object_server();
    server
        .at(smartpos_bus::payment::PATH, Strict::new(iface))
        .await?;
    // Recent sales are on the bus from the start, so an app that comes back finds them.
    for t in svc
        .list_recent(200)
        .map_err(|e| Error::Journal(e.to_string()))?
        .into_iter()
        .rev()
    {
        objects.register(server, t.id).await?;
    }
    let name = smartpos_bus::payment::INTERFACE;
    conn.request_name(name)
        .await
        .map_err(|e| bus::build_error(name, e))?;

    // Announce every state change on the bus.
    let mut events = svc.subscribe();
    let (ev_conn, ev_objects, ev_scan) = (conn.clone(), objects.clone(), scan.clone());
    let ev_svc = svc.clone();
    let rearm_ms = cfg.scan_timeout_ms;
    tokio::spawn(async move {
        let mut in_flight = ev_svc.sales_in_flight().await.unwrap_or(0);
        loop {
            match events.recv().await {
                Ok(ev) => {
                    // SalesInFlight, for the update service waiting for a quiet till.
                    if let Ok(n) = ev_svc.sales_in_flight().await
                        && n != in_flight
                    {
                        in_flight = n;
                        let changed = [("SalesInFlight", zbus::zvariant::Value::from(n))];
                        if let Err(e) =
                            service::service_properties_changed(&ev_conn, changed.into()).await
                        {
                            tracing::warn!("cannot announce SalesInFlight: {e}");
                        }
                    }
                    ev_objects.views.invalidate(ev.tx);
                    let _ = ev_objects.register(ev_conn.object_server(), ev.tx).await;
                    // The payment provably never left the terminal (no network): the sale
                    // waits for a code again, so the cashier can simply scan again.
                    if ev.from == Some(smartpos_payment::SaleState::Submitted)
                        && ev.to == smartpos_payment::SaleState::AwaitingCode
                        && ev_scan.available()
                        && let Err(why) = ev_scan.arm(ev.tx, rearm_ms).await
                    {
                        service::lock(&ev_objects.hints).insert(ev.tx, why);
                    }
                    service::settle_hint(&ev_objects.hints, ev.tx, ev.to);
                    if ev.to.is_terminal() {
                        tracing::info!(tx = %ev.tx, state = ev.to.as_str(), "sale settled");
                    }
                    if let Err(e) = announce(&ev_conn, ev.tx, ev.to.as_str()).await {
                        tracing::warn!("cannot announce {}: {e}", ev.tx);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(
                        "{n} state changes were not announced (clients re-read properties)"
                    );
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    let _listener = scan.spawn_listener(svc.clone(), hints.clone(), conn.clone());
    let _sessions = scan.spawn_session_watch(svc.clone(), hints.clone(), conn.clone());

    // Finish what a crash or reboot left open, then keep sweeping.
    match svc.resolve_all().await {
        Ok(r) => tracing::info!(
            examined = r.examined,
            finished = r.finished,
            still_open = r.still_open,
            "start-up resolver pass"
        ),
        Err(e) => tracing::warn!("start-up resolver pass failed: {e}"),
    }
    let _resolver = svc.spawn_resolver();

    // A new merchant configuration comes only through ApplyMerchantConfig (signed); there
    // is no SIGHUP reload of the file (see crates/payment/README.md, "Hot reload").
    notify::ready();
    notify::status("ready");
    // Alive means the journal answers: a thread stuck holding it (a wedged commit) stops
    // every sale, so it stops the pings too and systemd restarts the daemon, which resumes
    // the open sales from the journal.
    let probe = svc.clone();
    let _watchdog = notify::spawn_watchdog_with(move || {
        let svc = probe.clone();
        async move {
            if let Err(e) = svc.journal_alive().await {
                // An error is still an answer: the loop runs, and the sales report it.
                tracing::warn!("watchdog: the journal answered with an error: {e}");
            }
        }
    });
    tracing::info!("serving {name}");
    smartpos_runtime::shutdown_signal().await;
    notify::stopping();
    tracing::info!("stopped; unfinished sales are in the journal and resume at next start");
    Ok(())
}

/// The uids of these users; a user that does not exist is logged and lets nobody in.
fn user_ids(names: &[String]) -> Vec<u32> {
    names
        .iter()
        .filter_map(|n| match nix::unistd::User::from_name(n) {
            Ok(Some(u)) => Some(u.uid.as_raw()),
            _ => {
                tracing::warn!("user {n:?} does not exist; it cannot hold the install window");
                None
            }
        })
        .collect()
}
