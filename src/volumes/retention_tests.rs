use chrono::TimeZone;

use super::*;
use crate::volumes::tags::{STATE_ATTACHED, STATE_MOUNTED};

fn at(h: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap() + chrono::Duration::hours(h)
}

fn snap(
    id: &str,
    mp: Option<&str>,
    hour: i64,
    state: SnapshotState,
    expires: Option<&str>,
) -> SnapshotInfo {
    // Ours unless a test says otherwise (see `only_ours_go`).
    let mut tags = BTreeMap::from([(TAG_PROFILE.to_string(), "db".to_string())]);
    if let Some(mp) = mp {
        tags.insert("mount_point".to_string(), mp.to_string());
    }
    if let Some(e) = expires {
        tags.insert("expires".to_string(), e.to_string());
    }
    SnapshotInfo {
        id: id.into(),
        volume_id: None,
        state,
        start_time: Some(at(hour)),
        size_gib: Some(1),
        progress: None,
        description: String::new(),
        tags,
        storage_tier: None,
        data_bytes: None,
    }
}

const OLD: &str = "2026-11-01 00:00:00";
const FUTURE: &str = "2027-01-01 00:00:00.123456";
use SnapshotState::*;

fn owner() -> Owner {
    let filters: Vec<(String, String)> = [("role", "r"), ("cluster", "c"), ("environment", "e")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Owner::new("db", &filters)
}

/// Sorted "id keep|delete: reason" lines.
fn plan_lines(snaps: &[SnapshotInfo], rules: SnapshotRules, images: &[&str]) -> Vec<String> {
    let images = images.iter().map(|s| s.to_string()).collect();
    let mut v: Vec<String> =
        plan_snapshot_cleanup(snaps, &owner(), &images, &BTreeSet::new(), rules, at(48))
            .into_iter()
            .map(|(s, v)| match v {
                Verdict::Keep(r) => format!("{} keep: {r}", s.id),
                Verdict::Delete(r) => format!("{} delete: {r}", s.id),
            })
            .collect();
    v.sort();
    v
}

/// The same for tests about our own snapshots, without the "ours (…), "
/// every reason starts with (`only_ours_go` checks it).
fn verdicts(snaps: &[SnapshotInfo], rules: SnapshotRules, images: &[&str]) -> Vec<String> {
    plan_lines(snaps, rules, images)
        .into_iter()
        .map(|l| l.replacen("ours (snaptastic:profile=db), ", "", 1))
        .collect()
}

/// A snapshot of /a with exactly these tags.
fn tagged(id: &str, hour: i64, tags: &[(&str, &str)]) -> SnapshotInfo {
    let mut s = snap(id, None, hour, Completed, None);
    s.tags = tags
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    s
}

/// The tags snaptastic 0.2.12 wrote on a snapshot of /a (§2.3), with
/// `expires` long past.
const LEGACY: [(&str, &str); 7] = [
    ("instance_id", "i-old"),
    ("mount_point", "/a"),
    ("role", "r"),
    ("cluster", "c"),
    ("environment", "e"),
    ("expires", "2013-09-02 14:22:02.361688"),
    ("created", "2013-08-26 14:22:02.361688"),
];

/// LEGACY with some keys added, replaced (same key) or removed (empty
/// value).
fn legacy_with(changes: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut tags: BTreeMap<&str, &str> = LEGACY.into_iter().collect();
    for (k, v) in changes {
        if v.is_empty() {
            tags.remove(k);
        } else {
            tags.insert(k, v);
        }
    }
    tags.into_iter().collect()
}

#[test]
fn only_ours_go() {
    // The tags mount-snapshots puts on a volume (0.2.12's and ours):
    // what DLM, AWS Backup or a script copies onto a snapshot of it.
    let volume_tags = legacy_with(&[
        ("snaptastic:profile", "db"),
        ("snaptastic:source", "snap-0"),
        ("snaptastic:device", "/dev/sdf"),
        ("snaptastic:state", "mounted"),
    ]);
    let snaps = vec![
        // Newest of all, but not ours: ours are ranked among ours.
        tagged(
            "dlm",
            40,
            &[
                volume_tags.as_slice(),
                &[
                    ("aws:dlm:lifecycle-policy-id", "policy-0123"),
                    ("aws:dlm:lifecycle-schedule-name", "daily"),
                ],
            ]
            .concat(),
        ),
        tagged(
            "backup",
            39,
            &legacy_with(&[("aws:backup:source-resource", "arn:aws:ec2:…:volume/vol-1")]),
        ),
        tagged(
            "aws-other",
            38,
            &legacy_with(&[("aws:ec2launchtemplate:id", "lt-1")]),
        ),
        tagged(
            "pg",
            37,
            &legacy_with(&[("snaptastic:profile", "pg"), ("snaptastic:run", "x")]),
        ),
        tagged("copied", 36, &volume_tags),
        tagged(
            "ours-newest",
            30,
            &legacy_with(&[("snaptastic:profile", "db"), ("consistency", "frozen")]),
        ),
        tagged(
            "ours-old",
            3,
            &legacy_with(&[("snaptastic:profile", "db"), ("snaptastic:run", "r1")]),
        ),
        tagged("legacy", 2, &LEGACY),
        tagged("legacy-named", 1, &legacy_with(&[("Name", "solr data")])),
        tagged("legacy-extra", 1, &legacy_with(&[("owner", "ops")])),
        tagged("legacy-missing", 1, &legacy_with(&[("created", "")])),
        tagged(
            "legacy-iso",
            1,
            &legacy_with(&[("expires", "2013-09-02T14:22:02Z")]),
        ),
    ];
    assert_eq!(
        plan_lines(&snaps, SnapshotRules::default(), &[]),
        [
            "aws-other keep: made by an AWS service (aws:ec2launchtemplate:id)",
            "backup keep: made by AWS Backup (aws:backup:source-resource)",
            "copied keep: carries a volume's tags (snaptastic:source): copied from a volume by another tool, not made by make-snapshots",
            "dlm keep: made by AWS DLM (aws:dlm:lifecycle-policy-id)",
            "legacy delete: 0.2.12's tag set, expired 2013-09-02 14:22:02.361688",
            "legacy-extra keep: not ours: no snaptastic:profile tag, and not 0.2.12's tag set (extra owner)",
            "legacy-iso keep: not ours: no snaptastic:profile tag, and its expires '2013-09-02T14:22:02Z' is not 0.2.12's timestamp",
            "legacy-missing keep: not ours: no snaptastic:profile tag, and not 0.2.12's tag set (missing created)",
            "legacy-named delete: 0.2.12's tag set, expired 2013-09-02 14:22:02.361688",
            "ours-newest keep: ours (snaptastic:profile=db), newest completed of /a: a restore would use it",
            "ours-old delete: ours (snaptastic:profile=db), expired 2013-09-02 14:22:02.361688",
            "pg keep: another profile's (snaptastic:profile=pg)",
        ]
    );

    // --older-than and error states never reach what is not ours.
    let mut failed = tagged("pg-error", 1, &legacy_with(&[("snaptastic:profile", "pg")]));
    failed.state = Error;
    let rules = SnapshotRules {
        keep_last: None,
        older_than: Some(Duration::from_secs(1)),
    };
    let lines = plan_lines(&[snaps.clone(), vec![failed]].concat(), rules, &[]);
    let deleted: Vec<&str> = lines
        .iter()
        .filter(|l| l.contains(" delete: "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        deleted,
        ["legacy", "legacy-named", "ours-old"],
        "{lines:#?}"
    );

    // Other filter tag keys change 0.2.12's tag set accordingly.
    let filters = vec![("team".to_string(), "t".to_string())];
    let by_team = Owner::new("db", &filters);
    let team = tagged(
        "team",
        1,
        &[
            ("instance_id", "i-old"),
            ("mount_point", "/a"),
            ("team", "t"),
            ("expires", "2013-09-02 14:22:02"),
            ("created", "2013-08-26 14:22:02"),
        ],
    );
    let newest = tagged("newest", 2, &legacy_with(&[("snaptastic:profile", "db")]));
    let plan = plan_snapshot_cleanup(
        &[team, newest, tagged("legacy", 1, &LEGACY)],
        &by_team,
        &BTreeSet::new(),
        &BTreeSet::new(),
        SnapshotRules::default(),
        at(48),
    );
    let deleted: Vec<&str> = plan
        .iter()
        .filter(|(_, v)| matches!(v, Verdict::Delete(_)))
        .map(|(s, _)| s.id.as_str())
        .collect();
    assert_eq!(deleted, ["team"], "{plan:#?}");
}

#[test]
fn another_accounts_snapshots_are_never_deleted() {
    // Shared from another account with our very tags (a DR copy),
    // expired or failed: kept, with the reason. Ours are ranked among
    // ours, so our newest stays protected although a newer copy exists.
    let snaps = vec![
        snap("ours-old", Some("/a"), 1, Completed, Some(OLD)),
        snap("ours-new", Some("/a"), 2, Completed, Some(OLD)),
        snap("dr-copy", Some("/a"), 3, Completed, Some(OLD)),
        snap("dr-failed", Some("/a"), 4, Error, Some(OLD)),
    ];
    let found: Vec<(SnapshotInfo, Option<String>)> = snaps
        .iter()
        .map(|s| {
            let who = if s.id.starts_with("dr-") {
                "210987654321"
            } else {
                "123456789012"
            };
            (s.clone(), Some(who.to_string()))
        })
        .collect();
    let mine: BTreeSet<String> = ["ours-old", "ours-new"].map(String::from).into();
    let foreign = foreign_snapshots(&found, Some(&mine));
    assert_eq!(
        foreign,
        BTreeMap::from([
            ("dr-copy".to_string(), "210987654321".to_string()),
            ("dr-failed".to_string(), "210987654321".to_string()),
        ])
    );
    // Asked for `self` only: everything found is ours.
    assert!(foreign_snapshots(&found, None).is_empty());

    let owner = owner().with_foreign(foreign);
    let rules = SnapshotRules {
        keep_last: None,
        older_than: Some(Duration::from_secs(3600)),
    };
    let mut lines: Vec<String> = plan_snapshot_cleanup(
        &snaps,
        &owner,
        &BTreeSet::new(),
        &BTreeSet::new(),
        rules,
        at(48),
    )
    .into_iter()
    .map(|(s, v)| match v {
        Verdict::Keep(r) => format!("{} keep: {r}", s.id),
        Verdict::Delete(r) => format!("{} delete: {r}", s.id),
    })
    .collect();
    lines.sort();
    let shared =
        "owned by another account (210987654321), shared with this one: never deleted here";
    assert_eq!(
        lines,
        [
            format!("dr-copy keep: {shared}"),
            format!("dr-failed keep: {shared}"),
            "ours-new keep: ours (snaptastic:profile=db), newest completed of /a: a restore would use it".to_string(),
            "ours-old delete: ours (snaptastic:profile=db), older than 1h (1day 23h old)".to_string(),
        ]
    );
}

#[test]
fn the_snapshot_a_restore_would_use_is_never_deleted() {
    // Every snapshot of /a expired; the newest completed one stays,
    // even under --older-than, even when newer ones are pending or failed.
    let snaps = vec![
        snap("a1", Some("/a"), 1, Completed, Some(OLD)),
        snap("a2", Some("/a"), 2, Completed, Some(OLD)),
        snap("a3", Some("/a"), 3, Pending, Some(OLD)),
        snap("a4", Some("/a"), 4, Error, Some(OLD)),
    ];
    let rules = SnapshotRules {
        keep_last: None,
        older_than: Some(Duration::from_secs(3600)),
    };
    assert_eq!(
        verdicts(&snaps, rules, &[]),
        [
            "a1 delete: older than 1h (1day 23h old)",
            "a2 keep: newest completed of /a: a restore would use it",
            "a3 keep: pending",
            "a4 delete: in state error",
        ]
    );
}

#[test]
fn table() {
    /// (name, snapshots, rules, snapshots in AMIs, expected verdicts)
    type Case = (
        &'static str,
        Vec<SnapshotInfo>,
        SnapshotRules,
        Vec<&'static str>,
        Vec<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "expired go, unexpired stay",
            vec![
                snap("x1", Some("/a"), 1, Completed, Some(OLD)),
                snap("x2", Some("/a"), 2, Completed, Some(FUTURE)),
                snap("x3", Some("/a"), 3, Completed, Some(OLD)),
            ],
            SnapshotRules::default(),
            vec![],
            vec![
                "x1 delete: expired 2026-11-01 00:00:00",
                "x2 keep: expires 2027-01-01 00:00:00.123456",
                "x3 keep: newest completed of /a: a restore would use it",
            ],
        ),
        (
            "each mount point keeps its newest",
            vec![
                snap("a", Some("/a"), 1, Completed, Some(OLD)),
                snap("b", Some("/b"), 1, Completed, Some(OLD)),
            ],
            SnapshotRules::default(),
            vec![],
            vec![
                "a keep: newest completed of /a: a restore would use it",
                "b keep: newest completed of /b: a restore would use it",
            ],
        ),
        (
            "keep-last protects the newest N",
            vec![
                snap("k1", Some("/a"), 1, Completed, Some(OLD)),
                snap("k2", Some("/a"), 2, Completed, Some(OLD)),
                snap("k3", Some("/a"), 3, Completed, Some(OLD)),
            ],
            SnapshotRules {
                keep_last: Some(2),
                older_than: None,
            },
            vec![],
            vec![
                "k1 delete: expired 2026-11-01 00:00:00",
                "k2 keep: one of the 2 newest of /a",
                "k3 keep: newest completed of /a: a restore would use it",
            ],
        ),
        (
            "AMIs, missing and odd tags keep",
            vec![
                snap("m1", Some("/a"), 1, Completed, Some(OLD)),
                snap("m2", None, 1, Completed, Some(OLD)),
                snap("m3", Some("/a"), 2, Completed, None),
                snap("m4", Some("/a"), 3, Completed, Some("next tuesday")),
                snap("m5", Some("/a"), 4, Completed, Some(OLD)),
            ],
            SnapshotRules::default(),
            vec!["m1"],
            vec![
                "m1 keep: used by an AMI",
                "m2 keep: no mount_point tag",
                "m3 keep: no expires tag",
                "m4 keep: expires tag 'next tuesday' is not a timestamp",
                "m5 keep: newest completed of /a: a restore would use it",
            ],
        ),
        (
            "only a pending snapshot: nothing completed to protect, pending kept",
            vec![snap("p", Some("/a"), 1, Pending, Some(OLD))],
            SnapshotRules::default(),
            vec![],
            vec!["p keep: pending"],
        ),
    ];
    for (name, snaps, rules, images, want) in cases {
        assert_eq!(verdicts(&snaps, rules, &images), want, "{name}");
    }
}

#[test]
fn volumes_only_unattached_and_not_mid_restore() {
    let vol = |id: &str, state: &str, tag: Option<&str>, created: &str| VolumeInfo {
        id: id.into(),
        state: state.into(),
        size_gib: None,
        volume_type: None,
        iops: None,
        availability_zone: None,
        attachments: vec![],
        tags: tag
            .map(|t| (TAG_STATE.to_string(), t.to_string()))
            .into_iter()
            .chain([("created".to_string(), created.to_string())])
            .collect(),
        fast_restored: None,
        init_rate: None,
    };
    let recent = "2026-11-24 23:30:00";
    let vols = vec![
        vol("v1", "in-use", None, OLD),
        vol("v2", "available", Some("detached"), recent),
        vol("v3", "available", Some(STATE_RESTORING), recent),
        vol("v4", "available", Some(STATE_RESTORING), OLD),
        // Mounted once, its `mounted` tag never written: held data.
        vol("v5", "available", Some(STATE_ATTACHED), OLD),
        vol("v6", "available", Some(STATE_MOUNTED), OLD),
        vol("v7", "available", None, OLD),
    ];
    let deleted = |include| -> Vec<bool> {
        plan_volume_cleanup(&vols, include, at(48))
            .iter()
            .map(|(_, v)| matches!(v, Verdict::Delete(_)))
            .collect()
    };
    assert_eq!(
        deleted(false),
        [false, false, false, true, false, false, false]
    );
    assert_eq!(deleted(true), [false, true, false, true, true, true, true]);
    let why: Vec<String> = plan_volume_cleanup(&vols[4..5], false, at(48))
        .into_iter()
        .map(|(_, v)| format!("{v:?}"))
        .collect();
    assert_eq!(
        why,
        ["Keep(\"was attached: may hold data newer than any snapshot (--include-detached deletes it)\")"]
    );
}

#[test]
fn freshness_looks_at_any_start_time() {
    // 0.2.12 looked at one calendar day only and missed these.
    let snaps = vec![
        snap("new", Some("/a"), 47, Completed, None),
        snap("old", Some("/b"), 1, Completed, None),
        snap("p", Some("/c"), 47, Pending, None),
    ];
    let rows = freshness(
        &snaps,
        &["/a".into(), "/b".into(), "/c".into()],
        Duration::from_secs(26 * 3600),
        at(48),
    );
    assert_eq!(
        rows.iter().map(|r| r.fresh).collect::<Vec<_>>(),
        [true, false, false]
    );
    assert_eq!(
        rows[0].newest,
        Some(("new".to_string(), Duration::from_secs(3600)))
    );
    assert_eq!(rows[2].newest, None);
    let text = prometheus("db", &rows);
    assert!(
        text.contains(
            "snaptastic_newest_backup_age_seconds{profile=\"db\",mount_point=\"/a\"} 3600\n"
        ),
        "{text}"
    );
    assert!(text.contains("mount_point=\"/c\"} +Inf\n"), "{text}");
}
