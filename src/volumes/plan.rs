//! Pure decisions about volumes: which snapshot a volume is restored from.
//! No I/O here; commands feed in what they observed.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Serialize;

use super::tags::parse_python_timestamp;
use crate::cloud::{SnapshotInfo, SnapshotState, VolumeInfo};
use crate::config::{kernel_device_name, mount_point, Volume};
use crate::host::mountinfo::{self, MountEntry};

/// Tag keys of our own, beside snaptastic 0.2.12's, on volumes we create:
/// enough for a later run to recognise and adopt a volume a crashed run
/// left behind.
pub(crate) const TAG_PROFILE: &str = "snaptastic:profile";
pub(crate) const TAG_SOURCE: &str = "snaptastic:source";
pub(crate) const TAG_DEVICE: &str = "snaptastic:device";
pub(crate) const TAG_STATE: &str = "snaptastic:state";
/// `snaptastic:source` of a volume created empty.
pub(crate) const SOURCE_EMPTY: &str = "empty";
/// `snaptastic:state`: created, not yet mounted (a crash here leaves a
/// volume the next run adopts).
pub(crate) const STATE_RESTORING: &str = "restoring";
/// `snaptastic:state`: attached and about to be mounted. Written before
/// mount(2), and the volume is not mounted if it cannot be: whatever
/// happens to the later `mounted` tag, a volume that may have held live
/// data never still says `restoring` (which `clean volumes` deletes).
pub(crate) const STATE_ATTACHED: &str = "attached";
pub(crate) const STATE_MOUNTED: &str = "mounted";
/// Detached on purpose by unmount-snapshots.
pub(crate) const STATE_DETACHED: &str = "detached";

/// Where `mount-snapshots` would take a volume's data from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum RestoreSource {
    /// The newest completed snapshot of the mount point.
    Snapshot { snapshot: SnapshotInfo },
    /// A newer snapshot is still pending: wait for it, and fall back to
    /// the newest completed one (if any) when the wait runs out.
    WaitFor {
        pending: SnapshotInfo,
        fallback: Option<SnapshotInfo>,
    },
    /// No usable snapshot: create an empty volume and format it.
    Empty,
}

/// The choice for one volume, with the snapshots passed over for being in
/// `error` (to warn about).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Choice {
    pub source: RestoreSource,
    pub skipped: Vec<SnapshotInfo>,
}

/// The order in which snapshots of one mount point are considered, best
/// first, so the choice never depends on the order EC2 listed them:
///
/// 1. the later `start_time` (0.2.12's only rule); none sorts last;
/// 2. on equal start times (EC2 gives them to the second, and a set's
///    snapshots share one), a `completed` one before any other state;
/// 3. then the later `created` tag (written by either tool, a
///    sub-second timestamp); a missing or unreadable one sorts last;
/// 4. then the larger snapshot id (byte order): arbitrary, but stable.
///
/// `clean` ranks completed snapshots with the same order, so the one a
/// restore would pick is the one it keeps.
pub(crate) fn newest_first(a: &SnapshotInfo, b: &SnapshotInfo) -> Ordering {
    let completed = |s: &SnapshotInfo| s.state == SnapshotState::Completed;
    let created = |s: &SnapshotInfo| s.tag("created").and_then(parse_python_timestamp);
    b.start_time
        .cmp(&a.start_time)
        .then_with(|| completed(b).cmp(&completed(a)))
        .then_with(|| created(b).cmp(&created(a)))
        .then_with(|| b.id.cmp(&a.id))
}

