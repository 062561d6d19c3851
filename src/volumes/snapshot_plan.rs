//! What make-snapshots will do, decided before anything is frozen: for
//! each volume, the EBS volume attached for it, proof that the filesystem
//! mounted at its mount point is on that volume's block device, its
//! description and tags. Pure: the host's answers (device numbers, which
//! mount points must not be frozen) come in as a `HostView`, so every
//! refusal is unit-tested.

use crate::cloud::VolumeInfo;
use crate::config::Volume;
use crate::host::mountinfo::{self, MountEntry};

use super::list::attached_for;

/// EC2 caps descriptions at 255 characters.
pub(crate) const MAX_DESCRIPTION: usize = 255;

/// One volume to snapshot, all resolved before anything is frozen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub mount_point: String,
    pub device: String,
    pub volume_id: String,
    pub description: String,
    pub tags: Vec<(String, String)>,
}

/// What the planner asks of the host.
pub(crate) trait HostView {
    /// `major:minor` of the block device of EBS volume `volume_id`
    /// attached as `v.device`, if it is on this host.
    fn device_number(&self, v: &Volume, volume_id: &str) -> Option<String>;
    /// Why this mount point must not be frozen (`/`, the working
    /// directory's filesystem, ...), if it must not.
    fn refuse_reason(&self, mount_point: &str) -> Option<String>;
}

/// What EC2 and the kernel said.
pub(crate) struct Seen<'a> {
    pub instance_id: &'a str,
    pub attached: &'a [VolumeInfo],
    pub mounts: &'a [MountEntry],
}

/// Per volume: its description (or the problem with it) and its tags.
pub(crate) struct Labels<'a> {
    pub describe: &'a dyn Fn(&Volume) -> Result<String, String>,
    pub tags: &'a dyn Fn(&Volume) -> Vec<(String, String)>,
}

/// Every volume's target, or every problem found (one line each, naming
/// the mount point and device): nothing is frozen unless all are fine.
pub(crate) fn plan_snapshots(
    volumes: &[Volume],
    seen: &Seen<'_>,
    host: &dyn HostView,
    labels: &Labels<'_>,
) -> Result<Vec<Target>, Vec<String>> {
    let mut targets = Vec::new();
    let mut problems = Vec::new();
    for v in volumes {
        match plan_one(v, seen, host, labels) {
            Ok(t) => targets.push(t),
            Err(m) => problems.push(format!("{} ({}): {m}", v.mount_point, v.device)),
        }
    }
    if problems.is_empty() {
        Ok(targets)
    } else {
        Err(problems)
    }
}

fn plan_one(
    v: &Volume,
    seen: &Seen<'_>,
    host: &dyn HostView,
    labels: &Labels<'_>,
) -> Result<Target, String> {
    let me = seen.instance_id;
    let ebs = attached_for(v, me, seen.attached).ok_or_else(|| {
        format!("no EBS volume is attached to {me} for it; run mount-snapshots first")
    })?;
    if let Some(reason) = host.refuse_reason(&v.mount_point) {
        return Err(format!("refusing to freeze it: {reason}"));
    }
    let mounted =
        mountinfo::find(seen.mounts, &v.mount_point).ok_or("not mounted; nothing to snapshot")?;
    // The mounted filesystem must be on that volume's block device.
    let dev = host
        .device_number(v, &ebs.id)
        .ok_or_else(|| format!("the block device of {} is not found on this host", ebs.id))?;
    if dev != mounted.dev {
        return Err(format!(
            "mounted from {} ({}), but {} is device {dev}; refusing to snapshot the wrong volume",
            mounted.source, mounted.dev, ebs.id
        ));
    }
    let description = (labels.describe)(v)?;
    Ok(Target {
        mount_point: v.mount_point.clone(),
        device: v.device.clone(),
        volume_id: ebs.id.clone(),
        description: description.chars().take(MAX_DESCRIPTION).collect(),
        tags: (labels.tags)(v),
    })
}

/// EC2 takes at most this many volume ids to leave out of a set.
pub(crate) const MAX_EXCLUDED: usize = 40;

/// One CreateSnapshots for every target: the instance's other data
/// volumes to leave out, the set's description, and the tags every
/// snapshot of the set shares (all but `mount_point`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetPlan {
    pub(crate) exclude: Vec<String>,
    pub(crate) description: String,
    pub(crate) tags: Vec<(String, String)>,
}

