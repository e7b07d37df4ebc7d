//! Endpoint probes through the shared transport (`smartpos-transport`): one `HEAD` of the
//! base URL over a fresh connection, with the same pinned CA, TLS versions and error classes
//! a sale uses, so what netd reports is what a sale would meet.

use std::time::{Duration, SystemTime};

use smartpos_net::monitor::{EndpointResult, Timings};
use smartpos_net::stats::ProbeError;
use smartpos_transport::{Timeouts, TlsSettings, Transport};

use crate::service::Shared;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Probe the endpoint `name` and record what was seen.
pub async fn probe(shared: &Shared, name: &str) {
    let Some(target) = shared.monitor().targets().find(|t| t.name == name).cloned() else {
        return;
    };
    let t = shared.settings.timeout;
    let timeouts = Timeouts {
        connect: t,
        handshake: t,
        read: t,
        ..Timeouts::default()
    };
    // Built anew for each probe: it reads the CA file, so a renewed CA is picked up.
    let result = match Transport::new(&target.url, &TlsSettings::new(&target.ca_file), &timeouts) {
        Err(e) => EndpointResult {
            at: SystemTime::now(),
            timings: Timings::default(),
            server_date: None,
            error: Some(ProbeError {
                code: "config".into(),
                detail: e.to_string(),
            }),
        },
        Ok(transport) => {
            let r = transport.probe().await;
            EndpointResult {
                at: SystemTime::now(),
                timings: Timings {
                    dns_ms: r.dns.map(ms),
                    connect_ms: (!r.connect.is_zero()).then(|| ms(r.connect)),
                    handshake_ms: (!r.handshake.is_zero()).then(|| ms(r.handshake)),
                    http_status: r.http_status,
                    total_ms: ms(r.total),
                    reused: r.reused,
                },
                server_date: r.date_header,
                error: r.error.map(|class| ProbeError {
                    code: class.code().to_owned(),
                    detail: r.detail.clone().unwrap_or_default(),
                }),
            }
        }
    };
    match &result.error {
        Some(e) => tracing::info!(endpoint = name, code = %e.code, "probe failed: {}", e.detail),
        None => tracing::debug!(
            endpoint = name,
            total_ms = result.timings.total_ms,
            "probe ok"
        ),
    }
    shared.monitor().endpoint_probed(name, result);
}
