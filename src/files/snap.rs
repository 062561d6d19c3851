//! `tablesnap`: watch directories and upload every new immutable file.
//!
//! Events go into a bounded, de-duplicated queue (queue.rs) served by
//! `--threads` workers. After the files of a directory are uploaded (and
//! the directory has been quiet for a moment) one `-listdir.json` index is
//! written for the batch (index_writer.rs), so a thousand-file flush writes
//! a handful of indexes, each after the files it names. SIGTERM or
//! SIGINT stops intake, lets the uploads in flight finish and writes the
//! indexes they owe.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Semaphore};

use super::digests::Digests;
use super::index_writer::{self, Landing};
use super::keys::{Filter, KeyNaming};
use super::queue::{self, Intake, Job, Queue};
use super::retry::Retries;
use super::settings::SnapSettings;
use super::upload::{Outcome, Seen, Uploader};
use crate::cloud::s3::{PutOptions, S3};
use crate::host::watch::{self, Change, Listen, Watcher};

/// How long a stopping daemon waits for uploads and index writes in
/// flight before it gives up on them (they are owed to the next start):
/// systemd and operators expect a daemon to stop in seconds, also when S3
/// is unreachable.
const STOP_GRACE: Duration = Duration::from_secs(8);
/// Queue length before the watcher waits (a full kernel queue then
/// overflows, which triggers a rescan: nothing is lost).
const QUEUE_CAPACITY: usize = 10_000;
/// How often a long `-B` scan reports progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// How often directories that could not be watched (the inotify watch
/// limit, permissions) are watched again or, failing that, rescanned:
/// their files are then uploaded this late at worst. Each rescan costs a
/// HEAD per file in them, hence not every few seconds.
const UNWATCHED_RESCAN: Duration = Duration::from_secs(30);

/// Counters for progress lines.
#[derive(Default)]
struct Stats {
    checked: AtomicU64,
    uploaded: AtomicU64,
    /// Found in S3 already; `known`: of those, without reading the file
    /// (the digest record had it).
    present: AtomicU64,
    known: AtomicU64,
    failed: AtomicU64,
    /// Files being checked or uploaded right now.
    busy: AtomicU64,
    /// Queued when the daemon stopped.
    dropped: AtomicU64,
    /// The last failed upload, `path: error`: the stop line names it, so
    /// the last line of a run says what went wrong where.
    last_failure: std::sync::Mutex<Option<String>>,
}

