use super::*;
use crate::cloud::SnapshotState::*;
use crate::volumes::fixtures::{chosen, crash, in_run, snap};

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
    let r =
        |id: &str, mp: &str, hour: u32, state, run: &str| in_run(id, mp, hour, state, Some(run));
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

#[test]
fn an_archived_snapshot_is_never_a_restore_source() {
    let mut archived = in_run("a2", "/a", 9, Completed, Some("r2"));
    archived.storage_tier = Some("archive".into());
    let older = in_run("a1", "/a", 1, Completed, Some("r1"));
    let snaps = vec![archived.clone(), older];
    assert_eq!(points(&snaps, &["/a"]), "r1: a1");
    let c = choose_snapshot(&snaps, "/a");
    assert_eq!(chosen(&c), "a1");
    assert_eq!(c.skipped, vec![archived.clone()]);
    assert_eq!(
        unusable_reason(&archived),
        "in the archive tier (a restore from there takes 24-72 hours)"
    );
    // Alone, it leaves the volume to be created empty, never restored
    // from the archive.
    assert_eq!(chosen(&choose_snapshot(&[archived], "/a")), "empty");
}
