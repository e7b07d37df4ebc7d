//! `org.smartpos.Scanner1`, served by smartpos-scannerd.

/// Bus name, interface name.
pub const INTERFACE: &str = "org.smartpos.Scanner1";
/// Object path.
pub const PATH: &str = "/org/smartpos/Scanner1";

/// Client side of `org.smartpos.Scanner1` (see `xml/org.smartpos.Scanner1.xml`).
#[zbus::proxy(
    interface = "org.smartpos.Scanner1",
    default_service = "org.smartpos.Scanner1",
    default_path = "/org/smartpos/Scanner1"
)]
pub trait Scanner {
    /// Arm the scanner for `timeout_ms` (0 = default) on `sources` (empty = all).
    fn start_scan(&self, timeout_ms: u32, sources: &[&str]) -> zbus::Result<u64>;
    /// End a session early.
    fn stop_scan(&self, session: u64) -> zbus::Result<()>;
    /// The latest frame as PNG with detected codes outlined (technicians only).
    fn snapshot(&self) -> zbus::Result<Vec<u8>>;
    /// Findings for the hardware and software groups (see [`crate::diagnose`]).
    fn diagnose(&self) -> zbus::Result<Vec<crate::diagnose::Finding>>;

    /// A code was read.
    #[zbus(signal)]
    fn code_scanned(
        &self,
        text: String,
        symbology: String,
        source: String,
        monotonic_us: u64,
        wall_us: i64,
        session: u64,
    ) -> zbus::Result<()>;

    /// A session ended ("timeout" or "stopped").
    #[zbus(signal)]
    fn session_ended(&self, session: u64, reason: String) -> zbus::Result<()>;

    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn sources(&self) -> zbus::Result<Vec<(String, String, String)>>;
    #[zbus(property)]
    fn frames_per_second(&self) -> zbus::Result<f64>;
    #[zbus(property)]
    fn decode_attempts(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn decode_successes(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn brightness(&self) -> zbus::Result<f64>;
    #[zbus(property)]
    fn contrast(&self) -> zbus::Result<f64>;
    #[zbus(property)]
    fn sharpness(&self) -> zbus::Result<f64>;
    #[zbus(property)]
    fn verdict(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn advice(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn duplicate_window_ms(&self) -> zbus::Result<u32>;
}
