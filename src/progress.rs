//! Progress of long waits (snapshots completing, files restoring): a live
//! line on a terminal (indicatif), plain log lines at most every few
//! seconds otherwise (cron, systemd, SSM read logs, not terminals), and
//! nothing extra when INFO is filtered out (`--loglevel=WARNING`).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a log line reports progress when there is no terminal.
const LOG_EVERY: Duration = Duration::from_secs(10);

pub(crate) struct Progress {
    label: String,
    mode: Mode,
    done: AtomicU64,
    total: AtomicU64,
    last_line: Mutex<Instant>,
}

enum Mode {
    Quiet,
    Lines,
    Bar(ProgressBar),
}

impl Progress {
    /// `total` steps (it may grow: [`Progress::add_total`]).
    pub(crate) fn new(label: &str, total: u64) -> Self {
        let mode = if !tracing::enabled!(tracing::Level::INFO) {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(250));
            Mode::Bar(bar)
        } else {
            Mode::Lines
        };
        Progress {
            label: label.to_string(),
            mode,
            done: AtomicU64::new(0),
            total: AtomicU64::new(total),
            last_line: Mutex::new(Instant::now()),
        }
    }

    pub(crate) fn add_total(&self, n: u64) {
        self.total.fetch_add(n, Ordering::Relaxed);
        if let Mode::Bar(b) = &self.mode {
            b.inc_length(n);
        }
    }

    /// One more step done; `note` says what (shown on the line).
    pub(crate) fn step(&self, note: &str) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        self.show(done, note);
    }

    /// Nothing finished, but something moved (a snapshot's percentage).
    pub(crate) fn note(&self, note: &str) {
        self.show(self.done.load(Ordering::Relaxed), note);
    }

    fn show(&self, done: u64, note: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Bar(b) => {
                b.set_position(done);
                b.set_message(note.to_string());
            }
            Mode::Lines => {
                let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed() >= LOG_EVERY {
                    *last = Instant::now();
                    let total = self.total.load(Ordering::Relaxed);
                    tracing::info!("{}: {done}/{total} {note}", self.label);
                }
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Mode::Bar(b) = &self.mode {
            b.finish_and_clear();
        }
    }
}
