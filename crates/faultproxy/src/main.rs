//! `smartpos-faultproxy`: the fault proxy as a process, for the demo and manual tests (not
//! shipped in the image).
//!
//! ```text
//! smartpos-faultproxy serve --listen 127.0.0.1:9443 --upstream 127.0.0.1:8443 --control /tmp/fp.sock
//! smartpos-faultproxy ctl --control /tmp/fp.sock refuse      # take the endpoint down
//! smartpos-faultproxy ctl --control /tmp/fp.sock pass        # and up again
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use smartpos_faultproxy::FaultProxy;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

#[derive(Parser)]
#[command(
    name = "smartpos-faultproxy",
    about = "Loopback TCP proxy that injects network faults (test tooling)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Relay --listen to --upstream, taking commands on --control.
    Serve {
        /// Loopback address to listen on (port 0: any; the chosen one is printed).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Loopback address to relay to.
        #[arg(long)]
        upstream: SocketAddr,
        /// Unix socket for the control language.
        #[arg(long)]
        control: PathBuf,
    },
    /// Send one command (`status`, `pass`, `refuse`, `drop`, `blackhole`, `reset-after N`,
    /// `latency MS`, `bandwidth BPS|off`, `drop-all`) and print the answer.
    Ctl {
        #[arg(long)]
        control: PathBuf,
        #[arg(required = true, num_args = 1..)]
        command: Vec<String>,
    },
}

/// Exit codes: 0 done, 1 the command was refused, 2 bad usage (clap), 69 cannot start or
/// reach the proxy.
const EXIT_REFUSED: u8 = 1;
const EXIT_UNAVAILABLE: u8 = 69;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve {
            listen,
            upstream,
            control,
        } => {
            let proxy = match FaultProxy::start(listen, upstream).await {
                Ok(p) => Arc::new(p),
                Err(e) => {
                    eprintln!("smartpos-faultproxy: {e}");
                    return ExitCode::from(EXIT_UNAVAILABLE);
                }
            };
            if let Err(e) = proxy.serve_control(&control) {
                eprintln!("smartpos-faultproxy: {e}");
                return ExitCode::from(EXIT_UNAVAILABLE);
            }
            println!("listening on {} -> {upstream}", proxy.addr());
            let _ = tokio::signal::ctrl_c().await;
            let _ = std::fs::remove_file(&control);
            ExitCode::SUCCESS
        }
        Command::Ctl { control, command } => {
            let answer = async {
                let mut stream = tokio::net::UnixStream::connect(&control).await?;
                stream
                    .write_all(format!("{}\n", command.join(" ")).as_bytes())
                    .await?;
                let mut line = String::new();
                tokio::io::BufReader::new(stream)
                    .read_line(&mut line)
                    .await?;
                Ok::<_, std::io::Error>(line)
            }
            .await;
            match answer {
                Ok(line) if line.starts_with("error:") => {
                    eprint!("{line}");
                    ExitCode::from(EXIT_REFUSED)
                }
                Ok(line) => {
                    print!("{line}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!(
                        "smartpos-faultproxy: control socket {}: {e}",
                        control.display()
                    );
                    ExitCode::from(EXIT_UNAVAILABLE)
                }
            }
        }
    }
}
