//! The probes and their schedule: links polled, the gateway pinged, each resolver asked,
//! each endpoint probed through the shared transport, certificates re-read, timedated's
//! NTP state read. Each kind runs in a task of its own on a jittered interval; `Probe` runs
//! the same functions on demand.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use smartpos_net::links::{self, Sources};
use smartpos_net::ping::{self, PingError};
use smartpos_net::{certs, dns};

use crate::endpoints;
use crate::service::Shared;

/// What the probes need from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sources: Sources,
    pub timeout: Duration,
    pub endpoint_interval: Duration,
    pub gateway_interval: Duration,
    pub resolver_interval: Duration,
    pub cert_interval: Duration,
    pub link_poll: Duration,
    pub jitter_percent: u8,
    pub cert_warn: Duration,
    /// The name resolvers are asked about (an endpoint's host).
    pub dns_name: String,
    /// The files whose certificates are checked: (owner, role, file).
    pub cert_files: Vec<(String, String, PathBuf)>,
}

/// Every target `Probe` accepts: the endpoints' names, "gateway", "resolvers".
pub fn names(shared: &Shared) -> Vec<String> {
    let m = shared.monitor();
    let mut out: Vec<String> = m.targets().map(|t| t.name.clone()).collect();
    out.push("gateway".into());
    out.push("resolvers".into());
    out
}

/// Probe the named targets now, all at once.
pub async fn run(shared: &Arc<Shared>, names: &[String]) {
    poll_links(shared);
    let mut jobs = Vec::new();
    for n in names {
        let s = shared.clone();
        let n = n.clone();
        jobs.push(tokio::spawn(async move {
            match n.as_str() {
                "gateway" => gateway(&s).await,
                "resolvers" => resolvers(&s).await,
                name => endpoints::probe(&s, name).await,
            }
        }));
    }
    for j in jobs {
        let _ = j.await;
    }
}

/// Read links and routes; announce a change.
pub fn poll_links(shared: &Shared) -> bool {
    let l = links::read(&shared.settings.sources);
    let changed = shared.monitor().set_links(l);
    if changed {
        let m = shared.monitor();
        match m.links().carrying() {
            Some(r) => tracing::info!(
                interface = %r.interface, gateway = %r.gateway, "links changed; traffic goes out on {}", r.interface
            ),
            None => tracing::warn!("links changed; no link carries a default route"),
        }
        drop(m);
        shared.changed.notify_one();
    }
    changed
}

/// Ping the IPv4 gateway and the IPv6 one, each when there is one.
pub async fn gateway(shared: &Shared) {
    tokio::join!(gateway4(shared), gateway6(shared));
}

async fn gateway4(shared: &Shared) {
    let Some(gw) = shared.monitor().gateway().map(str::to_owned) else {
        return;
    };
    let Ok(addr) = gw.parse::<Ipv4Addr>() else {
        return;
    };
    let seq: u16 = rand::random();
    let r = ping::ping(addr, seq, shared.settings.timeout).await;
    let now = SystemTime::now();
    let mut m = shared.monitor();
    match r {
        Ok(rtt) => m.gateway_probed(now, Ok(rtt)),
        Err(PingError::Probe(e)) => m.gateway_probed(now, Err(e)),
        Err(e @ PingError::NotPermitted(_)) => m.gateway_unmeasurable(e.to_string()),
    }
}

async fn gateway6(shared: &Shared) {
    let Some((addr, interface)) = shared
        .monitor()
        .gateway6()
        .and_then(|(g, i)| Some((g.parse::<Ipv6Addr>().ok()?, i.to_owned())))
    else {
        return;
    };
    // The interface's index scopes a link-local router address; sysfs has it (no netlink).
    let index = std::fs::read_to_string(
        shared
            .settings
            .sources
            .sys_class_net
            .join(&interface)
            .join("ifindex"),
    )
    .ok()
    .and_then(|s| s.trim().parse::<u32>().ok())
    .unwrap_or(0);
    let seq: u16 = rand::random();
    let r = ping::ping6(addr, index, seq, shared.settings.timeout).await;
    let now = SystemTime::now();
    let mut m = shared.monitor();
    match r {
        Ok(rtt) => m.gateway6_probed(now, Ok(rtt)),
        Err(PingError::Probe(e)) => m.gateway6_probed(now, Err(e)),
        Err(e @ PingError::NotPermitted(_)) => m.gateway_unmeasurable(e.to_string()),
    }
}

pub async fn resolvers(shared: &Shared) {
    let servers: Vec<SocketAddr> = shared.monitor().resolvers();
    for server in servers {
        let r = dns::probe(server, &shared.settings.dns_name, shared.settings.timeout).await;
        if let Err(e) = &r {
            tracing::info!("resolver {}: {}", dns::show(server), e.detail);
        }
        shared
            .monitor()
            .resolver_probed(server, SystemTime::now(), r);
    }
}

pub fn check_certs(shared: &Shared) {
    let now = SystemTime::now();
    let all: Vec<_> = shared
        .settings
        .cert_files
        .iter()
        .flat_map(|(owner, role, file)| {
            certs::check(owner, role, file, now, shared.settings.cert_warn)
        })
        .collect();
    for c in &all {
        if c.state != certs::CertState::Ok {
            tracing::warn!(owner = %c.owner, role = %c.role, file = %c.file.display(), state = ?c.state, days_left = ?c.days_left, "certificate needs attention");
        }
    }
    shared.monitor().set_certs(all);
}

/// `interval` ± jitter, drawn anew each time.
pub fn jittered(interval: Duration, percent: u8) -> Duration {
    if percent == 0 {
        return interval;
    }
    let f = f64::from(percent) / 100.0;
    let k = 1.0 + rand::random_range(-f..=f);
    interval.mul_f64(k)
}

/// Start the scheduled probes; each task ends with the runtime.
pub fn spawn_schedule(shared: &Arc<Shared>) {
    let s = shared.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(s.settings.link_poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if poll_links(&s) {
                // A new route may mean a new gateway: ping it now rather than in 30 s.
                gateway(&s).await;
                s.changed.notify_one();
            }
        }
    });
    let s = shared.clone();
    tokio::spawn(async move {
        loop {
            gateway(&s).await;
            s.changed.notify_one();
            tokio::time::sleep(jittered(
                s.settings.gateway_interval,
                s.settings.jitter_percent,
            ))
            .await;
        }
    });
    let s = shared.clone();
    tokio::spawn(async move {
        loop {
            resolvers(&s).await;
            s.changed.notify_one();
            tokio::time::sleep(jittered(
                s.settings.resolver_interval,
                s.settings.jitter_percent,
            ))
            .await;
        }
    });
    let s = shared.clone();
    tokio::spawn(async move {
        loop {
            check_certs(&s);
            s.changed.notify_one();
            tokio::time::sleep(s.settings.cert_interval).await;
        }
    });
    let names: Vec<String> = shared.monitor().targets().map(|t| t.name.clone()).collect();
    for name in names {
        let s = shared.clone();
        tokio::spawn(async move {
            // Spread the first probes over the first interval's jitter, too.
            tokio::time::sleep(jittered(Duration::from_millis(500), 100)).await;
            loop {
                endpoints::probe(&s, &name).await;
                s.changed.notify_one();
                tokio::time::sleep(jittered(
                    s.settings.endpoint_interval,
                    s.settings.jitter_percent,
                ))
                .await;
            }
        });
    }
}
