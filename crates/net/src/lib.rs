//! smartpos network diagnostics, the library behind smartpos-netd: links and default routes
//! polled from sysfs/procfs ([`links`]), gateway pings over unprivileged ping sockets
//! ([`ping`]), resolver timing ([`dns`]), the endpoints to probe from the stack's own
//! configuration ([`targets`]), rolling statistics ([`stats`]), certificate validity
//! ([`certs`]), and the verdict per acquirer path in a cashier's words ([`monitor`]).

pub mod certs;
pub mod dns;
pub mod links;
pub mod monitor;
pub mod ping;
pub mod stats;
pub mod targets;
pub mod words;
