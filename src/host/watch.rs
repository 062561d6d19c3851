//! Watching directories with inotify: file events as paths, directories
//! added as they appear (`auto_add`), and a signal to rescan when the
//! kernel's event queue overflowed. inotify types stay here.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use inotify::{EventMask, EventStream, Inotify, WatchDescriptor, WatchMask, Watches};

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
    /// Events were lost: rescan everything.
    Overflow,
}

pub(crate) struct Watcher {
    stream: EventStream<Vec<u8>>,
    watches: Watches,
    dirs: HashMap<WatchDescriptor, PathBuf>,
    listen: Listen,
    recursive: bool,
    auto_add: bool,
}

impl Watcher {
    /// Watch `roots` (and, with `recursive`, every directory below them).
    pub(crate) fn new(
        roots: &[PathBuf],
        listen: Listen,
        recursive: bool,
        auto_add: bool,
    ) -> io::Result<Watcher> {
        let inotify = Inotify::init()?;
        let watches = inotify.watches();
        let stream = inotify.into_event_stream(vec![0u8; 64 * 1024])?;
        let mut w = Watcher {
            stream,
            watches,
            dirs: HashMap::new(),
            listen,
            recursive,
            auto_add,
        };
        for root in roots {
            w.add_tree(root).map_err(|e| {
                io::Error::new(e.kind(), format!("watching {}: {e}", root.display()))
            })?;
        }
        Ok(w)
    }

    fn mask(&self) -> WatchMask {
        let mut m = WatchMask::empty();
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
        let wd = self.watches.add(dir, self.mask())?;
        self.dirs.insert(wd, dir.to_path_buf());
        if self.recursive {
            for entry in std::fs::read_dir(dir)?.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    // A directory that vanished meanwhile is not an error.
                    let _ = self.add_tree(&entry.path());
                }
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
            if event.mask.contains(EventMask::ISDIR) {
                if self.auto_add
                    && (event
                        .mask
                        .intersects(EventMask::CREATE | EventMask::MOVED_TO))
                {
                    if let Err(e) = self.add_tree(&path) {
                        tracing::warn!("cannot watch new directory {}: {e}", path.display());
                        continue;
                    }
                    return Some(Ok(Change::Dir(path)));
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

/// Regular files directly in `dir`, or below it when `recursive`.
pub(crate) fn scan(dir: &Path, recursive: bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(t) = e.file_type() else { continue };
        if t.is_file() {
            out.push(e.path());
        } else if t.is_dir() && recursive {
            out.extend(scan(&e.path(), true));
        }
    }
    out
}
