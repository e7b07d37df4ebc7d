//! The install window held on the payment daemon (`org.smartpos.Payment1`): RAUC writes a
//! slot only while no sale is in flight, and the payment daemon refuses new sales until the
//! window is released (`EndInstallWindow`, our bus name leaving the bus, or its own
//! 15-minute limit); and the merchant configurations a deployment carries
//! (`ApplyMerchantConfig`).

#[zbus::proxy(
    interface = "org.smartpos.Payment1",
    default_service = "org.smartpos.Payment1",
    default_path = "/org/smartpos/Payment1"
)]
pub trait InstallWindow {
    fn begin_install_window(&self) -> zbus::Result<()>;
    fn end_install_window(&self) -> zbus::Result<()>;
    fn apply_merchant_config(&self, config: &[u8], signature: &[u8])
    -> zbus::Result<(u32, String)>;
    #[zbus(property)]
    fn sales_in_flight(&self) -> zbus::Result<u32>;
}

/// The answer to "may we install now?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Window {
    /// Held: release it with [`end`].
    Held,
    /// No payment daemon on the bus: no sale can be in flight.
    NoPaymentDaemon,
    /// A sale is in flight (or the daemon cannot say): try again later.
    Wait(String),
}

fn error_name(e: &zbus::Error) -> Option<&str> {
    match e {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str()),
        zbus::Error::FDO(f) => match **f {
            zbus::fdo::Error::ServiceUnknown(_) => {
                Some("org.freedesktop.DBus.Error.ServiceUnknown")
            }
            zbus::fdo::Error::NameHasNoOwner(_) => {
                Some("org.freedesktop.DBus.Error.NameHasNoOwner")
            }
            _ => None,
        },
        _ => None,
    }
}

/// Ask for the window.
pub async fn begin(conn: &zbus::Connection) -> Window {
    let proxy = match InstallWindowProxy::new(conn).await {
        Ok(p) => p,
        Err(e) => return Window::Wait(format!("payment daemon: {e}")),
    };
    match proxy.begin_install_window().await {
        Ok(()) => Window::Held,
        Err(e) => match error_name(&e) {
            Some(
                "org.freedesktop.DBus.Error.ServiceUnknown"
                | "org.freedesktop.DBus.Error.NameHasNoOwner",
            ) => Window::NoPaymentDaemon,
            Some(smartpos_bus::errors::BUSY) => Window::Wait("a sale is in flight".into()),
            _ => Window::Wait(format!(
                "the payment daemon cannot open an install window: {e}"
            )),
        },
    }
}

/// Release the window (best effort: the payment daemon also releases it when we leave the
/// bus or after its limit).
pub async fn end(conn: &zbus::Connection) {
    let r = match InstallWindowProxy::new(conn).await {
        Ok(p) => p.end_install_window().await,
        Err(e) => Err(e),
    };
    if let Err(e) = r {
        tracing::warn!("cannot release the install window: {e}");
    }
}

/// Hand a merchant configuration and its detached signature (the `.sig` file's bytes) to the
/// payment daemon, which checks the signature and the version, writes it atomically and
/// reloads it without disturbing a sale in flight. Ok((version, synced_at)); Err(why it was
/// refused, in the payment daemon's words: the running configuration stays).
pub async fn apply_config(
    conn: &zbus::Connection,
    config: &[u8],
    signature: &[u8],
) -> Result<(u32, String), String> {
    let proxy = InstallWindowProxy::new(conn)
        .await
        .map_err(|e| format!("payment daemon: {e}"))?;
    proxy
        .apply_merchant_config(config, signature)
        .await
        .map_err(|e| match (&e, error_name(&e)) {
            (
                _,
                Some(
                    "org.freedesktop.DBus.Error.ServiceUnknown"
                    | "org.freedesktop.DBus.Error.NameHasNoOwner",
                ),
            ) => "no payment daemon is running to take it".to_owned(),
            (zbus::Error::MethodError(_, Some(msg), _), _) => msg.clone(),
            _ => e.to_string(),
        })
}
