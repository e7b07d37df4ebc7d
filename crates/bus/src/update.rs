//! `org.smartpos.Update1`, served by smartpos-otad.

/// Bus name, interface name.
pub const INTERFACE: &str = "org.smartpos.Update1";
/// Object path.
pub const PATH: &str = "/org/smartpos/Update1";

/// Client side of `org.smartpos.Update1` (see `xml/org.smartpos.Update1.xml`).
#[zbus::proxy(
    interface = "org.smartpos.Update1",
    default_service = "org.smartpos.Update1",
    default_path = "/org/smartpos/Update1"
)]
pub trait Update {
    /// Poll the fleet server now.
    fn check(&self) -> zbus::Result<()>;
    /// Install a local RAUC bundle.
    fn install_local(&self, path: &str) -> zbus::Result<()>;

    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn progress(&self) -> zbus::Result<(u32, String)>;
    #[zbus(property)]
    fn current_version(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn pending_version(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn last_error(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn action_id(&self) -> zbus::Result<String>;
}
