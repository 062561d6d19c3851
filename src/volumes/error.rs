//! Why one volume's step failed, for the per-volume report of mount- and
//! unmount-snapshots and make-snapshots --wait.

use std::path::PathBuf;

use thiserror::Error;

use super::hooks::HookError;
use super::tags::{STATE_ATTACHED, TAG_STATE};
use crate::cloud::{CloudError, WaitError};
use crate::host::HostError;
use crate::tasks::TaskFailed;

#[derive(Debug, Error)]
pub(crate) enum VolumeError {
    #[error(transparent)]
    Cloud(#[from] CloudError),

    #[error(transparent)]
    Host(#[from] HostError),

    #[error(transparent)]
    Hook(#[from] HookError),

    #[error(transparent)]
    Task(#[from] TaskFailed),

    /// A wait for EC2 (volume available, attached, detached; snapshot
    /// completed) that timed out or failed.
    #[error("waiting for {id} to {what}: {source}")]
    Wait {
        id: String,
        what: &'static str,
        #[source]
        source: Box<WaitError>,
    },

    #[error("{0} is in state error")]
    InError(String),

    #[error("{0} disappeared")]
    Vanished(String),

    #[error("{} (from {from}) holds no filesystem; refusing to format a restored volume", .device.display())]
    RestoredBlank { device: PathBuf, from: String },

    /// A volume an earlier run created empty and then formatted (its state
    /// tag says it got as far as being attached or mounted) that holds no
    /// filesystem now: a damaged superblock, not a new volume.
    #[error(
        "{volume} ({}) holds no filesystem, but it was formatted and {state} by an earlier run and may hold data: \
         refusing to format it. Check it (fsck.ext4 -n / xfs_repair -n {}); repair it and re-run, \
         or detach it and delete it to restore from the newest snapshot",
        .device.display(),
        .device.display()
    )]
    UsedBlank {
        volume: String,
        device: PathBuf,
        state: String,
    },

    #[error("{} holds {found}; snaptastic mounts only ext4 and xfs", .device.display())]
    UnsupportedFilesystem { device: PathBuf, found: String },

    #[error("snapshot {snapshot} is not completed ({reason}) and there is no older one; not creating an empty volume in its place: re-run later or raise --wait-pending")]
    PendingWithoutFallback { snapshot: String, reason: String },

    /// A pending snapshot of the set the profile is restored from did not
    /// complete: the other volumes come from that set, so no other point
    /// in time (nor an empty volume) is taken in its place.
    #[error("snapshot {snapshot} of snapshot set snaptastic:run={run} is not usable ({reason}); not restoring this volume from another point in time than the others: re-run later (with --ignore-mounted), or raise --wait-pending")]
    SetMemberUnusable {
        snapshot: String,
        run: String,
        reason: String,
    },

    /// The `attached` state tag is what tells `clean volumes` that a
    /// volume may hold data; without it the volume is not mounted.
    #[error("could not tag {volume} {}={} ({source}); not mounting it, or clean volumes would take it for a crash leftover", TAG_STATE, STATE_ATTACHED)]
    NotMarked {
        volume: String,
        #[source]
        source: Box<CloudError>,
    },

    /// unmount-snapshots says `detached` (or `deleting`) before it
    /// detaches; a volume that cannot be told so stays attached.
    #[error("could not tag {volume} {}={state} ({source}); not detaching it, or a restore would not know it holds newer data than any snapshot", TAG_STATE)]
    NotMarkedForDetach {
        volume: String,
        state: &'static str,
        #[source]
        source: Box<CloudError>,
    },

    #[error("the mount point it lies in, {0}, was not mounted; not mounting inside it")]
    ParentNotMounted(String),

    #[error("reading /proc/self/mountinfo: {0}")]
    Mountinfo(#[source] std::io::Error),

    #[error("unmount failed: {0}; not detaching")]
    Unmount(String),

    #[error("{} ({volume}) is still in use ({why}); not detaching {volume}: run unmount-snapshots again when it is free", .device.display())]
    InUse {
        device: PathBuf,
        volume: String,
        why: &'static str,
    },

    /// The volume's block device is under none of the names it may have
    /// here: whether it is still mounted or open cannot be checked, and a
    /// detach while it is would corrupt it.
    #[error("{volume} (attached as {device}) is not detached: its block device was not found (looked at {}), so whether {mount_point} or anything else still uses it cannot be checked; find it (lsblk), make sure it is unmounted and unused, then detach it yourself (aws ec2 detach-volume --volume-id {volume})", .looked.join(", "))]
    NoDevice {
        volume: String,
        device: String,
        mount_point: String,
        looked: Vec<String>,
    },
}
