//! Pure decisions for `clean` and `check-backups`: which snapshots and
//! volumes may go, and which mount points lack a fresh backup. The rule
//! that matters most: the snapshot a restore would pick is never deleted.
//! The next: only what is ours goes. A snapshot is ours if made for this
//! profile by this tool or by snaptastic 0.2.12 (see [`Owner`]); a volume,
//! if mount-snapshots created it for this profile and it never held data
//! (see [`plan_volume_cleanup`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::points::newest_first;
use super::retention_sets as sets;
use super::tags::parse_python_timestamp;
use super::tags::{STATE_RESTORING, TAG_DEVICE, TAG_PROFILE, TAG_SOURCE, TAG_STATE};
pub(crate) use super::verdict::Verdict;
use crate::cloud::{SnapshotInfo, SnapshotState, VolumeInfo};
use crate::config::mount_point;

/// What `clean snapshots` was asked for beyond the `expires` tags.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SnapshotRules {
    /// Keep this many newest completed snapshots per mount point.
    pub keep_last: Option<u32>,
    /// Delete snapshots older than this, expired or not.
    pub older_than: Option<Duration>,
}

/// Whose snapshots `clean snapshots` may delete. The profile's filter
/// tags also match snapshots that are not ours: another profile's with
/// the same filter tags, and ones AWS DLM or AWS Backup made of our
/// volumes and tagged with a copy of the volume's tags (an `expires`
/// long past included). So a snapshot goes only if it is provably ours.
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    /// The profile's name, as make-snapshots writes it in
    /// `snaptastic:profile`.
    pub profile: String,
    /// The profile's filter tag keys (`role`, `cluster`, `environment`
    /// by default): part of 0.2.12's tag set.
    pub filter_keys: BTreeSet<String>,
    /// Snapshots found that another account owns (id -> that account),
    /// found because `snapshot_owners` names it: shared with this
    /// account (a DR copy, say), they are the other account's to expire,
    /// and deleting them is not this account's to do, whatever their tags.
    pub foreign: BTreeMap<String, String>,
    /// The profile's mount points, when known: a 0.2.12 snapshot (which
    /// names no profile) of another mount point belongs to another
    /// profile or host sharing the filter tags, not to this one.
    pub mount_points: Option<BTreeSet<String>>,
}

impl Owner {
    pub(crate) fn new(profile: &str, filters: &[(String, String)]) -> Self {
        Owner {
            profile: profile.to_string(),
            filter_keys: filters.iter().map(|(k, _)| k.clone()).collect(),
            foreign: BTreeMap::new(),
            mount_points: None,
        }
    }

    /// The same, knowing the profile's mount points.
    pub(crate) fn with_mount_points(mut self, mount_points: BTreeSet<String>) -> Self {
        self.mount_points = Some(mount_points);
        self
    }

    /// The same, with the snapshots other accounts own (see
    /// [`foreign_snapshots`]).
    pub(crate) fn with_foreign(mut self, foreign: BTreeMap<String, String>) -> Self {
        self.foreign = foreign;
        self
    }
}

/// Which of the snapshots found (each with the owner EC2 named) belong to
/// another account. `mine` is what the same lookup with only `self` found,
/// or `None` when the lookup asked only for `self` (so all are ours). The
/// account is told by `self`, not by comparing ids: the tool does not know
/// its own account id (and `snapshot_owners` may name it). A snapshot made
/// between the two lookups can only look foreign, and so be kept.
pub(crate) fn foreign_snapshots(
    found: &[(SnapshotInfo, Option<String>)],
    mine: Option<&BTreeSet<String>>,
) -> BTreeMap<String, String> {
    let Some(mine) = mine else {
        return BTreeMap::new();
    };
    found
        .iter()
        .filter(|(s, _)| !mine.contains(&s.id))
        .map(|(s, owner)| {
            let who = owner.clone().unwrap_or_else(|| "unknown".to_string());
            (s.id.clone(), who)
        })
        .collect()
}

/// The keys snaptastic 0.2.12 wrote on every snapshot besides the filter
/// tags (and the `Name` boto copied from the volume, if it had one).
pub(crate) const LEGACY_KEYS: [&str; 4] = ["instance_id", "mount_point", "expires", "created"];

/// Keys mount-snapshots writes on volumes and make-snapshots never on a
/// snapshot: a snapshot carrying one got the tags of a volume copied onto
/// it by something else.
const VOLUME_ONLY_KEYS: [&str; 3] = [TAG_SOURCE, TAG_DEVICE, TAG_STATE];

