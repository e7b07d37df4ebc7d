//! `make bench-update`: what one remote update costs the terminal, measured on loopback with
//! the real parts (goosebit, RAUC, otad on a private bus), in the build profile this binary
//! was built with (the make target builds both release).
//!
//! For each bundle size (MiB, default 5 and 50): the bytes goosebit sent (counted by a proxy
//! in front of it) and the time from "deployment offered" (the assignment) to "installed,
//! awaiting reboot"; otad's CPU time over that span (download, hashes, bus; RAUC's own
//! install work is in RAUC's process) and its peak RSS (VmHWM). Then otad idle: RSS and
//! wake-ups (context switches of all its threads) per hour with no fleet server, and the
//! wake-ups one poll of a fleet server adds.
//!
//!   bench-update [SIZE_MIB ... | --no-bundles] [--idle-seconds N]

use std::path::Path;
use std::time::{Duration, Instant};

use smartpos_tests::update::{
    CuttingProxy, Fleet, Goosebit, Logind, RaucEnv, otad_config, otad_config_for,
};
use smartpos_tests::{Daemon, TestBus};

/// CPU time (user + system, all threads) of `pid`.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    // /proc counts in USER_HZ, which Linux fixes at 100 for user space (proc(5)).
    Duration::from_millis(ticks * 10)
}

/// A `VmRSS`-style line of /proc/PID/status, in KiB.
fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("status field")
}

