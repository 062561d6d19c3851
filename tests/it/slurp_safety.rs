//! tableslurp's verdicts: tablesnap 1.2.1's indexes (directory entries,
//! files never uploaded) restore; a missing object under our own index,
//! an object stripped of `md5sum`, and a stalled GET do not pass silently.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{lab_prerequisites, md5_hex, moto, Lab, LabOpts, Run, S3};

pub(crate) const ORIGIN: &str = "/var/lib/cassandra/data/ks/tbl";

/// PUT `host1:<ORIGIN>/<name>` with user metadata.
pub(crate) fn put(s3: &S3, name: &str, body: &[u8], meta: &[(&str, String)]) {
    s3.put(&format!("host1:{ORIGIN}/{name}"), body, meta);
}

/// A data object as tablesnap 1.2.1 writes it.
pub(crate) fn put_file(s3: &S3, name: &str, body: &[u8]) {
    let stat = r#"{"user": "root", "gid": 0, "group": "root", "uid": 0, "mode": 33188}"#;
    put(
        s3,
        name,
        body,
        &[("md5sum", md5_hex(body)), ("stat", stat.to_string())],
    );
}

pub(crate) fn slurp_args<'a>(bucket: &'a str, target: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "tableslurp",
        bucket,
        ORIGIN,
        target.to_str().unwrap(),
        "-n",
        "host1",
    ];
    args.extend_from_slice(extra);
    args
}

