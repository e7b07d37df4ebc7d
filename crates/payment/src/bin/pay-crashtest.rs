//! Crash-test child: runs the payment library against an acquirer (the emulator in tests),
//! so that a parent can kill it at any journal transition (`SMARTPOS_FAILPOINT=<state>`
//! aborts right after that commit) and start it again to let the resolver finish.
//!
//! ```text
//! pay-crashtest --config merchant.toml --journal pay.db [--pay CODE --amount FEN] [--refund FEN]
//! ```
//! Without `--pay` it only runs the resolver until nothing is open (the restart after a
//! crash). It prints one JSON line per sale in the journal at the end.
//! Exit codes: 0 done, 2 bad arguments, 3 cannot start, 4 work left open, 5 payment error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use smartpos_payment::config::Config;
use smartpos_payment::{PayTarget, PaymentService, SaleOptions, SaleState};

struct Args {
    config: PathBuf,
    journal: PathBuf,
    pay: Option<(String, i64)>,
    refund: Option<i64>,
}

fn parse_args() -> Result<Args, String> {
    let mut config = None;
    let mut journal = None;
    let mut code = None;
    let mut amount = None;
    let mut refund = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--config" => config = Some(PathBuf::from(value()?)),
            "--journal" => journal = Some(PathBuf::from(value()?)),
            "--pay" => code = Some(value()?),
            "--amount" => amount = Some(value()?.parse::<i64>().map_err(|e| e.to_string())?),
            "--refund" => refund = Some(value()?.parse::<i64>().map_err(|e| e.to_string())?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        config: config.ok_or("--config is required")?,
        journal: journal.ok_or("--journal is required")?,
        pay: match (code, amount) {
            (Some(c), Some(a)) => Some((c, a)),
            (None, None) => None,
            _ => return Err("--pay and --amount go together".into()),
        },
        refund,
    })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "smartpos_payment=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pay-crashtest: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pay-crashtest: cannot start the runtime: {e}");
            return ExitCode::from(3);
        }
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pay-crashtest: {e}");
            return ExitCode::from(3);
        }
    };
    let svc = match PaymentService::open(config, &args.journal) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pay-crashtest: {e}");
            return ExitCode::from(3);
        }
    };
    // The start-up pass: whatever a previous run left open is finished first.
    if let Err(e) = resolve_until_quiet(&svc).await {
        eprintln!("pay-crashtest: resolver: {e}");
        return ExitCode::from(4);
    }
    if let Some((code, amount)) = &args.pay {
        // Created first and then paid, so that a crash right after `awaiting_code` is
        // committed can be tested too (`PayTarget::New` commits sale and attempt at once).
        let tx = match svc
            .sale(*amount, "CNY", "crash-test", SaleOptions::default())
            .await
        {
            Ok(tx) => tx,
            Err(e) => {
                eprintln!("pay-crashtest: {e}");
                return ExitCode::from(5);
            }
        };
        let tx = match svc.pay_with_code(PayTarget::Tx(tx), code).await {
            Ok(tx) => tx,
            Err(e) => {
                eprintln!("pay-crashtest: {e}");
                return ExitCode::from(5);
            }
        };
        match svc.wait_settled(tx, Duration::from_secs(60)).await {
            Ok(t) if t.state == SaleState::Succeeded => {
                if let Some(refund) = args.refund
                    && let Err(e) = svc.refund(tx, refund, "crash-refund").await
                {
                    eprintln!("pay-crashtest: refund: {e}");
                    return ExitCode::from(5);
                }
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("pay-crashtest: {e}");
                return ExitCode::from(5);
            }
        }
    }
    if let Err(e) = resolve_until_quiet(&svc).await {
        eprintln!("pay-crashtest: resolver: {e}");
        return ExitCode::from(4);
    }
    let sales = svc.list_recent(1000).unwrap_or_default();
    let mut open = false;
    for t in &sales {
        open |= !t.state.is_terminal() && t.state != SaleState::AwaitingCode;
        println!("{}", serde_json::to_string(t).unwrap_or_default());
    }
    if open {
        ExitCode::from(4)
    } else {
        ExitCode::SUCCESS
    }
}

/// Run resolver passes until one leaves nothing open (or give up after a bounded time).
async fn resolve_until_quiet(svc: &PaymentService) -> Result<(), smartpos_payment::PaymentError> {
    for _ in 0..50 {
        let report = svc.resolve_all().await?;
        if report.still_open == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
