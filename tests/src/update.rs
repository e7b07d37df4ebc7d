//! The update tests' real parts: RAUC (`rauc service` on the test bus, file-backed A/B slots,
//! a `custom` bootloader backend that keeps its state in files, bundles signed by a throwaway
//! CA made here), goosebit (the DDI server, from the venv `tools/goosebit-venv.sh` makes)
//! on loopback behind TLS from a throwaway CA, and logind's `Reboot` as the one thing of the
//! machine that is simulated: the test is told, then "reboots" by restarting RAUC with the
//! slot the bootloader backend would boot, and the daemons.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{TestBus, workspace, write_file};

/// Run a command, panic with its output if it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An X.509 CA made with openssl.
pub struct Ca {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        std::fs::create_dir_all(dir).expect("mkdir");
        let (cert, key) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args([
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]));
        Ca { cert, key }
    }

    /// A leaf certificate signed by this CA, with `ext` lines (openssl x509 -extfile).
    pub fn leaf(&self, dir: &Path, name: &str, subject: &str, ext: &str) -> (PathBuf, PathBuf) {
        let (cert, key, csr) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
            dir.join(format!("{name}.csr")),
        );
        let extfile = write_file(dir, &format!("{name}.ext"), ext.as_bytes());
        run(Command::new("openssl")
            .args(["req", "-newkey", "rsa:2048", "-nodes"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr)
            .args(["-subj", subject]));
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "30", "-CAcreateserial"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&self.cert)
            .arg("-CAkey")
            .arg(&self.key)
            .arg("-out")
            .arg(&cert)
            .arg("-extfile")
            .arg(&extfile));
        (cert, key)
    }
}

/// File-backed A/B slots, the bootloader backend, RAUC's system.conf and bundle signing.
pub struct RaucEnv {
    pub dir: PathBuf,
    pub ca: Ca,
    signer: (PathBuf, PathBuf),
    pub conf: PathBuf,
    boot: PathBuf,
}

pub const COMPATIBLE: &str = "test-pos-x86";

impl RaucEnv {
    pub fn new(dir: &Path) -> RaucEnv {
        RaucEnv::with_slot_size(dir, 8 * 1024 * 1024)
    }

    /// Slots of `slot_bytes` each (sparse files), for bundles bigger than the tests' own.
    pub fn with_slot_size(dir: &Path, slot_bytes: u64) -> RaucEnv {
        let dir = dir.join("rauc");
        for d in ["slots", "mnt", "boot", "ca"] {
            std::fs::create_dir_all(dir.join(d)).expect("mkdir");
        }
        let ca = Ca::new(&dir.join("ca"), "release-ca");
        let signer = ca.leaf(
            &dir.join("ca"),
            "signer",
            "/CN=release signer",
            "keyUsage=critical,digitalSignature\n",
        );
        for s in ["a", "b"] {
            let f = std::fs::File::create(dir.join(format!("slots/{s}.img"))).expect("slot");
            f.set_len(slot_bytes).expect("truncate");
        }
        let boot = dir.join("boot");
        // RAUC's custom bootloader interface: get-primary, set-primary, get-state, set-state.
        let script = format!(
            "#!/bin/sh\nd={b}\ncase \"$1\" in\n\
             get-primary) cat $d/primary 2>/dev/null || echo A ;;\n\
             set-primary) echo \"$2\" > $d/primary ;;\n\
             get-state) cat $d/state.$2 2>/dev/null || echo good ;;\n\
             set-state) echo \"$3\" > $d/state.$2 ;;\n\
             *) exit 1 ;;\nesac\n",
            b = boot.display()
        );
        let backend = write_file(&dir, "bootloader.sh", script.as_bytes());
        crate::set_mode(&backend, 0o755);
        let conf = write_file(&dir, "system.conf", format!(
            "[system]\ncompatible={COMPATIBLE}\nbootloader=custom\nstatusfile={d}/central.raucs\nmountprefix={d}/mnt\n\
             [keyring]\npath={ca}\n[handlers]\nbootloader-custom-backend={be}\n\
             [slot.rootfs.0]\ndevice={d}/slots/a.img\ntype=ext4\nbootname=A\n\
             [slot.rootfs.1]\ndevice={d}/slots/b.img\ntype=ext4\nbootname=B\n",
            d = dir.display(), ca = ca.cert.display(), be = backend.display()).as_bytes());
        RaucEnv {
            dir,
            ca,
            signer,
            conf,
            boot,
        }
    }

