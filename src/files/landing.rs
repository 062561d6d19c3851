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
/// late keeps most of what it did.
const BATCH_BYTES: u64 = 1 << 30;
const BATCH_FILES: usize = 4096;

/// Verified files of one target directory waiting to be put in place.
pub(crate) struct Landing {
    into: Arc<SafeDir>,
    /// (temporary name, final name)
    waiting: Vec<(String, String)>,
    bytes: u64,
    landed: usize,
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
            landed: 0,
        }
    }

    /// A verified file of `size` bytes waiting under `tmp` for `name`;
    /// true when the batch is due.
    pub(crate) fn wait(&mut self, tmp: String, name: String, size: u64) -> bool {
        self.waiting.push((tmp, name));
        self.bytes += size;
        self.bytes >= BATCH_BYTES || self.waiting.len() >= BATCH_FILES
    }

    /// The waiting files made durable (one `syncfs`), then each renamed
    /// over its name: each name with how it ended. A failed flush fails
    /// the whole batch (which file's bytes were lost cannot be told), and
    /// a file that does not take its name loses its temporary.
    pub(crate) async fn land(&mut self) -> Vec<(String, Result<(), LandError>)> {
        let waiting = std::mem::take(&mut self.waiting);
        self.bytes = 0;
        if waiting.is_empty() {
            return Vec::new();
        }
        let names: Vec<String> = waiting.iter().map(|(_, n)| n.clone()).collect();
        let into = self.into.clone();
        let done = tokio::task::spawn_blocking(move || {
            let flushed = into.sync_filesystem();
            waiting
                .into_iter()
                .map(|(tmp, name)| {
                    let r = match &flushed {
                        Err(e) => Err(LandError::Flush(std::io::Error::new(
                            e.kind(),
                            e.to_string(),
                        ))),
                        Ok(()) => into.rename(&tmp, &name).map_err(LandError::Rename),
                    };
                    if r.is_err() {
                        let _ = into.remove(&tmp);
                    }
                    (name, r)
                })
                .collect::<Vec<_>>()
        })
        .await;
        match done {
            Ok(done) => {
                self.landed += done.iter().filter(|(_, r)| r.is_ok()).count();
                done
            }
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

    /// The renames made durable, when any file was landed.
    pub(crate) async fn seal(&self) -> std::io::Result<()> {
        if self.landed == 0 {
            return Ok(());
        }
        let into = self.into.clone();
        tokio::task::spawn_blocking(move || into.sync_filesystem())
            .await
            .map_err(std::io::Error::other)?
    }
}
