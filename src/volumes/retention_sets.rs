//! Retention by snapshot set (`snaptastic:run`): what ranking each mount
//! point's snapshots on its own cannot see. Pure, like `retention.rs`.
//!
//! - A snapshot of a run of ours with no `mount_point` tag: a set member
//!   whose post-thaw tag could not be written, or a late stray of a set cut
//!   short (what a CreateSnapshots that returned after the deadline made of
//!   a volume that is not a target, tagged `consistency=crash`). No mount
//!   point ranks it and a restore never finds it, so judged alone it was
//!   kept forever. It follows its set instead: kept while a snapshot of the
//!   set that has a mount point is kept, deleted once all of those go.
//! - `clean` off the host, where the profile's mount points are unknown:
//!   which set a restore would use depends on them, so each set of mount
//!   points this profile's runs covered is tried. A mount point only
//!   others' snapshots name (or an old one of ours) then cannot make the
//!   newest complete set look incomplete and leave it unprotected.

use std::collections::{BTreeMap, BTreeSet};

use super::points::{
    choose_points, choose_points_in, newest_first, one_moment, usable, Choice, PointInTime,
    RestoreSource,
};
use super::tags::TAG_RUN;
use super::verdict::Verdict;
use crate::cloud::{SnapshotInfo, SnapshotState};
use crate::config::mount_point::normalize;

/// Where a run's snapshots that have a mount point stand, each judged on
/// its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Standing {
    /// At least one is kept: the newest such, `id` of `mount_point`, for `why`.
    Kept {
        id: String,
        mount_point: String,
        why: String,
    },
    /// All of them go: the newest, `id` of `mount_point`, for `why`.
    Gone {
        id: String,
        mount_point: String,
        why: String,
    },
}

/// The run of a snapshot that no mount point ranks (it has no
/// `mount_point` tag), if it has one.
pub(crate) fn orphan_run(s: &SnapshotInfo) -> Option<&str> {
    match s.tag("mount_point") {
        Some(_) => None,
        None => s.tag(TAG_RUN),
    }
}

/// Each run's standing, from the verdicts on our snapshots (`None`: not
/// ours, which never speaks for a set of ours). A snapshot in state error
/// does not speak for its set either: it goes whatever the set does.
pub(crate) fn standings(
    snapshots: &[SnapshotInfo],
    own: &[Option<&Verdict>],
) -> BTreeMap<String, Standing> {
    let mut members: BTreeMap<&str, Vec<(&SnapshotInfo, &Verdict)>> = BTreeMap::new();
    for (s, v) in snapshots.iter().zip(own) {
        let (Some(v), Some(run), Some(_)) = (v, s.tag(TAG_RUN), s.tag("mount_point")) else {
            continue;
        };
        if s.state != SnapshotState::Error {
            members.entry(run).or_default().push((s, v));
        }
    }
    members
        .into_iter()
        .map(|(run, mut list)| {
            list.sort_by(|a, b| newest_first(a.0, b.0));
            let (s, v) = list
                .iter()
                .find(|(_, v)| matches!(v, Verdict::Keep(_)))
                .unwrap_or(&list[0]);
            let (id, mount_point, why) = (
                s.id.clone(),
                s.tag("mount_point").unwrap_or_default().to_string(),
                v.reason().to_string(),
            );
            let standing = match v {
                Verdict::Keep(_) => Standing::Kept {
                    id,
                    mount_point,
                    why,
                },
                Verdict::Delete(_) => Standing::Gone {
                    id,
                    mount_point,
                    why,
                },
            };
            (run.to_string(), standing)
        })
        .collect()
}

