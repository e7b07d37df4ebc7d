//! Remote updates for smartpos: a hawkBit DDI client ([`ddi`], [`fleet`], over the stack's
//! shared HTTPS transport) that takes what a deployment holds ([`plan`]), downloads bundles and
//! signed merchant configurations itself (Range resume, size and hash checks, bandwidth cap),
//! hands the configurations to the payment daemon and installs bundles through RAUC over D-Bus
//! ([`rauc`]), both only inside the server's maintenance window, the bundle only inside the
//! payment daemon's install window ([`payment`]), and reports success only after the new slot
//! booted and proved itself ([`engine`]). What must survive the reboot is in [`state`].

pub mod config;
pub mod ddi;
pub mod engine;
pub mod fleet;
pub mod payment;
pub mod plan;
pub mod rauc;
pub mod state;
pub mod verify;
pub mod version;

pub use engine::{Command, Engine, Status};
