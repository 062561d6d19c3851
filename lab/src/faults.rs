//! A fault rule carried out on one request: an error reply shaped for the
//! service, a hold, a dropped connection, or a reply held back or lost
//! after the call was carried out.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::replies::fault_error;
use crate::replies::Resp;
use crate::rules::Reply;
use crate::state::Lab;

/// How long a `hang` fault holds a request when it sets no time: longer
/// than any client should wait.
const DEFAULT_HANG: Duration = Duration::from_secs(600);

/// What becomes of a request once its fault (if any) is known.
pub(crate) enum Before {
    /// Answer this instead of forwarding.
    Reply(Resp),
    /// Close the connection with no reply: the client cannot tell whether
    /// the call happened (it did not).
    Drop,
    /// Forward the call, then deliver its reply as `Delivery` says.
    Forward(Delivery),
}

/// How the reply of a forwarded call reaches the client.
#[derive(Default)]
pub(crate) struct Delivery {
    /// Hold the reply this long after the call was carried out (`late`).
    pub after: Option<Duration>,
    /// Send it no sooner than this (`rtt`).
    pub at: Option<Instant>,
    /// Carry the call out, then close the connection with no reply
    /// (`lost`): the call happened and the client cannot know it.
    pub lost: bool,
    /// Send an S3 reply's body at this many MiB/s (`mib_per_s`).
    pub mib_per_s: Option<f64>,
}

/// Count the call and carry out the first fault rule that matches it.
pub(crate) async fn before(
    lab: &Lab,
    action: &str,
    is_s3: bool,
    params: &BTreeMap<String, String>,
) -> Before {
    let arrived = Instant::now();
    let call = lab.count_call(action);
    let rules = lab.rules();
    let Some(fault) = rules.fault_for(action, call, params, lab.roll()) else {
        return Before::Forward(Delivery::default());
    };
    eprintln!("lab: fault {:?} on {action} call {call}", fault.reply);
    let error = |status, code, message| Before::Reply(fault_error(is_s3, status, code, message));
    match fault.reply {
        Reply::Throttle => error(
            503,
            if is_s3 {
                "SlowDown"
            } else {
                "RequestLimitExceeded"
            },
            "Request limit exceeded.",
        ),
        Reply::Internal => error(500, "InternalError", "An internal error has occurred."),
        Reply::Unsupported => error(
            400,
            "UnsupportedOperation",
            "The operation is not supported here.",
        ),
        Reply::Unavailable => error(503, "Unavailable", "The service is unavailable."),
        // What each service says when the caller's policy does not allow
        // the action: S3's AccessDenied, EC2's UnauthorizedOperation.
        Reply::Denied if is_s3 => error(403, "AccessDenied", "Access Denied"),
        Reply::Denied => error(
            403,
            "UnauthorizedOperation",
            "You are not authorized to perform this operation.",
        ),
        Reply::Hang => {
            tokio::time::sleep(fault.latency.unwrap_or(DEFAULT_HANG)).await;
            error(503, "Unavailable", "The lab held this request.")
        }
        Reply::Reset => Before::Drop,
        Reply::Lost => Before::Forward(Delivery {
            lost: true,
            ..Delivery::default()
        }),
        Reply::Latency => {
            tokio::time::sleep(fault.latency.unwrap_or_default()).await;
            Before::Forward(Delivery {
                mib_per_s: fault.mib_per_s,
                ..Delivery::default()
            })
        }
        Reply::Late => Before::Forward(Delivery {
            after: fault.latency,
            mib_per_s: fault.mib_per_s,
            ..Delivery::default()
        }),
        Reply::RoundTrip => Before::Forward(Delivery {
            at: fault.latency.map(|l| arrived + l),
            mib_per_s: fault.mib_per_s,
            ..Delivery::default()
        }),
    }
}
