//! Links, addresses and default routes, read from sysfs and procfs.
//!
//! No netlink socket: the unit restricts address families to AF_UNIX/INET/INET6 (the SAFE
//! rating of `systemd-units/smartpos-netd.service`), so everything here is a file read,
//! cheap enough to poll every few seconds:
//! - `/sys/class/net/<if>/{operstate,carrier}`;
//! - IPv4 addresses: the `/32 host LOCAL` leaves of `/proc/self/net/fib_trie`, each given to
//!   the interface whose connected route in `/proc/self/net/route` contains it (loopback
//!   addresses to `lo`);
//! - IPv6 addresses: `/proc/self/net/if_inet6`;
//! - default routes: `/proc/self/net/route` and `/proc/self/net/ipv6_route`.
//!
//! `/proc/self/net` is the network namespace of the reading process, which is what a daemon
//! in a namespace must see (and what the VM test's namespaces rely on).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub name: String,
    /// The kernel's operstate: "up", "down", "dormant", "lowerlayerdown", "unknown" …
    pub operstate: String,
    /// Carrier (cable in, Wi-Fi associated); `None` when the kernel cannot tell (the link
    /// is administratively down, or it has no carrier concept).
    pub carrier: Option<bool>,
    pub ipv4: Vec<String>,
    pub ipv6: Vec<String>,
}

impl Link {
    /// Usable for traffic: up (or "unknown", as loopback and tun devices say) with carrier.
    pub fn usable(&self) -> bool {
        matches!(self.operstate.as_str(), "up" | "unknown") && self.carrier != Some(false)
    }
}

/// One default route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRoute {
    /// "ipv4" or "ipv6".
    pub family: String,
    pub interface: String,
    /// Next hop; "" for an on-link default (point-to-point links).
    pub gateway: String,
    pub metric: u32,
}

/// What the links and routes look like now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    pub links: Vec<Link>,
    pub routes: Vec<DefaultRoute>,
}

impl Links {
    /// The default route traffic takes: the lowest metric among those whose interface is
    /// usable, IPv4 first at equal metric (the acquirers' gateways are IPv4).
    pub fn carrying(&self) -> Option<&DefaultRoute> {
        self.routes
            .iter()
            .filter(|r| {
                self.links
                    .iter()
                    .any(|l| l.name == r.interface && l.usable())
            })
            .min_by_key(|r| (r.metric, r.family != "ipv4"))
    }

    /// The IPv6 default route through a router (lowest metric, on a usable link), whether or
    /// not it carries the traffic: its router is pinged too.
    pub fn ipv6_gateway(&self) -> Option<&DefaultRoute> {
        self.routes
            .iter()
            .filter(|r| r.family == "ipv6" && !r.gateway.is_empty())
            .filter(|r| {
                self.links
                    .iter()
                    .any(|l| l.name == r.interface && l.usable())
            })
            .min_by_key(|r| r.metric)
    }

    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }
}

/// Where to read from: `/` on a terminal, a directory of fixtures in unit tests.
#[derive(Debug, Clone)]
pub struct Sources {
    pub sys_class_net: PathBuf,
    pub proc_net: PathBuf,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            sys_class_net: PathBuf::from("/sys/class/net"),
            proc_net: PathBuf::from("/proc/self/net"),
        }
    }
}

