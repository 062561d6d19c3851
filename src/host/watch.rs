//! Watching directories with inotify: file events as paths, directories
//! added as they appear (`auto_add`), and a signal to rescan when the
//! kernel's event queue overflowed. inotify types stay here.
//!
//! Every directory is opened through its watched root without following
//! a link ([`Roots::dir`]) and watched as that descriptor
//! (`/proc/self/fd/N`, `IN_ONLYDIR`): a directory swapped for a link
//! after its create event is refused, never watched through the link.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::StreamExt;
use inotify::{EventMask, EventStream, Inotify, WatchDescriptor, WatchMask, Watches};

use super::safe_path::{is_refused_link, Kind, Roots};

/// Which file events count (tablesnap's `--listen-events`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Listen {
    pub moved_to: bool,
    pub close_write: bool,
    pub create: bool,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// A file to consider uploading.
    File(PathBuf),
    /// A directory appeared (and is now watched): its current contents
    /// should be scanned, as files may have landed before the watch.
    Dir(PathBuf),
    /// A file was deleted or moved away: what the daemon remembers of it
    /// goes (a months-long run must not keep every file it ever saw).
    Gone(PathBuf),
    /// A directory was deleted or moved away: the same for everything
    /// below it.
    GoneDir(PathBuf),
    /// Events were lost: rescan everything.
    Overflow,
}

/// Directories whose watch failed are named one by one up to this many;
/// past it (a low watch limit on a large tree) only the count is said.
const NAMED_FAILURES: u64 = 10;

pub(crate) struct Watcher {
    stream: EventStream<Vec<u8>>,
    watches: Watches,
    dirs: HashMap<WatchDescriptor, PathBuf>,
    listen: Listen,
    recursive: bool,
    auto_add: bool,
    /// Directories below a root that could not be watched (the watch
    /// limit, permissions): the daemon covers them by rescanning them
    /// until [`Watcher::retry_unwatched`] manages to watch them.
    unwatched: BTreeSet<PathBuf>,
    /// Failed attempts to watch a directory, for the logs.
    failures: u64,
    roots: Arc<Roots>,
}

/// Why a watch failed, with what to do about it where there is something.
fn explain(e: &io::Error) -> String {
    match e.kind() {
        // ENOSPC from inotify_add_watch: the per-user watch limit.
        io::ErrorKind::StorageFull => {
            let now = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
                .map(|s| format!(", now {}", s.trim()))
                .unwrap_or_default();
            format!(
                "{e}: the inotify watch limit is reached; raise it with \
                 sysctl fs.inotify.max_user_watches=N{now}"
            )
        }
        _ => e.to_string(),
    }
}

