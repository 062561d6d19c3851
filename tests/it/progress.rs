//! Progress on long waits: a live line on a terminal (run under `script`,
//! which gives the command a pseudo-terminal), nothing of it without one
//! or under `--loglevel=WARNING`.

use std::process::Command;

use crate::support::{md5_hex, moto, S3};

/// A backup of `n` small files with their index, as tablesnap writes it.
fn backup(s3: &S3, origin: &str, n: usize) {
    let mut names = Vec::new();
    for i in 0..n {
        let name = format!("nb-{i}-big-Data.db");
        let body = format!("file {i}").into_bytes();
        s3.put(
            &format!("host1:{origin}/{name}"),
            &body,
            &[("md5sum", md5_hex(&body))],
        );
        names.push(format!("\"{name}\""));
    }
    let index = format!(r#"{{"{origin}": [{}]}}"#, names.join(", "));
    s3.put(
        &format!("host1:{origin}/nb-0-big-Data.db-listdir.json"),
        index.as_bytes(),
        &[],
    );
}

/// Run tableslurp under a pseudo-terminal; returns what the terminal got.
fn on_a_terminal(moto: &str, bucket: &str, origin: &str, target: &str, extra: &str) -> String {
    let bin = env!("CARGO_BIN_EXE_snaptastic");
    let cmd = format!(
        "AWS_ENDPOINT_URL={moto} AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing \
         AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true \
         {bin} {extra} tableslurp {bucket} {origin} {target} -n host1 -t 2"
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("script(1) from util-linux");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn a_terminal_gets_a_live_line_and_a_log_or_warning_run_does_not() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let origin = "/var/lib/cassandra/data/ks/progress";
    backup(&s3, origin, 200);

    let t1 = tempfile::tempdir().unwrap();
    let tty = on_a_terminal(&moto, &s3.bucket, origin, t1.path().to_str().unwrap(), "");
    assert!(tty.contains("files restored ["), "{tty}");
    assert!(tty.contains("200 restored"), "{tty}");

    let t2 = tempfile::tempdir().unwrap();
    let quiet = on_a_terminal(
        &moto,
        &s3.bucket,
        origin,
        t2.path().to_str().unwrap(),
        "--loglevel=WARNING",
    );
    assert!(!quiet.contains("files restored"), "{quiet}");
    assert!(quiet.contains("200 restored"), "{quiet}");

    // No terminal: no bar (a short run logs no progress line either).
    let t3 = tempfile::tempdir().unwrap();
    let d = crate::support::Run::new(&[
        "tableslurp",
        &s3.bucket,
        origin,
        t3.path().to_str().unwrap(),
        "-n",
        "host1",
    ])
    .env("AWS_ENDPOINT_URL", &moto)
    .env("AWS_REGION", "us-east-1")
    .run()
    .expect_code(0);
    assert!(!d.stderr().contains('['), "{}", d.stderr());
}