/// tableslurp of ORIGIN (as host1) into `target` against `moto`.
pub(crate) fn slurp(
    moto: &str,
    bucket: &str,
    target: &Path,
    extra: &[&str],
) -> crate::support::Done {
    Run::new(&slurp_args(bucket, target, extra))
        .env("AWS_ENDPOINT_URL", moto)
        .env("AWS_REGION", "us-east-1")
        .run()
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn tablesnap_1_2_1_index_with_directories_and_unuploaded_files_restores() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    put_file(&s3, "ks-tbl-ka-7-Data.db", b"seven");
    put_file(&s3, "ks-tbl-ka-7-Index.db", b"index");
    // Something under backups/, as -r backs it up.
    put_file(&s3, "backups/ks-tbl-ka-1-Data.db", b"one");
    // 1.2.1: written before the data, listing the whole directory in
    // readdir order, no metadata. ka-8 was never uploaded.
    put(
        &s3,
        "ks-tbl-ka-7-Data.db-listdir.json",
        format!(
            r#"{{"{ORIGIN}": ["snapshots", "ks-tbl-ka-7-Index.db", "backups", "ks-tbl-ka-8-Data.db", "ks-tbl-ka-7-Data.db"]}}"#
        )
        .as_bytes(),
        &[],
    );
    let out = tempfile::tempdir().unwrap();
    let r = slurp(&moto, &s3.bucket, out.path(), &[]).expect_code(0);
    let err = r.stderr();
    assert!(err.contains("WARN"), "{err}");
    assert!(
        err.contains("listed by tablesnap 1.2.1's index but never uploaded: ks-tbl-ka-8-Data.db"),
        "{err}"
    );
    assert!(err.contains("a directory entry: backups"), "{err}");
    assert!(err.contains("a directory entry: snapshots"), "{err}");
    assert!(
        r.stdout().contains(
            "2 restored, 0 already there, 0 failed, 3 listed by a tablesnap 1.2.1 index but not in S3"
        ),
        "{}",
        r.stdout()
    );
    assert_eq!(
        std::fs::read(out.path().join("ks-tbl-ka-7-Data.db")).unwrap(),
        b"seven"
    );
    assert!(!out.path().join("ks-tbl-ka-8-Data.db").exists());
    assert!(!out.path().join("backups").exists());
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn a_missing_object_under_our_marked_index_fails() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    put_file(&s3, "a-Data.db", b"a");
    put(
        &s3,
        "a-Data.db-listdir.json",
        format!(r#"{{"{ORIGIN}":["a-Data.db","b-Data.db"]}}"#).as_bytes(),
        &[("snaptastic-index", "1".into())],
    );
    let out = tempfile::tempdir().unwrap();
    let r = slurp(&moto, &s3.bucket, out.path(), &[]).expect_code(1);
    assert!(
        r.stdout().contains("b-Data.db: missing from S3"),
        "{}",
        r.stdout()
    );
    assert!(r.stdout().contains("1 restored, 0 already there, 1 failed"));
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn our_tablesnap_marks_its_indexes() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x-Data.db"), b"x").unwrap();
    let mut child = Run::new(&[
        "tablesnap",
        &s3.bucket,
        dir.path().to_str().unwrap(),
        "-n",
        "host1",
        "-B",
    ])
    .env("AWS_ENDPOINT_URL", &moto)
    .env("AWS_REGION", "us-east-1")
    .spawn();
    let index = format!("host1:{}/x-Data.db-listdir.json", dir.path().display());
    s3.wait_keys("the index", |k| k.contains(&index));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert_eq!(
        s3.metadata(&index)
            .get("snaptastic-index")
            .map(String::as_str),
        Some("1")
    );
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn altered_bytes_without_md5sum_fail_unless_allowed() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    put_file(&s3, "a-Data.db", b"a");
    // Rewritten by another tool: other bytes, md5sum gone, the stat kept.
    put(
        &s3,
        "a-Index.db",
        b"altered",
        &[("stat", r#"{"uid": 0, "gid": 0, "mode": 33188}"#.into())],
    );
    put(
        &s3,
        "a-Data.db-listdir.json",
        format!(r#"{{"{ORIGIN}": ["a-Index.db", "a-Data.db"]}}"#).as_bytes(),
        &[],
    );
    let out = tempfile::tempdir().unwrap();
    let r = slurp(&moto, &s3.bucket, out.path(), &[]).expect_code(1);
    assert!(
        r.stdout().contains("a-Index.db: no md5sum metadata"),
        "{}",
        r.stdout()
    );
    assert!(!out.path().join("a-Index.db").exists());
    assert!(!out.path().join(".a-Index.db.tableslurp").exists());

    let r = slurp(&moto, &s3.bucket, out.path(), &["--allow-unverified"]).expect_code(0);
    assert!(r.stderr().contains("restored unverified"), "{}", r.stderr());
    assert_eq!(
        std::fs::read(out.path().join("a-Index.db")).unwrap(),
        b"altered"
    );
}

/// `--allow-unverified` compares what can be compared: an SSE-KMS
/// object's ETag is not an MD5 on S3 (the lab serves S3's kind of ETag
/// for one), so its size is checked instead and a good object restores,
/// saying what was checked; a plain object's ETag still catches bytes
/// that are not what S3 holds.
#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn allow_unverified_restores_a_good_sse_kms_object_and_says_what_it_checked() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let lab = Lab::start(&moto, LabOpts::default());
    let s3 = S3::new(lab.var("AWS_ENDPOINT_URL"));
    put_file(&s3, "a-Data.db", b"a");
    // Rewritten by another tool with SSE-KMS and no checksum (as before
    // S3 stored one for every object): md5sum gone, stat kept.
    let no_checksum = aws_sdk_s3::config::Builder::default()
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired);
    s3.rt
        .block_on(
            s3.client
                .put_object()
                .bucket(&s3.bucket)
                .key(format!("host1:{ORIGIN}/a-Index.db"))
                .body(b"kms bytes".to_vec().into())
                .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                .metadata("stat", r#"{"uid": 0, "gid": 0, "mode": 33188}"#)
                .customize()
                .config_override(no_checksum)
                .send(),
        )
        .unwrap();
    // The same, stored with a full-object CRC32: that is checked too.
    s3.rt
        .block_on(
            s3.client
                .put_object()
                .bucket(&s3.bucket)
                .key(format!("host1:{ORIGIN}/a-Summary.db"))
                .body(b"summary".to_vec().into())
                .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32)
                .metadata("stat", r#"{"uid": 0, "gid": 0, "mode": 33188}"#)
                .send(),
        )
        .unwrap();
    put(
        &s3,
        "a-Data.db-listdir.json",
        format!(r#"{{"{ORIGIN}": ["a-Index.db", "a-Summary.db", "a-Data.db"]}}"#).as_bytes(),
        &[],
    );
    let out = tempfile::tempdir().unwrap();
    let r = lab
        .run(&slurp_args(&s3.bucket, out.path(), &["--allow-unverified"]))
        .run()
        .expect_code(0);
    assert!(
        r.stderr().contains("a-Index.db: restored unverified")
            && r.stderr()
                .contains("only its size was checked (an SSE-KMS object's ETag is not an MD5"),
        "{}",
        r.stderr()
    );
    assert!(
        r.stderr()
            .contains("a-Summary.db: restored unverified (--allow-unverified): no md5sum metadata; its size and its stored CRC32 checksum match"),
        "{}",
        r.stderr()
    );
    assert_eq!(
        std::fs::read(out.path().join("a-Summary.db")).unwrap(),
        b"summary"
    );
    assert_eq!(
        std::fs::read(out.path().join("a-Index.db")).unwrap(),
        b"kms bytes"
    );
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_stalled_get_is_abandoned_and_retried() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s3 = S3::new(&moto);
    put_file(&s3, "a-Data.db", b"a");
    put(
        &s3,
        "a-Data.db-listdir.json",
        format!(r#"{{"{ORIGIN}": ["a-Data.db"]}}"#).as_bytes(),
        &[("snaptastic-index", "1".into())],
    );
    // The first GETs (the index's, the data file's) are held for a minute.
    let lab = Lab::start(
        &moto,
        LabOpts {
            rules: Some(
                "[[faults]]\naction = \"GetObject\"\ncalls = [1, 2, 3]\nreply = \"hang\"\nlatency = \"60s\"\n"
                    .into(),
            ),
            ..LabOpts::default()
        },
    );
    let out = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let r = lab
        .run(&slurp_args(
            &s3.bucket,
            out.path(),
            &["--stall-timeout", "2s"],
        ))
        .run()
        .expect_code(0);
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "{:?}\n{}",
        t.elapsed(),
        r.stderr()
    );
    assert!(r.stderr().contains("stalled"), "{}", r.stderr());
    assert_eq!(std::fs::read(out.path().join("a-Data.db")).unwrap(), b"a");
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn a_file_without_its_own_index_restores_from_the_next_one() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    // One batch: f1 then f2 uploaded, one index beside f2 listing both
    // (S3's times have one-second resolution).
    put_file(&s3, "f1-Data.db", b"one");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    put_file(&s3, "f2-Data.db", b"two");
    put(
        &s3,
        "f2-Data.db-listdir.json",
        format!(r#"{{"{ORIGIN}":["f1-Data.db","f2-Data.db"]}}"#).as_bytes(),
        &[("snaptastic-index", "1".into())],
    );
    let out = tempfile::tempdir().unwrap();
    let r = slurp(&moto, &s3.bucket, out.path(), &["-f", "f1-Data.db"]).expect_code(0);
    assert!(
        r.stderr()
            .contains("f1-Data.db has no index of its own: using host1:"),
        "{}",
        r.stderr()
    );
    assert_eq!(
        std::fs::read(out.path().join("f1-Data.db")).unwrap(),
        b"one"
    );
    assert_eq!(
        std::fs::read(out.path().join("f2-Data.db")).unwrap(),
        b"two"
    );
    // A file that is not there at all: one line saying so.
    let r = slurp(&moto, &s3.bucket, out.path(), &["-f", "nope-Data.db"]).expect_code(1);
    assert!(
        r.stderr().contains("no index lists nope-Data.db"),
        "{}",
        r.stderr()
    );
}
