//! `clean snapshots` and the snapshots of a make-snapshots run that no
//! mount point ranks, through the real binary against moto: a set member
//! whose post-thaw `mount_point` tag failed and a late stray of a set cut
//! short (tagged `consistency=crash`) are kept while their set is and go
//! with it; and off the host, where the profile's mount points are not
//! known, a stray mount point never leaves the newest complete set
//! unprotected.

use std::time::Duration;

use crate::support::{moto, unique, write_config, Ec2, Run};

const EXPIRED: &str = "2013-09-02 14:22:02";

struct World {
    ec2: Ec2,
    moto: String,
    role: String,
    cfg: std::path::PathBuf,
    _dir: tempfile::TempDir,
    volume: String,
}

fn world(profile: &str) -> Option<World> {
    let moto = moto()?;
    let ec2 = Ec2::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(&dir, &format!("region = \"us-east-1\"\n{profile}"));
    let volume = ec2.volume("us-east-1a", 1, &[]);
    Some(World {
        ec2,
        moto,
        role: unique("orphan"),
        cfg,
        _dir: dir,
        volume,
    })
}

/// Profile db with /data and /logs.
const TWO_VOLUMES: &str = "[profiles.db]\n[[profiles.db.volumes]]\ndevice = \"/dev/sdf\"\nmount_point = \"/data\"\n[[profiles.db.volumes]]\ndevice = \"/dev/sdg\"\nmount_point = \"/logs\"\n";

impl World {
    /// A snapshot of run `run` of `profile` as make-snapshots tags it in
    /// set mode at creation, plus `more` (the `mount_point` it gets after
    /// the thaw, or the `consistency=crash` of a late one).
    fn snapshot(&self, profile: &str, run: &str, expires: &str, more: &[(&str, &str)]) -> String {
        let mut tags = vec![
            ("instance_id", "i-0123"),
            ("role", self.role.as_str()),
            ("cluster", "c"),
            ("environment", "e"),
            ("expires", expires),
            ("created", "2013-08-26 14:22:02"),
            ("snaptastic:profile", profile),
            ("snaptastic:run", run),
            ("consistency", "frozen"),
            ("snaptastic:call", "CreateSnapshots"),
        ];
        for (k, v) in more {
            match tags.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = v,
                None => tags.push((k, v)),
            }
        }
        self.ec2.legacy_snapshot(&self.volume, "d", &tags)
    }

    /// One set of run `run`: a snapshot of /data and /logs, one whose
    /// `mount_point` tag failed, and a late stray tagged crash. Returns
    /// them in that order.
    fn set(&self, run: &str, expires: &str) -> [String; 4] {
        [
            self.snapshot("db", run, expires, &[("mount_point", "/data")]),
            self.snapshot("db", run, expires, &[("mount_point", "/logs")]),
            self.snapshot("db", run, expires, &[]),
            self.snapshot("db", run, expires, &[("consistency", "crash")]),
        ]
    }

    /// `snaptastic ARGS -u USERDATA` (with `extra` in the userdata), off
    /// any instance.
    fn run(&self, args: &[&str], extra: &str) -> crate::support::Done {
        let ud = format!(
            r#"{{"role": "{}", "cluster": "c", "environment": "e"{extra}}}"#,
            self.role
        );
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-u", &ud]);
        Run::new(&all)
            .config(&self.cfg)
            .env("AWS_ENDPOINT_URL", &self.moto)
            .run()
    }

    fn exists(&self, snap: &str) -> bool {
        self.ec2
            .rt
            .block_on(
                self.ec2
                    .client
                    .describe_snapshots()
                    .snapshot_ids(snap)
                    .send(),
            )
            .is_ok_and(|r| !r.snapshots().is_empty())
    }
}

