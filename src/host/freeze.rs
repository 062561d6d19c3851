//! Freezing filesystems (FIFREEZE/FITHAW on the mount point), with a thaw
//! that always happens: when the set is dropped (errors, panics), when the
//! caller thaws, or when a watchdog thread's deadline passes, whichever is
//! first. The watchdog touches the frozen filesystems only through the
//! descriptors opened before freezing, and only to thaw them: a frozen
//! filesystem blocks any path lookup or write on it.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;

// FIFREEZE = _IOWR('X', 119, int), FITHAW = _IOWR('X', 120, int)
// (linux/fs.h). The int argument is ignored by the kernel.
nix::ioctl_readwrite!(fifreeze, b'X', 119, libc_int);
nix::ioctl_readwrite!(fithaw, b'X', 120, libc_int);
#[allow(non_camel_case_types)]
type libc_int = std::ffi::c_int;

fn freeze_fd(f: &File) -> Result<(), Errno> {
    let mut arg: libc_int = 0;
    // SAFETY: `f` is an open descriptor of a directory we own for the whole
    // call, and `arg` is a valid, writable int that outlives it; FIFREEZE
    // neither reads nor writes through the pointer.
    unsafe { fifreeze(f.as_raw_fd(), &mut arg) }.map(drop)
}

fn thaw_fd(f: &File) -> Result<(), Errno> {
    let mut arg: libc_int = 0;
    // SAFETY: as for `freeze_fd`: a live descriptor and a valid int.
    unsafe { fithaw(f.as_raw_fd(), &mut arg) }.map(drop)
}

/// One frozen filesystem.
struct Frozen {
    mount_point: PathBuf,
    dir: File,
    frozen_at: Instant,
    /// Set once thawed: how long it was frozen.
    window: Option<Duration>,
    /// The last thaw attempt failed with this (it is tried again).
    thaw_error: Option<Errno>,
}

/// The state the caller, the freezing threads and the watchdog share.
struct Inner {
    frozen: Vec<Frozen>,
    /// The watchdog fired (the caller's calls took too long).
    watchdog_fired: bool,
    /// Give up: a freeze that returns from now on is undone at once by the
    /// thread that made it (a freeze that hung past the deadline, or one
    /// racing a failure of another).
    abandoned: bool,
    /// The caller is done: the watchdog may exit.
    done: bool,
}

/// What thawing found.
#[derive(Debug, Default)]
pub(crate) struct Thawed {
    /// How long each filesystem was frozen.
    pub windows: Vec<(PathBuf, Duration)>,
    /// Filesystems that could not be thawed (each needs `fsfreeze -u`).
    pub failures: Vec<(PathBuf, std::io::Error)>,
}

/// A set of frozen filesystems. Thaws everything on drop.
pub(crate) struct FreezeSet {
    inner: Arc<(Mutex<Inner>, Condvar)>,
    watchdog: Option<std::thread::JoinHandle<()>>,
}

/// Why a filesystem could not be frozen.
#[derive(Debug)]
pub(crate) struct FreezeError {
    pub mount_point: PathBuf,
    errno: Errno,
}

impl std::fmt::Display for FreezeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hint = match self.errno {
            Errno::EPERM => " (needs root / CAP_SYS_ADMIN)",
            Errno::EBUSY => " (already frozen by someone else)",
            Errno::EOPNOTSUPP => " (this filesystem cannot be frozen)",
            Errno::ETIMEDOUT => " (the freeze itself did not return in time)",
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

impl FreezeSet {
    /// Freeze every mount point at once (one thread each: every FIFREEZE
    /// commits its filesystem's journal, and one after another the first
    /// would stay frozen while the others flush). The watchdog starts
    /// first: `deadline` after this call began, everything is thawed, even
    /// if a freeze or the caller hangs. If one freeze fails or does not
    /// return by the deadline, the others are thawed before this returns.
    pub(crate) fn freeze(
        mount_points: &[PathBuf],
        deadline: Duration,
    ) -> Result<FreezeSet, FreezeError> {
        // Open every directory before freezing any: opening is a path
        // lookup, which could block on an already frozen filesystem.
        let mut dirs = Vec::new();
        for mp in mount_points {
            let dir = File::open(mp).map_err(|e| FreezeError {
                mount_point: mp.clone(),
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            })?;
            dirs.push((mp.clone(), dir));
        }
        let started = Instant::now();
        let inner = Arc::new((
            Mutex::new(Inner {
                frozen: Vec::new(),
                watchdog_fired: false,
                abandoned: false,
                done: false,
            }),
            Condvar::new(),
        ));
        let watchdog_inner = inner.clone();
        let mut set = FreezeSet {
            inner,
            watchdog: Some(std::thread::spawn(move || {
                watchdog(&watchdog_inner, deadline)
            })),
        };

        let (tx, rx) = std::sync::mpsc::channel();
        let count = dirs.len();
        for (mount_point, dir) in dirs {
            let (inner, tx) = (set.inner.clone(), tx.clone());
            std::thread::spawn(move || {
                let result = freeze_fd(&dir);
                if result.is_ok() {
                    let mut g = lock(&inner.0);
                    if g.abandoned || g.done {
                        // Too late: nobody will thaw this one but us.
                        let _ = thaw_fd(&dir);
                    } else {
                        g.frozen.push(Frozen {
                            mount_point: mount_point.clone(),
                            dir,
                            frozen_at: Instant::now(),
                            window: None,
                            thaw_error: None,
                        });
                    }
                }
                let _ = tx.send((mount_point, result));
            });
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
        debug_assert!(failed.is_some() || count == set.frozen_count());
        if let Some(e) = failed {
            lock(&set.inner.0).abandoned = true;
            set.thaw();
            return Err(e);
        }
        Ok(set)
    }

    fn frozen_count(&self) -> usize {
        lock(&self.inner.0).frozen.len()
    }

    /// Thaw everything still frozen. Safe to call more than once: what
    /// could not be thawed is tried again.
    pub(crate) fn thaw(&mut self) -> Thawed {
        let thawed = {
            let mut g = lock(&self.inner.0);
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
            }
        };
        self.inner.1.notify_all();
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
        thawed
    }

    /// Whether the watchdog had to thaw (the deadline passed first).
    pub(crate) fn watchdog_fired(&self) -> bool {
        lock(&self.inner.0).watchdog_fired
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
    }
}

fn thaw_all(g: &mut Inner) {
    for f in g.frozen.iter_mut().filter(|f| f.window.is_none()) {
        // A thaw can fail transiently; EINVAL means it is not frozen.
        let mut result = thaw_fd(&f.dir);
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

fn watchdog(inner: &(Mutex<Inner>, Condvar), deadline: Duration) {
    let (lock_, cvar) = inner;
    let end = Instant::now() + deadline;
    let mut g = lock(lock_);
    while !g.done {
        let now = Instant::now();
        if now >= end {
            g.abandoned = true;
            if g.frozen.iter().any(|f| f.window.is_none()) {
                g.watchdog_fired = true;
                thaw_all(&mut g);
            }
            return;
        }
        g = cvar
            .wait_timeout(g, end - now)
            .unwrap_or_else(|p| p.into_inner())
            .0;
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

/// Flush dirty data of every filesystem before freezing, so the freeze
/// itself has little left to write.
pub(crate) fn sync_all() {
    nix::unistd::sync();
}
