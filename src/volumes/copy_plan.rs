//! Which of a profile's snapshots a copy target should hold, and which
//! copies to start now: pure, over what `copy-snapshots` listed in the
//! home Region and in the destination. The copies are of the point in
//! time a restore would use now, among completed snapshots only (a set is
//! copied once it is complete, never before), so the copies of a set form
//! that set in the destination and restore there by the same rules.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::points::{choose_points, PointInTime, RestoreSource};
use super::tags::{created_at, python_timestamp};
use crate::cloud::{SnapshotInfo, SnapshotState};

/// On a copy: the snapshot it was copied from.
pub(crate) const TAG_COPY_OF: &str = "snaptastic:copy-of";
/// On a copy: the Region of that snapshot.
pub(crate) const TAG_COPY_FROM: &str = "snaptastic:copy-from";

/// What to do for one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyPlan {
    /// The point in time copied (a set's `snaptastic:run`, or a label).
    pub point: String,
    /// Sources to copy now (within the limit of copies in flight).
    pub start: Vec<SnapshotInfo>,
    /// Sources that wait for a later run (the limit is reached).
    pub waiting: Vec<SnapshotInfo>,
    /// Copies of the sources still in progress there.
    pub in_flight: Vec<SnapshotInfo>,
    /// Copies of the sources completed there.
    pub done: Vec<SnapshotInfo>,
    /// Copies of the sources that ended in `error` (a new copy is started
    /// in their place; they are named so an operator can look).
    pub failed: Vec<SnapshotInfo>,
}

/// Why nothing can be planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoPlan {
    /// No completed snapshot of any mount point.
    Nothing,
    /// The newest data is no one point in time (the restore would refuse
    /// too): `mount-snapshots --dry-run` says why.
    Mixed(String),
}

/// Plan one destination: `home` the profile's snapshots where they are
/// made, `there` the profile's snapshots in the destination (copies
/// carry the filter tags), `in_flight_limit` the target's limit.
pub(crate) fn plan_copies(
    home: &[SnapshotInfo],
    mount_points: &[&str],
    there: &[SnapshotInfo],
    in_flight_limit: u32,
) -> Result<CopyPlan, NoPlan> {
    let completed: Vec<SnapshotInfo> = home
        .iter()
        .filter(|s| s.state == SnapshotState::Completed && !s.archived())
        .cloned()
        .collect();
    let points = choose_points(&completed, mount_points);
    if let PointInTime::Mixed { .. } | PointInTime::Diverged { .. } = &points.point {
        return Err(NoPlan::Mixed(points.point.explain()));
    }
    let sources: Vec<SnapshotInfo> = points
        .choices
        .into_iter()
        .filter_map(|c| match c.source {
            RestoreSource::Snapshot { snapshot } => Some(snapshot),
            _ => None,
        })
        .collect();
    if sources.is_empty() {
        return Err(NoPlan::Nothing);
    }
    // The copies there, by the snapshot they were copied from; a source
    // with several (a copy in error, then another) counts its best.
    let mut copies: BTreeMap<&str, Vec<&SnapshotInfo>> = BTreeMap::new();
    for c in there {
        if let Some(src) = c.tag(TAG_COPY_OF) {
            copies.entry(src).or_default().push(c);
        }
    }
    let pending_there = there
        .iter()
        .filter(|c| c.tag(TAG_COPY_OF).is_some() && c.state == SnapshotState::Pending)
        .count() as u32;
    let mut room = in_flight_limit.saturating_sub(pending_there);
    let mut plan = CopyPlan {
        point: points.point.label(),
        start: Vec::new(),
        waiting: Vec::new(),
        in_flight: Vec::new(),
        done: Vec::new(),
        failed: Vec::new(),
    };
    for s in sources {
        let of = copies.get(s.id.as_str()).cloned().unwrap_or_default();
        if let Some(c) = of.iter().find(|c| c.state == SnapshotState::Completed) {
            plan.done.push((*c).clone());
        } else if let Some(c) = of.iter().find(|c| c.state == SnapshotState::Pending) {
            plan.in_flight.push((*c).clone());
        } else {
            plan.failed.extend(of.iter().map(|c| (*c).clone()));
            if room > 0 {
                room -= 1;
                plan.start.push(s);
            } else {
                plan.waiting.push(s);
            }
        }
    }
    Ok(plan)
}

