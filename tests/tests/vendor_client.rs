//! The example vendor client in Python (`examples/python/vendor_client.py`, jeepney) against
//! the real paymentd and the acquirer emulator: what an app developer copies from must work.

use std::process::Command;

use smartpos_acquirer_sim::ledger::TradeState;
use smartpos_tests::acquirer::{self, Pace};
use smartpos_tests::{TestBus, merchant, workspace};

/// The venv with the pinned jeepney (made by `tools/examples-venv.sh`, idempotent).
fn python() -> String {
    let out = Command::new(workspace().join("tools/examples-venv.sh"))
        .current_dir(workspace())
        .output()
        .expect("run tools/examples-venv.sh");
    assert!(
        out.status.success(),
        "tools/examples-venv.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rel = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    workspace().join(rel).display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_vendor_client_sells_explains_a_refusal_and_refunds() {
    let python = python();
    let bus = TestBus::start();
    let sim = acquirer::start(bus.dir()).await;
    let cfg = acquirer::paymentd_config(&sim, bus.dir(), Pace::Fast, false);
    merchant::synced(bus.dir(), std::time::Duration::from_secs(60));
    let _paymentd = bus
        .spawn_daemon(
            "smartpos-paymentd",
            &["--config", cfg.to_str().unwrap()],
            "org.smartpos.Payment1",
        )
        .await;
    let pid = std::process::id() % 100_000;
    // A Huabei customer (emulator digits 601), then one whom risk control refuses (301).
    let ok_code = format!("28601{pid:05}{:08}", 1);
    let refused_code = format!("28301{pid:05}{:08}", 2);
    let mut cmd = bus.command(&python);
    cmd.arg(workspace().join("examples/python/vendor_client.py"))
        .args(["--code", &ok_code, "--refused-code", &refused_code])
        .args(["--amount", "1288", "--refund", "288"]);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{err}");
    assert!(
        text.contains("PAID 12.88 CNY via alipay (funding: huabei)"),
        "{text}"
    );
    assert!(
        text.contains("FAILED: cause risk_control, code ACQ.PAYMENT_REQUEST_HAS_RISK"),
        "{text}"
    );
    assert!(
        text.contains("cashier (en): ask for another payment method"),
        "{text}"
    );
    assert!(
        text.contains("refund repeated with the same reference: same refund"),
        "{text}"
    );
    assert!(
        text.contains("refund above the paid amount refused: org.smartpos.Error.Refused"),
        "{text}"
    );
    assert!(
        text.contains(
            "refused before a sale (org.smartpos.Error.Refused): cause user_error, code local.collection_qr.alipay"
        ),
        "{text}"
    );
    assert!(text.contains("Huabei (ok)"), "{text}");
    // The acquirer's ledger: one paid trade, refunded once by 2.88.
    let ledger = sim.ledger();
    let paid: Vec<_> = ledger
        .trades
        .values()
        .filter(|t| t.state == TradeState::Success)
        .collect();
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0].amount_fen, 1288);
    assert_eq!(paid[0].refunded_fen(), 288);
}
