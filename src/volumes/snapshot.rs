//! `make-snapshots NAME`: consistent snapshots with the shortest freeze.
//!
//! Everything that can happen before the freeze does (volume ids from the
//! attachments, tags, descriptions, hooks, sync). Then all filesystems are
//! frozen together, every CreateSnapshot starts concurrently (tags at
//! creation), and all are thawed the moment the calls return, or when the
//! deadline passes, or on SIGINT/SIGTERM/SIGHUP, or on any error or panic,
//! with a watchdog thread as the last resort.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use tokio::signal::unix::{signal, SignalKind};

use super::hooks::{self, HookEnv};
use super::list::attached_for;
use super::plan::TAG_PROFILE;

/// Tag on the snapshots of one make-snapshots run (see
/// `mark_crash_consistent`).
const TAG_RUN: &str = "snaptastic:run";
use super::tags::resource_tags;
use crate::app::Context;
use crate::cli::MakeSnapshotsArgs;
use crate::cloud::{poll_until, Backoff, SnapshotState};
use crate::config::{kernel_device_name, HookPoint, Userdata};
use crate::host::freeze::{self, FreezeSet};
use crate::host::{devices, mountinfo};

/// EC2 caps descriptions at 255 characters.
const MAX_DESCRIPTION: usize = 255;
/// A snapshot of a large, busy volume can take hours; `--wait` gives up
/// after a day.
const COMPLETION_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// One volume to snapshot, all resolved before anything is frozen.
struct Target {
    mount_point: String,
    device: String,
    volume_id: String,
    description: String,
    tags: Vec<(String, String)>,
}

