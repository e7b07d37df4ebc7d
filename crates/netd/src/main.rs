//! smartpos-netd: wires the network library to the system bus and to systemd.
//!
//! Exit codes: 0 clean stop, 78 bad configuration, 69 bus unavailable or name taken,
//! 70 internal error (see `smartpos_runtime::exit`).

mod config;
mod endpoints;
mod probes;
mod service;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use smartpos_net::links::Sources;
use smartpos_net::monitor::{Limits, Monitor};
use smartpos_net::targets::{self, Target};
use smartpos_runtime::strict::Strict;
use smartpos_runtime::{auth::Policy, bus, config::ConfigError, exit::Exit, notify};
use zbus::object_server::InterfaceRef;

use crate::service::{NetworkService, Shared};

const DAEMON: &str = "smartpos-netd";

/// The smartpos network daemon (org.smartpos.Network1).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file [default: /etc/smartpos/smartpos-netd.toml].
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

/// The endpoints: each acquirer path of the merchant configuration, the fleet server of the
/// update daemon's configuration, then the configured extra ones (one named "fleet" instead
/// of the update daemon's).
fn endpoints(cfg: &config::Config, from: Option<&std::path::Path>) -> Result<Vec<Target>, Error> {
    let mut out = match targets::from_merchant_config(&cfg.merchant_config) {
        Ok(t) => t,
        Err(targets::TargetError::Read { path, source })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            tracing::warn!(
                "no merchant configuration at {}: no acquirer paths to probe",
                path.display()
            );
            Vec::new()
        }
        Err(e) => return Err(ConfigError::semantic(from, e.to_string()).into()),
    };
    if !cfg.endpoint.iter().any(|e| e.name == "fleet") {
        out.extend(fleet_server(&cfg.update_config));
    }
    for e in &cfg.endpoint {
        out.push(Target {
            name: e.name.clone(),
            kind: e.kind.clone(),
            url: e.url.clone(),
            ca_file: e.ca_file.clone(),
            client_cert_file: e.client_cert_file.clone(),
        });
    }
    Ok(out)
}

/// The update daemon's fleet server. That file is the update daemon's to validate: one
/// netd cannot read is logged and leaves the fleet server unwatched, it does not stop netd.
fn fleet_server(update_config: &std::path::Path) -> Option<Target> {
    match targets::from_update_config(update_config) {
        Ok(Some(t)) => Some(t),
        Ok(None) => {
            tracing::info!(
                "{}: no fleet server (local installs only)",
                update_config.display()
            );
            None
        }
        Err(targets::TargetError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            tracing::info!(
                "no update daemon configuration at {}: no fleet server to probe",
                update_config.display()
            );
            None
        }
        Err(e) => {
            tracing::warn!("the fleet server is not probed: {e}");
            None
        }
    }
}

async fn run(args: Args) -> Result<(), Error> {
    let (cfg, from): (config::Config, _) =
        smartpos_runtime::config::load(DAEMON, args.config.as_deref())?;
    cfg.validate()
        .map_err(|m| ConfigError::semantic(from.as_deref(), m))?;
    let targets = endpoints(&cfg, from.as_deref())?;
    if args.check_config {
        println!(
            "{}: configuration OK ({} endpoints)",
            from.as_deref()
                .map_or("defaults".into(), |p| p.display().to_string()),
            targets.len()
        );
        return Ok(());
    }
    match &from {
        Some(p) => tracing::info!("configuration from {}", p.display()),
        None => tracing::info!("no configuration file: using defaults"),
    }

    let resolvers = if cfg.resolvers.is_empty() {
        smartpos_net::dns::nameservers(&cfg.resolv_conf)
    } else {
        cfg.resolvers
            .iter()
            .filter_map(|r| config::parse_resolver(r).ok())
            .collect()
    };
    let dns_name = targets
        .iter()
        .map(Target::host)
        .find(|h| h.parse::<std::net::IpAddr>().is_err())
        .unwrap_or_else(|| ".".to_owned());
    let mut cert_files = Vec::new();
    for t in &targets {
        cert_files.push((t.name.clone(), "ca".to_owned(), t.ca_file.clone()));
        if let Some(c) = &t.client_cert_file {
            cert_files.push((t.name.clone(), "client".to_owned(), c.clone()));
        }
    }
    let s = &cfg.schedule;
    let settings = probes::Settings {
        sources: Sources::default(),
        timeout: Duration::from_millis(s.timeout_ms),
        endpoint_interval: Duration::from_secs(s.endpoint_interval_s),
        gateway_interval: Duration::from_secs(s.gateway_interval_s),
        resolver_interval: Duration::from_secs(s.resolver_interval_s),
        cert_interval: Duration::from_secs(s.cert_interval_s),
        link_poll: Duration::from_millis(s.link_poll_ms),
        jitter_percent: s.jitter_percent,
        cert_warn: Duration::from_secs(cfg.limits.cert_warn_days * 86_400),
        dns_name,
        cert_files,
    };
    tracing::info!(
        endpoints = %targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(","),
        resolvers = resolvers.len(),
        "probing"
    );
    let limits = Limits {
        window: cfg.limits.window,
        clock_warn: Duration::from_secs(cfg.limits.clock_warn_s),
        clock_fail: Duration::from_secs(cfg.limits.clock_fail_s),
    };
    let shared = Shared::new(Monitor::new(limits, targets, resolvers), settings);
    // Links and certificates are known before the name is taken, so the first read of the
    // properties already shows them.
    probes::poll_links(&shared);
    probes::check_certs(&shared);

    let probe_uids = cfg.auth.probe_users.iter().filter_map(|u| uid_of(u));
    let service = NetworkService {
        shared: shared.clone(),
        probers: Policy::new(&cfg.auth.probe_groups).with_uids(probe_uids),
        min_interval: Duration::from_millis(cfg.limits.probe_min_interval_ms),
    };
    let name = smartpos_bus::network::INTERFACE;
    let conn = bus::system_builder()?
        .name(name)?
        .serve_at(smartpos_bus::network::PATH, Strict::new(service))?
        .build()
        .await
        .map_err(|e| bus::build_error(name, e))?;
    let iface: InterfaceRef<Strict<NetworkService>> = conn
        .object_server()
        .interface(smartpos_bus::network::PATH)
        .await?;
    notify::ready();
    notify::status("ready");
    let _watchdog = notify::spawn_watchdog();
    tracing::info!("serving {name}");

    probes::spawn_schedule(&shared);
    spawn_ntp(conn.clone(), shared.clone());

    let mut published = Published::default();
    let shutdown = smartpos_runtime::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = shared.changed.notified() => {
                // A signal that cannot be sent (the bus is briefly full) is not a reason to
                // stop probing: say so and carry on.
                if let Err(e) = published.update(&iface).await {
                    tracing::warn!("cannot announce the network state: {e}");
                }
            }
        }
    }
    notify::stopping();
    tracing::info!("stopped");
    Ok(())
}

