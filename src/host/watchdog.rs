//! The thaw watchdog: a separate process (this binary in a hidden mode)
//! that holds its own descriptors of every filesystem make-snapshots
//! freezes, and thaws the ones this run froze
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
//! It thaws only what is ours: the main process says `FREEZING i` before
//! each FIFREEZE and `OURS i` or `NOTOURS i` when it returns. A FIFREEZE
//! still inside the kernel when the watchdog fires may be queued behind
//! someone else's freeze (it ends in EBUSY), so it is not thawed then:
//! its `OURS` (a slow freeze of ours that completed late) is thawed the
//! moment it arrives, its `NOTOURS` never. Nothing is thawed twice, so a
//! freeze another tool makes after our thaw is left alone. Only when the
//! main process dies between `FREEZING` and the answer is the outcome
//! unknown: the watchdog then thaws (a filesystem frozen for good is the
//! worse mistake).
//!
//! It runs in its own process group (a `timeout -s KILL` of the group does
//! not take it along), asks the OOM killer to spare it, and gets SIGUSR2
//! if its parent dies (`PR_SET_PDEATHSIG`, a second line behind the
//! pipe). While filesystems are frozen it does nothing but wait, thaw,
//! and write a line to its parent's pipe: no logging, no file writes.
//!
//! Protocol, one line each way: the watchdog says `READY` once it holds
//! every descriptor (or `ERR <why>` and exits); the main process says
//! `FREEZING i`, `OURS i`, `NOTOURS i` per target (in the order given to
//! `start`), `FROZEN` when the freeze phase is over and `DONE` when it has
//! thawed everything and no freeze is outstanding; the watchdog says
//! `FIRED <why>` the first time it thaws and `LATE <mount point>` when it
//! undoes a freeze of ours that completed after it fired.

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

/// How soon a thaw that failed (other than "not frozen") is tried again.
const RETRY_THAW: Duration = Duration::from_millis(50);

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

    /// Target `i` (in the order given to `start`): our FIFREEZE of it is
    /// about to enter the kernel.
    pub(crate) fn freezing(&self, i: usize) {
        self.say(&format!("FREEZING {i}"));
    }

    /// Target `i`'s FIFREEZE returned: `true` it is frozen by us (thaw it
    /// if the watchdog has fired), `false` it failed (e.g. EBUSY: someone
    /// else's freeze), never thaw it.
    pub(crate) fn froze(&self, i: usize, ours: bool) {
        self.say(&format!("{} {i}", if ours { "OURS" } else { "NOTOURS" }));
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
    let targets = match open_targets(&args[3..]) {
        Ok(t) => t,
        Err(e) => {
            say(&format!("ERR {e}"));
            return ExitCode::FAILURE;
        }
    };
    // The OOM killer should take anything but the process that thaws.
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
    let signals = match take_signals() {
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
        w.main_gone("the main process ended before the freeze");
        return ExitCode::SUCCESS;
    }
    // The pipe from the main process, read without a buffer of ours: a
    // line left in a buffer would not wake poll(2) again.
    let Ok(mut input) = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
    else {
        w.main_gone("its pipe could not be read");
        return ExitCode::SUCCESS;
    };
    let mut deadline = Instant::now() + Duration::from_millis(freeze_ms);
    let mut line = Vec::new();
    loop {
        let timeout = if w.retrying() {
            RETRY_THAW
        } else if w.fired {
            Duration::MAX
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let mut fds = [
            PollFd::new(input.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => std::thread::sleep(RETRY_THAW),
        }
        let ready = |f: &PollFd<'_>| {
            f.revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP))
        };
        let (from_main, signalled) = (ready(&fds[0]), ready(&fds[1]));
        if signalled && w.on_signal(&signals, &orphaned) == Go::Exit {
            return ExitCode::SUCCESS;
        }
        if from_main {
            let window = Duration::from_millis(window_ms);
            if w.on_input(&mut input, &mut line, &mut deadline, window) == Go::Exit {
                return ExitCode::SUCCESS;
            }
        }
        if !w.fired && Instant::now() >= deadline {
            w.fire("the deadline passed");
        }
        w.retry();
    }
}

/// A descriptor of each mount point, never reached through a link.
fn open_targets(mount_points: &[OsString]) -> Result<Vec<Target>, String> {
    mount_points
        .iter()
        .map(|mp| {
            let path = PathBuf::from(mp);
            SafeDir::no_links(&path, false)
                .map(|dir| Target {
                    file: dir.into_file(),
                    path: path.clone(),
                    freeze: Freeze::NotStarted,
                })
                .map_err(|e| format!("cannot open {}: {e}", path.display()))
        })
        .collect()
}

/// SIGTERM, SIGINT, SIGHUP (thaw at once) and SIGUSR2 (the parent died),
/// blocked and read from a descriptor beside the pipe.
fn take_signals() -> nix::Result<SignalFd> {
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR2,
    ] {
        mask.add(s);
    }
    mask.thread_block()?;
    SignalFd::new(&mask)
}

/// A line from the main process.
enum Said {
    Frozen,
    Done,
    Target(usize, Freeze),
}

impl Said {
    fn parse(line: &[u8]) -> Option<Said> {
        let line = std::str::from_utf8(line).ok()?;
        match line {
            "FROZEN" => return Some(Said::Frozen),
            "DONE" => return Some(Said::Done),
            _ => {}
        }
        let (word, i) = line.split_once(' ')?;
        let state = match word {
            "FREEZING" => Freeze::InFlight,
            "OURS" => Freeze::Ours,
            "NOTOURS" => Freeze::NotOurs,
            _ => return None,
        };
        Some(Said::Target(i.parse().ok()?, state))
    }
}

