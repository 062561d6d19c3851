//! Restored files put in place in batches, each batch durable first.
//!
//! A restored file is written and verified under a temporary name; it
//! takes its own name only once it is on disk, so a kill or a crash at
//! any point leaves under a final name only files that are whole and
//! were checked against their `md5sum`. Rather than one `fsync` per file
//! (each waits for a journal commit of its own: a thousand small files
//! took three seconds that way), verified files wait here and a batch is
//! made durable by one `syncfs` of the target's filesystem, then renamed
//! into place; a last `syncfs` makes the renames durable before the
//! directory is reported restored ([`crate::host::durable`]).

use std::sync::Arc;

use crate::host::safe_path::SafeDir;

/// A batch is landed once this many bytes wait, or this many files:
/// enough to make one flush worth it, few enough that a restore cut off
/// late keeps most of what it did, and that the files kept open until
/// their batch lands stay well under the usual limit of 1,024
/// descriptors (with `-t` more being written).
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

/// Verified files of one target directory waiting to be put in place.
pub(crate) struct Landing {
    into: Arc<SafeDir>,
    waiting: Vec<Waiting>,
    bytes: u64,
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

    /// The waiting files made durable, then each renamed over its name:
    /// each name with how it ended. One `syncfs` writes the whole batch
    /// out; then each file's own data sync (cheap: nothing is left to
    /// write) reports that file's write errors, which `syncfs` reports
    /// only once per descriptor, and before Linux 5.8 not at all. A file
    /// that does not take its name loses its temporary.
    pub(crate) async fn land(&mut self) -> Vec<(String, Result<(), LandError>)> {
        let waiting = std::mem::take(&mut self.waiting);
        self.bytes = 0;
        if waiting.is_empty() {
            return Vec::new();
        }
        let names: Vec<String> = waiting.iter().map(|w| w.name.clone()).collect();
        let into = self.into.clone();
        let done = tokio::task::spawn_blocking(move || {
            let flushed = into.sync_filesystem();
            waiting
                .into_iter()
                .map(|w| {
                    let r =
                        match &flushed {
                            Err(e) => Err(LandError::Flush(std::io::Error::new(
                                e.kind(),
                                e.to_string(),
                            ))),
                            Ok(()) => w.file.sync_data().map_err(LandError::Flush).and_then(|()| {
                                into.rename(&w.tmp, &w.name).map_err(LandError::Rename)
                            }),
                        };
                    if r.is_err() {
                        let _ = into.remove(&w.tmp);
                    }
                    (w.name, r)
                })
                .collect::<Vec<_>>()
        })
        .await;
        match done {
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

    /// The renames made durable (also after a run that found everything
    /// in place: a run cut off before its last flush may have left them
    /// in memory).
    pub(crate) async fn seal(&self) -> std::io::Result<()> {
        let into = self.into.clone();
        tokio::task::spawn_blocking(move || into.sync_filesystem())
            .await
            .map_err(std::io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
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
