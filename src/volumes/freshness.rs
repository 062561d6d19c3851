//! `check-backups AGE [NAME | --role/--cluster/--environment]`: is every
//! mount point's newest completed snapshot younger than AGE? Exit 0 if so,
//! else name the stale ones and exit 1, for monitoring. `--prometheus FILE`
//! writes the ages for a textfile collector.

use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};

use super::retention::{freshness, prometheus, Freshness};
use crate::cloud::{Ec2, SnapshotInfo};
use crate::config::mount_point;
use crate::context::{Context, Needs};
use crate::host::safe_path::SafeDir;
use crate::snapshotter::HostFacts;

/// Whose backups to check, and how fresh they must be.
#[derive(Debug, Clone)]
pub(crate) struct CheckOptions {
    /// Maximum age of the newest completed snapshot.
    pub age: std::time::Duration,
    /// A snapshotter (profile) by name ...
    pub name: Option<String>,
    /// ... or filter tags given directly (`--role`, ...).
    pub tags: Vec<(String, String)>,
    /// Write the ages as a Prometheus textfile metric.
    pub prometheus: Option<std::path::PathBuf>,
    /// Count only this instance's snapshots (default: the cluster's).
    pub this_host: bool,
    /// Where the per-mount-point results go (lines, or `--json`).
    pub report: crate::report::Report,
}

pub(crate) async fn run(ctx: &Context, args: &CheckOptions) -> Result<ExitCode> {
    let result = check(ctx, args).await;
    if let (Err(_), Some(path)) = (&result, &args.prometheus) {
        // A stale file would keep reporting old, fresh-looking ages: with
        // no metric the collector's absence alert fires instead.
        if let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
        {
            let _ = SafeDir::open(dir).and_then(|d| d.remove(name));
        }
    }
    result
}

/// Per-host mode: only this instance's own snapshots count (those of the
/// volumes attached to it, or tagged with its instance id), so a host
/// whose snapshot job broke is not masked by its peers.
async fn this_hosts(
    ctx: &Context,
    ec2: &crate::cloud::Ec2,
    label: String,
    snapshots: Vec<crate::cloud::SnapshotInfo>,
) -> Result<(String, Vec<crate::cloud::SnapshotInfo>)> {
    let host = ctx
        .host(Needs::Instance)
        .await
        .context("--this-host needs this instance's identity")?;
    let me = host
        .instance_id()
        .context("--this-host needs this instance's identity")?
        .to_string();
    let attached: Vec<String> = ec2
        .volumes_attached_to(&me)
        .await
        .with_context(|| format!("looking up volumes attached to {me}"))?
        .into_iter()
        .map(|v| v.id)
        .collect();
    let mine = snapshots
        .into_iter()
        .filter(|s| {
            s.tag("instance_id") == Some(me.as_str())
                || s.volume_id.as_ref().is_some_and(|v| attached.contains(v))
        })
        .collect();
    Ok((format!("{label} on {me}"), mine))
}

