//! tablesnap against moto: events, keys, metadata, indexes, filters,
//! backups, multipart, vanishing files and a clean stop.

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use crate::support::{
    lab_prerequisites, md5_hex, moto, place_cold, varied_bytes, Lab, LabOpts, Run, S3,
};

/// tablesnap running against `endpoint`, stopped with SIGTERM on drop.
pub(crate) struct Daemon {
    child: Option<Child>,
}

impl Daemon {
    fn start(endpoint: &str, bucket: &str, dir: &Path, extra: &[&str]) -> Daemon {
        Self::start_in(endpoint, bucket, dir, None, extra)
    }

    /// The same, as host1, with its state (digest record, lock file) in
    /// `runtime` when given.
    pub(crate) fn start_in(
        endpoint: &str,
        bucket: &str,
        dir: &Path,
        runtime: Option<&Path>,
        extra: &[&str],
    ) -> Daemon {
        let mut args = vec!["tablesnap", bucket, dir.to_str().unwrap(), "-n", "host1"];
        args.extend_from_slice(extra);
        let mut run = Run::new(&args)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_REGION", "us-east-1");
        if let Some(r) = runtime {
            run = run.env("SNAPTASTIC_STATE_DIR", r);
        }
        let child = run.spawn();
        // Watches are set up quickly; give it a moment before writing.
        std::thread::sleep(Duration::from_millis(if runtime.is_some() {
            900
        } else {
            700
        }));
        Daemon { child: Some(child) }
    }

