//! The thaw watchdog: a separate process (this binary in a hidden mode)
//! that holds its own descriptors of every filesystem make-snapshots
//! freezes, and thaws them all
//!
//! - when the main process dies, whatever killed it (SIGKILL, the OOM
//!   killer, SIGSEGV, an abort): the pipe from the main process reaches
//!   EOF. A process's pipe closes only after its last thread has left the
//!   kernel, so a FIFREEZE still in flight has returned by then and is
//!   undone too;
//! - at the deadline of the freeze phase or of the call phase, even if
//!   the main process hangs;
//! - at once on SIGTERM, SIGINT or SIGHUP (systemd stops a unit's whole
//!   control group with SIGTERM).
//!
//! After it has thawed once it keeps thawing every 50 ms until the main
//! process says it is done or dies, so a freeze that completes late (a
//! slow `sync_filesystem` inside FIFREEZE) is undone within 50 ms. It
//! runs in its own process group (a `timeout -s KILL` of the group does
//! not take it along), asks the OOM killer to spare it, and gets SIGUSR2
//! if its parent dies (`PR_SET_PDEATHSIG`, a second line behind the
//! pipe). While filesystems are frozen it does nothing but wait, thaw,
//! and write a line to its parent's pipe: no logging, no file writes.
//!
//! Protocol, one line each way: the watchdog says `READY` once it holds
//! every descriptor (or `ERR <why>` and exits); the main process says
//! `FROZEN` when the freeze phase is over and `DONE` when it has thawed
//! everything and no freeze is outstanding; the watchdog says
//! `FIRED <why>` the first time it thaws and `LATE <mount point>` when its
//! repeated thaws undo a late freeze.

use super::safe_path::SafeDir;
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;

use super::ioctl::thaw_fd;
use super::HostError;

/// The argv[1] that runs this binary as the watchdog.
pub(crate) const MODE: &str = "__thaw-watchdog";

/// How often a watchdog that has fired thaws again.
const RETHAW_EVERY: Duration = Duration::from_millis(50);

/// The main process's handle on its watchdog.
pub(crate) struct Watchdog {
    child: Child,
    /// Our end of its stdin; closing it is the "main process ended" EOF.
    tx: Notifier,
    rx: BufReader<ChildStdout>,
}

/// A way to tell the watchdog things from the freezing threads.
#[derive(Clone)]
pub(crate) struct Notifier(Arc<Mutex<Option<ChildStdin>>>);

impl Notifier {
    fn say(&self, line: &str) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = g.as_mut() {
            let _ = tx.write_all(format!("{line}\n").as_bytes());
            let _ = tx.flush();
        }
    }

    /// Target `i` (in the order given to `start`) was not frozen by us
    /// (its FIFREEZE failed, e.g. EBUSY: someone else's freeze): never
    /// thaw it.
    pub(crate) fn not_ours(&self, i: usize) {
        self.say(&format!("NOTOURS {i}"));
    }

    fn close(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .is_some()
    }
}

/// What the watchdog did, as it told us.
#[derive(Debug, Default)]
pub(crate) struct WatchdogReport {
    /// Why it thawed, if it did (the deadline, a signal).
    pub(crate) fired: Option<String>,
    /// Mount points whose late freeze it undid.
    pub(crate) late: Vec<String>,
}

impl Watchdog {
    /// Start the watchdog for `mount_points`: it thaws them all
    /// `freeze_phase` after it is ready unless told the freeze phase is
    /// over, then `window` after that. Returns once it holds every
    /// descriptor.
    pub(crate) fn start(
        mount_points: &[PathBuf],
        freeze_phase: Duration,
        window: Duration,
    ) -> Result<Watchdog, HostError> {
        let exe = std::env::current_exe().map_err(|source| HostError::Spawn {
            program: "the watchdog (this binary)",
            hint: "",
            source,
        })?;
        let mut cmd = Command::new(exe);
        cmd.arg(MODE)
            .arg(freeze_phase.as_millis().to_string())
            .arg(window.as_millis().to_string())
            .arg(std::process::id().to_string())
            .args(mount_points)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Nothing to say while filesystems are frozen; a log file on
            // one of them would hang it.
            .stderr(Stdio::null())
            .process_group(0);
        let mut child = cmd.spawn().map_err(|source| HostError::Spawn {
            program: "the watchdog (this binary)",
            hint: "",
            source,
        })?;
        let tx = child.stdin.take();
        let mut rx = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        let _ = rx.read_line(&mut line);
        match line.trim_end() {
            "READY" => Ok(Watchdog {
                child,
                tx: Notifier(Arc::new(Mutex::new(tx))),
                rx,
            }),
            other => {
                let _ = child.kill();
                let _ = child.wait();
                Err(HostError::Watchdog(
                    other
                        .strip_prefix("ERR ")
                        .unwrap_or("it exited before it was ready")
                        .to_string(),
                ))
            }
        }
    }

    /// For the freezing threads.
    pub(crate) fn notifier(&self) -> Notifier {
        self.tx.clone()
    }

    /// The freeze phase is over (everything frozen, or going on unfrozen):
    /// the call phase's deadline starts now.
    pub(crate) fn frozen(&mut self) {
        self.tx.say("FROZEN");
    }

    /// Everything is thawed and no freeze is outstanding: let it go, and
    /// hear what it did.
    pub(crate) fn finish(mut self) -> WatchdogReport {
        self.tx.say("DONE");
        self.tx.close();
        let mut report = WatchdogReport::default();
        let mut text = String::new();
        let _ = self.rx.read_to_string(&mut text);
        for line in text.lines() {
            if let Some(why) = line.strip_prefix("FIRED ") {
                report.fired.get_or_insert_with(|| why.to_string());
            } else if let Some(mp) = line.strip_prefix("LATE ") {
                report.late.push(mp.to_string());
            }
        }
        let _ = self.child.wait();
        report
    }

