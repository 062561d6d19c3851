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
/// On snapshots: the make-snapshots run that started them. Every snapshot
/// of one run shares it (one point in time); 0.2.12's carry none.
pub(crate) const TAG_RUN: &str = "snaptastic:run";
/// On snapshots: how make-snapshots started them, `CreateSnapshots` (one
/// request for the set) or `CreateSnapshot` (one per volume).
pub(crate) const TAG_CALL: &str = "snaptastic:call";
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
        /// The snapshot set (`snaptastic:run`) it belongs to, when the
        /// profile is restored from one: then a pending snapshot that
        /// fails or takes too long is never replaced by one from another
        /// point in time, nor by an empty volume.
        #[serde(skip_serializing_if = "Option::is_none")]
        set: Option<String>,
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
    /// Usable snapshots newer than the chosen one, passed over because
    /// they are not part of the complete set the profile is restored from.
    pub outside_set: Vec<SnapshotInfo>,
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
            set: None,
        },
        (None, Some(c)) => RestoreSource::Snapshot {
            snapshot: c.clone(),
        },
        (None, None) => RestoreSource::Empty,
    };
    Choice {
        source,
        skipped,
        outside_set: Vec::new(),
    }
}

/// Completed, or pending (worth waiting for).
pub(crate) fn usable(s: &SnapshotInfo) -> bool {
    matches!(s.state, SnapshotState::Completed | SnapshotState::Pending)
}

/// Whether a run's snapshot was taken at the run's one moment: started
/// inside the freeze (`consistency=frozen`), or by the one CreateSnapshots
/// of the set (one point in time for every volume even unfrozen). A
/// snapshot of a per-volume call accepted after the thaw, or of an
/// unfrozen per-volume run, is `crash`: its run is not one point in time.
pub(crate) fn one_moment(s: &SnapshotInfo) -> bool {
    s.tag("consistency") != Some("crash") || s.tag(TAG_CALL) == Some("CreateSnapshots")
}

/// Which point in time a profile's volumes are restored from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PointInTime {
    /// Every volume from the snapshots of one make-snapshots run: the
    /// newest run with a usable snapshot of every mount point.
    Set { run: String },
    /// No usable snapshot carries a run tag (snaptastic 0.2.12's history,
    /// or no snapshot at all): each volume from its own newest, as 0.2.12
    /// did.
    NoSets,
    /// Run tags exist but no run covers every mount point (a partial or
    /// failed run, or a volume added since): each volume's own newest
    /// would mix points in time, so it takes `--allow-mixed`.
    Mixed {
        /// The newest run with any usable snapshot of the profile.
        newest_run: String,
        /// Per volume (index into the profile's volumes) that the newest
        /// run lacks: what it has instead.
        lacking: Vec<(usize, String)>,
    },
    /// One volume with snapshots: its newest usable one, whichever tool
    /// or run made it (one volume is always one point in time).
    Newest,
    /// Every volume has snapshots without a run tag (snaptastic 0.2.12's
    /// make-snapshots, still running on some hosts while a fleet
    /// migrates, or after a rollback) newer than the newest complete set:
    /// that generation is the newer point in time, each volume from its
    /// newest such snapshot.
    Generation {
        /// The complete set passed over for it.
        passed_over: String,
    },
    /// Some volumes have newer untagged snapshots than the newest complete
    /// set and others do not: the newest data cannot be restored as one
    /// point in time. Refused without `--set RUN` (the set) or
    /// `--allow-mixed` (each volume's newest).
    Diverged {
        run: String,
        /// Per volume (index) with newer data outside the set: what.
        newer: Vec<(usize, String)>,
    },
}

impl PointInTime {
    /// The `set` column of list-volumes.
    pub(crate) fn label(&self) -> String {
        match self {
            PointInTime::Set { run } => run.clone(),
            PointInTime::NoSets => "0.2.12 (no set)".into(),
            PointInTime::Mixed { .. } | PointInTime::Diverged { .. } => "mixed".into(),
            PointInTime::Newest => "newest (one volume)".into(),
            PointInTime::Generation { .. } => "0.2.12 (newer than the set)".into(),
        }
    }

    /// Why, in one line for the log.
    pub(crate) fn explain(&self) -> String {
        match self {
            PointInTime::Set { run } => format!(
                "restoring from snapshot set {TAG_RUN}={run}: the newest make-snapshots run with a usable snapshot of every mount point"
            ),
            PointInTime::NoSets => format!(
                "no snapshot carries a {TAG_RUN} tag (snaptastic 0.2.12's history): each volume from its own newest snapshot"
            ),
            PointInTime::Mixed { newest_run, .. } => format!(
                "no complete snapshot set (the newest, {TAG_RUN}={newest_run}, lacks some mount points): each volume from its own newest snapshot, points in time differ"
            ),
            PointInTime::Newest => {
                "one volume with snapshots: restoring its newest usable snapshot".into()
            }
            PointInTime::Generation { passed_over } => format!(
                "every volume has snapshots without a {TAG_RUN} tag (snaptastic 0.2.12's) newer than the newest complete set {TAG_RUN}={passed_over}: restoring that newer generation, each volume from its newest"
            ),
            PointInTime::Diverged { run, .. } => format!(
                "some volumes have snapshots newer than the newest complete set {TAG_RUN}={run} and others do not: each volume from its own newest snapshot, points in time differ"
            ),
        }
    }
}

