//! `list-volumes NAME`: each volume of a profile, whether it is mounted
//! (per the kernel) and attached (per EC2), and the snapshot
//! `mount-snapshots` would restore it from.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::explain::{Explainer, Flags, PassedOver};
use super::points::{choose_points, RestoreSource};
use super::readiness::{self, Readiness};
use crate::cloud::{SnapshotInfo, VolumeInfo};
use crate::config::{kernel_device_name, mount_point, FileSystem, Volume, VolumeType};
use crate::context::VolumeContext;
use crate::host::mountinfo::{self, MountEntry};

/// One row of the listing (also the `--json` shape).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct VolumeStatus {
    pub device: String,
    pub mount_point: String,
    pub size_gib: u32,
    pub file_system: FileSystem,
    pub volume_type: VolumeType,
    pub iops: Option<u32>,
    pub throughput: Option<u32>,
    /// Mounted at its mount point, per /proc/self/mountinfo.
    pub mounted: bool,
    /// What is mounted there (device path), if anything.
    pub mounted_from: Option<String>,
    /// The EBS volume attached to this instance for it; `None` when none
    /// is, or when the instance is unknown (`attachment_known == false`).
    pub attached_volume: Option<String>,
    pub attachment_known: bool,
    /// How far the attached volume is from full speed (the SPEED column).
    pub speed: Readiness,
    /// The snapshot mount-snapshots would restore from.
    pub restore: RestoreSource,
    /// Newer snapshots passed over because they are in `error`.
    pub skipped_snapshots: Vec<String>,
    /// The point in time mount-snapshots restores the profile from: the
    /// snapshot set's `snaptastic:run` id, "0.2.12 (no set)" when no
    /// snapshot carries one, or "mixed" when no set covers every volume
    /// (mount-snapshots then needs `--allow-mixed`).
    pub set: String,
    /// Newer usable snapshots not used because they are not part of the
    /// complete set.
    pub outside_set: Vec<String>,
    /// Why `restore`, in one line, with every newer snapshot passed over
    /// and its reason (the WHY column; `explain`).
    pub explanation: String,
    /// The newer snapshots passed over (in error, outside the set), each
    /// with why: a run that is no point in time (cut short or unfrozen),
    /// a run that lacks a volume, 0.2.12's outside the set.
    pub passed_over: Vec<PassedOver>,
}

/// How to show the listing.
#[derive(Debug, Clone)]
pub(crate) struct ListOptions {
    /// A JSON array instead of a table.
    pub json: bool,
    /// Exit 1 while a volume is missing or still initializing.
    pub check_ready: bool,
}

pub(crate) async fn run(ctx: &VolumeContext, args: &ListOptions) -> Result<ExitCode> {
    let (ec2, host, volumes, filters) = (&ctx.ec2, &ctx.host, &ctx.volumes, &ctx.filters);
    let name = ctx.snapshotter.name();
    let snapshots = async {
        ec2.snapshots_tagged(filters, &ctx.owners)
            .await
            .with_context(|| format!("looking up snapshots of profile '{name}'"))
    };
    let attached = async {
        match &host.identity {
            Some(id) => ec2
                .volumes_attached_to(&id.instance_id)
                .await
                .map(Some)
                .with_context(|| format!("looking up volumes attached to {}", id.instance_id)),
            None => Ok(None),
        }
    };
    let (snapshots, attached) = tokio::try_join!(snapshots, attached)?;
    let mounts = mountinfo::read().context("reading /proc/self/mountinfo")?;
    let instance_id = host.identity.as_ref().map(|i| i.instance_id.as_str());

    let mut rows = statuses(
        volumes,
        &mounts,
        instance_id,
        attached.as_deref(),
        &snapshots,
    );
    if let (Some(me), Some(list)) = (instance_id, attached.as_deref()) {
        let ours: Vec<&VolumeInfo> = volumes
            .iter()
            .filter_map(|v| attached_for(v, me, list))
            .collect();
        let init = match readiness::initialization(ec2, &ours).await {
            Ok(m) => m,
            Err(why) if args.check_ready => {
                // A health check that cannot tell must not say ready.
                print_rows(&rows, args.json)?;
                anyhow::bail!("not ready as far as can be told: {why}");
            }
            Err(why) => {
                tracing::warn!("{why}");
                Default::default()
            }
        };
        for (row, v) in rows.iter_mut().zip(volumes) {
            if let Some(a) = attached_for(v, me, list) {
                row.speed = Readiness::of(a, init.get(&a.id));
            }
        }
    }
    print_rows(&rows, args.json)?;
    if args.check_ready {
        return Ok(check_ready(&rows));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_rows(rows: &[VolumeStatus], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(rows)?);
    } else {
        print!("{}", render_table(rows));
    }
    Ok(())
}

