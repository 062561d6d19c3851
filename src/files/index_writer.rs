//! tablesnap's indexes: once the files landing in a directory (uploaded,
//! or found present by a scan) have settled (none of its files is being
//! uploaded and none landed for a moment), one `-listdir.json` index for
//! the batch, listing only files that are in S3, written beside the
//! directory's newest data file (as 1.2.1's readers expect). Directories
//! are indexed concurrently.
//!
//! Every watched directory's index is also rewritten once a refresh
//! interval has passed without one (refresh.rs), so a quiet live table
//! never looks dropped to `tablechop --forget-after`.
//!
//! What is kept per directory follows the directory: its names are those
//! its last index found (plus what landed since), and a directory whose
//! files are all gone (or that is gone) leaves the map.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::keys::{index_json, is_index_anchor, Filter, KeyNaming};
use crate::cloud::s3::{Content, PutOptions, S3};
use crate::host::safe_path::{Kind, Roots};

/// A directory's index waits until none of its files is being uploaded
/// and none has landed for this long, so one flush of many files writes
/// one index.
const INDEX_QUIET: Duration = Duration::from_millis(200);

/// A directory that never goes quiet (files keep coming) still gets an
/// index this often.
const INDEX_MAX_WAIT: Duration = Duration::from_secs(10);

/// Index writes under way at once (each a listing of the directory, HEADs
/// of files this run has not seen, and one PUT).
const WRITES_AT_ONCE: usize = 10;

/// What the upload workers tell the indexer about a file.
#[derive(Debug)]
pub(super) enum Landing {
    /// A worker took it: its directory's index waits for it.
    Started(PathBuf),
    /// It is in S3 (uploaded, or found there), with the size it has there.
    Landed(PathBuf, u64),
    /// It is not (vanished, skipped or failed; a retry starts it again).
    Dropped(PathBuf),
    /// The directories watched now (from the daemon, every
    /// `refresh::check_every`): those not indexed within the refresh
    /// interval get their index rewritten.
    Watched(Vec<PathBuf>),
    /// A scan is about to queue these files of a directory (names): once
    /// each has landed or dropped, the batch is known to be whole and is
    /// indexed without the quiet wait.
    Scanned(PathBuf, Vec<String>),
}

/// A name known to be in S3: its size there, and the generation of its
/// directory when it was learnt (a name learnt during an index write is
/// not the write's to prune).
#[derive(Debug, Clone, Copy)]
struct Known {
    size: u64,
    generation: u64,
}

/// A directory the indexer follows.
struct Dir {
    /// Names known to be in S3: what its last index found, and what
    /// landed since.
    known: HashMap<String, Known>,
    /// Its files being uploaded now.
    busy: usize,
    /// Files landed since its last index.
    dirty: bool,
    /// Due for a refresh (not owed: a stop does not wait for it).
    stale: bool,
    /// When this run last wrote its index (or found it had none to write).
    indexed: Option<Instant>,
    /// Bumped by every landing: a write that began before one is not the
    /// batch's last.
    generation: u64,
    changed: Instant,
    dirty_since: Instant,
    /// The files of a scan not landed or dropped yet (`Landing::Scanned`):
    /// none left means the scan's batch is whole.
    scanned: Option<std::collections::HashSet<String>>,
    writing: bool,
    /// Shutting down: each directory gets one more attempt.
    last_try: bool,
}

impl Dir {
    fn new() -> Self {
        Dir {
            known: HashMap::new(),
            busy: 0,
            dirty: false,
            stale: false,
            indexed: None,
            generation: 0,
            changed: Instant::now(),
            dirty_since: Instant::now(),
            scanned: None,
            writing: false,
            last_try: false,
        }
    }

