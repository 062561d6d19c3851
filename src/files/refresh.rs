//! Index refresh: a long-running tablesnap rewrites the index of every
//! directory it watches at least once a [`DEFAULT_EVERY`], even when
//! nothing lands there, so that `tablechop --forget-after` (which forgets
//! a directory in which no object is newer than its limit) never takes a
//! live table that is merely quiet (written once, never compacted) for a
//! dropped one.
//!
//! The refresh is the directory's ordinary index, built as every index is
//! (the files in S3 whole, beside the newest data file) and PUT again:
//! 1.2.1's readers and tableslurp read it as any other index and there is
//! no new kind of object for either to learn; tablechop's existing rule
//! (a directory with a young object is not forgotten) then keeps it. A
//! table whose directory is gone, or holds no data file any more, gets
//! no refresh and is forgotten after the limit, as before. Pure.

use std::time::{Duration, Instant};

/// How often each watched directory's index is rewritten when nothing
/// else rewrote it (the README and `tablechop --help` say so).
pub(crate) const DEFAULT_EVERY: Duration = Duration::from_secs(24 * 3600);

/// How many times per interval the daemon looks for directories due: a
/// directory is rewritten at most 1/24 of an interval (an hour by
/// default) after it is due, and within that long of a start for one not
/// indexed by this run.
const CHECKS_PER_INTERVAL: u32 = 24;

/// `tablechop --forget-after` below this many refresh intervals is warned
/// about: a refresh delayed by a restart, an S3 outage or a late check
/// could let a live directory look idle.
pub(crate) const SAFE_INTERVALS: u32 = 3;

/// How often the daemon looks for directories due.
pub(crate) fn check_every(every: Duration) -> Duration {
    (every / CHECKS_PER_INTERVAL).max(Duration::from_millis(10))
}

/// Whether a directory last indexed at `last` (this run; `None`: not by
/// this run) is due for a refresh at `now`.
pub(crate) fn is_due(last: Option<Instant>, now: Instant, every: Duration) -> bool {
    last.is_none_or(|t| now.saturating_duration_since(t) >= every)
}

/// The warning for a `--forget-after` of `days` too short for the daemon's
/// daily refresh to keep live directories safe; `None` when it is long
/// enough.
pub(crate) fn forget_after_warning(days: f64) -> Option<String> {
    let every_days = DEFAULT_EVERY.as_secs_f64() / 86_400.0;
    let safe = every_days * f64::from(SAFE_INTERVALS);
    (days < safe).then(|| {
        format!(
            "--forget-after {days} is shorter than {SAFE_INTERVALS} index refreshes \
             (tablesnap rewrites each watched directory's index every {every_days} day(s)): \
             a live table whose refresh was delayed (a stopped daemon, an S3 outage) may \
             be forgotten; use {safe} days or more"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_due_once_an_interval_has_passed_or_never_indexed() {
        let every = Duration::from_secs(3600);
        let t0 = Instant::now();
        assert!(is_due(None, t0, every));
        assert!(!is_due(Some(t0), t0 + Duration::from_secs(3599), every));
        assert!(is_due(Some(t0), t0 + every, every));
        // A clock read before `last` (another thread's) is not due.
        assert!(!is_due(Some(t0 + every), t0, every));
        assert_eq!(check_every(DEFAULT_EVERY), Duration::from_secs(3600));
        assert_eq!(
            check_every(Duration::from_millis(1)),
            Duration::from_millis(10)
        );
    }

    #[test]
    fn a_forget_window_of_a_few_refreshes_or_less_is_warned_about() {
        assert_eq!(forget_after_warning(3.0), None);
        assert_eq!(forget_after_warning(30.0), None);
        let w = forget_after_warning(1.0).unwrap();
        assert!(
            w.starts_with("--forget-after 1 is shorter than 3 index refreshes")
                && w.contains("every 1 day(s)")
                && w.ends_with("use 3 days or more"),
            "{w}"
        );
        assert!(forget_after_warning(0.0).is_some());
    }
}
