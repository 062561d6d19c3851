//! One file to S3, its bytes read from disk once: a small file into
//! memory and up in one PUT, a large one part by part into a multipart
//! upload, its MD5 computed from the page cache first when all of it is
//! there, else on the way and stamped on the object by a copy inside S3.
//! When S3 may hold it already (a `-B` scan, a retry), the digest record
//! (unchanged since read) or one read for the MD5 and a HEAD (same size
//! and md5sum) decide first. Files that vanish on the way
//! (compaction) are skipped, not errors.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::digest::Md5;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::digests::{Digests, Fingerprint};
use super::keys::{stat_json, KeyNaming};
use super::{
    blocking_until_dropped, md5_file_until, read_exact_until, read_with_md5, sums_if_cached, Md5Sum,
};
use crate::cloud::s3::{part_size, Content, ObjectHead, PartCrc, PutOptions, S3};
use crate::cloud::CloudError;
use crate::host::safe_path::{is_refused_link, Roots};
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
        size: u64,
    },
    /// Gone before it could be read (compaction): nothing to do.
    Vanished,
    /// Not a regular file, or it changed while being read (it is not
    /// finished; its close or rename will bring it back).
    Skipped(String),
    /// Never uploaded, said at error level: a symbolic link on its path
    /// (a link is not followed: the owner of a watched directory could
    /// point one at any file root can read), or a name that is not UTF-8
    /// (S3 keys are: two such names would share one key).
    Refused(String),
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
    /// Objects up to this size get their `md5sum` by one CopyObject,
    /// larger ones by a copy in parts.
    pub max_single: u64,
    /// Part size (raised to stay within S3's 10,000 parts).
    pub chunk: u64,
    /// Parts in flight across all files.
    pub parts: Arc<Semaphore>,
    /// File bytes in memory across all uploads, in KiB (`buffer_budget`).
    pub memory: Arc<Semaphore>,
    /// Large files hashed from the page cache at once (`hashing_slots`).
    pub hashing: Arc<Semaphore>,
    /// MD5s of files read before, by fingerprint.
    pub digests: Arc<Digests>,
    /// Owner and group names by id.
    pub names: Arc<users::NameCache>,
    /// The watched directories: every file is opened through them.
    pub roots: Arc<Roots>,
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

/// Files up to this size (one part at the default part size) are read
/// into memory and go up in one PUT; larger ones in parts.
pub(crate) const IN_MEMORY_MAX: u64 = 8 << 20;

/// File bytes held in memory at once by all uploads together (small files
/// and parts in flight): six 8 MiB parts, enough to keep a link to S3
/// busy. With the binary's own memory, peak RSS stays under 100 MiB
/// whatever the files' sizes (tested on 2 GiB: 95 MiB with a 64 MiB
/// budget in a debug build, too close). A part larger than the budget,
/// for a file above ~470 GiB or a `--multipart-chunk-size` above 48, is
/// let through alone.
pub(crate) const BUFFER_BUDGET: u64 = 48 << 20;

/// Large files hashed from the page cache at once: half the CPUs, at
/// least one. Taken in turn (the semaphore is fair), the first file's
/// upload starts after its own hash, not after everyone's: four 256 MiB
/// files hashed together kept S3 idle for a second on 2 cores.
pub(crate) fn hashing_slots() -> Arc<Semaphore> {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    Arc::new(Semaphore::new((cpus / 2).max(1)))
}

/// The budget, counted in KiB.
pub(crate) fn buffer_budget() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(kib(BUFFER_BUDGET) as usize))
}

fn kib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX)
}

