//! Users, groups and the host name, from the system's databases (NSS):
//! what tablesnap records in its `stat` metadata and tableslurp restores.

/// The name of user `uid`, if the system knows it.
pub(crate) fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// The name of group `gid`, if the system knows it.
pub(crate) fn group_name(gid: u32) -> Option<String> {
    nix::unistd::Group::from_gid(gid.into())
        .ok()
        .flatten()
        .map(|g| g.name)
}

/// Owner and group names by id, each looked up once: a daemon that
/// uploads thousands of files a minute asks NSS (which may be LDAP) once
/// per id, not twice per file.
#[derive(Default)]
pub(crate) struct NameCache {
    names: std::sync::Mutex<NameMaps>,
}

type NameMaps = (
    std::collections::HashMap<u32, String>,
    std::collections::HashMap<u32, String>,
);

impl NameCache {
    /// The names of user `uid` and group `gid`, if the system knows them.
    pub(crate) fn of(&self, uid: u32, gid: u32) -> (Option<String>, Option<String>) {
        let mut maps = self.names.lock().unwrap_or_else(|e| e.into_inner());
        (
            cached(&mut maps.0, uid, user_name),
            cached(&mut maps.1, gid, group_name),
        )
    }
}

/// A name found is kept; none found is asked again next time (a directory
/// service that failed for a moment must not leave the daemon without
/// owner names for the rest of its life).
fn cached(
    map: &mut std::collections::HashMap<u32, String>,
    id: u32,
    look_up: fn(u32) -> Option<String>,
) -> Option<String> {
    if let Some(name) = map.get(&id) {
        return Some(name.clone());
    }
    let name = look_up(id)?;
    map.insert(id, name.clone());
    Some(name)
}

/// The id of user `name`.
pub(crate) fn uid_of(name: &str) -> Option<u32> {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

/// The id of group `name`.
pub(crate) fn gid_of(name: &str) -> Option<u32> {
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

/// The kernel's host name.
pub(crate) fn hostname() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
}
