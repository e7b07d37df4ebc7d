//! Wrong argument types answer `org.smartpos.Error.InvalidArgs`.
//!
//! zbus's `#[interface]` dispatch deserialises a call's arguments itself and, when the body
//! does not have the method's signature (an app sends `i` where the contract says `x`),
//! replies with zbus's own `org.freedesktop.zbus.Error`, which no contract names. [`Strict`]
//! wraps an interface and checks the body's signature against the method's own introspection
//! before dispatch, answering the standard `InvalidArgs` with what was expected. Everything
//! else is passed through unchanged, so the wrapped interface's behaviour, introspection and
//! properties stay exactly what `#[interface]` generated.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use zbus::message::{Header, Message};
use zbus::names::{InterfaceName, MemberName};
use zbus::object_server::{DispatchResult2, Interface, SignalEmitter};
use zbus::zvariant::{OwnedValue, Value};
use zbus::{Connection, ObjectServer, fdo};

use crate::auth::Readers;

/// An interface whose methods refuse arguments of the wrong type with `InvalidArgs`, and
/// whose properties, optionally, only [`Readers`] may read.
pub struct Strict<I> {
    inner: I,
    /// Method name → the concatenated signature of its `in` arguments.
    signatures: HashMap<String, String>,
    readers: Option<Arc<Readers>>,
}

impl<I: Interface> Strict<I> {
    pub fn new(inner: I) -> Self {
        let signatures = in_signatures(&inner);
        Strict {
            inner,
            signatures,
            readers: None,
        }
    }

    /// Only `readers` may Get or GetAll the properties: a refused GetAll is `AccessDenied`
    /// as a whole (zbus's own GetAll leaves out each property whose getter fails, and would
    /// answer a stranger with an empty list).
    #[must_use]
    pub fn readable_by(mut self, readers: Arc<Readers>) -> Self {
        self.readers = Some(readers);
        self
    }

    async fn may_read(
        &self,
        connection: &Connection,
        header: Option<&Header<'_>>,
    ) -> fdo::Result<()> {
        match &self.readers {
            Some(r) => r.check(header, connection).await,
            None => Ok(()),
        }
    }

    /// The wrapped interface.
    pub fn inner(&self) -> &I {
        &self.inner
    }

    /// `Some(error)` if `msg` calls a method of ours with a body of the wrong signature.
    fn mismatch(&self, msg: &Message, name: &MemberName<'_>) -> Option<fdo::Error> {
        let want = self.signatures.get(name.as_str())?;
        let got = msg.body().signature().to_string_no_parens();
        (got != *want).then(|| {
            fdo::Error::InvalidArgs(format!(
                "{name} takes arguments of type ({want}), not ({got}): see the interface XML"
            ))
        })
    }
}

fn in_signatures<I: Interface>(iface: &I) -> HashMap<String, String> {
    let mut xml = String::from("<node>\n");
    iface.introspect_to_writer(&mut xml, 0);
    xml.push_str("</node>\n");
    let mut out = HashMap::new();
    let node = match zbus_xml::Node::from_reader(xml.as_bytes()) {
        Ok(n) => n,
        Err(e) => {
            // Cannot happen with zbus-generated introspection; without the table the calls
            // still work, with zbus's own error for a wrong type.
            tracing::error!("cannot read {}'s own introspection: {e}", I::name());
            return out;
        }
    };
    for i in node.interfaces() {
        for m in i.methods() {
            let mut sig = String::new();
            for a in m.args() {
                if a.direction() != Some(zbus_xml::ArgDirection::Out) {
                    let _ = write!(sig, "{}", a.ty().inner());
                }
            }
            out.insert(m.name().to_string(), sig);
        }
    }
    out
}

fn reply_invalid<'a>(
    connection: &'a Connection,
    msg: &'a Message,
    err: fdo::Error,
) -> DispatchResult2<'a> {
    DispatchResult2::Async(Box::pin(async move {
        let hdr = msg.header();
        connection
            .reply_dbus_error(&hdr, crate::error::BusError::from(err))
            .await
            .map(|_| ())
            .map_err(fdo::Error::from)
    }))
}

#[zbus::export::async_trait::async_trait]
impl<I: Interface> Interface for Strict<I> {
    fn name() -> InterfaceName<'static> {
        I::name()
    }

    fn spawn_tasks_for_methods(&self) -> bool {
        self.inner.spawn_tasks_for_methods()
    }

    async fn get(
        &self,
        property_name: &str,
        server: &ObjectServer,
        connection: &Connection,
        header: Option<&Header<'_>>,
        emitter: &SignalEmitter<'_>,
    ) -> Option<fdo::Result<OwnedValue>> {
        if let Err(e) = self.may_read(connection, header).await {
            return Some(Err(e));
        }
        self.inner
            .get(property_name, server, connection, header, emitter)
            .await
    }

    async fn get_all(
        &self,
        server: &ObjectServer,
        connection: &Connection,
        header: Option<&Header<'_>>,
        emitter: &SignalEmitter<'_>,
    ) -> fdo::Result<HashMap<String, OwnedValue>> {
        self.may_read(connection, header).await?;
        self.inner
            .get_all(server, connection, header, emitter)
            .await
    }

    fn set<'call>(
        &'call self,
        property_name: &'call str,
        value: &'call Value<'_>,
        server: &'call ObjectServer,
        connection: &'call Connection,
        header: Option<&'call Header<'_>>,
        emitter: &'call SignalEmitter<'_>,
    ) -> DispatchResult2<'call> {
        self.inner
            .set(property_name, value, server, connection, header, emitter)
    }

    async fn set_mut(
        &mut self,
        property_name: &str,
        value: &Value<'_>,
        server: &ObjectServer,
        connection: &Connection,
        header: Option<&Header<'_>>,
        emitter: &SignalEmitter<'_>,
    ) -> Option<fdo::Result<()>> {
        self.inner
            .set_mut(property_name, value, server, connection, header, emitter)
            .await
    }

    fn call<'call>(
        &'call self,
        server: &'call ObjectServer,
        connection: &'call Connection,
        msg: &'call Message,
        name: MemberName<'call>,
    ) -> DispatchResult2<'call> {
        match self.mismatch(msg, &name) {
            Some(err) => reply_invalid(connection, msg, err),
            None => self.inner.call(server, connection, msg, name),
        }
    }

    fn call_mut<'call>(
        &'call mut self,
        server: &'call ObjectServer,
        connection: &'call Connection,
        msg: &'call Message,
        name: MemberName<'call>,
    ) -> DispatchResult2<'call> {
        match self.mismatch(msg, &name) {
            Some(err) => reply_invalid(connection, msg, err),
            None => self.inner.call_mut(server, connection, msg, name),
        }
    }

    fn introspect_to_writer(&self, writer: &mut dyn Write, level: usize) {
        self.inner.introspect_to_writer(writer, level);
    }
}
