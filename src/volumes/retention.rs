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
#[path = "retention_tests.rs"]
mod tests;
