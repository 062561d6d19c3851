//! tableslurp's files are on disk when it says so, and only verified
//! files ever carry their own names: a restore killed mid-way leaves the
//! rest under temporary names (the re-run finishes and leaves none), and
//! after exit 0 a sync of the filesystem finds nothing of the restore
//! left to write (one flush per batch, not one `fsync` per file).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::slurp_safety::{put, put_file, slurp, slurp_args, ORIGIN};
use crate::support::{is_root, lab_prerequisites, moto, succeed as sh, Lab, LabOpts, S3};

/// `count` files of `size` bytes each (distinct bytes), uploaded as
/// tablesnap writes them, and our index listing them.
fn backup(s3: &S3, count: usize, size: usize) -> Vec<(String, Vec<u8>)> {
    let files: Vec<(String, Vec<u8>)> = (0..count)
        .map(|i| {
            let body: Vec<u8> = (0..size).map(|b| (b * 7 + i * 13) as u8).collect();
            (format!("ks-tbl-{i}-Data.db"), body)
        })
        .collect();
    for (name, body) in &files {
        put_file(s3, name, body);
    }
    let names: Vec<String> = files.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    put(
        s3,
        "ks-tbl-0-Data.db-listdir.json",
        format!(r#"{{"{ORIGIN}": [{}]}}"#, names.join(", ")).as_bytes(),
        &[("snaptastic-index", "1".into())],
    );
    files
}

/// Temporaries (`.NAME.tableslurp`) in `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tableslurp"))
        .collect()
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_restore_killed_midway_leaves_no_file_under_its_name_unverified_and_resumes() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s3 = S3::new(&moto);
    let files = backup(&s3, 30, 64 << 10);
    // GET 1 is the index; the 12th file's GET hangs for minutes.
    let lab = Lab::start(
        &moto,
        LabOpts {
            rules: Some(
                "[[faults]]\naction = \"GetObject\"\ncalls = [13]\nreply = \"hang\"\nlatency = \"300s\"\n"
                    .into(),
            ),
            ..LabOpts::default()
        },
    );
    let out = tempfile::tempdir().unwrap();
    let mut child = lab
        .run(&slurp_args(
            &s3.bucket,
            out.path(),
            &["-t", "4", "--stall-timeout", "300s"],
        ))
        .spawn();
    // Every other file downloaded and checked: only the hung one is owed.
    let t = Instant::now();
    while temporaries(out.path()).len() < files.len() && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    let left = temporaries(out.path());
    assert!(
        !left.is_empty(),
        "the kill came after the restore ended: nothing to check"
    );
    // Under its own name: a file whole and as backed up, or nothing.
    let mut named = 0;
    for (name, body) in &files {
        if let Ok(have) = std::fs::read(out.path().join(name)) {
            assert!(
                &have == body,
                "{name} is under its name but not as backed up"
            );
            named += 1;
        }
    }
    eprintln!(
        "killed: {named} files under their names, {} temporaries",
        left.len()
    );
    // The re-run finishes, and leaves no temporary behind.
    let r = slurp(&moto, &s3.bucket, out.path(), &[]).expect_code(0);
    for (name, body) in &files {
        let have = std::fs::read(out.path().join(name)).unwrap();
        assert!(&have == body, "{name} after the re-run\n{}", r.stderr());
    }
    assert_eq!(temporaries(out.path()), Vec::<String>::new());
}

/// An ext4 filesystem on a loop device, mounted; released on drop.
struct LoopFs {
    dir: tempfile::TempDir,
    device: String,
}

