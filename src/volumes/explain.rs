//! Why each mount point comes back from what it does, in one line: the
//! rule that chose its snapshot (or an empty volume, or a volume kept),
//! then every newer snapshot passed over, each with its reason (in error,
//! a run that is no point in time, a run that lacks a volume, 0.2.12's
//! outside the set). `mount-snapshots --dry-run` and `list-volumes` print
//! it, so an operator sees from the plan alone that newer data exists and
//! why it does not come back. Pure: it reads what `plan` decided.

use std::cmp::Ordering;

use serde::Serialize;

use super::plan::MountAction;
use super::points::{
    newest_first, one_moment, unusable_reason, usable, PointInTime, RestoreSource,
};
use super::tags::{SOURCE_EMPTY, STATE_DETACHED, TAG_RUN, TAG_SOURCE, TAG_STATE};
use crate::cloud::SnapshotInfo;
use crate::config::mount_point;

/// The flags of mount-snapshots that change the reasons (list-volumes
/// has none: there a refused choice says which flag would take it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flags<'a> {
    pub allow_mixed: bool,
    pub set: Option<&'a str>,
    pub from_snapshot: bool,
}

/// Something newer than the choice that is not used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct PassedOver {
    /// A snapshot id (or a detached volume's, with `--from-snapshot`).
    pub id: String,
    pub reason: String,
}

/// Why one mount point's choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Why {
    pub reason: String,
    /// Snapshots newest first, then any detached volume `--from-snapshot`
    /// passed over.
    pub passed_over: Vec<PassedOver>,
}

impl Why {
    /// The one line: the reason, then what newer data was passed over.
    pub(crate) fn line(&self) -> String {
        if self.passed_over.is_empty() {
            return self.reason.clone();
        }
        let each: Vec<String> = self
            .passed_over
            .iter()
            .map(|p| format!("{} ({})", p.id, p.reason))
            .collect();
        format!("{}; newer passed over: {}", self.reason, each.join(", "))
    }

    fn only(reason: impl Into<String>) -> Why {
        Why {
            reason: reason.into(),
            passed_over: Vec::new(),
        }
    }
}

/// What the reasons are drawn from: the profile's snapshots per mount
/// point and the point in time `points::choose_points_in` chose.
pub(crate) struct Explainer<'a> {
    point: &'a PointInTime,
    mount_points: &'a [&'a str],
    per_mp: Vec<Vec<&'a SnapshotInfo>>,
    flags: Flags<'a>,
    /// Per mount point: volumes unmount-snapshots detached (newer data),
    /// passed over by `--from-snapshot`.
    detached: Vec<Vec<String>>,
}