/// The point in time and, per mount point (same order), the choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Points {
    pub point: PointInTime,
    pub choices: Vec<Choice>,
}

/// Choose for all of a profile's mount points at once, so that a
/// multi-volume database never comes back from different moments: the
/// newest complete set (`snaptastic:run` value with a usable snapshot of
/// every mount point) is used for every volume, even when some mount point
/// has a newer snapshot outside it (named in `Choice::outside_set`).
/// Without a complete set: per volume (`choose_snapshot`), as
/// `PointInTime::NoSets` when no usable snapshot carries a run tag, else
/// `PointInTime::Mixed`, which the caller refuses without `--allow-mixed`.
pub(crate) fn choose_points(snapshots: &[SnapshotInfo], mount_points: &[&str]) -> Points {
    choose_points_in(snapshots, mount_points, None)
}

/// `choose_points`, or with `set` (`--set RUN`) that run's snapshots only,
/// when it covers every mount point that has snapshots.
///
/// The newest point in time wins: with one volume, its newest usable
/// snapshot; with several, the newest complete set, unless snapshots
/// without a run tag (snaptastic 0.2.12's) are newer than it for every
/// volume (`Generation`), or for some only (`Diverged`, refused without a
/// flag rather than going back in time silently). Newer snapshots of a
/// run of ours that did not cover every volume (a failed run) do not make
/// a point in time: the set is restored and they are named.
pub(crate) fn choose_points_in(
    snapshots: &[SnapshotInfo],
    mount_points: &[&str],
    set: Option<&str>,
) -> Points {
    let per_mp: Vec<Vec<&SnapshotInfo>> = mount_points
        .iter()
        .map(|mp| {
            snapshots
                .iter()
                .filter(|s| {
                    s.tag("mount_point")
                        .is_some_and(|t| mount_point::same(t, mp))
                })
                .collect()
        })
        .collect();
    let mut tagged: Vec<&SnapshotInfo> = per_mp
        .iter()
        .flatten()
        .copied()
        .filter(|s| usable(s) && s.tag(TAG_RUN).is_some())
        .collect();
    tagged.sort_by(|a, b| newest_first(a, b));
    // A run covers a mount point with a usable snapshot taken at its one
    // moment (a run with a late `crash` member is no point in time).
    let covers = |run: &str, list: &[&SnapshotInfo]| {
        list.iter()
            .any(|s| usable(s) && s.tag(TAG_RUN) == Some(run) && one_moment(s))
    };
    // A mount point with no usable snapshot at all (a volume new to the
    // profile) is created empty whatever set is chosen: it has no point in
    // time to mix, and must not keep the others from their set.
    let has_any = |list: &[&SnapshotInfo]| list.iter().any(|s| usable(s));
    let each_newest = |filter: &dyn Fn(&SnapshotInfo) -> bool| -> Vec<Choice> {
        per_mp
            .iter()
            .zip(mount_points)
            .map(|(list, mp)| {
                let owned: Vec<SnapshotInfo> = list
                    .iter()
                    .filter(|s| filter(s))
                    .map(|s| (*s).clone())
                    .collect();
                choose_snapshot(&owned, mp)
            })
            .collect()
    };
    let live = per_mp.iter().filter(|l| has_any(l)).count();
    // One volume is one point in time, whatever made its newest snapshot.
    if live == 1 && set.is_none() {
        let choices = each_newest(&|_| true);
        let chosen_run = choices.iter().find_map(|c| match &c.source {
            RestoreSource::Snapshot { snapshot } => snapshot.tag(TAG_RUN).map(str::to_string),
            RestoreSource::WaitFor { pending, .. } => pending.tag(TAG_RUN).map(str::to_string),
            RestoreSource::Empty => None,
        });
        let point = match chosen_run {
            Some(run) => PointInTime::Set { run },
            None if tagged.is_empty() => PointInTime::NoSets,
            None => PointInTime::Newest,
        };
        return Points { point, choices };
    }
    // Newest first, so the first complete one is the newest set.
    let complete = tagged
        .iter()
        .filter_map(|s| s.tag(TAG_RUN))
        .filter(|run| set.is_none_or(|want| want == *run))
        .find(|run| {
            per_mp
                .iter()
                .all(|list| !has_any(list) || covers(run, list))
        });

    if let Some(run) = complete {
        let choices = per_mp
            .iter()
            .zip(mount_points)
            .map(|(list, mp)| {
                if !has_any(list) {
                    let owned: Vec<SnapshotInfo> = list.iter().map(|s| (*s).clone()).collect();
                    return choose_snapshot(&owned, mp);
                }
                let in_run: Vec<SnapshotInfo> = list
                    .iter()
                    .filter(|s| s.tag(TAG_RUN) == Some(run) && one_moment(s))
                    .map(|s| (*s).clone())
                    .collect();
                let mut c = choose_snapshot(&in_run, mp);
                let chosen = match &mut c.source {
                    RestoreSource::WaitFor { pending, set, .. } => {
                        *set = Some(run.to_string());
                        pending.clone()
                    }
                    RestoreSource::Snapshot { snapshot } => snapshot.clone(),
                    RestoreSource::Empty => unreachable!("a complete set covers every mount point"),
                };
                let mut newer: Vec<SnapshotInfo> = list
                    .iter()
                    .filter(|s| {
                        usable(s)
                            && s.tag(TAG_RUN) != Some(run)
                            && newest_first(s, &chosen) == Ordering::Less
                    })
                    .map(|s| (*s).clone())
                    .collect();
                newer.sort_by(newest_first);
                c.outside_set = newer;
                c
            })
            .collect::<Vec<Choice>>();
        // Untagged (0.2.12) snapshots newer than the set, per volume.
        let newer_untagged: Vec<(usize, String)> = choices
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let ids: Vec<String> = c
                    .outside_set
                    .iter()
                    .filter(|s| s.tag(TAG_RUN).is_none())
                    .map(|s| s.id.clone())
                    .collect();
                (!ids.is_empty()).then(|| (i, ids.join(", ")))
            })
            .collect();
        if set.is_none() && !newer_untagged.is_empty() {
            let point = if newer_untagged.len() == live {
                PointInTime::Generation {
                    passed_over: run.to_string(),
                }
            } else {
                PointInTime::Diverged {
                    run: run.to_string(),
                    newer: newer_untagged,
                }
            };
            let choices = match point {
                PointInTime::Generation { .. } => each_newest(&|s| s.tag(TAG_RUN).is_none()),
                _ => each_newest(&|_| true),
            };
            return Points { point, choices };
        }
        return Points {
            point: PointInTime::Set {
                run: run.to_string(),
            },
            choices,
        };
    }

    let choices = per_mp
        .iter()
        .zip(mount_points)
        .map(|(list, mp)| {
            let owned: Vec<SnapshotInfo> = list.iter().map(|s| (*s).clone()).collect();
            choose_snapshot(&owned, mp)
        })
        .collect();
    let point = match tagged.first().and_then(|s| s.tag(TAG_RUN)) {
        None => PointInTime::NoSets,
        Some(newest) => {
            let lacking = per_mp
                .iter()
                .enumerate()
                .filter(|(_, list)| has_any(list) && !covers(newest, list))
                .map(|(i, list)| {
                    let in_run: Vec<String> = list
                        .iter()
                        .filter(|s| s.tag(TAG_RUN) == Some(newest))
                        .map(|s| {
                            if one_moment(s) {
                                format!("{} in state {}", s.id, s.state.as_str())
                            } else {
                                format!("{} taken after the thaw (consistency=crash)", s.id)
                            }
                        })
                        .collect();
                    let what = if in_run.is_empty() {
                        "no snapshot in this set".to_string()
                    } else {
                        format!("only {}", in_run.join(", "))
                    };
                    (i, what)
                })
                .collect();
            PointInTime::Mixed {
                newest_run: newest.to_string(),
                lacking,
            }
        }
    };
    Points { point, choices }
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
    let at = |v: &Volume, e: &str| format!("{} ({}): {e}", v.mount_point, v.device);
    for (v, choice) in volumes.iter().zip(points.choices) {
        match plan_one(v, seen, opts, choice) {
            Ok(p) => plans.push(p),
            Err(e) => problems.push(at(v, &e)),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let from_snapshots = |p: &&VolumePlan| {
        matches!(
            p.action,
            MountAction::Create {
                source: RestoreSource::Snapshot { .. } | RestoreSource::WaitFor { .. }
            }
        )
    };
    if let PointInTime::Diverged { run, newer } = &points.point {
        if !opts.allow_mixed
            && plans
                .iter()
                .any(|p| matches!(p.action, MountAction::Create { .. }))
        {
            let have: Vec<&str> = newer
                .iter()
                .map(|(i, _)| volumes[*i].mount_point.as_str())
                .collect();
            return Err(newer
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
                .collect());
        }
    }
    if let PointInTime::Mixed {
        newest_run,
        lacking,
    } = &points.point
    {
        // Only a restore from snapshots mixes points in time; volumes
        // adopted or left mounted do not need the flag.
        if !opts.allow_mixed
            && plans
                .iter()
                .any(|p| matches!(p.action, MountAction::Create { .. }))
        {
            return Err(lacking
                .iter()
                .map(|(i, what)| {
                    at(
                        &volumes[*i],
                        &format!(
                            "not in the newest snapshot set ({TAG_RUN}={newest_run}), which has {what}, and no older set is complete; not restoring volumes from different points in time: pass --allow-mixed to restore each volume from its own newest snapshot"
                        ),
                    )
                })
                .collect());
        }
    }
    // A volume re-attached as unmount-snapshots left it beside others
    // restored from snapshots: say that their points in time differ.
    let readopted: Vec<String> = plans
        .iter()
        .filter_map(|p| match &p.action {
            MountAction::Adopt { volume, .. } if is_detached(volume) => {
                Some(p.volume.mount_point.clone())
            }
            _ => None,
        })
        .collect();
    if !readopted.is_empty() {
        let restored: Vec<String> = plans
            .iter()
            .filter(from_snapshots)
            .map(|p| p.volume.mount_point.clone())
            .collect();
        if !restored.is_empty() {
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
    }
    Ok(MountPlan {
        point: points.point,
        volumes: plans,
    })
}

/// Tagged detached by unmount-snapshots (on purpose, holding live data).
fn is_detached(vol: &VolumeInfo) -> bool {
    vol.tags.get(TAG_STATE).map(String::as_str) == Some(STATE_DETACHED)
}

/// Volumes of this mount point that unmount-snapshots detached (and that
/// nobody attached since), newest first by their `created` tag, then id.
fn detached_for<'a>(seen: &Observed<'a>, mp: &str) -> Vec<&'a VolumeInfo> {
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

fn plan_one(
    v: &Volume,
    seen: &Observed<'_>,
    opts: PlanOptions,
    choice: Choice,
) -> Result<VolumePlan, String> {
    let plan = |action| VolumePlan {
        volume: v.clone(),
        action,
        warnings: Vec::new(),
    };
    if let Some(m) = mountinfo::find(seen.mounts, &v.mount_point) {
        if opts.ignore_mounted {
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
    let near_miss = near_miss_warning(seen.snapshots, &v.mount_point);

    // unmount-snapshots (without --delete) detached a volume of this mount
    // point: it holds the data as of that unmount, newer than any snapshot,
    // so restoring a snapshot instead would silently go back in time.
    // In this AZ it is re-attached; elsewhere it cannot be, and the run
    // stops unless told (--from-snapshot) to restore the snapshot anyway.
    if !opts.from_snapshot {
        let detached = detached_for(seen, &v.mount_point);
        let here =
            |vol: &&&VolumeInfo| vol.availability_zone.as_deref() == Some(seen.availability_zone);
        if let Some(vol) = detached.iter().find(here) {
            let mut p = plan(MountAction::Adopt {
                volume: (*vol).clone(),
                attached: false,
            });
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
            return Ok(p);
        }
        if let Some(vol) = detached.first() {
            return Err(format!(
                "{} (detached by unmount-snapshots, so newer than any snapshot) is in {}, not in this instance's {}: it cannot be attached here; move its data here (snapshot it, or run mount-snapshots on an instance in its AZ), or pass --from-snapshot to restore from the snapshot anyway",
                describe_detached(vol),
                vol.availability_zone.as_deref().unwrap_or("an unknown AZ"),
                seen.availability_zone
            ));
        }
    }

    // A run that crashed (or was killed) between CreateVolume and mount
    // left this one: adopt it if it came from what this run would restore,
    // even while it is still `creating` (the adoption waits for it to be
    // available; creating another would leave two). A leftover from an
    // older source is left for `clean volumes`. Only `restoring`: a volume
    // tagged `attached` that is no longer attached may have been mounted
    // and written to, then detached; restoring it in place of what this
    // run would restore is a choice between two copies of the data, not
    // ours to make. It stays, and `clean volumes` leaves it to
    // `--include-detached`.
    let leftover = seen.ours.iter().find(|vol| {
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
    });
    if let Some(vol) = leftover {
        return Ok(plan(MountAction::Adopt {
            volume: vol.clone(),
            attached: false,
        }));
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
    p.warnings.extend(near_miss);
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
            RestoreSource::WaitFor {
                pending,
                fallback,
                set,
            } => format!(
                "wait {} else {}{}",
                pending.id,
                fallback.as_ref().map_or("empty", |f| f.id.as_str()),
                set.as_ref()
                    .map_or(String::new(), |r| format!(" (set {r})"))
            ),
            RestoreSource::Empty => "empty".into(),
        }
    }

    /// A snapshot of make-snapshots run `run` (or 0.2.12's, without).
    fn in_run(
        id: &str,
        mp: &str,
        hour: u32,
        state: SnapshotState,
        run: Option<&str>,
    ) -> SnapshotInfo {
        let mut s = snap(id, mp, hour, state);
        if let Some(r) = run {
            s.tags.insert(TAG_RUN.into(), r.into());
        }
        s
    }

    /// `s` tagged as taken after the thaw, started by `call`.
    fn crash(mut s: SnapshotInfo, call: &str) -> SnapshotInfo {
        s.tags.insert("consistency".into(), "crash".into());
        s.tags.insert(TAG_CALL.into(), call.into());
        s
    }

    /// `label: choice, choice` with the newer ones passed over in brackets.
    fn points(snaps: &[SnapshotInfo], mps: &[&str]) -> String {
        let p = choose_points(snaps, mps);
        let each: Vec<String> = p
            .choices
            .iter()
            .map(|c| {
                let mut t = chosen(c);
                if !c.outside_set.is_empty() {
                    let ids: Vec<&str> = c.outside_set.iter().map(|s| s.id.as_str()).collect();
                    t.push_str(&format!(" [not {}]", ids.join(" ")));
                }
                t
            })
            .collect();
        let label = match &p.point {
            PointInTime::Mixed {
                newest_run,
                lacking,
            } => format!(
                "mixed (newest {newest_run} lacks {})",
                lacking
                    .iter()
                    .map(|(i, w)| format!("{}: {w}", mps[*i]))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            PointInTime::Diverged { run, newer } => format!(
                "diverged (set {run}; newer untagged {})",
                newer
                    .iter()
                    .map(|(i, w)| format!("{}: {w}", mps[*i]))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            PointInTime::Generation { passed_over } => format!("generation (not {passed_over})"),
            other => other.label(),
        };
        format!("{label}: {}", each.join(", "))
    }

    #[test]
    fn one_volume_always_gets_its_newest_usable_snapshot() {
        let r = |id: &str, hour: u32, state, run: &str| in_run(id, "/a", hour, state, Some(run));
        let legacy = |id: &str, hour: u32, state| in_run(id, "/a", hour, state, None);
        let cases: Vec<(&str, Vec<SnapshotInfo>, &str)> = vec![
            (
                "a 0.2.12 snapshot a week newer than our set",
                vec![r("a1", 1, Completed, "r1"), legacy("a0", 9, Completed)],
                "newest (one volume): a0",
            ),
            (
                "our newest",
                vec![legacy("a0", 1, Completed), r("a1", 9, Completed, "r1")],
                "r1: a1",
            ),
            (
                "a newer one in error is passed over",
                vec![r("a1", 1, Completed, "r1"), legacy("a0", 9, Error)],
                "r1: a1",
            ),
            (
                "only 0.2.12's",
                vec![legacy("a0", 1, Completed)],
                "0.2.12 (no set): a0",
            ),
        ];
        for (name, snaps, want) in cases {
            // A second mount point with no snapshot does not change it.
            assert_eq!(
                points(&snaps, &["/a", "/new"]).replace(", empty", ""),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn points_in_time_do_not_mix() {
        let r = |id: &str, mp: &str, hour: u32, state, run: &str| {
            in_run(id, mp, hour, state, Some(run))
        };
        let legacy = |id: &str, mp: &str, hour: u32, state| in_run(id, mp, hour, state, None);
        let ab = ["/a", "/b"];
        let cases: Vec<(&str, Vec<SnapshotInfo>, &str)> = vec![
            (
                "nothing at all: per volume, no set",
                vec![],
                "0.2.12 (no set): empty, empty",
            ),
            (
                "pure 0.2.12 history: per volume as before",
                vec![
                    legacy("a1", "/a", 1, Completed),
                    legacy("b1", "/b", 2, Completed),
                ],
                "0.2.12 (no set): a1, b1",
            ),
            (
                "one complete set",
                vec![
                    r("a1", "/a", 1, Completed, "r1"),
                    r("b1", "/b", 1, Completed, "r1"),
                ],
                "r1: a1, b1",
            ),
            (
                "the newest complete set wins over older ones",
                vec![
                    r("a1", "/a", 1, Completed, "r1"),
                    r("b1", "/b", 1, Completed, "r1"),
                    r("a2", "/a", 2, Completed, "r2"),
                    r("b2", "/b", 2, Completed, "r2"),
                ],
                "r2: a2, b2",
            ),
            (
                "a failed run (no snapshot of /b): the earlier complete set, newer /a named",
                vec![
                    r("a1", "/a", 1, Completed, "r1"),
                    r("b1", "/b", 1, Completed, "r1"),
                    r("a2", "/a", 2, Completed, "r2"),
                ],
                "r1: a1 [not a2], b1",
            ),
            (
                "a run whose /b snapshot is in error is not complete",
                vec![
                    r("a1", "/a", 1, Completed, "r1"),
                    r("b1", "/b", 1, Completed, "r1"),
                    r("a2", "/a", 2, Completed, "r2"),
                    r("b2", "/b", 2, Error, "r2"),
                ],
                "r1: a1 [not a2], b1",
            ),
            (
                "a pending member is waited for, never falling back elsewhere",
                vec![
                    r("a1", "/a", 1, Completed, "r1"),
                    r("b1", "/b", 1, Completed, "r1"),
                    r("a2", "/a", 2, Completed, "r2"),
                    r("b2", "/b", 2, Pending, "r2"),
                ],
                "r2: a2, wait b2 else empty (set r2)",
            ),
            (
                "a newer 0.2.12 snapshot of one volume only: diverged, each volume's newest (refused without a flag)",
                vec![
                    r("a1", "/a", 1, Completed, "r1"),
                    r("b1", "/b", 1, Completed, "r1"),
                    legacy("a0", "/a", 3, Completed),
                ],
                "diverged (set r1; newer untagged /a: a0): a0, b1",
            ),
            (
                "a newer 0.2.12 generation of every volume: that generation wins",
                vec![
                    r("a1", "/a", 1, Completed, "r1"),
                    r("b1", "/b", 1, Completed, "r1"),
                    legacy("a0", "/a", 3, Completed),
                    legacy("b0", "/b", 3, Completed),
                ],
                "generation (not r1): a0, b0",
            ),
            (
                "a 0.2.12 generation newer than an older set but older than the newest set: the newest set",
                vec![
                    r("a1", "/a", 1, Completed, "r1"),
                    r("b1", "/b", 1, Completed, "r1"),
                    legacy("a0", "/a", 2, Completed),
                    legacy("b0", "/b", 2, Completed),
                    r("a3", "/a", 3, Completed, "r3"),
                    r("b3", "/b", 3, Completed, "r3"),
                ],
                "r3: a3, b3",
            ),
            (
                "older 0.2.12 snapshots beside a set are not named",
                vec![
                    legacy("a0", "/a", 0, Completed),
                    r("a1", "/a", 1, Completed, "r1"),
                    r("b1", "/b", 1, Completed, "r1"),
                ],
                "r1: a1, b1",
            ),
            (
                "no complete set, run tags present: mixed, per volume",
                vec![
                    legacy("b0", "/b", 0, Completed),
                    r("a2", "/a", 2, Completed, "r2"),
                    r("b2", "/b", 2, Error, "r2"),
                ],
                "mixed (newest r2 lacks /b: only b2 in state error): a2, b0",
            ),
            (
                "a volume added since the last run (no snapshot at all): the set, and empty",
                vec![r("a1", "/a", 1, Completed, "r1")],
                "r1: a1, empty",
            ),
            (
                "a volume with snapshots, none in the newest run: mixed",
                vec![
                    r("a1", "/a", 1, Completed, "r1"),
                    legacy("b0", "/b", 0, Completed),
                ],
                "mixed (newest r1 lacks /b: no snapshot in this set): a1, b0",
            ),
            (
                "a per-volume run with a member accepted after the thaw is no point in time",
                vec![
                    r("a1", "/a", 1, Completed, "r1"),
                    r("b1", "/b", 1, Completed, "r1"),
                    r("a2", "/a", 2, Completed, "r2"),
                    crash(r("b2", "/b", 2, Completed, "r2"), "CreateSnapshot"),
                ],
                "r1: a1 [not a2], b1 [not b2]",
            ),
            (
                "an unfrozen set of one CreateSnapshots is one point in time",
                vec![
                    r("a1", "/a", 1, Completed, "r1"),
                    r("b1", "/b", 1, Completed, "r1"),
                    crash(r("a2", "/a", 2, Completed, "r2"), "CreateSnapshots"),
                    crash(r("b2", "/b", 2, Completed, "r2"), "CreateSnapshots"),
                ],
                "r2: a2, b2",
            ),
            (
                "run tags only on unusable snapshots: 0.2.12 history",
                vec![
                    legacy("a0", "/a", 0, Completed),
                    legacy("b0", "/b", 0, Completed),
                    r("a2", "/a", 2, Error, "r2"),
                ],
                "0.2.12 (no set): a0, b0",
            ),
        ];
        for (name, snaps, want) in cases {
            assert_eq!(points(&snaps, &ab), want, "{name}");
            let reversed: Vec<_> = snaps.into_iter().rev().collect();
            assert_eq!(points(&reversed, &ab), want, "{name}, reversed");
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
                availability_zone: Some("az-1".into()),
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
                    ("instance_id".to_string(), "i-1".to_string()),
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
                availability_zone: "az-1",
                mounts,
                attached,
                ours,
                snapshots,
            }
        }

        fn ignoring(ignore_mounted: bool) -> PlanOptions<'static> {
            PlanOptions {
                ignore_mounted,
                ..PlanOptions::default()
            }
        }

        fn action(p: &Result<MountPlan, Vec<String>>) -> String {
            match p {
                Ok(p) => match &p.volumes[0].action {
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
                ("detached on purpose, a snapshot exists: newer data, re-attached", seen(&[], &[], &detached, &snaps), false, "adopt vol-d attached=false"),
                ("detached on purpose, no snapshot", seen(&[], &[], &detached, &[]), false, "adopt vol-d attached=false"),
                ("size smaller than the snapshot", seen(&[], &[], &[], &big), false, "error: /data (/dev/sdf): size 5 GiB is smaller than snapshot s2 (50 GiB); set size = 50 or more"),
            ];
            for (name, seen, ignore, want) in cases {
                assert_eq!(
                    action(&plan_mount(&v, &seen, ignoring(ignore))),
                    want,
                    "{name}"
                );
            }
        }

        #[test]
        fn near_identical_tags_warn_in_the_plan() {
            let v = [vol("/dev/sdf", "/data", 5)];
            let snaps = vec![snap("s1", "/Data", 3, Completed)];
            let p = plan_mount(&v, &seen(&[], &[], &[], &snaps), ignoring(false))
                .unwrap()
                .volumes;
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
            let p = plan_mount(&v, &seen(&[], &at, &[], &snaps), ignoring(false));
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
                ignoring(false),
            )
            .unwrap_err();
            assert_eq!(e.len(), 2);
        }

        fn detached_vol(id: &str, az: &str, created: &str, instance: &str) -> VolumeInfo {
            let mut d = ebs(id, "available", None, "/a", "s1");
            d.availability_zone = Some(az.into());
            d.tags.insert(TAG_STATE.into(), STATE_DETACHED.into());
            d.tags.insert("created".into(), created.into());
            d.tags.insert("instance_id".into(), instance.into());
            d
        }

        fn actions(p: &Result<MountPlan, Vec<String>>) -> Vec<String> {
            match p {
                Ok(p) => p
                    .volumes
                    .iter()
                    .map(|v| {
                        action(&Ok(MountPlan {
                            point: p.point.clone(),
                            volumes: vec![v.clone()],
                        }))
                    })
                    .collect(),
                Err(e) => e.iter().map(|l| format!("error: {l}")).collect(),
            }
        }

        #[test]
        fn a_failed_run_restores_the_earlier_complete_set_or_is_refused() {
            let v = [vol("/dev/sdf", "/a", 5), vol("/dev/sdg", "/b", 5)];
            let run = |id: &str, mp: &str, hour: u32, state, r: &str| {
                in_run(id, mp, hour, state, Some(r))
            };
            // r2 failed on /b; r1 is complete.
            let snaps = vec![
                run("a1", "/a", 1, Completed, "r1"),
                run("b1", "/b", 1, Completed, "r1"),
                run("a2", "/a", 2, Completed, "r2"),
            ];
            let p = plan_mount(&v, &seen(&[], &[], &[], &snaps), ignoring(false));
            assert_eq!(actions(&p), ["create from a1", "create from b1"]);
            let p = p.unwrap();
            assert_eq!(p.point, PointInTime::Set { run: "r1".into() });
            assert!(
                p.volumes[0].warnings.iter().any(|w| w.contains(
                    "newer snapshot(s) a2 (snaptastic:run=r2) not used: not part of a snapshot set complete for every mount point"
                )),
                "{:?}",
                p.volumes[0].warnings
            );
            assert!(
                p.volumes[1].warnings.is_empty(),
                "{:?}",
                p.volumes[1].warnings
            );

            // No complete set (the only run lacks /b, which has 0.2.12's).
            let mixed = vec![
                in_run("b0", "/b", 0, Completed, None),
                run("a2", "/a", 2, Completed, "r2"),
                run("b2", "/b", 2, Error, "r2"),
            ];
            let p = plan_mount(&v, &seen(&[], &[], &[], &mixed), ignoring(false));
            assert_eq!(
                actions(&p),
                ["error: /b (/dev/sdg): not in the newest snapshot set (snaptastic:run=r2), which has only b2 in state error, and no older set is complete; not restoring volumes from different points in time: pass --allow-mixed to restore each volume from its own newest snapshot"]
            );
            let allow = PlanOptions {
                allow_mixed: true,
                ..PlanOptions::default()
            };
            let p = plan_mount(&v, &seen(&[], &[], &[], &mixed), allow);
            assert_eq!(actions(&p), ["create from a2", "create from b0"]);
            assert_eq!(p.unwrap().point.label(), "mixed");

            // Mixed history, but nothing is restored from snapshots (both
            // mounted and left alone): no flag needed.
            let mounted = mountinfo::parse(
                "1 1 7:0 / /a rw - xfs /dev/xvdf rw\n1 1 7:1 / /b rw - xfs /dev/xvdg rw\n",
            );
            let p = plan_mount(&v, &seen(&mounted, &[], &[], &mixed), ignoring(true));
            assert_eq!(actions(&p), ["skip /dev/xvdf", "skip /dev/xvdg"]);

            // Pure 0.2.12 history: per volume, no flag.
            let legacy = vec![
                in_run("a0", "/a", 0, Completed, None),
                in_run("b0", "/b", 3, Completed, None),
            ];
            let p = plan_mount(&v, &seen(&[], &[], &[], &legacy), ignoring(false));
            assert_eq!(actions(&p), ["create from a0", "create from b0"]);
            assert_eq!(p.unwrap().point, PointInTime::NoSets);
        }

        #[test]
        fn a_detached_volume_is_never_silently_replaced_by_an_older_snapshot() {
            let v = [vol("/dev/sdf", "/a", 5)];
            let snaps = vec![snap("s1", "/a", 3, Completed)];
            let older = detached_vol("vol-old", "az-1", "2026-11-01 01:00:00", "i-9");
            let newer = detached_vol("vol-new", "az-1", "2026-11-02 01:00:00", "i-9");
            let far = detached_vol("vol-far", "az-2", "2026-11-03 01:00:00", "i-8");
            let mut other_mp = detached_vol("vol-b", "az-1", "2026-11-04 01:00:00", "i-1");
            other_mp.tags.insert("mount_point".into(), "/b".into());
            let mut attached_elsewhere = newer.clone();
            attached_elsewhere.id = "vol-used".into();
            attached_elsewhere.state = "in-use".into();
            let from_snapshot = PlanOptions {
                from_snapshot: true,
                ..PlanOptions::default()
            };
            let cases: Vec<(&str, Vec<VolumeInfo>, PlanOptions, &str)> = vec![
                ("detached on another instance, this AZ", vec![older.clone()], ignoring(false), "adopt vol-old attached=false"),
                ("several here: the newest by created", vec![older.clone(), newer.clone()], ignoring(false), "adopt vol-new attached=false"),
                ("one here beats a newer one elsewhere", vec![far.clone(), older.clone()], ignoring(false), "adopt vol-old attached=false"),
                ("only in another AZ: stop", vec![far.clone()], ignoring(false), "error: /a (/dev/sdf): vol-far (created 2026-11-03 01:00:00, last on i-8) (detached by unmount-snapshots, so newer than any snapshot) is in az-2, not in this instance's az-1: it cannot be attached here; move its data here (snapshot it, or run mount-snapshots on an instance in its AZ), or pass --from-snapshot to restore from the snapshot anyway"),
                ("another AZ with --from-snapshot", vec![far.clone()], from_snapshot, "create from s1"),
                ("this AZ with --from-snapshot", vec![newer.clone()], from_snapshot, "create from s1"),
                ("another mount point's is not ours", vec![other_mp], ignoring(false), "create from s1"),
                ("in use again is not adopted", vec![attached_elsewhere], ignoring(false), "create from s1"),
            ];
            for (name, ours, opts, want) in cases {
                let p = plan_mount(&v, &seen(&[], &[], &ours, &snaps), opts);
                assert_eq!(action(&p), want, "{name}");
            }
            let p = plan_mount(
                &v,
                &seen(&[], &[], &[newer.clone(), older], &snaps),
                ignoring(false),
            )
            .unwrap();
            assert!(
                p.volumes[0]
                    .warnings
                    .iter()
                    .any(|w| w
                        .contains("re-attaching vol-new detached by an earlier unmount-snapshots"))
                    && p.volumes[0]
                        .warnings
                        .iter()
                        .any(|w| w.contains("left alone: vol-old")),
                "{:?}",
                p.volumes[0].warnings
            );

            // Re-attached beside a volume restored from a snapshot: said.
            let two = [vol("/dev/sdf", "/a", 5), vol("/dev/sdg", "/b", 5)];
            let snaps = vec![
                snap("s1", "/a", 3, Completed),
                snap("sb", "/b", 3, Completed),
            ];
            let p = plan_mount(&two, &seen(&[], &[], &[newer], &snaps), ignoring(false)).unwrap();
            assert!(
                p.volumes[0]
                    .warnings
                    .iter()
                    .any(|w| w.contains("while /b come(s) from snapshots")),
                "{:?}",
                p.volumes[0].warnings
            );
        }

        #[test]
        fn a_leftover_still_creating_is_adopted_not_duplicated() {
            let v = [vol("/dev/sdf", "/data", 5)];
            let snaps = vec![snap("s1", "/data", 3, Completed)];
            let creating = |source: &str, instance: &str| {
                let mut l = ebs("vol-c", "creating", None, "/data", source);
                l.tags.insert(TAG_STATE.into(), STATE_RESTORING.into());
                l.tags.insert("instance_id".into(), instance.into());
                l
            };
            let cases: Vec<(&str, VolumeInfo, &str)> = vec![
                (
                    "ours, creating, same source",
                    creating("s1", "i-1"),
                    "adopt vol-c attached=false",
                ),
                ("another source", creating("s0", "i-1"), "create from s1"),
                (
                    "another instance's",
                    creating("s1", "i-2"),
                    "create from s1",
                ),
                (
                    "in error",
                    {
                        let mut e = creating("s1", "i-1");
                        e.state = "error".into();
                        e
                    },
                    "create from s1",
                ),
            ];
            for (name, left, want) in cases {
                let ours = [left];
                let p = plan_mount(&v, &seen(&[], &[], &ours, &snaps), ignoring(false));
                assert_eq!(action(&p), want, "{name}");
            }
            // Empty volumes too (first boot killed during creation).
            let ours = [creating(SOURCE_EMPTY, "i-1")];
            let p = plan_mount(&v, &seen(&[], &[], &ours, &[]), ignoring(false));
            assert_eq!(action(&p), "adopt vol-c attached=false");
        }

        #[test]
        fn formatting_only_for_empty_sources() {
            let v = [vol("/dev/sdf", "/data", 5)];
            let snaps = vec![snap("s1", "/data", 3, Completed)];
            let p = plan_mount(&v, &seen(&[], &[], &[], &snaps), ignoring(false))
                .unwrap()
                .volumes;
            assert!(!p[0].may_format());
            let p = plan_mount(&v, &seen(&[], &[], &[], &[]), ignoring(false))
                .unwrap()
                .volumes;
            assert!(p[0].may_format());
            let at = vec![ebs(
                "vol-a",
                "in-use",
                Some(("i-1", "/dev/sdf")),
                "/data",
                "snap-1",
            )];
            let p = plan_mount(&v, &seen(&[], &at, &[], &[]), ignoring(false))
                .unwrap()
                .volumes;
            assert!(!p[0].may_format());
        }
    }
}
