//! Starting a process that outlives its parent and its terminal: its own
//! session (no controlling terminal, so no SIGHUP when a login shell or
//! an SSM session ends), stdin from /dev/null, stdout and stderr into a
//! log file. For the warm-up that `mount-snapshots` leaves running when
//! PID 1 is not systemd (containers, old init systems).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Start `program args` detached, writing to `log`; its pid. A thread of
/// this process reaps the child if it ends first (no zombie under a
/// long-lived parent); when this process exits first, the child is
/// reparented to init, which reaps it.
pub(crate) fn spawn(program: &Path, args: &[&OsStr], log: File) -> io::Result<u32> {
    let err = log.try_clone()?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err));
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed: setsid(2) is one, and
    // nothing here allocates or takes a lock.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(io::Error::from));
    }
    let mut child = cmd.spawn()?;
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(pid)
}
