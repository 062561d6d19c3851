//! What a restored file is given besides its bytes: owner and group (as
//! asked, or as backed up with `-p`), its mode without the setuid,
//! setgid and sticky bits unless asked for, and its time. All on the open
//! file, never by path.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};

use super::keys::StatMeta;

/// Why a restored file could not be given its owner or mode.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StatError {
    #[error("chmod: {0}")]
    Chmod(#[source] std::io::Error),
    #[error("chown: {0}")]
    Chown(#[source] std::io::Error),
}

/// Owner and group to give restored files.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ownership {
    pub preserve: bool,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// `--keep-special-bits` (only with `preserve`).
    pub special_bits: bool,
}

/// Owner and group per the options, then the mode from the `stat`
/// metadata (after the owner: a chown clears setuid/setgid), then the
/// mtime from the object's time; all on the open file. Setuid, setgid and
/// sticky bits are kept only with `-p --keep-special-bits` and the owner
/// restored: otherwise anyone who can write the bucket, or chmod a file
/// before it is backed up, would have root make a setuid-root file.
pub(crate) fn apply_stat(
    file: &std::fs::File,
    path: &Path,
    stat: &StatMeta,
    owner: &Ownership,
    mtime: Option<DateTime<Utc>>,
) -> Result<(), StatError> {
    let (mut uid, mut gid) = (owner.uid, owner.gid);
    if owner.preserve {
        let by_name_u = stat.user.as_deref().and_then(|u| lookup_user(u).ok());
        let by_name_g = stat.group.as_deref().and_then(|g| lookup_group(g).ok());
        uid = uid.or(by_name_u).or(stat.uid);
        gid = gid.or(by_name_g).or(stat.gid);
    }
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::fchown(file, uid, gid).map_err(StatError::Chown)?;
    }
    let mut mode = stat.mode.map_or(0o644, |m| m & 0o7777);
    let special = mode & 0o7000;
    // Only with the owner restored, and never onto root: a setuid or
    // setgid root file is what an attacker would ask the bucket for.
    let owner_restored =
        owner.preserve && uid.is_some_and(|u| u != 0) && gid.is_some_and(|g| g != 0);
    if special != 0 && !(owner.special_bits && owner_restored) {
        mode &= 0o777;
        tracing::warn!(
            "{}: restored without its setuid/setgid/sticky bits (mode {:o} in the backup; \
             -p --keep-special-bits keeps them with the owner restored, never for root)",
            path.display(),
            special | mode
        );
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(StatError::Chmod)?;
    if let Some(t) = mtime {
        let _ = file.set_modified(SystemTime::from(t));
    }
    Ok(())
}

pub(crate) fn lookup_user(name: &str) -> Result<u32> {
    crate::host::users::uid_of(name).with_context(|| format!("no user {name} on this host"))
}

pub(crate) fn lookup_group(name: &str) -> Result<u32> {
    crate::host::users::gid_of(name).with_context(|| format!("no group {name} on this host"))
}
