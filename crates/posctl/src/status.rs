//! `posctl status`: which daemons run, their versions and states.

use zbus::names::BusName;

use crate::Error;

/// The daemons of the stack: (bus name = interface, object path, what it is).
const DAEMONS: &[(&str, &str, &str)] = &[
    ("org.smartpos.Scanner1", "/org/smartpos/Scanner1", "scanner"),
    ("org.smartpos.Payment1", "/org/smartpos/Payment1", "payment"),
    ("org.smartpos.Network1", "/org/smartpos/Network1", "network"),
    ("org.smartpos.Update1", "/org/smartpos/Update1", "update"),
];

#[derive(Debug, serde::Serialize)]
struct Row {
    daemon: &'static str,
    bus_name: &'static str,
    running: bool,
    version: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

pub async fn run(json: bool) -> Result<(), Error> {
    let conn = smartpos_runtime::bus::connect_system().await?;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
    let mut rows = Vec::new();
    for &(name, path, daemon) in DAEMONS {
        let running = dbus
            .name_has_owner(BusName::try_from(name).map_err(|e| Error::Failed(e.to_string()))?)
            .await
            .unwrap_or(false);
        let mut row = Row {
            daemon,
            bus_name: name,
            running,
            version: None,
            state: None,
            error: None,
        };
        if running {
            match properties(&conn, name, path).await {
                Ok((v, s)) => (row.version, row.state) = (Some(v), Some(s)),
                Err(e) => row.error = Some(e.to_string()),
            }
        }
        rows.push(row);
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| Error::Failed(e.to_string()))?
        );
    } else {
        println!(
            "{:<10} {:<24} {:<9} {:<10} STATE",
            "DAEMON", "BUS NAME", "RUNNING", "VERSION"
        );
        for r in &rows {
            println!(
                "{:<10} {:<24} {:<9} {:<10} {}",
                r.daemon,
                r.bus_name,
                if r.running { "yes" } else { "no" },
                r.version.as_deref().unwrap_or("-"),
                r.state.as_deref().or(r.error.as_deref()).unwrap_or("-"),
            );
        }
    }
    Ok(())
}

async fn properties(
    conn: &zbus::Connection,
    name: &str,
    path: &str,
) -> zbus::Result<(String, String)> {
    let props = zbus::fdo::PropertiesProxy::builder(conn)
        .destination(name)?
        .path(path)?
        .build()
        .await?;
    let iface = zbus::names::InterfaceName::try_from(name)?;
    let v: String = props.get(iface.clone(), "Version").await?.try_into()?;
    let s: String = props.get(iface, "State").await?.try_into()?;
    Ok((v, s))
}
