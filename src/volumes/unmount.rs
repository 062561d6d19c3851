//! `unmount-snapshots NAME`: unmount and detach every volume of a profile.
//! A volume whose unmount fails is NOT detached (0.2.12 detached anyway and
//! corrupted data), nor one whose block device is in use or cannot be
//! found to check; volumes are deleted only with `--delete`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::error::VolumeError;
use super::hooks;
use super::list::attached_for;
use super::nesting;
use super::tags::{STATE_DELETING, STATE_DETACHED, TAG_PROFILE, TAG_STATE};
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
        .with_context(|| format!("looking up volumes attached to {me}"))?;

    // With --delete: volumes an earlier --delete detached and could not
    // delete (tagged `deleting`), to delete now.
    let deleting = if args.delete {
        let mut tags = ctx.filters.clone();
        tags.push((TAG_PROFILE.to_string(), name.clone()));
        tags.push((TAG_STATE.to_string(), STATE_DELETING.to_string()));
        ec2.volumes_tagged(&tags)
            .await
            .with_context(|| format!("looking up volumes of profile '{name}' left to delete"))?
    } else {
        Vec::new()
    };
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
        deleting,
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
    let mut failures = crate::tasks::Failures::default();
    if let Err(e) = hooks::run(
        &shared.snapshotter,
        HookPoint::PostUnmounts,
        &HookCtx::run(&name),
    )
    .await
    {
        tracing::error!("{e}");
        failures.add_line(e);
    }
    for (v, r) in volumes.iter().zip(results) {
        match r {
            Ok(done) => println!("done     {}: {done}", v.mount_point),
            Err(e) => {
                println!("FAILED   {}: {e}", v.mount_point);
                failures.add(&v.mount_point, e);
            }
        }
    }
    failures.finish()
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
    /// Volumes of ours an earlier `--delete` left tagged `deleting`.
    deleting: Vec<VolumeInfo>,
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
        None => {
            did.push("no volume attached".into());
            delete_leftovers(s, v, &mut did).await?;
        }
        Some(vol) => {
            // Whatever is mounted at the mount point, the volume's own device
            // must be free: mounted elsewhere, or lazily unmounted with files
            // still open, it would be corrupted by a detach.
            // Not found, it cannot be checked: not detached either.
            let names = device_names(v, vol, me);
            let dev = devices::find_any(&s.device_root, &names, &vol.id).map_err(|looked| {
                VolumeError::NoDevice {
                    volume: vol.id.clone(),
                    device: names
                        .iter()
                        .map(|(d, _)| d.as_str())
                        .collect::<Vec<_>>()
                        .join(" or "),
                    mount_point: v.mount_point.clone(),
                    looked: looked.iter().map(|p| p.display().to_string()).collect(),
                }
            })?;
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
            // Said before the detach, so no crash between the two leaves a
            // detached volume that does not say so: `detached` makes a
            // restore re-attach it (it holds newer data than any snapshot),
            // `deleting` makes a re-run with --delete finish the job. A
            // volume that cannot be told so is not detached.
            let said = if s.delete {
                STATE_DELETING
            } else {
                STATE_DETACHED
            };
            let state = [(TAG_STATE.to_string(), said.to_string())];
            ec2.create_tags(&vol.id, &state).await.map_err(|source| {
                VolumeError::NotMarkedForDetach {
                    volume: vol.id.clone(),
                    state: said,
                    source: Box::new(source),
                }
            })?;
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
            if s.delete {
                ec2.delete_volume(&vol.id).await?;
                did.push(format!("deleted {}", vol.id));
            }
        }
    }
    hooks::run(&s.snapshotter, HookPoint::PostUnmount, &env).await?;
    Ok(did.join(", "))
}

/// Delete what an earlier `--delete` of this mount point detached and
/// could not delete (not attached anywhere now).
async fn delete_leftovers(
    s: &Shared,
    v: &Volume,
    did: &mut Vec<String>,
) -> Result<(), VolumeError> {
    for vol in s.deleting.iter().filter(|vol| {
        vol.attachments.is_empty()
            && vol
                .tags
                .get("mount_point")
                .is_some_and(|t| crate::config::mount_point::same(t, &v.mount_point))
    }) {
        tracing::info!(
            "{}: deleting {}, which an earlier --delete detached",
            v.mount_point,
            vol.id
        );
        s.ec2.delete_volume(&vol.id).await?;
        did.push(format!("deleted {} (left by an earlier run)", vol.id));
    }
    Ok(())
}

/// The names `vol` may have on this host, as `(device, kernel name)`
/// pairs: each EC2 attached it here as, which differs from the profile's
/// `device` when the volume was found by its mount_point tag (the profile
/// changed, or someone attached it by hand). The profile's own device name
/// is looked under only where EC2 names it (or names nothing): a node
/// there would be another device, and its being free would say nothing.
fn device_names(v: &Volume, vol: &VolumeInfo, me: &str) -> Vec<(String, String)> {
    let offset = v.device_name_offset;
    let profile = (v.device.clone(), kernel_device_name(&v.device, offset));
    let mut out: Vec<(String, String)> = Vec::new();
    for a in vol.attachments.iter().filter(|a| a.instance_id == me) {
        let pair = if a.device == profile.0 || a.device == profile.1 {
            profile.clone()
        } else {
            (a.device.clone(), kernel_device_name(&a.device, offset))
        };
        if !out.contains(&pair) {
            out.push(pair);
        }
    }
    if out.is_empty() {
        out.push(profile);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::Attachment;

    fn attached(devices: &[(&str, &str)]) -> VolumeInfo {
        VolumeInfo {
            id: "vol-1".into(),
            state: "in-use".into(),
            size_gib: None,
            volume_type: None,
            iops: None,
            availability_zone: None,
            attachments: devices
                .iter()
                .map(|(instance, device)| Attachment {
                    instance_id: instance.to_string(),
                    device: device.to_string(),
                    state: "attached".into(),
                })
                .collect(),
            tags: Default::default(),
            fast_restored: None,
            init_rate: None,
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(d, k)| (d.to_string(), k.to_string()))
            .collect()
    }

    #[test]
    fn device_names_are_ec2s_for_this_instance() {
        let mut v = Volume::with_defaults("/dev/sdf", "/data", 1);
        // As the profile says.
        let vol = attached(&[("i-me", "/dev/sdf")]);
        assert_eq!(
            device_names(&v, &vol, "i-me"),
            pairs(&[("/dev/sdf", "/dev/xvdf")])
        );
        // Attached as another name (found by its mount_point tag): that
        // name only, never the profile's, which is another device's.
        let vol = attached(&[("i-other", "/dev/sdf"), ("i-me", "/dev/sdh")]);
        assert_eq!(
            device_names(&v, &vol, "i-me"),
            pairs(&[("/dev/sdh", "/dev/xvdh")])
        );
        // The kernel's shift applies to it too; EC2 naming the kernel's
        // name of the profile's device is the profile's device.
        v.device_name_offset = 4;
        assert_eq!(
            device_names(&v, &vol, "i-me"),
            pairs(&[("/dev/sdh", "/dev/xvdl")])
        );
        let vol = attached(&[("i-me", "/dev/xvdj")]);
        assert_eq!(
            device_names(&v, &vol, "i-me"),
            pairs(&[("/dev/sdf", "/dev/xvdj")])
        );
        // No attachment here named: the profile's.
        assert_eq!(
            device_names(&v, &attached(&[]), "i-me"),
            pairs(&[("/dev/sdf", "/dev/xvdj")])
        );
    }
}
