//! tablesnap against moto: events, keys, metadata, indexes, filters,
//! backups, multipart, vanishing files and a clean stop.

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use crate::support::{lab_prerequisites, moto, Lab, LabOpts, Run, S3};

fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// tablesnap running against `endpoint`, stopped with SIGTERM on drop.
struct Daemon {
    child: Option<Child>,
}

impl Daemon {
    fn start(endpoint: &str, bucket: &str, dir: &Path, extra: &[&str]) -> Daemon {
        let mut args = vec!["tablesnap", bucket, dir.to_str().unwrap(), "-n", "host1"];
        args.extend_from_slice(extra);
        let child = Run::new(&args)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_REGION", "us-east-1")
            .spawn();
        // Watches are set up quickly; give it a moment before writing.
        std::thread::sleep(Duration::from_millis(700));
        Daemon { child: Some(child) }
    }

    fn alive(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// SIGTERM; returns (exit code, stderr).
    fn stop(&mut self) -> (i32, String) {
        let child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn key(dir: &Path, name: &str) -> String {
    format!("host1:{}/{name}", dir.display())
}

#[test]
fn renamed_written_and_linked_files_are_uploaded_with_metadata_and_one_index() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let root = tempfile::tempdir().unwrap();
    let tbl = root.path().join("ks/tbl");
    std::fs::create_dir_all(&tbl).unwrap();
    let outside = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(
        &moto,
        &s3.bucket,
        root.path(),
        &[
            "-r",
            "-a",
            "--listen-events",
            "IN_MOVED_TO",
            "--listen-events",
            "IN_CLOSE_WRITE",
            "--listen-events",
            "IN_CREATE",
        ],
    );

    // Renamed into place (as Cassandra finishes an sstable).
    std::fs::write(tbl.join("staging"), b"index bytes").unwrap();
    std::fs::rename(tbl.join("staging"), tbl.join("ks-tbl-ka-1-Index.db")).unwrap();
    // Written in place.
    std::fs::write(tbl.join("ks-tbl-ka-1-Data.db"), b"data bytes").unwrap();
    // Hard-linked in (needs IN_CREATE).
    std::fs::write(outside.path().join("linked"), b"linked bytes").unwrap();
    std::fs::hard_link(
        outside.path().join("linked"),
        tbl.join("ks-tbl-ka-1-Filter.db"),
    )
    .unwrap();
    // A temp file: excluded by default.
    std::fs::write(tbl.join("ks-tbl-tmp-ka-2-Data.db"), b"temp").unwrap();
    // A directory created after start, with a file in it at once.
    let fresh = root.path().join("ks/fresh");
    std::fs::create_dir(&fresh).unwrap();
    std::fs::write(fresh.join("ks-fresh-ka-1-Data.db"), b"fresh").unwrap();

    let index = format!("{}-listdir.json", key(&tbl, "ks-tbl-ka-1-Data.db"));
    let keys = s3.wait_keys("uploads and indexes", |k| {
        k.contains(&index)
            && k.contains(&format!(
                "{}-listdir.json",
                key(&fresh, "ks-fresh-ka-1-Data.db")
            ))
    });
    for name in [
        "ks-tbl-ka-1-Index.db",
        "ks-tbl-ka-1-Data.db",
        "ks-tbl-ka-1-Filter.db",
    ] {
        assert!(keys.contains(&key(&tbl, name)), "{name} missing: {keys:#?}");
    }
    assert!(!keys.iter().any(|k| k.contains("-tmp-")), "{keys:#?}");
    assert_eq!(s3.get(&key(&tbl, "ks-tbl-ka-1-Filter.db")), b"linked bytes");
    let meta = s3.metadata(&key(&tbl, "ks-tbl-ka-1-Data.db"));
    assert_eq!(meta["md5sum"], md5_hex(b"data bytes"));
    let stat: serde_json::Value = serde_json::from_str(&meta["stat"]).unwrap();
    assert_eq!(stat["mode"].as_u64().unwrap() & 0o777, 0o644, "{stat}");
    assert!(stat["uid"].is_u64() && stat["gid"].is_u64());

    let body: serde_json::Value = serde_json::from_slice(&s3.get(&index)).unwrap();
    let listed: Vec<&str> = body[tbl.to_str().unwrap()]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        [
            "ks-tbl-ka-1-Data.db",
            "ks-tbl-ka-1-Filter.db",
            "ks-tbl-ka-1-Index.db"
        ]
    );
    // One index for the batch, not one per file.
    assert_eq!(
        keys.iter().filter(|k| k.ends_with("-listdir.json")).count(),
        2,
        "{keys:#?}"
    );

    assert!(d.alive());
    let (code, stderr) = d.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("SIGTERM: finishing the uploads in flight"),
        "{stderr}"
    );
}

