//! `make-snapshots NAME`: consistent snapshots with the shortest freeze.
//!
//! Everything that can happen before the freeze does (volume ids from the
//! attachments, tags, descriptions, hooks, sync). Then all filesystems are
//! frozen together, every CreateSnapshot starts concurrently (tags at
//! creation), and all are thawed the moment the calls return, or when the
//! deadline passes, or on SIGINT/SIGTERM/SIGHUP, or on any error or panic,
//! with a watchdog thread as the last resort.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;

use crate::progress::Progress;
use crate::report::Report;
use crate::tasks::Failures;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use super::error::VolumeError;
use super::hooks;
use super::snapshot_plan::{plan_set, plan_snapshots, HostView, Labels, Seen, Target};
use super::tags::resource_tags;
use super::tags::{TAG_PROFILE, TAG_RUN};
use super::window::{
    run_window, with_tags, CallResult, Ended, Mode, Signals, Window, WindowOptions,
};
use crate::cloud::{poll_until, Backoff, Ec2, SnapshotState};
use crate::config::{kernel_device_name, HookPoint, Volume};
use crate::context::VolumeContext;
use crate::host::freeze::{self, Thawed};
use crate::host::{devices, mountinfo};
use crate::snapshotter::{HookCtx, Snapshotter};

/// A snapshot EC2 accepted can be listed a moment later.
const LISTED_LATE: Duration = Duration::from_secs(2);
/// A snapshot of a large, busy volume can take hours; `--wait` gives up
/// after a day.
const COMPLETION_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// How to snapshot.
#[derive(Debug, Clone)]
pub(crate) struct MakeOptions {
    /// Wait until the snapshots are completed.
    pub wait: bool,
    /// Hard limit on how long filesystems stay frozen.
    pub freeze_timeout: Duration,
    /// Snapshot a filesystem that cannot be frozen (tagged
    /// consistency=crash) instead of failing.
    pub allow_unfrozen: bool,
    /// One CreateSnapshot per volume instead of one CreateSnapshots for
    /// the set.
    pub per_volume: bool,
    /// Where the per-volume results go (lines, or `--json`).
    pub report: crate::report::Report,
}

/// The host as the snapshot planner sees it.
struct ThisHost<'a> {
    device_root: &'a Path,
}

impl HostView for ThisHost<'_> {
    fn device_number(&self, v: &Volume, volume_id: &str) -> Option<String> {
        let kernel = kernel_device_name(&v.device, v.device_name_offset);
        devices::find(self.device_root, &v.device, &kernel, volume_id)
            .and_then(|p| devices::dev_number(&p))
    }

    fn refuse_reason(&self, mount_point: &str) -> Option<String> {
        freeze::refuse_reason(Path::new(mount_point))
    }
}

