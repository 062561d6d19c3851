//! Pure decisions for `clean` and `check-backups`: which snapshots and
//! volumes may go, and which mount points lack a fresh backup. The rule
//! that matters most: the snapshot a restore would pick is never deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::plan::{STATE_RESTORING, TAG_STATE};
use super::tags::parse_python_timestamp;
use crate::cloud::{SnapshotInfo, SnapshotState, VolumeInfo};

/// Keep or delete, with the reason (printed by `--dry-run`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Keep(String),
    Delete(String),
}

/// What `clean snapshots` was asked for beyond the `expires` tags.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SnapshotRules {
    /// Keep this many newest completed snapshots per mount point.
    pub keep_last: Option<u32>,
    /// Delete snapshots older than this, expired or not.
    pub older_than: Option<Duration>,
}

/// Decide for every snapshot of a profile. `in_images` are snapshots AMIs
/// are made of.
pub(crate) fn plan_snapshot_cleanup(
    snapshots: &[SnapshotInfo],
    in_images: &BTreeSet<String>,
    rules: SnapshotRules,
    now: DateTime<Utc>,
) -> Vec<(SnapshotInfo, Verdict)> {
    // Completed snapshots per mount point, newest first.
    let mut by_mp: BTreeMap<&str, Vec<&SnapshotInfo>> = BTreeMap::new();
    for s in snapshots
        .iter()
        .filter(|s| s.state == SnapshotState::Completed)
    {
        if let Some(mp) = s.tag("mount_point") {
            by_mp.entry(mp).or_default().push(s);
        }
    }
    let mut rank: BTreeMap<&str, usize> = BTreeMap::new();
    for list in by_mp.values_mut() {
        list.sort_by(|a, b| {
            b.start_time
                .cmp(&a.start_time)
                .then_with(|| b.id.cmp(&a.id))
        });
        for (i, s) in list.iter().enumerate() {
            rank.insert(s.id.as_str(), i);
        }
    }
    let keep_last = rules.keep_last.unwrap_or(0).max(1) as usize;

    let mut out: Vec<(SnapshotInfo, Verdict)> = snapshots
        .iter()
        .map(|s| {
            let verdict = verdict(
                s,
                rank.get(s.id.as_str()).copied(),
                keep_last,
                in_images,
                rules,
                now,
            );
            (s.clone(), verdict)
        })
        .collect();
    out.sort_by(|a, b| {
        (a.0.tag("mount_point"), b.0.start_time).cmp(&(b.0.tag("mount_point"), a.0.start_time))
    });
    out
}

fn verdict(
    s: &SnapshotInfo,
    rank: Option<usize>,
    keep_last: usize,
    in_images: &BTreeSet<String>,
    rules: SnapshotRules,
    now: DateTime<Utc>,
) -> Verdict {
    let Some(mp) = s.tag("mount_point") else {
        return Verdict::Keep("no mount_point tag".into());
    };
    match s.state {
        SnapshotState::Completed => {}
        SnapshotState::Pending => return Verdict::Keep("pending".into()),
        // A failed snapshot holds nothing a restore could use.
        SnapshotState::Error => return Verdict::Delete("in state error".into()),
        SnapshotState::Other(ref st) => return Verdict::Keep(format!("in state {st}")),
    }
    if in_images.contains(&s.id) {
        return Verdict::Keep("used by an AMI".into());
    }
    match rank {
        Some(0) => {
            return Verdict::Keep(format!("newest completed of {mp}: a restore would use it"))
        }
        Some(r) if r < keep_last => {
            return Verdict::Keep(format!("one of the {keep_last} newest of {mp}"))
        }
        _ => {}
    }
    if let (Some(limit), Some(start)) = (rules.older_than, s.start_time) {
        let age = now
            .signed_duration_since(start)
            .to_std()
            .unwrap_or_default();
        if age > limit {
            return Verdict::Delete(format!(
                "older than {} ({} old)",
                humantime::format_duration(limit),
                humantime::format_duration(Duration::from_secs(age.as_secs()))
            ));
        }
    }
    match s.tag("expires") {
        None => Verdict::Keep("no expires tag".into()),
        Some(e) => match parse_python_timestamp(e) {
            None => Verdict::Keep(format!("expires tag '{e}' is not a timestamp")),
            Some(t) if t <= now => Verdict::Delete(format!("expired {e}")),
            Some(_) => Verdict::Keep(format!("expires {e}")),
        },
    }
}

/// A crashed mount-snapshots may still be working on a volume this young.
pub(crate) const RESTORING_GRACE: Duration = Duration::from_secs(3600);

