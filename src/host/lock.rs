//! A lock file per tablesnap key space (bucket, prefix and host name) in
//! the state directory, held with flock(2) for the daemon's life. It tells a
//! starting daemon whether another daemon of the same host name is
//! running on this machine: only when none is may it treat unfinished
//! multipart uploads under its name as abandoned (their process died).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::io;
use std::path::{Path, PathBuf};

/// An open lock file, locked exclusively or shared; the lock goes with
/// the process (also on kill -9: the kernel drops it with the file).
#[derive(Debug)]
pub(crate) struct HostLock {
    file: Flock<File>,
    pub path: PathBuf,
    /// Whether this process holds it alone (exclusively).
    pub sole: bool,
}

impl HostLock {
    /// Open (creating) `dir/file_name` and lock it: exclusively if no one
    /// else holds it, else shared (waiting only for a starting daemon's
    /// short exclusive hold).
    pub(crate) fn acquire(dir: &Path, file_name: &str) -> io::Result<HostLock> {
        let (file, path) = open_lock_file(dir, file_name)?;
        let (file, sole) = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => (l, true),
            Err((file, Errno::EWOULDBLOCK)) => match Flock::lock(file, FlockArg::LockShared) {
                Ok(l) => (l, false),
                Err((_, e)) => return Err(e.into()),
            },
            Err((_, e)) => return Err(e.into()),
        };
        Ok(HostLock { file, path, sole })
    }

    /// From exclusive to shared, so daemons started later see this one
    /// running and leave its uploads alone. flock(2) converts by dropping
    /// and re-taking the lock; a daemon that slips into that gap has
    /// started before any upload of this one, so its cut-off (its own
    /// start) spares them.
    pub(crate) fn share(&mut self) -> io::Result<()> {
        if self.sole {
            self.file.relock(FlockArg::LockShared)?;
            self.sole = false;
        }
        Ok(())
    }
}

/// `dir/file_name`, made if missing (with `dir`). The tool's own
/// directory, but a link planted there is not followed.
fn open_lock_file(dir: &Path, file_name: &str) -> io::Result<(File, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(file_name);
    let file = OpenOptions::new()
        .custom_flags(nix::libc::O_NOFOLLOW)
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    Ok((file, path))
}

/// An exclusive lock held until dropped (make-snapshots' freeze window).
#[derive(Debug)]
pub(crate) struct Exclusive {
    _file: Flock<File>,
}

/// Lock `dir/file_name` exclusively, waiting up to `wait` for whoever holds
/// it (`on_wait` is called once if it must wait). `Ok(None)`: still held
/// after `wait`.
pub(crate) fn exclusive_within(
    dir: &Path,
    file_name: &str,
    wait: std::time::Duration,
    on_wait: impl FnOnce(&Path),
) -> io::Result<Option<Exclusive>> {
    let (mut file, path) = open_lock_file(dir, file_name)?;
    let started = std::time::Instant::now();
    let mut on_wait = Some(on_wait);
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => return Ok(Some(Exclusive { _file: l })),
            Err((f, Errno::EWOULDBLOCK)) => file = f,
            Err((_, e)) => return Err(e.into()),
        }
        if started.elapsed() >= wait {
            return Ok(None);
        }
        if let Some(say) = on_wait.take() {
            say(&path);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// [`exclusive_within`] on `file_name` in the state directory, off the
/// async threads; with the lock file's path for messages.
pub(crate) async fn exclusive_in_state_dir(
    file_name: &str,
    wait: std::time::Duration,
    on_wait: impl FnOnce(&Path) + Send + 'static,
) -> (io::Result<Option<Exclusive>>, PathBuf) {
    let dir = super::dirs::state_dir();
    let path = dir.join(file_name);
    let name = file_name.to_string();
    let held = tokio::task::spawn_blocking(move || exclusive_within(&dir, &name, wait, on_wait))
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)));
    (held, path)
}

/// Whether someone holds `dir/file_name` exclusively now (a missing file:
/// no one). Asked with a shared lock taken and dropped at once, so a
/// process starting to take it exclusively at that instant must allow
/// itself a moment ([`exclusive_within`]).
pub(crate) fn held(dir: &Path, file_name: &str) -> io::Result<bool> {
    let file = match OpenOptions::new()
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .read(true)
        .open(dir.join(file_name))
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_) => Ok(false),
        Err((_, Errno::EWOULDBLOCK)) => Ok(true),
        Err((_, e)) => Err(e.into()),
    }
}
