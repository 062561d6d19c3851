//! `list-volumes` and `test` against the moto emulator, with snapshots
//! tagged exactly as snaptastic 0.2.12 tagged them.

use std::time::Duration;

use crate::support::{moto, unique, write_config, Ec2, Imds, ImdsData, Run};

/// Tags as 0.2.12 wrote them: local-time `str(datetime)` timestamps.
fn legacy_tags<'a>(instance: &'a str, mp: &'a str, role: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("instance_id", instance),
        ("mount_point", mp),
        ("role", role),
        ("cluster", "solr"),
        ("environment", "aws"),
        ("expires", "2013-09-02 14:22:02.361688"),
        ("created", "2013-08-26 14:22:02.361688"),
    ]
}

fn profile(name: &str) -> String {
    format!(
        r#"
[profiles.{name}]
[[profiles.{name}.volumes]]
device = "/dev/sdf"
mount_point = "/mnt/a"
size = 5
[[profiles.{name}.volumes]]
device = "/dev/sdg"
mount_point = "/mnt/b"
size = 10
file_system = "ext4"
volume_type = "io2"
iops = 1000
"#
    )
}

struct World {
    ec2: Ec2,
    instance: String,
    zone: String,
    role: String,
}

fn world(moto: &str) -> World {
    let ec2 = Ec2::new(moto);
    let (instance, zone) = ec2.instance();
    World {
        ec2,
        instance,
        zone,
        role: unique("solr"),
    }
}

