//! The integration-test harness: a private `dbus-daemon` configured like the system bus
//! (default deny, the project's own policy files from `dbus/`), the real daemon binaries
//! started against it, and clean teardown even when a test fails or panics (everything is
//! killed in `Drop`).
//!
//! The daemons are the workspace's own binaries: `make test` builds them first
//! (`cargo build --workspace --bins`); [`bin`] says so when they are missing.

pub mod acquirer;
pub mod contract;
pub mod merchant;
pub mod update;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The path of a workspace binary, built by `cargo build --workspace --bins`.
pub fn bin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let p = target.join(profile).join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (make test does)",
        p.display()
    );
    p
}

/// The system bus's default policy (as Debian's /usr/share/dbus-1/system.conf has it),
/// then our policy files. Nothing is allowed that the real system bus would not allow.
fn bus_config(socket: &Path, policy_dirs: &[PathBuf]) -> String {
    let includes: String = policy_dirs
        .iter()
        .map(|d| format!("  <includedir>{}</includedir>\n", d.display()))
        .collect();
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny send_type="method_call"/>
    <deny own="*"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
{includes}</busconfig>
"#,
        socket = socket.display()
    )
}

/// A private system-style bus. Killed on drop.
pub struct TestBus {
    dir: tempfile::TempDir,
    child: Child,
    address: String,
}

impl TestBus {
    /// A bus with the project's policy files (`dbus/*.conf`).
    pub fn start() -> Self {
        Self::start_with_extra_policy(None)
    }

    /// The same, plus one more policy file, e.g. a loosened one to show that the daemon's own
    /// check still refuses a caller the bus would let through.
    pub fn start_with_extra_policy(extra: Option<&str>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("smartpos-bus-")
            .tempdir()
            .expect("tempdir");
        // Clients of other uids must reach the socket.
        set_mode(dir.path(), 0o755);
        let socket = dir.path().join("system_bus_socket");
        let mut policy_dirs = vec![workspace().join("dbus")];
        if let Some(xml) = extra {
            let d = dir.path().join("extra.d");
            std::fs::create_dir(&d).expect("mkdir extra.d");
            std::fs::write(d.join("extra.conf"), xml).expect("write extra policy");
            policy_dirs.push(d);
        }
        let conf = dir.path().join("bus.conf");
        std::fs::write(&conf, bus_config(&socket, &policy_dirs)).expect("write bus.conf");
        // The bus's own chatter (unknown service users on a dev machine, fd limits) goes to a
        // file beside the socket, so test output shows the daemons' logs only.
        let log = std::fs::File::create(dir.path().join("dbus-daemon.log")).expect("bus log");
        let child = Command::new("dbus-daemon")
            .arg("--nofork")
            .arg("--nopidfile")
            .arg(format!("--config-file={}", conf.display()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dbus-daemon must be installed (apt-get install dbus-daemon)");
        wait_until(
            Duration::from_secs(10),
            || socket.exists(),
            "dbus-daemon socket",
        );
        let address = format!("unix:path={}", socket.display());
        TestBus {
            dir,
            child,
            address,
        }
    }

    /// The address to put in `DBUS_SYSTEM_BUS_ADDRESS`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// A scratch directory that lives as long as the bus.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client connection as the test's own user (root in CI).
    pub async fn connect(&self) -> zbus::Connection {
        zbus::connection::Builder::address(self.address.as_str())
            .expect("address")
            .build()
            .await
            .expect("connect to the test bus")
    }

    /// A command with `DBUS_SYSTEM_BUS_ADDRESS` pointing here.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("DBUS_SYSTEM_BUS_ADDRESS", &self.address);
        c
    }

    /// Start a daemon binary with `args` and wait until it owns `bus_name`.
    pub async fn spawn_daemon(&self, binary: &str, args: &[&str], bus_name: &str) -> Daemon {
        self.spawn_daemon_env(binary, args, &[], bus_name).await
    }

    /// [`Self::spawn_daemon`] with extra environment (what a unit's `Environment=` and the
    /// service manager would give it).
    pub async fn spawn_daemon_env(
        &self,
        binary: &str,
        args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
        bus_name: &str,
    ) -> Daemon {
        let child = self
            .command(bin(binary))
            .args(args)
            .envs(env.iter().copied())
            .env(
                "SMARTPOS_LOG",
                std::env::var("SMARTPOS_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let mut daemon = Daemon {
            child,
            name: binary.to_owned(),
        };
        let conn = self.connect().await;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.expect("DBus proxy");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let name = zbus::names::BusName::try_from(bus_name).expect("bus name");
            if dbus.name_has_owner(name).await.unwrap_or(false) {
                break;
            }
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("{binary} exited before owning {bus_name}: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "{binary} did not own {bus_name} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        daemon
    }
}

impl TestBus {
    /// Start a daemon binary and send it SIGTERM the moment it owns `bus_name` (as systemd
    /// may, stopping a unit that just started); returns how it exited.
    pub async fn start_and_stop_at_name(
        &self,
        binary: &str,
        args: &[&str],
        bus_name: &str,
    ) -> std::process::ExitStatus {
        use futures_util::StreamExt;
        let conn = self.connect().await;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.expect("DBus proxy");
        let mut owners = dbus
            .receive_name_owner_changed_with_args(&[(0, bus_name)])
            .await
            .expect("watch the name");
        let mut child = self
            .command(bin(binary))
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let owned = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(sig) = owners.next().await {
                if sig.args().is_ok_and(|a| a.new_owner().is_some()) {
                    return true;
                }
            }
            false
        })
        .await;
        signal(&child, nix::sys::signal::Signal::SIGTERM);
        assert!(
            matches!(owned, Ok(true)),
            "{binary} did not own {bus_name} within 30 s"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{binary} ignored SIGTERM for 10 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running daemon: SIGTERM on drop, SIGKILL if it does not stop within 5 s.
pub struct Daemon {
    pub child: Child,
    name: String,
}

impl Daemon {
    /// Stop with SIGTERM and return the exit status (a clean stop is success).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        signal(&self.child, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("{} ignored SIGTERM for 5 s", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(&self.child, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let _ = nix::sys::signal::kill(pid, sig);
}

pub(crate) fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Poll `cond` until it holds or `limit` passes (then panic naming `what`).
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Write a file, creating parents; returns its path.
pub fn write_file(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    let mut f = std::fs::File::create(&p).expect("create");
    f.write_all(contents).expect("write");
    p
}

/// A command that runs `program` as uid/gid 65534 (nobody) with no supplementary groups:
/// the "process of another uid" of the authorization tests.
pub fn as_nobody(bus: &TestBus, program: &Path) -> Command {
    let mut c = bus.command("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program);
    c
}

/// A sale's object on the bus, read fresh on every call (no property cache), as a vendor app
/// that polls would see it.
pub async fn tx_proxy(
    conn: &zbus::Connection,
    path: &zbus::zvariant::OwnedObjectPath,
) -> smartpos_bus::payment::TransactionProxy<'static> {
    smartpos_bus::payment::TransactionProxy::builder(conn)
        .path(path.clone())
        .unwrap()
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap()
}
