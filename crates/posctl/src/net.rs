//! `posctl net status` and `posctl net probe [ENDPOINT]`: what smartpos-netd knows about
//! links, the gateway, resolvers, each endpoint (latency, loss, last error), the clock and
//! the certificates, and each acquirer path's verdict in the cashier's words.

use std::fmt::Write;

use smartpos_bus::network::NetworkProxy;
use smartpos_net::monitor::{Status, TargetStatus};

use crate::Error;

async fn proxy() -> Result<(zbus::Connection, NetworkProxy<'static>), Error> {
    let conn = smartpos_runtime::bus::connect_system().await?;
    let p = NetworkProxy::new(&conn).await?;
    Ok((conn, p))
}

fn parse(doc: &str) -> Result<Status, Error> {
    serde_json::from_str(doc).map_err(|e| {
        Error::Failed(format!(
            "smartpos-netd sent a status this posctl cannot read: {e}"
        ))
    })
}

pub async fn status(json: bool) -> Result<(), Error> {
    let (_conn, p) = proxy().await?;
    let doc = p.status().await?;
    show(&doc, json)
}

pub async fn probe(endpoint: Option<String>, json: bool) -> Result<(), Error> {
    let (_conn, p) = proxy().await?;
    let doc = p.probe(endpoint.as_deref().unwrap_or("")).await?;
    show(&doc, json)
}

fn show(doc: &str, json: bool) -> Result<(), Error> {
    let st = parse(doc)?;
    if json {
        println!("{doc}");
    } else {
        print!("{}", render(&st));
    }
    Ok(())
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0} ms"))
}

fn target_line(out: &mut String, t: &TargetStatus) {
    let s = &t.summary;
    let last = match (s.last_ok, &s.last_error) {
        (None, _) => "not probed yet".to_owned(),
        (Some(true), _) => "ok".to_owned(),
        (Some(false), Some(e)) => format!("{}: {}", e.code, e.detail),
        (Some(false), None) => "failed".to_owned(),
    };
    let _ = writeln!(
        out,
        "  {:<10} {:<32} p50 {:>7}  p95 {:>7}  loss {:>3.0}% of {:<3} {}{}",
        t.name,
        t.address,
        ms(s.p50_ms),
        ms(s.p95_ms),
        s.loss * 100.0,
        s.probes,
        last,
        if t.note.is_empty() {
            String::new()
        } else {
            format!(" ({})", t.note)
        }
    );
}

pub fn render(st: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Online: {}", if st.online { "yes" } else { "NO" });
    let _ = writeln!(out, "Acquirer paths:");
    if st.paths.is_empty() {
        let _ = writeln!(out, "  (none configured)");
    }
    for p in &st.paths {
        let _ = writeln!(
            out,
            "  {:<10} {:<4} {}",
            p.name,
            if p.online { "up" } else { "DOWN" },
            p.reason_en
        );
        if !p.online {
            let _ = writeln!(out, "  {:<10} {:<4} {}", "", "", p.reason_zh);
        }
    }
    let _ = writeln!(out, "Links:");
    for l in &st.links {
        let carries = st
            .carrying
            .as_ref()
            .filter(|r| r.interface == l.name)
            .map(|r| {
                format!(
                    "  default route ({}) via {}",
                    r.family,
                    if r.gateway.is_empty() {
                        "on-link"
                    } else {
                        &r.gateway
                    }
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<10} {:<8} carrier {:<3} {}{}",
            l.name,
            l.operstate,
            match l.carrier {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            },
            l.ipv4
                .iter()
                .chain(&l.ipv6)
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
            carries
        );
    }
    if st.carrying.is_none() {
        let _ = writeln!(out, "  no link carries a default route");
    }
    let _ = writeln!(out, "Gateway and resolvers:");
    for g in [&st.gateway, &st.gateway6].into_iter().flatten() {
        target_line(&mut out, g);
    }
    for r in &st.resolvers {
        target_line(&mut out, r);
    }
    let _ = writeln!(out, "Endpoints:");
    for e in &st.endpoints {
        target_line(&mut out, e);
        if let Some(t) = &e.last {
            let _ = writeln!(
                out,
                "  {:<10} last: dns {}  connect {}  tls {}  http {}  total {:.0} ms",
                "",
                ms(t.dns_ms),
                ms(t.connect_ms),
                ms(t.handshake_ms),
                t.http_status.map_or("-".into(), |s| s.to_string()),
                t.total_ms
            );
        }
    }
    let _ = writeln!(out, "Clock: {} ({})", st.clock.verdict, st.clock.text);
    let _ = writeln!(out, "Certificates:");
    for c in &st.certificates {
        let _ = writeln!(
            out,
            "  {:<10} {:<6} {:<14} {} {}",
            c.owner,
            c.role,
            serde_json::to_value(c.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            c.days_left
                .map_or_else(|| c.problem.clone(), |d| format!("{d} days left")),
            c.file.display()
        );
    }
    out
}
