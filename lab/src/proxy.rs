//! The proxy in front of moto: faults before forwarding, device and image
//! side effects after, life-cycle rewriting of describe replies, and the
//! control endpoints under `/_lab/`.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Either};
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, Response, StatusCode};

use crate::checksums;
use crate::control::control;
use crate::copies;
use crate::effects::{after, fill_detach_instance};
use crate::faults::{self, Before, Delivery};
use crate::locks;
use crate::moto;
use crate::replies::{ec2_error, ec2_ok, fault_error, text, whole, Paced, Resp};
use crate::restore_speed;
use crate::s3_names::s3_operation;
use crate::state::Lab;

/// A request answered by closing its connection with no reply, as a
/// reset does: hyper drops the connection when the service fails.
#[derive(Debug)]
pub(crate) struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by a lab fault")
    }
}

impl std::error::Error for Dropped {}

/// One request: the lab's control endpoints, or a call for moto with the
/// lab's checks and faults before it and its side effects after.
pub(crate) async fn handle(lab: Arc<Lab>, req: Request<Incoming>) -> Result<Resp, Dropped> {
    let (mut parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(text(StatusCode::BAD_REQUEST, format!("reading body: {e}"))),
    };
    if parts.uri.path().starts_with("/_lab/") {
        return Ok(control(&lab, &parts.method, parts.uri.path(), &body));
    }
    let mut params = moto::params(parts.uri.query(), &body);
    let mut body = body;
    // EC2 names its action; S3 requests are named from their shape.
    let is_s3 = !params.contains_key("Action");
    let action = params.get("Action").cloned().or_else(|| {
        s3_operation(
            &parts.method,
            parts.uri.path(),
            parts.uri.query(),
            &parts.headers,
        )
    });

    if let Some(refusal) = check_body(&lab, action.as_deref(), &parts.headers, &body) {
        return Ok(refusal);
    }

    let delivery = match &action {
        Some(action) => match faults::before(&lab, action, is_s3, &params).await {
            Before::Reply(r) => return Ok(r),
            Before::Drop => return Err(Dropped),
            Before::Forward(d) => d,
        },
        None => Delivery::default(),
    };

    if let Some(earlier) = lab.replay(action.as_deref(), &params) {
        return if delivery.lost {
            Err(Dropped)
        } else {
            Ok(earlier)
        };
    }

    if action.as_deref() == Some("DetachVolume") && !params.contains_key("InstanceId") {
        match fill_detach_instance(&lab, &mut params, &mut parts.uri, &mut body).await {
            Ok(None) => {}
            Ok(Some(refusal)) => return Ok(refusal),
            Err(e) => return Ok(text(StatusCode::BAD_GATEWAY, format!("{e:#}"))),
        }
    }

    // The Region the call is for (moto's backend): a copy's destination.
    let region = copies::region_of(&parts.headers, &lab.region);
    let dry_run = params.get("DryRun").map(String::as_str) == Some("true");
    // A CopySnapshot's place among its Region's copies in progress, held
    // until the copy is recorded (or the call failed).
    let mut _copy_slot = None;
    match action.as_deref() {
        Some("CreateVolume") => {
            let refusal = match restore_speed::check_create_volume(&lab, &region, &params).await {
                Some(r) => Some(r),
                None => copies::check_create_volume(&lab, &params),
            };
            if let Some(refusal) = refusal {
                return Ok(refusal);
            }
        }
        Some("CopySnapshot") if !is_s3 && !dry_run => match copies::check(&lab, &region, &params) {
            Ok(slot) => _copy_slot = Some(slot),
            Err(refusal) => return Ok(refusal.reply()),
        },
        Some("DeleteSnapshot") if !is_s3 => {
            if let Some(refusal) = locks::check_delete(&lab, &params) {
                return Ok(refusal);
            }
        }
        _ => {}
    }

    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let own = match &action {
        Some(a) if !is_s3 && (restore_speed::answers(a) || locks::answers(a)) && dry_run => {
            return Ok(ec2_error(
                412,
                "DryRunOperation",
                "Request would have succeeded, but DryRun flag is set.",
            ))
        }
        Some(a) if !is_s3 && locks::answers(a) => {
            return Ok(match locks::answer(&lab, &region, a, &params).await {
                Ok(body) => ec2_ok(a, &body),
                Err(refusal) => refusal.reply(),
            })
        }
        Some(a) if !is_s3 => restore_speed::answer(&lab, a, &params).await,
        _ => None,
    };
    let reply = match own {
        Some(body) => moto::Reply {
            status: 200,
            headers: HeaderMap::new(),
            body: Bytes::from(body),
        },
        None => match lab
            .moto
            .forward(parts.method.clone(), &path, &parts.headers, body, is_s3)
            .await
        {
            Ok(r) => r,
            Err(e) => return Ok(text(StatusCode::BAD_GATEWAY, format!("{e:#}"))),
        },
    };
    let mut out_body = reply.body.clone();
    // Effects and rewrites are EC2's: an S3 reply goes back untouched,
    // its body (a GetObject's: hundreds of MiB) not read as text.
    if reply.status == 200 && !is_s3 {
        if let Some(action) = &action {
            match after(&lab, action, &region, &params, &reply.body).await {
                Ok(Some(rewritten)) => out_body = Bytes::from(rewritten),
                Ok(None) => {}
                Err(e) => {
                    eprintln!("lab: {action}: {e:#}");
                    return Ok(ec2_error(500, "InternalError", &format!("lab: {e:#}")));
                }
            }
        }
    }
    if reply.status == 200 {
        lab.remember(action.as_deref(), &params, &out_body);
    }
    if delivery.lost {
        return Err(Dropped);
    }
    if let Some(wait) = delivery.after {
        if let Some(action) = &action {
            *lab.held
                .lock()
                .expect("held lock")
                .entry(action.clone())
                .or_insert(0) += 1;
        }
        tokio::time::sleep(wait).await;
    }
    if let Some(at) = delivery.at {
        tokio::time::sleep_until(at).await;
    }
    let mut resp = Response::builder().status(reply.status);
    // The body is rebuilt (and maybe rewritten), so its length is hyper's
    // to set, except for HEAD: that reply has no body and its
    // Content-Length is the object's size, which clients (tablesnap -B)
    // read to tell whether the object is already there.
    let is_head = parts.method == hyper::Method::HEAD;
    let kms = is_s3
        && reply
            .headers
            .get("x-amz-server-side-encryption")
            .is_some_and(|v| v.as_bytes().starts_with(b"aws:kms"));
    for (k, v) in &reply.headers {
        let keep = k != hyper::header::CONTENT_LENGTH || is_head;
        if kms && k == hyper::header::ETAG {
            resp = resp.header(k, kms_etag(v.as_bytes()));
        } else if keep && k != hyper::header::TRANSFER_ENCODING {
            resp = resp.header(k, v);
        }
    }
    let body = match delivery.mib_per_s {
        Some(rate) if is_s3 && !is_head => Either::Right(Paced::new(out_body, rate)),
        _ => whole(out_body),
    };
    Ok(resp
        .body(body)
        .unwrap_or_else(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())))
}

