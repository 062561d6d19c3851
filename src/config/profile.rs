//! Validated configuration: what the rest of the tool works with. Every
//! value here has passed `validate.rs`, so commands never re-check it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// Default keys whose userdata values select a profile's snapshots, as in
/// snaptastic 0.2.12's `get_filter_tags`.
pub(super) const DEFAULT_FILTER_TAGS: [&str; 3] = ["role", "cluster", "environment"];

/// The description snaptastic 0.2.12 gave its snapshots.
pub(crate) const DEFAULT_DESCRIPTION: &str = "{cluster} snapshot of {mount_point}";

/// The original's `SNAPSHOT_EXPIRY_DAYS`: the `expires` tag is now + 7 days.
pub(crate) const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Whose snapshots are looked up unless `snapshot_owners` says otherwise.
pub(crate) const DEFAULT_SNAPSHOT_OWNERS: [&str; 1] = ["self"];

/// The loaded configuration file.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The file it was read from (for messages).
    pub path: PathBuf,
    /// Region override; `None` means the SDK chain, then the instance's AZ.
    pub region: Option<String>,
    /// Where block devices appear; `/dev` unless pointed elsewhere.
    pub device_root: PathBuf,
    pub profiles: BTreeMap<String, Profile>,
    /// `[tablesnap]`, if present.
    pub tablesnap: Option<Tablesnap>,
}

/// The daemon's settings from the file; flags given on the command line
/// win over these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tablesnap {
    pub bucket: Option<String>,
    pub paths: Vec<PathBuf>,
    pub recursive: bool,
    pub auto_add: bool,
    pub backup: bool,
    pub without_index: bool,
    pub prefix: Option<String>,
    pub name: Option<String>,
    pub keyname_separator: Option<String>,
    pub threads: Option<usize>,
    pub exclude: Vec<String>,
    pub include: Vec<String>,
    pub listen_events: Vec<String>,
    pub max_upload_size: Option<u64>,
    pub multipart_chunk_size: Option<u64>,
    pub aws_region: Option<String>,
    pub endpoint_url: Option<String>,
    pub s3_force_path_style: bool,
    pub storage_class: Option<String>,
    pub sse: Option<String>,
    pub sse_kms_key_id: Option<String>,
    pub retries: Option<u32>,
    pub state_dir: Option<PathBuf>,
    pub md5_on_start: bool,
    /// `--stall-timeout`.
    pub stall_timeout: Option<std::time::Duration>,
}

/// One named profile (a "snapshotter" of the original).
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    pub name: String,
    pub volumes: VolumeSource,
    /// Tag keys whose values come from userdata and select snapshots.
    pub filter_tags: Vec<String>,
    pub description: Template,
    /// How the rendered description is finished.
    pub description_style: DescriptionStyle,
    /// How long after creation a snapshot expires (`expires` tag).
    pub retention: Duration,
    /// The owners snapshot lookups ask EC2 for (`self` and/or account
    /// ids): 0.2.12 asked without an owner filter and so also found
    /// snapshots other accounts shared with this one; only `self` by
    /// default, so a stranger's share never becomes a restore source
    /// unless the operator names that account.
    pub snapshot_owners: Vec<String>,
    /// Whether mount-snapshots warms restored volumes up.
    pub prewarm: Prewarm,
    /// Regions that keep copies of the profile's snapshot sets.
    pub copies: Vec<CopyTarget>,
    /// `clean snapshots` moves snapshots older than this to the archive
    /// tier.
    pub archive_after: Option<Duration>,
    pub hooks: Hooks,
}

/// `[[profiles.NAME.copies]]`: a Region that keeps copies of the
/// profile's snapshot sets (`copy-snapshots`), expired there by their
/// own retention (`clean snapshots`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CopyTarget {
    /// The destination Region (CopySnapshot is called there).
    pub region: String,
    /// Re-encrypt the copies with this key of the destination Region;
    /// default: the Region's default EBS key for an encrypted source.
    pub kms_key_id: Option<String>,
    /// How long a copy is kept: its `expires` tag is its source's
    /// creation time plus this (default: the profile's
    /// `snapshot_retention`).
    pub retention: Duration,
    /// Copies in progress at most in the destination Region (EC2's
    /// default limit per Region is 5, shared by every copier there).
    pub max_in_flight: u32,
}

impl CopyTarget {
    /// A target with the defaults, for snapshotters written in Rust.
    pub fn new(region: &str, retention: Duration) -> Self {
        CopyTarget {
            region: region.to_string(),
            kms_key_id: None,
            retention,
            max_in_flight: DEFAULT_COPIES_IN_FLIGHT,
        }
    }
}

/// EC2's default limit of snapshot copies in progress per destination
/// Region.
pub(crate) const DEFAULT_COPIES_IN_FLIGHT: u32 = 5;

