//! tablesnap's safety nets: a misplaced `-e` named as such, the object
//! size surviving the lab's proxy (so `-B` restarts upload nothing),
//! stale multipart uploads of this host aborted (and no one else's), and
//! directories that cannot be watched covered by rescans.

use std::time::{Duration, Instant};

use crate::support::{
    is_root, lab_prerequisites, md5_hex, moto, place_cold, varied_bytes, Lab, LabOpts, Run, S3,
};
use crate::tablesnap::{key, Daemon};

#[test]
fn exclude_before_the_bucket_is_named_as_the_cause() {
    let d = Run::new(&["tablesnap", "-e", "\\.log$", "my-bucket", "/var/lib/x"])
        .run()
        .expect_code(1);
    let err = d.stderr();
    assert!(
        err.contains(
            "-e takes every following word as a pattern: 'my-bucket' and '/var/lib/x' were read as pattern(s); put -e REGEX after BUCKET PATH..., or write -e=REGEX"
        ),
        "{err}"
    );
    assert!(!err.contains("no bucket"), "{err}");
    let d = Run::new(&["tablesnap", "my-bucket", "-i", "Data", "/var/lib/x"])
        .run()
        .expect_code(1);
    assert!(
        d.stderr().contains("-i takes every following word")
            && d.stderr().contains("'/var/lib/x' was"),
        "{}",
        d.stderr()
    );
}

