//! One volume of mount-snapshots, from start to mounted: create it (from
//! its snapshot, or empty), wait for it, attach, find its device, make or
//! check its filesystem, mount it, tag each step; on failure roll that
//! volume back and say what is left.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use super::error::VolumeError;
use super::hooks;
use super::nesting;
use super::plan::{MountAction, VolumePlan};
use super::points::RestoreSource;
use super::restore_speed;
use super::tags::resource_tags;
use super::tags::{
    SOURCE_EMPTY, STATE_ATTACHED, STATE_DETACHED, STATE_MOUNTED, STATE_RESTORING, TAG_DEVICE,
    TAG_PROFILE, TAG_SOURCE, TAG_STATE,
};
use crate::cloud::{
    poll_until, Backoff, Ec2, NewVolume, SnapshotInfo, SnapshotState, VolumeInfo, WaitError,
};
use crate::config::{kernel_device_name, FileSystem, HookPoint};
use crate::host::{devices, fs, mount, HostError};
use crate::instance::Identity;
use crate::snapshotter::{HookCtx, Snapshotter};

/// A new volume is usually available in seconds; gp3 from a large snapshot
/// can take a minute or two.
const AVAILABLE_DEADLINE: Duration = Duration::from_secs(300);
/// Attachments complete in seconds; allow for a slow API.
const ATTACH_DEADLINE: Duration = Duration::from_secs(120);
/// udev creates the device node shortly after the attachment.
const DEVICE_DEADLINE: Duration = Duration::from_secs(60);

/// Everything the per-volume tasks share.
pub(super) struct Shared {
    pub(super) ec2: Ec2,
    pub(super) identity: Identity,
    pub(super) snapshotter: Arc<dyn Snapshotter>,
    /// `Snapshotter::retention`, asked once.
    pub(super) retention: Duration,
    pub(super) filters: Vec<(String, String)>,
    pub(super) device_root: PathBuf,
    pub(super) wait_pending: Duration,
    /// `--init-rate`: over every volume's `init_rate` (`Some(None)`: off).
    pub(super) init_rate: Option<Option<u32>>,
    /// `--prewarm` or the profile's `prewarm`.
    pub(super) prewarm: crate::config::Prewarm,
}

/// How one volume ended.
pub(super) enum Outcome {
    Mounted {
        volume_id: String,
        block_device: PathBuf,
        from: String,
    },
    Skipped {
        mounted_from: String,
    },
    Failed {
        error: String,
        cleanup: String,
    },
}

/// Orders the mounts of nested mount points while everything else about
/// the volumes runs concurrently: a volume whose mount point lies inside
/// another of the profile's waits, just before its mount(2), until that
/// one is mounted (and fails if that one will not be).
pub(super) struct Gate {
    parent: Option<(String, tokio::sync::watch::Receiver<Option<bool>>)>,
    done: tokio::sync::watch::Sender<Option<bool>>,
}

impl Gate {
    pub(super) fn for_plans(plans: &[VolumePlan]) -> Vec<Gate> {
        let mps: Vec<&str> = plans
            .iter()
            .map(|p| p.volume.mount_point.as_str())
            .collect();
        let channels: Vec<_> = plans
            .iter()
            .map(|_| tokio::sync::watch::channel(None))
            .collect();
        nesting::parents(&mps)
            .into_iter()
            .zip(&channels)
            .map(|(parent, (tx, _))| Gate {
                parent: parent.map(|i| (mps[i].to_string(), channels[i].1.clone())),
                done: tx.clone(),
            })
            .collect()
    }

    /// This mount point is mounted (or was already).
    fn mounted(&self) {
        self.done.send_replace(Some(true));
    }

    /// This mount point will not be mounted (unless it already is).
    fn failed(&self) {
        self.done.send_if_modified(|v| {
            let unset = v.is_none();
            if unset {
                *v = Some(false);
            }
            unset
        });
    }

    async fn parent_mounted(&self) -> Result<(), VolumeError> {
        let Some((mp, rx)) = &self.parent else {
            return Ok(());
        };
        let mut rx = rx.clone();
        match rx.wait_for(Option::is_some).await.map(|v| *v) {
            Ok(Some(true)) => Ok(()),
            _ => Err(VolumeError::ParentNotMounted(mp.clone())),
        }
    }
}

