//! `snaptastic prewarm`: read every block of a restored volume once, so
//! its blocks are loaded from S3 before the application asks for them
//! (why: `docs/commands.md#prewarm`). The reading itself is
//! `host::prewarm`; this is the command around it: one warm-up per volume
//! (a lock file), a checkpoint to resume from, progress lines, a clean
//! stop on SIGTERM/SIGINT.
//!
//! For other commands (`mount-snapshots --prewarm`, `list-volumes`):
//! [`start_detached`] and [`progress`].

mod checkpoint;
mod detach;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use chrono::Utc;
use tokio::signal::unix::{signal, SignalKind};

use crate::host::prewarm::{self as engine, Device, Ended, ReadPlan};
use crate::host::{devices, dirs, lock};
use checkpoint::{Checkpoint, Resume, Store};

pub(crate) use checkpoint::check_volume_id;
pub(crate) use detach::{progress, start_detached, WarmProgress};

/// Requests in flight by default. On the 2-core development machine's
/// loop device (docs/benchmarks.md) 16 reached fio's 32 at 1 MiB; EBS
/// gives a volume its throughput at a queue depth of a few requests per
/// 125 MiB/s, which 16 covers up to gp3's 1,000 MiB/s.
pub(crate) const DEFAULT_DEPTH: usize = 16;
/// Bytes per request by default: EBS counts I/O in units of up to 256 KiB
/// (SSD) or 1 MiB (HDD); 1 MiB reads reach a volume's throughput limit
/// without many requests.
pub(crate) const DEFAULT_REQUEST: usize = 1 << 20;

/// How a warm-up reads (shared by the command and [`start_detached`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WarmOptions {
    /// Requests in flight (1 to 256).
    pub depth: usize,
    /// Bytes per request: a multiple of 4 KiB.
    pub request: usize,
    /// At most this many MiB per second, if set.
    pub max_rate_mib: Option<u32>,
}

impl Default for WarmOptions {
    fn default() -> Self {
        WarmOptions {
            depth: DEFAULT_DEPTH,
            request: DEFAULT_REQUEST,
            max_rate_mib: None,
        }
    }
}

/// The command's settings.
#[derive(Debug, Clone)]
pub(crate) struct PrewarmOptions {
    /// The block device; `None`: found by the volume id (Nitro NVMe).
    pub device: Option<PathBuf>,
    pub volume_id: String,
    pub warm: WarmOptions,
    /// Start it in the background ([`start_detached`]) and return.
    pub detach: bool,
    /// Print the checkpoint's [`progress`] as JSON and return.
    pub status: bool,
}

/// How often the checkpoint is written while reading: what a crash or a
/// power loss costs again, at most.
const SAVE_EVERY: Duration = Duration::from_secs(5);
/// How often a progress line is logged.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// How long a starting warm-up waits for the lock (a `progress` probe
/// holds it for an instant).
const LOCK_WAIT: Duration = Duration::from_secs(1);

/// Exit code of a warm-up stopped by a signal: 128 + its number (143 for
/// SIGTERM, 130 for SIGINT), as a shell reports a process the signal
/// killed; the unit lists them in `SuccessExitStatus=` so a stop is not a
/// failure, and nothing restarts it.
fn stopped_code(signal: i32) -> ExitCode {
    ExitCode::from(u8::try_from(128 + signal).unwrap_or(143))
}

/// Run `snaptastic prewarm`: 0 when every block has been read (now or
/// before), 128 + signal when stopped (the checkpoint says where), `Err`
/// (exit 1) when a read, the device or the lock fails.
pub(crate) async fn run(opts: &PrewarmOptions) -> Result<ExitCode> {
    let volume_id = check_volume_id(&opts.volume_id)?;
    if opts.status {
        return status(volume_id);
    }
    let device = match &opts.device {
        Some(d) => d.clone(),
        None => devices::by_volume_id(Path::new("/dev"), volume_id).with_context(|| {
            format!(
                "no device of {volume_id} found by its id (Nitro's NVMe by-id link or serial): \
                 name the DEVICE"
            )
        })?,
    };
    if opts.detach {
        println!("{}", start_detached(&device, volume_id, &opts.warm)?);
        return Ok(ExitCode::SUCCESS);
    }
    // Signals first: a stop during the opening must not kill the process
    // without its checkpoint.
    let stop = Arc::new(AtomicBool::new(false));
    let signo = Arc::new(AtomicI32::new(0));
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let watcher = {
        let (stop, signo) = (stop.clone(), signo.clone());
        tokio::spawn(async move {
            let n = tokio::select! {
                _ = term.recv() => SignalKind::terminate().as_raw_value(),
                _ = int.recv() => SignalKind::interrupt().as_raw_value(),
            };
            signo.store(n, Ordering::Relaxed);
            stop.store(true, Ordering::Relaxed);
        })
    };
    let job = Job {
        device,
        volume_id: volume_id.to_string(),
        warm: opts.warm,
        stop: stop.clone(),
    };
    let outcome = tokio::task::spawn_blocking(move || job.run()).await?;
    watcher.abort();
    match outcome? {
        Outcome::Finished => Ok(ExitCode::SUCCESS),
        Outcome::Stopped => Ok(stopped_code(match signo.load(Ordering::Relaxed) {
            0 => SignalKind::terminate().as_raw_value(),
            n => n,
        })),
    }
}