impl<'a> Explainer<'a> {
    pub(crate) fn new(
        snapshots: &'a [SnapshotInfo],
        mount_points: &'a [&'a str],
        point: &'a PointInTime,
        flags: Flags<'a>,
    ) -> Explainer<'a> {
        let per_mp = mount_points
            .iter()
            .map(|mp| {
                let mut list: Vec<&SnapshotInfo> = snapshots
                    .iter()
                    .filter(|s| {
                        s.tag("mount_point")
                            .is_some_and(|t| mount_point::same(t, mp))
                    })
                    .collect();
                list.sort_by(|a, b| newest_first(a, b));
                list
            })
            .collect();
        Explainer {
            point,
            mount_points,
            per_mp,
            flags,
            detached: vec![Vec::new(); mount_points.len()],
        }
    }

    /// The volumes unmount-snapshots detached, per mount point (same
    /// order), that `--from-snapshot` passes over.
    pub(crate) fn with_detached(mut self, detached: Vec<Vec<String>>) -> Explainer<'a> {
        if detached.len() == self.mount_points.len() {
            self.detached = detached;
        }
        self
    }

    /// Why mount point `i` comes from `source`, and what newer data of it
    /// is not used.
    pub(crate) fn source(&self, i: usize, source: &RestoreSource) -> Why {
        let chosen = match source {
            RestoreSource::Snapshot { snapshot } => Some(snapshot),
            RestoreSource::WaitFor { pending, .. } => Some(pending),
            RestoreSource::Empty => None,
        };
        let reason = match chosen {
            Some(c) => self.rule(c) + &crash_note(c),
            None if self.per_mp[i].is_empty() => {
                "no snapshot of this mount point exists: created empty".to_string()
            }
            None => "no usable snapshot of this mount point: created empty".to_string(),
        };
        let newer = |s: &&&SnapshotInfo| {
            chosen.is_none_or(|c| s.id != c.id && newest_first(s, c) == Ordering::Less)
        };
        let mut passed_over: Vec<PassedOver> = self.per_mp[i]
            .iter()
            .filter(newer)
            .map(|s| PassedOver {
                id: s.id.clone(),
                reason: self.passed_reason(s),
            })
            .collect();
        if self.flags.from_snapshot {
            passed_over.extend(
                self.detached[i].iter().map(|id| PassedOver {
                    id: id.clone(),
                    reason:
                        "detached by unmount-snapshots, newer than any snapshot: --from-snapshot"
                            .into(),
                }),
            );
        }
        Why {
            reason,
            passed_over,
        }
    }

    /// Why mount-snapshots does `action` for mount point `i`.
    pub(crate) fn action(&self, i: usize, action: &MountAction) -> Why {
        match action {
            MountAction::Skip { .. } => Why::only("already mounted: left alone (--ignore-mounted)"),
            MountAction::Finish { .. } => Why::only(
                "mounted here by an earlier run of this profile: checked, tagged mounted if it was cut short, left as it is",
            ),
            MountAction::Create { source } => self.source(i, source),
            MountAction::Adopt { attached: true, .. } => Why::only(
                "a volume of this mount point is already attached here at its device: kept with its data",
            ),
            MountAction::Adopt { volume, .. }
                if volume.tags.get(TAG_STATE).map(String::as_str) == Some(STATE_DETACHED) =>
            {
                Why::only(
                    "detached by unmount-snapshots, so newer than any snapshot (--from-snapshot restores a snapshot instead)",
                )
            }
            MountAction::Adopt { volume, .. } => {
                // A crash leftover from what this run would restore: the
                // reason is that source's.
                let from = volume.tags.get(TAG_SOURCE).map_or("", String::as_str);
                let source = match self.per_mp[i].iter().find(|s| s.id == from) {
                    Some(s) => RestoreSource::Snapshot {
                        snapshot: (*s).clone(),
                    },
                    None => RestoreSource::Empty,
                };
                let mut why = self.source(i, &source);
                let what = if from == SOURCE_EMPTY { "empty" } else { from };
                why.reason = format!(
                    "left by an earlier run, created from {what}: adopted, not duplicated; {}",
                    why.reason
                );
                why
            }
        }
    }

    /// The rule that chose snapshot `c`.
    fn rule(&self, c: &SnapshotInfo) -> String {
        let names = |list: &[(usize, String)]| -> String {
            list.iter()
                .map(|(j, _)| self.mount_points[*j])
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self.point {
            PointInTime::Set { run } if self.flags.set == Some(run.as_str()) => {
                format!("set {TAG_RUN}={run}{}, asked for (--set {run})", moment(c))
            }
            PointInTime::Set { run } if self.live() == 1 => format!(
                "its newest usable snapshot ({TAG_RUN}={run}): one volume is one point in time"
            ),
            PointInTime::Set { run } => format!(
                "newest complete set {TAG_RUN}={run}{}: one point in time",
                moment(c)
            ),
            PointInTime::Newest => format!(
                "its newest usable snapshot, 0.2.12's (no {TAG_RUN}): one volume is one point in time"
            ),
            PointInTime::NoSets => format!(
                "its newest snapshot: none carries {TAG_RUN} (0.2.12's history), each volume from its own newest"
            ),
            PointInTime::Generation { passed_over } => format!(
                "newest 0.2.12 snapshot (no {TAG_RUN}): every volume has one newer than set {TAG_RUN}={passed_over}, which is passed over"
            ),
            PointInTime::Diverged { run, newer } => {
                let why = format!(
                    "0.2.12 snapshots newer than set {TAG_RUN}={run} on {} only",
                    names(newer)
                );
                if self.flags.allow_mixed {
                    format!("each volume's own newest (--allow-mixed): {why}, points in time differ")
                } else {
                    format!(
                        "refused without a flag: {why}, so --set {run} restores the set, --allow-mixed each volume's own newest (shown)"
                    )
                }
            }
            PointInTime::Mixed {
                newest_run,
                lacking,
            } => {
                let why = format!(
                    "no complete set, the newest {TAG_RUN}={newest_run} lacks {}",
                    names(lacking)
                );
                if self.flags.allow_mixed {
                    format!("each volume's own newest (--allow-mixed): {why}, points in time differ")
                } else {
                    format!(
                        "refused without a flag: {why}, so --allow-mixed restores each volume's own newest (shown)"
                    )
                }
            }
        }
    }

    /// Why a snapshot newer than the choice is not used.
    fn passed_reason(&self, s: &SnapshotInfo) -> String {
        if !usable(s) {
            return unusable_reason(s);
        }
        let Some(run) = s.tag(TAG_RUN) else {
            return match self.point {
                PointInTime::Set { run } => format!("0.2.12's, no {TAG_RUN}: outside set {run}"),
                _ => format!("0.2.12's, no {TAG_RUN}"),
            };
        };
        if !one_moment(s) {
            return format!(
                "run {run} cut short or unfrozen: consistency=crash, one call per volume, not one point in time"
            );
        }
        if let Some((mp, late)) = self.late_member(run) {
            return format!(
                "run {run} cut short or unfrozen: {mp}'s {late} is consistency=crash, one call per volume, not one point in time"
            );
        }
        let lacks = self.lacking(run);
        if !lacks.is_empty() {
            return format!("run {run} incomplete: lacks {}", lacks.join(", "));
        }
        match self.flags.set {
            Some(want) if want != run => format!("run {run}: not the set asked for (--set {want})"),
            _ => format!("run {run}: not chosen"),
        }
    }

    /// Mount points with a usable snapshot (the others start empty
    /// whatever is chosen).
    fn live(&self) -> usize {
        self.per_mp
            .iter()
            .filter(|l| l.iter().any(|s| usable(s)))
            .count()
    }

    /// A snapshot of `run` not taken at the run's one moment: the run is
    /// no point in time.
    fn late_member(&self, run: &str) -> Option<(&str, &str)> {
        self.per_mp
            .iter()
            .zip(self.mount_points)
            .find_map(|(l, mp)| {
                l.iter()
                    .find(|s| s.tag(TAG_RUN) == Some(run) && !one_moment(s))
                    .map(|s| (*mp, s.id.as_str()))
            })
    }

    /// The mount points (with usable snapshots) that `run` has no usable
    /// snapshot of, with what it has there instead.
    fn lacking(&self, run: &str) -> Vec<String> {
        self.per_mp
            .iter()
            .zip(self.mount_points)
            .filter(|(l, _)| l.iter().any(|s| usable(s)))
            .filter_map(|(l, mp)| {
                let of_run: Vec<&&SnapshotInfo> =
                    l.iter().filter(|s| s.tag(TAG_RUN) == Some(run)).collect();
                if of_run.iter().any(|s| usable(s)) {
                    return None;
                }
                let what: Vec<String> = of_run
                    .iter()
                    .map(|s| format!("{} {}", s.id, unusable_reason(s)))
                    .collect();
                Some(if what.is_empty() {
                    mp.to_string()
                } else {
                    format!("{mp}: {}", what.join(", "))
                })
            })
            .collect()
    }
}

