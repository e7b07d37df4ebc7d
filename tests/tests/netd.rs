//! smartpos-netd on a private bus with the project's policy, probing the acquirer emulator
//! over the shared transport: what a technician sees with `posctl net status`, an endpoint
//! that goes down and comes back, a resolver that never answers, certificates about to
//! expire and expired, and who may trigger probes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use smartpos_bus::network::NetworkProxy;
use smartpos_tests::acquirer::{self, Pace};
use smartpos_tests::{Daemon, TestBus, as_nobody, bin, write_file};

const NAME: &str = "org.smartpos.Network1";

/// A loopback TCP relay to `target` that can be switched off: while off nothing listens on
/// its port, so a connection is refused, as when a server is down.
struct Relay {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
}

impl Relay {
    fn start(target: SocketAddr) -> Relay {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let up = Arc::new(AtomicBool::new(false));
        let flag = up.clone();
        tokio::spawn(async move {
            loop {
                while !flag.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let listener = tokio::net::TcpListener::bind(port).await.unwrap();
                while flag.load(Ordering::SeqCst) {
                    let Ok(Ok((mut client, _))) =
                        tokio::time::timeout(Duration::from_millis(100), listener.accept()).await
                    else {
                        continue;
                    };
                    tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                }
                drop(listener);
            }
        });
        Relay { addr: port, up }
    }

    fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

/// A certificate file valid from a year ago until `days` from now (negative: expired).
fn cert_expiring(dir: &Path, name: &str, days: i64) -> PathBuf {
    let mut p = rcgen::CertificateParams::new(vec!["acquirer.test".into()]).unwrap();
    // rcgen's dates are `time` values; reach "now" from a fixed day with std durations.
    let base = rcgen::date_time_ymd(2020, 1, 1);
    let base_unix = 1_577_836_800u64;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let since_base = Duration::from_secs(now - base_unix);
    p.not_before = base + since_base - Duration::from_secs(365 * 86_400);
    let shift = Duration::from_secs(days.unsigned_abs() * 86_400);
    p.not_after = if days < 0 {
        base + since_base - shift
    } else {
        base + since_base + shift
    };
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    write_file(dir, name, cert.pem().as_bytes())
}

struct Setup {
    bus: TestBus,
    _sim: smartpos_acquirer_sim::Sim,
    relay: Relay,
    _silent_dns: std::net::UdpSocket,
    netd: Daemon,
}

async fn setup(extra_policy: Option<&str>) -> Setup {
    let bus = TestBus::start_with_extra_policy(extra_policy);
    let dir = bus.dir().to_path_buf();
    let sim = acquirer::start(&dir).await;
    acquirer::paymentd_config(&sim, &dir, Pace::Fast, false);
    let ca = sim.pki().path(smartpos_acquirer_sim::pki::files::CA_CERT);
    let relay = Relay::start(sim.local_addr());
    relay.set(true);
    // A resolver that never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let soon = cert_expiring(&dir, "fleet-client.pem", 10);
    let old = cert_expiring(&dir, "old-ca.pem", -3);
    let cfg = format!(
        r#"merchant_config = "{merchant}"
resolvers = ["{dns}"]

[schedule]
endpoint_interval_s = 1
gateway_interval_s = 1
resolver_interval_s = 1
link_poll_ms = 200
timeout_ms = 700

[limits]
probe_min_interval_ms = 60000

[[endpoint]]
name = "fleet"
url = "https://{relay}"
ca_file = "{ca}"
client_cert_file = "{soon}"

[[endpoint]]
name = "alipay-old"
kind = "alipay"
url = "{sim}"
ca_file = "{old}"
"#,
        merchant = dir.join("merchant.toml").display(),
        dns = silent.local_addr().unwrap(),
        relay = relay.addr,
        ca = ca.display(),
        soon = soon.display(),
        sim = sim.base_url(),
        old = old.display(),
    );
    let cfg = write_file(&dir, "smartpos-netd.toml", cfg.as_bytes());
    let netd = bus
        .spawn_daemon("smartpos-netd", &["--config", cfg.to_str().unwrap()], NAME)
        .await;
    Setup {
        bus,
        _sim: sim,
        relay,
        _silent_dns: silent,
        netd,
    }
}

async fn status(p: &NetworkProxy<'_>) -> Value {
    serde_json::from_str(&p.status().await.unwrap()).unwrap()
}

/// Wait until `cond` holds for the status document.
async fn until(p: &NetworkProxy<'_>, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = status(p).await;
        if cond(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn path<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no path {name}: {s:#}"))
}

fn endpoint<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no endpoint {name}: {s:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_sees_the_network_an_endpoint_go_down_and_come_back() {
    let s = setup(None).await;
    let conn = s.bus.connect().await;
    let p = NetworkProxy::new(&conn).await.unwrap();

    // Links come from sysfs: loopback is always there, with its address.
    let links = p.links().await.unwrap();
    let lo = links.iter().find(|l| l.0 == "lo").expect("lo is listed");
    assert!(lo.3.contains(&"127.0.0.1".to_owned()), "{links:?}");

    // The emulator's three acquirer paths are probed through the transport and reachable.
    let st = until(&p, "the acquirer paths to be probed", |s| {
        ["alipay", "wechat", "qra"]
            .iter()
            .all(|n| path(s, n)["code"] == "ok")
    })
    .await;
    assert!(st["online"].as_bool().unwrap());
    let alipay = endpoint(&st, "alipay");
    assert!(
        alipay["last"]["http_status"].as_u64().is_some(),
        "{alipay:#}"
    );
    assert!(alipay["last"]["handshake_ms"].as_f64().unwrap() > 0.0);
    assert!(
        path(&st, "alipay")["reason_en"]
            .as_str()
            .unwrap()
            .starts_with("Alipay reachable: "),
        "{st:#}"
    );
    assert!(p.online().await.unwrap());

    // The resolver never answers: named with its address.
    let st = until(&p, "the silent resolver", |s| {
        s["resolvers"][0]["last_ok"] == false
    })
    .await;
    let detail = st["resolvers"][0]["last_error"]["detail"].as_str().unwrap();
    assert!(detail.contains("timed out at 127.0.0.1:"), "{detail}");

    // The fleet server goes down: the connection is refused, and said so.
    s.relay.set(false);
    let st = until(&p, "the fleet server to be seen down", |s| {
        endpoint(s, "fleet")["last_ok"] == false
    })
    .await;
    let fleet = endpoint(&st, "fleet");
    assert_eq!(fleet["last_error"]["code"], "net.refused", "{fleet:#}");
    assert!(fleet["failing_since"].as_u64().is_some());
    // … and comes back.
    s.relay.set(true);
    let st = until(&p, "the fleet server to recover", |s| {
        endpoint(s, "fleet")["last_ok"] == true
    })
    .await;
    let fleet = endpoint(&st, "fleet");
    assert!(fleet["loss"].as_f64().unwrap() > 0.0, "{fleet:#}");
    assert!(fleet["failing_since"].is_null());
    assert_eq!(fleet["last_error"]["code"], "net.refused");

    // Certificates: the fleet client certificate expires in 10 days (a warning), the CA
    // pinned for "alipay-old" expired 3 days ago, and that path is down because of it.
    let certs = st["certificates"].as_array().unwrap();
    let soon = certs
        .iter()
        .find(|c| c["owner"] == "fleet" && c["role"] == "client")
        .unwrap();
    assert_eq!(soon["state"], "expires_soon", "{soon:#}");
    let left = soon["days_left"].as_i64().unwrap();
    assert!((9..=10).contains(&left), "{soon:#}");
    let old = path(&st, "alipay-old");
    assert_eq!(old["online"], false);
    assert_eq!(old["code"], "cert.expired", "{old:#}");
    assert!(
        old["reason_en"]
            .as_str()
            .unwrap()
            .contains("the pinned CA certificate"),
        "{old:#}"
    );
    let findings = p.diagnose().await.unwrap();
    let f = findings
        .iter()
        .find(|f| f.subject == "cert:fleet:client")
        .unwrap();
    assert_eq!((f.group, f.verdict.as_str()), (6, "warn"));

    // `posctl net status` tells it in words, `--json` as the document.
    let out = s
        .bus
        .command(bin("posctl"))
        .args(["net", "status"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Online: yes"), "{text}");
    assert!(text.contains("Alipay reachable"), "{text}");
    assert!(text.contains("expires_soon"), "{text}");
    let out = s
        .bus
        .command(bin("posctl"))
        .args(["net", "status", "--json"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["online"], true);
    drop(s.netd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_on_demand_are_for_the_stack_and_are_rate_limited() {
    let s = setup(None).await;

    // A technician (root here) probes one endpoint now …
    let out = s
        .bus
        .command(bin("posctl"))
        .args(["net", "probe", "qra", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(endpoint(&doc, "qra")["probes"].as_u64().unwrap() >= 1);

    // … but not again straight away: the scheduled probes carry on meanwhile.
    let conn = s.bus.connect().await;
    let p = NetworkProxy::new(&conn).await.unwrap();
    let err = p.probe("qra").await.unwrap_err();
    match err {
        zbus::Error::MethodError(name, msg, _) => {
            assert_eq!(name.as_str(), "org.smartpos.Error.Busy");
            assert!(msg.unwrap_or_default().contains("try again in"));
        }
        other => panic!("expected Busy, got {other}"),
    }
    // An endpoint that does not exist is named as such.
    let err = p.probe("paypal").await.unwrap_err();
    assert!(
        matches!(&err, zbus::Error::MethodError(n, _, _) if n.as_str() == "org.smartpos.Error.NotFound"),
        "{err}"
    );

    // A process of another uid may read the state, but the bus refuses its Probe.
    let out = as_nobody(&s.bus, &bin("posctl"))
        .args(["net", "status", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_nobody(&s.bus, &bin("posctl"))
        .args(["net", "probe"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(77),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const LOOSE_POLICY: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><policy context="default"><allow send_destination="org.smartpos.Network1"/></policy></busconfig>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_refuses_a_strangers_probe_even_when_the_bus_lets_it_through() {
    let s = setup(Some(LOOSE_POLICY)).await;
    let out = as_nobody(&s.bus, &bin("posctl"))
        .args(["net", "probe", "alipay"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{err}");
    assert!(err.contains("uid 65534 may not trigger probes"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_what_its_interface_xml_says() {
    let s = setup(None).await;
    let conn = s.bus.connect().await;
    let intro = zbus::fdo::IntrospectableProxy::builder(&conn)
        .destination(NAME)
        .unwrap()
        .path("/org/smartpos/Network1")
        .unwrap()
        .build()
        .await
        .unwrap();
    let served = intro.introspect().await.unwrap();
    smartpos_tests::contract::assert_matches(&served, NAME);
}
