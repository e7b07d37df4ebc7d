//! Acquirer wire protocols for smartpos, shared by the terminal's payment connectors
//! (`smartpos-payment`) and the acquirer emulator (`smartpos-acquirer-sim`).
//!
//! - [`alipay`]: Alipay OpenAPI barcode pay, RSA2 request signing and response verification
//!   over the verbatim response node.
//! - [`wechat`]: WeChat Pay v2 micropay/orderquery/reverse/refund, XML, MD5/HMAC-SHA256.
//! - [`qra`]: UnionPay and other codes through a QRA-style aggregator gateway, XML, MD5.
//! - [`disposition`]: what any answer means for the terminal (paid, wait, query, retry, failed
//!   with a cause) — the only thing the payment state machine branches on.
//!
//! No I/O happens here: callers own HTTP and TLS. Every parser returns typed errors and never
//! panics on any input (see `fuzz/`). Amounts are integer fen; payment codes are never logged.

pub mod alipay;
pub mod catalogue;
pub mod disposition;
pub mod form;
pub mod keys;
pub mod money;
pub mod nonce;
pub mod qra;
pub mod wechat;
pub mod xml;

pub use catalogue::{Cause, CodeRow};
pub use disposition::{Disposition, FailureCause};
pub use keys::{KeyError, RsaSigner, RsaVerifier, SignatureError};

/// Mask a payment code for logs: the first two and last four characters stay (the one rule,
/// from the dependency-free `smartpos-text`).
pub use smartpos_text::mask_code;