/// The line `clean` printed for an id.
fn line_for<'a>(out: &'a str, id: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(id))
        .unwrap_or_else(|| panic!("no line for {id}:\n{out}"))
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn clean_keeps_a_sets_orphans_while_the_set_is_kept_and_deletes_them_with_it() {
    let Some(w) = world(TWO_VOLUMES) else { return };
    let [data1, logs1, untagged1, late1] = w.set("r1", EXPIRED);
    // Another profile's orphan with the same filter tags: never ours.
    let other = w.snapshot("pg", "r1", EXPIRED, &[]);
    std::thread::sleep(Duration::from_millis(1100));
    // Expired too, but the newest set: a restore uses it.
    let [data2, logs2, untagged2, late2] = w.set("r2", EXPIRED);

    let out = w
        .run(&["clean", "snapshots", "db", "--dry-run"], "")
        .expect_code(0)
        .stdout();
    for id in [&untagged1, &late1] {
        let line = line_for(&out, id);
        assert!(
            line.starts_with("delete")
                && line.contains(
                    "no mount_point tag, of snapshot set snaptastic:run=r1: its set goes ("
                )
                && line.contains(": expired 2013-09-02 14:22:02)"),
            "{line}\n{out}"
        );
    }
    for id in [&untagged2, &late2] {
        let line = line_for(&out, id);
        assert!(
            line.starts_with("keep")
                && line.contains("no mount_point tag, of snapshot set snaptastic:run=r2: kept with its set, whose snap-")
                && line.contains("a restore would use it)"),
            "{line}\n{out}"
        );
    }
    assert!(line_for(&out, &untagged2).contains(&format!("? ({})", w.volume)));
    assert!(
        line_for(&out, &other).contains("keep    ")
            && line_for(&out, &other).contains("another profile's (snaptastic:profile=pg)"),
        "{out}"
    );
    assert!(
        out.ends_with("4 to delete (dry run: nothing deleted)\n"),
        "{out}"
    );

    let out = w
        .run(&["clean", "snapshots", "db", "--yes"], "")
        .expect_code(0)
        .stdout();
    for id in [&data1, &logs1, &untagged1, &late1] {
        assert!(!w.exists(id), "{id} kept:\n{out}");
    }
    for id in [&data2, &logs2, &untagged2, &late2, &other] {
        assert!(w.exists(id), "{id} deleted:\n{out}");
    }

    // A newer set: r2 expires now, and its orphans go with it.
    std::thread::sleep(Duration::from_millis(1100));
    let r3 = w.set("r3", "2099-01-01 00:00:00");
    let out = w
        .run(&["clean", "snapshots", "db", "--yes"], "")
        .expect_code(0)
        .stdout();
    for id in [&data2, &logs2, &untagged2, &late2] {
        assert!(!w.exists(id), "{id} kept:\n{out}");
    }
    for id in r3.iter().chain([&other]) {
        assert!(w.exists(id), "{id} deleted:\n{out}");
    }
    let line = line_for(&out, &r3[2]);
    assert!(
        line.contains("kept with its set, whose snap-") && line.contains("is kept ("),
        "{out}"
    );
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn clean_off_the_host_keeps_the_newest_complete_set_despite_a_stray_mount_point() {
    // The volumes come from userdata, which off the host has no list: the
    // profile's mount points are unknown here.
    let Some(w) = world("[profiles.db]\nvolumes_from_userdata = \"volumes\"\n") else {
        return;
    };
    let data = [("mount_point", "/data")];
    let logs = [("mount_point", "/logs")];
    // r1 covered /data and /logs and has expired; the newer r2 failed on
    // /logs. A restore on the host uses r1 for both.
    let data1 = w.snapshot("db", "r1", EXPIRED, &data);
    let logs1 = w.snapshot("db", "r1", EXPIRED, &logs);
    std::thread::sleep(Duration::from_millis(1100));
    let data2 = w.snapshot("db", "r2", EXPIRED, &data);
    // Strays sharing the filter tags: another profile's mount point, and
    // an old 0.2.12 snapshot of a mount point of some host.
    let other = w.snapshot("pg", "r9", EXPIRED, &[("mount_point", "/srv/pg")]);
    let legacy = w.ec2.legacy_snapshot(
        &w.volume,
        "d",
        &[
            ("instance_id", "i-old"),
            ("mount_point", "/srv/old"),
            ("role", w.role.as_str()),
            ("cluster", "c"),
            ("environment", "e"),
            ("expires", EXPIRED),
            ("created", "2013-08-26 14:22:02"),
        ],
    );

    let d = w
        .run(&["clean", "snapshots", "db", "--dry-run"], "")
        .expect_code(0);
    let out = d.stdout();
    let line = line_for(&out, &data1);
    assert!(
        line.starts_with("keep") && line.contains("in the snapshot set a restore would use"),
        "{line}\n{out}\n{}",
        d.stderr()
    );
    for id in [&logs1, &data2, &other, &legacy] {
        assert!(line_for(&out, id).starts_with("keep"), "{id}:\n{out}");
    }

    // The same run deletes nothing of it; on the host (the list given),
    // the same set is kept.
    w.run(&["clean", "snapshots", "db", "--yes"], "")
        .expect_code(0);
    for id in [&data1, &logs1, &data2, &other, &legacy] {
        assert!(w.exists(id), "{id} deleted");
    }
    let listed = r#", "volumes": [{"device": "/dev/sdf", "mount_point": "/data"}, {"device": "/dev/sdg", "mount_point": "/logs"}]"#;
    let out = w
        .run(&["clean", "snapshots", "db", "--dry-run"], listed)
        .expect_code(0)
        .stdout();
    let line = line_for(&out, &data1);
    assert!(
        line.starts_with("keep") && line.contains("in the snapshot set a restore would use"),
        "{line}\n{out}"
    );
}
