//! The payment side of remote updates, on the real daemon over a private bus: the install
//! window an update holds while it installs, and signed merchant configurations applied
//! without a restart — as the update service, a technician, a cashier and a stranger meet
//! them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use smartpos_bus::errors::{BUSY, INVALID_ARGS, NOT_ALLOWED, REFUSED};
use smartpos_bus::payment::{PaymentProxy, TransactionProxy};
use smartpos_tests::acquirer::{self, Pace};
use smartpos_tests::{Daemon, TestBus, as_nobody, bin};
use zbus::zvariant::Value;

/// An Alipay code whose digits 3–5 choose the emulator's buyer (601: pays with Huabei only).
fn alipay_code(scenario: &str, n: u32) -> String {
    format!(
        "28{scenario}{:013}",
        5_000_000_000u64 + u64::from(std::process::id()) * 100 + u64::from(n)
    )
}

fn no_scan() -> HashMap<&'static str, Value<'static>> {
    HashMap::from([("scan", Value::from(false))])
}

fn none() -> HashMap<&'static str, Value<'static>> {
    HashMap::new()
}

struct Terminal {
    bus: TestBus,
    _sim: smartpos_acquirer_sim::Sim,
    _paymentd: Daemon,
    /// The fleet's signing key and the key file the terminal trusts.
    fleet_key: PathBuf,
    merchant: PathBuf,
}

/// paymentd on the emulator (merchant config version 7, Huabei on), trusting a fresh fleet
/// key made with `posctl config keygen`. `extra` is appended to smartpos-paymentd.toml;
/// `policy` is one more bus policy file.
async fn terminal(extra: &str, policy: Option<&str>) -> Terminal {
    let bus = TestBus::start_with_extra_policy(policy);
    let sim = acquirer::start(bus.dir()).await;
    let cfg = acquirer::paymentd_config(&sim, bus.dir(), Pace::Fast, false);
    let fleet_key = bus.dir().join("fleet.key");
    let public = bus.dir().join("merchant-config.pub");
    posctl_ok(
        &bus,
        &[
            "config",
            "keygen",
            "--key",
            fleet_key.to_str().unwrap(),
            "--public",
            public.to_str().unwrap(),
        ],
    );
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "merchant_config_key = \"{}\"\n{extra}",
        public.display()
    ));
    std::fs::write(&cfg, text).unwrap();
    let paymentd = bus
        .spawn_daemon(
            "smartpos-paymentd",
            &["--config", cfg.to_str().unwrap()],
            "org.smartpos.Payment1",
        )
        .await;
    let merchant = smartpos_tests::merchant::path(bus.dir());
    Terminal {
        bus,
        _sim: sim,
        _paymentd: paymentd,
        fleet_key,
        merchant,
    }
}

fn posctl(bus: &TestBus, args: &[&str]) -> std::process::Output {
    bus.command(bin("posctl")).args(args).output().unwrap()
}

