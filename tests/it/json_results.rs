//! `--json` results for orchestration: mount-snapshots, make-snapshots,
//! check-backups and tableslurp each print one JSON document on stdout
//! (logs on stderr), with the ids they created or used, and a failure
//! marked as such.

use serde_json::Value;

use crate::support::Setup;
use crate::support::{lab_prerequisites, md5_hex, moto, Run, S3};

fn doc(stdout: &str) -> Value {
    serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout is not one JSON document:\n{stdout}"))
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn volume_commands_print_one_json_document() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = Setup::new(
        &moto,
        false,
        None,
        &[("/dev/sdf", "ext4", 1), ("/dev/sdg", "xfs", 1)],
    );
    // Hooks that print: their output goes to stderr, never into the
    // document on stdout.
    s.add_to_profile(
        "[profiles.db.hooks]\npost_mounts = [\"echo\", \"hello from a hook\"]\npre_snapshots = [\"echo\", \"flushing\"]",
    );

    let m = doc(&s
        .snaptastic(&["mount-snapshots", "db", "--json"])
        .expect_code(0)
        .stdout());
    assert_eq!(m["command"], "mount-snapshots");
    assert_eq!(m["ok"], true, "{m:#}");
    let items = m["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{m:#}");
    for i in items {
        assert_eq!(i["status"], "mounted", "{m:#}");
        assert!(
            i["volume_id"].as_str().unwrap().starts_with("vol-"),
            "{m:#}"
        );
    }

    let d = s
        .snaptastic(&["make-snapshots", "db", "--json", "--wait"])
        .expect_code(0);
    assert!(d.stderr().contains("flushing"), "{}", d.stderr());
    let made = doc(&d.stdout());
    assert_eq!(made["ok"], true, "{made:#}");
    let items = made["items"].as_array().unwrap();
    let started: Vec<&Value> = items.iter().filter(|i| i["status"] == "started").collect();
    let completed: Vec<&Value> = items
        .iter()
        .filter(|i| i["status"] == "completed")
        .collect();
    assert_eq!((started.len(), completed.len()), (2, 2), "{made:#}");
    for i in &started {
        assert!(
            i["snapshot_id"].as_str().unwrap().starts_with("snap-"),
            "{made:#}"
        );
        assert!(i["frozen_ms"].is_u64(), "{made:#}");
    }
    assert!(!d.stderr().is_empty(), "logs go to stderr");

    let fresh = doc(&s
        .snaptastic(&["check-backups", "1h", "db", "--json"])
        .expect_code(0)
        .stdout());
    assert_eq!(fresh["ok"], true, "{fresh:#}");
    for i in fresh["items"].as_array().unwrap() {
        assert_eq!(i["status"], "ok");
        assert!(i["age_seconds"].as_u64().unwrap() < 3600, "{fresh:#}");
        let id = i["snapshot_id"].as_str().unwrap();
        assert!(
            started.iter().any(|s| s["snapshot_id"] == id),
            "{id} not made by this run"
        );
    }

    // A failure: a stale check exits 1 with ok=false and says which.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let stale = doc(&s
        .snaptastic(&["check-backups", "1s", "db", "--json"])
        .expect_code(1)
        .stdout());
    assert_eq!(stale["ok"], false, "{stale:#}");
    assert_eq!(stale["failures"], 2, "{stale:#}");
    assert!(stale["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == "stale"));

    // An error before any volume: still one document, with the error.
    let bad = doc(&s
        .snaptastic(&["make-snapshots", "nosuch", "--json"])
        .expect_code(1)
        .stdout());
    assert_eq!(bad["ok"], false);
    assert!(bad["error"].as_str().unwrap().contains("nosuch"), "{bad:#}");
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn tableslurp_json_lists_the_files_restored_and_failed() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let origin = "/var/lib/cassandra/data/ks/tbl";
    let put = |name: &str, body: &[u8], meta: &[(&str, String)]| {
        s3.put(&format!("host1:{origin}/{name}"), body, meta)
    };
    put("a-Data.db", b"aaaa", &[("md5sum", md5_hex(b"aaaa"))]);
    put(
        "b-Index.db",
        b"bbbb",
        &[("md5sum", md5_hex(b"not these bytes"))],
    );
    put(
        "a-Data.db-listdir.json",
        format!(r#"{{"{origin}": ["a-Data.db", "b-Index.db"]}}"#).as_bytes(),
        &[],
    );
    let target = tempfile::tempdir().unwrap();
    let d = Run::new(&[
        "tableslurp",
        &s3.bucket,
        origin,
        target.path().to_str().unwrap(),
        "-n",
        "host1",
        "--json",
    ])
    .env("AWS_ENDPOINT_URL", &moto)
    .env("AWS_REGION", "us-east-1")
    .run()
    .expect_code(1);
    let r = doc(&d.stdout());
    assert_eq!(r["command"], "tableslurp");
    assert_eq!(r["ok"], false, "{r:#}");
    let dir = &r["items"][0];
    assert_eq!(
        dir["restored_files"],
        serde_json::json!(["a-Data.db"]),
        "{r:#}"
    );
    assert_eq!(dir["failed"], 1, "{r:#}");
    let failed = dir["failed_files"][0]["file"].as_str().unwrap();
    assert!(failed.ends_with("b-Index.db"), "{r:#}");
}