async fn check(ctx: &Context, args: &CheckOptions) -> Result<ExitCode> {
    let Whose {
        label,
        filters,
        owners,
        mount_points,
        ec2,
    } = whose(ctx, args).await?;
    let snapshots = ec2
        .snapshots_tagged(&filters, &owners)
        .await
        .with_context(|| format!("looking up snapshots of {label}"))?;
    let (label, snapshots) = if args.this_host {
        this_hosts(ctx, &ec2, label, snapshots).await?
    } else {
        (label, snapshots)
    };
    let mount_points = match mount_points {
        Some(m) => m,
        None => tagged_mount_points(&ec2, &filters, &snapshots).await?,
    };
    if mount_points.is_empty() {
        bail!("no mount points found for {label}: nothing to check");
    }
    let rows = freshness(&snapshots, &mount_points, args.age, chrono::Utc::now());
    report(args, &rows);
    if let Some(path) = &args.prometheus {
        write_prometheus(path, &label, &rows)?;
    }
    let stale = rows.iter().filter(|r| !r.fresh).count();
    if stale > 0 {
        tracing::warn!(
            "{stale} mount point(s) of {label} lack a snapshot younger than {}",
            humantime::format_duration(args.age)
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Whose backups are checked: a profile's, or those with the given tags.
struct Whose {
    label: String,
    filters: Vec<(String, String)>,
    owners: Vec<String>,
    /// The profile's mount points; `None` with tag flags.
    mount_points: Option<Vec<String>>,
    ec2: Ec2,
}

async fn whose(ctx: &Context, args: &CheckOptions) -> Result<Whose> {
    match (&args.name, args.tags.is_empty()) {
        (Some(name), true) => {
            let v = ctx.volumes(name, Needs::Userdata, true).await?;
            Ok(Whose {
                label: name.clone(),
                owners: v.owners.clone(),
                mount_points: Some(v.volumes.iter().map(|v| v.mount_point.clone()).collect()),
                filters: v.filters,
                ec2: v.ec2,
            })
        }
        (None, false) => {
            // Tag flags need no metadata or userdata (cron off the host
            // works too), and the configuration only for its region.
            let config = ctx.config();
            let ec2 = ctx.ec2(config.as_ref().ok(), &HostFacts::default()).await?;
            let label = args
                .tags
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            Ok(Whose {
                label,
                filters: args.tags.clone(),
                owners: vec!["self".to_string()],
                mount_points: None,
                ec2,
            })
        }
        (Some(_), false) => {
            bail!("give either a profile NAME or --role/--cluster/--environment, not both")
        }
        (None, true) => bail!(
            "give a profile NAME or --role/--cluster/--environment to say whose backups to check"
        ),
    }
}

/// Without a profile, the mount points are those the snapshots and the
/// in-use volumes with these tags name (as 0.2.12 found them), each once:
/// `/mnt/a/` and `/mnt/a` are one.
async fn tagged_mount_points(
    ec2: &Ec2,
    filters: &[(String, String)],
    snapshots: &[SnapshotInfo],
) -> Result<Vec<String>> {
    let volumes = ec2.volumes_tagged(filters).await.with_context(|| {
        let tags: Vec<String> = filters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("looking up volumes tagged {}", tags.join(","))
    })?;
    let mut mps: Vec<String> = snapshots
        .iter()
        .filter_map(|s| s.tag("mount_point"))
        .chain(
            volumes
                .iter()
                .filter(|v| v.state == "in-use")
                .filter_map(|v| v.tags.get("mount_point").map(String::as_str)),
        )
        .map(mount_point::normalize)
        .collect();
    mps.sort();
    mps.dedup();
    Ok(mps)
}

/// One line (or JSON item) per mount point: OK or STALE, and why.
fn report(args: &CheckOptions, rows: &[Freshness]) {
    let age = |d: &std::time::Duration| {
        humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
    };
    for r in rows {
        let item = serde_json::json!({
            "mount_point": r.mount_point,
            "status": if r.fresh { "ok" } else { "stale" },
            "snapshot_id": r.newest.as_ref().map(|(id, _)| id),
            "age_seconds": r.newest.as_ref().map(|(_, a)| a.as_secs()),
            "limit_seconds": args.age.as_secs(),
        });
        match (&r.newest, r.fresh) {
            (Some((id, a)), true) => args.report.item(
                format!("OK     {}: {id} is {} old", r.mount_point, age(a)),
                item,
            ),
            (Some((id, a)), false) => args.report.failure(
                format!(
                    "STALE  {}: newest completed snapshot {id} is {} old (limit {})",
                    r.mount_point,
                    age(a),
                    humantime::format_duration(args.age)
                ),
                item,
            ),
            (None, _) => args.report.failure(
                format!("STALE  {}: no completed snapshot", r.mount_point),
                item,
            ),
        }
    }
}

/// Write then rename, so the collector never reads half a file; the
/// textfile directory may be another user's (the exporter's), so through
/// its descriptor, never through a link planted there.
fn write_prometheus(path: &std::path::Path, label: &str, rows: &[Freshness]) -> Result<()> {
    let Some((dir, name)) = dir_and_name(path) else {
        bail!("--prometheus {}: not a file path", path.display());
    };
    SafeDir::open(dir)
        .and_then(|d| d.replace_file(name, prometheus(label, rows).as_bytes(), 0o644))
        .with_context(|| format!("writing {}", path.display()))
}

/// The directory and file name of `path` (`.` for a bare name).
fn dir_and_name(path: &std::path::Path) -> Option<(&std::path::Path, &str)> {
    let name = path.file_name()?.to_str()?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    Some((dir, name))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use chrono::{TimeZone, Utc};

    use super::super::retention::freshness;
    use crate::cloud::{SnapshotInfo, SnapshotState};

    #[test]
    fn a_snapshot_tagged_with_a_trailing_slash_counts_for_the_mount_point() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap();
        let snap = |id: &str, mp: &str| SnapshotInfo {
            id: id.into(),
            volume_id: None,
            state: SnapshotState::Completed,
            start_time: Some(now - chrono::Duration::hours(1)),
            size_gib: None,
            progress: None,
            description: String::new(),
            tags: BTreeMap::from([("mount_point".to_string(), mp.to_string())]),
            storage_tier: None,
            data_bytes: None,
        };
        let rows = freshness(
            &[snap("s1", "/mnt/a/"), snap("s2", "/mnt/B")],
            &["/mnt/a".to_string(), "/mnt/b".to_string()],
            Duration::from_secs(86400),
            now,
        );
        assert_eq!(
            rows.iter()
                .map(|r| (r.mount_point.as_str(), r.fresh))
                .collect::<Vec<_>>(),
            [("/mnt/a", true), ("/mnt/b", false)]
        );
    }
}