/// Context switches of all threads of `pid`: each is the process waking up (or being
/// preempted, which on an idle daemon does not happen).
fn wakeups(pid: u32) -> u64 {
    let mut n = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .flatten()
    {
        let s = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        for l in s.lines() {
            for key in ["voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"] {
                if let Some(v) = l.strip_prefix(key) {
                    n += v.trim().parse::<u64>().unwrap_or(0);
                }
            }
        }
    }
    n
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

async fn otad(bus: &TestBus, config: &Path) -> Daemon {
    let c = config.display().to_string();
    bus.spawn_daemon("smartpos-otad", &["--config", &c], "org.smartpos.Update1")
        .await
}

async fn one_update(mib: u64) {
    let bus = TestBus::start_with_extra_policy(Some(smartpos_tests::update::EXTRA_POLICY));
    let slot = (mib + 16) * 2 * 1024 * 1024;
    let rauc_env = RaucEnv::with_slot_size(bus.dir(), slot);
    let bundle = rauc_env.bundle("1.1.0", None, mib * 1024 * 1024);
    let size = std::fs::metadata(&bundle).expect("bundle").len();
    let goosebit = Goosebit::start(bus.dir());
    let proxy = CuttingProxy::start(port_of(&goosebit.url), u64::MAX);
    let _logind = Logind::start(&bus).await;
    let _rauc = rauc_env.service(&bus, "A");
    let through = format!("https://127.0.0.1:{}", proxy.port);
    let config = otad_config_for(
        bus.dir(),
        Some(Fleet {
            url: &through,
            ca: &goosebit.ca,
            token: None,
        }),
        "pos-bench",
        &[],
        30,
    );
    let daemon = otad(&bus, &config).await;
    let pid = daemon.child.id();
    let conn = bus.connect().await;
    let update = smartpos_bus::update::UpdateProxy::builder(&conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .expect("proxy");
    let deadline = Instant::now() + Duration::from_secs(60);
    while goosebit
        .device("pos-bench")
        .is_none_or(|d| d["sw_version"] != "1.0.0")
    {
        assert!(Instant::now() < deadline, "goosebit never saw the terminal");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = goosebit.upload(&bundle);
    let hwm_before = status_kib(pid, "VmHWM:");
    let (cpu0, bytes0) = (
        cpu(pid),
        proxy.from_server.load(std::sync::atomic::Ordering::SeqCst),
    );
    let t0 = Instant::now();
    goosebit.assign("pos-bench", id);
    let _ = update.check().await;
    let mut downloaded_at = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let state = update.state().await.unwrap_or_default();
        if downloaded_at.is_none() && matches!(state.as_str(), "installing" | "awaiting-reboot") {
            downloaded_at = Some(t0.elapsed());
        }
        if state == "awaiting-reboot" {
            break;
        }
        assert!(
            state != "failed" && Instant::now() < deadline,
            "the update did not install: {state} {:?}",
            update.last_error().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = t0.elapsed();
    let (cpu1, bytes1) = (
        cpu(pid),
        proxy.from_server.load(std::sync::atomic::Ordering::SeqCst),
    );
    let hwm = status_kib(pid, "VmHWM:");
    println!(
        "bundle {mib} MiB ({size} bytes): offered -> installed, awaiting reboot in {:.2} s \
         (downloaded and verified after {:.2} s); {} bytes from the server; otad CPU {:.2} s; \
         otad peak RSS {} KiB (before the update {} KiB)",
        total.as_secs_f64(),
        downloaded_at.unwrap_or(total).as_secs_f64(),
        bytes1 - bytes0,
        (cpu1 - cpu0).as_secs_f64(),
        hwm,
        hwm_before,
    );
}

async fn idle(seconds: u64) {
    // No fleet server: the daemon only waits for the bus.
    let bus = TestBus::start_with_extra_policy(Some(smartpos_tests::update::EXTRA_POLICY));
    let rauc_env = RaucEnv::new(bus.dir());
    let rauc = rauc_env.service(&bus, "A");
    let config = otad_config(bus.dir(), None, "pos-idle", &[], 30);
    // The tests poll every second; a terminal in the field keeps the shipped 300 s.
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("default_sleep_s = 1\n", "default_sleep_s = 300\n"),
    )
    .expect("config");
    let daemon = otad(&bus, &config).await;
    let pid = daemon.child.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let w0 = wakeups(pid);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let w = wakeups(pid) - w0;
    println!(
        "otad idle, no fleet server: RSS {} KiB; {w} wake-ups in {seconds} s = {} per hour",
        status_kib(pid, "VmRSS:"),
        w * 3600 / seconds
    );
    drop(daemon);
    drop(rauc);

    // Against goosebit polled every second: the wake-ups one poll costs.
    let bus = TestBus::start_with_extra_policy(Some(smartpos_tests::update::EXTRA_POLICY));
    let rauc_env = RaucEnv::new(bus.dir());
    let _rauc = rauc_env.service(&bus, "A");
    let goosebit = Goosebit::start(bus.dir());
    let config = otad_config(bus.dir(), Some(&goosebit), "pos-idle", &[], 30);
    let daemon = otad(&bus, &config).await;
    let pid = daemon.child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    while goosebit.device("pos-idle").is_none() {
        assert!(Instant::now() < deadline, "goosebit never saw the terminal");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let polls = seconds.min(30);
    let w0 = wakeups(pid);
    tokio::time::sleep(Duration::from_secs(polls)).await;
    let w = wakeups(pid) - w0;
    println!(
        "otad polling goosebit every 1 s: RSS {} KiB; {w} wake-ups in {polls} s, about {:.1} \
         per poll; at the default 300 s interval that adds about {} per hour",
        status_kib(pid, "VmRSS:"),
        w as f64 / polls as f64,
        w * 12 / polls
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut sizes = Vec::new();
    let mut idle_seconds = 60;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--no-bundles" {
            sizes.push(0);
        } else if a == "--idle-seconds" {
            idle_seconds = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--idle-seconds N");
        } else {
            sizes.push(a.parse::<u64>().expect("a bundle size in MiB"));
        }
    }
    if sizes.is_empty() {
        sizes = vec![5, 50];
    }
    println!(
        "profile: {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    for mib in sizes.into_iter().filter(|m| *m > 0) {
        one_update(mib).await;
    }
    if idle_seconds > 0 {
        idle(idle_seconds).await;
    }
}
