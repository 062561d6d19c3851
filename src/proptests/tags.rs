//! `volumes::tags`: tag values on snapshots and volumes. Anyone allowed to
//! tag them (a person in the console, AWS Backup copying a volume's tags,
//! another tool) writes what they like into `created`, `expires`,
//! `mount_point`, `snaptastic:run`...; the planners read them all.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use proptest::prelude::*;

use super::*;
use crate::cloud::{Attachment, SnapshotInfo, SnapshotState, VolumeInfo};
use crate::config::mount_point;
use crate::proptests::{check, hostile_text};
use crate::volumes::points;
use crate::volumes::retention::{self, Owner, SnapshotRules};
use crate::volumes::tags::{TAG_PROFILE, TAG_RUN, TAG_SOURCE, TAG_STATE};

/// Any fixed zone a host could be in, and a few past any real one.
fn zone() -> impl Strategy<Value = FixedOffset> {
    (-86_399i32..=86_399).prop_map(|s| FixedOffset::east_opt(s).expect("within a day"))
}

/// Text shaped like `YYYY-MM-DD HH:MM:SS[.f]` with every field at and
/// past its edges (years past chrono's range, month 13, second 60...).
fn timestamp_like() -> impl Strategy<Value = String> {
    // chrono holds years -262143 to 262142 (written `+262142`).
    let year = prop_oneof![
        2 => 0i64..=9999,
        2 => proptest::sample::select(&[262_141i64, 262_142, 262_143, -262_143, -262_144][..]),
        1 => any::<i64>(),
    ];
    let frac = prop_oneof![Just(String::new()), Just(".".to_string()), "\\.[0-9]{1,12}",];
    // Each field often at its edges: the first and last instants of a
    // year are where a zone's offset crosses the calendar's bounds.
    let edge =
        |edges: &'static [u32], max: u32| prop_oneof![proptest::sample::select(edges), 0..=max];
    (
        (
            year,
            any::<bool>(),
            edge(&[1, 12], 13),
            edge(&[1, 28, 29, 30, 31], 32),
        ),
        (
            edge(&[0, 23], 25),
            edge(&[0, 59], 61),
            edge(&[0, 59, 60], 61),
            frac,
            hostile_text(),
        ),
    )
        .prop_map(|((y, plus, mo, d), (h, mi, s, f, tail))| {
            let y = if plus && y >= 0 {
                format!("+{y}")
            } else {
                format!("{y:04}")
            };
            // Mostly nothing after the time, as a tag would be written.
            let tail = if tail.len() % 4 == 1 {
                tail
            } else {
                String::new()
            };
            format!("{y}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}{f}{tail}")
        })
}

fn tag_text() -> impl Strategy<Value = String> {
    prop_oneof![hostile_text(), timestamp_like()]
}

#[test]
fn any_timestamp_text_parses_in_any_zone() {
    check("timestamp_any_text", (tag_text(), zone()), |(s, tz)| {
        let _ = parse_python_timestamp_in(&s, &tz);
        let _ = parse_python_timestamp_in(&s, &Utc);
        let _ = parse_python_timestamp(&s);
        Ok(())
    });
}

/// Found by `any_timestamp_text_parses_in_any_zone`: the last hour
/// chrono can hold, read west of UTC, is past its range, and the hour
/// added for a time a DST change skips overflowed (a panic) instead of
/// giving `None`. Anyone who may tag a snapshot could stop every command
/// that reads its `created` on a host whose zone is west of UTC.
#[test]
fn a_timestamp_past_the_calendar_is_none() {
    let west = FixedOffset::west_opt(3600).unwrap();
    assert_eq!(
        parse_python_timestamp_in("+262142-12-31 23:00:00", &west),
        None
    );
}

#[test]
fn written_timestamps_read_back() {
    // Python's datetime: years 1 to 9999, microseconds.
    let lo = chrono::NaiveDate::from_ymd_opt(1, 1, 2).unwrap();
    let hi = chrono::NaiveDate::from_ymd_opt(9999, 12, 30).unwrap();
    let (lo, hi) = (
        lo.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp(),
        hi.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp(),
    );
    let t = (lo..hi, 0u32..1_000_000)
        .prop_map(|(s, us)| DateTime::from_timestamp(s, us * 1000).expect("in range"));
    check("timestamp_round_trip", (t, zone()), |(t, tz)| {
        let text = python_timestamp_in(t, &tz);
        prop_assert_eq!(parse_python_timestamp_in(&text, &tz), Some(t), "{}", text);
        Ok(())
    });
}

