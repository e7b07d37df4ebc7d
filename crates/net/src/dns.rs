//! Resolver probes: one DNS query (type A, recursion desired) over UDP to each name server of
//! `resolv.conf`, timed. An answer of any kind but SERVFAIL/REFUSED shows the resolver
//! works; the name asked for is an endpoint's host, so the time is the one a sale pays.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::stats::ProbeError;

/// The name servers of a `resolv.conf` (at most three are used by the C library: the same
/// here).
pub fn nameservers(resolv_conf: &Path) -> Vec<SocketAddr> {
    std::fs::read_to_string(resolv_conf)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some("nameserver"))
                .then(|| f.next())
                .flatten()
                // A link-local IPv6 server carries "%scope", which IpAddr does not parse.
                .and_then(|a| a.split('%').next()?.parse::<IpAddr>().ok())
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .take(3)
        .collect()
}

/// A DNS query for `name`, type A, class IN, with id `id`.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(name.len() + 18);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        let len = u8::try_from(label.len().min(63)).unwrap_or(63);
        q.push(len);
        q.extend_from_slice(&label.as_bytes()[..usize::from(len)]);
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Ask `server` about `name`; Ok(time to the answer).
pub async fn probe(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Duration, ProbeError> {
    let err = |code: &str, detail: String| ProbeError {
        code: code.to_owned(),
        detail,
    };
    let bind: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    };
    let sock = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| err("net.dns", format!("cannot open a UDP socket: {e}")))?;
    let id: u16 = rand::random();
    let start = Instant::now();
    sock.send_to(&query(id, name), server)
        .await
        .map_err(|e| err("net.dns", format!("cannot send to {server}: {e}")))?;
    let mut buf = [0u8; 1500];
    let wait = async {
        loop {
            let (n, from) = sock.recv_from(&mut buf).await?;
            // Anything not from the server or not our id is ignored (a late answer to an
            // earlier probe, or spoofing).
            if from == server && n >= 12 && buf[..2] == id.to_be_bytes() {
                return Ok::<u8, std::io::Error>(buf[3] & 0x0f);
            }
        }
    };
    match tokio::time::timeout(timeout, wait).await {
        Err(_) => Err(err(
            "net.dns",
            format!(
                "DNS for {name} timed out at {} (no answer within {} s)",
                show(server),
                timeout.as_secs_f32()
            ),
        )),
        Ok(Err(e)) => Err(err(
            "net.dns",
            format!("DNS for {name} at {}: {e}", show(server)),
        )),
        // SERVFAIL and REFUSED: the resolver is there but cannot resolve for us.
        Ok(Ok(2)) => Err(err(
            "net.dns",
            format!("DNS for {name}: {} answered SERVFAIL", show(server)),
        )),
        Ok(Ok(5)) => Err(err(
            "net.dns",
            format!("DNS for {name}: {} refused the query", show(server)),
        )),
        Ok(Ok(_)) => Ok(start.elapsed()),
    }
}

/// A resolver as people write it: the address alone on the standard port.
pub fn show(server: SocketAddr) -> String {
    if server.port() == 53 {
        server.ip().to_string()
    } else {
        server.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_as_the_c_library_reads_them() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("resolv.conf");
        std::fs::write(
            &f,
            "# from DHCP\nsearch shop.lan\nnameserver 192.168.1.1\nnameserver fe80::1%eth0\n\
             nameserver 8.8.8.8\nnameserver 1.1.1.1\n",
        )
        .unwrap();
        let ns = nameservers(&f);
        assert_eq!(ns.len(), 3);
        assert_eq!(show(ns[0]), "192.168.1.1");
        assert_eq!(show(ns[1]), "fe80::1");
    }

    #[tokio::test]
    async fn a_resolver_that_answers_and_one_that_does_not() {
        let q = query(0x1234, "openapi.alipay.com.");
        assert_eq!(&q[..2], &[0x12, 0x34]);
        assert_eq!(q[12], 7);
        assert_eq!(&q[13..20], b"openapi");
        assert_eq!(&q[q.len() - 5..], &[0, 0, 1, 0, 1]);

        // A resolver that answers NXDOMAIN (it works; the name does not exist).
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            let mut a = buf[..n].to_vec();
            a[2] = 0x81;
            a[3] = 0x83;
            server.send_to(&a, from).await.unwrap();
        });
        let t = probe(addr, "openapi.alipay.com", Duration::from_secs(2)).await;
        assert!(t.is_ok(), "{t:?}");

        // One that never answers.
        let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let e = probe(addr, "openapi.alipay.com", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(e.code, "net.dns");
        assert!(e.detail.contains("timed out at 127.0.0.1:"), "{}", e.detail);
        drop(silent);
    }
}