/// Read everything now. A file that cannot be read leaves its part empty: a terminal
/// without IPv6 has no `if_inet6`, and that is not an error.
pub fn read(src: &Sources) -> Links {
    let routes4 = std::fs::read_to_string(src.proc_net.join("route")).unwrap_or_default();
    let fib = std::fs::read_to_string(src.proc_net.join("fib_trie")).unwrap_or_default();
    let inet6 = std::fs::read_to_string(src.proc_net.join("if_inet6")).unwrap_or_default();
    let routes6 = std::fs::read_to_string(src.proc_net.join("ipv6_route")).unwrap_or_default();

    let mut names: Vec<String> = std::fs::read_dir(&src.sys_class_net)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();

    let subnets = ipv4_subnets(&routes4);
    let v4 = local_ipv4(&fib);
    let v6 = ipv6_addresses(&inet6);
    let links = names
        .into_iter()
        .map(|name| {
            let dir = src.sys_class_net.join(&name);
            let ipv4 = v4
                .iter()
                .filter(|a| owner_of(**a, &subnets).as_deref() == Some(name.as_str()))
                .map(ToString::to_string)
                .collect();
            let ipv6 = v6
                .iter()
                .filter(|(_, i)| *i == name)
                .map(|(a, _)| a.to_string())
                .collect();
            Link {
                operstate: read_trim(&dir.join("operstate")).unwrap_or_else(|| "unknown".into()),
                // Reading `carrier` of a link that is administratively down fails with EINVAL.
                carrier: read_trim(&dir.join("carrier")).map(|c| c == "1"),
                ipv4,
                ipv6,
                name,
            }
        })
        .collect();
    let mut routes = default_routes_v4(&routes4);
    routes.extend(default_routes_v6(&routes6));
    Links { links, routes }
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

/// `/proc/net/route` writes addresses as the host-order hex of a network-order u32.
fn hex_v4(s: &str) -> Option<Ipv4Addr> {
    u32::from_str_radix(s, 16)
        .ok()
        .map(|v| Ipv4Addr::from(v.to_le_bytes()))
}

/// (interface, network, mask) of every route of `/proc/net/route`.
fn ipv4_subnets(table: &str) -> Vec<(String, u32, u32)> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = hex_v4(f.get(1)?)?;
            let mask = hex_v4(f.get(7)?)?;
            Some((f[0].to_owned(), u32::from(dest), u32::from(mask)))
        })
        .collect()
}

/// The interface an address belongs to: the longest matching route; 127/8 is loopback's.
fn owner_of(a: Ipv4Addr, subnets: &[(String, u32, u32)]) -> Option<String> {
    if a.is_loopback() {
        return Some("lo".into());
    }
    let v = u32::from(a);
    subnets
        .iter()
        .filter(|(_, net, mask)| *mask != 0 && v & mask == *net)
        .max_by_key(|(_, _, mask)| mask.count_ones())
        .map(|(i, _, _)| i.clone())
}

/// The local IPv4 addresses of `fib_trie`: a leaf line "|-- a.b.c.d" followed by
/// "/32 host LOCAL". Each appears once per table; duplicates are removed.
fn local_ipv4(fib: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in fib.lines() {
        let t = line.trim();
        if let Some(addr) = t.strip_prefix("|-- ") {
            last = addr.parse().ok();
        } else if t.starts_with("/32 host LOCAL")
            && let Some(a) = last
            && !out.contains(&a)
        {
            out.push(a);
        }
    }
    out
}

/// (address, interface) of `/proc/net/if_inet6`.
fn ipv6_addresses(table: &str) -> Vec<(Ipv6Addr, String)> {
    table
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((hex_v6(f.first()?)?, (*f.get(5)?).to_owned()))
        })
        .collect()
}

fn hex_v6(s: &str) -> Option<Ipv6Addr> {
    u128::from_str_radix(s, 16).ok().map(Ipv6Addr::from)
}

fn default_routes_v4(table: &str) -> Vec<DefaultRoute> {
    const RTF_UP: u32 = 0x1;
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (dest, gw, flags, metric, mask) =
                (f.get(1)?, f.get(2)?, f.get(3)?, f.get(6)?, f.get(7)?);
            let flags = u32::from_str_radix(flags, 16).ok()?;
            if *dest != "00000000" || *mask != "00000000" || flags & RTF_UP == 0 {
                return None;
            }
            let gw = hex_v4(gw)?;
            Some(DefaultRoute {
                family: "ipv4".into(),
                interface: f[0].to_owned(),
                gateway: if gw.is_unspecified() {
                    String::new()
                } else {
                    gw.to_string()
                },
                metric: metric.parse().ok()?,
            })
        })
        .collect()
}