pub async fn run(ctx: &Context, args: &MakeSnapshotsArgs) -> Result<ExitCode> {
    let config = ctx.config()?;
    let profile = config.profile(&args.profile.name)?.clone();
    let host = ctx.host(true).await?;
    let me = host
        .identity
        .clone()
        .context("make-snapshots needs the instance's identity")?
        .instance_id;
    let volumes = profile.resolve_volumes(&host.userdata)?;
    let filters = profile.filter_values(&host.userdata)?;
    let ec2 = ctx.ec2(Some(&config), &host).await?;
    let attached = ec2
        .volumes_attached_to(&me)
        .await
        .context("looking up attached volumes")?;
    let mounts = mountinfo::read().context("reading /proc/self/mountinfo")?;
    let now = chrono::Utc::now();

    // Resolve and check everything first; refuse before freezing anything.
    let mut targets = Vec::new();
    let mut problems = Vec::new();
    for v in &volumes {
        let at = |m: String| format!("{} ({}): {m}", v.mount_point, v.device);
        let Some(ebs) = attached_for(v, &me, &attached) else {
            problems.push(at(format!(
                "no EBS volume is attached to {me} for it; run mount-snapshots first"
            )));
            continue;
        };
        if let Some(reason) = freeze::refuse_reason(std::path::Path::new(&v.mount_point)) {
            problems.push(at(format!("refusing to freeze it: {reason}")));
            continue;
        }
        let Some(mounted) = mountinfo::find(&mounts, &v.mount_point) else {
            problems.push(at("not mounted; nothing to snapshot".into()));
            continue;
        };
        // The mounted filesystem must be on that volume's block device.
        let kernel = kernel_device_name(&v.device, v.device_name_offset);
        match devices::find(&config.device_root, &v.device, &kernel, &ebs.id)
            .map(|p| devices::dev_number(&p))
        {
            Some(Some(dev)) if dev == mounted.dev => {}
            Some(Some(dev)) => {
                problems.push(at(format!(
                    "mounted from {} ({}), but {} is device {dev}; refusing to snapshot the wrong volume",
                    mounted.source, mounted.dev, ebs.id
                )));
                continue;
            }
            _ => {
                problems.push(at(format!(
                    "the block device of {} is not found on this host",
                    ebs.id
                )));
                continue;
            }
        }
        let description = describe(
            &profile.description,
            &host.userdata,
            &v.mount_point,
            &v.device,
            &me,
        )
        .map_err(|k| {
            at(format!(
                "description needs '{k}', which userdata does not have"
            ))
        });
        let description = match description {
            Ok(d) => d,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let mut tags = resource_tags(&me, &v.mount_point, &filters, now, profile.retention);
        tags.push((TAG_PROFILE.to_string(), profile.name.clone()));
        targets.push(Target {
            mount_point: v.mount_point.clone(),
            device: v.device.clone(),
            volume_id: ebs.id.clone(),
            description,
            tags,
        });
    }
    if !problems.is_empty() {
        bail!("nothing was frozen:\n{}", problems.join("\n"));
    }

    hooks::run(&profile, HookPoint::PreSnapshots, &HookEnv::default())
        .await
        .map_err(|e| anyhow::anyhow!("{e}; nothing was frozen"))?;
    // The calls made while frozen retry less (every retry lengthens the freeze).
    let frozen_ec2 = ctx
        .ec2_with_attempts(Some(&config), &host, crate::cloud::FROZEN_ATTEMPTS)
        .await?;
    let result = snapshot_all(args, &profile, targets, frozen_ec2, ec2).await;
    // post_snapshots is the cleanup hook: it runs whatever happened.
    if let Err(e) = hooks::run(&profile, HookPoint::PostSnapshots, &HookEnv::default()).await {
        if let Err(first) = &result {
            tracing::error!("{first:#}");
        }
        bail!("{e}");
    }
    result
}

/// How the frozen window ended.
enum Ended {
    Done(Vec<Result<Result<String, crate::cloud::CloudError>, String>>),
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
    args: &MakeSnapshotsArgs,
    profile: &crate::config::Profile,
    mut targets: Vec<Target>,
    frozen_ec2: crate::cloud::Ec2,
    ec2: crate::cloud::Ec2,
) -> Result<ExitCode> {
    for t in &targets {
        let env = hook_env(t, None);
        hooks::run(profile, HookPoint::PreSnapshot, &env)
            .await
            .map_err(|e| anyhow::anyhow!("{e}; nothing was frozen"))?;
    }
    let mut signals = Signals::new()?;
    // Credentials, DNS and connections are set up now, one connection per
    // volume, not by the first call inside the freeze.
    let warm = targets.iter().map(|t| {
        let (ec2, id) = (frozen_ec2.clone(), t.volume_id.clone());
        tokio::spawn(async move { ec2.volume(&id).await })
    });
    for w in warm.collect::<Vec<_>>() {
        w.await?.context("checking the volumes before freezing")?;
    }
    // A tag unique to this run finds what it started, whatever happens.
    let run_id = format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );

    tokio::task::spawn_blocking(freeze::sync_all).await?;
    let mount_points: Vec<PathBuf> = targets
        .iter()
        .map(|t| PathBuf::from(&t.mount_point))
        .collect();
    let deadline = args.freeze_timeout;
    let frozen =
        tokio::task::spawn_blocking(move || FreezeSet::freeze(&mount_points, deadline)).await?;
    let (mut frozen, consistency) = match frozen {
        Ok(set) => (Some(set), "frozen"),
        Err(e) if args.allow_unfrozen => {
            tracing::warn!(
                "{e}; snapshotting without a freeze (--allow-unfrozen): tagged consistency=crash"
            );
            (None, "crash")
        }
        Err(e) => bail!(
            "{e}; no snapshot was taken (pass --allow-unfrozen to take crash-consistent ones)"
        ),
    };
    for t in &mut targets {
        t.tags
            .push(("consistency".to_string(), consistency.to_string()));
        t.tags.push((TAG_RUN.to_string(), run_id.clone()));
    }

    // The frozen window: only the calls that start the snapshots.
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
    let calls = crate::app::join_in_order(calls);
    let ended = tokio::select! {
        r = tokio::time::timeout(deadline, calls) => match r {
            Ok(results) => Ended::Done(results),
            Err(_) => Ended::TimedOut,
        },
        sig = signals.recv() => Ended::Signal(sig),
    };
    let calls_took = started.elapsed();
    let watchdog_fired = frozen.as_ref().is_some_and(FreezeSet::watchdog_fired);
    let thawed = match frozen.as_mut() {
        Some(set) => tokio::task::block_in_place(|| set.thaw()),
        None => Default::default(),
    };
    for (mp, w) in &thawed.windows {
        tracing::info!("{}: frozen for {} ms", mp.display(), w.as_millis());
    }
    let thaw_failed = !thawed.failures.is_empty();
    for (mp, e) in &thawed.failures {
        tracing::error!(
            "could not thaw {}: {}; run: fsfreeze -u {}",
            mp.display(),
            e.desc(),
            mp.display()
        );
    }
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
                    humantime::format_duration(deadline),
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

    let mut failed = usize::from(thaw_failed);
    let mut started_ok = Vec::new();
    for (t, r) in targets.iter().zip(results) {
        let r = r
            .map_err(|message| crate::cloud::CloudError::Transport {
                op: "CreateSnapshot",
                message,
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
                let env = hook_env(t, Some(&snap));
                if let Err(e) = hooks::run(profile, HookPoint::PostSnapshot, &env).await {
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
    if args.wait {
        for (mp, snap) in &started_ok {
            let outcome = tokio::select! {
                r = wait_completed(&ec2, mp, snap) => r,
                sig = signals.recv() => bail!("{sig} while waiting: the snapshots go on in EC2 ({})", started_ok.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>().join(", ")),
            };
            match outcome {
                Ok(()) => println!("complete {mp}: {snap}"),
                Err(e) => {
                    failed += 1;
                    println!("FAILED   {mp}: {snap}: {e}");
                }
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Tag the snapshots this run started as crash-consistent (they may have
/// been taken after a thaw); returns their ids.
async fn mark_crash_consistent(ec2: &crate::cloud::Ec2, run_id: &str) -> Vec<String> {
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

fn hook_env(t: &Target, snapshot: Option<&str>) -> HookEnv {
    HookEnv {
        mount_point: Some(t.mount_point.clone()),
        device: Some(t.device.clone()),
        volume_id: Some(t.volume_id.clone()),
        snapshot_id: snapshot.map(str::to_string),
        ..Default::default()
    }
}

/// The snapshot description, from the profile's template; `Err(key)` names
/// a placeholder nothing fills.
fn describe(
    template: &crate::config::Template,
    userdata: &Userdata,
    mount_point: &str,
    device: &str,
    instance_id: &str,
) -> Result<String, String> {
    let text = template.render(|k| match k {
        "mount_point" => Some(mount_point.to_string()),
        "device" => Some(device.to_string()),
        "instance_id" => Some(instance_id.to_string()),
        other => userdata.get_str(other),
    })?;
    Ok(text.chars().take(MAX_DESCRIPTION).collect())
}

async fn wait_completed(ec2: &crate::cloud::Ec2, mp: &str, snap: &str) -> Result<(), String> {
    tracing::info!("{mp}: waiting for {snap} to complete");
    let waited = poll_until(COMPLETION_DEADLINE, Backoff::SNAPSHOT, || async {
        Ok(match ec2.snapshot(snap).await? {
            Some(s) if s.state == SnapshotState::Completed => Ok(Ok(())),
            Some(s) if s.state == SnapshotState::Error => Ok(Err("ended in error".to_string())),
            Some(s) => {
                let progress = s.progress.clone().unwrap_or_default();
                tracing::info!("{mp}: {snap} is {} {progress}", s.state.as_str());
                Err(format!("{} {progress}", s.state.as_str()))
            }
            None => Ok(Err("disappeared".to_string())),
        })
    })
    .await
    .map_err(|e| e.to_string())?;
    waited
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Template;

    #[test]
    fn descriptions_fill_placeholders_and_fit_ec2() {
        let t = Template::parse(crate::config::DEFAULT_DESCRIPTION).unwrap();
        let ud = Userdata::parse(r#"{"cluster": "my_cluster"}"#, "x").unwrap();
        assert_eq!(
            describe(&t, &ud, "/var/lib/pg/_q", "/dev/sdf", "i-1").unwrap(),
            "my_cluster snapshot of /var/lib/pg/_q"
        );
        assert_eq!(
            describe(&t, &Userdata::default(), "/a", "/dev/sdf", "i-1").unwrap_err(),
            "cluster"
        );
        let long = Template::parse("{mount_point}").unwrap();
        let mp = format!("/{}", "x".repeat(300));
        assert_eq!(
            describe(&long, &ud, &mp, "/dev/sdf", "i")
                .unwrap()
                .chars()
                .count(),
            255
        );
    }
}
