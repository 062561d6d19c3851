//! A restored volume at full speed, through the real binary against the
//! lab (which plays EC2's initialization rate, its Regional quota, fast
//! snapshot restore with credits, and the archive tier): the rate is sent
//! with an estimate, a refused rate never fails the restore, FSR replaces
//! the rate, and an archived snapshot is never a source.

use crate::support::{lab_prerequisites, mounted_volume, Setup};

/// The lab's view of a volume: (initialization rate, fast restored).
fn speed_of(s: &Setup, volume: &str) -> (Option<i32>, Option<bool>) {
    let ec2 = s.lab.ec2();
    let r = ec2
        .rt
        .block_on(ec2.client.describe_volumes().volume_ids(volume).send())
        .unwrap();
    let v = &r.volumes()[0];
    (v.volume_initialization_rate(), v.fast_restored())
}

/// A profile of one volume with data, snapshotted, then unmounted and
/// deleted: the next mount-snapshots restores it from `snap`.
fn snapshotted() -> Option<(Setup, String)> {
    let moto = lab_prerequisites()?;
    let s = Setup::new(&moto, false, None, &[("/dev/sdf", "xfs", 1)]);
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    std::fs::write(s.mp(0).join("data.txt"), "restored\n").unwrap();
    s.snaptastic(&["make-snapshots", "db"]).expect_code(0);
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
    let ec2 = s.lab.ec2();
    let snaps = ec2.snapshots_where("tag:role", &s.role);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let snap = snaps.into_keys().next().unwrap();
    Some((s, snap))
}

fn restore(s: &Setup, args: &[&str]) -> (String, String, String) {
    let mut all = vec!["mount-snapshots", "db"];
    all.extend(args);
    let d = s.snaptastic(&all).expect_code(0);
    let (out, err) = (d.stdout(), d.stderr());
    assert_eq!(
        std::fs::read_to_string(s.mp(0).join("data.txt")).unwrap_or_default(),
        "restored\n",
        "{out}\n{err}"
    );
    let vol = mounted_volume(&out, &s.mp(0));
    (vol, out, err)
}

