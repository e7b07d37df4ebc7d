//! `posctl update status|check|install FILE`: the update daemon (org.smartpos.Update1).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::Subcommand;
use smartpos_bus::update::UpdateProxy;

use crate::Error;

#[derive(Debug, Subcommand)]
pub enum UpdateCmd {
    /// State, progress, running and pending versions, last error.
    Status,
    /// Ask the fleet server for an update now.
    Check,
    /// Install a RAUC bundle from a file (technicians); follows the install until the
    /// terminal reboots into it. Exit 0 installed (awaiting the reboot), 65 refused or failed.
    Install {
        file: std::path::PathBuf,
        /// Return once the bundle is accepted, without following the install.
        #[arg(long)]
        no_wait: bool,
    },
}

#[derive(Debug, serde::Serialize)]
struct Snapshot {
    state: String,
    percent: u32,
    step: String,
    current_version: String,
    pending_version: String,
    last_error: String,
    action_id: String,
}

async fn snapshot(p: &UpdateProxy<'_>) -> Result<Snapshot, Error> {
    let (percent, step) = p.progress().await?;
    Ok(Snapshot {
        state: p.state().await?,
        percent,
        step,
        current_version: p.current_version().await?,
        pending_version: p.pending_version().await?,
        last_error: p.last_error().await?,
        action_id: p.action_id().await?,
    })
}

fn print(s: &Snapshot, json: bool) -> Result<(), Error> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(s).map_err(|e| Error::Failed(e.to_string()))?
        );
    } else {
        println!("state:    {}", s.state);
        println!("progress: {}% {}", s.percent, s.step);
        println!("running:  {}", or_dash(&s.current_version));
        println!("pending:  {}", or_dash(&s.pending_version));
        println!("action:   {}", or_dash(&s.action_id));
        println!("error:    {}", or_dash(&s.last_error));
    }
    Ok(())
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

pub async fn run(cmd: UpdateCmd, json: bool) -> Result<(), Error> {
    let conn = smartpos_runtime::bus::connect_system().await?;
    let p = UpdateProxy::new(&conn).await?;
    match cmd {
        UpdateCmd::Status => print(&snapshot(&p).await?, json),
        UpdateCmd::Check => {
            p.check().await?;
            if json {
                println!("{}", serde_json::json!({ "check": "requested" }));
            } else {
                println!("check requested; `posctl update status` shows what the server offers");
            }
            Ok(())
        }
        UpdateCmd::Install { file, no_wait } => {
            let path = std::fs::canonicalize(&file)
                .map_err(|e| Error::Input(format!("{}: {e}", file.display())))?;
            p.install_local(&path.to_string_lossy())
                .await
                .map_err(|e| match &e {
                    zbus::Error::MethodError(name, msg, _)
                        if name.as_str() == smartpos_bus::errors::REFUSED =>
                    {
                        Error::Input(format!("refused: {}", msg.clone().unwrap_or_default()))
                    }
                    _ => Error::from(e),
                })?;
            if !no_wait {
                follow(&p, json).await?;
            }
            print(&snapshot(&p).await?, json)
        }
    }
}

/// Follow State/Progress until the install ends; a bar on a terminal, lines otherwise.
async fn follow(p: &UpdateProxy<'_>, json: bool) -> Result<(), Error> {
    let tty = !json && std::io::stderr().is_terminal();
    let deadline = Instant::now() + Duration::from_secs(30 * 60);
    let mut last = (String::new(), u32::MAX, String::new());
    loop {
        let s = snapshot(p).await?;
        let now = (s.state.clone(), s.percent, s.step.clone());
        if now != last && !json {
            if tty {
                let filled = usize::try_from(s.percent.min(100) / 5).unwrap_or(0);
                eprint!(
                    "\r[{:<20}] {:>3}% {:<16} {:<40.40}",
                    "#".repeat(filled),
                    s.percent,
                    s.state,
                    s.step
                );
                let _ = std::io::stderr().flush();
            } else {
                eprintln!("{} {}% {}", s.state, s.percent, s.step);
            }
            last = now;
        }
        match s.state.as_str() {
            "awaiting-reboot" => break,
            "idle" if s.last_error.is_empty() => break,
            "idle" => return Err(Error::Input(format!("not installed: {}", s.last_error))),
            "failed" => {
                if tty {
                    eprintln!();
                }
                return Err(Error::Input(format!("install failed: {}", s.last_error)));
            }
            _ => {}
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout(
                "the install did not finish within 30 minutes".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if tty {
        eprintln!();
    }
    Ok(())
}
