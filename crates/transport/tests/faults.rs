//! The transport against real sockets: a TLS server, the fault proxy in front of it, and
//! servers whose certificates a terminal must refuse. Each test is what a technician would
//! see on a till.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use smartpos_faultproxy::certs::{CertKind, CertServer, TestPki};
use smartpos_faultproxy::{FaultProxy, Mode};
use smartpos_transport::{
    DownloadError, ErrorClass, TimeProvider, Timeouts, TlsSettings, Transport, UnixTime,
};

fn quick() -> Timeouts {
    Timeouts {
        connect: Duration::from_millis(500),
        handshake: Duration::from_millis(500),
        read: Duration::from_secs(1),
        ..Timeouts::default()
    }
}

struct Fixture {
    pki: TestPki,
    dir: tempfile::TempDir,
    _server: common::Server,
    proxy: FaultProxy,
}

impl Fixture {
    async fn start() -> Fixture {
        let pki = TestPki::new().expect("pki");
        let dir = tempfile::tempdir().expect("tempdir");
        let server = common::Server::start(&pki).await;
        let proxy = FaultProxy::start("127.0.0.1:0".parse().expect("addr"), server.addr)
            .await
            .expect("proxy");
        Fixture {
            pki,
            dir,
            _server: server,
            proxy,
        }
    }

    fn transport(&self) -> Transport {
        Transport::new(
            &format!("https://{}/", self.proxy.addr()),
            &TlsSettings::new(common::ca_file(&self.pki, self.dir.path())),
            &quick(),
        )
        .expect("transport")
    }
}

/// A clock `offset` away from the real one, as a terminal with a bad RTC has.
#[derive(Debug)]
struct OffClock(i64);

impl TimeProvider for OffClock {
    fn current_time(&self) -> Option<UnixTime> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?
            .as_secs() as i64;
        Some(UnixTime::since_unix_epoch(Duration::from_secs(
            u64::try_from(now + self.0).ok()?,
        )))
    }
}

const TWO_YEARS: i64 = 2 * 365 * 86_400;

async fn handshake_with(
    kind: CertKind,
    clock: Option<i64>,
) -> Result<(), smartpos_transport::TransportError> {
    let pki = TestPki::new().expect("pki");
    let dir = tempfile::tempdir().expect("tempdir");
    let server = CertServer::start(&pki, kind).await.expect("server");
    let mut tls = TlsSettings::new(common::ca_file(&pki, dir.path()));
    if let Some(offset) = clock {
        tls = tls.with_time(Arc::new(OffClock(offset)));
    }
    let t = Transport::new(&server.url(), &tls, &quick()).expect("transport");
    t.post_form("/pay", "amount=1".into(), false)
        .await
        .map(|_| ())
}

#[tokio::test]
async fn an_acquirer_certificate_that_expired_is_named_expired_and_nothing_is_sent() {
    let e = handshake_with(CertKind::Expired, None)
        .await
        .expect_err("refused");
    assert_eq!(e.class, ErrorClass::CertExpired, "{e}");
    assert!(!e.sent());
    assert_eq!(e.class.code(), "net.cert_expired");
}

#[tokio::test]
async fn a_certificate_for_another_name_is_named_a_name_mismatch() {
    let e = handshake_with(CertKind::OtherName, None)
        .await
        .expect_err("refused");
    assert_eq!(e.class, ErrorClass::CertNameMismatch, "{e}");
    assert!(!e.sent());
}

#[tokio::test]
async fn a_certificate_from_a_ca_that_is_not_pinned_is_untrusted() {
    let e = handshake_with(CertKind::OtherCa, None)
        .await
        .expect_err("refused");
    assert_eq!(e.class, ErrorClass::CertUntrusted, "{e}");
    assert!(!e.sent());
}

#[tokio::test]
async fn a_terminal_clock_two_years_off_is_named_by_the_certificate_dates() {
    // The same good certificate, seen from a till whose clock is right, two years behind
    // (an RTC that lost its battery), and two years ahead.
    handshake_with(CertKind::Valid, None)
        .await
        .expect("a right clock accepts it");
    let behind = handshake_with(CertKind::Valid, Some(-TWO_YEARS))
        .await
        .expect_err("refused");
    assert_eq!(behind.class, ErrorClass::CertNotYetValid, "{behind}");
    let ahead = handshake_with(CertKind::Valid, Some(TWO_YEARS))
        .await
        .expect_err("refused");
    assert_eq!(ahead.class, ErrorClass::CertExpired, "{ahead}");
    assert!(!behind.sent() && !ahead.sent());
}

#[tokio::test]
async fn a_second_request_reuses_the_connection_and_skips_the_handshake() {
    let f = Fixture::start().await;
    let t = f.transport();
    let first = t
        .post_form("/echo", "sale=1".into(), false)
        .await
        .expect("first");
    assert_eq!(first.text(), Some("sale=1"));
    assert!(!first.reused);
    let second = t
        .post_form("/echo", "sale=2".into(), false)
        .await
        .expect("second");
    assert_eq!(second.text(), Some("sale=2"));
    assert!(
        second.reused,
        "the second sale went over the kept-alive connection"
    );
    assert_eq!(f.proxy.accepted(), 1, "one TCP connection for both");
    assert_eq!(t.stats().opened, 1);
    assert_eq!(t.stats().reused, 1);
}