fn unmount(s: &Setup) {
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn the_rate_is_sent_dropped_when_refused_and_replaced_by_fast_snapshot_restore() {
    let Some((s, snap)) = snapshotted() else {
        return;
    };

    // A rate: sent, with how long the snapshot's data takes and what it
    // is billed on.
    s.lab.control("rules", "initialization = \"600s\"\n");
    let (vol, _, err) = restore(&s, &["--init-rate", "300"]);
    assert_eq!(speed_of(&s, &vol), (Some(300), Some(false)), "{err}");
    assert!(
        err.contains("initialization at 300 MiB/s:") && err.contains("of snapshot data in about"),
        "{err}"
    );
    assert!(err.contains("billed once at creation"), "{err}");

    // list-volumes shows how far it is; --check-ready fails until done.
    let listed = s
        .snaptastic(&["list-volumes", "db"])
        .expect_code(0)
        .stdout();
    assert!(
        listed.contains("initializing ") && listed.contains("(provisioned-rate 300 MiB/s, "),
        "{listed}"
    );
    let d = s
        .snaptastic(&["list-volumes", "db", "--check-ready"])
        .expect_code(1);
    assert!(
        d.stderr()
            .trim_end()
            .lines()
            .last()
            .unwrap_or_default()
            .contains(&format!("not ready: {}: initializing", s.mp(0).display())),
        "{}",
        d.stderr()
    );
    let json: serde_json::Value = serde_json::from_str(
        &s.snaptastic(&["list-volumes", "db", "--json"])
            .expect_code(0)
            .stdout(),
    )
    .unwrap();
    assert_eq!(json[0]["speed"]["init_rate"], 300, "{json}");
    assert_eq!(
        json[0]["speed"]["initialization"]["type"], "provisioned-rate",
        "{json}"
    );
    // EC2 cannot be asked: a listing warns and goes on; a health check
    // does not say ready.
    s.lab.control(
        "rules",
        "initialization = \"600s\"\n[[faults]]\naction = \"DescribeVolumeStatus\"\nreply = \"denied\"\n",
    );
    let d = s.snaptastic(&["list-volumes", "db"]).expect_code(0);
    assert!(
        d.stderr().contains("could not learn how far"),
        "{}",
        d.stderr()
    );
    let d = s
        .snaptastic(&["list-volumes", "db", "--check-ready"])
        .expect_code(1);
    let last = d
        .stderr()
        .trim_end()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(
        last.contains("not ready as far as can be told: could not learn how far vol-"),
        "{last}"
    );
    // Initialized (the lab's 600 s at the default rate is now 3 ms).
    s.lab.control("rules", "initialization = \"1ms\"\n");
    let d = s
        .snaptastic(&["list-volumes", "db", "--check-ready"])
        .expect_code(0);
    assert!(d.stdout().contains(" full "), "{}", d.stdout());
    unmount(&s);

    // The same from the profile's volume key.
    let text = std::fs::read_to_string(&s.cfg).unwrap();
    std::fs::write(&s.cfg, format!("{text}init_rate = 100\n")).unwrap();
    let (vol, _, err) = restore(&s, &[]);
    assert_eq!(speed_of(&s, &vol).0, Some(100), "{err}");
    unmount(&s);

    // The Region's quota is short: EC2 refuses the rate; the volume is
    // created without it, with a warning, and the restore succeeds.
    s.lab.control("rules", "init_rate_quota = 200\n");
    let creates = s.calls("CreateVolume");
    let (vol, out, err) = restore(&s, &["--init-rate", "300"]);
    assert_eq!(speed_of(&s, &vol), (None, Some(false)), "{err}");
    assert!(
        err.contains("EC2 refused the initialization rate of 300 MiB/s")
            && err.contains("InsufficientVolumeCapacity")
            && err.contains("creating the volume without it"),
        "{err}"
    );
    assert_eq!(s.calls("CreateVolume"), creates + 2, "{out}");
    assert_eq!(s.our_volumes().len(), 1, "one volume, not two");
    unmount(&s);

    // Fast snapshot restore enabled for the snapshot in this zone: no
    // rate is paid for, and the volume is fast restored (a credit).
    s.lab.control("rules", "fsr_credits = 1\n");
    let zone = s.lab.state()["zone"].as_str().unwrap().to_string();
    let out = s
        .snaptastic(&["fast-restore", "enable", "db", "--for", "2h"])
        .expect_code(0)
        .stdout();
    assert!(
        out.contains("cost: 1 snapshot(s) x 1 zone(s) x $0.75/h = $0.75/h; 2 h = $1.50"),
        "{out}"
    );
    assert!(
        out.contains(&format!("enabled  {snap} in {zone}: enabled until ")),
        "{out}"
    );
    let tag = s.lab.ec2().snapshot_tags(&snap)["snaptastic:fast-restore-until"].clone();
    let until = tag
        .strip_prefix(&format!("{zone}="))
        .unwrap_or_else(|| panic!("the bound is per zone: {tag}"))
        .to_string();
    assert!(out.contains(&until), "{out}");
    let (vol, _, err) = restore(&s, &["--init-rate", "300"]);
    assert_eq!(speed_of(&s, &vol), (None, Some(true)), "{err}");
    assert!(
        err.contains(&format!(
            "fast snapshot restore is enabled for {snap} in {zone}: no initialization rate requested"
        )),
        "{err}"
    );
    assert!(err.contains("was fast restored"), "{err}");
    unmount(&s);

    // Its one credit is spent: the next volume is not fast restored. With
    // a rate asked for (and not sent, FSR being on) that is said...
    let (vol, _, err) = restore(&s, &["--init-rate", "300"]);
    assert_eq!(speed_of(&s, &vol), (None, Some(false)), "{err}");
    assert!(
        err.contains(&format!("{vol} was not fast restored")),
        "{err}"
    );
    unmount(&s);
    // ... and without one nothing is said about either.
    let (vol, _, err) = restore(&s, &["--init-rate", "off"]);
    assert_eq!(speed_of(&s, &vol), (None, Some(false)), "{err}");
    assert!(!err.contains("fast restored"), "{err}");
    unmount(&s);

    // Bounded: --expired leaves it on until its time, then turns it off.
    let status = |s: &Setup| {
        s.snaptastic(&["fast-restore", "status", "db"])
            .expect_code(0)
            .stdout()
    };
    assert!(status(&s).contains(&format!("{snap} in {zone}: enabled, until {until}")));
    let out = s
        .snaptastic(&["fast-restore", "disable", "db", "--expired"])
        .expect_code(0)
        .stdout();
    assert!(out.contains("nothing to disable"), "{out}");
    let ec2 = s.lab.ec2();
    ec2.rt
        .block_on(
            ec2.client
                .create_tags()
                .resources(&snap)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("snaptastic:fast-restore-until")
                        .value("2026-01-01T00:00:00Z")
                        .build(),
                )
                .send(),
        )
        .unwrap();
    let out = s
        .snaptastic(&["fast-restore", "disable", "db", "--expired"])
        .expect_code(0)
        .stdout();
    assert!(out.contains(&format!("disabled {snap} in {zone}")), "{out}");
    assert!(status(&s).contains("0 snapshot/zone pair(s) on: $0.00/h"));
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn an_archived_snapshot_is_passed_over() {
    let Some((s, older)) = snapshotted() else {
        return;
    };
    // A newer snapshot, then archived: the restore takes the older one.
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    std::fs::write(s.mp(0).join("data.txt"), "newer\n").unwrap();
    s.snaptastic(&["make-snapshots", "db"]).expect_code(0);
    unmount(&s);
    let ec2 = s.lab.ec2();
    let newer: Vec<String> = ec2
        .snapshots_where("tag:role", &s.role)
        .into_keys()
        .filter(|id| *id != older)
        .collect();
    assert_eq!(newer.len(), 1);
    ec2.rt
        .block_on(
            ec2.client
                .modify_snapshot_tier()
                .snapshot_id(&newer[0])
                .storage_tier(aws_sdk_ec2::types::TargetStorageTier::Archive)
                .send(),
        )
        .unwrap();

    let listed = s
        .snaptastic(&["list-volumes", "db"])
        .expect_code(0)
        .stdout();
    assert!(listed.contains(&older), "{listed}");
    let (_, out, err) = restore(&s, &[]);
    assert!(out.contains(&format!("(from {older})")), "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "snapshot {} is in the archive tier (a restore from there takes 24-72 hours); using an older one",
            newer[0]
        )),
        "{err}"
    );
    unmount(&s);
}