/// `prewarm`: what mount-snapshots does after mounting a volume restored
/// from a snapshot, whose blocks otherwise load from S3 on first read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Prewarm {
    /// Nothing: blocks load when first read.
    #[default]
    Off,
    /// Read every block once in the background (`snaptastic prewarm`).
    Block,
}

impl Prewarm {
    pub const NAMES: &'static str = "\"block\" or \"off\"";

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(Self::Off),
            "block" => Some(Self::Block),
            _ => None,
        }
    }
}

/// `description_style`: what is done to a rendered description.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum DescriptionStyle {
    /// As rendered: a path keeps its underscores.
    #[default]
    Plain,
    /// As snaptastic 0.2.12: every `_` becomes `-`, userdata values and
    /// the mount point included (`my_cluster snapshot of /srv/_q` gives
    /// `my-cluster snapshot of /srv/-q`), for fleets whose tooling matches
    /// the old descriptions.
    V0212,
}

impl DescriptionStyle {
    pub(crate) const NAMES: &'static str = "\"plain\" or \"0.2.12\"";

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "plain" => Some(Self::Plain),
            "0.2.12" => Some(Self::V0212),
            _ => None,
        }
    }

    /// Finish a rendered description in this style.
    pub(crate) fn apply(self, rendered: String) -> String {
        match self {
            Self::Plain => rendered,
            Self::V0212 => rendered.replace('_', "-"),
        }
    }
}

/// Where a profile's volumes are listed.
#[derive(Debug, Clone)]
pub(crate) enum VolumeSource {
    /// In the configuration file.
    Listed(Vec<Volume>),
    /// In the instance userdata under this key (a list of volume tables),
    /// like the original's `userdata_example`.
    FromUserdata(String),
}

/// One EBS data volume as the profile wants it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Volume {
    /// EC2 device name used for AttachVolume, e.g. `/dev/sdf`.
    pub device: String,
    /// Where it is mounted; also the `mount_point` tag that matches
    /// snapshots. Kept in lexical normal form (`/mnt/a/` is `/mnt/a`) and
    /// compared with tags after normalising them too, where 0.2.12
    /// compared the strings as typed.
    pub mount_point: String,
    /// Size in GiB (at least the snapshot's when restoring).
    pub size_gib: u32,
    pub file_system: FileSystem,
    pub mount_options: String,
    pub volume_type: VolumeType,
    pub iops: Option<u32>,
    /// MiB/s, gp3 only.
    pub throughput: Option<u32>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    pub delete_on_termination: bool,
    /// Letters the kernel shifts the device name by (CentOS 6 attached
    /// `sdj` when asked for `sdf`).
    pub device_name_offset: u8,
    /// A provisioned initialization rate for a volume created from a
    /// snapshot, MiB/s (100-300): its blocks load at that rate instead of
    /// on first read. Billed; never sent when fast snapshot restore
    /// applies, and dropped (with a warning) when EC2 refuses it.
    pub init_rate: Option<u32>,
}

#[cfg(test)]
impl Volume {
    /// A volume with the defaults a bare `device` + `mount_point` gets,
    /// for tests of the code that consumes volumes.
    pub fn with_defaults(device: &str, mount_point: &str, size_gib: u32) -> Self {
        Volume {
            device: device.into(),
            mount_point: mount_point.into(),
            size_gib,
            file_system: FileSystem::Xfs,
            mount_options: "defaults".into(),
            volume_type: VolumeType::Gp3,
            iops: None,
            throughput: None,
            encrypted: false,
            kms_key_id: None,
            delete_on_termination: false,
            device_name_offset: 0,
            init_rate: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileSystem {
    Ext4,
    Xfs,
}

impl FileSystem {
    pub const NAMES: &'static str = "ext4, xfs";

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ext4" => Some(Self::Ext4),
            "xfs" => Some(Self::Xfs),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ext4 => "ext4",
            Self::Xfs => "xfs",
        }
    }
}

impl fmt::Display for FileSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// EBS volume types the tool creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeType {
    Gp3,
    Gp2,
    Io1,
    Io2,
    Standard,
}

impl VolumeType {
    pub const NAMES: &'static str = "gp3, gp2, io1, io2, standard";

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "gp3" => Some(Self::Gp3),
            "gp2" => Some(Self::Gp2),
            "io1" => Some(Self::Io1),
            "io2" => Some(Self::Io2),
            "standard" => Some(Self::Standard),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gp3 => "gp3",
            Self::Gp2 => "gp2",
            Self::Io1 => "io1",
            Self::Io2 => "io2",
            Self::Standard => "standard",
        }
    }

    /// Size limits in GiB (EBS documentation, io2 without Block Express).
    pub fn size_range(self) -> (u32, u32) {
        match self {
            Self::Gp3 | Self::Gp2 => (1, 16_384),
            Self::Io1 | Self::Io2 => (4, 16_384),
            Self::Standard => (1, 1_024),
        }
    }

    /// Provisioned IOPS limits, or `None` if the type takes no `iops`.
    pub fn iops_range(self) -> Option<(u32, u32)> {
        match self {
            Self::Gp3 => Some((3_000, 16_000)),
            Self::Io1 => Some((100, 64_000)),
            Self::Io2 => Some((100, 256_000)),
            Self::Gp2 | Self::Standard => None,
        }
    }
}

