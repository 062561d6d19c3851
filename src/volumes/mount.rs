//! `mount-snapshots NAME`: restore every volume of a profile, concurrently,
//! from its newest usable snapshot (or empty and formatted), attach and
//! mount it. Bad input stops everything before anything is created; a
//! failure on one volume rolls that volume back and leaves the others
//! mounted.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use super::explain::{Explainer, Flags};
use super::hooks;
use super::plan::{
    detached_for, plan_mount, MountAction, MountPlan, Observed, PlanOptions, VolumePlan,
};
use super::points::{PointInTime, RestoreSource};
use super::tags::TAG_PROFILE;
use crate::cloud::{SnapshotInfo, VolumeInfo};
use crate::config::{kernel_device_name, FileSystem, HookPoint};
use crate::context::VolumeContext;
use crate::host::mountinfo::MountEntry;
use crate::host::{devices, fs, mount, mountinfo, privileges};
use crate::instance::Identity;
use crate::snapshotter::HookCtx;
use crate::tasks::Failures;

use super::mount_report::{print_summary, render_plan};
use super::restore::{restore_one, Gate, Outcome, Shared};

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
    /// `--init-rate`: over every volume's `init_rate` (`Some(None)`: off).
    pub init_rate: Option<Option<u32>>,
    /// `--prewarm`: over the profile's `prewarm`.
    pub prewarm: Option<crate::config::Prewarm>,
}

pub(crate) async fn run(ctx: &VolumeContext, args: &MountOptions) -> Result<ExitCode> {
    let identity = ctx.identity()?.clone();
    let name = ctx.snapshotter.name().to_string();
    let found = Found::look(ctx, &identity, &name).await?;
    let seen = found.observed(&identity);
    let opts = PlanOptions {
        ignore_mounted: args.ignore_mounted,
        allow_mixed: args.allow_mixed,
        set: args.set.as_deref(),
        from_snapshot: args.from_snapshot,
    };
    let plan = match plan_mount(&ctx.volumes, &seen, opts) {
        Ok(p) => p,
        Err(problems) => bail!("nothing was changed:\n{}", problems.join("\n")),
    };
    let problems = preflight(&plan.volumes, &ctx.device_root, args);
    if !problems.is_empty() {
        bail!("nothing was changed:\n{}", problems.join("\n"));
    }
    log_plan(&plan);
    if args.dry_run {
        print!("{}", dry_run(ctx, args, &seen, &plan, &identity));
        return Ok(ExitCode::SUCCESS);
    }

    tracing::info!(profile = %name, volumes = plan.volumes.len(), "mounting volumes");
    hooks::run(&ctx.snapshotter, HookPoint::PreMounts, &HookCtx::run(&name))
        .await
        .map_err(|e| anyhow::anyhow!("{e}; nothing was changed"))?;
    let plans = plan.volumes;
    let outcomes = restore_all(ctx, args, identity, &plans).await;
    let mut failures = Failures::default();
    for (i, o) in &outcomes {
        if let Outcome::Failed { error, cleanup } = o {
            failures.add(&plans[*i].volume.mount_point, format!("{error}; {cleanup}"));
        }
    }
    if failures.is_empty() {
        if let Err(e) = hooks::run(
            &ctx.snapshotter,
            HookPoint::PostMounts,
            &HookCtx::run(&name),
        )
        .await
        {
            tracing::error!("{e}");
            failures.add_line(e);
        }
    } else {
        tracing::info!("post_mounts hook not run: a volume failed");
    }
    print_summary(&args.report, &plans, &outcomes);
    failures.finish()
}

/// What mount-snapshots looks up before deciding: one call of each kind
/// for the whole profile, and the host's mounts.
struct Found {
    snapshots: Vec<SnapshotInfo>,
    attached: Vec<VolumeInfo>,
    ours: Vec<VolumeInfo>,
    mounts: Vec<MountEntry>,
}

