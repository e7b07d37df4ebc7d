//! `make demo`: the whole stack on a private bus, with simulated devices and the acquirer
//! emulator, told as a story. Everything runs from a temporary directory and is torn down at
//! the end.

use std::time::Duration;

use smartpos_acquirer_sim::ledger::TradeState;
use smartpos_faultproxy::{FaultProxy, Mode};
use smartpos_scanner::decode::synth::{Scene, payment_frame};
use smartpos_tests::acquirer::{self, Pace};
use smartpos_tests::{TestBus, bin, merchant, write_file};

/// A made-up Alipay payment code (prefix 28, 18 digits) of a customer whose only funding is
/// Huabei (花呗): the emulator's buyer for codes 28601….
const HUABEI_CODE: &str = "286014455667788990";
/// The next customer's code, which the acquirer's risk control refuses (28301…).
const RISKY_CODE: &str = "283011122334455667";

fn step(n: u32, text: &str) {
    println!("\n== {n}. {text}");
}

/// Run posctl as a cashier would, off the runtime: the emulator serves on this process's
/// runtime while posctl waits.
async fn posctl(bus: &TestBus, args: &[&str]) -> bool {
    println!("$ posctl {}", args.join(" "));
    let mut cmd = bus.command(bin("posctl"));
    cmd.args(args);
    let status = tokio::task::spawn_blocking(move || cmd.status())
        .await
        .expect("join")
        .expect("run posctl");
    if !status.success() {
        println!("(posctl exited with {})", status.code().unwrap_or(-1));
    }
    status.success()
}

