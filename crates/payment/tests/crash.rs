//! Kill the terminal at every journal transition, start it again, and check the books.
//!
//! A child process (`pay-crashtest`) pays against the emulator running in this test. With
//! `SMARTPOS_FAILPOINT=<state>` it aborts right after committing that state — as abrupt as
//! kill -9: no destructors, no flush. The restarted child runs only the resolver. Then the
//! journal is compared with the emulator's ledger: no payment lost, none taken twice, every
//! sale in a terminal state.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use common::{Harness, alipay_code, unionpay_code, wechat_code};
use smartpos_acquirer_sim::ledger::{Ledger, TradeState};
use smartpos_payment::journal::Journal;
use smartpos_payment::{RefundState, SaleState};

const CHILD: &str = env!("CARGO_BIN_EXE_pay-crashtest");

struct Case {
    failpoint: &'static str,
    code: String,
    amount: i64,
    refund: Option<i64>,
    /// Where the sale must end; `None` when either outcome is right (a race the customer
    /// wins or loses against the cancel).
    expect: Option<SaleState>,
}

fn case(failpoint: &'static str, code: String, expect: Option<SaleState>) -> Case {
    Case {
        failpoint,
        code,
        amount: 1_234,
        refund: None,
        expect,
    }
}

async fn child(
    config: &Path,
    journal: &Path,
    failpoint: Option<&str>,
    c: Option<&Case>,
) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(CHILD);
    cmd.arg("--config")
        .arg(config)
        .arg("--journal")
        .arg(journal);
    if let Some(c) = c {
        cmd.arg("--pay")
            .arg(&c.code)
            .arg("--amount")
            .arg(c.amount.to_string());
        if let Some(r) = c.refund {
            cmd.arg("--refund").arg(r.to_string());
        }
    }
    match failpoint {
        Some(f) => cmd.env("SMARTPOS_FAILPOINT", f),
        None => cmd.env_remove("SMARTPOS_FAILPOINT"),
    };
    cmd.kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("child finished in time")
        .expect("child ran")
}