impl Watcher {
    /// Watch `roots` (and, with `recursive`, every directory below them).
    pub(crate) fn new(
        roots: Arc<Roots>,
        listen: Listen,
        recursive: bool,
        auto_add: bool,
    ) -> io::Result<Watcher> {
        let inotify = Inotify::init().map_err(|e| {
            // EMFILE: the per-user limit on inotify instances.
            let hint = if e.raw_os_error() == Some(nix::errno::Errno::EMFILE as i32) {
                "; raise it with sysctl fs.inotify.max_user_instances=N"
            } else {
                ""
            };
            io::Error::new(e.kind(), format!("inotify_init: {e}{hint}"))
        })?;
        let watches = inotify.watches();
        let stream = inotify.into_event_stream(vec![0u8; 64 * 1024])?;
        let mut w = Watcher {
            stream,
            watches,
            dirs: HashMap::new(),
            listen,
            recursive,
            auto_add,
            unwatched: BTreeSet::new(),
            failures: 0,
            roots: roots.clone(),
        };
        // A configured directory that cannot be watched is fatal: the
        // operator named it, and nothing would be uploaded from it.
        for root in roots.paths() {
            w.add_tree(root).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot watch {}: {}", root.display(), explain(&e)),
                )
            })?;
        }
        Ok(w)
    }

    /// Directories that could not be watched and are covered by rescans.
    pub(crate) fn unwatched(&self) -> usize {
        self.unwatched.len()
    }

    /// Failed attempts to watch a directory so far.
    pub(crate) fn failures(&self) -> u64 {
        self.failures
    }

    /// Every directory watched now, and those that could not be (covered
    /// by rescans).
    pub(crate) fn directories(&self) -> Vec<PathBuf> {
        self.dirs
            .values()
            .chain(self.unwatched.iter())
            .cloned()
            .collect()
    }

    /// Watch the directories that could not be watched before. Returns
    /// those now watched and those still not (both to be scanned: files
    /// may have landed in them unseen); vanished ones are forgotten.
    pub(crate) fn retry_unwatched(&mut self) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let (mut now, mut still) = (Vec::new(), Vec::new());
        for dir in std::mem::take(&mut self.unwatched) {
            match self.add_tree(&dir) {
                Ok(()) => now.push(dir),
                Err(e) if e.kind() == io::ErrorKind::NotFound || is_refused_link(&e) => {}
                Err(_) => {
                    self.failures += 1;
                    self.unwatched.insert(dir.clone());
                    still.push(dir);
                }
            }
        }
        (now, still)
    }

    /// Watch a directory below a root: a failure is logged, counted and
    /// remembered for rescans instead of failing the daemon (a directory
    /// that vanished meanwhile is not a failure). Returns whether it is
    /// watched.
    fn add_sub(&mut self, dir: &Path) -> bool {
        match self.add_tree(dir) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) if is_refused_link(&e) => {
                tracing::warn!(
                    "not watching {}: a symbolic link is on its path (links are never followed)",
                    dir.display()
                );
                false
            }
            Err(e) => {
                self.failures += 1;
                if self.unwatched.insert(dir.to_path_buf()) {
                    let n = self.unwatched.len() as u64;
                    if n <= NAMED_FAILURES {
                        tracing::error!(
                            "cannot watch {}: {}; rescanning it periodically until it can be",
                            dir.display(),
                            explain(&e)
                        );
                    } else if n == NAMED_FAILURES + 1 {
                        tracing::error!(
                            "more directories cannot be watched (the count is in later \
                             warnings); they are rescanned periodically"
                        );
                    }
                }
                false
            }
        }
    }

    fn mask(&self) -> WatchMask {
        // Deletions and moves away are always heard, whatever
        // `--listen-events` says: they are how state is let go of.
        let mut m = WatchMask::ONLYDIR | WatchMask::DELETE | WatchMask::MOVED_FROM;
        if self.listen.moved_to || self.auto_add {
            m |= WatchMask::MOVED_TO;
        }
        if self.listen.close_write {
            m |= WatchMask::CLOSE_WRITE;
        }
        if self.listen.create || self.auto_add {
            m |= WatchMask::CREATE;
        }
        m
    }

    /// Watch a directory, and its subdirectories when recursive.
    fn add_tree(&mut self, dir: &Path) -> io::Result<()> {
        let opened = self.roots.dir(dir)?;
        // The descriptor's own directory, whatever the path names now.
        let wd = self.watches.add(opened.fd_path(), self.mask())?;
        self.dirs.insert(wd, dir.to_path_buf());
        self.unwatched.remove(dir);
        if self.recursive {
            let subs: Vec<PathBuf> = opened
                .entries()?
                .into_iter()
                .filter(|(_, kind)| *kind == Kind::Dir)
                .map(|(name, _)| dir.join(name))
                .collect();
            // Closed before going down: however deep a tree its owner
            // builds, one descriptor at a time is open here.
            drop(opened);
            for sub in subs {
                self.add_sub(&sub);
            }
        }
        Ok(())
    }

    /// The next batch of changes; `None` when the stream ends.
    pub(crate) async fn next(&mut self) -> Option<io::Result<Change>> {
        loop {
            let event = match self.stream.next().await? {
                Ok(e) => e,
                Err(e) => return Some(Err(e)),
            };
            if event.mask.contains(EventMask::Q_OVERFLOW) {
                return Some(Ok(Change::Overflow));
            }
            let Some(dir) = self.dirs.get(&event.wd).cloned() else {
                continue;
            };
            if event.mask.contains(EventMask::IGNORED) {
                self.dirs.remove(&event.wd);
                continue;
            }
            let Some(name): Option<OsString> = event.name else {
                continue;
            };
            let path = dir.join(name);
            if event
                .mask
                .intersects(EventMask::DELETE | EventMask::MOVED_FROM)
            {
                return Some(Ok(if event.mask.contains(EventMask::ISDIR) {
                    Change::GoneDir(path)
                } else {
                    Change::Gone(path)
                }));
            }
            if event.mask.contains(EventMask::ISDIR) {
                if self.auto_add
                    && (event
                        .mask
                        .intersects(EventMask::CREATE | EventMask::MOVED_TO))
                {
                    // Watched or not (then rescanned periodically), its
                    // files are scanned now.
                    if self.add_sub(&path) || self.roots.dir(&path).is_ok() {
                        return Some(Ok(Change::Dir(path)));
                    }
                    continue;
                }
                continue;
            }
            let wanted = (event.mask.contains(EventMask::MOVED_TO) && self.listen.moved_to)
                || (event.mask.contains(EventMask::CLOSE_WRITE) && self.listen.close_write)
                || (event.mask.contains(EventMask::CREATE) && self.listen.create);
            if wanted {
                return Some(Ok(Change::File(path)));
            }
        }
    }
}

/// What a scan found.
#[derive(Debug, Default)]
pub(crate) struct Scanned {
    /// The regular files `keep` accepted, by directory.
    pub by_dir: Vec<(PathBuf, Vec<PathBuf>)>,
    /// Directories that exist but could not be read (permissions, no
    /// descriptors left): what is known of files below them must not be
    /// taken as gone. (A directory replaced by a link is gone: nothing
    /// below it is reached any more.)
    pub unreadable: Vec<PathBuf>,
}

