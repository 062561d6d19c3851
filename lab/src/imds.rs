//! Instance metadata for the lab's instance, as EC2 serves it: IMDSv2
//! (PUT a token with `X-aws-ec2-metadata-token-ttl-seconds`, then GET with
//! it) and IMDSv1 (GET without a token), unless `v2_only`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::proxy::Lab;

const TOKEN: &str = "lab-imds-token";

pub(crate) async fn handle(
    lab: Arc<Lab>,
    v2_only: bool,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let reply = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r
    };
    if req.method() == Method::PUT && path == "/latest/api/token" {
        let Some(ttl) = header("x-aws-ec2-metadata-token-ttl-seconds") else {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                "missing TTL header\n".into(),
            ));
        };
        let mut r = reply(StatusCode::OK, TOKEN.into());
        if let Ok(v) = hyper::header::HeaderValue::from_str(&ttl) {
            r.headers_mut()
                .insert("x-aws-ec2-metadata-token-ttl-seconds", v);
        }
        return Ok(r);
    }
    if req.method() != Method::GET {
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, String::new()));
    }
    match header("x-aws-ec2-metadata-token") {
        Some(t) if t != TOKEN => return Ok(reply(StatusCode::UNAUTHORIZED, String::new())),
        None if v2_only => return Ok(reply(StatusCode::UNAUTHORIZED, String::new())),
        _ => {}
    }
    let path = path.trim_end_matches('/');
    let body = match path {
        "/latest/meta-data/instance-id" => Some(lab.instance_id.clone()),
        "/latest/meta-data/placement/availability-zone" => Some(lab.zone.clone()),
        "/latest/meta-data/placement/region" => Some(lab.region.clone()),
        "/latest/meta-data/instance-type" => Some("m5.large".into()),
        "/latest/user-data" => lab.userdata.lock().expect("userdata lock").clone(),
        _ => None,
    };
    Ok(match body {
        Some(b) => reply(StatusCode::OK, b),
        None => reply(StatusCode::NOT_FOUND, String::new()),
    })
}
