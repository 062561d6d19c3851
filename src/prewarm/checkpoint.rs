//! A warm-up's checkpoint: one JSON file per volume in the state
//! directory (`<state dir>/prewarm/<volume id>.json`), so a warm-up cut
//! short by a stop, a crash or a reboot goes on from where it was, and
//! `list-volumes` can show how far it is. Written whole or not at all
//! (a temporary file renamed through the directory's descriptor).
//!
//! ```json
//! {"version":1,"volume_id":"vol-0abc...","device":"/dev/nvme1n1",
//!  "size_bytes":107374182400,"done_bytes":5368709120,
//!  "started":"2026-11-27T08:00:00Z","updated":"2026-11-27T08:01:40Z",
//!  "finished":false,"last_error":null,"rate_bytes_per_sec":53687091}
//! ```
//!
//! `done_bytes` counts from byte 0 without a gap: everything below it has
//! been read, nothing above it is claimed.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::host::safe_path::SafeDir;

/// The checkpoint format's version; a file of another version is not
/// trusted (the warm-up starts over).
const VERSION: u32 = 1;

/// The directory below the state directory that holds the checkpoints,
/// lock files and detached logs.
pub(crate) const SUBDIR: &str = "prewarm";

/// One volume's warm-up as far as it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub version: u32,
    pub volume_id: String,
    /// The device it was read through last (names change across reboots;
    /// the volume id is the identity).
    pub device: PathBuf,
    pub size_bytes: u64,
    /// Read contiguously from byte 0.
    pub done_bytes: u64,
    /// When the first run of this warm-up started.
    pub started: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub finished: bool,
    #[serde(default)]
    pub last_error: Option<String>,
    /// The last run's average read rate, for an ETA.
    #[serde(default)]
    pub rate_bytes_per_sec: Option<u64>,
}

impl Checkpoint {
    /// A warm-up of `size_bytes` that has read nothing yet.
    pub(crate) fn new(volume_id: &str, device: &Path, size_bytes: u64) -> Checkpoint {
        let now = Utc::now();
        Checkpoint {
            version: VERSION,
            volume_id: volume_id.to_string(),
            device: device.to_path_buf(),
            size_bytes,
            done_bytes: 0,
            started: now,
            updated: now,
            finished: false,
            last_error: None,
            rate_bytes_per_sec: None,
        }
    }

    /// Parse a checkpoint file's text and check it holds together.
    pub(crate) fn parse(text: &str, volume_id: &str) -> Result<Checkpoint, String> {
        let c: Checkpoint = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if c.version != VERSION {
            return Err(format!(
                "version {} (this build writes {VERSION})",
                c.version
            ));
        }
        if c.volume_id != volume_id {
            return Err(format!("it is for {}", c.volume_id));
        }
        if c.done_bytes > c.size_bytes {
            return Err(format!("{} bytes done of {}", c.done_bytes, c.size_bytes));
        }
        if c.finished && c.done_bytes != c.size_bytes {
            return Err("finished before its end".into());
        }
        Ok(c)
    }
}

/// Where a warm-up of a device of `size` bytes starts, given the
/// checkpoint found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Resume {
    /// Finished before: nothing to read.
    Done,
    /// Go on from this byte (0 for a first run).
    From(u64),
    /// The checkpoint is of a device of another size: start over.
    SizeChanged { was: u64 },
}

pub(crate) fn resume(found: Option<&Checkpoint>, size: u64) -> Resume {
    match found {
        None => Resume::From(0),
        Some(c) if c.size_bytes != size => Resume::SizeChanged { was: c.size_bytes },
        Some(c) if c.finished => Resume::Done,
        Some(c) => Resume::From(c.done_bytes),
    }
}

/// A volume id that cannot name a checkpoint file.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an EBS volume id (vol- and 8 to 32 hexadecimal digits, e.g. vol-0123456789abcdef0)")]
pub(crate) struct BadVolumeId(pub String);

