//! The TOML file as written, with a span on every value so that validation
//! can point at `file:line:col`. Nothing here checks meaning; `validate.rs`
//! turns these into the types in `profile.rs`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    /// AWS region; default: the SDK's chain (AWS_REGION, profile), then the
    /// region of the instance's availability zone.
    pub region: Option<Spanned<String>>,
    /// Where block devices appear (default `/dev`).
    pub device_root: Option<Spanned<String>>,
    #[serde(default)]
    pub profiles: BTreeMap<Spanned<String>, Spanned<RawProfile>>,
    /// Settings of the tablesnap daemon, as an alternative to its flags.
    pub tablesnap: Option<Spanned<RawTablesnap>>,
}

/// `[tablesnap]`: the daemon's flags by their long names (snake_case).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTablesnap {
    pub bucket: Option<Spanned<String>>,
    pub paths: Option<Vec<Spanned<String>>>,
    pub recursive: Option<bool>,
    pub auto_add: Option<bool>,
    pub backup: Option<bool>,
    pub without_index: Option<bool>,
    pub prefix: Option<String>,
    pub name: Option<String>,
    pub keyname_separator: Option<String>,
    pub threads: Option<Spanned<i64>>,
    pub exclude: Option<Vec<String>>,
    pub include: Option<Vec<String>>,
    pub listen_events: Option<Vec<Spanned<String>>>,
    pub max_upload_size: Option<Spanned<i64>>,
    pub multipart_chunk_size: Option<Spanned<i64>>,
    pub aws_region: Option<String>,
    pub endpoint_url: Option<String>,
    pub s3_force_path_style: Option<bool>,
    pub storage_class: Option<String>,
    pub sse: Option<Spanned<String>>,
    pub sse_kms_key_id: Option<String>,
    pub retries: Option<Spanned<i64>>,
    pub state_dir: Option<Spanned<String>>,
    pub md5_on_start: Option<bool>,
    pub stall_timeout: Option<Spanned<String>>,
}

/// One `[profiles.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfile {
    pub volumes: Option<Vec<Spanned<RawVolume>>>,
    pub volumes_from_userdata: Option<Spanned<String>>,
    pub filter_tags: Option<Spanned<Vec<Spanned<String>>>>,
    pub description: Option<Spanned<String>>,
    /// `"plain"` (default) or `"0.2.12"`: every `_` of the rendered
    /// description becomes `-`, as 0.2.12 did.
    pub description_style: Option<Spanned<String>>,
    pub snapshot_retention: Option<Spanned<String>>,
    /// Whose snapshots the lookups ask EC2 for: `"self"` and/or 12-digit
    /// account ids (snapshots shared from another account, e.g. DR copies).
    pub snapshot_owners: Option<Spanned<Vec<Spanned<String>>>>,
    /// `"block"` or `"off"` (default): warm restored volumes up.
    pub prewarm: Option<Spanned<String>>,
    /// Move snapshots older than this to the archive tier (`clean`).
    pub archive_after: Option<Spanned<String>>,
    /// `[[profiles.NAME.copies]]`: Regions that keep copies of the sets.
    pub copies: Option<Vec<Spanned<RawCopy>>>,
    #[serde(default)]
    pub hooks: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawHook>>>>,
}

/// One copy target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCopy {
    pub region: Option<Spanned<String>>,
    pub kms_key_id: Option<Spanned<String>>,
    pub retention: Option<Spanned<String>>,
    pub max_in_flight: Option<Spanned<i64>>,
}

/// One volume, from the file or from userdata.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVolume {
    pub device: Option<Spanned<String>>,
    pub mount_point: Option<Spanned<String>>,
    pub size: Option<Spanned<i64>>,
    pub file_system: Option<Spanned<String>>,
    pub mount_options: Option<Spanned<String>>,
    pub volume_type: Option<Spanned<String>>,
    /// A number only. 0.2.12 wrote `iops: false` for "none", and its
    /// userdata volumes are read that way (`userdata.rs` drops a `false`
    /// before this type sees it); but in this file `iops = false` stays an
    /// error: the file is written for this tool by hand, where `false` is
    /// ambiguous ("no provisioned IOPS", or "the type's baseline" for gp3)
    /// and leaving the key out says "none" plainly. A file is also fixed in
    /// a minute, unlike userdata baked into launch templates.
    pub iops: Option<Spanned<i64>>,
    pub throughput: Option<Spanned<i64>>,
    pub encrypted: Option<Spanned<bool>>,
    pub kms_key_id: Option<Spanned<String>>,
    pub delete_on_termination: Option<Spanned<bool>>,
    pub device_name_offset: Option<Spanned<i64>>,
    /// MiB/s (100-300) sent as CreateVolume's `VolumeInitializationRate`.
    pub init_rate: Option<Spanned<i64>>,
}

/// A hook: one argv (`["systemctl", "stop", "pg"]`) or several
/// (`[["chmod", ...], ["chown", ...]]`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawHook {
    // Spans do not survive serde's untagged buffering, so the hook as a
    // whole carries the span.
    One(Vec<String>),
    Many(Vec<Vec<String>>),
}

/// Userdata volumes are JSON; they are turned into a TOML document so the
/// same `RawVolume` (with its spans and unknown-field checks) reads them.
#[derive(Debug, Deserialize)]
pub(super) struct RawVolumeList {
    pub volumes: Vec<Spanned<RawVolume>>,
}
