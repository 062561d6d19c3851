//! Paths that other people control, opened without following their links.
//!
//! The tool runs as root, but a watched or restored directory belongs to
//! its owner (the `cassandra` account), who can swap any entry for a
//! symbolic link between two of our calls; names come from a bucket
//! anyone with the instance role can write; a nested mount point's path
//! can pass through a directory a just-restored volume brought back.
//! Everything under such a place is reached here, one way:
//!
//! - the directory the operator named is opened by a walk from `/`
//!   ([`SafeDir::open`]) that follows a symbolic link only where no one
//!   but root can have put it: in a directory owned by root that no one
//!   else may write (the rule of systemd-tmpfiles' "unsafe path
//!   transition" and sshd's StrictModes). A link in `/var/lib/cassandra`,
//!   which the `cassandra` account owns, could be swapped in at any time
//!   and is refused: name the real path;
//! - below it, every path is resolved by the kernel relative to that
//!   descriptor with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, or,
//!   where the kernel lacks openat2, one `openat(O_NOFOLLOW)` per
//!   component: a link anywhere on the way is refused (`ELOOP`), never
//!   followed;
//! - files are created `O_CREAT|O_EXCL|O_NOFOLLOW` with mode 0600 (a
//!   planted link or file is never opened), then changed through their
//!   descriptor (`fchmod`, `fchown`, `futimens`) and renamed within the
//!   directory's descriptor;
//! - names from outside must be one plain component ([`check_name`]).
//!
//! Callers get `std::fs::File`s and paths; `nix` stays in here.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, readlinkat, renameat, OFlag, OpenHow, ResolveFlag, AT_FDCWD};
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

/// Why a name from outside cannot be a path component.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadName {
    #[error("an empty name")]
    Empty,
    #[error("'{0}' names a directory itself, not an entry")]
    Dot(String),
    #[error("'{0}' holds a '/'")]
    Slash(String),
    #[error("'{0}' holds a NUL byte")]
    Nul(String),
}

/// `name` as one plain path component: non-empty, not `.` or `..`, no `/`
/// and no NUL. Every name read from a bucket (index entries, key suffixes)
/// passes here before it becomes part of a local path.
pub(crate) fn check_name(name: &str) -> Result<&str, BadName> {
    if name.is_empty() {
        return Err(BadName::Empty);
    }
    if name == "." || name == ".." {
        return Err(BadName::Dot(name.into()));
    }
    if name.contains('/') {
        return Err(BadName::Slash(name.into()));
    }
    if name.contains('\0') {
        return Err(BadName::Nul(name.escape_debug().to_string()));
    }
    Ok(name)
}

/// Whether an error says a link (or a non-directory) was met where the
/// walk refuses one: `ELOOP` from `O_NOFOLLOW`/`RESOLVE_NO_SYMLINKS`,
/// `EXDEV` from `RESOLVE_BENEATH`, `ENOTDIR` from a component that is not
/// a directory.
pub(crate) fn is_refused_link(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::ELOOP | Errno::EXDEV | Errno::ENOTDIR)
    )
}

/// Set once openat2 answered ENOSYS (or a seccomp filter's EPERM): the
/// component walk is used from then on.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// The kind of a directory entry, as `readdir` says (no `stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    File,
    Dir,
    Link,
    Other,
}

/// A directory opened once; what is below it is reached only through its
/// descriptor, refusing symbolic links on the way.
#[derive(Debug)]
pub(crate) struct SafeDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// Symbolic links followed in one named path at the most (the kernel's
/// own limit).
const MAX_LINKS: usize = 40;

impl SafeDir {
    /// The directory the operator named (a watched directory, TARGET, the
    /// Prometheus textfile directory), walked from `/` one component at a
    /// time. A symbolic link on the way is followed only when it sits in a
    /// directory owned by root that no one else may write: any other could
    /// have been planted by that directory's owner. A relative path is
    /// taken from the working directory.
    pub(crate) fn open(path: &Path) -> io::Result<SafeDir> {
        SafeDir::named(path, false)
    }

    /// `open`, making missing directories (mode 0755) on the way.
    pub(crate) fn create(path: &Path) -> io::Result<SafeDir> {
        SafeDir::named(path, true)
    }

