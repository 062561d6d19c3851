//! `tableslurp`: restore a directory from its newest (or chosen) index.
//!
//! It lists only the directory's own prefix (not the whole bucket as
//! tableslurp 1.2.1 did), downloads the listed files in parallel into a
//! temporary name, and renames each into place only when its MD5 matches
//! the `md5sum` metadata. A missing, altered or unverifiable object is an
//! error naming the file, and the exit code is 1. Files already present
//! with the right MD5 are skipped, so a failed restore resumes.
//!
//! The one exception: tablesnap 1.2.1 wrote its index before the data and
//! listed every directory entry, so its indexes name subdirectories
//! (`backups`, `snapshots`) and files never uploaded. For an index without
//! our mark ([`is_marked_index`]) such names are reported as warnings.
//!
//! Everything from the bucket is untrusted (anyone with the instance role
//! can write it), and so is the target directory's content (its owner can
//! plant links): names must be one plain component, files are created
//! `O_EXCL|O_NOFOLLOW` mode 0600 through the directory's descriptor and
//! renamed into place there, subdirectories are made and entered without
//! following links ([`crate::host::safe_path`]), and setuid, setgid and
//! sticky bits are dropped unless asked for with the owner restored.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use chrono::{DateTime, Utc};

use super::keys::{is_marked_index, parse_index, KeyNaming, StatMeta, INDEX_SUFFIX};
use super::landing::{is_temporary, temporary, LandError, Landed, Landing};
use super::ownership::{apply_stat, lookup_group, lookup_user, Ownership, StatError};
use super::settings::SlurpSettings;
use crate::cloud::s3::{again_if_passing, Fetched, ObjectInfo, Ranges, S3};
use crate::cloud::CloudError;
use crate::host::safe_path::{check_name, is_refused_link, SafeDir};
use crate::progress::Progress;
use crate::report::Report;

/// The index to restore from: the newest not newer than `at`.
pub(crate) fn choose_index(
    objects: &[ObjectInfo],
    at: Option<DateTime<Utc>>,
) -> Option<&ObjectInfo> {
    objects
        .iter()
        .filter(|o| o.key.ends_with(INDEX_SUFFIX))
        .filter(|o| at.is_none_or(|at| o.last_modified.is_some_and(|t| t <= at)))
        .max_by(|a, b| (a.last_modified, &a.key).cmp(&(b.last_modified, &b.key)))
}

/// The index `-f FILE` means: the one written beside it
/// (`FILE-listdir.json`), else the first written at or after FILE's upload
/// (ours writes one index per directory per batch, beside the batch's
/// newest file, so most files have none of their own).
pub(crate) fn index_for_file<'a>(
    objects: &'a [ObjectInfo],
    file_key: &str,
) -> Option<&'a ObjectInfo> {
    let own = format!("{file_key}{INDEX_SUFFIX}");
    if let Some(o) = objects.iter().find(|o| o.key == own) {
        return Some(o);
    }
    let uploaded = objects.iter().find(|o| o.key == file_key)?.last_modified?;
    objects
        .iter()
        .filter(|o| o.key.ends_with(INDEX_SUFFIX))
        .filter(|o| o.last_modified.is_some_and(|t| t >= uploaded))
        .min_by(|a, b| (a.last_modified, &a.key).cmp(&(b.last_modified, &b.key)))
}

struct Job {
    s3: S3,
    naming: KeyNaming,
    owner: Ownership,
    force: bool,
    allow_unverified: bool,
    /// Where each directory's result goes (lines, or `--json`).
    report: Report,
    /// Files restored of those listed so far, on a terminal or in the log.
    progress: Progress,
    /// GETs of one file (`--call-attempts`), counting those the SDK
    /// retries as one: its retries do not cover a body that fails midway
    /// (a stall is the S3 call's to retry, as often).
    get_attempts: u32,
    /// How a large file is downloaded: in ranges, several at once.
    ranges: Ranges,
}

/// Ranges of one file downloaded at once.
const RANGES_PER_FILE: usize = 8;

