//! posctl: the smartpos command-line tool for technicians and scripts.
//!
//! Every command takes `--json` for one JSON document (or one per line, for streams).
//! Exit codes: 0 ok, 1 payment not made, 2 sale outcome unknown (do not charge again),
//! 64 usage, 65 bad input file, 69 daemon or bus unavailable,
//! 75 timed out, 77 not allowed, 70 anything else.

mod config;
mod doctor;
mod net;
mod payment;
mod scanner;
mod status;
mod update;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use smartpos_runtime::exit::Exit;

/// smartpos command-line tool.
#[derive(Debug, Parser)]
#[command(version, about, propagate_version = true)]
struct Cli {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// List each smartpos daemon, its version and state.
    Status,
    /// Wait for one scanned code and print it.
    Scan {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u32,
        /// Only this source: camera or hid (default: both).
        #[arg(long)]
        source: Vec<String>,
    },
    /// The scanner's camera and HID sources.
    Scanner {
        #[command(subcommand)]
        cmd: ScannerCmd,
    },
    /// Start a sale of AMOUNT yuan (e.g. 12.34) and wait for its outcome.
    ///
    /// Exit status: 0 paid; 1 not paid (failed or cancelled); 2 outcome unknown — do NOT
    /// charge again, call support (the terminal keeps resolving it in the background);
    /// 75 still open when posctl stopped waiting.
    Sale {
        /// Amount in yuan, at most two decimals.
        amount: String,
        /// The app's order reference (default: posctl-<time>).
        #[arg(long)]
        order_ref: Option<String>,
        /// Pay with this code instead of arming the scanner (apps that scan themselves).
        #[arg(long)]
        code: Option<String>,
        /// Seconds to keep the scanner armed.
        #[arg(long, default_value_t = 60)]
        timeout: u32,
        /// Print the new sale and return without waiting.
        #[arg(long)]
        no_wait: bool,
        /// Funding channels to switch off for this sale (huabei, huabei_instalments, credit_card, …).
        #[arg(long, value_delimiter = ',')]
        disable_funding: Vec<String>,
        /// Virtual goods: no credit funding.
        #[arg(long)]
        virtual_goods: bool,
    },
    /// Refund AMOUNT yuan of sale TX (the same --ref twice refunds once).
    Refund {
        tx: String,
        amount: String,
        #[arg(long = "ref")]
        refund_ref: Option<String>,
    },
    /// Sales in the journal.
    Tx {
        #[command(subcommand)]
        cmd: TxCmd,
    },
    /// Why sale TX failed, and what the cashier should do.
    Explain { tx: String },
    /// One verdict per cause group for this terminal, from every daemon over the bus.
    /// Exit 0 all OK, 1 any FAIL, 2 the worst is WARN.
    Doctor {
        /// Language of the instructions.
        #[arg(long, value_enum, default_value = "both")]
        lang: doctor::Lang,
        /// Only what matters for a Huabei payment, ending in one sentence for the merchant.
        #[arg(long)]
        huabei: bool,
    },
    /// Signed merchant configurations: make keys, sign, check, apply.
    Config {
        #[command(subcommand)]
        cmd: config::ConfigCmd,
    },
    /// Network diagnostics (smartpos-netd).
    Net {
        #[command(subcommand)]
        cmd: NetCmd,
    },
    /// Remote and local updates (org.smartpos.Update1).
    Update {
        #[command(subcommand)]
        cmd: update::UpdateCmd,
    },
    /// Decode image files with the scanner's own decoder (no daemon needed).
    Decode {
        /// PNG, JPEG or PGM files.
        #[arg(required = true)]
        images: Vec<std::path::PathBuf>,
    },
}

/// Network diagnostics from smartpos-netd.
#[derive(Debug, Subcommand)]
enum NetCmd {
    /// Links, gateway, resolvers, endpoints (latency, loss, last error), clock, certificates.
    Status,
    /// Probe now: ENDPOINT is an acquirer path, "fleet", "gateway" or "resolvers" (all if
    /// not given).
    Probe { endpoint: Option<String> },
}

#[derive(Debug, Subcommand)]
enum TxCmd {
    /// The most recent sales.
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Everything about one sale.
    Show { tx: String },
}

#[derive(Debug, Subcommand)]
enum ScannerCmd {
    /// Camera health and sources.
    Status,
    /// Save the latest camera frame, with the codes read in it outlined, as PNG.
    Snapshot {
        /// Where to write the PNG.
        file: std::path::PathBuf,
    },
}

