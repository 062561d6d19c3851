//! The frozen window of make-snapshots: sync, start the watchdog process,
//! freeze every target at once, start the snapshots, thaw. Nothing else
//! happens while a filesystem is frozen.
//!
//! Bounds: the freeze phase and the call phase each get `--freeze-timeout`;
//! this process thaws at its own deadline, and the watchdog process at the
//! same deadline whatever happens to this one (see `host/watchdog.rs`).
//! Inside the window a throttled or unavailable reply is retried after a
//! few tens of milliseconds while the deadline allows, never after the
//! SDK's second-long backoff. A call still running at the deadline is
//! not abandoned: once everything is thawed it is waited for (up to
//! `SETTLE`), and what it created is tagged `consistency=crash`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinSet;

use super::snapshot_plan::Target;
use crate::cloud::{CloudError, Ec2};
use crate::host::freeze::{self, FreezeError, FreezeSet, Thawed};
use crate::host::watchdog::{Watchdog, WatchdogReport};

/// How long the targets' syncfs may take before the freeze (nothing is
/// frozen yet, so this only delays the run).
const SYNC_BOUND: Duration = Duration::from_secs(120);
/// After the deadline, how long calls still in flight are waited for, to
/// learn (and tag) what they created (EC2 answers CreateSnapshot in well
/// under a second; a lookup by the run's tag is the second net).
const SETTLE: Duration = Duration::from_secs(10);
/// The pause before retrying a throttled call inside the window.
const FROZEN_RETRY: (u64, u64) = (10, 40);

/// One CreateSnapshot call's result: the snapshot id.
pub(crate) type CallResult = Result<String, CloudError>;

/// How the frozen window ended.
pub(crate) enum Ended {
    /// Every call returned within the deadline, in target order.
    Done(Vec<CallResult>),
    TimedOut,
    Signal(&'static str),
}

/// What happened in the window.
pub(crate) struct Window {
    pub(crate) ended: Ended,
    /// How long the calls took (or ran before the window was cut).
    pub(crate) calls_took: Duration,
    /// Whether the filesystems were frozen (`false` with
    /// `--allow-unfrozen` after a failed freeze).
    pub(crate) frozen: bool,
    pub(crate) thawed: Thawed,
    pub(crate) watchdog: WatchdogReport,
    /// Snapshots that calls still running at the deadline created.
    pub(crate) late: Vec<String>,
}

/// Signals caught from before the freeze to the end of the window, so
/// none kills the process while a filesystem is frozen.
pub(crate) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub(crate) fn new() -> Result<Self> {
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

/// The settings of one window.
pub(crate) struct WindowOptions<'a> {
    pub(crate) deadline: Duration,
    pub(crate) allow_unfrozen: bool,
    /// The snapshotter's name, for the `snaptastic thaw NAME` hint.
    pub(crate) name: &'a str,
}

/// Sync, freeze, call, thaw. `Err` means nothing was snapshotted and
/// nothing is frozen.
pub(crate) async fn run_window(
    ec2: &Ec2,
    targets: &[Target],
    opts: &WindowOptions<'_>,
    signals: &mut Signals,
) -> Result<Window> {
    let mount_points: Vec<PathBuf> = targets
        .iter()
        .map(|t| PathBuf::from(&t.mount_point))
        .collect();
    let mps = mount_points.clone();
    tokio::task::spawn_blocking(move || freeze::sync_targets(&mps, SYNC_BOUND))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}; nothing was frozen"))?;
    let (mps, deadline) = (mount_points.clone(), opts.deadline);
    let mut watchdog =
        tokio::task::spawn_blocking(move || Watchdog::start(&mps, deadline, deadline)).await??;
    tracing::debug!("watchdog process {} is ready", watchdog.pid());

    let mut set = freeze_all(mount_points, opts, &watchdog).await?;
    watchdog.frozen();
    let started = Instant::now();
    let mut calls = start_calls(ec2, targets, started + opts.deadline);
    let ended = tokio::select! {
        r = tokio::time::timeout(opts.deadline, collect(&mut calls, targets.len())) => match r {
            Ok(results) => Ended::Done(results),
            Err(_) => Ended::TimedOut,
        },
        sig = signals.recv() => Ended::Signal(sig),
    };
    let calls_took = started.elapsed();
    let thawed = match set.as_mut() {
        Some(s) => tokio::task::block_in_place(|| s.thaw()),
        None => Thawed::default(),
    };
    for (mp, w) in &thawed.windows {
        tracing::info!("{}: frozen for {} ms", mp.display(), w.as_millis());
    }
    for (mp, e) in &thawed.failures {
        tracing::error!(
            "could not thaw {}: {e}; run: snaptastic thaw {} (or fsfreeze -u {})",
            mp.display(),
            opts.name,
            mp.display()
        );
    }
    // Every freeze has returned (the set was complete); dropping the set
    // retries any failed thaw once more.
    let frozen = set.is_some();
    tokio::task::block_in_place(|| drop(set));
    let watchdog = tokio::task::block_in_place(|| watchdog.finish());
    crate::host::signals::restore_default();
    let late = if matches!(ended, Ended::Done(_)) {
        Vec::new()
    } else {
        settle(&mut calls).await
    };
    Ok(Window {
        ended,
        calls_took,
        frozen,
        thawed,
        watchdog,
        late,
    })
}