/// What is mounted at `mp` (its device path) and the sectors read from
/// that device so far (its sysfs stat, field 3).
fn device_reads(mp: &std::path::Path) -> (String, u64) {
    use std::os::unix::fs::MetadataExt;
    let out = std::process::Command::new("findmnt")
        .args(["-n", "-o", "SOURCE"])
        .arg(mp)
        .output()
        .unwrap();
    let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let rdev = std::fs::metadata(&dev).unwrap().rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let stat = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/stat")).unwrap();
    let sectors = stat.split_whitespace().nth(2).unwrap().parse().unwrap();
    (dev, sectors)
}

/// list-volumes' warm-up of the first volume, once `done` says so.
fn warmup_when(s: &Setup, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let out = s
            .snaptastic(&["list-volumes", "db", "--json"])
            .expect_code(0)
            .stdout();
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        let w = json[0]["speed"]["warmup"].clone();
        if done(&w) || std::time::Instant::now() > end {
            return w;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn the_warm_up_runs_in_the_background_and_a_rerun_resumes_it() {
    let Some((s, _)) = snapshotted() else {
        return;
    };
    // Restored with the warm-up: it runs detached and finishes.
    s.add_to_profile("prewarm = \"block\"");
    let (vol, _, err) = restore(&s, &[]);
    assert!(
        err.contains(&format!("warming {vol} up in the background (pid ")),
        "{err}"
    );
    let w = warmup_when(&s, |w| w["finished"] == true);
    assert_eq!(w["finished"], true, "{w}");
    assert_eq!(w["done_bytes"], 1u64 << 30, "{w}");
    let listed = s
        .snaptastic(&["list-volumes", "db"])
        .expect_code(0)
        .stdout();
    assert!(listed.contains("warmed"), "{listed}");
    // A re-run over it starts no second warm-up.
    let d = s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    assert!(
        !d.stderr().contains("warming") && d.stderr().contains("mounted here already"),
        "{}",
        d.stderr()
    );
    unmount(&s);

    // A warm-up cut short (as by a reboot: SIGTERM from systemd), then
    // mount-snapshots at the next boot goes on from its checkpoint: every
    // block read once in all.
    let text = std::fs::read_to_string(&s.cfg).unwrap();
    std::fs::write(&s.cfg, text.replace("prewarm = \"block\"\n", "")).unwrap();
    let (vol, _, _) = restore(&s, &[]);
    let (dev, before) = device_reads(&s.mp(0));
    let state = s.lab.dir.join("state");
    let mut slow =
        crate::support::Run::new(&["prewarm", &dev, "--volume-id", &vol, "--max-rate", "64"])
            .env("SNAPTASTIC_STATE_DIR", &state)
            .spawn();
    let w = warmup_when(&s, |w| w["done_bytes"].as_u64().unwrap_or(0) >= 64 << 20);
    // SAFETY: kill(2) with a pid and a signal number touches no memory.
    assert_eq!(unsafe { libc::kill(slow.id() as i32, libc::SIGTERM) }, 0);
    let status = slow.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{w}");
    let w = warmup_when(&s, |w| w["running"] == false);
    let stopped_at = w["done_bytes"].as_u64().unwrap();
    assert!(stopped_at > 0 && stopped_at < 1 << 30, "{w}");
    assert!(
        s.snaptastic(&["list-volumes", "db"])
            .expect_code(0)
            .stdout()
            .contains("(stopped)"),
        "a stopped warm-up says so"
    );
    let d = s
        .snaptastic(&["mount-snapshots", "db", "--prewarm", "block"])
        .expect_code(0);
    assert!(
        d.stderr()
            .contains(&format!("warming {vol} up in the background")),
        "{}",
        d.stderr()
    );
    let w = warmup_when(&s, |w| w["finished"] == true);
    assert_eq!(w["finished"], true, "{w}");
    let (_, after) = device_reads(&s.mp(0));
    // Every block once in all: 1 GiB is 2,097,152 sectors; the mounted
    // filesystem may read a little of its own meanwhile.
    let read = after - before;
    assert!(
        (2_097_152..2_097_152 + 2048).contains(&read),
        "{read} sectors read for a 2,097,152-sector volume"
    );
    unmount(&s);
}
