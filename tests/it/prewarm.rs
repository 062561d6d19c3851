//! `snaptastic prewarm` through the real binary, on loop devices: a stop
//! by SIGTERM and a resume read every block exactly once in all, counted
//! by the kernel (the loop device's read-sector counter: direct reads go
//! around the page cache, so each one reaches the device); a finished
//! checkpoint reads nothing; a checkpoint of another size starts over; a
//! detached warm-up runs alone and stops like the foreground one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{is_root, run_within, Run};

const VOL: &str = "vol-0123456789abcdef0";
const MIB: u64 = 1 << 20;

/// A loop device over a sparse file of `size` bytes with data in a few
/// places, detached when dropped.
struct Loop {
    dev: PathBuf,
    _dir: tempfile::TempDir,
}

impl Loop {
    fn new(size: u64) -> Loop {
        use std::io::{Seek, SeekFrom, Write};
        let dir = tempfile::Builder::new()
            .prefix("snaptastic-prewarm-")
            .tempdir()
            .unwrap();
        let img = dir.path().join("img");
        let mut f = std::fs::File::create(&img).unwrap();
        f.set_len(size).unwrap();
        for at in [0, size / 3, size - MIB] {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&vec![0xa5; MIB as usize]).unwrap();
        }
        f.sync_all().unwrap();
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&img)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dev = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let l = Loop { dev, _dir: dir };
        l.settle();
        l
    }

    /// Sectors read from the device so far (/sys/block/loopN/stat, field 3).
    fn sectors_read(&self) -> u64 {
        let name = self.dev.file_name().unwrap().to_string_lossy();
        let stat = std::fs::read_to_string(format!("/sys/block/{name}/stat")).unwrap();
        stat.split_whitespace().nth(2).unwrap().parse().unwrap()
    }

    /// Wait until nothing else reads the new device (udev's probe, where
    /// udev runs) for a moment, so a delta counts our reads only.
    fn settle(&self) {
        let mut last = self.sectors_read();
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = self.sectors_read();
            if now == last || Instant::now() > end {
                return;
            }
            last = now;
        }
    }

    fn path(&self) -> &str {
        self.dev.to_str().unwrap()
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// Root for loop devices, or `None` after saying why (in CI: a failure).
fn root() -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the prewarm tests need root in CI"
    );
    eprintln!("SKIPPED: loop devices need root");
    false
}

/// A run of `prewarm` with its own state directory.
fn prewarm(state: &Path, args: &[&str]) -> Run {
    let mut all = vec!["prewarm"];
    all.extend(args);
    Run::new(&all).env("SNAPTASTIC_STATE_DIR", state)
}

