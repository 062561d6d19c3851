//! What mount-snapshots does for each volume of a profile (restore,
//! adopt, leave alone, create empty), decided from what was observed. No
//! I/O here; which snapshot is chosen is `points.rs`'s.

use super::points::{choose_points_in, near_miss_warning, Choice, PointInTime, RestoreSource};
use super::tags::{
    parse_python_timestamp, SOURCE_EMPTY, STATE_ATTACHED, STATE_DETACHED, STATE_MOUNTED,
    STATE_RESTORING, TAG_RUN, TAG_SOURCE, TAG_STATE,
};
use crate::cloud::{SnapshotInfo, VolumeInfo};
use crate::config::{kernel_device_name, mount_point, Volume};
use crate::host::mountinfo::{self, MountEntry};

/// What mount-snapshots will do for one volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MountAction {
    /// Already mounted at its mount point and `--ignore-mounted` given.
    Skip { mounted_from: String },
    /// Mounted at its mount point from the volume an earlier run of this
    /// profile restored there (attached here at its device, tagged for
    /// this mount point and `attached` or `mounted`): checked at run time
    /// to be that volume's device, tagged `mounted` if the earlier run was
    /// cut short before saying so, and counted as done. A re-run after a
    /// crash finishes the job instead of refusing its own work; anything
    /// else mounted there is still refused (or left alone with -i).
    Finish {
        volume: VolumeInfo,
        mounted_from: String,
        /// `major:minor` of the mounted filesystem (mountinfo's).
        dev: String,
    },
    /// Use a volume of ours that a previous run left attached or available.
    Adopt { volume: VolumeInfo, attached: bool },
    /// Create a volume from this source.
    Create { source: RestoreSource },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VolumePlan {
    pub volume: Volume,
    pub action: MountAction,
    /// Things to warn about (snapshots in error passed over, snapshots
    /// with a near-identical `mount_point` tag when none matched).
    pub warnings: Vec<String>,
}

impl VolumePlan {
    /// Whether the volume may need a filesystem made.
    pub(crate) fn may_format(&self) -> bool {
        match &self.action {
            MountAction::Skip { .. } | MountAction::Finish { .. } => false,
            MountAction::Adopt { volume, .. } => {
                volume.tags.get(TAG_SOURCE).map(String::as_str) == Some(SOURCE_EMPTY)
            }
            MountAction::Create { source } => !matches!(source, RestoreSource::Snapshot { .. }),
        }
    }
}

/// What mount-snapshots found before deciding.
pub(crate) struct Observed<'a> {
    pub instance_id: &'a str,
    /// This instance's availability zone: a volume elsewhere cannot be
    /// attached here.
    pub availability_zone: &'a str,
    pub mounts: &'a [MountEntry],
    /// Volumes attached to this instance.
    pub attached: &'a [VolumeInfo],
    /// Volumes tagged for this profile (its name and filter tags), of any
    /// instance, in any state: crash leftovers of this instance, and
    /// volumes unmount-snapshots detached anywhere.
    pub ours: &'a [VolumeInfo],
    /// This profile's snapshots (filtered by its tags).
    pub snapshots: &'a [SnapshotInfo],
}

/// The flags of mount-snapshots that change the plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PlanOptions<'a> {
    /// Leave volumes already mounted at their mount point alone.
    pub ignore_mounted: bool,
    /// Without a complete snapshot set, restore each volume from its own
    /// newest snapshot (points in time differ).
    pub allow_mixed: bool,
    /// `--set RUN`: restore that make-snapshots run's snapshots.
    pub set: Option<&'a str>,
    /// Restore from snapshots even where unmount-snapshots left a
    /// detached volume (newer data) that cannot be attached here.
    pub from_snapshot: bool,
}

/// The whole plan: the point in time, then one plan per volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountPlan {
    pub point: PointInTime,
    pub volumes: Vec<VolumePlan>,
}

