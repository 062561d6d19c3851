//! Sets an earlier make-snapshots run of this host started but could not
//! finish tagging: each snapshot of a set learns its mount point only
//! after the thaw (`snapshot.rs`), so a run killed there, or one whose
//! CreateTags failed, leaves consistent snapshots a restore cannot place.
//! The next run tags them, so the point in time they hold is not lost
//! and the set is no half-made leftover.

use super::snapshot_plan::Target;
use super::tags::TAG_RUN;
use crate::cloud::{Ec2, SnapshotInfo};

/// The snapshots to tag, with their mount point: of an earlier run of this
/// instance (`{instance}-...`, not `this_run`), without a mount point, not marked
/// crash-consistent (those stay out of restores), of a volume this run
/// snapshots at a known mount point now.
pub(crate) fn untagged<'a>(
    snapshots: &'a [SnapshotInfo],
    instance_id: &str,
    this_run: &str,
    targets: &'a [Target],
) -> Vec<(&'a str, &'a str)> {
    let ours = format!("{instance_id}-");
    snapshots
        .iter()
        .filter(|s| {
            s.tag(TAG_RUN)
                .is_some_and(|r| r.starts_with(&ours) && r != this_run)
        })
        .filter(|s| s.tag("mount_point").is_none() && s.tag("consistency") != Some("crash"))
        .filter_map(|s| {
            let t = targets
                .iter()
                .find(|t| s.volume_id.as_deref() == Some(t.volume_id.as_str()))?;
            Some((s.id.as_str(), t.mount_point.as_str()))
        })
        .collect()
}

/// Look for such snapshots (by the profile's tags) and tag them. A repair:
/// a failure is said and does not fail the run.
pub(crate) async fn finish(
    ec2: &Ec2,
    tags: &[(String, String)],
    owners: &[String],
    instance_id: &str,
    this_run: &str,
    targets: &[Target],
) {
    let found = match ec2.snapshots_tagged(tags, owners).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!("could not look for earlier runs' untagged snapshots: {e}");
            return;
        }
    };
    for (id, mp) in untagged(&found, instance_id, this_run, targets) {
        let tag = [("mount_point".to_string(), mp.to_string())];
        match ec2.create_tags(id, &tag).await {
            Ok(()) => tracing::warn!(
                "{mp}: tagged {id} with its mount point: the run that made it was cut short before it could"
            ),
            Err(e) => tracing::warn!("{mp}: could not tag {id} with its mount point: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cloud::SnapshotState;

    fn snap(id: &str, volume: &str, tags: &[(&str, &str)]) -> SnapshotInfo {
        SnapshotInfo {
            id: id.into(),
            volume_id: Some(volume.into()),
            state: SnapshotState::Completed,
            start_time: None,
            size_gib: None,
            progress: None,
            description: String::new(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            storage_tier: None,
            data_bytes: None,
        }
    }

    fn target(volume: &str, mp: &str) -> Target {
        Target {
            mount_point: mp.into(),
            device: "/dev/sdf".into(),
            volume_id: volume.into(),
            description: String::new(),
            tags: Vec::new(),
        }
    }

    #[test]
    fn only_this_hosts_untagged_consistent_snapshots_of_volumes_it_snapshots() {
        let run = ("snaptastic:run", "i-1-42-1000");
        let snaps = [
            snap("snap-a", "vol-1", &[run]),
            snap("snap-tagged", "vol-1", &[run, ("mount_point", "/data")]),
            snap("snap-crash", "vol-1", &[run, ("consistency", "crash")]),
            snap(
                "snap-other-host",
                "vol-1",
                &[("snaptastic:run", "i-2-42-1000")],
            ),
            snap("snap-no-run", "vol-1", &[]),
            snap("snap-other-volume", "vol-9", &[run]),
            snap(
                "snap-this-run",
                "vol-1",
                &[("snaptastic:run", "i-1-43-2000")],
            ),
        ];
        let targets = [target("vol-1", "/data")];
        assert_eq!(
            untagged(&snaps, "i-1", "i-1-43-2000", &targets),
            vec![("snap-a", "/data")]
        );
    }
}