pub(crate) async fn run(args: &SlurpSettings, report: Report) -> Result<ExitCode> {
    if let Some((before, after)) = crate::host::limits::raise_open_files() {
        tracing::debug!("open files: soft limit {before}, now {after}");
    }
    let s3 = super::connect(args.s3.connection(&args.bucket)).await;
    let naming = args.s3.naming();
    let odd = |c: std::path::Component<'_>| {
        matches!(
            c,
            std::path::Component::ParentDir | std::path::Component::CurDir
        )
    };
    if !args.origin.is_absolute() || args.origin.components().any(odd) {
        bail!(
            "ORIGIN must be the absolute path the files were backed up from, got {}",
            args.origin.display()
        );
    }
    let owner = Ownership {
        preserve: args.preserve,
        uid: match &args.owner {
            Some(o) => Some(lookup_user(o)?),
            None => None,
        },
        gid: match &args.group {
            Some(g) => Some(lookup_group(g)?),
            None => None,
        },
        special_bits: args.keep_special_bits,
    };
    let at = args.at.map(DateTime::<Utc>::from);
    let job = Arc::new(Job {
        s3,
        naming,
        owner,
        force: args.force,
        allow_unverified: args.allow_unverified,
        report,
        progress: Progress::new("files restored", 0),
        get_attempts: args.s3.attempts,
        ranges: Ranges {
            part: args.part_size.max(1),
            per_file: RANGES_PER_FILE,
            // Beyond a file's first request: -t more in all.
            streams: Arc::new(tokio::sync::Semaphore::new(args.threads.max(1))),
            attempts: args.s3.attempts,
        },
    });

    // One limit for every download of the run, whatever the directory.
    let permits = Arc::new(tokio::sync::Semaphore::new(args.threads.max(1)));
    let dirs = if args.recursive {
        let dirs = tree(&job, &args.origin, &permits).await?;
        if dirs.is_empty() {
            bail!(
                "no index found under {} in s3://{}",
                args.origin.display(),
                args.bucket
            );
        }
        dirs
    } else {
        vec![Dir {
            origin: args.origin.clone(),
            rel: PathBuf::new(),
            listed: None,
        }]
    };
    // Directories in parallel: their files share the one limit.
    let target = args.target.clone();
    let top = tokio::task::spawn_blocking(move || SafeDir::create(&target))
        .await?
        .with_context(|| format!("TARGET {}", args.target.display()))?;
    let request = Arc::new(Request {
        top: Arc::new(top),
        bucket: args.bucket.clone(),
        file: args.file.clone(),
        at,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for dir in dirs {
        let (job, request, permits) = (job.clone(), request.clone(), permits.clone());
        tasks.spawn(async move { restore_dir(&job, &request, dir, permits).await });
    }
    let mut failed = 0usize;
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(n)) => failed += n,
            Ok(Err(e)) => {
                if args.recursive {
                    tracing::error!("{e:#}");
                }
                failed += 1;
                first_error.get_or_insert(e);
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(anyhow::anyhow!("{e}"));
            }
        }
    }
    match first_error {
        // One directory: its error is the command's, as before.
        Some(e) if !args.recursive => Err(e),
        _ if failed == 0 => Ok(std::process::ExitCode::SUCCESS),
        _ => Ok(std::process::ExitCode::FAILURE),
    }
}

/// What was asked of every directory.
struct Request {
    /// TARGET, opened once (a link on its path followed only where root
    /// alone can have made it); below it nothing is followed.
    top: Arc<SafeDir>,
    bucket: String,
    file: Option<String>,
    at: Option<DateTime<Utc>>,
}

/// One directory to restore, with its listing when the tree walk already
/// made it (each prefix is listed once).
struct Dir {
    origin: PathBuf,
    /// Where below TARGET: plain components checked by [`check_name`].
    rel: PathBuf,
    listed: Option<Vec<ObjectInfo>>,
}

