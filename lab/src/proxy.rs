//! The proxy in front of moto: faults before forwarding, device and image
//! side effects after, life-cycle rewriting of describe replies, and the
//! control endpoints under `/_lab/`.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;

use crate::checksums;
use crate::devices::{Devices, Plug};
use crate::moto::{self, Moto};
use crate::rules::{Reply, Rules};
use crate::xml;

/// How long a `hang` fault holds a request when it sets no time: longer
/// than any client should wait.
const DEFAULT_HANG: Duration = Duration::from_secs(600);

pub(crate) struct Lab {
    pub moto: Moto,
    pub instance_id: String,
    pub zone: String,
    pub region: String,
    pub devices: Mutex<Devices>,
    pub userdata: Mutex<Option<String>>,
    rules: Mutex<Rules>,
    calls: Mutex<BTreeMap<String, u32>>,
    /// PutObject and UploadPart bodies sent with no checksum, by operation
    /// (`checksums.rs`).
    unprotected: Mutex<BTreeMap<String, u32>>,
    volumes: Mutex<HashMap<String, Life>>,
    snapshots: Mutex<HashMap<String, Life>>,
    seed: Mutex<u64>,
}

/// When a resource was created/attached, for the life cycles moto skips.
#[derive(Debug, Clone, Copy)]
struct Life {
    at: Instant,
    attached_at: Option<Instant>,
    error: bool,
}

#[derive(Serialize)]
struct State<'a> {
    instance_id: &'a str,
    zone: &'a str,
    region: &'a str,
    device_root: String,
    plugged: BTreeMap<String, Plug>,
    calls: BTreeMap<String, u32>,
    unprotected_bodies: BTreeMap<String, u32>,
}

type Resp = Response<Full<Bytes>>;

impl Lab {
    pub(crate) fn new(
        moto: Moto,
        instance_id: String,
        zone: String,
        region: String,
        devices: Devices,
        rules: Rules,
        userdata: Option<String>,
    ) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        Self {
            moto,
            instance_id,
            zone,
            region,
            devices: Mutex::new(devices),
            userdata: Mutex::new(userdata),
            rules: Mutex::new(rules),
            calls: Mutex::new(BTreeMap::new()),
            unprotected: Mutex::new(BTreeMap::new()),
            volumes: Mutex::new(HashMap::new()),
            snapshots: Mutex::new(HashMap::new()),
            seed: Mutex::new(seed),
        }
    }

    /// A uniform number in [0, 1) (xorshift; faults need no better).
    fn roll(&self) -> f64 {
        let mut s = self.seed.lock().expect("seed lock");
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        (*s >> 11) as f64 / (1u64 << 53) as f64
    }

    fn rules(&self) -> Rules {
        self.rules.lock().expect("rules lock").clone()
    }
}

