//! `org.smartpos.Network1`, served by smartpos-netd.

/// Bus name, interface name.
pub const INTERFACE: &str = "org.smartpos.Network1";
/// Object path.
pub const PATH: &str = "/org/smartpos/Network1";

/// Client side of `org.smartpos.Network1` (see `xml/org.smartpos.Network1.xml`).
#[zbus::proxy(
    interface = "org.smartpos.Network1",
    default_service = "org.smartpos.Network1",
    default_path = "/org/smartpos/Network1"
)]
pub trait Network {
    /// Probe `endpoint` now ("" = every target; a path name, "gateway" or "resolvers");
    /// returns the status document (JSON) after the probes.
    fn probe(&self, endpoint: &str) -> zbus::Result<String>;
    /// Findings for the network group (3) and the clock and certificates (6).
    fn diagnose(&self) -> zbus::Result<Vec<crate::diagnose::Finding>>;

    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn online(&self) -> zbus::Result<bool>;
    /// (name, kind, online, code, reason_en, reason_zh) per acquirer path.
    #[zbus(property)]
    fn paths(&self) -> zbus::Result<Vec<(String, String, bool, String, String, String)>>;
    /// (name, operstate, carrier, ipv4 addresses, ipv6 addresses) per interface.
    #[zbus(property)]
    fn links(&self) -> zbus::Result<Vec<(String, String, bool, Vec<String>, Vec<String>)>>;
    /// (family, interface, gateway) of the default route that carries traffic; empty
    /// strings when there is none.
    #[zbus(property)]
    fn carrying(&self) -> zbus::Result<(String, String, String)>;
    /// Everything, as one JSON document.
    #[zbus(property)]
    fn status(&self) -> zbus::Result<String>;
}