/// What went wrong, mapped to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Bus(#[from] smartpos_runtime::bus::BusError),
    #[error(
        "{0} is not running (no owner of its bus name); check `systemctl status` of its daemon"
    )]
    NotRunning(String),
    #[error("not allowed: {0}")]
    Denied(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

impl Error {
    fn exit(&self) -> Exit {
        match self {
            Error::Bus(_) | Error::NotRunning(_) => Exit::Unavailable,
            Error::Denied(_) => Exit::NoPerm,
            Error::Timeout(_) => Exit::TempFail,
            Error::Input(_) => Exit::DataErr,
            Error::Usage(_) => Exit::Usage,
            Error::Failed(_) => Exit::Software,
        }
    }
}

impl From<zbus::fdo::Error> for Error {
    fn from(e: zbus::fdo::Error) -> Self {
        zbus::Error::FDO(Box::new(e)).into()
    }
}

impl From<zbus::Error> for Error {
    fn from(e: zbus::Error) -> Self {
        match &e {
            zbus::Error::FDO(f) if matches!(**f, zbus::fdo::Error::AccessDenied(_)) => {
                Error::Denied(f.to_string())
            }
            zbus::Error::MethodError(name, msg, _)
                if name.as_str() == "org.freedesktop.DBus.Error.AccessDenied"
                    || name.as_str() == smartpos_bus::errors::NOT_ALLOWED =>
            {
                Error::Denied(msg.clone().unwrap_or_default())
            }
            zbus::Error::FDO(f)
                if matches!(
                    **f,
                    zbus::fdo::Error::ServiceUnknown(_) | zbus::fdo::Error::NameHasNoOwner(_)
                ) =>
            {
                Error::NotRunning(f.to_string())
            }
            _ => Error::Failed(e.to_string()),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    if let Cmd::Decode { images } = &cli.cmd {
        // Pure CPU work on local files: no bus, no runtime.
        return scanner::decode(images, json).into();
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("posctl: cannot start: {e}");
            return Exit::Software.into();
        }
    };
    let result = rt.block_on(async move {
        match cli.cmd {
            Cmd::Sale {
                amount,
                order_ref,
                code,
                timeout,
                no_wait,
                disable_funding,
                virtual_goods,
            } => {
                let a = payment::SaleArgs {
                    amount,
                    order_ref,
                    code,
                    timeout,
                    no_wait,
                    disable_funding,
                    virtual_goods,
                };
                payment::sale(a, json).await.map(Some)
            }
            Cmd::Refund {
                tx,
                amount,
                refund_ref,
            } => payment::refund(&tx, &amount, refund_ref, json)
                .await
                .map(Some),
            Cmd::Doctor { lang, huabei } => doctor::run(lang, huabei, json)
                .await
                .map(|c| Some(i32::from(c))),
            other => run_plain(other, json).await.map(|()| None),
        }
    });
    match result {
        Ok(None) | Ok(Some(0)) => Exit::Ok.into(),
        Ok(Some(code)) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({ "error": e.to_string() }));
            }
            eprintln!("posctl: {e}");
            e.exit().into()
        }
    }
}

async fn run_plain(cmd: Cmd, json: bool) -> Result<(), Error> {
    {
        match cmd {
            Cmd::Tx {
                cmd: TxCmd::List { limit },
            } => payment::list(limit, json).await,
            Cmd::Tx {
                cmd: TxCmd::Show { tx },
            } => payment::show(&tx, json).await,
            Cmd::Explain { tx } => payment::explain(&tx, json).await,
            Cmd::Status => status::run(json).await,
            Cmd::Scan { timeout, source } => scanner::scan(timeout, &source, json).await,
            Cmd::Scanner {
                cmd: ScannerCmd::Status,
            } => scanner::status(json).await,
            Cmd::Scanner {
                cmd: ScannerCmd::Snapshot { file },
            } => scanner::snapshot(&file, json).await,
            Cmd::Config { cmd } => config::run(cmd, json).await,
            Cmd::Net {
                cmd: NetCmd::Status,
            } => net::status(json).await,
            Cmd::Net {
                cmd: NetCmd::Probe { endpoint },
            } => net::probe(endpoint, json).await,
            Cmd::Update { cmd } => update::run(cmd, json).await,
            Cmd::Decode { .. } | Cmd::Sale { .. } | Cmd::Refund { .. } | Cmd::Doctor { .. } => {
                unreachable!("handled in main")
            }
        }
    }
}
