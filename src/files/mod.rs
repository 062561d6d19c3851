//! The file commands (tablesnap's job): `keys.rs` is the S3 layout (pure),
//! `upload.rs` one file, `digests.rs` the record of what was read,
//! `queue.rs` the daemon's work queue, `retry.rs` its retries,
//! `index_writer.rs` its indexes, `refresh.rs` when a quiet directory's
//! index is rewritten, `settings.rs` what each command is told (resolved
//! once, before it runs), `snap.rs` the watching daemon, `stale.rs`
//! abandoned multipart uploads, `slurp.rs` the restore, `landing.rs` its files put in place durably, `ownership.rs` their owner and mode, `chop.rs` the
//! retention (its plan pure).

pub(crate) mod chop;
mod digests;
mod index_writer;
pub(crate) mod keys;
mod landing;
mod ownership;
mod queue;
pub(crate) mod refresh;
mod retry;
pub(crate) mod settings;
pub(crate) mod slurp;
pub(crate) mod snap;
pub(crate) mod stale;
pub(crate) mod upload;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::cloud::s3::{base64, hex, S3};
use crate::cloud::{AwsConfig, StaticKeys};

/// Files (and parts) in flight by default, `-t`. Small files are one
/// request each and a request mostly waits: 64 keep a fast S3 busy and
/// hide 20 ms of latency per request (10, aws-cli's default, left a fast
/// server idle and made a thousand small files take 2 s at +20 ms).
/// Memory does not grow much with it: uploads share a 48 MiB budget
/// (`upload::BUFFER_BUDGET`), and a download holds only the chunk of
/// its body being written (it is hashed and written as it arrives).
pub(crate) const REQUESTS_IN_FLIGHT: usize = 64;

/// The host name in keys when none is given: Python's socket.getfqdn(),
/// as tablesnap 1.2.1 used, via `hostname -f` where it resolves, else the
/// plain host name.
pub(crate) fn default_name() -> String {
    if let Ok(out) = std::process::Command::new("hostname").arg("-f").output() {
        let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !name.is_empty() {
            return name;
        }
    }
    crate::host::users::hostname().unwrap_or_else(|| "localhost".into())
}

/// A file's MD5 as the `md5sum` metadata writes it (hex) and as
/// Content-MD5 wants it (base64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Md5Sum {
    pub hex: String,
    pub base64: String,
}

impl Md5Sum {
    pub(crate) fn of(digest: &[u8]) -> Self {
        Md5Sum {
            hex: hex(digest),
            base64: base64(digest),
        }
    }
}

/// MD5 and size of an open file from where it stands, read in 1 MiB
/// chunks: the check of a restored or present file. Files are opened
/// through [`crate::host::safe_path`], never by a path here.
pub(crate) fn md5_file(file: &std::fs::File) -> std::io::Result<(Md5Sum, u64)> {
    md5_file_until(file, std::path::Path::new(""), &AtomicBool::new(false))
}

/// `md5_file` that gives up (`Interrupted`) once `stop` is raised; `path`
/// only names the file in the log.
pub(crate) fn md5_file_until(
    mut file: &std::fs::File,
    path: &std::path::Path,
    stop: &AtomicBool,
) -> std::io::Result<(Md5Sum, u64)> {
    use std::io::Read;

    use crate::digest::Md5;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        stopped(stop, path, size)?;
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((Md5Sum::of(h.finalize().as_slice()), size))
}

/// `Interrupted` once `stop` is raised (a read or hash cut off at `offset`).
fn stopped(stop: &AtomicBool, path: &std::path::Path, offset: u64) -> std::io::Result<()> {
    if !stop.load(Ordering::Relaxed) {
        return Ok(());
    }
    tracing::debug!(
        "{}: reading stopped at byte {offset}: the upload was cut off",
        path.display()
    );
    Err(std::io::Error::new(
        std::io::ErrorKind::Interrupted,
        "cut off",
    ))
}

