//! `created` and `expires` as snaptastic 0.2.12 wrote them: the host's
//! local time without a zone. On a host off UTC both tools must mean the
//! same instant: ours written and read as local time, 0.2.12's read as
//! local time (read as UTC they expired hours early or late).

use std::collections::BTreeMap;

use chrono::{Duration, Utc};

use crate::support::mounted_lab;
use crate::support::{moto, unique, write_config, Ec2, Run};

const ZONE: &str = "America/New_York";

/// The time in New York as 0.2.12 would have written it, `offset` from now.
fn new_york(offset: Duration) -> String {
    let out = std::process::Command::new("date")
        .env("TZ", ZONE)
        .arg(format!("--date=@{}", (Utc::now() + offset).timestamp()))
        .arg("+%Y-%m-%d %H:%M:%S.000000")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The instant (Unix seconds) a zone-less timestamp means in New York.
fn read_new_york(text: &str) -> i64 {
    let out = std::process::Command::new("date")
        .arg(format!("--date=TZ=\"{ZONE}\" {text}"))
        .arg("+%s")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn a_0_2_12_expiry_in_local_time_is_read_as_local_time() {
    let Some(moto) = moto() else {
        return;
    };
    let ec2 = Ec2::new(&moto);
    let role = unique("tz");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        "region = \"us-east-1\"\n[profiles.db]\n[[profiles.db.volumes]]\ndevice = \"/dev/sdf\"\nmount_point = \"/data\"\n",
    );
    let volume = ec2.volume("us-east-1a", 1, &[]);
    let snap = |expires: &str| {
        ec2.legacy_snapshot(
            &volume,
            "d",
            &[
                ("instance_id", "i-old"),
                ("mount_point", "/data"),
                ("role", &role),
                ("cluster", "c"),
                ("environment", "e"),
                ("expires", expires),
                ("created", "2013-08-26 14:22:02.361688"),
            ],
        )
    };
    // Written in New York: one expires in two hours (read as UTC, it
    // would have expired three hours ago), one expired two hours ago.
    // moto's start times have one-second resolution: one snapshot a
    // second, so the newest (never deleted) is the last one.
    let pause = || std::thread::sleep(std::time::Duration::from_millis(1100));
    let later = snap(&new_york(Duration::hours(2)));
    pause();
    let past = snap(&new_york(Duration::hours(-2)));
    pause();
    // The newest is never deleted; this one keeps the others in play.
    let newest = snap(&new_york(Duration::days(7)));
    let ud = format!(r#"{{"role": "{role}", "cluster": "c", "environment": "e"}}"#);
    let d = Run::new(&["clean", "snapshots", "db", "--dry-run", "-u", &ud])
        .config(&cfg)
        .env("AWS_ENDPOINT_URL", &moto)
        .env("TZ", ZONE)
        .run()
        .expect_code(0);
    let out = d.stdout();
    let verdict = |id: &str| {
        out.lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} not listed:\n{out}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(verdict(&later), "keep", "{out}");
    assert_eq!(verdict(&past), "delete", "{out}");
    assert_eq!(verdict(&newest), "keep", "{out}");
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn our_created_and_expires_are_local_time_and_read_back_the_same() {
    let Some(s) = mounted_lab(&[("/dev/sdf", "ext4", 1)]) else {
        return;
    };
    let d = s
        .lab
        .run(&["make-snapshots", "db"])
        .config(&s.cfg)
        .env("TZ", ZONE)
        .run()
        .expect_code(0);
    let id = d
        .stdout()
        .split_whitespace()
        .find(|w| w.starts_with("snap-"))
        .unwrap()
        .to_string();
    let tags: BTreeMap<String, String> = s.lab.ec2().snapshot_tags(&id);
    // Read as New York time, `created` is now and `expires` a week on.
    let now = Utc::now().timestamp();
    let created = read_new_york(&tags["created"]);
    let expires = read_new_york(&tags["expires"]);
    assert!((now - created).abs() < 120, "{tags:?}");
    assert!((expires - created - 7 * 86400).abs() < 2, "{tags:?}");
    // And it is New York time, not UTC: the text is five hours behind.
    let utc_text = Utc::now().format("%Y-%m-%d %H").to_string();
    assert_ne!(&tags["created"][..13], utc_text, "{tags:?}");
}