impl LoopFs {
    fn new(bytes: u64) -> LoopFs {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.img");
        std::fs::File::create(&img).unwrap().set_len(bytes).unwrap();
        sh(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
        let out = sh(Command::new("losetup").args(["-f", "--show"]).arg(&img));
        let device = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let fs = LoopFs { dir, device };
        std::fs::create_dir(fs.mount_point()).unwrap();
        sh(Command::new("mount")
            .args(["-o", "noatime"])
            .arg(&fs.device)
            .arg(fs.mount_point()));
        fs
    }

    fn mount_point(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// Bytes written to the device so far (its `stat`, in sectors).
    fn written(&self) -> u64 {
        let name = Path::new(&self.device).file_name().unwrap();
        let stat =
            std::fs::read_to_string(Path::new("/sys/block").join(name).join("stat")).unwrap();
        let sectors: u64 = stat.split_whitespace().nth(6).unwrap().parse().unwrap();
        sectors * 512
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.mount_point()).status();
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
    }
}

#[test]
#[ignore = "needs root (a loop device, mount) and the emulator: scripts/test.sh runs it as root"]
fn after_exit_0_the_restore_is_on_disk() {
    let Some(moto) = moto() else { return };
    if !is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "this test needs root in CI"
        );
        eprintln!("SKIPPED: needs root (a loop device, mount)");
        return;
    }
    let s3 = S3::new(&moto);
    let files = backup(&s3, 200, 32 << 10);
    let fs = LoopFs::new(128 << 20);
    // Whatever mkfs and mount left to write, written before we count.
    sh(Command::new("sync").arg("-f").arg(fs.mount_point()));
    let target = fs.mount_point().join("restored");
    let before = fs.written();
    let r = slurp(&moto, &s3.bucket, &target, &[]).expect_code(0);
    let restored: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    let by_restore = fs.written() - before;
    // Nothing of it is left for a sync to write: no data, no inodes, no
    // directory entries (the kernel would otherwise hold them for 5-30 s).
    sh(Command::new("sync").arg("-f").arg(fs.mount_point()));
    let left = fs.written() - before - by_restore;
    assert!(
        left < 16 << 10,
        "{left} bytes were still to write after exit 0 ({by_restore} written by the restore, \
         {restored} restored)\n{}",
        r.stderr()
    );
    assert!(by_restore >= restored, "{by_restore} < {restored}");
    for (name, body) in &files {
        assert!(&std::fs::read(target.join(name)).unwrap() == body, "{name}");
    }
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn an_index_cannot_make_one_file_land_as_another() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    // A name listed twice, and an entry named like a's temporary (with
    // other bytes): either could otherwise swap a's checked bytes for
    // unchecked ones while a waits to land.
    put_file(&s3, "a-Data.db", b"the real a");
    put_file(&s3, ".a-Data.db.tableslurp", b"not a");
    put(
        &s3,
        "a-Data.db-listdir.json",
        format!(r#"{{"{ORIGIN}": ["a-Data.db", ".a-Data.db.tableslurp", "a-Data.db"]}}"#)
            .as_bytes(),
        &[("snaptastic-index", "1".into())],
    );
    let out = tempfile::tempdir().unwrap();
    let r = slurp(&moto, &s3.bucket, out.path(), &[]).expect_code(0);
    assert_eq!(
        std::fs::read(out.path().join("a-Data.db")).unwrap(),
        b"the real a"
    );
    assert!(
        r.stderr().contains("not restoring .a-Data.db.tableslurp"),
        "{}",
        r.stderr()
    );
    assert_eq!(temporaries(out.path()), Vec::<String>::new());
    assert!(r.stdout().contains("1 restored"), "{}", r.stdout());
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn a_restore_needing_more_descriptors_than_the_soft_limit_raises_it() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    // 300 verified files wait open to land (a batch is 256): more than a
    // soft limit of 100 allows.
    let files = backup(&s3, 300, 100);
    let out = tempfile::tempdir().unwrap();
    let bin = crate::support::snaptastic_bin();
    let mut args = vec![
        "-c",
        "ulimit -Sn 100 && exec \"$0\" \"$@\"",
        bin.to_str().unwrap(),
    ];
    args.extend(slurp_args(&s3.bucket, out.path(), &[]));
    let r = crate::support::Run::program(Path::new("/bin/sh"), &args)
        .env("AWS_ENDPOINT_URL", &moto)
        .env("AWS_REGION", "us-east-1")
        .run()
        .expect_code(0);
    for (name, body) in &files {
        assert!(
            &std::fs::read(out.path().join(name)).unwrap() == body,
            "{name}\n{}",
            r.stderr()
        );
    }
}
