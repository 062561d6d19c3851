//! `mount-snapshots NAME`: restore every volume of a profile, concurrently,
//! from its newest usable snapshot (or empty and formatted), attach and
//! mount it. Bad input stops everything before anything is created; a
//! failure on one volume rolls that volume back and leaves the others
//! mounted.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use super::error::VolumeError;
use super::explain::{Explainer, Flags};
use super::hooks;
use super::nesting;
use super::plan::{detached_for, plan_mount, MountAction, Observed, PlanOptions, VolumePlan};
use super::points::{PointInTime, RestoreSource};
use super::tags::resource_tags;
use super::tags::{
    SOURCE_EMPTY, STATE_ATTACHED, STATE_DETACHED, STATE_MOUNTED, STATE_RESTORING, TAG_DEVICE,
    TAG_PROFILE, TAG_SOURCE, TAG_STATE,
};
use crate::cloud::{poll_until, Backoff, Ec2, NewVolume, SnapshotInfo, SnapshotState, WaitError};
use crate::config::{kernel_device_name, FileSystem, HookPoint};
use crate::context::VolumeContext;
use crate::host::{devices, fs, mount, mountinfo, privileges, HostError};
use crate::instance::Identity;
use crate::snapshotter::{HookCtx, Snapshotter};

/// A new volume is usually available in seconds; gp3 from a large snapshot
/// can take a minute or two.
const AVAILABLE_DEADLINE: Duration = Duration::from_secs(300);
/// Attachments complete in seconds; allow for a slow API.
const ATTACH_DEADLINE: Duration = Duration::from_secs(120);
/// udev creates the device node shortly after the attachment.
const DEVICE_DEADLINE: Duration = Duration::from_secs(60);

/// How to restore.
#[derive(Debug, Clone)]
pub(crate) struct MountOptions {
    /// Leave volumes already mounted at their mount point alone.
    pub ignore_mounted: bool,
    /// Print the plan and change nothing.
    pub dry_run: bool,
    /// How long to wait for a newer pending snapshot.
    pub wait_pending: Duration,
    /// Mount over a mount point directory that is not empty.
    pub allow_non_empty: bool,
    /// Without a complete snapshot set, restore each volume from its own
    /// newest snapshot (points in time differ).
    pub allow_mixed: bool,
    /// `--set RUN`: that make-snapshots run's snapshots.
    pub set: Option<String>,
    /// Restore from snapshots even where a detached volume (newer data)
    /// is in another AZ.
    pub from_snapshot: bool,
    /// Where the per-volume results go (lines, or `--json`).
    pub report: crate::report::Report,
}

/// Everything the per-volume tasks share.
struct Shared {
    ec2: Ec2,
    identity: Identity,
    snapshotter: Arc<dyn Snapshotter>,
    /// `Snapshotter::retention`, asked once.
    retention: Duration,
    filters: Vec<(String, String)>,
    device_root: PathBuf,
    wait_pending: Duration,
}

