//! tablesnap's stop is bounded (issue 25, part 4): a SIGTERM during a
//! `-B` scan of a million files, or during a part read that crawls,
//! exits within 10 s, and says (and exits 1) what is owed, which the
//! next `-B` start catches up.

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::support::{lab_prerequisites, place_cold, succeed as sh, varied_bytes, Run, S3};

/// A tmpfs mounted on a temporary directory for one test: a million
/// empty files are created in seconds there, and the unmount on drop
/// gives their memory back at once.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(inodes: u64) -> Tmpfs {
        use nix::mount::{mount, MsFlags};
        let dir = tempfile::tempdir().unwrap();
        let opts = format!("size=64m,nr_inodes={inodes},mode=0755");
        mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(opts.as_str()),
        )
        .expect("mount a tmpfs (needs root)");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.dir.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// `dirs` directories of `per_dir` empty files each under `root`, named
/// as Cassandra names its components, by as many threads as there are
/// CPUs: one `mknodat` per file (no open, no close), relative to its
/// directory's descriptor. Returns how many files were made.
fn make_files(root: &Path, dirs: usize, per_dir: usize) -> usize {
    use nix::sys::stat::{mknodat, Mode, SFlag};
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for d in (t..dirs).step_by(threads) {
                    let dir = root.join(format!("ks{}/tbl{d}", d % 10));
                    std::fs::create_dir_all(&dir).unwrap();
                    let fd = std::fs::File::open(&dir).unwrap();
                    for i in 0..per_dir {
                        mknodat(
                            fd.as_fd(),
                            format!("nb-{i}-big-Data.db").as_str(),
                            SFlag::S_IFREG,
                            Mode::from_bits_truncate(0o644),
                            0,
                        )
                        .unwrap();
                    }
                }
            });
        }
    });
    dirs * per_dir
}

/// Wait (bounded) until `log` holds a line with `what`.
fn wait_for_line(log: &Path, what: &str, child: &mut Child) {
    let t = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(what) {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("tablesnap exited ({status}) before {what:?}:\n{text}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no {what:?} after 60 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SIGTERM `child`; returns how long it took to exit and its exit code
/// (killed after 60 s, and then the code is -1).
fn terminate(child: &mut Child) -> (Duration, i32) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (t.elapsed(), status.code().unwrap_or(-1));
        }
        if t.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            return (t.elapsed(), -1);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
#[ignore = "needs root (a tmpfs mount): scripts/test.sh runs it as root"]
fn sigterm_during_a_backup_scan_of_a_million_files_exits_within_10_s_owing_the_rest() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s3 = S3::new(&moto);
    let fs = Tmpfs::mount(1_100_000);
    let t = Instant::now();
    let made = make_files(fs.path(), 1000, 1000);
    eprintln!("made {made} empty files in {:?}", t.elapsed());
    assert!(made >= 1_000_000);

    let state = tempfile::tempdir().unwrap();
    let log = state.path().join("tablesnap.log");
    let root = fs.path().to_str().unwrap();
    let mut child = Run::new(&["tablesnap", &s3.bucket, root, "-r", "-B", "-n", "host1"])
        .env("AWS_ENDPOINT_URL", &moto)
        .env("AWS_REGION", "us-east-1")
        .env("SNAPTASTIC_STATE_DIR", state.path())
        .spawn_logging_to(&log);
    // The -B walk starts as the watches are in place; a moment later it
    // is under way (it takes seconds over a million files).
    wait_for_line(&log, "watching ", &mut child);
    std::thread::sleep(Duration::from_millis(250));
    let (took, code) = terminate(&mut child);
    let stderr = std::fs::read_to_string(&log).unwrap();
    eprintln!("stopped in {took:?} (exit {code})");
    assert!(
        took < Duration::from_secs(10),
        "stopping took {took:?}:\n{stderr}"
    );
    // Honest: the scan did not queue everything, so something is owed
    // (exit 1), and the last line says what and who picks it up.
    assert_eq!(code, 1, "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("owed:")
            && last.contains("the -B scan was cut short")
            && last.contains("the next start with -B picks them up"),
        "{last}"
    );
    drop(fs);
}

/// A small ext4 on a loop device whose reads, by the processes put in its
/// blkio cgroup (v1), are throttled to a crawl: a part read there takes
/// minutes, as on a saturated disk at idle I/O priority.
struct SlowDisk {
    dir: tempfile::TempDir,
    device: String,
    /// `MAJ:MIN` of the loop device.
    numbers: String,
    cgroup: PathBuf,
}

/// The blkio controller of cgroup v1, where throttling a device's reads
/// for some processes is one write.
const BLKIO: &str = "/sys/fs/cgroup/blkio";

impl SlowDisk {
    /// `None` (after saying why) without the blkio controller; in CI its
    /// absence fails the test instead.
    fn new(bytes_per_second: u64) -> Option<SlowDisk> {
        let knob = Path::new(BLKIO).join("blkio.throttle.read_bps_device");
        if !knob.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{} missing: this test needs cgroup v1's blkio controller",
                knob.display()
            );
            eprintln!("SKIPPED: no {} (cgroup v1 blkio)", knob.display());
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        sh(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
        let out = sh(Command::new("losetup").args(["-f", "--show"]).arg(&img));
        let device = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let rdev = std::fs::metadata(&device).unwrap().rdev();
        let numbers = format!(
            "{}:{}",
            nix::sys::stat::major(rdev),
            nix::sys::stat::minor(rdev)
        );
        let cgroup = Path::new(BLKIO).join(crate::support::unique("snaptastic-test"));
        let disk = SlowDisk {
            dir,
            device,
            numbers,
            cgroup,
        };
        std::fs::create_dir(disk.mount_point()).unwrap();
        sh(Command::new("mount")
            .arg(&disk.device)
            .arg(disk.mount_point()));
        std::fs::create_dir(&disk.cgroup).unwrap();
        disk.limit(bytes_per_second);
        Some(disk)
    }

    fn mount_point(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// Reads of the device by the cgroup's processes, at most this many
    /// bytes a second (0: no limit).
    fn limit(&self, bytes_per_second: u64) {
        std::fs::write(
            self.cgroup.join("blkio.throttle.read_bps_device"),
            format!("{} {bytes_per_second}", self.numbers),
        )
        .unwrap();
    }

    /// A command line that runs `program args...` in the cgroup.
    fn run_inside<'a>(&'a self, program: &'a str, args: &[&'a str]) -> Vec<String> {
        let mut v = vec![
            "-c".to_string(),
            format!(
                "echo $$ > {}/cgroup.procs && exec \"$0\" \"$@\"",
                self.cgroup.display()
            ),
            program.to_string(),
        ];
        v.extend(args.iter().map(|a| a.to_string()));
        v
    }
}

