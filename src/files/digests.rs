//! The record of what tablesnap has read: for each file it uploaded (or
//! found already in S3), its (device, inode, size, mtime) and MD5, kept in
//! the state directory across restarts. A `-B` restart or a rescan takes
//! the MD5 of a file whose fingerprint is unchanged from here instead of
//! reading the file again: on a node with terabytes of SSTables that is
//! hours of disk I/O saved, competing with the database.
//!
//! It never lets a changed S3 copy be skipped: the recorded MD5 only
//! replaces the local read; the object is still compared by one HEAD
//! (size and `md5sum`), and when they differ the file is read again and
//! uploaded. What it trusts is that a file with the same path, device,
//! inode, size and modification time (to the nanosecond) has the same
//! bytes, which holds for immutable SSTables; a file rewritten in place
//! with its old size and mtime restored by hand would be missed (run
//! once with `--md5-on-start` after such surgery). The change time is
//! left out on purpose: Cassandra's hard links (snapshots, backups)
//! change it without changing a byte.
//!
//! The file is a log of lines `md5 size dev ino mtime_s mtime_ns path`
//! (the path last, `\` and newline escaped), appended as files land and
//! rewritten at start with only the entries whose files are unchanged. A
//! torn last line (a kill mid-write) or any line that does not parse is
//! dropped: a lost entry costs one read, never a skipped upload.
//!
//! A months-long run sees millions of files come and go (compaction), so
//! the record follows the files: an entry leaves memory when its file is
//! deleted or moved away (or a rescan no longer finds it), and once the
//! file holds more than twice as many lines as there are live entries it
//! is rewritten with the live ones (in a thread of its own, so no upload
//! or event waits for the disk). Memory is then one entry per live file
//! and the file at most two lines per live file.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const HEADER: &str =
    "# snaptastic tablesnap digest record v1: md5 size dev ino mtime_s mtime_ns path\n";

/// What identifies a file's bytes without reading them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_s: i64,
    pub mtime_ns: i64,
}

impl Fingerprint {
    pub(crate) fn of(meta: &std::fs::Metadata) -> Self {
        Fingerprint {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_s: meta.mtime(),
            mtime_ns: meta.mtime_nsec(),
        }
    }
}

/// One line of the record, newline included.
fn format_line(path: &Path, fp: &Fingerprint, md5: &str) -> Vec<u8> {
    let mut line = format!(
        "{md5} {} {} {} {} {} ",
        fp.size, fp.dev, fp.ino, fp.mtime_s, fp.mtime_ns
    )
    .into_bytes();
    for &b in path.as_os_str().as_bytes() {
        match b {
            b'\\' => line.extend_from_slice(b"\\\\"),
            b'\n' => line.extend_from_slice(b"\\n"),
            _ => line.push(b),
        }
    }
    line.push(b'\n');
    line
}

/// A line (without its newline) back into its parts; `None` for anything
/// malformed.
fn parse_line(line: &[u8]) -> Option<(PathBuf, Fingerprint, String)> {
    let mut fields = line.splitn(7, |&b| b == b' ');
    let md5 = std::str::from_utf8(fields.next()?).ok()?;
    if md5.len() != 32 || !md5.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut number = || {
        std::str::from_utf8(fields.next()?)
            .ok()?
            .parse::<i128>()
            .ok()
    };
    let (size, dev, ino, mtime_s, mtime_ns) =
        (number()?, number()?, number()?, number()?, number()?);
    let fp = Fingerprint {
        size: size.try_into().ok()?,
        dev: dev.try_into().ok()?,
        ino: ino.try_into().ok()?,
        mtime_s: mtime_s.try_into().ok()?,
        mtime_ns: mtime_ns.try_into().ok()?,
    };
    let raw = fields.next()?;
    let mut path = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        if b == b'\\' {
            match bytes.next()? {
                b'\\' => path.push(b'\\'),
                b'n' => path.push(b'\n'),
                _ => return None,
            }
        } else {
            path.push(b);
        }
    }
    if path.first() != Some(&b'/') {
        return None;
    }
    Some((
        PathBuf::from(OsStr::from_bytes(&path)),
        fp,
        md5.to_ascii_lowercase(),
    ))
}

/// The entries of a record's text: later lines win; comments, blank and
/// malformed lines are skipped. Also returns how many lines held an entry.
fn parse_all(text: &[u8]) -> (HashMap<PathBuf, (Fingerprint, String)>, usize) {
    let mut known = HashMap::new();
    let mut lines = 0;
    for line in text.split(|&b| b == b'\n') {
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        if let Some((path, fp, md5)) = parse_line(line) {
            known.insert(path, (fp, md5));
            lines += 1;
        }
    }
    (known, lines)
}

