//! tableslurp downloads a large file in ranges, several at once, and
//! still proves it whole: every range is hashed in order into the file's
//! MD5, a range that stalls is asked for again, an object replaced in S3
//! during the download never leaves a file made of two versions, and an
//! object whose bytes are not its md5sum's is refused as before.

use std::time::{Duration, Instant};

use crate::slurp_safety::{put, put_file, slurp, slurp_args, ORIGIN};
use crate::support::{lab_prerequisites, moto, Lab, LabOpts, S3};

/// `len` bytes that differ with `seed` and along the file.
fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ (i >> 12) as u8 ^ seed)
        .collect()
}

/// Our index (as tablesnap writes it) listing `names`.
fn index(s3: &S3, names: &[&str]) {
    let listed: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    put(
        s3,
        &format!("{}-listdir.json", names[0]),
        format!(r#"{{"{ORIGIN}": [{}]}}"#, listed.join(", ")).as_bytes(),
        &[("snaptastic-index", "1".into())],
    );
}

/// 1 MiB ranges: a file of `len` bytes comes in this many GETs.
fn gets(len: usize) -> u64 {
    (len as u64).div_ceil(1 << 20)
}

#[test]
#[ignore = "needs root and the lab: scripts/test.sh runs it as root"]
fn a_large_file_comes_in_ranges_and_a_stalled_range_is_asked_for_again() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s3 = S3::new(&moto);
    let big = bytes((6 << 20) + 12_345, 1);
    put_file(&s3, "big-Data.db", &big);
    index(&s3, &["big-Data.db"]);
    // GET 1 is the index, 2 the file's first range; 5 (a later range)
    // hangs past the stall timeout, once.
    let lab = Lab::start(
        &moto,
        LabOpts {
            rules: Some(
                "[[faults]]\naction = \"GetObject\"\ncalls = [5]\nreply = \"hang\"\nlatency = \"60s\"\n"
                    .into(),
            ),
            ..LabOpts::default()
        },
    );
    let out = tempfile::tempdir().unwrap();
    let r = lab
        .run(&slurp_args(
            &s3.bucket,
            out.path(),
            &["--multipart-chunk-size", "1", "--stall-timeout", "2s"],
        ))
        .run()
        .expect_code(0);
    assert!(
        std::fs::read(out.path().join("big-Data.db")).unwrap() == big,
        "the file is not as backed up\n{}",
        r.stderr()
    );
    assert!(r.stderr().contains("stalled"), "{}", r.stderr());
    // The index, each range once, and the stalled one again.
    assert_eq!(
        lab.state()["calls"]["GetObject"],
        1 + gets(big.len()) + 1,
        "{}",
        r.stderr()
    );
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn ranged_downloads_refuse_altered_objects_and_take_empty_ones() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let good = bytes(3 << 20, 2);
    put_file(&s3, "good-Data.db", &good);
    // Its md5sum says one thing, its bytes (past the first range) another.
    let mut altered = bytes(3 << 20, 3);
    let stat = r#"{"user": "root", "gid": 0, "group": "root", "uid": 0, "mode": 33188}"#;
    let claimed = crate::support::md5_hex(&altered);
    altered[(2 << 20) + 7] ^= 0xff;
    put(
        &s3,
        "altered-Data.db",
        &altered,
        &[("md5sum", claimed), ("stat", stat.into())],
    );
    put_file(&s3, "empty-Data.db", b"");
    put_file(&s3, "small-Data.db", b"small");
    index(
        &s3,
        &[
            "good-Data.db",
            "altered-Data.db",
            "empty-Data.db",
            "small-Data.db",
        ],
    );
    let out = tempfile::tempdir().unwrap();
    let r = slurp(
        &moto,
        &s3.bucket,
        out.path(),
        &["--multipart-chunk-size", "1"],
    )
    .expect_code(1);
    assert!(std::fs::read(out.path().join("good-Data.db")).unwrap() == good);
    assert_eq!(
        std::fs::read(out.path().join("empty-Data.db")).unwrap(),
        b""
    );
    assert_eq!(
        std::fs::read(out.path().join("small-Data.db")).unwrap(),
        b"small"
    );
    assert!(
        !out.path().join("altered-Data.db").exists(),
        "an altered object took its name"
    );
    assert!(
        r.stdout().contains("altered-Data.db: MD5 mismatch"),
        "{}\n{}",
        r.stdout(),
        r.stderr()
    );
}