/// Run posctl without showing its output (set-up, not part of the story).
async fn posctl_quiet(bus: &TestBus, args: &[&str]) -> bool {
    let mut cmd = bus.command(bin("posctl"));
    cmd.args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run posctl");
    if !out.status.success() {
        println!(
            "posctl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.success()
}

/// Run posctl, print what it says, and return its exit code and output.
async fn posctl_code(bus: &TestBus, args: &[&str]) -> (i32, String) {
    println!("$ posctl {}", args.join(" "));
    let mut cmd = bus.command(bin("posctl"));
    cmd.args(args).stderr(std::process::Stdio::inherit());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run posctl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    let code = out.status.code().unwrap_or(-1);
    println!("(posctl exited with {code})");
    (code, text)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    // The daemons log errors only: the story is told on stdout.
    if std::env::var_os("SMARTPOS_LOG").is_none() {
        // SAFETY: first thing in main, before the runtime starts any other thread.
        unsafe { std::env::set_var("SMARTPOS_LOG", "error") };
    }
    let mut ok = true;
    step(
        1,
        "A private system bus with smartpos's own D-Bus policy, and the acquirer emulator",
    );
    let bus = TestBus::start();
    println!("bus at {}", bus.address());
    let sim = acquirer::start(bus.dir()).await;
    println!(
        "acquirer emulator (Alipay, WeChat Pay v2, UnionPay QRA) at {}",
        sim.base_url()
    );

    step(
        2,
        "The camera: a replay of a customer's phone showing an Alipay payment code (付款码)",
    );
    let folder = bus.dir().join("camera");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let (img, _) =
        payment_frame(1280, 720, Scene::QrAndCode128, HUABEI_CODE, (40, -20), 3).expect("frame");
    image::GrayImage::from_raw(img.width, img.height, img.data)
        .expect("frame size")
        .save(folder.join("0001.png"))
        .expect("write frame");
    println!(
        "replay folder {} (1280x720, QR + Code128)",
        folder.display()
    );
    let scanner_cfg = write_file(
        bus.dir(),
        "smartpos-scannerd.toml",
        format!("[camera]\nreplay = \"{}\"\nfps = 15\n", folder.display()).as_bytes(),
    );
    let _scannerd = bus
        .spawn_daemon(
            "smartpos-scannerd",
            &["--config", scanner_cfg.to_str().expect("utf-8")],
            "org.smartpos.Scanner1",
        )
        .await;
    // The WeChat Pay path goes through a fault proxy (loopback), so that step 12 can take
    // it down; the other paths talk to the emulator directly.
    let wechat_proxy = FaultProxy::start("127.0.0.1:0".parse().expect("addr"), sim.local_addr())
        .await
        .expect("fault proxy");
    let wechat_url = format!("https://{}", wechat_proxy.addr());
    let payment_cfg = acquirer::paymentd_config_at(
        &sim,
        &sim.base_url(),
        bus.dir(),
        Pace::Documented,
        true,
        |t| {
            let at = t.find("name = \"wechat\"\n").expect("a wechat path");
            let url = at + t[at..].find("url = ").expect("its url");
            let end = url + t[url..].find('\n').expect("end of line");
            t.replace_range(url..end, &format!("url = \"{wechat_url}\""));
        },
    );
    // The fleet server confirmed this configuration two minutes ago.
    merchant::synced(bus.dir(), Duration::from_secs(120));
    // The terminal trusts the fleet's configuration key (made here; a fleet keeps its own).
    let fleet_key = bus.dir().join("fleet.key");
    let fleet_pub = bus.dir().join("merchant-config.pub");
    ok &= posctl_quiet(
        &bus,
        &[
            "config",
            "keygen",
            "--key",
            fleet_key.to_str().expect("utf-8"),
            "--public",
            fleet_pub.to_str().expect("utf-8"),
        ],
    )
    .await;
    let mut text = std::fs::read_to_string(&payment_cfg).expect("paymentd config");
    text.push_str(&format!(
        "merchant_config_key = \"{}\"\n",
        fleet_pub.display()
    ));
    std::fs::write(&payment_cfg, text).expect("paymentd config");
    let paymentd = bus
        .spawn_daemon(
            "smartpos-paymentd",
            &["--config", payment_cfg.to_str().expect("utf-8")],
            "org.smartpos.Payment1",
        )
        .await;

    step(3, "What runs");
    ok &= posctl(&bus, &["status"]).await;

    step(4, "A technician checks the scanner: arm it, read one code");
    ok &= posctl(&bus, &["scan", "--timeout", "20"]).await;

    step(
        5,
        "A sale of 12.34 CNY: the scanner reads the customer's code, paymentd pays the acquirer",
    );
    ok &= posctl(&bus, &["sale", "12.34", "--order-ref", "demo-0001"]).await;

    step(
        6,
        "The next customer: the vendor app scanned the code itself; the acquirer refuses",
    );
    let refused = !posctl(
        &bus,
        &[
            "sale",
            "88.00",
            "--order-ref",
            "demo-0002",
            "--code",
            RISKY_CODE,
        ],
    )
    .await;
    ok &= refused;
    ok &= posctl(&bus, &["explain", "2"]).await;

    step(7, "A partial refund of the first sale, then the journal");
    ok &= posctl(&bus, &["refund", "1", "2.00", "--ref", "demo-refund-1"]).await;
    ok &= posctl(&bus, &["tx", "list"]).await;

    step(
        8,
        "The acquirer's own ledger agrees with the terminal's journal",
    );
    let ledger = sim.ledger();
    for t in ledger.trades.values() {
        println!(
            "acquirer: {} {} {}.{:02} CNY {:?} funding {:?} refunded {}.{:02}",
            t.out_trade_no,
            t.code_masked,
            t.amount_fen / 100,
            t.amount_fen % 100,
            t.state,
            t.fund_bills
                .iter()
                .map(|b| b.fund_channel.as_str())
                .collect::<Vec<_>>(),
            t.refunded_fen() / 100,
            t.refunded_fen() % 100
        );
    }
    let paid = ledger
        .trades
        .values()
        .filter(|t| t.state == TradeState::Success)
        .count();
    ok &= paid == 1;

    step(9, "Camera health, as a technician sees it");
    tokio::time::sleep(Duration::from_millis(300)).await;
    ok &= posctl(&bus, &["scanner", "status"]).await;

    step(
        10,
        "posctl doctor: one verdict per cause group, from every daemon over the bus",
    );
    // The refused customer of step 6 shows as a risk-control warning: exit 2.
    let code = posctl_code(&bus, &["doctor", "--lang", "both"]).await.0;
    ok &= code != 1;

    step(
        11,
        "The fleet switches Huabei off for this shop: configuration version 8, signed, applied while the terminal runs",
    );
    let fleet = bus.dir().join("fleet");
    std::fs::create_dir_all(&fleet).expect("mkdir");
    std::fs::copy(merchant::path(bus.dir()), merchant::path(&fleet)).expect("copy");
    merchant::huabei_off(&fleet, 8);
    let (file, sig) = (merchant::path(&fleet), fleet.join("merchant.toml.sig"));
    let (file, sig) = (file.to_str().expect("utf-8"), sig.to_str().expect("utf-8"));
    println!("merchant.toml: version = 8, funding = [\"balance\", \"bank_card\", \"credit_card\"]");
    ok &= posctl(
        &bus,
        &[
            "config",
            "sign",
            "--key",
            fleet_key.to_str().expect("utf-8"),
            "--out",
            sig,
            file,
        ],
    )
    .await;
    ok &= posctl(&bus, &["config", "apply", file, sig]).await;
    let (code, text) = posctl_code(&bus, &["doctor", "--huabei", "--lang", "both"]).await;
    ok &= code == 1
        && text.contains("Huabei is switched off in this shop's configuration (version 8");

    step(
        12,
        "The network, as smartpos-netd sees it: every acquirer path up, then WeChat Pay's server goes down",
    );
    let netd_cfg = write_file(
        bus.dir(),
        "smartpos-netd.toml",
        format!(
            "merchant_config = \"{}\"\nupdate_config = \"{}\"\n\n[limits]\nprobe_min_interval_ms = 1000\n",
            bus.dir().join("merchant.toml").display(),
            bus.dir().join("smartpos-otad.toml").display()
        )
        .as_bytes(),
    );
    let netd = bus
        .spawn_daemon(
            "smartpos-netd",
            &["--config", netd_cfg.to_str().expect("utf-8")],
            "org.smartpos.Network1",
        )
        .await;
    let (code, text) = posctl_code(&bus, &["net", "probe"]).await;
    ok &= code == 0 && text.contains("Online: yes") && text.contains("wechat");
    ok &= posctl(&bus, &["net", "status"]).await;
    println!(
        "(the fault proxy in front of WeChat Pay now refuses connections: the server is down)"
    );
    wechat_proxy.set_mode(Mode::Refuse);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (_, text) = posctl_code(&bus, &["net", "probe", "wechat"]).await;
    ok &= text.contains("WeChat Pay unreachable") && text.contains("refused the connection");
    ok &= posctl(&bus, &["net", "status"]).await;
    wechat_proxy.set_mode(Mode::Pass);
    drop(netd);
    drop(paymentd);

    // The update ending: goosebit offers, otad installs with RAUC, reboot, mark-good.
    // Its steps come after the network's (12).
    ok &= smartpos_tests::update::demo(|n, text| step(n + 1, text)).await;

    println!(
        "\n{}",
        if ok {
            "demo finished: every step did what it should"
        } else {
            "demo finished with failures (see above)"
        }
    );
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
