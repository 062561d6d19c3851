//! One file to S3: stat, MD5 (from the digest record when the file is
//! unchanged since it was read, else streamed from disk), HEAD (same size
//! and md5 means it is there already), then a single streamed PUT or a
//! multipart upload. Files that vanish on the way (compaction) are
//! skipped, not errors.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::digests::{Digests, Fingerprint};
use super::keys::{stat_json, KeyNaming};
use super::md5_file;
use crate::cloud::s3::{part_size, ObjectHead, PutOptions, S3};
use crate::cloud::CloudError;
use crate::host::users;

/// How a file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Uploaded {
        key: String,
        size: u64,
    },
    /// S3 already holds it (same size and md5); `read` says whether the
    /// file was read for its MD5 (else the digest record had it).
    Present {
        read: bool,
    },
    /// Gone before it could be read (compaction): nothing to do.
    Vanished,
    /// Not a regular file, or it changed while being read (it is not
    /// finished; its close or rename will bring it back).
    Skipped(String),
}

/// Why a file did not get to S3 (the daemon retries it later).
#[derive(Debug, thiserror::Error)]
pub(crate) enum UploadError {
    /// `stat` failed for a reason other than the file being gone.
    #[error("{}: {source}", .path.display())]
    Stat {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading the file for its MD5 failed.
    #[error("reading {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The blocking MD5 task panicked or was cancelled.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
    /// The HEAD or the upload.
    #[error(transparent)]
    Cloud(#[from] CloudError),
}

pub(crate) struct Uploader {
    pub s3: S3,
    pub naming: KeyNaming,
    pub opts: PutOptions,
    /// Larger files go up in parts.
    pub max_single: u64,
    pub chunk: u64,
    /// Parts in flight across all files (memory stays bounded by it).
    pub parts: Arc<Semaphore>,
    /// MD5s of files read before, by fingerprint.
    pub digests: Arc<Digests>,
}

fn names(uid: u32, gid: u32) -> (Option<String>, Option<String>) {
    (users::user_name(uid), users::group_name(gid))
}

/// Whether the object `head` describes holds bytes of `size` and MD5 `hex`
/// (by tablesnap's `md5sum` metadata).
fn same(head: Option<&ObjectHead>, size: u64, hex: &str) -> bool {
    head.is_some_and(|h| {
        h.size == size && h.metadata.get("md5sum").map(String::as_str) == Some(hex)
    })
}

impl Uploader {
    pub(crate) async fn upload(&self, path: &Path) -> Result<Outcome, UploadError> {
        let meta = match tokio::fs::symlink_metadata(path).await {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Ok(Outcome::Skipped("not a regular file".into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Outcome::Vanished),
            Err(source) => {
                return Err(UploadError::Stat {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let fp = Fingerprint::of(&meta);
        let key = self.naming.key(path);
        // Unchanged since it was read: one HEAD decides, nothing is read.
        let mut head = None;
        if let Some(known) = self.digests.lookup(path, &fp) {
            let h = self.s3.head(&key).await?;
            if same(h.as_ref(), fp.size, &known) {
                return Ok(Outcome::Present { read: false });
            }
            head = Some(h);
        }
        let p = path.to_path_buf();
        let (hex, b64, size) = match tokio::task::spawn_blocking(move || md5_file(&p)).await? {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Outcome::Vanished),
            Err(source) => {
                return Err(UploadError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let after = tokio::fs::symlink_metadata(path).await.ok();
        if size != meta.len() || after.map(|m| Fingerprint::of(&m)) != Some(fp) {
            return Ok(Outcome::Skipped("changed while being read".into()));
        }
        let head = match head {
            Some(h) => h,
            None => self.s3.head(&key).await?,
        };
        if same(head.as_ref(), size, &hex) {
            self.digests.remember(path, fp, &hex);
            return Ok(Outcome::Present { read: true });
        }
        if let Some(head) = head {
            tracing::warn!(
                "{key} differs in S3 (size {} vs {size}); uploading the local file",
                head.size
            );
        }
        let (user, group) = names(meta.uid(), meta.gid());
        let hex_for_record = hex.clone();
        let metadata = HashMap::from([
            ("md5sum".to_string(), hex),
            (
                "stat".to_string(),
                stat_json(
                    meta.uid(),
                    meta.gid(),
                    meta.mode(),
                    user.as_deref(),
                    group.as_deref(),
                ),
            ),
        ]);
        tracing::debug!("uploading {} as {key}", path.display());
        let result = if size <= self.max_single {
            self.s3
                .put_file(&key, path, &b64, &metadata, &self.opts)
                .await
        } else {
            let part = part_size(size, self.chunk);
            self.s3
                .put_file_multipart(
                    &key,
                    path,
                    size,
                    part,
                    &metadata,
                    &self.opts,
                    self.parts.clone(),
                )
                .await
        };
        match result {
            Ok(()) => {
                self.digests.remember(path, fp, &hex_for_record);
                Ok(Outcome::Uploaded { key, size })
            }
            // Deleted while uploading: the object was not completed.
            Err(_) if !path.exists() => Ok(Outcome::Vanished),
            Err(e) => Err(e.into()),
        }
    }
}
