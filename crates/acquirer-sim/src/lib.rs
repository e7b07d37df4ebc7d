//! The smartpos acquirer emulator: Alipay OpenAPI, WeChat Pay v2 and a QRA aggregator gateway
//! over HTTPS on loopback, faithful to the wire protocols in `smartpos-acquirer` (signatures,
//! codes, USERPAYING, timeouts, cancel/reverse), with a ledger tests can read back and
//! scenarios chosen by payment code (see [`scenario`]).

pub mod alipay;
pub mod client;
pub mod ledger;
pub mod pki;
pub mod qra;
pub mod reply;
pub mod scenario;
pub mod server;
pub mod terminal;
pub mod wechat;

pub use server::{Sim, SimConfig, SimError, start};