/// Where our FIFREEZE of a target stands, as the main process told.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Freeze {
    /// Not started: nothing of ours to thaw.
    NotStarted,
    /// Inside the kernel: it may end ours or someone else's (EBUSY).
    InFlight,
    /// Frozen by us and not yet thawed by the watchdog.
    Ours,
    /// It failed: someone else's freeze, or none.
    NotOurs,
    /// Thawed by the watchdog; never touched again.
    Thawed,
    /// Our thaw failed with something other than "not frozen": retried.
    Retrying,
}

/// A filesystem the watchdog may have to thaw.
struct Target {
    path: PathBuf,
    file: File,
    freeze: Freeze,
}

/// The serving watchdog's state.
struct Serving<'a> {
    targets: Vec<Target>,
    fired: bool,
    say: &'a mut dyn FnMut(&str),
}

/// Whether the watchdog goes on serving.
#[derive(PartialEq, Eq)]
enum Go {
    On,
    Exit,
}

impl Serving<'_> {
    /// A signal: SIGTERM, SIGINT or SIGHUP thaw at once; SIGUSR2 from the
    /// kernel says the parent died (when it did, all is thawed and done).
    fn on_signal(&mut self, signals: &SignalFd, orphaned: &dyn Fn() -> bool) -> Go {
        let Ok(Some(info)) = signals.read_signal() else {
            return Go::On;
        };
        if info.ssi_signo != Signal::SIGUSR2 as u32 {
            let name = Signal::try_from(info.ssi_signo as i32)
                .map(|s| s.as_str())
                .unwrap_or("a signal");
            self.fire(&format!("{name} to the watchdog"));
        } else if orphaned() {
            self.main_gone("the main process ended");
            return Go::Exit;
        }
        Go::On
    }

    /// Lines from the main process (`FROZEN` starts the call phase's
    /// deadline); EOF means it is gone, with all its threads, so every
    /// FIFREEZE it started has returned.
    fn on_input(
        &mut self,
        input: &mut impl Read,
        line: &mut Vec<u8>,
        deadline: &mut Instant,
        window: Duration,
    ) -> Go {
        let mut buf = [0u8; 512];
        match input.read(&mut buf) {
            Ok(0) | Err(_) => {
                self.main_gone("the main process ended");
                return Go::Exit;
            }
            Ok(n) => line.extend_from_slice(&buf[..n]),
        }
        while let Some(end) = line.iter().position(|b| *b == b'\n') {
            let word: Vec<u8> = line.drain(..=end).collect();
            match Said::parse(&word[..word.len() - 1]) {
                Some(Said::Frozen) if !self.fired => *deadline = Instant::now() + window,
                Some(Said::Done) => return Go::Exit,
                Some(Said::Target(i, state)) => self.heard(i, state),
                _ => {}
            }
        }
        Go::On
    }

    /// Thaw what is ours now, and from now on every freeze of ours the
    /// moment it is reported.
    fn fire(&mut self, why: &str) {
        if !self.fired {
            self.fired = true;
            (self.say)(&format!("FIRED {why}"));
            for i in 0..self.targets.len() {
                if self.targets[i].freeze == Freeze::Ours {
                    self.thaw(i, None);
                }
            }
        }
    }

    /// The main process said where target `i` stands.
    fn heard(&mut self, i: usize, state: Freeze) {
        let fired = self.fired;
        let Some(t) = self.targets.get_mut(i) else {
            return;
        };
        match (t.freeze, state) {
            // Already thawed by us: a repeat must not thaw again.
            (Freeze::Thawed | Freeze::Retrying, _) => {}
            (_, Freeze::Ours) if fired => self.thaw(i, Some("LATE")),
            (_, state) => t.freeze = state,
        }
    }

    /// The main process is gone: every FIFREEZE it made has returned.
    /// What is ours is thawed; one whose answer never came is thawed too
    /// (it may have been ours), and named.
    fn main_gone(&mut self, why: &str) {
        self.fire(why);
        for i in 0..self.targets.len() {
            if self.targets[i].freeze == Freeze::InFlight {
                self.thaw(i, None);
            }
        }
        // A thaw that keeps failing is tried for a while; past that
        // nothing here can help (`snaptastic thaw` can).
        for _ in 0..200 {
            if !self.retrying() {
                break;
            }
            std::thread::sleep(RETRY_THAW);
            self.retry();
        }
    }

    /// FITHAW target `i` once. "Not frozen" (EINVAL: someone thawed it
    /// already) is final; another error is tried again.
    fn thaw(&mut self, i: usize, tell: Option<&str>) {
        let t = &mut self.targets[i];
        match thaw_fd(&t.file) {
            Ok(()) => {
                t.freeze = Freeze::Thawed;
                if let Some(word) = tell {
                    (self.say)(&format!("{word} {}", t.path.display()));
                }
            }
            Err(Errno::EINVAL) => t.freeze = Freeze::Thawed,
            Err(_) => t.freeze = Freeze::Retrying,
        }
    }

    fn retrying(&self) -> bool {
        self.targets.iter().any(|t| t.freeze == Freeze::Retrying)
    }

    fn retry(&mut self) {
        for i in 0..self.targets.len() {
            if self.targets[i].freeze == Freeze::Retrying {
                self.thaw(i, None);
            }
        }
    }
}