/// Whether `clean` may ever delete the snapshot (see [`Owner`]).
pub(crate) fn is_ours(s: &SnapshotInfo, owner: &Owner) -> bool {
    ownership(s, owner).is_ok()
}

/// How a snapshot was told to be ours (the start of its reasons), or why
/// it is not (the reason it is kept).
fn ownership(s: &SnapshotInfo, owner: &Owner) -> Result<String, String> {
    // Another account's snapshot, shared with this one: never ours to
    // delete, not even with our own tags on it (a DR copy keeps them).
    if let Some(account) = owner.foreign.get(&s.id) {
        return Err(format!(
            "owned by another account ({account}), shared with this one: never deleted here"
        ));
    }
    // EC2 reserves the `aws:` prefix (in any case) for AWS's own tags:
    // DLM, AWS Backup and the like mark what they make with them, and
    // nobody else can. Such a snapshot is theirs to expire, whatever tags
    // were copied onto it.
    if let Some(k) = s
        .tags
        .keys()
        .find(|k| k.to_ascii_lowercase().starts_with("aws:"))
    {
        let lower = k.to_ascii_lowercase();
        let who = if lower.starts_with("aws:dlm:") {
            "AWS DLM"
        } else if lower.starts_with("aws:backup:") {
            "AWS Backup"
        } else {
            "an AWS service"
        };
        return Err(format!("made by {who} ({k})"));
    }
    if let Some(p) = s.tag(TAG_PROFILE) {
        if p != owner.profile {
            return Err(format!("another profile's ({TAG_PROFILE}={p})"));
        }
        if let Some(k) = VOLUME_ONLY_KEYS.iter().find(|k| s.tags.contains_key(**k)) {
            return Err(format!(
                "carries a volume's tags ({k}): copied from a volume by another tool, not made by make-snapshots"
            ));
        }
        return Ok(format!("ours ({TAG_PROFILE}={p})"));
    }
    // No profile tag: only snaptastic 0.2.12's exact tag set qualifies.
    let want: BTreeSet<&str> = LEGACY_KEYS
        .into_iter()
        .chain(owner.filter_keys.iter().map(String::as_str))
        .collect();
    let have: BTreeSet<&str> = s
        .tags
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "Name")
        .collect();
    if have != want {
        let list = |keys: Vec<&&str>| {
            keys.iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut differs = Vec::new();
        let extra: Vec<&&str> = have.difference(&want).collect();
        if !extra.is_empty() {
            differs.push(format!("extra {}", list(extra)));
        }
        let missing: Vec<&&str> = want.difference(&have).collect();
        if !missing.is_empty() {
            differs.push(format!("missing {}", list(missing)));
        }
        return Err(format!(
            "not ours: no {TAG_PROFILE} tag, and not 0.2.12's tag set ({})",
            differs.join("; ")
        ));
    }
    for key in ["expires", "created"] {
        let value = s.tag(key).unwrap_or_default();
        if parse_python_timestamp(value).is_none() {
            return Err(format!(
                "not ours: no {TAG_PROFILE} tag, and its {key} '{value}' is not 0.2.12's timestamp"
            ));
        }
    }
    if let (Some(mps), Some(mp)) = (&owner.mount_points, s.tag("mount_point")) {
        if !mps.contains(&crate::config::mount_point::normalize(mp)) {
            return Err(format!(
                "0.2.12's tag set, but {mp} is not a mount point of profile '{}'",
                owner.profile
            ));
        }
    }
    Ok("0.2.12's tag set".into())
}