/// What one look at a file found: its `stat`, and for a small file its
/// bytes and MD5 and a second `stat`, all in one blocking call (a
/// thread-pool hop per step cost more CPU than the upload of a 4 KiB
/// file).
enum Local {
    Vanished,
    Skip(&'static str),
    /// Unchanged since it was read: its MD5 from the digest record.
    Known {
        fp: Fingerprint,
        hex: String,
    },
    /// Read into memory (its share of the buffer budget held).
    Small {
        metadata: HashMap<String, String>,
        fp: Fingerprint,
        bytes: Vec<u8>,
        sum: Md5Sum,
        _memory: OwnedSemaphorePermit,
    },
    /// Larger: read part by part as it goes up, from this open file.
    Large {
        metadata: HashMap<String, String>,
        fp: Fingerprint,
        file: std::fs::File,
    },
    /// The buffer budget is spent: wait for this much, then look again.
    Busy(u64),
    /// See [`Outcome::Refused`].
    Refused(String),
}

/// The look itself (blocking). `record`: take a known MD5 from the
/// digest record instead of reading; `held`: budget already waited for;
/// `stop`: raised when the upload is cut off (a read then ends early).
/// The file is opened once, through its watched root without following
/// any link ([`Roots::open_file`]), and everything after (`stat`, the
/// bytes, the re-check) is of that descriptor.
fn look(
    path: &Path,
    roots: &Roots,
    names: &users::NameCache,
    record: Option<&Digests>,
    memory: &Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
    stop: &AtomicBool,
) -> Result<Local, UploadError> {
    if path.to_str().is_none() {
        return Ok(Local::Refused(
            "its name is not UTF-8, and S3 keys are (two such names would share one key): rename it"
                .into(),
        ));
    }
    let file = match roots.open_file(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Local::Vanished),
        Err(e) if is_refused_link(&e) => {
            return Ok(Local::Refused(
                "a symbolic link is on its path, and links are never followed".into(),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            return Ok(Local::Skip("not a regular file"))
        }
        Err(source) => {
            return Err(UploadError::Stat {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(source) => {
            return Err(UploadError::Stat {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let fp = Fingerprint::of(&meta);
    if let Some(hex) = record.and_then(|d| d.lookup(path, &fp)) {
        return Ok(Local::Known { fp, hex });
    }
    let metadata = stat_metadata(names, &meta);
    if fp.size > IN_MEMORY_MAX {
        return Ok(Local::Large { metadata, fp, file });
    }
    let memory = match held {
        Some(m) if m.num_permits() >= kib(fp.size) as usize => m,
        // Grown since the wait: wait again for its new size.
        Some(_) => return Ok(Local::Busy(fp.size)),
        None => match memory.clone().try_acquire_many_owned(kib(fp.size)) {
            Ok(m) => m,
            Err(_) => return Ok(Local::Busy(fp.size)),
        },
    };
    // At most one byte more than its size: a file still being written is
    // not read past its share of the budget.
    let (bytes, sum) = match read_with_md5(&file, path, fp.size + 1, stop) {
        Ok(r) => r,
        Err(source) => return Err(read_error(path, source)),
    };
    if bytes.len() as u64 != fp.size || !has_fingerprint(file.metadata(), fp) {
        return Ok(Local::Skip("changed while being read"));
    }
    Ok(Local::Small {
        metadata,
        fp,
        bytes,
        sum,
        _memory: memory,
    })
}

impl Uploader {
    pub(crate) async fn upload(&self, path: &Path, seen: Seen) -> Result<Outcome, UploadError> {
        let key = self.naming.key(path);
        // Unchanged since it was read: one HEAD decides, nothing is read.
        let mut record = seen == Seen::Maybe;
        let mut head = None;
        let mut held = None;
        let local = loop {
            let (p, roots, names, digests, memory, h) = (
                path.to_path_buf(),
                self.roots.clone(),
                self.names.clone(),
                self.digests.clone(),
                self.memory.clone(),
                held.take(),
            );
            let found = blocking_until_dropped(move |stop| {
                look(
                    &p,
                    &roots,
                    &names,
                    record.then_some(&*digests),
                    &memory,
                    h,
                    stop,
                )
            })
            .await??;
            match found {
                Local::Busy(size) => {
                    held = self.memory.clone().acquire_many_owned(kib(size)).await.ok();
                }
                Local::Known { fp, hex } => {
                    let h = self.s3.head(&key).await?;
                    if same(h.as_ref(), fp.size, &hex) {
                        return Ok(Outcome::Present {
                            read: false,
                            size: fp.size,
                        });
                    }
                    head = Some(h);
                    record = false;
                }
                other => break other,
            }
        };
        let result = match local {
            Local::Vanished => return Ok(Outcome::Vanished),
            Local::Skip(why) => return Ok(Outcome::Skipped(why.into())),
            Local::Refused(why) => return Ok(Outcome::Refused(why)),
            Local::Small {
                metadata,
                fp,
                bytes,
                sum,
                _memory,
            } => self
                .upload_small(&key, fp, seen, head, metadata, bytes, sum)
                .await
                .map(|done| (fp, done)),
            Local::Large {
                metadata,
                fp,
                mut file,
            } => {
                if seen == Seen::Maybe {
                    let head = match head {
                        Some(h) => h,
                        None => self.s3.head(&key).await?,
                    };
                    // Only a copy of the same size with an md5sum can be
                    // the same: read the file for its MD5 then (a new file
                    // is not read twice).
                    if head
                        .as_ref()
                        .is_some_and(|h| h.size == fp.size && h.metadata.contains_key("md5sum"))
                    {
                        let sum;
                        (file, sum) = self.md5(path, file).await?;
                        if !has_fingerprint(file.metadata(), fp) {
                            return Ok(Outcome::Skipped("changed while being read".into()));
                        }
                        if same(head.as_ref(), fp.size, &sum.hex) {
                            self.digests.remember(path, fp, &sum.hex);
                            return Ok(Outcome::Present {
                                read: true,
                                size: fp.size,
                            });
                        }
                    }
                    differs(&key, head.as_ref(), fp.size);
                }
                // Read again from the start for the parts.
                if let Err(source) = std::io::Seek::rewind(&mut file) {
                    return Err(read_error(path, source));
                }
                self.upload_parts(path, file, &key, fp, metadata)
                    .await
                    .map(|done| (fp, done))
            }
            Local::Known { .. } | Local::Busy(_) => unreachable!("looked again above"),
        };
        match result {
            Ok((fp, Some(Done::Uploaded(hex)))) => {
                self.digests.remember(path, fp, &hex);
                Ok(Outcome::Uploaded { key, size: fp.size })
            }
            Ok((fp, Some(Done::Present(hex)))) => {
                self.digests.remember(path, fp, &hex);
                Ok(Outcome::Present {
                    read: true,
                    size: fp.size,
                })
            }
            Ok((_, Some(Done::Changed))) => Ok(Outcome::Skipped("changed while being read".into())),
            Ok((_, None)) => Ok(Outcome::Vanished),
            // Deleted while uploading: the object was not completed.
            Err(_)
                if self
                    .roots
                    .open_file(path)
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) =>
            {
                Ok(Outcome::Vanished)
            }
            Err(e) => Err(e),
        }
    }

    /// A small file already in memory: compared with S3's copy when one
    /// may exist, then one PUT with Content-MD5.
    // The file as read comes in pieces; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    async fn upload_small(
        &self,
        key: &str,
        fp: Fingerprint,
        seen: Seen,
        head: Option<Option<ObjectHead>>,
        mut metadata: HashMap<String, String>,
        bytes: Vec<u8>,
        sum: Md5Sum,
    ) -> Result<Option<Done>, UploadError> {
        if seen == Seen::Maybe {
            let head = match head {
                Some(h) => h,
                None => self.s3.head(key).await?,
            };
            if same(head.as_ref(), fp.size, &sum.hex) {
                return Ok(Some(Done::Present(sum.hex)));
            }
            differs(key, head.as_ref(), fp.size);
        }
        metadata.insert("md5sum".into(), sum.hex.clone());
        tracing::debug!("uploading {key}");
        let content = Content {
            content_type: None,
            md5: Some(&sum.base64),
        };
        self.s3
            .put_bytes(key, bytes, content, &metadata, &self.opts)
            .await?;
        Ok(Some(Done::Uploaded(sum.hex)))
    }

    /// A large file, read from disk once. Just written (the daemon's usual
    /// case), it is still in the page cache: hashed from there first
    /// (`sums_if_cached`, no disk I/O), the object carries its `md5sum`
    /// and storage class from the start, and a part read that differs from
    /// the bytes hashed (a rewrite in place) ends the upload as changed.
    /// Every part carries the CRC32 of what was read for it. Else in
    /// one pass: each part is read once, into the file's MD5 and memory,
    /// and goes up while the next is read (parts in flight bounded by
    /// `parts` and the buffer budget); the whole file's MD5 is known only
    /// at the end, after S3 took the metadata, so the completed object gets
    /// its `md5sum` by a copy onto itself inside S3. Until that copy it has
    /// no `md5sum`, which a restore refuses and a `-B` start uploads again:
    /// a crash in between loses nothing.
    async fn upload_parts(
        &self,
        path: &Path,
        file: std::fs::File,
        key: &str,
        fp: Fingerprint,
        mut metadata: HashMap<String, String>,
    ) -> Result<Option<Done>, UploadError> {
        let part = part_size(fp.size, self.chunk);
        // One open file (the one looked at) for both reads: the hash and
        // the parts are of the same inode even if the path is replaced
        // meanwhile.
        let slot = self.hashing.clone().acquire_owned().await;
        let p = path.to_path_buf();
        let (mut file, hashed) = blocking_until_dropped(move |stop| {
            let _slot = slot;
            let sums = sums_if_cached(&file, &p, fp.size, part, stop);
            (file, sums)
        })
        .await?;
        // The hash from memory is optional: a failed read there leaves it
        // to the one-pass way, which reports errors that persist.
        let cached = match hashed {
            Ok(sums) => sums,
            Err(e) => {
                tracing::debug!("{}: hashing from the page cache: {e}", path.display());
                None
            }
        };
        let opts = match &cached {
            Some(sums) => {
                metadata.insert("md5sum".into(), sums.md5.hex.clone());
                self.opts.clone()
            }
            // The parts go up in STANDARD and the stamp copy gives the
            // object its storage class: S3 refuses to copy from GLACIER or
            // DEEP_ARCHIVE, and overwriting an IA object costs its minimum
            // storage duration. Encryption is the same on both.
            None => PutOptions {
                storage_class: None,
                ..self.opts.clone()
            },
        };
        tracing::debug!(
            "uploading {} as {key} in parts ({})",
            path.display(),
            if cached.is_some() {
                "md5sum known: hashed from the page cache"
            } else {
                "not all in the page cache: md5sum stamped after"
            }
        );
        // The same open file, to see at the end whether it changed.
        let probe = file.try_clone().map_err(|e| read_error(path, e))?;
        let upload = Arc::new(self.s3.start_multipart(key, &metadata, &opts).await?);
        let mut hasher = cached.is_none().then(Md5::new);
        let mut tasks = tokio::task::JoinSet::new();
        let mut failed: Option<UploadError> = None;
        let mut changed = false;
        let count = fp.size.div_ceil(part);
        for n in 0..count {
            let len = part.min(fp.size - n * part);
            let (Ok(slot), Ok(memory)) = (
                self.parts.clone().acquire_owned().await,
                self.memory
                    .clone()
                    .acquire_many_owned(kib(len).min(kib(BUFFER_BUDGET)))
                    .await,
            ) else {
                failed = Some(UploadError::Cloud(CloudError::Transport {
                    op: "UploadPart",
                    message: "shutting down".into(),
                }));
                break;
            };
            // A part that failed already: stop reading.
            while let Some(done) = tasks.try_join_next() {
                if let Err(e) = part_result(done) {
                    failed.get_or_insert(e);
                }
            }
            if failed.is_some() {
                break;
            }
            let h = hasher.take();
            let p = path.to_path_buf();
            // Cut off with the upload (a stop), the read ends within 1 MiB.
            let reading = blocking_until_dropped(move |stop| {
                let mut buf = vec![0u8; len as usize];
                let r = read_exact_until(&file, &p, &mut buf, stop);
                let mut h = h;
                if let Some(h) = h.as_mut() {
                    h.update(&buf);
                }
                let mut crc = PartCrc::new();
                crc.update(&buf);
                (file, h, buf, crc.finish(), r)
            });
            // Even a read that panicked ends in the abort below.
            let (f, h, buf, crc32, read) = match reading.await {
                Ok(r) => r,
                Err(e) => {
                    failed = Some(e.into());
                    break;
                }
            };
            file = f;
            match read {
                Ok(()) => {}
                // Shorter than it was: it is being rewritten.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    changed = true;
                    break;
                }
                Err(e) => {
                    failed = Some(read_error(path, e));
                    break;
                }
            }
            hasher = h;
            // Rewritten in place since it was hashed (same size and time):
            // its md5sum would not be its bytes'.
            if cached
                .as_ref()
                .is_some_and(|c| c.crc32.get(n as usize) != Some(&crc32))
            {
                changed = true;
                break;
            }
            let upload = upload.clone();
            tasks.spawn(async move {
                let _held = (slot, memory);
                upload.put_part(n + 1, buf, crc32).await
            });
        }
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = part_result(done) {
                failed.get_or_insert(e);
            }
        }
        if let Some(e) = failed {
            upload.abort().await;
            return Err(e);
        }
        if changed || !has_fingerprint(probe.metadata(), fp) {
            upload.abort().await;
            return Ok(Some(Done::Changed));
        }
        let etag = upload.complete().await?;
        if let Some(sums) = cached {
            return Ok(Some(Done::Uploaded(sums.md5.hex)));
        }
        let sum = Md5Sum::of(hasher.unwrap_or_default().finalize().as_slice());
        metadata.insert("md5sum".into(), sum.hex.clone());
        tracing::debug!(
            "{key}: {count} part(s) up; stamping md5sum {} by a copy in S3",
            sum.hex
        );
        let stamp = std::time::Instant::now();
        self.s3
            .replace_metadata(
                key,
                &etag,
                fp.size,
                &metadata,
                &self.opts,
                self.max_single,
                part_size(fp.size, COPY_PART),
                self.parts.clone(),
            )
            .await?;
        tracing::debug!("{key}: md5sum stamped in {:?}", stamp.elapsed());
        Ok(Some(Done::Uploaded(sum.hex)))
    }

    /// The MD5 of an open file alone (to compare with S3's), read from
    /// where it stands; the file comes back.
    async fn md5(
        &self,
        path: &Path,
        file: std::fs::File,
    ) -> Result<(std::fs::File, Md5Sum), UploadError> {
        let p = path.to_path_buf();
        let (file, r) = blocking_until_dropped(move |stop| {
            let r = md5_file_until(&file, &p, stop);
            (file, r)
        })
        .await?;
        match r {
            Ok((sum, _)) => Ok((file, sum)),
            Err(source) => Err(read_error(path, source)),
        }
    }
}

/// Objects above the single-copy limit are copied in ranges of at least
/// this (S3 allows up to 5 GiB; fewer, larger ranges mean fewer calls).
const COPY_PART: u64 = 1 << 30;

/// How an upload ended, with the MD5 it found.
enum Done {
    Uploaded(String),
    /// S3 has the same bytes.
    Present(String),
    /// The file changed while it was read.
    Changed,
}

/// tablesnap's `stat` metadata (owner names looked up once per id).
fn stat_metadata(names: &users::NameCache, meta: &std::fs::Metadata) -> HashMap<String, String> {
    let (user, group) = names.of(meta.uid(), meta.gid());
    HashMap::from([(
        "stat".to_string(),
        stat_json(
            meta.uid(),
            meta.gid(),
            meta.mode(),
            user.as_deref(),
            group.as_deref(),
        ),
    )])
}

/// Say why a copy in S3 is not taken for the file (none: nothing to say).
fn differs(key: &str, head: Option<&ObjectHead>, size: u64) {
    match head {
        None => {}
        Some(h) if !h.metadata.contains_key("md5sum") => tracing::warn!(
            "{key} in S3 has no md5sum (an upload cut off before its stamp, or written by \
             another tool); uploading the local file"
        ),
        Some(h) => tracing::warn!(
            "{key} differs in S3 (size {} vs {size}); uploading the local file",
            h.size
        ),
    }
}

fn part_result(
    done: Result<Result<(), CloudError>, tokio::task::JoinError>,
) -> Result<(), UploadError> {
    Ok(done??)
}

/// Whether `meta` (a `stat` that may have failed) has fingerprint `fp`.
fn has_fingerprint(meta: std::io::Result<std::fs::Metadata>, fp: Fingerprint) -> bool {
    meta.is_ok_and(|m| Fingerprint::of(&m) == fp)
}

fn read_error(path: &Path, source: std::io::Error) -> UploadError {
    UploadError::Read {
        path: path.to_path_buf(),
        source,
    }
}