    fn named(path: &Path, create: bool) -> io::Result<SafeDir> {
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()?.join(path)
        };
        let path_flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let root = openat(
            AT_FDCWD,
            "/",
            path_flags | OFlag::O_DIRECTORY,
            Mode::empty(),
        )?;
        // The directories walked so far, `/` first (`..` pops one).
        let mut stack = vec![root];
        let mut todo: VecDeque<OsString> = names_of(&abs);
        let mut links = 0;
        while let Some(name) = todo.pop_front() {
            if name == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let here = stack.last().ok_or(io::ErrorKind::NotFound)?;
            let fd = match openat(here, name.as_os_str(), path_flags, Mode::empty()) {
                Err(Errno::ENOENT) if create => {
                    match mkdirat(here, name.as_os_str(), Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    openat(here, name.as_os_str(), path_flags, Mode::empty())?
                }
                r => r?,
            };
            let kind = SFlag::from_bits_truncate(fstat(&fd)?.st_mode) & SFlag::S_IFMT;
            if kind == SFlag::S_IFDIR {
                stack.push(fd);
            } else if kind == SFlag::S_IFLNK {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Errno::ELOOP.into());
                }
                let dir = fstat(here)?;
                if dir.st_uid != 0 || dir.st_mode & 0o022 != 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!(
                            "{} is a symbolic link in a directory that uid {} owns or others may \
                             write (mode {:o}): not followed as root, as it may have been swapped \
                             in; name the real path",
                            name.to_string_lossy(),
                            dir.st_uid,
                            dir.st_mode & 0o7777
                        ),
                    ));
                }
                let target = PathBuf::from(readlinkat(here, name.as_os_str())?);
                if target.is_absolute() {
                    stack.truncate(1);
                }
                for n in names_of(&target).into_iter().rev() {
                    todo.push_front(n);
                }
            } else {
                return Err(Errno::ENOTDIR.into());
            }
        }
        let last = stack.last().ok_or(io::ErrorKind::NotFound)?;
        let fd = openat(
            last,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(SafeDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// An absolute path whose every component must be a real directory,
    /// not a link, walked from `/` (mount points: a link on the way, even
    /// one inside a volume just restored, is refused). With `create`,
    /// missing components are made (mode 0755).
    pub(crate) fn no_links(path: &Path, create: bool) -> io::Result<SafeDir> {
        if !path.is_absolute() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not absolute", path.display()),
            ));
        }
        let root = SafeDir::open(Path::new("/"))?;
        let rel = path.strip_prefix("/").unwrap_or(path);
        if create {
            root.create_dirs(rel)
        } else {
            root.dir(rel)
        }
    }

    /// The path this was opened as (for messages and keys).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The open directory, for calls on it (FIFREEZE).
    pub(crate) fn into_file(self) -> File {
        File::from(self.fd)
    }

    /// A path naming this very directory for calls that take only paths
    /// (inotify_add_watch, mount(2)): `/proc/self/fd/N`, which the kernel
    /// resolves to the descriptor's directory, not to whatever the path
    /// names now. Valid while `self` lives.
    pub(crate) fn fd_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// A directory below, by a relative path of plain components.
    pub(crate) fn dir(&self, rel: &Path) -> io::Result<SafeDir> {
        let fd = self.resolve(rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())?;
        Ok(SafeDir {
            fd,
            path: self.path.join(rel),
        })
    }

    /// A directory below, made (mode 0755) where missing, component by
    /// component without following links.
    pub(crate) fn create_dirs(&self, rel: &Path) -> io::Result<SafeDir> {
        let mut here = SafeDir {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
        };
        for name in components(rel)? {
            match mkdirat(&here.fd, name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e.into()),
            }
            here = here.dir(Path::new(name))?;
        }
        Ok(here)
    }

    /// A regular file below, for reading. A link on the way is refused
    /// (`ELOOP`/`EXDEV`); a FIFO or device does not block the open and is
    /// refused after it (`InvalidInput`, "not a regular file").
    pub(crate) fn open_file(&self, rel: &Path) -> io::Result<File> {
        let fd = self.resolve(
            rel,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
            Mode::empty(),
        )?;
        let file = File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(not_a_file());
        }
        Ok(file)
    }

    /// The `lstat` of the entry `name` of this directory (a link is
    /// described, not followed).
    pub(crate) fn metadata(&self, name: &str) -> io::Result<std::fs::Metadata> {
        let name = check_name(name).map_err(invalid)?;
        std::fs::symlink_metadata(self.fd_path().join(name))
    }

    /// A new file directly in this directory, `O_EXCL|O_NOFOLLOW`, mode
    /// 0600: never an existing file, never through a link planted under
    /// its name. Widen the mode with `File::set_permissions` when the
    /// content is complete. Open for reading too: a download is read back
    /// to be hashed.
    pub(crate) fn create_new(&self, name: &str) -> io::Result<File> {
        let name = check_name(name).map_err(invalid)?;
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_RDWR
                | OFlag::O_CREAT
                | OFlag::O_EXCL
                | OFlag::O_NOFOLLOW
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )?;
        Ok(File::from(fd))
    }

    /// A new file `name` for a temporary, made with
    /// [`SafeDir::create_new`] (which never opens what is there); if the
    /// name is taken (a leftover, or a link someone planted under it), that
    /// is removed, never opened, and the create tried again. Someone
    /// re-planting the name in between makes the create fail, never
    /// follow: it is tried a few times. A free name, the usual case, costs
    /// one call.
    pub(crate) fn create_fresh(&self, name: &str) -> io::Result<File> {
        let mut tries = 0;
        loop {
            match self.create_new(name) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 5 => {
                    tries += 1;
                    self.remove(name)?;
                }
                r => return r,
            }
        }
    }

    /// Put `bytes` at `name` in this directory whole or not at all: into a
    /// new temporary file (a leftover or a planted link under its name is
    /// removed, never opened), flushed, given `mode`, then renamed over
    /// `name` (a link there is replaced, not written through).
    pub(crate) fn replace_file(&self, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let tmp = format!(".{}.tmp", check_name(name).map_err(invalid)?);
        let mut f = self.create_fresh(&tmp)?;
        let written = f
            .write_all(bytes)
            .and_then(|()| f.sync_all())
            .and_then(|()| f.set_permissions(std::fs::Permissions::from_mode(mode)))
            .and_then(|()| self.rename(&tmp, name));
        if written.is_err() {
            let _ = self.remove(&tmp);
        }
        written
    }

    /// The file `name` directly in this directory opened for appending,
    /// made (mode 0600) if missing: a log a detached process writes to
    /// across runs. A link under the name is refused (`ELOOP`), a FIFO or
    /// device after the open.
    pub(crate) fn append(&self, name: &str) -> io::Result<File> {
        let name = check_name(name).map_err(invalid)?;
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_WRONLY
                | OFlag::O_APPEND
                | OFlag::O_CREAT
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )?;
        let file = File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(not_a_file());
        }
        Ok(file)
    }

    /// Remove the entry `name` of this directory (a link is removed, not
    /// followed); a missing one is not an error.
    pub(crate) fn remove(&self, name: &str) -> io::Result<()> {
        let name = check_name(name).map_err(invalid)?;
        match unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Rename `from` to `to`, both entries of this directory. Whatever is
    /// at `to` (a link included) is replaced, never written through.
    pub(crate) fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (from, to) = (
            check_name(from).map_err(invalid)?,
            check_name(to).map_err(invalid)?,
        );
        Ok(renameat(&self.fd, from, &self.fd, to)?)
    }

    /// Wait until everything written to this directory's filesystem is on
    /// disk, the entries renamed here included ([`super::durable`]).
    pub(crate) fn sync_filesystem(&self) -> io::Result<()> {
        super::durable::sync_filesystem(&self.fd)
    }

    /// The entries of this directory with their kinds, `.` and `..` left
    /// out. Read through the descriptor: a link is reported as one.
    pub(crate) fn entries(&self) -> io::Result<Vec<(OsString, Kind)>> {
        use nix::dir::{Dir, Type};
        let fd = openat(
            &self.fd,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut dir = Dir::from_fd(fd)?;
        let mut out = Vec::new();
        for entry in dir.iter() {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let kind = match entry.file_type() {
                Some(Type::File) => Kind::File,
                Some(Type::Directory) => Kind::Dir,
                Some(Type::Symlink) => Kind::Link,
                Some(_) => Kind::Other,
                // A filesystem without d_type: ask without following.
                None => self.kind_of(OsStr::from_bytes(name)),
            };
            out.push((OsStr::from_bytes(name).to_os_string(), kind));
        }
        Ok(out)
    }

    fn kind_of(&self, name: &OsStr) -> Kind {
        use nix::sys::stat::{fstatat, SFlag};
        match fstatat(&self.fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
                SFlag::S_IFREG => Kind::File,
                SFlag::S_IFDIR => Kind::Dir,
                SFlag::S_IFLNK => Kind::Link,
                _ => Kind::Other,
            },
            Err(_) => Kind::Other,
        }
    }

    /// Open `rel` below this directory with `flags`, no link followed.
    fn resolve(&self, rel: &Path, flags: OFlag, mode: Mode) -> io::Result<OwnedFd> {
        let flags = flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
        let names = components(rel)?;
        if names.is_empty() {
            return Ok(openat(&self.fd, ".", flags, mode)?);
        }
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            let how = OpenHow::new()
                .flags(flags)
                .mode(mode)
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
            match openat2(&self.fd, rel, how) {
                Ok(fd) => return Ok(fd),
                // No openat2 (Linux < 5.6), or a seccomp filter refusing
                // what it does not know.
                Err(Errno::ENOSYS | Errno::EPERM) => NO_OPENAT2.store(true, Ordering::Relaxed),
                // A race with a rename elsewhere: the walk decides.
                Err(Errno::EAGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
        walk(&self.fd, &names, flags, mode)
    }
}

/// The component walk: `openat(O_NOFOLLOW|O_DIRECTORY)` per directory on
/// the way, then the last component with `flags` (which hold O_NOFOLLOW).
fn walk(start: &impl AsFd, names: &[&OsStr], flags: OFlag, mode: Mode) -> io::Result<OwnedFd> {
    let Some((last, dirs)) = names.split_last() else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    let mut here: Option<OwnedFd> = None;
    for name in dirs {
        let fd = match &here {
            Some(fd) => openat(fd, *name, walk_dir_flags(), Mode::empty()),
            None => openat(start, *name, walk_dir_flags(), Mode::empty()),
        }?;
        here = Some(fd);
    }
    Ok(match &here {
        Some(fd) => openat(fd, *last, flags, mode),
        None => openat(start, *last, flags, mode),
    }?)
}

fn walk_dir_flags() -> OFlag {
    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// The names of a path to walk: its normal components and `..` (a root
/// and `.` dropped).
fn names_of(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// The plain components of a relative path; `..`, a root or a prefix is
/// refused (`.` is dropped).
fn components(rel: &Path) -> io::Result<Vec<&OsStr>> {
    rel.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} leaves its directory", rel.display()),
            )),
        })
        .collect()
}