/// Run `work` on the blocking pool with a flag it polls between chunks.
/// Dropping the returned future (an upload cut off at a stop) raises the
/// flag, so a long hash ends within a chunk: the runtime waits for
/// blocking work before the process can exit, and a 100 GiB file takes
/// minutes to hash.
pub(crate) async fn blocking_until_dropped<T, F>(work: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce(&AtomicBool) -> T + Send + 'static,
    T: Send + 'static,
{
    struct RaiseOnDrop(Arc<AtomicBool>);
    impl Drop for RaiseOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let _raise = RaiseOnDrop(stop.clone());
    tokio::task::spawn_blocking(move || work(&stop)).await
}

/// A large file's MD5 and the CRC32 of each of its parts of `part` bytes,
/// for an upload that can carry its `md5sum` from the start.
#[derive(Debug)]
pub(crate) struct CachedSums {
    pub md5: Md5Sum,
    pub crc32: Vec<String>,
}

/// The sums of the first `size` bytes of `file` (at `path`), read from
/// the page cache alone (`host::page_cache`; by offset, the file's
/// position is left alone): `None` as soon as a byte is not in memory, or
/// the file ends before `size`. Costs no disk I/O either way.
pub(crate) fn sums_if_cached(
    file: &std::fs::File,
    path: &std::path::Path,
    size: u64,
    part: u64,
    stop: &AtomicBool,
) -> std::io::Result<Option<CachedSums>> {
    use crate::digest::Md5;

    use crate::cloud::s3::PartCrc;
    use crate::host::page_cache::read_cached;
    let mut buf = vec![0u8; 1 << 20];
    let mut md5 = Md5::new();
    let mut crc = PartCrc::new();
    let mut crc32 = Vec::new();
    let mut offset = 0u64;
    while offset < size {
        stopped(stop, path, offset)?;
        let part_end = ((offset / part + 1) * part).min(size);
        let want = usize::try_from(part_end - offset).map_or(buf.len(), |w| w.min(buf.len()));
        match read_cached(file, &mut buf[..want], offset)? {
            Some(n) if n > 0 => {
                md5.update(&buf[..n]);
                crc.update(&buf[..n]);
                offset += n as u64;
            }
            _ => {
                tracing::debug!(
                    "{}: byte {offset} of {size} not in the page cache",
                    path.display()
                );
                return Ok(None);
            }
        }
        if offset == part_end {
            crc32.push(std::mem::replace(&mut crc, PartCrc::new()).finish());
        }
    }
    Ok(Some(CachedSums {
        md5: Md5Sum::of(md5.finalize().as_slice()),
        crc32,
    }))
}

/// A small file's bytes and MD5, read once (it is uploaded from memory):
/// at most `limit` bytes, in 1 MiB reads with a look at `stop` before
/// each (`Interrupted` once it is raised; `path` only names the file in
/// the log): at idle I/O priority on a busy disk even 8 MiB can take long.
pub(crate) fn read_with_md5(
    file: &std::fs::File,
    path: &std::path::Path,
    limit: u64,
    stop: &AtomicBool,
) -> std::io::Result<(Vec<u8>, Md5Sum)> {
    use crate::digest::Md5;
    use std::io::Read;
    let mut bytes = Vec::with_capacity(usize::try_from(limit).unwrap_or(0));
    let mut rest = file.take(limit);
    loop {
        stopped(stop, path, bytes.len() as u64)?;
        let n = (&mut rest).take(1 << 20).read_to_end(&mut bytes)?;
        if n == 0 {
            break;
        }
    }
    let sum = Md5Sum::of(Md5::digest(&bytes).as_slice());
    Ok((bytes, sum))
}

/// `buf.len()` bytes of `file` from where it stands (`read_exact`), in
/// 1 MiB reads with a look at `stop` before each (`Interrupted` once it is
/// raised): a part of a large file, read at idle I/O priority, must not
/// hold a stopping daemon's exit.
pub(crate) fn read_exact_until(
    mut file: &std::fs::File,
    path: &std::path::Path,
    buf: &mut [u8],
    stop: &AtomicBool,
) -> std::io::Result<()> {
    use std::io::Read;
    let mut done = 0;
    while done < buf.len() {
        stopped(stop, path, done as u64)?;
        let end = buf.len().min(done + (1 << 20));
        file.read_exact(&mut buf[done..end])?;
        done = end;
    }
    Ok(())
}

/// How to reach the bucket.
pub(crate) struct Connection<'a> {
    pub bucket: &'a str,
    pub region: Option<&'a str>,
    pub endpoint: Option<&'a str>,
    pub force_path_style: bool,
    pub key: Option<&'a str>,
    pub secret: Option<&'a str>,
    pub token: Option<&'a str>,
    /// Attempts per request: the SDK's for errors S3 answers with, the
    /// stall watch's for calls that move nothing for `stall`.
    pub attempts: u32,
    pub stall: std::time::Duration,
}

