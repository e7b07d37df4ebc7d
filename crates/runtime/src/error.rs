//! The error a daemon's method answers with: one D-Bus error name per kind of failure, from
//! `smartpos_bus::errors` (each interface's XML lists them). A vendor app branches on the
//! name, never on the message; the message says why and what to do.
//!
//! Code inside the daemons keeps using zbus's `fdo::Error::InvalidArgs` / `AccessDenied` where
//! that is natural; they leave the daemon as `org.smartpos.Error.InvalidArgs` and
//! `org.smartpos.Error.NotAllowed`, so every method of ours speaks one vocabulary.

use smartpos_bus::errors;
use zbus::fdo;
use zbus::names::ErrorName;

/// A method's failure as the caller sees it.
#[derive(Debug)]
pub enum BusError {
    /// A zbus/freedesktop error; InvalidArgs and AccessDenied are renamed (see [`renamed`]).
    Fdo(fdo::Error),
    /// One of ours: `name` is from `smartpos_bus::errors`.
    Named { name: &'static str, message: String },
}

impl BusError {
    pub fn named(name: &'static str, message: impl Into<String>) -> Self {
        BusError::Named {
            name,
            message: message.into(),
        }
    }
}

/// The name a zbus error leaves our daemons with: bad input and a refused caller get our
/// names; anything else (e.g. `UnknownMethod` from zbus itself) keeps its own.
pub fn renamed(e: &fdo::Error) -> ErrorName<'_> {
    match e {
        fdo::Error::InvalidArgs(_) => ErrorName::from_static_str_unchecked(errors::INVALID_ARGS),
        fdo::Error::AccessDenied(_) => ErrorName::from_static_str_unchecked(errors::NOT_ALLOWED),
        other => zbus::DBusError::name(other),
    }
}

impl zbus::DBusError for BusError {
    fn create_reply(
        &self,
        hdr: &zbus::message::Header<'_>,
    ) -> zbus::Result<zbus::message::Message> {
        zbus::message::Message::error(hdr, self.name())?
            .build(&(self.description().unwrap_or_default(),))
    }

    fn name(&self) -> ErrorName<'_> {
        match self {
            BusError::Fdo(e) => renamed(e),
            BusError::Named { name, .. } => ErrorName::from_static_str_unchecked(name),
        }
    }

    fn description(&self) -> Option<&str> {
        match self {
            BusError::Fdo(e) => zbus::DBusError::description(e),
            BusError::Named { message, .. } => Some(message),
        }
    }
}

impl From<fdo::Error> for BusError {
    fn from(e: fdo::Error) -> Self {
        BusError::Fdo(e)
    }
}

impl From<zbus::Error> for BusError {
    fn from(e: zbus::Error) -> Self {
        BusError::Fdo(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::DBusError;

    #[test]
    fn bad_input_and_a_refused_caller_get_our_names() {
        let bad = BusError::from(fdo::Error::InvalidArgs("amount".into()));
        assert_eq!(bad.name().as_str(), "org.smartpos.Error.InvalidArgs");
        assert_eq!(bad.description(), Some("amount"));
        let denied = BusError::from(fdo::Error::AccessDenied("uid 65534".into()));
        assert_eq!(denied.name().as_str(), "org.smartpos.Error.NotAllowed");
        let unknown = BusError::from(fdo::Error::UnknownMethod("Nope".into()));
        assert_eq!(
            unknown.name().as_str(),
            "org.freedesktop.DBus.Error.UnknownMethod"
        );
        let refused = BusError::named(errors::REFUSED, "no");
        assert_eq!(refused.name().as_str(), "org.smartpos.Error.Refused");
    }
}