    /// A plain bundle of `version` with a small rootfs image, signed by `signer` (default:
    /// the release CA's signer).
    pub fn bundle(&self, version: &str, signer: Option<(&Path, &Path)>, pad: u64) -> PathBuf {
        let src = self.dir.join(format!("src-{version}"));
        let tree = src.join("tree");
        std::fs::create_dir_all(tree.join("etc")).expect("mkdir");
        write_file(&tree, "etc/smartpos-version", version.as_bytes());
        if pad > 0 {
            // Incompressible filler, so the bundle has the size asked for.
            let mut data = vec![0u8; usize::try_from(pad).expect("pad")];
            let mut x = 0x2545_f491_u32;
            for b in &mut data {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x.to_le_bytes()[0];
            }
            std::fs::write(tree.join("filler"), data).expect("filler");
        }
        let bundle_dir = src.join("bundle");
        std::fs::create_dir_all(&bundle_dir).expect("mkdir");
        let image_mb = 4 + pad / (1024 * 1024) * 11 / 10;
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-d"])
            .arg(&tree)
            .arg(bundle_dir.join("rootfs.ext4"))
            .arg(format!("{image_mb}M")));
        write_file(
            &bundle_dir,
            "manifest.raucm",
            format!(
                "[update]\ncompatible={COMPATIBLE}\nversion={version}\n[bundle]\nformat=plain\n\
             [image.rootfs]\nfilename=rootfs.ext4\n"
            )
            .as_bytes(),
        );
        let (cert, key) = signer.unwrap_or((&self.signer.0, &self.signer.1));
        let out = self.dir.join(format!("pos-{version}.raucb"));
        let _ = std::fs::remove_file(&out);
        run(Command::new("rauc")
            .arg("bundle")
            .arg(format!("--cert={}", cert.display()))
            .arg(format!("--key={}", key.display()))
            .arg(&bundle_dir)
            .arg(&out));
        out
    }

    /// What the bootloader backend would boot next.
    pub fn primary(&self) -> String {
        std::fs::read_to_string(self.boot.join("primary"))
            .map_or_else(|_| "A".into(), |s| s.trim().to_owned())
    }

    /// good / bad as RAUC last marked `bootname`.
    pub fn boot_state(&self, bootname: &str) -> String {
        std::fs::read_to_string(self.boot.join(format!("state.{bootname}")))
            .map_or_else(|_| "good".into(), |s| s.trim().to_owned())
    }

    /// `rauc service` on the test bus, booted from `bootname`.
    pub fn service(&self, bus: &TestBus, bootname: &str) -> Rauc {
        let log =
            std::fs::File::create(self.dir.join(format!("rauc-{bootname}.log"))).expect("log");
        let child = bus
            .command("rauc")
            .arg("service")
            .arg(format!("--conf={}", self.conf.display()))
            .arg(format!("--override-boot-slot={bootname}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("rauc must be installed (apt-get install rauc)");
        let r = Rauc { child };
        wait_for_name(bus, "de.pengutronix.rauc");
        r
    }
}

/// The bus policy the update tests add: RAUC's own (its `rauc-service` package ships one
/// that lets root own the name) and logind's, for the simulated reboot.
pub const EXTRA_POLICY: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy user="root">
    <allow own="de.pengutronix.rauc"/>
    <allow send_destination="de.pengutronix.rauc"/>
    <allow own="org.freedesktop.login1"/>
    <allow send_destination="org.freedesktop.login1"/>
  </policy>
</busconfig>
"#;

fn wait_for_name(bus: &TestBus, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = bus
            .command("busctl")
            .arg(format!("--address={}", bus.address()))
            .args(["status", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if out.is_ok_and(|s| s.success()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not appear on the bus"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub struct Rauc {
    child: Child,
}

impl Drop for Rauc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// goosebit on 127.0.0.1 behind TLS, with its management API driven by curl.
pub struct Goosebit {
    child: Child,
    pub url: String,
    pub ca: PathBuf,
    pub dir: PathBuf,
    token: String,
}

impl Drop for Goosebit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The venv's bin directory (made once by tools/goosebit-venv.sh).
fn venv() -> PathBuf {
    let out = run(&mut Command::new(
        workspace().join("tools/goosebit-venv.sh"),
    ));
    PathBuf::from(out.trim())
}

/// A migrated empty goosebit database, made once and copied per test (the migration takes
/// longer than a whole update).
fn template_db(bin: &Path) -> PathBuf {
    static ONCE: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut g = ONCE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(p) = &*g {
        return p.clone();
    }
    let dir =
        std::env::temp_dir().join(format!("smartpos-goosebit-template-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let site = std::fs::read_dir(bin.parent().expect("venv").join("lib"))
        .expect("venv lib")
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages"))
        .next()
        .expect("site-packages");
    write_file(&dir, "pyproject.toml", format!(
        "[tool.aerich]\ntortoise_orm = \"goosebit.db.config.TORTOISE_CONF\"\nlocation = \"{}/goosebit/db/migrations\"\nsrc_folder = \"./.\"\n",
        site.display()).as_bytes());
    let db = dir.join("db.sqlite3");
    run(Command::new(bin.join("aerich"))
        .arg("upgrade")
        .current_dir(&dir)
        .env("GOOSEBIT_DB_URI", format!("sqlite://{}", db.display())));
    *g = Some(db.clone());
    db
}

impl Goosebit {
    pub fn start(dir: &Path) -> Goosebit {
        let bin = venv();
        let dir = dir.join("goosebit");
        std::fs::create_dir_all(dir.join("artifacts")).expect("mkdir");
        let db = dir.join("db.sqlite3");
        std::fs::copy(template_db(&bin), &db).expect("copy db");
        let ca = Ca::new(&dir, "fleet-ca");
        let (cert, key) = ca.leaf(
            &dir,
            "fleet",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        );
        let port = free_port();
        let log = std::fs::File::create(dir.join("goosebit.log")).expect("log");
        let child = Command::new(bin.join("uvicorn"))
            .args([
                "goosebit:app",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .arg("--ssl-keyfile")
            .arg(&key)
            .arg("--ssl-certfile")
            .arg(&cert)
            .current_dir(&dir)
            .env("GOOSEBIT_DB_URI", format!("sqlite://{}", db.display()))
            .env("GOOSEBIT_ARTIFACTS_DIR", dir.join("artifacts"))
            .env("GOOSEBIT_POLL_TIME", "00:00:01")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("uvicorn");
        let mut g = Goosebit {
            child,
            url: format!("https://127.0.0.1:{port}"),
            ca: ca.cert,
            dir,
            token: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = g.curl(&[
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("{}/login", g.url),
            ]);
            if ok.is_some_and(|c| c != "000") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "goosebit did not start: see {}",
                g.dir.join("goosebit.log").display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let setup = g
            .curl(&[
                "-X",
                "POST",
                &format!("{}/setup", g.url),
                "-d",
                "username=admin@example.com&password=admin",
            ])
            .expect("setup");
        let login = g
            .curl(&[
                "-X",
                "POST",
                &format!("{}/login", g.url),
                "-d",
                "username=admin@example.com&password=admin",
            ])
            .expect("login");
        let v: serde_json::Value = serde_json::from_str(&login)
            .unwrap_or_else(|e| panic!("login {login:?} ({setup:?}): {e}"));
        g.token = v["access_token"].as_str().expect("token").to_owned();
        g
    }

    fn curl(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&self.ca)
            .args(args)
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn api(&self, method: &str, path: &str, extra: &[&str]) -> String {
        let auth = format!("Authorization: Bearer {}", self.token);
        let url = format!("{}{path}", self.url);
        let mut args = vec!["-X", method, "-H", &auth, &url];
        args.extend_from_slice(extra);
        self.curl(&args).expect("curl")
    }

    /// Upload a bundle; returns goosebit's software id.
    pub fn upload(&self, bundle: &Path) -> u64 {
        let form = format!("file=@{}", bundle.display());
        let out = self.api("PUT", "/api/v1/software", &["-F", &form]);
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("upload: {out}: {e}"));
        v["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("upload answered {out}"))
    }

    /// Assign software `id` to `device`.
    pub fn assign(&self, device: &str, id: u64) {
        let body = format!(r#"{{"devices":["{device}"],"software":"{id}"}}"#);
        let out = self.api(
            "PATCH",
            "/api/v1/devices",
            &["-H", "Content-Type: application/json", "-d", &body],
        );
        assert!(!out.contains("detail"), "assign: {out}");
    }

    /// The device as goosebit's management API lists it.
    pub fn device(&self, device: &str) -> Option<serde_json::Value> {
        let out = self.api("GET", "/api/v1/devices", &[]);
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        let list = v
            .get("devices")
            .and_then(|d| d.as_array())
            .cloned()
            .or_else(|| v.as_array().cloned())?;
        list.into_iter().find(|d| d["id"].as_str() == Some(device))
    }

    /// The stored artifact of an upload (to tamper with it).
    pub fn artifacts(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.join("artifacts")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p)
                } else {
                    out.push(p)
                }
            }
        }
        out
    }
}

/// logind's Reboot, as the machine would answer it: the test is told, and reboots.
pub struct Logind {
    _conn: zbus::Connection,
    pub reboots: tokio::sync::mpsc::UnboundedReceiver<()>,
}

struct Manager(tokio::sync::mpsc::UnboundedSender<()>);

#[zbus::interface(name = "org.freedesktop.login1.Manager")]
impl Manager {
    fn reboot(&self, _interactive: bool) {
        let _ = self.0.send(());
    }
}

impl Logind {
    pub async fn start(bus: &TestBus) -> Logind {
        let (tx, reboots) = tokio::sync::mpsc::unbounded_channel();
        let conn = zbus::connection::Builder::address(bus.address())
            .expect("address")
            .name("org.freedesktop.login1")
            .expect("name")
            .serve_at("/org/freedesktop/login1", Manager(tx))
            .expect("serve")
            .build()
            .await
            .expect("own org.freedesktop.login1 on the test bus");
        Logind {
            _conn: conn,
            reboots,
        }
    }
}

/// otad's configuration for a test.
pub fn otad_config(
    dir: &Path,
    server: Option<&Goosebit>,
    device: &str,
    selfcheck: &[&str],
    deadline_s: u64,
) -> PathBuf {
    let server = server.map(|g| Fleet {
        url: &g.url,
        ca: &g.ca,
        token: None,
    });
    otad_config_for(dir, server, device, selfcheck, deadline_s)
}

/// The fleet server otad is pointed at, and the token it shows.
pub struct Fleet<'a> {
    pub url: &'a str,
    pub ca: &'a Path,
    /// `("target_token_file" | "gateway_token_file", token)`.
    pub token: Option<(&'a str, &'a str)>,
}

/// otad's configuration for a test, for any DDI server.
pub fn otad_config_for(
    dir: &Path,
    server: Option<Fleet<'_>>,
    device: &str,
    selfcheck: &[&str],
    deadline_s: u64,
) -> PathBuf {
    let state = dir.join("otad-state");
    std::fs::create_dir_all(&state).expect("mkdir");
    let version = write_file(dir, "factory-version", b"1.0.0\n");
    let names: Vec<String> = selfcheck.iter().map(|n| format!("{n:?}")).collect();
    let server = server.map_or(String::new(), |f| {
        let token = f.token.map_or(String::new(), |(key, token)| {
            let file = write_file(dir, "fleet-token", token.as_bytes());
            crate::set_mode(&file, 0o600);
            format!("{key} = \"{}\"\n", file.display())
        });
        format!(
            "[server]\nurl = \"{}\"\ncontroller_id = \"{device}\"\nca_file = \"{}\"\n{token}",
            f.url,
            f.ca.display()
        )
    });
    write_file(dir, "otad.toml", format!(
        "{server}\n[device]\nhw_boardname = \"{COMPATIBLE}\"\nversion_file = \"{}\"\n\
         [polling]\ndefault_sleep_s = 1\nactive_sleep_s = 1\nerror_backoff_s = 1\nerror_backoff_max_s = 4\n\
         [download]\ndir = \"{}\"\nfree_space_margin_bytes = 0\n\
         [selfcheck]\nbus_names = [{}]\ndeadline_s = {deadline_s}\n",
        version.display(), state.display(), names.join(", ")).as_bytes())
}

/// A TCP proxy in front of a server that cuts the first connection whose answer reaches
/// `cut_at` bytes (a download broken off half-way), and counts every byte the server sent.
pub struct CuttingProxy {
    pub port: u16,
    pub from_server: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CuttingProxy {
    pub fn start(upstream: u16, cut_at: u64) -> CuttingProxy {
        use std::io::{Read, Write};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let from_server = Arc::new(AtomicU64::new(0));
        let cut = Arc::new(AtomicBool::new(false));
        let (total, done) = (from_server.clone(), cut.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (mut c_read, mut s_write) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_read, &mut s_write);
                    let _ = s_write.shutdown(std::net::Shutdown::Write);
                });
                let (total, done) = (total.clone(), done.clone());
                std::thread::spawn(move || {
                    let (mut s_read, mut c_write) = (server, client);
                    let mut buf = [0u8; 16 * 1024];
                    let mut this = 0u64;
                    loop {
                        let n = match s_read.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if c_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        this += n as u64;
                        total.fetch_add(n as u64, Ordering::SeqCst);
                        if this >= cut_at && !done.swap(true, Ordering::SeqCst) {
                            let _ = c_write.shutdown(std::net::Shutdown::Both);
                            let _ = s_read.shutdown(std::net::Shutdown::Both);
                            break;
                        }
                    }
                    let _ = c_write.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        CuttingProxy {
            port,
            from_server,
            cut,
        }
    }
}

/// `make demo`'s update ending: goosebit offers 1.1.0, otad installs it into slot B, the
/// terminal reboots (RAUC restarted from B, the daemons restarted), the new system passes its
/// self-check and is marked good, and goosebit shows success. Returns whether all went so.
pub async fn demo(step: impl Fn(u32, &str)) -> bool {
    use zbus::proxy::CacheProperties;
    let bus = TestBus::start_with_extra_policy(Some(EXTRA_POLICY));
    let dir = bus.dir().to_path_buf();
    step(
        12,
        "The fleet server (goosebit on loopback) offers version 1.1.0 to this terminal, running 1.0.0 from slot A",
    );
    let rauc_env = RaucEnv::new(&dir);
    let bundle = rauc_env.bundle("1.1.0", None, 0);
    let goosebit = Goosebit::start(&dir);
    let mut logind = Logind::start(&bus).await;
    let rauc = rauc_env.service(&bus, "A");
    let config = otad_config(&dir, Some(&goosebit), "pos-demo", &[], 30);
    let c = config.display().to_string();
    let mut otad = bus
        .spawn_daemon("smartpos-otad", &["--config", &c], "org.smartpos.Update1")
        .await;
    let conn = bus.connect().await;
    let proxy = || async {
        smartpos_bus::update::UpdateProxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .expect("Update1 proxy")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while goosebit
        .device("pos-demo")
        .is_none_or(|d| d["sw_version"] != "1.0.0")
    {
        if Instant::now() > deadline {
            println!("goosebit never saw the terminal");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let id = goosebit.upload(&bundle);
    goosebit.assign("pos-demo", id);
    let _ = proxy().await.check().await;
    if tokio::time::timeout(Duration::from_secs(60), logind.reboots.recv())
        .await
        .is_err()
    {
        println!("the update was not installed");
        return false;
    }
    let p = proxy().await;
    println!(
        "installed into slot {}: state {}, pending {}",
        rauc_env.primary(),
        p.state().await.unwrap_or_default(),
        p.pending_version().await.unwrap_or_default()
    );
    step(
        13,
        "Simulated reboot into slot B: the new system checks itself, is marked good, and goosebit hears success",
    );
    let _ = otad.terminate();
    drop(rauc);
    let _rauc = rauc_env.service(&bus, "B");
    let _otad = bus
        .spawn_daemon("smartpos-otad", &["--config", &c], "org.smartpos.Update1")
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = goosebit.device("pos-demo");
        if let Some(d) = d
            .as_ref()
            .filter(|d| d["last_state"] == "Finished" && d["sw_version"] == "1.1.0")
        {
            let p = proxy().await;
            println!(
                "slot B is {}; otad: state {}, running {}; goosebit: {} {}",
                rauc_env.boot_state("B"),
                p.state().await.unwrap_or_default(),
                p.current_version().await.unwrap_or_default(),
                d["last_state"],
                d["sw_version"]
            );
            let out = bus
                .command(crate::bin("posctl"))
                .args(["update", "status"])
                .output();
            if let Ok(out) = out {
                print!("{}", String::from_utf8_lossy(&out.stdout));
            }
            return rauc_env.boot_state("B") == "good";
        }
        if Instant::now() > deadline {
            println!("goosebit did not show success: {d:?}");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// HTTPS in front of a plain-HTTP DDI server on loopback (hawkbit_mock serves plain HTTP: its
/// HTTPS feature would bring a second crypto library the project bans). otad follows only
/// `https://` links to its own server, so the `http://` links in the DDI answers (JSON) are
/// rewritten to this front; every other body (the artifacts) streams through untouched.
/// Its CA is a throwaway one made here, the only CA otad trusts for the server.
pub struct TlsFront {
    pub url: String,
    pub ca: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

type FrontBody = http_body_util::combinators::BoxBody<bytes::Bytes, hyper::Error>;

impl TlsFront {
    /// `upstream` is the plain server's base URL, `http://127.0.0.1:PORT`.
    pub fn start(dir: &Path, upstream: &str) -> TlsFront {
        use std::sync::Arc;
        let dir = dir.join("tls-front");
        let ca = Ca::new(&dir, "fleet-ca");
        let (cert, key) = ca.leaf(
            &dir,
            "fleet",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        );
        let certs: Vec<_> =
            rustls_pemfile::certs(&mut std::fs::read(&cert).expect("cert").as_slice())
                .collect::<Result<_, _>>()
                .expect("certs");
        let key = rustls_pemfile::private_key(&mut std::fs::read(&key).expect("key").as_slice())
            .expect("key")
            .expect("a key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        );
        let upstream_port: u16 = upstream
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .expect("upstream port");
        let rewrite = (upstream.trim_end_matches('/').to_owned(), url.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let rewrite = Arc::new(rewrite);
                let serve = async {
                    loop {
                        let Ok((tcp, _)) = listener.accept().await else {
                            continue;
                        };
                        let (acceptor, rewrite) = (acceptor.clone(), rewrite.clone());
                        tokio::spawn(async move {
                            let Ok(tls) = acceptor.accept(tcp).await else {
                                return;
                            };
                            let svc = hyper::service::service_fn(move |req| {
                                forward(req, upstream_port, rewrite.clone())
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                                .await;
                        });
                    }
                };
                tokio::select! {
                    () = serve => {}
                    _ = stopped => {}
                }
            });
        });
        TlsFront {
            url,
            ca: ca.cert,
            stop: Some(stop),
        }
    }
}

/// One request to the plain server; a JSON answer has its links rewritten.
async fn forward(
    req: hyper::Request<hyper::body::Incoming>,
    upstream: u16,
    rewrite: std::sync::Arc<(String, String)>,
) -> Result<hyper::Response<FrontBody>, hyper::Error> {
    use http_body_util::{BodyExt, Full};
    let tcp = match tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await {
        Ok(t) => t,
        Err(e) => {
            let mut r = hyper::Response::new(
                Full::new(bytes::Bytes::from(e.to_string()))
                    .map_err(|n| match n {})
                    .boxed(),
            );
            *r.status_mut() = hyper::StatusCode::BAD_GATEWAY;
            return Ok(r);
        }
    };
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let answer = sender
        .send_request(hyper::Request::from_parts(parts, Full::new(body)))
        .await?;
    let json = answer
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !json {
        return Ok(answer.map(BodyExt::boxed));
    }
    let (mut parts, body) = answer.into_parts();
    let text =
        String::from_utf8_lossy(&body.collect().await?.to_bytes()).replace(&rewrite.0, &rewrite.1);
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    Ok(hyper::Response::from_parts(
        parts,
        Full::new(bytes::Bytes::from(text))
            .map_err(|n| match n {})
            .boxed(),
    ))
}
