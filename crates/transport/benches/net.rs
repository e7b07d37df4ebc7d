//! The terminal's own work per network step, against the acquirer emulator on loopback:
//!
//! - one probe (`Transport::probe`: TCP connect, TLS handshake with the pinned CA, a `HEAD`
//!   and its answer) over a fresh connection — what netd spends per probe;
//! - one request and its answer over a fresh connection, and over a kept-alive one.
//!
//! For each, the CPU time of the client's thread (the client runs on a current-thread
//! runtime: hyper's connection task runs there too; the emulator runs on its own threads) and
//! the wall time. Run: `cargo bench -p smartpos-transport --bench net -- 300` (or
//! `make bench-net`, which adds the payment sale path's fresh/kept-alive figures).

use std::time::{Duration, Instant};

use smartpos_acquirer_sim::{SimConfig, pki::files};
use smartpos_transport::{Timeouts, TlsSettings, Transport};

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID needs nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn median(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let pct = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    (pct(0.5), pct(0.9))
}

fn line(name: &str, cpu: Vec<Duration>, wall: Vec<Duration>) {
    let (c50, c90) = median(cpu);
    let (w50, w90) = median(wall);
    println!(
        "{name:<42} cpu median {:>7.3} ms  p90 {:>7.3} ms   wall median {:>7.3} ms  p90 {:>7.3} ms",
        c50.as_secs_f64() * 1e3,
        c90.as_secs_f64() * 1e3,
        w50.as_secs_f64() * 1e3,
        w90.as_secs_f64() * 1e3
    );
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().expect("tempdir");
    let pki_dir = dir.path().join("pki");
    // The emulator on its own runtime and thread.
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            let sim = smartpos_acquirer_sim::start(SimConfig {
                listen: "127.0.0.1:0".parse().expect("addr"),
                pki_dir,
                ledger_file: None,
            })
            .await
            .expect("emulator");
            tx.send(sim.local_addr()).expect("send");
            std::future::pending::<()>().await;
        });
    });
    let addr = rx.recv().expect("emulator address");
    drop(server);
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    client.block_on(async move {
        let t = Transport::new(
            &format!("https://{addr}/"),
            &TlsSettings::new(dir.path().join("pki").join(files::CA_CERT)),
            &Timeouts::default(),
        )
        .expect("transport");
        // Warm up (page faults, first allocations).
        for _ in 0..10 {
            assert!(t.probe().await.ok());
        }
        let (mut cpu, mut wall) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            t.close_idle();
            let (c, w) = (thread_cpu(), Instant::now());
            let report = t.probe().await;
            cpu.push(thread_cpu() - c);
            wall.push(w.elapsed());
            assert!(report.ok(), "{report:?}");
        }
        println!("\nnetwork steps, {n} each, loopback emulator, TLS 1.3 (ring)\n");
        line("probe (connect + handshake + HEAD)", cpu, wall);
        let request = || t.request(hyper::Method::HEAD, "/", &[], bytes::Bytes::new(), false);
        let (mut fc, mut fw, mut kc, mut kw) = (vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            t.close_idle();
            let (c, w) = (thread_cpu(), Instant::now());
            let a = request().await.expect("fresh");
            fc.push(thread_cpu() - c);
            fw.push(w.elapsed());
            assert!(!a.reused);
            let (c, w) = (thread_cpu(), Instant::now());
            let a = request().await.expect("kept alive");
            kc.push(thread_cpu() - c);
            kw.push(w.elapsed());
            assert!(a.reused);
        }
        line("request + answer, fresh connection", fc, fw);
        line("request + answer, kept-alive connection", kc, kw);
    });
}
