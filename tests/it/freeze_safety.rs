//! The thaw guarantee, driven for real: make-snapshots killed while the
//! filesystems are frozen (SIGKILL, SIGQUIT, SIGSEGV to the main process;
//! SIGTERM to it and its watchdog at once, as systemd stops a unit), with
//! a writer on each filesystem measuring its longest stall. Nothing may
//! stay frozen, and the writers must resume within the deadline + 1 s.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::lab_prerequisites;
use crate::support::Setup;
use crate::support::{mounted_lab, writable_within};

/// A thread appending to a file on `mp` as fast as it can, measuring the
/// longest single write (a frozen filesystem blocks it).
struct Writer {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Duration>>,
}

impl Writer {
    fn start(mp: &Path) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let path = mp.join("writer.log");
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap();
            let mut longest = Duration::ZERO;
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                let t = Instant::now();
                writeln!(f, "line {i}").unwrap();
                longest = longest.max(t.elapsed());
                i += 1;
                if i % 64 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            longest
        });
        Writer {
            stop,
            handle: Some(handle),
        }
    }

    /// Stop and return the longest stall; `None` if the writer is still
    /// blocked after `wait` (the filesystem stayed frozen).
    fn finish(mut self, wait: Duration) -> Option<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        let h = self.handle.take().unwrap();
        let end = Instant::now() + wait;
        while !h.is_finished() {
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(h.join().unwrap())
    }
}

/// The watchdog processes whose parent is `pid`.
fn watchdogs_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) && String::from_utf8_lossy(&cmdline).contains("__thaw-watchdog") {
            out.push(child);
        }
    }
    out
}

fn kill(sig: &str, pid: u32) {
    assert!(Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .unwrap()
        .success());
}

/// Two filesystems (ext4 and xfs), mounted, each with a writer; a
/// make-snapshots run started with `--freeze-timeout DEADLINE` whose
/// CreateSnapshot calls hang in the lab; returns once it is frozen (the
/// calls reached the lab) with its pid and its watchdog's.
struct Frozen {
    s: Setup,
    child: Child,
    writers: Vec<Writer>,
    mps: Vec<PathBuf>,
    watchdog: u32,
}

const DEADLINE: Duration = Duration::from_secs(5);

