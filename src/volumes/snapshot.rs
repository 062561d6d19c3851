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
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use tokio::signal::unix::{signal, SignalKind};

use super::error::VolumeError;
use super::hooks;
use super::plan::TAG_PROFILE;
use super::snapshot_plan::{plan_snapshots, HostView, Labels, Seen, Target};
use super::tags::resource_tags;
use crate::cloud::{poll_until, Backoff, CloudError, Ec2, SnapshotState};
use crate::config::{kernel_device_name, HookPoint, Volume};
use crate::context::VolumeContext;
use crate::host::freeze::{self, FreezeSet, Thawed};
use crate::host::{devices, mountinfo};
use crate::snapshotter::{HookCtx, Snapshotter};

/// Tag on the snapshots of one make-snapshots run (see
/// `mark_crash_consistent`).
const TAG_RUN: &str = "snaptastic:run";
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
        .context("looking up attached volumes")?;
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
    // The calls made while frozen retry less (every retry lengthens the freeze).
    let frozen_ec2 = ctx.ec2_with_attempts(crate::cloud::FROZEN_ATTEMPTS).await;
    let result = snapshot_all(args, snapshotter, targets, frozen_ec2, ctx.ec2.clone()).await;
    // post_snapshots is the cleanup hook: it runs whatever happened.
    if let Err(e) = hooks::run(snapshotter, HookPoint::PostSnapshots, &HookCtx::run(&name)).await {
        if let Err(first) = &result {
            tracing::error!("{first:#}");
        }
        bail!("{e}");
    }
    result
}

/// One CreateSnapshot call: the task may have died, the call may have failed.
type CallResult = Result<Result<String, CloudError>, crate::tasks::TaskFailed>;

/// How the frozen window ended.
enum Ended {
    Done(Vec<CallResult>),
    TimedOut,
    Signal(&'static str),
}

/// Signals caught from before the freeze to the end of the run, so none
/// kills the process while a filesystem is frozen.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

async fn snapshot_all(
    args: &MakeOptions,
    snapshotter: &Arc<dyn Snapshotter>,
    mut targets: Vec<Target>,
    frozen_ec2: Ec2,
    ec2: Ec2,
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
    warm_up(&frozen_ec2, &targets).await?;
    // A tag unique to this run finds what it started, whatever happens.
    let run_id = format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );

    let (mut frozen, consistency) = freeze_targets(&targets, args).await?;
    for t in &mut targets {
        t.tags
            .push(("consistency".to_string(), consistency.to_string()));
        t.tags.push((TAG_RUN.to_string(), run_id.clone()));
    }

    let (ended, calls_took) =
        frozen_window(&frozen_ec2, &targets, args.freeze_timeout, &mut signals).await;
    let watchdog_fired = frozen.as_ref().is_some_and(FreezeSet::watchdog_fired);
    let thawed = thaw(&mut frozen);
    // Dropping the set retries any failed thaw once more.
    drop(frozen);

