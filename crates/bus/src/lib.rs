//! The smartpos D-Bus contract.
//!
//! Each interface's XML in `xml/` is the contract with vendor apps; the proxies here are
//! written to it, and `smartpos-tests` checks that every daemon serves exactly what its XML
//! says.

pub mod diagnose;
pub mod payment;
pub mod scanner;

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
        payment::TX_INTERFACE,
        include_str!("../xml/org.smartpos.Payment1.xml"),
    ),
];

/// The XML of one interface, if we have it.
pub fn interface_xml(name: &str) -> Option<&'static str> {
    INTERFACES.iter().find(|(n, _)| *n == name).map(|(_, x)| *x)
}

/// Errors the daemons return, beyond the standard `org.freedesktop.DBus.Error.*`.
pub mod errors {
    /// A value given by the caller is out of range or malformed; nothing was changed.
    pub const INVALID_ARGS: &str = "org.freedesktop.DBus.Error.InvalidArgs";
}