fn checkpoint(state: &Path, vol: &str) -> serde_json::Value {
    let p = state.join("prewarm").join(format!("{vol}.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

/// Wait until `path` contains `text` (a log being written).
fn wait_for_text(path: &Path, text: &str, bound: Duration) -> String {
    let end = Instant::now() + bound;
    loop {
        let said = std::fs::read_to_string(path).unwrap_or_default();
        if said.contains(text) || Instant::now() > end {
            return said;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm(pid: u32) {
    // SAFETY: kill(2) with a pid and a signal number touches no memory.
    let r = unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    assert_eq!(r, 0, "kill {pid}: {}", std::io::Error::last_os_error());
}

#[test]
fn a_warm_up_stopped_by_sigterm_and_resumed_reads_every_block_exactly_once() {
    if !root() {
        return;
    }
    let size = 256 * MIB;
    let dev = Loop::new(size);
    let state = tempfile::tempdir().unwrap();
    let log = state.path().join("first.log");

    // At 32 MiB/s the whole device takes 8 s: stop it after a second or so.
    let before = dev.sectors_read();
    let child = prewarm(
        state.path(),
        &[dev.path(), "--volume-id", VOL, "--max-rate", "32"],
    )
    .spawn_logging_to(&log);
    let said = wait_for_text(&log, "requests of", Duration::from_secs(30));
    assert!(said.contains("warming"), "{said}");
    std::thread::sleep(Duration::from_millis(1200));
    sigterm(child.id());
    let out = child.wait_with_output().unwrap();
    let first = dev.sectors_read() - before;
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap();
    assert!(
        last.contains("stopped at")
            && last.contains("of 256.0 MiB")
            && last.contains("resumes from there"),
        "{last}"
    );
    let c = checkpoint(state.path(), VOL);
    let done = c["done_bytes"].as_u64().unwrap();
    assert_eq!(c["size_bytes"], size);
    assert_eq!(c["finished"], false);
    assert_eq!(c["device"], dev.path());
    assert!(done > 0 && done < size && done % MIB == 0, "{c}");
    assert_eq!(
        first * 512,
        done,
        "the first run read exactly what its checkpoint says ({c})"
    );

    // The status while stopped.
    let st = prewarm(state.path(), &["--volume-id", VOL, "--status"])
        .run()
        .expect_code(0);
    let st: serde_json::Value = serde_json::from_str(st.stdout().trim()).unwrap();
    assert_eq!(st["done_bytes"], done);
    assert_eq!(st["running"], false);

    // The rest, at full speed.
    let before = dev.sectors_read();
    let done2 = run_within(
        prewarm(state.path(), &[dev.path(), "--volume-id", VOL]),
        Duration::from_secs(120),
    );
    let second = dev.sectors_read() - before;
    assert_eq!(done2.code, 0, "{}", done2.text());
    assert!(done2.stderr.contains("resuming"), "{}", done2.stderr);
    assert_eq!(second * 512, size - done, "the resume read only the rest");
    assert_eq!((first + second) * 512, size, "every block once in all");
    let c = checkpoint(state.path(), VOL);
    assert_eq!(c["finished"], true);
    assert_eq!(c["done_bytes"], size);

    // Finished: nothing is read again.
    let before = dev.sectors_read();
    let again = run_within(
        prewarm(state.path(), &[dev.path(), "--volume-id", VOL]),
        Duration::from_secs(60),
    );
    assert_eq!(again.code, 0, "{}", again.text());
    assert!(again.stderr.contains("already warmed"), "{}", again.stderr);
    assert_eq!(
        dev.sectors_read() - before,
        0,
        "an already warmed volume was read"
    );
}

#[test]
fn a_checkpoint_of_another_size_starts_over() {
    if !root() {
        return;
    }
    let size = 32 * MIB;
    let dev = Loop::new(size);
    let state = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(state.path().join("prewarm")).unwrap();
    let old = serde_json::json!({
        "version": 1, "volume_id": VOL, "device": "/dev/nvme9n1",
        "size_bytes": 2 * size, "done_bytes": size, "finished": false,
        "started": "2026-11-01T00:00:00Z", "updated": "2026-11-01T00:10:00Z",
    });
    std::fs::write(
        state.path().join("prewarm").join(format!("{VOL}.json")),
        old.to_string(),
    )
    .unwrap();
    let before = dev.sectors_read();
    let out = run_within(
        prewarm(state.path(), &[dev.path(), "--volume-id", VOL]),
        Duration::from_secs(60),
    );
    assert_eq!(out.code, 0, "{}", out.text());
    assert!(
        out.stderr
            .contains("its checkpoint says 64.0 MiB: starting"),
        "{}",
        out.stderr
    );
    assert_eq!(
        (dev.sectors_read() - before) * 512,
        size,
        "read from byte 0"
    );
    let c = checkpoint(state.path(), VOL);
    assert_eq!(c["size_bytes"], size);
    assert_eq!(c["finished"], true);
    assert_eq!(c["device"], dev.path());
}

#[test]
fn a_volume_id_that_is_not_one_is_refused_before_anything_is_opened() {
    let state = tempfile::tempdir().unwrap();
    for bad in [
        "../../etc/passwd",
        "vol-XYZ",
        "vol-0123456789abcdef0.json",
        "snap-0123abcd",
    ] {
        let out = prewarm(state.path(), &["/dev/null", "--volume-id", bad])
            .run()
            .expect_code(1);
        let errors = out.error_lines();
        assert_eq!(errors.len(), 1, "{}", out.stderr());
        assert!(
            errors[0].contains(&format!("{bad:?} is not an EBS volume id")),
            "{}",
            errors[0]
        );
    }
    assert_eq!(
        std::fs::read_dir(state.path()).unwrap().count(),
        0,
        "nothing was made in the state directory"
    );
}

#[test]
fn a_file_that_is_not_a_block_device_is_refused_with_its_name() {
    let state = tempfile::tempdir().unwrap();
    let out = prewarm(state.path(), &["/dev/null", "--volume-id", VOL])
        .run()
        .expect_code(1);
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "{}", out.stderr());
    assert!(
        errors[0].contains("/dev/null") && errors[0].contains("not a block device"),
        "{}",
        errors[0]
    );
}

/// Whether `pid` has ended (gone, or a zombie no one reaped yet).
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn a_detached_warm_up_runs_alone_and_stops_cleanly() {
    if !root() {
        return;
    }
    if Path::new("/run/systemd/system").is_dir() {
        // It would start a transient unit of the host's systemd.
        eprintln!("SKIPPED: PID 1 is systemd here; the detached child is tested without it");
        return;
    }
    let size = 128 * MIB;
    let dev = Loop::new(size);
    let state = tempfile::tempdir().unwrap();
    let out = prewarm(
        state.path(),
        &[
            dev.path(),
            "--volume-id",
            VOL,
            "--max-rate",
            "16",
            "--detach",
        ],
    )
    .run()
    .expect_code(0);
    let said = out.stdout();
    let (pid, log) = said
        .trim()
        .strip_prefix("pid ")
        .and_then(|r| r.split_once(", log "))
        .unwrap_or_else(|| panic!("{said}"));
    let pid: u32 = pid.parse().unwrap();
    let log = PathBuf::from(log);
    assert_eq!(log, state.path().join("prewarm").join(format!("{VOL}.log")));
    let started = wait_for_text(&log, "requests of", Duration::from_secs(30));
    assert!(started.contains("warming"), "{started}");

    // A second one, in the foreground or detached, does not start.
    let second = run_within(
        prewarm(state.path(), &[dev.path(), "--volume-id", VOL]),
        Duration::from_secs(30),
    );
    assert_eq!(second.code, 1, "{}", second.text());
    assert!(
        second.last_line().contains("already running"),
        "{}",
        second.stderr
    );
    let again = prewarm(state.path(), &[dev.path(), "--volume-id", VOL, "--detach"])
        .run()
        .expect_code(0);
    assert!(
        again.stdout().starts_with("already running"),
        "{}",
        again.stdout()
    );
    let st = prewarm(state.path(), &["--volume-id", VOL, "--status"])
        .run()
        .expect_code(0);
    let st: serde_json::Value = serde_json::from_str(st.stdout().trim()).unwrap();
    assert_eq!(st["running"], true, "{st}");

    sigterm(pid);
    let end = Instant::now() + Duration::from_secs(30);
    while !ended(pid) {
        assert!(Instant::now() < end, "the detached warm-up did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("stopped at"), "{text}");
    let c = checkpoint(state.path(), VOL);
    let done = c["done_bytes"].as_u64().unwrap();
    assert!(done > 0 && done < size, "{c}");
    assert_eq!(c["finished"], false);
}
