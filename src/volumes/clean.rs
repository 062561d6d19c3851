//! `clean snapshots|volumes NAME`: delete this profile's expired snapshots
//! or leftover volumes, never anything account-wide (0.2.12 deleted every
//! unattached volume in the region), never another profile's or AWS
//! DLM's / AWS Backup's snapshots that share the filter tags, never the
//! snapshot a restore would use, never another account's (shared with
//! this one and found through `snapshot_owners`). The decisions are in
//! `retention.rs` and `retention_sets.rs`; this file lists and deletes.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};

use std::collections::BTreeSet;

use super::archive::{plan_archive, ToArchive};
use super::retention::{
    foreign_snapshots, is_ours, plan_snapshot_cleanup, plan_volume_cleanup, Owner, SnapshotRules,
    Verdict,
};
use super::retention_sets::restore_uses;
use super::tags::TAG_PROFILE;
use crate::cloud::{Ec2, SnapshotInfo};
use crate::context::VolumeContext;

/// What to clean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Snapshots,
    Volumes,
}

/// How to clean.
#[derive(Debug, Clone)]
pub(crate) struct CleanOptions {
    pub what: Target,
    /// Keep at least this many newest snapshots of each mount point.
    pub keep_last: Option<u32>,
    /// Delete snapshots older than this, not only expired ones.
    pub older_than: Option<std::time::Duration>,
    pub dry_run: bool,
    /// Do not ask.
    pub yes: bool,
    /// clean volumes: also volumes that held data (detached, or left by a
    /// terminated instance).
    pub include_detached: bool,
}

pub(crate) async fn run(ctx: &VolumeContext, args: &CleanOptions) -> Result<ExitCode> {
    let now = chrono::Utc::now();
    // Snapshots: here, then in each copy target's Region, where the
    // copies expire by their own `expires` under the same rules.
    let mut places = vec![(ctx.region.clone(), ctx.ec2.clone())];
    if args.what == Target::Snapshots {
        for t in ctx.snapshotter.copies() {
            if t.region != ctx.region {
                let ec2 = ctx.ec2.in_region(&t.region);
                places.push((t.region, ec2));
            }
        }
    }
    let several = places.len() > 1;
    let mut failures = crate::tasks::Failures::default();
    let mut doomed: Vec<(&str, &Ec2, String)> = Vec::new();
    let mut to_archive: Vec<(&str, &Ec2, String)> = Vec::new();
    // Where several Regions are cleaned, each line says which.
    let at = |region: &str| {
        if several {
            format!(" ({region})")
        } else {
            String::new()
        }
    };
    for (region, ec2) in &places {
        if several {
            println!("== {region}");
        }
        let rows = match args.what {
            Target::Snapshots => snapshot_rows(ctx, ec2, args, now).await,
            Target::Volumes => volume_rows(ctx, args, now).await.map(|r| (r, Vec::new())),
        };
        let (rows, archive) = match rows {
            Ok(r) => r,
            Err(e) if several => {
                println!("FAILED  {region}: {e:#}");
                failures.add(format!("clean in {region}"), format!("{e:#}"));
                continue;
            }
            Err(e) => return Err(e),
        };
        for (id, what, v) in rows {
            match &v {
                Verdict::Keep(why) => println!("keep    {id} {what}: {why}"),
                Verdict::Delete(why) => {
                    println!("delete  {id} {what}: {why}");
                    doomed.push((region, ec2, id));
                }
            }
        }
        for a in archive {
            println!("archive {}: {}", a.id, a.why);
            to_archive.push((region, ec2, a.id));
        }
    }
    if args.dry_run || (doomed.is_empty() && to_archive.is_empty()) {
        let archiving = match to_archive.len() {
            0 => String::new(),
            n => format!(", {n} to archive"),
        };
        println!(
            "{} to delete{archiving}{}",
            doomed.len(),
            if args.dry_run {
                " (dry run: nothing deleted)"
            } else {
                ""
            }
        );
        return failures.finish();
    }
    if !args.yes && !crate::prompt::confirm("Are you sure you want to clean?")? {
        println!("not cleaning");
        return Ok(ExitCode::SUCCESS);
    }
    let mut deleted = 0;
    for (region, ec2, id) in &doomed {
        let result = match args.what {
            Target::Snapshots => ec2.delete_snapshot(id).await,
            Target::Volumes => ec2.delete_volume(id).await,
        };
        match result {
            Ok(()) => {
                deleted += 1;
                println!("deleted {id}{}", at(region));
            }
            // A lock (LockSnapshot) is someone's decision to keep it: said,
            // never the run's failure.
            Err(e) if locked(&e) => println!("locked  {id} ({region}): {e}; kept"),
            Err(e) => {
                println!("FAILED  {id}{}: {e}", at(region));
                failures.add(id, e);
            }
        }
    }
    for (region, ec2, id) in &to_archive {
        match ec2.archive_snapshot(id).await {
            Ok(()) => println!("archived {id}{}", at(region)),
            Err(e) => {
                println!("FAILED  {id}{}: {e}", at(region));
                failures.add(id, e);
            }
        }
    }
    if deleted > 0 && args.what == Target::Snapshots {
        println!(
            "deleted {deleted} snapshot(s): where a Recycle Bin retention rule of the account matches them, EC2 keeps (and bills) each for the rule's retention period"
        );
    }
    failures.finish()
}