fn userdata(role: &str) -> String {
    format!(r#"{{"role": "{role}", "cluster": "solr", "environment": "aws"}}"#)
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn list_volumes_finds_legacy_snapshots_and_attachments() {
    let Some(moto) = moto() else { return };
    let w = world(&moto);
    let src = w.ec2.volume(&w.zone, 5, &[]);
    let older = w.ec2.legacy_snapshot(
        &src,
        "solr snapshot of /mnt/a",
        &legacy_tags(&w.instance, "/mnt/a", &w.role),
    );
    // moto's start times have one-second resolution.
    std::thread::sleep(Duration::from_millis(1100));
    let newest = w.ec2.legacy_snapshot(
        &src,
        "solr snapshot of /mnt/a",
        &legacy_tags(&w.instance, "/mnt/a", &w.role),
    );
    // Not ours: another role, and a mount point that differs by case (a
    // trailing slash no longer does: see porting.rs).
    let other_role = unique("other");
    w.ec2
        .legacy_snapshot(&src, "x", &legacy_tags(&w.instance, "/mnt/a", &other_role));
    w.ec2
        .legacy_snapshot(&src, "x", &legacy_tags(&w.instance, "/mnt/B", &w.role));
    // The volume restored earlier is attached at /dev/sdf.
    let attached = w.ec2.volume(&w.zone, 5, &[("mount_point", "/mnt/a")]);
    w.ec2.attach(&attached, &w.instance, "/dev/sdf");

    let imds = Imds::start(ImdsData {
        instance_id: w.instance.clone(),
        zone: w.zone.clone(),
        userdata: Some(userdata(&w.role)),
        v1_only: false,
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(&dir, &profile("solr"));

    let out = Run::new(&["list-volumes", "solr"])
        .config(&cfg)
        .aws(&moto, &imds)
        .run()
        .expect_code(0)
        .stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("MOUNT POINT"), "{out}");
    let a = lines[1];
    assert!(a.starts_with("/mnt/a "), "{out}");
    assert!(a.contains(&attached), "attached volume missing: {out}");
    assert!(
        a.contains(&format!("{newest} (")) && a.contains(", completed)"),
        "newest snapshot not chosen: {out}"
    );
    assert!(!a.contains(&older));
    let b = lines[2];
    assert!(
        b.starts_with("/mnt/b ")
            && b.contains("io2 1000 iops")
            && b.contains("10 GiB")
            && b.contains("ext4"),
        "{out}"
    );
    assert!(
        b.contains("none: will create empty")
            && b.ends_with("no snapshot of this mount point exists: created empty"),
        "{out}"
    );
    assert!(
        a.contains(" no ") || a.contains("no  "),
        "mounted column: {out}"
    );

    // The same as JSON, for scripts.
    let json = Run::new(&["list-volumes", "solr", "--json"])
        .config(&cfg)
        .aws(&moto, &imds)
        .run()
        .expect_code(0)
        .stdout();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["mount_point"], "/mnt/a");
    assert_eq!(v[0]["attached_volume"], attached.as_str());
    assert_eq!(v[0]["mounted"], false);
    assert_eq!(v[0]["restore"]["kind"], "snapshot");
    assert_eq!(v[0]["restore"]["snapshot"]["id"], newest.as_str());
    assert_eq!(
        v[0]["restore"]["snapshot"]["tags"]["created"],
        "2013-08-26 14:22:02.361688"
    );
    assert_eq!(v[1]["restore"]["kind"], "empty");
    assert_eq!(v[1]["attached_volume"], serde_json::Value::Null);
    // Metadata went through IMDSv2: a token first, then every read with it.
    let reqs = imds.requests.lock().unwrap().clone();
    assert_eq!(reqs[0].0, "/latest/api/token");
    assert!(
        reqs.iter().all(|(p, tok)| *tok || p == "/latest/api/token"),
        "{reqs:?}"
    );
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn userdata_flag_replaces_instance_userdata_and_v1_fallback_works() {
    let Some(moto) = moto() else { return };
    let w = world(&moto);
    let src = w.ec2.volume(&w.zone, 5, &[]);
    let snap = w
        .ec2
        .legacy_snapshot(&src, "d", &legacy_tags(&w.instance, "/mnt/b", &w.role));
    // The instance's own userdata names another role; --userdata wins.
    let imds = Imds::start(ImdsData {
        instance_id: w.instance.clone(),
        zone: w.zone.clone(),
        userdata: Some(userdata("someone-else")),
        v1_only: true,
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(&dir, &profile("solr"));
    let ud = userdata(&w.role);
    let out = Run::new(&["list-volumes", "solr", "--userdata", &ud, "--json"])
        .config(&cfg)
        .aws(&moto, &imds)
        .run()
        .expect_code(0)
        .stdout();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[1]["restore"]["snapshot"]["id"], snap.as_str(), "{out}");
    let reqs = imds.requests.lock().unwrap().clone();
    assert!(
        reqs.iter()
            .any(|(p, tok)| p == "/latest/meta-data/instance-id" && !tok),
        "{reqs:?}"
    );
    assert!(
        !reqs.iter().any(|(p, _)| p == "/latest/user-data"),
        "userdata was fetched despite --userdata: {reqs:?}"
    );
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn list_volumes_off_ec2_with_userdata_and_region() {
    let Some(moto) = moto() else { return };
    let w = world(&moto);
    let src = w.ec2.volume(&w.zone, 5, &[]);
    let snap = w
        .ec2
        .legacy_snapshot(&src, "d", &legacy_tags(&w.instance, "/mnt/a", &w.role));
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        &format!("region = \"us-east-1\"\n{}", profile("solr")),
    );
    let ud = userdata(&w.role);
    // Metadata unreachable (closed port); no AWS_REGION: the file's region.
    let d = Run::new(&["list-volumes", "solr", "-u", &ud])
        .config(&cfg)
        .env("AWS_ENDPOINT_URL", &moto)
        .run()
        .expect_code(0);
    let out = d.stdout();
    assert!(out.lines().nth(1).unwrap().contains(&snap), "{out}");
    assert!(out.lines().nth(1).unwrap().contains("unknown"), "{out}");
    assert!(
        d.stderr().contains("WARN") && d.stderr().contains("going on with --userdata"),
        "{}",
        d.stderr()
    );
    // --loglevel=WARNING keeps stderr to warnings; ERROR silences them.
    let quiet = Run::new(&["list-volumes", "solr", "-u", &ud, "--loglevel=error"])
        .config(&cfg)
        .env("AWS_ENDPOINT_URL", &moto)
        .run()
        .expect_code(0);
    assert_eq!(quiet.stderr(), "");
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn volumes_from_userdata_and_missing_filter_values() {
    let Some(moto) = moto() else { return };
    let w = world(&moto);
    let imds = Imds::start(ImdsData {
        instance_id: w.instance.clone(),
        zone: w.zone.clone(),
        userdata: None,
        v1_only: false,
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(&dir, "[profiles.u]\nvolumes_from_userdata = \"volumes\"\n");
    let ud = format!(
        r#"{{"role": "{}", "cluster": "c", "environment": "e", "volumes": [{{"device": "/dev/sdh", "mount_point": "/srv/u", "size": 7}}]}}"#,
        w.role
    );
    let out = Run::new(&["list-volumes", "u", "-u", &ud])
        .config(&cfg)
        .aws(&moto, &imds)
        .run()
        .expect_code(0)
        .stdout();
    assert!(
        out.contains("/srv/u") && out.contains("/dev/sdh") && out.contains("7 GiB"),
        "{out}"
    );

    // The instance has no userdata at all: the error says what is missing.
    let d = Run::new(&["list-volumes", "u"])
        .config(&cfg)
        .aws(&moto, &imds)
        .run()
        .expect_code(1);
    assert_eq!(
        d.error_lines(),
        ["error: userdata has no 'volumes' list (volumes_from_userdata of profile 'u')"]
    );
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn test_command_reports_every_check() {
    let Some(moto) = moto() else { return };
    let w = world(&moto);
    let imds = Imds::start(ImdsData {
        instance_id: w.instance.clone(),
        zone: w.zone.clone(),
        userdata: Some(userdata(&w.role)),
        v1_only: false,
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(&dir, &profile("solr"));
    let d = Run::new(&["test"])
        .config(&cfg)
        .aws(&moto, &imds)
        .run()
        .expect_code(0);
    let out = d.stdout();
    for want in [
        format!("OK   config: {}: 1 profile(s): solr", cfg.display()),
        format!(
            "OK   metadata: instance {} in {} (region us-east-1)",
            w.instance, w.zone
        ),
        format!(
            "OK   profile solr: 2 volume(s); snapshots tagged role={} cluster=solr environment=aws",
            w.role
        ),
        "OK   region: us-east-1 (from environment)".to_string(),
        "OK   credentials: credentials found".to_string(),
    ] {
        assert!(out.contains(&want), "missing {want:?} in\n{out}");
    }
    for action in [
        "DescribeSnapshots",
        "DescribeVolumes",
        "CreateVolume",
        "AttachVolume",
        "CreateSnapshot",
        "CreateTags",
        "DetachVolume",
        "DeleteVolume",
        "DeleteSnapshot",
        "CreateSnapshots",
        "DescribeInstances",
        "DescribeImages",
        "ModifyInstanceAttribute",
    ] {
        assert!(
            out.contains(&format!("OK   ec2:{action}: allowed")),
            "{action} in\n{out}"
        );
    }
    assert!(out.ends_with("all checks passed\n"), "{out}");
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn test_command_fails_on_each_broken_part() {
    let Some(moto) = moto() else { return };
    let w = world(&moto);
    let imds = Imds::start(ImdsData {
        instance_id: w.instance.clone(),
        zone: w.zone.clone(),
        // Userdata lacks the cluster the profile filters on.
        userdata: Some(format!(r#"{{"role": "{}", "environment": "aws"}}"#, w.role)),
        v1_only: false,
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(&dir, &profile("solr"));
    // EC2 unreachable: every permission probe fails with a hint.
    let d = Run::new(&["test"])
        .config(&cfg)
        .aws(&moto, &imds)
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .run()
        .expect_code(1);
    let out = d.stdout();
    assert!(
        out.contains("FAIL profile solr: userdata has no value for 'cluster'"),
        "{out}"
    );
    assert!(
        out.contains("FAIL ec2:CreateVolume: CreateVolume failed:"),
        "{out}"
    );
    assert!(out.contains("hint: EC2 did not answer"), "{out}");
    assert!(out.trim_end().ends_with("check(s) failed"), "{out}");

    // A broken config file is reported, and the other checks still run.
    std::fs::write(&cfg, "[profiles.x]\n").unwrap();
    let d = Run::new(&["test"])
        .config(&cfg)
        .aws(&moto, &imds)
        .run()
        .expect_code(1);
    let out = d.stdout();
    assert!(
        out.contains(&format!(
            "FAIL config: {}:1:1: profile 'x': has no volumes",
            cfg.display()
        )),
        "{out}"
    );
    assert!(out.contains("OK   ec2:DescribeSnapshots: allowed"), "{out}");
}

/// `snapshot_owners` naming an account as well as `self` (DR copies shared
/// from another account): the lookups ask for both and still find this
/// account's snapshots (moto's own account is 123456789012), and clean
/// still deletes this account's expired ones: the account is told by the
/// `self` lookup, not by the id.
#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn snapshot_owners_with_an_account_id_still_find_our_snapshots() {
    let Some(moto) = moto() else { return };
    let w = world(&moto);
    let src = w.ec2.volume(&w.zone, 5, &[]);
    let older = w.ec2.legacy_snapshot(
        &src,
        "solr snapshot of /mnt/a",
        &legacy_tags(&w.instance, "/mnt/a", &w.role),
    );
    // moto's start times have one-second resolution.
    std::thread::sleep(Duration::from_millis(1100));
    let newest = w.ec2.legacy_snapshot(
        &src,
        "solr snapshot of /mnt/a",
        &legacy_tags(&w.instance, "/mnt/a", &w.role),
    );
    let imds = Imds::start(ImdsData {
        instance_id: w.instance.clone(),
        zone: w.zone.clone(),
        userdata: Some(userdata(&w.role)),
        v1_only: false,
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        &profile("solr").replace(
            "[profiles.solr]\n",
            "[profiles.solr]\nsnapshot_owners = [\"self\", \"123456789012\"]\n",
        ),
    );
    let json = Run::new(&["list-volumes", "solr", "--json"])
        .config(&cfg)
        .aws(&moto, &imds)
        .run()
        .expect_code(0)
        .stdout();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["restore"]["kind"], "snapshot", "{json}");
    assert_eq!(v[0]["restore"]["snapshot"]["id"], newest.as_str(), "{json}");

    let out = Run::new(&["clean", "snapshots", "solr", "--dry-run"])
        .config(&cfg)
        .aws(&moto, &imds)
        .run()
        .expect_code(0)
        .stdout();
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("delete  {older} "))),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("keep    {newest} "))),
        "{out}"
    );
    assert!(!out.contains("another account"), "{out}");
}
