//! Freezing filesystems (FIFREEZE/FITHAW on the mount point). This
//! process thaws when the caller says, when the set is dropped (errors,
//! panics), and undoes any freeze that returns after it gave up; the
//! watchdog process (`watchdog.rs`) thaws at the deadline, on signals and
//! when this process dies. Both touch the frozen filesystems only through
//! descriptors opened before freezing: a frozen filesystem blocks any path
//! lookup or write on it.

use super::safe_path::SafeDir;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::ioctl::{freeze_fd, thaw_fd};
use super::watchdog::Notifier;
use super::HostError;

/// How often a run waiting for an outstanding FIFREEZE says so.
const OUTSTANDING_EVERY: Duration = Duration::from_secs(3);

/// One frozen filesystem.
struct Frozen {
    mount_point: PathBuf,
    dir: File,
    frozen_at: Instant,
    /// Set once thawed: how long it was frozen.
    window: Option<Duration>,
    /// The last thaw attempt failed with this (it is tried again).
    thaw_error: Option<Errno>,
    /// Our first thaw found it not frozen (EINVAL).
    found_thawed: bool,
}

/// The state the caller and the freezing threads share.
struct Inner {
    frozen: Vec<Frozen>,
    /// Give up: a freeze that returns from now on is undone at once by the
    /// thread that made it (a freeze that outlived the deadline, or one
    /// racing a failure of another).
    abandoned: bool,
    /// The caller has thawed: the same.
    done: bool,
}

/// What thawing found.
#[derive(Debug, Default)]
pub(crate) struct Thawed {
    /// How long each filesystem was frozen.
    pub(crate) windows: Vec<(PathBuf, Duration)>,
    /// Filesystems that could not be thawed (each needs `fsfreeze -u`).
    pub(crate) failures: Vec<(PathBuf, std::io::Error)>,
    /// Filesystems no longer frozen when we came to thaw them: someone
    /// else thawed them during the window (`fsfreeze -u`, `snaptastic
    /// thaw`, another run), so what was started may not be consistent.
    pub(crate) not_frozen: Vec<PathBuf>,
}

/// A set of frozen filesystems. Thaws everything on drop. Every freezing
/// thread is kept: the set is not gone until each FIFREEZE has returned
/// (and, if it returned late, been undone).
pub(crate) struct FreezeSet {
    inner: Arc<Mutex<Inner>>,
    threads: Vec<(PathBuf, std::thread::JoinHandle<()>)>,
}

/// Why a filesystem could not be frozen.
#[derive(Debug)]
pub(crate) struct FreezeError {
    pub(crate) mount_point: PathBuf,
    errno: Errno,
}

impl FreezeError {
    /// Frozen already, by someone else or by an earlier run that died.
    pub(crate) fn already_frozen(&self) -> bool {
        self.errno == Errno::EBUSY
    }
}

impl std::fmt::Display for FreezeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hint = match self.errno {
            Errno::EPERM => " (needs root / CAP_SYS_ADMIN)",
            Errno::EBUSY => " (already frozen by someone else)",
            Errno::EOPNOTSUPP => " (this filesystem cannot be frozen)",
            Errno::ETIMEDOUT => " (the freeze itself did not return in time)",
            Errno::ELOOP | Errno::ENOTDIR => {
                " (a symbolic link is on the mount point's path; mount points are never reached through links)"
            }
            _ => "",
        };
        write!(
            f,
            "cannot freeze {}: {}{hint}",
            self.mount_point.display(),
            self.errno.desc()
        )
    }
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    // A poisoned lock still holds the descriptors we must thaw.
    inner.lock().unwrap_or_else(|p| p.into_inner())
}

fn open_all(mount_points: &[PathBuf]) -> Result<Vec<(PathBuf, File)>, FreezeError> {
    mount_points
        .iter()
        .map(|mp| {
            // Not through a link: one planted on a nested mount point's
            // path would freeze another filesystem (the root's, say).
            SafeDir::no_links(mp, false)
                .map(|dir| (mp.clone(), dir.into_file()))
                .map_err(|e| FreezeError {
                    mount_point: mp.clone(),
                    errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                })
        })
        .collect()
}