/// `ipv6_route`: dest, dest prefix len, src, src len, next hop, metric, refcnt, use, flags,
/// device. The kernel lists the unreachable default of `lo` too: only real ones count.
fn default_routes_v6(table: &str) -> Vec<DefaultRoute> {
    const RTF_REJECT: u32 = 0x0200;
    table
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 10 || f[0] != "0".repeat(32) || f[1] != "00" {
                return None;
            }
            let flags = u32::from_str_radix(f[8], 16).ok()?;
            if flags & RTF_REJECT != 0 || f[9] == "lo" {
                return None;
            }
            let gw = hex_v6(f[4])?;
            Some(DefaultRoute {
                family: "ipv6".into(),
                interface: f[9].to_owned(),
                gateway: if gw.is_unspecified() {
                    String::new()
                } else {
                    gw.to_string()
                },
                metric: u32::from_str_radix(f[5], 16).ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
wlan0\t00000000\t0100000A\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
wlan0\t0000000A\t00000000\t0001\t0\t0\t600\t000000FF\t0\t0\t0\n";

    const FIB: &str = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n\
     +-- 127.0.0.0/8 2 0 2\n        |-- 127.0.0.1\n           /32 host LOCAL\n\
     |-- 192.168.1.23\n        /32 host LOCAL\n     |-- 192.168.1.255\n        /32 link BROADCAST\n\
     |-- 10.0.0.7\n        /32 host LOCAL\nLocal:\n     |-- 192.168.1.23\n        /32 host LOCAL\n";

    const INET6: &str = "fe80000000000000021122fffe334455 02 40 20 80     eth0\n\
00000000000000000000000000000001 01 80 10 80       lo\n";

    const ROUTE6: &str = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0\n\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";

    fn fixture(carrier_wlan: &str) -> (tempfile::TempDir, Sources) {
        let d = tempfile::tempdir().unwrap();
        let sys = d.path().join("sys");
        for (name, oper, carrier) in [
            ("lo", "unknown", "1"),
            ("eth0", "up", "1"),
            (
                "wlan0",
                if carrier_wlan == "1" { "up" } else { "down" },
                carrier_wlan,
            ),
        ] {
            std::fs::create_dir_all(sys.join(name)).unwrap();
            std::fs::write(sys.join(name).join("operstate"), format!("{oper}\n")).unwrap();
            if !carrier.is_empty() {
                std::fs::write(sys.join(name).join("carrier"), format!("{carrier}\n")).unwrap();
            }
        }
        let proc = d.path().join("proc");
        std::fs::create_dir_all(&proc).unwrap();
        std::fs::write(proc.join("route"), ROUTE).unwrap();
        std::fs::write(proc.join("fib_trie"), FIB).unwrap();
        std::fs::write(proc.join("if_inet6"), INET6).unwrap();
        std::fs::write(proc.join("ipv6_route"), ROUTE6).unwrap();
        let s = Sources {
            sys_class_net: sys,
            proc_net: proc,
        };
        (d, s)
    }

    #[test]
    fn a_terminal_on_ethernet_with_wifi_as_backup() {
        let (_d, src) = fixture("1");
        let l = read(&src);
        let eth = l.link("eth0").unwrap();
        assert_eq!(eth.operstate, "up");
        assert_eq!(eth.carrier, Some(true));
        assert_eq!(eth.ipv4, vec!["192.168.1.23"]);
        assert_eq!(eth.ipv6, vec!["fe80::211:22ff:fe33:4455"]);
        assert_eq!(l.link("lo").unwrap().ipv4, vec!["127.0.0.1"]);
        assert_eq!(l.link("wlan0").unwrap().ipv4, vec!["10.0.0.7"]);
        // Two IPv4 defaults and one IPv6 (lo's unreachable default is not one).
        assert_eq!(l.routes.len(), 3, "{:?}", l.routes);
        let c = l.carrying().unwrap();
        assert_eq!(
            (c.interface.as_str(), c.gateway.as_str()),
            ("eth0", "192.168.1.1")
        );
        let v6 = l.routes.iter().find(|r| r.family == "ipv6").unwrap();
        assert_eq!(v6.gateway, "fe80::1");
        assert_eq!(v6.metric, 1024);
    }

    #[test]
    fn the_cable_is_pulled_and_traffic_moves_to_wifi() {
        let (_d, src) = fixture("1");
        std::fs::write(src.sys_class_net.join("eth0/operstate"), "down\n").unwrap();
        std::fs::write(src.sys_class_net.join("eth0/carrier"), "0\n").unwrap();
        let l = read(&src);
        assert!(!l.link("eth0").unwrap().usable());
        let c = l.carrying().unwrap();
        assert_eq!(c.interface, "wlan0");
        assert_eq!(c.gateway, "10.0.0.1");
    }

    #[test]
    fn no_usable_link_means_no_route_carries_traffic() {
        let (_d, src) = fixture("");
        std::fs::write(src.sys_class_net.join("eth0/operstate"), "down\n").unwrap();
        std::fs::remove_file(src.sys_class_net.join("eth0/carrier")).unwrap();
        let l = read(&src);
        let eth = l.link("eth0").unwrap();
        assert_eq!(eth.carrier, None);
        assert!(l.carrying().is_none(), "{:?}", l.carrying());
    }
}
