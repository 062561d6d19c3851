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
use super::tags::TAG_CALL;
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
    pub(crate) thawed: Thawed,
    pub(crate) watchdog: WatchdogReport,
    /// Snapshots that calls still running at the deadline created.
    pub(crate) late: Vec<String>,
    /// Snapshots a set made of volumes that are not targets.
    pub(crate) strays: Vec<String>,
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
    pub(crate) mode: Mode,
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
    // A signal during the sync stops the run before anything is frozen.
    tokio::select! {
        synced = tokio::task::spawn_blocking(move || freeze::sync_targets(&mps, SYNC_BOUND)) => {
            synced?.map_err(|e| anyhow::anyhow!("{e}; nothing was frozen"))?
        }
        sig = signals.recv() => bail!("{sig} during the sync before the freeze; nothing was frozen"),
    }
    let (mps, deadline) = (mount_points.clone(), opts.deadline);
    let mut watchdog =
        tokio::task::spawn_blocking(move || Watchdog::start(&mps, deadline, deadline)).await??;
    tracing::debug!("watchdog process {} is ready", watchdog.pid());

    let freezing = Instant::now();
    let mut set = freeze_all(mount_points, opts, &watchdog).await?;
    watchdog.frozen();
    let started = Instant::now();
    let freeze_took = started - freezing;
    // What the window is, known only now: on every snapshot at creation.
    // And how the snapshots were started: one CreateSnapshots is one
    // point in time even unfrozen; separate calls are one only when all
    // started inside the freeze (`points::one_moment`).
    let call = opts.mode.call();
    let consistency = [
        (
            "consistency".to_string(),
            if set.is_some() { "frozen" } else { "crash" }.to_string(),
        ),
        (TAG_CALL.to_string(), call.to_string()),
    ];
    let (targets, mode) = (
        with_tags(targets, &consistency),
        opts.mode.with_tags(&consistency),
    );
    let mut calls = start_calls(ec2, &targets, &mode, started + opts.deadline);
    let mut strays = Vec::new();
    let ended = tokio::select! {
        r = tokio::time::timeout(opts.deadline, collect(&mut calls, targets.len())) => match r {
            Ok((results, s)) => {
                strays = s;
                Ended::Done(results)
            }
            Err(_) => Ended::TimedOut,
        },
        sig = signals.recv() => Ended::Signal(sig),
    };
    let calls_took = started.elapsed();
    let thawing = Instant::now();
    let thawed = match set.as_mut() {
        Some(s) => tokio::task::block_in_place(|| s.thaw()),
        None => Thawed::default(),
    };
    tracing::info!(
        "freezing took {} ms, starting the snapshots {} ms, thawing {} ms",
        freeze_took.as_millis(),
        calls_took.as_millis(),
        thawing.elapsed().as_millis()
    );
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
        thawed,
        watchdog,
        late,
        strays,
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

/// How the snapshots are started.
#[derive(Debug, Clone)]
pub(crate) enum Mode {
    /// One CreateSnapshot per target, all at once.
    PerVolume,
    /// One CreateSnapshots for the whole set: one request, one point in
    /// time. `exclude` names the instance's other data volumes; `tags`
    /// are the set's common tags (each snapshot gets its `mount_point`
    /// once everything is thawed).
    Set {
        instance_id: String,
        exclude: Vec<String>,
        description: String,
        tags: Vec<(String, String)>,
    },
}

impl Mode {
    /// The EC2 call that starts the snapshots: what `snaptastic:call`
    /// records and what a cut-short window names.
    pub(crate) fn call(&self) -> &'static str {
        match self {
            Mode::Set { .. } => "CreateSnapshots",
            Mode::PerVolume => "CreateSnapshot",
        }
    }

    /// The same, with `extra` among the set's common tags.
    pub(crate) fn with_tags(&self, extra: &[(String, String)]) -> Mode {
        let mut mode = self.clone();
        if let Mode::Set { tags, .. } = &mut mode {
            tags.extend_from_slice(extra);
        }
        mode
    }
}

/// The targets, each with `extra` among its tags (a key it has already
/// takes the new value).
pub(crate) fn with_tags(targets: &[Target], extra: &[(String, String)]) -> Vec<Target> {
    targets
        .iter()
        .cloned()
        .map(|mut t| {
            t.tags.retain(|(k, _)| extra.iter().all(|(e, _)| e != k));
            t.tags.extend_from_slice(extra);
            t
        })
        .collect()
}

/// What one call task reports: per target index its result, and `None`
/// for a snapshot of a volume that is not a target (a volume attached
/// after the set was planned), to be deleted.
type Reported = Vec<(Option<usize>, CallResult)>;