/// `--stall-timeout`'s default: S3 answers a HEAD or a listing in well
/// under a second, and sends a body's bytes without pauses of seconds;
/// half a minute of nothing is a connection that will not recover.
pub(crate) const DEFAULT_STALL: std::time::Duration = std::time::Duration::from_secs(30);

/// An S3 client: the SDK's credential chain (or, warned about, keys from
/// the command line), region from the flag, the environment or us-east-1.
pub(crate) async fn connect(c: Connection<'_>) -> S3 {
    let region = match c.region {
        Some(r) => r.to_string(),
        None => crate::cloud::region_from_environment()
            .await
            .unwrap_or_else(|| "us-east-1".into()),
    };
    let mut config = AwsConfig::load_for_transfers(&region, c.attempts).await;
    if let (Some(key), Some(secret)) = (c.key, c.secret) {
        tracing::warn!("keys given with -k/-s show in `ps` to every user; prefer an instance role or AWS_* environment variables");
        config = config.with_keys(StaticKeys {
            key,
            secret,
            token: c.token,
        });
    }
    let patience = crate::cloud::Patience {
        stall: c.stall,
        attempts: c.attempts,
    };
    S3::new(&config, c.bucket, c.endpoint, c.force_path_style, patience)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::s3::PartCrc;

    fn crc(bytes: &[u8]) -> String {
        let mut c = PartCrc::new();
        c.update(bytes);
        c.finish()
    }

    #[test]
    fn cached_sums_give_each_part_the_crc32_of_its_own_bytes() {
        // 2.5 parts of 1.5 MiB: the 1 MiB reads cross part boundaries.
        let part = 3 << 19;
        let data: Vec<u8> = (0..(5u32 << 19)).map(|i| (i % 251) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, &data).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let go = AtomicBool::new(false);
        let sums = sums_if_cached(&f, &path, data.len() as u64, part, &go)
            .unwrap()
            .expect("just written: in the page cache");
        let want: Vec<String> = data.chunks(part as usize).map(crc).collect();
        assert_eq!(sums.crc32, want);
        assert_eq!(
            sums.md5,
            md5_file(&std::fs::File::open(&path).unwrap()).unwrap().0
        );
        // Shorter than its recorded size: not taken.
        assert!(sums_if_cached(&f, &path, data.len() as u64 + 1, part, &go)
            .unwrap()
            .is_none());
        // Raised: stops.
        let stop = AtomicBool::new(true);
        let e = sums_if_cached(&f, &path, data.len() as u64, part, &stop).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted);
    }

    #[tokio::test]
    async fn blocking_work_stops_when_its_future_is_dropped() {
        let (tx, rx) = std::sync::mpsc::channel();
        let work = blocking_until_dropped(move |stop| {
            let t = std::time::Instant::now();
            while !stop.load(Ordering::Relaxed) && t.elapsed().as_secs() < 30 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            tx.send(t.elapsed()).unwrap();
        });
        // Cut off after 50 ms, as a stop aborts an upload.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(50), work).await;
        let ran = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert!(
            ran.as_secs() < 10,
            "ran {ran:?} after its future was dropped"
        );
    }
}