impl fmt::Display for VolumeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The 12 hook points of snaptastic 0.2.12.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HookPoint {
    PreMounts,
    PostMounts,
    PreMount,
    PostMount,
    PreUnmounts,
    PostUnmounts,
    PreUnmount,
    PostUnmount,
    PreSnapshots,
    PostSnapshots,
    PreSnapshot,
    PostSnapshot,
}

impl HookPoint {
    pub const ALL: [HookPoint; 12] = [
        Self::PreMounts,
        Self::PostMounts,
        Self::PreMount,
        Self::PostMount,
        Self::PreUnmounts,
        Self::PostUnmounts,
        Self::PreUnmount,
        Self::PostUnmount,
        Self::PreSnapshots,
        Self::PostSnapshots,
        Self::PreSnapshot,
        Self::PostSnapshot,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreMounts => "pre_mounts",
            Self::PostMounts => "post_mounts",
            Self::PreMount => "pre_mount",
            Self::PostMount => "post_mount",
            Self::PreUnmounts => "pre_unmounts",
            Self::PostUnmounts => "post_unmounts",
            Self::PreUnmount => "pre_unmount",
            Self::PostUnmount => "post_unmount",
            Self::PreSnapshots => "pre_snapshots",
            Self::PostSnapshots => "post_snapshots",
            Self::PreSnapshot => "pre_snapshot",
            Self::PostSnapshot => "post_snapshot",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.as_str() == s)
    }
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Commands to run at each hook point, each an argv run without a shell.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hooks(pub BTreeMap<HookPoint, Vec<Vec<String>>>);

impl Hooks {
    pub(crate) fn commands(&self, point: HookPoint) -> &[Vec<String>] {
        self.0.get(&point).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// A description template: literal text with `{key}` placeholders filled
/// from userdata, `mount_point`, `device` and `instance_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pub parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TemplatePart {
    Text(String),
    Key(String),
}

/// Why a description template does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TemplateError {
    #[error("placeholder names may hold letters, digits, '_' and '-', found '{0}'")]
    BadCharacter(char),
    #[error("a '{{' is never closed")]
    Unclosed,
    #[error("empty placeholder '{{}}'")]
    Empty,
    #[error("a '}}' has no '{{' (write '}}}}' for a literal brace)")]
    StrayClose,
}

/// A placeholder nothing fills: the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nothing fills the placeholder '{0}'")]
pub(crate) struct MissingKey(pub(crate) String);

impl Template {
    /// Parse `{key}` placeholders; `{{` and `}}` are literal braces.
    pub(crate) fn parse(s: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut key = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(k) if k.is_ascii_alphanumeric() || k == '_' || k == '-' => {
                                key.push(k)
                            }
                            Some(k) => return Err(TemplateError::BadCharacter(k)),
                            None => return Err(TemplateError::Unclosed),
                        }
                    }
                    if key.is_empty() {
                        return Err(TemplateError::Empty);
                    }
                    if !text.is_empty() {
                        parts.push(TemplatePart::Text(std::mem::take(&mut text)));
                    }
                    parts.push(TemplatePart::Key(key));
                }
                '}' => return Err(TemplateError::StrayClose),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(TemplatePart::Text(text));
        }
        Ok(Self { parts })
    }

    /// Fill the placeholders; a missing key is an error naming it.
    pub(crate) fn render(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<String, MissingKey> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Text(t) => out.push_str(t),
                TemplatePart::Key(k) => match lookup(k) {
                    Some(v) => out.push_str(&v),
                    None => return Err(MissingKey(k.clone())),
                },
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_round_trip() {
        let t = Template::parse(DEFAULT_DESCRIPTION).unwrap();
        let s = t
            .render(|k| match k {
                "cluster" => Some("my_cluster".into()),
                "mount_point" => Some("/var/lib/pg/_q".into()),
                _ => None,
            })
            .unwrap();
        // Unlike 0.2.12 the path keeps its underscores.
        assert_eq!(s, "my_cluster snapshot of /var/lib/pg/_q");
        assert_eq!(t.render(|_| None).unwrap_err().0, "cluster");
    }

    #[test]
    fn template_errors() {
        assert!(Template::parse("{cluster")
            .unwrap_err()
            .to_string()
            .contains("never closed"));
        assert!(Template::parse("a}b")
            .unwrap_err()
            .to_string()
            .contains("no '{'"));
        assert!(Template::parse("{}")
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(Template::parse("{a b}")
            .unwrap_err()
            .to_string()
            .contains("found ' '"));
        let lit = Template::parse("{{x}}").unwrap();
        assert_eq!(lit.render(|_| None).unwrap(), "{x}");
    }
}