/// Choose among a profile's snapshots (already filtered by its tags) for
/// one mount point: `mount_point` tag equal once both are normalised
/// (0.2.12 compared the strings as typed), best first by `newest_first`,
/// `error` skipped, never falling back past a pending snapshot without
/// saying so.
pub(crate) fn choose_snapshot(snapshots: &[SnapshotInfo], wanted: &str) -> Choice {
    let mut candidates: Vec<&SnapshotInfo> = snapshots
        .iter()
        .filter(|s| {
            s.tag("mount_point")
                .is_some_and(|t| mount_point::same(t, wanted))
        })
        .collect();
    candidates.sort_by(|a, b| newest_first(a, b));

    let mut skipped = Vec::new();
    let mut pending: Option<&SnapshotInfo> = None;
    let mut completed: Option<&SnapshotInfo> = None;
    for s in candidates {
        match s.state {
            SnapshotState::Completed => {
                completed = Some(s);
                break;
            }
            SnapshotState::Pending => {
                pending.get_or_insert(s);
            }
            SnapshotState::Error => skipped.push(s.clone()),
            // Unknown states are neither usable nor worth waiting for.
            SnapshotState::Other(_) => skipped.push(s.clone()),
        }
    }
    let source = match (pending, completed) {
        (Some(p), fallback) => RestoreSource::WaitFor {
            pending: p.clone(),
            fallback: fallback.cloned(),
        },
        (None, Some(c)) => RestoreSource::Snapshot {
            snapshot: c.clone(),
        },
        (None, None) => RestoreSource::Empty,
    };
    Choice { source, skipped }
}

/// When no snapshot is tagged with `mount_point`, the ones whose tag
/// differs from it only by case or whitespace (`mount_point::nearly_same`),
/// as one warning naming them: they are never used (on a case-sensitive
/// file system they are another directory), but an empty volume where a
/// hand-edited tag or a typo in the config was meant deserves a word.
pub(crate) fn near_miss_warning(snapshots: &[SnapshotInfo], mp: &str) -> Option<String> {
    let tagged = |s: &SnapshotInfo| s.tag("mount_point").map(str::to_string);
    if snapshots
        .iter()
        .any(|s| tagged(s).is_some_and(|t| mount_point::same(&t, mp)))
    {
        return None;
    }
    let mut near: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for s in snapshots {
        if let Some(t) = tagged(s).filter(|t| mount_point::nearly_same(t, mp)) {
            near.entry(t).or_default().push(s.id.as_str());
        }
    }
    if near.is_empty() {
        return None;
    }
    let list: Vec<String> = near
        .iter()
        .map(|(tag, ids)| format!("{tag:?} ({})", ids.join(", ")))
        .collect();
    Some(format!(
        "no snapshot is tagged mount_point={mp:?}, but some have a near-identical mount_point tag (not used): {}; if they hold this volume's data, fix the tag or the mount point",
        list.join(", ")
    ))
}

/// What mount-snapshots will do for one volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MountAction {
    /// Already mounted at its mount point and `--ignore-mounted` given.
    Skip { mounted_from: String },
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
            MountAction::Skip { .. } => false,
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
    pub mounts: &'a [MountEntry],
    /// Volumes attached to this instance.
    pub attached: &'a [VolumeInfo],
    /// Volumes tagged for this profile and instance, in any state.
    pub ours: &'a [VolumeInfo],
    /// This profile's snapshots (filtered by its tags).
    pub snapshots: &'a [SnapshotInfo],
}

/// Decide for every volume, or report every reason not to start at all
/// (bad input is refused before anything is created).
pub(crate) fn plan_mount(
    volumes: &[Volume],
    seen: &Observed<'_>,
    ignore_mounted: bool,
) -> Result<Vec<VolumePlan>, Vec<String>> {
    let mut plans = Vec::new();
    let mut problems = Vec::new();
    for v in volumes {
        match plan_one(v, seen, ignore_mounted) {
            Ok(p) => plans.push(p),
            Err(e) => problems.push(format!("{} ({}): {e}", v.mount_point, v.device)),
        }
    }
    if problems.is_empty() {
        Ok(plans)
    } else {
        Err(problems)
    }
}

