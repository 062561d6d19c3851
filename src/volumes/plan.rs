//! Pure decisions about volumes: which snapshot a volume is restored from.
//! No I/O here; commands feed in what they observed.

use serde::Serialize;

use crate::cloud::{SnapshotInfo, SnapshotState};

/// Where `mount-snapshots` would take a volume's data from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RestoreSource {
    /// The newest completed snapshot of the mount point.
    Snapshot { snapshot: SnapshotInfo },
    /// A newer snapshot is still pending: wait for it, and fall back to
    /// the newest completed one (if any) when the wait runs out.
    WaitFor {
        pending: SnapshotInfo,
        fallback: Option<SnapshotInfo>,
    },
    /// No usable snapshot: create an empty volume and format it.
    Empty,
}

/// The choice for one volume, with the snapshots passed over for being in
/// `error` (to warn about).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub source: RestoreSource,
    pub skipped: Vec<SnapshotInfo>,
}

/// Choose among a profile's snapshots (already filtered by its tags) for
/// one mount point: exact `mount_point` tag match as in 0.2.12, newest
/// start time first, completed preferred, `error` skipped, never falling
/// back past a pending snapshot without saying so.
pub fn choose_snapshot(snapshots: &[SnapshotInfo], mount_point: &str) -> Choice {
    let mut candidates: Vec<&SnapshotInfo> = snapshots
        .iter()
        .filter(|s| s.tag("mount_point") == Some(mount_point))
        .collect();
    // Newest first; a snapshot without a start time sorts last; ids break
    // ties so the choice never depends on the order EC2 listed them.
    candidates.sort_by(|a, b| {
        b.start_time
            .cmp(&a.start_time)
            .then_with(|| b.id.cmp(&a.id))
    });

    let mut skipped = Vec::new();
    let mut pending: Option<&SnapshotInfo> = None;
    let mut completed: Option<&SnapshotInfo> = None;
    for s in candidates {
        match s.state {
            SnapshotState::Completed => {
                completed = Some(s);
                break;
            }
            SnapshotState::Pending => {
                pending.get_or_insert(s);
            }
            SnapshotState::Error => skipped.push(s.clone()),
            // Unknown states are neither usable nor worth waiting for.
            SnapshotState::Other(_) => skipped.push(s.clone()),
        }
    }
    let source = match (pending, completed) {
        (Some(p), fallback) => RestoreSource::WaitFor {
            pending: p.clone(),
            fallback: fallback.cloned(),
        },
        (None, Some(c)) => RestoreSource::Snapshot {
            snapshot: c.clone(),
        },
        (None, None) => RestoreSource::Empty,
    };
    Choice { source, skipped }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};

    use super::*;

    fn snap(id: &str, mp: &str, hour: u32, state: SnapshotState) -> SnapshotInfo {
        SnapshotInfo {
            id: id.into(),
            volume_id: Some("vol-1".into()),
            state,
            start_time: Some(Utc.with_ymd_and_hms(2026, 11, 1, hour, 0, 0).unwrap()),
            size_gib: Some(5),
            description: String::new(),
            tags: BTreeMap::from([("mount_point".to_string(), mp.to_string())]),
        }
    }

    use SnapshotState::*;

    fn chosen(c: &Choice) -> String {
        match &c.source {
            RestoreSource::Snapshot { snapshot } => snapshot.id.clone(),
            RestoreSource::WaitFor { pending, fallback } => format!(
                "wait {} else {}",
                pending.id,
                fallback.as_ref().map_or("empty", |f| f.id.as_str())
            ),
            RestoreSource::Empty => "empty".into(),
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
                "exact mount point only",
                vec![
                    snap("a", "/data/", 5, Completed),
                    snap("b", "/data", 1, Completed),
                    snap("c", "/dat", 6, Completed),
                ],
                "/data",
                "b",
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
}