/// A volume this run created, until it is mounted: on failure it is rolled
/// back (it holds no data of its own yet).
struct Created {
    id: String,
    attached: bool,
    /// Tagged `attached` (then the mount failed): the rollback puts
    /// `restoring` back first, so that a volume it cannot delete is still
    /// known for one that never held data.
    marked: bool,
    /// A rate was wanted and not sent because fast snapshot restore is on:
    /// if the volume is not fast restored after all, say so.
    fsr_expected: bool,
}

pub(super) async fn restore_one(s: &Shared, plan: VolumePlan, gate: Gate) -> Outcome {
    let outcome = restore_gated(s, plan, &gate).await;
    // A child waiting on this mount point learns it will not be mounted.
    gate.failed();
    outcome
}

async fn restore_gated(s: &Shared, plan: VolumePlan, gate: &Gate) -> Outcome {
    let v = &plan.volume;
    let mut env = HookCtx::volume(s.snapshotter.name(), &v.mount_point, &v.device);
    if let MountAction::Skip { mounted_from } = &plan.action {
        gate.mounted();
        tracing::info!(
            "{}: already mounted from {mounted_from}; leaving it alone",
            v.mount_point
        );
        return Outcome::Skipped {
            mounted_from: mounted_from.clone(),
        };
    }
    if let MountAction::Finish { volume, dev, .. } = &plan.action {
        return finish(s, &plan, volume, dev, gate, &mut env).await;
    }
    if let Err(e) = hooks::run(&s.snapshotter, HookPoint::PreMount, &env).await {
        return Outcome::Failed {
            error: e.to_string(),
            cleanup: "nothing was changed".into(),
        };
    }
    let mut created: Option<Created> = None;
    match restore_steps(s, &plan, &mut created, &mut env, gate).await {
        Ok((volume_id, block_device, from)) => {
            if let Err(e) = hooks::run(&s.snapshotter, HookPoint::PostMount, &env).await {
                return Outcome::Failed {
                    error: e.to_string(),
                    cleanup: format!("{volume_id} stays mounted"),
                };
            }
            Outcome::Mounted {
                volume_id,
                block_device,
                from,
            }
        }
        Err(error) => {
            tracing::error!("{}: {error}", v.mount_point);
            let cleanup = match created {
                Some(c) => rollback(s, &plan, c).await,
                None => "nothing created by this run".into(),
            };
            Outcome::Failed {
                error: error.to_string(),
                cleanup,
            }
        }
    }
}

/// An earlier run mounted this volume (and may have been cut short before
/// tagging it `mounted`): if what is mounted is that volume's device, tag
/// it if need be and run the post_mount hook (the earlier run may not
/// have; 0.2.12 ran it for a skipped volume too); if it is anything else,
/// fail and touch nothing.
async fn finish(
    s: &Shared,
    plan: &VolumePlan,
    volume: &VolumeInfo,
    dev: &str,
    gate: &Gate,
    env: &mut HookCtx,
) -> Outcome {
    let v = &plan.volume;
    let kernel = kernel_device_name(&v.device, v.device_name_offset);
    let block = devices::find(&s.device_root, &v.device, &kernel, &volume.id);
    let same = block
        .as_deref()
        .and_then(devices::dev_number)
        .is_some_and(|d| d == dev);
    let Some(block) = block.filter(|_| same) else {
        return Outcome::Failed {
            error: format!(
                "mounted from another device ({dev}), not from {} attached at {}: run with --ignore-mounted to leave it alone",
                volume.id, v.device
            ),
            cleanup: "nothing was changed".into(),
        };
    };
    gate.mounted();
    if volume.tags.get(TAG_STATE).map(String::as_str) == Some(STATE_MOUNTED) {
        tracing::info!(
            "{}: {} is mounted here already (an earlier run restored it)",
            v.mount_point,
            volume.id
        );
    } else {
        tracing::info!(
            "{}: {} was mounted by an earlier run that was cut short; tagging it {STATE_MOUNTED}",
            v.mount_point,
            volume.id
        );
        let state = vec![(TAG_STATE.to_string(), STATE_MOUNTED.to_string())];
        if let Err(e) = s.ec2.create_tags(&volume.id, &state).await {
            return Outcome::Failed {
                error: format!("could not tag {} as mounted: {e}", volume.id),
                cleanup: format!("{} stays mounted", volume.id),
            };
        }
    }
    env.volume_id = Some(volume.id.clone());
    env.block_device = Some(block.display().to_string());
    // After a reboot: a warm-up cut short goes on from its checkpoint
    // (none is started for a volume restored long ago, nor where the
    // state directory was lost: that would read a whole volume in use).
    let cut_short = crate::prewarm::progress(&volume.id).is_some_and(|p| !p.finished);
    if cut_short {
        restore_speed::warm_up(s.prewarm, &v.mount_point, &block, &volume.id).await;
    }
    if let Err(e) = hooks::run(&s.snapshotter, HookPoint::PostMount, env).await {
        return Outcome::Failed {
            error: e.to_string(),
            cleanup: format!("{} stays mounted", volume.id),
        };
    }
    Outcome::Skipped {
        mounted_from: format!(
            "{} ({}, restored by an earlier run)",
            block.display(),
            volume.id
        ),
    }
}

