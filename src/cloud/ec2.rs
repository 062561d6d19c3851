//! EC2 calls: snapshots, volumes, and DryRun permission probes.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    EbsInstanceBlockDeviceSpecification, Filter, InstanceBlockDeviceMappingSpecification,
    InstanceSpecification, ResourceType, Tag, TagSpecification, VolumeType,
};
use aws_sdk_ec2::Client;

use super::{
    cloud_error, to_chrono, Attachment, CloudError, NewVolume, SnapshotInfo, SnapshotState,
    VolumeInfo,
};

/// An EC2 client for one region.
#[derive(Clone)]
pub(crate) struct Ec2 {
    pub(super) client: Client,
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

pub(super) fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn snapshot_info(s: &aws_sdk_ec2::types::Snapshot) -> Option<SnapshotInfo> {
    Some(SnapshotInfo {
        id: s.snapshot_id()?.to_string(),
        volume_id: s.volume_id().map(str::to_string),
        state: SnapshotState::parse(s.state().map(|s| s.as_str()).unwrap_or("unknown")),
        start_time: s.start_time().and_then(to_chrono),
        size_gib: s.volume_size().and_then(|n| u32::try_from(n).ok()),
        progress: s.progress().map(str::to_string),
        description: s.description().unwrap_or_default().to_string(),
        tags: tag_map(s.tags()),
        storage_tier: s.storage_tier().map(|t| t.as_str().to_string()),
        data_bytes: s
            .full_snapshot_size_in_bytes()
            .and_then(|n| u64::try_from(n).ok()),
    })
}

fn volume_info(v: &aws_sdk_ec2::types::Volume) -> Option<VolumeInfo> {
    Some(VolumeInfo {
        id: v.volume_id()?.to_string(),
        state: v
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        size_gib: v.size().and_then(|n| u32::try_from(n).ok()),
        volume_type: v.volume_type().map(|t| t.as_str().to_string()),
        iops: v.iops().and_then(|n| u32::try_from(n).ok()),
        availability_zone: v.availability_zone().map(str::to_string),
        attachments: v
            .attachments()
            .iter()
            .map(|a| Attachment {
                instance_id: a.instance_id().unwrap_or_default().to_string(),
                device: a.device().unwrap_or_default().to_string(),
                state: a
                    .state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            })
            .collect(),
        tags: tag_map(v.tags()),
        fast_restored: v.fast_restored(),
        init_rate: v
            .volume_initialization_rate()
            .and_then(|n| u32::try_from(n).ok()),
    })
}

/// EC2 actions the tool uses, each probed with `DryRun` by `snaptastic test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DryRunAction {
    DescribeSnapshots,
    DescribeVolumes,
    CreateVolume,
    AttachVolume,
    CreateSnapshot,
    CreateTags,
    DetachVolume,
    DeleteVolume,
    DeleteSnapshot,
    CreateSnapshots,
    DescribeInstances,
    DescribeImages,
    ModifyInstanceAttribute,
    DescribeVolumeStatus,
    DescribeFastSnapshotRestores,
    EnableFastSnapshotRestores,
    DisableFastSnapshotRestores,
    CopySnapshot,
    ModifySnapshotTier,
}

