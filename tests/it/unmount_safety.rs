//! unmount-snapshots never detaches a volume it cannot check, through the
//! real binary against the lab (Xen device names): when its device node is
//! not where the profile says, it is looked for under the name EC2
//! attached it as; when it is nowhere, the volume is not detached (a
//! detach while it is still mounted elsewhere would corrupt it).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::mounted_at;
use crate::support::mounted_lab;

/// A second mount of a block device, undone when dropped (also when the
/// test fails), so the lab can release its loop device.
struct MountedElsewhere(PathBuf);

impl MountedElsewhere {
    /// Mount `device` (a lab link to its loop device) at `at` as well.
    fn new(device: &Path, at: PathBuf) -> MountedElsewhere {
        let real = std::fs::canonicalize(device).unwrap();
        std::fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount")
            .arg(&real)
            .arg(&at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount {} {}", real.display(), at.display());
        MountedElsewhere(at)
    }
}

impl Drop for MountedElsewhere {
    fn drop(&mut self) {
        if mounted_at(&self.0).is_some() {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
}

/// The summary line of `mp`.
fn line_of<'a>(out: &'a str, mp: &Path) -> &'a str {
    let tag = format!(" {}: ", mp.display());
    out.lines()
        .find(|l| l.contains(&tag))
        .unwrap_or_else(|| panic!("no line for {}:\n{out}", mp.display()))
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn unmount_does_not_detach_a_volume_whose_device_node_is_gone() {
    let Some(s) = mounted_lab(&[("/dev/sdf", "ext4", 1), ("/dev/sdg", "ext4", 1)]) else {
        return;
    };
    let node = s.lab.device_root().join("xvdf");
    // Still mounted elsewhere, and its node gone (udev lost it, someone
    // removed it): nothing can tell whether it is in use.
    let elsewhere = MountedElsewhere::new(&node, s.lab.dir.join("elsewhere"));
    std::fs::remove_file(&node).unwrap();

    let d = s
        .snaptastic(&["unmount-snapshots", "db", "--yes"])
        .expect_code(1);
    let out = d.stdout();
    let failed = line_of(&out, &s.mp(0));
    assert!(
        failed.starts_with("FAILED")
            && failed.contains("vol-")
            && failed.contains("(attached as /dev/sdf) is not detached: its block device was not found (looked at ")
            && failed.contains(&format!("{}", node.display()))
            && failed.contains(&format!("whether {} or anything else still uses it cannot be checked", s.mp(0).display()))
            && failed.contains("aws ec2 detach-volume --volume-id vol-"),
        "{out}\n{}",
        d.stderr()
    );
    // The other volume is handled all the same.
    assert!(
        line_of(&out, &s.mp(1)).starts_with("done")
            && line_of(&out, &s.mp(1)).contains("unmounted, detached vol-"),
        "{out}"
    );
    assert_eq!(s.calls("DetachVolume"), 1, "{out}");
    assert!(mounted_at(&elsewhere.0).is_some());
    drop(elsewhere);
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn unmount_checks_a_volume_under_the_name_ec2_attached_it_as() {
    let Some(s) = mounted_lab(&[("/dev/sdf", "ext4", 1)]) else {
        return;
    };
    let elsewhere = MountedElsewhere::new(
        &s.lab.device_root().join("xvdf"),
        s.lab.dir.join("elsewhere"),
    );
    // The profile now says /dev/sdh: the volume, still attached as
    // /dev/sdf, is found by its mount_point tag, and its device node is
    // xvdf, not the xvdh the profile implies.
    let cfg = std::fs::read_to_string(&s.cfg).unwrap();
    std::fs::write(&s.cfg, cfg.replace("/dev/sdf", "/dev/sdh")).unwrap();

    let out = s
        .snaptastic(&["unmount-snapshots", "db", "--yes"])
        .expect_code(1)
        .stdout();
    let failed = line_of(&out, &s.mp(0));
    assert!(
        failed.starts_with("FAILED")
            && failed.contains("xvdf (vol-")
            && failed.contains("is still in use (mounted elsewhere or held open); not detaching"),
        "{out}"
    );
    assert_eq!(s.calls("DetachVolume"), 0, "{out}");

    // Once free, it is checked under that name and detached.
    drop(elsewhere);
    let out = s
        .snaptastic(&["unmount-snapshots", "db", "--yes"])
        .expect_code(0)
        .stdout();
    assert!(
        line_of(&out, &s.mp(0)).contains("was not mounted, detached vol-"),
        "{out}"
    );
}