fn not_a_file() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "not a regular file")
}

fn invalid(e: BadName) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

/// Whether the kernel keeps users from hard-linking files they could not
/// read or write (`fs.protected_hardlinks`, on by default in Debian,
/// Ubuntu and Amazon Linux): without it, a user who can write a watched
/// directory could link `/etc/shadow` into it. Links are a path walk's
/// blind spot, since a hard link is the file itself. `None` if unknown.
pub(crate) fn hard_links_protected() -> Option<bool> {
    let v = std::fs::read_to_string("/proc/sys/fs/protected_hardlinks").ok()?;
    Some(v.trim() != "0")
}

/// The directories a daemon was told to watch: a path below one of them
/// is opened through that root's descriptor, so a link the owner planted
/// anywhere below (a file, a directory swapped for a link after its
/// create event) is never followed. Each root is opened afresh for each
/// use ([`SafeDir::open`]) and closed after it: a descriptor held for the
/// daemon's life would keep its volume from being unmounted (`EBUSY`) and
/// would go on reading a root that was removed and made again.
#[derive(Debug)]
pub(crate) struct Roots(Vec<PathBuf>);

impl Roots {
    /// Check that each root opens now (a daemon with one that does not
    /// must not start).
    pub(crate) fn open(paths: &[PathBuf]) -> io::Result<Roots> {
        for p in paths {
            SafeDir::open(p)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
        }
        let mut roots = paths.to_vec();
        // Longest first: a root inside another answers for its own tree.
        roots.sort_by_key(|r| std::cmp::Reverse(r.components().count()));
        Ok(Roots(roots))
    }

    /// The watched directories as given.
    pub(crate) fn paths(&self) -> &[PathBuf] {
        &self.0
    }

    /// The root `path` is under, opened, and the rest of it.
    fn split<'a>(&self, path: &'a Path) -> io::Result<(SafeDir, &'a Path)> {
        let (root, rel) = self
            .0
            .iter()
            .find_map(|r| path.strip_prefix(r).ok().map(|rel| (r, rel)))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is under no watched directory", path.display()),
                )
            })?;
        Ok((SafeDir::open(root)?, rel))
    }

    /// The regular file at `path` (under a root), for reading.
    pub(crate) fn open_file(&self, path: &Path) -> io::Result<File> {
        let (root, rel) = self.split(path)?;
        root.open_file(rel)
    }

    /// The directory at `path` (a root or below one).
    pub(crate) fn dir(&self, path: &Path) -> io::Result<SafeDir> {
        let (root, rel) = self.split(path)?;
        root.dir(rel)
    }
}

#[cfg(test)]
#[path = "safe_path_tests.rs"]
mod tests;
