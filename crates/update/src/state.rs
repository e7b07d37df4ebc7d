//! What must survive a reboot: the action being worked on, its phase and the version the new
//! slot must come up with. One JSON file in the state directory, replaced atomically (write,
//! fsync, rename, fsync the directory), so a power cut leaves the old or the new file.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where an action is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum Phase {
    /// Installed into the other slot; the next boot must come up from `slot` with `version`.
    AwaitingReboot { version: String, slot: String },
    /// The new slot failed its self-check and was marked bad; after booting the old slot the
    /// server is told `reason`.
    FallingBack { reason: String },
    /// The outcome is decided; the server has not yet acknowledged it.
    Closing { success: bool, detail: String },
}

/// The persisted record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The DDI action id, or `local` for a technician's InstallLocal (nothing to report).
    pub action: String,
    #[serde(flatten)]
    pub phase: Phase,
}

impl Record {
    pub fn is_local(&self) -> bool {
        self.action == LOCAL
    }
}

/// The action id of a technician's install.
pub const LOCAL: &str = "local";

#[derive(Debug)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(dir: &Path) -> Store {
        Store {
            path: dir.join("action.json"),
        }
    }

    /// The record, if there is one. A file that cannot be read is reported and set aside
    /// (renamed `.bad`), not trusted.
    pub fn load(&self) -> std::io::Result<Option<Record>> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match serde_json::from_slice(&text) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                tracing::error!("{}: unreadable ({e}); set aside", self.path.display());
                std::fs::rename(&self.path, self.path.with_extension("json.bad"))?;
                Ok(None)
            }
        }
    }

    pub fn save(&self, record: &Record) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &self.path)?;
        std::fs::File::open(dir)?.sync_all()
    }

    pub fn clear(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_awaiting_its_reboot_is_found_again_after_the_reboot() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.load().unwrap(), None);
        let r = Record {
            action: "12".into(),
            phase: Phase::AwaitingReboot {
                version: "1.1.0".into(),
                slot: "B".into(),
            },
        };
        store.save(&r).unwrap();
        assert_eq!(Store::new(dir.path()).load().unwrap(), Some(r));
        store.clear().unwrap();
        assert_eq!(store.load().unwrap(), None);
    }

    #[test]
    fn a_torn_state_file_is_set_aside_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("action.json"), b"{\"action\":\"1").unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.load().unwrap(), None);
        assert!(dir.path().join("action.json.bad").exists());
    }
}
