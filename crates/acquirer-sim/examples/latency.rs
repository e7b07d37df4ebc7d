//! How long one payment takes as a terminal sees it, against the emulator on loopback: build
//! and RSA2-sign the request, new TLS connection, gateway verifies, ledger, signs, terminal
//! verifies the verbatim node. Run: `cargo run -p smartpos-acquirer-sim --example latency [N]`.

use std::time::{Duration, Instant};

use smartpos_acquirer::alipay::{self, AppConfig, Method, PayRequest, Request, response};
use smartpos_acquirer::keys::{RsaSigner, RsaVerifier};
use smartpos_acquirer::wechat::{self, SignType};
use smartpos_acquirer_sim::client::SimClient;
use smartpos_acquirer_sim::pki::files;
use smartpos_acquirer_sim::{SimConfig, start};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<28} n={:<4} p50={:>7.2?} p95={:>7.2?} max={:>7.2?}",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.95),
        samples[samples.len() - 1]
    );
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().expect("tempdir");
    let pki_dir = dir.path().join("pki");
    let sim = start(SimConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        pki_dir: pki_dir.clone(),
        ledger_file: None,
    })
    .await
    .expect("start the emulator");
    let client = SimClient::new(&pki_dir, sim.local_addr(), false).expect("client");
    let app_key = RsaSigner::from_file(&pki_dir.join(files::APP_PRIVATE_KEY)).expect("app key");
    let alipay_key =
        RsaVerifier::from_file(&pki_dir.join(files::ALIPAY_PUBLIC_KEY)).expect("alipay key");
    let app = AppConfig {
        app_id: sim.pki().merchant.alipay_app_id.clone(),
        app_auth_token: None,
    };

    let (mut sign, mut round, mut verify) = (vec![], vec![], vec![]);
    for i in 0..n {
        let pay = PayRequest {
            out_trade_no: format!("LAT{i}"),
            auth_code: format!("2800{i:012}"),
            subject: "latency".into(),
            total_fen: 100,
            ..PayRequest::default()
        };
        let t0 = Instant::now();
        let signed = Request::pay(&app, &pay, &alipay::timestamp_now())
            .expect("request")
            .sign(&app_key)
            .expect("sign");
        sign.push(t0.elapsed());
        let t1 = Instant::now();
        let answer = client
            .post(
                &signed.path_and_query(),
                alipay::CONTENT_TYPE,
                signed.form_body(),
            )
            .await
            .expect("answer");
        round.push(t1.elapsed());
        let t2 = Instant::now();
        let r = response::parse_and_verify(&answer.body, Method::TradePay, &alipay_key)
            .expect("verified");
        verify.push(t2.elapsed());
        assert_eq!(r.code, "10000");
    }
    report("alipay sign request", sign);
    report("alipay HTTPS round trip", round);
    report("alipay verify response", verify);

    let m = &sim.pki().merchant;
    let cfg = wechat::MerchantConfig {
        appid: m.wechat_appid.clone(),
        mch_id: m.wechat_mch_id.clone(),
        sub_appid: None,
        sub_mch_id: None,
        api_key: m.wechat_api_key.clone(),
        sign_type: SignType::HmacSha256,
    };
    let mut wx = vec![];
    for i in 0..n {
        let req = wechat::Request::micropay(&wechat::MicropayRequest {
            out_trade_no: format!("WLAT{i}"),
            auth_code: format!("1300{i:014}"),
            body: "latency".into(),
            total_fen: 100,
            spbill_create_ip: "127.0.0.1".into(),
            ..wechat::MicropayRequest::default()
        })
        .expect("request");
        let t = Instant::now();
        let a = client
            .post(req.api().path(), "text/xml", req.to_xml(&cfg))
            .await
            .expect("answer");
        let r = wechat::Response::parse(&a.body, &cfg.api_key, cfg.sign_type).expect("verified");
        wx.push(t.elapsed());
        assert!(r.result_ok());
    }
    report("wechat micropay end to end", wx);
}
