//! The one HTTPS client of smartpos. Every byte the stack sends to an acquirer, a fleet server
//! or a probed endpoint goes through a [`Transport`]: rustls with the ring provider, TLS 1.2
//! and 1.3 only, the endpoint's own CA file as its only trust anchor, an optional client
//! certificate, connect / handshake / read timeouts, and one set of error classes
//! ([`ErrorClass`]) that keeps apart "provably never sent" from "may have been sent".
//!
//! See the crate README for the error classes and what each means to a cashier.

mod client;
mod config;
mod error;
mod probe;
mod tls;

pub use client::{HttpResponse, MAX_RESPONSE_BYTES, PostError, Transport};
pub use config::{ConfigError, Endpoint, Timeouts, TlsSettings};
pub use error::{ErrorClass, TransportError};
pub use probe::{ProbeReport, parse_http_date};
/// The clock interface certificate checks use ([`TlsSettings::time`]).
pub use rustls::pki_types::UnixTime;
pub use rustls::time_provider::TimeProvider;
