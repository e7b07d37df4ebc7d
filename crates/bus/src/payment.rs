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
pub const ERROR_REFUSED: &str = crate::errors::REFUSED;

/// The object path of transaction `id`.
pub fn tx_path(id: i64) -> String {
    format!("{PATH}/tx/{id}")
}

/// The transaction id in an object path made by [`tx_path`]. Only the one path `tx_path`
/// makes is accepted: `…/tx/01` or `…/tx/+1` is not sale 1 (one sale, one path).
pub fn tx_id(path: &str) -> Option<i64> {
    let digits = path.strip_prefix(PATH)?.strip_prefix("/tx/")?;
    let id: i64 = digits.parse().ok()?;
    (id > 0 && tx_path(id) == path).then_some(id)
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
    /// The newest sale started with `order_ref` (`org.smartpos.Error.NotFound` if none).
    fn find_transaction(&self, order_ref: &str) -> zbus::Result<OwnedObjectPath>;

    /// Findings per cause group (see [`crate::diagnose`]).
    fn diagnose(&self) -> zbus::Result<Vec<crate::diagnose::Finding>>;

    /// Close the till for an update (`org.smartpos.Error.Busy` while a sale is in flight).
    fn begin_install_window(&self) -> zbus::Result<()>;
    fn end_install_window(&self) -> zbus::Result<()>;
    /// A signed merchant configuration; returns (version, synced_at).
    fn apply_merchant_config(&self, config: &[u8], signature: &[u8])
    -> zbus::Result<(u32, String)>;

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
    #[zbus(property)]
    fn sales_in_flight(&self) -> zbus::Result<u32>;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sale_has_one_path() {
        assert_eq!(tx_id(&tx_path(7)), Some(7));
        assert_eq!(tx_id("/org/smartpos/Payment1/tx/1234567"), Some(1_234_567));
        for odd in [
            "/org/smartpos/Payment1/tx/07",
            "/org/smartpos/Payment1/tx/+7",
            "/org/smartpos/Payment1/tx/0",
            "/org/smartpos/Payment1/tx/-7",
            "/org/smartpos/Payment1/tx/",
            "/org/smartpos/Payment1/tx/7/x",
        ] {
            assert_eq!(tx_id(odd), None, "{odd}");
        }
    }
}