/// The volume a restore works on, and what is known of it.
struct Obtained {
    volume_id: String,
    /// Attached to this instance already (adopted where it was).
    attached: bool,
    /// Its `snaptastic:source`: a snapshot id, `empty`, or who left it.
    source: String,
    /// Whether a blank device may be formatted: only a volume this run
    /// created empty, or one an earlier run created empty that never got
    /// as far as being attached (`restoring`): any other may hold data.
    may_format: bool,
}

/// The plan's volume: adopted as it is, or created from its source.
async fn obtain(
    s: &Shared,
    plan: &VolumePlan,
    created: &mut Option<Created>,
) -> Result<Obtained, VolumeError> {
    let v = &plan.volume;
    match &plan.action {
        MountAction::Skip { .. } | MountAction::Finish { .. } => {
            unreachable!("handled by the caller")
        }
        MountAction::Adopt { volume, attached } => {
            let source = volume
                .tags
                .get(TAG_SOURCE)
                .cloned()
                .unwrap_or_else(|| "an earlier run".into());
            if volume.tags.get(TAG_STATE).map(String::as_str) == Some(STATE_DETACHED) {
                tracing::info!(
                    "{}: re-attaching {} detached by unmount-snapshots (newer than any snapshot)",
                    v.mount_point,
                    volume.id
                );
            } else {
                tracing::info!(
                    "{}: adopting {} left by an earlier run ({})",
                    v.mount_point,
                    volume.id,
                    volume.state
                );
            }
            let state = volume.tags.get(TAG_STATE).map(String::as_str);
            Ok(Obtained {
                volume_id: volume.id.clone(),
                attached: *attached,
                source,
                may_format: state == Some(STATE_RESTORING),
            })
        }
        MountAction::Create { source } => create(s, plan, source, created).await,
    }
}

/// A new volume, tagged at creation as `restoring` with where it comes
/// from, so a run that dies before the mount leaves one the next adopts.
async fn create(
    s: &Shared,
    plan: &VolumePlan,
    source: &RestoreSource,
    created: &mut Option<Created>,
) -> Result<Obtained, VolumeError> {
    let v = &plan.volume;
    let snapshot = resolve_source(s, v.mount_point.as_str(), source).await?;
    let source_label = snapshot
        .as_ref()
        .map_or(SOURCE_EMPTY.to_string(), |s| s.id.clone());
    let mut tags = resource_tags(
        &s.identity.instance_id,
        &v.mount_point,
        &s.filters,
        chrono::Utc::now(),
        s.retention,
    );
    tags.extend([
        (TAG_PROFILE.to_string(), s.snapshotter.name().to_string()),
        (TAG_SOURCE.to_string(), source_label.clone()),
        (TAG_DEVICE.to_string(), v.device.clone()),
        (TAG_STATE.to_string(), STATE_RESTORING.to_string()),
    ]);
    let mut spec = NewVolume {
        availability_zone: s.identity.availability_zone.clone(),
        size_gib: v.size_gib,
        volume_type: v.volume_type.as_str().to_string(),
        iops: v.iops,
        throughput: v.throughput,
        snapshot_id: snapshot.as_ref().map(|s| s.id.clone()),
        encrypted: v.encrypted,
        kms_key_id: v.kms_key_id.clone(),
        init_rate: None,
        tags,
        client_token: format!(
            "snaptastic-{}-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros(),
            v.device.trim_start_matches("/dev/")
        ),
    };
    tracing::info!(
        "{}: creating a {} GiB {} volume in {} from {source_label}",
        v.mount_point,
        v.size_gib,
        v.volume_type,
        s.identity.availability_zone
    );
    let mut fsr_expected = false;
    if let Some(snap) = &snapshot {
        let wanted = s.init_rate.unwrap_or(v.init_rate);
        let zone = &s.identity.availability_zone;
        spec.init_rate = restore_speed::rate_for(&s.ec2, zone, &v.mount_point, wanted, snap).await;
        fsr_expected = wanted.is_some() && spec.init_rate.is_none();
    }
    let id = restore_speed::create_volume(&s.ec2, &v.mount_point, &mut spec).await?;
    *created = Some(Created {
        id: id.clone(),
        attached: false,
        marked: false,
        fsr_expected,
    });
    Ok(Obtained {
        volume_id: id,
        attached: false,
        source: source_label,
        may_format: true,
    })
}