/// EC2 refused to delete a locked snapshot.
fn locked(e: &crate::cloud::CloudError) -> bool {
    match e {
        crate::cloud::CloudError::Service { code, message, .. } => {
            code == "SnapshotLocked" || message.to_ascii_lowercase().contains("locked")
        }
        _ => false,
    }
}

/// One thing clean looked at: its id, what it is, and its verdict.
type Row = (String, String, Verdict);

/// This profile's snapshots, each with its verdict and what it is.
async fn snapshot_rows(
    ctx: &VolumeContext,
    ec2: &Ec2,
    args: &CleanOptions,
    now: DateTime<Utc>,
) -> Result<(Vec<Row>, Vec<ToArchive>)> {
    let filters = &ctx.filters;
    // With other accounts in `snapshot_owners`, a second lookup
    // of only this account's tells which found snapshots are ours.
    let only_self = ctx.owners.iter().all(|o| o == "self");
    let (found, mine, in_images) = tokio::try_join!(
        async {
            ec2.snapshots_tagged_with_owner(filters, &ctx.owners)
                .await
                .with_context(|| {
                    format!(
                        "looking up snapshots of profile '{}'",
                        ctx.snapshotter.name()
                    )
                })
        },
        async {
            if only_self {
                return Ok(None);
            }
            ec2.snapshots_tagged(filters, &["self".to_string()])
                .await
                .map(|s| Some(s.into_iter().map(|s| s.id).collect()))
                .with_context(|| {
                    format!(
                        "looking up this account's snapshots of profile '{}'",
                        ctx.snapshotter.name()
                    )
                })
        },
        async {
            ec2.snapshots_in_images().await.with_context(|| {
                format!(
                    "looking up this account's AMIs (their snapshots are kept) for profile '{}'",
                    ctx.snapshotter.name()
                )
            })
        },
    )?;
    let foreign = foreign_snapshots(&found, mine.as_ref());
    let snapshots: Vec<_> = found.into_iter().map(|(s, _)| s).collect();
    let rules = SnapshotRules {
        keep_last: args.keep_last,
        older_than: args.older_than,
    };
    // The filter tags also find others' snapshots: only ours go.
    // The profile's mount points, when its volumes resolve here
    // (off the host, userdata may lack a volume list).
    let profile_mps: Option<BTreeSet<String>> = ctx
        .snapshotter
        .volumes(&ctx.host)
        .ok()
        .map(|v| v.into_iter().map(|v| v.mount_point).collect());
    let mut owner = Owner::new(ctx.snapshotter.name(), filters).with_foreign(foreign);
    if let Some(mps) = &profile_mps {
        owner = owner.with_mount_points(mps.clone());
    }
    let ours: Vec<bool> = snapshots.iter().map(|s| is_ours(s, &owner)).collect();
    let restore_uses = restore_uses(&snapshots, &ours, profile_mps.as_ref());
    let planned = plan_snapshot_cleanup(&snapshots, &owner, &in_images, &restore_uses, rules, now);
    let archive = match ctx.snapshotter.archive_after() {
        None => Vec::new(),
        Some(after) => {
            let kept: Vec<&SnapshotInfo> = planned
                .iter()
                .filter(|(s, v)| matches!(v, Verdict::Keep(_)) && is_ours(s, &owner))
                .map(|(s, _)| s)
                .collect();
            plan_archive(&kept, &restore_uses, after, now)
        }
    };
    let rows = planned
        .into_iter()
        .map(|(s, v)| {
            let when = s
                .start_time
                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default();
            // Without a mount point, the volume tells a set's
            // member from a stray of another volume.
            let mp = s.tag("mount_point").map_or_else(
                || format!("? ({})", s.volume_id.as_deref().unwrap_or("?")),
                str::to_string,
            );
            let what = format!("{mp} {when}");
            (s.id, what, v)
        })
        .collect();
    Ok((rows, archive))
}

/// The volumes this tool made for this profile, each with its verdict.
async fn volume_rows(
    ctx: &VolumeContext,
    args: &CleanOptions,
    now: DateTime<Utc>,
) -> Result<Vec<Row>> {
    let (ec2, filters) = (&ctx.ec2, &ctx.filters);
    // Ours: made by this tool for this profile, and for these hosts.
    let mut tags = filters.clone();
    tags.push((TAG_PROFILE.to_string(), ctx.snapshotter.name().to_string()));
    let volumes = ec2
        .volumes_tagged(&tags)
        .await
        .with_context(|| format!("looking up volumes of profile '{}'", ctx.snapshotter.name()))?;
    let rows = plan_volume_cleanup(&volumes, args.include_detached, now)
        .into_iter()
        .map(|(v, verdict)| {
            let what = format!(
                "{} {} GiB",
                v.tags.get("mount_point").map_or("?", String::as_str),
                v.size_gib.unwrap_or(0)
            );
            (v.id, what, verdict)
        })
        .collect();
    Ok(rows)
}
