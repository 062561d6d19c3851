//! `unmount-snapshots NAME`: unmount and detach every volume of a profile.
//! A volume whose unmount fails is NOT detached (0.2.12 detached anyway and
//! corrupted data); volumes are deleted only with `--delete`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::error::VolumeError;
use super::hooks;
use super::list::attached_for;
use super::nesting;
use super::plan::{STATE_DETACHED, TAG_STATE};
use crate::cloud::{poll_until, Backoff, Ec2, VolumeInfo};
use crate::config::kernel_device_name;
use crate::config::{HookPoint, Volume};
use crate::context::VolumeContext;
use crate::host::{devices, mount, mountinfo};
use crate::snapshotter::{HookCtx, Snapshotter};

/// Detaching completes in seconds; a busy host may take longer.
const DETACH_DEADLINE: Duration = Duration::from_secs(120);

/// How to unmount (the question was asked before).
#[derive(Debug, Clone)]
pub(crate) struct UnmountOptions {
    /// Delete the volumes after detaching them.
    pub delete: bool,
    /// Lazily unmount a busy filesystem (umount -l).
    pub lazy: bool,
}

pub(crate) async fn run(ctx: &VolumeContext, args: &UnmountOptions) -> Result<ExitCode> {
    let me = ctx.identity()?.instance_id.clone();
    let (ec2, volumes) = (ctx.ec2.clone(), &ctx.volumes);
    let name = ctx.snapshotter.name().to_string();
    let attached = ec2
        .volumes_attached_to(&me)
        .await
        .context("looking up attached volumes")?;

    hooks::run(
        &ctx.snapshotter,
        HookPoint::PreUnmounts,
        &HookCtx::run(&name),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}; nothing was changed"))?;
    let shared = Arc::new(Shared {
        ec2,
        me,
        snapshotter: ctx.snapshotter.clone(),
        attached,
        device_root: ctx.device_root.clone(),
        lazy: args.lazy,
        delete: args.delete,
    });
    // Nested mount points go down child first (a parent cannot be
    // unmounted with a child mounted inside it): the deepest level first,
    // the volumes of one level concurrently. Every volume is waited for,
    // even if another's task panicked.
    let mps: Vec<&str> = volumes.iter().map(|v| v.mount_point.as_str()).collect();
    let depths = nesting::depths(&mps);
    let mut results: Vec<Option<Result<String, VolumeError>>> =
        volumes.iter().map(|_| None).collect();
    for level in (0..=depths.iter().copied().max().unwrap_or(0)).rev() {
        let at_level: Vec<usize> = (0..volumes.len()).filter(|i| depths[*i] == level).collect();
        let tasks = at_level.iter().map(|&i| {
            let (shared, v) = (shared.clone(), volumes[i].clone());
            async move { unmount_one(&shared, &v).await }
        });
        let done = crate::tasks::join_in_order(tasks).await;
        for (i, r) in at_level.into_iter().zip(done) {
            results[i] = Some(r.map_err(VolumeError::from).and_then(|inner| inner));
        }
    }
    let results: Vec<Result<String, VolumeError>> = results.into_iter().flatten().collect();
    let mut failed = 0;
    if let Err(e) = hooks::run(
        &shared.snapshotter,
        HookPoint::PostUnmounts,
        &HookCtx::run(&name),
    )
    .await
    {
        tracing::error!("{e}");
        failed += 1;
    }
    for (v, r) in volumes.iter().zip(results) {
        match r {
            Ok(done) => println!("done     {}: {done}", v.mount_point),
            Err(e) => {
                failed += 1;
                println!("FAILED   {}: {e}", v.mount_point);
            }
        }
    }
    Ok(crate::tasks::exit_code(failed))
}

/// What the per-volume tasks share.
struct Shared {
    ec2: Ec2,
    me: String,
    snapshotter: Arc<dyn Snapshotter>,
    attached: Vec<VolumeInfo>,
    device_root: PathBuf,
    lazy: bool,
    delete: bool,
}

async fn unmount_one(s: &Shared, v: &Volume) -> Result<String, VolumeError> {
    let (ec2, me) = (&s.ec2, s.me.as_str());
    let ebs = attached_for(v, me, &s.attached);
    let mut env = HookCtx::volume(s.snapshotter.name(), &v.mount_point, &v.device);
    env.volume_id = ebs.map(|e| e.id.clone());
    hooks::run(&s.snapshotter, HookPoint::PreUnmount, &env).await?;
    let mounts = mountinfo::read().map_err(VolumeError::Mountinfo)?;
    let mut did = Vec::new();
    if mountinfo::find(&mounts, &v.mount_point).is_some() {
        let (mp, lazy) = (PathBuf::from(&v.mount_point), s.lazy);
        tracing::info!(
            "{}: unmounting{}",
            v.mount_point,
            if lazy { " (lazy)" } else { "" }
        );
        tokio::task::spawn_blocking(move || mount::unmount(&mp, lazy))
            .await
            .map_err(|e| VolumeError::Unmount(e.to_string()))?
            .map_err(|e| VolumeError::Unmount(e.to_string()))?;
        did.push("unmounted".to_string());
    } else {
        did.push("was not mounted".to_string());
    }
    match ebs {
        None => did.push("no volume attached".into()),
        Some(vol) => {
            // Whatever is mounted at the mount point, the volume's own device
            // must be free: mounted elsewhere, or lazily unmounted with files
            // still open, it would be corrupted by a detach.
            let kernel = kernel_device_name(&v.device, v.device_name_offset);
            if let Some(dev) = devices::find(&s.device_root, &v.device, &kernel, &vol.id) {
                if devices::in_use(&dev) {
                    return Err(VolumeError::InUse {
                        device: dev,
                        volume: vol.id.clone(),
                        why: if s.lazy {
                            "lazily unmounted with files open"
                        } else {
                            "mounted elsewhere or held open"
                        },
                    });
                }
            }
            tracing::info!("{}: detaching {}", v.mount_point, vol.id);
            ec2.detach_volume(&vol.id, me).await?;
            poll_until(DETACH_DEADLINE, Backoff::VOLUME, || async {
                Ok(match ec2.volume(&vol.id).await? {
                    Some(x) if x.attachments.iter().any(|a| a.instance_id == me) => {
                        Err("detaching".to_string())
                    }
                    _ => Ok(()),
                })
            })
            .await
            .map_err(|source| VolumeError::Wait {
                id: vol.id.clone(),
                what: "detach",
                source: Box::new(source),
            })?;
            did.push(format!("detached {}", vol.id));
            // Not a crash leftover: mount-snapshots restores from the newest
            // snapshot rather than adopting it (see plan.rs).
            let state = [(TAG_STATE.to_string(), STATE_DETACHED.to_string())];
            if let Err(e) = ec2.create_tags(&vol.id, &state).await {
                tracing::warn!(
                    "{}: could not tag {} as detached: {e}",
                    v.mount_point,
                    vol.id
                );
            }
            if s.delete {
                ec2.delete_volume(&vol.id).await?;
                did.push(format!("deleted {}", vol.id));
            }
        }
    }
    hooks::run(&s.snapshotter, HookPoint::PostUnmount, &env).await?;
    Ok(did.join(", "))
}
