//! Exit codes, one per failure class, so that systemd units can say
//! `RestartPreventExitStatus=78` (a bad config will not fix itself by restarting) and a
//! technician can tell from `systemctl status` what went wrong. Values follow sysexits.h.

use std::process::ExitCode;

/// Why a daemon or tool stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Clean stop.
    Ok = 0,
    /// A command-line usage error.
    Usage = 64,
    /// The input (a file, an argument's value) is bad.
    DataErr = 65,
    /// A required service is unavailable: the bus, a daemon, a device.
    Unavailable = 69,
    /// An internal error: a bug.
    Software = 70,
    /// An I/O error: the journal, a state directory.
    IoErr = 74,
    /// A temporary failure: try again.
    TempFail = 75,
    /// The caller is not allowed to do this.
    NoPerm = 77,
    /// The configuration file is bad.
    Config = 78,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}