/// Flush each target filesystem (syncfs, one thread each) before the
/// freeze, so FIFREEZE has little left to write and the window stays
/// short; nothing else on the host is waited for (a global sync can hang
/// on an unrelated dead NFS mount). Nothing is frozen yet, so a slow
/// device only delays the run: `bound` says how long that may be.
pub(crate) fn sync_targets(mount_points: &[PathBuf], bound: Duration) -> Result<(), HostError> {
    let dirs = open_all(mount_points).map_err(|e| HostError::Sync {
        mount_point: e.mount_point.clone(),
        reason: e.errno.desc().to_string(),
    })?;
    let (tx, rx) = std::sync::mpsc::channel();
    for (mp, dir) in dirs {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send((mp, nix::unistd::syncfs(&dir)));
        });
    }
    drop(tx);
    let end = Instant::now() + bound;
    let mut pending: Vec<PathBuf> = mount_points.to_vec();
    while !pending.is_empty() {
        match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok((mp, result)) => {
                pending.retain(|p| p != &mp);
                if let Err(e) = result {
                    return Err(HostError::Sync {
                        mount_point: mp,
                        reason: e.desc().to_string(),
                    });
                }
            }
            Err(_) => {
                return Err(HostError::Sync {
                    mount_point: pending[0].clone(),
                    reason: format!(
                        "did not return within {}s (a slow or stuck device)",
                        bound.as_secs()
                    ),
                })
            }
        }
    }
    Ok(())
}

