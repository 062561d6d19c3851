//! Replies the lab makes itself: plain text for its control endpoints,
//! and errors shaped as EC2 or S3 shape theirs; and a reply body sent at
//! a bounded rate.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::{Response, StatusCode};

/// A reply's body: whole at once, or paced.
pub(crate) type Body = Either<Full<Bytes>, Paced>;

/// A reply.
pub(crate) type Resp = Response<Body>;

/// A body sent whole.
pub(crate) fn whole(bytes: impl Into<Bytes>) -> Body {
    Either::Left(Full::new(bytes.into()))
}

/// A body sent at `mib_per_s` (a chunk at a time, each when the rate
/// allows): one connection to S3 carries only so many MiB/s, which is
/// why clients fetch large objects in ranges at once.
pub(crate) struct Paced {
    rest: Bytes,
    sent: u64,
    per_mib: Duration,
    started: Option<tokio::time::Instant>,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// A paced body goes out this much at a time.
const PACED_CHUNK: usize = 64 << 10;

impl Paced {
    pub(crate) fn new(bytes: Bytes, mib_per_s: f64) -> Self {
        Paced {
            rest: bytes,
            sent: 0,
            per_mib: Duration::from_secs_f64(1.0 / mib_per_s),
            started: None,
            pause: None,
        }
    }
}

impl http_body::Body for Paced {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(pause) = self.pause.as_mut() {
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.pause = None;
        }
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let started = *self.started.get_or_insert_with(tokio::time::Instant::now);
        let n = self.rest.len().min(PACED_CHUNK);
        let chunk = self.rest.split_to(n);
        self.sent += n as u64;
        // Due by the bytes sent so far from the start, so timer rounding
        // does not add up chunk after chunk.
        let due = started
            + self
                .per_mib
                .mul_f64(self.sent as f64 / f64::from(1u32 << 20));
        self.pause = Some(Box::pin(tokio::time::sleep_until(due)));
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.pause.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

pub(crate) fn text(status: StatusCode, body: String) -> Resp {
    let mut r = Response::new(whole(body));
    *r.status_mut() = status;
    r
}

/// A fault's error reply, shaped for the service that was called.
pub(crate) fn fault_error(is_s3: bool, status: u16, code: &str, message: &str) -> Resp {
    if !is_s3 {
        return ec2_error(status, code, message);
    }
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>lab-fault</RequestId></Error>"
    );
    let mut r = Response::new(whole(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    r
}

/// An error reply in EC2's query-protocol shape.
pub(crate) fn ec2_error(status: u16, code: &str, message: &str) -> Resp {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>lab-fault</RequestID></Response>"
    );
    let mut r = Response::new(whole(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/xml"),
    );
    r
}

/// A successful reply to an EC2 call the lab answers itself: `inner` in
/// the action's response element.
pub(crate) fn ec2_ok(action: &str, inner: &str) -> Resp {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>lab</requestId>{inner}</{action}Response>"
    );
    let mut r = Response::new(whole(body));
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/xml"),
    );
    r
}

/// An EC2 refusal (400) a check returns, made a reply where it is sent:
/// a whole reply is too large to carry in a `Result`.
pub(crate) struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn reply(self) -> Resp {
        ec2_error(400, self.code, &self.message)
    }
}
