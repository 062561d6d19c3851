//! Whether a filesystem is frozen, asked without waiting on it forever.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether `mp` is still frozen by someone: `fsfreeze -u` thaws it (and
/// fails with "Invalid argument" when nothing is frozen).
pub(crate) fn thaw_if_frozen(mp: &Path) -> bool {
    Command::new("fsfreeze")
        .arg("-u")
        .arg(mp)
        .output()
        .unwrap()
        .status
        .success()
}

/// Whether a write to `mp` completes within `wait` (the probe file is
/// removed again). A write to a frozen
/// filesystem sleeps uninterruptibly (no signal, not even SIGKILL, ends
/// it before the thaw), so the probe is left to finish on its own.
pub(crate) fn writable_within(mp: &Path, wait: Duration) -> bool {
    let mut probe = Command::new("sh")
        .arg("-c")
        // Each probe its own file ($$, the shell's pid): a probe left
        // waiting on a frozen filesystem by an earlier call finishes at the
        // thaw too, and must not remove this one's file under it.
        .arg(format!(
            "echo ok > '{0}/probe.$$' && rm -f '{0}/probe.$$'",
            mp.display()
        ))
        .spawn()
        .unwrap();
    let end = Instant::now() + wait;
    loop {
        if let Some(status) = probe.try_wait().unwrap() {
            return status.success();
        }
        if Instant::now() >= end {
            // Reaped by a thread once the filesystem thaws.
            std::thread::spawn(move || probe.wait());
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
