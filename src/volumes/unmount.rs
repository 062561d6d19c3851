//! `unmount-snapshots NAME`: unmount and detach every volume of a profile.
//! A volume whose unmount fails is NOT detached (0.2.12 detached anyway and
//! corrupted data); volumes are deleted only with `--delete`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::hooks::{self, HookEnv};
use super::list::attached_for;
use super::plan::{STATE_DETACHED, TAG_STATE};
use crate::app::Context;
use crate::cli::UnmountSnapshotsArgs;
use crate::cloud::{poll_until, Backoff, Ec2, VolumeInfo};
use crate::config::kernel_device_name;
use crate::config::{HookPoint, Profile, Volume};
use crate::host::{devices, mount, mountinfo};

/// Detaching completes in seconds; a busy host may take longer.
const DETACH_DEADLINE: Duration = Duration::from_secs(120);

pub async fn run(ctx: &Context, args: &UnmountSnapshotsArgs) -> Result<ExitCode> {
    let config = ctx.config()?;
    let profile = config.profile(&args.profile.name)?.clone();
    if !args.yes && !crate::app::confirm("Are you sure you want to unmount?")? {
        println!("not unmounting");
        return Ok(ExitCode::SUCCESS);
    }
    let host = ctx.host(true).await?;
    let me = host
        .identity
        .as_ref()
        .context("unmount-snapshots needs the instance's identity")?
        .instance_id
        .clone();
    let volumes = profile.resolve_volumes(&host.userdata)?;
    let ec2 = ctx.ec2(Some(&config), &host).await?;
    let attached = ec2
        .volumes_attached_to(&me)
        .await
        .context("looking up attached volumes")?;

    hooks::run(&profile, HookPoint::PreUnmounts, &HookEnv::default())
        .await
        .map_err(|e| anyhow::anyhow!("{e}; nothing was changed"))?;
    let shared = Arc::new(Shared {
        ec2,
        me,
        profile,
        attached,
        device_root: config.device_root.clone(),
        lazy: args.lazy,
        delete: args.delete,
    });
    // Every volume is waited for, even if another's task panicked.
    let tasks = volumes.iter().cloned().map(|v| {
        let shared = shared.clone();
        async move { unmount_one(&shared, &v).await }
    });
    let results: Vec<Result<String, String>> = crate::app::join_in_order(tasks)
        .await
        .into_iter()
        .map(|r| r.and_then(|inner| inner))
        .collect();
    let profile = &shared.profile;
    let mut failed = 0;
    if let Err(e) = hooks::run(profile, HookPoint::PostUnmounts, &HookEnv::default()).await {
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
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What the per-volume tasks share.
struct Shared {
    ec2: Ec2,
    me: String,
    profile: Profile,
    attached: Vec<VolumeInfo>,
    device_root: PathBuf,
    lazy: bool,
    delete: bool,
}

async fn unmount_one(s: &Shared, v: &Volume) -> Result<String, String> {
    let (ec2, me, profile) = (&s.ec2, s.me.as_str(), &s.profile);
    let ebs = attached_for(v, me, &s.attached);
    let env = HookEnv {
        mount_point: Some(v.mount_point.clone()),
        device: Some(v.device.clone()),
        volume_id: ebs.map(|e| e.id.clone()),
        ..Default::default()
    };
    hooks::run(profile, HookPoint::PreUnmount, &env).await?;
    let mounts = mountinfo::read().map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
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
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("unmount failed: {e}; not detaching"))?;
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
                    return Err(format!(
                        "{} ({}) is still in use ({}); not detaching {}: run unmount-snapshots again when it is free",
                        dev.display(),
                        vol.id,
                        if s.lazy { "lazily unmounted with files open" } else { "mounted elsewhere or held open" },
                        vol.id
                    ));
                }
            }
            tracing::info!("{}: detaching {}", v.mount_point, vol.id);
            ec2.detach_volume(&vol.id, me)
                .await
                .map_err(|e| e.to_string())?;
            poll_until(DETACH_DEADLINE, Backoff::VOLUME, || async {
                Ok(match ec2.volume(&vol.id).await? {
                    Some(x) if x.attachments.iter().any(|a| a.instance_id == me) => {
                        Err("detaching".to_string())
                    }
                    _ => Ok(()),
                })
            })
            .await
            .map_err(|e| format!("waiting for {} to detach: {e}", vol.id))?;
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
                ec2.delete_volume(&vol.id)
                    .await
                    .map_err(|e| e.to_string())?;
                did.push(format!("deleted {}", vol.id));
            }
        }
    }
    hooks::run(profile, HookPoint::PostUnmount, &env).await?;
    Ok(did.join(", "))
}
