//! Instance metadata for the lab's instance, as EC2 serves it: IMDSv2
//! (PUT a token with `X-aws-ec2-metadata-token-ttl-seconds`, then GET with
//! it) and IMDSv1 (GET without a token), unless `v2_only`. Directories
//! list their keys one per line (subdirectories with a trailing `/`), as
//! clients that walk the tree (boto's `get_instance_metadata`, which
//! snaptastic 0.2.12 used) expect.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::moto::ROOT_DEVICE;
use crate::state::Lab;

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
    let userdata = lab.userdata.lock().expect("userdata lock").clone();
    let body = match path {
        "/latest" => Some(listing(
            // As EC2 lists it: no slash at this level.
            ["meta-data"]
                .into_iter()
                .chain(userdata.is_some().then_some("user-data")),
        )),
        "/latest/meta-data" => Some(listing([
            "block-device-mapping/",
            "instance-id",
            "instance-type",
            "placement/",
        ])),
        "/latest/meta-data/instance-id" => Some(lab.instance_id.clone()),
        "/latest/meta-data/placement" => Some(listing(["availability-zone", "region"])),
        "/latest/meta-data/placement/availability-zone" => Some(lab.zone.clone()),
        "/latest/meta-data/placement/region" => Some(lab.region.clone()),
        "/latest/meta-data/instance-type" => Some("m5.large".into()),
        "/latest/user-data" => userdata,
        _ => match path
            .strip_prefix("/latest/meta-data/block-device-mapping")
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        {
            Some(rest) => match block_device_mapping(&lab, rest).await {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("lab: metadata {path}: {e:#}");
                    return Ok(reply(StatusCode::INTERNAL_SERVER_ERROR, String::new()));
                }
            },
            None => None,
        },
    };
    Ok(match body {
        Some(b) => reply(StatusCode::OK, b),
        None => reply(StatusCode::NOT_FOUND, String::new()),
    })
}

/// A directory's listing: one key a line, no newline after the last.
fn listing<'a>(keys: impl IntoIterator<Item = &'a str>) -> String {
    keys.into_iter().collect::<Vec<_>>().join("\n")
}

/// `block-device-mapping/` (`rest` is what follows it: empty for the
/// listing, `/ebs1` for a key). EC2 lists `ami` and `root` (the root
/// device) and `ebsN` for each EBS volume, N from 1, and answers a key
/// with the device name without `/dev/` for `ebsN` (`sdf`). The lab asks
/// moto for the instance's attachments each time, so a volume attached
/// since shows up, numbered in device order.
async fn block_device_mapping(lab: &Lab, rest: &str) -> anyhow::Result<Option<String>> {
    let ebs: Vec<String> = lab
        .moto
        .attachments(&lab.instance_id)
        .await?
        .into_iter()
        .map(|(_, device)| device)
        .filter(|d| d != ROOT_DEVICE)
        .collect();
    let key = rest.trim_start_matches('/');
    Ok(match key {
        "" => {
            let names: Vec<String> = (1..=ebs.len()).map(|n| format!("ebs{n}")).collect();
            Some(listing(
                std::iter::once("ami")
                    .chain(names.iter().map(String::as_str))
                    .chain(std::iter::once("root")),
            ))
        }
        "ami" | "root" => Some(ROOT_DEVICE.to_string()),
        _ => key
            .strip_prefix("ebs")
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| ebs.get(n.checked_sub(1)?))
            .map(|d| d.trim_start_matches("/dev/").to_string()),
    })
}
