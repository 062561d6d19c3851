//! The extension point of the volume commands, as snaptastic 0.2.12's
//! `Snapshotter` class was: which volumes a host has, which tags select its
//! snapshots, how they are described and kept, and what runs around each
//! step. A TOML profile is the everyday implementation (`config::Profile`);
//! a program can bring its own and run `snaptastic::main(vec![...])`.
//!
//! The methods are synchronous and take only plain data, so an
//! implementation needs no async runtime and no AWS or Linux types. The
//! commands call them before anything is changed (`volumes`,
//! `filter_tags`, `description`) or at the hook points, never while a
//! filesystem is frozen.

use std::time::Duration;

use crate::config::{HookPoint, Userdata, Volume, DEFAULT_RETENTION};
use crate::instance::Identity;

/// What an implementation returns when it cannot answer: any error type
/// (`?` on `std::io::Error`, a config error, or `"text".into()`).
pub type SnapshotterError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A named way of finding, snapshotting and restoring a host's volumes.
///
/// Dyn-compatible and `Send + Sync`: the commands hold it as
/// `Arc<dyn Snapshotter>`, because the per-volume tasks of a restore run
/// concurrently and outlive any one borrow.
pub trait Snapshotter: Send + Sync {
    /// The name on the command line (`mount-snapshots NAME`) and in the
    /// `snaptastic:profile` tag. 0.2.12's class attribute `name`.
    fn name(&self) -> &str;

    /// The volumes this host should have (0.2.12's `get_volumes`).
    fn volumes(&self, host: &HostFacts) -> Result<Vec<Volume>, SnapshotterError>;

    /// `(tag key, value)` pairs that select this host's snapshots, and are
    /// written on every new snapshot and volume (0.2.12's
    /// `get_filter_tags`). Must not be empty: an empty filter matches every
    /// snapshot in the account.
    fn filter_tags(&self, host: &HostFacts) -> Result<Vec<(String, String)>, SnapshotterError>;

    /// The description of a new snapshot of `volume` (0.2.12's
    /// `get_snapshot_description`); EC2 keeps the first 255 characters.
    fn description(&self, volume: &Volume, host: &HostFacts) -> Result<String, SnapshotterError>;

    /// How long a new snapshot is kept: its `expires` tag is its creation
    /// time plus this (0.2.12's `SNAPSHOT_EXPIRY_DAYS`, 7 days).
    fn retention(&self) -> Duration {
        DEFAULT_RETENTION
    }

    /// Whose snapshots the lookups ask EC2 for (DescribeSnapshots'
    /// `OwnerIds`): `"self"` and/or 12-digit account ids. 0.2.12 asked
    /// without an owner filter, so snapshots another account shared with
    /// this one (DR copies) were found too; this asks for this account's
    /// own unless told. Snapshots of other accounts are restored and
    /// listed, never deleted by `clean`.
    fn snapshot_owners(&self) -> Vec<String> {
        vec!["self".into()]
    }

    /// Whether mount-snapshots warms a volume restored from a snapshot up
    /// by reading every block once in the background (the `prewarm`
    /// profile key). Off by default.
    fn prewarm(&self) -> crate::config::Prewarm {
        crate::config::Prewarm::Off
    }

    /// Regions that keep copies of the profile's snapshot sets
    /// (`copy-snapshots`; `clean snapshots` expires them there). None by
    /// default.
    fn copies(&self) -> Vec<crate::config::CopyTarget> {
        Vec::new()
    }

    /// `clean snapshots` moves snapshots older than this to the archive
    /// tier (never the ones a restore would use, nor ones kept less than
    /// the archive's 90-day minimum). None by default.
    fn archive_after(&self) -> Option<Duration> {
        None
    }

    /// Runs at each of the 12 hook points (0.2.12's `pre_mounts`,
    /// `post_snapshot`, ...). An error at a `pre_*` point stops the
    /// command before it changes anything; see docs/extending.md for what each
    /// point's failure means. The default does nothing.
    fn hook(&self, point: HookPoint, ctx: &HookCtx) -> Result<(), SnapshotterError> {
        let _ = (point, ctx);
        Ok(())
    }
}

/// Who this host is, as the commands found it: instance metadata (absent
/// off EC2, where `--userdata` stands in) and the userdata.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct HostFacts {
    /// `None` when metadata is unreachable and the command can do without
    /// (off EC2 with `--userdata`).
    pub identity: Option<Identity>,
    /// The instance's userdata, or `--userdata`, which replaces it.
    pub userdata: Userdata,
}

impl HostFacts {
    pub fn new(identity: Option<Identity>, userdata: Userdata) -> Self {
        Self { identity, userdata }
    }

    pub fn instance_id(&self) -> Option<&str> {
        self.identity.as_ref().map(|i| i.instance_id.as_str())
    }
}

/// What a hook is about: the whole run (`pre_mounts`, ...) has only the
/// snapshotter's name; a per-volume point has the volume's details.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct HookCtx {
    /// The snapshotter's name.
    pub profile: String,
    pub mount_point: Option<String>,
    /// The EC2 device name (`/dev/sdf`).
    pub device: Option<String>,
    /// The block device on this host (`/dev/xvdf`, `/dev/nvme1n1`).
    pub block_device: Option<String>,
    pub volume_id: Option<String>,
    /// `post_snapshot`: the snapshot just started; `pre_mount`: the one
    /// being restored, if any.
    pub snapshot_id: Option<String>,
}

impl HookCtx {
    /// The context of a run-wide hook point.
    pub fn run(profile: &str) -> Self {
        Self {
            profile: profile.to_string(),
            ..Self::default()
        }
    }

    /// The context of a per-volume hook point.
    pub fn volume(profile: &str, mount_point: &str, device: &str) -> Self {
        Self {
            profile: profile.to_string(),
            mount_point: Some(mount_point.to_string()),
            device: Some(device.to_string()),
            ..Self::default()
        }
    }

    pub fn with_volume_id(mut self, id: impl Into<String>) -> Self {
        self.volume_id = Some(id.into());
        self
    }

    pub fn with_block_device(mut self, path: impl Into<String>) -> Self {
        self.block_device = Some(path.into());
        self
    }

    pub fn with_snapshot_id(mut self, id: Option<impl Into<String>>) -> Self {
        self.snapshot_id = id.map(Into::into);
        self
    }
}
