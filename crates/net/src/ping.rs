//! Gateway probes: ICMP echo over an unprivileged ping socket (`SOCK_DGRAM` +
//! `IPPROTO_ICMP`, or `IPPROTO_ICMPV6` for an IPv6 gateway), which needs no capability, only
//! the daemon's group within `net.ipv4.ping_group_range` (packaging/sysctl.d; the kernel
//! applies that one range to both families). The kernel fills in the identifier and the
//! checksum and hands back only replies to this socket.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
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
    echo(IpAddr::V4(gateway), 0, seq, timeout).await
}

/// One ICMPv6 echo request to `gateway`, reached through the interface numbered
/// `interface_index` (`/sys/class/net/<if>/ifindex`): a router's link-local address
/// (`fe80::…`, what router advertisements give) means nothing without its interface.
pub async fn ping6(
    gateway: Ipv6Addr,
    interface_index: u32,
    seq: u16,
    timeout: Duration,
) -> Result<Duration, PingError> {
    echo(IpAddr::V6(gateway), interface_index, seq, timeout).await
}

/// Whether an IPv6 address is link-local (fe80::/10), so it needs its interface.
pub fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

async fn echo(
    gateway: IpAddr,
    interface_index: u32,
    seq: u16,
    timeout: Duration,
) -> Result<Duration, PingError> {
    // ICMP echo request / reply are types 8 / 0; ICMPv6's are 128 / 129 (RFC 4443).
    let (domain, protocol, request, reply) = match gateway {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4, 8u8, 0u8),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6, 128, 129),
    };
    let sock = Socket::new(domain, Type::DGRAM, Some(protocol)).map_err(|e| {
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
    // Type (echo request), code 0, checksum and id left to the kernel, then seq, payload.
    let mut req = vec![request, 0, 0, 0, 0, 0];
    req.extend_from_slice(&seq.to_be_bytes());
    req.extend_from_slice(b"smartpos-netd");
    let start = Instant::now();
    let to = match gateway {
        IpAddr::V6(a) if is_link_local(&a) => {
            SocketAddr::V6(SocketAddrV6::new(a, 0, 0, interface_index))
        }
        a => SocketAddr::new(a, 0),
    };
    sock.send_to(&req, to)
        .await
        .map_err(|e| fail(format!("cannot ping {gateway}: {e}")))?;
    let mut buf = [0u8; 256];
    let wait = async {
        loop {
            let (n, from) = sock.recv_from(&mut buf).await?;
            if from.ip() == gateway && n >= 8 && buf[0] == reply && buf[6..8] == seq.to_be_bytes() {
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

    #[tokio::test]
    async fn loopback_answers_an_icmpv6_ping_where_the_host_has_ipv6() {
        match ping6(Ipv6Addr::LOCALHOST, 0, 2, Duration::from_secs(2)).await {
            Ok(rtt) => assert!(rtt < Duration::from_secs(2)),
            Err(PingError::NotPermitted(_)) => {}
            // A host booted with IPv6 disabled has no ::1 to answer; opening the socket or
            // sending is then refused, which names the reason.
            Err(PingError::Probe(e)) if !std::path::Path::new("/proc/net/if_inet6").exists() => {
                assert!(!e.detail.is_empty());
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[tokio::test]
    async fn a_link_local_router_is_reached_through_its_interface() {
        assert!(is_link_local(&"fe80::1".parse().unwrap()));
        assert!(!is_link_local(&"fd00::1".parse().unwrap()));
        assert!(!is_link_local(&"2001:db8::1".parse().unwrap()));
        // Loopback's interface index: fe80::1 is not on it, so no answer comes; what
        // matters is that the scoped address is accepted and the silence named.
        let lo: u32 = std::fs::read_to_string("/sys/class/net/lo/ifindex")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1);
        match ping6(
            "fe80::1".parse().unwrap(),
            lo,
            3,
            Duration::from_millis(300),
        )
        .await
        {
            Ok(_) => panic!("nothing on loopback answers for fe80::1"),
            Err(PingError::NotPermitted(_)) => {}
            Err(PingError::Probe(e)) => assert!(e.detail.contains("fe80::1"), "{e:?}"),
        }
    }
}
