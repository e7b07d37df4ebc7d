//! The smartpos D-Bus contract.
//!
//! Each interface's XML in `xml/` is the contract with vendor apps; the proxies here are
//! written to it, and `smartpos-tests` checks that every daemon serves exactly what its XML
//! says.

pub mod diagnose;
pub mod network;
pub mod payment;
pub mod scanner;
pub mod update;

/// Interface XML, by interface name, as committed.
pub const INTERFACES: &[(&str, &str)] = &[
    (
        scanner::INTERFACE,
        include_str!("../xml/org.smartpos.Scanner1.xml"),
    ),
    (
        payment::INTERFACE,
        include_str!("../xml/org.smartpos.Payment1.xml"),
    ),
    (
        network::INTERFACE,
        include_str!("../xml/org.smartpos.Network1.xml"),
    ),
    (
        payment::TX_INTERFACE,
        include_str!("../xml/org.smartpos.Payment1.xml"),
    ),
    (
        update::INTERFACE,
        include_str!("../xml/org.smartpos.Update1.xml"),
    ),
];

/// The XML of one interface, if we have it.
pub fn interface_xml(name: &str) -> Option<&'static str> {
    INTERFACES.iter().find(|(n, _)| *n == name).map(|(_, x)| *x)
}

/// Errors the daemons return, one name per kind of failure (documented in each interface's
/// XML).
pub mod errors {
    /// A value given by the caller is out of range, malformed or of the wrong type; nothing
    /// was changed.
    pub const INVALID_ARGS: &str = "org.smartpos.Error.InvalidArgs";
    /// The caller is not in a group that may do this. (A call the bus policy itself refuses
    /// comes back from the bus as `org.freedesktop.DBus.Error.AccessDenied`, and so does a
    /// refused `Properties.Get`/`GetAll`: those names are the bus's and zbus's own.)
    pub const NOT_ALLOWED: &str = "org.smartpos.Error.NotAllowed";
    /// A rule or the state of the sale refuses the request; the message says why and what to
    /// do.
    pub const REFUSED: &str = "org.smartpos.Error.Refused";
    /// The transaction or refund named does not exist.
    pub const NOT_FOUND: &str = "org.smartpos.Error.NotFound";
    /// Another request moved the sale at the same moment: read it again and decide again.
    pub const BUSY: &str = "org.smartpos.Error.Busy";
    /// Something the request needs is not available now (the journal's storage, an acquirer
    /// path without a connector): try again later or call support.
    pub const UNAVAILABLE: &str = "org.smartpos.Error.Unavailable";
    /// A fault of the software (a corrupt journal row, a forbidden state change): call
    /// support; the message names it.
    pub const FAILED: &str = "org.smartpos.Error.Failed";
}