    fn alive(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// SIGTERM; returns (exit code, stderr).
    pub(crate) fn stop(&mut self) -> (i32, String) {
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

pub(crate) fn key(dir: &Path, name: &str) -> String {
    format!("host1:{}/{name}", dir.display())
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
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
#[ignore = "needs the emulator: scripts/test.sh runs it"]
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
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn large_files_go_up_in_parts_and_arrive_whole() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    // 12 MiB: three parts up (5, 5, 2 MiB), then (above --max-upload-size)
    // the md5sum stamped by a copy in three ranges.
    let mut d = Daemon::start(
        &moto,
        &s3.bucket,
        dir.path(),
        &[
            "--max-upload-size",
            "5",
            "--multipart-chunk-size",
            "5",
            "-t",
            "2",
        ],
    );
    let data = varied_bytes(12 << 20, 13);
    // Cold (not in the page cache): hashed on the way up, so the md5sum
    // comes by the copy.
    place_cold(&dir.path().join("big-Data.db"), &data);
    let k = key(dir.path(), "big-Data.db");
    assert_eq!(s3.wait_md5sum(&k), md5_hex(&data));
    let got = s3.get(&k);
    assert_eq!(got.len(), data.len());
    assert!(got == data, "content differs");
    let meta = s3.metadata(&k);
    assert!(meta.contains_key("stat"), "{meta:?}");
    let (code, stderr) = d.stop();
    assert_eq!(code, 0, "{stderr}");
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
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
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
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
#[ignore = "needs the emulator: scripts/test.sh runs it"]
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
#[ignore = "needs the emulator: scripts/test.sh runs it"]
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

fn slurp(
    moto: &str,
    bucket: &str,
    origin: &Path,
    target: &Path,
    extra: &[&str],
) -> crate::support::Done {
    let mut args = vec![
        "tableslurp",
        bucket,
        origin.to_str().unwrap(),
        target.to_str().unwrap(),
        "-n",
        "host1",
    ];
    args.extend_from_slice(extra);
    Run::new(&args)
        .env("AWS_ENDPOINT_URL", moto)
        .env("AWS_REGION", "us-east-1")
        .run()
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn tableslurp_round_trip_detects_tampering_and_resumes() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("ks/tbl");
    std::fs::create_dir_all(&src).unwrap();
    let mut d = Daemon::start(&moto, &s3.bucket, root.path(), &["-r"]);
    let mut files = Vec::new();
    for i in 0..20 {
        let name = format!("ks-tbl-ka-{i}-Index.db");
        let data: Vec<u8> = (0..4096u32)
            .map(|b| (b.wrapping_mul(i + 7) >> 3) as u8)
            .collect();
        std::fs::write(src.join(&name), &data).unwrap();
        files.push((name, data));
    }
    std::fs::write(src.join("ks-tbl-ka-1-Data.db"), b"data").unwrap();
    std::fs::set_permissions(
        src.join("ks-tbl-ka-1-Data.db"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    files.push(("ks-tbl-ka-1-Data.db".into(), b"data".to_vec()));
    let index = format!("{}-listdir.json", key(&src, "ks-tbl-ka-1-Data.db"));
    s3.wait_keys("the index", |k| k.contains(&index));
    assert_eq!(d.stop().0, 0);

    // Destroy and restore: byte-identical, with the mode.
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("tbl");
    let r = slurp(&moto, &s3.bucket, &src, &target, &["-p"]).expect_code(0);
    assert!(
        r.stdout()
            .contains("21 restored, 0 already there, 0 failed"),
        "{}",
        r.stdout()
    );
    for (name, data) in &files {
        assert_eq!(&std::fs::read(target.join(name)).unwrap(), data, "{name}");
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(target.join("ks-tbl-ka-1-Data.db"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // Tamper with one object (same metadata), delete another: both fail.
    let tampered = key(&src, "ks-tbl-ka-3-Index.db");
    let meta = s3.metadata(&tampered);
    s3.rt
        .block_on(
            s3.client
                .put_object()
                .bucket(&s3.bucket)
                .key(&tampered)
                .set_metadata(Some(meta))
                .body(b"evil".to_vec().into())
                .send(),
        )
        .unwrap();
    s3.rt
        .block_on(
            s3.client
                .delete_object()
                .bucket(&s3.bucket)
                .key(key(&src, "ks-tbl-ka-4-Index.db"))
                .send(),
        )
        .unwrap();
    let fresh = out.path().join("again");
    let r = slurp(&moto, &s3.bucket, &src, &fresh, &[]).expect_code(1);
    let o = r.stdout();
    assert!(o.contains("ks-tbl-ka-3-Index.db: MD5 mismatch"), "{o}");
    assert!(o.contains("ks-tbl-ka-4-Index.db: missing from S3"), "{o}");
    assert!(o.contains("19 restored, 0 already there, 2 failed"), "{o}");
    assert!(
        !fresh.join("ks-tbl-ka-3-Index.db").exists(),
        "a bad download was left in place"
    );

    // Repair S3 and run again: it resumes, fetching only what is missing.
    for n in [3, 4] {
        let name = format!("ks-tbl-ka-{n}-Index.db");
        let (_, data) = files.iter().find(|(f, _)| *f == name).unwrap();
        let md5 = md5_hex(data);
        s3.rt
            .block_on(
                s3.client
                    .put_object()
                    .bucket(&s3.bucket)
                    .key(key(&src, &name))
                    .metadata("md5sum", md5)
                    .body(data.clone().into())
                    .send(),
            )
            .unwrap();
    }
    let r = slurp(&moto, &s3.bucket, &src, &fresh, &[]).expect_code(0);
    assert!(
        r.stdout()
            .contains("2 restored, 19 already there, 0 failed"),
        "{}",
        r.stdout()
    );
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn tableslurp_restores_tablesnap_1_2_1_objects() {
    // Golden fixture: keys, metadata and index exactly as tablesnap 1.2.1
    // writes them (stat key order of Python 2, unsorted index, a
    // subdirectory name in the listing).
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let origin = Path::new("/var/lib/cassandra/data/ks/tbl");
    let put = |name: &str, body: &[u8], meta: &[(&str, String)]| {
        let mut req = s3
            .client
            .put_object()
            .bucket(&s3.bucket)
            .key(format!("host1:{}/{name}", origin.display()))
            .body(body.to_vec().into());
        for (k, v) in meta {
            req = req.metadata(*k, v);
        }
        s3.rt.block_on(req.send()).unwrap();
    };
    let stat =
        r#"{"user": "root", "gid": 0, "group": "root", "uid": 0, "mode": 33188}"#.to_string();
    put(
        "ks-tbl-ka-7-Data.db",
        b"seven",
        &[("md5sum", md5_hex(b"seven")), ("stat", stat.clone())],
    );
    put(
        "ks-tbl-ka-7-Index.db",
        b"index",
        &[("md5sum", md5_hex(b"index")), ("stat", stat)],
    );
    put(
        "ks-tbl-ka-7-Data.db-listdir.json",
        br#"{"/var/lib/cassandra/data/ks/tbl": ["ks-tbl-ka-7-Index.db", "ks-tbl-ka-7-Data.db"]}"#,
        &[],
    );
    let out = tempfile::tempdir().unwrap();
    slurp(&moto, &s3.bucket, origin, out.path(), &[]).expect_code(0);
    assert_eq!(
        std::fs::read(out.path().join("ks-tbl-ka-7-Data.db")).unwrap(),
        b"seven"
    );
    assert_eq!(
        std::fs::read(out.path().join("ks-tbl-ka-7-Index.db")).unwrap(),
        b"index"
    );
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn tablechop_keeps_cold_tables_and_in_flight_objects() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("ks/A"), root.path().join("ks/B"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let mut d = Daemon::start(&moto, &s3.bucket, root.path(), &["-r"]);
    std::fs::write(a.join("a1-Data.db"), b"a1").unwrap();
    std::fs::write(b.join("b1-Data.db"), b"b1").unwrap();
    s3.wait_keys("first indexes", |k| {
        k.iter().filter(|k| k.ends_with("-listdir.json")).count() == 2
    });
    std::thread::sleep(Duration::from_millis(1100));
    // B compacts: b1 goes, b2 comes; its new index lists only b2.
    std::fs::remove_file(b.join("b1-Data.db")).unwrap();
    std::fs::write(b.join("b2-Data.db"), b"b2").unwrap();
    s3.wait_keys("second index of B", |k| {
        k.contains(&format!("{}-listdir.json", key(&b, "b2-Data.db")))
    });
    assert_eq!(d.stop().0, 0);

    let chop = |extra: &[&str]| {
        let mut args = vec![
            "tablechop",
            &s3.bucket,
            root.path().to_str().unwrap(),
            "0",
            "-n",
            "host1",
        ];
        args.extend_from_slice(extra);
        Run::new(&args)
            .env("AWS_ENDPOINT_URL", &moto)
            .env("AWS_REGION", "us-east-1")
            .run()
    };
    // Dry run: b1 is still in the grace period; only B's old index would go.
    let out = chop(&["--dry-run"]).expect_code(0).stdout();
    assert!(out.contains("1 of 6 objects to delete (dry run"), "{out}");
    assert!(
        out.contains(&format!(
            "keep    {}: younger than the grace period",
            key(&b, "b1-Data.db")
        )),
        "{out}"
    );
    // No grace: the old index of B and b1 go; cold table A stays whole.
    let out = chop(&["--dry-run", "--grace", "0s"])
        .expect_code(0)
        .stdout();
    assert!(
        out.contains(&format!(
            "delete  {}: listed by no kept index",
            key(&b, "b1-Data.db")
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "delete  {}-listdir.json: old index",
            key(&b, "b1-Data.db")
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "keep    {}: listed by a kept index",
            key(&a, "a1-Data.db")
        )),
        "{out}"
    );
    assert_eq!(s3.keys().len(), 6, "dry run deleted something");
    let out = chop(&["--grace", "0s"]).expect_code(0).stdout();
    assert!(out.contains("deleted 2 of 6 objects"), "{out}");
    let keys = s3.keys();
    assert!(
        keys.contains(&key(&a, "a1-Data.db")) && keys.contains(&key(&b, "b2-Data.db")),
        "{keys:#?}"
    );
    assert!(!keys.contains(&key(&b, "b1-Data.db")));
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn tableslurp_recursive_restores_a_tree() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("ks/A"), root.path().join("ks/B"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let mut d = Daemon::start(&moto, &s3.bucket, root.path(), &["-r"]);
    std::fs::write(a.join("a1-Data.db"), b"a1").unwrap();
    std::fs::write(b.join("b1-Data.db"), b"b1").unwrap();
    std::fs::write(b.join("b1-Index.db"), b"i1").unwrap();
    s3.wait_keys("both indexes", |k| {
        k.iter().filter(|k| k.ends_with("-listdir.json")).count() == 2
    });
    assert_eq!(d.stop().0, 0);
    let out = tempfile::tempdir().unwrap();
    slurp(&moto, &s3.bucket, root.path(), out.path(), &["-r"]).expect_code(0);
    assert_eq!(
        std::fs::read(out.path().join("ks/A/a1-Data.db")).unwrap(),
        b"a1"
    );
    assert_eq!(
        std::fs::read(out.path().join("ks/B/b1-Index.db")).unwrap(),
        b"i1"
    );
    // A directory without any backup is an error, not an empty success.
    let empty = tempfile::tempdir().unwrap();
    let r = slurp(&moto, &s3.bucket, empty.path(), out.path(), &[]).expect_code(1);
    assert!(r.stderr().contains("no index for"), "{}", r.stderr());
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn a_component_landing_after_its_data_file_is_indexed_too() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let mut d = Daemon::start(&moto, &s3.bucket, p, &[]);
    std::fs::write(p.join("t-ka-1-Data.db"), b"d").unwrap();
    let index = format!("{}-listdir.json", key(p, "t-ka-1-Data.db"));
    s3.wait_keys("first index", |k| k.contains(&index));
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(p.join("t-ka-1-Summary.db"), b"s").unwrap();
    let t = std::time::Instant::now();
    loop {
        let body: serde_json::Value = serde_json::from_slice(&s3.get(&index)).unwrap();
        if body[p.to_str().unwrap()] == serde_json::json!(["t-ka-1-Data.db", "t-ka-1-Summary.db"]) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the late component never reached the index: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(d.stop().0, 0);
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn storage_class_and_encryption_reach_s3() {
    stored_as(
        &["--storage-class", "STANDARD_IA", "--sse", "AES256"],
        "STANDARD_IA",
        Some("AES256"),
    );
}

/// S3 refuses to copy from GLACIER: the parts of a cold file go up in
/// STANDARD and the md5sum stamp copy gives the class.
#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn a_large_file_reaches_glacier_with_its_md5sum() {
    stored_as(&["--storage-class", "GLACIER"], "GLACIER", None);
}

/// A small file (one PUT) and two over 8 MiB end up with the storage
/// class and encryption asked: one just written (hashed from the page
/// cache, its md5sum and class given at the start) and one cold (parts,
/// then the md5sum stamped by a copy).
fn stored_as(args: &[&str], class: &str, sse: Option<&str>) {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(&moto, &s3.bucket, dir.path(), args);
    std::fs::write(dir.path().join("e-Data.db"), b"encrypted").unwrap();
    std::fs::write(dir.path().join("f-Data.db"), vec![7u8; 9 << 20]).unwrap();
    place_cold(&dir.path().join("g-Data.db"), &vec![8u8; 9 << 20]);
    for name in ["e-Data.db", "f-Data.db", "g-Data.db"] {
        let k = key(dir.path(), name);
        s3.wait_md5sum(&k);
        let h = s3
            .rt
            .block_on(s3.client.head_object().bucket(&s3.bucket).key(&k).send())
            .unwrap();
        assert_eq!(h.storage_class().map(|c| c.as_str()), Some(class), "{name}");
        if let Some(sse) = sse {
            assert_eq!(
                h.server_side_encryption().map(|e| e.as_str()),
                Some(sse),
                "{name}"
            );
        }
    }
    assert_eq!(d.stop().0, 0);
}

/// An object cut before its md5sum stamp (the same size as the file, no
/// `md5sum`) is never promised by an index: tablesnap uploads the file
/// again, and the index lists it once it is whole.
#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn an_index_lists_only_objects_with_their_md5sum() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    // Already on disk (no event for it) and in S3 without its stamp.
    std::fs::write(p.join("t-ka-1-Index.db"), b"index bytes").unwrap();
    let cut = key(p, "t-ka-1-Index.db");
    s3.put(&cut, b"index bytes", &[]);
    let mut d = Daemon::start(&moto, &s3.bucket, p, &[]);
    std::fs::write(p.join("t-ka-1-Data.db"), b"d").unwrap();
    let index = format!("{}-listdir.json", key(p, "t-ka-1-Data.db"));
    s3.wait_keys("the index", |k| k.contains(&index));
    let t = std::time::Instant::now();
    loop {
        let body: serde_json::Value = serde_json::from_slice(&s3.get(&index)).unwrap();
        let listed = body[p.to_str().unwrap()]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "t-ka-1-Index.db");
        let stamped = s3.metadata(&cut).get("md5sum").cloned();
        if listed {
            // Listed only once whole.
            assert_eq!(stamped, Some(md5_hex(b"index bytes")), "{body}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the file never reached the index (md5sum in S3: {stamped:?}): {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(d.stop().0, 0);
}