pub(crate) async fn run(ctx: &VolumeContext, args: &MakeOptions) -> Result<ExitCode> {
    let me = ctx.identity()?.instance_id.clone();
    let snapshotter = &ctx.snapshotter;
    let attached = ctx
        .ec2
        .volumes_attached_to(&me)
        .await
        .with_context(|| format!("looking up volumes attached to {me}"))?;
    let mounts = mountinfo::read().context("reading /proc/self/mountinfo")?;
    let now = chrono::Utc::now();
    let retention = snapshotter.retention();

    // Resolve and check everything first; refuse before freezing anything.
    let describe = |v: &Volume| -> Result<String, String> {
        snapshotter
            .description(v, &ctx.host)
            .map_err(|e| e.to_string())
    };
    let tags = |v: &Volume| {
        let mut tags = resource_tags(&me, &v.mount_point, &ctx.filters, now, retention);
        tags.push((TAG_PROFILE.to_string(), snapshotter.name().to_string()));
        tags
    };
    let seen = Seen {
        instance_id: &me,
        attached: &attached,
        mounts: &mounts,
    };
    let host = ThisHost {
        device_root: &ctx.device_root,
    };
    let labels = Labels {
        describe: &describe,
        tags: &tags,
    };
    let targets = match plan_snapshots(&ctx.volumes, &seen, &host, &labels) {
        Ok(t) => t,
        Err(problems) => bail!("nothing was frozen:\n{}", problems.join("\n")),
    };

    let name = snapshotter.name().to_string();
    hooks::run(snapshotter, HookPoint::PreSnapshots, &HookCtx::run(&name))
        .await
        .map_err(|e| anyhow::anyhow!("{e}; nothing was frozen"))?;
    // The calls made while frozen are retried by the window itself, after
    // tens of milliseconds, never by the SDK's second-long backoff.
    let frozen_ec2 = ctx.ec2_with_attempts(1).await;
    let mode = snapshot_mode(ctx, args, &me, &attached, &targets).await;
    // A tag unique to this run finds what it started, whatever happens:
    // the instance id first, so hosts sharing filter tags never share a
    // "set" (nor have their snapshots re-tagged by another's crash path).
    let run_id = format!(
        "{me}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    let result = snapshot_all(
        args,
        mode,
        snapshotter,
        targets.clone(),
        (frozen_ec2, ctx.ec2.clone()),
        run_id.clone(),
    )
    .await;
    // An earlier run of this host cut short before it tagged its set: its
    // snapshots learn their mount points now (a repair, never a failure).
    let mut ours = ctx.filters.clone();
    ours.push((TAG_PROFILE.to_string(), name.clone()));
    let owners = ["self".to_string()];
    super::unfinished::finish(&ctx.ec2, &ours, &owners, &me, &run_id, &targets).await;
    // post_snapshots is the cleanup hook: it runs whatever happened.
    if let Err(e) = hooks::run(snapshotter, HookPoint::PostSnapshots, &HookCtx::run(&name)).await {
        if let Err(first) = &result {
            tracing::error!("{first:#}");
        }
        bail!("{e}");
    }
    result
}

/// One CreateSnapshots for the set unless `--per-volume` or the set
/// cannot be made in one request (then each volume its own call).
async fn snapshot_mode(
    ctx: &VolumeContext,
    args: &MakeOptions,
    me: &str,
    attached: &[crate::cloud::VolumeInfo],
    targets: &[Target],
) -> Mode {
    if args.per_volume {
        return Mode::PerVolume;
    }
    let root = match ctx.ec2.root_device_name(me).await {
        Ok(Some(r)) => r,
        Ok(None) => String::new(),
        Err(e) => {
            tracing::warn!("{e}; starting one snapshot per volume");
            return Mode::PerVolume;
        }
    };
    match plan_set(targets, attached, me, &root) {
        Ok(set) => Mode::Set {
            instance_id: me.to_string(),
            exclude: set.exclude,
            description: set.description,
            tags: set.tags,
        },
        Err(why) => {
            tracing::info!("{why}: one snapshot per volume");
            Mode::PerVolume
        }
    }
}