fn plan_one(v: &Volume, seen: &Observed<'_>, ignore_mounted: bool) -> Result<VolumePlan, String> {
    let plan = |action| VolumePlan {
        volume: v.clone(),
        action,
        warnings: Vec::new(),
    };
    if let Some(m) = mountinfo::find(seen.mounts, &v.mount_point) {
        if ignore_mounted {
            return Ok(plan(MountAction::Skip {
                mounted_from: m.source.clone(),
            }));
        }
        return Err(format!(
            "already mounted (from {}); run with --ignore-mounted to leave it alone",
            m.source
        ));
    }
    let kernel = kernel_device_name(&v.device, v.device_name_offset);
    let at_device = seen.attached.iter().find(|vol| {
        vol.attachments.iter().any(|a| {
            a.instance_id == seen.instance_id && (a.device == v.device || a.device == kernel)
        })
    });
    if let Some(vol) = at_device {
        // Ours (by this tool or 0.2.12) if it carries this mount point.
        // Whatever its state: `restoring` (a crash before the mount) or
        // `attached` (a crash around the mount, never confirmed mounted)
        // is adopted here, still attached to this instance at this
        // device, and mounted as it is: a filesystem is made only on a
        // blank volume created empty, so data it may hold is kept.
        if vol
            .tags
            .get("mount_point")
            .is_some_and(|t| mount_point::same(t, &v.mount_point))
        {
            return Ok(plan(MountAction::Adopt {
                volume: vol.clone(),
                attached: true,
            }));
        }
        return Err(format!(
            "device {} is already in use by {}{}",
            v.device,
            vol.id,
            vol.tags
                .get("mount_point")
                .map(|m| format!(" (tagged for {m})"))
                .unwrap_or_default()
        ));
    }
    let available_ours = |state: &str| {
        seen.ours.iter().find(|vol| {
            vol.state == "available"
                && vol
                    .tags
                    .get("mount_point")
                    .is_some_and(|t| mount_point::same(t, &v.mount_point))
                && vol.tags.get(TAG_STATE).map(String::as_str) == Some(state)
        })
    };
    let choice = choose_snapshot(seen.snapshots, &v.mount_point);
    let near_miss = near_miss_warning(seen.snapshots, &v.mount_point);
    // A run that crashed between CreateVolume and mount left this one:
    // adopt it if it came from what this run would restore; a leftover
    // from an older source is left for `clean volumes`. Only `restoring`:
    // a volume tagged `attached` that is no longer attached may have been
    // mounted and written to, then detached; restoring it in place of
    // what this run would restore is a choice between two copies of the
    // data, not ours to make. It stays, and `clean volumes` leaves it to
    // `--include-detached`.
    if let Some(vol) = available_ours(STATE_RESTORING) {
        let wanted: Vec<&str> = match &choice.source {
            RestoreSource::Snapshot { snapshot } => vec![snapshot.id.as_str()],
            RestoreSource::WaitFor { pending, fallback } => {
                let mut w = vec![pending.id.as_str()];
                w.extend(fallback.iter().map(|f| f.id.as_str()));
                w
            }
            RestoreSource::Empty => vec![SOURCE_EMPTY],
        };
        if vol
            .tags
            .get(TAG_SOURCE)
            .is_some_and(|s| wanted.contains(&s.as_str()))
        {
            return Ok(plan(MountAction::Adopt {
                volume: vol.clone(),
                attached: false,
            }));
        }
    }

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
        RestoreSource::WaitFor { pending, fallback } => {
            too_small(pending)?;
            if let Some(f) = fallback {
                too_small(f)?;
            }
        }
        RestoreSource::Empty => {}
    }
    // No snapshot at all, but unmount-snapshots detached a volume of ours
    // for this mount point: it holds the only copy of the data, so use it
    // rather than start empty.
    if choice.source == RestoreSource::Empty {
        if let Some(vol) = available_ours(STATE_DETACHED) {
            let mut p = plan(MountAction::Adopt {
                volume: vol.clone(),
                attached: false,
            });
            p.warnings.push(format!(
                "no snapshot of this mount point; re-attaching {} detached by an earlier unmount-snapshots",
                vol.id
            ));
            p.warnings.extend(near_miss);
            return Ok(p);
        }
    }
    let mut p = plan(MountAction::Create {
        source: choice.source,
    });
    p.warnings = choice
        .skipped
        .iter()
        .map(|s| {
            format!(
                "snapshot {} is in state {}; using an older one",
                s.id,
                s.state.as_str()
            )
        })
        .collect();
    p.warnings.extend(near_miss);
    Ok(p)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};

    use super::*;

    fn snap(id: &str, mp: &str, hour: u32, state: SnapshotState) -> SnapshotInfo {
        SnapshotInfo {
            id: id.into(),
            volume_id: Some("vol-1".into()),
            state,
            start_time: Some(Utc.with_ymd_and_hms(2026, 11, 1, hour, 0, 0).unwrap()),
            size_gib: Some(5),
            progress: None,
            description: String::new(),
            tags: BTreeMap::from([("mount_point".to_string(), mp.to_string())]),
        }
    }

    use SnapshotState::*;

    fn chosen(c: &Choice) -> String {
        match &c.source {
            RestoreSource::Snapshot { snapshot } => snapshot.id.clone(),
            RestoreSource::WaitFor { pending, fallback } => format!(
                "wait {} else {}",
                pending.id,
                fallback.as_ref().map_or("empty", |f| f.id.as_str())
            ),
            RestoreSource::Empty => "empty".into(),
        }
    }

    #[test]
    fn table() {
        let cases: Vec<(&str, Vec<SnapshotInfo>, &str, &str)> = vec![
            ("none at all", vec![], "/data", "empty"),
            (
                "newest completed wins",
                vec![
                    snap("a", "/data", 1, Completed),
                    snap("b", "/data", 3, Completed),
                    snap("c", "/data", 2, Completed),
                ],
                "/data",
                "b",
            ),
            (
                "a trailing slash or a double one is the same mount point",
                vec![
                    snap("a", "/data/", 5, Completed),
                    snap("b", "/data", 1, Completed),
                    snap("c", "/dat", 6, Completed),
                    snap("d", "//data", 4, Completed),
                ],
                "/data",
                "a",
            ),
            (
                "the config's trailing slash too",
                vec![snap("b", "/data", 1, Completed)],
                "/data/",
                "b",
            ),
            (
                "case and whitespace are other mount points",
                vec![
                    snap("a", "/Data", 5, Completed),
                    snap("b", "/data ", 4, Completed),
                    snap("c", "/data", 1, Completed),
                ],
                "/data",
                "c",
            ),
            (
                "other mount points ignored",
                vec![snap("a", "/other", 5, Completed)],
                "/data",
                "empty",
            ),
            (
                "error skipped, older used",
                vec![
                    snap("new", "/data", 5, Error),
                    snap("old", "/data", 1, Completed),
                ],
                "/data",
                "old",
            ),
            (
                "pending newer than completed waits with fallback",
                vec![
                    snap("p", "/data", 5, Pending),
                    snap("c", "/data", 1, Completed),
                ],
                "/data",
                "wait p else c",
            ),
            (
                "pending only waits without fallback",
                vec![snap("p", "/data", 5, Pending)],
                "/data",
                "wait p else empty",
            ),
            (
                "older pending is ignored",
                vec![
                    snap("p", "/data", 1, Pending),
                    snap("c", "/data", 5, Completed),
                ],
                "/data",
                "c",
            ),
            (
                "newest of two pendings",
                vec![
                    snap("p1", "/data", 3, Pending),
                    snap("p2", "/data", 4, Pending),
                    snap("c", "/data", 1, Completed),
                ],
                "/data",
                "wait p2 else c",
            ),
            (
                "only errors",
                vec![snap("e", "/data", 3, Error)],
                "/data",
                "empty",
            ),
            (
                "same start time: highest id",
                vec![
                    snap("snap-a", "/data", 3, Completed),
                    snap("snap-b", "/data", 3, Completed),
                ],
                "/data",
                "snap-b",
            ),
        ];
        for (name, snaps, mp, want) in cases {
            assert_eq!(chosen(&choose_snapshot(&snaps, mp)), want, "{name}");
        }
    }

    #[test]
    fn equal_start_times_are_decided_by_state_then_created_then_id() {
        let with_created = |id: &str, state, created: Option<&str>| {
            let mut s = snap(id, "/d", 3, state);
            if let Some(c) = created {
                s.tags.insert("created".into(), c.into());
            }
            s
        };
        let cases: Vec<(&str, Vec<SnapshotInfo>, &str)> = vec![
            (
                "completed before pending, whatever the ids",
                vec![
                    with_created("snap-a", Completed, None),
                    with_created("snap-z", Pending, None),
                ],
                "snap-a",
            ),
            (
                "then the later created tag",
                vec![
                    with_created("snap-z", Completed, Some("2026-11-01 03:00:00.100000")),
                    with_created("snap-a", Completed, Some("2026-11-01 03:00:00.900000")),
                ],
                "snap-a",
            ),
            (
                "a created tag beats none or an unreadable one",
                vec![
                    with_created("snap-z", Completed, None),
                    with_created("snap-y", Completed, Some("yesterday")),
                    with_created("snap-a", Completed, Some("2026-11-01 03:00:00")),
                ],
                "snap-a",
            ),
            (
                "then the larger id",
                vec![
                    with_created("snap-a", Completed, Some("2026-11-01 03:00:00")),
                    with_created("snap-b", Completed, Some("2026-11-01 03:00:00")),
                ],
                "snap-b",
            ),
            (
                "a later start time still wins over all of it",
                vec![
                    with_created("snap-z", Completed, Some("2026-11-01 09:00:00")),
                    {
                        let mut s = with_created("snap-a", Pending, None);
                        s.start_time = s.start_time.map(|t| t + chrono::Duration::seconds(1));
                        s
                    },
                ],
                "wait snap-a else snap-z",
            ),
        ];
        for (name, snaps, want) in cases {
            assert_eq!(chosen(&choose_snapshot(&snaps, "/d")), want, "{name}");
            // Whatever order EC2 listed them in.
            let reversed: Vec<_> = snaps.into_iter().rev().collect();
            assert_eq!(
                chosen(&choose_snapshot(&reversed, "/d")),
                want,
                "{name}, reversed"
            );
        }
    }

    #[test]
    fn near_identical_tags_are_named_when_nothing_matches() {
        let snaps = vec![
            snap("s1", "/mnt/Data", 5, Completed),
            snap("s2", "/mnt/data ", 4, Completed),
            snap("s3", "/mnt/Data/", 3, Completed),
            snap("s4", "/mnt/other", 3, Completed),
        ];
        assert_eq!(
            near_miss_warning(&snaps, "/mnt/data").as_deref(),
            Some("no snapshot is tagged mount_point=\"/mnt/data\", but some have a near-identical mount_point tag (not used): \"/mnt/Data\" (s1), \"/mnt/Data/\" (s3), \"/mnt/data \" (s2); if they hold this volume's data, fix the tag or the mount point")
        );
        // One that matches (a slash apart) silences it.
        let mut with_match = snaps.clone();
        with_match.push(snap("s5", "/mnt/data/", 1, Error));
        assert_eq!(near_miss_warning(&with_match, "/mnt/data"), None);
        assert_eq!(near_miss_warning(&snaps, "/mnt/else"), None);
    }

    #[test]
    fn skipped_errors_are_reported() {
        let snaps = vec![
            snap("e1", "/d", 5, Error),
            snap("e2", "/d", 4, Other("recoverable".into())),
            snap("c", "/d", 1, Completed),
            snap("e3", "/d", 0, Error),
        ];
        let c = choose_snapshot(&snaps, "/d");
        let ids: Vec<_> = c.skipped.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["e1", "e2"]);
    }

    #[test]
    fn missing_start_time_sorts_last() {
        let mut undated = snap("undated", "/d", 0, Completed);
        undated.start_time = None;
        let snaps = vec![undated, snap("dated", "/d", 0, Completed)];
        assert_eq!(chosen(&choose_snapshot(&snaps, "/d")), "dated");
    }

    mod mount_plans {
        use super::*;
        use crate::cloud::Attachment;

        fn vol(device: &str, mp: &str, size: u32) -> Volume {
            Volume::with_defaults(device, mp, size)
        }

        fn ebs(
            id: &str,
            state: &str,
            attached: Option<(&str, &str)>,
            mp: &str,
            source: &str,
        ) -> VolumeInfo {
            VolumeInfo {
                id: id.into(),
                state: state.into(),
                size_gib: Some(5),
                volume_type: None,
                iops: None,
                availability_zone: None,
                attachments: attached
                    .map(|(i, d)| Attachment {
                        instance_id: i.into(),
                        device: d.into(),
                        state: "attached".into(),
                    })
                    .into_iter()
                    .collect(),
                tags: BTreeMap::from([
                    ("mount_point".to_string(), mp.to_string()),
                    (TAG_SOURCE.to_string(), source.to_string()),
                ]),
            }
        }

        fn seen<'a>(
            mounts: &'a [MountEntry],
            attached: &'a [VolumeInfo],
            ours: &'a [VolumeInfo],
            snapshots: &'a [SnapshotInfo],
        ) -> Observed<'a> {
            Observed {
                instance_id: "i-1",
                mounts,
                attached,
                ours,
                snapshots,
            }
        }

        fn action(p: &Result<Vec<VolumePlan>, Vec<String>>) -> String {
            match p {
                Ok(p) => match &p[0].action {
                    MountAction::Skip { mounted_from } => format!("skip {mounted_from}"),
                    MountAction::Adopt { volume, attached } => {
                        format!("adopt {} attached={attached}", volume.id)
                    }
                    MountAction::Create {
                        source: RestoreSource::Empty,
                    } => "create empty".into(),
                    MountAction::Create {
                        source: RestoreSource::Snapshot { snapshot },
                    } => format!("create from {}", snapshot.id),
                    MountAction::Create {
                        source: RestoreSource::WaitFor { pending, .. },
                    } => format!("wait {}", pending.id),
                },
                Err(e) => format!("error: {}", e.join("; ")),
            }
        }

        #[test]
        fn table() {
            let mounted = mountinfo::parse("1 1 7:0 / /data rw - xfs /dev/xvdf rw\n");
            let snaps = vec![snap("s1", "/data", 3, Completed)];
            let mut big = snap("s2", "/data", 4, Completed);
            big.size_gib = Some(50);
            let big = vec![big];
            let at_f = vec![ebs(
                "vol-a",
                "in-use",
                Some(("i-1", "/dev/sdf")),
                "/data",
                "empty",
            )];
            let at_xvdf = vec![ebs(
                "vol-x",
                "in-use",
                Some(("i-1", "/dev/xvdf")),
                "/data",
                "s1",
            )];
            let foreign = vec![ebs(
                "vol-f",
                "in-use",
                Some(("i-1", "/dev/sdf")),
                "/other",
                "empty",
            )];
            let elsewhere = vec![ebs(
                "vol-e",
                "in-use",
                Some(("i-2", "/dev/sdf")),
                "/data",
                "empty",
            )];
            let mut leftover = vec![ebs("vol-l", "available", None, "/data", "s1")];
            leftover[0]
                .tags
                .insert(TAG_STATE.into(), STATE_RESTORING.into());
            let mut attached_here = at_f.clone();
            attached_here[0]
                .tags
                .insert(TAG_STATE.into(), STATE_ATTACHED.into());
            let mut attached_gone = vec![ebs("vol-g", "available", None, "/data", "s1")];
            attached_gone[0]
                .tags
                .insert(TAG_STATE.into(), STATE_ATTACHED.into());
            let mut detached = vec![ebs("vol-d", "available", None, "/data", "empty")];
            detached[0]
                .tags
                .insert(TAG_STATE.into(), STATE_DETACHED.into());
            let v = [vol("/dev/sdf", "/data", 5)];
            let cases: Vec<(&str, Observed<'_>, bool, &str)> = vec![
                ("first boot, nothing anywhere", seen(&[], &[], &[], &[]), false, "create empty"),
                ("restore newest completed", seen(&[], &[], &[], &snaps), false, "create from s1"),
                ("mounted, --ignore-mounted", seen(&mounted, &[], &[], &snaps), true, "skip /dev/xvdf"),
                ("mounted without the flag", seen(&mounted, &[], &[], &snaps), false, "error: /data (/dev/sdf): already mounted (from /dev/xvdf); run with --ignore-mounted to leave it alone"),
                ("crashed run left it attached", seen(&[], &at_f, &[], &snaps), false, "adopt vol-a attached=true"),
                ("attached under the kernel name", seen(&[], &at_xvdf, &[], &snaps), false, "adopt vol-x attached=true"),
                ("device used by another volume", seen(&[], &foreign, &[], &snaps), false, "error: /data (/dev/sdf): device /dev/sdf is already in use by vol-f (tagged for /other)"),
                ("attached to another instance is not ours", seen(&[], &elsewhere, &[], &snaps), false, "create from s1"),
                ("crashed run left it available", seen(&[], &[], &leftover, &snaps), false, "adopt vol-l attached=false"),
                ("crash leftover from an older source is not adopted", seen(&[], &[], &leftover, &[]), false, "create empty"),
                ("never confirmed mounted, still attached here", seen(&[], &attached_here, &[], &snaps), false, "adopt vol-a attached=true"),
                ("never confirmed mounted, since detached", seen(&[], &[], &attached_gone, &snaps), false, "create from s1"),
                ("never confirmed mounted, since detached, no snapshot", seen(&[], &[], &attached_gone, &[]), false, "create empty"),
                ("detached on purpose, a snapshot exists", seen(&[], &[], &detached, &snaps), false, "create from s1"),
                ("detached on purpose, no snapshot", seen(&[], &[], &detached, &[]), false, "adopt vol-d attached=false"),
                ("size smaller than the snapshot", seen(&[], &[], &[], &big), false, "error: /data (/dev/sdf): size 5 GiB is smaller than snapshot s2 (50 GiB); set size = 50 or more"),
            ];
            for (name, seen, ignore, want) in cases {
                assert_eq!(action(&plan_mount(&v, &seen, ignore)), want, "{name}");
            }
        }

        #[test]
        fn near_identical_tags_warn_in_the_plan() {
            let v = [vol("/dev/sdf", "/data", 5)];
            let snaps = vec![snap("s1", "/Data", 3, Completed)];
            let p = plan_mount(&v, &seen(&[], &[], &[], &snaps), false).unwrap();
            assert_eq!(
                p[0].action,
                MountAction::Create {
                    source: RestoreSource::Empty
                }
            );
            assert_eq!(p[0].warnings.len(), 1, "{:?}", p[0].warnings);
            assert!(
                p[0].warnings[0]
                    .contains("near-identical mount_point tag (not used): \"/Data\" (s1)"),
                "{:?}",
                p[0].warnings
            );
            // A volume tagged with the slashed form is still ours.
            let at = vec![ebs(
                "vol-a",
                "in-use",
                Some(("i-1", "/dev/sdf")),
                "/data/",
                "s1",
            )];
            let p = plan_mount(&v, &seen(&[], &at, &[], &snaps), false);
            assert_eq!(action(&p), "adopt vol-a attached=true");
        }

        #[test]
        fn every_bad_volume_is_reported() {
            let mounted = mountinfo::parse(
                "1 1 7:0 / /a rw - xfs /dev/xvdf rw\n1 1 7:1 / /b rw - xfs /dev/xvdg rw\n",
            );
            let e = plan_mount(
                &[vol("/dev/sdf", "/a", 5), vol("/dev/sdg", "/b", 5)],
                &seen(&mounted, &[], &[], &[]),
                false,
            )
            .unwrap_err();
            assert_eq!(e.len(), 2);
        }

        #[test]
        fn formatting_only_for_empty_sources() {
            let v = [vol("/dev/sdf", "/data", 5)];
            let snaps = vec![snap("s1", "/data", 3, Completed)];
            let p = plan_mount(&v, &seen(&[], &[], &[], &snaps), false).unwrap();
            assert!(!p[0].may_format());
            let p = plan_mount(&v, &seen(&[], &[], &[], &[]), false).unwrap();
            assert!(p[0].may_format());
            let at = vec![ebs(
                "vol-a",
                "in-use",
                Some(("i-1", "/dev/sdf")),
                "/data",
                "snap-1",
            )];
            let p = plan_mount(&v, &seen(&[], &at, &[], &[]), false).unwrap();
            assert!(!p[0].may_format());
        }
    }
}
