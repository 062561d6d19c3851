//! tablesnap's work queue: bounded, a path waiting in it is not queued
//! twice, and each entry says what is known of its key in S3 (so a file
//! that is certainly new costs one PUT, not a HEAD and a PUT). Workers
//! hold only the [`Intake`]; dropping every [`Queue`] closes it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::keys::KeyNaming;
use super::upload::Seen;
use crate::cloud::s3::S3;

/// One file to check and upload.
#[derive(Debug)]
pub(super) struct Job {
    pub path: PathBuf,
    pub seen: Seen,
    /// Failed attempts before this one (a retry's backoff grows with it).
    pub attempt: u32,
}

/// The producing end.
#[derive(Clone)]
pub(super) struct Queue {
    tx: mpsc::Sender<Job>,
    waiting: Arc<Mutex<HashSet<PathBuf>>>,
    capacity: usize,
}

/// The workers' end.
#[derive(Clone)]
pub(super) struct Intake {
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    waiting: Arc<Mutex<HashSet<PathBuf>>>,
}

pub(super) fn bounded(capacity: usize) -> (Queue, Intake) {
    let (tx, rx) = mpsc::channel(capacity);
    let waiting: Arc<Mutex<HashSet<PathBuf>>> = Arc::default();
    (
        Queue {
            tx,
            waiting: waiting.clone(),
            capacity,
        },
        Intake {
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
            waiting,
        },
    )
}

impl Queue {
    /// Wait for room (scans).
    pub(super) async fn push(&self, path: PathBuf, seen: Seen) {
        let job = Job {
            path,
            seen,
            attempt: 0,
        };
        if self.fresh(&job.path) && self.tx.send(job).await.is_err() {
            tracing::debug!("queue closed");
        }
    }

    /// Without waiting (the event loop); `false` if the queue is full.
    pub(super) fn try_push(&self, path: PathBuf, seen: Seen) -> bool {
        self.try_push_job(Job {
            path,
            seen,
            attempt: 0,
        })
    }

    /// A file to try again after `attempt` failures (its S3 copy may be
    /// there: one HEAD first).
    pub(super) fn try_push_retry(&self, path: PathBuf, attempt: u32) -> bool {
        self.try_push_job(Job {
            path,
            seen: Seen::Maybe,
            attempt,
        })
    }

    fn try_push_job(&self, job: Job) -> bool {
        if !self.fresh(&job.path) {
            return true;
        }
        match self.tx.try_send(job) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j)) => {
                self.lock().remove(&j.path);
                false
            }
        }
    }

    /// Whether half of it is free (a rescan may start).
    pub(super) fn has_room(&self) -> bool {
        self.tx.capacity() > self.capacity / 2
    }

    /// How many paths wait.
    pub(super) fn waiting(&self) -> usize {
        self.lock().len()
    }

    fn fresh(&self, path: &Path) -> bool {
        self.lock().insert(path.to_path_buf())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<PathBuf>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Intake {
    /// How many paths wait (left unread when the workers stop).
    pub(super) fn waiting(&self) -> usize {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The next job; `None` once the queue is closed and empty.
    pub(super) async fn next(&self) -> Option<Job> {
        let job = self.rx.lock().await.recv().await?;
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&job.path);
        Some(job)
    }
}

/// Queue a scan's files (by directory), each directory's after one
/// listing of its prefix: a file whose key is not listed is new (no HEAD
/// before its PUT); a listed one is compared by a HEAD. A listing that
/// fails leaves every file of the directory to its HEAD.
pub(super) async fn push_scanned(
    queue: &Queue,
    by_dir: Vec<(PathBuf, Vec<PathBuf>)>,
    s3: &S3,
    naming: &KeyNaming,
    indexer: Option<&tokio::sync::mpsc::UnboundedSender<super::index_writer::Landing>>,
) {
    for (dir, files) in by_dir {
        // Told before the files are queued, so none can land before the
        // indexer knows it is one of the batch.
        if let Some(tx) = indexer {
            let names = files
                .iter()
                .filter_map(|f| f.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect();
            let _ = tx.send(super::index_writer::Landing::Scanned(dir.clone(), names));
        }
        let listed: Option<HashSet<String>> =
            match s3.list(&naming.dir_prefix(&dir), Some("/")).await {
                Ok((objects, _)) => Some(objects.into_iter().map(|o| o.key).collect()),
                Err(e) => {
                    tracing::warn!("listing {}: {e}; each file gets a HEAD", dir.display());
                    None
                }
            };
        for f in files {
            let seen = match &listed {
                Some(keys) if !keys.contains(&naming.key(&f)) => Seen::Absent,
                _ => Seen::Maybe,
            };
            queue.push(f, seen).await;
        }
    }
}