/// Decide for every volume, or report every reason not to start at all
/// (bad input is refused before anything is created).
pub(crate) fn plan_mount(
    volumes: &[Volume],
    seen: &Observed<'_>,
    opts: PlanOptions<'_>,
) -> Result<MountPlan, Vec<String>> {
    let mps: Vec<&str> = volumes.iter().map(|v| v.mount_point.as_str()).collect();
    let points = choose_points_in(seen.snapshots, &mps, opts.set);
    if let Some(want) = opts.set {
        if !matches!(&points.point, PointInTime::Set { run } if run == want) {
            return Err(vec![format!(
                "--set {want}: no usable snapshots of that {TAG_RUN} cover every mount point that has snapshots (list-volumes shows the sets)"
            )]);
        }
    }
    let mut plans = Vec::new();
    let mut problems = Vec::new();
    for (v, choice) in volumes.iter().zip(points.choices) {
        match plan_one(v, seen, opts, choice) {
            Ok(p) => plans.push(p),
            Err(e) => problems.push(at(v, &e)),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // Only a restore from snapshots mixes points in time; volumes adopted
    // or left mounted do not need the flag.
    let creates = plans
        .iter()
        .any(|p| matches!(p.action, MountAction::Create { .. }));
    if creates && !opts.allow_mixed {
        refuse_mixing(volumes, &points.point)?;
    }
    warn_readopted(&mut plans);
    Ok(MountPlan {
        point: points.point,
        volumes: plans,
    })
}

/// A problem of one volume, named by its mount point and device.
fn at(v: &Volume, e: &str) -> String {
    format!("{} ({}): {e}", v.mount_point, v.device)
}

/// Points in time that would mix (or go back in time for some volumes)
/// are refused without `--allow-mixed`, naming each volume's case and the
/// flags that decide it.
fn refuse_mixing(volumes: &[Volume], point: &PointInTime) -> Result<(), Vec<String>> {
    match point {
        PointInTime::Diverged { run, newer } => {
            let have: Vec<&str> = newer
                .iter()
                .map(|(i, _)| volumes[*i].mount_point.as_str())
                .collect();
            Err(newer
                .iter()
                .map(|(i, what)| {
                    at(
                        &volumes[*i],
                        &format!(
                            "has snapshots without a {TAG_RUN} tag (snaptastic 0.2.12's: {what}) newer than the newest complete set {TAG_RUN}={run}, but not every volume does (only {}): restoring the set would go back in time here, restoring the newest would mix points in time; pass --set {run} to restore the set, or --allow-mixed to restore each volume's newest snapshot",
                            have.join(", ")
                        ),
                    )
                })
                .collect())
        }
        PointInTime::Mixed {
            newest_run,
            lacking,
        } => Err(lacking
            .iter()
            .map(|(i, what)| {
                at(
                    &volumes[*i],
                    &format!(
                        "not in the newest snapshot set ({TAG_RUN}={newest_run}), which has {what}, and no older set is complete; not restoring volumes from different points in time: pass --allow-mixed to restore each volume from its own newest snapshot"
                    ),
                )
            })
            .collect()),
        _ => Ok(()),
    }
}

/// A volume re-attached as unmount-snapshots left it beside others
/// restored from snapshots: say that their points in time differ.
fn warn_readopted(plans: &mut [VolumePlan]) {
    let readopted: Vec<String> = plans
        .iter()
        .filter_map(|p| match &p.action {
            MountAction::Adopt { volume, .. } if is_detached(volume) => {
                Some(p.volume.mount_point.clone())
            }
            _ => None,
        })
        .collect();
    let restored: Vec<String> = plans
        .iter()
        .filter(|p| {
            matches!(
                p.action,
                MountAction::Create {
                    source: RestoreSource::Snapshot { .. } | RestoreSource::WaitFor { .. }
                }
            )
        })
        .map(|p| p.volume.mount_point.clone())
        .collect();
    if readopted.is_empty() || restored.is_empty() {
        return;
    }
    for p in plans
        .iter_mut()
        .filter(|p| readopted.contains(&p.volume.mount_point))
    {
        p.warnings.push(format!(
            "re-attached with its data as of its unmount, while {} come(s) from snapshots: their points in time differ",
            restored.join(", ")
        ));
    }
}

/// Tagged detached by unmount-snapshots (on purpose, holding live data).
fn is_detached(vol: &VolumeInfo) -> bool {
    vol.tags.get(TAG_STATE).map(String::as_str) == Some(STATE_DETACHED)
}

/// Volumes of this mount point that unmount-snapshots detached (and that
/// nobody attached since), newest first by their `created` tag, then id.
pub(crate) fn detached_for<'a>(seen: &Observed<'a>, mp: &str) -> Vec<&'a VolumeInfo> {
    let mut found: Vec<&VolumeInfo> = seen
        .ours
        .iter()
        .filter(|vol| {
            vol.state == "available"
                && is_detached(vol)
                && vol
                    .tags
                    .get("mount_point")
                    .is_some_and(|t| mount_point::same(t, mp))
        })
        .collect();
    let created = |v: &VolumeInfo| {
        v.tags
            .get("created")
            .and_then(|c| parse_python_timestamp(c))
    };
    found.sort_by(|a, b| created(b).cmp(&created(a)).then_with(|| b.id.cmp(&a.id)));
    found
}