/// Every directory below `origin` (itself included) that holds an index,
/// listed level by level, the listings of a level at once (within the
/// run's limit).
async fn tree(
    job: &Arc<Job>,
    origin: &Path,
    permits: &Arc<tokio::sync::Semaphore>,
) -> Result<Vec<Dir>> {
    let mut out = Vec::new();
    let mut level = vec![origin.to_path_buf()];
    while !level.is_empty() {
        let mut listings = tokio::task::JoinSet::new();
        for dir in level.drain(..) {
            let (job, permits) = (job.clone(), permits.clone());
            listings.spawn(async move {
                let _p = permits.acquire_owned().await;
                let prefix = job.naming.dir_prefix(&dir);
                (dir, job.s3.list(&prefix, Some("/")).await)
            });
        }
        while let Some(done) = listings.join_next().await {
            let (dir, listed) = done.context("listing the backup")?;
            let (objects, subdirs) = listed.with_context(|| {
                format!(
                    "listing the backup of {} in {} (prefix {})",
                    dir.display(),
                    job.s3.bucket(),
                    job.naming.dir_prefix(&dir)
                )
            })?;
            for sub in subdirs {
                let name = sub
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or_default();
                // A key can hold anything: never let one lead outside TARGET.
                if let Err(e) = check_name(name) {
                    tracing::error!("refusing the key prefix {sub:?}: {e}");
                    continue;
                }
                level.push(dir.join(name));
            }
            if objects.iter().any(|o| o.key.ends_with(INDEX_SUFFIX)) {
                let rel = dir
                    .strip_prefix(origin)
                    .unwrap_or(Path::new(""))
                    .to_path_buf();
                out.push(Dir {
                    rel,
                    origin: dir,
                    listed: Some(objects),
                });
            }
        }
    }
    out.sort_by(|a, b| a.origin.cmp(&b.origin));
    Ok(out)
}

/// Restore one directory; returns how many files failed.
async fn restore_dir(
    job: &Arc<Job>,
    request: &Request,
    dir: Dir,
    permits: Arc<tokio::sync::Semaphore>,
) -> Result<usize> {
    let target_path = request.top.path().join(&dir.rel);
    let rel = dir.rel.clone();
    let (origin, target, bucket, at) = (
        dir.origin.as_path(),
        target_path.as_path(),
        &request.bucket,
        request.at,
    );
    let prefix = job.naming.dir_prefix(origin);
    // Only this directory's prefix, one level: not the bucket.
    let objects = match dir.listed {
        Some(o) => o,
        None => {
            job.s3
                .list(&prefix, Some("/"))
                .await
                .with_context(|| {
                    format!(
                        "listing the backup of {} in {bucket} (prefix {prefix})",
                        origin.display()
                    )
                })?
                .0
        }
    };
    let index_key = match request.file.as_deref() {
        Some(f) => {
            let file_key = format!("{prefix}{f}");
            let chosen = index_for_file(&objects, &file_key).with_context(|| {
                format!("no index lists {f} in s3://{bucket}/{prefix} (is it uploaded?)")
            })?;
            if chosen.key != format!("{file_key}{INDEX_SUFFIX}") {
                tracing::info!(
                    "{f} has no index of its own: using {}, the first written after its upload",
                    chosen.key
                );
            }
            chosen.key.clone()
        }
        None => choose_index(&objects, at)
            .map(|o| o.key.clone())
            .with_context(|| {
                format!(
                    "no index for {} in s3://{bucket}/{prefix}",
                    origin.display()
                )
            })?,
    };
    let permit = permits.clone().acquire_owned().await;
    let (body, index_meta) = get_index(job, &index_key)
        .await
        .with_context(|| format!("reading index {index_key}"))?;
    drop(permit);
    // Ours lists only what was in S3; 1.2.1's listed the directory first.
    let ours = is_marked_index(&index_meta);
    let (dir, names) = parse_index(&String::from_utf8_lossy(&body))
        .map_err(|e| anyhow::anyhow!("{index_key}: {e}"))?;
    if Path::new(&dir) != origin {
        bail!("index {index_key} is for {dir}, not {}", origin.display());
    }
    tracing::info!(
        "restoring {} files of {} from {index_key} into {}",
        names.len(),
        origin.display(),
        target.display()
    );
    // TARGET as given, then each level below it made and entered without
    // following a link (its owner may have planted one).
    let top = request.top.clone();
    let into = tokio::task::spawn_blocking(move || top.create_dirs(&rel))
        .await?
        .map_err(|e| {
            if is_refused_link(&e) {
                anyhow::anyhow!(
                    "refusing to restore into {}: a symbolic link is on its path below {} (links are never followed)",
                    target.display(),
                    request.top.path().display()
                )
            } else {
                anyhow::anyhow!("creating {}: {e}", target.display())
            }
        })?;
    let into = Arc::new(into);
    // What the directory holds now, read once: a name not in it needs no
    // look of its own (a fresh restore then costs no call per file for
    // it). Unreadable: every file is looked at.
    let present: Option<Arc<std::collections::HashSet<std::ffi::OsString>>> =
        blocking(&into, |d| d.entries())
            .await
            .ok()
            .map(|e| Arc::new(e.into_iter().map(|(name, _)| name).collect()));

    // Each name once (an index listing one twice would have two downloads
    // share one temporary), and none of the form of a temporary (it could
    // replace another file's while that one waits to land).
    let mut seen = std::collections::HashSet::new();
    let names: Vec<String> = names
        .into_iter()
        .filter(|n| {
            if is_temporary(n) {
                tracing::warn!(
                    "{index_key}: not restoring {n}: it has the form of tableslurp's own temporary files"
                );
                return false;
            }
            seen.insert(n.clone())
        })
        .collect();
    job.progress.add_total(names.len() as u64);
    let mut tasks = tokio::task::JoinSet::new();
    let mut tally = Tally::new(into.clone());
    for name in names {
        // The permit before the task: at most -t files are under way (and
        // in memory) across all directories, however many are listed.
        let permit = permits.clone().acquire_owned().await;
        // Finished tasks are counted as they end: a JoinSet keeps each
        // one's memory until it is joined.
        while let Some(done) = tasks.try_join_next() {
            tally.add(job, target, &index_key, ours, done).await;
        }
        let (job, origin, into) = (job.clone(), origin.to_path_buf(), into.clone());
        let there = present
            .as_ref()
            .is_none_or(|p| p.contains(std::ffi::OsStr::new(&name)));
        tasks.spawn(async move {
            let _p = permit;
            let r = fetch_one(&job, &origin, &into, &name, there).await;
            job.progress.step(&name);
            (name, r)
        });
    }
    while let Some(done) = tasks.join_next().await {
        tally.add(job, target, &index_key, ours, done).await;
    }
    tally.finish(job, target).await;
    let Tally {
        landing: _,
        restored,
        present,
        failed,
        unlisted,
        mut restored_files,
        failed_files,
    } = tally;
    let not_uploaded = if unlisted > 0 {
        format!(", {unlisted} listed by a tablesnap 1.2.1 index but not in S3")
    } else {
        String::new()
    };
    restored_files.sort();
    let line = format!(
        "{}: {restored} restored, {present} already there, {failed} failed{not_uploaded}",
        target.display()
    );
    let item = serde_json::json!({
        "origin": origin, "target": target, "index": index_key,
        "restored": restored, "already_there": present, "failed": failed,
        "not_uploaded": unlisted, "restored_files": restored_files, "failed_files": failed_files,
    });
    if failed > 0 {
        job.report.failure(line, item);
    } else {
        job.report.item(line, item);
    }
    Ok(failed)
}

