//! mount-snapshots never brings a profile back from mixed or older points
//! in time than it has: after a failed snapshot run the newest complete
//! set is restored on every volume; a volume unmount-snapshots detached
//! (newer than any snapshot) is re-attached; a volume a killed run left
//! `creating` is adopted, not duplicated.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;

use crate::support::lab_prerequisites;
use crate::support::mounted_lab;
use crate::support::{mounted_at, mounted_volume, Setup};

fn write(s: &Setup, i: usize, text: &str) {
    std::fs::write(s.mp(i).join("data"), text).unwrap();
    assert!(std::process::Command::new("sync")
        .status()
        .unwrap()
        .success());
}

fn read(s: &Setup, i: usize) -> String {
    std::fs::read_to_string(s.mp(i).join("data")).unwrap_or_default()
}

/// The volume attached for each of the profile's volumes, per list-volumes.
fn listed(s: &Setup) -> serde_json::Value {
    let out = s
        .snaptastic(&["list-volumes", "db", "--json"])
        .expect_code(0)
        .stdout();
    serde_json::from_str(&out).unwrap()
}

/// Every tag of one volume.
fn volume_tags(s: &Setup, id: &str) -> BTreeMap<String, String> {
    let ec2 = s.lab.ec2();
    let r = ec2
        .rt
        .block_on(ec2.client.describe_volumes().volume_ids(id).send())
        .unwrap();
    r.volumes()[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect()
}

/// `snaptastic:run` of every snapshot of `volume`.
fn runs_of(s: &Setup, volume: &str) -> Vec<String> {
    let ec2 = s.lab.ec2();
    let r = ec2
        .rt
        .block_on(
            ec2.client
                .describe_snapshots()
                .filters(Filter::builder().name("volume-id").values(volume).build())
                .send(),
        )
        .unwrap();
    r.snapshots()
        .iter()
        .filter_map(|snap| {
            snap.tags()
                .iter()
                .find(|t| t.key() == Some("snaptastic:run"))
                .and_then(|t| t.value())
                .map(str::to_string)
        })
        .collect()
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_failed_snapshot_run_restores_one_consistent_set() {
    let Some(s) = mounted_lab(&[("/dev/sdf", "ext4", 1), ("/dev/sdg", "ext4", 1)]) else {
        return;
    };
    let v = listed(&s);
    let vol_b = v[1]["attached_volume"].as_str().unwrap().to_string();
    let fail_b = format!(
        "[[faults]]\naction = \"CreateSnapshot\"\nparams = {{ VolumeId = \"{vol_b}\" }}\nreply = \"500\"\n"
    );

    // A first run that fails on the second volume: no complete set at all.
    write(&s, 0, "zero-a");
    write(&s, 1, "zero-b");
    s.lab.control("rules", &fail_b);
    s.snaptastic(&["make-snapshots", "db", "--per-volume"])
        .expect_code(1);
    s.lab.control("rules", "");
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
    // /b has no snapshot at all (as for a volume new to the profile): it
    // cannot mix points in time, so /a comes back from that run and /b
    // starts empty, with a warning naming it.
    let d = s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    assert!(
        d.stderr().contains(&format!(
            "{}: no snapshot of this mount point exists; it is created empty",
            s.mp(1).display()
        )),
        "{}",
        d.stderr()
    );
    assert_eq!(read(&s, 0), "zero-a");
    assert_eq!(read(&s, 1), "");

    // A complete set, then a newer run that fails on /b.
    write(&s, 0, "one-a");
    write(&s, 1, "one-b");
    s.snaptastic(&["make-snapshots", "db"]).expect_code(0);
    let v = listed(&s);
    let (vol_a, vol_b) = (
        v[0]["attached_volume"].as_str().unwrap().to_string(),
        v[1]["attached_volume"].as_str().unwrap().to_string(),
    );
    let complete_run = runs_of(&s, &vol_b);
    assert_eq!(complete_run.len(), 1, "{complete_run:?}");
    let complete_run = complete_run[0].clone();
    std::thread::sleep(Duration::from_millis(1100));
    write(&s, 0, "two-a");
    write(&s, 1, "two-b");
    s.lab.control(
        "rules",
        &format!(
            "[[faults]]\naction = \"CreateSnapshot\"\nparams = {{ VolumeId = \"{vol_b}\" }}\nreply = \"500\"\n"
        ),
    );
    s.snaptastic(&["make-snapshots", "db", "--per-volume"])
        .expect_code(1);
    s.lab.control("rules", "");
    assert_eq!(
        runs_of(&s, &vol_a).len(),
        2,
        "the failed run snapshotted /a"
    );

    // list-volumes shows the set both volumes come from.
    let v = listed(&s);
    assert_eq!(v[0]["set"], complete_run.as_str(), "{v}");
    assert_eq!(v[1]["set"], complete_run.as_str(), "{v}");
    assert_eq!(v[0]["outside_set"].as_array().unwrap().len(), 1, "{v}");

    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
    let d = s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    let err = d.stderr();
    assert!(
        err.contains(&format!(
            "restoring from snapshot set snaptastic:run={complete_run}"
        )),
        "{err}"
    );
    assert!(
        err.contains("not part of a snapshot set complete for every mount point"),
        "{err}"
    );
    assert_eq!(read(&s, 0), "one-a", "{}\n{err}", d.stdout());
    assert_eq!(read(&s, 1), "one-b");
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn unmount_then_mount_returns_the_newer_data() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = Setup::new(&moto, false, None, &[("/dev/sdf", "ext4", 1)]);
    let out = s
        .snaptastic(&["mount-snapshots", "db"])
        .expect_code(0)
        .stdout();
    let vol = mounted_volume(&out, &s.mp(0));
    write(&s, 0, "snapshotted");
    s.snaptastic(&["make-snapshots", "db"]).expect_code(0);
    write(&s, 0, "newer");
    s.snaptastic(&["unmount-snapshots", "db", "--yes"])
        .expect_code(0);
    assert_eq!(mounted_at(&s.mp(0)), None);

    let creates = s.calls("CreateVolume");
    let d = s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    assert_eq!(mounted_volume(&d.stdout(), &s.mp(0)), vol, "{}", d.stderr());
    assert!(
        d.stderr().contains(&format!(
            "re-attaching {vol} detached by an earlier unmount-snapshots"
        )),
        "{}",
        d.stderr()
    );
    assert_eq!(read(&s, 0), "newer");
    assert_eq!(s.calls("CreateVolume"), creates, "nothing restored");

    // The same volume, detached, but in another AZ: stop, name it and
    // the flag; nothing is created.
    let mut tags = volume_tags(&s, &vol);
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
    tags.insert("snaptastic:state".into(), "detached".into());
    let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let far = s.lab.ec2().volume("us-east-1b", 1, &tags);
    let creates = s.calls("CreateVolume");
    let d = s.snaptastic(&["mount-snapshots", "db"]).expect_code(1);
    assert!(
        d.stderr().contains(&far)
            && d.stderr().contains("is in us-east-1b")
            && d.stderr().contains("--from-snapshot"),
        "{}",
        d.stderr()
    );
    assert_eq!(s.calls("CreateVolume"), creates);
    assert_eq!(mounted_at(&s.mp(0)), None);
    // Told to: the snapshot is restored.
    s.snaptastic(&["mount-snapshots", "db", "--from-snapshot"])
        .expect_code(0);
    assert_eq!(read(&s, 0), "snapshotted");
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn kill_during_creating_then_rerun_leaves_one_volume() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = Setup::new(
        &moto,
        false,
        Some("volume_available_after = \"5s\"\n"),
        &[("/dev/sdf", "ext4", 1)],
    );
    let mut child = s.lab.run(&["mount-snapshots", "db"]).config(&s.cfg).spawn();
    let start = Instant::now();
    while s.calls("CreateVolume") == 0 || s.our_volumes().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "CreateVolume never came"
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("mount-snapshots ended before CreateVolume was seen: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let left = s.our_volumes();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].1, "creating", "{left:?}");

    let d = s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    assert_eq!(
        mounted_volume(&d.stdout(), &s.mp(0)),
        left[0].0,
        "{}",
        d.stderr()
    );
    assert_eq!(s.calls("CreateVolume"), 1, "a second volume was created");
    assert_eq!(s.our_volumes().len(), 1);
    assert!(mounted_at(&s.mp(0)).is_some());
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_snapshot_0_2_12_took_after_our_set_is_restored_not_the_older_set() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    // One volume: a host still on 0.2.12 (or rolled back) snapshots it a
    // week after our last set.
    let s = Setup::new(&moto, false, None, &[("/dev/sdf", "ext4", 1)]);
    let out = s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    let vol = mounted_volume(&out.stdout(), &s.mp(0));
    write(&s, 0, "our set");
    s.snaptastic(&["make-snapshots", "db"]).expect_code(0);
    write(&s, 0, "a week later, by 0.2.12");
    // EC2 gives start times to the second: later than the set's.
    std::thread::sleep(Duration::from_millis(1100));
    s.legacy_snapshot(&vol, &s.mp(0));
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
    let plan = s
        .snaptastic(&["mount-snapshots", "db", "--dry-run"])
        .expect_code(0);
    assert!(
        plan.stderr()
            .contains("one volume with snapshots: restoring its newest usable snapshot"),
        "{}",
        plan.stderr()
    );
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    assert_eq!(read(&s, 0), "a week later, by 0.2.12");
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn newer_0_2_12_snapshots_of_some_volumes_only_are_refused_not_passed_over() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = Setup::new(
        &moto,
        false,
        None,
        &[("/dev/sdf", "ext4", 1), ("/dev/sdg", "ext4", 1)],
    );
    let out = s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    let v0 = mounted_volume(&out.stdout(), &s.mp(0));
    let v1 = mounted_volume(&out.stdout(), &s.mp(1));
    write(&s, 0, "set 0");
    write(&s, 1, "set 1");
    s.snaptastic(&["make-snapshots", "db"]).expect_code(0);
    let run = runs_of(&s, &v0).pop().expect("the set's run tag");
    write(&s, 0, "newer 0");
    std::thread::sleep(Duration::from_millis(1100));
    s.legacy_snapshot(&v0, &s.mp(0));
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
    let created = s.calls("CreateVolume");
    let refused = s.snaptastic(&["mount-snapshots", "db"]).expect_code(1);
    let err = refused.stderr();
    assert!(
        err.contains(&format!(
            "newer than the newest complete set snaptastic:run={run}"
        )) && err.contains(&format!("--set {run}"))
            && err.contains("--allow-mixed"),
        "{err}"
    );
    assert_eq!(s.calls("CreateVolume"), created, "{err}");
    // The set, asked for by name: both volumes from it.
    s.snaptastic(&["mount-snapshots", "db", "--set", &run])
        .expect_code(0);
    assert_eq!((read(&s, 0), read(&s, 1)), ("set 0".into(), "set 1".into()));
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
    // Each volume's newest, asked for.
    s.snaptastic(&["mount-snapshots", "db", "--allow-mixed"])
        .expect_code(0);
    assert_eq!(
        (read(&s, 0), read(&s, 1)),
        ("newer 0".into(), "set 1".into())
    );
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
    let _ = v1;
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_kept_volume_with_a_damaged_superblock_is_never_formatted() {
    use std::io::{Seek, SeekFrom, Write};
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = Setup::new(&moto, false, None, &[("/dev/sdf", "ext4", 1)]);
    let out = s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    let vol = mounted_volume(&out.stdout(), &s.mp(0));
    write(&s, 0, "precious");
    // Detached on purpose (tagged detached, created empty): kept for later.
    s.snaptastic(&["unmount-snapshots", "db", "--yes"])
        .expect_code(0);
    assert_eq!(volume_tags(&s, &vol)["snaptastic:source"], "empty");
    // Its superblock is damaged meanwhile: the first MiB zeroed.
    let image = s.lab.dir.join("images").join(format!("{vol}.img"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(&vec![0u8; 1 << 20]).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let probe = |img: &std::path::Path| {
        std::process::Command::new("blkid")
            .args(["-p", "-o", "value", "-s", "TYPE"])
            .arg(img)
            .output()
            .unwrap()
            .stdout
    };
    assert!(probe(&image).is_empty(), "the superblock is still readable");

    let r = s.snaptastic(&["mount-snapshots", "db"]);
    assert_ne!(r.code(), 0, "{}", r.stderr());
    assert!(
        r.stderr().contains(&format!("{vol} (")) && r.stderr().contains("refusing to format it"),
        "{}",
        r.stderr()
    );
    // Not formatted: still no filesystem signature, nothing mounted there.
    assert!(probe(&image).is_empty(), "the damaged volume was formatted");
    assert_eq!(
        mounted_at(&s.mp(0)),
        None,
        "something is mounted at the mount point"
    );
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_cut_short_per_volume_run_is_not_restored_as_a_point_in_time() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = Setup::new(
        &moto,
        false,
        None,
        &[("/dev/sdf", "ext4", 1), ("/dev/sdg", "ext4", 1)],
    );
    let out = s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    let v1 = mounted_volume(&out.stdout(), &s.mp(1));
    write(&s, 0, "one");
    write(&s, 1, "one");
    s.snaptastic(&["make-snapshots", "db"]).expect_code(0);
    write(&s, 0, "two");
    write(&s, 1, "two");
    // One volume per call; EC2 accepts the second's after the deadline.
    std::thread::sleep(Duration::from_millis(1100));
    s.lab.control(
        "rules",
        &format!(
            "[[faults]]\naction = \"CreateSnapshot\"\nparams = {{ VolumeId = \"{v1}\" }}\nreply = \"late\"\nlatency = \"2s\"\n"
        ),
    );
    let d = s
        .snaptastic(&[
            "make-snapshots",
            "db",
            "--per-volume",
            "--freeze-timeout",
            "500ms",
        ])
        .expect_code(1);
    assert!(
        d.stderr().contains("tagged consistency=crash"),
        "{}",
        d.stderr()
    );
    s.lab.control("rules", "");
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
    // Its snapshots were taken at two moments: the earlier frozen set wins.
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    assert_eq!((read(&s, 0), read(&s, 1)), ("one".into(), "one".into()));
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
}