/// Start the snapshots at once, each call retrying a throttled reply
/// briefly until `until`.
fn start_calls(ec2: &Ec2, targets: &[Target], mode: &Mode, until: Instant) -> JoinSet<Reported> {
    let mut set = JoinSet::new();
    match mode {
        Mode::PerVolume => {
            for (i, t) in targets.iter().enumerate() {
                let (ec2, t) = (ec2.clone(), t.clone());
                set.spawn(async move { vec![(Some(i), one_call(&ec2, &t, until).await)] });
            }
        }
        Mode::Set {
            instance_id,
            exclude,
            description,
            tags,
        } => {
            let (ec2, targets, instance_id, exclude, description, tags) = (
                ec2.clone(),
                targets.to_vec(),
                instance_id.clone(),
                exclude.clone(),
                description.clone(),
                tags.clone(),
            );
            set.spawn(async move {
                let call = || ec2.create_snapshot_set(&instance_id, &exclude, &description, &tags);
                match retrying(call, until).await {
                    Ok(pairs) => by_target(&targets, pairs),
                    Err(e) if set_unusable(&e) => {
                        tracing::warn!("{e}; starting one snapshot per volume instead");
                        // Separate calls: tagged as such, so an unfrozen
                        // run is never taken for one point in time.
                        let targets = with_tags(
                            &targets,
                            &[(TAG_CALL.to_string(), "CreateSnapshot".to_string())],
                        );
                        let calls = targets.iter().map(|t| one_call(&ec2, t, until));
                        futures_util::future::join_all(calls)
                            .await
                            .into_iter()
                            .enumerate()
                            .map(|(i, r)| (Some(i), r))
                            .collect()
                    }
                    Err(e) => (0..targets.len())
                        .map(|i| (Some(i), Err(e.clone())))
                        .collect(),
                }
            });
        }
    }
    set
}

/// One CreateSnapshot, with its tags at creation.
async fn one_call(ec2: &Ec2, t: &Target, until: Instant) -> CallResult {
    retrying(
        || ec2.create_snapshot(&t.volume_id, &t.description, &t.tags),
        until,
    )
    .await
}

/// Call, and again after a few tens of milliseconds while the reply says
/// the call was not carried out and `until` allows.
async fn retrying<T, F, Fut>(mut call: F, until: Instant) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CloudError>>,
{
    let mut attempt = 0u64;
    loop {
        match call().await {
            Err(e) if retry_while_frozen(&e) => {
                attempt += 1;
                let pause = Duration::from_millis(jittered(FROZEN_RETRY, attempt));
                if Instant::now() + pause >= until {
                    return Err(e);
                }
                tracing::debug!("{e}; retrying in {} ms", pause.as_millis());
                tokio::time::sleep(pause).await;
            }
            other => return other,
        }
    }
}

/// The set's snapshots matched to the targets by volume id.
fn by_target(targets: &[Target], pairs: Vec<(String, String)>) -> Reported {
    let mut out: Reported = targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let snap = pairs.iter().find(|(_, v)| v == &t.volume_id);
            let r = snap.map(|(s, _)| s.clone()).ok_or(CloudError::Transport {
                op: "CreateSnapshots",
                message: format!("the set has no snapshot of {}", t.volume_id),
            });
            (Some(i), r)
        })
        .collect();
    for (snap, vol) in pairs {
        if !targets.iter().any(|t| t.volume_id == vol) {
            out.push((None, Ok(snap)));
        }
    }
    out
}

/// CreateSnapshots refused in a way that says it created nothing and
/// will not work here (a policy without it, an endpoint without it).
fn set_unusable(e: &CloudError) -> bool {
    matches!(
        e.code(),
        Some(
            "UnauthorizedOperation"
                | "InvalidAction"
                | "UnsupportedOperation"
                | "InvalidParameterValue"
                | "InvalidParameterCombination"
        )
    )
}

/// A reply that says the call was not carried out and may go through in a
/// moment: throttling and 503. (A 500 or a timeout may have created the
/// snapshot; CreateSnapshot takes no client token, so it is not repeated.)
fn retry_while_frozen(e: &CloudError) -> bool {
    e.is_throttle() || matches!(e.code(), Some("ServiceUnavailable" | "Unavailable"))
}

/// A pause between `lo` and `hi` ms, different for each attempt and run.
fn jittered((lo, hi): (u64, u64), attempt: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| u64::from(t.subsec_nanos()))
        .unwrap_or(0);
    lo + (nanos / 1000 + attempt * 7) % (hi - lo + 1)
}

/// Every call's result, in target order, and stray snapshots.
async fn collect(calls: &mut JoinSet<Reported>, n: usize) -> (Vec<CallResult>, Vec<String>) {
    let mut out: Vec<Option<CallResult>> = (0..n).map(|_| None).collect();
    let mut strays = Vec::new();
    while let Some(joined) = calls.join_next().await {
        match joined {
            Ok(reported) => {
                for (i, r) in reported {
                    match (i, r) {
                        (Some(i), r) => out[i] = Some(r),
                        (None, Ok(id)) => strays.push(id),
                        (None, Err(_)) => {}
                    }
                }
            }
            Err(e) => tracing::error!("a snapshot call did not finish: {e}"),
        }
    }
    let results = out
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(CloudError::Transport {
                    op: "CreateSnapshot",
                    message: "the call did not finish".into(),
                })
            })
        })
        .collect();
    (results, strays)
}

/// After a cut-off window (everything thawed): wait a while for the calls
/// still running, and return the snapshots they created after all.
async fn settle(calls: &mut JoinSet<Reported>) -> Vec<String> {
    let mut late = Vec::new();
    let end = tokio::time::Instant::now() + SETTLE;
    while !calls.is_empty() {
        match tokio::time::timeout_at(end, calls.join_next()).await {
            Ok(Some(Ok(reported))) => late.extend(reported.into_iter().filter_map(|(_, r)| r.ok())),
            Ok(Some(Err(_))) => {}
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
