//! Replies the lab makes itself: plain text for its control endpoints,
//! and errors shaped as EC2 or S3 shape theirs.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

/// A reply, whole.
pub(crate) type Resp = Response<Full<Bytes>>;

pub(crate) fn text(status: StatusCode, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
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
    let mut r = Response::new(Full::new(Bytes::from(body)));
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
    let mut r = Response::new(Full::new(Bytes::from(body)));
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
    let mut r = Response::new(Full::new(Bytes::from(body)));
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