/// What one directory's restore did, file by file.
struct Tally {
    landing: Landing,
    restored: usize,
    present: usize,
    failed: usize,
    unlisted: usize,
    restored_files: Vec<String>,
    failed_files: Vec<serde_json::Value>,
}

impl Tally {
    fn new(into: Arc<SafeDir>) -> Self {
        Tally {
            landing: Landing::new(into),
            restored: 0,
            present: 0,
            failed: 0,
            unlisted: 0,
            restored_files: Vec::new(),
            failed_files: Vec::new(),
        }
    }

    /// A failure of `file` (a file, or the whole directory), said and
    /// counted.
    fn fail(&mut self, job: &Job, file: &Path, e: &dyn std::fmt::Display) {
        self.failed += 1;
        job.report.line(format!("FAILED   {}: {e}", file.display()));
        self.failed_files
            .push(serde_json::json!({"file": file, "error": e.to_string()}));
    }

    /// How each file of a landed batch ended, counted.
    fn landed(&mut self, job: &Job, target: &Path, landed: Landed) {
        for (name, r) in landed {
            match r {
                Ok(()) => {
                    self.restored += 1;
                    self.restored_files.push(name);
                }
                Err(e) => self.fail(job, &target.join(&name), &RestoreError::Land(e)),
            }
        }
    }

    /// Every verified file put in place and every rename made durable:
    /// after this the directory may be reported restored.
    async fn finish(&mut self, job: &Job, target: &Path) {
        let (landed, sealed) = self.landing.finish().await;
        self.landed(job, target, landed);
        if let Err(e) = sealed {
            self.fail(job, target, &RestoreError::Land(LandError::Flush(e)));
        }
    }