/// A copy's tags: its source's (EC2 reserves `aws:` keys), where it came
/// from, and an `expires` of its own: the source's creation time (its
/// `created` tag, else its start time) plus the target's retention.
pub(crate) fn copy_tags(
    source: &SnapshotInfo,
    home_region: &str,
    retention: Duration,
    now: DateTime<Utc>,
) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = source
        .tags
        .iter()
        .filter(|(k, _)| !k.to_ascii_lowercase().starts_with("aws:"))
        .filter(|(k, _)| !matches!(k.as_str(), TAG_COPY_OF | TAG_COPY_FROM | "expires"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let created = created_at(source).unwrap_or(now);
    let expires = chrono::Duration::from_std(retention)
        .ok()
        .and_then(|d| created.checked_add_signed(d))
        .unwrap_or(created);
    tags.push(("expires".into(), python_timestamp(expires)));
    tags.push((TAG_COPY_OF.into(), source.id.clone()));
    tags.push((TAG_COPY_FROM.into(), home_region.into()));
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::SnapshotState::*;
    use crate::volumes::fixtures::in_run;

    fn copy(id: &str, of: &str, state: SnapshotState) -> SnapshotInfo {
        let mut c = in_run(id, "/a", 9, state, Some("r1"));
        c.tags.insert(TAG_COPY_OF.into(), of.into());
        c
    }

    fn ids(v: &[SnapshotInfo]) -> Vec<&str> {
        v.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn the_newest_complete_set_is_copied_once_within_the_limit() {
        let home = vec![
            in_run("a1", "/a", 1, Completed, Some("r1")),
            in_run("b1", "/b", 1, Completed, Some("r1")),
            // A newer set, not complete yet: not copied before it is.
            in_run("a2", "/a", 2, Completed, Some("r2")),
            in_run("b2", "/b", 2, Pending, Some("r2")),
        ];
        let p = plan_copies(&home, &["/a", "/b"], &[], 5).unwrap();
        assert_eq!(p.point, "r1");
        assert_eq!(ids(&p.start), ["a1", "b1"]);

        // One copied, one in flight: nothing to start.
        let there = vec![copy("c1", "a1", Completed), copy("c2", "b1", Pending)];
        let p = plan_copies(&home, &["/a", "/b"], &there, 5).unwrap();
        assert_eq!((ids(&p.done), ids(&p.in_flight)), (vec!["c1"], vec!["c2"]));
        assert!(p.start.is_empty());

        // A copy in error: another is started, the failed one named.
        let there = vec![copy("c1", "a1", Completed), copy("c2", "b1", Error)];
        let p = plan_copies(&home, &["/a", "/b"], &there, 5).unwrap();
        assert_eq!((ids(&p.start), ids(&p.failed)), (vec!["b1"], vec!["c2"]));

        // The limit counts every copy in progress there.
        let there = vec![copy("x", "other", Pending)];
        let p = plan_copies(&home, &["/a", "/b"], &there, 2).unwrap();
        assert_eq!((ids(&p.start), ids(&p.waiting)), (vec!["a1"], vec!["b1"]));
    }

    #[test]
    fn mixed_points_and_nothing_are_refused() {
        let home = vec![
            in_run("a1", "/a", 1, Completed, Some("r1")),
            in_run("b2", "/b", 2, Completed, Some("r2")),
        ];
        assert!(matches!(
            plan_copies(&home, &["/a", "/b"], &[], 5),
            Err(NoPlan::Mixed(_))
        ));
        assert_eq!(plan_copies(&[], &["/a"], &[], 5), Err(NoPlan::Nothing));
    }

    #[test]
    fn a_copy_keeps_the_tags_and_expires_by_its_own_retention() {
        let mut s = in_run("a1", "/a", 1, Completed, Some("r1"));
        s.tags
            .insert("created".into(), "2026-11-01 01:00:00".into());
        s.tags
            .insert("expires".into(), "2026-11-08 01:00:00".into());
        s.tags.insert("aws:backup:x".into(), "y".into());
        let tags: BTreeMap<String, String> =
            copy_tags(&s, "us-east-1", Duration::from_secs(30 * 86400), Utc::now())
                .into_iter()
                .collect();
        assert_eq!(tags["expires"], "2026-12-01 01:00:00");
        assert_eq!(tags[TAG_COPY_OF], "a1");
        assert_eq!(tags[TAG_COPY_FROM], "us-east-1");
        assert_eq!(tags["snaptastic:run"], "r1");
        assert_eq!(tags["mount_point"], "/a");
        assert!(!tags.contains_key("aws:backup:x"));
    }
}