/// `--check-ready`: every volume mounted and none still initializing, or
/// one line on stderr naming the first that is not, and exit 1.
fn check_ready(rows: &[VolumeStatus]) -> ExitCode {
    let not_ready: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            if !r.mounted {
                Some(format!("{}: not mounted", r.mount_point))
            } else {
                r.speed
                    .initializing()
                    .map(|why| format!("{}: {why}", r.mount_point))
            }
        })
        .collect();
    match not_ready.first() {
        None => ExitCode::SUCCESS,
        Some(first) => {
            tracing::error!(
                "not ready: {first}{}",
                match not_ready.len() {
                    1 => String::new(),
                    n => format!(" (and {} more)", n - 1),
                }
            );
            ExitCode::from(1)
        }
    }
}

/// Combine what was observed into rows. Pure.
pub(crate) fn statuses(
    volumes: &[Volume],
    mounts: &[MountEntry],
    instance_id: Option<&str>,
    attached: Option<&[VolumeInfo]>,
    snapshots: &[SnapshotInfo],
) -> Vec<VolumeStatus> {
    let mps: Vec<&str> = volumes.iter().map(|v| v.mount_point.as_str()).collect();
    let points = choose_points(snapshots, &mps);
    let set = points.point.label();
    let explainer = Explainer::new(snapshots, &mps, &points.point, Flags::default());
    volumes
        .iter()
        .zip(points.choices)
        .enumerate()
        .map(|(i, (v, choice))| {
            let why = explainer.source(i, &choice.source);
            let mount = mountinfo::find(mounts, &v.mount_point);
            let attached_volume = match (instance_id, attached) {
                (Some(me), Some(list)) => attached_for(v, me, list).map(|a| a.id.clone()),
                _ => None,
            };
            VolumeStatus {
                device: v.device.clone(),
                mount_point: v.mount_point.clone(),
                size_gib: v.size_gib,
                file_system: v.file_system,
                volume_type: v.volume_type,
                iops: v.iops,
                throughput: v.throughput,
                mounted: mount.is_some(),
                mounted_from: mount.map(|m| m.source.clone()),
                attached_volume,
                attachment_known: attached.is_some(),
                speed: Readiness::default(),
                restore: choice.source,
                skipped_snapshots: choice.skipped.into_iter().map(|s| s.id).collect(),
                set: set.clone(),
                outside_set: choice.outside_set.into_iter().map(|s| s.id).collect(),
                explanation: why.line(),
                passed_over: why.passed_over,
            }
        })
        .collect()
}

/// The volume attached to `instance_id` for `v`: at its device name (EC2's
/// or the kernel's), else one tagged with its mount point (normalised, so
/// a 0.2.12 tag `/mnt/a/` is `/mnt/a`) and instance.
pub(crate) fn attached_for<'a>(
    v: &Volume,
    instance_id: &str,
    list: &'a [VolumeInfo],
) -> Option<&'a VolumeInfo> {
    let kernel = kernel_device_name(&v.device, v.device_name_offset);
    let on_me = |vol: &&VolumeInfo| vol.attachments.iter().any(|a| a.instance_id == instance_id);
    list.iter()
        .filter(on_me)
        .find(|vol| {
            vol.attachments.iter().any(|a| {
                a.instance_id == instance_id && (a.device == v.device || a.device == kernel)
            })
        })
        .or_else(|| {
            list.iter().filter(on_me).find(|vol| {
                vol.tags
                    .get("mount_point")
                    .is_some_and(|t| mount_point::same(t, &v.mount_point))
                    && vol.tags.get("instance_id").map(String::as_str) == Some(instance_id)
            })
        })
}

