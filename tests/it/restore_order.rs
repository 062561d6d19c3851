//! Restores that must not go wrong on the host side: nested mount points
//! come up parent first and go down child first; a run without the
//! privilege to mount creates nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::lab_prerequisites;
use crate::support::Setup;

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn without_root_nothing_is_created() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = Setup::new(&moto, false, None, &[("/dev/sdf", "ext4", 1)]);
    // The unprivileged user must be able to read the configuration.
    for p in [s.cfg.parent().unwrap(), s.cfg.as_path()] {
        let mode = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let bin = env!("CARGO_BIN_EXE_snaptastic");
    let d = s
        .lab
        .run_program(
            Path::new("/usr/bin/setpriv"),
            &[
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                bin,
                "mount-snapshots",
                "db",
            ],
        )
        .config(&s.cfg)
        .run()
        .expect_code(1);
    assert!(
        d.stderr()
            .contains("mount-snapshots needs root or CAP_SYS_ADMIN to attach, format and mount volumes (running as uid 65534): run it with sudo"),
        "{}",
        d.stderr()
    );
    assert_eq!(s.calls("CreateVolume"), 0, "{}", d.stderr());
    assert_eq!(s.calls("AttachVolume"), 0, "{}", d.stderr());
    // The plan is still there for anyone to see.
    s.lab
        .run_program(
            Path::new("/usr/bin/setpriv"),
            &[
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                bin,
                "mount-snapshots",
                "db",
                "--dry-run",
            ],
        )
        .config(&s.cfg)
        .run()
        .expect_code(0);
}

/// The device number of the filesystem `p` is on.
fn dev_of(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().dev()
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn nested_mount_points_come_up_parent_first_twenty_times() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    // The parent's attachment is the slow one: mounted as soon as ready,
    // the child would come first and then be covered by its parent.
    let rules = "[[faults]]\naction = \"AttachVolume\"\nparams = { Device = \"/dev/sdf\" }\nreply = \"latency\"\nlatency = \"400ms\"\n";
    let s = Setup::new(
        &moto,
        false,
        Some(rules),
        &[("/dev/sdf", "ext4", 1), ("/dev/sdg", "xfs", 1)],
    );
    let text = std::fs::read_to_string(&s.cfg)
        .unwrap()
        .replace("mnt/v0", "mnt/pg")
        .replace("mnt/v1", "mnt/pg/wal");
    std::fs::write(&s.cfg, text).unwrap();
    let (pg, wal) = (s.lab.dir.join("mnt/pg"), s.lab.dir.join("mnt/pg/wal"));
    for round in 0..20 {
        s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
        assert_ne!(
            dev_of(&wal),
            dev_of(&pg),
            "round {round}: the WAL volume is hidden under its parent"
        );
        assert_ne!(
            dev_of(&pg),
            dev_of(&s.lab.dir),
            "round {round}: pg is not mounted"
        );
        std::fs::write(wal.join("segment"), b"wal").unwrap();
        std::fs::write(pg.join("base"), b"data").unwrap();
        assert_eq!(dev_of(&wal.join("segment")), dev_of(&wal));
        // Down child first: both unmount, both detach.
        let d = s
            .snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
            .expect_code(0);
        assert_eq!(d.stdout().matches("deleted").count(), 2, "{}", d.stdout());
    }
}
