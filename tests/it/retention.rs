//! clean and check-backups against moto, with snapshots tagged as
//! snaptastic 0.2.12 tagged them (expired and not).

use std::time::Duration;

use crate::support::{moto, unique, write_config, Ec2, Run};

struct World {
    ec2: Ec2,
    moto: String,
    role: String,
    cfg: std::path::PathBuf,
    _dir: tempfile::TempDir,
    volume: String,
}

fn world() -> Option<World> {
    let moto = moto()?;
    let ec2 = Ec2::new(&moto);
    let role = unique("ret");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        "region = \"us-east-1\"\n[profiles.db]\n[[profiles.db.volumes]]\ndevice = \"/dev/sdf\"\nmount_point = \"/data\"\n[[profiles.db.volumes]]\ndevice = \"/dev/sdg\"\nmount_point = \"/logs\"\n",
    );
    let volume = ec2.volume("us-east-1a", 1, &[]);
    Some(World {
        ec2,
        moto,
        role,
        cfg,
        _dir: dir,
        volume,
    })
}

impl World {
    fn snapshot(&self, mp: &str, expires: &str) -> String {
        self.ec2.legacy_snapshot(
            &self.volume,
            "d",
            &[
                ("instance_id", "i-old"),
                ("mount_point", mp),
                ("role", &self.role),
                ("cluster", "c"),
                ("environment", "e"),
                ("expires", expires),
                ("created", "2013-08-26 14:22:02.361688"),
            ],
        )
    }

    fn run(&self, args: &[&str]) -> crate::support::Done {
        let ud = format!(
            r#"{{"role": "{}", "cluster": "c", "environment": "e"}}"#,
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

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn clean_snapshots_deletes_expired_but_never_the_newest() {
    let Some(w) = world() else { return };
    let old = w.snapshot("/data", "2013-09-02 14:22:02.361688");
    std::thread::sleep(Duration::from_millis(1100));
    let kept_future = w.snapshot("/data", "2099-01-01 00:00:00");
    std::thread::sleep(Duration::from_millis(1100));
    let newest_expired = w.snapshot("/data", "2013-09-02 14:22:02");
    let only_logs = w.snapshot("/logs", "2013-09-02 14:22:02");

    let out = w
        .run(&["clean", "snapshots", "db", "--dry-run"])
        .expect_code(0)
        .stdout();
    assert!(
        out.contains(&format!("delete  {old} /data"))
            && out.contains(": 0.2.12's tag set, expired 2013-09-02 14:22:02.361688"),
        "{out}"
    );
    assert!(
        out.contains(&format!("keep    {kept_future} /data"))
            && out.contains("expires 2099-01-01 00:00:00"),
        "{out}"
    );
    assert!(
        out.contains(&format!("keep    {newest_expired} /data"))
            && out.contains("newest completed of /data: a restore would use it"),
        "{out}"
    );
    assert!(out.contains(&format!("keep    {only_logs} /logs")), "{out}");
    assert!(
        out.ends_with("1 to delete (dry run: nothing deleted)\n"),
        "{out}"
    );
    assert!(w.exists(&old));

    // Unattended without --yes: refused.
    let d = w.run(&["clean", "snapshots", "db"]).expect_code(1);
    assert!(d.stderr().contains("pass --yes"), "{}", d.stderr());
    assert!(w.exists(&old));

    let out = w
        .run(&["clean", "snapshots", "db", "--yes"])
        .expect_code(0)
        .stdout();
    assert!(out.contains(&format!("deleted {old}")), "{out}");
    assert!(!w.exists(&old));
    for s in [&kept_future, &newest_expired, &only_logs] {
        assert!(w.exists(s), "{s} was deleted");
    }

    // --older-than takes the unexpired too, but still not the newest.
    let out = w
        .run(&["clean", "snapshots", "db", "--older-than", "0s", "--yes"])
        .expect_code(0)
        .stdout();
    assert!(out.contains(&format!("deleted {kept_future}")), "{out}");
    assert!(w.exists(&newest_expired) && w.exists(&only_logs));
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn clean_volumes_only_touches_this_profiles_unattached_volumes() {
    let Some(w) = world() else { return };
    let tags = |state: &'static str| {
        vec![
            ("snaptastic:profile", "db"),
            ("role", w.role.as_str()),
            ("cluster", "c"),
            ("environment", "e"),
            ("mount_point", "/data"),
            ("snaptastic:state", state),
            ("created", "2013-08-26 14:22:02"),
        ]
    };
    let leftover = w.ec2.volume("us-east-1a", 1, &tags("detached"));
    let other_profile = w.ec2.volume(
        "us-east-1a",
        1,
        &[
            ("snaptastic:profile", "web"),
            ("role", w.role.as_str()),
            ("cluster", "c"),
            ("environment", "e"),
        ],
    );
    let untagged = w.ec2.volume("us-east-1a", 1, &[]);
    let crashed = w.ec2.volume("us-east-1a", 1, &tags("restoring"));
    let out = w
        .run(&["clean", "volumes", "db", "--yes"])
        .expect_code(0)
        .stdout();
    assert!(out.contains(&format!("deleted {crashed}")), "{out}");
    assert!(
        out.contains(&format!("keep    {leftover}"))
            && out.contains("--include-detached deletes it"),
        "{out}"
    );
    let out = w
        .run(&["clean", "volumes", "db", "--yes", "--include-detached"])
        .expect_code(0)
        .stdout();
    assert!(out.contains(&format!("deleted {leftover}")), "{out}");
    assert!(
        !out.contains(&other_profile) && !out.contains(&untagged),
        "{out}"
    );
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn check_backups_exit_codes_and_metrics() {
    let Some(w) = world() else { return };
    w.snapshot("/data", "2099-01-01 00:00:00");
    // /logs has no snapshot: stale.
    let d = w.run(&["check-backups", "26h", "db"]).expect_code(1);
    let out = d.stdout();
    assert!(
        out.contains("OK     /data: snap-") && out.contains("STALE  /logs: no completed snapshot"),
        "{out}"
    );

    w.snapshot("/logs", "2099-01-01 00:00:00");
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("snaptastic.prom");
    let d = w
        .run(&[
            "check-backups",
            "26h",
            "db",
            "--prometheus",
            prom.to_str().unwrap(),
        ])
        .expect_code(0);
    assert_eq!(d.stdout().matches("OK ").count(), 2, "{}", d.stdout());
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(
        text.contains("# TYPE snaptastic_newest_backup_age_seconds gauge"),
        "{text}"
    );
    assert!(
        text.contains("{profile=\"db\",mount_point=\"/data\"}"),
        "{text}"
    );

    // Too strict an age: stale (and the age is not a calendar-day filter).
    std::thread::sleep(Duration::from_millis(1100));
    let out = w
        .run(&["check-backups", "1s", "db"])
        .expect_code(1)
        .stdout();
    assert_eq!(out.matches("STALE").count(), 2, "{out}");

    // By tags instead of a profile, as 0.2.12 was called from cron.
    let d = Run::new(&[
        "check-backups",
        "2d",
        "--role",
        &w.role,
        "--cluster",
        "c",
        "--environment",
        "e",
    ])
    .env("AWS_ENDPOINT_URL", &w.moto)
    .env("AWS_REGION", "us-east-1")
    .run()
    .expect_code(0);
    assert_eq!(d.stdout().matches("OK ").count(), 2, "{}", d.stdout());
    Run::new(&["check-backups", "2d"])
        .env("AWS_ENDPOINT_URL", &w.moto)
        .env("AWS_REGION", "us-east-1")
        .run()
        .expect_code(1);
}