pub(crate) async fn handle(lab: Arc<Lab>, req: Request<Incoming>) -> Result<Resp, Infallible> {
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

    if let Some(op @ ("PutObject" | "UploadPart")) = action.as_deref() {
        match checksums::check(&parts.headers, &body) {
            checksums::Body::Checked => {}
            checksums::Body::Unprotected => {
                *lab.unprotected
                    .lock()
                    .expect("unprotected lock")
                    .entry(op.to_string())
                    .or_insert(0) += 1;
            }
            checksums::Body::Mismatch(stated, computed) => {
                eprintln!("lab: {op} CRC32 {stated} is not its body's ({computed}): refused");
                return Ok(fault_error(
                    true,
                    400,
                    "BadDigest",
                    "The CRC32 you specified did not match the calculated checksum.",
                ));
            }
        }
    }

    let mut reply_after = None;
    let (arrived, mut reply_at) = (tokio::time::Instant::now(), None);
    if let Some(action) = &action {
        let call = {
            let mut calls = lab.calls.lock().expect("calls lock");
            let n = calls.entry(action.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let rules = lab.rules();
        if let Some(fault) = rules.fault_for(action, call, &params, lab.roll()) {
            eprintln!("lab: fault {:?} on {action} call {call}", fault.reply);
            match fault.reply {
                Reply::Throttle => {
                    return Ok(fault_error(
                        is_s3,
                        503,
                        if is_s3 {
                            "SlowDown"
                        } else {
                            "RequestLimitExceeded"
                        },
                        "Request limit exceeded.",
                    ))
                }
                Reply::Internal => {
                    return Ok(fault_error(
                        is_s3,
                        500,
                        "InternalError",
                        "An internal error has occurred.",
                    ))
                }
                Reply::Unsupported => {
                    return Ok(fault_error(
                        is_s3,
                        400,
                        "UnsupportedOperation",
                        "The operation is not supported here.",
                    ))
                }
                Reply::Unavailable => {
                    return Ok(fault_error(
                        is_s3,
                        503,
                        "Unavailable",
                        "The service is unavailable.",
                    ))
                }
                Reply::Hang => {
                    tokio::time::sleep(fault.latency.unwrap_or(DEFAULT_HANG)).await;
                    return Ok(fault_error(
                        is_s3,
                        503,
                        "Unavailable",
                        "The lab held this request.",
                    ));
                }
                Reply::Latency => tokio::time::sleep(fault.latency.unwrap_or_default()).await,
                Reply::Late => reply_after = fault.latency,
                Reply::RoundTrip => reply_at = fault.latency.map(|l| arrived + l),
            }
        }
    }

    if action.as_deref() == Some("DetachVolume") && !params.contains_key("InstanceId") {
        match fill_detach_instance(&lab, &mut params, &mut parts.uri, &mut body).await {
            Ok(None) => {}
            Ok(Some(refusal)) => return Ok(refusal),
            Err(e) => return Ok(text(StatusCode::BAD_GATEWAY, format!("{e:#}"))),
        }
    }

    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let reply = match lab
        .moto
        .forward(parts.method.clone(), &path, &parts.headers, body)
        .await
    {
        Ok(r) => r,
        Err(e) => return Ok(text(StatusCode::BAD_GATEWAY, format!("{e:#}"))),
    };
    let mut out_body = reply.body.clone();
    if reply.status == 200 {
        if let Some(action) = &action {
            match after(&lab, action, &params, &reply.body).await {
                Ok(Some(rewritten)) => out_body = Bytes::from(rewritten),
                Ok(None) => {}
                Err(e) => {
                    eprintln!("lab: {action}: {e:#}");
                    return Ok(ec2_error(500, "InternalError", &format!("lab: {e:#}")));
                }
            }
        }
    }
    if let Some(wait) = reply_after {
        tokio::time::sleep(wait).await;
    }
    if let Some(at) = reply_at {
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
    Ok(resp
        .body(Full::new(out_body))
        .unwrap_or_else(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())))
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

/// Side effects of a successful call, and rewritten replies: moto does
/// the bookkeeping, the lab keeps images and device nodes in step and
/// plays the life cycles moto skips.
async fn after(
    lab: &Arc<Lab>,
    action: &str,
    params: &BTreeMap<String, String>,
    body: &[u8],
) -> anyhow::Result<Option<String>> {
    let reply = String::from_utf8_lossy(body).into_owned();
    let now = Instant::now();
    match action {
        "CreateVolume" => create_volume(lab, params, &reply, now).await.map(|()| None),
        "AttachVolume" => attach_volume(lab, params, now).await.map(|()| None),
        "DetachVolume" => detach_volume(lab, params).await.map(|()| None),
        "DeleteVolume" => {
            remove_image(lab, params.get("VolumeId"));
            Ok(None)
        }
        "CreateSnapshot" => {
            let pairs = created_snapshot(params, &reply);
            record_snapshots(lab, pairs, now).await.map(|()| None)
        }
        "CreateSnapshots" => create_snapshot_set(lab, params, &reply, now).await,
        "DeleteSnapshot" => {
            remove_image(lab, params.get("SnapshotId"));
            Ok(None)
        }
        "DescribeVolumes" => Ok(Some(describe_volumes(lab, &reply))),
        "DescribeInstanceAttribute"
            if params.get("Attribute").map(String::as_str) == Some("blockDeviceMapping") =>
        {
            describe_block_device_mapping(lab, params, &reply).await
        }
        "DescribeSnapshots" => Ok(Some(describe_snapshots(lab, &reply))),
        _ => Ok(None),
    }
}

/// DetachVolume without an InstanceId, which EC2 accepts (the volume has
/// one attachment) and moto answers with HTTP 500: add the instance the
/// volume is attached to, to the form body (or the query, where the
/// parameters came from there). A volume attached nowhere gets EC2's
/// `IncorrectState` (the returned reply); one moto does not know goes on
/// unchanged, for moto's own error.
async fn fill_detach_instance(
    lab: &Lab,
    params: &mut BTreeMap<String, String>,
    uri: &mut hyper::Uri,
    body: &mut Bytes,
) -> anyhow::Result<Option<Resp>> {
    let Some(vol) = params.get("VolumeId").cloned() else {
        return Ok(None);
    };
    let instance = match lab.moto.attached_instance(&vol).await {
        Ok(Some(i)) => i,
        Ok(None) => {
            return Ok(Some(ec2_error(
                400,
                "IncorrectState",
                &format!("Volume '{vol}' is in the 'available' state."),
            )))
        }
        Err(_) => return Ok(None),
    };
    let pair = form_urlencoded::Serializer::new(String::new())
        .append_pair("InstanceId", &instance)
        .finish();
    if body.windows(7).any(|w| w == b"Action=") {
        let mut b = body.to_vec();
        if !b.is_empty() && !b.ends_with(b"&") {
            b.push(b'&');
        }
        b.extend_from_slice(pair.as_bytes());
        *body = Bytes::from(b);
    } else {
        let query = match uri.query() {
            Some(q) if !q.is_empty() => format!("{q}&{pair}"),
            _ => pair,
        };
        *uri = format!("{}?{query}", uri.path()).parse()?;
    }
    eprintln!("lab: DetachVolume of {vol} without InstanceId: {instance} filled in");
    params.insert("InstanceId".into(), instance);
    Ok(None)
}

/// DescribeInstanceAttribute(blockDeviceMapping) as EC2 answers it: moto
/// leaves the mapping out; the lab puts in the one DescribeInstances
/// gives (each attachment's device, volume, status and
/// deleteOnTermination), after the `instanceId`.
async fn describe_block_device_mapping(
    lab: &Lab,
    params: &BTreeMap<String, String>,
    reply: &str,
) -> anyhow::Result<Option<String>> {
    if reply.contains("<blockDeviceMapping") {
        return Ok(None);
    }
    let Some(instance) = params.get("InstanceId") else {
        return Ok(None);
    };
    let mapping = lab.moto.block_device_mapping(instance).await?;
    let close = "</instanceId>";
    Ok(reply.find(close).map(|at| {
        let at = at + close.len();
        format!("{}{mapping}{}", &reply[..at], &reply[at..])
    }))
}

/// A new volume: start its life cycle and give it an image, a copy of its
/// snapshot's when it has one, so what the snapshot held comes back.
async fn create_volume(
    lab: &Arc<Lab>,
    params: &BTreeMap<String, String>,
    reply: &str,
    now: Instant,
) -> anyhow::Result<()> {
    let Some(vol) = xml::first(reply, &["CreateVolumeResponse", "volumeId"]) else {
        return Ok(());
    };
    lab.volumes.lock().expect("volumes lock").insert(
        vol.clone(),
        Life {
            at: now,
            attached_at: None,
            error: false,
        },
    );
    let size: u64 = params.get("Size").and_then(|s| s.parse().ok()).unwrap_or(0);
    let lab2 = lab.clone();
    let snap = params.get("SnapshotId").cloned();
    blocking(move || {
        let image = |id: &str| lab2.devices.lock().expect("devices lock").image(id);
        if let Some(snap) = snap {
            if !crate::devices::copy_image(&image(&snap), &image(&vol))? {
                eprintln!(
                    "lab: {snap} has no image (not made through the lab); {vol} starts empty"
                );
            }
        }
        if size > 0 {
            lab2.devices
                .lock()
                .expect("devices lock")
                .ensure_image(&vol, size)?;
        }
        Ok(())
    })
    .await
}

/// An attach to this instance: start the attachment's life cycle, make
/// sure the volume has an image to plug, then hot-plug it.
async fn attach_volume(
    lab: &Arc<Lab>,
    params: &BTreeMap<String, String>,
    now: Instant,
) -> anyhow::Result<()> {
    let (Some(vol), Some(instance), Some(device)) = (
        params.get("VolumeId"),
        params.get("InstanceId"),
        params.get("Device"),
    ) else {
        return Ok(());
    };
    if instance != &lab.instance_id {
        return Ok(());
    }
    if let Some(l) = lab.volumes.lock().expect("volumes lock").get_mut(vol) {
        l.attached_at = Some(now);
    }
    let has_image = lab
        .devices
        .lock()
        .expect("devices lock")
        .image(vol)
        .exists();
    if !has_image {
        let size = lab.moto.volume_size(vol).await?;
        let (lab2, v) = (lab.clone(), vol.clone());
        blocking(move || {
            lab2.devices
                .lock()
                .expect("devices lock")
                .ensure_image(&v, size)
                .map(drop)
        })
        .await?;
    }
    plug_later(lab, vol.clone(), device.clone());
    Ok(())
}

/// The device appears a moment after the call returns, as on EC2; a
/// failure can only be logged, the reply is long gone.
fn plug_later(lab: &Arc<Lab>, vol: String, device: String) {
    let delay = lab.rules().device_delay.unwrap_or_default();
    let lab2 = lab.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let result = blocking(move || {
            lab2.devices
                .lock()
                .expect("devices lock")
                .plug(&vol, &device)
                .map(drop)
        })
        .await;
        if let Err(e) = result {
            eprintln!("lab: hot-plug failed: {e:#}");
        }
    });
}

/// A detach: end the attachment's life cycle and pull the device node.
async fn detach_volume(lab: &Arc<Lab>, params: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let Some(vol) = params.get("VolumeId").cloned() else {
        return Ok(());
    };
    if let Some(l) = lab.volumes.lock().expect("volumes lock").get_mut(&vol) {
        l.attached_at = None;
    }
    let lab2 = lab.clone();
    blocking(move || lab2.devices.lock().expect("devices lock").unplug(&vol)).await
}

/// A deleted volume or snapshot takes its image with it.
fn remove_image(lab: &Lab, id: Option<&String>) {
    if let Some(id) = id {
        lab.devices.lock().expect("devices lock").remove_image(id);
    }
}

/// The (snapshot, volume) pair a CreateSnapshot made: the volume is only
/// in the request.
fn created_snapshot(params: &BTreeMap<String, String>, reply: &str) -> Vec<(String, String)> {
    match (
        xml::first(reply, &["CreateSnapshotResponse", "snapshotId"]),
        params.get("VolumeId"),
    ) {
        (Some(s), Some(v)) => vec![(s, v.clone())],
        _ => vec![],
    }
}

/// The (snapshot, volume) pairs a CreateSnapshots made, one per reply
/// `item` (keyed by where the item starts, so leaves pair up).
fn created_snapshots(reply: &str) -> Vec<(String, String)> {
    let mut items: BTreeMap<usize, (Option<String>, Option<String>)> = BTreeMap::new();
    for l in xml::leaves(reply) {
        let n = l.path.len();
        if n >= 2 && l.path[n - 2] == "item" {
            let e = items.entry(l.starts[n - 2]).or_default();
            match l.path[n - 1].as_str() {
                "snapshotId" => e.0 = Some(reply[l.text.clone()].to_string()),
                "volumeId" => e.1 = Some(reply[l.text.clone()].to_string()),
                _ => {}
            }
        }
    }
    items
        .into_values()
        .filter_map(|(s, v)| Some((s?, v?)))
        .collect()
}

/// CreateSnapshots as EC2 does it where moto does not: volumes named in
/// `ExcludeDataVolumeIds.N` get no snapshot (moto snapshots them anyway:
/// those are deleted again and left out of the reply).
async fn create_snapshot_set(
    lab: &Arc<Lab>,
    params: &BTreeMap<String, String>,
    reply: &str,
    now: Instant,
) -> anyhow::Result<Option<String>> {
    let excluded: Vec<&String> = params
        .iter()
        .filter(|(k, _)| k.starts_with("InstanceSpecification.ExcludeDataVolumeId"))
        .map(|(_, v)| v)
        .collect();
    let (mut keep, mut drop) = (Vec::new(), Vec::new());
    for (snap, vol) in created_snapshots(reply) {
        if excluded.contains(&&vol) {
            drop.push(snap);
        } else {
            keep.push((snap, vol));
        }
    }
    for snap in &drop {
        lab.moto
            .ec2("DeleteSnapshot", &[("SnapshotId", snap)])
            .await?;
    }
    record_snapshots(lab, keep, now).await?;
    Ok((!drop.is_empty()).then(|| without_items(reply, "snapshotSet", &drop)))
}

/// The reply without the top-level `item`s of `set` that name any of
/// `ids` (nested items, such as tags, stay with their parent).
fn without_items(reply: &str, set: &str, ids: &[String]) -> String {
    let (open, close) = (format!("<{set}>"), format!("</{set}>"));
    let (Some(a), Some(b)) = (reply.find(&open), reply.find(&close)) else {
        return reply.to_string();
    };
    let inner = &reply[a + open.len()..b];
    let mut items = Vec::new();
    let (mut depth, mut start, mut i) = (0usize, 0usize, 0usize);
    while i < inner.len() {
        if inner[i..].starts_with("<item>") {
            if depth == 0 {
                start = i;
            }
            depth += 1;
            i += "<item>".len();
        } else if inner[i..].starts_with("</item>") {
            depth = depth.saturating_sub(1);
            i += "</item>".len();
            if depth == 0 {
                items.push(&inner[start..i]);
            }
        } else {
            i += inner[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    let kept: String = items
        .into_iter()
        .filter(|item| {
            !ids.iter()
                .any(|id| item.contains(&format!("<snapshotId>{id}</snapshotId>")))
        })
        .collect();
    format!(
        "{}{open}{kept}{close}{}",
        &reply[..a],
        &reply[b + close.len()..]
    )
}

/// New snapshots: copy each volume's image and start each life cycle.
async fn record_snapshots(
    lab: &Arc<Lab>,
    pairs: Vec<(String, String)>,
    now: Instant,
) -> anyhow::Result<()> {
    let error_calls = lab.rules().snapshot_error_calls;
    // The copies are made before the reply returns (point in time), all
    // at once: a set of many volumes costs about one copy, as the
    // separate CreateSnapshot calls of the same volumes do.
    let mut copies = tokio::task::JoinSet::new();
    for (snap, vol) in &pairs {
        let (lab2, s2, v2) = (lab.clone(), snap.clone(), vol.clone());
        copies.spawn(blocking(move || {
            let image = |id: &str| lab2.devices.lock().expect("devices lock").image(id);
            crate::devices::copy_image(&image(&v2), &image(&s2)).map(drop)
        }));
    }
    while let Some(copied) = copies.join_next().await {
        copied??;
    }
    for (snap, _) in pairs {
        // The n-th snapshot made through the lab ends in error if asked.
        let mut map = lab.snapshots.lock().expect("snapshots lock");
        let n = map.len() as u32 + 1;
        map.insert(
            snap,
            Life {
                at: now,
                attached_at: None,
                error: error_calls.contains(&n),
            },
        );
    }
    Ok(())
}

/// DescribeVolumes as EC2 would answer: moto's volumes are available and
/// attached at once, the lab's stay creating/attaching for a while.
fn describe_volumes(lab: &Lab, reply: &str) -> String {
    let rules = lab.rules();
    let vols = lab.volumes.lock().expect("volumes lock").clone();
    xml::rewrite(
        reply,
        &["volumeSet", "item"],
        "volumeId",
        |id, rel, text| {
            let life = vols.get(id)?;
            let rel: Vec<&str> = rel.iter().map(String::as_str).collect();
            match rel.as_slice() {
                ["status"] if text == "available" => {
                    let wait = rules.volume_available_after?;
                    (life.at.elapsed() < wait).then(|| "creating".to_string())
                }
                ["attachmentSet", "item", "status"] if text == "attached" => {
                    let wait = rules.volume_attached_after?;
                    (life.attached_at?.elapsed() < wait).then(|| "attaching".to_string())
                }
                _ => None,
            }
        },
    )
}

/// DescribeSnapshots as EC2 would answer: moto's snapshots complete at
/// once, the lab's stay pending for a while or end in error if asked.
fn describe_snapshots(lab: &Lab, reply: &str) -> String {
    let rules = lab.rules();
    let snaps = lab.snapshots.lock().expect("snapshots lock").clone();
    xml::rewrite(
        reply,
        &["snapshotSet", "item"],
        "snapshotId",
        |id, rel, _| {
            let life = snaps.get(id)?;
            let pending = rules
                .snapshot_pending
                .is_some_and(|p| life.at.elapsed() < p);
            match rel
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice()
            {
                ["status"] if pending => Some("pending".into()),
                ["status"] if life.error => Some("error".into()),
                ["progress"] if pending => Some("42%".into()),
                _ => None,
            }
        },
    )
}

async fn blocking(f: impl FnOnce() -> anyhow::Result<()> + Send + 'static) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(f).await?
}

fn control(lab: &Arc<Lab>, method: &Method, path: &str, body: &[u8]) -> Resp {
    match (method, path) {
        (&Method::GET, "/_lab/state") => {
            let devices = lab.devices.lock().expect("devices lock");
            let state = State {
                instance_id: &lab.instance_id,
                zone: &lab.zone,
                region: &lab.region,
                device_root: devices.root.display().to_string(),
                plugged: devices.plugged.clone(),
                calls: lab.calls.lock().expect("calls lock").clone(),
                unprotected_bodies: lab.unprotected.lock().expect("unprotected lock").clone(),
            };
            let json = serde_json::to_string_pretty(&state).unwrap_or_default();
            text(StatusCode::OK, json)
        }
        (&Method::PUT, "/_lab/rules") => match Rules::parse(&String::from_utf8_lossy(body)) {
            Ok(rules) => {
                *lab.rules.lock().expect("rules lock") = rules;
                lab.calls.lock().expect("calls lock").clear();
                text(StatusCode::OK, "rules set; call counts reset\n".into())
            }
            Err(e) => text(StatusCode::BAD_REQUEST, format!("bad rules: {e}\n")),
        },
        (&Method::PUT, "/_lab/userdata") => {
            *lab.userdata.lock().expect("userdata lock") =
                Some(String::from_utf8_lossy(body).into_owned());
            text(StatusCode::OK, "userdata set\n".into())
        }
        (&Method::DELETE, "/_lab/userdata") => {
            *lab.userdata.lock().expect("userdata lock") = None;
            text(StatusCode::OK, "userdata removed\n".into())
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "lab control: GET /_lab/state, PUT /_lab/rules, PUT|DELETE /_lab/userdata\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

/// The S3 operation a request is, by method, path and query (enough for
/// fault rules: PutObject, UploadPart, HeadObject, GetObject, ...), named
/// as the SDK names it: a fault on ListObjectsV2 leaves
/// ListMultipartUploads (the same GET of the bucket, with `?uploads`)
/// alone, one on UploadPart leaves UploadPartCopy alone.
fn s3_operation(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &hyper::HeaderMap,
) -> Option<String> {
    let q: BTreeMap<String, String> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    // `/bucket/?list-type=2` (a path-style listing) names no key.
    let has_key = path.trim_matches('/').contains('/');
    let op = match *method {
        Method::PUT
            if q.contains_key("partNumber") && headers.contains_key("x-amz-copy-source") =>
        {
            "UploadPartCopy"
        }
        Method::PUT if q.contains_key("partNumber") => "UploadPart",
        Method::PUT if headers.contains_key("x-amz-copy-source") => "CopyObject",
        Method::PUT if has_key => "PutObject",
        Method::PUT => "CreateBucket",
        Method::POST if q.contains_key("uploads") => "CreateMultipartUpload",
        Method::POST if q.contains_key("uploadId") => "CompleteMultipartUpload",
        Method::POST if q.contains_key("delete") => "DeleteObjects",
        Method::DELETE if q.contains_key("uploadId") => "AbortMultipartUpload",
        Method::DELETE => "DeleteObject",
        Method::HEAD if has_key => "HeadObject",
        Method::HEAD => "HeadBucket",
        Method::GET if has_key => "GetObject",
        Method::GET if q.contains_key("uploads") => "ListMultipartUploads",
        Method::GET if q.get("list-type").map(String::as_str) == Some("2") => "ListObjectsV2",
        Method::GET => "ListObjects",
        _ => return None,
    };
    Some(op.to_string())
}

/// A fault's error reply, shaped for the service that was called.
fn fault_error(is_s3: bool, status: u16, code: &str, message: &str) -> Resp {
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
fn ec2_error(status: u16, code: &str, message: &str) -> Resp {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_operations_are_named_as_the_sdk_names_them() {
        let none = hyper::HeaderMap::new();
        let mut copy = hyper::HeaderMap::new();
        copy.insert("x-amz-copy-source", "b/k".parse().unwrap());
        let op = |m: Method, path: &str, q: &str, h: &hyper::HeaderMap| {
            s3_operation(&m, path, Some(q), h).unwrap()
        };
        assert_eq!(
            op(Method::GET, "/b/", "list-type=2&prefix=x", &none),
            "ListObjectsV2"
        );
        assert_eq!(op(Method::GET, "/b", "prefix=x", &none), "ListObjects");
        assert_eq!(
            op(Method::GET, "/b/", "uploads&prefix=x", &none),
            "ListMultipartUploads"
        );
        assert_eq!(op(Method::GET, "/b/k", "", &none), "GetObject");
        assert_eq!(
            op(Method::PUT, "/b/k", "partNumber=1&uploadId=u", &none),
            "UploadPart"
        );
        assert_eq!(
            op(Method::PUT, "/b/k", "partNumber=1&uploadId=u", &copy),
            "UploadPartCopy"
        );
        assert_eq!(op(Method::PUT, "/b/k", "", &copy), "CopyObject");
        assert_eq!(op(Method::POST, "/b/", "delete", &none), "DeleteObjects");
        assert_eq!(op(Method::HEAD, "/b", "", &none), "HeadBucket");
    }
}