impl Scanned {
    /// Whether a file known from before is still there by this scan of
    /// `dir`: files outside what was scanned, or below a directory that
    /// could not be read, are given the benefit of the doubt. (Files
    /// `keep` refused are never known: only accepted files are read.)
    pub(crate) fn still_there<'a>(
        &'a self,
        dir: &'a Path,
        recursive: bool,
    ) -> impl Fn(&Path) -> bool + 'a {
        let found: HashSet<&Path> = self
            .by_dir
            .iter()
            .flat_map(|(_, files)| files.iter().map(PathBuf::as_path))
            .collect();
        move |p: &Path| {
            let scanned = if recursive {
                p.starts_with(dir)
            } else {
                p.parent() == Some(dir)
            };
            !scanned || found.contains(p) || self.unreadable.iter().any(|u| p.starts_with(u))
        }
    }
}

/// Regular files directly in `dir`, or below it when `recursive`, that
/// `keep` accepts, by directory, read through descriptors: links (to
/// files or directories) are left out. Directories are visited from a
/// list, one open at a time, so a tree of any depth takes no more
/// descriptors than a flat one.
///
/// `None` once `stop` is raised: it is looked at between directories and
/// every [`SCAN_CHECK_EVERY`] entries, so a walk over millions of files
/// (a `-B` start) ends within moments of a stop instead of holding the
/// process's exit until it is done; what it found is then not used.
pub(crate) fn scan(
    roots: &Roots,
    dir: &Path,
    recursive: bool,
    keep: impl Fn(&Path) -> bool,
    stop: &AtomicBool,
) -> Option<Scanned> {
    let mut out = Scanned::default();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let entries = match roots.dir(&d).and_then(|opened| opened.entries()) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound || is_refused_link(&e) => continue,
            Err(_) => {
                out.unreadable.push(d);
                continue;
            }
        };
        let mut files = Vec::new();
        for (n, (name, kind)) in entries.into_iter().enumerate() {
            if n % SCAN_CHECK_EVERY == SCAN_CHECK_EVERY - 1 && stop.load(Ordering::Relaxed) {
                return None;
            }
            match kind {
                Kind::File => {
                    let path = d.join(name);
                    if keep(&path) {
                        files.push(path);
                    }
                }
                Kind::Dir if recursive => todo.push(d.join(name)),
                _ => {}
            }
        }
        if !files.is_empty() {
            out.by_dir.push((d, files));
        }
    }
    Some(out)
}

/// Entries of one directory handled between looks at the stop flag: a
/// few milliseconds of work.
const SCAN_CHECK_EVERY: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_gives_files_by_directory_and_ends_at_a_stop() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("r");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        for p in ["x-Data.db", "skip.log", "a/y-Data.db", "a/b/z-Data.db"] {
            std::fs::write(root.join(p), b"").unwrap();
        }
        let roots = Roots::open(std::slice::from_ref(&root)).unwrap();
        let keep = |p: &Path| !p.to_string_lossy().ends_with(".log");
        let go = AtomicBool::new(false);
        let mut found = scan(&roots, &root, true, keep, &go).unwrap().by_dir;
        found.sort();
        let names: Vec<(PathBuf, Vec<PathBuf>)> = vec![
            (root.clone(), vec![root.join("x-Data.db")]),
            (root.join("a"), vec![root.join("a/y-Data.db")]),
            (root.join("a/b"), vec![root.join("a/b/z-Data.db")]),
        ];
        assert_eq!(found, names);
        let flat = scan(&roots, &root, false, keep, &go).unwrap().by_dir;
        assert_eq!(flat, names[..1].to_vec());
        assert!(scan(&roots, &root, true, keep, &AtomicBool::new(true)).is_none());
    }

    #[test]
    fn a_scan_clears_only_what_it_covered_and_could_read() {
        let scanned = Scanned {
            by_dir: vec![
                ("/r/t".into(), vec!["/r/t/a".into()]),
                ("/r/t/sub".into(), vec!["/r/t/sub/b".into()]),
            ],
            unreadable: vec!["/r/locked".into()],
        };
        let there = scanned.still_there(Path::new("/r"), true);
        for (p, want) in [
            ("/r/t/a", true),
            ("/r/t/sub/b", true),
            ("/r/t/gone", false),
            ("/r/gone/c", false),
            ("/r/locked/d", true),
            ("/other/e", true),
        ] {
            assert_eq!(there(Path::new(p)), want, "{p}");
        }
        // Not recursive: only the files directly in the directory.
        let flat = Scanned {
            by_dir: vec![("/r".into(), vec!["/r/a".into()])],
            unreadable: vec![],
        };
        let there = flat.still_there(Path::new("/r"), false);
        assert!(there(Path::new("/r/a")) && !there(Path::new("/r/gone")));
        assert!(there(Path::new("/r/sub/b")));
    }
}