#[test]
fn mount_point_tags_normalise_once() {
    check("mount_point_tag", (tag_text(), tag_text()), |(a, b)| {
        let n = mount_point::normalize(&a);
        prop_assert_eq!(mount_point::normalize(&n), n.clone(), "idempotent");
        prop_assert!(mount_point::same(&a, &n));
        prop_assert_eq!(mount_point::same(&a, &b), mount_point::same(&b, &a));
        prop_assert!(!(mount_point::same(&a, &b) && mount_point::nearly_same(&a, &b)));
        if a.starts_with('/') {
            prop_assert!(
                n.starts_with('/') && !n.contains("//") && (n == "/" || !n.ends_with('/'))
            );
        }
        Ok(())
    });
}

const KEYS: &[&str] = &[
    "mount_point",
    "created",
    "expires",
    "instance_id",
    "role",
    "cluster",
    "environment",
    TAG_PROFILE,
    TAG_RUN,
    TAG_SOURCE,
    TAG_STATE,
    crate::volumes::tags::TAG_DEVICE,
    "consistency",
];

fn tags() -> impl Strategy<Value = BTreeMap<String, String>> {
    let key = prop_oneof![
        4 => proptest::sample::select(KEYS).prop_map(str::to_string),
        1 => hostile_text(),
    ];
    let value = prop_oneof![
        tag_text(),
        proptest::sample::select(
            &[
                "/mnt/a",
                "/mnt/a/",
                "/MNT/A",
                " /mnt/a",
                "p",
                "restoring",
                "1-2"
            ][..]
        )
        .prop_map(str::to_string),
    ];
    proptest::collection::btree_map(key, value, 0..10)
}

fn time() -> impl Strategy<Value = Option<DateTime<Utc>>> {
    let (lo, hi) = (
        DateTime::<Utc>::MIN_UTC.timestamp(),
        DateTime::<Utc>::MAX_UTC.timestamp(),
    );
    proptest::option::of(
        prop_oneof![lo..=hi, 1_700_000_000i64..1_800_000_000]
            .prop_map(|s| DateTime::from_timestamp(s, 0).expect("in range")),
    )
}

fn state() -> impl Strategy<Value = SnapshotState> {
    prop_oneof![
        Just("completed"),
        Just("pending"),
        Just("error"),
        Just("recoverable"),
    ]
    .prop_map(SnapshotState::parse)
}

fn snapshots() -> impl Strategy<Value = Vec<SnapshotInfo>> {
    let snapshot =
        ("snap-[0-9a-f]{2}", state(), time(), tags()).prop_map(|(id, state, start_time, tags)| {
            SnapshotInfo {
                id,
                volume_id: None,
                state,
                start_time,
                size_gib: Some(8),
                progress: None,
                description: String::new(),
                tags,
                storage_tier: None,
                data_bytes: None,
            }
        });
    proptest::collection::vec(snapshot, 0..12)
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..100_000_000).prop_map(Duration::from_secs),
        any::<u64>().prop_map(Duration::from_secs),
    ]
}

#[test]
fn planners_read_any_tags() {
    let input = (
        snapshots(),
        tag_text(),
        (
            any::<bool>(),
            proptest::option::of(0u32..4),
            proptest::option::of(duration()),
        ),
        duration(),
        time(),
    );
    check(
        "planners_any_tags",
        input,
        |(snaps, mp, (with_mps, keep_last, older_than), age, now)| {
            let now = now.unwrap_or(DateTime::<Utc>::MAX_UTC);
            let _ = points::choose_snapshot(&snaps, &mp);
            let _ = points::choose_points(&snaps, &[mp.as_str(), "/mnt/a"]);
            let _ = points::near_miss_warning(&snaps, &mp);
            let _ = retention::freshness(&snaps, std::slice::from_ref(&mp), age, now);

            let filters = [("role".to_string(), "db".to_string())];
            let mut owner = Owner::new("p", &filters);
            if with_mps {
                owner = owner.with_mount_points(BTreeSet::from([mount_point::normalize(&mp)]));
            }
            let rules = SnapshotRules {
                keep_last,
                older_than,
            };
            let images = snaps.iter().take(1).map(|s| s.id.clone()).collect();
            let verdicts = retention::plan_snapshot_cleanup(
                &snaps,
                &owner,
                &images,
                &BTreeSet::new(),
                rules,
                now,
            );
            prop_assert_eq!(verdicts.len(), snaps.len());

            let volumes: Vec<VolumeInfo> = snaps
                .iter()
                .map(|s| VolumeInfo {
                    id: s.id.replace("snap", "vol"),
                    state: if s.tags.len() % 2 == 0 {
                        "available"
                    } else {
                        "in-use"
                    }
                    .into(),
                    size_gib: Some(8),
                    volume_type: None,
                    iops: None,
                    availability_zone: None,
                    attachments: Vec::<Attachment>::new(),
                    tags: s.tags.clone(),
                    fast_restored: None,
                    init_rate: None,
                })
                .collect();
            let _ = retention::plan_volume_cleanup(&volumes, with_mps, now);
            Ok(())
        },
    );
}
