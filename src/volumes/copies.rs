//! `copy-snapshots NAME`: keep copies of the profile's newest complete
//! snapshot set in each of its copy targets' Regions
//! (`[[profiles.NAME.copies]]`). Asynchronous and resumable: each run
//! starts the copies that are missing (within the target's limit of
//! copies in flight) and reports those in progress; `--wait` waits for
//! them. Each copy is tagged at creation with its source's tags, where it
//! came from and its own `expires`, so a run killed at any point leaves
//! nothing a re-run would copy again. The decisions are in `copy_plan.rs`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use super::copy_plan::{copy_tags, plan_copies, CopyPlan, NoPlan, TAG_COPY_OF};
use crate::cloud::{poll_until, Backoff, CloudError, Ec2, NewCopy, SnapshotInfo, SnapshotState};
use crate::config::CopyTarget;
use crate::context::VolumeContext;
use crate::tasks::Failures;

/// How to copy.
#[derive(Debug, Clone)]
pub(crate) struct CopyOptions {
    /// Print the plan and start nothing.
    pub dry_run: bool,
    /// Wait until the set's copies have completed (or failed), at most this long.
    pub wait: Option<Duration>,
}

pub(crate) async fn run(ctx: &VolumeContext, opts: &CopyOptions) -> Result<ExitCode> {
    let name = ctx.snapshotter.name();
    let targets = ctx.snapshotter.copies();
    if targets.is_empty() {
        bail!("profile '{name}' has no copy targets: add [[profiles.{name}.copies]] with a region");
    }
    let mine = vec!["self".to_string()];
    let mut home = ctx
        .ec2
        .snapshots_tagged(&ctx.filters, &mine)
        .await
        .with_context(|| format!("looking up snapshots of profile '{name}' in {}", ctx.region))?;
    // On a host, the sets it made: hosts that share the profile's tags
    // (a cluster) each copy their own, never the same snapshot at once.
    if let Some(id) = &ctx.host.identity {
        home.retain(|s| s.tag("instance_id") == Some(id.instance_id.as_str()));
    }
    let mps: Vec<&str> = ctx.volumes.iter().map(|v| v.mount_point.as_str()).collect();
    // One copy-snapshots of the profile at a time on this host (a timer
    // and a hand run): two would both find a copy missing.
    let _one_at_a_time = copy_lock(name).await?;
    let mut failures = Failures::default();
    for t in &targets {
        if t.region == ctx.region {
            failures.add(
                format!("copies to {}", t.region),
                "the target is this profile's own Region",
            );
            continue;
        }
        if let Err(e) = one_target(ctx, opts, t, &home, &mps).await {
            println!("FAILED  {}: {e:#}", t.region);
            failures.add(format!("copies to {}", t.region), format!("{e:#}"));
        }
    }
    failures.finish()
}

async fn one_target(
    ctx: &VolumeContext,
    opts: &CopyOptions,
    t: &CopyTarget,
    home: &[SnapshotInfo],
    mps: &[&str],
) -> Result<()> {
    let region = &t.region;
    let dest = ctx.ec2.in_region(region);
    let mine = vec!["self".to_string()];
    let there = dest
        .snapshots_tagged(&ctx.filters, &mine)
        .await
        .with_context(|| format!("looking up the copies in {region}"))?;
    let plan = match plan_copies(home, mps, &there, t.max_in_flight) {
        Ok(p) => p,
        Err(NoPlan::Nothing) => {
            println!("{region}: nothing to copy: no completed snapshot of the profile");
            return Ok(());
        }
        Err(NoPlan::Mixed(why)) => {
            bail!("no one point in time to copy ({why}); `mount-snapshots --dry-run` says more")
        }
    };
    report(region, &plan);
    if opts.dry_run {
        println!("{region}: dry run: nothing started");
        return Ok(());
    }
    let mut started: Vec<String> = plan.in_flight.iter().map(|c| c.id.clone()).collect();
    let mut failed = Vec::new();
    let mut full = false;
    for s in &plan.start {
        if full {
            println!(
                "waiting {} -> {region}: EC2's limit of copies in progress",
                s.id
            );
            continue;
        }
        match start_one(ctx, &dest, t, s).await {
            Ok(id) => {
                println!("started {} -> {id} ({region})", s.id);
                started.push(id);
            }
            Err(e) if too_many(&e) => {
                println!("waiting {} -> {region}: {e}; the next run starts it", s.id);
                full = true;
            }
            Err(e) => {
                println!("FAILED  {} -> {region}: {e}", s.id);
                failed.push(format!("{}: {e}", s.id));
            }
        }
    }
    if let Some(bound) = opts.wait {
        wait_for(&dest, region, &started, bound).await?;
    }
    match failed.first() {
        None => Ok(()),
        Some(f) => bail!("copying {f}"),
    }
}