/// S3 checks the CRC32 a PutObject or UploadPart states (moto checks
/// nothing): a mismatch is refused as S3 refuses it, a body sent with no
/// checksum is counted.
fn check_body(lab: &Lab, action: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Option<Resp> {
    let op @ ("PutObject" | "UploadPart") = action? else {
        return None;
    };
    match checksums::check(headers, body) {
        checksums::Body::Checked => None,
        checksums::Body::Unprotected => {
            lab.count_unprotected(op);
            None
        }
        checksums::Body::Mismatch(stated, computed) => {
            eprintln!("lab: {op} CRC32 {stated} is not its body's ({computed}): refused");
            Some(fault_error(
                true,
                400,
                "BadDigest",
                "The CRC32 you specified did not match the calculated checksum.",
            ))
        }
    }
}

/// S3's ETag of an SSE-KMS object is not the MD5 of its bytes (moto's
/// is): a stable stand-in that is not, derived from moto's, so a client
/// that takes it for an MD5 fails here as it would on S3.
fn kms_etag(moto_etag: &[u8]) -> String {
    let hex: String = String::from_utf8_lossy(moto_etag)
        .trim_matches('"')
        .chars()
        .rev()
        .collect();
    // The digits reversed, the first eight replaced by a CRC32 of them,
    // so even an MD5 that reads the same backwards is changed.
    let crc = crc32fast::hash(hex.as_bytes());
    format!("\"{crc:08x}{}\"", &hex[8.min(hex.len())..])
}