async fn snapshot_all(
    args: &MakeOptions,
    mode: Mode,
    snapshotter: &Arc<dyn Snapshotter>,
    targets: Vec<Target>,
    (frozen_ec2, ec2): (Ec2, Ec2),
    run_id: String,
) -> Result<ExitCode> {
    let name = snapshotter.name();
    for t in &targets {
        hooks::run(
            snapshotter,
            HookPoint::PreSnapshot,
            &hook_ctx(name, t, None),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}; nothing was frozen"))?;
    }
    let mut signals = Signals::new()?;
    // Caught from here to the end of the window; an early error return
    // must not leave them swallowed for the rest of the process.
    let _default_again = DefaultSignalsOnDrop;
    warm_up(&frozen_ec2, &targets).await?;
    let run_tag = [(TAG_RUN.to_string(), run_id.clone())];
    let targets = with_tags(&targets, &run_tag);
    let set_mode = matches!(mode, Mode::Set { .. });
    // The window adds `consistency` (frozen, or crash when it went on
    // unfrozen); one cut short re-tags what it started as crash.
    let opts = WindowOptions {
        deadline: args.freeze_timeout,
        allow_unfrozen: args.allow_unfrozen,
        name,
        mode: mode.with_tags(&run_tag),
    };
    // One freeze window per host at a time: two runs on one filesystem
    // would freeze and thaw under each other.
    let _one_at_a_time = window_lock().await?;
    let w = run_window(&frozen_ec2, &targets, &opts, &mut signals).await?;
    drop(_one_at_a_time);
    delete_strays(&ec2, &w).await;
    let Window {
        ended,
        calls_took,
        thawed,
        watchdog,
        late,
        ..
    } = w;
    let mut results = match ended {
        Ended::Done(r) if watchdog.fired.is_none() => r,
        other => {
            let why = cut_short(&opts, &targets, args.freeze_timeout, calls_took, &other);
            let mut stray = late;
            if let Ended::Done(r) = &other {
                stray.extend(r.iter().flatten().cloned());
            }
            let stray = mark_crash_consistent(&ec2, &run_id, stray, &targets).await;
            bail!(
                "{why}; filesystems were thawed{}; {}",
                match &watchdog.fired {
                    Some(how) => format!(" by the watchdog ({how})"),
                    None => String::new(),
                },
                match stray.as_slice() {
                    [] => "no snapshot was taken".to_string(),
                    ids => format!(
                        "snapshots started anyway are tagged consistency=crash: {}",
                        ids.join(", ")
                    ),
                }
            );
        }
    };
    let thawed_early = thawed_early(&ec2, &run_id, &targets, &results, &thawed).await;
    if set_mode {
        tag_mount_points(&ec2, &targets, &mut results).await;
    }
    let mut failures = Failures::default();
    for (mp, e) in &thawed.failures {
        failures.add(mp.display(), format!("could not thaw: {e}"));
    }
    if thawed_early {
        failures.add_line("a filesystem was thawed by someone else during the window; the snapshots are tagged consistency=crash");
    }
    let started_ok = report_started(
        snapshotter,
        &args.report,
        &targets,
        results,
        &thawed,
        &mut failures,
    )
    .await;
    if args.wait {
        wait_all(&ec2, &args.report, &started_ok, &mut failures).await;
    }
    failures.finish()
}

/// Snapshots a set made of volumes that are not targets (attached after
/// the set was planned) are not ours to keep; and say which late freeze
/// the watchdog undid.
async fn delete_strays(ec2: &Ec2, w: &Window) {
    for id in &w.strays {
        tracing::warn!("{id} is a snapshot of a volume that is not in the profile; deleting it");
        if let Err(e) = ec2.delete_snapshot(id).await {
            tracing::error!("could not delete {id}: {e}");
        }
    }
    for mp in &w.watchdog.late {
        tracing::warn!("{mp}: a freeze that returned late was undone by the watchdog");
    }
}

/// Why a window was cut short: the watchdog thawed first, the calls timed
/// out, or a signal came; whatever EC2 accepted may not be consistent.
/// The calls are named with the volumes they were for.
fn cut_short(
    opts: &WindowOptions,
    targets: &[Target],
    deadline: Duration,
    calls_took: Duration,
    ended: &Ended,
) -> String {
    match ended {
        Ended::Signal(sig) => format!("{sig} while frozen"),
        _ => {
            let call = opts.mode.call();
            let volumes: Vec<&str> = targets.iter().map(|t| t.volume_id.as_str()).collect();
            format!(
                "{call} of {} did not return within {} (after {} ms)",
                volumes.join(", "),
                humantime::format_duration(deadline),
                calls_took.as_millis()
            )
        }
    }
}

/// Someone thawed a filesystem during the window (fsfreeze -u, snaptastic
/// thaw, another run): what was started is not known to be frozen, and is
/// re-tagged `crash`. Whether that happened.
async fn thawed_early(
    ec2: &Ec2,
    run_id: &str,
    targets: &[Target],
    results: &[CallResult],
    thawed: &Thawed,
) -> bool {
    if thawed.not_frozen.is_empty() {
        return false;
    }
    let started: Vec<String> = results.iter().flatten().cloned().collect();
    let tagged = mark_crash_consistent(ec2, run_id, started, targets).await;
    for mp in &thawed.not_frozen {
        tracing::error!(
            "{} was no longer frozen when this run thawed it: someone else thawed it during \
             the window (fsfreeze -u, snaptastic thaw, another run); snapshots tagged \
             consistency=crash: {}",
            mp.display(),
            tagged.join(", ")
        );
    }
    true
}

