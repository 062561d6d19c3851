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
    std::collections::HashMap<u32, Option<String>>,
    std::collections::HashMap<u32, Option<String>>,
);

impl NameCache {
    /// The names of user `uid` and group `gid`, if the system knows them.
    pub(crate) fn of(&self, uid: u32, gid: u32) -> (Option<String>, Option<String>) {
        let mut maps = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let user = maps.0.entry(uid).or_insert_with(|| user_name(uid)).clone();
        let group = maps.1.entry(gid).or_insert_with(|| group_name(gid)).clone();
        (user, group)
    }
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
