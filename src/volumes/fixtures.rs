//! Snapshots for the planners' unit tests (points and mount plans).

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};

use super::points::{Choice, RestoreSource};
use super::tags::{TAG_CALL, TAG_RUN};
use crate::cloud::{SnapshotInfo, SnapshotState};

pub(crate) fn snap(id: &str, mp: &str, hour: u32, state: SnapshotState) -> SnapshotInfo {
    SnapshotInfo {
        id: id.into(),
        volume_id: Some("vol-1".into()),
        state,
        start_time: Some(Utc.with_ymd_and_hms(2026, 11, 1, hour, 0, 0).unwrap()),
        size_gib: Some(5),
        progress: None,
        description: String::new(),
        tags: BTreeMap::from([("mount_point".to_string(), mp.to_string())]),
        storage_tier: None,
        data_bytes: None,
    }
}

pub(crate) fn chosen(c: &Choice) -> String {
    match &c.source {
        RestoreSource::Snapshot { snapshot } => snapshot.id.clone(),
        RestoreSource::WaitFor {
            pending,
            fallback,
            set,
        } => format!(
            "wait {} else {}{}",
            pending.id,
            fallback.as_ref().map_or("empty", |f| f.id.as_str()),
            set.as_ref()
                .map_or(String::new(), |r| format!(" (set {r})"))
        ),
        RestoreSource::Empty => "empty".into(),
    }
}

/// A snapshot of make-snapshots run `run` (or 0.2.12's, without).
pub(crate) fn in_run(
    id: &str,
    mp: &str,
    hour: u32,
    state: SnapshotState,
    run: Option<&str>,
) -> SnapshotInfo {
    let mut s = snap(id, mp, hour, state);
    if let Some(r) = run {
        s.tags.insert(TAG_RUN.into(), r.into());
    }
    s
}

/// `s` tagged as taken after the thaw, started by `call`.
pub(crate) fn crash(mut s: SnapshotInfo, call: &str) -> SnapshotInfo {
    s.tags.insert("consistency".into(), "crash".into());
    s.tags.insert(TAG_CALL.into(), call.into());
    s
}