/// Each snapshot of a set gets its own mount point once nothing is frozen
/// (a restore finds it by this tag); a failed tag fails that volume.
async fn tag_mount_points(ec2: &Ec2, targets: &[Target], results: &mut [CallResult]) {
    for (t, r) in targets.iter().zip(results.iter_mut()) {
        if let Ok(id) = r {
            let tag = [("mount_point".to_string(), t.mount_point.clone())];
            if let Err(e) = ec2.create_tags(id, &tag).await {
                *r = Err(e);
            }
        }
    }
}

/// Gives SIGTERM, SIGINT and SIGHUP their default action back when dropped.
struct DefaultSignalsOnDrop;

impl Drop for DefaultSignalsOnDrop {
    fn drop(&mut self) {
        crate::host::signals::restore_default();
    }
}

/// How long a run waits for another make-snapshots' freeze window on this
/// host before giving up (a window is bounded by `--freeze-timeout`).
const WINDOW_LOCK_WAIT: Duration = Duration::from_secs(120);

/// The host's make-snapshots lock, in the state directory; the wait is
/// said in a line.
async fn window_lock() -> Result<crate::host::lock::Exclusive> {
    let (held, shown) = crate::host::lock::exclusive_in_state_dir(
        "make-snapshots.lock",
        WINDOW_LOCK_WAIT,
        |p| {
            tracing::warn!(
                "another make-snapshots is in its freeze window on this host (lock {}); waiting up to {}",
                p.display(),
                humantime::format_duration(WINDOW_LOCK_WAIT)
            )
        },
    )
    .await;
    let held = held.with_context(|| format!("taking the lock {}", shown.display()))?;
    held.ok_or_else(|| {
        anyhow::anyhow!(
            "another make-snapshots held {} for over {}; nothing was frozen",
            shown.display(),
            humantime::format_duration(WINDOW_LOCK_WAIT)
        )
    })
}

/// Credentials, DNS and connections are set up now, one connection per
/// volume, not by the first call inside the freeze.
async fn warm_up(frozen_ec2: &Ec2, targets: &[Target]) -> Result<()> {
    let warm = targets.iter().map(|t| {
        let (ec2, id) = (frozen_ec2.clone(), t.volume_id.clone());
        tokio::spawn(async move { ec2.volume(&id).await })
    });
    for w in warm.collect::<Vec<_>>() {
        w.await?.context("checking the volumes before freezing")?;
    }
    Ok(())
}

/// One line per target, `post_snapshot` for each started snapshot;
/// returns the failures and the started `(mount point, snapshot)` pairs.
async fn report_started(
    snapshotter: &Arc<dyn Snapshotter>,
    report: &Report,
    targets: &[Target],
    results: Vec<CallResult>,
    thawed: &Thawed,
    failures: &mut Failures,
) -> Vec<(String, String)> {
    let mut started_ok = Vec::new();
    for (t, r) in targets.iter().zip(results) {
        let frozen = thawed
            .windows
            .iter()
            .find(|(mp, _)| mp == &PathBuf::from(&t.mount_point))
            .map(|(_, w)| w.as_millis());
        let window = frozen
            .map(|ms| format!("frozen {ms} ms"))
            .unwrap_or_else(|| "not frozen".into());
        match r {
            Ok(snap) => {
                report.item(
                    format!(
                        "started  {}: {snap} of {} ({window})",
                        t.mount_point, t.volume_id
                    ),
                    json!({"mount_point": t.mount_point, "status": "started",
                           "snapshot_id": snap, "volume_id": t.volume_id, "frozen_ms": frozen}),
                );
                let ctx = hook_ctx(snapshotter.name(), t, Some(&snap));
                if let Err(e) = hooks::run(snapshotter, HookPoint::PostSnapshot, &ctx).await {
                    tracing::error!("{e}");
                    failures.add_line(e);
                }
                started_ok.push((t.mount_point.clone(), snap));
            }
            Err(e) => {
                failures.add(&t.mount_point, &e);
                report.failure(
                    format!("FAILED   {}: {e} ({window})", t.mount_point),
                    json!({"mount_point": t.mount_point, "status": "failed",
                           "volume_id": t.volume_id, "error": e.to_string(), "frozen_ms": frozen}),
                );
            }
        }
    }
    started_ok
}

