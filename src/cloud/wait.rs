//! Polling EC2 until something is true, within a deadline: exponential
//! backoff with jitter (so many volumes waiting at once do not poll in
//! step), transient errors (throttling, 5xx) tolerated until the deadline.

use std::future::Future;
use std::time::{Duration, Instant};

use super::CloudError;

/// Backoff bounds for one kind of wait.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    /// Volume and attachment states change in seconds.
    pub(crate) const VOLUME: Backoff = Backoff {
        first: Duration::from_millis(250),
        max: Duration::from_secs(5),
    };
    /// Snapshots take minutes to complete.
    pub(crate) const SNAPSHOT: Backoff = Backoff {
        first: Duration::from_secs(1),
        max: Duration::from_secs(15),
    };
}

/// What a wait ended with.
#[derive(Debug)]
pub(crate) enum WaitError {
    /// The deadline passed; holds the last thing seen, for the message.
    TimedOut(String),
    /// A permanent error from EC2.
    Failed(CloudError),
}

/// Call `check` until it returns `Ok(Some(t))`. `Ok(None)` means "not yet"
/// (with a description of what was seen); transient errors count as "not
/// yet"; other errors end the wait.
pub(crate) async fn poll_until<T, F, Fut>(
    deadline: Duration,
    backoff: Backoff,
    mut check: F,
) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, String>, CloudError>>,
{
    let end = Instant::now() + deadline;
    let mut delay = backoff.first;
    let mut last: String;
    loop {
        match check().await {
            Ok(Ok(t)) => return Ok(t),
            Ok(Err(seen)) => last = seen,
            Err(e) if e.is_transient() => last = e.to_string(),
            Err(e) => return Err(WaitError::Failed(e)),
        }
        let now = Instant::now();
        if now >= end {
            return Err(WaitError::TimedOut(last));
        }
        let sleep = jitter(delay).min(end - now);
        tokio::time::sleep(sleep).await;
        delay = (delay * 2).min(backoff.max);
    }
}

/// Between half and all of `d` ("equal jitter"), seeded from the clock.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let frac = f64::from(nanos % 1000) / 1000.0;
    d.mul_f64(0.5 + 0.5 * frac)
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitError::TimedOut(last) => write!(f, "timed out (last seen: {last})"),
            WaitError::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for WaitError {}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    const FAST: Backoff = Backoff {
        first: Duration::from_millis(1),
        max: Duration::from_millis(2),
    };

    #[tokio::test]
    async fn retries_transient_errors_then_succeeds() {
        let n = AtomicU32::new(0);
        let r = poll_until(Duration::from_secs(5), FAST, || async {
            match n.fetch_add(1, Ordering::SeqCst) {
                0 => Err(CloudError::Service {
                    op: "DescribeVolumes",
                    code: "RequestLimitExceeded".into(),
                    message: String::new(),
                    request_id: None,
                }),
                1 => Ok(Err("creating".to_string())),
                _ => Ok(Ok(7)),
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_errors_end_the_wait() {
        let r: Result<(), _> = poll_until(Duration::from_secs(5), FAST, || async {
            Err(CloudError::Service {
                op: "DescribeVolumes",
                code: "UnauthorizedOperation".into(),
                message: "no".into(),
                request_id: None,
            })
        })
        .await;
        assert!(matches!(r, Err(WaitError::Failed(_))));
    }

    #[tokio::test]
    async fn deadline_reports_what_was_last_seen() {
        let r: Result<(), _> = poll_until(Duration::from_millis(20), FAST, || async {
            Ok(Err("attaching".to_string()))
        })
        .await;
        assert_eq!(
            r.unwrap_err().to_string(),
            "timed out (last seen: attaching)"
        );
    }
}