/// Decide for every volume tagged for a profile: only unattached ones go.
/// By default only a crashed mount-snapshots' leftovers (state
/// `restoring`, which hold nothing but a snapshot's data), and not one
/// created in the last hour (a run may still be attaching it). Volumes
/// that were in use (`detached`, `mounted`) may hold data newer than any
/// snapshot: they go only with `include_detached`.
pub(crate) fn plan_volume_cleanup(
    volumes: &[VolumeInfo],
    include_detached: bool,
    now: DateTime<Utc>,
) -> Vec<(VolumeInfo, Verdict)> {
    volumes
        .iter()
        .map(|v| {
            let state = v.tags.get(TAG_STATE).map(String::as_str);
            let young = v
                .tags
                .get("created")
                .and_then(|c| parse_python_timestamp(c))
                .is_none_or(|c| {
                    now.signed_duration_since(c).to_std().unwrap_or_default() < RESTORING_GRACE
                });
            let verdict = if v.state != "available" {
                Verdict::Keep(format!("{} (attached or busy)", v.state))
            } else if state == Some(STATE_RESTORING) && young {
                Verdict::Keep(
                    "being restored by a mount-snapshots run less than an hour ago".into(),
                )
            } else if state == Some(STATE_RESTORING) {
                Verdict::Delete("left by a mount-snapshots run that never mounted it".into())
            } else if include_detached {
                Verdict::Delete(format!("available, was {}", state.unwrap_or("in use")))
            } else {
                Verdict::Keep(format!(
                    "was {}: may hold data newer than any snapshot (--include-detached deletes it)",
                    state.unwrap_or("in use")
                ))
            };
            (v.clone(), verdict)
        })
        .collect()
}

/// One mount point's freshness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Freshness {
    pub mount_point: String,
    /// The newest completed snapshot, with its age.
    pub newest: Option<(String, Duration)>,
    pub fresh: bool,
}

/// For each mount point, whether its newest completed snapshot is younger
/// than `max_age` (any start time, not one calendar day as 0.2.12 did).
pub(crate) fn freshness(
    snapshots: &[SnapshotInfo],
    mount_points: &[String],
    max_age: Duration,
    now: DateTime<Utc>,
) -> Vec<Freshness> {
    mount_points
        .iter()
        .map(|mp| {
            let newest = snapshots
                .iter()
                .filter(|s| {
                    s.state == SnapshotState::Completed && s.tag("mount_point") == Some(mp.as_str())
                })
                .filter_map(|s| Some((s, s.start_time?)))
                .max_by_key(|(_, t)| *t)
                .map(|(s, t)| {
                    (
                        s.id.clone(),
                        now.signed_duration_since(t).to_std().unwrap_or_default(),
                    )
                });
            let fresh = newest.as_ref().is_some_and(|(_, age)| *age <= max_age);
            Freshness {
                mount_point: mp.clone(),
                newest,
                fresh,
            }
        })
        .collect()
}

/// The Prometheus textfile-collector rendering of freshness.
pub(crate) fn prometheus(profile: &str, rows: &[Freshness]) -> String {
    let mut out = String::from(
        "# HELP snaptastic_newest_backup_age_seconds Age of the newest completed EBS snapshot of a mount point.\n\
         # TYPE snaptastic_newest_backup_age_seconds gauge\n",
    );
    for r in rows {
        let value = r
            .newest
            .as_ref()
            .map_or("+Inf".to_string(), |(_, age)| age.as_secs().to_string());
        out.push_str(&format!(
            "snaptastic_newest_backup_age_seconds{{profile=\"{}\",mount_point=\"{}\"}} {value}\n",
            escape_label(profile),
            escape_label(&r.mount_point)
        ));
    }
    out
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

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
        let mut tags = BTreeMap::new();
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
        }
    }

    const OLD: &str = "2026-11-01 00:00:00";
    const FUTURE: &str = "2027-01-01 00:00:00.123456";
    use SnapshotState::*;

    fn verdicts(snaps: &[SnapshotInfo], rules: SnapshotRules, images: &[&str]) -> Vec<String> {
        let images = images.iter().map(|s| s.to_string()).collect();
        let mut v: Vec<String> = plan_snapshot_cleanup(snaps, &images, rules, at(48))
            .into_iter()
            .map(|(s, v)| match v {
                Verdict::Keep(r) => format!("{} keep: {r}", s.id),
                Verdict::Delete(r) => format!("{} delete: {r}", s.id),
            })
            .collect();
        v.sort();
        v
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
        };
        let recent = "2026-11-24 23:30:00";
        let vols = vec![
            vol("v1", "in-use", None, OLD),
            vol("v2", "available", Some("detached"), recent),
            vol("v3", "available", Some(STATE_RESTORING), recent),
            vol("v4", "available", Some(STATE_RESTORING), OLD),
        ];
        let deleted = |include| -> Vec<bool> {
            plan_volume_cleanup(&vols, include, at(48))
                .iter()
                .map(|(_, v)| matches!(v, Verdict::Delete(_)))
                .collect()
        };
        assert_eq!(deleted(false), [false, false, false, true]);
        assert_eq!(deleted(true), [false, true, false, true]);
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
}
