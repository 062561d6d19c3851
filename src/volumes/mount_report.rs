//! What mount-snapshots prints: the plan (`--dry-run`), one line per mount
//! point with why, and the outcome of each volume.

use super::explain::Explainer;
use super::plan::{MountAction, VolumePlan};
use super::points::{PointInTime, RestoreSource};
use super::restore::Outcome;
use super::tags::{STATE_DETACHED, TAG_STATE};
use crate::instance::Identity;

/// The plan, one line per mount point: what is done, the volume, and why
/// (`explain`), with the newer data passed over.
pub(super) fn render_plan(
    plans: &[VolumePlan],
    point: &PointInTime,
    identity: &Identity,
    why: &Explainer<'_>,
) -> String {
    let mut out = format!(
        "plan for {} in {}:\n  set: {} ({})\n",
        identity.instance_id,
        identity.availability_zone,
        point.label(),
        point.explain()
    );
    for (i, p) in plans.iter().enumerate() {
        let v = &p.volume;
        let what = match &p.action {
            MountAction::Skip { mounted_from } => {
                format!("leave alone (mounted from {mounted_from})")
            }
            MountAction::Finish {
                volume,
                mounted_from,
                ..
            } => format!(
                "finish an earlier run: {} is mounted from {mounted_from}; check it, tag it mounted",
                volume.id
            ),
            MountAction::Adopt {
                volume,
                attached: true,
            } => format!("adopt {} (already attached), mount", volume.id),
            MountAction::Adopt {
                volume,
                attached: false,
            } if volume.tags.get(TAG_STATE).map(String::as_str) == Some(STATE_DETACHED) => format!(
                "re-attach {} detached by unmount-snapshots (newer than any snapshot): attach, mount",
                volume.id
            ),
            MountAction::Adopt {
                volume,
                attached: false,
            } => format!("adopt {} left by an earlier run: attach, mount", volume.id),
            MountAction::Create {
                source: RestoreSource::Empty,
            } => {
                format!("create an empty volume, format it {}", v.file_system)
            }
            MountAction::Create {
                source: RestoreSource::Snapshot { snapshot },
            } => format!(
                "restore {} ({}, {})",
                snapshot.id,
                snapshot
                    .start_time
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default(),
                snapshot.state.as_str()
            ),
            MountAction::Create {
                source:
                    RestoreSource::WaitFor {
                        pending,
                        fallback,
                        set,
                    },
            } => format!(
                "wait for pending {}, else {}",
                pending.id,
                match (fallback, set) {
                    (Some(f), _) => format!("restore {}", f.id),
                    (None, Some(_)) => "fail (no other point in time is taken)".into(),
                    (None, None) => "create an empty volume".into(),
                }
            ),
        };
        let mut ty = v.volume_type.to_string();
        if let Some(i) = v.iops {
            ty.push_str(&format!(" {i} iops"));
        }
        out.push_str(&format!(
            "  {} on {}: {what}; {} GiB {ty} {}; why: {}\n",
            v.mount_point,
            v.device,
            v.size_gib,
            v.file_system,
            why.action(i, &p.action).line()
        ));
    }
    out
}

pub(super) fn print_summary(
    report: &crate::report::Report,
    plans: &[VolumePlan],
    outcomes: &[(usize, Outcome)],
) {
    use serde_json::json;
    for (i, o) in outcomes {
        let mp = &plans[*i].volume.mount_point;
        match o {
            Outcome::Mounted {
                volume_id,
                block_device,
                from,
            } => report.item(
                format!(
                    "mounted  {mp}: {volume_id} on {} ({from})",
                    block_device.display()
                ),
                json!({"mount_point": mp, "status": "mounted", "volume_id": volume_id,
                       "block_device": block_device, "from": from}),
            ),
            Outcome::Skipped { mounted_from } => report.item(
                format!("skipped  {mp}: already mounted from {mounted_from}"),
                json!({"mount_point": mp, "status": "skipped", "mounted_from": mounted_from}),
            ),
            Outcome::Failed { error, cleanup } => report.failure(
                format!("FAILED   {mp}: {error}; {cleanup}"),
                json!({"mount_point": mp, "status": "failed", "error": error.to_string(),
                       "cleanup": cleanup.to_string()}),
            ),
        }
    }
}
