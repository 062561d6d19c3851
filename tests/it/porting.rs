//! Porting from snaptastic 0.2.12: userdata volume lists as operators wrote
//! them for it (`"iops": false`, `"check_support": true`, ...), mount
//! points that differ from the snapshots' tags only by a trailing slash,
//! and 0.2.12's descriptions.

use std::path::Path;

use crate::support::{
    lab_prerequisites, moto, unique, write_config, Ec2, Imds, ImdsData, Lab, LabOpts, Run,
};
use crate::support::{mounted_at, Setup};

/// The snapshot id from make-snapshots' "started  MP: snap-… of vol-…".
fn started_snapshot(out: &str, mp: &Path) -> String {
    let line = out
        .lines()
        .find(|l| l.starts_with("started") && l.contains(&format!("{}:", mp.display())))
        .unwrap_or_else(|| panic!("no snapshot started for {}:\n{out}", mp.display()));
    line.split_whitespace().nth(2).unwrap().to_string()
}

fn sync() {
    assert!(std::process::Command::new("sync")
        .status()
        .unwrap()
        .success());
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn userdata_written_for_0_2_12_restores_through_the_lab() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let role = unique("port");
    let lab = Lab::start(&moto, LabOpts::default());
    let (a, b) = (lab.dir.join("mnt/a"), lab.dir.join("mnt/b"));
    // As 0.2.12's userdata_example read them: EBSVolume keywords, its
    // defaults written out, and a mount point with a trailing slash.
    let userdata = format!(
        r#"{{"role": "{role}", "cluster": "my_cluster", "environment": "e", "volumes": [
            {{"device": "/dev/sdf", "mount_point": "{}", "size": 1, "iops": false,
              "check_support": true, "file_system": "xfs", "mount_options": "defaults",
              "delete_on_termination": false, "device_name_offset": 0}},
            {{"device": "/dev/sdg", "mount_point": "{}/", "size": 1, "iops": null,
              "check_support": false, "file_system": "EXT4"}}
        ]}}"#,
        a.display(),
        b.display()
    );
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &cfg_dir,
        "[profiles.legacy]\nvolumes_from_userdata = \"volumes\"\ndescription_style = \"0.2.12\"\n",
    );
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--userdata", userdata.as_str()]);
        lab.run(&all).config(&cfg).run()
    };

    // A 0.2.12 snapshot whose tag differs from /mnt/a by case only: not
    // used, but named.
    let ec2 = lab.ec2();
    let src = ec2.volume("us-east-1a", 1, &[]);
    let upper = format!("{}/A", lab.dir.join("mnt").display());
    let near = ec2.legacy_snapshot(
        &src,
        "my-cluster snapshot of x",
        &[
            ("instance_id", lab.instance()),
            ("mount_point", &upper),
            ("role", &role),
            ("cluster", "my_cluster"),
            ("environment", "e"),
            ("expires", "2013-09-02 14:22:02.361688"),
            ("created", "2013-08-26 14:22:02"),
        ],
    );

    // First boot: empty volumes, gp3 (no provisioned IOPS), as asked.
    let d = run(&["mount-snapshots", "legacy"]).expect_code(0);
    let out = d.stdout();
    assert!(
        out.contains("(new empty xfs volume)") && out.contains("(new empty ext4 volume)"),
        "{out}\n{}",
        d.stderr()
    );
    assert!(
        d.stderr().contains(&format!(
            "near-identical mount_point tag (not used): \"{upper}\" ({near})"
        )),
        "{}",
        d.stderr()
    );
    assert_eq!(mounted_at(&a).as_deref(), Some("xfs"));
    assert_eq!(mounted_at(&b).as_deref(), Some("ext4"));
    let listed = run(&["list-volumes", "legacy", "--json"])
        .expect_code(0)
        .stdout();
    let rows: serde_json::Value = serde_json::from_str(&listed).unwrap();
    for row in rows.as_array().unwrap() {
        assert_eq!(
            (row["volume_type"].as_str(), row["iops"].is_null()),
            (Some("gp3"), true),
            "{listed}"
        );
    }
    assert_eq!(rows[1]["mount_point"], b.to_str().unwrap(), "{listed}");

    // Data, snapshots one per volume as 0.2.12 made them (a set shares
    // one description), in 0.2.12's description style, a fresh host.
    std::fs::write(a.join("a.txt"), "from a\n").unwrap();
    std::fs::write(b.join("b.txt"), "from b\n").unwrap();
    sync();
    let out = run(&["make-snapshots", "legacy", "--per-volume"])
        .expect_code(0)
        .stdout();
    let snap_a = started_snapshot(&out, &a);
    let snap_b = started_snapshot(&out, &b);
    let desc = ec2
        .rt
        .block_on(ec2.client.describe_snapshots().snapshot_ids(&snap_a).send())
        .unwrap()
        .snapshots()[0]
        .description()
        .unwrap()
        .to_string();
    assert_eq!(
        desc,
        format!(
            "my-cluster snapshot of {}",
            a.display().to_string().replace('_', "-")
        )
    );
    run(&["unmount-snapshots", "legacy", "--yes", "--delete"]).expect_code(0);
    assert_eq!(mounted_at(&a), None);

    let out = run(&["mount-snapshots", "legacy"]).expect_code(0).stdout();
    assert!(
        out.contains(&format!("(from {snap_a})")) && out.contains(&format!("(from {snap_b})")),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(a.join("a.txt")).unwrap(),
        "from a\n"
    );
    assert_eq!(
        std::fs::read_to_string(b.join("b.txt")).unwrap(),
        "from b\n"
    );
    run(&["unmount-snapshots", "legacy", "--yes", "--delete"]).expect_code(0);
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_trailing_slash_in_the_config_still_restores() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = Setup::new(&moto, false, None, &[("/dev/sdf", "ext4", 1)]);
    let mp = s.mp(0);
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    std::fs::write(mp.join("kept.txt"), "kept\n").unwrap();
    sync();
    let out = s
        .snaptastic(&["make-snapshots", "db"])
        .expect_code(0)
        .stdout();
    let snap = started_snapshot(&out, &mp);
    let ec2 = s.lab.ec2();
    let tags = ec2
        .rt
        .block_on(ec2.client.describe_snapshots().snapshot_ids(&snap).send())
        .unwrap()
        .snapshots()[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect::<std::collections::BTreeMap<_, _>>();
    assert_eq!(tags["mount_point"], mp.to_str().unwrap());
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);

    // The same mount point, typed with a trailing slash.
    let text = std::fs::read_to_string(&s.cfg).unwrap();
    let quoted = format!("\"{}\"", mp.display());
    assert!(text.contains(&quoted), "{text}");
    std::fs::write(
        &s.cfg,
        text.replace(&quoted, &format!("\"{}/\"", mp.display())),
    )
    .unwrap();
    let out = s
        .snaptastic(&["mount-snapshots", "db"])
        .expect_code(0)
        .stdout();
    assert!(out.contains(&format!("(from {snap})")), "{out}");
    assert_eq!(
        std::fs::read_to_string(mp.join("kept.txt")).unwrap(),
        "kept\n",
        "restored empty instead of from {snap}"
    );
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
}

