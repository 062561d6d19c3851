//! copy-snapshots and the DR Region, through the real binary against two
//! labs (home and DR Regions sharing one emulator and the snapshot
//! images): a 2-volume set is copied, a run killed with a copy carried
//! out but unanswered is finished by the next with no duplicate, the
//! copies restore on a DR host with the data, and `clean` expires copies
//! by their own retention there while a locked one stays.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::support::{lab_prerequisites, mounted_volume, Lab, LabOpts, Setup};

const DR: &str = "us-west-2";

/// The snapshots tagged with the profile's role, as `ec2` sees them.
fn of_role(ec2: &crate::support::Ec2, s: &Setup) -> Vec<aws_sdk_ec2::types::Snapshot> {
    let role = aws_sdk_ec2::types::Filter::builder()
        .name("tag:role")
        .values(&s.role)
        .build();
    let r = ec2
        .rt
        .block_on(ec2.client.describe_snapshots().filters(role).send())
        .unwrap();
    r.snapshots().to_vec()
}

/// The profile's copies in the DR Region: id -> (copy-of, state).
fn copies(s: &Setup) -> BTreeMap<String, (String, String)> {
    of_role(&s.lab.ec2_in(DR), s)
        .iter()
        .map(|c| {
            let of = c
                .tags()
                .iter()
                .find(|t| t.key() == Some("snaptastic:copy-of"))
                .and_then(|t| t.value())
                .unwrap_or("?")
                .to_string();
            let state = c
                .state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            (c.snapshot_id().unwrap().to_string(), (of, state))
        })
        .collect()
}