    fn ready(&self, open: bool) -> bool {
        if self.writing || !(self.dirty || self.stale) {
            return false;
        }
        if !open {
            return self.dirty && !self.last_try;
        }
        let batch_whole = self.scanned.as_ref().is_some_and(|s| s.is_empty());
        (self.busy == 0 && (batch_whole || self.changed.elapsed() >= INDEX_QUIET))
            || (self.dirty && self.dirty_since.elapsed() >= INDEX_MAX_WAIT)
    }

    /// Nothing of it to keep: no name in S3, nothing under way or owed.
    fn idle_and_empty(&self) -> bool {
        self.known.is_empty() && self.busy == 0 && !self.dirty && !self.writing
    }
}

/// What every index write needs.
pub(super) struct Writer {
    pub s3: S3,
    pub naming: KeyNaming,
    pub filter: Filter,
    pub opts: PutOptions,
    /// Directories are listed and their files looked at through these,
    /// never through a link.
    pub roots: Arc<Roots>,
    /// Files whose copy in S3 lacks its `md5sum` (an upload cut before
    /// its stamp): back to the upload queue, and left out of the index
    /// until they land whole.
    pub requeue: mpsc::UnboundedSender<PathBuf>,
    /// A directory's index is rewritten when none was written for this
    /// long ([`super::refresh::DEFAULT_EVERY`]).
    pub refresh_every: Duration,
}

/// What one index write found: the names it listed (in S3 whole, with
/// their size), and the key and count written (`None`: no data file to
/// anchor an index, or the directory is gone).
struct Listing {
    found: HashMap<String, u64>,
    written: Option<(String, usize)>,
}

/// A finished write: its directory, the generation it began at, whether
/// it was only a refresh, and what it found or why it failed.
struct Written {
    dir: PathBuf,
    generation: u64,
    refresh: bool,
    result: Result<Listing, String>,
}

/// Writes each directory's index once the files landing in it (uploaded,
/// or found present by a scan) have settled, several directories at once.
/// Returns how many directories still owed an index it could not write.
pub(super) async fn run(mut landings: mpsc::UnboundedReceiver<Landing>, writer: Writer) -> usize {
    let writer = Arc::new(writer);
    let mut dirs: HashMap<PathBuf, Dir> = HashMap::new();
    let mut writes: JoinSet<Written> = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut open = true;
    loop {
        tokio::select! {
            msg = landings.recv(), if open => match msg {
                Some(Landing::Watched(watched)) => due(&mut dirs, watched, writer.refresh_every),
                Some(m) => note(&mut dirs, m),
                None => open = false,
            },
            Some(done) = writes.join_next(), if !writes.is_empty() => {
                if let Ok(done) = done {
                    finished(&mut dirs, done, open);
                }
            }
            _ = tick.tick() => {}
        }
        for (dir, d) in dirs.iter_mut() {
            if writes.len() >= WRITES_AT_ONCE {
                break;
            }
            if !d.ready(open) {
                continue;
            }
            d.writing = true;
            d.last_try = !open;
            if d.scanned.as_ref().is_some_and(|s| s.is_empty()) {
                d.scanned = None;
            }
            let refresh = !d.dirty;
            let known: HashMap<String, u64> =
                d.known.iter().map(|(n, k)| (n.clone(), k.size)).collect();
            let (w, dir, generation) = (writer.clone(), dir.clone(), d.generation);
            writes.spawn(async move {
                let result = write_index(&w, &dir, known).await;
                Written {
                    dir,
                    generation,
                    refresh,
                    result,
                }
            });
        }
        if !open && writes.is_empty() && !dirs.values().any(|d| d.ready(false)) {
            // Shut down: one attempt each was made; report what is owed.
            return dirs.values().filter(|d| d.dirty).count();
        }
    }
}

