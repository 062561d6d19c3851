//! Restored files put in place in batches, each batch durable first.
//!
//! A restored file is written and verified under a temporary name; it
//! takes its own name only once it is on disk, so a kill or a crash at
//! any point leaves under a final name only files that are whole and
//! were checked against their `md5sum`. Rather than one `fsync` per file
//! (each waits for a journal commit of its own: a thousand small files
//! took three seconds that way), verified files wait here and a batch is
//! made durable by one `syncfs` of the target's filesystem, then renamed
//! into place, on a blocking thread while the downloads go on; a last
//! `syncfs` makes the renames durable before the directory is reported
//! restored ([`crate::host::durable`]).

use std::sync::Arc;

use crate::host::safe_path::SafeDir;

/// A batch is landed once this many bytes wait, or this many files:
/// enough to make one flush worth it, few enough that a restore cut off
/// late keeps most of what it did. The files stay open until their batch
/// lands: two batches per directory at most (one landing, one filling),
/// with `-t` more being written; tableslurp raises its soft limit of open
/// files to the hard one for that ([`crate::host::limits`]).
const BATCH_BYTES: u64 = 1 << 30;
const BATCH_FILES: usize = 256;

/// The name a file is written and verified under before it lands. No
/// name in an index may have this form (`is_temporary`), so no entry can
/// take or replace another's temporary.
pub(crate) fn temporary(name: &str) -> String {
    format!(".{name}.tableslurp")
}

/// Whether `name` has the form of a temporary (`.X.tableslurp`).
pub(crate) fn is_temporary(name: &str) -> bool {
    name.len() > ".tableslurp".len() + 1 && name.starts_with('.') && name.ends_with(".tableslurp")
}

/// A verified file waiting: its temporary name, its own name, and the
/// open file (whose own write errors its data sync reports).
struct Waiting {
    tmp: String,
    name: String,
    file: std::fs::File,
}

/// Each name of a batch with how it ended.
pub(crate) type Landed = Vec<(String, Result<(), LandError>)>;

/// Verified files of one target directory waiting to be put in place,
/// and the batch being put in place now, if any: it lands on a blocking
/// thread while the downloads go on and the next batch fills.
pub(crate) struct Landing {
    into: Arc<SafeDir>,
    waiting: Vec<Waiting>,
    bytes: u64,
    under_way: Option<UnderWay>,
}

/// A batch landing: its names (for the report if its thread is lost) and
/// the thread's result.
struct UnderWay {
    names: Vec<String>,
    task: tokio::task::JoinHandle<Landed>,
}