/// `id` if it is `vol-` and 8 to 32 lowercase hexadecimal digits (EC2's
/// are 8 or 17): it becomes a file name, so nothing else passes.
pub(crate) fn check_volume_id(id: &str) -> Result<&str, BadVolumeId> {
    let ok = id.strip_prefix("vol-").is_some_and(|hex| {
        (8..=32).contains(&hex.len())
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(id)
    } else {
        Err(BadVolumeId(id.to_string()))
    }
}

/// The checkpoint directory, opened without following links.
#[derive(Debug)]
pub(crate) struct Store {
    dir: SafeDir,
}

impl Store {
    /// `state_dir/prewarm`, made if missing.
    pub(crate) fn create(state_dir: &Path) -> io::Result<Store> {
        let dir = SafeDir::create(state_dir)?.create_dirs(Path::new(SUBDIR))?;
        Ok(Store { dir })
    }

    /// `state_dir/prewarm` if it exists.
    pub(crate) fn open(state_dir: &Path) -> io::Result<Store> {
        let dir = SafeDir::open(state_dir)?.dir(Path::new(SUBDIR))?;
        Ok(Store { dir })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn file_of(&self, volume_id: &str) -> PathBuf {
        self.path().join(file_name(volume_id))
    }

    /// The checkpoint of `volume_id`: `Ok(None)` when there is none,
    /// `Err` (the reason) when it cannot be read or is not one.
    pub(crate) fn load(&self, volume_id: &str) -> Result<Option<Checkpoint>, String> {
        use std::io::Read;
        let mut f = match self.dir.open_file(Path::new(&file_name(volume_id))) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let mut text = String::new();
        // A checkpoint is a few hundred bytes; a huge file is not one.
        (&mut f)
            .take(64 << 10)
            .read_to_string(&mut text)
            .map_err(|e| e.to_string())?;
        Checkpoint::parse(&text, volume_id).map(Some)
    }

    /// Replace the checkpoint of `c.volume_id` (mode 0644: list-volumes
    /// may run as another user).
    pub(crate) fn save(&self, c: &Checkpoint) -> io::Result<()> {
        let mut text = serde_json::to_vec(c).map_err(io::Error::other)?;
        text.push(b'\n');
        self.dir
            .replace_file(&file_name(&c.volume_id), &text, 0o644)
    }

    /// The detached warm-up's log of `volume_id`, for appending.
    pub(crate) fn log(&self, volume_id: &str) -> io::Result<(std::fs::File, PathBuf)> {
        let name = format!("{volume_id}.log");
        Ok((self.dir.append(&name)?, self.path().join(name)))
    }
}

fn file_name(volume_id: &str) -> String {
    format!("{volume_id}.json")
}

/// The lock file a running warm-up of `volume_id` holds.
pub(crate) fn lock_name(volume_id: &str) -> String {
    format!("{volume_id}.lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOL: &str = "vol-0123456789abcdef0";

    #[test]
    fn volume_ids_are_plain_hex() {
        assert!(check_volume_id(VOL).is_ok());
        assert!(check_volume_id("vol-0abc1234").is_ok());
        for bad in [
            "",
            "vol-",
            "vol-abc",
            "vol-0123456789ABCDEF0",
            "vol-../../etc",
            "snap-0123456789abcdef0",
            "vol-0123456789abcdef0/x",
            "vol-0123456789abcdef0.json",
            "vol-0123456789abcdef0123456789abcdef0",
        ] {
            assert!(check_volume_id(bad).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn a_checkpoint_reads_back_and_must_hold_together() {
        let mut c = Checkpoint::new(VOL, Path::new("/dev/loop7"), 1 << 30);
        c.done_bytes = 1 << 20;
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(Checkpoint::parse(&text, VOL).unwrap(), c);
        assert!(Checkpoint::parse(&text, "vol-0123456789abcdef1")
            .unwrap_err()
            .contains("is for vol-0123456789abcdef0"));
        let mut over = c.clone();
        over.done_bytes = over.size_bytes + 1;
        assert!(Checkpoint::parse(&serde_json::to_string(&over).unwrap(), VOL).is_err());
        let mut early = c.clone();
        early.finished = true;
        assert!(Checkpoint::parse(&serde_json::to_string(&early).unwrap(), VOL).is_err());
        assert!(Checkpoint::parse("{\"version\":1", VOL).is_err());
        let v2 = text.replace("\"version\":1", "\"version\":2");
        assert!(Checkpoint::parse(&v2, VOL)
            .unwrap_err()
            .contains("version 2"));
    }

    #[test]
    fn where_a_warm_up_resumes() {
        let mut c = Checkpoint::new(VOL, Path::new("/dev/loop7"), 1000);
        assert_eq!(resume(None, 1000), Resume::From(0));
        c.done_bytes = 400;
        assert_eq!(resume(Some(&c), 1000), Resume::From(400));
        assert_eq!(resume(Some(&c), 2000), Resume::SizeChanged { was: 1000 });
        c.done_bytes = 1000;
        c.finished = true;
        assert_eq!(resume(Some(&c), 1000), Resume::Done);
        assert_eq!(resume(Some(&c), 999), Resume::SizeChanged { was: 1000 });
    }

    #[test]
    fn the_store_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Store::open(dir.path()).is_err(), "nothing made yet");
        let store = Store::create(dir.path()).unwrap();
        assert_eq!(store.load(VOL), Ok(None));
        let mut c = Checkpoint::new(VOL, Path::new("/dev/loop7"), 4096);
        store.save(&c).unwrap();
        c.done_bytes = 4096;
        c.finished = true;
        store.save(&c).unwrap();
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.load(VOL), Ok(Some(c)));
        let names: Vec<_> = std::fs::read_dir(store.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [format!("{VOL}.json")], "no temporary file left");
        std::fs::write(store.file_of(VOL), "garbage").unwrap();
        assert!(again.load(VOL).is_err());
    }
}