    async fn add(
        &mut self,
        job: &Job,
        target: &Path,
        index_key: &str,
        ours: bool,
        done: Result<(String, Result<Got, RestoreError>), tokio::task::JoinError>,
    ) {
        match done {
            Ok((name, Ok(Got::Verified { tmp, file, size }))) => {
                if self.landing.wait(tmp, name, file, size) {
                    let landed = self.landing.start().await;
                    self.landed(job, target, landed);
                }
            }
            Ok((_, Ok(Got::Present))) => self.present += 1,
            Ok((name, Err(RestoreError::Missing { key }))) if !ours => {
                self.unlisted += 1;
                if is_directory_entry(job, &name, &key).await {
                    tracing::warn!(
                        "listed by tablesnap 1.2.1's index {index_key}: a directory entry: {name} (not restored)"
                    );
                } else {
                    tracing::warn!(
                        "listed by tablesnap 1.2.1's index but never uploaded: {name} ({key})"
                    );
                }
            }
            Ok((name, Err(e))) => self.fail(job, &target.join(&name), &e),
            Err(e) => self.fail(job, target, &e),
        }
    }
}

/// An index and its metadata, retried like a data file's (a stall is
/// retried by the S3 call itself, as often).
async fn get_index(
    job: &Job,
    key: &str,
) -> Result<(Vec<u8>, std::collections::HashMap<String, String>), CloudError> {
    let what = format!("index {key}");
    again_if_passing(job.get_attempts, &what, || {
        job.s3.get_bytes_with_metadata(key)
    })
    .await
}

/// Whether a name a 1.2.1 index listed but S3 lacks was a subdirectory:
/// keys below it exist, or it is one Cassandra makes in a table directory.
async fn is_directory_entry(job: &Job, name: &str, key: &str) -> bool {
    if matches!(name, "backups" | "snapshots") {
        return true;
    }
    match job.s3.list(&format!("{key}/"), Some("/")).await {
        Ok((objects, dirs)) => !objects.is_empty() || !dirs.is_empty(),
        Err(_) => false,
    }
}

