//! Remote updates for smartpos: a hawkBit DDI client ([`ddi`], [`fleet`], over the stack's shared HTTPS transport) that downloads
//! bundles itself (Range resume, size and hash checks, bandwidth cap), installs them through
//! RAUC over D-Bus ([`rauc`]) only inside the payment daemon's install window ([`payment`]),
//! and reports success only after the new slot booted and proved itself ([`engine`]). What
//! must survive the reboot is in [`state`].

pub mod config;
pub mod ddi;
pub mod engine;
pub mod fleet;
pub mod payment;
pub mod rauc;
pub mod state;
pub mod verify;
pub mod version;

pub use engine::{Command, Engine, Status};
