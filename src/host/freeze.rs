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
}

/// The state the caller and the watchdog share.
struct Inner {
    frozen: Vec<Frozen>,
    /// The watchdog fired (the caller's calls took too long).
    watchdog_fired: bool,
    /// The caller is done: the watchdog may exit.
    done: bool,
}

/// A set of frozen filesystems. Thaws everything on drop.
pub struct FreezeSet {
    inner: Arc<(Mutex<Inner>, Condvar)>,
    watchdog: Option<std::thread::JoinHandle<()>>,
}

/// Why a filesystem could not be frozen.
#[derive(Debug)]
pub struct FreezeError {
    pub mount_point: PathBuf,
    pub errno: Errno,
}

impl std::fmt::Display for FreezeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hint = match self.errno {
            Errno::EPERM => " (needs root / CAP_SYS_ADMIN)",
            Errno::EBUSY => " (already frozen by someone else)",
            Errno::EOPNOTSUPP => " (this filesystem cannot be frozen)",
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

impl FreezeSet {
    /// Freeze every mount point, in order, and start a watchdog that thaws
    /// them all `deadline` after the first froze. If one fails, the ones
    /// already frozen are thawed before this returns.
    pub fn freeze(mount_points: &[PathBuf], deadline: Duration) -> Result<FreezeSet, FreezeError> {
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
        let inner = Arc::new((
            Mutex::new(Inner {
                frozen: Vec::new(),
                watchdog_fired: false,
                done: false,
            }),
            Condvar::new(),
        ));
        let mut set = FreezeSet {
            inner,
            watchdog: None,
        };
        // Freeze all at once: each FIFREEZE commits its filesystem's
        // journal, and one after another the first would stay frozen while
        // the others flush.
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = dirs
                .into_iter()
                .map(|(mp, dir)| {
                    scope.spawn(move || {
                        let r = freeze_fd(&dir).map(|()| Instant::now());
                        (mp, dir, r)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .expect("a freeze thread only makes one ioctl and cannot panic")
                })
                .collect()
        });
        let mut failed = None;
        for (mount_point, dir, r) in results {
            match r {
                Ok(frozen_at) => set.lock().frozen.push(Frozen {
                    mount_point,
                    dir,
                    frozen_at,
                    window: None,
                }),
                Err(errno) => {
                    failed.get_or_insert(FreezeError { mount_point, errno });
                }
            }
        }
        if let Some(e) = failed {
            set.thaw();
            return Err(e);
        }
        let inner = set.inner.clone();
        set.watchdog = Some(std::thread::spawn(move || watchdog(&inner, deadline)));
        Ok(set)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock still holds the descriptors we must thaw.
        self.inner.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Thaw everything still frozen; returns each mount point's frozen
    /// window. Safe to call more than once.
    pub fn thaw(&mut self) -> Vec<(PathBuf, Duration)> {
        let windows = {
            let mut g = self.lock();
            thaw_all(&mut g);
            g.done = true;
            g.frozen
                .iter()
                .map(|f| (f.mount_point.clone(), f.window.unwrap_or_default()))
                .collect()
        };
        self.inner.1.notify_all();
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
        windows
    }

    /// Whether the watchdog had to thaw (the deadline passed first).
    pub fn watchdog_fired(&self) -> bool {
        self.lock().watchdog_fired
    }
}

impl Drop for FreezeSet {
    fn drop(&mut self) {
        self.thaw();
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
        f.window = Some(f.frozen_at.elapsed());
        if let Err(e) = result.or_else(|e| if e == Errno::EINVAL { Ok(()) } else { Err(e) }) {
            // Nothing more can be done from here; say it loudly.
            eprintln!(
                "error: could not thaw {}: {}; run: fsfreeze -u {}",
                f.mount_point.display(),
                e.desc(),
                f.mount_point.display()
            );
        }
    }
}

fn watchdog(inner: &(Mutex<Inner>, Condvar), deadline: Duration) {
    let (lock, cvar) = inner;
    let end = Instant::now() + deadline;
    let mut g = lock.lock().unwrap_or_else(|p| p.into_inner());
    while !g.done {
        let now = Instant::now();
        if now >= end {
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
pub fn refuse_reason(mount_point: &Path) -> Option<String> {
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
pub fn sync_all() {
    nix::unistd::sync();
}