/// Why a verified file did not take its name.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LandError {
    #[error("flushing to disk: {0}")]
    Flush(#[source] std::io::Error),
    #[error("renaming into place: {0}")]
    Rename(#[source] std::io::Error),
}

impl Landing {
    pub(crate) fn new(into: Arc<SafeDir>) -> Self {
        Landing {
            into,
            waiting: Vec::new(),
            bytes: 0,
            under_way: None,
        }
    }

    /// A verified file of `size` bytes, open as `file`, waiting under
    /// `tmp` for `name`; true when the batch is due.
    pub(crate) fn wait(
        &mut self,
        tmp: String,
        name: String,
        file: std::fs::File,
        size: u64,
    ) -> bool {
        self.waiting.push(Waiting { tmp, name, file });
        self.bytes += size;
        self.bytes >= BATCH_BYTES || self.waiting.len() >= BATCH_FILES
    }

    /// The waiting files sent on their way to their names, in the
    /// background; what the batch before them did, once it is done (it is
    /// waited for: one batch lands at a time, so at most two batches of
    /// files are open).
    pub(crate) async fn start(&mut self) -> Landed {
        let before = self.landed().await;
        let waiting = std::mem::take(&mut self.waiting);
        self.bytes = 0;
        if !waiting.is_empty() {
            let names = waiting.iter().map(|w| w.name.clone()).collect();
            let into = self.into.clone();
            let task = tokio::task::spawn_blocking(move || land(&into, waiting));
            self.under_way = Some(UnderWay { names, task });
        }
        before
    }

    /// What the batch under way did, once it is done (nothing if none is).
    async fn landed(&mut self) -> Landed {
        let Some(UnderWay { names, task }) = self.under_way.take() else {
            return Vec::new();
        };
        match task.await {
            Ok(done) => done,
            // The blocking pool is gone (the runtime is shutting down).
            Err(e) => names
                .into_iter()
                .map(|n| {
                    (
                        n,
                        Err(LandError::Flush(std::io::Error::other(e.to_string()))),
                    )
                })
                .collect(),
        }
    }

    /// Every waiting file put in place and the renames made durable (also
    /// after a run that found everything in place: a run cut off before
    /// its last flush may have left them in memory): what each batch not
    /// yet reported did, and the last flush's error if it failed. After
    /// this the directory may be reported restored.
    pub(crate) async fn finish(&mut self) -> (Landed, std::io::Result<()>) {
        let mut done = self.start().await;
        done.extend(self.landed().await);
        let into = self.into.clone();
        let sealed = tokio::task::spawn_blocking(move || into.sync_filesystem())
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        (done, sealed)
    }
}

/// A batch made durable, then each file renamed over its name (blocking).
/// One `syncfs` writes the whole batch out; then each file's own data sync
/// (cheap: nothing is left to write) reports that file's write errors,
/// which `syncfs` reports only once per descriptor, and before Linux 5.8
/// not at all. A file that does not take its name loses its temporary.
fn land(into: &SafeDir, waiting: Vec<Waiting>) -> Landed {
    let flushed = into.sync_filesystem();
    waiting
        .into_iter()
        .map(|w| {
            let r = match &flushed {
                Err(e) => Err(LandError::Flush(std::io::Error::new(
                    e.kind(),
                    e.to_string(),
                ))),
                Ok(()) => w
                    .file
                    .sync_data()
                    .map_err(LandError::Flush)
                    .and_then(|()| into.rename(&w.tmp, &w.name).map_err(LandError::Rename)),
            };
            if r.is_err() {
                let _ = into.remove(&w.tmp);
            }
            (w.name, r)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use crate::host::safe_path::SafeDir;

    /// A verified file of the batch: its temporary written, still open.
    fn verified(dir: &SafeDir, name: &str) -> (String, std::fs::File) {
        let tmp = super::temporary(name);
        let mut f = dir.create_fresh(&tmp).unwrap();
        f.write_all(name.as_bytes()).unwrap();
        (tmp, f)
    }

    #[tokio::test]
    async fn a_batch_lands_in_the_background_and_every_file_is_reported_once() {
        let d = tempfile::tempdir().unwrap();
        let dir = Arc::new(SafeDir::open(d.path()).unwrap());
        let mut landing = super::Landing::new(dir.clone());
        let mut reported = Vec::new();
        for i in 0..super::BATCH_FILES + 3 {
            let name = format!("f{i}");
            let (tmp, f) = verified(&dir, &name);
            if landing.wait(tmp, name, f, 1) {
                // The first batch is sent; nothing before it to report.
                assert!(landing.start().await.is_empty());
            }
        }
        // A name taken by a directory: that file alone fails to land.
        std::fs::create_dir(d.path().join("blocked")).unwrap();
        std::fs::write(d.path().join("blocked/x"), b"x").unwrap();
        let (tmp, f) = verified(&dir, "blocked");
        landing.wait(tmp, "blocked".into(), f, 1);
        let (landed, sealed) = landing.finish().await;
        sealed.unwrap();
        reported.extend(landed);
        assert_eq!(reported.len(), super::BATCH_FILES + 4);
        for (name, r) in &reported {
            if name == "blocked" {
                assert!(matches!(r, Err(super::LandError::Rename(_))), "{r:?}");
            } else {
                r.as_ref().unwrap();
                assert_eq!(std::fs::read(d.path().join(name)).unwrap(), name.as_bytes());
            }
        }
        // No temporary is left, the failed one's included.
        let left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| super::is_temporary(n))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn temporaries_have_a_form_no_index_entry_may_take() {
        let t = super::temporary("a-Data.db");
        assert_eq!(t, ".a-Data.db.tableslurp");
        assert!(super::is_temporary(&t));
        assert!(!super::is_temporary("a-Data.db"));
        assert!(!super::is_temporary(".tableslurp"));
        assert!(!super::is_temporary("x.tableslurp"));
    }
}
