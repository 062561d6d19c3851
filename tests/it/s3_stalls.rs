//! Every S3 call the file commands make is bounded (issue 25, part 5): for
//! each action, the lab holds every call of it open, and the tool (the
//! real binary, `--stall-timeout 1s`) tries it again and then says, in
//! one line, which action on which key stalled, within seconds rather
//! than after the SDK's 120 s read timeout per attempt.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::support::{
    lab_prerequisites, place_cold, run_within, unique, varied_bytes, Lab, LabOpts, Run, S3,
};

/// Hold every call of `action` for a minute (the tools give up long
/// before); call counts start again.
fn hang(lab: &Lab, action: &str, calls: &str) {
    let reply = lab.control(
        "rules",
        &format!(
            "[[faults]]\naction = \"{action}\"\ncalls = [{calls}]\nreply = \"hang\"\nlatency = \"60s\"\n"
        ),
    );
    assert!(reply.starts_with("rules set"), "{reply}");
}

/// The line that says `action` on `target` stalled for good, and whether
/// an earlier line said it was tried again.
fn verdict(output: &str, action: &str, target: &str) -> (Option<String>, bool) {
    let what = format!("{action} of {target}");
    let again = |l: &str| l.contains("trying again") || l.contains("retrying");
    let last = output
        .lines()
        .rfind(|l| l.contains(&what) && l.contains("stalled") && !again(l))
        .map(str::to_string);
    let retried = output.lines().any(|l| l.contains(&what) && again(l));
    (last, retried)
}

/// The time a tool is given to give up, with `attempts` attempts of 1 s
/// and its pauses between them, on a busy machine.
const BOUND: Duration = Duration::from_secs(25);

fn key(dir: &Path, name: &str) -> String {
    format!("host1:{}/{name}", dir.display())
}

/// What happens in one tablesnap case: files before the start (with
/// `-B` in the flags, the scan finds them), files after it.
struct SnapCase {
    action: &'static str,
    flags: &'static [&'static str],
    before: fn(&Path, &S3),
    after: fn(&Path),
    /// What the error names, from the watched directory and the bucket.
    target: fn(&Path, &str) -> String,
}

fn nothing(_: &Path, _: &S3) {}
fn no_file(_: &Path) {}

fn small_file(dir: &Path) {
    std::fs::write(dir.join("nb-1-big-Data.db"), b"small").unwrap();
}

