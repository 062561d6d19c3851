//! Which point in time a profile's volumes come back from, and which
//! snapshot each mount point is restored from: pure decisions over the
//! snapshots a command listed. mount-snapshots, list-volumes, clean and
//! retention all choose through here, so they agree.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Serialize;

use super::tags::{parse_python_timestamp, TAG_CALL, TAG_RUN};
use crate::cloud::{SnapshotInfo, SnapshotState};
use crate::config::mount_point;

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
        /// Boxed: two snapshots inline would make every choice that large.
        fallback: Option<Box<SnapshotInfo>>,
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
/// `error` and archived skipped, never falling back past a pending snapshot without
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
        if s.archived() {
            skipped.push(s.clone());
            continue;
        }
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
            fallback: fallback.cloned().map(Box::new),
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

/// Completed, or pending (worth waiting for), and not archived.
pub(crate) fn usable(s: &SnapshotInfo) -> bool {
    matches!(s.state, SnapshotState::Completed | SnapshotState::Pending) && !s.archived()
}

/// Why a snapshot that is not `usable` is passed over.
pub(crate) fn unusable_reason(s: &SnapshotInfo) -> String {
    if s.archived() {
        "in the archive tier (a restore from there takes 24-72 hours)".to_string()
    } else {
        format!("in state {}", s.state.as_str())
    }
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
    let c = Candidates::new(snapshots, mount_points);
    // One volume is one point in time, whatever made its newest snapshot.
    if c.live() == 1 && set.is_none() {
        return c.one_volume();
    }
    match c.newest_complete_set(set) {
        Some(run) => c.with_set(run, set.is_some()),
        None => c.without_set(),
    }
}

/// A profile's snapshots, per mount point (same order).
struct Candidates<'a> {
    mount_points: &'a [&'a str],
    per_mp: Vec<Vec<&'a SnapshotInfo>>,
    /// Usable snapshots with a run tag, newest first.
    tagged: Vec<&'a SnapshotInfo>,
}

impl<'a> Candidates<'a> {
    fn new(snapshots: &'a [SnapshotInfo], mount_points: &'a [&'a str]) -> Self {
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
        Candidates {
            mount_points,
            per_mp,
            tagged,
        }
    }

    /// A mount point with no usable snapshot at all (a volume new to the
    /// profile) is created empty whatever set is chosen: it has no point
    /// in time to mix, and must not keep the others from their set.
    fn has_any(list: &[&SnapshotInfo]) -> bool {
        list.iter().any(|s| usable(s))
    }

    /// Mount points with a usable snapshot.
    fn live(&self) -> usize {
        self.per_mp.iter().filter(|l| Self::has_any(l)).count()
    }

    /// A run covers a mount point with a usable snapshot taken at its one
    /// moment (a run with a late `crash` member is no point in time).
    fn covers(run: &str, list: &[&SnapshotInfo]) -> bool {
        list.iter()
            .any(|s| usable(s) && s.tag(TAG_RUN) == Some(run) && one_moment(s))
    }

    /// The newest run (or the one asked for) that covers every mount
    /// point with snapshots.
    fn newest_complete_set(&self, set: Option<&str>) -> Option<&'a str> {
        self.tagged
            .iter()
            .filter_map(|s| s.tag(TAG_RUN))
            .filter(|run| set.is_none_or(|want| want == *run))
            .find(|run| {
                self.per_mp
                    .iter()
                    .all(|list| !Self::has_any(list) || Self::covers(run, list))
            })
    }

    /// Each mount point's own newest among the snapshots `filter` keeps.
    fn each_newest(&self, filter: &dyn Fn(&SnapshotInfo) -> bool) -> Vec<Choice> {
        self.per_mp
            .iter()
            .zip(self.mount_points)
            .map(|(list, mp)| {
                let owned: Vec<SnapshotInfo> = list
                    .iter()
                    .filter(|s| filter(s))
                    .map(|s| (*s).clone())
                    .collect();
                choose_snapshot(&owned, mp)
            })
            .collect()
    }

    /// One volume with snapshots: its newest usable one.
    fn one_volume(&self) -> Points {
        let choices = self.each_newest(&|_| true);
        let chosen_run = choices.iter().find_map(|c| match &c.source {
            RestoreSource::Snapshot { snapshot } => snapshot.tag(TAG_RUN).map(str::to_string),
            RestoreSource::WaitFor { pending, .. } => pending.tag(TAG_RUN).map(str::to_string),
            RestoreSource::Empty => None,
        });
        let point = match chosen_run {
            Some(run) => PointInTime::Set { run },
            None if self.tagged.is_empty() => PointInTime::NoSets,
            None => PointInTime::Newest,
        };
        Points { point, choices }
    }

    /// The set `run`, unless snapshots without a run tag are newer than
    /// it (`Generation` for every volume, `Diverged` for some); `asked`:
    /// the operator named it (`--set`), so it is used as it is.
    fn with_set(&self, run: &str, asked: bool) -> Points {
        let choices: Vec<Choice> = self
            .per_mp
            .iter()
            .zip(self.mount_points)
            .map(|(list, mp)| Self::set_member(list, mp, run))
            .collect();
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
        if asked || newer_untagged.is_empty() {
            return Points {
                point: PointInTime::Set {
                    run: run.to_string(),
                },
                choices,
            };
        }
        if newer_untagged.len() == self.live() {
            return Points {
                point: PointInTime::Generation {
                    passed_over: run.to_string(),
                },
                choices: self.each_newest(&|s| s.tag(TAG_RUN).is_none()),
            };
        }
        Points {
            point: PointInTime::Diverged {
                run: run.to_string(),
                newer: newer_untagged,
            },
            choices: self.each_newest(&|_| true),
        }
    }

    /// One mount point from the set `run`, with the newer usable
    /// snapshots outside it named.
    fn set_member(list: &[&SnapshotInfo], mp: &str, run: &str) -> Choice {
        if !Self::has_any(list) {
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
    }

    /// No complete set: each volume its own newest, as `NoSets` when no
    /// usable snapshot carries a run tag, else `Mixed`, naming what the
    /// newest run lacks.
    fn without_set(&self) -> Points {
        let choices = self.each_newest(&|_| true);
        let point = match self.tagged.first().and_then(|s| s.tag(TAG_RUN)) {
            None => PointInTime::NoSets,
            Some(newest) => PointInTime::Mixed {
                newest_run: newest.to_string(),
                lacking: self.lacking(newest),
            },
        };
        Points { point, choices }
    }

    /// Per mount point that run `newest` does not cover: what it has of it.
    fn lacking(&self, newest: &str) -> Vec<(usize, String)> {
        self.per_mp
            .iter()
            .enumerate()
            .filter(|(_, list)| Self::has_any(list) && !Self::covers(newest, list))
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
            .collect()
    }
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

#[cfg(test)]
#[path = "points_tests.rs"]
mod tests;