/// One volume's action, step by step: each step either decides (a plan or
/// the reason there can be none) or passes to the next.
fn plan_one(
    v: &Volume,
    seen: &Observed<'_>,
    opts: PlanOptions,
    choice: Choice,
) -> Result<VolumePlan, String> {
    if let Some(decided) = mounted_already(v, seen, opts) {
        return decided;
    }
    if let Some(decided) = attached_at_device(v, seen) {
        return decided;
    }
    if !opts.from_snapshot {
        if let Some(decided) = detached_earlier(v, seen) {
            return decided;
        }
    }
    if let Some(vol) = leftover(v, seen, &choice) {
        return Ok(VolumePlan::new(
            v,
            MountAction::Adopt {
                volume: vol.clone(),
                attached: false,
            },
        ));
    }
    create(v, seen, choice)
}

impl VolumePlan {
    fn new(v: &Volume, action: MountAction) -> VolumePlan {
        VolumePlan {
            volume: v.clone(),
            action,
            warnings: Vec::new(),
        }
    }
}

/// Something is mounted at the mount point already: left alone with
/// --ignore-mounted, else refused.
fn mounted_already(
    v: &Volume,
    seen: &Observed<'_>,
    opts: PlanOptions,
) -> Option<Result<VolumePlan, String>> {
    let m = mountinfo::find(seen.mounts, &v.mount_point)?;
    if let Some(vol) = attached_here(v, seen).filter(|vol| {
        let state = vol.tags.get(TAG_STATE).map(String::as_str);
        carries_mount_point(vol, v) && matches!(state, Some(STATE_ATTACHED | STATE_MOUNTED))
    }) {
        return Some(Ok(VolumePlan::new(
            v,
            MountAction::Finish {
                volume: vol.clone(),
                mounted_from: m.source.clone(),
                dev: m.dev.clone(),
            },
        )));
    }
    Some(if opts.ignore_mounted {
        Ok(VolumePlan::new(
            v,
            MountAction::Skip {
                mounted_from: m.source.clone(),
            },
        ))
    } else {
        Err(format!(
            "already mounted (from {}); run with --ignore-mounted to leave it alone",
            m.source
        ))
    })
}

/// A volume is attached to this instance at the device (EC2's name or the
/// kernel's): adopted if it carries this mount point, else refused.
fn attached_at_device(v: &Volume, seen: &Observed<'_>) -> Option<Result<VolumePlan, String>> {
    let vol = attached_here(v, seen)?;
    // Ours (by this tool or 0.2.12) if it carries this mount point.
    // Whatever its state: `restoring` (a crash before the mount) or
    // `attached` (a crash around the mount, never confirmed mounted) is
    // adopted here, still attached to this instance at this device, and
    // mounted as it is: a filesystem is made only on a blank volume
    // created empty, so data it may hold is kept.
    if carries_mount_point(vol, v) {
        return Some(Ok(VolumePlan::new(
            v,
            MountAction::Adopt {
                volume: vol.clone(),
                attached: true,
            },
        )));
    }
    Some(Err(format!(
        "device {} is already in use by {}{}",
        v.device,
        vol.id,
        vol.tags
            .get("mount_point")
            .map(|m| format!(" (tagged for {m})"))
            .unwrap_or_default()
    )))
}

/// The volume attached to this instance at the volume's device (EC2's
/// name or the kernel's), whoever's it is.
fn attached_here<'a>(v: &Volume, seen: &Observed<'a>) -> Option<&'a VolumeInfo> {
    let kernel = kernel_device_name(&v.device, v.device_name_offset);
    seen.attached.iter().find(|vol| {
        vol.attachments.iter().any(|a| {
            a.instance_id == seen.instance_id && (a.device == v.device || a.device == kernel)
        })
    })
}

/// Whether a volume is tagged for this mount point (by this tool or 0.2.12).
fn carries_mount_point(vol: &VolumeInfo, v: &Volume) -> bool {
    vol.tags
        .get("mount_point")
        .is_some_and(|t| mount_point::same(t, &v.mount_point))
}

/// unmount-snapshots (without --delete) detached a volume of this mount
/// point: it holds the data as of that unmount, newer than any snapshot,
/// so restoring a snapshot instead would silently go back in time. In
/// this AZ it is re-attached; elsewhere it cannot be, and the run stops
/// unless told (--from-snapshot) to restore the snapshot anyway.
fn detached_earlier(v: &Volume, seen: &Observed<'_>) -> Option<Result<VolumePlan, String>> {
    let detached = detached_for(seen, &v.mount_point);
    let here =
        |vol: &&&VolumeInfo| vol.availability_zone.as_deref() == Some(seen.availability_zone);
    if let Some(vol) = detached.iter().find(here) {
        let mut p = VolumePlan::new(
            v,
            MountAction::Adopt {
                volume: (*vol).clone(),
                attached: false,
            },
        );
        p.warnings.push(format!(
            "re-attaching {} detached by an earlier unmount-snapshots: it holds newer data than any snapshot (--from-snapshot restores the snapshot instead)",
            vol.id
        ));
        let others: Vec<String> = detached
            .iter()
            .filter(|o| o.id != vol.id)
            .map(|o| describe_detached(o))
            .collect();
        if !others.is_empty() {
            p.warnings.push(format!(
                "other detached volumes of this mount point left alone: {}",
                others.join(", ")
            ));
        }
        return Some(Ok(p));
    }
    let vol = detached.first()?;
    Some(Err(format!(
        "{} (detached by unmount-snapshots, so newer than any snapshot) is in {}, not in this instance's {}: it cannot be attached here; move its data here (snapshot it, or run mount-snapshots on an instance in its AZ), or pass --from-snapshot to restore from the snapshot anyway",
        describe_detached(vol),
        vol.availability_zone.as_deref().unwrap_or("an unknown AZ"),
        seen.availability_zone
    )))
}