#[test]
#[ignore = "needs root and the lab: scripts/test.sh runs it as root"]
fn an_object_replaced_during_its_download_never_mixes_two_versions() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s3 = S3::new(&moto);
    let old = bytes(6 << 20, 4);
    let new = bytes(6 << 20, 5);
    put_file(&s3, "big-Data.db", &old);
    index(&s3, &["big-Data.db"]);
    // GET 1 is the index, 2 the first range; 4 (a later range) is held
    // 3 s, and the object is replaced meanwhile.
    let lab = Lab::start(
        &moto,
        LabOpts {
            rules: Some(
                "[[faults]]\naction = \"GetObject\"\ncalls = [4]\nreply = \"latency\"\nlatency = \"3s\"\n"
                    .into(),
            ),
            ..LabOpts::default()
        },
    );
    let out = tempfile::tempdir().unwrap();
    let child = lab
        .run(&slurp_args(
            &s3.bucket,
            out.path(),
            &["--multipart-chunk-size", "1"],
        ))
        .spawn();
    let t = Instant::now();
    while lab.state()["calls"]["GetObject"].as_u64().unwrap_or(0) < 4
        && t.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    put_file(&s3, "big-Data.db", &new);
    let r = crate::support::Done(child.wait_with_output().unwrap()).expect_code(0);
    assert!(
        std::fs::read(out.path().join("big-Data.db")).unwrap() == new,
        "the file is not the object as it is now\n{}",
        r.stderr()
    );
    assert!(
        r.stderr().contains("changed in S3 during the download"),
        "{}",
        r.stderr()
    );
}

#[test]
#[ignore = "needs root and the lab: scripts/test.sh runs it as root"]
fn the_lab_caps_a_connection_and_ranges_go_past_the_cap() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s3 = S3::new(&moto);
    let big = bytes(8 << 20, 6);
    put_file(&s3, "big-Data.db", &big);
    index(&s3, &["big-Data.db"]);
    let lab = Lab::start(&moto, LabOpts::default());
    // A bad rate is refused.
    let reply = lab.control(
        "rules",
        "[[faults]]\naction = \"GetObject\"\nreply = \"latency\"\nmib_per_s = 0\n",
    );
    assert!(reply.starts_with("bad rules:"), "{reply}");
    // Each GET's body at 4 MiB/s: 8 MiB in one stream take 2 s at least.
    let reply = lab.control(
        "rules",
        "[[faults]]\naction = \"GetObject\"\nreply = \"latency\"\nlatency = \"0ms\"\nmib_per_s = 4\n",
    );
    assert!(reply.starts_with("rules set"), "{reply}");
    // The file in one stream (a part size over its size), then in
    // ranges of 1 MiB, 8 at once (the first alone): both whole and
    // verified; the one stream no faster than the cap allows.
    let restore = |chunk: &str| {
        let out = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let r = lab
            .run(&slurp_args(
                &s3.bucket,
                out.path(),
                &["--multipart-chunk-size", chunk],
            ))
            .run()
            .expect_code(0);
        let took = t.elapsed();
        assert!(
            std::fs::read(out.path().join("big-Data.db")).unwrap() == big,
            "{}",
            r.stderr()
        );
        took
    };
    let one_stream = restore("64");
    assert!(one_stream >= Duration::from_millis(1900), "{one_stream:?}");
    let ranged = restore("1");
    eprintln!("one stream {one_stream:?}, in ranges {ranged:?}");
}