/// Attach the volume once it is available, and wait for the attachment.
async fn attach(
    s: &Shared,
    plan: &VolumePlan,
    volume_id: &str,
    created: &mut Option<Created>,
) -> Result<(), VolumeError> {
    let (v, me) = (&plan.volume, &s.identity.instance_id);
    let available = wait_available(s, volume_id, AVAILABLE_DEADLINE).await?;
    let fsr_expected = created.as_ref().is_some_and(|c| c.fsr_expected);
    restore_speed::report_created(&v.mount_point, &available, fsr_expected);
    tracing::info!(
        "{}: attaching {volume_id} to {me} as {}",
        v.mount_point,
        v.device
    );
    s.ec2.attach_volume(volume_id, me, &v.device).await?;
    if let Some(c) = created.as_mut() {
        c.attached = true;
    }
    wait_attached(s, volume_id).await
}

/// The steps; returns (volume id, block device, where the data came from).
async fn restore_steps(
    s: &Shared,
    plan: &VolumePlan,
    created: &mut Option<Created>,
    env: &mut HookCtx,
    gate: &Gate,
) -> Result<(String, PathBuf, String), VolumeError> {
    let v = &plan.volume;
    let me = &s.identity.instance_id;
    let Obtained {
        volume_id,
        attached,
        source,
        may_format,
    } = obtain(s, plan, created).await?;
    env.volume_id = Some(volume_id.clone());

    if !attached {
        attach(s, plan, &volume_id, created).await?;
    }
    if v.delete_on_termination {
        if let Err(e) = s.ec2.set_delete_on_termination(me, &v.device, true).await {
            tracing::warn!("{}: could not set DeleteOnTermination: {e}", v.mount_point);
        }
    }

    let kernel = kernel_device_name(&v.device, v.device_name_offset);
    let block = devices::wait_for(
        &s.device_root,
        &v.device,
        &kernel,
        &volume_id,
        DEVICE_DEADLINE,
    )
    .await?;
    env.block_device = Some(block.display().to_string());
    tracing::info!("{}: {volume_id} is {}", v.mount_point, block.display());

    let blank_ok = may_format.then_some(()).ok_or_else(|| match &plan.action {
        MountAction::Adopt { volume, .. } => volume
            .tags
            .get(TAG_STATE)
            .cloned()
            .unwrap_or_else(|| "used".into()),
        _ => "used".into(),
    });
    let (fs_type, from) = prepare_filesystem(
        v.file_system,
        &block,
        &source,
        &v.mount_point,
        blank_ok.map_err(|state| VolumeError::UsedBlank {
            volume: volume_id.clone(),
            device: block.clone(),
            state,
        }),
    )
    .await?;
    let (b, mp, opts) = (
        block.clone(),
        PathBuf::from(&v.mount_point),
        v.mount_options.clone(),
    );
    tracing::info!(
        "{}: mounting {} ({fs_type})",
        v.mount_point,
        block.display()
    );
    // Nested mount points: the parent first, or it would cover this one.
    gate.parent_mounted().await?;
    // Say `attached` before the volume can take any data, and do not mount
    // it if that cannot be said: `restoring` means "never held data" to
    // `clean volumes`, and the `mounted` tag below may fail to be written.
    let state = vec![(TAG_STATE.to_string(), STATE_ATTACHED.to_string())];
    s.ec2
        .create_tags(&volume_id, &state)
        .await
        .map_err(|source| VolumeError::NotMarked {
            volume: volume_id.clone(),
            source: Box::new(source),
        })?;
    if let Some(c) = created.as_mut() {
        c.marked = true;
    }
    blocking(move || mount::mount_device(&b, &mp, fs_type, &opts)).await?;
    gate.mounted();
    // From here the volume holds the host's data: never roll it back.
    *created = None;
    let state = vec![(TAG_STATE.to_string(), STATE_MOUNTED.to_string())];
    if let Err(e) = s.ec2.create_tags(&volume_id, &state).await {
        tracing::warn!(
            "{}: could not tag {volume_id} as mounted: {e}; it stays tagged {STATE_ATTACHED}, which clean volumes leaves alone",
            v.mount_point
        );
    }
    if source.starts_with("snap-") {
        restore_speed::warm_up(s.prewarm, &v.mount_point, &block, &volume_id).await;
    }
    Ok((volume_id, block, from))
}