/// `--status`: the progress of `volume_id`'s warm-up as one JSON object
/// on stdout (exit 0), or an error when none is recorded.
fn status(volume_id: &str) -> Result<ExitCode> {
    let Some(p): Option<WarmProgress> = progress(volume_id) else {
        bail!(
            "no warm-up of {volume_id} is recorded in {}",
            dirs::state_dir().join(checkpoint::SUBDIR).display()
        );
    };
    let mut v = serde_json::to_value(&p)?;
    v["volume_id"] = volume_id.into();
    v["percent"] = ((p.percent() * 10.0).round() / 10.0).into();
    println!("{v}");
    Ok(ExitCode::SUCCESS)
}

/// How a warm-up that did not fail ended.
enum Outcome {
    Finished,
    Stopped,
}

/// One warm-up, run on a blocking thread.
struct Job {
    device: PathBuf,
    volume_id: String,
    warm: WarmOptions,
    stop: Arc<AtomicBool>,
}

impl Job {
    fn run(self) -> Result<Outcome> {
        let (dev_path, vol) = (&self.device, self.volume_id.as_str());
        let state = dirs::state_dir();
        let store = Store::create(&state)
            .with_context(|| format!("making the checkpoint directory in {}", state.display()))?;
        let lock_name = checkpoint::lock_name(vol);
        let Some(_lock) = lock::exclusive_within(store.path(), &lock_name, LOCK_WAIT, |_| {})
            .with_context(|| format!("locking {}", store.path().join(&lock_name).display()))?
        else {
            bail!(
                "a warm-up of {vol} is already running (it holds {})",
                store.path().join(&lock_name).display()
            );
        };
        let dev = Device::open(dev_path)
            .with_context(|| format!("opening {} for direct reads", dev_path.display()))?;
        let found = store.load(vol).unwrap_or_else(|why| {
            tracing::warn!(
                "ignoring the checkpoint {}: {why}; starting over",
                store.file_of(vol).display()
            );
            None
        });
        let mut cp = match checkpoint::resume(found.as_ref(), dev.size) {
            Resume::Done => {
                tracing::info!(
                    "already warmed: every block of {vol} ({}) was read by {}",
                    mib(dev.size),
                    found.map(|c| c.updated.to_rfc3339()).unwrap_or_default()
                );
                return Ok(Outcome::Finished);
            }
            Resume::SizeChanged { was } => {
                tracing::warn!(
                    "{} is {} now, its checkpoint says {}: starting {vol} over",
                    dev_path.display(),
                    mib(dev.size),
                    mib(was)
                );
                Checkpoint::new(vol, dev_path, dev.size)
            }
            Resume::From(0) => Checkpoint::new(vol, dev_path, dev.size),
            Resume::From(at) => {
                tracing::info!(
                    "resuming {vol} at {} of {} ({:.1}%)",
                    mib(at),
                    mib(dev.size),
                    percent(at, dev.size)
                );
                let mut c = found.unwrap_or_else(|| Checkpoint::new(vol, dev_path, dev.size));
                c.device = dev_path.clone();
                c
            }
        };
        cp.last_error = None;
        let save = |c: &Checkpoint| {
            if let Err(e) = store.save(c) {
                tracing::warn!(
                    "writing the checkpoint {}: {e}",
                    store.file_of(vol).display()
                );
            }
        };
        save(&cp);
        let plan = ReadPlan {
            depth: self.warm.depth,
            request: self.warm.request,
            max_rate: self.warm.max_rate_mib.map(|m| u64::from(m) << 20),
        };
        let from = cp.done_bytes;
        tracing::info!(
            "warming {vol} on {}: {} to read from {}, {} requests of {} KiB in flight{}",
            dev_path.display(),
            mib(dev.size - from),
            mib(from),
            plan.depth,
            plan.request >> 10,
            self.warm
                .max_rate_mib
                .map(|m| format!(", at most {m} MiB/s"))
                .unwrap_or_default()
        );
        let began = Instant::now();
        let (mut last_save, mut last_log) = (began, began);
        let mut tick = |at: u64| {
            cp.done_bytes = at;
            cp.updated = Utc::now();
            cp.rate_bytes_per_sec = rate(at - from, began.elapsed());
            if last_save.elapsed() >= SAVE_EVERY {
                save(&cp);
                last_save = Instant::now();
            }
            if last_log.elapsed() >= LOG_EVERY {
                tracing::info!("{}", progress_line(vol, &cp));
                last_log = Instant::now();
            }
        };
        let ended = engine::read_range(
            &dev,
            from,
            dev.size,
            plan,
            &self.stop,
            Duration::from_secs(1),
            &mut tick,
        );
        let elapsed = began.elapsed();
        let this_run = cp.done_bytes - from;
        match ended {
            Ended::Finished => {
                cp.finished = true;
                save(&cp);
                tracing::info!(
                    "warmed {vol} on {}: every block of {} read ({} in {:.1}s this run, {})",
                    dev_path.display(),
                    mib(dev.size),
                    mib(this_run),
                    elapsed.as_secs_f64(),
                    rate_text(cp.rate_bytes_per_sec)
                );
                Ok(Outcome::Finished)
            }
            Ended::Stopped { at } => {
                save(&cp);
                tracing::warn!(
                    "stopped at {} of {} ({:.1}%) of {vol}; the next `snaptastic prewarm` resumes from there",
                    mib(at),
                    mib(dev.size),
                    percent(at, dev.size)
                );
                Ok(Outcome::Stopped)
            }
            Ended::Failed { offset, error } => {
                let why = format!(
                    "reading {} ({vol}) at byte {offset}: {error}",
                    dev_path.display()
                );
                cp.last_error = Some(why.clone());
                save(&cp);
                bail!(why)
            }
        }
    }
}