/// How one volume ended.
enum Outcome {
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

pub(crate) async fn run(ctx: &VolumeContext, args: &MountOptions) -> Result<ExitCode> {
    let identity = ctx.identity()?.clone();
    let (ec2, volumes, filters) = (&ctx.ec2, &ctx.volumes, &ctx.filters);
    let name = ctx.snapshotter.name().to_string();

    // One call of each kind for the whole profile. Volumes of ours: the
    // profile's name and filter tags (which every volume we create
    // carries), any instance: a volume unmount-snapshots detached on
    // another instance holds this profile's newest data too. The planner
    // adopts crash leftovers only of this instance.
    let mut ours_tags = vec![(TAG_PROFILE.to_string(), name.clone())];
    ours_tags.extend(filters.iter().cloned());
    let (snapshots, attached, ours) = tokio::try_join!(
        async {
            ec2.snapshots_tagged(filters, &ctx.owners)
                .await
                .context("looking up snapshots")
        },
        async {
            ec2.volumes_attached_to(&identity.instance_id)
                .await
                .context("looking up attached volumes")
        },
        async {
            ec2.volumes_tagged(&ours_tags)
                .await
                .context("looking up volumes left by earlier runs")
        },
    )?;
    let mounts = mountinfo::read().context("reading /proc/self/mountinfo")?;
    let seen = Observed {
        instance_id: &identity.instance_id,
        availability_zone: &identity.availability_zone,
        mounts: &mounts,
        attached: &attached,
        ours: &ours,
        snapshots: &snapshots,
    };
    let opts = PlanOptions {
        ignore_mounted: args.ignore_mounted,
        allow_mixed: args.allow_mixed,
        set: args.set.as_deref(),
        from_snapshot: args.from_snapshot,
    };
    let plan = match plan_mount(volumes, &seen, opts) {
        Ok(p) => p,
        Err(problems) => bail!("nothing was changed:\n{}", problems.join("\n")),
    };
    let plans = plan.volumes;
    let problems = preflight(&plans, &ctx.device_root, args);
    if !problems.is_empty() {
        bail!("nothing was changed:\n{}", problems.join("\n"));
    }
    let restores = plans.iter().any(|p| {
        matches!(
            p.action,
            MountAction::Create {
                source: RestoreSource::Snapshot { .. } | RestoreSource::WaitFor { .. }
            }
        )
    });
    if restores {
        match &plan.point {
            PointInTime::Mixed { .. } | PointInTime::Diverged { .. } => {
                tracing::warn!("{} (--allow-mixed)", plan.point.explain())
            }
            PointInTime::Generation { .. } => tracing::warn!("{}", plan.point.explain()),
            point => tracing::info!("{}", point.explain()),
        }
        // A mount point no snapshot has ever covered (new to the profile,
        // or the first run failed on it) starts empty beside a restored set.
        for p in &plans {
            if let MountAction::Create {
                source: RestoreSource::Empty,
            } = &p.action
            {
                tracing::warn!(
                    "{}: no snapshot of this mount point exists; it is created empty beside the volumes restored from a snapshot",
                    p.volume.mount_point
                );
            }
        }
    }
    for p in &plans {
        for w in &p.warnings {
            tracing::warn!("{}: {w}", p.volume.mount_point);
        }
    }
    if args.dry_run {
        let mps: Vec<&str> = volumes.iter().map(|v| v.mount_point.as_str()).collect();
        let flags = Flags {
            allow_mixed: args.allow_mixed,
            set: args.set.as_deref(),
            from_snapshot: args.from_snapshot,
        };
        let detached = mps
            .iter()
            .map(|mp| {
                detached_for(&seen, mp)
                    .iter()
                    .map(|d| d.id.clone())
                    .collect()
            })
            .collect();
        let why = Explainer::new(&snapshots, &mps, &plan.point, flags).with_detached(detached);
        print!("{}", render_plan(&plans, &plan.point, &identity, &why));
        return Ok(ExitCode::SUCCESS);
    }

    tracing::info!(profile = %name, volumes = plans.len(), "mounting volumes");
    hooks::run(&ctx.snapshotter, HookPoint::PreMounts, &HookCtx::run(&name))
        .await
        .map_err(|e| anyhow::anyhow!("{e}; nothing was changed"))?;

    let shared = Arc::new(Shared {
        ec2: ec2.clone(),
        identity,
        snapshotter: ctx.snapshotter.clone(),
        retention: ctx.snapshotter.retention(),
        filters: filters.clone(),
        device_root: ctx.device_root.clone(),
        wait_pending: args.wait_pending,
    });
    // Every volume is waited for, even if another's task panicked.
    let gates = Gate::for_plans(&plans);
    let tasks = plans.iter().cloned().zip(gates).map(|(plan, gate)| {
        let shared = shared.clone();
        async move { restore_one(&shared, plan, gate).await }
    });
    let outcomes: Vec<(usize, Outcome)> = crate::tasks::join_in_order(tasks)
        .await
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|e| Outcome::Failed {
                error: e.to_string(),
                cleanup: "state unknown: check list-volumes".into(),
            })
        })
        .enumerate()
        .collect();

    let failed = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Failed { .. }))
        .count();
    if failed == 0 {
        if let Err(e) = hooks::run(
            &shared.snapshotter,
            HookPoint::PostMounts,
            &HookCtx::run(&name),
        )
        .await
        {
            tracing::error!("{e}");
            print_summary(&args.report, &plans, &outcomes);
            return Ok(ExitCode::FAILURE);
        }
    } else {
        tracing::info!("post_mounts hook not run: {failed} volume(s) failed");
    }
    print_summary(&args.report, &plans, &outcomes);
    Ok(crate::tasks::exit_code(failed))
}