fn restore_text(r: &RestoreSource) -> String {
    let snap = |s: &SnapshotInfo| {
        let when = s
            .start_time
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|| "unknown time".into());
        format!("{} ({when}, {})", s.id, s.state.as_str())
    };
    match r {
        RestoreSource::Snapshot { snapshot } => snap(snapshot),
        RestoreSource::WaitFor {
            pending,
            fallback,
            set,
        } => format!(
            "{}; waits for it, else {}",
            snap(pending),
            match (fallback, set) {
                (Some(f), _) => f.id.clone(),
                (None, Some(_)) => "fails".to_string(),
                (None, None) => "creates an empty volume".to_string(),
            }
        ),
        RestoreSource::Empty => "none: will create empty".into(),
    }
}

/// The human listing: an aligned table.
pub(crate) fn render_table(rows: &[VolumeStatus]) -> String {
    let header = [
        "MOUNT POINT",
        "DEVICE",
        "SIZE",
        "TYPE",
        "FS",
        "MOUNTED",
        "ATTACHED",
        "SPEED",
        "SET",
        "RESTORE FROM",
        "WHY",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in rows {
        let mut ty = r.volume_type.to_string();
        if let Some(i) = r.iops {
            ty.push_str(&format!(" {i} iops"));
        }
        if let Some(t) = r.throughput {
            ty.push_str(&format!(" {t} MiB/s"));
        }
        let mounted = match &r.mounted_from {
            Some(src) => format!("yes ({src})"),
            None => "no".into(),
        };
        let attached = match (&r.attached_volume, r.attachment_known) {
            (Some(id), _) => id.clone(),
            (None, true) => "no".into(),
            (None, false) => "unknown".into(),
        };
        // What was skipped or passed over is in WHY, with its reason.
        let restore = restore_text(&r.restore);
        table.push(vec![
            r.mount_point.clone(),
            r.device.clone(),
            format!("{} GiB", r.size_gib),
            ty,
            r.file_system.to_string(),
            mounted,
            attached,
            r.speed.text(),
            r.set.clone(),
            restore,
            r.explanation.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            table
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &table {
        let last = row.len() - 1;
        for (c, cell) in row.iter().enumerate() {
            if c == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cloud::Attachment;

    fn vol(device: &str, mp: &str) -> Volume {
        Volume::with_defaults(device, mp, 5)
    }

    fn ebs(id: &str, instance: &str, device: &str, tags: &[(&str, &str)]) -> VolumeInfo {
        VolumeInfo {
            id: id.into(),
            state: "in-use".into(),
            size_gib: Some(5),
            volume_type: Some("gp3".into()),
            iops: None,
            availability_zone: None,
            attachments: vec![Attachment {
                instance_id: instance.into(),
                device: device.into(),
                state: "attached".into(),
            }],
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            fast_restored: None,
            init_rate: None,
        }
    }

    #[test]
    fn attachment_by_device_then_by_tags() {
        let list = vec![
            ebs("vol-other", "i-2", "/dev/sdf", &[]),
            ebs("vol-xvd", "i-1", "/dev/xvdg", &[]),
            ebs(
                "vol-tagged",
                "i-1",
                "/dev/sdk",
                &[("mount_point", "/c/"), ("instance_id", "i-1")],
            ),
        ];
        assert_eq!(
            attached_for(&vol("/dev/sdf", "/a"), "i-1", &list).map(|v| v.id.as_str()),
            None
        );
        assert_eq!(
            attached_for(&vol("/dev/sdg", "/b"), "i-1", &list)
                .unwrap()
                .id,
            "vol-xvd"
        );
        assert_eq!(
            attached_for(&vol("/dev/sdh", "/c"), "i-1", &list)
                .unwrap()
                .id,
            "vol-tagged"
        );
    }

    #[test]
    fn rows_and_table() {
        let mounts = mountinfo::parse("36 22 202:80 / /a rw - xfs /dev/xvdf rw\n");
        let rows = statuses(
            &[vol("/dev/sdf", "/a"), vol("/dev/sdg", "/b")],
            &mounts,
            None,
            None,
            &[],
        );
        assert!(rows[0].mounted && !rows[1].mounted);
        let t = render_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with(
                "MOUNT POINT  DEVICE    SIZE   TYPE  FS   MOUNTED          ATTACHED  SPEED  SET              RESTORE FROM"
            ),
            "{t}"
        );
        assert!(
            lines[1].contains("yes (/dev/xvdf)")
                && lines[1].contains("unknown")
                && lines[1].contains("none: will create empty")
                && lines[1].ends_with("no snapshot of this mount point exists: created empty"),
            "{t}"
        );
    }
}
