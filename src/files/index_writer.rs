//! tablesnap's indexes: once the files landing in a directory (uploaded,
//! or found present by a scan) have settled (none of its files is being
//! uploaded and none landed for a moment), one `-listdir.json` index for
//! the batch, listing only files that are in S3, written beside the
//! directory's newest data file (as 1.2.1's readers expect). Directories
//! are indexed concurrently.

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
}

/// A directory the indexer follows.
struct Dir {
    /// Names known to be in S3 (with their size then).
    known: HashMap<String, u64>,
    /// Its files being uploaded now.
    busy: usize,
    /// Files landed since its last index.
    dirty: bool,
    /// Bumped by every landing: a write that began before one is not the
    /// batch's last.
    generation: u64,
    changed: Instant,
    dirty_since: Instant,
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
            generation: 0,
            changed: Instant::now(),
            dirty_since: Instant::now(),
            writing: false,
            last_try: false,
        }
    }

    fn ready(&self, open: bool) -> bool {
        if self.writing || !self.dirty {
            return false;
        }
        if !open {
            return !self.last_try;
        }
        (self.busy == 0 && self.changed.elapsed() >= INDEX_QUIET)
            || self.dirty_since.elapsed() >= INDEX_MAX_WAIT
    }
}

/// What every index write needs.
struct Writer {
    s3: S3,
    naming: KeyNaming,
    filter: Filter,
    opts: PutOptions,
    /// Directories are listed and their files looked at through these,
    /// never through a link.
    roots: Arc<Roots>,
    /// Files whose copy in S3 lacks its `md5sum` (an upload cut before
    /// its stamp): back to the upload queue, and left out of the index
    /// until they land whole.
    requeue: mpsc::UnboundedSender<PathBuf>,
}

/// A finished write: its directory, the names it found in S3, the
/// generation it began at, and its key and count (`None`: no data file to
/// anchor an index) or why it failed.
type Written = (
    PathBuf,
    HashMap<String, u64>,
    u64,
    Result<Option<(String, usize)>, String>,
);

/// Writes each directory's index once the files landing in it (uploaded,
/// or found present by a scan) have settled, several directories at once.
/// Returns how many directories still owed an index it could not write.
pub(super) async fn run(
    mut landings: mpsc::UnboundedReceiver<Landing>,
    s3: S3,
    naming: KeyNaming,
    filter: Filter,
    opts: PutOptions,
    roots: Arc<Roots>,
    requeue: mpsc::UnboundedSender<PathBuf>,
) -> usize {
    let writer = Arc::new(Writer {
        s3,
        naming,
        filter,
        opts,
        roots,
        requeue,
    });
    let mut dirs: HashMap<PathBuf, Dir> = HashMap::new();
    let mut writes: JoinSet<Written> = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut open = true;
    loop {
        tokio::select! {
            msg = landings.recv(), if open => match msg {
                Some(m) => note(&mut dirs, m),
                None => open = false,
            },
            Some(done) = writes.join_next(), if !writes.is_empty() => {
                if let Ok((dir, known, generation, result)) = done {
                    finished(&mut dirs, dir, known, generation, result, open);
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
            let (w, dir, mut known, generation) =
                (writer.clone(), dir.clone(), d.known.clone(), d.generation);
            writes.spawn(async move {
                let r = write_index(&w, &dir, &mut known).await;
                (dir, known, generation, r)
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
    };
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let d = dirs.entry(dir.to_path_buf()).or_insert_with(Dir::new);
    d.busy = d.busy.saturating_add_signed(step);
    if let Landing::Landed(_, size) = &msg {
        d.known.insert(name.to_string_lossy().into_owned(), *size);
        if !d.dirty {
            d.dirty_since = Instant::now();
        }
        d.dirty = true;
        d.generation += 1;
    }
    d.changed = Instant::now();
}

fn finished(
    dirs: &mut HashMap<PathBuf, Dir>,
    dir: PathBuf,
    known: HashMap<String, u64>,
    generation: u64,
    result: Result<Option<(String, usize)>, String>,
    open: bool,
) {
    let Some(d) = dirs.get_mut(&dir) else { return };
    d.writing = false;
    d.known.extend(known);
    match result {
        Ok(written) => {
            if let Some((key, n)) = written {
                tracing::info!("indexed {n} files of {} in {key}", dir.display());
            }
            // Files that landed during the write get the next index. (No
            // data file to anchor an index beside, as 1.2.1 indexed only
            // sstables: nothing owed.)
            if d.generation == generation {
                d.dirty = false;
            } else {
                d.dirty_since = Instant::now();
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
    known: &mut HashMap<String, u64>,
) -> Result<Option<(String, usize)>, String> {
    let Writer {
        s3,
        naming,
        filter,
        opts,
        roots,
        requeue,
    } = w;
    let (d, roots) = (dir.to_path_buf(), roots.clone());
    // A directory that cannot be read must not produce an empty index.
    // Each file's size is of the file itself (links are not listed, nor
    // followed on the way), and names that are not UTF-8 are left out as
    // the upload refused them.
    // A write cut off by a stop (its future dropped) ends its `lstat`s
    // within a few thousand: a directory of a million files must not hold
    // the exit.
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
            files.push((d.path().join(&name), name, meta));
        }
        std::io::Result::Ok(files)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut names = Vec::new();
    let mut anchor: Option<(std::time::SystemTime, PathBuf)> = None;
    for (path, name, meta) in entries.iter().filter(|(p, _, _)| filter.accepts(p)) {
        let name = name.clone();
        if known.get(&name) != Some(&meta.len()) {
            match s3.head(&naming.key(path)).await {
                Ok(Some(h)) if h.size == meta.len() && h.metadata.contains_key("md5sum") => {
                    known.insert(name.clone(), h.size);
                }
                Ok(Some(h)) if h.size == meta.len() => {
                    tracing::info!(
                        "{} in S3 has no md5sum (an upload cut before its stamp): uploading it again",
                        path.display()
                    );
                    let _ = requeue.send(path.clone());
                    continue;
                }
                Ok(_) => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        if is_index_anchor(path) {
            let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            if anchor.as_ref().is_none_or(|(t, p)| (mtime, path) > (*t, p)) {
                anchor = Some((mtime, path.clone()));
            }
        }
        names.push(name);
    }
    let Some((_, anchor)) = anchor else {
        return Ok(None);
    };
    let key = naming.index_key(&anchor);
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
    Ok(Some((key, names.len())))
}