impl Drop for SlowDisk {
    fn drop(&mut self) {
        // Reads still queued behind the limit would hold the unmount.
        self.limit(0);
        let _ = Command::new("umount").arg(self.mount_point()).status();
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
        let _ = std::fs::remove_dir(&self.cgroup);
    }
}

#[test]
#[ignore = "needs root (a loop device, mount, a blkio cgroup): scripts/test.sh runs it as root"]
fn sigterm_during_a_part_read_at_a_crawl_exits_within_10_s() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    // 4 KiB/s: one 1 MiB read takes minutes.
    let Some(disk) = SlowDisk::new(4096) else {
        return;
    };
    let s3 = S3::new(&moto);
    let data = disk.mount_point().join("data");
    std::fs::create_dir(&data).unwrap();
    let state = tempfile::tempdir().unwrap();
    let log = state.path().join("tablesnap.log");
    let bin = crate::support::snaptastic_bin();
    let args = disk.run_inside(
        bin.to_str().unwrap(),
        &[
            "tablesnap",
            &s3.bucket,
            data.to_str().unwrap(),
            "-n",
            "host1",
        ],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = Run::program(Path::new("/bin/sh"), &args)
        .env("AWS_ENDPOINT_URL", &moto)
        .env("AWS_REGION", "us-east-1")
        .env("SNAPTASTIC_STATE_DIR", state.path())
        .spawn_logging_to(&log);
    wait_for_line(&log, "watching ", &mut child);
    // A cold 10 MiB file: it goes up in parts, each read from the disk.
    place_cold(&data.join("nb-1-big-Data.db"), &varied_bytes(10 << 20, 3));
    // Its upload is started: its first part is being read, at a crawl.
    let t = Instant::now();
    loop {
        let r = s3
            .rt
            .block_on(s3.client.list_multipart_uploads().bucket(&s3.bucket).send())
            .unwrap();
        if !r.uploads().is_empty() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no multipart upload after 30 s:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (took, code) = terminate(&mut child);
    let stderr = std::fs::read_to_string(&log).unwrap();
    eprintln!("stopped in {took:?} (exit {code})");
    assert!(
        took < Duration::from_secs(10),
        "stopping took {took:?}:\n{stderr}"
    );
    assert_eq!(code, 1, "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("owed: 1 file(s) not uploaded (1 cut off after 8s)"),
        "{last}"
    );
    drop(disk);
}