/// The books agree: every sale is final; a sale is succeeded exactly when the acquirer holds
/// one paid trade for it; refunds in the journal are the refunds at the acquirer.
fn check_books(journal_path: &Path, ledger: &Ledger, label: &str) {
    let j = Journal::open(journal_path).expect("journal reopens");
    let sales = j.list_recent(100).expect("sales");
    assert!(!sales.is_empty(), "{label}: the journal holds the sale");
    for t in sales {
        assert!(
            t.state.is_terminal(),
            "{label}: {} left in {}",
            t.id,
            t.state
        );
        let attempts = j.attempts_of(t.id).expect("attempts");
        let trades: Vec<_> = attempts
            .iter()
            .flat_map(|a| {
                ledger
                    .trades
                    .iter()
                    .filter(move |(k, _)| k.ends_with(&format!(":{}", a.0)))
                    .map(|(_, tr)| tr)
            })
            .collect();
        let paid: Vec<_> = trades
            .iter()
            .filter(|tr| tr.state == TradeState::Success)
            .collect();
        match t.state {
            SaleState::Succeeded => {
                assert_eq!(paid.len(), 1, "{label}: {} paid once at the acquirer", t.id);
                assert_eq!(paid[0].amount_fen, t.amount_fen, "{label}");
                let refunded: i64 = j
                    .refunds_of(t.id)
                    .expect("refunds")
                    .iter()
                    .filter(|r| r.state == RefundState::Succeeded)
                    .map(|r| r.amount_fen)
                    .sum();
                assert_eq!(paid[0].refunded_fen(), refunded, "{label}: refunds agree");
                assert!(
                    j.refunds_of(t.id)
                        .expect("refunds")
                        .iter()
                        .all(|r| r.state.is_terminal()),
                    "{label}: refunds final"
                );
            }
            _ => assert!(
                paid.is_empty(),
                "{label}: {} is {} but the acquirer kept money: {trades:?}",
                t.id,
                t.state
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_every_transition_loses_nothing_and_charges_no_one_twice() {
    let h = Harness::start_with(|t| {
        *t = t.replace(
            "awaiting_code_expiry_ms = 600000",
            "awaiting_code_expiry_ms = 0",
        );
    })
    .await;
    let base = std::fs::read_to_string(&h.config_path).expect("config");
    use SaleState::{Cancelled, Failed, Succeeded};
    let mut refund_case = case("refund_pending", alipay_code("000"), Some(Succeeded));
    refund_case.refund = Some(500);
    let mut refund_done = case("refund_succeeded", wechat_code("000"), Some(Succeeded));
    refund_done.refund = Some(234);
    let cases = vec![
        case("awaiting_code", alipay_code("000"), Some(Cancelled)),
        // Killed before the request left: the resolver finds no trade and closes it.
        case("submitted", alipay_code("000"), Some(Cancelled)),
        case("submitted", wechat_code("000"), Some(Cancelled)),
        case("submitted", unionpay_code("000"), Some(Cancelled)),
        // Killed after a lost answer / SYSTEMERROR that did charge: the query finds it.
        case("unknown", alipay_code("501"), Some(Succeeded)),
        case("unknown", wechat_code("402"), Some(Succeeded)),
        case("waiting_for_customer", alipay_code("103"), None),
        case("waiting_for_customer", wechat_code("103"), None),
        case("cancelling", alipay_code("102"), Some(Cancelled)),
        case("cancelling", wechat_code("102"), Some(Cancelled)),
        case("cancelled", alipay_code("102"), Some(Cancelled)),
        case("succeeded", alipay_code("601"), Some(Succeeded)),
        case("succeeded", unionpay_code("000"), Some(Succeeded)),
        case("failed", alipay_code("301"), Some(Failed)),
        refund_case,
        refund_done,
    ];
    for (i, c) in cases.iter().enumerate() {
        let label = format!("case {i} ({} via {}…)", c.failpoint, &c.code[..5]);
        // Each case is its own terminal, so order numbers never collide at the acquirer.
        let config = h.dir.path().join(format!("case{i}.toml"));
        std::fs::write(
            &config,
            base.replace(
                "terminal_id = \"T0001\"",
                &format!("terminal_id = \"C{i:02}\""),
            ),
        )
        .expect("config");
        let journal = h.dir.path().join(format!("case{i}.db"));

        let first = child(&config, &journal, Some(c.failpoint), Some(c)).await;
        assert_eq!(
            first.status.signal(),
            Some(libc_sigabrt()),
            "{label}: the child should die at the failpoint; stderr:\n{}",
            String::from_utf8_lossy(&first.stderr)
        );
        let second = child(&config, &journal, None, None).await;
        assert!(
            second.status.success(),
            "{label}: restart should finish everything; status {:?}, stderr:\n{}",
            second.status,
            String::from_utf8_lossy(&second.stderr)
        );
        check_books(&journal, &h.sim.ledger(), &label);
        let j = Journal::open(&journal).expect("journal");
        let t = j.list_recent(1).expect("sale").remove(0);
        if let Some(expect) = c.expect {
            assert_eq!(t.state, expect, "{label}");
        }
        if let Some(r) = c.refund {
            let refunds = j.refunds_of(t.id).expect("refunds");
            assert_eq!(refunds.len(), 1, "{label}: one refund, not two");
            assert_eq!(
                (refunds[0].amount_fen, refunds[0].state),
                (r, RefundState::Succeeded),
                "{label}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_while_the_request_is_on_the_wire_is_resolved_on_restart() {
    let h = Harness::start().await;
    let c = case("none", alipay_code("502"), Some(SaleState::Succeeded));
    let mut cmd = tokio::process::Command::new(CHILD);
    cmd.arg("--config")
        .arg(&h.config_path)
        .arg("--journal")
        .arg(&h.journal_path)
        .arg("--pay")
        .arg(&c.code)
        .arg("--amount")
        .arg(c.amount.to_string())
        .env_remove("SMARTPOS_FAILPOINT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut running = cmd.spawn().expect("child starts");
    // The emulator charges at once and answers after 20 s: wait for the charge, then kill.
    let mut charged = false;
    for _ in 0..200 {
        if h.sim
            .ledger()
            .trades
            .values()
            .any(|t| t.state == TradeState::Success)
        {
            charged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(charged, "the emulator charged the customer");
    running.start_kill().expect("SIGKILL");
    let status = running.wait().await.expect("reaped");
    assert_eq!(status.signal(), Some(9));

    let restart = child(&h.config_path, &h.journal_path, None, None).await;
    assert!(
        restart.status.success(),
        "stderr:\n{}",
        String::from_utf8_lossy(&restart.stderr)
    );
    check_books(&h.journal_path, &h.sim.ledger(), "kill -9");
    let j = Journal::open(&h.journal_path).expect("journal");
    assert_eq!(
        j.list_recent(1).expect("sale")[0].state,
        SaleState::Succeeded
    );
}

fn libc_sigabrt() -> i32 {
    6
}
