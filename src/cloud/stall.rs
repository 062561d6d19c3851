//! The stall watch every S3 call runs under (`S3::call`): an attempt that
//! shows no progress for the stall timeout is abandoned and tried again,
//! a few times, then fails naming its operation and key. The SDK's own
//! timeouts do not bound a call: its read timeout (120 s) applies per
//! attempt and per read, so a listing, HEAD or PUT that the far end holds
//! open could take its whole retry budget of them, and nothing covers a
//! body after its headers.
//!
//! Progress is what a call can show: its reply, each chunk of a body it
//! sends as the connection takes it (`ProgressBody`), each chunk of a
//! download as it arrives. A body of any size on any link is therefore
//! never cut while it flows, and a call that S3 answers only once its own
//! work is done (a copy inside S3) is given time for that work besides.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

/// How long an S3 call may show no progress before its attempt is
/// abandoned, and how many attempts it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Patience {
    pub stall: Duration,
    pub attempts: u32,
}

/// When one attempt last showed progress.
#[derive(Debug)]
pub(crate) struct Progress {
    started: Instant,
    /// Milliseconds from `started` to the last sign of progress.
    last: AtomicU64,
}

impl Progress {
    pub(crate) fn new() -> Arc<Progress> {
        Arc::new(Progress {
            started: Instant::now(),
            last: AtomicU64::new(0),
        })
    }

    /// Something moved: bytes went out or came in.
    pub(crate) fn stamp(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.fetch_max(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.started + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }
}

/// `work`'s output, or `None` once it has shown no progress for `stall`
/// plus `allowance` (time S3 takes for its own work before it answers).
pub(crate) async fn watched<T>(
    work: impl Future<Output = T>,
    progress: &Progress,
    stall: Duration,
    allowance: Duration,
) -> Option<T> {
    let limit = stall.saturating_add(allowance);
    tokio::pin!(work);
    loop {
        let deadline = progress.last() + limit;
        tokio::select! {
            out = &mut work => return Some(out),
            () = tokio::time::sleep_until(deadline) => {
                if progress.last() + limit <= Instant::now() {
                    return None;
                }
            }
        }
    }
}

/// The wait before attempt `n + 1` after a stall: short, as a stall has
/// already waited.
pub(crate) fn backoff(n: u32) -> Duration {
    Duration::from_millis(250 * u64::from(n)).min(Duration::from_secs(2))
}

/// Chunks a body from memory is handed to the connection in.
const CHUNK: usize = 64 << 10;

/// A body from memory, given to the connection a chunk at a time, each
/// taken stamping `progress`: the connection takes the next chunk only as
/// it sends (its buffer is bounded), so a PUT whose bytes still flow is
/// not stalled, however slow the link.
pub(crate) struct ProgressBody {
    bytes: Bytes,
    progress: Arc<Progress>,
}

impl ProgressBody {
    pub(crate) fn new(bytes: Bytes, progress: Arc<Progress>) -> Self {
        ProgressBody { bytes, progress }
    }
}

impl http_body::Body for ProgressBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if self.bytes.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.bytes.len().min(CHUNK);
        let chunk = self.bytes.split_to(n);
        self.progress.stamp();
        Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.bytes.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.bytes.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Whether `took` is `want`, give or take what a busy machine adds.
    fn about(took: Duration, want: Duration) -> bool {
        took >= want && took < want + ms(1000)
    }

    #[tokio::test]
    async fn a_call_is_cut_only_after_the_stall_without_progress() {
        let stall = ms(200);
        // Answers in 100 ms: in time.
        let p = Progress::new();
        let quick = tokio::time::sleep(ms(100));
        assert_eq!(watched(quick, &p, stall, Duration::ZERO).await, Some(()));
        // Never answers: cut at 200 ms, not before.
        let p = Progress::new();
        let t = Instant::now();
        let never = std::future::pending::<()>();
        assert_eq!(watched(never, &p, stall, Duration::ZERO).await, None);
        assert!(about(t.elapsed(), stall), "{:?}", t.elapsed());
        // The same with 300 ms of S3's own work allowed: cut at 500 ms.
        let p = Progress::new();
        let t = Instant::now();
        let never = std::future::pending::<()>();
        assert_eq!(watched(never, &p, stall, ms(300)).await, None);
        assert!(about(t.elapsed(), ms(500)), "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn progress_keeps_a_long_call_alive() {
        let stall = ms(200);
        let p = Progress::new();
        // 600 ms of work that stamps progress every 60 ms.
        let work = {
            let p = p.clone();
            async move {
                for _ in 0..10 {
                    tokio::time::sleep(ms(60)).await;
                    p.stamp();
                }
            }
        };
        assert_eq!(watched(work, &p, stall, Duration::ZERO).await, Some(()));
        // Then it stops moving: cut 200 ms after the last stamp.
        let p = Progress::new();
        let work = {
            let p = p.clone();
            async move {
                tokio::time::sleep(ms(100)).await;
                p.stamp();
                std::future::pending::<()>().await;
            }
        };
        let t = Instant::now();
        assert_eq!(watched(work, &p, stall, Duration::ZERO).await, None);
        assert!(about(t.elapsed(), ms(300)), "{:?}", t.elapsed());
    }

    #[test]
    fn a_body_goes_in_chunks_each_stamping_progress() {
        use http_body::Body;
        let p = Progress::new();
        let mut body = ProgressBody::new(Bytes::from(vec![7u8; CHUNK * 2 + 1]), p.clone());
        assert_eq!(body.size_hint().exact(), Some((CHUNK * 2 + 1) as u64));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut sizes = Vec::new();
        while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx) {
            sizes.push(frame.into_data().unwrap().len());
        }
        assert_eq!(sizes, vec![CHUNK, CHUNK, 1]);
        assert!(body.is_end_stream());
    }
}
