//! The system-bus connection.
//!
//! zbus reads `DBUS_SYSTEM_BUS_ADDRESS` for the system bus, so tests and `make demo` point a
//! daemon at a private `dbus-daemon` just by setting that variable: the daemon itself has no
//! test mode.

use zbus::connection::Builder;

/// Why the bus could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// No bus at the address (is dbus running? is `DBUS_SYSTEM_BUS_ADDRESS` right?).
    #[error("cannot connect to the system bus ({address}): {source}; is dbus running?")]
    Connect {
        address: String,
        source: Box<zbus::Error>,
    },
    /// Another process owns the name, or the bus policy does not let us own it.
    #[error(
        "cannot own bus name {name}: {source}; is another instance running, and is the D-Bus policy file installed?"
    )]
    Name {
        name: String,
        source: Box<zbus::Error>,
    },
}

/// Where we will connect: the environment's address or the well-known system socket.
pub fn system_address() -> String {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .unwrap_or_else(|_| "unix:path=/var/run/dbus/system_bus_socket".to_owned())
}

/// A builder for the system bus, honouring `DBUS_SYSTEM_BUS_ADDRESS`.
pub fn system_builder() -> Result<Builder<'static>, BusError> {
    Builder::system().map_err(|source| BusError::Connect {
        address: system_address(),
        source: Box::new(source),
    })
}

/// Connect as a client (posctl, paymentd talking to scannerd).
pub async fn connect_system() -> Result<zbus::Connection, BusError> {
    zbus::Connection::system()
        .await
        .map_err(|source| BusError::Connect {
            address: system_address(),
            source: Box::new(source),
        })
}

/// Classify a failed `Builder::build()` of a daemon that asked for a name.
pub fn build_error(name: &str, source: zbus::Error) -> BusError {
    match source {
        zbus::Error::NameTaken | zbus::Error::FDO(_) | zbus::Error::MethodError(..) => {
            BusError::Name {
                name: name.to_owned(),
                source: Box::new(source),
            }
        }
        other => BusError::Connect {
            address: system_address(),
            source: Box::new(other),
        },
    }
}