/// The INFO line every [`LOG_EVERY`].
fn progress_line(vol: &str, c: &Checkpoint) -> String {
    let eta = c
        .rate_bytes_per_sec
        .filter(|r| *r > 0)
        .map(|r| {
            let secs = (c.size_bytes - c.done_bytes) / r;
            format!(
                ", ETA {}",
                humantime::format_duration(Duration::from_secs(secs))
            )
        })
        .unwrap_or_default();
    format!(
        "warming {vol}: {:.1}% ({} of {}), {}{eta}",
        percent(c.done_bytes, c.size_bytes),
        mib(c.done_bytes),
        mib(c.size_bytes),
        rate_text(c.rate_bytes_per_sec)
    )
}

fn rate(bytes: u64, took: Duration) -> Option<u64> {
    let secs = took.as_secs_f64();
    (secs > 0.0).then(|| (bytes as f64 / secs) as u64)
}

fn rate_text(r: Option<u64>) -> String {
    match r {
        Some(r) => format!("{:.1} MiB/s", r as f64 / f64::from(1 << 20)),
        None => "rate unknown".into(),
    }
}

fn percent(done: u64, size: u64) -> f64 {
    if size == 0 {
        100.0
    } else {
        done as f64 * 100.0 / size as f64
    }
}

/// Bytes as MiB for messages ("96.0 MiB").
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_says_how_far_how_fast_and_how_long() {
        let mut c = Checkpoint::new("vol-0123456789abcdef0", Path::new("/dev/x"), 256 << 20);
        c.done_bytes = 64 << 20;
        c.rate_bytes_per_sec = Some(16 << 20);
        assert_eq!(
            progress_line("vol-0123456789abcdef0", &c),
            "warming vol-0123456789abcdef0: 25.0% (64.0 MiB of 256.0 MiB), 16.0 MiB/s, ETA 12s"
        );
        c.rate_bytes_per_sec = None;
        assert!(progress_line("v", &c).ends_with("rate unknown"));
    }

    #[test]
    fn a_stop_exits_with_the_shells_code_for_the_signal() {
        let code = |k: SignalKind| stopped_code(k.as_raw_value());
        assert_eq!(code(SignalKind::terminate()), ExitCode::from(143));
        assert_eq!(code(SignalKind::interrupt()), ExitCode::from(130));
    }
}
