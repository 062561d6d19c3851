//! tablesnap's indexes: once the files landing in a directory (uploaded,
//! or found present by a scan) have settled, one `-listdir.json` index for
//! the batch, listing only files that are in S3, written beside the
//! directory's newest data file (as 1.2.1's readers expect).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::keys::{index_json, is_index_anchor, Filter, KeyNaming};
use crate::cloud::s3::{Content, PutOptions, S3};

/// A directory's index waits until no upload has landed in it for this
/// long, so one flush of many files writes one index.
const INDEX_QUIET: Duration = Duration::from_millis(200);

/// Writes each directory's index once the files landing in it (uploaded,
/// or found present by a scan) have settled. Returns how many directories
/// still owed an index it could not write.
pub(super) async fn run(
    mut landed: mpsc::UnboundedReceiver<PathBuf>,
    s3: S3,
    naming: KeyNaming,
    filter: Filter,
    opts: PutOptions,
) -> usize {
    struct Dir {
        /// Names known to be in S3 (with their size then).
        known: HashMap<String, u64>,
        dirty: bool,
        changed: Instant,
    }
    let mut dirs: HashMap<PathBuf, Dir> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut open = true;
    loop {
        tokio::select! {
            msg = landed.recv(), if open => match msg {
                Some(path) => {
                    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { continue };
                    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    let d = dirs
                        .entry(dir.to_path_buf())
                        .or_insert_with(|| Dir { known: HashMap::new(), dirty: false, changed: Instant::now() });
                    d.known.insert(name.to_string_lossy().into_owned(), size);
                    d.dirty = true;
                    d.changed = Instant::now();
                }
                None => open = false,
            },
            _ = tick.tick() => {}
        }
        for (dir, d) in dirs.iter_mut() {
            if !d.dirty || (open && d.changed.elapsed() < INDEX_QUIET) {
                continue;
            }
            match write_index(&s3, &naming, &filter, &opts, dir, &mut d.known).await {
                Ok(Some((key, n))) => {
                    tracing::info!("indexed {n} files of {} in {key}", dir.display());
                    d.dirty = false;
                }
                // No data file to write an index beside (1.2.1 indexed
                // only sstables): nothing owed.
                Ok(None) => d.dirty = false,
                Err(e) => {
                    tracing::error!("index of {}: {e}; will retry", dir.display());
                    // Back off: wait another quiet period.
                    d.changed = Instant::now();
                    if !open {
                        continue;
                    }
                }
            }
        }
        if !open {
            // Shutting down: one attempt each, then report what is owed.
            return dirs.values().filter(|d| d.dirty).count();
        }
    }
}

/// List the directory's files that are in S3 (checking those this run has
/// not seen with a HEAD) and write the index beside its newest data file.
/// `Ok(None)` when the directory has no data file to anchor an index.
async fn write_index(
    s3: &S3,
    naming: &KeyNaming,
    filter: &Filter,
    opts: &PutOptions,
    dir: &Path,
    known: &mut HashMap<String, u64>,
) -> Result<Option<(String, usize)>, String> {
    let d = dir.to_path_buf();
    // A directory that cannot be read must not produce an empty index.
    let entries = tokio::task::spawn_blocking(move || {
        std::fs::read_dir(&d).map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.path())
                .collect::<Vec<_>>()
        })
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut names = Vec::new();
    let mut anchor: Option<(std::time::SystemTime, PathBuf)> = None;
    for path in entries.iter().filter(|p| filter.accepts(p)) {
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        if known.get(&name) != Some(&meta.len()) {
            match s3.head(&naming.key(path)).await {
                Ok(Some(h)) if h.size == meta.len() => {
                    known.insert(name.clone(), h.size);
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
