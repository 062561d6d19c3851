//! The rest of a large object after its first part, in ranges fetched
//! several at once and hashed in order.
//!
//! Each range is written where it belongs as it arrives; the object's MD5
//! is taken over the ranges in order, by reading each back from the file
//! on a blocking thread once every range before it is hashed (from the
//! page cache: the file was just written). Holding out-of-order ranges in
//! memory instead would cost parts-in-flight times the part size per
//! file. Ranges run at most `2 x per_file` ahead of the hash, so a
//! download goes no faster than its file can be hashed and what waits to
//! be hashed stays small.
//!
//! Every range asks for the version of the first reply (`If-Match` its
//! ETag): an object replaced meanwhile fails the download (a transient
//! error: the caller starts the file again), never mixes two versions.
//! All of a file's ranges are futures of the caller's task: when the
//! download ends early, dropping them stops every write into the file.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::body::{content_range, write_body, GET_OBJECT};
use super::{again_if_passing, Call, S3};
use crate::cloud::{cloud_error, CloudError};
use crate::digest::Md5;

/// How a large object is fetched: in parts of `part` bytes, `per_file`
/// at once, each part after the first also holding one of `streams`
/// (shared by every download, so many large files at once open a bounded
/// number of connections); a range that fails for a passing reason is
/// asked for again, up to `attempts` times in all, rather than the whole
/// file.
#[derive(Debug, Clone)]
pub(crate) struct Ranges {
    pub part: u64,
    pub per_file: usize,
    pub streams: Arc<Semaphore>,
    pub attempts: u32,
}

/// Read back this much of a range at a time to hash it.
const HASH_READ: usize = 1 << 20;

