//! `archive_after`: which of a profile's snapshots `clean snapshots`
//! moves to the archive tier (ModifySnapshotTier). Pure. The archive
//! costs a quarter of the standard tier per GB-month but bills at least
//! 90 days and takes 24-72 hours to restore from, so only a snapshot that
//! is ours, completed, standard, older than `archive_after`, not what a
//! restore would use now, and kept for at least 90 more days (by its
//! `expires`) is archived.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::tags::{created_at, parse_python_timestamp};
use crate::cloud::{SnapshotInfo, SnapshotState};

/// The archive tier's minimum: a snapshot deleted sooner is billed for
/// the rest anyway.
pub(crate) const ARCHIVE_MINIMUM: Duration = Duration::from_secs(90 * 24 * 3600);

/// One snapshot to archive, and why (for the line clean prints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ToArchive {
    pub id: String,
    pub why: String,
}

/// The snapshots to archive among `kept` (what clean keeps, already
/// judged ours), given the ids a restore would use.
pub(crate) fn plan_archive(
    kept: &[&SnapshotInfo],
    restore_uses: &BTreeSet<String>,
    archive_after: Duration,
    now: DateTime<Utc>,
) -> Vec<ToArchive> {
    let days = |d: chrono::Duration| d.num_days();
    kept.iter()
        .filter(|s| s.state == SnapshotState::Completed && !s.archived())
        .filter(|s| !restore_uses.contains(&s.id))
        .filter_map(|s| {
            let created = created_at(s)?;
            let age = now.signed_duration_since(created);
            let old_enough = age.to_std().is_ok_and(|a| a >= archive_after);
            let expires = s.tag("expires").and_then(parse_python_timestamp)?;
            let left = expires.signed_duration_since(now);
            let long_enough = left.to_std().is_ok_and(|l| l >= ARCHIVE_MINIMUM);
            (old_enough && long_enough).then(|| ToArchive {
                id: s.id.clone(),
                why: format!(
                    "{} days old (archive_after), kept {} more days (the archive bills at least 90)",
                    days(age),
                    days(left)
                ),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::SnapshotState::*;
    use crate::volumes::fixtures::in_run;

    fn snap(id: &str, created: &str, expires: &str) -> SnapshotInfo {
        let mut s = in_run(id, "/a", 1, Completed, Some("r"));
        s.tags.insert("created".into(), created.into());
        s.tags.insert("expires".into(), expires.into());
        s
    }

    #[test]
    fn only_old_long_kept_unused_standard_snapshots_are_archived() {
        let now = parse_python_timestamp("2026-12-01 00:00:00").unwrap();
        let month = Duration::from_secs(30 * 86400);
        let old = snap("old", "2026-10-01 00:00:00", "2027-10-01 00:00:00");
        let young = snap("young", "2026-11-25 00:00:00", "2027-11-25 00:00:00");
        let ends_soon = snap("soon", "2026-10-01 00:00:00", "2027-01-01 00:00:00");
        let used = snap("used", "2026-10-01 00:00:00", "2027-10-01 00:00:00");
        let mut archived = snap("arch", "2026-10-01 00:00:00", "2027-10-01 00:00:00");
        archived.storage_tier = Some("archive".into());
        let mut pending = snap("pend", "2026-10-01 00:00:00", "2027-10-01 00:00:00");
        pending.state = Pending;
        let all = [&old, &young, &ends_soon, &used, &archived, &pending];
        let uses = BTreeSet::from(["used".to_string()]);
        let plan = plan_archive(&all, &uses, month, now);
        assert_eq!(
            plan,
            vec![ToArchive {
                id: "old".into(),
                why: "61 days old (archive_after), kept 304 more days (the archive bills at least 90)"
                    .into()
            }]
        );
    }
}
