//! `smartpos-acquirer-sim --listen 127.0.0.1:0 --pki-dir DIR [--ledger FILE]`
//!
//! Prints `listening on https://127.0.0.1:PORT` on stdout once ready, then serves until
//! killed. Exit codes: 2 bad arguments (clap), 3 PKI or ledger file problem, 4 cannot listen.
//!
//! `smartpos-acquirer-sim --listen 127.0.0.1:8443 --pki-dir DIR --write-terminal-config OUT`
//! writes a terminal's configuration for an emulator at that address (the PKI generated
//! first if DIR has none) and exits: 0, or 3 if a file cannot be written.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use smartpos_acquirer_sim::pki::Pki;
use smartpos_acquirer_sim::terminal::{Pace, write_terminal_files};
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
    /// Do not serve: write a terminal's configuration for the emulator at --listen into
    /// this directory (merchant.toml, ca/acquirer-ca.pem, keys/*) and exit.
    #[arg(long, value_name = "OUT")]
    write_terminal_config: Option<PathBuf>,
    /// Where the terminal keeps those files: the paths merchant.toml names.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/etc/smartpos",
        requires = "write_terminal_config"
    )]
    terminal_dir: PathBuf,
    /// How fast the terminal polls: documented (the acquirers' pace), fast (tests on this
    /// machine) or emulated (fast polling, the field's timeouts: a VM without acceleration).
    #[arg(
        long,
        value_enum,
        default_value = "documented",
        requires = "write_terminal_config"
    )]
    pace: PaceArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum PaceArg {
    Documented,
    Fast,
    Emulated,
}

impl From<PaceArg> for Pace {
    fn from(p: PaceArg) -> Pace {
        match p {
            PaceArg::Documented => Pace::Documented,
            PaceArg::Fast => Pace::Fast,
            PaceArg::Emulated => Pace::Emulated,
        }
    }
}

/// `--write-terminal-config`: the PKI (generated if missing) and the terminal's files.
fn write_terminal_config(args: &Args, out: &std::path::Path) -> ExitCode {
    if args.listen.port() == 0 || !args.listen.ip().is_loopback() {
        eprintln!(
            "smartpos-acquirer-sim: --write-terminal-config needs the loopback address and port the emulator will serve on (--listen)"
        );
        return ExitCode::from(2);
    }
    let pki = match Pki::load_or_generate(&args.pki_dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("smartpos-acquirer-sim: {e}");
            return ExitCode::from(3);
        }
    };
    let url = format!("https://{}", args.listen);
    match write_terminal_files(&url, &pki, out, &args.terminal_dir, args.pace.into()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "smartpos-acquirer-sim: cannot write the terminal configuration to {}: {e}",
                out.display()
            );
            ExitCode::from(3)
        }
    }
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
    if let Some(out) = &args.write_terminal_config {
        return write_terminal_config(&args, out);
    }
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