/// Why one file of the index was not restored.
#[derive(Debug, thiserror::Error)]
enum RestoreError {
    /// An index entry that is not a plain file name.
    #[error("refusing the index entry: {0}")]
    BadEntry(#[from] crate::host::safe_path::BadName),
    /// Creating, writing or renaming the file in the target directory.
    #[error("{0}")]
    Local(String),
    /// The HEAD or the GET.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error("missing from S3 ({key})")]
    Missing { key: String },
    #[error("MD5 mismatch: S3 says {want}, the download is {got} ({key})")]
    Md5Mismatch {
        want: String,
        got: String,
        key: String,
    },
    /// tablesnap always writes `md5sum`; an object without it was rewritten
    /// by another tool, and its own ETag would only prove the download.
    #[error("no md5sum metadata (tablesnap always writes it: rewritten since?), cannot verify it (--allow-unverified restores it anyway) ({key})")]
    Unverifiable { key: String },
    #[error(transparent)]
    Stat(#[from] StatError),
    #[error(transparent)]
    Land(#[from] LandError),
}

/// How one file ended well.
enum Got {
    /// Already there with the right MD5.
    Present,
    /// Downloaded and verified under its temporary name `tmp`, `size`
    /// bytes, still open: put in place with its batch ([`Landing`]).
    Verified {
        tmp: String,
        file: std::fs::File,
        size: u64,
    },
}

/// One file, up to its verified temporary.
async fn fetch_one(
    job: &Job,
    origin: &Path,
    into: &Arc<SafeDir>,
    name: &str,
    there: bool,
) -> Result<Got, RestoreError> {
    let name = check_name(name)?;
    let key = job.naming.key(&origin.join(name));
    // Resuming: a file already there is compared with S3's md5sum (one
    // HEAD); a missing one is fetched straight away (the GET brings the
    // metadata, so a fresh restore costs one request per file). Only a
    // regular file counts: a link planted under the name is not read,
    // and the rename when it lands replaces it.
    if !job.force && there {
        if let Some(have) = present_md5(into, name).await {
            let Some(head) = job.s3.head(&key).await? else {
                return Err(RestoreError::Missing { key });
            };
            if head.metadata.get("md5sum") == Some(&have) {
                return Ok(Got::Present);
            }
        }
    }
    let tmp = temporary(name);
    let path = into.path().join(name);
    let local = |what: &str, e: std::io::Error| {
        RestoreError::Local(format!("{what} {}: {e}", into.path().join(&tmp).display()))
    };
    let mut attempt = 1;
    let (file, fetched) = loop {
        // A fresh temporary file each attempt: a leftover (or a link
        // someone planted under its name) is removed, never opened.
        let t = tmp.clone();
        let file = blocking(into, move |d| d.create_fresh(&t))
            .await
            .map_err(|e| local("creating", e))?;
        match job
            .s3
            .get_to_file(&key, &file, &path, job.allow_unverified, Some(&job.ranges))
            .await
        {
            Ok(Some(f)) => break (file, f),
            Ok(None) => {
                discard(into, &tmp).await;
                return Err(RestoreError::Missing { key });
            }
            // A stall was tried again there, as often.
            Err(e) if e.is_transient() && !e.is_stall() && attempt < job.get_attempts => {
                tracing::warn!("{name}: {e}; retrying ({attempt}/{})", job.get_attempts);
                tokio::time::sleep(Duration::from_millis(500) * attempt).await;
                attempt += 1;
            }
            Err(e) => {
                discard(into, &tmp).await;
                return Err(e.into());
            }
        }
    };
    // Only the md5sum metadata proves the bytes are what was backed up.
    // Without it (and --allow-unverified), what can be compared proves
    // the download: the ETag where it is an MD5, else the size and a
    // stored full-object checksum (checked by the SDK) if there is one.
    let unverified = !fetched.metadata.contains_key("md5sum");
    if unverified && !job.allow_unverified {
        discard(into, &tmp).await;
        return Err(RestoreError::Unverifiable { key });
    }
    if fetched.stated_size.is_some_and(|n| n != fetched.written) {
        discard(into, &tmp).await;
        return Err(RestoreError::Local(format!(
            "{name}: S3 stated {} bytes, {} arrived ({key})",
            fetched.stated_size.unwrap_or_default(),
            fetched.written
        )));
    }
    let want = match fetched.metadata.get("md5sum") {
        Some(m) => Some(m.clone()),
        None if fetched.etag_not_md5.is_none() => fetched.etag.clone(),
        None => None,
    };
    match want {
        Some(w) if w != fetched.md5_hex => {
            discard(into, &tmp).await;
            return Err(RestoreError::Md5Mismatch {
                want: w,
                got: fetched.md5_hex,
                key,
            });
        }
        _ if unverified => tracing::warn!(
            "{name}: restored unverified (--allow-unverified): no md5sum metadata; {}",
            unverified_check(&fetched)
        ),
        _ => {}
    }
    let stat = StatMeta::parse(fetched.metadata.get("stat").map_or("", String::as_str));
    if let Err(e) = apply_stat(&file, &path, &stat, &job.owner, fetched.last_modified) {
        discard(into, &tmp).await;
        return Err(e.into());
    }
    Ok(Got::Verified {
        tmp,
        file,
        size: fetched.written,
    })
}

/// What an object without `md5sum` was checked against, in words.
fn unverified_check(f: &Fetched) -> String {
    match (f.etag_not_md5, f.checked_checksum) {
        (None, _) => "its bytes match its ETag (the MD5 of a single-part object)".into(),
        (Some(why), Some(sum)) => {
            format!("its size and its stored {sum} checksum match ({why} is not an MD5)")
        }
        (Some(why), None) => format!(
            "only its size was checked ({why} is not an MD5, and S3 holds no full-object checksum)"
        ),
    }
}

/// The MD5 of the regular file `name` in the directory, if there is one
/// (not a link, not anything else).
async fn present_md5(into: &Arc<SafeDir>, name: &str) -> Option<String> {
    let n = name.to_string();
    match blocking(into, move |d| super::md5_file(&d.open_file(Path::new(&n))?)).await {
        Ok((sum, _)) => Some(sum.hex),
        Err(e) if is_refused_link(&e) => {
            tracing::warn!(
                "{}: a symbolic link was in the way; it is replaced by the restored file, not followed",
                into.path().join(name).display()
            );
            None
        }
        Err(_) => None,
    }
}

/// Remove a temporary file that will not be renamed into place.
async fn discard(into: &Arc<SafeDir>, tmp: &str) {
    let tmp = tmp.to_string();
    let _ = blocking(into, move |d| d.remove(&tmp)).await;
}

/// Blocking work on the target directory.
async fn blocking<T: Send + 'static>(
    into: &Arc<SafeDir>,
    work: impl FnOnce(&SafeDir) -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let d = into.clone();
    tokio::task::spawn_blocking(move || work(&d))
        .await
        .map_err(std::io::Error::other)?
}

#[cfg(test)]
#[path = "slurp_tests.rs"]
mod tests;