impl DryRunAction {
    pub(crate) const ALL: [DryRunAction; 19] = [
        Self::DescribeSnapshots,
        Self::DescribeVolumes,
        Self::CreateVolume,
        Self::AttachVolume,
        Self::CreateSnapshot,
        Self::CreateTags,
        Self::DetachVolume,
        Self::DeleteVolume,
        Self::DeleteSnapshot,
        Self::CreateSnapshots,
        Self::DescribeInstances,
        Self::DescribeImages,
        Self::ModifyInstanceAttribute,
        Self::DescribeVolumeStatus,
        Self::DescribeFastSnapshotRestores,
        Self::EnableFastSnapshotRestores,
        Self::DisableFastSnapshotRestores,
        Self::CopySnapshot,
        Self::ModifySnapshotTier,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::DescribeSnapshots => "DescribeSnapshots",
            Self::DescribeVolumes => "DescribeVolumes",
            Self::CreateVolume => "CreateVolume",
            Self::AttachVolume => "AttachVolume",
            Self::CreateSnapshot => "CreateSnapshot",
            Self::CreateTags => "CreateTags",
            Self::DetachVolume => "DetachVolume",
            Self::DeleteVolume => "DeleteVolume",
            Self::DeleteSnapshot => "DeleteSnapshot",
            Self::CreateSnapshots => "CreateSnapshots",
            Self::DescribeInstances => "DescribeInstances",
            Self::DescribeImages => "DescribeImages",
            Self::ModifyInstanceAttribute => "ModifyInstanceAttribute",
            Self::DescribeVolumeStatus => "DescribeVolumeStatus",
            Self::DescribeFastSnapshotRestores => "DescribeFastSnapshotRestores",
            Self::EnableFastSnapshotRestores => "EnableFastSnapshotRestores",
            Self::DisableFastSnapshotRestores => "DisableFastSnapshotRestores",
            Self::CopySnapshot => "CopySnapshot",
            Self::ModifySnapshotTier => "ModifySnapshotTier",
        }
    }
}

/// The ModifyInstanceAttribute mapping that sets DeleteOnTermination for
/// the volume at `device` (the real call and its DryRun probe).
fn delete_on_termination(device: &str, delete: bool) -> InstanceBlockDeviceMappingSpecification {
    InstanceBlockDeviceMappingSpecification::builder()
        .device_name(device)
        .ebs(
            EbsInstanceBlockDeviceSpecification::builder()
                .delete_on_termination(delete)
                .build(),
        )
        .build()
}

/// What a DryRun call said about a permission.
#[derive(Debug)]
pub(crate) enum DryRunOutcome {
    /// `DryRunOperation`: the caller may do it (or the call simply
    /// succeeded, for services that ignore DryRun).
    Allowed,
    /// `UnauthorizedOperation` / `AuthFailure`: the policy denies it.
    Denied(String),
    /// Any other error: the permission could not be told.
    Unknown(CloudError),
}

/// Placeholder ids for probes: DryRun checks permissions, not existence.
const PROBE_VOLUME: &str = "vol-0ffffffffffffffff";
const PROBE_SNAPSHOT: &str = "snap-0ffffffffffffffff";

/// What the DryRun probes act on, as close to the real calls as the host
/// allows: a policy that scopes actions to this instance, to resources
/// carrying the tool's tags and to create requests carrying them
/// (`iam-policy volumes`) is then probed as the commands will use it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProbeTargets {
    pub instance_id: String,
    pub zone: String,
    /// A volume attached to this instance, the tool's when there is one;
    /// else a placeholder id.
    pub volume: Option<String>,
    /// A snapshot the tool made; else a placeholder id.
    pub snapshot: Option<String>,
    /// The tags the commands send when they create a volume or snapshot.
    pub create_tags: Vec<(String, String)>,
    /// A tag the commands write on a volume that already exists.
    pub retag: (String, String),
}

/// A TagSpecification of `tags` for a new resource of `kind` (probes).
fn tag_spec(kind: ResourceType, tags: &[(String, String)]) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(kind);
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(k).value(v).build());
    }
    spec.build()
}

impl Ec2 {
    pub(crate) fn new(config: &super::AwsConfig) -> Self {
        Self {
            client: Client::new(config.sdk()),
        }
    }

    /// The snapshots of `owners` (`"self"` and/or account ids, as
    /// DescribeSnapshots' `OwnerIds` takes them) carrying every
    /// `(key, value)` tag, all pages. One call (per page) serves every
    /// volume of a profile.
    pub(crate) async fn snapshots_tagged(
        &self,
        tags: &[(String, String)],
        owners: &[String],
    ) -> Result<Vec<SnapshotInfo>, CloudError> {
        Ok(self
            .snapshots_tagged_with_owner(tags, owners)
            .await?
            .into_iter()
            .map(|(s, _)| s)
            .collect())
    }