struct Inner {
    known: HashMap<PathBuf, (Fingerprint, String)>,
    /// Opened for appending; `None` once a write failed (the entries in
    /// memory still serve this run).
    file: Option<File>,
    path: PathBuf,
    /// Entry lines in the file (live or not).
    lines: usize,
    /// A rewrite is under way (one at a time).
    compacting: bool,
}

impl Inner {
    /// The file holds more than twice as many lines as live entries.
    fn bloated(&self) -> bool {
        self.file.is_some() && !self.compacting && self.lines > 2 * self.known.len()
    }
}

/// The record, shared by the upload workers. Without a usable file it
/// still remembers for this run.
pub(crate) struct Digests {
    inner: Mutex<Inner>,
}

impl Digests {
    /// A record that starts empty and is not written (`--md5-on-start`,
    /// or no writable state directory).
    pub(crate) fn in_memory() -> Self {
        Digests {
            inner: Mutex::new(Inner {
                known: HashMap::new(),
                file: None,
                path: PathBuf::new(),
                lines: 0,
                compacting: false,
            }),
        }
    }

    /// Load `path` (created with its directory if missing), keep the
    /// entries whose files are unchanged, and open it for appending.
    /// Blocking: one stat per entry.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let (mut known, lines) = parse_all(&text);
        known.retain(|p, (fp, _)| {
            std::fs::symlink_metadata(p)
                .map(|m| m.is_file() && Fingerprint::of(&m) == *fp)
                .unwrap_or(false)
        });
        if text.is_empty() || known.len() < lines || !text.ends_with(b"\n") {
            rewrite(path, &known)?;
        }
        let file = OpenOptions::new().append(true).open(path)?;
        // Rewritten above unless every line was a distinct live entry.
        let lines = known.len();
        Ok(Digests {
            inner: Mutex::new(Inner {
                known,
                file: Some(file),
                path: path.to_path_buf(),
                lines,
                compacting: false,
            }),
        })
    }

    /// How many files the record knows.
    pub(crate) fn len(&self) -> usize {
        self.lock().known.len()
    }

    /// The recorded MD5 (hex) of `path`, if its fingerprint is unchanged.
    pub(crate) fn lookup(&self, path: &Path, fp: &Fingerprint) -> Option<String> {
        match self.lock().known.get(path) {
            Some((known, md5)) if known == fp => Some(md5.clone()),
            _ => None,
        }
    }

    /// Record the MD5 just read from `path` (whose fingerprint was `fp`
    /// before and after the read).
    ///
    /// A file deleted while it was being uploaded may have had its delete
    /// event handled (and its entry forgotten) before this: the file is
    /// looked at again after the entry is in, and the entry taken out if
    /// it is gone, so no entry outlives its file whatever the order.
    pub(crate) fn remember(self: &Arc<Self>, path: &Path, fp: Fingerprint, md5: &str) {
        {
            let mut inner = self.lock();
            if inner.known.get(path) == Some(&(fp, md5.to_string())) {
                return;
            }
            inner
                .known
                .insert(path.to_path_buf(), (fp, md5.to_string()));
            let line = format_line(path, &fp, md5);
            if let Some(f) = inner.file.as_mut() {
                match f.write_all(&line) {
                    Ok(()) => inner.lines += 1,
                    Err(e) => {
                        tracing::warn!(
                            "writing the digest record {}: {e}; files will be read again at the next start",
                            inner.path.display()
                        );
                        inner.file = None;
                    }
                }
            }
        }
        let still =
            std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && Fingerprint::of(&m) == fp);
        if !still {
            self.forget(path);
        } else {
            self.compact_if_bloated();
        }
    }

    /// `path` was deleted or moved away: its entry goes.
    pub(crate) fn forget(self: &Arc<Self>, path: &Path) {
        if self.lock().known.remove(path).is_some() {
            self.compact_if_bloated();
        }
    }

    /// Keep only the entries `keep` accepts (a directory deleted or moved
    /// away, a rescan that no longer finds a file). One pass over the
    /// entries, under the lock.
    pub(crate) fn retain(self: &Arc<Self>, keep: impl Fn(&Path) -> bool) {
        let dropped = {
            let mut inner = self.lock();
            let before = inner.known.len();
            inner.known.retain(|p, _| keep(p));
            before - inner.known.len()
        };
        if dropped > 0 {
            self.compact_if_bloated();
        }
    }

    /// Entry lines in the file now.
    #[cfg(test)]
    pub(crate) fn lines(&self) -> usize {
        self.lock().lines
    }

    /// Rewrite the file with the live entries when it holds more than
    /// twice as many lines, in a thread of its own (the caller may be an
    /// async task or the event loop; a large record takes a moment to
    /// write and sync).
    fn compact_if_bloated(self: &Arc<Self>) {
        {
            let mut inner = self.lock();
            if !inner.bloated() {
                return;
            }
            inner.compacting = true;
        }
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("digest-record".into())
            .spawn(move || me.compact());
        if spawned.is_err() {
            // No thread to be had: here, then.
            self.compact();
        }
    }

    /// Rewrite the file with the live entries (under the lock, so no
    /// line is appended to the old file meanwhile) and append to the new
    /// one from then on.
    fn compact(&self) {
        let mut inner = self.lock();
        inner.compacting = false;
        let path = inner.path.clone();
        let reopened =
            rewrite(&path, &inner.known).and_then(|()| OpenOptions::new().append(true).open(&path));
        match reopened {
            Ok(f) => {
                tracing::debug!(
                    "digest record {} rewritten: {} lines down to {} (the live files)",
                    path.display(),
                    inner.lines,
                    inner.known.len()
                );
                inner.lines = inner.known.len();
                inner.file = Some(f);
            }
            Err(e) => {
                tracing::warn!(
                    "rewriting the digest record {}: {e}; no longer written this run \
                     (the next start rewrites it)",
                    path.display()
                );
                inner.file = None;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it leaves a consistent map (each update
        // is one insert).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Write `known` to `path` through a temporary file and a rename, so a
/// crash leaves the old record or the new one.
fn rewrite(path: &Path, known: &HashMap<PathBuf, (Fingerprint, String)>) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut out = io::BufWriter::new(
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?,
    );
    out.write_all(HEADER.as_bytes())?;
    for (p, (fp, md5)) in known {
        out.write_all(&format_line(p, fp, md5))?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The daemon's record for its key space: `<state dir>/tablesnap-<id>.digests`,
/// or one kept in memory only when `--md5-on-start` asks for every file to
/// be read or the state directory cannot be used (said in a warning).
pub(crate) async fn load(
    state_dir: Option<&Path>,
    md5_on_start: bool,
    bucket: &str,
    naming: &super::keys::KeyNaming,
) -> Digests {
    if md5_on_start {
        tracing::info!("--md5-on-start: reading every file for its MD5, the digest record unused");
        return Digests::in_memory();
    }
    let dir = state_dir.map_or_else(crate::host::dirs::state_dir, Path::to_path_buf);
    let path = dir.join(format!("tablesnap-{}.digests", naming.space_id(bucket)));
    let shown = path.clone();
    match tokio::task::spawn_blocking(move || Digests::open(&path)).await {
        Ok(Ok(d)) => {
            tracing::info!(
                "digest record {}: {} unchanged file(s) known",
                shown.display(),
                d.len()
            );
            d
        }
        Ok(Err(e)) => {
            tracing::warn!(
                "digest record {}: {e}; every file is read for its MD5 at start \
                 (set --state-dir to a writable directory)",
                shown.display()
            );
            Digests::in_memory()
        }
        Err(e) => {
            tracing::warn!("loading the digest record: {e}");
            Digests::in_memory()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD5: &str = "0123456789abcdef0123456789abcdef";

    fn fp(n: u64) -> Fingerprint {
        Fingerprint {
            dev: 2049,
            ino: n,
            size: 10 * n,
            mtime_s: 1_764_000_000,
            mtime_ns: 123_456_789,
        }
    }

    #[test]
    fn lines_round_trip_with_awkward_paths() {
        let odd = PathBuf::from(OsStr::from_bytes(b"/d/a b\\c\nd\xff-Data.db"));
        for p in [PathBuf::from("/var/lib/cassandra/ks/t/x-Data.db"), odd] {
            let line = format_line(&p, &fp(7), MD5);
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            let parsed = parse_line(&line[..line.len() - 1]).unwrap();
            assert_eq!(parsed, (p, fp(7), MD5.to_string()));
        }
    }

    #[test]
    fn malformed_and_torn_lines_are_dropped_and_later_lines_win() {
        let mut text = HEADER.as_bytes().to_vec();
        text.extend(format_line(Path::new("/a"), &fp(1), MD5));
        text.extend(format_line(Path::new("/a"), &fp(2), MD5));
        text.extend(b"nonsense line\n");
        text.extend(b"0123 1 2 3 4 5 /short-md5\n");
        text.extend(b"0123456789abcdef0123456789abcdef 1 2 3 4 5 relative\n");
        text.extend(b"0123456789abcdef0123456789abcdef -1 2 3 4 5 /negative-size\n");
        let torn = format_line(Path::new("/b"), &fp(3), MD5);
        text.extend(&torn[..20]);
        let (known, lines) = parse_all(&text);
        assert_eq!(lines, 2);
        assert_eq!(known.len(), 1);
        assert_eq!(known[Path::new("/a")], (fp(2), MD5.to_string()));
    }

    #[test]
    fn a_reopened_record_keeps_unchanged_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"aaaa").unwrap();
        std::fs::write(&b, b"bbbb").unwrap();
        let record = dir.path().join("state/record");
        let d = Arc::new(Digests::open(&record).unwrap());
        let fa = Fingerprint::of(&std::fs::metadata(&a).unwrap());
        let fb = Fingerprint::of(&std::fs::metadata(&b).unwrap());
        d.remember(&a, fa, MD5);
        d.remember(&b, fb, MD5);
        d.remember(&b, fb, MD5);
        assert_eq!(d.lookup(&a, &fa).as_deref(), Some(MD5));
        drop(d);

        // b grows: its entry no longer matches and is dropped at start.
        std::fs::write(&b, b"bbbbb").unwrap();
        let d = Digests::open(&record).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d.lookup(&a, &fa).as_deref(), Some(MD5));
        let fb2 = Fingerprint::of(&std::fs::metadata(&b).unwrap());
        assert_eq!(d.lookup(&b, &fb2), None);
        let text = std::fs::read_to_string(&record).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    /// Entry lines of the record file (the header left out).
    fn file_lines(record: &Path) -> usize {
        std::fs::read_to_string(record)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .count()
    }

    /// Wait (bounded) for the compaction thread.
    fn settled(d: &Digests, record: &Path) -> (usize, usize, usize) {
        let t = std::time::Instant::now();
        loop {
            let now = (d.len(), d.lines(), file_lines(record));
            if now.1 <= 2 * now.0 || t.elapsed() > std::time::Duration::from_secs(10) {
                return now;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn deleted_files_leave_and_the_file_is_rewritten_at_twice_the_live_entries() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("state/record");
        let d = Arc::new(Digests::open(&record).unwrap());
        let files: Vec<PathBuf> = (0..10).map(|i| dir.path().join(format!("f{i}"))).collect();
        for f in &files {
            std::fs::write(f, f.to_str().unwrap()).unwrap();
            d.remember(f, Fingerprint::of(&std::fs::metadata(f).unwrap()), MD5);
        }
        assert_eq!((d.len(), d.lines(), file_lines(&record)), (10, 10, 10));
        // Six go (compaction): at 4 live entries the file's 10 lines are
        // more than twice as many, and it is rewritten with the 4.
        for f in &files[..6] {
            std::fs::remove_file(f).unwrap();
            d.forget(f);
        }
        assert_eq!(settled(&d, &record), (4, 4, 4));
        // A directory goes: one pass drops what was below it.
        d.retain(|p| !p.starts_with(dir.path()));
        assert_eq!(settled(&d, &record), (0, 0, 0));
        // Appending goes on in the rewritten file, and it reopens whole.
        std::fs::write(&files[0], b"again").unwrap();
        let fp = Fingerprint::of(&std::fs::metadata(&files[0]).unwrap());
        d.remember(&files[0], fp, MD5);
        drop(d);
        let d = Digests::open(&record).unwrap();
        assert_eq!(d.lookup(&files[0], &fp).as_deref(), Some(MD5));
        assert_eq!((d.len(), file_lines(&record)), (1, 1));
    }

    #[test]
    fn a_file_deleted_while_it_was_uploaded_leaves_no_entry() {
        let dir = tempfile::tempdir().unwrap();
        let d = Arc::new(Digests::open(&dir.path().join("record")).unwrap());
        let f = dir.path().join("gone-Data.db");
        std::fs::write(&f, b"x").unwrap();
        let fp = Fingerprint::of(&std::fs::metadata(&f).unwrap());
        // Its delete event was handled before the upload finished.
        std::fs::remove_file(&f).unwrap();
        d.forget(&f);
        d.remember(&f, fp, MD5);
        assert_eq!(d.len(), 0);
        assert_eq!(d.lookup(&f, &fp), None);
    }
}

#[cfg(test)]
#[path = "../proptests/digests.rs"]
mod proptests;