impl S3 {
    /// Bytes `part..total` of `key` into `out` (bytes `0..part` are
    /// there, hashed into `hash`): the hash of the whole object.
    // The object, its file and the plan: a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn rest_in_ranges(
        &self,
        key: &str,
        etag: &str,
        out: &std::fs::File,
        file: &Path,
        ranges: &Ranges,
        total: u64,
        hash: Md5,
    ) -> Result<Md5, CloudError> {
        let part = ranges.part.max(1);
        // Range i (from 0) is the object's part i + 1.
        let count =
            usize::try_from(total.saturating_sub(part).div_ceil(part)).unwrap_or(usize::MAX);
        let range = |i: usize| {
            let from = part.saturating_mul(i as u64 + 1);
            (from, from.saturating_add(part).min(total))
        };
        let reader = out.try_clone().map_err(|e| read_back_error(file, e))?;
        let reader = Arc::new(reader);
        let per_file = ranges.per_file.max(1);
        let mut running = FuturesUnordered::new();
        let mut written = BTreeSet::new();
        let mut hash = Some(hash);
        let mut hashing: Option<tokio::task::JoinHandle<(Md5, std::io::Result<()>)>> = None;
        let (mut next, mut hashed) = (0usize, 0usize);
        loop {
            // More ranges under way: per_file at a time, not too far ahead
            // of the hash, each with a stream of the shared budget (waited
            // for only when none of this file's is under way).
            while next < count && running.len() < per_file && next < hashed + 2 * per_file {
                let permit = match ranges.streams.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_)
                        if !running.is_empty()
                            || hashing.is_some()
                            || written.contains(&hashed) =>
                    {
                        break
                    }
                    Err(_) => ranges
                        .streams
                        .clone()
                        .acquire_owned()
                        .await
                        .map_err(|_| shutting_down())?,
                };
                let (from, to) = range(next);
                let i = next;
                running.push(async move {
                    let r = self
                        .get_range(
                            key,
                            etag,
                            out,
                            file,
                            (from, to, total),
                            ranges.attempts,
                            permit,
                        )
                        .await;
                    (i, r)
                });
                next += 1;
            }
            if hashing.is_none() && written.remove(&hashed) {
                let (from, to) = range(hashed);
                let (reader, mut h) = (reader.clone(), hash.take().unwrap_or_default());
                hashing = Some(tokio::task::spawn_blocking(move || {
                    let r = hash_back(&reader, from, to, &mut h);
                    (h, r)
                }));
            }
            if running.is_empty() && hashing.is_none() {
                break;
            }
            tokio::select! {
                Some((i, r)) = running.next(), if !running.is_empty() => {
                    r?;
                    written.insert(i);
                }
                h = async {
                    match hashing.as_mut() {
                        Some(h) => h.await,
                        None => std::future::pending().await,
                    }
                }, if hashing.is_some() => {
                    hashing = None;
                    let (h, r) = h.map_err(|e| CloudError::Transport {
                        op: GET_OBJECT,
                        message: format!("hashing {}: {e}", file.display()),
                    })?;
                    r.map_err(|e| read_back_error(file, e))?;
                    hash = Some(h);
                    hashed += 1;
                }
            }
        }
        match hash {
            Some(h) if hashed == count => Ok(h),
            _ => Err(CloudError::Transport {
                op: GET_OBJECT,
                message: format!("{key}: {hashed} of {count} ranges hashed"),
            }),
        }
    }

    /// Bytes `from..to` of `key` (of `total`, the version `etag`) written
    /// at `from` in `out`, under the stall watch; asked for again after a
    /// passing failure (a stall is `call`'s to try again). Rewriting the
    /// same bytes at the same place is harmless, and nothing is hashed
    /// before the range is whole.
    // One range of one object into its file: a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    async fn get_range(
        &self,
        key: &str,
        etag: &str,
        out: &std::fs::File,
        file: &Path,
        (from, to, total): (u64, u64, u64),
        attempts: u32,
        _stream: OwnedSemaphorePermit,
    ) -> Result<(), CloudError> {
        let what = format!("bytes {from}-{} of {key}", to - 1);
        again_if_passing(attempts, &what, || {
            self.get_range_once(key, etag, out, file, (from, to, total))
        })
        .await
        .map_err(|e| {
            // Another version now: the whole file again (the caller).
            if e.code() == Some("PreconditionFailed") {
                CloudError::Transport {
                    op: GET_OBJECT,
                    message: format!(
                        "{key} changed in S3 during the download (its ETag is no longer {etag})"
                    ),
                }
            } else {
                e
            }
        })
    }

    /// One try of [`S3::get_range`]: the reply must be exactly the range
    /// asked for, of an object of `total` bytes.
    async fn get_range_once(
        &self,
        key: &str,
        etag: &str,
        out: &std::fs::File,
        file: &Path,
        (from, to, total): (u64, u64, u64),
    ) -> Result<(), CloudError> {
        let len = to - from;
        let written = self
            .call(Call::new(GET_OBJECT, key), |progress| {
                let req = self
                    .client
                    .get_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .range(format!("bytes={from}-{}", to - 1))
                    .if_match(format!("\"{etag}\""));
                async move {
                    let r = req
                        .send()
                        .await
                        .map_err(|e| cloud_error(GET_OBJECT, e))?;
                    progress.stamp();
                    let sent = r.content_range.as_deref().and_then(content_range);
                    let length = r.content_length.and_then(|n| u64::try_from(n).ok());
                    if sent != Some((from, to - 1, total)) || length != Some(len) {
                        return Err(CloudError::Transport {
                            op: GET_OBJECT,
                            message: format!(
                                "asked for bytes {from}-{} of {total} of {key}, S3 sent {} ({} bytes)",
                                to - 1,
                                r.content_range.as_deref().unwrap_or("the whole object"),
                                length.map_or("unknown".into(), |n| n.to_string())
                            ),
                        });
                    }
                    write_body(r.body, out, from, Some(len), None, &progress, file).await
                }
            })
            .await?;
        if written != len {
            return Err(CloudError::Transport {
                op: GET_OBJECT,
                message: format!(
                    "bytes {from}-{} of {key}: {written} of {len} arrived",
                    to - 1
                ),
            });
        }
        Ok(())
    }
}

/// Bytes `from..to` of `file` read back into `hash` (blocking).
fn hash_back(file: &std::fs::File, from: u64, to: u64, hash: &mut Md5) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; HASH_READ];
    let mut at = from;
    while at < to {
        let n = ((to - at) as usize).min(HASH_READ);
        file.read_exact_at(&mut buf[..n], at)?;
        hash.update(&buf[..n]);
        at += n as u64;
    }
    Ok(())
}

fn read_back_error(file: &Path, e: std::io::Error) -> CloudError {
    CloudError::Transport {
        op: GET_OBJECT,
        message: format!("reading back {} to hash it: {e}", file.display()),
    }
}

fn shutting_down() -> CloudError {
    CloudError::Transport {
        op: GET_OBJECT,
        message: "shutting down".into(),
    }
}