fn note(dirs: &mut HashMap<PathBuf, Dir>, msg: Landing) {
    let (path, step) = match &msg {
        Landing::Started(p) => (p, 1),
        Landing::Landed(p, _) | Landing::Dropped(p) => (p, -1),
        Landing::Watched(_) => return,
        Landing::Scanned(dir, names) => {
            let d = dirs.entry(dir.clone()).or_insert_with(Dir::new);
            d.scanned
                .get_or_insert_with(Default::default)
                .extend(names.iter().cloned());
            return;
        }
    };
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let d = dirs.entry(dir.to_path_buf()).or_insert_with(Dir::new);
    d.busy = d.busy.saturating_add_signed(step);
    if step < 0 {
        if let Some(s) = d.scanned.as_mut() {
            s.remove(&*name.to_string_lossy());
        }
        // All of the scan's files dropped and nothing to index: later
        // arrivals wait for the quiet again.
        if d.scanned.as_ref().is_some_and(|s| s.is_empty())
            && !d.dirty
            && !matches!(msg, Landing::Landed(..))
        {
            d.scanned = None;
        }
    }
    if let Landing::Landed(_, size) = &msg {
        d.generation += 1;
        let known = Known {
            size: *size,
            generation: d.generation,
        };
        d.known.insert(name.to_string_lossy().into_owned(), known);
        if !d.dirty {
            d.dirty_since = Instant::now();
        }
        d.dirty = true;
    }
    d.changed = Instant::now();
}

/// Mark the watched directories not indexed within `every` for a
/// refresh (a directory this run has not indexed is due), and let go of
/// the directories no longer watched (deleted) with nothing under way.
fn due(dirs: &mut HashMap<PathBuf, Dir>, watched: Vec<PathBuf>, every: Duration) {
    let now = Instant::now();
    let set: std::collections::HashSet<&PathBuf> = watched.iter().collect();
    dirs.retain(|dir, d| set.contains(dir) || d.busy > 0 || d.dirty || d.writing);
    drop(set);
    for dir in watched {
        let d = dirs.entry(dir).or_insert_with(Dir::new);
        if super::refresh::is_due(d.indexed, now, every) {
            d.stale = true;
        }
    }
}

fn finished(dirs: &mut HashMap<PathBuf, Dir>, done: Written, open: bool) {
    let Written {
        dir,
        generation,
        refresh,
        result,
    } = done;
    let Some(d) = dirs.get_mut(&dir) else { return };
    d.writing = false;
    match result {
        Ok(Listing { found, written }) => {
            match (written, refresh) {
                (Some((key, n)), false) => {
                    tracing::info!("indexed {n} files of {} in {key}", dir.display());
                }
                (Some((key, n)), true) => {
                    tracing::debug!(
                        "refreshed the index of {} ({n} files) in {key}",
                        dir.display()
                    );
                }
                // No data file to anchor an index beside (1.2.1 indexed
                // only sstables), or the directory is gone: nothing owed.
                (None, _) => {}
            }
            // Its names are what this index found, and what landed
            // during the write (for the next one).
            d.known.retain(|_, k| k.generation > generation);
            for (name, size) in found {
                d.known.entry(name).or_insert(Known { size, generation });
            }
            d.indexed = Some(Instant::now());
            d.stale = false;
            if d.generation == generation {
                d.dirty = false;
            } else {
                d.dirty_since = Instant::now();
            }
            if d.idle_and_empty() {
                dirs.remove(&dir);
            }
        }
        Err(e) => {
            tracing::error!("index of {}: {e}; will retry", dir.display());
            // Back off: wait another quiet period.
            d.changed = Instant::now();
            if !open {
                d.last_try = true;
            }
        }
    }
}