/// A run that crashed (or was killed) between CreateVolume and mount left
/// this one: adopted if it came from what this run would restore, even
/// while it is still `creating` (the adoption waits for it to be
/// available; creating another would leave two). A leftover from an
/// older source is left for `clean volumes`. Only `restoring`: a volume
/// tagged `attached` that is no longer attached may have been mounted and
/// written to, then detached; restoring it in place of what this run
/// would restore is a choice between two copies of the data, not ours to
/// make. It stays, and `clean volumes` leaves it to `--include-detached`.
fn leftover<'a>(v: &Volume, seen: &Observed<'a>, choice: &Choice) -> Option<&'a VolumeInfo> {
    seen.ours.iter().find(|vol| {
        matches!(vol.state.as_str(), "available" | "creating")
            && vol.tags.get("instance_id").map(String::as_str) == Some(seen.instance_id)
            && vol
                .tags
                .get("mount_point")
                .is_some_and(|t| mount_point::same(t, &v.mount_point))
            && vol.tags.get(TAG_STATE).map(String::as_str) == Some(STATE_RESTORING)
            && vol
                .tags
                .get(TAG_SOURCE)
                .is_some_and(|s| source_ids(&choice.source).contains(&s.as_str()))
    })
}

/// A new volume from the chosen source, if the profile's size holds it;
/// with warnings for what was passed over.
fn create(v: &Volume, seen: &Observed<'_>, choice: Choice) -> Result<VolumePlan, String> {
    let too_small = |s: &SnapshotInfo| -> Result<(), String> {
        match s.size_gib {
            Some(n) if n > v.size_gib => Err(format!(
                "size {} GiB is smaller than snapshot {} ({n} GiB); set size = {n} or more",
                v.size_gib, s.id
            )),
            _ => Ok(()),
        }
    };
    match &choice.source {
        RestoreSource::Snapshot { snapshot } => too_small(snapshot)?,
        RestoreSource::WaitFor {
            pending, fallback, ..
        } => {
            too_small(pending)?;
            if let Some(f) = fallback {
                too_small(f)?;
            }
        }
        RestoreSource::Empty => {}
    }
    let mut p = VolumePlan::new(
        v,
        MountAction::Create {
            source: choice.source,
        },
    );
    p.warnings = choice
        .skipped
        .iter()
        .map(|s| {
            format!(
                "snapshot {} is {}; using an older one",
                s.id,
                super::points::unusable_reason(s)
            )
        })
        .collect();
    if !choice.outside_set.is_empty() {
        let newer: Vec<String> = choice
            .outside_set
            .iter()
            .map(|s| {
                format!(
                    "{} ({})",
                    s.id,
                    s.tag(TAG_RUN)
                        .map_or("no set: 0.2.12".to_string(), |r| format!("{TAG_RUN}={r}"))
                )
            })
            .collect();
        p.warnings.push(format!(
            "newer snapshot(s) {} not used: not part of a snapshot set complete for every mount point",
            newer.join(", ")
        ));
    }
    p.warnings
        .extend(near_miss_warning(seen.snapshots, &v.mount_point));
    Ok(p)
}

/// What a restore from `source` tags its volume's `snaptastic:source` with.
fn source_ids(source: &RestoreSource) -> Vec<&str> {
    match source {
        RestoreSource::Snapshot { snapshot } => vec![snapshot.id.as_str()],
        RestoreSource::WaitFor {
            pending, fallback, ..
        } => {
            let mut w = vec![pending.id.as_str()];
            w.extend(fallback.iter().map(|f| f.id.as_str()));
            w
        }
        RestoreSource::Empty => vec![SOURCE_EMPTY],
    }
}

/// `vol-… (created …, from instance …)` for messages.
fn describe_detached(vol: &VolumeInfo) -> String {
    let mut extra = Vec::new();
    if let Some(c) = vol.tags.get("created") {
        extra.push(format!("created {c}"));
    }
    if let Some(i) = vol.tags.get("instance_id") {
        extra.push(format!("last on {i}"));
    }
    if extra.is_empty() {
        vol.id.clone()
    } else {
        format!("{} ({})", vol.id, extra.join(", "))
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
