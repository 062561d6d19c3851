//! Snapshotters written in Rust, through their own binaries against the
//! lab: the shipped example (`examples/custom_snapshotter.rs`) and a
//! recording one that checks the order of all 12 hooks.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::{example_bin, lab_prerequisites, unique, Done, Lab, LabOpts};

/// Commands the example's hooks run, faked: each appends its name and
/// arguments to `calls.log` in `dir`, which goes first on PATH.
fn fake_commands(dir: &Path, names: &[&str]) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for n in names {
        let p = bin.join(n);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho \"{n} $*\" >> '{}'\n",
                dir.join("calls.log").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn snapshot_tags(lab: &Lab, id: &str) -> BTreeMap<String, String> {
    lab.ec2().snapshot_tags(id)
}

/// The snapshot ids a make-snapshots run printed.
fn started(d: &Done) -> Vec<String> {
    d.stdout()
        .lines()
        .filter(|l| l.starts_with("started"))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("snap-")))
        .map(|w| w.to_string())
        .collect()
}

/// Two volumes (xfs and ext4) under the lab's directory, as lines of
/// `device mount_point size fs`.
fn volume_lines(lab: &Lab) -> (String, [PathBuf; 2]) {
    let mps = [lab.dir.join("mnt/data"), lab.dir.join("mnt/wal")];
    let text = format!(
        "/dev/sdf {} 1 xfs\n/dev/sdg {} 1 ext4\n",
        mps[0].display(),
        mps[1].display()
    );
    (text, mps)
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn the_example_snapshotter_restores_its_data_and_runs_its_hooks() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let shard = unique("s");
    let lab = Lab::start(
        &moto,
        LabOpts {
            userdata: Some(format!(
                r#"{{"cluster": "orders", "environment": "prod", "shard": "{shard}"}}"#
            )),
            ..Default::default()
        },
    );
    let (lines, mps) = volume_lines(&lab);
    let provisioned = lab.dir.join("provisioned");
    std::fs::write(&provisioned, format!("# from provisioning\n{lines}")).unwrap();
    let path = fake_commands(&lab.dir, &["psql", "systemctl"]);
    let bin = example_bin("custom_snapshotter");
    // No configuration file: the program's own snapshotter suffices.
    let run = |args: &[&str]| {
        lab.run_program(&bin, args)
            .env_remove("SNAPTASTIC_CONFIG")
            .env("PG_VOLUMES", &provisioned)
            .env("PATH", &path)
            .run()
    };

    run(&["mount-snapshots", "pg"]).expect_code(0);
    for mp in &mps {
        std::fs::write(mp.join("data"), mp.display().to_string()).unwrap();
    }
    let made = run(&["make-snapshots", "pg"]).expect_code(0);
    let snaps = started(&made);
    assert_eq!(snaps.len(), 2, "{}", made.stdout());
    let tags = snapshot_tags(&lab, &snaps[0]);
    assert_eq!(tags["cluster"], format!("orders-prod-{shard}"), "{tags:?}");
    assert_eq!(tags["role"], "postgres");
    assert_eq!(tags["snaptastic:profile"], "pg");
    run(&["unmount-snapshots", "pg", "--yes", "--delete"]).expect_code(0);
    for mp in &mps {
        assert!(!mp.join("data").exists(), "{} still mounted", mp.display());
    }
    run(&["mount-snapshots", "pg"]).expect_code(0);
    for mp in &mps {
        assert_eq!(
            std::fs::read_to_string(mp.join("data")).unwrap(),
            mp.display().to_string(),
            "the data came back from the snapshot"
        );
    }
    let calls = std::fs::read_to_string(lab.dir.join("calls.log")).unwrap();
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        [
            "systemctl start postgresql",
            "psql -U postgres -c CHECKPOINT",
            "systemctl stop postgresql",
            "systemctl start postgresql",
        ],
        "{calls}"
    );

    // A name the program does not know lists the ones it does.
    let d = run(&["list-volumes", "pgg"]).expect_code(1);
    assert!(
        d.stderr().contains(
            "no snapshotter 'pgg' (no configuration file was read); built into this program: pg"
        ),
        "{}",
        d.stderr()
    );
    // A failing hook of a Rust snapshotter stops the command, named.
    let bad_path = fake_commands(&lab.dir.join("bad"), &[]);
    std::fs::write(lab.dir.join("bad/bin/psql"), "#!/bin/sh\nexit 3\n").unwrap();
    std::fs::set_permissions(
        lab.dir.join("bad/bin/psql"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let d = lab
        .run_program(&bin, &["make-snapshots", "pg"])
        .env_remove("SNAPTASTIC_CONFIG")
        .env("PG_VOLUMES", &provisioned)
        .env("PATH", &bad_path)
        .run()
        .expect_code(1);
    assert!(
        d.stderr().contains(
            "hook pre_snapshots: psql -U postgres -c CHECKPOINT failed with exit status: 3; nothing was frozen"
        ),
        "{}",
        d.stderr()
    );
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_recording_snapshotter_sees_all_twelve_hooks_in_order() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let role = unique("rec");
    let lab = Lab::start(
        &moto,
        LabOpts {
            userdata: Some(format!(
                r#"{{"role": "{role}", "cluster": "c", "environment": "e"}}"#
            )),
            ..Default::default()
        },
    );
    let (lines, mps) = volume_lines(&lab);
    let vols = lab.dir.join("volumes");
    std::fs::write(&vols, lines).unwrap();
    let log = lab.dir.join("hooks.log");
    let bin = example_bin("recording_snapshotter");
    let run = |args: &[&str]| {
        lab.run_program(&bin, args)
            .env_remove("SNAPTASTIC_CONFIG")
            .env("REC_VOLUMES", &vols)
            .env("REC_LOG", &log)
            .run()
    };
    let mut snaps = Vec::new();
    for (args, names) in [
        (
            &["mount-snapshots", "rec"][..],
            ["pre_mounts", "pre_mount", "post_mount", "post_mounts"],
        ),
        (
            &["make-snapshots", "rec"][..],
            [
                "pre_snapshots",
                "pre_snapshot",
                "post_snapshot",
                "post_snapshots",
            ],
        ),
        (
            &["unmount-snapshots", "rec", "--yes", "--delete"][..],
            [
                "pre_unmounts",
                "pre_unmount",
                "post_unmount",
                "post_unmounts",
            ],
        ),
    ] {
        let _ = std::fs::remove_file(&log);
        let d = run(args).expect_code(0);
        snaps.extend(started(&d));
        let text = std::fs::read_to_string(&log).unwrap();
        let got: Vec<(&str, &str, &str)> = text
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f[0], f[1], f[2])
            })
            .collect();
        let [run_pre, vol_pre, vol_post, run_post] = names;
        // The run's hooks frame everything; each volume's pre comes before
        // its post; the volumes may interleave (they run concurrently).
        assert_eq!(got.len(), 6, "{args:?}: {text}");
        assert_eq!(got[0], (run_pre, "all", "-"), "{text}");
        assert_eq!(got[5], (run_post, "all", "-"), "{text}");
        for mp in &mps {
            let mp = mp.to_str().unwrap();
            let at = |name: &str| {
                got.iter()
                    .position(|(n, m, _)| *n == name && *m == mp)
                    .unwrap_or_else(|| panic!("no {name} for {mp}: {text}"))
            };
            assert!(at(vol_pre) < at(vol_post), "{text}");
        }
        if names[0] == "pre_snapshots" {
            // post_snapshot names the snapshot it follows.
            let ids: Vec<&str> = got
                .iter()
                .filter(|(n, _, _)| *n == "post_snapshot")
                .map(|(_, _, s)| *s)
                .collect();
            let mut printed = snaps.clone();
            printed.sort();
            let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
            ids.sort();
            assert_eq!(ids, printed, "{text}");
        }
    }
}
