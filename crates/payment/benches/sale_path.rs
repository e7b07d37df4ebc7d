//! The terminal's own work per sale, from "code scanned" to the request on the wire:
//!
//! 1. `pay_with_code` up to its return: classify, merchant matrix, risk and policy figures
//!    (two journal queries), routing, and the `Submitted` commit with `synchronous=FULL`
//!    (the fsync is the dominant cost);
//! 2. building and RSA2-signing the Alipay request (the most expensive signature);
//! 3. TCP connect + TLS handshake with the pinned CA to the loopback emulator.
//!
//! The network step itself — one signed call (`alipay.trade.query`) and its answer — is
//! measured twice: over a fresh connection (connect + handshake + exchange) and over the
//! transport's kept-alive connection (a sale after the first), which skips step 3.
//!
//! The sum is the terminal-side latency before the first request byte can be written. A full
//! round trip against the emulator is reported for context (it includes the emulator's own
//! work). The journal lives under Cargo's target tmpdir (a real disk, not tmpfs).
//!
//! Run: `cargo bench -p smartpos-payment --bench sale_path` (add `-- 500` for more sales).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use smartpos_acquirer::RsaSigner;
use smartpos_acquirer::alipay::{self as wire, AppConfig, PayRequest};
use smartpos_payment::connector::{TlsSettings, Transport};
use smartpos_payment::{PayTarget, SaleOptions, SaleState};

fn stats(name: &str, mut v: Vec<Duration>) -> Duration {
    v.sort();
    let pct = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    let (p50, p90, p99) = (pct(0.5), pct(0.9), pct(0.99));
    println!(
        "{name:<44} median {:>8.3} ms   p90 {:>8.3} ms   p99 {:>8.3} ms",
        p50.as_secs_f64() * 1e3,
        p90.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    p50
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(n));
}

async fn run(n: usize) {
    let h = common::Harness::start_with(|t| {
        // The bench pays many sales quickly; lift the velocity rule for it.
        *t = t.replace("velocity_max_sales = 100", "velocity_max_sales = 0");
    })
    .await;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tmpdir on disk");
    let journal = dir.path().join("bench.db");
    let config = h.config();
    let svc = smartpos_payment::PaymentService::open(config.clone(), &journal).expect("service");
    assert_eq!(svc.with_journal(|j| j.synchronous()).expect("pragma"), 2);

    // 1 + context: pay_with_code latency, and the whole sale against the emulator; and the
    // cost of one commit on its own (creating the sale), to show how much is the fsync.
    let mut create = Vec::with_capacity(n);
    let mut commit = Vec::with_capacity(n);
    let mut round_trip = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        let tx = svc
            .sale(
                1_000 + i as i64,
                "CNY",
                &format!("bench-{i}"),
                SaleOptions::default(),
            )
            .await
            .expect("sale");
        create.push(start.elapsed());
        let code = common::alipay_code("000");
        let start = Instant::now();
        svc.pay_with_code(PayTarget::Tx(tx), &code)
            .await
            .expect("submitted");
        commit.push(start.elapsed());
        let t = svc
            .wait_settled(tx, Duration::from_secs(10))
            .await
            .expect("settled");
        round_trip.push(start.elapsed());
        assert_eq!(t.state, SaleState::Succeeded);
    }

    // 2: build + sign the Alipay request exactly as the connector does.
    let pki = h.sim.pki();
    let signer =
        RsaSigner::from_file(&pki.path(smartpos_acquirer_sim::pki::files::APP_PRIVATE_KEY))
            .expect("app key");
    let app = AppConfig {
        app_id: pki.merchant.alipay_app_id.clone(),
        app_auth_token: None,
    };
    let mut sign = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        let req = wire::Request::pay(
            &app,
            &PayRequest {
                out_trade_no: format!("T000120261127{i:08}"),
                auth_code: common::alipay_code("000"),
                subject: "Corner Shop".into(),
                total_fen: 1_000,
                disable_pay_channels: vec!["pcredit".into()],
                terminal_id: Some("T0001".into()),
                query_fund_bill_list: true,
                ..PayRequest::default()
            },
            &wire::timestamp_now(),
        )
        .expect("request");
        let signed = req.sign(&signer).expect("signed");
        std::hint::black_box((signed.query_string(), signed.form_body()));
        sign.push(start.elapsed());
    }

    // 3: TCP + TLS handshake with the pinned CA.
    let path = config.path("alipay").expect("alipay path");
    let transport = Transport::new(
        &path.url,
        &TlsSettings::new(&path.ca_file),
        &config.timeouts.transport(),
    )
    .expect("transport");
    let mut handshake = Vec::with_capacity(n);
    for _ in 0..n {
        let report = transport.probe().await;
        assert!(report.ok(), "probe: {report:?}");
        handshake.push(report.connect + report.handshake);
    }

    // The network step: one signed query and its answer, fresh vs kept alive.
    let query = |i: usize| {
        let req = wire::Request::query(
            &app,
            &wire::TradeRef::OutTradeNo(format!("T000120261127{i:08}")),
            &wire::timestamp_now(),
        )
        .expect("request");
        let signed = req.sign(&signer).expect("signed");
        (
            format!("{}?{}", wire::GATEWAY_PATH, signed.query_string()),
            signed.form_body(),
        )
    };
    let mut fresh = Vec::with_capacity(n);
    let mut kept = Vec::with_capacity(n);
    for i in 0..n {
        let (path, body) = query(i);
        transport.close_idle();
        let start = Instant::now();
        let answer = transport
            .post_form(&path, body, false)
            .await
            .expect("query");
        fresh.push(start.elapsed());
        assert!(!answer.reused && answer.status == 200);
        let (path, body) = query(i);
        let start = Instant::now();
        let answer = transport
            .post_form(&path, body, false)
            .await
            .expect("query");
        kept.push(start.elapsed());
        assert!(answer.reused && answer.status == 200);
    }

    println!(
        "\nsale path, {n} sales, journal {} (synchronous=FULL, WAL)\n",
        journal.display()
    );
    let a = stats("1. scan -> Submitted committed (pay_with_code)", commit);
    let b = stats("2. Alipay request built + RSA2-signed", sign);
    let c = stats("3. TCP connect + TLS handshake (pinned CA)", handshake);
    println!(
        "{:<44} median {:>8.3} ms   (goal < 5 ms)",
        "   terminal work to request on the wire",
        (a + b + c).as_secs_f64() * 1e3
    );
    println!(
        "{:<44} median {:>8.3} ms",
        "   the same, connection kept alive (1 + 2)",
        (a + b).as_secs_f64() * 1e3
    );
    stats("   of which: one journal commit (new sale)", create);
    stats("4. network step, fresh connection", fresh);
    stats("4. network step, kept-alive connection", kept);
    stats("   context: full sale vs loopback emulator", round_trip);
}