/// Make a filesystem only on a volume created empty that is still blank;
/// a restored volume must already hold one (its type wins over the
/// profile's, with a warning).
/// `blank_ok`: whether a blank volume created empty may be formatted, or
/// the error that says why not (it was used: a blank one is damaged).
async fn prepare_filesystem(
    wanted: FileSystem,
    block: &Path,
    source: &str,
    mount_point: &str,
    blank_ok: Result<(), VolumeError>,
) -> Result<(FileSystem, String), VolumeError> {
    let b = block.to_path_buf();
    let found = blocking(move || fs::probe(&b)).await?;
    match found {
        None if source == SOURCE_EMPTY => {
            blank_ok?;
            tracing::info!("{mount_point}: formatting {} as {wanted}", block.display());
            let b = block.to_path_buf();
            blocking(move || fs::mkfs(&b, wanted)).await?;
            Ok((wanted, format!("new empty {wanted} volume")))
        }
        None => Err(VolumeError::RestoredBlank {
            device: block.to_path_buf(),
            from: source.to_string(),
        }),
        Some(t) => match FileSystem::parse(&t) {
            Some(fs_type) => {
                if fs_type != wanted {
                    tracing::warn!("{mount_point}: the volume holds {fs_type}, the profile says {wanted}; mounting {fs_type}");
                }
                let from = if source == SOURCE_EMPTY {
                    "formatted by an earlier run".to_string()
                } else {
                    format!("from {source}")
                };
                Ok((fs_type, from))
            }
            None => Err(VolumeError::UnsupportedFilesystem {
                device: block.to_path_buf(),
                found: t,
            }),
        },
    }
}

/// The snapshot to restore, waiting for a pending one within the limit and
/// falling back (with a warning) when it fails or takes too long.
async fn resolve_source(
    s: &Shared,
    mount_point: &str,
    source: &RestoreSource,
) -> Result<Option<SnapshotInfo>, VolumeError> {
    match source {
        RestoreSource::Empty => Ok(None),
        RestoreSource::Snapshot { snapshot } => Ok(Some(snapshot.clone())),
        RestoreSource::WaitFor {
            pending,
            fallback,
            set,
        } => {
            tracing::info!(
                "{mount_point}: newest snapshot {} is pending; waiting up to {}",
                pending.id,
                humantime::format_duration(s.wait_pending)
            );
            let waited = poll_until(s.wait_pending, Backoff::SNAPSHOT, || async {
                Ok(match s.ec2.snapshot(&pending.id).await? {
                    Some(snap) if snap.state == SnapshotState::Completed => Ok(Some(snap)),
                    Some(snap) if snap.state == SnapshotState::Pending => {
                        Err("pending".to_string())
                    }
                    Some(snap) => {
                        tracing::warn!(
                            "{mount_point}: snapshot {} ended in {}",
                            snap.id,
                            snap.state.as_str()
                        );
                        Ok(None)
                    }
                    None => Ok(None),
                })
            })
            .await;
            let fb = fallback
                .as_ref()
                .map_or("an empty volume".to_string(), |f| f.id.clone());
            // One volume of a set must not come from another point in
            // time than the others, nor start empty.
            if let (Some(run), None) = (set, fallback) {
                return match waited {
                    Ok(Some(done)) => Ok(Some(done)),
                    Ok(None) => Err(VolumeError::SetMemberUnusable {
                        snapshot: pending.id.clone(),
                        run: run.clone(),
                        reason: "it failed or vanished".into(),
                    }),
                    Err(e) => Err(VolumeError::SetMemberUnusable {
                        snapshot: pending.id.clone(),
                        run: run.clone(),
                        reason: e.to_string(),
                    }),
                };
            }
            match waited {
                Ok(Some(done)) => Ok(Some(done)),
                // It failed or vanished: it never held usable data.
                Ok(None) => {
                    tracing::warn!(
                        "{mount_point}: snapshot {} is not usable; falling back to {fb}",
                        pending.id
                    );
                    Ok(fallback.as_deref().cloned())
                }
                Err(WaitError::TimedOut(_)) if fallback.is_some() => {
                    tracing::warn!(
                        "{mount_point}: snapshot {} is still pending after {}; falling back to {fb}",
                        pending.id,
                        humantime::format_duration(s.wait_pending)
                    );
                    Ok(fallback.as_deref().cloned())
                }
                // Never start empty over data that is still being saved.
                Err(e) => Err(VolumeError::PendingWithoutFallback {
                    snapshot: pending.id.clone(),
                    reason: e.to_string(),
                }),
            }
        }
    }
}

