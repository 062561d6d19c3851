//! The attacks of a local user who owns a watched or restored directory,
//! or of anyone who can write the bucket, run against the binary: links
//! planted before the run and swapped in a loop during it, hostile names
//! and modes in objects, setuid files backed up, a link inside a restored
//! parent volume. Each asserts the victim's bytes, mode and owner are
//! unchanged and that the run says what it refused.
//!
//! `SNAPTASTIC_TEST_BIN` runs them against another build of the binary
//! (CI runs them again against the release binary it packages).

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::slurp_safety::{slurp, ORIGIN};
use crate::support::{is_root, lab_prerequisites, md5_hex, moto, Lab, LabOpts, Run, S3};
use crate::tablesnap::Daemon;

/// A file outside every tree the tool is given, and what it must stay.
struct Victim {
    dir: PathBuf,
    file: PathBuf,
    before: (Vec<u8>, u32, u32, u32),
}

impl Victim {
    fn new(root: &Path) -> Victim {
        let dir = root.join("outside");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("shadow");
        std::fs::write(&file, b"root:secret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let before = Self::look(&file);
        Victim { dir, file, before }
    }

    fn look(file: &Path) -> (Vec<u8>, u32, u32, u32) {
        let m = std::fs::symlink_metadata(file).unwrap();
        (std::fs::read(file).unwrap(), m.mode(), m.uid(), m.gid())
    }

    /// Bytes, mode and owner as before, and nothing new beside it.
    fn unchanged(&self) {
        assert_eq!(Self::look(&self.file), self.before, "the victim changed");
        let entries: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, ["shadow"], "files appeared beside the victim");
    }
}

