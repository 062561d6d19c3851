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
use super::{md5_file, read_with_md5, Md5Sum};
use crate::cloud::s3::{part_size, Content, ObjectHead, PutOptions, S3};
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

/// What is known of a file's key in S3 before it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// The file just appeared (an inotify event), or its directory's
    /// listing has no such key: it is uploaded without a HEAD first
    /// (at worst an object already there is written again with the same
    /// bytes).
    Absent,
    /// Listed, or nothing known (a retry): one HEAD compares size and
    /// `md5sum` first.
    Maybe,
}

/// Files up to this size are read once into memory and uploaded from
/// there (one read of the disk); larger ones are read for their MD5 and
/// then streamed (the second read normally comes from the page cache).
/// Memory: at most this per upload worker (40 MiB at the default 10).
pub(crate) const IN_MEMORY_MAX: u64 = 4 << 20;

/// A file's bytes as they go up: in memory when small, else from disk.
enum Body {
    Memory(Vec<u8>),
    Disk { size: u64 },
}

impl Uploader {
    pub(crate) async fn upload(&self, path: &Path, seen: Seen) -> Result<Outcome, UploadError> {
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
        if seen == Seen::Maybe {
            if let Some(known) = self.digests.lookup(path, &fp) {
                let h = self.s3.head(&key).await?;
                if same(h.as_ref(), fp.size, &known) {
                    return Ok(Outcome::Present { read: false });
                }
                head = Some(h);
            }
        }
        let Some((body, sum)) = self.read(path, fp).await? else {
            return Ok(Outcome::Vanished);
        };
        let after = tokio::fs::symlink_metadata(path).await.ok();
        if after.map(|m| Fingerprint::of(&m)) != Some(fp) {
            return Ok(Outcome::Skipped("changed while being read".into()));
        }
        let size = fp.size;
        if seen == Seen::Maybe {
            let head = match head {
                Some(h) => h,
                None => self.s3.head(&key).await?,
            };
            if same(head.as_ref(), size, &sum.hex) {
                self.digests.remember(path, fp, &sum.hex);
                return Ok(Outcome::Present { read: true });
            }
            if let Some(head) = head {
                tracing::warn!(
                    "{key} differs in S3 (size {} vs {size}); uploading the local file",
                    head.size
                );
            }
        }
        let (user, group) = names(meta.uid(), meta.gid());
        let metadata = HashMap::from([
            ("md5sum".to_string(), sum.hex.clone()),
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
        let result = match body {
            Body::Memory(bytes) => {
                let content = Content {
                    content_type: None,
                    md5: Some(&sum.base64),
                };
                self.s3
                    .put_bytes(&key, bytes, content, &metadata, &self.opts)
                    .await
            }
            Body::Disk { size } if size <= self.max_single => {
                self.s3
                    .put_file(&key, path, &sum.base64, &metadata, &self.opts)
                    .await
            }
            Body::Disk { size } => {
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
            }
        };
        match result {
            Ok(()) => {
                self.digests.remember(path, fp, &sum.hex);
                Ok(Outcome::Uploaded { key, size })
            }
            // Deleted while uploading: the object was not completed.
            Err(_) if !path.exists() => Ok(Outcome::Vanished),
            Err(e) => Err(e.into()),
        }
    }

    /// The file's MD5, and its bytes when small; `None` if it vanished.
    async fn read(
        &self,
        path: &Path,
        fp: Fingerprint,
    ) -> Result<Option<(Body, Md5Sum)>, UploadError> {
        let p = path.to_path_buf();
        let read = tokio::task::spawn_blocking(move || {
            if fp.size <= IN_MEMORY_MAX {
                read_with_md5(&p).map(|(bytes, sum)| (Body::Memory(bytes), sum))
            } else {
                md5_file(&p).map(|(sum, size)| (Body::Disk { size }, sum))
            }
        })
        .await?;
        match read {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(UploadError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}