/// 9 MiB, just written (in the page cache): parts, md5sum known at once.
fn warm_large_file(dir: &Path) {
    let staging = dir.parent().unwrap().join(format!(
        "{}.tmp",
        dir.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&staging, varied_bytes(9 << 20, 5)).unwrap();
    std::fs::rename(&staging, dir.join("nb-1-big-Data.db")).unwrap();
}

/// 9 MiB, not in the page cache: parts, then the md5sum by a copy.
fn cold_large_file(dir: &Path) {
    place_cold(&dir.join("nb-1-big-Data.db"), &varied_bytes(9 << 20, 7));
}

fn file_key(dir: &Path, _: &str) -> String {
    key(dir, "nb-1-big-Data.db")
}

const SNAP_CASES: &[SnapCase] = &[
    SnapCase {
        action: "HeadBucket",
        flags: &[],
        before: nothing,
        after: no_file,
        target: |_, bucket| format!("bucket {bucket}"),
    },
    SnapCase {
        action: "ListMultipartUploads",
        flags: &[],
        before: nothing,
        after: no_file,
        target: |_, _| "prefix host1:".to_string(),
    },
    SnapCase {
        action: "AbortMultipartUpload",
        flags: &[],
        // An upload left by a daemon killed mid-file, before this start.
        before: |dir, s3| {
            s3.rt
                .block_on(
                    s3.client
                        .create_multipart_upload()
                        .bucket(&s3.bucket)
                        .key(key(dir, "old-Data.db"))
                        .send(),
                )
                .unwrap();
            std::thread::sleep(Duration::from_millis(1100));
        },
        after: no_file,
        target: |dir, _| key(dir, "old-Data.db"),
    },
    SnapCase {
        action: "ListObjectsV2",
        flags: &["-B"],
        before: |dir, _| small_file(dir),
        after: no_file,
        target: |dir, _| format!("prefix host1:{}/", dir.display()),
    },
    SnapCase {
        action: "HeadObject",
        flags: &["-B"],
        // Listed in S3 already (other bytes): compared by a HEAD.
        before: |dir, s3| {
            small_file(dir);
            s3.put(&key(dir, "nb-1-big-Data.db"), b"older", &[]);
        },
        after: no_file,
        target: file_key,
    },
    SnapCase {
        action: "PutObject",
        flags: &[],
        before: nothing,
        after: small_file,
        target: file_key,
    },
    SnapCase {
        action: "CreateMultipartUpload",
        flags: &[],
        before: nothing,
        after: warm_large_file,
        target: file_key,
    },
    SnapCase {
        action: "UploadPart",
        flags: &[],
        before: nothing,
        after: warm_large_file,
        target: file_key,
    },
    SnapCase {
        action: "CompleteMultipartUpload",
        flags: &[],
        before: nothing,
        after: warm_large_file,
        target: file_key,
    },
    SnapCase {
        action: "CopyObject",
        flags: &[],
        before: nothing,
        after: cold_large_file,
        target: file_key,
    },
    SnapCase {
        action: "UploadPartCopy",
        // Objects over 1 MB get their md5sum by a copy in ranges.
        flags: &["--max-upload-size", "1"],
        before: nothing,
        after: cold_large_file,
        target: file_key,
    },
];

/// Wait (bounded) until `log` has `verdict`'s line; returns it, whether
/// the call was tried again, and the log.
fn wait_verdict(
    log: &Path,
    action: &str,
    target: &str,
    child: &mut Child,
) -> (Option<String>, bool, String) {
    let t = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let (line, retried) = verdict(&text, action, target);
        let exited = child.try_wait().unwrap().is_some();
        if line.is_some() || exited || t.elapsed() > BOUND {
            if exited {
                // Its last words are in the log by now.
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let (line, retried) = verdict(&text, action, target);
                return (line, retried, text);
            }
            return (line, retried, text);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn tablesnap_gives_up_on_every_s3_call_that_hangs_within_seconds_naming_action_and_key() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let lab = Lab::start(&moto, LabOpts::default());
    let endpoint = lab.var("AWS_ENDPOINT_URL").to_string();
    let mut failures = Vec::new();
    for case in SNAP_CASES {
        let s3 = S3::new(&moto);
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("tbl");
        std::fs::create_dir(&dir).unwrap();
        (case.before)(&dir, &s3);
        hang(&lab, case.action, "");
        let log = root.path().join("tablesnap.log");
        let mut args = vec![
            "tablesnap",
            &s3.bucket,
            dir.to_str().unwrap(),
            "-n",
            "host1",
            "--stall-timeout",
            "1s",
            "--retries",
            "1",
        ];
        args.extend_from_slice(case.flags);
        let t = Instant::now();
        let mut child = Run::new(&args)
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("SNAPTASTIC_STATE_DIR", root.path().join("state"))
            .spawn_logging_to(&log);
        if case.action != "HeadBucket" {
            let start = Instant::now();
            while !std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("watching ")
                && start.elapsed() < BOUND
                && child.try_wait().unwrap().is_none()
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        (case.after)(&dir);
        let target = (case.target)(&dir, &s3.bucket);
        let (line, retried, text) = wait_verdict(&log, case.action, &target, &mut child);
        let took = t.elapsed();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let stop = Instant::now();
        while child.try_wait().unwrap().is_none() && stop.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        eprintln!(
            "{}: {took:?}: {}",
            case.action,
            line.as_deref().unwrap_or("-")
        );
        match line {
            Some(_) if retried && took < BOUND => {}
            _ => failures.push(format!(
                "{} of {target}: after {took:?}, retried: {retried}, no stall line:\n{text}",
                case.action
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// An origin directory for one tableslurp or tablechop case, with an
/// index (`a-Data.db-listdir.json`, written after its data file) listing
/// `a-Data.db`.
fn backed_up(s3: &S3) -> String {
    let origin = format!("/var/lib/cassandra/data/ks/{}", unique("tbl"));
    let data = format!("host1:{origin}/a-Data.db");
    let stat = r#"{"uid": 0, "gid": 0, "mode": 33188}"#.to_string();
    s3.put(
        &data,
        b"a",
        &[("md5sum", crate::support::md5_hex(b"a")), ("stat", stat)],
    );
    s3.put(
        &format!("{data}-listdir.json"),
        format!(r#"{{"{origin}": ["a-Data.db"]}}"#).as_bytes(),
        &[("snaptastic-index", "1".into())],
    );
    origin
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn tableslurp_gives_up_on_every_s3_call_that_hangs_within_seconds_naming_action_and_key() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let lab = Lab::start(&moto, LabOpts::default());
    let s3 = S3::new(&moto);
    // (action, which calls of it hang, what the error names, whether the
    // target directory holds the file already).
    type Case = (&'static str, &'static str, fn(&str) -> String, bool);
    let cases: &[Case] = &[
        ("ListObjectsV2", "", |o| format!("prefix host1:{o}/"), false),
        // The index's GET is the first to hang.
        (
            "GetObject",
            "",
            |o| format!("host1:{o}/a-Data.db-listdir.json"),
            false,
        ),
        // The data file's (the index's, the first GET, goes through).
        (
            "GetObject",
            "2, 3, 4, 5, 6, 7, 8, 9",
            |o| format!("host1:{o}/a-Data.db"),
            false,
        ),
        // Present already: compared with S3's md5sum by a HEAD.
        ("HeadObject", "", |o| format!("host1:{o}/a-Data.db"), true),
    ];
    let mut failures = Vec::new();
    for (action, calls, target, present) in cases {
        let origin = backed_up(&s3);
        let out = tempfile::tempdir().unwrap();
        if *present {
            std::fs::write(out.path().join("a-Data.db"), b"other").unwrap();
        }
        hang(&lab, action, calls);
        let run = lab.run(&[
            "tableslurp",
            &s3.bucket,
            &origin,
            out.path().to_str().unwrap(),
            "-n",
            "host1",
            "--stall-timeout",
            "1s",
        ]);
        let ended = run_within(run, BOUND);
        let (took, code, text) = (ended.elapsed, ended.code, ended.text());
        let target = target(&origin);
        let (line, retried) = verdict(&text, action, &target);
        eprintln!(
            "{action}: {took:?}, exit {code}: {}",
            line.as_deref().unwrap_or("-")
        );
        if line.is_none() || !retried || code != 1 || took >= BOUND {
            failures.push(format!(
                "{action} of {target}: after {took:?}, exit {code}, retried: {retried}:\n{text}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn tablechop_gives_up_on_every_s3_call_that_hangs_within_seconds_naming_action_and_key() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let lab = Lab::start(&moto, LabOpts::default());
    let s3 = S3::new(&moto);
    type Case = (&'static str, fn(&str) -> String);
    let cases: &[Case] = &[
        ("ListObjectsV2", |o| format!("prefix host1:{o}/")),
        // The newest index is read for what it lists.
        ("GetObject", |o| format!("host1:{o}/b-Data.db-listdir.json")),
        // The older index goes (AGE_DAYS 0).
        ("DeleteObjects", |o| {
            format!("host1:{o}/a-Data.db-listdir.json")
        }),
    ];
    let mut failures = Vec::new();
    for (action, target) in cases {
        let origin = backed_up(&s3);
        // A second, newer index: the first is then an old one.
        std::thread::sleep(Duration::from_millis(1100));
        s3.put(
            &format!("host1:{origin}/b-Data.db-listdir.json"),
            format!(r#"{{"{origin}": ["a-Data.db"]}}"#).as_bytes(),
            &[("snaptastic-index", "1".into())],
        );
        hang(&lab, action, "");
        let run = lab.run(&[
            "tablechop",
            &s3.bucket,
            &origin,
            "0",
            "-n",
            "host1",
            "--stall-timeout",
            "1s",
        ]);
        let ended = run_within(run, BOUND);
        let (took, code, text) = (ended.elapsed, ended.code, ended.text());
        let target = target(&origin);
        let (line, retried) = verdict(&text, action, &target);
        eprintln!(
            "{action}: {took:?}, exit {code}: {}",
            line.as_deref().unwrap_or("-")
        );
        if line.is_none() || !retried || code != 1 || took >= BOUND {
            failures.push(format!(
                "{action} of {target}: after {took:?}, exit {code}, retried: {retried}:\n{text}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