/// The verdict on a snapshot of ours without a `mount_point` tag, of
/// `run`: by its set's `standing`, or, when no snapshot of the set has a
/// mount point (every tag failed), `by_age`: its own age and `expires`
/// tag (which the set's snapshots share from their creation).
pub(crate) fn orphan_verdict(
    s: &SnapshotInfo,
    run: &str,
    standing: Option<&Standing>,
    in_images: &BTreeSet<String>,
    by_age: impl FnOnce() -> Verdict,
) -> Verdict {
    let lead = format!("no mount_point tag, of snapshot set {TAG_RUN}={run}");
    match &s.state {
        SnapshotState::Completed => {}
        SnapshotState::Pending => return Verdict::Keep(format!("{lead}, pending")),
        SnapshotState::Error => return Verdict::Delete(format!("{lead}, in state error")),
        SnapshotState::Other(st) => return Verdict::Keep(format!("{lead}, in state {st}")),
    }
    if in_images.contains(&s.id) {
        return Verdict::Keep(format!("{lead}, used by an AMI"));
    }
    match standing {
        Some(Standing::Kept {
            id,
            mount_point,
            why,
        }) => Verdict::Keep(format!(
            "{lead}: kept with its set, whose {id} of {mount_point} is kept ({why})"
        )),
        Some(Standing::Gone {
            id,
            mount_point,
            why,
        }) => Verdict::Delete(format!(
            "{lead}: its set goes ({id} of {mount_point}: {why})"
        )),
        None => match by_age() {
            Verdict::Keep(why) => Verdict::Keep(format!(
                "{lead}, in which no snapshot has a mount point: {why}"
            )),
            Verdict::Delete(why) => Verdict::Delete(format!(
                "{lead}, in which no snapshot has a mount point: {why}"
            )),
        },
    }
}

/// The snapshots mount-snapshots would restore now, chosen as it chooses
/// (one point in time for the mount points, from the same lookup): kept
/// whatever their age. `ours` says which of `snapshots` are this
/// profile's (`retention::is_ours`). The mount points are the profile's
/// (`profile_mps`) when its volumes resolve here; off the host, each set
/// of them [`possible_mount_points`] finds is tried.
pub(crate) fn restore_uses(
    snapshots: &[SnapshotInfo],
    ours: &[bool],
    profile_mps: Option<&BTreeSet<String>>,
) -> BTreeSet<String> {
    let tries = match profile_mps {
        Some(mps) => BTreeSet::from([mps.clone()]),
        None => possible_mount_points(
            snapshots
                .iter()
                .zip(ours)
                .filter(|(_, ours)| **ours)
                .map(|(s, _)| s),
        ),
    };
    tries
        .iter()
        .flat_map(|mps| uses_for(snapshots, mps))
        .collect()
}

/// Off the host: the sets of mount points this profile may have. Each
/// that one of our runs covered at its one moment (for which that run may
/// be the newest complete set), and all that our snapshots name (what
/// 0.2.12's history is restored by). Never mount points only others'
/// snapshots name.
fn possible_mount_points<'a>(
    ours: impl Iterator<Item = &'a SnapshotInfo>,
) -> BTreeSet<BTreeSet<String>> {
    let mut all = BTreeSet::new();
    let mut by_run: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for s in ours {
        let Some(mp) = s.tag("mount_point").map(normalize) else {
            continue;
        };
        all.insert(mp.clone());
        if let Some(run) = s.tag(TAG_RUN).filter(|_| usable(s) && one_moment(s)) {
            by_run.entry(run).or_default().insert(mp);
        }
    }
    let mut out: BTreeSet<BTreeSet<String>> = by_run.into_values().collect();
    if !all.is_empty() {
        out.insert(all);
    }
    out
}

/// What a restore of these mount points would use. When it would refuse
/// because some volumes have newer 0.2.12 snapshots than the newest
/// complete set (`Diverged`), that set too: `--set RUN` restores it.
fn uses_for(snapshots: &[SnapshotInfo], mps: &BTreeSet<String>) -> BTreeSet<String> {
    let mps: Vec<&str> = mps.iter().map(String::as_str).collect();
    let points = choose_points(snapshots, &mps);
    let mut ids = chosen(points.choices);
    if let PointInTime::Diverged { run, .. } = &points.point {
        ids.extend(chosen(choose_points_in(snapshots, &mps, Some(run)).choices));
    }
    ids
}