/// List the directory's files that are in S3 (checking those this run has
/// not seen with a HEAD: the same size and an `md5sum`, as a restore
/// requires) and write the index beside its newest data file.
/// `Ok(None)` when the directory has no data file to anchor an index.
async fn write_index(
    w: &Writer,
    dir: &Path,
    known: HashMap<String, u64>,
) -> Result<Listing, String> {
    let Writer {
        s3,
        naming,
        filter,
        opts,
        roots,
        requeue,
        ..
    } = w;
    let (d, roots) = (dir.to_path_buf(), roots.clone());
    // A directory that cannot be read must not produce an empty index.
    // Each file's size is of the file itself (links are not listed, nor
    // followed on the way), and names that are not UTF-8 are left out as
    // the upload refused them.
    // Only (name, size, mtime) per file: a directory of tens of
    // thousands of files is listed at every index. A write cut off by a
    // stop (its future dropped) ends its `lstat`s within a few thousand:
    // a directory of a million files must not hold the exit.
    let entries = super::blocking_until_dropped(move |stop| {
        let d = roots.dir(&d)?;
        let mut files = Vec::new();
        for (n, (name, kind)) in d.entries()?.into_iter().enumerate() {
            if n % 4096 == 4095 && stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    "cut off",
                ));
            }
            let Some(name) = name.into_string().ok().filter(|_| kind == Kind::File) else {
                continue;
            };
            let Some(meta) = d.metadata(&name).ok().filter(|m| m.is_file()) else {
                continue;
            };
            let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            files.push((name, meta.len(), mtime));
        }
        std::io::Result::Ok(files)
    })
    .await
    .map_err(|e| e.to_string())?;
    let entries = match entries {
        Ok(e) => e,
        // Gone (a dropped table, a moved directory): nothing to index.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Listing {
                found: HashMap::new(),
                written: None,
            })
        }
        Err(e) => return Err(format!("reading {}: {e}", dir.display())),
    };
    let mut found = HashMap::new();
    let mut anchor: Option<(std::time::SystemTime, &str)> = None;
    for (name, size, mtime) in &entries {
        let path = dir.join(name);
        if !filter.accepts(&path) {
            continue;
        }
        if known.get(name) != Some(size) {
            match s3.head(&naming.key(&path)).await {
                Ok(Some(h)) if h.size == *size && h.metadata.contains_key("md5sum") => {}
                Ok(Some(h)) if h.size == *size => {
                    tracing::info!(
                        "{} in S3 has no md5sum (an upload cut before its stamp): uploading it again",
                        path.display()
                    );
                    let _ = requeue.send(path);
                    continue;
                }
                Ok(_) => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        if is_index_anchor(&path) && anchor.is_none_or(|(t, n)| (*mtime, name.as_str()) > (t, n)) {
            anchor = Some((*mtime, name));
        }
        found.insert(name.clone(), *size);
    }
    let Some((_, anchor)) = anchor else {
        return Ok(Listing {
            found,
            written: None,
        });
    };
    let key = naming.index_key(&dir.join(anchor));
    // In the directory's order, as 1.2.1's os.listdir.
    let names: Vec<String> = entries
        .into_iter()
        .map(|(name, _, _)| name)
        .filter(|n| found.contains_key(n))
        .collect();
    s3.put_bytes(
        &key,
        index_json(dir, &names).into_bytes(),
        Content {
            content_type: Some("application/json"),
            md5: None,
        },
        &super::keys::index_mark(),
        opts,
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(Listing {
        found,
        written: Some((key, names.len())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(names: &[&str], written: bool) -> Result<Listing, String> {
        Ok(Listing {
            found: names.iter().map(|n| (n.to_string(), 1)).collect(),
            written: written.then(|| ("k".to_string(), names.len())),
        })
    }

    fn names(d: &Dir) -> Vec<&str> {
        let mut n: Vec<&str> = d.known.keys().map(String::as_str).collect();
        n.sort_unstable();
        n
    }

    #[test]
    fn a_directory_keeps_the_names_its_last_index_found_and_what_landed_since() {
        let dir = PathBuf::from("/d/t");
        let mut dirs = HashMap::new();
        for n in ["a-Data.db", "b-Data.db"] {
            note(&mut dirs, Landing::Started(dir.join(n)));
            note(&mut dirs, Landing::Landed(dir.join(n), 1));
        }
        // The write begins; c lands during it; b was deleted before it.
        let generation = dirs[&dir].generation;
        note(&mut dirs, Landing::Landed(dir.join("c-Data.db"), 1));
        let done = Written {
            dir: dir.clone(),
            generation,
            refresh: false,
            result: listing(&["a-Data.db"], true),
        };
        finished(&mut dirs, done, true);
        let d = &dirs[&dir];
        assert_eq!(names(d), ["a-Data.db", "c-Data.db"]);
        assert!(d.dirty, "c is owed the next index");

        // Everything is deleted: the next index finds nothing, and the
        // directory leaves the map.
        let done = Written {
            dir: dir.clone(),
            generation: dirs[&dir].generation,
            refresh: false,
            result: listing(&[], false),
        };
        finished(&mut dirs, done, true);
        assert!(dirs.is_empty());
    }

    #[test]
    fn a_scanned_batch_is_indexed_as_soon_as_all_of_it_landed_and_not_before() {
        let dir = PathBuf::from("/d/t");
        let mut dirs = HashMap::new();
        note(
            &mut dirs,
            Landing::Scanned(dir.clone(), vec!["a-Data.db".into(), "b-Data.db".into()]),
        );
        note(&mut dirs, Landing::Started(dir.join("a-Data.db")));
        note(&mut dirs, Landing::Landed(dir.join("a-Data.db"), 1));
        // b is not started yet: nothing is busy, but the batch is not whole.
        assert!(!dirs[&dir].ready(true), "indexed before b landed");
        note(&mut dirs, Landing::Started(dir.join("b-Data.db")));
        note(&mut dirs, Landing::Dropped(dir.join("b-Data.db")));
        // Whole at once, well within the quiet wait.
        assert!(dirs[&dir].ready(true));
        // A file that lands by an event after the index waits for the
        // quiet (the write clears the batch).
        dirs.get_mut(&dir).unwrap().scanned = None;
        note(&mut dirs, Landing::Started(dir.join("c-Data.db")));
        note(&mut dirs, Landing::Landed(dir.join("c-Data.db"), 1));
        assert!(!dirs[&dir].ready(true));

        // A scan whose files all dropped leaves nothing to index, and
        // what arrives later waits for the quiet.
        let other = PathBuf::from("/d/u");
        note(
            &mut dirs,
            Landing::Scanned(other.clone(), vec!["x-Data.db".into()]),
        );
        note(&mut dirs, Landing::Started(other.join("x-Data.db")));
        note(&mut dirs, Landing::Dropped(other.join("x-Data.db")));
        assert!(dirs[&other].scanned.is_none());
    }

    #[test]
    fn watched_directories_not_indexed_within_the_interval_are_refreshed() {
        let (fresh, quiet) = (PathBuf::from("/d/fresh"), PathBuf::from("/d/quiet"));
        let mut dirs = HashMap::new();
        note(&mut dirs, Landing::Landed(fresh.join("a-Data.db"), 1));
        let done = Written {
            dir: fresh.clone(),
            generation: 1,
            refresh: false,
            result: listing(&["a-Data.db"], true),
        };
        finished(&mut dirs, done, true);
        let day = Duration::from_secs(86_400);
        due(&mut dirs, vec![fresh.clone(), quiet.clone()], day);
        assert!(!dirs[&fresh].stale && !dirs[&fresh].ready(true));
        // Never indexed by this run: due (once quiet), not owed at a stop.
        assert!(dirs[&quiet].stale && !dirs[&quiet].ready(false));
        due(
            &mut dirs,
            vec![fresh.clone(), quiet.clone()],
            Duration::ZERO,
        );
        assert!(dirs[&fresh].stale);
        // A refresh that found no data file: the directory leaves.
        let done = Written {
            dir: quiet.clone(),
            generation: 0,
            refresh: true,
            result: listing(&[], false),
        };
        finished(&mut dirs, done, true);
        assert!(!dirs.contains_key(&quiet));
        // No longer watched (deleted), nothing under way: let go.
        due(&mut dirs, vec![], Duration::ZERO);
        assert!(dirs.is_empty());
    }
}