impl FreezeSet {
    /// Freeze every mount point at once (one thread each: every FIFREEZE
    /// commits its filesystem's journal, and one after another the first
    /// would stay frozen while the others flush). If one fails or does
    /// not return by `deadline`, the others are thawed and this returns
    /// only after every FIFREEZE has returned and been undone (a freeze
    /// cannot be cancelled; the watchdog process keeps the filesystems
    /// thawed meanwhile).
    ///
    /// Each freeze is reported to the watchdog as it starts and as it
    /// returns (`watchdog`), so it thaws only what this run froze.
    pub(crate) fn freeze(
        mount_points: &[PathBuf],
        deadline: Duration,
        watchdog: &Notifier,
    ) -> Result<FreezeSet, FreezeError> {
        // Open every directory before freezing any: opening is a path
        // lookup, which could block on an already frozen filesystem.
        let dirs = open_all(mount_points)?;
        let started = Instant::now();
        let mut set = FreezeSet {
            inner: Arc::new(Mutex::new(Inner {
                frozen: Vec::new(),
                abandoned: false,
                done: false,
            })),
            threads: Vec::new(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        for (i, (mount_point, dir)) in dirs.into_iter().enumerate() {
            let (inner, tx, mp) = (set.inner.clone(), tx.clone(), mount_point.clone());
            let watchdog = watchdog.clone();
            let handle = std::thread::spawn(move || {
                watchdog.freezing(i);
                let result = freeze_fd(&dir);
                // At once, so the watchdog thaws a freeze of ours that
                // completed after its deadline, and never one of someone
                // else's that ours was queued behind.
                watchdog.froze(i, result.is_ok());
                if result.is_ok() {
                    let mut g = lock(&inner);
                    if g.abandoned || g.done {
                        // Too late: undone here (and by the watchdog if it
                        // has fired).
                        let _ = thaw_fd(&dir);
                    } else {
                        g.frozen.push(Frozen {
                            mount_point: mount_point.clone(),
                            dir,
                            frozen_at: Instant::now(),
                            window: None,
                            thaw_error: None,
                            found_thawed: false,
                        });
                    }
                }
                let _ = tx.send((mount_point, result));
            });
            set.threads.push((mp, handle));
        }
        drop(tx);
        let mut pending: Vec<PathBuf> = mount_points.to_vec();
        let mut failed = None;
        while !pending.is_empty() {
            let left = deadline.saturating_sub(started.elapsed());
            match rx.recv_timeout(left) {
                Ok((mp, result)) => {
                    pending.retain(|p| p != &mp);
                    if let Err(errno) = result {
                        failed.get_or_insert(FreezeError {
                            mount_point: mp,
                            errno,
                        });
                        break;
                    }
                }
                Err(_) => {
                    failed.get_or_insert(FreezeError {
                        mount_point: pending[0].clone(),
                        errno: Errno::ETIMEDOUT,
                    });
                    break;
                }
            }
        }
        if let Some(mut e) = failed {
            lock(&set.inner).abandoned = true;
            set.thaw();
            set.await_outstanding();
            // A freeze that outlived the deadline and then failed was
            // queued behind someone else's: say that, not "too slow".
            if e.errno == Errno::ETIMEDOUT {
                if let Some((mount_point, Err(errno))) = rx.try_iter().find(|(_, r)| r.is_err()) {
                    e = FreezeError { mount_point, errno };
                }
            }
            return Err(e);
        }
        Ok(set)
    }

    /// Join every freezing thread, saying every few seconds which
    /// FIFREEZE is still inside the kernel.
    fn await_outstanding(&mut self) {
        let mut said: Option<Instant> = None;
        while self.threads.iter().any(|(_, h)| !h.is_finished()) {
            if said.is_none_or(|t| t.elapsed() >= OUTSTANDING_EVERY) {
                let waiting: Vec<String> = self
                    .threads
                    .iter()
                    .filter(|(_, h)| !h.is_finished())
                    .map(|(mp, _)| mp.display().to_string())
                    .collect();
                tracing::warn!(
                    "waiting for the freeze of {} to return, to undo it (the watchdog keeps it thawed meanwhile)",
                    waiting.join(", ")
                );
                said = Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for (_, h) in self.threads.drain(..) {
            let _ = h.join();
        }
    }

    /// Thaw everything still frozen. Safe to call more than once: what
    /// could not be thawed is tried again.
    pub(crate) fn thaw(&mut self) -> Thawed {
        let mut g = lock(&self.inner);
        thaw_all(&mut g);
        g.done = true;
        Thawed {
            windows: g
                .frozen
                .iter()
                .filter_map(|f| Some((f.mount_point.clone(), f.window?)))
                .collect(),
            failures: g
                .frozen
                .iter()
                .filter_map(|f| {
                    let e = f.thaw_error?;
                    Some((
                        f.mount_point.clone(),
                        std::io::Error::from_raw_os_error(e as i32),
                    ))
                })
                .collect(),
            not_frozen: g
                .frozen
                .iter()
                .filter(|f| f.found_thawed)
                .map(|f| f.mount_point.clone())
                .collect(),
        }
    }
}

impl Drop for FreezeSet {
    fn drop(&mut self) {
        for (mp, e) in self.thaw().failures {
            // Nothing more can be done from here; say it loudly.
            eprintln!(
                "error: could not thaw {}: {e}; run: fsfreeze -u {}",
                mp.display(),
                mp.display()
            );
        }
        self.await_outstanding();
    }
}

fn thaw_all(g: &mut Inner) {
    for f in g.frozen.iter_mut().filter(|f| f.window.is_none()) {
        // A thaw can fail transiently; EINVAL means it is not frozen.
        let mut result = thaw_fd(&f.dir);
        if result == Err(Errno::EINVAL) && f.thaw_error.is_none() {
            f.found_thawed = true;
        }
        for _ in 0..3 {
            match result {
                Ok(()) | Err(Errno::EINVAL) => break,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(50));
                    result = thaw_fd(&f.dir);
                }
            }
        }
        match result {
            Ok(()) | Err(Errno::EINVAL) => {
                f.window = Some(f.frozen_at.elapsed());
                f.thaw_error = None;
            }
            Err(e) => f.thaw_error = Some(e),
        }
    }
}

/// Thaw whatever is frozen at `mount_point` (`snaptastic thaw`): `true`
/// if it was frozen, `false` if it was not.
pub(crate) fn thaw_mount_point(mount_point: &Path) -> Result<bool, std::io::Error> {
    let dir = SafeDir::no_links(mount_point, false)?.into_file();
    match thaw_fd(&dir) {
        Ok(()) => Ok(true),
        Err(Errno::EINVAL) => Ok(false),
        Err(e) => Err(std::io::Error::from_raw_os_error(e as i32)),
    }
}

/// Why a mount point must not be frozen, if it must not: the root
/// filesystem, or the one holding our working directory or the files our
/// output goes to (a frozen log file would hang the tool itself).
pub(crate) fn refuse_reason(mount_point: &Path) -> Option<String> {
    let dev = |p: &Path| std::fs::metadata(p).ok().map(|m| m.dev());
    let target = dev(mount_point)?;
    if dev(Path::new("/")) == Some(target) {
        return Some("it is on the root filesystem (freezing / would hang the host)".into());
    }
    if let Ok(cwd) = std::env::current_dir() {
        if dev(&cwd) == Some(target) {
            return Some(format!(
                "it holds snaptastic's working directory {}",
                cwd.display()
            ));
        }
    }
    for fd in ["/proc/self/fd/1", "/proc/self/fd/2"] {
        if let Ok(p) = std::fs::read_link(fd) {
            if p.is_absolute()
                && std::fs::metadata(&p).is_ok_and(|m| m.is_file())
                && dev(&p) == Some(target)
            {
                return Some(format!("snaptastic's output goes to {} on it", p.display()));
            }
        }
    }
    None
}