fn write_data(s: &Setup, round: u32) {
    for i in 0..2 {
        std::fs::write(s.mp(i).join("data"), format!("v{i} round {round}")).unwrap();
    }
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_set_is_copied_once_restores_in_the_dr_region_and_expires_there_by_its_own_rule() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let rules = "copy_pending = \"1s\"\n";
    let s = Setup::new(
        &moto,
        false,
        Some(rules),
        &[("/dev/sdf", "xfs", 1), ("/dev/sdg", "ext4", 1)],
    );
    s.add_to_profile(&format!(
        "[[profiles.db.copies]]\nregion = \"{DR}\"\nretention = \"1s\"\n"
    ));
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    write_data(&s, 1);
    s.snaptastic(&["make-snapshots", "db", "--wait"])
        .expect_code(0);

    // Killed after EC2 carried out its second copy, before the reply.
    s.lab.control(
        "rules",
        &format!("{rules}[[faults]]\naction = \"CopySnapshot\"\ncalls = [2]\nreply = \"late\"\nlatency = \"60s\"\n"),
    );
    let mut run = s.lab.run(&["copy-snapshots", "db"]).config(&s.cfg).spawn();
    let end = Instant::now() + Duration::from_secs(60);
    while s.lab.state()["held"]["CopySnapshot"].as_u64().unwrap_or(0) == 0 {
        assert!(Instant::now() < end, "the second copy was never held");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Meanwhile a second run on this host refuses to start (it would find
    // the same copies missing).
    let d = s.snaptastic(&["copy-snapshots", "db"]).expect_code(1);
    assert!(
        d.stderr()
            .contains("another copy-snapshots of profile 'db' runs on this host"),
        "{}",
        d.stderr()
    );
    run.kill().unwrap();
    run.wait().unwrap();
    assert_eq!(
        copies(&s).len(),
        2,
        "both copies were made: {:?}",
        copies(&s)
    );

    // The re-run finds both and copies nothing again.
    s.lab.control("rules", rules);
    let out = s
        .snaptastic(&["copy-snapshots", "db", "--wait", "1m"])
        .expect_code(0)
        .stdout();
    assert!(
        out.contains(&format!("{DR}: set ")) && out.contains("0 to start"),
        "{out}"
    );
    assert_eq!(s.calls("CopySnapshot"), 0, "{out}");
    let set1 = copies(&s);
    assert_eq!(set1.len(), 2, "{set1:?}");
    let sources: std::collections::BTreeSet<&String> = set1.values().map(|(of, _)| of).collect();
    assert_eq!(sources.len(), 2, "one copy per source: {set1:?}");

    // A newer set, copied in one run with --wait.
    write_data(&s, 2);
    s.snaptastic(&["make-snapshots", "db", "--wait"])
        .expect_code(0);
    let out = s
        .snaptastic(&["copy-snapshots", "db", "--wait", "1m"])
        .expect_code(0)
        .stdout();
    assert!(
        out.contains("2 to start") && out.matches("started ").count() == 2,
        "{out}"
    );
    let all = copies(&s);
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(all.values().all(|(_, st)| st == "completed"), "{all:?}");

    // Expired by their own 1 s retention there; the newest set's copies
    // stay (a restore there uses them), and a locked one stays too.
    let (locked, other): (Vec<&String>, Vec<&String>) = {
        let old: Vec<&String> = set1.keys().collect();
        (vec![old[0]], vec![old[1]])
    };
    let dr = s.lab.ec2_in(DR);
    dr.rt
        .block_on(
            dr.client
                .lock_snapshot()
                .snapshot_id(locked[0])
                .lock_mode(aws_sdk_ec2::types::LockMode::Governance)
                .lock_duration(1)
                .send(),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let d = s
        .snaptastic(&["clean", "snapshots", "db", "--yes"])
        .expect_code(0);
    let out = d.stdout();
    assert!(out.contains(&format!("== {DR}")), "{out}");
    assert!(
        out.contains(&format!("locked  {} ({DR})", locked[0])),
        "{out}"
    );
    assert!(out.contains(&format!("deleted {}", other[0])), "{out}");
    assert!(out.contains("Recycle Bin"), "{out}");
    let left = copies(&s);
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.contains_key(locked[0]) && !left.contains_key(other[0]));

    // check-backups of the copies there.
    s.snaptastic(&["check-backups", "1h", "db", "--region", DR])
        .expect_code(0);

    // A DR host in the other Region restores the newest set from its
    // copies, with the data. (The home host lets go of the mount points.)
    s.snaptastic(&["unmount-snapshots", "db", "--yes"])
        .expect_code(0);
    let userdata = format!(
        r#"{{"role": "{}", "cluster": "c", "environment": "e"}}"#,
        s.role
    );
    let dr_host = Lab::start(
        &moto,
        LabOpts {
            region: Some(DR.into()),
            images: Some(s.lab.images()),
            userdata: Some(userdata),
            ..Default::default()
        },
    );
    let d = dr_host
        .run(&["mount-snapshots", "db"])
        .config(&s.cfg)
        .run()
        .expect_code(0);
    let out = d.stdout();
    for i in 0..2 {
        assert_eq!(
            std::fs::read_to_string(s.mp(i).join("data")).unwrap(),
            format!("v{i} round 2"),
            "{out}\n{}",
            d.stderr()
        );
        let vol = mounted_volume(&out, &s.mp(i));
        assert!(vol.starts_with("vol-"), "{out}");
    }
    dr_host
        .run(&["unmount-snapshots", "db", "--yes", "--delete"])
        .config(&s.cfg)
        .run()
        .expect_code(0);
    drop(dr_host);
}

#[test]
fn copy_snapshots_without_targets_says_how_to_add_one() {
    let Some(moto) = crate::support::moto() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::support::write_config(
        &dir,
        "region = \"us-east-1\"\n[profiles.db]\n[[profiles.db.volumes]]\ndevice = \"/dev/sdf\"\nmount_point = \"/mnt/db\"\n",
    );
    let d = crate::support::Run::new(&[
        "copy-snapshots",
        "db",
        "--userdata",
        r#"{"role": "r", "cluster": "c", "environment": "e"}"#,
    ])
    .config(&cfg)
    .env("AWS_ENDPOINT_URL", &moto)
    .env("AWS_ACCESS_KEY_ID", "testing")
    .env("AWS_SECRET_ACCESS_KEY", "testing")
    .run()
    .expect_code(1);
    assert!(
        d.stderr()
            .contains("profile 'db' has no copy targets: add [[profiles.db.copies]] with a region"),
        "{}",
        d.stderr()
    );
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn clean_archives_old_snapshots_and_never_what_a_restore_uses() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = Setup::new(&moto, false, None, &[("/dev/sdf", "xfs", 1)]);
    s.add_to_profile("snapshot_retention = \"200d\"\narchive_after = \"1s\"");
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    let ec2 = s.lab.moto_ec2();
    let tiers = || -> BTreeMap<String, String> {
        of_role(&ec2, &s)
            .iter()
            .map(|x| {
                let tier = x
                    .storage_tier()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default();
                (x.snapshot_id().unwrap().to_string(), tier)
            })
            .collect()
    };
    s.snaptastic(&["make-snapshots", "db", "--wait"])
        .expect_code(0);
    let first: Vec<String> = tiers().into_keys().collect();
    assert_eq!(first.len(), 1);
    std::thread::sleep(Duration::from_millis(1100));
    s.snaptastic(&["make-snapshots", "db", "--wait"])
        .expect_code(0);

    let out = s
        .snaptastic(&["clean", "snapshots", "db", "--dry-run"])
        .expect_code(0)
        .stdout();
    assert!(
        out.contains(&format!("archive {}: ", first[0]))
            && out.contains("0 to delete, 1 to archive (dry run"),
        "{out}"
    );
    assert!(
        tiers().values().all(|t| t == "standard"),
        "a dry run archives nothing"
    );
    let out = s
        .snaptastic(&["clean", "snapshots", "db", "--yes"])
        .expect_code(0)
        .stdout();
    assert!(out.contains(&format!("archived {}", first[0])), "{out}");
    let now = tiers();
    assert_eq!(now[&first[0]], "archive", "{now:?}");
    assert_eq!(
        now.values().filter(|t| *t == "standard").count(),
        1,
        "{now:?}"
    );
    // The restore uses the newest, never the archived one.
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
    let out = s
        .snaptastic(&["mount-snapshots", "db"])
        .expect_code(0)
        .stdout();
    assert!(!out.contains(&first[0]), "{out}");
}