impl Found {
    /// Volumes of ours: the profile's name and filter tags (which every
    /// volume we create carries), any instance: a volume unmount-snapshots
    /// detached on another instance holds this profile's newest data too.
    /// The planner adopts crash leftovers only of this instance.
    async fn look(ctx: &VolumeContext, identity: &Identity, name: &str) -> Result<Found> {
        let (ec2, filters) = (&ctx.ec2, &ctx.filters);
        let mut ours_tags = vec![(TAG_PROFILE.to_string(), name.to_string())];
        ours_tags.extend(filters.iter().cloned());
        let (snapshots, attached, ours) = tokio::try_join!(
            async {
                ec2.snapshots_tagged(filters, &ctx.owners)
                    .await
                    .with_context(|| format!("looking up snapshots of profile '{name}'"))
            },
            async {
                ec2.volumes_attached_to(&identity.instance_id)
                    .await
                    .with_context(|| {
                        format!("looking up volumes attached to {}", identity.instance_id)
                    })
            },
            async {
                ec2.volumes_tagged(&ours_tags).await.with_context(|| {
                    format!("looking up volumes of profile '{name}' left by earlier runs")
                })
            },
        )?;
        let mounts = mountinfo::read().context("reading /proc/self/mountinfo")?;
        Ok(Found {
            snapshots,
            attached,
            ours,
            mounts,
        })
    }

    fn observed<'a>(&'a self, identity: &'a Identity) -> Observed<'a> {
        Observed {
            instance_id: &identity.instance_id,
            availability_zone: &identity.availability_zone,
            mounts: &self.mounts,
            attached: &self.attached,
            ours: &self.ours,
            snapshots: &self.snapshots,
        }
    }
}

/// Say which point in time is restored, and every volume's warnings.
fn log_plan(plan: &MountPlan) {
    let restores = plan.volumes.iter().any(|p| {
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
        for p in &plan.volumes {
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
    for p in &plan.volumes {
        for w in &p.warnings {
            tracing::warn!("{}: {w}", p.volume.mount_point);
        }
    }
}

/// The `--dry-run` text: the plan, one line per mount point with why.
fn dry_run(
    ctx: &VolumeContext,
    args: &MountOptions,
    seen: &Observed<'_>,
    plan: &MountPlan,
    identity: &Identity,
) -> String {
    let mps: Vec<&str> = ctx.volumes.iter().map(|v| v.mount_point.as_str()).collect();
    let flags = Flags {
        allow_mixed: args.allow_mixed,
        set: args.set.as_deref(),
        from_snapshot: args.from_snapshot,
    };
    let detached = mps
        .iter()
        .map(|mp| {
            detached_for(seen, mp)
                .iter()
                .map(|d| d.id.clone())
                .collect()
        })
        .collect();
    let why = Explainer::new(seen.snapshots, &mps, &plan.point, flags).with_detached(detached);
    render_plan(&plan.volumes, &plan.point, identity, &why)
}

/// Every volume restored at once; each is waited for, even if another's
/// task panicked. Outcomes in the plans' order.
async fn restore_all(
    ctx: &VolumeContext,
    args: &MountOptions,
    identity: Identity,
    plans: &[VolumePlan],
) -> Vec<(usize, Outcome)> {
    let shared = Arc::new(Shared {
        ec2: ctx.ec2.clone(),
        identity,
        snapshotter: ctx.snapshotter.clone(),
        retention: ctx.snapshotter.retention(),
        filters: ctx.filters.clone(),
        device_root: ctx.device_root.clone(),
        wait_pending: args.wait_pending,
        init_rate: args.init_rate,
        prewarm: args.prewarm.unwrap_or_else(|| ctx.snapshotter.prewarm()),
    });
    let gates = Gate::for_plans(plans);
    let tasks = plans.iter().cloned().zip(gates).map(|(plan, gate)| {
        let shared = shared.clone();
        async move { restore_one(&shared, plan, gate).await }
    });
    crate::tasks::join_in_order(tasks)
        .await
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|e| Outcome::Failed {
                error: e.to_string(),
                cleanup: "state unknown: check list-volumes".into(),
            })
        })
        .enumerate()
        .collect()
}

/// Host-side checks before anything is created: the device name is free,
/// mkfs exists where a filesystem may be made, the mount point is empty.
fn preflight(plans: &[VolumePlan], root: &Path, args: &MountOptions) -> Vec<String> {
    let mut problems = Vec::new();
    let changes_host = plans.iter().any(|p| {
        !matches!(
            p.action,
            MountAction::Skip { .. } | MountAction::Finish { .. }
        )
    });
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
        if matches!(p.action, MountAction::Finish { .. }) {
            continue;
        }
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
