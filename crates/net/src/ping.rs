//! Gateway probes: ICMP echo over an unprivileged ping socket (`SOCK_DGRAM` +
//! `IPPROTO_ICMP`), which needs no capability, only the daemon's group within
//! `net.ipv4.ping_group_range` (packaging/sysctl.d). The kernel fills in the identifier and
//! the checksum and hands back only replies to this socket.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::stats::ProbeError;

/// Why a gateway could not be pinged at all.
#[derive(Debug, thiserror::Error)]
pub enum PingError {
    /// The kernel refuses ping sockets to this group: the check cannot be made (it says
    /// nothing about the gateway).
    #[error(
        "ping sockets are not allowed for this process's group (sysctl net.ipv4.ping_group_range): {0}"
    )]
    NotPermitted(std::io::Error),
    #[error("{}", .0.detail)]
    Probe(ProbeError),
}

/// One echo request to `gateway`; Ok(round-trip time).
pub async fn ping(gateway: Ipv4Addr, seq: u16, timeout: Duration) -> Result<Duration, PingError> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::ICMPV4)).map_err(|e| {
        match e.raw_os_error() {
            // EACCES (13) or EPERM (1): this group is outside net.ipv4.ping_group_range.
            Some(13 | 1) => PingError::NotPermitted(e),
            _ => PingError::Probe(ProbeError {
                code: "net.gateway".into(),
                detail: format!("cannot open a ping socket: {e}"),
            }),
        }
    })?;
    let fail = |detail: String| {
        PingError::Probe(ProbeError {
            code: "net.gateway".into(),
            detail,
        })
    };
    sock.set_nonblocking(true)
        .map_err(|e| fail(format!("ping socket: {e}")))?;
    let sock = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(sock))
        .map_err(|e| fail(format!("ping socket: {e}")))?;
    // type 8 (echo request), code 0, checksum and id left to the kernel, then seq, payload.
    let mut req = vec![8u8, 0, 0, 0, 0, 0];
    req.extend_from_slice(&seq.to_be_bytes());
    req.extend_from_slice(b"smartpos-netd");
    let start = Instant::now();
    sock.send_to(&req, SocketAddr::from((gateway, 0)))
        .await
        .map_err(|e| fail(format!("cannot ping {gateway}: {e}")))?;
    let mut buf = [0u8; 256];
    let wait = async {
        loop {
            let (n, from) = sock.recv_from(&mut buf).await?;
            if from.ip() == gateway && n >= 8 && buf[0] == 0 && buf[6..8] == seq.to_be_bytes() {
                return Ok::<(), std::io::Error>(());
            }
        }
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(Ok(())) => Ok(start.elapsed()),
        Ok(Err(e)) => Err(fail(format!("ping {gateway}: {e}"))),
        Err(_) => Err(fail(format!(
            "the gateway {gateway} did not answer a ping within {} s",
            timeout.as_secs_f32()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_answers_a_ping_where_the_kernel_allows_ping_sockets() {
        match ping(Ipv4Addr::LOCALHOST, 1, Duration::from_secs(2)).await {
            Ok(rtt) => assert!(rtt < Duration::from_secs(2)),
            // A build host whose ping_group_range excludes us: the refusal must be named as
            // such, not as a dead gateway.
            Err(PingError::NotPermitted(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
}