/// The set for `targets`, or why one request cannot make it (then each
/// volume gets its own CreateSnapshot). `root_device` is the instance's
/// root device name: its volume is left out by `ExcludeBootVolume` and
/// must not be named again.
pub(crate) fn plan_set(
    targets: &[Target],
    attached: &[VolumeInfo],
    instance_id: &str,
    root_device: &str,
) -> Result<SetPlan, String> {
    let ours = |v: &VolumeInfo| targets.iter().any(|t| t.volume_id == v.id);
    let is_root = |v: &VolumeInfo| {
        v.attachments
            .iter()
            .any(|a| a.instance_id == instance_id && a.device == root_device)
    };
    let exclude: Vec<String> = attached
        .iter()
        .filter(|v| v.attachments.iter().any(|a| a.instance_id == instance_id))
        .filter(|v| !ours(v) && !is_root(v))
        .map(|v| v.id.clone())
        .collect();
    if exclude.len() > MAX_EXCLUDED {
        return Err(format!(
            "{} other data volumes are attached, more than the {MAX_EXCLUDED} a set can leave out",
            exclude.len()
        ));
    }
    if targets
        .iter()
        .any(|t| attached.iter().any(|v| v.id == t.volume_id && is_root(v)))
    {
        return Err("a target is the root volume".into());
    }
    let first = targets.first().ok_or("no volumes")?;
    let description = if targets.iter().all(|t| t.description == first.description) {
        first.description.clone()
    } else {
        let mps: Vec<&str> = targets.iter().map(|t| t.mount_point.as_str()).collect();
        let text = format!("snapshot set of {}", mps.join(", "));
        text.chars().take(MAX_DESCRIPTION).collect()
    };
    let tags = first
        .tags
        .iter()
        .filter(|(k, _)| k != "mount_point")
        .cloned()
        .collect();
    Ok(SetPlan {
        exclude,
        description,
        tags,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cloud::Attachment;

    struct Fake {
        devices: BTreeMap<String, String>,
        refuse: Option<&'static str>,
    }

    impl HostView for Fake {
        fn device_number(&self, _: &Volume, volume_id: &str) -> Option<String> {
            self.devices.get(volume_id).cloned()
        }
        fn refuse_reason(&self, mount_point: &str) -> Option<String> {
            self.refuse
                .filter(|r| r.starts_with(mount_point))
                .map(str::to_string)
        }
    }

    fn attached(id: &str, device: &str) -> VolumeInfo {
        VolumeInfo {
            id: id.into(),
            state: "in-use".into(),
            size_gib: Some(10),
            volume_type: None,
            iops: None,
            availability_zone: None,
            attachments: vec![Attachment {
                instance_id: "i-1".into(),
                device: device.into(),
                state: "attached".into(),
            }],
            tags: BTreeMap::new(),
            fast_restored: None,
            init_rate: None,
        }
    }

    fn mount(mp: &str, dev: &str) -> MountEntry {
        MountEntry {
            mount_point: mp.into(),
            fs_type: "xfs".into(),
            source: "/dev/xvdf".into(),
            dev: dev.into(),
        }
    }

    fn plan(
        volumes: &[Volume],
        attached: &[VolumeInfo],
        mounts: &[MountEntry],
        host: &Fake,
    ) -> Result<Vec<Target>, Vec<String>> {
        let describe = |v: &Volume| -> Result<String, String> {
            if v.mount_point == "/nodesc" {
                Err("description needs 'cluster'".into())
            } else {
                Ok(format!("{} {}", "x".repeat(300), v.mount_point))
            }
        };
        let tags = |v: &Volume| vec![("mount_point".to_string(), v.mount_point.clone())];
        let seen = Seen {
            instance_id: "i-1",
            attached,
            mounts,
        };
        let labels = Labels {
            describe: &describe,
            tags: &tags,
        };
        plan_snapshots(volumes, &seen, host, &labels)
    }

    fn fake(devices: &[(&str, &str)]) -> Fake {
        Fake {
            devices: devices
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            refuse: None,
        }
    }

    #[test]
    fn a_volume_on_its_device_becomes_a_target() {
        let v = [Volume::with_defaults("/dev/sdf", "/mnt/a", 10)];
        let t = plan(
            &v,
            &[attached("vol-1", "/dev/sdf")],
            &[mount("/mnt/a", "202:80")],
            &fake(&[("vol-1", "202:80")]),
        )
        .unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].volume_id, "vol-1");
        assert_eq!(t[0].description.chars().count(), MAX_DESCRIPTION);
        assert_eq!(t[0].tags, vec![("mount_point".into(), "/mnt/a".into())]);
    }

    #[test]
    fn every_problem_is_named_and_nothing_is_planned() {
        let v = [
            Volume::with_defaults("/dev/sdf", "/mnt/a", 10),
            Volume::with_defaults("/dev/sdg", "/mnt/b", 10),
            Volume::with_defaults("/dev/sdh", "/mnt/c", 10),
            Volume::with_defaults("/dev/sdi", "/mnt/d", 10),
            Volume::with_defaults("/dev/sdj", "/nodesc", 10),
        ];
        let att = [
            attached("vol-b", "/dev/sdg"),
            attached("vol-c", "/dev/sdh"),
            attached("vol-d", "/dev/sdi"),
            attached("vol-e", "/dev/sdj"),
        ];
        let mounts = [
            mount("/mnt/c", "202:1"),
            mount("/mnt/d", "202:2"),
            mount("/nodesc", "202:5"),
        ];
        let host = fake(&[("vol-c", "202:9"), ("vol-e", "202:5")]);
        let problems = plan(&v, &att, &mounts, &host).unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems[0].starts_with("/mnt/a (/dev/sdf): no EBS volume is attached to i-1"));
        assert!(problems[1].ends_with("not mounted; nothing to snapshot"));
        assert!(problems[2].contains("refusing to snapshot the wrong volume"));
        assert!(problems[3].ends_with("the block device of vol-d is not found on this host"));
        assert!(problems[4].ends_with("description needs 'cluster'"));
    }

    fn target(vol: &str, mp: &str, desc: &str) -> Target {
        Target {
            mount_point: mp.into(),
            device: "/dev/sdf".into(),
            volume_id: vol.into(),
            description: desc.into(),
            tags: vec![
                ("instance_id".into(), "i-1".into()),
                ("mount_point".into(), mp.into()),
                ("role".into(), "db".into()),
            ],
        }
    }

    #[test]
    fn a_set_leaves_out_the_other_data_volumes_but_not_by_the_root() {
        let targets = [target("vol-a", "/a", "d"), target("vol-b", "/b", "d")];
        let attached = [
            attached("vol-root", "/dev/xvda"),
            attached("vol-a", "/dev/sdf"),
            attached("vol-b", "/dev/sdg"),
            attached("vol-other", "/dev/sdh"),
        ];
        let p = plan_set(&targets, &attached, "i-1", "/dev/xvda").unwrap();
        assert_eq!(p.exclude, vec!["vol-other".to_string()]);
        assert_eq!(p.description, "d");
        assert_eq!(
            p.tags,
            vec![
                ("instance_id".to_string(), "i-1".to_string()),
                ("role".to_string(), "db".to_string())
            ]
        );
        // Different descriptions: one for the set naming every mount point.
        let targets = [
            target("vol-a", "/a", "x of /a"),
            target("vol-b", "/b", "x of /b"),
        ];
        let p = plan_set(&targets, &attached, "i-1", "/dev/xvda").unwrap();
        assert_eq!(p.description, "snapshot set of /a, /b");
    }

    #[test]
    fn a_set_that_cannot_be_made_in_one_request_says_why() {
        let targets = [target("vol-a", "/a", "d")];
        let mut attached: Vec<VolumeInfo> = (0..41)
            .map(|i| attached(&format!("vol-{i}"), "/dev/sdz"))
            .collect();
        attached.push(self::attached("vol-a", "/dev/sdf"));
        let e = plan_set(&targets, &attached, "i-1", "/dev/xvda").unwrap_err();
        assert!(e.contains("more than the 40"), "{e}");
        let e = plan_set(
            &targets,
            &[self::attached("vol-a", "/dev/xvda")],
            "i-1",
            "/dev/xvda",
        )
        .unwrap_err();
        assert!(e.contains("root volume"), "{e}");
    }

    #[test]
    fn a_refused_mount_point_is_never_planned() {
        let v = [Volume::with_defaults("/dev/sdf", "/", 10)];
        let mut host = fake(&[("vol-1", "202:80")]);
        host.refuse = Some("/ is the root filesystem");
        let problems = plan(
            &v,
            &[attached("vol-1", "/dev/sdf")],
            &[mount("/", "202:80")],
            &host,
        )
        .unwrap_err();
        assert_eq!(
            problems,
            vec!["/ (/dev/sdf): refusing to freeze it: / is the root filesystem"]
        );
    }
}
