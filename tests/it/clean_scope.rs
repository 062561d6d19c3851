//! What `clean` may delete, through the real binary: only snapshots made
//! for this profile (by this tool or by snaptastic 0.2.12), never another
//! profile's or AWS DLM's / AWS Backup's that share the filter tags
//! (against moto); never a volume that held live data, even when the tag
//! saying it was mounted could not be written (against the lab, as root).

use std::time::Duration;

use aws_sdk_ec2::types::{Filter, Tag};

use crate::support::{lab_prerequisites, moto, unique, write_config, Ec2, Run};
use crate::support::{mounted_at, Setup};

/// The tags snaptastic 0.2.12 wrote on a snapshot of /data (`expires`
/// long past), for the filter tags `role` (unique to the test), `cluster`
/// and `environment`.
fn legacy_tags(role: &str) -> Vec<(&str, &str)> {
    vec![
        ("instance_id", "i-old"),
        ("mount_point", "/data"),
        ("role", role),
        ("cluster", "c"),
        ("environment", "e"),
        ("expires", "2013-09-02 14:22:02.361688"),
        ("created", "2013-08-26 14:22:02.361688"),
    ]
}

fn with<'a>(
    mut tags: Vec<(&'a str, &'a str)>,
    more: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    tags.extend_from_slice(more);
    tags
}

fn snapshot_exists(ec2: &Ec2, snap: &str) -> bool {
    ec2.rt
        .block_on(ec2.client.describe_snapshots().snapshot_ids(snap).send())
        .is_ok_and(|r| !r.snapshots().is_empty())
}

/// The line `clean` printed for an id.
fn line_for<'a>(out: &'a str, id: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(id))
        .unwrap_or_else(|| panic!("no line for {id}:\n{out}"))
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn clean_snapshots_deletes_only_ours_and_0_2_12s() {
    let Some(moto) = moto() else { return };
    let ec2 = Ec2::new(&moto);
    let role = unique("scope");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        "region = \"us-east-1\"\n[profiles.db]\n[[profiles.db.volumes]]\ndevice = \"/dev/sdf\"\nmount_point = \"/data\"\n",
    );
    let volume = ec2.volume("us-east-1a", 1, &[]);
    let legacy = legacy_tags(&role);
    // What mount-snapshots tags a volume with: a tool that copies a
    // volume's tags onto its snapshots copies these.
    let volume_tags = with(
        legacy.clone(),
        &[
            ("snaptastic:profile", "db"),
            ("snaptastic:source", "empty"),
            ("snaptastic:device", "/dev/sdf"),
            ("snaptastic:state", "mounted"),
        ],
    );
    let snap = |tags: &[(&str, &str)]| ec2.legacy_snapshot(&volume, "d", tags);

    let ours_old = snap(&with(legacy.clone(), &[("snaptastic:profile", "db")]));
    let old_0_2_12 = snap(&legacy);
    let dlm = snap(&with(
        volume_tags.clone(),
        &[
            ("aws:dlm:lifecycle-policy-id", "policy-0123456789abcdef0"),
            ("aws:dlm:lifecycle-schedule-name", "Default Schedule"),
        ],
    ));
    let backup = snap(&with(
        legacy.clone(),
        &[(
            "aws:backup:source-resource",
            "arn:aws:ec2:us-east-1:123456789012:volume/vol-1",
        )],
    ));
    let other_profile = snap(&with(legacy.clone(), &[("snaptastic:profile", "pg")]));
    let copied = snap(&volume_tags);
    let not_0_2_12 = snap(&with(legacy.clone(), &[("owner", "ops")]));
    // Ours and the newest of ours: what a restore would use stays.
    std::thread::sleep(Duration::from_millis(1100));
    let ours_newest = snap(&with(legacy.clone(), &[("snaptastic:profile", "db")]));

    let run = |args: &[&str]| {
        let ud = format!(r#"{{"role": "{role}", "cluster": "c", "environment": "e"}}"#);
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-u", &ud]);
        Run::new(&all)
            .config(&cfg)
            .env("AWS_ENDPOINT_URL", &moto)
            .run()
    };

    let out = run(&["clean", "snapshots", "db", "--dry-run"])
        .expect_code(0)
        .stdout();
    let expect = [
        (
            &ours_old,
            "delete",
            "ours (snaptastic:profile=db), expired 2013-09-02 14:22:02.361688",
        ),
        (
            &old_0_2_12,
            "delete",
            "0.2.12's tag set, expired 2013-09-02 14:22:02.361688",
        ),
        (
            &dlm,
            "keep",
            "made by AWS DLM (aws:dlm:lifecycle-policy-id)",
        ),
        (
            &backup,
            "keep",
            "made by AWS Backup (aws:backup:source-resource)",
        ),
        (
            &other_profile,
            "keep",
            "another profile's (snaptastic:profile=pg)",
        ),
        (
            &copied,
            "keep",
            "carries a volume's tags (snaptastic:source)",
        ),
        (
            &not_0_2_12,
            "keep",
            "not ours: no snaptastic:profile tag, and not 0.2.12's tag set (extra owner)",
        ),
        (
            &ours_newest,
            "keep",
            "ours (snaptastic:profile=db), newest completed of /data: a restore would use it",
        ),
    ];
    for (id, verdict, why) in &expect {
        let line = line_for(&out, id);
        assert!(
            line.starts_with(verdict) && line.contains(&format!(": {why}")),
            "{id}: want {verdict} ({why}), got: {line}\n{out}"
        );
    }
    assert!(
        out.ends_with("2 to delete (dry run: nothing deleted)\n"),
        "{out}"
    );
    assert!(snapshot_exists(&ec2, &ours_old) && snapshot_exists(&ec2, &old_0_2_12));

    let out = run(&["clean", "snapshots", "db", "--yes"])
        .expect_code(0)
        .stdout();
    for (id, verdict, _) in &expect {
        let deleted = *verdict == "delete";
        assert_eq!(
            out.contains(&format!("deleted {id}")),
            deleted,
            "{id}:\n{out}"
        );
        assert_eq!(snapshot_exists(&ec2, id), !deleted, "{id}:\n{out}");
    }

    // --older-than widens what of ours goes, never whose.
    let out = run(&["clean", "snapshots", "db", "--older-than", "0s", "--yes"])
        .expect_code(0)
        .stdout();
    assert!(!out.contains("deleted "), "{out}");
}

