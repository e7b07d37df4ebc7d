//! `org.smartpos.Update1` at `/org/smartpos/Update1` (contract: `crates/bus/xml/org.smartpos.Update1.xml`).
//!
//! Anyone may read the properties (an update's state is not a secret); only root, the
//! service user and technicians may ask for a check or install a local bundle, checked here
//! again after the bus policy.

use std::time::Duration;

use smartpos_bus::errors;
use smartpos_runtime::{auth::Policy, error::BusError};
use smartpos_update::{Command, Status};
use tokio::sync::{mpsc, oneshot, watch};
use zbus::{Connection, interface, message::Header};

pub struct UpdateService {
    pub status: watch::Receiver<Status>,
    pub commands: mpsc::Sender<Command>,
    pub technicians: Policy,
}

impl UpdateService {
    fn now(&self) -> Status {
        self.status.borrow().clone()
    }
}

/// How long InstallLocal waits for the updater to take the bundle (it may be busy with a
/// download).
const TAKE_WITHIN: Duration = Duration::from_secs(20);

#[interface(name = "org.smartpos.Update1")]
impl UpdateService {
    /// Poll the fleet server now.
    async fn check(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        self.technicians
            .check(&hdr, conn, "ask for an update check")
            .await?;
        self.commands.try_send(Command::Check).map_err(|_| {
            BusError::named(
                errors::BUSY,
                "the updater is busy; it will poll when it is done",
            )
        })
    }

    /// Install a RAUC bundle from a local file (a technician's USB stick).
    async fn install_local(
        &self,
        path: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        let caller = self
            .technicians
            .check(&hdr, conn, "install a local bundle")
            .await?;
        tracing::info!(uid = caller.uid, "local install of {path} requested");
        let (reply, answer) = oneshot::channel();
        let cmd = Command::InstallLocal {
            path: path.into(),
            reply,
        };
        self.commands
            .send_timeout(cmd, TAKE_WITHIN)
            .await
            .map_err(|_| BusError::named(errors::BUSY, "the updater is busy; try again later"))?;
        match tokio::time::timeout(TAKE_WITHIN, answer).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(why))) => Err(BusError::named(errors::REFUSED, why)),
            Ok(Err(_)) => Err(BusError::named(errors::FAILED, "the updater stopped")),
            Err(_) => Err(BusError::named(
                errors::BUSY,
                "the updater is busy (a download); try again later",
            )),
        }
    }

    /// This daemon's version.
    #[zbus(property)]
    fn version(&self) -> String {
        smartpos_runtime::VERSION.to_owned()
    }

    #[zbus(property)]
    fn state(&self) -> String {
        self.now().state
    }

    /// (percent, step) of the current step.
    #[zbus(property)]
    fn progress(&self) -> (u32, String) {
        let s = self.now();
        (s.percent, s.step)
    }

    #[zbus(property)]
    fn current_version(&self) -> String {
        self.now().current
    }

    #[zbus(property)]
    fn pending_version(&self) -> String {
        self.now().pending
    }

    #[zbus(property)]
    fn last_error(&self) -> String {
        self.now().last_error
    }

    #[zbus(property)]
    fn action_id(&self) -> String {
        self.now().action
    }
}