fn chosen(choices: Vec<Choice>) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for c in choices {
        match c.source {
            RestoreSource::Snapshot { snapshot } => {
                ids.insert(snapshot.id);
            }
            RestoreSource::WaitFor {
                pending, fallback, ..
            } => {
                ids.insert(pending.id);
                ids.extend(fallback.map(|f| f.id));
            }
            RestoreSource::Empty => {}
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};

    use super::super::retention::{plan_snapshot_cleanup, Owner, SnapshotRules};
    use super::super::tags::{TAG_CALL, TAG_PROFILE};
    use super::*;

    const OLD: &str = "2026-11-01 00:00:00";
    const FUTURE: &str = "2027-01-01 00:00:00";

    fn at(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap() + chrono::Duration::hours(h)
    }

    /// A snapshot made at `hour` for profile db by run `run` (`None`: by
    /// 0.2.12, no run), of `mp` if it has that tag, with more tags.
    fn snap(
        id: &str,
        hour: i64,
        run: Option<&str>,
        mp: Option<&str>,
        expires: &str,
        more: &[(&str, &str)],
    ) -> SnapshotInfo {
        let mut tags = BTreeMap::from([
            (TAG_PROFILE.to_string(), "db".to_string()),
            ("expires".to_string(), expires.to_string()),
            ("consistency".to_string(), "frozen".to_string()),
            (TAG_CALL.to_string(), "CreateSnapshots".to_string()),
        ]);
        tags.extend(run.map(|r| (TAG_RUN.to_string(), r.to_string())));
        tags.extend(mp.map(|m| ("mount_point".to_string(), m.to_string())));
        for (k, v) in more {
            tags.insert(k.to_string(), v.to_string());
        }
        SnapshotInfo {
            id: id.into(),
            volume_id: Some(format!("vol-{id}")),
            state: SnapshotState::Completed,
            start_time: Some(at(hour)),
            size_gib: Some(1),
            progress: None,
            description: String::new(),
            tags,
            storage_tier: None,
            data_bytes: None,
        }
    }

    /// A late stray of a set cut short: no mount point, tagged crash.
    fn stray(id: &str, hour: i64, run: &str, expires: &str) -> SnapshotInfo {
        snap(
            id,
            hour,
            Some(run),
            None,
            expires,
            &[("consistency", "crash")],
        )
    }

    fn owner() -> Owner {
        Owner::new("db", &[("role".to_string(), "r".to_string())])
    }

    /// Sorted "id keep|delete: reason" lines, without the "ours (…), "
    /// every reason of ours starts with.
    fn lines(snaps: &[SnapshotInfo], rules: SnapshotRules, images: &[&str]) -> Vec<String> {
        let images = images.iter().map(|s| s.to_string()).collect();
        let ours: Vec<bool> = snaps
            .iter()
            .map(|s| super::super::retention::is_ours(s, &owner()))
            .collect();
        let mps = BTreeSet::from(["/a".to_string(), "/b".to_string()]);
        let uses = restore_uses(snaps, &ours, Some(&mps));
        let mut v: Vec<String> =
            plan_snapshot_cleanup(snaps, &owner(), &images, &uses, rules, at(48))
                .into_iter()
                .map(|(s, v)| {
                    let (word, why) = match v {
                        Verdict::Keep(r) => ("keep", r),
                        Verdict::Delete(r) => ("delete", r),
                    };
                    format!(
                        "{} {word}: {}",
                        s.id,
                        why.replacen("ours (snaptastic:profile=db), ", "", 1)
                    )
                })
                .collect();
        v.sort();
        v
    }

    #[test]
    fn orphans_are_kept_while_their_set_is_and_go_with_it() {
        let snaps = vec![
            // r1: expired, superseded by r2: goes whole, its orphans too.
            snap("a1", 1, Some("r1"), Some("/a"), OLD, &[]),
            snap("b1", 1, Some("r1"), Some("/b"), OLD, &[]),
            snap("o1", 1, Some("r1"), None, OLD, &[]),
            stray("s1", 1, "r1", OLD),
            // r2: expired, but the newest: kept, its orphans with it
            // (whatever their own expires says).
            snap("a2", 2, Some("r2"), Some("/a"), OLD, &[]),
            snap("b2", 2, Some("r2"), Some("/b"), OLD, &[]),
            snap("o2", 2, Some("r2"), None, OLD, &[]),
            stray("s2", 2, "r2", OLD),
            // Another profile's orphan of the same run id: never ours.
            snap("pg", 1, Some("r1"), None, OLD, &[(TAG_PROFILE, "pg")]),
        ];
        assert_eq!(
            lines(&snaps, SnapshotRules::default(), &[]),
            [
                "a1 delete: expired 2026-11-01 00:00:00",
                "a2 keep: newest completed of /a: a restore would use it",
                "b1 delete: expired 2026-11-01 00:00:00",
                "b2 keep: newest completed of /b: a restore would use it",
                "o1 delete: no mount_point tag, of snapshot set snaptastic:run=r1: its set goes (b1 of /b: expired 2026-11-01 00:00:00)",
                "o2 keep: no mount_point tag, of snapshot set snaptastic:run=r2: kept with its set, whose b2 of /b is kept (newest completed of /b: a restore would use it)",
                "pg keep: another profile's (snaptastic:profile=pg)",
                "s1 delete: no mount_point tag, of snapshot set snaptastic:run=r1: its set goes (b1 of /b: expired 2026-11-01 00:00:00)",
                "s2 keep: no mount_point tag, of snapshot set snaptastic:run=r2: kept with its set, whose b2 of /b is kept (newest completed of /b: a restore would use it)",
            ]
        );
    }

    #[test]
    fn a_set_is_kept_by_any_of_its_snapshots_and_goes_by_any_rule() {
        let snaps = vec![
            // r1 is the newest complete set (r2 and r3 failed for /b): a
            // restore uses it, so it is kept, its orphan too.
            snap("a1", 1, Some("r1"), Some("/a"), OLD, &[]),
            snap("b1", 1, Some("r1"), Some("/b"), OLD, &[]),
            snap("o1", 1, Some("r1"), None, OLD, &[]),
            // r2 is kept while it has not expired (or by --keep-last).
            snap("a2", 2, Some("r2"), Some("/a"), FUTURE, &[]),
            snap("o2", 2, Some("r2"), None, FUTURE, &[]),
            snap("a3", 3, Some("r3"), Some("/a"), FUTURE, &[]),
        ];
        let got = lines(&snaps, SnapshotRules::default(), &[]);
        assert!(
            got.contains(&"o1 keep: no mount_point tag, of snapshot set snaptastic:run=r1: kept with its set, whose b1 of /b is kept (newest completed of /b: a restore would use it)".to_string()),
            "{got:#?}"
        );
        assert!(
            got.contains(&"o2 keep: no mount_point tag, of snapshot set snaptastic:run=r2: kept with its set, whose a2 of /a is kept (expires 2027-01-01 00:00:00)".to_string()),
            "{got:#?}"
        );
        let rules = SnapshotRules {
            keep_last: None,
            older_than: Some(std::time::Duration::from_secs(3600)),
        };
        let got = lines(&snaps, rules, &[]);
        assert!(
            got.contains(&"o2 delete: no mount_point tag, of snapshot set snaptastic:run=r2: its set goes (a2 of /a: older than 1h (1day 22h old))".to_string()),
            "{got:#?}"
        );
        // --keep-last keeps r2 (and so its orphan) again.
        let rules = SnapshotRules {
            keep_last: Some(3),
            ..rules
        };
        let got = lines(&snaps, rules, &[]);
        assert!(
            got.contains(&"o2 keep: no mount_point tag, of snapshot set snaptastic:run=r2: kept with its set, whose a2 of /a is kept (one of the 3 newest of /a)".to_string()),
            "{got:#?}"
        );
    }

    #[test]
    fn orphans_of_a_set_without_mount_points_go_by_their_own_tags() {
        let mut pending = snap("p", 5, Some("r9"), None, OLD, &[]);
        pending.state = SnapshotState::Pending;
        let mut failed = snap("e", 5, Some("r9"), None, FUTURE, &[]);
        failed.state = SnapshotState::Error;
        let snaps = vec![
            snap("a1", 1, Some("r1"), Some("/a"), OLD, &[]),
            snap("n1", 2, Some("r5"), None, OLD, &[]),
            snap("n2", 2, Some("r5"), None, FUTURE, &[]),
            snap("ami", 2, Some("r6"), None, OLD, &[]),
            pending,
            failed,
            // A failed member does not speak for its set.
            {
                let mut s = snap("ae", 3, Some("r7"), Some("/a"), OLD, &[]);
                s.state = SnapshotState::Error;
                s
            },
            snap("o7", 3, Some("r7"), None, FUTURE, &[]),
        ];
        assert_eq!(
            lines(&snaps, SnapshotRules::default(), &["ami"]),
            [
                "a1 keep: newest completed of /a: a restore would use it",
                "ae delete: in state error",
                "ami keep: no mount_point tag, of snapshot set snaptastic:run=r6, used by an AMI",
                "e delete: no mount_point tag, of snapshot set snaptastic:run=r9, in state error",
                "n1 delete: no mount_point tag, of snapshot set snaptastic:run=r5, in which no snapshot has a mount point: expired 2026-11-01 00:00:00",
                "n2 keep: no mount_point tag, of snapshot set snaptastic:run=r5, in which no snapshot has a mount point: expires 2027-01-01 00:00:00",
                "o7 keep: no mount_point tag, of snapshot set snaptastic:run=r7, in which no snapshot has a mount point: expires 2027-01-01 00:00:00",
                "p keep: no mount_point tag, of snapshot set snaptastic:run=r9, pending",
            ]
        );
    }

    /// What `clean` off the host protects as what a restore would use.
    fn off_host_uses(snaps: &[SnapshotInfo]) -> BTreeSet<String> {
        let ours: Vec<bool> = snaps
            .iter()
            .map(|s| super::super::retention::is_ours(s, &owner()))
            .collect();
        restore_uses(snaps, &ours, None)
    }

    #[test]
    fn off_the_host_a_stray_mount_point_leaves_the_newest_complete_set_protected() {
        // r1 is the newest complete set of /a and /b; r2, newer, failed
        // for /b. A restore on the host uses r1 for both.
        let mut snaps = vec![
            snap("a1", 1, Some("r1"), Some("/a"), OLD, &[]),
            snap("b1", 1, Some("r1"), Some("/b"), OLD, &[]),
            snap("a2", 2, Some("r2"), Some("/a"), OLD, &[]),
        ];
        let mps = BTreeSet::from(["/a".to_string(), "/b".to_string()]);
        let on_host = restore_uses(&snaps, &[true; 3], Some(&mps));
        assert_eq!(on_host, BTreeSet::from(["a1".into(), "b1".into()]));
        // Off the host also r2's /a (the newest of a one-volume profile).
        assert!(off_host_uses(&snaps).is_superset(&on_host));
        // Strays sharing the filter tags: another profile's mount point,
        // and one of an older run of ours (a mount point since dropped).
        snaps.push(snap(
            "x",
            3,
            Some("rx"),
            Some("/x"),
            OLD,
            &[(TAG_PROFILE, "pg")],
        ));
        snaps.push(snap("a0", 0, Some("r0"), Some("/a"), OLD, &[]));
        snaps.push(snap("b0", 0, Some("r0"), Some("/b"), OLD, &[]));
        snaps.push(snap("old0", 0, Some("r0"), Some("/old"), OLD, &[]));
        let uses = off_host_uses(&snaps);
        for id in ["a1", "b1"] {
            assert!(uses.contains(id), "{id} unprotected: {uses:?}");
        }
        // r0 may be the newest complete set of a profile that still has
        // /old: kept off the host (on it, the profile says).
        for id in ["a0", "b0", "old0"] {
            assert!(uses.contains(id), "{id} unprotected: {uses:?}");
        }
        assert!(!restore_uses(&snaps, &[true; 7], Some(&mps)).contains("a0"));
        // The other profile's is never what decides ours.
        assert!(!uses.contains("x"), "{uses:?}");
    }

    #[test]
    fn a_set_a_restore_refuses_for_is_kept_for_set_run() {
        // /a has a newer 0.2.12 snapshot than set r1, /b not: a restore
        // refuses and offers --set r1, so r1 stays whole.
        let legacy = |id: &str, hour, mp| {
            let mut s = snap(id, hour, None, Some(mp), OLD, &[]);
            s.tags.remove(TAG_PROFILE);
            s
        };
        let snaps = vec![
            snap("a1", 1, Some("r1"), Some("/a"), OLD, &[]),
            snap("b1", 1, Some("r1"), Some("/b"), OLD, &[]),
            legacy("a-new", 2, "/a"),
        ];
        let mps = BTreeSet::from(["/a".to_string(), "/b".to_string()]);
        let uses = restore_uses(&snaps, &[true; 3], Some(&mps));
        assert_eq!(
            uses,
            BTreeSet::from(["a-new".into(), "a1".into(), "b1".into()])
        );
    }
}
