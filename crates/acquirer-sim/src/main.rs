//! `smartpos-acquirer-sim --listen 127.0.0.1:0 --pki-dir DIR [--ledger FILE]`
//!
//! Prints `listening on https://127.0.0.1:PORT` on stdout once ready, then serves until
//! killed. Exit codes: 2 bad arguments (clap), 3 PKI or ledger file problem, 4 cannot listen.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use smartpos_acquirer_sim::{SimConfig, SimError, start};

/// Acquirer emulator (Alipay, WeChat Pay v2, QRA) for smartpos tests and demos.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Loopback address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Directory holding (or receiving) the test PKI and keys.
    #[arg(long)]
    pki_dir: PathBuf,
    /// Persist the ledger to this JSON file after every change.
    #[arg(long)]
    ledger: Option<PathBuf>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "smartpos_acquirer_sim=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let sim = match start(SimConfig {
            listen: args.listen,
            pki_dir: args.pki_dir,
            ledger_file: args.ledger,
        })
        .await
        {
            Ok(sim) => sim,
            Err(e) => {
                eprintln!("smartpos-acquirer-sim: {e}");
                return ExitCode::from(match e {
                    SimError::Bind { .. } | SimError::NotLoopback(_) => 4,
                    _ => 3,
                });
            }
        };
        println!("listening on {}", sim.base_url());
        // Tests read this line through a pipe; make sure it is not stuck in a buffer.
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = tokio::signal::ctrl_c().await;
        sim.shutdown();
        ExitCode::SUCCESS
    })
}