/// A busy till on a two-core terminal: each request goes the moment the answer before it was
/// read, while hyper's connection task (on the other worker thread) may not yet have marked
/// the connection ready for the next one. It is still the same connection every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_back_to_back_on_two_threads_share_one_connection() {
    let f = Fixture::start().await;
    let t = f.transport();
    for n in 0..50 {
        let body = format!("query={n}");
        let answer = t
            .post_form("/echo", body.clone(), false)
            .await
            .expect("answer");
        assert_eq!(answer.text(), Some(body.as_str()));
        assert_eq!(answer.reused, n > 0, "request {n}");
    }
    assert_eq!(f.proxy.accepted(), 1, "one TCP connection for all 50");
    assert_eq!(t.stats().opened, 1);
    assert_eq!(t.stats().reused, 49);
}

#[tokio::test]
async fn a_kept_alive_connection_the_network_dropped_is_replaced_without_a_doubt() {
    let f = Fixture::start().await;
    let t = f.transport();
    t.post_form("/echo", "one".into(), false)
        .await
        .expect("first");
    // A NAT box forgets the idle connection: it is closed under the terminal.
    f.proxy.drop_all();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let again = t
        .post_form("/echo", "two".into(), false)
        .await
        .expect("second");
    assert_eq!(again.text(), Some("two"));
    assert!(!again.reused, "a fresh connection, not an error");
    assert_eq!(f.proxy.accepted(), 2);
}

#[tokio::test]
async fn a_closed_port_is_named_refused_and_the_probe_sees_it_come_back() {
    let f = Fixture::start().await;
    let t = f.transport();
    let up = t.probe().await;
    assert!(up.ok(), "{up:?}");
    assert_eq!(up.http_status, Some(200));
    assert!(up.date_header.is_some());
    assert!(up.dns.is_none(), "an IP literal needs no lookup");
    f.proxy.set_mode(Mode::Refuse);
    let down = t.probe().await;
    assert_eq!(down.error, Some(ErrorClass::Refused), "{down:?}");
    let e = t
        .post_form("/echo", "x".into(), false)
        .await
        .expect_err("down");
    assert_eq!(e.class, ErrorClass::Refused);
    assert!(!e.sent());
    // Back up: the next scheduled probe sees it (the proxy listens again within moments).
    f.proxy.set_mode(Mode::Pass);
    let mut back = t.probe().await;
    for _ in 0..40 {
        if back.ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        back = t.probe().await;
    }
    assert!(back.ok(), "{back:?}");
}

#[tokio::test]
async fn a_connection_dropped_at_once_is_never_sent() {
    let f = Fixture::start().await;
    f.proxy.set_mode(Mode::Drop);
    let e = f
        .transport()
        .post_form("/echo", "x".into(), false)
        .await
        .expect_err("dropped");
    assert!(!e.sent(), "{e}");
    assert_eq!(e.class, ErrorClass::Refused, "{e}");
}

#[tokio::test]
async fn a_black_hole_is_a_connect_timeout_and_nothing_is_sent() {
    let f = Fixture::start().await;
    f.proxy.set_mode(Mode::BlackHole);
    let e = f
        .transport()
        .post_form("/echo", "x".into(), false)
        .await
        .expect_err("swallowed");
    assert_eq!(e.class, ErrorClass::ConnectTimeout, "{e}");
    assert!(!e.sent());
    let probe = f.transport().probe().await;
    assert_eq!(probe.error, Some(ErrorClass::ConnectTimeout));
}

#[tokio::test]
async fn an_answer_cut_off_in_the_middle_may_have_been_acted_on() {
    let f = Fixture::start().await;
    // Past the handshake and into the 64 KiB answer.
    f.proxy.set_mode(Mode::ResetAfter(20_000));
    let e = f
        .transport()
        .request(hyper::Method::GET, "/file", &[], bytes::Bytes::new(), false)
        .await
        .expect_err("cut off");
    assert_eq!(e.class, ErrorClass::ResetMidResponse, "{e}");
    assert!(e.sent(), "the request was out: its outcome is unknown");
}

#[tokio::test]
async fn an_answer_slower_than_the_read_timeout_is_a_read_timeout() {
    let f = Fixture::start().await;
    let e = f
        .transport()
        .request(hyper::Method::GET, "/slow", &[], bytes::Bytes::new(), false)
        .await
        .expect_err("too slow");
    assert_eq!(e.class, ErrorClass::ReadTimeout, "{e}");
    assert!(e.sent());
}

#[tokio::test]
async fn an_interrupted_download_resumes_where_it_stopped() {
    let f = Fixture::start().await;
    let t = f.transport();
    let whole = common::file();
    let mut got = Vec::new();
    let first = t
        .download("/file", &[], 0, &mut got, None)
        .await
        .expect("download");
    assert_eq!(first.status, 200);
    assert_eq!(got, whole);
    // The first 40000 bytes are on disk; ask for the rest.
    let mut rest = Vec::new();
    let r = t
        .download(
            &format!("https://{}/file", f.proxy.addr()),
            &[],
            40_000,
            &mut rest,
            None,
        )
        .await
        .expect("resume");
    assert_eq!(r.status, 206);
    assert_eq!(r.total, Some(whole.len() as u64));
    assert_eq!(rest, whole[40_000..]);
    let other = t
        .download(
            "https://example.invalid/file",
            &[],
            0,
            &mut Vec::new(),
            None,
        )
        .await;
    assert!(matches!(other, Err(DownloadError::OtherEndpoint(_))));
}

#[tokio::test]
async fn a_capped_download_keeps_to_its_rate() {
    let f = Fixture::start().await;
    let t = f.transport();
    let mut sink = Vec::new();
    // 24 KiB at 32 KiB/s cannot take less than 0.75 s (minus the first chunk).
    let r = t
        .download("/file", &[], 40 * 1024, &mut sink, Some(32 * 1024))
        .await
        .expect("download");
    assert_eq!(r.bytes, 24 * 1024);
    assert!(
        r.elapsed >= Duration::from_millis(400),
        "a 32 KiB/s cap took {:?}",
        r.elapsed
    );
}
