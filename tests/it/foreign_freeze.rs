//! Someone else's freeze is not ours to undo. Backup agents, LVM or
//! database tools freeze filesystems too; when their freeze meets ours,
//! the watchdog must thaw only what this run froze:
//!
//! - our FIFREEZE queued behind another tool's slow freeze when the
//!   deadline passes ends in EBUSY: their freeze stays;
//! - once the watchdog has fired, a freeze another tool makes of a
//!   filesystem we already thawed stays.
//!
//! A FIFREEZE is held inside the kernel by a writer parked in the write
//! section (`TrapPage`); another tool's freeze is kept in its flush by
//! freezing the filesystem that holds the lab's volume images, so the
//! flush's writes wait.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::slow_freeze::TrapPage;
use crate::support::Setup;
use crate::support::{lab_prerequisites, thaw_if_frozen, LabOpts};

pub(crate) fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `fsfreeze -f` of `mp`, started: it returns once the freeze is complete.
pub(crate) fn their_freeze(mp: &Path) -> Child {
    Command::new("fsfreeze").arg("-f").arg(mp).spawn().unwrap()
}

/// The lab's directory, with its `images` directory (where the lab keeps
/// each volume's bytes) on a filesystem of its own that the test can
/// freeze: while it is frozen, writes to every lab volume wait.
pub(crate) struct ImagesFs {
    dir: tempfile::TempDir,
    device: String,
}

impl ImagesFs {
    pub(crate) fn new() -> ImagesFs {
        let dir = tempfile::Builder::new()
            .prefix("snaptastic-lab-")
            .tempdir()
            .unwrap();
        let img = dir.path().join("images.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(4 << 30)
            .unwrap();
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
        let out = run(Command::new("losetup").args(["-f", "--show"]).arg(&img));
        let device = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let fs = ImagesFs { dir, device };
        std::fs::create_dir(fs.mount_point()).unwrap();
        run(Command::new("mount").arg(&fs.device).arg(fs.mount_point()));
        fs
    }

    pub(crate) fn lab_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub(crate) fn mount_point(&self) -> PathBuf {
        self.dir.path().join("images")
    }
}

impl Drop for ImagesFs {
    fn drop(&mut self) {
        thaw_if_frozen(&self.mount_point());
        let _ = Command::new("umount").arg(self.mount_point()).status();
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
    }
}

/// Thaws the listed mount points when dropped (also while a test
/// panics), before the lab unmounts them.
pub(crate) struct ThawOnDrop(pub(crate) Vec<PathBuf>);

impl Drop for ThawOnDrop {
    fn drop(&mut self) {
        for mp in &self.0 {
            thaw_if_frozen(mp);
        }
    }
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn someone_elses_freeze_that_ours_queued_behind_is_left_frozen() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let Some(trap) = TrapPage::for_test() else {
        return;
    };
    let images = ImagesFs::new();
    let opts = LabOpts {
        dir: Some(images.lab_dir()),
        ..Default::default()
    };
    let s = Setup::with_lab(&moto, opts, &[("/dev/sdf", "ext4", 1)]);
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    let mp = s.mp(0);
    let _thaw = ThawOnDrop(vec![mp.clone(), images.mount_point()]);

    // Their freeze starts first and waits for a writer in the filesystem.
    let writer = trap.park_writer(&mp.join("parked"));
    let mut theirs = their_freeze(&mp);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        theirs.try_wait().unwrap().is_none(),
        "their freeze did not wait"
    );

    // Ours queues behind it, and its deadline passes.
    let mut ours = s
        .lab
        .run(&["make-snapshots", "db", "--freeze-timeout", "1s"])
        .config(&s.cfg)
        .spawn();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        ours.try_wait().unwrap().is_none(),
        "make-snapshots exited while its FIFREEZE was outstanding"
    );

    // Their freeze goes on to its flush, which waits on the frozen images
    // filesystem while holding the superblock: a thaw issued now is
    // queued until their freeze completes, and then undoes it.
    run(Command::new("fsfreeze").arg("-f").arg(images.mount_point()));
    trap.release();
    assert!(writer.join().unwrap() > 0);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        theirs.try_wait().unwrap().is_none(),
        "their freeze did not wait for its flush"
    );
    run(Command::new("fsfreeze").arg("-u").arg(images.mount_point()));
    assert!(theirs.wait().unwrap().success(), "their freeze failed");

    let out = ours.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(s.snapshot_calls(), 0, "{stderr}");
    assert!(
        stderr.contains("already frozen by someone else"),
        "{stderr}"
    );
    // Their freeze is intact until they thaw it.
    let t = Instant::now();
    assert!(
        thaw_if_frozen(&mp),
        "the run undid someone else's freeze: {stderr}"
    );
    std::fs::write(mp.join("after"), b"ok").unwrap();
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_freeze_made_after_our_watchdog_fired_is_left_alone() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let Some(trap) = TrapPage::for_test() else {
        return;
    };
    let s = Setup::new(
        &moto,
        false,
        None,
        &[("/dev/sdf", "ext4", 1), ("/dev/sdg", "ext4", 1)],
    );
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    let (fast, slow) = (s.mp(0), s.mp(1));
    let _thaw = ThawOnDrop(vec![fast.clone(), slow.clone()]);

    // Our freeze of `slow` stays in the kernel past the deadline; `fast`
    // was frozen and is thawed at the deadline.
    let writer = trap.park_writer(&slow.join("parked"));
    let started = Instant::now();
    let mut ours = s
        .lab
        .run(&["make-snapshots", "db", "--freeze-timeout", "1s"])
        .config(&s.cfg)
        .spawn();
    std::thread::sleep(Duration::from_millis(2500));
    std::fs::write(fast.join("thawed"), b"ok").unwrap();
    assert!(
        ours.try_wait().unwrap().is_none(),
        "make-snapshots exited while its FIFREEZE was outstanding"
    );

    // Another tool freezes `fast` while the watchdog still waits for our
    // outstanding freeze of `slow`.
    let mut theirs = their_freeze(&fast);
    assert!(theirs.wait().unwrap().success());
    std::thread::sleep(Duration::from_secs(1));

    trap.release();
    assert!(writer.join().unwrap() > 0);
    let out = ours.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // Ours is undone; theirs stays until they thaw it.
    std::fs::write(slow.join("after"), b"ok").unwrap();
    assert!(
        thaw_if_frozen(&fast),
        "the watchdog undid a freeze made after its thaw: {stderr}"
    );
    eprintln!("run took {:?}", started.elapsed());
}
