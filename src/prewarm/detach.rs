//! The warm-up as other commands use it: started in the background so a
//! restore at boot is not held for the hours a large volume takes, and
//! its progress read back from the checkpoint.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::checkpoint::{self, check_volume_id, Store};
use super::WarmOptions;
use crate::host::{detach, dirs, lock};

/// A volume's warm-up as its checkpoint tells it (for `list-volumes`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct WarmProgress {
    /// The device it was read through last.
    pub device: PathBuf,
    /// Read contiguously from byte 0.
    pub done_bytes: u64,
    pub size_bytes: u64,
    pub finished: bool,
    /// Whether a warm-up of the volume runs now (it holds its lock).
    pub running: bool,
    pub started: DateTime<Utc>,
    /// When the checkpoint was last written (every 5 s while it runs).
    pub updated: DateTime<Utc>,
    /// The last run's average rate.
    pub rate_bytes_per_sec: Option<u64>,
    /// Time left at that rate, while running.
    pub eta_seconds: Option<u64>,
    /// Why the last run failed, if it did.
    pub error: Option<String>,
}

impl WarmProgress {
    /// How far, 0 to 100.
    pub(crate) fn percent(&self) -> f64 {
        super::percent(self.done_bytes, self.size_bytes)
    }
}

/// The warm-up progress of `volume_id` from its checkpoint in the state
/// directory; `None` when it never started here (or its checkpoint
/// cannot be read, which is logged at DEBUG).
pub(crate) fn progress(volume_id: &str) -> Option<WarmProgress> {
    let volume_id = check_volume_id(volume_id).ok()?;
    let store = Store::open(&dirs::state_dir()).ok()?;
    let c = match store.load(volume_id) {
        Ok(c) => c?,
        Err(why) => {
            tracing::debug!("{}: {why}", store.file_of(volume_id).display());
            return None;
        }
    };
    let running = lock::held(store.path(), &checkpoint::lock_name(volume_id)).unwrap_or(false);
    let eta_seconds = c
        .rate_bytes_per_sec
        .filter(|r| running && *r > 0)
        .map(|r| (c.size_bytes - c.done_bytes) / r);
    Some(WarmProgress {
        device: c.device,
        done_bytes: c.done_bytes,
        size_bytes: c.size_bytes,
        finished: c.finished,
        running,
        started: c.started,
        updated: c.updated,
        rate_bytes_per_sec: c.rate_bytes_per_sec,
        eta_seconds,
        error: c.last_error,
    })
}

/// The transient unit a detached warm-up of `volume_id` runs as.
pub(crate) fn unit_name(volume_id: &str) -> String {
    format!("snaptastic-prewarm-{volume_id}.service")
}