#[test]
fn include_exclude_and_backup_of_existing_files() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("a-Data.db"), b"a").unwrap();
    std::fs::write(p.join("a-Filter.db"), b"f").unwrap();
    std::fs::write(p.join("notes.log"), b"n").unwrap();
    // -B uploads what is there; -e keeps the log out of S3 and the index.
    let mut d = Daemon::start(&moto, &s3.bucket, p, &["-B", "-e", "\\.log$"]);
    let index = format!("{}-listdir.json", key(p, "a-Data.db"));
    s3.wait_keys("backup", |k| k.contains(&index));
    let keys = s3.keys();
    assert!(!keys.contains(&key(p, "notes.log")), "{keys:#?}");
    let body: serde_json::Value = serde_json::from_slice(&s3.get(&index)).unwrap();
    assert_eq!(
        body[p.to_str().unwrap()],
        serde_json::json!(["a-Data.db", "a-Filter.db"])
    );
    assert_eq!(d.stop().0, 0);

    // A second -B finds everything present and uploads nothing.
    let mut d = Daemon::start(
        &moto,
        &s3.bucket,
        p,
        &["-B", "-e", "\\.log$", "--loglevel=DEBUG"],
    );
    std::thread::sleep(Duration::from_millis(800));
    let (code, stderr) = d.stop();
    assert_eq!(code, 0);
    assert!(stderr.contains("stopped: 0 uploaded, 0 failed"), "{stderr}");
    assert!(stderr.contains("is already in S3"), "{stderr}");

    // -i takes only what matches.
    let mut d = Daemon::start(&moto, &s3.bucket, p, &["-i", "Index\\.db$"]);
    std::fs::write(p.join("b-Index.db"), b"i").unwrap();
    std::fs::write(p.join("b-Summary.db"), b"s").unwrap();
    s3.wait_keys("include", |k| k.contains(&key(p, "b-Index.db")));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!s3.keys().contains(&key(p, "b-Summary.db")));
    d.stop();
}

#[test]
fn large_files_go_up_in_parts_and_arrive_whole() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(
        &moto,
        &s3.bucket,
        dir.path(),
        &[
            "--max-upload-size",
            "1",
            "--multipart-chunk-size",
            "5",
            "-t",
            "2",
        ],
    );
    let data: Vec<u8> = (0..12u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.path().join("big-Data.db.part"), &data).unwrap();
    std::fs::rename(
        dir.path().join("big-Data.db.part"),
        dir.path().join("big-Data.db"),
    )
    .unwrap();
    let k = key(dir.path(), "big-Data.db");
    s3.wait_keys("multipart upload", |keys| keys.contains(&k));
    let got = s3.get(&k);
    assert_eq!(got.len(), data.len());
    assert!(got == data, "content differs");
    assert_eq!(s3.metadata(&k)["md5sum"], md5_hex(&data));
    let (code, stderr) = d.stop();
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn files_that_vanish_before_upload_do_not_stop_the_daemon() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(&moto, &s3.bucket, dir.path(), &["-t", "1"]);
    for i in 0..30 {
        let p = dir.path().join(format!("gone-{i}-Data.db"));
        std::fs::write(&p, b"x").unwrap();
        std::fs::remove_file(&p).unwrap();
    }
    std::fs::write(dir.path().join("kept-Data.db"), b"kept").unwrap();
    s3.wait_keys("the file after the vanished ones", |k| {
        k.contains(&key(dir.path(), "kept-Data.db"))
    });
    assert!(d.alive());
    let (code, stderr) = d.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("ERROR"), "{stderr}");
}

#[test]
fn a_put_that_fails_twice_then_succeeds_arrives_intact() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    // The lab proxies S3 too; its faults name S3 operations.
    let lab = Lab::start(
        &moto,
        LabOpts {
            rules: Some(
                "[[faults]]\naction = \"PutObject\"\ncalls = [1, 2]\nreply = \"500\"\n".into(),
            ),
            ..Default::default()
        },
    );
    let endpoint = lab.var("AWS_ENDPOINT_URL").to_string();
    let s3 = S3::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(&endpoint, &s3.bucket, dir.path(), &["--without-index"]);
    std::fs::write(dir.path().join("one-Data.db"), b"survives two failures").unwrap();
    let k = key(dir.path(), "one-Data.db");
    s3.wait_keys("the retried upload", |keys| keys.contains(&k));
    assert_eq!(s3.get(&k), b"survives two failures");
    assert_eq!(lab.state()["calls"]["PutObject"], 3);
    assert_eq!(d.stop().0, 0);
}

#[test]
fn bad_arguments_fail_clearly() {
    let Some(moto) = moto() else { return };
    let d = Run::new(&["tablesnap", "no-such-bucket-here", "/tmp"])
        .env("AWS_ENDPOINT_URL", &moto)
        .env("AWS_REGION", "us-east-1")
        .run()
        .expect_code(1);
    assert!(
        d.stderr()
            .contains("bucket no-such-bucket-here: HeadBucket failed"),
        "{}",
        d.stderr()
    );
    let d = Run::new(&["tablesnap", "b", "/nonexistent/dir"])
        .run()
        .expect_code(1);
    assert!(
        d.stderr().contains("/nonexistent/dir is not a directory"),
        "{}",
        d.stderr()
    );
    let d = Run::new(&["tablesnap", "b", "/tmp", "-e", "x", "-i", "y"])
        .run()
        .expect_code(2);
    assert!(d.stderr().contains("cannot be used with"), "{}", d.stderr());
}

#[test]
fn settings_can_come_from_the_config_file() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = crate::support::write_config(
        &cfg_dir,
        &format!("[tablesnap]\nbucket = \"{}\"\npaths = [\"{}\"]\nname = \"host1\"\nwithout_index = true\n", s3.bucket, dir.path().display()),
    );
    let child = Run::new(&["tablesnap"])
        .config(&cfg)
        .env("AWS_ENDPOINT_URL", &moto)
        .env("AWS_REGION", "us-east-1")
        .spawn();
    let mut d = Daemon { child: Some(child) };
    std::thread::sleep(Duration::from_millis(700));
    std::fs::write(dir.path().join("c-Data.db"), b"c").unwrap();
    s3.wait_keys("upload configured by file", |k| {
        k.contains(&key(dir.path(), "c-Data.db"))
    });
    std::thread::sleep(Duration::from_millis(1300));
    assert!(
        !s3.keys().iter().any(|k| k.ends_with("-listdir.json")),
        "without_index ignored"
    );
    assert_eq!(d.stop().0, 0);
}
