//! The second layer of authorization. The bus policy file already decides who may call a
//! state-changing method; the daemon checks again, from the caller's credentials as the bus
//! daemon reports them, so that a loosened or missing policy file does not open the till.

use std::collections::BTreeSet;

use zbus::{Connection, fdo, message::Header, names::BusName};

/// Who is calling, as the bus daemon vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gids: BTreeSet<u32>,
    pub pid: Option<u32>,
}

/// Look up the caller of the message with header `hdr`.
pub async fn caller(hdr: &Header<'_>, conn: &Connection) -> fdo::Result<Caller> {
    let sender = hdr
        .sender()
        .ok_or_else(|| fdo::Error::AccessDenied("message has no sender".into()))?;
    let dbus = fdo::DBusProxy::new(conn).await?;
    let creds = dbus
        .get_connection_credentials(BusName::Unique(sender.to_owned()))
        .await?;
    let uid = creds
        .unix_user_id()
        .ok_or_else(|| fdo::Error::AccessDenied("the bus did not tell the caller's uid".into()))?;
    let mut gids: BTreeSet<u32> = creds
        .unix_group_ids()
        .map(|g| g.iter().copied().collect())
        .unwrap_or_default();
    if gids.is_empty() {
        // Older buses do not report groups: fall back to the user database.
        gids = groups_of_uid(uid);
    }
    Ok(Caller {
        uid,
        gids,
        pid: creds.process_id(),
    })
}

fn groups_of_uid(uid: u32) -> BTreeSet<u32> {
    use nix::unistd::{Uid, User, getgrouplist};
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return BTreeSet::new();
    };
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return BTreeSet::new();
    };
    getgrouplist(&name, user.gid)
        .map(|gs| gs.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_default()
}

/// Say once per process that a configured group is missing (several policies name it).
fn warn_once(group: &str) {
    static WARNED: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());
    let mut warned = WARNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if warned.insert(group.to_owned()) {
        tracing::warn!("group {group:?} does not exist; its members cannot be let in");
    }
}

/// Who may change state: root, the daemon's own user, and members of named groups.
#[derive(Debug, Clone)]
pub struct Policy {
    uids: BTreeSet<u32>,
    gids: BTreeSet<u32>,
    /// Group names as configured, for error messages.
    names: Vec<String>,
}

impl Policy {
    /// Resolve group names now; a name that does not exist is logged and grants nothing.
    pub fn new(groups: &[String]) -> Self {
        let mut gids = BTreeSet::new();
        for name in groups {
            match nix::unistd::Group::from_name(name) {
                Ok(Some(g)) => {
                    gids.insert(g.gid.as_raw());
                }
                _ => warn_once(name),
            }
        }
        let mut uids = BTreeSet::from([0]);
        uids.insert(nix::unistd::getuid().as_raw());
        Policy {
            uids,
            gids,
            names: groups.to_vec(),
        }
    }

    /// Also let in these numeric uids (tests; service users of sibling daemons).
    pub fn with_uids(mut self, uids: impl IntoIterator<Item = u32>) -> Self {
        self.uids.extend(uids);
        self
    }

    /// Is `caller` allowed?
    pub fn allows(&self, caller: &Caller) -> bool {
        self.uids.contains(&caller.uid) || caller.gids.iter().any(|g| self.gids.contains(g))
    }

    /// Check the caller of `hdr`, returning the D-Bus `AccessDenied` error the caller sees.
    pub async fn check(
        &self,
        hdr: &Header<'_>,
        conn: &Connection,
        what: &str,
    ) -> fdo::Result<Caller> {
        let c = caller(hdr, conn).await?;
        if self.allows(&c) {
            Ok(c)
        } else {
            tracing::warn!(uid = c.uid, pid = ?c.pid, "refused {what}");
            Err(fdo::Error::AccessDenied(format!(
                "uid {} may not {what}: only root, the service user and members of {} may",
                c.uid,
                if self.names.is_empty() {
                    "no group".to_owned()
                } else {
                    self.names.join(", ")
                }
            )))
        }
    }
}

/// Who may read what a daemon holds about its work (a payment daemon's sales): a [`Policy`]
/// checked for reads, e.g. property reads of objects a stranger must not see.
///
/// The answer is kept per caller connection: a bus never reuses a unique name, so one
/// credentials lookup serves all the properties of a GetAll and the reads that follow.
pub struct Readers {
    policy: Policy,
    /// What is read, for the refusal: "sales".
    what: String,
    seen: std::sync::Mutex<std::collections::HashMap<String, bool>>,
}

/// How many caller connections' answers are kept before the list starts again.
const READERS_KEPT: usize = 256;

impl Readers {
    pub fn new(policy: Policy, what: &str) -> std::sync::Arc<Readers> {
        std::sync::Arc::new(Readers {
            policy,
            what: what.to_owned(),
            seen: std::sync::Mutex::default(),
        })
    }

    /// Ok if the caller of `hdr` may read. No header means the daemon itself asks.
    pub async fn check(&self, hdr: Option<&Header<'_>>, conn: &Connection) -> fdo::Result<()> {
        let Some(hdr) = hdr else { return Ok(()) };
        let sender = hdr.sender().map(ToString::to_string).unwrap_or_default();
        let lock = || {
            self.seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let known = lock().get(&sender).copied();
        let allowed = match known {
            Some(a) => a,
            None => {
                let a = match self
                    .policy
                    .check(hdr, conn, &format!("read {}", self.what))
                    .await
                {
                    Ok(_) => true,
                    Err(fdo::Error::AccessDenied(_)) => false,
                    Err(e) => return Err(e),
                };
                let mut seen = lock();
                if seen.len() >= READERS_KEPT {
                    seen.clear();
                }
                seen.insert(sender, a);
                a
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(fdo::Error::AccessDenied(format!(
                "only root, the service user and members of {} may read {}",
                if self.policy.names.is_empty() {
                    "no group".to_owned()
                } else {
                    self.policy.names.join(", ")
                },
                self.what
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_group_members_are_let_in_others_are_not() {
        let mut p = Policy::new(&[]);
        p.gids.insert(4242);
        let root = Caller {
            uid: 0,
            gids: BTreeSet::new(),
            pid: None,
        };
        let member = Caller {
            uid: 5000,
            gids: BTreeSet::from([100, 4242]),
            pid: None,
        };
        let stranger = Caller {
            uid: 65534,
            gids: BTreeSet::from([65534]),
            pid: None,
        };
        assert!(p.allows(&root));
        assert!(p.allows(&member));
        assert!(!p.allows(&stranger));
    }
}