/// Decide for every snapshot matching a profile's filter tags. Only ours
/// (see [`Owner`]) may go; `in_images` are snapshots AMIs are made of.
///
/// `restore_uses` are the snapshots mount-snapshots would restore now
/// (`points::choose_points`: the newest complete set, which can be older
/// than a mount point's newest snapshot): never deleted either.
///
/// A snapshot of a run without a `mount_point` tag follows its set
/// (`retention_sets`): nothing else would ever judge it.
pub(crate) fn plan_snapshot_cleanup(
    snapshots: &[SnapshotInfo],
    owner: &Owner,
    in_images: &BTreeSet<String>,
    restore_uses: &BTreeSet<String>,
    rules: SnapshotRules,
    now: DateTime<Utc>,
) -> Vec<(SnapshotInfo, Verdict)> {
    let owned: Vec<Result<String, String>> =
        snapshots.iter().map(|s| ownership(s, owner)).collect();
    // Our completed snapshots per mount point, newest first. Ranked among
    // ours only: a newer one of someone else's (kept anyway) must not
    // leave our newest unprotected, since its owner may delete it.
    let mut by_mp: BTreeMap<&str, Vec<&SnapshotInfo>> = BTreeMap::new();
    for s in snapshots
        .iter()
        .zip(&owned)
        .filter(|(s, o)| o.is_ok() && s.state == SnapshotState::Completed)
        .map(|(s, _)| s)
    {
        if let Some(mp) = s.tag("mount_point") {
            by_mp.entry(mp).or_default().push(s);
        }
    }
    let mut rank: BTreeMap<&str, usize> = BTreeMap::new();
    for list in by_mp.values_mut() {
        // The order a restore chooses in: rank 0 is what it would use.
        list.sort_by(|a, b| newest_first(a, b));
        for (i, s) in list.iter().enumerate() {
            rank.insert(s.id.as_str(), i);
        }
    }
    let keep_last = rules.keep_last.unwrap_or(0).max(1) as usize;

    // Each of ours judged on its own first (`Err`: not ours, and why).
    let judged: Vec<Result<(String, Verdict), String>> = snapshots
        .iter()
        .zip(owned)
        .map(|(s, owned)| {
            let how = owned?;
            let own = match verdict(
                s,
                rank.get(s.id.as_str()).copied(),
                keep_last,
                in_images,
                rules,
                now,
            ) {
                // Older than a mount point's newest, yet what a restore
                // would use: the newest complete set.
                Verdict::Delete(_) if restore_uses.contains(&s.id) => {
                    Verdict::Keep("in the snapshot set a restore would use".into())
                }
                v => v,
            };
            Ok((how, own))
        })
        .collect();
    // Then those no mount point ranks, by their set.
    let own: Vec<Option<&Verdict>> = judged
        .iter()
        .map(|j| j.as_ref().ok().map(|(_, v)| v))
        .collect();
    let standings = sets::standings(snapshots, &own);
    let mut out: Vec<(SnapshotInfo, Verdict)> = snapshots
        .iter()
        .zip(judged.iter())
        .map(|(s, judged)| {
            let verdict = match judged {
                Err(why) => Verdict::Keep(why.clone()),
                Ok((how, own)) => match sets::orphan_run(s) {
                    Some(run) => {
                        sets::orphan_verdict(s, run, standings.get(run), in_images, || {
                            by_age(s, rules, now)
                        })
                    }
                    None => own.clone(),
                }
                .led_by(how),
            };
            (s.clone(), verdict)
        })
        .collect();
    out.sort_by(|a, b| {
        (a.0.tag("mount_point"), b.0.start_time).cmp(&(b.0.tag("mount_point"), a.0.start_time))
    });
    out
}

/// The verdict on one of our snapshots.
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
    by_age(s, rules, now)
}

/// The verdict on one of our snapshots by its age alone: `--older-than`,
/// then its `expires` tag.
pub(crate) fn by_age(s: &SnapshotInfo, rules: SnapshotRules, now: DateTime<Utc>) -> Verdict {
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
/// created in the last hour (a run may still be attaching it).
/// mount-snapshots tags a volume `attached` before it mounts it, and does
/// not mount it if that tag cannot be written, so a volume that was ever
/// mounted carries `attached`, `mounted` or `detached`, even when the
/// later tags failed: such volumes may hold data newer than any snapshot
/// and go only with `include_detached`, as do volumes without the tag.
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
                Verdict::Delete(format!(
                    "available, was {} (--include-detached)",
                    state.unwrap_or("in use")
                ))
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
                    s.state == SnapshotState::Completed
                        && s.tag("mount_point")
                            .is_some_and(|t| mount_point::same(t, mp))
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

    use super::super::tags::{STATE_ATTACHED, STATE_MOUNTED};
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
        }
    }

    const OLD: &str = "2026-11-01 00:00:00";
    const FUTURE: &str = "2027-01-01 00:00:00.123456";
    use SnapshotState::*;

    fn owner() -> Owner {
        let filters: Vec<(String, String)> =
            [("role", "r"), ("cluster", "c"), ("environment", "e")]
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
}