fn posctl_ok(bus: &TestBus, args: &[&str]) -> String {
    let out = posctl(bus, args);
    assert!(
        out.status.success(),
        "posctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Terminal {
    /// The running merchant configuration with `edit` applied, written to `name`, and its
    /// signature (by `key`, default the fleet's) from `posctl config sign`.
    fn signed(
        &self,
        name: &str,
        key: Option<&Path>,
        edit: impl FnOnce(&str) -> String,
    ) -> (PathBuf, PathBuf) {
        let now = std::fs::read_to_string(&self.merchant).unwrap();
        let file = self.bus.dir().join(name);
        std::fs::write(&file, edit(&now)).unwrap();
        let sig = self.bus.dir().join(format!("{name}.sig"));
        posctl_ok(
            &self.bus,
            &[
                "config",
                "sign",
                "--key",
                key.unwrap_or(&self.fleet_key).to_str().unwrap(),
                "--out",
                sig.to_str().unwrap(),
                file.to_str().unwrap(),
            ],
        );
        (file, sig)
    }

    async fn payments(&self) -> (zbus::Connection, PaymentProxy<'static>) {
        let conn = self.bus.connect().await;
        let p = PaymentProxy::builder(&conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .unwrap();
        (conn, p)
    }
}

/// Version `v`, Huabei and its instalments switched off.
fn huabei_off(text: &str, v: u64) -> String {
    text.replace("version = 7", &format!("version = {v}")).replace(
        "funding = [\"balance\", \"bank_card\", \"huabei\", \"huabei_instalments\", \"credit_card\"]",
        "funding = [\"balance\", \"bank_card\", \"credit_card\"]",
    )
}

async fn apply(p: &PaymentProxy<'_>, file: &Path, sig: &Path) -> zbus::Result<(u32, String)> {
    p.apply_merchant_config(&std::fs::read(file).unwrap(), &std::fs::read(sig).unwrap())
        .await
}

fn error_name<T: std::fmt::Debug>(r: &zbus::Result<T>) -> String {
    match r {
        Err(zbus::Error::MethodError(name, _, _)) => name.to_string(),
        Err(zbus::Error::FDO(e)) => zbus::DBusError::name(&**e).to_string(),
        other => format!("not a D-Bus error: {other:?}"),
    }
}

fn error_text<T: std::fmt::Debug>(r: &zbus::Result<T>) -> String {
    match r {
        Err(zbus::Error::MethodError(_, Some(m), _)) => m.clone(),
        other => format!("{other:?}"),
    }
}

use smartpos_tests::tx_proxy as tx;

/// The sale's state once it is finished (or after `within`).
async fn settled(t: &TransactionProxy<'_>, within: Duration) -> String {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let s = t.state().await.unwrap();
        if matches!(s.as_str(), "succeeded" | "failed" | "cancelled")
            || tokio::time::Instant::now() > deadline
        {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// PropertiesChanged of the payment service, as a queue (every signal, none merged).
async fn service_changes(conn: &zbus::Connection) -> zbus::fdo::PropertiesChangedStream {
    zbus::fdo::PropertiesProxy::builder(conn)
        .destination("org.smartpos.Payment1")
        .unwrap()
        .path("/org/smartpos/Payment1")
        .unwrap()
        .build()
        .await
        .unwrap()
        .receive_properties_changed()
        .await
        .unwrap()
}

/// The values of property `name` in the PropertiesChanged signals that come within `limit`,
/// until `done` says enough.
async fn values_of<T: TryFrom<zbus::zvariant::OwnedValue>>(
    changes: &mut zbus::fdo::PropertiesChangedStream,
    name: &str,
    limit: Duration,
    mut done: impl FnMut(&[T]) -> bool,
) -> Vec<T> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Some(sig)) = tokio::time::timeout_at(deadline, changes.next()).await {
        let args = sig.args().unwrap();
        if let Some(v) = args.changed_properties().get(name)
            && let Ok(v) = v.try_to_owned()
            && let Ok(v) = T::try_from(v)
        {
            seen.push(v);
            if done(&seen) {
                break;
            }
        }
    }
    seen
}

async fn wait_for_in_flight(p: &PaymentProxy<'_>, want: u32) {
    for _ in 0..200 {
        if p.sales_in_flight().await.unwrap() == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "SalesInFlight stayed {} (wanted {want})",
        p.sales_in_flight().await.unwrap()
    );
}

#[tokio::test]
async fn an_update_waits_for_the_sale_at_the_till_and_the_till_waits_for_the_update() {
    let t = terminal("install_window_max_s = 2\n", None).await;
    let (conn, p) = t.payments().await;
    let mut changes = service_changes(&conn).await;

    // A customer is at the till: the update service may not start installing.
    let sale = p.sale(1500, "CNY", "at-the-till", no_scan()).await.unwrap();
    wait_for_in_flight(&p, 1).await;
    let r = p.begin_install_window().await;
    assert_eq!(error_name(&r), BUSY, "{r:?}");
    assert!(error_text(&r).contains("in flight"), "{r:?}");

    // The sale ends (the customer walked away): nothing in flight, the window opens.
    assert_eq!(p.cancel(&sale.as_ref()).await.unwrap(), "cancelled");
    wait_for_in_flight(&p, 0).await;
    let seen: Vec<u32> = values_of(&mut changes, "SalesInFlight", Duration::from_secs(5), |v| {
        v.ends_with(&[1, 0])
    })
    .await;
    assert_eq!(seen, [1, 0], "PropertiesChanged of SalesInFlight");
    p.begin_install_window().await.unwrap();

    // While it installs, the next customer's sale is refused with a reason in both
    // languages, and nothing is journaled or sent.
    for r in [
        p.sale(900, "CNY", "during-install", no_scan()).await,
        p.pay_with_code(
            900,
            "CNY",
            "during-install-2",
            none(),
            &alipay_code("000", 1),
        )
        .await,
    ] {
        assert_eq!(error_name(&r), BUSY, "{r:?}");
        let m = error_text(&r);
        assert!(
            m.contains("an update is being installed, try again in a minute")
                && m.contains("正在安装更新")
                && m.contains("software"),
            "{m}"
        );
    }
    assert_eq!(
        p.list_transactions(10).await.unwrap().len(),
        1,
        "only the cancelled sale"
    );

    // The update is done: the till sells again.
    p.end_install_window().await.unwrap();
    let next = p
        .sale(900, "CNY", "after-install", no_scan())
        .await
        .unwrap();
    p.cancel(&next.as_ref()).await.unwrap();

    // An update that forgets to close the window: it closes by itself
    // (install_window_max_s, 2 s here; 15 min by default).
    p.begin_install_window().await.unwrap();
    let r = p.sale(900, "CNY", "forgotten", no_scan()).await;
    assert_eq!(error_name(&r), BUSY, "{r:?}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    p.sale(900, "CNY", "forgotten", no_scan())
        .await
        .expect("the window closed by itself");
    drop(conn);
}

#[tokio::test]
async fn the_window_closes_when_the_update_service_leaves_the_bus() {
    let t = terminal("", None).await;
    let (_conn, p) = t.payments().await;
    // The update service opens the window on its own connection, then crashes.
    let (updater_conn, updater) = t.payments().await;
    updater.begin_install_window().await.unwrap();
    let r = p.sale(700, "CNY", "blocked", no_scan()).await;
    assert_eq!(error_name(&r), BUSY, "{r:?}");
    // Only the holder closes it; another caller is told so and the till stays closed.
    let r = p.end_install_window().await;
    assert_eq!(error_name(&r), REFUSED, "{r:?}");
    let r = p.begin_install_window().await;
    assert_eq!(error_name(&r), BUSY, "{r:?}");
    drop(updater);
    drop(updater_conn);
    let mut sold = None;
    for _ in 0..100 {
        match p.sale(700, "CNY", "after-crash", no_scan()).await {
            Ok(path) => {
                sold = Some(path);
                break;
            }
            Err(e) => assert_eq!(error_name::<()>(&Err(e)), BUSY),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        sold.is_some(),
        "the till stayed closed after the update service left"
    );
}

#[tokio::test]
async fn a_signed_config_turns_huabei_off_for_the_next_sale_while_the_sale_in_flight_keeps_it() {
    let t = terminal("", None).await;
    let (conn, p) = t.payments().await;
    assert_eq!(p.config_version().await.unwrap(), 7);
    let mut changes = service_changes(&conn).await;

    // A customer paying with Huabei is at the till: the sale started under version 7.
    let first = p.sale(2300, "CNY", "huabei-1", no_scan()).await.unwrap();

    // The fleet turns Huabei off (version 8); a technician applies it.
    let (file, sig) = t.signed("v8.toml", None, |s| huabei_off(s, 8));
    let said = posctl_ok(
        &t.bus,
        &[
            "config",
            "apply",
            file.to_str().unwrap(),
            sig.to_str().unwrap(),
        ],
    );
    assert!(said.contains("version 8"), "{said}");
    assert_eq!(p.config_version().await.unwrap(), 8);
    assert_eq!(p.config_synced_at().await.unwrap(), "2026-11-27T09:30:00Z");
    assert!(!p.funding().await.unwrap().contains(&"huabei".to_owned()));
    let seen: Vec<u64> = values_of(
        &mut changes,
        "ConfigVersion",
        Duration::from_secs(5),
        |_| true,
    )
    .await;
    assert_eq!(seen, [8], "PropertiesChanged of ConfigVersion");
    // Written where paymentd reads it at its next start, byte for byte.
    assert_eq!(
        std::fs::read(&t.merchant).unwrap(),
        std::fs::read(&file).unwrap()
    );

    // The customer at the till pays with Huabei: the sale keeps the configuration it
    // started with.
    let paid = p
        .pay_with_code(2300, "CNY", "huabei-1", none(), &alipay_code("601", 1))
        .await
        .unwrap();
    assert_eq!(paid, first);
    let t1 = tx(&conn, &first).await;
    assert_eq!(settled(&t1, Duration::from_secs(30)).await, "succeeded");
    assert_eq!(t1.funding_channels().await.unwrap(), ["huabei"]);

    // The next Huabei-only customer: Huabei is off for this merchant now.
    let second = p
        .pay_with_code(2400, "CNY", "huabei-2", none(), &alipay_code("601", 2))
        .await
        .unwrap();
    let t2 = tx(&conn, &second).await;
    assert_eq!(settled(&t2, Duration::from_secs(30)).await, "failed");
    assert!(t2.funding_channels().await.unwrap().is_empty());

    // The same configuration again is refused: versions only go up.
    let r = apply(&p, &file, &sig).await;
    assert_eq!(error_name(&r), REFUSED, "{r:?}");
}

#[tokio::test]
async fn a_bad_signature_an_older_version_or_broken_toml_is_refused_and_the_old_config_keeps_selling()
 {
    let t = terminal("", None).await;
    let (conn, p) = t.payments().await;
    let before = std::fs::read(&t.merchant).unwrap();

    // Signed by someone else's key.
    let other_key = t.bus.dir().join("other.key");
    let other_pub = t.bus.dir().join("other.pub");
    posctl_ok(
        &t.bus,
        &[
            "config",
            "keygen",
            "--key",
            other_key.to_str().unwrap(),
            "--public",
            other_pub.to_str().unwrap(),
        ],
    );
    let (file, sig) = t.signed("forged.toml", Some(&other_key), |s| huabei_off(s, 9));
    let r = apply(&p, &file, &sig).await;
    assert_eq!(error_name(&r), REFUSED, "{r:?}");
    assert!(error_text(&r).contains("signature"), "{r:?}");
    assert!(error_text(&r).contains("version 7) stays"), "{r:?}");
    // posctl says so and exits 65 (bad input file).
    let out = posctl(
        &t.bus,
        &[
            "config",
            "apply",
            file.to_str().unwrap(),
            sig.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(65), "{out:?}");

    // A genuine file changed after signing.
    let (file, sig) = t.signed("tampered.toml", None, |s| huabei_off(s, 9));
    std::fs::write(&file, huabei_off(&String::from_utf8_lossy(&before), 10)).unwrap();
    let r = apply(&p, &file, &sig).await;
    assert_eq!(error_name(&r), REFUSED, "{r:?}");

    // Properly signed, but older than the running version 7.
    let (file, sig) = t.signed("v6.toml", None, |s| huabei_off(s, 6));
    let r = apply(&p, &file, &sig).await;
    assert_eq!(error_name(&r), REFUSED, "{r:?}");
    assert!(error_text(&r).contains("not newer"), "{r:?}");

    // Properly signed, but not TOML / not a valid configuration.
    let (file, sig) = t.signed("broken.toml", None, |s| {
        huabei_off(s, 9).replacen("[merchant]", "[merchant", 1)
    });
    let r = apply(&p, &file, &sig).await;
    assert_eq!(error_name(&r), INVALID_ARGS, "{r:?}");
    assert!(error_text(&r).contains("TOML"), "{r:?}");
    let (file, sig) = t.signed("no-route.toml", None, |s| {
        huabei_off(s, 9).replacen(
            "scheme = \"wechat\"\npaths = [\"wechat\"]",
            "scheme = \"wechat\"\npaths = [\"nowhere\"]",
            1,
        )
    });
    let r = apply(&p, &file, &sig).await;
    assert_eq!(error_name(&r), INVALID_ARGS, "{r:?}");
    assert!(error_text(&r).contains("nowhere"), "{r:?}");

    // Nothing changed: the file, the version, and Huabei still pays.
    assert_eq!(std::fs::read(&t.merchant).unwrap(), before);
    assert_eq!(p.config_version().await.unwrap(), 7);
    let path = p
        .pay_with_code(3100, "CNY", "still-huabei", none(), &alipay_code("601", 3))
        .await
        .unwrap();
    let sale = tx(&conn, &path).await;
    assert_eq!(settled(&sale, Duration::from_secs(30)).await, "succeeded");
    assert_eq!(sale.funding_channels().await.unwrap(), ["huabei"]);
}

/// A process as uid 65534 with the supplementary group `users` (100): the tests' cashier,
/// once `users` is made an operator group (the test machine has no smartpos-vendor).
fn as_cashier(bus: &TestBus, program: &Path) -> Command {
    let mut c = bus.command("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--groups=100", "--"])
        .arg(program);
    c
}

fn dbus_send(mut c: Command, member: &str) -> (bool, String) {
    let out = c
        .args([
            "--system",
            "--print-reply",
            "--dest=org.smartpos.Payment1",
            "/org/smartpos/Payment1",
            &format!("org.smartpos.Payment1.{member}"),
        ])
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn a_stranger_and_a_cashier_can_neither_hold_the_till_nor_change_its_config() {
    // The project's bus policy, with the vendor group's rules given to `users` (the test
    // machine has no smartpos-vendor group), and paymentd letting `users` sell.
    let policy = std::fs::read_to_string(
        smartpos_tests::workspace().join("dbus/org.smartpos.Payment1.conf"),
    )
    .unwrap()
    .replace("group=\"smartpos-vendor\"", "group=\"users\"");
    let t = terminal("[auth]\noperator_groups = [\"users\"]\n", Some(&policy)).await;
    let (_conn, p) = t.payments().await;
    let (file, sig) = t.signed("v8.toml", None, |s| huabei_off(s, 8));
    let apply_args = [
        "config",
        "apply",
        file.to_str().unwrap(),
        sig.to_str().unwrap(),
    ];

    // A stranger: the bus refuses it everything.
    let (ok, text) = dbus_send(
        as_nobody(&t.bus, Path::new("dbus-send")),
        "BeginInstallWindow",
    );
    assert!(!ok && text.contains("AccessDenied"), "{text}");
    let out = as_nobody(&t.bus, &bin("posctl"))
        .args(apply_args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77), "{out:?}");

    // A cashier may sell…
    let out = as_cashier(&t.bus, &bin("posctl"))
        .args(["sale", "1.00", "--no-wait", "--order-ref", "cashier-1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // …but not close the till for an update or change the merchant configuration.
    let (ok, text) = dbus_send(
        as_cashier(&t.bus, Path::new("dbus-send")),
        "BeginInstallWindow",
    );
    assert!(!ok && text.contains("AccessDenied"), "{text}");
    let out = as_cashier(&t.bus, &bin("posctl"))
        .args(apply_args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77), "{out:?}");
    assert_eq!(p.config_version().await.unwrap(), 7);
}

#[tokio::test]
async fn paymentd_itself_refuses_a_cashier_the_update_methods_when_the_bus_lets_it_through() {
    let loose = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><policy context="default"><allow send_destination="org.smartpos.Payment1"/></policy></busconfig>"#;
    let t = terminal("[auth]\noperator_groups = [\"users\"]\n", Some(loose)).await;
    let (_conn, p) = t.payments().await;
    for member in ["BeginInstallWindow", "EndInstallWindow"] {
        let (ok, text) = dbus_send(as_cashier(&t.bus, Path::new("dbus-send")), member);
        assert!(!ok && text.contains(NOT_ALLOWED), "{member}: {text}");
        assert!(text.contains("install window"), "{member}: {text}");
    }
    let (file, sig) = t.signed("v8.toml", None, |s| huabei_off(s, 8));
    let out = as_cashier(&t.bus, &bin("posctl"))
        .args([
            "config",
            "apply",
            file.to_str().unwrap(),
            sig.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("apply a merchant configuration"),
        "{out:?}"
    );
    assert_eq!(p.sales_in_flight().await.unwrap(), 0);
    assert_eq!(p.config_version().await.unwrap(), 7);
}
