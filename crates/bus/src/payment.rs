//! `org.smartpos.Payment1`, served by smartpos-paymentd.

use std::collections::HashMap;

use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

/// Bus name and interface name.
pub const INTERFACE: &str = "org.smartpos.Payment1";
/// Interface of each transaction object.
pub const TX_INTERFACE: &str = "org.smartpos.Payment1.Transaction";
/// Object path of the service.
pub const PATH: &str = "/org/smartpos/Payment1";
/// D-Bus error name for a request refused by a rule or the state of the sale.
pub const ERROR_REFUSED: &str = "org.smartpos.Payment1.Error.Refused";

/// The object path of transaction `id`.
pub fn tx_path(id: i64) -> String {
    format!("{PATH}/tx/{id}")
}

/// The transaction id in an object path made by [`tx_path`].
pub fn tx_id(path: &str) -> Option<i64> {
    path.strip_prefix(PATH)?.strip_prefix("/tx/")?.parse().ok()
}

/// Client side of `org.smartpos.Payment1` (see `xml/org.smartpos.Payment1.xml`).
#[zbus::proxy(
    interface = "org.smartpos.Payment1",
    default_service = "org.smartpos.Payment1",
    default_path = "/org/smartpos/Payment1"
)]
pub trait Payment {
    fn sale(
        &self,
        amount_fen: i64,
        currency: &str,
        order_ref: &str,
        options: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<OwnedObjectPath>;
    fn pay_with_code(
        &self,
        amount_fen: i64,
        currency: &str,
        order_ref: &str,
        options: HashMap<&str, Value<'_>>,
        code: &str,
    ) -> zbus::Result<OwnedObjectPath>;
    fn query(&self, transaction: &zbus::zvariant::ObjectPath<'_>) -> zbus::Result<String>;
    fn cancel(&self, transaction: &zbus::zvariant::ObjectPath<'_>) -> zbus::Result<String>;
    fn refund(
        &self,
        transaction: &zbus::zvariant::ObjectPath<'_>,
        amount_fen: i64,
        refund_ref: &str,
    ) -> zbus::Result<HashMap<String, OwnedValue>>;
    fn list_transactions(&self, limit: u32) -> zbus::Result<Vec<OwnedObjectPath>>;
    /// Findings per cause group (see [`crate::diagnose`]).
    fn diagnose(&self) -> zbus::Result<Vec<crate::diagnose::Finding>>;

    #[zbus(signal)]
    fn transaction_changed(&self, transaction: OwnedObjectPath, state: String) -> zbus::Result<()>;

    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn terminal_id(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn config_version(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn config_synced_at(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn schemes(&self) -> zbus::Result<Vec<String>>;
    #[zbus(property)]
    fn funding(&self) -> zbus::Result<Vec<String>>;
}

/// Client side of one transaction object.
#[zbus::proxy(
    interface = "org.smartpos.Payment1.Transaction",
    default_service = "org.smartpos.Payment1"
)]
pub trait Transaction {
    #[zbus(signal)]
    fn changed(&self, state: String) -> zbus::Result<()>;

    #[zbus(property)]
    fn id(&self) -> zbus::Result<i64>;
    #[zbus(property)]
    fn amount_fen(&self) -> zbus::Result<i64>;
    #[zbus(property)]
    fn currency(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn order_ref(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn scheme(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn code_masked(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn out_trade_no(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn acquirer_trade_no(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn paid_fen(&self) -> zbus::Result<i64>;
    #[zbus(property)]
    fn refunded_fen(&self) -> zbus::Result<i64>;
    #[zbus(property)]
    fn funding_channels(&self) -> zbus::Result<Vec<String>>;
    #[zbus(property)]
    fn cause(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn error_code(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn instruction_zh(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn instruction_en(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn acquirer_message(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn hint(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn created_at_ms(&self) -> zbus::Result<i64>;
    #[zbus(property)]
    fn updated_at_ms(&self) -> zbus::Result<i64>;
}