fn put_data(s3: &S3, dir: &str, name: &str, body: &[u8], mode: u32, uid: u32) {
    let stat = format!(r#"{{"uid": {uid}, "gid": {uid}, "mode": {mode}}}"#);
    s3.put(
        &format!("host1:{dir}/{name}"),
        body,
        &[("md5sum", md5_hex(body)), ("stat", stat)],
    );
}

fn put_index(s3: &S3, dir: &str, names: &[&str]) {
    let body = serde_json::json!({ dir: names }).to_string();
    s3.put(
        &format!("host1:{dir}/{}-listdir.json", names.last().unwrap_or(&"x")),
        body.as_bytes(),
        &[("snaptastic-index", "1".into())],
    );
}

fn is_regular(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file())
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn tableslurp_never_writes_through_a_planted_link() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    put_data(&s3, ORIGIN, "a-Data.db", b"aaaa", 0o100644, 0);
    put_data(&s3, ORIGIN, "b-Data.db", b"bbbb", 0o100644, 0);
    put_index(&s3, ORIGIN, &["a-Data.db", "b-Data.db"]);
    let sub = format!("{ORIGIN}/sub");
    put_data(&s3, &sub, "c-Data.db", b"cccc", 0o100644, 0);
    put_index(&s3, &sub, &["c-Data.db"]);

    let tmp = tempfile::tempdir().unwrap();
    let victim = Victim::new(tmp.path());
    let target = tmp.path().join("target");
    std::fs::create_dir(&target).unwrap();
    // The temporary name, the final name and a subdirectory: each a link.
    symlink(&victim.file, target.join(".a-Data.db.tableslurp")).unwrap();
    symlink(&victim.file, target.join("b-Data.db")).unwrap();
    symlink(&victim.dir, target.join("sub")).unwrap();

    let r = slurp(&moto, &s3.bucket, &target, &["-r"]);
    victim.unchanged();
    assert_eq!(std::fs::read(target.join("a-Data.db")).unwrap(), b"aaaa");
    // The link in the way was replaced, not written through.
    assert!(is_regular(&target.join("b-Data.db")));
    assert_eq!(std::fs::read(target.join("b-Data.db")).unwrap(), b"bbbb");
    assert!(!target.join(".a-Data.db.tableslurp").exists());
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert!(
        r.stderr().contains(&format!(
            "refusing to restore into {}: a symbolic link is on its path",
            target.join("sub").display()
        )),
        "{}",
        r.stderr()
    );
    assert!(
        r.stderr().contains("a symbolic link was in the way"),
        "{}",
        r.stderr()
    );
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn tableslurp_against_links_swapped_in_a_loop_never_reaches_the_victim() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let names: Vec<String> = (0..40).map(|i| format!("f{i}-Data.db")).collect();
    for n in &names {
        put_data(&s3, ORIGIN, n, n.as_bytes(), 0o100644, 0);
    }
    put_index(
        &s3,
        ORIGIN,
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let tmp = tempfile::tempdir().unwrap();
    let victim = Victim::new(tmp.path());
    let target = tmp.path().join("target");
    std::fs::create_dir(&target).unwrap();

    // The attacker: plant a link under every temporary and final name,
    // again and again, while the restores run.
    let stop = Arc::new(AtomicBool::new(false));
    let attacker = {
        let (stop, target, names, file) = (
            stop.clone(),
            target.clone(),
            names.clone(),
            victim.file.clone(),
        );
        std::thread::spawn(move || {
            let mut planted = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for n in &names {
                    for p in [target.join(format!(".{n}.tableslurp")), target.join(n)] {
                        if symlink(&file, &p).is_ok() {
                            planted += 1;
                        }
                    }
                }
            }
            planted
        })
    };
    for round in 0..3 {
        let r = slurp(&moto, &s3.bucket, &target, &["--force", "-t", "8"]);
        victim.unchanged();
        // Whatever the race did, no restored name is a link to the victim
        // that the restore wrote through, and failures name their file.
        for line in r.stdout().lines().filter(|l| l.starts_with("FAILED")) {
            assert!(line.contains("-Data.db"), "round {round}: {line}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let planted = attacker.join().unwrap();
    assert!(planted > 0, "the attacker never planted a link");
    victim.unchanged();
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn names_from_the_bucket_never_leave_the_target() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    put_data(&s3, ORIGIN, "ok-Data.db", b"ok", 0o100644, 0);
    // An index naming paths outside, and a key prefix `..` for -r.
    let body = serde_json::json!({ ORIGIN: ["../escape", "a/b", "", "..", ".", "ok-Data.db"] });
    s3.put(
        &format!("host1:{ORIGIN}/ok-Data.db-listdir.json"),
        body.to_string().as_bytes(),
        &[("snaptastic-index", "1".into())],
    );
    put_data(
        &s3,
        &format!("{ORIGIN}/.."),
        "up-Data.db",
        b"up",
        0o100644,
        0,
    );
    put_index(&s3, &format!("{ORIGIN}/.."), &["up-Data.db"]);
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("a/target");
    let r = slurp(&moto, &s3.bucket, &target, &["-r"]);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert_eq!(std::fs::read(target.join("ok-Data.db")).unwrap(), b"ok");
    let mut found = Vec::new();
    for e in walk(tmp.path()) {
        found.push(e.strip_prefix(tmp.path()).unwrap().display().to_string());
    }
    found.sort();
    assert_eq!(
        found,
        ["a", "a/target", "a/target/ok-Data.db"],
        "{}",
        r.stderr()
    );
    let out = format!("{}{}", r.stdout(), r.stderr());
    for refused in [
        "'../escape' holds a '/'",
        "'a/b' holds a '/'",
        "an empty name",
    ] {
        assert!(out.contains(refused), "{refused}: {out}");
    }
    assert!(out.contains("refusing the key prefix"), "{out}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push(p.clone());
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

#[test]
#[ignore = "needs root (chown to another user): scripts/test.sh runs it as root"]
fn a_setuid_file_backed_up_comes_back_without_its_bits_unless_asked() {
    let Some(moto) = moto() else { return };
    assert!(is_root(), "run as root (scripts/test.sh does in CI)");
    let s3 = S3::new(&moto);
    // A user's own file, chmod 4755 before the backup.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s-Data.db");
    std::fs::write(&f, b"#!/bin/sh\nid\n").unwrap();
    std::os::unix::fs::chown(&f, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start_in(&moto, &s3.bucket, dir.path(), Some(state.path()), &["-B"]);
    let key = format!("host1:{}", f.display());
    s3.wait_md5sum(&key);
    daemon.stop();
    // And one crafted in the bucket: setuid and setgid root.
    let other = dir.path().to_str().unwrap();
    put_data(&s3, other, "x-Data.db", b"crafted", 0o106755, 0);
    put_index(&s3, other, &["s-Data.db", "x-Data.db"]);

    let restore = |extra: &[&str]| {
        let t = tempfile::tempdir().unwrap();
        let mut args = vec!["tableslurp", &s3.bucket, other, t.path().to_str().unwrap()];
        args.extend_from_slice(&["-n", "host1"]);
        args.extend_from_slice(extra);
        let r = Run::new(&args)
            .env("AWS_ENDPOINT_URL", &moto)
            .env("AWS_REGION", "us-east-1")
            .run();
        (t, r)
    };
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
    let uid = |p: &Path| std::fs::metadata(p).unwrap().uid();

    let (t, r) = restore(&[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    for name in ["s-Data.db", "x-Data.db"] {
        let p = t.path().join(name);
        assert_eq!(mode(&p), 0o755, "{name}");
        assert_eq!(uid(&p), 0, "{name}");
        assert!(
            r.stderr().contains(&format!(
                "{}: restored without its setuid/setgid/sticky bits",
                p.display()
            )),
            "{}",
            r.stderr()
        );
    }
    // -p alone restores the owner, not the bits.
    let (t, r) = restore(&["-p"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(mode(&t.path().join("s-Data.db")), 0o755);
    assert_eq!(uid(&t.path().join("s-Data.db")), 65534);
    // Asked for, with the owner: the bits come back on the user's file.
    let (t, r) = restore(&["-p", "--keep-special-bits"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(mode(&t.path().join("s-Data.db")), 0o4755);
    assert_eq!(uid(&t.path().join("s-Data.db")), 65534);
    // Never onto root, even asked: the crafted object says uid 0.
    assert_eq!(mode(&t.path().join("x-Data.db")), 0o755);
    assert_eq!(uid(&t.path().join("x-Data.db")), 0);
    let (t, _) = restore(&["-p", "--keep-special-bits", "-o", "root", "-g", "root"]);
    assert_eq!(mode(&t.path().join("s-Data.db")), 0o755);
    // The flag alone is refused.
    let (_, r) = restore(&["--keep-special-bits"]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
}

#[test]
#[ignore = "needs root and the lab: scripts/test.sh runs it as root"]
fn a_restore_in_progress_is_readable_by_root_only() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s3 = S3::new(&moto);
    put_data(&s3, ORIGIN, "a-Data.db", b"private", 0o100644, 0);
    put_index(&s3, ORIGIN, &["a-Data.db"]);
    // The GETs after the index's hang (four stalls, then one succeeds):
    // the temporary file exists, empty, meanwhile.
    let lab = Lab::start(
        &moto,
        LabOpts {
            rules: Some(
                "[[faults]]\naction = \"GetObject\"\ncalls = [2, 3, 4, 5]\nreply = \"hang\"\nlatency = \"60s\"\n"
                    .into(),
            ),
            ..LabOpts::default()
        },
    );
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("target");
    let child = Run::new(&[
        "tableslurp",
        &s3.bucket,
        ORIGIN,
        target.to_str().unwrap(),
        "-n",
        "host1",
        "--stall-timeout",
        "3s",
    ])
    .env("AWS_ENDPOINT_URL", lab.var("AWS_ENDPOINT_URL"))
    .env("AWS_REGION", "us-east-1")
    .spawn();
    let tmp_file = target.join(".a-Data.db.tableslurp");
    let t = Instant::now();
    let mode = loop {
        if let Ok(m) = std::fs::symlink_metadata(&tmp_file) {
            break m.mode() & 0o7777;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "no temporary file");
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    assert_eq!(mode, 0o600, "{}", String::from_utf8_lossy(&out.stderr));
    // The GET after the stalls succeeds: the file gets its mode only now.
    assert_eq!(out.status.code(), Some(0));
    let done = target.join("a-Data.db");
    assert_eq!(std::fs::read(&done).unwrap(), b"private");
    assert_eq!(std::fs::metadata(&done).unwrap().mode() & 0o7777, 0o644);
    assert!(!tmp_file.exists(), "the temporary file was left");
}

/// A daemon with `-r -a -B` on `dir` whose stderr is returned at the end.
fn watch_under_attack(moto: &str, s3: &S3, dir: &Path, attack: impl FnOnce()) -> String {
    let state = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start_in(
        moto,
        &s3.bucket,
        dir,
        Some(state.path()),
        &["-r", "-a", "-B"],
    );
    attack();
    // A real file after the attack: once it is in, everything before
    // it has been seen.
    std::fs::write(dir.join("last-Data.db"), b"last").unwrap();
    let k = format!("host1:{}/last-Data.db", dir.display());
    s3.wait_keys("the last file", |keys| keys.contains(&k));
    std::thread::sleep(Duration::from_millis(500));
    daemon.stop().1
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn tablesnap_never_follows_a_link_planted_or_swapped_in() {
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let tmp = tempfile::tempdir().unwrap();
    let victim = Victim::new(tmp.path());
    let dir = tmp.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("real-Data.db"), b"real").unwrap();
    // Before the start: a file link and a directory link.
    symlink(&victim.file, dir.join("shadow-Data.db")).unwrap();
    symlink(&victim.dir, dir.join("etc")).unwrap();
    let stderr = watch_under_attack(&moto, &s3, &dir, || {
        // During the run: a directory swapped for a link right after its
        // create event, in a loop, and a file written through the link.
        let t = Instant::now();
        let d = dir.join("d");
        while t.elapsed() < Duration::from_secs(3) {
            let _ = std::fs::create_dir(&d);
            let _ = std::fs::remove_dir(&d);
            let _ = symlink(&victim.dir, &d);
            std::thread::sleep(Duration::from_millis(5));
            let _ = std::fs::remove_file(&d);
        }
        symlink(&victim.dir, &d).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        // Had the link been watched, this would be uploaded.
        std::fs::write(victim.dir.join("new-Data.db"), b"through the link").unwrap();
        std::thread::sleep(Duration::from_millis(500));
        std::fs::remove_file(victim.dir.join("new-Data.db")).unwrap();
    });
    victim.unchanged();
    let keys = s3.keys();
    let real = format!("host1:{}/real-Data.db", dir.display());
    assert!(keys.contains(&real), "{keys:#?}\n{stderr}");
    for k in &keys {
        assert!(
            !k.contains("shadow") && !k.contains("new-Data.db") && !k.contains("/etc/"),
            "uploaded through a link: {k}\n{stderr}"
        );
        if !k.ends_with("-listdir.json") {
            assert_ne!(s3.get(k), victim.before.0, "{k} holds the victim's bytes");
        }
    }
    assert!(
        stderr.contains(&format!(
            "refusing to upload {}: a symbolic link is on its path",
            dir.join("shadow-Data.db").display()
        )) || stderr.contains("links are never followed"),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn tablesnap_refuses_a_name_that_is_not_utf8_instead_of_merging_it() {
    use std::os::unix::ffi::OsStrExt;
    let Some(moto) = moto() else { return };
    let s3 = S3::new(&moto);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    // Two names a lossy conversion makes one key: \xe9 and \xe8.
    for b in [0xe9u8, 0xe8] {
        let mut name = b"caf".to_vec();
        name.push(b);
        name.extend_from_slice(b"-Data.db");
        std::fs::write(dir.join(std::ffi::OsStr::from_bytes(&name)), [b]).unwrap();
    }
    let stderr = watch_under_attack(&moto, &s3, &dir, || {});
    let keys = s3.keys();
    assert!(keys.iter().all(|k| !k.contains("caf")), "{keys:#?}");
    assert!(stderr.contains("its name is not UTF-8"), "{stderr}");
    assert_eq!(
        stderr.matches("its name is not UTF-8").count(),
        2,
        "{stderr}"
    );
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_link_inside_a_restored_parent_volume_never_chooses_a_mount_point() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = crate::support::Setup::new(&moto, false, None, &[("/dev/sdf", "ext4", 1)]);
    let text = std::fs::read_to_string(&s.cfg)
        .unwrap()
        .replace("mnt/v0", "mnt/pg");
    std::fs::write(&s.cfg, &text).unwrap();
    let pg = s.lab.dir.join("mnt/pg");
    let victim = Victim::new(&s.lab.dir);
    // The parent's data holds a link where the child's mount point will be.
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    symlink(&victim.dir, pg.join("wal")).unwrap();
    s.snaptastic(&["make-snapshots", "db"]).expect_code(0);
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
    // Now the profile has a child below the parent.
    let child = format!(
        "[[profiles.db.volumes]]\ndevice = \"/dev/sdg\"\nmount_point = \"{}\"\nfile_system = \"ext4\"\nsize = 1\n",
        pg.join("wal").display()
    );
    std::fs::write(&s.cfg, format!("{text}{child}")).unwrap();
    let r = s.snaptastic(&["mount-snapshots", "db"]);
    let dev = |p: &Path| std::fs::metadata(p).unwrap().dev();
    assert_eq!(
        dev(&victim.dir),
        dev(&s.lab.dir),
        "a volume was mounted over the victim"
    );
    victim.unchanged();
    assert_ne!(r.code(), 0, "{}", r.stderr());
    assert!(
        r.stderr().contains(&format!(
            "refusing to mount on {}: a symbolic link is on its path",
            pg.join("wal").display()
        )),
        "{}",
        r.stderr()
    );
    // The parent came back with its data; the link is still only a link.
    assert!(std::fs::symlink_metadata(pg.join("wal"))
        .unwrap()
        .file_type()
        .is_symlink());
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"]);
}

#[test]
#[ignore = "needs root (a directory another user owns): scripts/test.sh runs it as root"]
fn a_named_directory_its_parents_owner_swapped_for_a_link_is_refused() {
    let Some(moto) = moto() else { return };
    assert!(is_root(), "run as root (scripts/test.sh does in CI)");
    let s3 = S3::new(&moto);
    let tmp = tempfile::tempdir().unwrap();
    let victim = Victim::new(tmp.path());
    // /var/lib/cassandra is cassandra's: `mv data x; ln -s / data`.
    let home = tmp.path().join("cassandra");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    symlink(&victim.dir, home.join("data")).unwrap();
    let data = home.join("data");

    let out = Run::new(&[
        "tablesnap",
        &s3.bucket,
        data.to_str().unwrap(),
        "-n",
        "host1",
        "-B",
    ])
    .env("AWS_ENDPOINT_URL", &moto)
    .env("AWS_REGION", "us-east-1")
    .run();
    assert_eq!(out.code(), 1, "{}", out.stderr());
    assert!(
        out.stderr()
            .contains("data is a symbolic link in a directory that uid 65534 owns"),
        "{}",
        out.stderr()
    );
    assert!(s3.keys().is_empty(), "{:?}", s3.keys());

    put_data(&s3, ORIGIN, "a-Data.db", b"aaaa", 0o100644, 0);
    put_index(&s3, ORIGIN, &["a-Data.db"]);
    let r = slurp(&moto, &s3.bucket, &data.join("tbl"), &[]);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert!(
        r.stderr().contains("TARGET") && r.stderr().contains("uid 65534 owns"),
        "{}",
        r.stderr()
    );
    victim.unchanged();
}
