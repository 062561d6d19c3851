//! mount-snapshots and unmount-snapshots through the real binary against
//! the lab: real loop devices, real mkfs and mount(2), faults from the lab.

use crate::support::mounted_lab;
use crate::support::{lab_prerequisites, mounted_at, mounted_volume, Setup};

fn first_boot_and_round_trip(nvme: bool) {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = Setup::new(
        &moto,
        nvme,
        None,
        &[("/dev/sdf", "xfs", 1), ("/dev/sdg", "ext4", 1)],
    );

    // First boot: empty volumes, formatted, mounted.
    let d = s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    let out = d.stdout();
    assert_eq!(
        mounted_at(&s.mp(0)).as_deref(),
        Some("xfs"),
        "{out}\n{}",
        d.stderr()
    );
    assert_eq!(mounted_at(&s.mp(1)).as_deref(), Some("ext4"));
    assert!(
        out.contains("(new empty xfs volume)") && out.contains("(new empty ext4 volume)"),
        "{out}\n{}",
        d.stderr()
    );
    let v0 = mounted_volume(&out, &s.mp(0));
    let v1 = mounted_volume(&out, &s.mp(1));
    std::fs::write(s.mp(1).join("only-here.txt"), "v1\n").unwrap();
    assert_eq!(s.our_volumes().len(), 2);

    // Again with --ignore-mounted: nothing changes.
    let creates = s.calls("CreateVolume");
    let out = s
        .snaptastic(&["mount-snapshots", "db", "--ignore-mounted"])
        .expect_code(0)
        .stdout();
    assert_eq!(out.matches("skipped").count(), 2, "{out}");
    assert_eq!(s.calls("CreateVolume"), creates);
    // Without it: its own volumes, mounted here by the first run, count
    // as done (a re-run after a crash goes on with the rest); nothing
    // changes. Anything else mounted there is refused (below, tmpfs).
    let d = s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    assert_eq!(
        d.stdout().matches("restored by an earlier run").count(),
        2,
        "{}",
        d.stdout()
    );
    assert_eq!(s.calls("CreateVolume"), creates);

    // list-volumes sees them mounted and attached.
    let out = s
        .snaptastic(&["list-volumes", "db"])
        .expect_code(0)
        .stdout();
    assert!(
        out.lines().nth(1).unwrap().contains(&v0) && out.lines().nth(1).unwrap().contains("yes ("),
        "{out}"
    );

    // The tutorial: write, snapshot (as 0.2.12 tagged them), unmount, mount.
    std::fs::write(s.mp(0).join("hello.txt"), "kept\n").unwrap();
    assert!(std::process::Command::new("sync")
        .status()
        .unwrap()
        .success());
    let snap = s.legacy_snapshot(&v0, &s.mp(0));
    let out = s
        .snaptastic(&["unmount-snapshots", "db", "--yes"])
        .expect_code(0)
        .stdout();
    assert!(out.contains(&format!("detached {v0}")), "{out}");
    assert_eq!(mounted_at(&s.mp(0)), None);
    // The detached volume holds newer data than the snapshot: it comes
    // back, not the snapshot (tests/it/restore_safety.rs has more).
    let out = s
        .snaptastic(&["mount-snapshots", "db"])
        .expect_code(0)
        .stdout();
    assert!(!out.contains(&format!("(from {snap})")), "{out}");
    assert_eq!(
        std::fs::read_to_string(s.mp(0).join("hello.txt")).unwrap(),
        "kept\n"
    );
    assert_eq!(mounted_volume(&out, &s.mp(0)), v0);
    // v1 has no snapshot: the volume unmount detached (and kept) comes back.
    assert!(
        out.contains(&format!("{}: {v1} on", s.mp(1).display())),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(s.mp(1).join("only-here.txt")).unwrap(),
        "v1\n"
    );
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
    assert_eq!(
        s.our_volumes()
            .iter()
            .filter(|(_, st)| st == "in-use")
            .count(),
        0
    );
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn first_boot_then_round_trip_on_xen() {
    first_boot_and_round_trip(false);
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn first_boot_then_round_trip_on_nvme() {
    first_boot_and_round_trip(true);
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn dry_run_changes_nothing() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = Setup::new(&moto, false, None, &[("/dev/sdf", "xfs", 1)]);
    let out = s
        .snaptastic(&["mount-snapshots", "db", "--dry-run"])
        .expect_code(0)
        .stdout();
    assert!(
        out.contains("on /dev/sdf: create an empty volume, format it xfs; 1 GiB gp3 xfs"),
        "{out}"
    );
    assert_eq!(s.calls("CreateVolume"), 0);
    assert_eq!(mounted_at(&s.mp(0)), None);
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn error_snapshot_falls_back_and_pending_is_waited_for() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = Setup::new(
        &moto,
        false,
        Some("snapshot_error_calls = [2]\n"),
        &[("/dev/sdf", "ext4", 1)],
    );
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    std::fs::write(s.mp(0).join("f"), "one\n").unwrap();
    std::process::Command::new("sync").status().unwrap();
    let out = s
        .snaptastic(&["list-volumes", "db", "--json"])
        .expect_code(0)
        .stdout();
    let vol = serde_json::from_str::<serde_json::Value>(&out).unwrap()[0]["attached_volume"]
        .as_str()
        .unwrap()
        .to_string();
    let good = s.legacy_snapshot(&vol, &s.mp(0));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let bad = s.legacy_snapshot(&vol, &s.mp(0)); // the lab's 2nd snapshot: error
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
    let d = s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    assert!(
        d.stdout().contains(&format!("(from {good})")),
        "{}",
        d.stdout()
    );
    assert!(
        d.stderr()
            .contains(&format!("snapshot {bad} is in state error")),
        "{}",
        d.stderr()
    );
    assert_eq!(std::fs::read_to_string(s.mp(0).join("f")).unwrap(), "one\n");

    // A newer pending snapshot is waited for, then used.
    std::fs::write(s.mp(0).join("f"), "two\n").unwrap();
    std::process::Command::new("sync").status().unwrap();
    let out = s
        .snaptastic(&["list-volumes", "db", "--json"])
        .expect_code(0)
        .stdout();
    let vol = serde_json::from_str::<serde_json::Value>(&out).unwrap()[0]["attached_volume"]
        .as_str()
        .unwrap()
        .to_string();
    // Long enough to outlast a busy emulator between the snapshot and the
    // restore's lookup.
    s.lab.control("rules", "snapshot_pending = \"20s\"\n");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let pending = s.legacy_snapshot(&vol, &s.mp(0));
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
    let d = s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    assert!(
        d.stderr()
            .contains(&format!("newest snapshot {pending} is pending; waiting")),
        "{}",
        d.stderr()
    );
    assert!(
        d.stdout().contains(&format!("(from {pending})")),
        "{}",
        d.stdout()
    );
    assert_eq!(std::fs::read_to_string(s.mp(0).join("f")).unwrap(), "two\n");
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn throttled_create_volume_is_retried() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let rules = "[[faults]]\naction = \"CreateVolume\"\ncalls = [1, 2]\nreply = \"throttle\"\n";
    let s = Setup::new(&moto, false, Some(rules), &[("/dev/sdf", "xfs", 1)]);
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    assert_eq!(s.calls("CreateVolume"), 3);
    assert_eq!(s.our_volumes().len(), 1);
    assert!(mounted_at(&s.mp(0)).is_some());
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn failed_attach_of_one_volume_leaves_the_others_and_a_rerun_completes() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let rules = "[[faults]]\naction = \"AttachVolume\"\nparams = { Device = \"/dev/sdg\" }\nreply = \"500\"\n";
    let s = Setup::new(
        &moto,
        false,
        Some(rules),
        &[
            ("/dev/sdf", "xfs", 1),
            ("/dev/sdg", "xfs", 1),
            ("/dev/sdh", "ext4", 1),
        ],
    );
    let d = s.snaptastic(&["mount-snapshots", "db"]).expect_code(1);
    let out = d.stdout();
    assert!(
        mounted_at(&s.mp(0)).is_some() && mounted_at(&s.mp(2)).is_some(),
        "{out}"
    );
    assert_eq!(mounted_at(&s.mp(1)), None);
    let failed = out
        .lines()
        .find(|l| l.starts_with("FAILED"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        failed.contains("AttachVolume failed: InternalError") && failed.contains("rolled back ("),
        "{failed}"
    );
    assert_eq!(
        s.our_volumes().len(),
        2,
        "the failed volume was not deleted"
    );

    // The fault is gone: a re-run completes volume 2 only.
    s.lab.control("rules", "");
    let out = s
        .snaptastic(&["mount-snapshots", "db", "--ignore-mounted"])
        .expect_code(0)
        .stdout();
    assert_eq!(out.matches("skipped").count(), 2, "{out}");
    assert!(mounted_at(&s.mp(1)).is_some());
    assert_eq!(s.our_volumes().len(), 3);
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_volume_left_behind_is_adopted_not_duplicated() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    // Rollback fails too (DeleteVolume refused): the volume stays, tagged.
    let rules = "[[faults]]\naction = \"AttachVolume\"\nreply = \"500\"\n[[faults]]\naction = \"DeleteVolume\"\nreply = \"500\"\n";
    let s = Setup::new(&moto, false, Some(rules), &[("/dev/sdf", "xfs", 1)]);
    let out = s
        .snaptastic(&["mount-snapshots", "db"])
        .expect_code(1)
        .stdout();
    assert!(out.contains("for the next run to adopt"), "{out}");
    let left = s.our_volumes();
    assert_eq!(left.len(), 1);
    s.lab.control("rules", "");
    let out = s
        .snaptastic(&["mount-snapshots", "db"])
        .expect_code(0)
        .stdout();
    assert_eq!(mounted_volume(&out, &s.mp(0)), left[0].0);
    assert_eq!(s.our_volumes().len(), 1);
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn bad_input_creates_nothing() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = Setup::new(&moto, false, None, &[("/dev/sdf", "xfs", 1)]);
    let ec2 = s.lab.ec2();

    // Mount point busy (something else mounted there).
    std::fs::create_dir_all(s.mp(0)).unwrap();
    let mp = s.mp(0);
    assert!(std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&mp)
        .status()
        .unwrap()
        .success());
    let d = s.snaptastic(&["mount-snapshots", "db"]).expect_code(1);
    assert!(
        d.stderr().contains("already mounted (from tmpfs)"),
        "{}",
        d.stderr()
    );
    assert!(std::process::Command::new("umount")
        .arg(&mp)
        .status()
        .unwrap()
        .success());

    // Mount point directory not empty.
    std::fs::write(mp.join("precious"), "x").unwrap();
    let d = s.snaptastic(&["mount-snapshots", "db"]).expect_code(1);
    assert!(
        d.stderr()
            .contains("the mount point is a non-empty directory"),
        "{}",
        d.stderr()
    );
    std::fs::remove_file(mp.join("precious")).unwrap();

    // Device already in use by another volume.
    let foreign = ec2.volume("us-east-1a", 1, &[("mount_point", "/somewhere/else")]);
    ec2.attach(&foreign, s.lab.instance(), "/dev/sdf");
    let d = s.snaptastic(&["mount-snapshots", "db"]).expect_code(1);
    assert!(
        d.stderr().contains(&format!(
            "device /dev/sdf is already in use by {foreign} (tagged for /somewhere/else)"
        )),
        "{}",
        d.stderr()
    );
    assert!(d.stderr().contains("nothing was changed"), "{}", d.stderr());
    ec2.rt
        .block_on(
            ec2.client
                .detach_volume()
                .volume_id(&foreign)
                .instance_id(s.lab.instance())
                .send(),
        )
        .unwrap();

    // Size smaller than the snapshot.
    let big = ec2.volume("us-east-1a", 3, &[]);
    s.legacy_snapshot(&big, &s.mp(0));
    let d = s.snaptastic(&["mount-snapshots", "db"]).expect_code(1);
    assert!(
        d.stderr()
            .contains("size 1 GiB is smaller than snapshot snap-")
            && d.stderr().contains("(3 GiB); set size = 3 or more"),
        "{}",
        d.stderr()
    );

    // None of it created a volume.
    assert_eq!(
        s.calls("CreateVolume"),
        2,
        "only the test's own two volumes"
    );
    assert_eq!(s.our_volumes().len(), 0);
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn busy_unmount_refuses_and_does_not_detach() {
    let Some(s) = mounted_lab(&[("/dev/sdf", "ext4", 1)]) else {
        return;
    };
    let mut holder = std::process::Command::new("sleep")
        .arg("30")
        .current_dir(s.mp(0))
        .spawn()
        .unwrap();
    let d = s
        .snaptastic(&["unmount-snapshots", "db", "--yes"])
        .expect_code(1);
    let _ = holder.kill();
    let _ = holder.wait();
    let out = d.stdout();
    assert!(
        out.contains("unmount failed: busy, held by sleep (pid") && out.contains("not detaching"),
        "{out}"
    );
    assert!(mounted_at(&s.mp(0)).is_some());
    assert_eq!(s.calls("DetachVolume"), 0);

    // Unattended without --yes: refused with the way out.
    let d = s.snaptastic(&["unmount-snapshots", "db"]).expect_code(1);
    assert!(
        d.stderr().contains("pass --yes when running unattended"),
        "{}",
        d.stderr()
    );

    // --lazy takes it out of the tree, but a volume still in use is never
    // detached; once its user is gone a re-run detaches it.
    let mut holder = std::process::Command::new("sleep")
        .arg("30")
        .current_dir(s.mp(0))
        .spawn()
        .unwrap();
    let d = s
        .snaptastic(&["unmount-snapshots", "db", "--yes", "--lazy"])
        .expect_code(1);
    assert!(
        d.stdout()
            .contains("is still in use (lazily unmounted with files open); not detaching"),
        "{}",
        d.stdout()
    );
    assert_eq!(mounted_at(&s.mp(0)), None);
    assert_eq!(s.calls("DetachVolume"), 0);
    let _ = holder.kill();
    let _ = holder.wait();
    let out = s
        .snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0)
        .stdout();
    assert!(out.contains("was not mounted, detached vol-"), "{out}");
    assert_eq!(s.our_volumes().len(), 0);
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_pending_snapshot_without_fallback_is_never_replaced_by_an_empty_volume() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = Setup::new(
        &moto,
        false,
        Some("snapshot_pending = \"1h\"\n"),
        &[("/dev/sdf", "ext4", 1)],
    );
    let ec2 = s.lab.ec2();
    let src = ec2.volume("us-east-1a", 1, &[]);
    let pending = s.legacy_snapshot(&src, &s.mp(0));
    let creates = s.calls("CreateVolume");
    let d = s
        .snaptastic(&["mount-snapshots", "db", "--wait-pending", "2s"])
        .expect_code(1);
    let out = d.stdout();
    assert!(
        out.contains(&format!("snapshot {pending} is not completed"))
            && out.contains("not creating an empty volume in its place"),
        "{out}"
    );
    assert_eq!(s.calls("CreateVolume"), creates);
    assert_eq!(mounted_at(&s.mp(0)), None);
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn hooks_run_in_order_and_a_failing_pre_hook_changes_nothing() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = Setup::new(&moto, false, None, &[("/dev/sdf", "ext4", 1)]);
    let log = s.lab.dir.join("hooks.log");
    let hook = |name: &str| {
        format!("hooks.{name} = [\"sh\", \"-c\", \"echo {name} ${{SNAPTASTIC_MOUNT_POINT:-all}} ${{SNAPTASTIC_VOLUME_ID:-}} >> {}\"]", log.display())
    };
    let names = [
        "pre_mounts",
        "pre_mount",
        "post_mount",
        "post_mounts",
        "pre_snapshots",
        "pre_snapshot",
        "post_snapshot",
        "post_snapshots",
        "pre_unmounts",
        "pre_unmount",
        "post_unmount",
        "post_unmounts",
    ];
    s.add_to_profile(&names.iter().map(|n| hook(n)).collect::<Vec<_>>().join("\n"));
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    s.snaptastic(&["make-snapshots", "db"]).expect_code(0);
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
    let text = std::fs::read_to_string(&log).unwrap();
    let order: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(order, names, "{text}");
    let mp = s.mp(0).display().to_string();
    assert!(
        text.contains(&format!("pre_mount {mp}\n")),
        "pre_mount has no volume yet: {text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("post_mount {mp} vol-"))),
        "{text}"
    );
    assert!(text.contains("pre_mounts all"), "{text}");

    // A failing pre_mounts hook: nothing is created.
    let text = std::fs::read_to_string(&s.cfg).unwrap();
    let text: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("hooks.pre_mounts"))
        .collect();
    std::fs::write(&s.cfg, text.join("\n") + "\n").unwrap();
    s.add_to_profile("hooks.pre_mounts = [\"false\"]");
    let creates = s.calls("CreateVolume");
    let d = s.snaptastic(&["mount-snapshots", "db"]).expect_code(1);
    assert!(
        d.stderr().contains("hook pre_mounts (false) failed")
            && d.stderr().contains("nothing was changed"),
        "{}",
        d.stderr()
    );
    assert_eq!(s.calls("CreateVolume"), creates);
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn delete_on_termination_is_set_on_the_instance() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = Setup::new(&moto, false, None, &[("/dev/sdf", "ext4", 1)]);
    let text = std::fs::read_to_string(&s.cfg).unwrap() + "delete_on_termination = true\n";
    std::fs::write(&s.cfg, text).unwrap();
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    assert_eq!(s.calls("ModifyInstanceAttribute"), 1);
    let ec2 = s.lab.ec2();
    let r = ec2
        .rt
        .block_on(
            ec2.client
                .describe_instances()
                .instance_ids(s.lab.instance())
                .send(),
        )
        .unwrap();
    let inst = &r.reservations()[0].instances()[0];
    let sdf = inst
        .block_device_mappings()
        .iter()
        .find(|m| m.device_name() == Some("/dev/sdf"))
        .expect("no /dev/sdf mapping");
    assert_eq!(
        sdf.ebs().and_then(|e| e.delete_on_termination()),
        Some(true)
    );
}
