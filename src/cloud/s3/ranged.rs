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

use super::read::{content_range, write_body, GET_OBJECT};
use super::{Call, S3};
use crate::cloud::{cloud_error, CloudError};
use crate::digest::Md5;

/// How a large object is fetched: in parts of `part` bytes, `per_file`
/// at once, each part after the first also holding one of `streams`
/// (shared by every download, so many large files at once open a bounded
/// number of connections).
#[derive(Debug, Clone)]
pub(crate) struct Ranges {
    pub part: u64,
    pub per_file: usize,
    pub streams: Arc<Semaphore>,
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
        etag: Option<&str>,
        out: &std::fs::File,
        file: &Path,
        ranges: &Ranges,
        total: u64,
        hash: Md5,
    ) -> Result<Md5, CloudError> {
        let part = ranges.part.max(1);
        let starts: Vec<u64> = (part..total).step_by(part as usize).collect();
        let range = |i: usize| (starts[i], (starts[i] + part).min(total));
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
            while next < starts.len() && running.len() < per_file && next < hashed + 2 * per_file {
                let permit = match ranges.streams.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) if !running.is_empty() || hashing.is_some() => break,
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
                    let r = self.get_range(key, etag, out, file, from, to, permit).await;
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
                    let (h, r) = h.map_err(|_| shutting_down())?;
                    r.map_err(|e| read_back_error(file, e))?;
                    hash = Some(h);
                    hashed += 1;
                }
            }
        }
        match hash {
            Some(h) if hashed == starts.len() => Ok(h),
            _ => Err(CloudError::Transport {
                op: GET_OBJECT,
                message: format!("{key}: {hashed} of {} ranges hashed", starts.len()),
            }),
        }
    }

    /// Bytes `from..to` of `key` (of the version `etag`) written at `from`
    /// in `out`, under the stall watch.
    // One range of one object into its file: a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    async fn get_range(
        &self,
        key: &str,
        etag: Option<&str>,
        out: &std::fs::File,
        file: &Path,
        from: u64,
        to: u64,
        _stream: OwnedSemaphorePermit,
    ) -> Result<(), CloudError> {
        let written = self
            .call(Call::new(GET_OBJECT, key), |progress| {
                let req = self
                    .client
                    .get_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .range(format!("bytes={from}-{}", to - 1))
                    .set_if_match(etag.map(|e| format!("\"{e}\"")));
                async move {
                    let r = match req.send().await {
                        Ok(r) => r,
                        Err(e) => {
                            let e = cloud_error(GET_OBJECT, e);
                            return Err(if e.code() == Some("PreconditionFailed") {
                                CloudError::Transport {
                                    op: GET_OBJECT,
                                    message: format!(
                                        "{key} changed in S3 during the download (its ETag is no longer {})",
                                        etag.unwrap_or("")
                                    ),
                                }
                            } else {
                                e
                            });
                        }
                    };
                    progress.stamp();
                    let sent = r.content_range.as_deref().and_then(content_range);
                    if sent.map(|(a, b, _)| (a, b + 1)) != Some((from, to)) {
                        return Err(CloudError::Transport {
                            op: GET_OBJECT,
                            message: format!(
                                "asked for bytes {from}-{} of {key}, S3 sent {}",
                                to - 1,
                                r.content_range.as_deref().unwrap_or("the whole object")
                            ),
                        });
                    }
                    write_body(r.body, out, from, None, &progress, file).await
                }
            })
            .await?;
        if written != to - from {
            return Err(CloudError::Transport {
                op: GET_OBJECT,
                message: format!(
                    "bytes {from}-{} of {key}: {written} of {} arrived",
                    to - 1,
                    to - from
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
