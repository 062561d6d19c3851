//! Files whose upload failed, tried again later: after 30 s, 1 min,
//! 2 min, ... capped at 10 min, so an S3 outage passes without a storm.
//!
//! The attempt count travels with the file's queued job and comes back
//! only with a failure: nothing is kept for a file once it lands (or
//! vanishes), and a file deleted or moved away leaves the schedule at
//! once. A months-long run thus holds an entry only per file failing now.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The wait before attempt `attempt + 1`, after `attempt` failures (from 1).
pub(super) fn backoff(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(5);
    Duration::from_secs(30 * (1u64 << doublings)).min(Duration::from_secs(600))
}

/// The files waiting for another attempt.
#[derive(Default)]
pub(super) struct Retries {
    /// (when, path, failed attempts so far).
    due: Vec<(Instant, PathBuf, u32)>,
}

impl Retries {
    /// `path` failed for the `attempt`-th time: try it again after its
    /// backoff.
    pub(super) fn failed(&mut self, path: PathBuf, attempt: u32, now: Instant) {
        self.due.push((now + backoff(attempt), path, attempt));
    }

    /// The files due at `now` with their failed attempts, out of the
    /// schedule.
    pub(super) fn take_due(&mut self, now: Instant) -> Vec<(PathBuf, u32)> {
        let (ready, later): (Vec<_>, Vec<_>) = self.due.drain(..).partition(|(t, _, _)| *t <= now);
        self.due = later;
        ready.into_iter().map(|(_, p, n)| (p, n)).collect()
    }

    /// `path` is gone, or everything below it when it was a directory.
    pub(super) fn forget(&mut self, path: &Path) {
        self.due.retain(|(_, p, _)| !p.starts_with(path));
    }

    pub(super) fn len(&self) -> usize {
        self.due.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_thirty_seconds_to_ten_minutes() {
        let secs: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 600, 600, 600]);
        assert_eq!(backoff(u32::MAX).as_secs(), 600);
    }

    #[test]
    fn gone_files_leave_the_schedule_and_due_ones_are_taken_out() {
        let t0 = Instant::now();
        let mut r = Retries::default();
        r.failed("/d/t/a-Data.db".into(), 1, t0);
        r.failed("/d/t/b-Data.db".into(), 3, t0);
        r.failed("/d/u/c-Data.db".into(), 1, t0);
        r.forget(Path::new("/d/t/a-Data.db"));
        assert_eq!(r.len(), 2);
        assert!(r.take_due(t0).is_empty());
        assert_eq!(
            r.take_due(t0 + Duration::from_secs(30)),
            [(PathBuf::from("/d/u/c-Data.db"), 1)]
        );
        r.forget(Path::new("/d/t"));
        assert_eq!(r.len(), 0);
    }
}