    /// [`Ec2::snapshots_tagged`], each with the account that owns it
    /// (`None` if EC2 did not say), for `clean`, which must tell this
    /// account's snapshots from those shared with it.
    pub(crate) async fn snapshots_tagged_with_owner(
        &self,
        tags: &[(String, String)],
        owners: &[String],
    ) -> Result<Vec<(SnapshotInfo, Option<String>)>, CloudError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = self
                .client
                .describe_snapshots()
                .set_owner_ids(Some(owners.to_vec()));
            for (k, v) in tags {
                req = req.filters(filter(&format!("tag:{k}"), v));
            }
            let resp = req
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| cloud_error("DescribeSnapshots", e))?;
            out.extend(
                resp.snapshots()
                    .iter()
                    .filter_map(|s| Some((snapshot_info(s)?, s.owner_id().map(str::to_string)))),
            );
            match resp.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// A snapshot of this account carrying every `(key, value)` tag, if
    /// the first small page has one (for the DryRun probes).
    pub(crate) async fn any_snapshot_tagged(
        &self,
        tags: &[(String, String)],
    ) -> Result<Option<String>, CloudError> {
        let mut req = self
            .client
            .describe_snapshots()
            .owner_ids("self")
            .max_results(5);
        for (k, v) in tags {
            req = req.filters(filter(&format!("tag:{k}"), v));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| cloud_error("DescribeSnapshots", e))?;
        Ok(resp
            .snapshots()
            .iter()
            .find_map(|s| s.snapshot_id().map(str::to_string)))
    }

    /// Volumes attached (or attaching, or detaching) to an instance.
    pub(crate) async fn volumes_attached_to(
        &self,
        instance_id: &str,
    ) -> Result<Vec<VolumeInfo>, CloudError> {
        self.describe_volumes(vec![filter("attachment.instance-id", instance_id)], &[])
            .await
    }

    /// Volumes carrying every `(key, value)` tag.
    pub(crate) async fn volumes_tagged(
        &self,
        tags: &[(String, String)],
    ) -> Result<Vec<VolumeInfo>, CloudError> {
        let filters = tags
            .iter()
            .map(|(k, v)| filter(&format!("tag:{k}"), v))
            .collect();
        self.describe_volumes(filters, &[]).await
    }

    /// One volume; `None` if EC2 does not know it (yet: right after
    /// CreateVolume it may briefly say NotFound).
    pub(crate) async fn volume(&self, id: &str) -> Result<Option<VolumeInfo>, CloudError> {
        match self.describe_volumes(vec![], &[id.to_string()]).await {
            Ok(mut v) => Ok(v.pop()),
            Err(e) if e.code() == Some("InvalidVolume.NotFound") => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn describe_volumes(
        &self,
        filters: Vec<Filter>,
        ids: &[String],
    ) -> Result<Vec<VolumeInfo>, CloudError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .client
                .describe_volumes()
                .set_filters((!filters.is_empty()).then(|| filters.clone()))
                .set_volume_ids((!ids.is_empty()).then(|| ids.to_vec()))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| cloud_error("DescribeVolumes", e))?;
            out.extend(resp.volumes().iter().filter_map(volume_info));
            match resp.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// One snapshot's current state; `None` if it is gone.
    pub(crate) async fn snapshot(&self, id: &str) -> Result<Option<SnapshotInfo>, CloudError> {
        let resp = self
            .client
            .describe_snapshots()
            .snapshot_ids(id)
            .send()
            .await
            .map_err(|e| cloud_error("DescribeSnapshots", e));
        match resp {
            Ok(r) => Ok(r.snapshots().iter().find_map(snapshot_info)),
            Err(e) if e.code() == Some("InvalidSnapshot.NotFound") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// CreateVolume with every tag at creation.
    pub(crate) async fn create_volume(&self, spec: &NewVolume) -> Result<String, CloudError> {
        let mut tags = TagSpecification::builder().resource_type(ResourceType::Volume);
        for (k, v) in &spec.tags {
            tags = tags.tags(Tag::builder().key(k).value(v).build());
        }
        let resp = self
            .client
            .create_volume()
            .availability_zone(&spec.availability_zone)
            .size(i32::try_from(spec.size_gib).unwrap_or(i32::MAX))
            .volume_type(VolumeType::from(spec.volume_type.as_str()))
            .set_iops(spec.iops.and_then(|i| i32::try_from(i).ok()))
            .set_throughput(spec.throughput.and_then(|t| i32::try_from(t).ok()))
            .set_snapshot_id(spec.snapshot_id.clone())
            .encrypted(spec.encrypted)
            .set_kms_key_id(spec.kms_key_id.clone())
            .set_volume_initialization_rate(spec.init_rate.and_then(|r| i32::try_from(r).ok()))
            .tag_specifications(tags.build())
            .client_token(&spec.client_token)
            .send()
            .await
            .map_err(|e| cloud_error("CreateVolume", e))?;
        resp.volume_id()
            .map(str::to_string)
            .ok_or_else(|| CloudError::Transport {
                op: "CreateVolume",
                message: "the reply has no volume id".into(),
            })
    }

    /// CreateSnapshot with its tags at creation. This is the only call made
    /// while filesystems are frozen.
    pub(crate) async fn create_snapshot(
        &self,
        volume_id: &str,
        description: &str,
        tags: &[(String, String)],
    ) -> Result<String, CloudError> {
        let mut spec = TagSpecification::builder().resource_type(ResourceType::Snapshot);
        for (k, v) in tags {
            spec = spec.tags(Tag::builder().key(k).value(v).build());
        }
        let resp = self
            .client
            .create_snapshot()
            .volume_id(volume_id)
            .description(description)
            .tag_specifications(spec.build())
            .send()
            .await
            .map_err(|e| cloud_error("CreateSnapshot", e))?;
        resp.snapshot_id()
            .map(str::to_string)
            .ok_or_else(|| CloudError::Transport {
                op: "CreateSnapshot",
                message: "the reply has no snapshot id".into(),
            })
    }

    /// CreateSnapshots: one snapshot of each data volume attached to
    /// `instance_id` except `exclude` (and the boot volume), all at one
    /// point in time, with `tags` at creation on each. Returns
    /// `(snapshot id, volume id)` pairs.
    pub(crate) async fn create_snapshot_set(
        &self,
        instance_id: &str,
        exclude: &[String],
        description: &str,
        tags: &[(String, String)],
    ) -> Result<Vec<(String, String)>, CloudError> {
        let mut spec = TagSpecification::builder().resource_type(ResourceType::Snapshot);
        for (k, v) in tags {
            spec = spec.tags(Tag::builder().key(k).value(v).build());
        }
        let instance = InstanceSpecification::builder()
            .instance_id(instance_id)
            .exclude_boot_volume(true)
            .set_exclude_data_volume_ids((!exclude.is_empty()).then(|| exclude.to_vec()))
            .build();
        let resp = self
            .client
            .create_snapshots()
            .instance_specification(instance)
            .description(description)
            .tag_specifications(spec.build())
            .send()
            .await
            .map_err(|e| cloud_error("CreateSnapshots", e))?;
        Ok(resp
            .snapshots()
            .iter()
            .filter_map(|s| Some((s.snapshot_id()?.to_string(), s.volume_id()?.to_string())))
            .collect())
    }

    /// The instance's root device name (`/dev/xvda`), whose volume
    /// CreateSnapshots leaves out by itself.
    pub(crate) async fn root_device_name(
        &self,
        instance_id: &str,
    ) -> Result<Option<String>, CloudError> {
        let resp = self
            .client
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| cloud_error("DescribeInstances", e))?;
        Ok(resp
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find_map(|i| i.root_device_name().map(str::to_string)))
    }

    pub(crate) async fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), CloudError> {
        self.client
            .delete_snapshot()
            .snapshot_id(snapshot_id)
            .send()
            .await
            .map(drop)
            .map_err(|e| cloud_error("DeleteSnapshot", e))
    }

    /// Snapshots that this account's AMIs are made of (deleting one would
    /// break the image).
    pub(crate) async fn snapshots_in_images(
        &self,
    ) -> Result<std::collections::BTreeSet<String>, CloudError> {
        let mut out = std::collections::BTreeSet::new();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .client
                .describe_images()
                .owners("self")
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| cloud_error("DescribeImages", e))?;
            out.extend(
                resp.images()
                    .iter()
                    .flat_map(|i| i.block_device_mappings())
                    .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_string)),
            );
            match resp.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    pub(crate) async fn attach_volume(
        &self,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> Result<(), CloudError> {
        self.client
            .attach_volume()
            .volume_id(volume_id)
            .instance_id(instance_id)
            .device(device)
            .send()
            .await
            .map(drop)
            .map_err(|e| cloud_error("AttachVolume", e))
    }

    /// DetachVolume, naming the instance (EC2 accepts it; moto needs it).
    pub(crate) async fn detach_volume(
        &self,
        volume_id: &str,
        instance_id: &str,
    ) -> Result<(), CloudError> {
        self.client
            .detach_volume()
            .volume_id(volume_id)
            .instance_id(instance_id)
            .send()
            .await
            .map(drop)
            .map_err(|e| cloud_error("DetachVolume", e))
    }

    pub(crate) async fn delete_volume(&self, volume_id: &str) -> Result<(), CloudError> {
        self.client
            .delete_volume()
            .volume_id(volume_id)
            .send()
            .await
            .map(drop)
            .map_err(|e| cloud_error("DeleteVolume", e))
    }

    /// All tags in one call.
    pub(crate) async fn create_tags(
        &self,
        resource: &str,
        tags: &[(String, String)],
    ) -> Result<(), CloudError> {
        let mut req = self.client.create_tags().resources(resource);
        for (k, v) in tags {
            req = req.tags(Tag::builder().key(k).value(v).build());
        }
        req.send()
            .await
            .map(drop)
            .map_err(|e| cloud_error("CreateTags", e))
    }

    /// Set DeleteOnTermination for the volume at `device` of an instance.
    pub(crate) async fn set_delete_on_termination(
        &self,
        instance_id: &str,
        device: &str,
        delete: bool,
    ) -> Result<(), CloudError> {
        let mapping = delete_on_termination(device, delete);
        self.client
            .modify_instance_attribute()
            .instance_id(instance_id)
            .block_device_mappings(mapping)
            .send()
            .await
            .map(drop)
            .map_err(|e| cloud_error("ModifyInstanceAttribute", e))
    }

    /// Probe one permission with `DryRun=true`, with the arguments and
    /// tags the commands send, on `probe`'s targets.
    pub(crate) async fn dry_run(
        &self,
        action: DryRunAction,
        probe: &ProbeTargets,
    ) -> DryRunOutcome {
        let c = &self.client;
        let (instance_id, zone) = (probe.instance_id.as_str(), probe.zone.as_str());
        let volume = probe.volume.as_deref().unwrap_or(PROBE_VOLUME);
        let snapshot = probe.snapshot.as_deref().unwrap_or(PROBE_SNAPSHOT);
        let name = action.name();
        // Every probe is the request with DryRun set, sent, and its
        // error named after the action.
        macro_rules! probe {
            ($request:expr) => {
                $request
                    .dry_run(true)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| cloud_error(name, e))
            };
        }
        let result = match action {
            DryRunAction::DescribeSnapshots => {
                probe!(c.describe_snapshots().owner_ids("self").max_results(5))
            }
            DryRunAction::DescribeVolumes => probe!(c.describe_volumes().max_results(5)),
            DryRunAction::CreateVolume => probe!(c
                .create_volume()
                .availability_zone(zone)
                .size(1)
                .volume_type(VolumeType::Gp3)
                .tag_specifications(tag_spec(ResourceType::Volume, &probe.create_tags))),
            DryRunAction::AttachVolume => probe!(c
                .attach_volume()
                .volume_id(volume)
                .instance_id(instance_id)
                .device("/dev/sdz")),
            DryRunAction::CreateSnapshot => probe!(c
                .create_snapshot()
                .volume_id(volume)
                .tag_specifications(tag_spec(ResourceType::Snapshot, &probe.create_tags))),
            DryRunAction::CreateSnapshots => probe!(c
                .create_snapshots()
                .instance_specification(
                    InstanceSpecification::builder()
                        .instance_id(instance_id)
                        .exclude_boot_volume(true)
                        .build(),
                )
                .tag_specifications(tag_spec(ResourceType::Snapshot, &probe.create_tags))),
            DryRunAction::DescribeInstances => {
                probe!(c.describe_instances().instance_ids(instance_id))
            }
            DryRunAction::DescribeImages => {
                probe!(c.describe_images().owners("self").max_results(5))
            }
            DryRunAction::ModifyInstanceAttribute => probe!(c
                .modify_instance_attribute()
                .instance_id(instance_id)
                .block_device_mappings(delete_on_termination("/dev/sdz", true))),
            DryRunAction::CreateTags => probe!(c.create_tags().resources(volume).tags(
                Tag::builder()
                    .key(&probe.retag.0)
                    .value(&probe.retag.1)
                    .build(),
            )),
            DryRunAction::DetachVolume => {
                probe!(c.detach_volume().volume_id(volume).instance_id(instance_id))
            }
            DryRunAction::DeleteVolume => probe!(c.delete_volume().volume_id(volume)),
            DryRunAction::DeleteSnapshot => probe!(c.delete_snapshot().snapshot_id(snapshot)),
            DryRunAction::DescribeVolumeStatus => {
                probe!(c.describe_volume_status().max_results(5))
            }
            DryRunAction::DescribeFastSnapshotRestores => {
                probe!(c.describe_fast_snapshot_restores().max_results(5))
            }
            DryRunAction::EnableFastSnapshotRestores => probe!(c
                .enable_fast_snapshot_restores()
                .source_snapshot_ids(snapshot)
                .availability_zones(zone)),
            DryRunAction::DisableFastSnapshotRestores => probe!(c
                .disable_fast_snapshot_restores()
                .source_snapshot_ids(snapshot)
                .availability_zones(zone)),
            // A copy within this Region: the permission is the same.
            DryRunAction::CopySnapshot => probe!(c
                .copy_snapshot()
                .source_region(
                    c.config()
                        .region()
                        .map(|r| r.to_string())
                        .unwrap_or_default()
                )
                .source_snapshot_id(snapshot)
                .tag_specifications(tag_spec(ResourceType::Snapshot, &probe.create_tags))),
            DryRunAction::ModifySnapshotTier => probe!(c
                .modify_snapshot_tier()
                .snapshot_id(snapshot)
                .storage_tier(aws_sdk_ec2::types::TargetStorageTier::Archive)),
        };
        match result {
            Ok(()) => DryRunOutcome::Allowed,
            Err(e) => match e.code() {
                Some("DryRunOperation") => DryRunOutcome::Allowed,
                _ if e.is_denied() => DryRunOutcome::Denied(e.to_string()),
                _ => DryRunOutcome::Unknown(e),
            },
        }
    }
}