/// `--wait`: every started snapshot to completion; adds the failures.
/// (Signals have their default action again: stopping here leaves the
/// snapshots going on in EC2.)
async fn wait_all(
    ec2: &Ec2,
    report: &Report,
    started: &[(String, String)],
    failures: &mut Failures,
) {
    let progress = Progress::new("snapshots completed", started.len() as u64);
    for (mp, snap) in started {
        let result = wait_completed(ec2, mp, snap, &progress).await;
        progress.step(snap);
        match result {
            Ok(()) => report.item(
                format!("complete {mp}: {snap}"),
                json!({"mount_point": mp, "status": "completed", "snapshot_id": snap}),
            ),
            Err(e) => {
                failures.add(format!("{mp}: {snap}"), &e);
                report.failure(
                    format!("FAILED   {mp}: {snap}: {e}"),
                    json!({"mount_point": mp, "status": "failed", "snapshot_id": snap,
                           "error": e.to_string()}),
                );
            }
        }
    }
}

/// Tag the snapshots this run started as crash-consistent (they may have
/// been taken after a thaw): those `known` from late replies and those a
/// lookup by the run's tag finds (twice, a moment apart: a new snapshot
/// can be listed late). A set's snapshots also get their `mount_point`,
/// as a completed run's do. Returns their ids.
async fn mark_crash_consistent(
    ec2: &Ec2,
    run_id: &str,
    known: Vec<String>,
    targets: &[Target],
) -> Vec<String> {
    let mut tags: std::collections::BTreeMap<String, Vec<(String, String)>> =
        known.into_iter().map(|id| (id, Vec::new())).collect();
    for round in 0..2 {
        if round > 0 {
            tokio::time::sleep(LISTED_LATE).await;
        }
        // This run's own snapshots: this account's, made moments ago.
        match ec2
            .snapshots_tagged(
                &[(TAG_RUN.to_string(), run_id.to_string())],
                &["self".to_string()],
            )
            .await
        {
            Ok(found) => {
                for s in found {
                    let mp = targets
                        .iter()
                        .find(|t| Some(&t.volume_id) == s.volume_id.as_ref())
                        .filter(|_| s.tag("mount_point").is_none())
                        .map(|t| ("mount_point".to_string(), t.mount_point.clone()));
                    tags.entry(s.id).or_default().extend(mp);
                }
            }
            Err(e) => tracing::error!(
                "could not look for snapshots this run started (tag {TAG_RUN}={run_id}): {e}"
            ),
        }
    }
    for (id, extra) in &mut tags {
        extra.dedup();
        extra.push(("consistency".to_string(), "crash".to_string()));
        if let Err(e) = ec2.create_tags(id, extra).await {
            tracing::error!("could not tag {id} consistency=crash: {e}");
        }
    }
    tags.into_keys().collect()
}

fn hook_ctx(profile: &str, t: &Target, snapshot: Option<&str>) -> HookCtx {
    HookCtx::volume(profile, &t.mount_point, &t.device)
        .with_volume_id(&t.volume_id)
        .with_snapshot_id(snapshot)
}

async fn wait_completed(
    ec2: &Ec2,
    mp: &str,
    snap: &str,
    bar: &Progress,
) -> Result<(), VolumeError> {
    tracing::info!("{mp}: waiting for {snap} to complete");
    let waited = poll_until(COMPLETION_DEADLINE, Backoff::SNAPSHOT, || async {
        Ok(match ec2.snapshot(snap).await? {
            Some(s) if s.state == SnapshotState::Completed => Ok(Ok(())),
            Some(s) if s.state == SnapshotState::Error => {
                Ok(Err(VolumeError::InError(snap.to_string())))
            }
            Some(s) => {
                let progress = s.progress.clone().unwrap_or_default();
                let now = format!("{} {progress}", s.state.as_str());
                let shown = format!("{mp}: {snap} is {now}");
                bar.note(&shown);
                Err(now)
            }
            None => Ok(Err(VolumeError::Vanished(snap.to_string()))),
        })
    })
    .await
    .map_err(|source| VolumeError::Wait {
        id: snap.to_string(),
        what: "complete",
        source: Box::new(source),
    })?;
    waited
}