    let results = match ended {
        Ended::Done(r) if !watchdog_fired => r,
        other => {
            // The watchdog thawed first, the calls timed out, or a signal
            // came: whatever EC2 accepted may not be consistent.
            let why = match other {
                Ended::Signal(sig) => format!("{sig} while frozen"),
                _ => format!(
                    "the snapshot calls did not return within {} (after {} ms)",
                    humantime::format_duration(args.freeze_timeout),
                    calls_took.as_millis()
                ),
            };
            let stray = mark_crash_consistent(&ec2, &run_id).await;
            bail!(
                "{why}; filesystems were thawed{}; {}",
                if watchdog_fired {
                    " by the watchdog"
                } else {
                    ""
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

    let (mut failed, started_ok) = report_started(snapshotter, &targets, results, &thawed).await;
    failed += usize::from(!thawed.failures.is_empty());
    if args.wait {
        failed += wait_all(&ec2, &started_ok, &mut signals).await?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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

/// Sync, then freeze every target at once. `None` (and consistency
/// `crash`) when a filesystem cannot be frozen and `--allow-unfrozen`
/// says to go on.
async fn freeze_targets(
    targets: &[Target],
    args: &MakeOptions,
) -> Result<(Option<FreezeSet>, &'static str)> {
    tokio::task::spawn_blocking(freeze::sync_all).await?;
    let mount_points: Vec<PathBuf> = targets
        .iter()
        .map(|t| PathBuf::from(&t.mount_point))
        .collect();
    let deadline = args.freeze_timeout;
    let frozen =
        tokio::task::spawn_blocking(move || FreezeSet::freeze(&mount_points, deadline)).await?;
    match frozen {
        Ok(set) => Ok((Some(set), "frozen")),
        Err(e) if args.allow_unfrozen => {
            tracing::warn!(
                "{e}; snapshotting without a freeze (--allow-unfrozen): tagged consistency=crash"
            );
            Ok((None, "crash"))
        }
        Err(e) => bail!(
            "{e}; no snapshot was taken (pass --allow-unfrozen to take crash-consistent ones)"
        ),
    }
}

/// The frozen window: only the calls that start the snapshots, bounded by
/// the deadline and cut short by a signal.
async fn frozen_window(
    frozen_ec2: &Ec2,
    targets: &[Target],
    deadline: Duration,
    signals: &mut Signals,
) -> (Ended, Duration) {
    let started = Instant::now();
    let calls = targets.iter().map(|t| {
        let (ec2, vol, desc, tags) = (
            frozen_ec2.clone(),
            t.volume_id.clone(),
            t.description.clone(),
            t.tags.clone(),
        );
        async move { ec2.create_snapshot(&vol, &desc, &tags).await }
    });
    let calls = crate::tasks::join_in_order(calls);
    let ended = tokio::select! {
        r = tokio::time::timeout(deadline, calls) => match r {
            Ok(results) => Ended::Done(results),
            Err(_) => Ended::TimedOut,
        },
        sig = signals.recv() => Ended::Signal(sig),
    };
    (ended, started.elapsed())
}

/// Thaw (if anything was frozen) and log each window and failure.
fn thaw(frozen: &mut Option<FreezeSet>) -> Thawed {
    let thawed = match frozen.as_mut() {
        Some(set) => tokio::task::block_in_place(|| set.thaw()),
        None => Default::default(),
    };
    for (mp, w) in &thawed.windows {
        tracing::info!("{}: frozen for {} ms", mp.display(), w.as_millis());
    }
    for (mp, e) in &thawed.failures {
        tracing::error!(
            "could not thaw {}: {e}; run: fsfreeze -u {}",
            mp.display(),
            mp.display()
        );
    }
    thawed
}

/// One line per target, `post_snapshot` for each started snapshot;
/// returns the failures and the started `(mount point, snapshot)` pairs.
async fn report_started(
    snapshotter: &Arc<dyn Snapshotter>,
    targets: &[Target],
    results: Vec<CallResult>,
    thawed: &Thawed,
) -> (usize, Vec<(String, String)>) {
    let mut failed = 0;
    let mut started_ok = Vec::new();
    for (t, r) in targets.iter().zip(results) {
        let r = r
            .map_err(|e| CloudError::Transport {
                op: "CreateSnapshot",
                message: e.to_string(),
            })
            .and_then(|r| r);
        let window = thawed
            .windows
            .iter()
            .find(|(mp, _)| mp == &PathBuf::from(&t.mount_point))
            .map(|(_, w)| format!("frozen {} ms", w.as_millis()))
            .unwrap_or_else(|| "not frozen".into());
        match r {
            Ok(snap) => {
                println!(
                    "started  {}: {snap} of {} ({window})",
                    t.mount_point, t.volume_id
                );
                let ctx = hook_ctx(snapshotter.name(), t, Some(&snap));
                if let Err(e) = hooks::run(snapshotter, HookPoint::PostSnapshot, &ctx).await {
                    tracing::error!("{e}");
                    failed += 1;
                }
                started_ok.push((t.mount_point.clone(), snap));
            }
            Err(e) => {
                failed += 1;
                println!("FAILED   {}: {e} ({window})", t.mount_point);
            }
        }
    }
    (failed, started_ok)
}

/// `--wait`: every started snapshot to completion; returns the failures.
async fn wait_all(ec2: &Ec2, started: &[(String, String)], signals: &mut Signals) -> Result<usize> {
    let mut failed = 0;
    for (mp, snap) in started {
        let outcome = tokio::select! {
            r = wait_completed(ec2, mp, snap) => r,
            sig = signals.recv() => bail!("{sig} while waiting: the snapshots go on in EC2 ({})", started.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>().join(", ")),
        };
        match outcome {
            Ok(()) => println!("complete {mp}: {snap}"),
            Err(e) => {
                failed += 1;
                println!("FAILED   {mp}: {snap}: {e}");
            }
        }
    }
    Ok(failed)
}

/// Tag the snapshots this run started as crash-consistent (they may have
/// been taken after a thaw); returns their ids.
async fn mark_crash_consistent(ec2: &Ec2, run_id: &str) -> Vec<String> {
    let found = match ec2
        .snapshots_tagged(&[(TAG_RUN.to_string(), run_id.to_string())])
        .await
    {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(
                "could not look for snapshots this run started (tag {TAG_RUN}={run_id}): {e}"
            );
            return Vec::new();
        }
    };
    let crash = [("consistency".to_string(), "crash".to_string())];
    for s in &found {
        if let Err(e) = ec2.create_tags(&s.id, &crash).await {
            tracing::error!("could not tag {} consistency=crash: {e}", s.id);
        }
    }
    found.into_iter().map(|s| s.id).collect()
}

fn hook_ctx(profile: &str, t: &Target, snapshot: Option<&str>) -> HookCtx {
    HookCtx::volume(profile, &t.mount_point, &t.device)
        .with_volume_id(&t.volume_id)
        .with_snapshot_id(snapshot)
}

async fn wait_completed(ec2: &Ec2, mp: &str, snap: &str) -> Result<(), VolumeError> {
    tracing::info!("{mp}: waiting for {snap} to complete");
    let waited = poll_until(COMPLETION_DEADLINE, Backoff::SNAPSHOT, || async {
        Ok(match ec2.snapshot(snap).await? {
            Some(s) if s.state == SnapshotState::Completed => Ok(Ok(())),
            Some(s) if s.state == SnapshotState::Error => {
                Ok(Err(VolumeError::InError(snap.to_string())))
            }
            Some(s) => {
                let progress = s.progress.clone().unwrap_or_default();
                tracing::info!("{mp}: {snap} is {} {progress}", s.state.as_str());
                Err(format!("{} {progress}", s.state.as_str()))
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