    /// The watchdog's process id (tests signal it).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Not finished: the EOF tells it to thaw everything now.
        if self.tx.close() {
            let _ = self.child.wait();
        }
    }
}

/// The watchdog process: `MODE FREEZE_MS WINDOW_MS PARENT_PID MOUNT...`.
/// Never returns while it may still have to thaw.
pub(crate) fn serve(args: &[OsString]) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let mut say = |line: &str| {
        let _ = out.write_all(line.as_bytes());
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    };
    let num = |i: usize| {
        args.get(i)
            .and_then(|a| a.to_str())
            .and_then(|a| a.parse::<u64>().ok())
    };
    let (Some(freeze_ms), Some(window_ms), Some(parent)) = (num(0), num(1), num(2)) else {
        say("ERR usage: FREEZE_MS WINDOW_MS PARENT_PID MOUNT...");
        return ExitCode::from(2);
    };
    let mut targets = Vec::new();
    for mp in &args[3..] {
        match SafeDir::no_links(std::path::Path::new(mp), false).map(SafeDir::into_file) {
            Ok(file) => targets.push(Target {
                path: PathBuf::from(mp),
                file,
                ours: true,
            }),
            Err(e) => {
                say(&format!(
                    "ERR cannot open {}: {e}",
                    PathBuf::from(mp).display()
                ));
                return ExitCode::FAILURE;
            }
        }
    }
    // The OOM killer should take anything but the process that thaws.
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR2,
    ] {
        mask.add(s);
    }
    let signals = match mask.thread_block().and_then(|()| SignalFd::new(&mask)) {
        Ok(fd) => fd,
        Err(e) => {
            say(&format!("ERR cannot take signals: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGUSR2);
    let orphaned = || nix::unistd::getppid().as_raw() != parent as i32;
    say("READY");

    let mut w = Serving {
        targets,
        fired: false,
        say: &mut say,
    };
    if orphaned() {
        w.fire("the main process ended before the freeze");
    }
    let stdin = std::io::stdin();
    let mut deadline = Instant::now() + Duration::from_millis(freeze_ms);
    let mut line = Vec::new();
    loop {
        let timeout = if w.fired {
            RETHAW_EVERY
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let mut fds = [
            PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => std::thread::sleep(RETHAW_EVERY),
        }
        let ready = |f: &PollFd<'_>| {
            f.revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP))
        };
        let (from_main, signalled) = (ready(&fds[0]), ready(&fds[1]));
        if signalled {
            if let Ok(Some(info)) = signals.read_signal() {
                let parent_died = info.ssi_signo == Signal::SIGUSR2 as u32 && orphaned();
                if info.ssi_signo != Signal::SIGUSR2 as u32 {
                    let name = Signal::try_from(info.ssi_signo as i32)
                        .map(|s| s.as_str())
                        .unwrap_or("a signal");
                    w.fire(&format!("{name} to the watchdog"));
                } else if parent_died {
                    w.fire("the main process ended");
                }
            }
        }
        if from_main {
            let mut buf = [0u8; 64];
            match (&stdin).read(&mut buf) {
                // EOF: the main process is gone, with all its threads, so
                // every FIFREEZE it started has returned: one last thaw.
                Ok(0) | Err(_) => {
                    w.fire("the main process ended");
                    w.thaw_all();
                    return ExitCode::SUCCESS;
                }
                Ok(n) => line.extend_from_slice(&buf[..n]),
            }
            while let Some(end) = line.iter().position(|b| *b == b'\n') {
                let word: Vec<u8> = line.drain(..=end).collect();
                match &word[..word.len() - 1] {
                    b"FROZEN" if !w.fired => {
                        deadline = Instant::now() + Duration::from_millis(window_ms)
                    }
                    b"DONE" => return ExitCode::SUCCESS,
                    said if said.starts_with(b"NOTOURS ") => {
                        let i = std::str::from_utf8(&said[8..])
                            .ok()
                            .and_then(|n| n.parse::<usize>().ok());
                        if let Some(t) = i.and_then(|i| w.targets.get_mut(i)) {
                            t.ours = false;
                        }
                    }
                    _ => {}
                }
            }
        }
        if w.fired {
            w.thaw_all();
        } else if Instant::now() >= deadline {
            w.fire("the deadline passed");
        }
    }
}

/// A filesystem the watchdog may have to thaw.
struct Target {
    path: PathBuf,
    file: File,
    /// `false` once the main process said its FIFREEZE failed (someone
    /// else's freeze, which is not ours to undo).
    ours: bool,
}

/// The serving watchdog's state.
struct Serving<'a> {
    targets: Vec<Target>,
    fired: bool,
    say: &'a mut dyn FnMut(&str),
}

impl Serving<'_> {
    /// Thaw everything now and from now on.
    fn fire(&mut self, why: &str) {
        if !self.fired {
            self.fired = true;
            (self.say)(&format!("FIRED {why}"));
            for t in self.targets.iter().filter(|t| t.ours) {
                let _ = thaw_fd(&t.file);
            }
        }
    }

    /// Once fired: FITHAW every target again. EINVAL (not frozen, or a
    /// freeze still in progress) is tried again next round; a success
    /// undid a freeze that completed after the first thaw.
    fn thaw_all(&mut self) {
        for t in self.targets.iter().filter(|t| t.ours) {
            if thaw_fd(&t.file).is_ok() {
                (self.say)(&format!("LATE {}", t.path.display()));
            }
        }
    }
}