/// Freeze every target. `None` when a filesystem cannot be frozen and
/// `--allow-unfrozen` says to go on without.
async fn freeze_all(
    mount_points: Vec<PathBuf>,
    opts: &WindowOptions<'_>,
    watchdog: &Watchdog,
) -> Result<Option<FreezeSet>> {
    let (deadline, notifier) = (opts.deadline, watchdog.notifier());
    let frozen =
        tokio::task::spawn_blocking(move || FreezeSet::freeze(&mount_points, deadline, &notifier))
            .await?;
    match frozen {
        Ok(set) => Ok(Some(set)),
        Err(e) if opts.allow_unfrozen => {
            tracing::warn!(
                "{e}; snapshotting without a freeze (--allow-unfrozen): tagged consistency=crash"
            );
            Ok(None)
        }
        Err(e) => bail!("{}", refusal(&e, opts.name)),
    }
}

fn refusal(e: &FreezeError, name: &str) -> String {
    let mut out =
        format!("{e}; no snapshot was taken (pass --allow-unfrozen to take crash-consistent ones)");
    if e.already_frozen() {
        out.push_str(&format!(
            ". If no other tool is snapshotting it, an earlier run may have been killed while frozen: run `snaptastic thaw {name}` (or `fsfreeze -u {}`)",
            e.mount_point.display()
        ));
    }
    out
}

/// Start every CreateSnapshot at once, each retrying a throttled reply
/// briefly until `until`.
fn start_calls(ec2: &Ec2, targets: &[Target], until: Instant) -> JoinSet<(usize, CallResult)> {
    let mut set = JoinSet::new();
    for (i, t) in targets.iter().enumerate() {
        let (ec2, vol, desc, tags) = (
            ec2.clone(),
            t.volume_id.clone(),
            t.description.clone(),
            t.tags.clone(),
        );
        set.spawn(async move {
            let mut attempt = 0u64;
            loop {
                let r = ec2.create_snapshot(&vol, &desc, &tags).await;
                match r {
                    Err(e) if retry_while_frozen(&e) => {
                        attempt += 1;
                        let pause = Duration::from_millis(jittered(FROZEN_RETRY, attempt));
                        if Instant::now() + pause >= until {
                            return (i, Err(e));
                        }
                        tracing::debug!("{vol}: {e}; retrying in {} ms", pause.as_millis());
                        tokio::time::sleep(pause).await;
                    }
                    other => return (i, other),
                }
            }
        });
    }
    set
}

/// A reply that says the call was not carried out and may go through in a
/// moment: throttling and 503. (A 500 or a timeout may have created the
/// snapshot; CreateSnapshot takes no client token, so it is not repeated.)
fn retry_while_frozen(e: &CloudError) -> bool {
    matches!(
        e.code(),
        Some(
            "RequestLimitExceeded"
                | "Throttling"
                | "ThrottlingException"
                | "ServiceUnavailable"
                | "Unavailable"
        )
    )
}

/// A pause between `lo` and `hi` ms, different for each attempt and run.
fn jittered((lo, hi): (u64, u64), attempt: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| u64::from(t.subsec_nanos()))
        .unwrap_or(0);
    lo + (nanos / 1000 + attempt * 7) % (hi - lo + 1)
}

/// Every call's result, in target order.
async fn collect(calls: &mut JoinSet<(usize, CallResult)>, n: usize) -> Vec<CallResult> {
    let mut out: Vec<Option<CallResult>> = (0..n).map(|_| None).collect();
    while let Some(joined) = calls.join_next().await {
        match joined {
            Ok((i, r)) => out[i] = Some(r),
            Err(e) => tracing::error!("a snapshot call did not finish: {e}"),
        }
    }
    out.into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(CloudError::Transport {
                    op: "CreateSnapshot",
                    message: "the call did not finish".into(),
                })
            })
        })
        .collect()
}

/// After a cut-off window (everything thawed): wait a while for the calls
/// still running, and return the snapshots they created after all.
async fn settle(calls: &mut JoinSet<(usize, CallResult)>) -> Vec<String> {
    let mut late = Vec::new();
    let end = tokio::time::Instant::now() + SETTLE;
    while !calls.is_empty() {
        match tokio::time::timeout_at(end, calls.join_next()).await {
            Ok(Some(Ok((_, Ok(id))))) => late.push(id),
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(
                    "{} snapshot call(s) still running {}s after the thaw; giving up on them",
                    calls.len(),
                    SETTLE.as_secs()
                );
                calls.abort_all();
                break;
            }
        }
    }
    late
}