fn report(region: &str, plan: &CopyPlan) {
    println!(
        "{region}: set {}: {} copied, {} in progress, {} to start, {} waiting for room",
        plan.point,
        plan.done.len(),
        plan.in_flight.len(),
        plan.start.len(),
        plan.waiting.len()
    );
    for c in &plan.done {
        println!("copied  {} -> {}", c.tag(TAG_COPY_OF).unwrap_or("?"), c.id);
    }
    for c in &plan.in_flight {
        println!(
            "copying {} -> {} ({})",
            c.tag(TAG_COPY_OF).unwrap_or("?"),
            c.id,
            c.progress.as_deref().unwrap_or("?")
        );
    }
    for c in &plan.failed {
        tracing::warn!(
            "the copy {} of {} in {region} ended in error; starting another (look at it with describe-snapshots)",
            c.id,
            c.tag(TAG_COPY_OF).unwrap_or("?")
        );
    }
    for s in &plan.waiting {
        println!(
            "waiting {} -> {region}: the limit of copies in progress is reached",
            s.id
        );
    }
}

/// The profile's copy-snapshots lock, in the state directory.
async fn copy_lock(profile: &str) -> Result<crate::host::lock::Exclusive> {
    let file = format!("copy-snapshots-{profile}.lock");
    let (held, shown) =
        crate::host::lock::exclusive_in_state_dir(&file, Duration::ZERO, |_| {}).await;
    let held = held.with_context(|| format!("taking the lock {}", shown.display()))?;
    held.ok_or_else(|| {
        anyhow::anyhow!(
            "another copy-snapshots of profile '{profile}' runs on this host (lock {}); nothing was started",
            shown.display()
        )
    })
}

/// The copy of `source` in the destination, if one is there (not in
/// error).
async fn existing_copy(dest: &Ec2, source: &str) -> Result<Option<String>, CloudError> {
    let tag = vec![(TAG_COPY_OF.to_string(), source.to_string())];
    let found = dest.snapshots_tagged(&tag, &["self".to_string()]).await?;
    Ok(found
        .into_iter()
        .find(|c| c.state != SnapshotState::Error)
        .map(|c| c.id))
}

/// Start one copy, never two: its absence is checked again just before
/// (another host or an off-host run may have started it since the
/// listing), and CopySnapshot (EC2 takes no idempotency token for it) is
/// sent again only after a throttle, when EC2 surely did nothing. After
/// any other failure the call may have been carried out: the copy is
/// looked for a few times; if it does not show, it is left to the next
/// run rather than risk a second copy.
async fn start_one(
    ctx: &VolumeContext,
    dest: &Ec2,
    t: &CopyTarget,
    s: &SnapshotInfo,
) -> Result<String, CloudError> {
    if let Some(id) = existing_copy(dest, &s.id).await? {
        tracing::info!("{}: its copy {id} was started meanwhile", s.id);
        return Ok(id);
    }
    let mut description = format!("copy of {} from {}: {}", s.id, ctx.region, s.description);
    if description.len() > 255 {
        let mut end = 255;
        while !description.is_char_boundary(end) {
            end -= 1;
        }
        description.truncate(end);
    }
    let copy = NewCopy {
        source_region: ctx.region.clone(),
        source_snapshot_id: s.id.clone(),
        description,
        kms_key_id: t.kms_key_id.clone(),
        tags: copy_tags(s, &ctx.region, t.retention, chrono::Utc::now()),
    };
    let mut tries = ctx.calls.attempts.max(1);
    loop {
        tries -= 1;
        match dest.copy_snapshot(&copy).await {
            Ok(id) => return Ok(id),
            Err(e) if e.is_throttle() && tries > 0 => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) if e.is_transient() => {
                // A lookup that fails is this run's end for the snapshot.
                for _ in 0..3 {
                    if let Some(id) = existing_copy(dest, &s.id).await? {
                        tracing::info!("{}: its copy {id} was made (the reply was lost)", s.id);
                        return Ok(id);
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        }
    }
}

/// EC2's "Too many snapshot copies in progress": not a failure, room
/// comes back as copies complete.
fn too_many(e: &CloudError) -> bool {
    match e {
        CloudError::Service { code, message, .. } => {
            code == "ResourceLimitExceeded" || message.contains("Too many snapshot copies")
        }
        _ => false,
    }
}

/// `--wait`: until each copy has completed, or one ends in error.
async fn wait_for(dest: &Ec2, region: &str, ids: &[String], bound: Duration) -> Result<()> {
    for id in ids {
        let done = poll_until(bound, Backoff::SNAPSHOT, || async {
            Ok(match dest.snapshot(id).await? {
                Some(s) if s.state == SnapshotState::Completed => Ok(Ok(())),
                Some(s) if s.state == SnapshotState::Error => Ok(Err(())),
                Some(s) => Err(format!(
                    "{} ({})",
                    s.state.as_str(),
                    s.progress.as_deref().unwrap_or("?")
                )),
                None => Err("not visible yet".to_string()),
            })
        })
        .await
        .with_context(|| format!("waiting for the copy {id} in {region}"))?;
        match done {
            Ok(()) => println!("copied  {id} ({region})"),
            Err(()) => bail!("the copy {id} in {region} ended in error"),
        }
    }
    Ok(())
}