/// Unfinished multipart uploads under `prefix`, as (key, upload id).
fn uploads(s3: &S3, prefix: &str) -> Vec<(String, String)> {
    let r = s3
        .rt
        .block_on(
            s3.client
                .list_multipart_uploads()
                .bucket(&s3.bucket)
                .prefix(prefix)
                .send(),
        )
        .unwrap();
    r.uploads()
        .iter()
        .map(|u| {
            (
                u.key().unwrap_or_default().to_string(),
                u.upload_id().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn start_upload(s3: &S3, key: &str) -> String {
    let r = s3
        .rt
        .block_on(
            s3.client
                .create_multipart_upload()
                .bucket(&s3.bucket)
                .key(key)
                .send(),
        )
        .unwrap();
    r.upload_id().unwrap().to_string()
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn stale_multipart_uploads_of_this_host_are_aborted_and_no_one_elses() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let runtime = tempfile::tempdir().unwrap();
    // A host1 daemon killed mid-upload left this; host2 is another machine.
    let mine = key(dir.path(), "big-Data.db");
    let theirs = format!("host2:{}/big-Data.db", dir.path().display());
    // Same name but a longer one: not this host's prefix ("host1:").
    let longer = format!("host10:{}/big-Data.db", dir.path().display());
    start_upload(&s3, &mine);
    let their_id = start_upload(&s3, &theirs);
    start_upload(&s3, &longer);
    std::thread::sleep(Duration::from_millis(1100));

    let mut d = Daemon::start_in(&moto, &s3.bucket, dir.path(), Some(runtime.path()), &[]);
    let t = Instant::now();
    while !uploads(&s3, "host1:").is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "host1's upload not aborted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(uploads(&s3, "host2:"), vec![(theirs, their_id)]);
    assert_eq!(uploads(&s3, "host10:").len(), 1);

    // While that daemon runs, a second one of the same host name leaves
    // uploads alone: this one could be the first daemon's, live.
    let live = start_upload(&s3, &mine);
    std::thread::sleep(Duration::from_millis(1100));
    let other = tempfile::tempdir().unwrap();
    let mut second = Daemon::start_in(&moto, &s3.bucket, other.path(), Some(runtime.path()), &[]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(uploads(&s3, "host1:"), vec![(mine.clone(), live.clone())]);
    let (code, stderr) = second.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("another tablesnap for host1: is running here"),
        "{stderr}"
    );
    let (code, stderr) = d.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "aborted the unfinished multipart upload of {mine}"
        )),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn the_lab_keeps_head_sizes_so_a_backup_restart_uploads_nothing() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let lab = Lab::start(&moto, LabOpts::default());
    let endpoint = lab.var("AWS_ENDPOINT_URL").to_string();
    // The bucket and the HEAD go through the lab's proxy.
    let s3 = S3::new(&endpoint);
    let body = vec![7u8; 12_345];
    s3.rt
        .block_on(
            s3.client
                .put_object()
                .bucket(&s3.bucket)
                .key("sized")
                .body(body.clone().into())
                .send(),
        )
        .unwrap();
    let head = s3
        .rt
        .block_on(
            s3.client
                .head_object()
                .bucket(&s3.bucket)
                .key("sized")
                .send(),
        )
        .unwrap();
    assert_eq!(head.content_length(), Some(12_345));

    let dir = tempfile::tempdir().unwrap();
    let runtime = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-Data.db"), b"aaaa").unwrap();
    std::fs::write(dir.path().join("a-Index.db"), b"iiiiiiii").unwrap();
    let mut d = Daemon::start_in(
        &endpoint,
        &s3.bucket,
        dir.path(),
        Some(runtime.path()),
        &["-B"],
    );
    let index = format!("{}-listdir.json", key(dir.path(), "a-Data.db"));
    s3.wait_keys("the first backup", |k| k.contains(&index));
    assert_eq!(d.stop().0, 0);
    let puts = lab.state()["calls"]["PutObject"].as_u64().unwrap();

    let mut d = Daemon::start_in(
        &endpoint,
        &s3.bucket,
        dir.path(),
        Some(runtime.path()),
        &["-B"],
    );
    std::thread::sleep(Duration::from_millis(2500));
    let (code, stderr) = d.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("stopped: 0 uploaded, 0 failed"), "{stderr}");
    assert!(!stderr.contains("differs in S3"), "{stderr}");
    // The index is written again (its directory had files land), the
    // data files are not.
    let after = lab.state()["calls"]["PutObject"].as_u64().unwrap();
    assert!(after <= puts + 1, "PutObject {puts} then {after}");
}

/// Sets `fs.inotify.max_user_watches` and restores it on drop (also when
/// the test panics): the limit is the machine's.
struct WatchLimit(String);

const MAX_WATCHES: &str = "/proc/sys/fs/inotify/max_user_watches";

impl WatchLimit {
    fn set(n: u64) -> WatchLimit {
        let old = std::fs::read_to_string(MAX_WATCHES).unwrap();
        std::fs::write(MAX_WATCHES, n.to_string()).unwrap();
        WatchLimit(old.trim().to_string())
    }
}

impl Drop for WatchLimit {
    fn drop(&mut self) {
        let _ = std::fs::write(MAX_WATCHES, &self.0);
    }
}

/// inotify watches this user has now, from every process's fdinfo.
fn watches_in_use() -> u64 {
    let mut n = 0;
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(fds) = std::fs::read_dir(p.path().join("fdinfo")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(t) = std::fs::read_to_string(fd.path()) {
                n += t.lines().filter(|l| l.starts_with("inotify wd:")).count() as u64;
            }
        }
    }
    n
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn directories_beyond_the_watch_limit_are_reported_and_rescanned() {
    if !is_root() {
        return;
    }
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let root = tempfile::tempdir().unwrap();
    let runtime = tempfile::tempdir().unwrap();
    for i in 0..20 {
        std::fs::create_dir(root.path().join(format!("t{i:02}"))).unwrap();
    }
    // Room for the root and a few subdirectories, not for all 20.
    let limit = WatchLimit::set(watches_in_use() + 4);
    let mut d = Daemon::start_in(
        &moto,
        &s3.bucket,
        root.path(),
        Some(runtime.path()),
        &["-r"],
    );
    drop(limit);
    // A file in every directory: most are not watched, and only the
    // periodic rescan (or the watch it retries) brings them in.
    let ks: Vec<String> = (0..20)
        .map(|i| {
            let sub = root.path().join(format!("t{i:02}"));
            std::fs::write(sub.join("x-Data.db"), b"late").unwrap();
            key(&sub, "x-Data.db")
        })
        .collect();
    let t = Instant::now();
    loop {
        let have = s3.keys();
        let missing: Vec<_> = ks.iter().filter(|k| !have.contains(k)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(50),
            "never uploaded: {missing:#?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let (code, stderr) = d.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("cannot watch"), "{stderr}");
    assert!(
        stderr.contains("sysctl fs.inotify.max_user_watches"),
        "{stderr}"
    );
    assert!(stderr.contains("now watching"), "{stderr}");

    // A configured path that cannot be watched fails the start, in one
    // line naming it.
    let limit = WatchLimit::set(watches_in_use());
    let out = Run::new(&["tablesnap", &s3.bucket, root.path().to_str().unwrap()])
        .env("AWS_ENDPOINT_URL", &moto)
        .env("AWS_REGION", "us-east-1")
        .env("SNAPTASTIC_STATE_DIR", runtime.path())
        .run();
    drop(limit);
    assert_eq!(out.code(), 1, "{}", out.stderr());
    let line = out.error_lines().join("\n");
    assert!(
        line.contains(&format!("cannot watch {}", root.path().display()))
            && line.contains("max_user_watches"),
        "{}",
        out.stderr()
    );
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn tablechop_never_deletes_data_newer_than_the_newest_index() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let put = |key: &str, body: &[u8]| {
        s3.rt
            .block_on(
                s3.client
                    .put_object()
                    .bucket(&s3.bucket)
                    .key(key)
                    .body(body.to_vec().into())
                    .send(),
            )
            .unwrap();
    };
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("ks/t");
    // An orphan older than the directory's newest index, the index (which
    // lists neither), then a file uploaded after it (a crash before
    // indexing, a restart without -B): S3's times have one-second
    // resolution, so a second apart.
    let (orphan, after) = (key(&t, "orphan-Data.db"), key(&t, "after-Data.db"));
    put(&orphan, b"old");
    std::thread::sleep(Duration::from_millis(1100));
    let index = format!("{}-listdir.json", key(&t, "x-Data.db"));
    put(
        &index,
        format!(r#"{{"{}": ["x-Data.db"]}}"#, t.display()).as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(1100));
    put(&after, b"newest data");
    let out = Run::new(&[
        "tablechop",
        &s3.bucket,
        dir.path().to_str().unwrap(),
        "0",
        "-n",
        "host1",
        "--grace",
        "0s",
        "--dry-run",
    ])
    .env("AWS_ENDPOINT_URL", &moto)
    .env("AWS_REGION", "us-east-1")
    .run()
    .expect_code(0)
    .stdout();
    assert!(
        out.contains(&format!(
            "keep    {after}: uploaded after its directory's newest index"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("delete  {orphan}: listed by no kept index")),
        "{out}"
    );
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn tablechop_forgets_a_dropped_table_only_when_asked() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("ks/dropped");
    let data = key(&t, "d1-Data.db");
    let index = format!("{data}-listdir.json");
    for (k, body) in [
        (data.clone(), b"x".to_vec()),
        (
            index.clone(),
            format!(r#"{{"{}": ["d1-Data.db"]}}"#, t.display()).into_bytes(),
        ),
    ] {
        s3.rt
            .block_on(
                s3.client
                    .put_object()
                    .bucket(&s3.bucket)
                    .key(k)
                    .body(body.into())
                    .send(),
            )
            .unwrap();
    }
    let chop = |extra: &[&str]| {
        let mut args = vec![
            "tablechop",
            &s3.bucket,
            dir.path().to_str().unwrap(),
            "0",
            "-n",
            "host1",
            "--dry-run",
        ];
        args.extend_from_slice(extra);
        Run::new(&args)
            .env("AWS_ENDPOINT_URL", &moto)
            .env("AWS_REGION", "us-east-1")
            .run()
            .expect_code(0)
            .stdout()
    };
    // By default the newest index of a directory and what it lists stay.
    let out = chop(&[]);
    assert!(out.contains("0 of 2 objects to delete"), "{out}");
    // Asked to forget directories idle for 0 days: both go, index first.
    let out = chop(&["--forget-after", "0"]);
    assert!(out.contains("2 of 2 objects to delete"), "{out}");
    assert!(
        out.contains(&format!("delete  {index}: a table dropped long ago")),
        "{out}"
    );
}

/// The lab in front of moto, holding every `action` request for a minute.
fn hanging(moto: &str, action: &str) -> Lab {
    let rule = format!("[[faults]]\naction = \"{action}\"\nreply = \"hang\"\nlatency = \"60s\"\n");
    Lab::start(
        moto,
        LabOpts {
            rules: Some(rule),
            ..LabOpts::default()
        },
    )
}

/// A daemon watching its own directory, talking to S3 through a lab in
/// which every `action` call hangs.
struct Hung {
    moto: String,
    s3: S3,
    _lab: Lab,
    dir: tempfile::TempDir,
    runtime: tempfile::TempDir,
    daemon: Daemon,
}

fn hung_daemon(action: &str, extra: &[&str]) -> Option<Hung> {
    let moto = lab_prerequisites()?;
    let s3 = S3::new(&moto);
    let lab = hanging(&moto, action);
    let dir = tempfile::tempdir().unwrap();
    let runtime = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(
        lab.var("AWS_ENDPOINT_URL"),
        &s3.bucket,
        dir.path(),
        Some(runtime.path()),
        extra,
    );
    Some(Hung {
        moto,
        s3,
        _lab: lab,
        dir,
        runtime,
        daemon,
    })
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn sigterm_with_s3_unreachable_stops_within_seconds_and_the_next_start_catches_up() {
    // Every PUT (data and index) through the lab hangs for a minute.
    let Some(mut h) = hung_daemon("PutObject", &["-t", "10"]) else {
        return;
    };
    let (s3, dir) = (&h.s3, h.dir.path());
    // More files than workers (-t 10): some are still queued at the stop.
    for i in 0..30u8 {
        std::fs::write(dir.join(format!("nb-{i}-big-Data.db")), vec![i; 5000]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    let t = std::time::Instant::now();
    let (code, stderr) = h.daemon.stop();
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(12),
        "stopping took {took:?}:\n{stderr}"
    );
    assert_eq!(code, 1, "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("owed: 30 file(s) not uploaded (10 cut off after 8s)")
            && last.contains("the next start with -B picks them up"),
        "{last}"
    );
    assert!(s3.keys().is_empty(), "{:?}", s3.keys());

    // S3 is back: the next start uploads and indexes what was owed.
    let mut d = Daemon::start_in(&h.moto, &s3.bucket, dir, Some(h.runtime.path()), &["-B"]);
    s3.wait_keys("the owed files and their index", |k| {
        k.len() == 31 && k.iter().any(|k| k.ends_with("-listdir.json"))
    });
    assert_eq!(d.stop().0, 0);
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_stop_before_the_md5sum_copy_leaves_an_object_the_next_start_uploads_again() {
    // A file over 8 MiB goes up in parts, then gets its md5sum by a copy
    // onto itself: here that copy hangs, as if the host died just then.
    let Some(mut h) = hung_daemon("CopyObject", &[]) else {
        return;
    };
    let (s3, dir) = (&h.s3, h.dir.path());
    let data = varied_bytes(9 << 20, 11);
    // Cold: not hashed from the page cache before its upload, so the
    // md5sum comes by the copy.
    let file = dir.join("nb-1-big-Data.db");
    place_cold(&file, &data);
    let k = key(dir, "nb-1-big-Data.db");
    s3.wait_keys("the uploaded parts joined", |keys| keys.contains(&k));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        s3.metadata(&k).get("md5sum"),
        None,
        "the copy was meant to hang"
    );
    let (code, stderr) = h.daemon.stop();
    assert_eq!(code, 1, "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains("owed: 1 file(s) not uploaded"), "{last}");

    // The object without md5sum is not taken for the file: -B uploads it
    // again and stamps it.
    let mut d = Daemon::start_in(&h.moto, &s3.bucket, dir, Some(h.runtime.path()), &["-B"]);
    assert_eq!(s3.wait_md5sum(&k), md5_hex(&data));
    assert!(s3.get(&k) == data, "content differs");
    let (code, stderr) = d.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("has no md5sum (an upload cut off"),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn every_body_sent_carries_a_checksum_that_s3_checks() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    // The lab refuses a part whose CRC32 is not its body's, as S3 does
    // (moto does not), and counts bodies sent with no checksum at all.
    let lab = Lab::start(&moto, LabOpts::default());
    let s3 = S3::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let runtime = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(
        lab.var("AWS_ENDPOINT_URL"),
        &s3.bucket,
        dir.path(),
        Some(runtime.path()),
        &["--multipart-chunk-size", "5"],
    );
    let small = varied_bytes(5000, 3);
    let warm = varied_bytes(12 << 20, 5);
    let cold = varied_bytes(11 << 20, 7);
    std::fs::write(dir.path().join("nb-1-big-Index.db"), &small).unwrap();
    std::fs::write(dir.path().join("tmp"), &warm).unwrap();
    std::fs::rename(dir.path().join("tmp"), dir.path().join("nb-1-big-Data.db")).unwrap();
    place_cold(&dir.path().join("nb-2-big-Data.db"), &cold);
    for (name, data) in [
        ("nb-1-big-Index.db", &small),
        ("nb-1-big-Data.db", &warm),
        ("nb-2-big-Data.db", &cold),
    ] {
        let k = key(dir.path(), name);
        assert_eq!(s3.wait_md5sum(&k), md5_hex(data), "{name}");
        assert!(s3.get(&k) == *data, "{name}: content differs");
    }
    let (code, stderr) = d.stop();
    assert_eq!(code, 0, "{stderr}");
    let state = lab.state();
    assert_eq!(state["calls"]["UploadPart"], 6, "{state:#}");
    assert_eq!(
        state["unprotected_bodies"],
        serde_json::json!({}),
        "{state:#}"
    );
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_large_file_just_written_carries_its_md5sum_without_a_copy() {
    // Every copy hangs: a file still in the page cache is hashed from
    // there first, so its object needs none.
    let args = [
        "--multipart-chunk-size",
        "5",
        "--storage-class",
        "STANDARD_IA",
    ];
    let Some(mut h) = hung_daemon("CopyObject", &args) else {
        return;
    };
    let (s3, dir) = (&h.s3, h.dir.path());
    // Three parts: 5, 5 and 2 MiB, each with the CRC32 of its own bytes.
    let data = varied_bytes(12 << 20, 9);
    std::fs::write(dir.join("tmp"), &data).unwrap();
    std::fs::rename(dir.join("tmp"), dir.join("nb-2-big-Data.db")).unwrap();
    let k = key(dir, "nb-2-big-Data.db");
    assert_eq!(s3.wait_md5sum(&k), md5_hex(&data));
    assert!(s3.get(&k) == data, "content differs");
    let head = s3
        .rt
        .block_on(s3.client.head_object().bucket(&s3.bucket).key(&k).send())
        .unwrap();
    assert_eq!(
        head.storage_class().map(|c| c.as_str()),
        Some("STANDARD_IA")
    );
    let (code, stderr) = h.daemon.stop();
    assert_eq!(code, 0, "{stderr}");
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_batch_slower_than_the_quiet_period_gets_one_index_after_its_last_file() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s3 = S3::new(&moto);
    // Every PUT takes 600 ms, three times the index's quiet period, and
    // two go at once: the batch's files land in three waves.
    let lab = Lab::start(
        &moto,
        LabOpts {
            rules: Some(
                "[[faults]]\naction = \"PutObject\"\nreply = \"latency\"\nlatency = \"600ms\"\n"
                    .into(),
            ),
            ..LabOpts::default()
        },
    );
    let endpoint = lab.var("AWS_ENDPOINT_URL").to_string();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(
        &endpoint,
        &s3.bucket,
        dir.path(),
        Some(runtime.path()),
        &["-t", "2"],
    );
    let staging = tempfile::tempdir_in(dir.path().parent().unwrap()).unwrap();
    for i in 0..6u8 {
        let name = format!("nb-{i}-big-Data.db");
        std::fs::write(staging.path().join(&name), vec![i; 100]).unwrap();
        std::fs::rename(staging.path().join(&name), dir.path().join(&name)).unwrap();
    }
    s3.wait_keys("six files and an index", |k| {
        k.len() == 7 && k.iter().any(|k| k.ends_with("-listdir.json"))
    });
    std::thread::sleep(Duration::from_millis(1500));
    let (code, stderr) = d.stop();
    assert_eq!(code, 0, "{stderr}");
    let indexed: Vec<&str> = stderr.lines().filter(|l| l.contains(" indexed ")).collect();
    assert_eq!(indexed.len(), 1, "{indexed:#?}");
    assert!(indexed[0].contains("indexed 6 files of"), "{}", indexed[0]);
}

#[test]
#[ignore = "needs root (to drop to another user with one capability): scripts/test.sh runs it as root"]
fn tablesnap_backs_up_root_only_files_as_nobody_with_cap_dac_read_search_alone() {
    use std::os::unix::fs::PermissionsExt;
    let Some(moto) = moto() else { return };
    assert!(is_root(), "run as root (scripts/test.sh does in CI)");
    let s3 = S3::new(&moto);
    // A data directory only root can read, as Cassandra's is only its own.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("a-Data.db"), b"only root reads this").unwrap();
    std::fs::set_permissions(
        data.join("a-Data.db"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Its state directory is its own, as systemd's StateDirectory= makes it.
    let state = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(state.path(), Some(65534), Some(65534)).unwrap();
    let bin = crate::support::snaptastic_bin();
    let data_arg = data.to_str().unwrap();
    let mut child = Run::program(
        std::path::Path::new("/usr/bin/setpriv"),
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all,+dac_read_search",
            "--ambient-caps=-all,+dac_read_search",
            "--bounding-set=-all,+dac_read_search",
            "--no-new-privs",
            bin.to_str().unwrap(),
            "tablesnap",
            &s3.bucket,
            data_arg,
            "-n",
            "host1",
            "-B",
        ],
    )
    .env("AWS_ENDPOINT_URL", &moto)
    .env("AWS_REGION", "us-east-1")
    .env("SNAPTASTIC_STATE_DIR", state.path())
    .spawn();
    let k = key(&data, "a-Data.db");
    s3.wait_keys("the root-only file", |keys| keys.contains(&k));
    // And a file that lands while it runs (inotify on a 0700 directory).
    std::fs::write(data.join("b-Data.db"), b"later").unwrap();
    let kb = key(&data, "b-Data.db");
    s3.wait_keys("the file written later", |keys| keys.contains(&kb));
    assert_eq!(s3.get(&k), b"only root reads this");
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("Permission denied"), "{err}");
}
