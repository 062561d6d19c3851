//! Signals around the frozen window, for real: a SIGTERM while the
//! pre-freeze sync is held up by a slow device stops the run before any
//! freeze; after the window ends early with an error, SIGTERM has its
//! default action again (it stops a run waiting in its cleanup hook).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::foreign_freeze::{run, their_freeze, ImagesFs, ThawOnDrop};
use crate::support::Setup;
use crate::support::{lab_prerequisites, LabOpts};

fn term(pid: u32) {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
}

/// Children of `pid` running `comm`.
fn children_named(pid: u32, comm: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            // pid (comm) state ppid ...
            let Some((name, rest)) = stat.split_once(") ") else {
                return false;
            };
            name.ends_with(&format!("({comm}"))
                && rest.split(' ').nth(1) == Some(pid.to_string().as_str())
        })
        .collect()
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn sigterm_during_the_pre_freeze_sync_stops_the_run_before_any_freeze() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let images = ImagesFs::new();
    let opts = LabOpts {
        dir: Some(images.lab_dir()),
        ..Default::default()
    };
    let s = Setup::with_lab(&moto, opts, &[("/dev/sdf", "ext4", 1)]);
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    let _thaw = ThawOnDrop(vec![images.mount_point()]);

    // The volume's bytes cannot reach its image: its flush waits.
    run(Command::new("fsfreeze").arg("-f").arg(images.mount_point()));
    std::fs::write(s.mp(0).join("dirty"), vec![7u8; 4 << 20]).unwrap();
    let child = s.lab.run(&["make-snapshots", "db"]).config(&s.cfg).spawn();
    std::thread::sleep(Duration::from_secs(3));
    term(child.id());
    std::thread::sleep(Duration::from_millis(500));
    run(Command::new("fsfreeze").arg("-u").arg(images.mount_point()));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("SIGTERM during the sync before the freeze; nothing was frozen"),
        "{stderr}"
    );
    assert_eq!(s.snapshot_calls(), 0, "{stderr}");
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn after_a_window_that_ends_in_an_error_sigterm_stops_the_run_again() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = Setup::new(&moto, false, None, &[("/dev/sdf", "ext4", 1)]);
    s.add_to_profile("[profiles.db.hooks]\npost_snapshots = [\"sleep\", \"60\"]");
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    let mp = s.mp(0);
    let _thaw = ThawOnDrop(vec![mp.clone()]);
    // Someone else's freeze: ours fails, the window ends in an error, and
    // the cleanup hook runs.
    assert!(their_freeze(&mp).wait().unwrap().success());
    let mut child = s.lab.run(&["make-snapshots", "db"]).config(&s.cfg).spawn();
    let pid = child.id();
    let t = Instant::now();
    let hook = loop {
        if let Some(h) = children_named(pid, "sleep").first() {
            break *h;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its post_snapshots hook"
        );
        assert!(t.elapsed() < Duration::from_secs(30), "no hook started");
        std::thread::sleep(Duration::from_millis(50));
    };
    term(pid);
    let t = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if t.elapsed() > Duration::from_secs(10) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = Command::new("kill").arg(hook.to_string()).status();
    if status.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.is_some(),
        "SIGTERM did not stop a run waiting in its hook: {stderr}"
    );
    // Its default action: the process ends by SIGTERM.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.and_then(|s| s.signal()), Some(15), "{stderr}");
    assert_eq!(s.snapshot_calls(), 0, "{stderr}");
}