/// Host-side checks before anything is created: the device name is free,
/// mkfs exists where a filesystem may be made, the mount point is empty.
fn preflight(plans: &[VolumePlan], root: &Path, args: &MountOptions) -> Vec<String> {
    let mut problems = Vec::new();
    let changes_host = plans
        .iter()
        .any(|p| !matches!(p.action, MountAction::Skip { .. }));
    // A dry run shows the plan to anyone.
    if changes_host && !args.dry_run && !privileges::can_administer() {
        problems.push(format!(
            "mount-snapshots needs root or CAP_SYS_ADMIN to attach, format and mount volumes (running as uid {}): run it with sudo",
            privileges::euid()
        ));
        return problems;
    }
    for p in plans {
        let v = &p.volume;
        let at = |msg: String| format!("{} ({}): {msg}", v.mount_point, v.device);
        let creating = matches!(
            p.action,
            MountAction::Create { .. }
                | MountAction::Adopt {
                    attached: false,
                    ..
                }
        );
        if creating {
            let kernel = kernel_device_name(&v.device, v.device_name_offset);
            for name in [&kernel, &v.device] {
                let node = devices::node(root, name);
                if node.exists() {
                    problems.push(at(format!(
                        "device {} already exists on this host: another volume or disk uses that name",
                        node.display()
                    )));
                    break;
                }
            }
        }
        if p.may_format() && !fs::have_program(fs::mkfs_program(v.file_system)) {
            let package = match v.file_system {
                FileSystem::Xfs => "xfsprogs",
                FileSystem::Ext4 => "e2fsprogs",
            };
            problems.push(at(format!(
                "{} not found: install {package}",
                fs::mkfs_program(v.file_system)
            )));
        }
        let mp = Path::new(&v.mount_point);
        if !matches!(p.action, MountAction::Skip { .. }) && mp.exists() && !mp.is_dir() {
            problems.push(at("the mount point exists and is not a directory".into()));
        }
        if !matches!(p.action, MountAction::Skip { .. })
            && !args.allow_non_empty
            && mount::is_non_empty_dir(mp)
        {
            problems.push(at(
                "the mount point is a non-empty directory; its files would be hidden (pass --allow-non-empty if you mean it)".into(),
            ));
        }
    }
    problems
}

/// The plan, one line per mount point: what is done, the volume, and why
/// (`explain`), with the newer data passed over.
fn render_plan(
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

fn print_summary(
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

/// Orders the mounts of nested mount points while everything else about
/// the volumes runs concurrently: a volume whose mount point lies inside
/// another of the profile's waits, just before its mount(2), until that
/// one is mounted (and fails if that one will not be).
struct Gate {
    parent: Option<(String, tokio::sync::watch::Receiver<Option<bool>>)>,
    done: tokio::sync::watch::Sender<Option<bool>>,
}

impl Gate {
    fn for_plans(plans: &[VolumePlan]) -> Vec<Gate> {
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
}

async fn restore_one(s: &Shared, plan: VolumePlan, gate: Gate) -> Outcome {
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
    // Whether a blank device may be formatted: only a volume this run
    // created empty, or one an earlier run created empty that never got
    // as far as being attached (`restoring`): any other may hold data.
    let mut may_format = true;
    let (volume_id, attached, source) = match &plan.action {
        MountAction::Skip { .. } => unreachable!("handled by the caller"),
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
            if state != Some(STATE_RESTORING) {
                may_format = false;
            }
            (volume.id.clone(), *attached, source)
        }
        MountAction::Create { source } => {
            let snapshot = resolve_source(s, v.mount_point.as_str(), source).await?;
            let source_label = snapshot
                .as_ref()
                .map_or(SOURCE_EMPTY.to_string(), |s| s.id.clone());
            let mut tags = resource_tags(
                me,
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
            let spec = NewVolume {
                availability_zone: s.identity.availability_zone.clone(),
                size_gib: v.size_gib,
                volume_type: v.volume_type.as_str().to_string(),
                iops: v.iops,
                throughput: v.throughput,
                snapshot_id: snapshot.as_ref().map(|s| s.id.clone()),
                encrypted: v.encrypted,
                kms_key_id: v.kms_key_id.clone(),
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
            let id = s.ec2.create_volume(&spec).await?;
            *created = Some(Created {
                id: id.clone(),
                attached: false,
                marked: false,
            });
            (id, false, source_label)
        }
    };
    env.volume_id = Some(volume_id.clone());

    if !attached {
        wait_available(s, &volume_id, AVAILABLE_DEADLINE).await?;
        tracing::info!(
            "{}: attaching {volume_id} to {me} as {}",
            v.mount_point,
            v.device
        );
        s.ec2.attach_volume(&volume_id, me, &v.device).await?;
        if let Some(c) = created.as_mut() {
            c.attached = true;
        }
        wait_attached(s, &volume_id).await?;
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
                    Ok(fallback.clone())
                }
                Err(WaitError::TimedOut(_)) if fallback.is_some() => {
                    tracing::warn!(
                        "{mount_point}: snapshot {} is still pending after {}; falling back to {fb}",
                        pending.id,
                        humantime::format_duration(s.wait_pending)
                    );
                    Ok(fallback.clone())
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
async fn wait_available(s: &Shared, id: &str, deadline: Duration) -> Result<(), VolumeError> {
    let waited = poll_until(deadline, Backoff::VOLUME, || async {
        Ok(match s.ec2.volume(id).await? {
            Some(v) if v.state == "available" => Ok(Ok(())),
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
