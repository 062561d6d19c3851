//! make-snapshots against the lab: consistent snapshots while a writer
//! runs, and a filesystem that is always thawed, whatever goes wrong.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::lab_prerequisites;
use crate::support::mounted_lab;
use crate::support::{mounted_at, Setup};

/// Whether a write to the filesystem completes within a few seconds (a
/// frozen filesystem blocks it).
fn writable(mp: &Path) -> bool {
    Command::new("timeout")
        .args(["5", "sh", "-c"])
        .arg(format!(
            "echo ok > '{0}/probe' && sync -f '{0}/probe'",
            mp.display()
        ))
        .status()
        .unwrap()
        .success()
}

/// A writer appending lines as fast as it can.
struct Writer(std::process::Child);

impl Writer {
    fn start(mp: &Path) -> Writer {
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "i=0; while :; do echo \"line $i\" >> '{}/log'; i=$((i+1)); done",
                mp.display()
            ))
            .spawn()
            .unwrap();
        Writer(child)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lines(mp: &Path) -> usize {
    std::fs::read_to_string(mp.join("log"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn snapshot_under_load(fs: &str) {
    let Some(s) = mounted_lab(&[("/dev/sdf", fs, 1)]) else {
        return;
    };
    let mp = s.mp(0);
    let writer = Writer::start(&mp);
    std::thread::sleep(Duration::from_millis(300));
    let d = s.snaptastic(&["make-snapshots", "db"]).expect_code(0);
    let out = d.stdout();
    assert!(d.stderr().contains("frozen for"), "{}", d.stderr());
    let snap = out
        .split_whitespace()
        .find(|w| w.starts_with("snap-"))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    // The writer goes on after the thaw.
    let before = lines(&mp);
    let t = Instant::now();
    while lines(&mp) <= before {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the writer is stuck after make-snapshots"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(writer);

    // The snapshot carries 0.2.12's tags and restores to a clean filesystem.
    let ec2 = s.lab.ec2();
    let r = ec2
        .rt
        .block_on(ec2.client.describe_snapshots().snapshot_ids(&snap).send())
        .unwrap();
    let tags: std::collections::BTreeMap<_, _> = r.snapshots()[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect();
    for k in [
        "instance_id",
        "mount_point",
        "role",
        "cluster",
        "environment",
        "expires",
        "created",
    ] {
        assert!(tags.contains_key(k), "{k} missing: {tags:?}");
    }
    assert_eq!(tags["mount_point"], mp.to_str().unwrap());
    assert_eq!(tags["consistency"], "frozen");
    assert_eq!(
        tags["created"].len(),
        "2026-11-23 14:22:02.361688".len(),
        "{tags:?}"
    );
    assert_eq!(
        r.snapshots()[0].description().unwrap(),
        format!("c snapshot of {}", mp.display())
    );

    let restored = ec2
        .rt
        .block_on(
            ec2.client
                .create_volume()
                .availability_zone("us-east-1a")
                .snapshot_id(&snap)
                .send(),
        )
        .unwrap();
    let restored = restored.volume_id().unwrap().to_string();
    ec2.attach(&restored, s.lab.instance(), "/dev/sdh");
    let dev = s.lab.device_root().join("xvdh");
    let t = Instant::now();
    while !dev.exists() {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    if fs == "xfs" {
        // A frozen XFS keeps its log: replay it as a restore's mount does
        // (nouuid: the original is still mounted), then check.
        let tmp = s.lab.dir.join("check");
        std::fs::create_dir_all(&tmp).unwrap();
        assert!(Command::new("mount")
            .args(["-o", "nouuid"])
            .arg(&dev)
            .arg(&tmp)
            .status()
            .unwrap()
            .success());
        assert!(Command::new("umount").arg(&tmp).status().unwrap().success());
    }
    let check = match fs {
        "xfs" => Command::new("xfs_repair")
            .arg("-n")
            .arg(&dev)
            .output()
            .unwrap(),
        _ => Command::new("fsck.ext4")
            .arg("-fn")
            .arg(&dev)
            .output()
            .unwrap(),
    };
    assert!(
        check.status.success(),
        "{fs} check failed: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn ext4_snapshot_under_a_writer_is_clean() {
    snapshot_under_load("ext4");
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn xfs_snapshot_under_a_writer_is_clean() {
    snapshot_under_load("xfs");
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_hanging_snapshot_call_is_cut_off_and_the_filesystem_thawed() {
    let Some(s) = mounted_lab(&[("/dev/sdf", "ext4", 1)]) else {
        return;
    };
    s.lab.control(
        "rules",
        "[[faults]]\naction = \"CreateSnapshot*\"\nreply = \"hang\"\nlatency = \"60s\"\n",
    );
    let d = s
        .snaptastic(&["make-snapshots", "db", "--freeze-timeout", "1s"])
        .expect_code(1);
    assert!(
        d.stderr().contains("CreateSnapshots of vol-")
            && d.stderr().contains("did not return within 1s"),
        "{}",
        d.stderr()
    );
    assert!(
        d.stderr().contains("filesystems were thawed"),
        "{}",
        d.stderr()
    );
    assert!(writable(&s.mp(0)), "still frozen after a hang");
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_failing_snapshot_call_thaws_and_fails() {
    let Some(s) = mounted_lab(&[("/dev/sdf", "xfs", 1)]) else {
        return;
    };
    s.lab.control(
        "rules",
        "[[faults]]\naction = \"CreateSnapshot*\"\nreply = \"500\"\n",
    );
    let d = s
        .snaptastic(&["make-snapshots", "db", "--per-volume"])
        .expect_code(1);
    assert!(
        d.stdout().contains("FAILED")
            && d.stdout().contains("CreateSnapshot failed: InternalError"),
        "{}",
        d.stdout()
    );
    assert!(writable(&s.mp(0)), "still frozen after a 500");
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn sigterm_while_frozen_thaws() {
    let Some(s) = mounted_lab(&[("/dev/sdf", "ext4", 1)]) else {
        return;
    };
    s.lab.control(
        "rules",
        "[[faults]]\naction = \"CreateSnapshot*\"\nreply = \"hang\"\nlatency = \"60s\"\n",
    );
    let child = s
        .lab
        .run(&["make-snapshots", "db", "--freeze-timeout", "60s"])
        .config(&s.cfg)
        .spawn();
    // Frozen once the call reached the lab.
    let t = Instant::now();
    while s.snapshot_calls() == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "make-snapshots never called CreateSnapshot"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SIGTERM while frozen; filesystems were thawed"),
        "{stderr}"
    );
    assert!(writable(&s.mp(0)), "still frozen after SIGTERM");
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn refuses_before_freezing_anything() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = Setup::new(
        &moto,
        false,
        None,
        &[("/dev/sdf", "ext4", 1), ("/dev/sdg", "ext4", 1)],
    );
    // Nothing attached yet.
    let d = s.snaptastic(&["make-snapshots", "db"]).expect_code(1);
    let e = d.stderr();
    assert!(
        e.contains("nothing was frozen")
            && e.contains("(/dev/sdf): no EBS volume is attached to")
            && e.contains("run mount-snapshots first"),
        "{e}"
    );
    assert_eq!(s.snapshot_calls(), 0);

    // Attached, but the mount point is a plain directory on the root
    // filesystem: freezing it would freeze /.
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    assert!(Command::new("umount")
        .arg(s.mp(1))
        .status()
        .unwrap()
        .success());
    assert_eq!(mounted_at(&s.mp(1)), None);
    let d = s.snaptastic(&["make-snapshots", "db"]).expect_code(1);
    assert!(
        d.stderr()
            .contains("(/dev/sdg): refusing to freeze it: it is on the root filesystem"),
        "{}",
        d.stderr()
    );
    assert_eq!(s.snapshot_calls(), 0);
    assert!(writable(&s.mp(0)));
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_filesystem_that_cannot_be_frozen_gets_no_snapshot_unless_allowed() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = Setup::new(
        &moto,
        false,
        Some("snapshot_pending = \"1s\"\n"),
        &[("/dev/sdf", "ext4", 1)],
    );
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    // Someone else froze it: our FIFREEZE gets EBUSY.
    assert!(Command::new("fsfreeze")
        .arg("-f")
        .arg(s.mp(0))
        .status()
        .unwrap()
        .success());
    let d = s.snaptastic(&["make-snapshots", "db"]).expect_code(1);
    let crash = s.snaptastic(&["make-snapshots", "db", "--allow-unfrozen", "--wait"]);
    assert!(Command::new("fsfreeze")
        .arg("-u")
        .arg(s.mp(0))
        .status()
        .unwrap()
        .success());
    assert!(
        d.stderr().contains("already frozen by someone else")
            && d.stderr().contains("no snapshot was taken"),
        "{}",
        d.stderr()
    );
    let crash = crash.expect_code(0);
    assert!(
        crash.stdout().contains("(not frozen)") && crash.stdout().contains("complete "),
        "{}",
        crash.stdout()
    );
    assert_eq!(s.snapshot_calls(), 1);
    let snap = crash
        .stdout()
        .split_whitespace()
        .find(|w| w.starts_with("snap-"))
        .unwrap()
        .to_string();
    let ec2 = s.lab.ec2();
    let r = ec2
        .rt
        .block_on(ec2.client.describe_snapshots().snapshot_ids(&snap).send())
        .unwrap();
    let consistency = r.snapshots()[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some("consistency"))
        .and_then(|t| t.value())
        .map(str::to_string);
    assert_eq!(consistency.as_deref(), Some("crash"));
}