/// Run the daemon with its settings, resolved before it starts
/// (files/settings.rs).
pub(crate) async fn run(args: &SnapSettings) -> Result<ExitCode> {
    // Multipart uploads initiated before this are not this daemon's.
    let started = chrono::Utc::now();
    // As a message, not a chain: the pattern error already says the regex
    // error, which `{:#}` would repeat.
    let filter = Filter::new(&args.exclude, &args.include).map_err(anyhow::Error::msg)?;
    let (roots, listen, opts) = check(args)?;
    // The watched directories, checked to open now: every file and
    // directory below them is reached through them (each opened afresh
    // per use), never through a link.
    let tree = Arc::new(
        crate::host::safe_path::Roots::open(&roots).context("opening the watched directories")?,
    );
    if crate::host::safe_path::hard_links_protected() == Some(false) {
        tracing::warn!(
            "fs.protected_hardlinks is 0: a user who can write a watched directory can hard-link \
             any file into it (/etc/shadow) and have it backed up; set sysctl \
             fs.protected_hardlinks=1 (the default of Debian, Ubuntu and Amazon Linux)"
        );
    }

    let s3 = super::connect(args.connection()).await;
    s3.check_bucket()
        .await
        .with_context(|| format!("bucket {}", args.bucket))?;
    let naming = args.naming();
    // Held (shared) until the daemon exits: see files/stale.rs.
    let space = super::stale::Space {
        bucket: &args.bucket,
        naming: &naming,
        roots: &roots,
        state_dir: args.state_dir.as_deref(),
    };
    let _host_lock = super::stale::abort_stale_uploads(&s3, space, started).await;
    let digests = Arc::new(
        super::digests::load(
            args.state_dir.as_deref(),
            args.md5_on_start,
            &args.bucket,
            &naming,
        )
        .await,
    );
    let mib = 1u64 << 20;
    let uploader = Arc::new(Uploader {
        s3: s3.clone(),
        naming: naming.clone(),
        opts: opts.clone(),
        max_single: args.max_upload_size.saturating_mul(mib).min(5 << 30),
        chunk: args.multipart_chunk_size.saturating_mul(mib),
        parts: Arc::new(Semaphore::new(args.threads)),
        memory: super::upload::buffer_budget(),
        hashing: super::upload::hashing_slots(),
        names: Default::default(),
        roots: tree.clone(),
        digests: digests.clone(),
    });

    // Watches first, then the scan: nothing falls between them (a file
    // seen twice is checked twice, which costs a HEAD).
    let mut watcher = Watcher::new(tree.clone(), listen, args.recursive, args.auto_add)
        .context("setting up inotify watches")?;
    tracing::info!(
        "watching {} for {} as {}{}{}",
        roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        args.bucket,
        naming.prefix,
        naming.name,
        naming.separator
    );

    // Signals first: a SIGTERM during the -B scan must stop it cleanly too.
    let mut signals = Signals {
        term: signal(SignalKind::terminate())?,
        int: signal(SignalKind::interrupt())?,
    };

    let (queue, intake) = queue::bounded(QUEUE_CAPACITY);
    let (landings_tx, landings_rx) = mpsc::unbounded_channel::<Landing>();
    // Failed files come back to the main loop (with their failed
    // attempts), which retries them later.
    let (retry_tx, mut retry_rx) = mpsc::unbounded_channel::<(PathBuf, u32)>();
    // Files the indexer found in S3 without their md5sum go up again.
    let (requeue_tx, mut requeue_rx) = mpsc::unbounded_channel::<PathBuf>();
    let indexer = (!args.without_index).then(|| {
        tokio::spawn(index_writer::run(
            landings_rx,
            index_writer::Writer {
                s3: s3.clone(),
                naming: naming.clone(),
                filter: filter.clone(),
                opts: opts.clone(),
                roots: tree.clone(),
                requeue: requeue_tx,
                refresh_every: args.index_refresh,
            },
        ))
    });
    // The daemon names the watched directories to the indexer (refresh).
    let watched = indexer.is_some().then(|| landings_tx.clone());
    let pool = Pool {
        intake,
        uploader,
        stopping: Arc::new(AtomicBool::new(false)),
        stats: Arc::new(Stats::default()),
        landings: landings_tx,
        retry: retry_tx,
    };
    let workers: Vec<_> = (0..args.threads)
        .map(|_| tokio::spawn(pool.clone().work()))
        .collect();

    let mut daemon = Daemon {
        s3: s3.clone(),
        naming: naming.clone(),
        queue,
        filter,
        roots,
        tree,
        recursive: args.recursive,
        stats: pool.stats.clone(),
        scans: Vec::new(),
        retries: Retries::default(),
        digests,
        watched,
        refresh_every: args.index_refresh,
        rescan_due: false,
        last_reported: (0, 0),
        backup_scan: Vec::new(),
    };
    if args.backup {
        daemon.backup_scan = daemon.rescan();
    }
    let stop_reason = daemon
        .serve(&mut watcher, &mut retry_rx, &mut requeue_rx, &mut signals)
        .await;
    if watcher.failures() > 0 {
        tracing::warn!(
            "{} failed attempts to watch a directory; {} director(ies) were still unwatched",
            watcher.failures(),
            watcher.unwatched()
        );
    }
    drop(watcher);
    tracing::info!("{stop_reason}: finishing the uploads in flight");
    let clean = stop_reason == "SIGTERM" || stop_reason == "SIGINT";
    let owed = shut_down(daemon, pool, workers, indexer).await;
    Ok(if clean && owed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Check the settings that need no network: the threads, the directories
/// (made absolute), the events to listen for and the PUT options.
fn check(args: &SnapSettings) -> Result<(Vec<PathBuf>, Listen, PutOptions)> {
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let mut roots = Vec::new();
    for p in &args.paths {
        let abs = normalize(&std::path::absolute(p).with_context(|| format!("{}", p.display()))?);
        if !abs.is_dir() {
            bail!("{} is not a directory", p.display());
        }
        roots.push(abs);
    }
    let mut listen = Listen::default();
    if args.listen_events.is_empty() {
        listen.moved_to = true;
        listen.close_write = true;
    }
    for e in &args.listen_events {
        match e.as_str() {
            "IN_MOVED_TO" => listen.moved_to = true,
            "IN_CLOSE_WRITE" => listen.close_write = true,
            _ => listen.create = true,
        }
    }
    let opts = PutOptions {
        storage_class: args.storage_class.clone().or_else(|| {
            args.reduced_redundancy
                .then(|| "REDUCED_REDUNDANCY".to_string())
        }),
        sse: args
            .sse
            .clone()
            .or_else(|| args.with_sse.then(|| "AES256".to_string())),
        sse_kms_key_id: args.sse_kms_key_id.clone(),
    };
    if opts.sse_kms_key_id.is_some() && opts.sse.as_deref() != Some("aws:kms") {
        bail!("--sse-kms-key-id needs --sse aws:kms");
    }
    Ok((roots, listen, opts))
}

/// The signals that stop the daemon.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

/// What every upload worker shares.
#[derive(Clone)]
struct Pool {
    intake: Intake,
    uploader: Arc<Uploader>,
    /// Set at shutdown: what is still queued is counted, not uploaded.
    stopping: Arc<AtomicBool>,
    stats: Arc<Stats>,
    /// Files taken, landed in S3 or dropped, for the indexer.
    landings: mpsc::UnboundedSender<Landing>,
    /// Files that failed (with their failed attempts), for a later retry.
    retry: mpsc::UnboundedSender<(PathBuf, u32)>,
}

impl Pool {
    /// One worker: upload queued files until the queue closes.
    async fn work(self) {
        loop {
            let Some(Job {
                path,
                seen,
                attempt,
            }) = self.intake.next().await
            else {
                break;
            };
            if self.stopping.load(Ordering::Relaxed) {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.stats.checked.fetch_add(1, Ordering::Relaxed);
            self.stats.busy.fetch_add(1, Ordering::Relaxed);
            let _ = self.landings.send(Landing::Started(path.clone()));
            let outcome = self.uploader.upload(&path, seen).await;
            self.stats.busy.fetch_sub(1, Ordering::Relaxed);
            match outcome {
                Ok(Outcome::Uploaded { key, size }) => {
                    self.stats.uploaded.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("uploaded {key} ({size} bytes)");
                    let _ = self.landings.send(Landing::Landed(path, size));
                }
                Ok(Outcome::Present { read, size }) => {
                    self.stats.present.fetch_add(1, Ordering::Relaxed);
                    if !read {
                        self.stats.known.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::debug!("{} is already in S3", path.display());
                    let _ = self.landings.send(Landing::Landed(path, size));
                }
                Ok(Outcome::Vanished) => {
                    tracing::debug!("{} vanished before upload", path.display());
                    let _ = self.landings.send(Landing::Dropped(path));
                }
                Ok(Outcome::Skipped(why)) => {
                    tracing::debug!("skipping {}: {why}", path.display());
                    let _ = self.landings.send(Landing::Dropped(path));
                }
                Ok(Outcome::Refused(why)) => {
                    tracing::error!("refusing to upload {}: {why}", path.display());
                    let _ = self.landings.send(Landing::Dropped(path));
                }
                Err(e) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!("failed to upload {}: {e}; will retry", path.display());
                    if let Ok(mut last) = self.stats.last_failure.lock() {
                        *last = Some(format!("{}: {e}", path.display()));
                    }
                    let _ = self.landings.send(Landing::Dropped(path.clone()));
                    let _ = self.retry.send((path, attempt.saturating_add(1)));
                }
            }
        }
    }
}

/// The event loop's state: what to queue, what to retry when, whether a
/// rescan is owed.
struct Daemon {
    queue: Queue,
    filter: Filter,
    roots: Vec<PathBuf>,
    /// The same, for opening: scans read through them.
    tree: Arc<crate::host::safe_path::Roots>,
    recursive: bool,
    stats: Arc<Stats>,
    /// Scans run as tasks so the loop keeps reading inotify and signals;
    /// they are aborted at shutdown.
    scans: Vec<tokio::task::JoinHandle<()>>,
    /// Failed files to try again.
    retries: Retries,
    /// The digest record (shared with the uploader): gone files leave it.
    digests: Arc<Digests>,
    /// To the indexer, when there is one: the watched directories, every
    /// `refresh::check_every`, so quiet ones get their index rewritten.
    watched: Option<mpsc::UnboundedSender<Landing>>,
    refresh_every: Duration,
    /// The queue was full or inotify overflowed: scan everything again
    /// when there is room.
    rescan_due: bool,
    last_reported: (u64, u64),
    /// The `-B` scan's tasks until everything they queued is checked.
    backup_scan: Vec<Arc<AtomicBool>>,
    /// For the scans' listings.
    s3: S3,
    naming: KeyNaming,
}

impl Daemon {
    /// Serve events until a signal or an inotify failure; returns why it
    /// stopped.
    async fn serve(
        &mut self,
        watcher: &mut Watcher,
        retry_rx: &mut mpsc::UnboundedReceiver<(PathBuf, u32)>,
        requeue_rx: &mut mpsc::UnboundedReceiver<PathBuf>,
        signals: &mut Signals,
    ) -> String {
        let mut progress = tokio::time::interval(PROGRESS_EVERY);
        // The first look after one check period: a start with -B indexes
        // everything it lands anyway.
        let check = super::refresh::check_every(self.refresh_every);
        let mut refresh = tokio::time::interval_at(tokio::time::Instant::now() + check, check);
        let mut unwatched = tokio::time::interval_at(
            tokio::time::Instant::now() + UNWATCHED_RESCAN,
            UNWATCHED_RESCAN,
        );
        loop {
            tokio::select! {
                change = watcher.next() => match change {
                    Some(Ok(change)) => self.on_change(change),
                    Some(Err(e)) => return format!("inotify failed: {e}"),
                    None => return "inotify stream ended".to_string(),
                },
                _ = unwatched.tick(), if watcher.unwatched() > 0 => self.on_unwatched(watcher),
                _ = refresh.tick(), if self.watched.is_some() => self.on_refresh(watcher),
                Some((path, attempt)) = retry_rx.recv() => {
                    self.retries.failed(path, attempt, Instant::now());
                }
                Some(path) = requeue_rx.recv() => {
                    if !self.queue.try_push(path, Seen::Absent) {
                        self.rescan_due = true;
                    }
                }
                _ = signals.term.recv() => return "SIGTERM".to_string(),
                _ = signals.int.recv() => return "SIGINT".to_string(),
                _ = progress.tick() => self.on_tick(),
            }
        }
    }

    fn on_change(&mut self, change: Change) {
        match change {
            Change::File(path) => {
                if !self.filter.accepts(&path) {
                    tracing::debug!("skipping {} by the include/exclude rule", path.display());
                } else if !self.queue.try_push(path, Seen::Absent) {
                    // Full: a rescan later picks up whatever was dropped.
                    self.rescan_due = true;
                }
            }
            Change::Dir(dir) => {
                self.scan(dir, true, false);
            }
            Change::Gone(path) => {
                self.digests.forget(&path);
                self.retries.forget(&path);
            }
            Change::GoneDir(dir) => {
                self.retries.forget(&dir);
                // One pass over the record: not on the event loop.
                let digests = self.digests.clone();
                tokio::task::spawn_blocking(move || digests.retain(|p| !p.starts_with(&dir)));
            }
            Change::Overflow => {
                tracing::warn!("inotify queue overflowed: rescanning");
                self.rescan_due = true;
            }
        }
    }

    /// Watch again the directories that could not be watched; scan them
    /// all (those still unwatched are covered by these scans alone).
    fn on_unwatched(&mut self, watcher: &mut Watcher) {
        let (now, still) = watcher.retry_unwatched();
        for dir in now {
            tracing::info!("now watching {}", dir.display());
            self.scan(dir, true, true);
        }
        if !still.is_empty() {
            tracing::warn!(
                "{} director(ies) cannot be watched ({} failed watch attempts so far): \
                 rescanning them every {}s; raise sysctl fs.inotify.max_user_watches if \
                 the watch limit is the cause",
                still.len(),
                watcher.failures(),
                UNWATCHED_RESCAN.as_secs()
            );
        }
        for dir in still {
            self.scan(dir, true, true);
        }
    }

    /// Name the watched directories to the indexer, which rewrites the
    /// index of those not indexed within the refresh interval.
    fn on_refresh(&mut self, watcher: &Watcher) {
        if let Some(tx) = &self.watched {
            let _ = tx.send(Landing::Watched(watcher.directories()));
        }
    }

    /// Every few seconds: queue the retries that are due, rescan if owed
    /// and there is room, report progress.
    fn on_tick(&mut self) {
        for (p, attempt) in self.retries.take_due(Instant::now()) {
            if !self.queue.try_push_retry(p, attempt) {
                self.rescan_due = true;
            }
        }
        if self.rescan_due && self.queue.has_room() {
            self.rescan_due = false;
            let _ = self.rescan();
        }
        let counts = (
            self.stats.checked.load(Ordering::Relaxed),
            self.stats.uploaded.load(Ordering::Relaxed),
        );
        let waiting = self.queue.waiting();
        if counts != self.last_reported && waiting > 0 {
            tracing::info!(
                "{} files checked, {} uploaded, {waiting} waiting",
                counts.0,
                counts.1
            );
        }
        self.last_reported = counts;
        self.report_backup_scan(waiting);
    }

    /// Say once when the `-B` scan's files have all been checked (an
    /// operator waits for it after a restart).
    fn report_backup_scan(&mut self, waiting: usize) {
        let queued = self.backup_scan.iter().all(|d| d.load(Ordering::Relaxed));
        if self.backup_scan.is_empty()
            || !queued
            || waiting > 0
            || self.stats.busy.load(Ordering::Relaxed) > 0
        {
            return;
        }
        self.backup_scan.clear();
        let s = &self.stats;
        tracing::info!(
            "backup scan done: {} files checked, {} uploaded, {} already in S3 ({} of them \
             known from the digest record, not read), {} failed attempts",
            s.checked.load(Ordering::Relaxed),
            s.uploaded.load(Ordering::Relaxed),
            s.present.load(Ordering::Relaxed),
            s.known.load(Ordering::Relaxed),
            s.failed.load(Ordering::Relaxed)
        );
    }

    /// Scan every watched root; returns each scan's "all queued" flag.
    fn rescan(&mut self) -> Vec<Arc<AtomicBool>> {
        self.roots
            .clone()
            .into_iter()
            .map(|r| self.scan(r, self.recursive, true))
            .collect()
    }

    /// Queue the files of `dir` that pass the filter, in a task; the flag
    /// is set once all are queued. With `prune`, files of the record that
    /// the scan no longer finds leave it (events may have been lost).
    fn scan(&mut self, dir: PathBuf, recursive: bool, prune: bool) -> Arc<AtomicBool> {
        let (queue, filter, tree) = (self.queue.clone(), self.filter.clone(), self.tree.clone());
        let (s3, naming, digests) = (self.s3.clone(), self.naming.clone(), self.digests.clone());
        let indexer = self.watched.clone();
        let queued = Arc::new(AtomicBool::new(false));
        let done = queued.clone();
        self.scans.retain(|h| !h.is_finished());
        self.scans.push(tokio::spawn(async move {
            // The walk and the filter run off the event loop's threads, and
            // the stop (which aborts this task, dropping the wait) ends
            // them: the runtime would otherwise hold the exit until a walk
            // over millions of files is done. With `prune`, files of the
            // record the scan no longer finds leave it.
            let walked = super::blocking_until_dropped(move |stop| {
                let scanned = watch::scan(&tree, &dir, recursive, |f| filter.accepts(f), stop)?;
                if prune {
                    digests.retain(scanned.still_there(&dir, recursive));
                }
                Some(scanned)
            })
            .await;
            let Ok(Some(scanned)) = walked else {
                return;
            };
            queue::push_scanned(&queue, scanned.by_dir, &s3, &naming, indexer.as_ref()).await;
            done.store(true, Ordering::Relaxed);
        }));
        queued
    }
}

/// Stop intake, let the uploads in flight finish and the indexes they owe
/// be written, for [`STOP_GRACE`] at most (S3 may be unreachable: each
/// request would otherwise run its whole retry budget in turn); returns
/// how many files and directories are left owed, said in the last line
/// (non-zero also when a `-B` scan was cut short).
/// An upload cut off mid-multipart leaves an unfinished upload that the
/// next start aborts (files/stale.rs).
async fn shut_down(
    daemon: Daemon,
    pool: Pool,
    workers: Vec<tokio::task::JoinHandle<()>>,
    indexer: Option<tokio::task::JoinHandle<usize>>,
) -> u64 {
    pool.stopping.store(true, Ordering::Relaxed);
    let Daemon {
        queue,
        scans,
        retries,
        stats,
        backup_scan,
        watched,
        ..
    } = daemon;
    // The indexer stops once every sender of its channel is gone.
    drop(watched);
    for s in &scans {
        s.abort();
    }
    for s in scans {
        let _ = s.await;
    }
    let scan_cut_short = backup_scan
        .iter()
        .any(|queued| !queued.load(Ordering::Relaxed));
    // Close the queue: workers drain it (skipping what has not started).
    let still_queued = pool.intake.clone();
    drop(queue);
    drop(pool);
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    let mut cut_off = 0u64;
    for mut w in workers {
        if tokio::time::timeout_at(deadline, &mut w).await.is_err() {
            w.abort();
            cut_off += 1;
        }
    }
    let mut unindexed = 0;
    let mut index_cut_off = false;
    if let Some(mut ix) = indexer {
        match tokio::time::timeout_at(deadline, &mut ix).await {
            Ok(n) => unindexed = n.unwrap_or(0),
            Err(_) => {
                ix.abort();
                index_cut_off = true;
            }
        }
    }
    // Workers cut off at the deadline leave the rest of the queue unread.
    let dropped = stats.dropped.load(Ordering::Relaxed)
        + retries.len() as u64
        + cut_off
        + still_queued.waiting() as u64;
    drop(still_queued);
    let owed = match (dropped, unindexed, index_cut_off || scan_cut_short) {
        (0, 0, false) => String::new(),
        (files, dirs, _) => format!(
            "; owed: {files} file(s) not uploaded{}{}, {dirs} director(ies) not indexed{}; \
             the next start with -B picks them up",
            if cut_off > 0 {
                format!(" ({cut_off} cut off after {}s)", STOP_GRACE.as_secs())
            } else {
                String::new()
            },
            if scan_cut_short {
                " (and the -B scan was cut short: files it had not queued yet are not counted)"
            } else {
                ""
            },
            if index_cut_off {
                format!(" and index writes cut off after {}s", STOP_GRACE.as_secs())
            } else {
                String::new()
            }
        ),
    };
    let last_failure = match stats.last_failure.lock().ok().and_then(|l| l.clone()) {
        Some(f) if !owed.is_empty() => format!("; the last failure: {f}"),
        _ => String::new(),
    };
    let line = format!(
        "stopped: {} uploaded, {} failed attempts{owed}{last_failure}",
        stats.uploaded.load(Ordering::Relaxed),
        stats.failed.load(Ordering::Relaxed)
    );
    if owed.is_empty() {
        tracing::info!("{line}");
    } else {
        tracing::warn!("{line}");
    }
    // A -B scan cut short owes the files it had not queued yet: the exit
    // says so too (1), as the line does.
    dropped + unindexed as u64 + u64::from(index_cut_off) + u64::from(scan_cut_short)
}

/// Resolve `.` and `..` lexically, as 1.2.1's os.path.abspath did (no
/// symlink resolution: keys keep the path the operator gave).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_lexically() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../x")), PathBuf::from("/x"));
    }
}
