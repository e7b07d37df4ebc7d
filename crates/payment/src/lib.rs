//! `smartpos-payment` pays a sale with the payment code (付款码) a customer shows.
//!
//! Flow: a sale is created and journaled ([`journal`]); the first scanned code is classified
//! ([`classify`]), checked against the merchant's channel matrix, the local risk rules and
//! the policy table ([`config`], [`risk`]), routed to an acquirer path and sent through a
//! [`connector`] with a fresh merchant order number. "Waiting for the customer" is polled at
//! the acquirer's pace; an unknown outcome is queried, then cancelled or reversed — never
//! retried as a new payment. The resolver (`service`) finishes whatever a crash left open. Every
//! failure is named by [`explain`] in one of docs/ARCHITECTURE.md's ten cause groups.

pub mod classify;
pub mod clock;
pub mod config;
pub mod connector;
pub mod explain;
pub mod failpoint;
pub mod journal;
pub mod model;
pub mod risk;
pub mod service;

pub use classify::{CodeClass, Scheme, classify};
pub use explain::{Cause, Explanation};
pub use model::{
    Currency, FundingChannel, FundingUsed, Refund, RefundState, SaleOptions, SaleState,
    Transaction, TxEvent, TxId,
};
pub use service::{
    Finding, OUTCOME_UNKNOWN, PayTarget, PaymentError, PaymentService, Prepared, ReloadError,
    ResolveReport, ValidationError,
};