/// Start `snaptastic prewarm DEVICE --volume-id VOLUME_ID` in the
/// background and return at once, saying how it runs:
/// - where PID 1 is systemd, as a transient unit (`systemd-run`), idle
///   I/O class, in the journal: "systemd unit
///   snaptastic-prewarm-vol-….service (journalctl -u …)";
/// - else as a detached child in its own session, its output appended to
///   `<state dir>/prewarm/<volume id>.log`: "pid N, log …".
///
/// Either resumes from the volume's checkpoint. When a warm-up of the
/// volume already runs, nothing is started: "already running …".
pub(crate) fn start_detached(device: &Path, volume_id: &str, opts: &WarmOptions) -> Result<String> {
    let volume_id = check_volume_id(volume_id)?;
    let state = dirs::state_dir();
    let store = Store::create(&state)
        .with_context(|| format!("making the checkpoint directory in {}", state.display()))?;
    let lock_name = checkpoint::lock_name(volume_id);
    if lock::held(store.path(), &lock_name).unwrap_or(false) {
        return Ok(format!(
            "already running (a warm-up of {volume_id} holds {})",
            store.path().join(lock_name).display()
        ));
    }
    let exe = std::env::current_exe().context("finding this program to start the warm-up")?;
    let args = prewarm_args(device, volume_id, opts);
    if Path::new("/run/systemd/system").is_dir() {
        let unit = unit_name(volume_id);
        let out = Command::new("systemd-run")
            .args(systemd_run_args(&unit, volume_id, device, &state))
            .arg(&exe)
            .args(&args)
            .output()
            .context("running systemd-run")?;
        if !out.status.success() {
            bail!(
                "systemd-run could not start {unit}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        return Ok(format!("systemd unit {unit} (journalctl -u {unit})"));
    }
    let (log, log_path) = store
        .log(volume_id)
        .with_context(|| format!("opening a log in {}", store.path().display()))?;
    let args: Vec<&OsStr> = args.iter().map(|a| a.as_ref()).collect();
    let pid = detach::spawn(&exe, &args, log)
        .with_context(|| format!("starting {} in the background", exe.display()))?;
    Ok(format!("pid {pid}, log {}", log_path.display()))
}

/// The command line of a detached warm-up (after the program).
fn prewarm_args(device: &Path, volume_id: &str, opts: &WarmOptions) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "prewarm".into(),
        device.into(),
        "--volume-id".into(),
        volume_id.into(),
        "--depth".into(),
        opts.depth.to_string().into(),
        "--request-kib".into(),
        (opts.request >> 10).to_string().into(),
    ];
    if let Some(r) = opts.max_rate_mib {
        args.extend(["--max-rate".into(), r.to_string().into()]);
    }
    args
}

/// systemd-run's options for the warm-up's transient unit: the idle I/O
/// class and a low CPU weight (the application comes first), SIGTERM's
/// exit codes counted as success (a stop is not a failure), collected
/// when done (a failed one too, so the name is free for the next start),
/// and the state directory passed on (a unit does not inherit this
/// process's environment).
fn systemd_run_args(unit: &str, volume_id: &str, device: &Path, state: &Path) -> Vec<String> {
    vec![
        format!("--unit={unit}"),
        format!(
            "--description=snaptastic: read every block of {volume_id} ({})",
            device.display()
        ),
        "--collect".into(),
        "--quiet".into(),
        "--property=IOSchedulingClass=idle".into(),
        "--property=CPUWeight=20".into(),
        "--property=SuccessExitStatus=130 143".into(),
        format!("--property=TimeoutStopSec={}", STOP_WAIT.as_secs()),
        format!("--setenv=SNAPTASTIC_STATE_DIR={}", state.display()),
        "--".into(),
    ]
}

/// How long systemd waits for a stopped warm-up (requests in flight are
/// 16 MiB at the default: well under a second even on a slow volume).
const STOP_WAIT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detached_warm_up_gets_the_same_reading_plan() {
        let opts = WarmOptions {
            depth: 8,
            request: 512 << 10,
            max_rate_mib: Some(40),
        };
        let args = prewarm_args(Path::new("/dev/nvme1n1"), "vol-0123456789abcdef0", &opts);
        assert_eq!(
            args,
            [
                "prewarm",
                "/dev/nvme1n1",
                "--volume-id",
                "vol-0123456789abcdef0",
                "--depth",
                "8",
                "--request-kib",
                "512",
                "--max-rate",
                "40"
            ]
        );
        let unit = unit_name("vol-0123456789abcdef0");
        let run = systemd_run_args(
            &unit,
            "vol-0123456789abcdef0",
            Path::new("/dev/nvme1n1"),
            Path::new("/var/lib/snaptastic"),
        );
        assert!(run.contains(&"--unit=snaptastic-prewarm-vol-0123456789abcdef0.service".into()));
        assert!(run.contains(&"--property=IOSchedulingClass=idle".into()));
        assert!(run.contains(&"--setenv=SNAPTASTIC_STATE_DIR=/var/lib/snaptastic".into()));
        assert_eq!(run.last().map(String::as_str), Some("--"));
    }
}