/// Without root: list-volumes against the emulator sees the same choices.
#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn list_volumes_matches_tags_a_slash_apart_and_reads_0_2_12_userdata() {
    let Some(moto) = moto() else { return };
    let ec2 = Ec2::new(&moto);
    let (instance, zone) = ec2.instance();
    let role = unique("port");
    let src = ec2.volume(&zone, 5, &[]);
    let tags = |mp: &'static str| {
        vec![
            ("instance_id", instance.clone()),
            ("mount_point", mp.to_string()),
            ("role", role.clone()),
            ("cluster", "c".to_string()),
            ("environment", "e".to_string()),
            ("expires", "2013-09-02 14:22:02.361688".to_string()),
            ("created", "2013-08-26 14:22:02.361688".to_string()),
        ]
    };
    let legacy = |mp: &'static str| {
        let t = tags(mp);
        let t: Vec<(&str, &str)> = t.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ec2.legacy_snapshot(&src, "c snapshot of x", &t)
    };
    // 0.2.12 tagged what was typed: `/mnt/a/` here, `/mnt/a` in the userdata.
    let slashed = legacy("/mnt/a/");
    legacy("/mnt/B");
    let imds = Imds::start(ImdsData {
        instance_id: instance.clone(),
        zone: zone.clone(),
        userdata: None,
        v1_only: false,
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(&dir, "[profiles.u]\nvolumes_from_userdata = \"volumes\"\n");
    let ud = format!(
        r#"{{"role": "{role}", "cluster": "c", "environment": "e", "volumes": [
            {{"device": "/dev/sdf", "mount_point": "/mnt/a", "size": 5, "iops": false, "check_support": true}},
            {{"device": "/dev/sdg", "mount_point": "/mnt/b/", "iops": false, "check_support": false, "delete_on_termination": true}}
        ]}}"#
    );
    let out = Run::new(&["list-volumes", "u", "--userdata", &ud, "--json"])
        .config(&cfg)
        .aws(&moto, &imds)
        .run()
        .expect_code(0)
        .stdout();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["restore"]["snapshot"]["id"], slashed.as_str(), "{out}");
    assert_eq!(v[0]["volume_type"], "gp3", "{out}");
    assert_eq!(v[0]["iops"], serde_json::Value::Null, "{out}");
    // `/mnt/B` is another directory: not restored into /mnt/b.
    assert_eq!(v[1]["mount_point"], "/mnt/b", "{out}");
    assert_eq!(v[1]["restore"]["kind"], "empty", "{out}");

    // A key 0.2.12 never had is still refused by name.
    let bad = ud.replace("\"check_support\": false", "\"check_suport\": false");
    let d = Run::new(&["list-volumes", "u", "--userdata", &bad])
        .config(&cfg)
        .aws(&moto, &imds)
        .run()
        .expect_code(1);
    assert!(
        d.stderr().contains("unknown field `check_suport`"),
        "{}",
        d.stderr()
    );
}