/// Wait for a volume to be `available`.
async fn wait_available(
    s: &Shared,
    id: &str,
    deadline: Duration,
) -> Result<VolumeInfo, VolumeError> {
    let waited = poll_until(deadline, Backoff::VOLUME, || async {
        Ok(match s.ec2.volume(id).await? {
            Some(v) if v.state == "available" => Ok(Ok(v)),
            // A volume in error never recovers: stop waiting.
            Some(v) if v.state == "error" => Ok(Err(VolumeError::InError(id.to_string()))),
            Some(v) => Err(v.state),
            None => Err("not visible yet".to_string()),
        })
    })
    .await
    .map_err(|source| VolumeError::Wait {
        id: id.to_string(),
        what: "be available",
        source: Box::new(source),
    })?;
    waited
}

async fn wait_attached(s: &Shared, id: &str) -> Result<(), VolumeError> {
    let me = &s.identity.instance_id;
    poll_until(ATTACH_DEADLINE, Backoff::VOLUME, || async {
        Ok(match s.ec2.volume(id).await? {
            Some(v) => match v.attachments.iter().find(|a| &a.instance_id == me) {
                Some(a) if a.state == "attached" => Ok(()),
                Some(a) => Err(a.state.clone()),
                None => Err(format!("volume {}", v.state)),
            },
            None => Err("not visible".to_string()),
        })
    })
    .await
    .map_err(|source| VolumeError::Wait {
        id: id.to_string(),
        what: "attach",
        source: Box::new(source),
    })
}

/// Undo a volume this run created and never mounted: detach if attached,
/// then delete. If that fails too, say what is left and how it is found.
async fn rollback(s: &Shared, plan: &VolumePlan, c: Created) -> String {
    let me = &s.identity.instance_id;
    let mp = &plan.volume.mount_point;
    let undo = async {
        if c.marked {
            // The mount failed: it never held data. If the delete below
            // fails too, the next run adopts it or `clean volumes` takes it.
            let state = [(TAG_STATE.to_string(), STATE_RESTORING.to_string())];
            if let Err(e) = s.ec2.create_tags(&c.id, &state).await {
                tracing::warn!(
                    "{mp}: could not tag {} back to {STATE_RESTORING}: {e}",
                    c.id
                );
            }
        }
        if c.attached {
            tracing::info!("{mp}: rolling back: detaching {}", c.id);
            s.ec2.detach_volume(&c.id, me).await?;
            wait_available(s, &c.id, ATTACH_DEADLINE).await?;
        }
        tracing::info!("{mp}: rolling back: deleting {}", c.id);
        Ok::<_, VolumeError>(s.ec2.delete_volume(&c.id).await?)
    };
    match undo.await {
        Ok(()) => format!("rolled back ({} deleted)", c.id),
        Err(e) => {
            tracing::error!(
                "{mp}: could not roll back {}: {e}; it stays tagged {TAG_PROFILE}={} instance_id={me} mount_point={mp} and the next mount-snapshots adopts it",
                c.id,
                s.snapshotter.name()
            );
            format!(
                "left {} for the next run to adopt (rollback failed: {e})",
                c.id
            )
        }
    }
}

/// Host work (mkfs, mount, blkid) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HostError> + Send + 'static,
) -> Result<T, VolumeError> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| VolumeError::Task(e.into()))??)
}