/// Said of a chosen snapshot that is no point in time with the rest of
/// its run (each volume's own newest, or one volume's newest, may be one):
/// its data is crash-consistent, not frozen.
fn crash_note(c: &SnapshotInfo) -> String {
    match c.tag(TAG_RUN) {
        Some(run) if !one_moment(c) => {
            format!("; itself of run {run}, cut short or unfrozen (consistency=crash)")
        }
        _ => String::new(),
    }
}

/// How a set's snapshot was taken, for its reason.
fn moment(c: &SnapshotInfo) -> &'static str {
    match c.tag("consistency") {
        Some("frozen") => ", frozen",
        Some("crash") => ", one CreateSnapshots (unfrozen)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::{SnapshotState, VolumeInfo};
    use crate::volumes::fixtures::snap;
    use crate::volumes::points::choose_points_in;
    use crate::volumes::tags::{STATE_RESTORING, TAG_CALL};
    use SnapshotState::*;

    /// A snapshot of 0.2.12's make-snapshots: no run, no consistency.
    fn legacy(id: &str, mp: &str, hour: u32) -> SnapshotInfo {
        snap(id, mp, hour, Completed)
    }

    /// A snapshot of our run `run`, frozen, one call per volume.
    fn ours(id: &str, mp: &str, hour: u32, run: &str) -> SnapshotInfo {
        let mut s = snap(id, mp, hour, Completed);
        for (k, v) in [
            (TAG_RUN, run),
            ("consistency", "frozen"),
            (TAG_CALL, "CreateSnapshot"),
        ] {
            s.tags.insert(k.into(), v.into());
        }
        s
    }

    /// Accepted after the thaw of a per-volume run.
    fn crash(mut s: SnapshotInfo) -> SnapshotInfo {
        s.tags.insert("consistency".into(), "crash".into());
        s
    }

    fn failed(mut s: SnapshotInfo) -> SnapshotInfo {
        s.state = Error;
        s
    }

    /// Each mount point's line, as the plan chooses.
    fn lines(snaps: &[SnapshotInfo], mps: &[&str], flags: Flags<'_>) -> Vec<String> {
        let points = choose_points_in(snaps, mps, flags.set);
        let e = Explainer::new(snaps, mps, &points.point, flags);
        points
            .choices
            .iter()
            .enumerate()
            .map(|(i, c)| e.source(i, &c.source).line())
            .collect()
    }

    const AB: [&str; 2] = ["/a", "/b"];

    fn mixed() -> Flags<'static> {
        Flags {
            allow_mixed: true,
            ..Flags::default()
        }
    }

    #[test]
    fn the_newest_complete_set() {
        let snaps = [
            legacy("a0", "/a", 0),
            ours("a1", "/a", 1, "r1"),
            ours("b1", "/b", 1, "r1"),
        ];
        assert_eq!(
            lines(&snaps, &AB, Flags::default()),
            [
                "newest complete set snaptastic:run=r1, frozen: one point in time",
                "newest complete set snaptastic:run=r1, frozen: one point in time",
            ]
        );
        // One CreateSnapshots is one moment even unfrozen: said so.
        let set = |id: &str, mp: &str| {
            let mut s = crash(ours(id, mp, 1, "r1"));
            s.tags.insert(TAG_CALL.into(), "CreateSnapshots".into());
            s
        };
        assert_eq!(
            lines(&[set("a1", "/a"), set("b1", "/b")], &AB, Flags::default())[0],
            "newest complete set snaptastic:run=r1, one CreateSnapshots (unfrozen): one point in time"
        );
    }

    #[test]
    fn one_volume_gets_its_newest_whatever_made_it() {
        let snaps = [ours("a1", "/a", 1, "r1"), legacy("a0", "/a", 9)];
        assert_eq!(
            lines(&snaps, &["/a"], Flags::default()),
            ["its newest usable snapshot, 0.2.12's (no snaptastic:run): one volume is one point in time"]
        );
        let snaps = [
            legacy("a0", "/a", 1),
            ours("a1", "/a", 2, "r1"),
            failed(ours("a2", "/a", 3, "r2")),
        ];
        assert_eq!(
            lines(&snaps, &["/a", "/new"], Flags::default()),
            [
                "its newest usable snapshot (snaptastic:run=r1): one volume is one point in time; newer passed over: a2 (in state error)",
                "no snapshot of this mount point exists: created empty",
            ]
        );
    }

    #[test]
    fn a_newer_0_2_12_generation_passes_over_the_set() {
        let snaps = [
            ours("a1", "/a", 1, "r1"),
            ours("b1", "/b", 1, "r1"),
            legacy("a0", "/a", 3),
            legacy("b0", "/b", 4),
        ];
        let want = "newest 0.2.12 snapshot (no snaptastic:run): every volume has one newer than set snaptastic:run=r1, which is passed over";
        assert_eq!(lines(&snaps, &AB, Flags::default()), [want, want]);
    }

    #[test]
    fn diverged_is_refused_or_mixed_or_the_set_asked_for() {
        let snaps = [
            ours("a1", "/a", 1, "r1"),
            ours("b1", "/b", 1, "r1"),
            legacy("a0", "/a", 3),
        ];
        // list-volumes (no flag): what mount-snapshots would say.
        assert_eq!(
            lines(&snaps, &AB, Flags::default())[0],
            "refused without a flag: 0.2.12 snapshots newer than set snaptastic:run=r1 on /a only, so --set r1 restores the set, --allow-mixed each volume's own newest (shown)"
        );
        assert_eq!(
            lines(&snaps, &AB, mixed()),
            [
                "each volume's own newest (--allow-mixed): 0.2.12 snapshots newer than set snaptastic:run=r1 on /a only, points in time differ",
                "each volume's own newest (--allow-mixed): 0.2.12 snapshots newer than set snaptastic:run=r1 on /a only, points in time differ",
            ]
        );
        let set = Flags {
            set: Some("r1"),
            ..Flags::default()
        };
        assert_eq!(
            lines(&snaps, &AB, set),
            [
                "set snaptastic:run=r1, frozen, asked for (--set r1); newer passed over: a0 (0.2.12's, no snaptastic:run: outside set r1)",
                "set snaptastic:run=r1, frozen, asked for (--set r1)",
            ]
        );
    }

    #[test]
    fn a_cut_short_run_is_passed_over_naming_its_late_snapshot() {
        let snaps = [
            ours("a1", "/a", 1, "r1"),
            ours("b1", "/b", 1, "r1"),
            ours("a2", "/a", 2, "r2"),
            crash(ours("b2", "/b", 2, "r2")),
        ];
        assert_eq!(
            lines(&snaps, &AB, Flags::default()),
            [
                "newest complete set snaptastic:run=r1, frozen: one point in time; newer passed over: a2 (run r2 cut short or unfrozen: /b's b2 is consistency=crash, one call per volume, not one point in time)",
                "newest complete set snaptastic:run=r1, frozen: one point in time; newer passed over: b2 (run r2 cut short or unfrozen: consistency=crash, one call per volume, not one point in time)",
            ]
        );
    }

    #[test]
    fn an_incomplete_run_is_passed_over_naming_what_it_lacks() {
        let snaps = [
            ours("a1", "/a", 1, "r1"),
            ours("b1", "/b", 1, "r1"),
            ours("a2", "/a", 2, "r2"),
            ours("a3", "/a", 3, "r3"),
            failed(ours("b3", "/b", 3, "r3")),
        ];
        assert_eq!(
            lines(&snaps, &AB, Flags::default()),
            [
                "newest complete set snaptastic:run=r1, frozen: one point in time; newer passed over: a3 (run r3 incomplete: lacks /b: b3 in state error), a2 (run r2 incomplete: lacks /b)",
                "newest complete set snaptastic:run=r1, frozen: one point in time; newer passed over: b3 (in state error)",
            ]
        );
    }

    #[test]
    fn a_crash_snapshot_chosen_as_a_volume_s_own_newest_says_so() {
        let snaps = [
            ours("a1", "/a", 1, "r1"),
            ours("b1", "/b", 1, "r1"),
            legacy("a0", "/a", 3),
            crash(ours("b2", "/b", 2, "r2")),
        ];
        assert_eq!(
            lines(&snaps, &AB, mixed())[1],
            "each volume's own newest (--allow-mixed): 0.2.12 snapshots newer than set snaptastic:run=r1 on /a only, points in time differ; itself of run r2, cut short or unfrozen (consistency=crash)"
        );
        assert_eq!(
            lines(&[crash(ours("a2", "/a", 2, "r2"))], &["/a"], Flags::default()),
            ["its newest usable snapshot (snaptastic:run=r2): one volume is one point in time; itself of run r2, cut short or unfrozen (consistency=crash)"]
        );
    }

    #[test]
    fn no_complete_set_is_refused_or_mixed() {
        let snaps = [
            legacy("b0", "/b", 0),
            ours("a2", "/a", 2, "r2"),
            failed(ours("b2", "/b", 2, "r2")),
        ];
        assert_eq!(
            lines(&snaps, &AB, Flags::default())[1],
            "refused without a flag: no complete set, the newest snaptastic:run=r2 lacks /b, so --allow-mixed restores each volume's own newest (shown); newer passed over: b2 (in state error)"
        );
        assert_eq!(
            lines(&snaps, &AB, mixed())[0],
            "each volume's own newest (--allow-mixed): no complete set, the newest snaptastic:run=r2 lacks /b, points in time differ"
        );
    }

    #[test]
    fn history_without_runs_and_empty_volumes() {
        let snaps = [legacy("a0", "/a", 0), failed(legacy("b0", "/b", 1))];
        assert_eq!(
            lines(&snaps, &AB, Flags::default()),
            [
                "its newest snapshot: none carries snaptastic:run (0.2.12's history), each volume from its own newest",
                "no usable snapshot of this mount point: created empty; newer passed over: b0 (in state error)",
            ]
        );
        assert_eq!(
            lines(&[], &["/a"], Flags::default()),
            ["no snapshot of this mount point exists: created empty"]
        );
    }

    fn volume(id: &str, tags: &[(&str, &str)]) -> VolumeInfo {
        VolumeInfo {
            id: id.into(),
            state: "available".into(),
            size_gib: Some(5),
            volume_type: None,
            iops: None,
            availability_zone: None,
            attachments: Vec::new(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            fast_restored: None,
            init_rate: None,
        }
    }

    #[test]
    fn actions_other_than_a_restore_say_why_too() {
        let snaps = [legacy("a0", "/a", 0), legacy("a1", "/a", 1)];
        let point = PointInTime::NoSets;
        let e = Explainer::new(&snaps, &["/a"], &point, Flags::default());
        let why = |a: MountAction| e.action(0, &a).line();
        assert_eq!(
            why(MountAction::Skip {
                mounted_from: "/dev/xvdf".into()
            }),
            "already mounted: left alone (--ignore-mounted)"
        );
        assert_eq!(
            why(MountAction::Adopt {
                volume: volume("vol-d", &[(TAG_STATE, STATE_DETACHED)]),
                attached: false,
            }),
            "detached by unmount-snapshots, so newer than any snapshot (--from-snapshot restores a snapshot instead)"
        );
        assert_eq!(
            why(MountAction::Adopt {
                volume: volume("vol-c", &[(TAG_STATE, STATE_RESTORING), (TAG_SOURCE, "a0")]),
                attached: false,
            }),
            "left by an earlier run, created from a0: adopted, not duplicated; its newest snapshot: none carries snaptastic:run (0.2.12's history), each volume from its own newest; newer passed over: a1 (0.2.12's, no snaptastic:run)"
        );
        // --from-snapshot passes over a detached volume: named.
        let flags = Flags {
            from_snapshot: true,
            ..Flags::default()
        };
        let e = Explainer::new(&snaps, &["/a"], &point, flags)
            .with_detached(vec![vec!["vol-far".into()]]);
        let restore = MountAction::Create {
            source: RestoreSource::Snapshot {
                snapshot: snaps[1].clone(),
            },
        };
        assert_eq!(
            e.action(0, &restore).line(),
            "its newest snapshot: none carries snaptastic:run (0.2.12's history), each volume from its own newest; newer passed over: vol-far (detached by unmount-snapshots, newer than any snapshot: --from-snapshot)"
        );
    }
}