/// Our volumes (this profile, the lab's instance): (id, state tag, EC2 state).
fn volumes(s: &Setup) -> Vec<(String, String, String)> {
    let ec2 = s.lab.ec2();
    let r = ec2
        .rt
        .block_on(
            ec2.client
                .describe_volumes()
                .filters(
                    Filter::builder()
                        .name("tag:snaptastic:profile")
                        .values("db")
                        .build(),
                )
                .filters(
                    Filter::builder()
                        .name("tag:instance_id")
                        .values(s.lab.instance())
                        .build(),
                )
                .send(),
        )
        .unwrap();
    r.volumes()
        .iter()
        .map(|v| {
            let state = v
                .tags()
                .iter()
                .find(|t| t.key() == Some("snaptastic:state"))
                .and_then(|t| t.value())
                .unwrap_or_default();
            (
                v.volume_id().unwrap().to_string(),
                state.to_string(),
                v.state().unwrap().as_str().to_string(),
            )
        })
        .collect()
}

/// A lab rule failing every CreateTags that writes `snaptastic:state` =
/// one of `states` (the state is the only tag of that call: `Tag.1`).
fn failing_state_tags(states: &[&str]) -> String {
    states
        .iter()
        .map(|st| {
            format!(
                "[[faults]]\naction = \"CreateTags\"\nparams = {{ \"Tag.1.Key\" = \"snaptastic:state\", \"Tag.1.Value\" = \"{st}\" }}\nreply = \"500\"\n"
            )
        })
        .collect()
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_volume_that_was_mounted_is_not_taken_for_a_crash_leftover() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    // Neither `mounted` (after mount) nor `detached` (after unmount) can
    // be written: what a failing API or a host lost at the wrong moment
    // leaves.
    let rules = failing_state_tags(&["mounted", "detached"]);
    let s = Setup::new(&moto, false, Some(&rules), &[("/dev/sdf", "ext4", 1)]);
    let d = s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    assert!(mounted_at(&s.mp(0)).is_some(), "{}", d.stdout());
    assert!(
        d.stderr().contains("could not tag vol-") && d.stderr().contains("as mounted"),
        "{}",
        d.stderr()
    );
    let vols = volumes(&s);
    assert_eq!(vols.len(), 1, "{vols:?}");
    let (vol, state, _) = vols[0].clone();
    assert_eq!(state, "attached", "tagged before mount(2)");
    std::fs::write(s.mp(0).join("live.txt"), "newer than any snapshot\n").unwrap();

    // unmount-snapshots will not detach a volume it cannot tag `detached`
    // (a restore would not know it holds newer data): it stays attached.
    let d = s
        .snaptastic(&["unmount-snapshots", "db", "--yes"])
        .expect_code(1);
    assert!(d.stderr().contains("not detaching it"), "{}", d.stderr());
    assert_eq!(
        volumes(&s),
        [(vol.clone(), "attached".to_string(), "in-use".to_string())]
    );
    // Detached from outside (a host lost, a hand in the console): the
    // volume still says `attached`.
    let ec2 = s.lab.ec2();
    ec2.rt
        .block_on(ec2.client.detach_volume().volume_id(&vol).send())
        .unwrap();
    assert_eq!(
        volumes(&s),
        [(vol.clone(), "attached".to_string(), "available".to_string())]
    );
    // Past the hour in which a young `restoring` volume is left alone
    // anyway: only its state tag may keep it.
    let ec2 = Ec2::new(&moto);
    ec2.rt
        .block_on(
            ec2.client
                .create_tags()
                .resources(&vol)
                .tags(
                    Tag::builder()
                        .key("created")
                        .value("2013-08-26 14:22:02")
                        .build(),
                )
                .send(),
        )
        .unwrap();

    let out = s
        .snaptastic(&["clean", "volumes", "db", "--yes"])
        .expect_code(0)
        .stdout();
    let line = line_for(&out, &vol);
    assert!(
        line.starts_with("keep")
            && line.contains("was attached: may hold data newer than any snapshot"),
        "{out}"
    );
    assert!(!out.contains(&format!("deleted {vol}")), "{out}");
    assert_eq!(volumes(&s).len(), 1);

    let out = s
        .snaptastic(&["clean", "volumes", "db", "--include-detached", "--yes"])
        .expect_code(0)
        .stdout();
    assert!(out.contains(&format!("deleted {vol}")), "{out}");
    assert_eq!(volumes(&s).len(), 0);
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_volume_that_cannot_be_tagged_attached_is_not_mounted() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let rules = failing_state_tags(&["attached"]);
    let s = Setup::new(&moto, false, Some(&rules), &[("/dev/sdf", "ext4", 1)]);
    let out = s
        .snaptastic(&["mount-snapshots", "db"])
        .expect_code(1)
        .stdout();
    let failed = out
        .lines()
        .find(|l| l.starts_with("FAILED"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        failed.contains("could not tag vol-")
            && failed.contains("snaptastic:state=attached")
            && failed.contains("not mounting it")
            && failed.contains("rolled back ("),
        "{failed}"
    );
    assert_eq!(mounted_at(&s.mp(0)), None);
    assert_eq!(volumes(&s), [], "rolled back: it never held data");
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn the_complete_set_a_restore_uses_is_never_deleted() {
    let Some(moto) = moto() else { return };
    let ec2 = Ec2::new(&moto);
    let role = unique("set");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        "region = \"us-east-1\"\n[profiles.db]\n[[profiles.db.volumes]]\ndevice = \"/dev/sdf\"\nmount_point = \"/data\"\n[[profiles.db.volumes]]\ndevice = \"/dev/sdg\"\nmount_point = \"/logs\"\n",
    );
    let volume = ec2.volume("us-east-1a", 1, &[]);
    let ours = |mp: &'static str, run: &'static str, expires: &'static str| {
        let tags = vec![
            ("instance_id", "i-old"),
            ("mount_point", mp),
            ("role", role.as_str()),
            ("cluster", "c"),
            ("environment", "e"),
            ("expires", expires),
            ("created", "2013-08-26 14:22:02.361688"),
            ("snaptastic:profile", "db"),
            ("snaptastic:run", run),
        ];
        ec2.legacy_snapshot(&volume, "d", &tags)
    };
    // Run r1 covered both mount points and has expired; the newer run r2
    // failed on /logs. A restore uses r1 for both, so r1's /data snapshot,
    // though expired and not the newest of /data, must stay.
    let a1 = ours("/data", "r1", "2013-09-02 14:22:02");
    let b1 = ours("/logs", "r1", "2013-09-02 14:22:02");
    std::thread::sleep(Duration::from_millis(1100));
    let a2 = ours("/data", "r2", "2099-01-01 00:00:00");
    // 0.2.12's snapshot of a mount point this profile does not have (a
    // host of another profile with the same filter tags): not ours.
    let other_tags = vec![
        ("instance_id", "i-old"),
        ("mount_point", "/srv/other"),
        ("role", role.as_str()),
        ("cluster", "c"),
        ("environment", "e"),
        ("expires", "2013-09-02 14:22:02"),
        ("created", "2013-08-26 14:22:02"),
    ];
    let other = ec2.legacy_snapshot(&volume, "d", &other_tags);
    let ud = format!(r#"{{"role": "{role}", "cluster": "c", "environment": "e"}}"#);
    let d = Run::new(&["clean", "snapshots", "db", "--dry-run", "-u", &ud])
        .config(&cfg)
        .env("AWS_ENDPOINT_URL", &moto)
        .run()
        .expect_code(0);
    let out = d.stdout();
    assert!(
        line_for(&out, &a1).starts_with("keep")
            && line_for(&out, &a1).contains("in the snapshot set a restore would use"),
        "{out}"
    );
    assert!(line_for(&out, &b1).starts_with("keep"), "{out}");
    assert!(line_for(&out, &a2).starts_with("keep"), "{out}");
    assert!(
        line_for(&out, &other).starts_with("keep")
            && line_for(&out, &other).contains("/srv/other is not a mount point of profile 'db'"),
        "{out}"
    );
}