/// Read timedated's NTPSynchronized every few minutes. Where there is no timedated (a
/// private test bus, a minimal image) the state stays unknown.
fn spawn_ntp(conn: zbus::Connection, shared: Arc<Shared>) {
    tokio::spawn(async move {
        loop {
            let synced = async {
                let p: zbus::Proxy<'_> = zbus::proxy::Builder::new(&conn)
                    .destination("org.freedesktop.timedate1")?
                    .path("/org/freedesktop/timedate1")?
                    .interface("org.freedesktop.timedate1")?
                    .cache_properties(zbus::proxy::CacheProperties::No)
                    .build()
                    .await?;
                p.get_property::<bool>("NTPSynchronized").await
            };
            let synced = tokio::time::timeout(Duration::from_secs(5), synced)
                .await
                .ok()
                .and_then(Result::ok);
            shared.monitor().set_ntp(synced);
            shared.changed.notify_one();
            tokio::time::sleep(Duration::from_secs(300)).await;
        }
    });
}

fn uid_of(user: &str) -> Option<u32> {
    match nix::unistd::User::from_name(user) {
        Ok(Some(u)) => Some(u.uid.as_raw()),
        _ => None,
    }
}

type PathRow = (String, String, bool, String, String, String);
type LinkRow = (String, String, bool, Vec<String>, Vec<String>);

/// What was last announced with PropertiesChanged, so only changes are signalled.
#[derive(Default)]
struct Published {
    online: Option<bool>,
    paths: Vec<PathRow>,
    links: Vec<LinkRow>,
    carrying: (String, String, String),
    status: String,
}

impl Published {
    async fn update(&mut self, iface: &InterfaceRef<Strict<NetworkService>>) -> zbus::Result<()> {
        let guard = iface.get().await;
        let svc = guard.inner();
        let e = iface.signal_emitter();
        let st = svc.shared.status();
        if self.online != Some(st.online) {
            tracing::info!(online = st.online, "online changed");
            self.online = Some(st.online);
            svc.online_changed(e).await?;
        }
        let paths = service::paths(&st);
        if paths != self.paths {
            for p in &paths {
                if !self.paths.contains(p) {
                    tracing::info!(path = %p.0, online = p.2, code = %p.3, "{}", p.4);
                }
            }
            self.paths = paths;
            svc.paths_changed(e).await?;
        }
        let links = service::links(&st);
        if links != self.links {
            self.links = links;
            svc.links_changed(e).await?;
        }
        let carrying = service::carrying(&st);
        if carrying != self.carrying {
            self.carrying = carrying;
            svc.carrying_changed(e).await?;
        }
        let status = serde_json::to_string(&st).unwrap_or_default();
        if status != self.status {
            self.status = status;
            svc.status_changed(e).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, netd_toml: &str) -> config::Config {
        let mut cfg: config::Config = toml::from_str(netd_toml).unwrap();
        cfg.merchant_config = dir.join("merchant.toml");
        cfg.update_config = dir.join("smartpos-otad.toml");
        cfg
    }

    #[test]
    fn the_fleet_server_is_the_update_daemons_unless_netd_names_its_own() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("smartpos-otad.toml"),
            "[server]\nurl = \"https://fleet.example.com\"\nca_file = \"/etc/smartpos/update-ca.pem\"\ncontroller_id = \"T0001\"\n",
        )
        .unwrap();
        // No merchant configuration yet (a terminal not provisioned): the fleet server only.
        let t = endpoints(&config(d.path(), ""), None).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].name.as_str(), t[0].kind.as_str()), ("fleet", "fleet"));
        assert_eq!(t[0].url, "https://fleet.example.com");

        // A technician points netd at another fleet address: that one, once.
        let own = "[[endpoint]]\nname = \"fleet\"\nurl = \"https://10.0.0.9\"\nca_file = \"/etc/smartpos/lab-ca.pem\"\n";
        let t = endpoints(&config(d.path(), own), None).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].url, "https://10.0.0.9");

        // No update daemon configuration, or one with no server: no fleet server.
        std::fs::remove_file(d.path().join("smartpos-otad.toml")).unwrap();
        assert!(endpoints(&config(d.path(), ""), None).unwrap().is_empty());
        std::fs::write(
            d.path().join("smartpos-otad.toml"),
            "[device]\nhw_boardname = \"a\"\n",
        )
        .unwrap();
        assert!(endpoints(&config(d.path(), ""), None).unwrap().is_empty());
    }
}