fn frozen_run(moto: &str) -> Frozen {
    let s = Setup::new(
        moto,
        false,
        None,
        &[("/dev/sdf", "ext4", 1), ("/dev/sdg", "xfs", 1)],
    );
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    let mps = vec![s.mp(0), s.mp(1)];
    let writers = mps.iter().map(|mp| Writer::start(mp)).collect();
    s.lab.control(
        "rules",
        "[[faults]]\naction = \"CreateSnapshot*\"\nreply = \"hang\"\nlatency = \"60s\"\n",
    );
    let child = s
        .lab
        .run(&["make-snapshots", "db", "--freeze-timeout", "5s"])
        .config(&s.cfg)
        .spawn();
    let t = Instant::now();
    while s.snapshot_calls() == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "make-snapshots never called CreateSnapshot"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let watchdog = watchdogs_of(child.id());
    let frozen = mps
        .iter()
        .all(|mp| !writable_within(mp, Duration::from_millis(300)));
    if watchdog.len() != 1 || !frozen {
        let mut child = child;
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "not frozen with one watchdog ({watchdog:?}, frozen {frozen}) after {:?}:\n{}",
            t.elapsed(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Frozen {
        s,
        child,
        writers,
        mps,
        watchdog: watchdog[0],
    }
}

impl Frozen {
    /// After the kill: every writer resumed within the deadline + 1 s of
    /// the freeze, nothing is frozen, the watchdog is gone.
    fn check_thawed(mut self, what: &str, stall_bound: Option<Duration>) {
        let _ = self.child.wait();
        for w in self.writers.drain(..) {
            let stall = w
                .finish(DEADLINE + Duration::from_secs(5))
                .unwrap_or_else(|| panic!("{what}: a writer is still blocked: left frozen"));
            if let Some(bound) = stall_bound {
                assert!(stall < bound, "{what}: a writer stalled {stall:?}");
            }
        }
        for mp in &self.mps {
            assert!(
                writable_within(mp, Duration::from_secs(2)),
                "{what}: {} still frozen",
                mp.display()
            );
        }
        let t = Instant::now();
        while Path::new(&format!("/proc/{}", self.watchdog)).exists()
            && std::fs::read_to_string(format!("/proc/{}/stat", self.watchdog))
                .is_ok_and(|s| !s.contains(") Z "))
        {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "{what}: the watchdog did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(self.s);
    }
}

/// Kill the main process with `signal` while frozen; the filesystems
/// must be writable again within `bound` of the kill.
fn killed_while_frozen(signal: &str, bound: Duration) {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let f = frozen_run(&moto);
    let killed = Instant::now();
    kill(signal, f.child.id());
    let mp = f.mps[0].clone();
    assert!(
        writable_within(&mp, DEADLINE + Duration::from_secs(2)),
        "{signal}: still frozen"
    );
    eprintln!(
        "{signal}: writable again {:?} after the kill",
        killed.elapsed()
    );
    assert!(
        killed.elapsed() < bound,
        "{signal}: thawed only after {:?}",
        killed.elapsed()
    );
    f.check_thawed(signal, Some(DEADLINE + Duration::from_secs(1)));
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn sigkill_while_frozen_leaves_nothing_frozen() {
    // The watchdog thaws on EOF, long before the deadline.
    killed_while_frozen("KILL", Duration::from_secs(1));
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn sigquit_while_frozen_leaves_nothing_frozen() {
    killed_while_frozen("QUIT", Duration::from_secs(1));
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn sigsegv_while_frozen_leaves_nothing_frozen() {
    // A SIGSEGV sent with kill(2) is absorbed once by Rust's stack
    // overflow handler (it is not a fault), so the run goes on and its
    // own deadline thaws: within the deadline + 1 s either way.
    killed_while_frozen("SEGV", DEADLINE + Duration::from_secs(1));
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn sigterm_to_both_processes_thaws_at_once() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let f = frozen_run(&moto);
    let t = Instant::now();
    kill("TERM", f.watchdog);
    kill("TERM", f.child.id());
    assert!(writable_within(&f.mps[1], DEADLINE), "still frozen");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "thawed only after {:?}",
        t.elapsed()
    );
    f.check_thawed("TERM to both", Some(DEADLINE + Duration::from_secs(1)));
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn sigkill_of_main_and_watchdog_is_the_documented_limit_and_thaw_recovers() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let mut f = frozen_run(&moto);
    // Both killed at once with SIGKILL: nothing can thaw (the README says
    // so); the next run names the way out and `snaptastic thaw` takes it.
    kill("KILL", f.watchdog);
    kill("KILL", f.child.id());
    let _ = f.child.wait();
    assert!(!writable_within(&f.mps[0], Duration::from_millis(500)));
    f.s.lab.control("rules", "");
    let d = f.s.snaptastic(&["make-snapshots", "db"]).expect_code(1);
    assert!(
        d.stderr().contains("snaptastic thaw db") && d.stderr().contains("fsfreeze -u"),
        "{}",
        d.stderr()
    );
    let t = f.s.snaptastic(&["thaw", "db"]).expect_code(0);
    assert_eq!(t.stdout().matches("thawed").count(), 2, "{}", t.stdout());
    let again = f.s.snaptastic(&["thaw", "db"]).expect_code(0);
    assert_eq!(
        again.stdout().matches("not frozen").count(),
        2,
        "{}",
        again.stdout()
    );
    f.check_thawed("thaw after KILL of both", None);
}

/// The tags of every snapshot of the setup's first mount point, by id.
fn snapshots_with_tags(
    s: &Setup,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
    s.lab
        .ec2()
        .snapshots_where("tag:mount_point", &s.mp(0).display().to_string())
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_snapshot_ec2_accepts_after_the_deadline_is_tagged_crash() {
    let Some(s) = mounted_lab(&[("/dev/sdf", "xfs", 1)]) else {
        return;
    };
    // EC2 carries the call out, but its reply comes after our deadline.
    s.lab.control(
        "rules",
        "[[faults]]\naction = \"CreateSnapshot*\"\nreply = \"late\"\nlatency = \"2s\"\n",
    );
    let d = s
        .snaptastic(&["make-snapshots", "db", "--freeze-timeout", "500ms"])
        .expect_code(1);
    assert!(
        d.stderr().contains("did not return within 500ms")
            && d.stderr().contains("tagged consistency=crash: snap-"),
        "{}",
        d.stderr()
    );
    let snaps = snapshots_with_tags(&s);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    for (id, tags) in &snaps {
        assert_eq!(
            tags.get("consistency").map(String::as_str),
            Some("crash"),
            "{id}: {tags:?}"
        );
    }
    assert!(writable_within(&s.mp(0), Duration::from_secs(2)));
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_throttled_reply_inside_the_window_is_retried_there() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    // Both ways of starting snapshots: one set, one call per volume.
    for (mode, call) in [
        (None, "CreateSnapshots"),
        (Some("--per-volume"), "CreateSnapshot"),
    ] {
        let s = Setup::new(&moto, false, None, &[("/dev/sdf", "ext4", 1)]);
        s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
        s.lab.control(
            "rules",
            "[[faults]]\naction = \"CreateSnapshot*\"\ncalls = [1]\nreply = \"throttle\"\n",
        );
        let mut args = vec!["make-snapshots", "db"];
        args.extend(mode);
        let d = s.snaptastic(&args).expect_code(0);
        assert_eq!(s.calls(call), 2, "{mode:?}: one retry: {}", d.stderr());
        let snaps = snapshots_with_tags(&s);
        assert_eq!(snaps.len(), 1, "{mode:?}: {snaps:?}");
        let tags = snaps.values().next().unwrap();
        assert_eq!(tags["consistency"], "frozen", "{mode:?}: {tags:?}");
        // The window (benchmarked in scripts/bench.sh) is printed per volume.
        assert!(
            d.stdout().contains("frozen ") && d.stdout().contains(" ms)"),
            "{}",
            d.stdout()
        );
    }
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_thaw_from_outside_during_the_window_is_not_called_frozen() {
    let Some(s) = mounted_lab(&[("/dev/sdf", "ext4", 1)]) else {
        return;
    };
    // A window stretched to 1.5 s by a slow CreateSnapshots.
    s.lab.control(
        "rules",
        "[[faults]]\naction = \"CreateSnapshot*\"\nreply = \"latency\"\nlatency = \"1500ms\"\n",
    );
    let run = s
        .lab
        .run(&["make-snapshots", "db", "--freeze-timeout", "10s"])
        .config(&s.cfg)
        .spawn();
    // Someone runs `fsfreeze -u` on it while it is frozen.
    let mp = s.mp(0);
    let t = Instant::now();
    let mut thawed = false;
    while !thawed && t.elapsed() < Duration::from_secs(10) {
        thawed = std::process::Command::new("fsfreeze")
            .arg("-u")
            .arg(&mp)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = run.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(thawed, "never saw the filesystem frozen: {err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("was no longer frozen when this run thawed it"),
        "{err}"
    );
    let snaps = snapshots_with_tags(&s);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    for (id, tags) in &snaps {
        assert_eq!(tags["consistency"], "crash", "{id}: {tags:?}");
    }
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn two_runs_at_once_never_overlap_their_freeze_windows() {
    let Some(s) = mounted_lab(&[("/dev/sdf", "ext4", 1)]) else {
        return;
    };
    // Each window takes over a second (a slow CreateSnapshots).
    s.lab.control(
        "rules",
        "[[faults]]\naction = \"CreateSnapshot*\"\nreply = \"latency\"\nlatency = \"1200ms\"\n",
    );
    let start = || {
        s.lab
            .run(&["make-snapshots", "db", "--freeze-timeout", "10s"])
            .config(&s.cfg)
            .spawn()
    };
    let first = start();
    std::thread::sleep(Duration::from_millis(400));
    let second = start();
    let (a, b) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    let (ea, eb) = (
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr),
    );
    assert_eq!(
        (a.status.code(), b.status.code()),
        (Some(0), Some(0)),
        "{ea}\n{eb}"
    );
    assert!(
        eb.contains("another make-snapshots is in its freeze window on this host"),
        "{eb}"
    );
    // Neither thawed the other: both sets are frozen ones.
    let snaps = snapshots_with_tags(&s);
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    for (id, tags) in &snaps {
        assert_eq!(tags["consistency"], "frozen", "{id}: {tags:?}");
    }
}
